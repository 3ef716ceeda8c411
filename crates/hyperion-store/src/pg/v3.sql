-- Schema version 3 of a PostgreSQL store: the first `most` changes of a study after `after` up to
-- `upto`, as three arrays in log order. A volatile function reads with a snapshot of its own,
-- taken when it runs: called by a write once it holds the study's lock, it sees every change
-- logged before (all writers log under that lock), which the write's own snapshot, taken before
-- it waited for the lock, may not. In PL/pgSQL, so that its plan is kept between calls.
CREATE FUNCTION changes_between(study BIGINT, after BIGINT, upto BIGINT, most BIGINT,
                                OUT seqs BIGINT[], OUT ats BIGINT[], OUT texts TEXT[])
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    SELECT coalesce(array_agg(c.seq ORDER BY c.seq), '{}'),
           coalesce(array_agg(c.at ORDER BY c.seq), '{}'),
           coalesce(array_agg(c.change ORDER BY c.seq), '{}')
    INTO seqs, ats, texts
    FROM (SELECT x.seq, x.at, x.change FROM changes AS x
          WHERE x.study_id = study AND x.seq > after AND x.seq <= upto
          ORDER BY x.seq LIMIT most) AS c;
END
$$;
