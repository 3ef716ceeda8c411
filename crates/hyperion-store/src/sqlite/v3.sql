-- Schema version 3: `trials.heartbeat_at` holds the end of a running trial's lease instead of
-- its last heartbeat, so that trials can have leases of different lengths (a run's trials a few
-- heartbeats, a trial handed out by `ask` an hour that `report` renews). Releases before this
-- one failed a trial 20 s (their default grace) after its last heartbeat; ask/tell trials had
-- none and never went stale: they get an hour from now.
UPDATE trials SET heartbeat_at = heartbeat_at + 20000000 WHERE heartbeat_at IS NOT NULL;
UPDATE trials SET heartbeat_at = CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER) + 3600000000
    WHERE state = 'running' AND heartbeat_at IS NULL;
