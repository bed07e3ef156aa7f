-- A recording whose call ended while callcenter was not running (its end never seen) is
-- fetched only once the file has stopped growing: until_stable marks it, seen_size is the
-- file's size at the previous check.
ALTER TABLE recordings ADD COLUMN until_stable INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recordings ADD COLUMN seen_size INTEGER;
-- Who answered a call, when it was the other side (an outbound call): kept across a restart.
ALTER TABLE calls ADD COLUMN answered_by_outside INTEGER NOT NULL DEFAULT 0;
