-- The client base: users, clients, contacts, phones, custom fields, interactions, tasks.
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    login TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('secretary', 'manager', 'admin')),
    extension TEXT UNIQUE,
    password_hash TEXT,
    language TEXT NOT NULL DEFAULT 'en',
    active INTEGER NOT NULL DEFAULT 1,
    -- Sessions carry the epoch they were made in; bumping it (logout, new password,
    -- deactivation) ends every session of the user, even a copied cookie.
    session_epoch INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE TABLE clients (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('company', 'person')),
    manager_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    notes TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX clients_manager ON clients(manager_id);
CREATE INDEX clients_name ON clients(name COLLATE NOCASE);

CREATE TABLE contacts (
    id INTEGER PRIMARY KEY,
    client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    name TEXT NOT NULL DEFAULT '',
    position TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT ''
);
CREATE INDEX contacts_client ON contacts(client_id);

-- raw: as entered; e164: normalized when valid; digits: every digit (international form when
-- known); rev: digits reversed, so "ends with these N digits" is an indexed prefix range.
CREATE TABLE phones (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    raw TEXT NOT NULL,
    e164 TEXT,
    digits TEXT NOT NULL,
    rev TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'work'
);
-- Covering indexes: a caller-ID lookup never reads the phones table itself.
CREATE INDEX phones_e164 ON phones(e164, contact_id, raw);
CREATE INDEX phones_rev ON phones(rev, contact_id, raw);
CREATE INDEX phones_contact ON phones(contact_id);

-- Admin-defined fields: adding one is a row here, never a schema change.
CREATE TABLE custom_fields (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('text', 'number', 'date', 'bool'))
);

CREATE TABLE custom_values (
    client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    field_id INTEGER NOT NULL REFERENCES custom_fields(id) ON DELETE CASCADE,
    value TEXT NOT NULL,
    PRIMARY KEY (client_id, field_id)
);

CREATE TABLE interactions (
    id INTEGER PRIMARY KEY,
    client_id INTEGER REFERENCES clients(id) ON DELETE SET NULL,
    contact_id INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
    kind TEXT NOT NULL CHECK (kind IN ('call', 'sms', 'fax', 'note')),
    at TEXT NOT NULL,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    summary TEXT NOT NULL DEFAULT '',
    ref TEXT,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX interactions_client ON interactions(client_id, at);
CREATE UNIQUE INDEX interactions_ref ON interactions(kind, ref) WHERE ref IS NOT NULL;

CREATE TABLE tasks (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('callback', 'reminder')),
    title TEXT NOT NULL,
    due_at TEXT,
    assignee_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    assignee_role TEXT,
    client_id INTEGER REFERENCES clients(id) ON DELETE CASCADE,
    phone TEXT,
    done INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    done_at TEXT,
    ref TEXT
);
CREATE INDEX tasks_open ON tasks(done, assignee_id);
CREATE INDEX tasks_phone_open ON tasks(phone) WHERE done = 0;
