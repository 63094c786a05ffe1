-- Every meeting leaves a record: when, where, who attended (and how), and what happened.
CREATE TABLE meetings (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    room_id      TEXT,
    room_number  TEXT NOT NULL,
    room_name    TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    ended_at     BIGINT
);
CREATE INDEX meetings_tenant ON meetings (tenant_id, started_at);

CREATE TABLE meeting_attendance (
    meeting_id  TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    member_id   BIGINT NOT NULL,
    name        TEXT NOT NULL,
    number      TEXT NOT NULL,
    via         TEXT NOT NULL,
    joined_at   BIGINT NOT NULL,
    left_at     BIGINT,
    PRIMARY KEY (meeting_id, member_id)
);

CREATE TABLE meeting_log (
    id          TEXT PRIMARY KEY,
    meeting_id  TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX meeting_log_meeting ON meeting_log (meeting_id, id);
