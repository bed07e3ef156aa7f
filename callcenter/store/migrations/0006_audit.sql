-- The audit log: who changed which setting or record, when, from where, before and after.
-- before/after are JSON objects with secrets already masked (callcenter.audit.model.mask).
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor_id INTEGER,  -- the user; NULL for the command line and the system
    actor_label TEXT NOT NULL,  -- the login at the time, or "cli" / "system"
    address TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id TEXT,
    before TEXT,
    after TEXT
);
CREATE INDEX audit_at ON audit_log(at);
CREATE INDEX audit_actor ON audit_log(actor_id, at);
CREATE INDEX audit_target ON audit_log(target_kind, target_id, at);
