-- Routing: secretary groups and the DIDs, queues and lines whose calls pop up for them; and
-- settings the admin changes in the console (they win over the TOML file once set).
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL  -- JSON
);

CREATE TABLE secretary_groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE
);

CREATE TABLE group_members (
    group_id INTEGER NOT NULL REFERENCES secretary_groups(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);

CREATE TABLE group_routes (
    group_id INTEGER NOT NULL REFERENCES secretary_groups(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('did', 'queue', 'line')),
    value TEXT NOT NULL,
    PRIMARY KEY (group_id, kind, value)
);
