-- Outgoing fax jobs: one durable row per fax, whatever line sends it. A job mid-call when the
-- process died is found by its state (dialing/sending) at the next start.
CREATE TABLE fax_jobs (
    id INTEGER PRIMARY KEY,
    line TEXT NOT NULL,
    number TEXT NOT NULL,
    client_id INTEGER REFERENCES clients(id) ON DELETE SET NULL,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'converting', 'dialing', 'sending', 'sent',
                                         'failed', 'retry_scheduled', 'cancelled')),
    document TEXT NOT NULL,            -- the fax TIFF, inside the data folder
    thumbnail TEXT NOT NULL DEFAULT '',
    file_name TEXT NOT NULL DEFAULT '', -- the upload's name as given (escape where shown)
    pages INTEGER NOT NULL,
    pages_confirmed INTEGER NOT NULL DEFAULT 0,
    page INTEGER NOT NULL DEFAULT 0,   -- the page being sent now (1-based), 0 when idle
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try_at TEXT,
    backend_ref TEXT,
    remote_station TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL DEFAULT '',   -- a result key of callcenter.faxes.words
    t30_code INTEGER,
    detail TEXT NOT NULL DEFAULT '',   -- the backend's own words, for the admin
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    interrupted INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT,
    -- as the document was made: what the backend tells the far end (HylaFAX VRES, page size)
    resolution TEXT NOT NULL DEFAULT 'fine' CHECK (resolution IN ('fine', 'normal')),
    paper TEXT NOT NULL DEFAULT 'a4' CHECK (paper IN ('a4', 'letter'))
);
CREATE INDEX fax_jobs_due ON fax_jobs(state, next_try_at);
CREATE INDEX fax_jobs_client ON fax_jobs(client_id, created_at);
CREATE UNIQUE INDEX fax_jobs_ref ON fax_jobs(line, backend_ref) WHERE backend_ref IS NOT NULL;

-- Received faxes, stored (as PDF) before the backend's copy is removed. source_key is the
-- backend's name for the fax (its file), so a fax handed over twice is stored once.
CREATE TABLE fax_received (
    id INTEGER PRIMARY KEY,
    line TEXT NOT NULL,
    source_key TEXT NOT NULL,
    received_at TEXT NOT NULL,
    caller_raw TEXT NOT NULL DEFAULT '',
    caller_e164 TEXT,
    remote_station TEXT NOT NULL DEFAULT '',
    pages INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    pdf TEXT NOT NULL,
    client_id INTEGER REFERENCES clients(id) ON DELETE SET NULL,
    contact_id INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
    matched_by TEXT NOT NULL DEFAULT '',  -- 'caller_id', 'station_id' or ''
    UNIQUE (line, source_key)
);
CREATE INDEX fax_received_time ON fax_received(received_at);
CREATE INDEX fax_received_client ON fax_received(client_id, received_at);
