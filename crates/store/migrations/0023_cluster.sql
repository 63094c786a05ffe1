-- A cluster (docs/cluster.md): its nodes, and the one home of each room that has had a live
-- meeting. A single node writes neither. Times are Unix milliseconds.
CREATE TABLE cluster_nodes (
    id           TEXT PRIMARY KEY,
    -- where a room's calls go when this node is its home (Kamailio, and 302 answers)
    sip_uri      TEXT NOT NULL,
    http_url     TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    -- members in its meetings, with the heartbeat: where new rooms go
    load         BIGINT NOT NULL DEFAULT 0,
    -- 1: takes no new rooms (maintenance); its meetings stay until they end or move
    draining     BIGINT NOT NULL DEFAULT 0
);

-- A room's home: the node whose meeting actor owns it, for as long as its lease runs. The
-- epoch only grows: a node takes a room by raising it (compare-and-swap), and a node that
-- finds its epoch gone drops the room at once. A released home keeps its row and epoch with
-- lease_until = 0. No foreign key: a room may be deleted while its meeting goes on.
CREATE TABLE room_homes (
    room_id     TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    room_number TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    epoch       BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    -- the meeting going on there (NULL once released), and what another node needs to carry
    -- it on (settings, invitations) as JSON
    meeting_id  TEXT,
    state       TEXT NOT NULL DEFAULT '{}',
    updated_at  BIGINT NOT NULL
);
CREATE INDEX room_homes_number ON room_homes (room_number);
CREATE INDEX room_homes_node ON room_homes (node_id);
