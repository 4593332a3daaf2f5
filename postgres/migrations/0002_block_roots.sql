-- The root of each volume and snapshot block map (blockmap.RootStore): its
-- size and chunk hashes in the encoding of blockmap.Root.MarshalBinary. The
-- chunks themselves are blocks of the block store. Keeping roots here lets
-- several omi nodes sharing this database see each other's maps.
-- id uses the "C" collation so that WalkRoots pages in byte order with a
-- keyset condition (id > last), whatever the database's default collation.
CREATE TABLE block_roots (
    id         text COLLATE "C" PRIMARY KEY,
    root       bytea            NOT NULL,
    updated_at timestamptz      NOT NULL DEFAULT now()
);
