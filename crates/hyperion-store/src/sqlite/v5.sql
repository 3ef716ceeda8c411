-- Schema version 5: where a trial's process ran (a JSON object: the host, the trial's
-- directory there, and what identifies its process group; NULL until it is launched).
ALTER TABLE trials ADD COLUMN launch TEXT;
