-- A password an admin set for one login only: the user must choose their own next.
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
