-- Several instances on one store each send faxes and SMS. The instance that claimed a fax job
-- (dialing) or an SMS part (sending) is written with it, so that at its restart it settles
-- only what it left mid-send itself, never a job another live instance is sending. NULL: one
-- process owns everything (SQLite), or claimed before this column existed.
ALTER TABLE fax_jobs ADD COLUMN claimed_by TEXT;
ALTER TABLE sms_parts ADD COLUMN claimed_by TEXT;
