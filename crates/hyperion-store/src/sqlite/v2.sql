-- Schema version 2: intermediate values of the other objectives of a multi-objective study
-- (a JSON array of objectives 2, 3, …; NULL when only the first was reported).
ALTER TABLE intermediate ADD COLUMN others TEXT;
