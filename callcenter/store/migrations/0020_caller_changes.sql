-- Every change to caller_numbers, in commit order, for the caller index's in-memory snapshot
-- (callcenter/store/caller_snapshot.py): a lookup answers from the snapshot unless a number
-- changed since it was taken in the range it reads, so the index needs to learn which numbers
-- changed, whichever process or path wrote them. Triggers see them all (the store's write
-- paths, imports, the foreign key's cascades, migrate-store). The server trims what its
-- snapshot already holds. PostgreSQL keeps its own index in memory (0020_caller_changes.pg.sql).
CREATE TABLE caller_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    rev TEXT NOT NULL
);

CREATE TRIGGER caller_numbers_added AFTER INSERT ON caller_numbers
BEGIN
    INSERT INTO caller_changes (rev) VALUES (NEW.rev);
END;

CREATE TRIGGER caller_numbers_removed AFTER DELETE ON caller_numbers
BEGIN
    INSERT INTO caller_changes (rev) VALUES (OLD.rev);
END;

CREATE TRIGGER caller_numbers_changed AFTER UPDATE ON caller_numbers
BEGIN
    INSERT INTO caller_changes (rev) VALUES (OLD.rev);
    INSERT INTO caller_changes (rev) SELECT NEW.rev WHERE NEW.rev <> OLD.rev;
END;
