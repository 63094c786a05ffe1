-- Webhook deliveries waiting to be made: one row per event and webhook, written as the event
-- happens and removed once the receiver took it (or, after a day of retries, given up and
-- logged). A restart resumes where the last run stopped.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_kind       TEXT NOT NULL,
    body             TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at);
