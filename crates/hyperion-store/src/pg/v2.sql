-- Schema version 2 of a PostgreSQL store (as version 5 of an SQLite store): where a trial's
-- process ran (a JSON object: the host, the trial's directory there, and what identifies its
-- process group; NULL until it is launched).
ALTER TABLE trials ADD COLUMN launch TEXT;
