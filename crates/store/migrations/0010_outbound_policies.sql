-- Who of a tenant may call phone numbers through its trunks, which numbers, and how many:
-- a tenant without a row has the defaults (administrators only, any number, 10 at once and
-- 100 an hour). `settings` is JSON (model::OutboundPolicy).
CREATE TABLE outbound_policies (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    settings    TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
