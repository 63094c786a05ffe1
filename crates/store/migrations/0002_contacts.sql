-- Address books: the enterprise's (owner_id NULL, shared by the tenant) and each user's own.
CREATE TABLE contacts (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    owner_id    TEXT REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    department  TEXT NOT NULL DEFAULT '',
    mobile      TEXT,
    landline    TEXT,
    extension   TEXT,
    email       TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX contacts_tenant ON contacts (tenant_id, owner_id, id);

ALTER TABLE template_members ADD COLUMN contact_id TEXT REFERENCES contacts (id) ON DELETE CASCADE;
