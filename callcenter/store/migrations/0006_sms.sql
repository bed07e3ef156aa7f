-- SMS: messages in both directions, their parts, inbound parts as read from the SIM, the
-- do-not-send list. Times are unix seconds (REAL): the scheduler compares them constantly.

CREATE TABLE sms_messages (
    id INTEGER PRIMARY KEY,
    direction TEXT NOT NULL CHECK (direction IN ('out', 'in')),
    -- the other party as given / as received, and its E.164 form when it has one
    number TEXT NOT NULL,
    e164 TEXT,
    client_id INTEGER REFERENCES clients(id) ON DELETE SET NULL,
    contact_id INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
    -- the client's manager when it was stored; read back as the client's manager now
    -- (visibility follows a reassigned client), kept for messages with no client
    manager_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    campaign_id INTEGER,
    kind TEXT NOT NULL DEFAULT 'manual',  -- manual, campaign, system (opt-out confirmation)
    text TEXT NOT NULL,
    encoding TEXT NOT NULL,
    parts_total INTEGER NOT NULL,
    -- out: queued, sending, sent, delivered, failed, expired, unknown; in: received, incomplete
    state TEXT NOT NULL,
    -- out: the modem all parts go through (set when the first part starts); in: the line
    modem TEXT,
    concat_ref INTEGER,
    error TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    valid_until REAL,
    sent_at REAL,
    delivered_at REAL,
    -- the earliest time the scheduler may look at it again (a backoff after a refusal)
    next_try_at REAL NOT NULL DEFAULT 0,
    -- out: the message a person's "send again" made of this one (once only)
    resent_as INTEGER REFERENCES sms_messages(id) ON DELETE SET NULL
);
CREATE INDEX sms_messages_time ON sms_messages(created_at);
CREATE INDEX sms_messages_client ON sms_messages(client_id, created_at);
CREATE INDEX sms_messages_campaign ON sms_messages(campaign_id) WHERE campaign_id IS NOT NULL;
CREATE INDEX sms_messages_queue ON sms_messages(state, next_try_at)
    WHERE state IN ('queued', 'sending');

CREATE TABLE sms_parts (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES sms_messages(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    total INTEGER NOT NULL,
    text TEXT NOT NULL,
    -- queued, sending, sent, delivered, failed, expired, unknown
    state TEXT NOT NULL,
    modem TEXT,
    mr INTEGER,  -- TP-MR from +CMGS
    recipient TEXT,  -- the digits the report names, for matching
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    report_status TEXT,
    report_code INTEGER,
    sending_at REAL,
    sent_at REAL,
    report_at REAL,
    UNIQUE (message_id, seq)
);
-- reports look up (modem, mr) among outstanding parts, newest first
CREATE INDEX sms_parts_mr ON sms_parts(modem, mr, sending_at);
CREATE INDEX sms_parts_sent ON sms_parts(modem, sending_at);
-- start-up looks for parts a previous run left "sending"
CREATE INDEX sms_parts_in_flight ON sms_parts(message_id) WHERE state = 'sending';

-- Status reports no part could be matched to yet (the report beat the +CMGS answer's commit)
CREATE TABLE sms_reports_unmatched (
    id INTEGER PRIMARY KEY,
    modem TEXT NOT NULL,
    mr INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    status TEXT NOT NULL,
    code INTEGER NOT NULL,
    at REAL NOT NULL,
    pdu TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sms_reports_unmatched_mr ON sms_reports_unmatched(modem, mr);

-- Inbound parts exactly as read; the SMSC may deliver one twice: stored once by dedup_key
CREATE TABLE sms_inbound_parts (
    id INTEGER PRIMARY KEY,
    dedup_key TEXT NOT NULL UNIQUE,
    line TEXT NOT NULL,
    sender TEXT NOT NULL,
    sender_kind TEXT NOT NULL,
    text TEXT NOT NULL,
    encoding TEXT NOT NULL,
    smsc_time REAL NOT NULL,
    concat_ref INTEGER,
    concat_total INTEGER,
    concat_seq INTEGER,
    pdu TEXT NOT NULL,
    received_at REAL NOT NULL,
    message_id INTEGER REFERENCES sms_messages(id) ON DELETE SET NULL
);
-- reassembly looks up one long message's parts (joined to an incomplete message or not)
CREATE INDEX sms_inbound_parts_group
    ON sms_inbound_parts(line, sender, concat_ref, concat_total)
    WHERE concat_ref IS NOT NULL;

CREATE TABLE sms_optout (
    number TEXT PRIMARY KEY,  -- E.164 when it has one, else the digits
    raw TEXT NOT NULL,
    at REAL NOT NULL,
    source TEXT NOT NULL DEFAULT '',  -- "sms:<id>" or "admin:<login>"
    keyword TEXT NOT NULL DEFAULT ''
);
