-- The minutes of a recording (docs/minutes.md): one row per recording, and one line per
-- utterance once it is recognized. `state`: queued (waiting for a worker, or for more of
-- a recording still going on), working, done, failed (`error` says why), or unavailable
-- (the server has no speech model; made again when it has one). A line keeps what was
-- recognized (`recognized`) beside what the minutes show (`text`, edited or not).
CREATE TABLE minutes (
    recording_id TEXT PRIMARY KEY REFERENCES recordings (id) ON DELETE CASCADE,
    tenant_id    TEXT NOT NULL,
    state        TEXT NOT NULL,
    error        TEXT,
    not_before   BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX minutes_queue ON minutes (state, not_before);

CREATE TABLE minute_lines (
    recording_id TEXT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    tenant_id    TEXT NOT NULL,
    track        BIGINT NOT NULL,
    start_ms     BIGINT NOT NULL,
    end_ms       BIGINT NOT NULL,
    language     TEXT NOT NULL,
    recognized   TEXT NOT NULL,
    text         TEXT NOT NULL,
    -- lower case: what search matches
    search_text  TEXT NOT NULL,
    edited_by    TEXT,
    edited_at    BIGINT,
    PRIMARY KEY (recording_id, track, start_ms)
);
CREATE INDEX minute_lines_tenant ON minute_lines (tenant_id, recording_id);
