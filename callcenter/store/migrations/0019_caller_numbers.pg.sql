-- PostgreSQL spelling of 0019_caller_numbers.sql: the same columns and rows, kept by the same
-- write paths, as an ordinary table (WITHOUT ROWID is SQLite's). The PostgreSQL store answers
-- lookups from its in-memory index; the table is kept so that a store copied either way holds it.
CREATE TABLE caller_numbers (
    rev TEXT NOT NULL,
    contact_id BIGINT NOT NULL,
    raw TEXT NOT NULL,
    phone_id BIGINT NOT NULL REFERENCES phones(id) ON DELETE CASCADE,
    e164 TEXT,
    client_id BIGINT NOT NULL,
    client_name TEXT NOT NULL,
    contact_name TEXT NOT NULL,
    manager_id BIGINT,
    PRIMARY KEY (rev, contact_id, raw, phone_id)
);
CREATE INDEX caller_numbers_phone ON caller_numbers(phone_id);
CREATE INDEX caller_numbers_client ON caller_numbers(client_id);

INSERT INTO caller_numbers (rev, contact_id, raw, phone_id, e164, client_id, client_name,
                            contact_name, manager_id)
SELECT p.rev, p.contact_id, p.raw, p.id, p.e164, cl.id, cl.name, c.name, cl.manager_id
FROM phones p JOIN contacts c ON c.id = p.contact_id JOIN clients cl ON cl.id = c.client_id;
