-- Scheduled meetings ("bookings"): a meeting booked ahead in a room, once or repeating by an
-- RFC 5545 rule in the organiser's time zone. Not to be confused with `meetings`, the history
-- of meetings that took place.
--
-- `start_local` is the wall-clock start ('2026-03-27T09:00') in `time_zone` (IANA): a
-- repeating meeting keeps its local time across DST changes. `first_start` and `last_end`
-- (epoch ms; NULL: the rule has no end, expanded up to the server's horizon) bound the series
-- for queries; the occurrences themselves are computed from the rule.
CREATE TABLE bookings (
    id                     TEXT PRIMARY KEY,
    tenant_id              TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    organiser_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id                TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    name                   TEXT NOT NULL,
    pin                    TEXT,
    description            TEXT NOT NULL DEFAULT '',
    expected_participants  BIGINT NOT NULL,
    time_zone              TEXT NOT NULL,
    start_local            TEXT NOT NULL,
    duration_minutes       BIGINT NOT NULL,
    rrule                  TEXT,
    exdates                TEXT NOT NULL DEFAULT '[]',
    first_start            BIGINT NOT NULL,
    last_end               BIGINT,
    settings               TEXT NOT NULL,
    cancelled              BIGINT NOT NULL DEFAULT 0,
    sequence               BIGINT NOT NULL DEFAULT 0,
    split_from             TEXT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE INDEX bookings_tenant ON bookings (tenant_id, first_start);
CREATE INDEX bookings_room ON bookings (room_id);

-- Who is invited, like a template's members (a group is expanded when booked).
CREATE TABLE booking_members (
    booking_id    TEXT NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    position      BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    user_id       TEXT REFERENCES users (id) ON DELETE CASCADE,
    contact_id    TEXT REFERENCES contacts (id) ON DELETE CASCADE,
    number        TEXT,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL,
    presenter     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (booking_id, position)
);
CREATE INDEX booking_members_user ON booking_members (user_id);

-- One occurrence that differs from its rule (moved, or cancelled), or that has started: keyed
-- by the start the rule gives it (`original_start`, epoch ms). `started_at` is the claim that
-- makes a meeting start exactly once: set by a conditional UPDATE (… AND started_at IS NULL)
-- in the transaction that records the start.
CREATE TABLE booking_occurrences (
    booking_id      TEXT NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    original_start  BIGINT NOT NULL,
    start_at        BIGINT NOT NULL,
    end_at          BIGINT NOT NULL,
    cancelled       BIGINT NOT NULL DEFAULT 0,
    started_at      BIGINT,
    PRIMARY KEY (booking_id, original_start)
);

-- A user's personal calendar feed: the SHA-256 of its secret token.
CREATE TABLE calendar_feeds (
    user_id     TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);
