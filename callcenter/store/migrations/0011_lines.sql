-- Lines (Asterisk PBXs now; GSM modems, fax backends, SIP lines as their kinds land), edited
-- from the lines page and the CLI. The TOML [[pbx]] tables seed this table on the first start
-- only (lines_seeded remembers that it happened): afterwards the database wins.
CREATE TABLE lines (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    settings TEXT NOT NULL DEFAULT '{}',  -- JSON object, secrets never in here
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Secrets kept apart from the settings, so no query that lists lines can return one.
CREATE TABLE line_secrets (
    line_id INTEGER NOT NULL REFERENCES lines (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (line_id, key)
);

CREATE TABLE lines_seeded (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at TEXT NOT NULL,
    source TEXT NOT NULL
);
