-- The SMTP password of scheduled reports, kept apart from the settings table like a line's
-- secrets (0011 line_secrets): no query that lists settings can return it. One row at most;
-- an empty password is an explicit "none" (the server changed), over the TOML file's.
CREATE TABLE report_smtp_secret (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    password TEXT NOT NULL
);
