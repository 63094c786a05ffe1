-- Recordings of meetings: the room's mix and a track per member, each a sealed file (see
-- docs/recording.md); the recording's key is kept here wrapped by the tenant's key, never
-- in the clear. `state`: recording, finished, interrupted (the server stopped while
-- recording; what was written stays playable).
CREATE TABLE recordings (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    meeting_id   TEXT,
    room_id      TEXT,
    room_number  TEXT NOT NULL,
    room_name    TEXT NOT NULL,
    started_by   TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    ended_at     BIGINT,
    state        TEXT NOT NULL,
    wrapped_key  TEXT NOT NULL,
    visibility   TEXT NOT NULL DEFAULT 'private'
);
CREATE INDEX recordings_tenant ON recordings (tenant_id, started_at);
CREATE INDEX recordings_state ON recordings (state);

-- Track 0 is the mix; members' tracks follow, one per person (a member who leaves and comes
-- back keeps theirs). `offset_ms`: where the track starts on the recording's timeline.
CREATE TABLE recording_tracks (
    recording_id TEXT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    track        BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    identity     TEXT NOT NULL,
    name         TEXT NOT NULL,
    number       TEXT NOT NULL,
    offset_ms    BIGINT NOT NULL,
    duration_ms  BIGINT,
    bytes        BIGINT,
    PRIMARY KEY (recording_id, track)
);

-- When each member spoke: the utterance index, by voice activity on their own track.
CREATE TABLE recording_utterances (
    recording_id TEXT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    track        BIGINT NOT NULL,
    start_ms     BIGINT NOT NULL,
    end_ms       BIGINT NOT NULL
);
CREATE INDEX recording_utterances_time ON recording_utterances (recording_id, start_ms);

-- A room whose meetings are recorded from their first member on.
ALTER TABLE rooms ADD COLUMN auto_record BIGINT NOT NULL DEFAULT 0;
