-- Live streams of meetings (HLS, see docs/streaming.md): `scheduled` (made ahead for a room:
-- its link can be shared before the meeting), `live`, `ended`. `key` names the watch page's
-- link; `access` the segments' (given only after the password, when there is one).
CREATE TABLE streams (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    room_id        TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    title          TEXT NOT NULL,
    stream_key     TEXT NOT NULL UNIQUE,
    access         TEXT NOT NULL,
    password       TEXT,
    state          TEXT NOT NULL,
    starts_at      BIGINT,
    started_at     BIGINT,
    ended_at       BIGINT,
    meeting_id     TEXT,
    created_by     TEXT NOT NULL,
    peak_listeners BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL
);
CREATE INDEX streams_tenant ON streams (tenant_id, state);
CREATE INDEX streams_room ON streams (room_id, state);
