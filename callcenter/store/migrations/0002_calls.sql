-- The call log: one row per call, whatever line it came from.
CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    line TEXT NOT NULL,
    direction TEXT NOT NULL,
    caller_raw TEXT NOT NULL DEFAULT '',
    caller_e164 TEXT,
    caller_name TEXT NOT NULL DEFAULT '',
    withheld INTEGER NOT NULL DEFAULT 0,
    called TEXT NOT NULL DEFAULT '',
    client_id INTEGER REFERENCES clients(id) ON DELETE SET NULL,
    contact_id INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
    candidates TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL,
    reason TEXT,
    cause TEXT NOT NULL DEFAULT '',
    answered_by_user INTEGER REFERENCES users(id) ON DELETE SET NULL,
    answered_by_ext TEXT,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    rang TEXT NOT NULL DEFAULT '[]',
    -- ids of the users who took part (rang, answered, placed, received a transfer), fixed at
    -- call time: visibility must not follow an extension that is later given to someone else
    users TEXT NOT NULL DEFAULT '[]',
    ringing_at TEXT NOT NULL,
    answered_at TEXT,
    ended_at TEXT,
    ring_seconds REAL,
    talk_seconds REAL,
    transfers TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX calls_time ON calls(ringing_at);
CREATE INDEX calls_client ON calls(client_id, ringing_at);
CREATE INDEX calls_caller ON calls(caller_e164);

-- Recordings live on the PBX host until fetched; a row per file so retries survive restarts.
CREATE TABLE recordings (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    pbx_path TEXT NOT NULL,
    local_path TEXT,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'fetched', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_try_at TEXT,
    size INTEGER,
    UNIQUE (call_id, pbx_path)
);
CREATE INDEX recordings_pending ON recordings(state, next_try_at);
