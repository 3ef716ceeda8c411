-- Schema version 4: the last value of every metric a trial reported (a JSON object of
-- numbers; NULL until some were kept).
ALTER TABLE trials ADD COLUMN metrics TEXT;
