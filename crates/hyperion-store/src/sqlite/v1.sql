-- Schema version 1. Numbers and sequence numbers are dense per study; `studies` keeps the
-- counters so that no write needs a count over the study.
CREATE TABLE studies (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    spec        TEXT NOT NULL,               -- StudySpec as JSON
    created_at  INTEGER NOT NULL,            -- microseconds since the Unix epoch
    n_trials    INTEGER NOT NULL DEFAULT 0,
    n_retries   INTEGER NOT NULL DEFAULT 0,      -- trials that retry a stale one
    last_seq    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE trials (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    study_id          INTEGER NOT NULL,
    number            INTEGER NOT NULL,
    state             TEXT NOT NULL,         -- pending, running, completed, pruned, failed
    prune_step        INTEGER,
    message           TEXT,                  -- pruning reason or error
    params            TEXT NOT NULL,         -- Params as JSON
    objective_values  TEXT,                  -- JSON array, completed trials only
    value0            REAL,                  -- first objective, for the best-trial index
    parent            INTEGER,
    depth             INTEGER NOT NULL DEFAULT 0,
    retry_of          INTEGER,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    heartbeat_at      INTEGER,
    UNIQUE (study_id, number)
);
CREATE INDEX trials_by_state ON trials (study_id, state, number);
CREATE INDEX trials_best ON trials (study_id, value0, number) WHERE state = 'completed';

CREATE TABLE intermediate (
    study_id  INTEGER NOT NULL,
    number    INTEGER NOT NULL,
    step      INTEGER NOT NULL,
    value     REAL NOT NULL,
    PRIMARY KEY (study_id, number, step)
) WITHOUT ROWID;

CREATE TABLE user_attrs (
    study_id  INTEGER NOT NULL,
    number    INTEGER NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,                 -- JSON
    PRIMARY KEY (study_id, number, key)
) WITHOUT ROWID;

CREATE TABLE registered_params (
    study_id      INTEGER NOT NULL,
    name          TEXT NOT NULL,
    distribution  TEXT NOT NULL,             -- Distribution as JSON
    PRIMARY KEY (study_id, name)
) WITHOUT ROWID;

-- The append-only log: every write above appends its Change here in the same transaction.
CREATE TABLE changes (
    study_id  INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,                 -- the change's tag, e.g. decision_recorded
    change    TEXT NOT NULL,                 -- Change as JSON
    PRIMARY KEY (study_id, seq)
) WITHOUT ROWID;
