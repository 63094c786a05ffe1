-- E-mail invitations of scheduled meetings: one row per message, written in the transaction
-- of the booking's change (so a change is never without its mail, nor mail without the
-- change). Sent rows are kept (sent_at) so the organiser sees what became of each; waiting
-- ones are retried with backoff, never dropped; a restart resumes them.
CREATE TABLE mail_outbox (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    booking_id       TEXT NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    recipient        TEXT NOT NULL,
    recipient_name   TEXT NOT NULL,
    language         TEXT NOT NULL,
    method           TEXT NOT NULL,
    sequence         BIGINT NOT NULL,
    subject          TEXT NOT NULL,
    body             TEXT NOT NULL,
    ics              TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    sent_at          BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox (sent_at, next_attempt_at);
CREATE INDEX mail_outbox_booking ON mail_outbox (booking_id, created_at);
