-- The number a caller withheld, as the PBX delivered it: kept in the call log for admins only
-- (caller_raw stays empty for such a call), never on the bus, in interactions or tasks.
ALTER TABLE calls ADD COLUMN withheld_raw TEXT NOT NULL DEFAULT '';
