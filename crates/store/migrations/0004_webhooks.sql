-- Integrations subscribe to meeting events; each delivery is signed with the webhook's secret.
CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    created_by  TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id);
