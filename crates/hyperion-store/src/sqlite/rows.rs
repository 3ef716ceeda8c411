//! Rows and the types they hold: inserting and loading trials, their state columns, the
//! change log row, and the JSON of stored columns.

use std::sync::Arc;

use hyperion_core::{Change, Params, StudyId, Timestamp, Trial, TrialId, TrialNumber};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::columns::TrialRow;
pub(super) use crate::columns::{from_json, parse_spec, state_columns, state_name, to_json};
use crate::{NewTrial, StoreError};

pub(super) fn sql(e: rusqlite::Error) -> StoreError {
    StoreError::Backend {
        context: "SQLite".into(),
        source: Box::new(e),
    }
}

/// Appends `change` to the study's log with the next sequence number.
pub(super) fn append(
    tx: &Transaction<'_>,
    study: StudyId,
    at: Timestamp,
    change: &Change,
) -> Result<(), StoreError> {
    let seq: i64 = tx
        .prepare_cached(
            "UPDATE studies SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq",
        )
        .and_then(|mut s| s.query_row([study.0 as i64], |r| r.get(0)))
        .optional()
        .map_err(sql)?
        .ok_or(StoreError::StudyIdNotFound(study))?;
    tx.prepare_cached(
        "INSERT INTO changes (study_id, seq, at, kind, change) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| {
        s.execute(params![
            study.0 as i64,
            seq,
            at.0 as i64,
            change.kind(),
            to_json(change)
        ])
    })
    .map_err(sql)?;
    Ok(())
}

/// The state of trial `number`, or `TrialNotFound`.
pub(super) fn state_of(
    conn: &Connection,
    study: StudyId,
    number: TrialNumber,
) -> Result<String, StoreError> {
    conn.prepare_cached("SELECT state FROM trials WHERE study_id = ?1 AND number = ?2")
        .and_then(|mut s| s.query_row(params![study.0 as i64, number.0 as i64], |r| r.get(0)))
        .optional()
        .map_err(sql)?
        .ok_or(StoreError::TrialNotFound { number })
}

pub(super) fn require_running(
    conn: &Connection,
    study: StudyId,
    number: TrialNumber,
) -> Result<(), StoreError> {
    match state_of(conn, study, number)?.as_str() {
        "running" => Ok(()),
        other => Err(StoreError::NotRunning {
            number,
            state: state_name(other),
        }),
    }
}

/// Inserts trial `number` (the study's next) and logs its creation.
pub(super) fn insert_trial(
    tx: &Transaction<'_>,
    study: StudyId,
    number: TrialNumber,
    new: &NewTrial,
    params: Arc<Params>,
) -> Result<Trial, StoreError> {
    let at = Timestamp::now();
    tx.prepare_cached(
        "INSERT INTO trials (study_id, number, state, params, parent, depth, retry_of, created_at, started_at, \
         heartbeat_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut s| {
        s.execute(params![
            study.0 as i64,
            number.0 as i64,
            new.state().name(),
            to_json(&*params),
            new.parent.map(|p| p.0 as i64),
            new.depth,
            new.retry_of.map(|p| p.0 as i64),
            at.0 as i64,
            (!new.pending).then_some(at.0 as i64),
            new.lease_end(at).map(|t| t.0 as i64),
        ])
    })
    .map_err(sql)?;
    let id = TrialId(tx.last_insert_rowid() as u64);
    tx.prepare_cached(
        "UPDATE studies SET n_trials = n_trials + 1, n_retries = n_retries + ?2 WHERE id = ?1",
    )
    .and_then(|mut s| s.execute(params![study.0 as i64, i64::from(new.takes_a_place())]))
    .map_err(sql)?;
    let trial = new.trial(id, number, params, at);
    append(tx, study, at, &crate::created(&trial))?;
    Ok(trial)
}

pub(super) const TRIAL_COLUMNS: &str = "id, number, state, prune_step, message, params, objective_values, parent, depth, \
                                        retry_of, created_at, started_at, finished_at, metrics, launch, stages, objective_version";

pub(super) fn trial_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Trial, StoreError>> {
    let row = TrialRow {
        id: r.get(0)?,
        number: r.get(1)?,
        state: r.get(2)?,
        prune_step: r.get(3)?,
        message: r.get(4)?,
        params: r.get(5)?,
        values: r.get(6)?,
        parent: r.get(7)?,
        depth: r.get(8)?,
        retry_of: r.get(9)?,
        // NOT NULL in the schema.
        created_at: r.get::<_, Option<i64>>(10)?.unwrap_or(0),
        started_at: r.get(11)?,
        finished_at: r.get(12)?,
        metrics: r.get(13)?,
        launch: r.get(14)?,
        stages: r.get(15)?,
        objective_version: r.get(16)?,
    };
    Ok(row.into_trial())
}

/// Adds one row of the `intermediate` table to `trial`.
pub(super) fn add_intermediate(
    trial: &mut Trial,
    step: u64,
    value: f64,
    others: Option<String>,
) -> Result<(), StoreError> {
    trial.intermediate.insert(step, value);
    if let Some(others) = others {
        trial
            .intermediate_others
            .insert(step, from_json("intermediate values", &others)?);
    }
    Ok(())
}

/// Trial `number` with its intermediate values and user attributes.
pub(super) fn load_trial(
    conn: &Connection,
    study: StudyId,
    number: TrialNumber,
) -> Result<Trial, StoreError> {
    let mut trial = conn
        .prepare_cached(&format!(
            "SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = ?1 AND number = ?2"
        ))
        .and_then(|mut s| s.query_row(params![study.0 as i64, number.0 as i64], trial_from_row))
        .optional()
        .map_err(sql)?
        .ok_or(StoreError::TrialNotFound { number })??;
    let key = params![study.0 as i64, number.0 as i64];
    let mut s = conn
        .prepare_cached(
            "SELECT step, value, others FROM intermediate WHERE study_id = ?1 AND number = ?2",
        )
        .map_err(sql)?;
    for row in s
        .query_map(key, |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, f64>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .map_err(sql)?
    {
        let (step, value, others) = row.map_err(sql)?;
        add_intermediate(&mut trial, step, value, others)?;
    }
    let mut s = conn
        .prepare_cached("SELECT key, value FROM user_attrs WHERE study_id = ?1 AND number = ?2")
        .map_err(sql)?;
    for row in s
        .query_map(key, |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(sql)?
    {
        let (k, v) = row.map_err(sql)?;
        trial.user_attrs.insert(k, from_json("user attribute", &v)?);
    }
    Ok(trial)
}
