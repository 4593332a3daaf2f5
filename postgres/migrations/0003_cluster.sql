-- Several omi nodes sharing this database act as one region (package
-- cluster). Each live node has a row it renews; a node whose expires_at has
-- passed is dead, and what it held may be taken over.
CREATE TABLE nodes (
    id         text COLLATE "C" PRIMARY KEY, -- one per process start
    name       text             NOT NULL,    -- --node-name, shown to people
    addr       text             NOT NULL,
    started_at timestamptz      NOT NULL DEFAULT now(),
    expires_at timestamptz      NOT NULL,
    -- No block this node Put but has not named in a saved root, nor any
    -- root it still reads, is older than low_water (blockmap LowWater).
    low_water  timestamptz      NOT NULL,
    -- The garbage collection epoch whose condemned blocks the node has
    -- loaded (see gc_state).
    gc_epoch   bigint           NOT NULL
);

-- Exclusive, node-bound holds on named things: "map/<id>" for a block map
-- open for writing, "job/<id>" for a background task, "gc", "reconciler".
-- A lease of a dead node is free.
CREATE TABLE leases (
    name  text COLLATE "C" PRIMARY KEY,
    node  text COLLATE "C" NOT NULL,
    since timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX leases_by_node ON leases (node);

-- Roots replaced or deleted, kept until no node can still be reading them
-- (their retired_at is before every live node's low_water), so that a
-- collector marks what a reader on another node still uses.
CREATE TABLE block_roots_retired (
    id         text COLLATE "C" NOT NULL,
    root       bytea            NOT NULL,
    retired_at timestamptz      NOT NULL
);
CREATE INDEX block_roots_retired_by_time ON block_roots_retired (retired_at);

-- The collector condemns unreferenced blocks, bumps epoch, waits for every
-- live node to load the condemned set, then deletes each block inside a
-- transaction holding its row; a node about to reuse a condemned block
-- deletes the row first (a rescue), so a block is never deleted under a
-- writer.
CREATE TABLE gc_state (
    one   boolean PRIMARY KEY DEFAULT true CHECK (one),
    epoch bigint  NOT NULL
);
INSERT INTO gc_state (one, epoch) VALUES (true, 0);
CREATE TABLE gc_condemned (
    hash bytea PRIMARY KEY
);
