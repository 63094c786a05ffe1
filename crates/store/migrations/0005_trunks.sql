-- SIP trunks: outbound gateways to the phone network. The settings (host, transport,
-- number rewriting, SRTP policy…) are JSON; the digest password is its own column so that it
-- never travels with them.
CREATE TABLE trunks (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    settings    TEXT NOT NULL,
    password    TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX trunks_name ON trunks (tenant_id, name);
