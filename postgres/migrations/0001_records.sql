-- One row per stored resource: the fields omi.Record indexes, and the JSON
-- document holding the rest, kept as bytea so it comes back byte for byte.
-- Text columns use the "C" collation: ids must sort by bytes (Go string
-- order), which Scan returns and pagination tokens rely on, whatever the
-- database's default collation; "C" comparisons are also the cheapest.
CREATE TABLE records (
    kind   text COLLATE "C" NOT NULL,
    id     text COLLATE "C" NOT NULL,
    owner  text COLLATE "C" NOT NULL,
    name   text COLLATE "C" NOT NULL,
    public boolean          NOT NULL,
    doc    bytea            NOT NULL,
    PRIMARY KEY (kind, id)
);

-- Listing by owner (and the "own records" arm of VisibleTo) and lookup by
-- name, both in id order without a sort step.
CREATE INDEX records_by_owner ON records (kind, owner, id);
CREATE INDEX records_by_name ON records (kind, name, id);
-- Public records are a minority; a partial index lists them in id order for
-- the "public" arm of VisibleTo.
CREATE INDEX records_public ON records (kind, id) WHERE public;

-- Accounts a record is shared with, in the order Record.SharedWith gave them
-- (pos). Deleting a record deletes its shares.
CREATE TABLE shares (
    kind    text COLLATE "C" NOT NULL,
    id      text COLLATE "C" NOT NULL,
    pos     integer          NOT NULL,
    account text COLLATE "C" NOT NULL,
    PRIMARY KEY (kind, id, pos),
    FOREIGN KEY (kind, id) REFERENCES records (kind, id) ON DELETE CASCADE
);

-- The "shared with me" arm of VisibleTo, in id order; also the per-record
-- visibility test, and it keeps an account from being listed twice.
CREATE UNIQUE INDEX shares_by_account ON shares (account, kind, id);
