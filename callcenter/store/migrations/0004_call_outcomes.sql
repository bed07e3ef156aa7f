-- Calls the PBX answered itself (IVR, announcement) and how long the caller spent there;
-- recordings of kind 'voicemail' are messages a caller left after nobody answered.
ALTER TABLE calls ADD COLUMN handled_by_pbx INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN ivr_seconds REAL;
ALTER TABLE recordings ADD COLUMN kind TEXT NOT NULL DEFAULT 'call'
    CHECK (kind IN ('call', 'voicemail'));
ALTER TABLE tasks ADD COLUMN voicemail INTEGER NOT NULL DEFAULT 0;
