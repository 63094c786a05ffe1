-- One row that /healthz rewrites (at most once a second): a store that cannot commit a write
-- (a full disk, a read-only file, a lost primary) is reported, not just one that answers reads.
-- `padding` makes the probe write about as much as a real request does, so it cannot fit in
-- the space that failed larger writes left allocated in SQLite's write-ahead log.
CREATE TABLE health_probe (
    id BIGINT PRIMARY KEY,
    checked_at BIGINT NOT NULL,
    padding TEXT NOT NULL
);
INSERT INTO health_probe (id, checked_at, padding) VALUES (1, 0, '');
