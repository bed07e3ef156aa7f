-- SMS campaigns: the campaign, and one row per recipient written when it starts.
CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    template TEXT NOT NULL,
    audience TEXT NOT NULL DEFAULT '{}',  -- the filter, as JSON
    owner_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    state TEXT NOT NULL DEFAULT 'draft'
        CHECK (state IN ('draft', 'running', 'paused', 'cancelled', 'finished')),
    per_minute INTEGER NOT NULL DEFAULT 0,  -- 0: only the SIMs' limits
    time_zone TEXT NOT NULL,
    window_start TEXT NOT NULL,
    window_end TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);

-- Materialised in one transaction when the campaign starts: a crash can neither forget a
-- recipient nor add one twice (one row per number). text is rendered then and never again.
-- state: pending (not handed over yet), queued (an SMS job exists: job_id; its own state says
-- what happened since), opted_out (on the do-not-send list at its send time: never sent),
-- cancelled (the campaign was cancelled before it was handed over), failed (the SMS side
-- refused it at its hand-over: error says why; the other recipients go on).
CREATE TABLE campaign_recipients (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    client_id INTEGER REFERENCES clients(id) ON DELETE SET NULL,
    contact_id INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
    number TEXT NOT NULL,
    text TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'queued', 'opted_out', 'cancelled', 'failed')),
    job_id INTEGER,
    error TEXT NOT NULL DEFAULT '',
    updated_at TEXT,
    UNIQUE (campaign_id, number)
);
CREATE INDEX campaign_recipients_state ON campaign_recipients (campaign_id, state, id);
CREATE INDEX campaign_recipients_job ON campaign_recipients (job_id);
CREATE INDEX campaign_recipients_number ON campaign_recipients (number, state);
