-- Reports (issue 12): a "supervisor" role that sees every report, the queue a call waited in,
-- and the indexes the report queries range over.
--
-- The role's CHECK lives on the column: a new column with the wider CHECK replaces it (the
-- old column's own CHECK goes with it). Plain ALTER TABLE, so it runs on PostgreSQL too.
ALTER TABLE users ADD COLUMN role_new TEXT NOT NULL DEFAULT 'secretary'
    CHECK (role_new IN ('secretary', 'manager', 'admin', 'supervisor'));
UPDATE users SET role_new = role;
ALTER TABLE users DROP COLUMN role;
ALTER TABLE users RENAME COLUMN role_new TO role;

-- The queue (ACD) a call waited in, as the PBX named it; NULL when none.
ALTER TABLE calls ADD COLUMN queue TEXT;

-- Callback tasks by when they were opened (missed-call report: time to callback, SLA).
CREATE INDEX tasks_kind_created ON tasks(kind, created_at);
-- A client's open tasks (client summary).
CREATE INDEX tasks_client ON tasks(client_id, done);
-- Outgoing faxes by time (fax report); received ones have fax_received_time.
CREATE INDEX fax_jobs_time ON fax_jobs(created_at);
-- The clients of a segment (custom field = value): the segment filter.
CREATE INDEX custom_values_field ON custom_values(field_id, value);
