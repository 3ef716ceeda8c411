-- Schema version 1 of a PostgreSQL store: the tables of an SQLite store at its version 4, in a
-- schema of their own (the search path names it). Numbers and sequence numbers are dense per
-- study; `studies` keeps the counters, and every write locks its study's row first, so writers
-- of one study take turns and writers of different studies do not wait for each other.
CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE studies (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    spec        TEXT NOT NULL,               -- StudySpec as JSON
    created_at  BIGINT NOT NULL,             -- microseconds since the Unix epoch (server clock)
    n_trials    BIGINT NOT NULL DEFAULT 0,
    n_retries   BIGINT NOT NULL DEFAULT 0,   -- trials that retry a stale one
    last_seq    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE trials (
    id                BIGSERIAL PRIMARY KEY,
    study_id          BIGINT NOT NULL,
    number            BIGINT NOT NULL,
    state             TEXT NOT NULL,         -- pending, running, completed, pruned, failed
    prune_step        BIGINT,
    message           TEXT,                  -- pruning reason or error
    params            TEXT NOT NULL,         -- Params as JSON
    objective_values  TEXT,                  -- JSON array, completed trials only
    value0            DOUBLE PRECISION,      -- first objective, for the best-trial index
    parent            BIGINT,
    depth             BIGINT NOT NULL DEFAULT 0,
    retry_of          BIGINT,
    created_at        BIGINT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT,
    heartbeat_at      BIGINT,                -- the end of a running trial's lease
    metrics           TEXT,                  -- the last value of every metric, as JSON
    UNIQUE (study_id, number)
);
CREATE INDEX trials_by_state ON trials (study_id, state, number);
CREATE INDEX trials_best ON trials (study_id, value0, number) WHERE state = 'completed';

CREATE TABLE intermediate (
    study_id  BIGINT NOT NULL,
    number    BIGINT NOT NULL,
    step      BIGINT NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    others    TEXT,                          -- JSON array of objectives 2, 3, …
    PRIMARY KEY (study_id, number, step)
);

CREATE TABLE user_attrs (
    study_id  BIGINT NOT NULL,
    number    BIGINT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,                 -- JSON
    PRIMARY KEY (study_id, number, key)
);

CREATE TABLE registered_params (
    study_id      BIGINT NOT NULL,
    name          TEXT NOT NULL,
    distribution  TEXT NOT NULL,             -- Distribution as JSON
    PRIMARY KEY (study_id, name)
);

-- The append-only log: every write above appends its Change here in the same transaction.
CREATE TABLE changes (
    study_id  BIGINT NOT NULL,
    seq       BIGINT NOT NULL,
    at        BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    change    TEXT NOT NULL,                 -- Change as JSON
    PRIMARY KEY (study_id, seq)
);
CREATE INDEX changes_by_kind ON changes (study_id, kind, seq);
