-- The SQLite store's change log for its caller index snapshot (0020_caller_changes.sql). The
-- PostgreSQL store's index is in memory and follows NOTIFY instead: the table only keeps the
-- two schemas alike, and migrate-store does not copy it.
CREATE TABLE caller_changes (
    seq BIGSERIAL PRIMARY KEY,
    rev TEXT NOT NULL
);
