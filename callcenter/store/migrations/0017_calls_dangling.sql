-- A call closed only because its line's process stopped (close_dangling_calls: at a start, or
-- when another instance takes the line over) may be re-adopted by the line's resync: it is
-- live again. A call whose own end was logged stays ended: a late write from an instance that
-- lost the line (its queue after it was fenced, its journal replayed at its restart) never
-- reopens it (see upsert_call).
ALTER TABLE calls ADD COLUMN dangling_closed INTEGER NOT NULL DEFAULT 0;
