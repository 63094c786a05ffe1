-- Portable schema: runs unchanged on SQLite and PostgreSQL.
-- Ids are TEXT (UUID v7, so they sort by creation), times are BIGINT epoch milliseconds,
-- flags are BIGINT 0/1, structured settings are JSON in TEXT.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    sip_domain  TEXT,
    branding    TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX tenants_name ON tenants (name);
CREATE UNIQUE INDEX tenants_sip_domain ON tenants (sip_domain);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    username        TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    email           TEXT,
    mobile          TEXT,
    landline        TEXT,
    extension       TEXT,
    sip_ha1_md5     TEXT,
    sip_ha1_sha256  TEXT,
    kind            TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_username ON users (username);
CREATE UNIQUE INDEX users_extension ON users (tenant_id, extension);
CREATE INDEX users_tenant ON users (tenant_id, id);

CREATE TABLE rooms (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number                TEXT NOT NULL,
    name                  TEXT NOT NULL,
    pin                   TEXT,
    capacity              BIGINT NOT NULL,
    max_duration_minutes  BIGINT,
    language              TEXT NOT NULL,
    creator_id            TEXT REFERENCES users (id) ON DELETE SET NULL,
    owner_id              TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE UNIQUE INDEX rooms_number ON rooms (tenant_id, number);

CREATE TABLE templates (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    owner_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    room_id      TEXT REFERENCES rooms (id) ON DELETE SET NULL,
    settings     TEXT NOT NULL,
    copied_from  TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX templates_owner ON templates (owner_id);

CREATE TABLE template_members (
    template_id   TEXT NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    position      BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    user_id       TEXT REFERENCES users (id) ON DELETE CASCADE,
    number        TEXT,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL,
    PRIMARY KEY (template_id, position)
);

CREATE TABLE template_shares (
    template_id  TEXT NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (template_id, user_id)
);

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL,
    source      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE UNIQUE INDEX sessions_token ON sessions (token_hash);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    key_hash      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    last_used_at  BIGINT
);
CREATE UNIQUE INDEX api_keys_hash ON api_keys (key_hash);

-- The audit log outlives what it talks about: no foreign keys, names are copied.
CREATE TABLE audit_events (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT,
    actor_id     TEXT,
    actor_name   TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT,
    outcome      TEXT NOT NULL,
    source       TEXT NOT NULL,
    detail       TEXT NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id);
