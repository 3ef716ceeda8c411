-- Schema version 6: a pipeline trial's stages as far as it got (a JSON array in the pipeline's
-- order: each stage's name, status, whether it was a cache hit, and its key; NULL for a trial
-- that is not a pipeline's).
ALTER TABLE trials ADD COLUMN stages TEXT;
-- Which evaluation a trial's values come from: 0 as it completed, 1, 2, … after each
-- `hyperion reeval`.
ALTER TABLE trials ADD COLUMN objective_version INTEGER NOT NULL DEFAULT 0;
