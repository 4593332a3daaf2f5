-- A node caches records read by id only while it is the only live node
-- (package cluster, recordcache). caching is true from the moment it may
-- start until it has emptied and stopped its cache; a joining node serves
-- nothing until no other live node has it set.
ALTER TABLE nodes ADD COLUMN caching boolean NOT NULL DEFAULT false;
