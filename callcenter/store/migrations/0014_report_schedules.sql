-- Scheduled reports (issue 12): what an admin set up, and the state of its sending.
-- last_period is written only after the mail server accepted the message (at least once:
-- a crash in between sends that period again, with the same Message-ID); sending_period is
-- written before, so a restart knows a send may have been cut.
CREATE TABLE report_schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    reports TEXT NOT NULL,           -- JSON list of report names
    recipients TEXT NOT NULL,        -- JSON list of e-mail addresses
    frequency TEXT NOT NULL CHECK (frequency IN ('daily', 'weekly')),
    time_of_day TEXT NOT NULL,       -- HH:MM in the office's time zone
    weekday INTEGER,                 -- 0 = Monday, weekly only
    period TEXT NOT NULL CHECK (period IN ('yesterday', 'last_7_days', 'last_month')),
    language TEXT NOT NULL DEFAULT 'en',
    enabled INTEGER NOT NULL DEFAULT 1,
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    last_period TEXT,
    last_sent_at TEXT,
    sending_period TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error TEXT
);
