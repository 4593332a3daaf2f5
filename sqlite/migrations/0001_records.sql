-- One row per stored resource: the fields omi.Record indexes, and the JSON
-- document holding the rest. Ids compare as bytes (BINARY), which is the
-- order Scan returns and pagination tokens rely on.
CREATE TABLE records (
    kind   TEXT    NOT NULL,
    id     TEXT    NOT NULL,
    owner  TEXT    NOT NULL,
    name   TEXT    NOT NULL,
    public INTEGER NOT NULL CHECK (public IN (0, 1)),
    doc    BLOB    NOT NULL,
    PRIMARY KEY (kind, id)
) STRICT;

-- Listing by owner and lookup by name, both returned in id order without a
-- sort step.
CREATE INDEX records_by_owner ON records (kind, owner, id);
CREATE INDEX records_by_name ON records (kind, name, id);
-- Public records are few; a partial index lists them in id order for the
-- "public" arm of VisibleTo.
CREATE INDEX records_public ON records (kind, id) WHERE public = 1;

-- Accounts a record is shared with, in the order Record.SharedWith gave them:
-- the primary key keeps them in that order (pos), so reading a record's
-- shares needs no sort. Deleting a record deletes its shares.
CREATE TABLE shares (
    kind    TEXT    NOT NULL,
    id      TEXT    NOT NULL,
    pos     INTEGER NOT NULL,
    account TEXT    NOT NULL,
    PRIMARY KEY (kind, id, pos),
    FOREIGN KEY (kind, id) REFERENCES records (kind, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- The "shared with me" arm of VisibleTo, in id order; also the per-record
-- visibility test, and it keeps an account from being listed twice.
CREATE UNIQUE INDEX shares_by_account ON shares (account, kind, id);
