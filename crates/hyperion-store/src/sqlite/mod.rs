//! The SQLite backend: one file, many processes.
//!
//! This module holds [`SqliteStore`] itself (opening, locking, transactions, error
//! classification) and its [`Store`] implementation; `schema` checks, initializes and migrates
//! the file, and `rows` turns table rows into trials and back.

mod rows;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyperion_core::{
    Change, Decision, Distribution, LoggedChange, ParamValue, Params, Proposal, StudyId, StudySpec,
    Timestamp, Trial, TrialNumber, TrialState,
};
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};

use crate::{
    Created, NewTrial, Store, StoreError, StudyRecord, check_log_only, check_param, check_report,
    check_values, lease_end, retry_depth, rules, spec_difference, stale_error,
};
use rows::{
    TRIAL_COLUMNS, add_intermediate, append, from_json, insert_trial, load_trial, parse_spec,
    require_running, sql, state_columns, state_name, state_of, to_json, trial_from_row,
};

/// How long one operation waits for another process's write lock before giving up.
const LOCK_PATIENCE: Duration = Duration::from_secs(120);

/// A store in an SQLite file (WAL mode), shared safely by threads and processes.
///
/// Every write is a `BEGIN IMMEDIATE` transaction, so two writers never interleave and a
/// read-modify-write never fails half way; a busy database is waited for (busy timeout, then
/// retries with backoff), never reported as "database is locked". `synchronous = NORMAL`: a
/// killed process loses nothing it committed; a power cut may lose the last commits but never
/// corrupts the file.
///
/// On open, a new file is initialized, an older schema is migrated forward, and a file that
/// is not a Hyperion store, is corrupted, or comes from a newer Hyperion is refused with an
/// error and left untouched.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    conn: Connection,
    /// Specs never change after creation; parsed once per study.
    specs: HashMap<StudyId, Arc<StudySpec>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, creating missing parent directories.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let fail = |reason: String| StoreError::Open {
            path: path.clone(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(&path).map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::CannotOpen) => {
                fail("cannot create or open the file (is its directory writable?)".into())
            }
            _ => fail(e.to_string()),
        })?;
        conn.busy_timeout(LOCK_PATIENCE)
            .map_err(|e| fail(e.to_string()))?;
        // Plans must not depend on bound values: with them, SQLite re-prepares a statement
        // each time its parameters change (11% of a store's ask+tell cycle, measured).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .map_err(|e| fail(e.to_string()))?;
        let store = SqliteStore {
            path,
            inner: Mutex::new(Inner {
                conn,
                specs: HashMap::new(),
            }),
        };
        store.prepare()?;
        Ok(store)
    }

    /// Opens an existing store to read it where nothing can be written (a read-only
    /// directory or mount): as it is, without migrating it or taking locks, so it must not
    /// change while open. Its schema must be this release's.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let fail = |reason: String| StoreError::Open {
            path: path.clone(),
            reason,
        };
        let absolute = std::path::absolute(&path).map_err(|e| fail(e.to_string()))?;
        let uri = format!("file:{}?immutable=1", absolute.display());
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(uri, flags).map_err(|e| fail(e.to_string()))?;
        let (app_id, version, _) = schema::probe(&conn).map_err(|e| fail(e.to_string()))?;
        if app_id != schema::APPLICATION_ID {
            return Err(StoreError::NotAStore { path });
        }
        let current = schema::MIGRATIONS.len() as i32;
        if version != current {
            return Err(fail(format!(
                "its schema is version {version}, this release reads {current}; it can only be \
                 migrated where it can be written"
            )));
        }
        Ok(SqliteStore {
            path,
            inner: Mutex::new(Inner {
                conn,
                specs: HashMap::new(),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn classify(&self, e: rusqlite::Error) -> StoreError {
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
                StoreError::Corrupt {
                    path: self.path.clone(),
                    reason: e.to_string(),
                }
            }
            Some(ErrorCode::ReadOnly) => StoreError::Open {
                path: self.path.clone(),
                reason: "the file or its directory is read-only".into(),
            },
            _ => StoreError::Backend {
                context: self.path.display().to_string(),
                source: Box::new(e),
            },
        }
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction with the study's spec at hand.
    fn write<T>(
        &self,
        study: StudyId,
        f: impl FnOnce(&Transaction<'_>, &StudySpec) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut inner = self.lock();
        let spec = self.spec(&mut inner, study)?;
        let tx = begin(&mut inner.conn).map_err(|e| self.classify(e))?;
        let out = f(&tx, &spec).map_err(|e| self.place(e))?;
        tx.commit().map_err(|e| self.classify(e))?;
        Ok(out)
    }

    /// Names this file in an SQLite error raised by a query.
    fn place(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Backend { source, context } => match source.downcast::<rusqlite::Error>() {
                Ok(e) => self.classify(*e),
                Err(source) => StoreError::Backend { context, source },
            },
            other => other,
        }
    }

    fn read<T>(
        &self,
        study: StudyId,
        f: impl FnOnce(&Connection, &StudySpec) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut inner = self.lock();
        let spec = self.spec(&mut inner, study)?;
        f(&inner.conn, &spec).map_err(|e| self.place(e))
    }

    fn spec(&self, inner: &mut Inner, study: StudyId) -> Result<Arc<StudySpec>, StoreError> {
        if let Some(spec) = inner.specs.get(&study) {
            // A study deleted by another process is noticed by the queries that find nothing.
            return Ok(spec.clone());
        }
        let json: Option<String> = inner
            .conn
            .query_row(
                "SELECT spec FROM studies WHERE id = ?1",
                [study.0 as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.classify(e))?;
        let spec = Arc::new(parse_spec(
            &json.ok_or(StoreError::StudyIdNotFound(study))?,
        )?);
        inner.specs.insert(study, spec.clone());
        Ok(spec)
    }
}

/// `BEGIN IMMEDIATE`, retried with backoff should another process hold the lock past the busy
/// timeout.
fn begin(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    let mut wait = Duration::from_millis(5);
    let mut waited = Duration::ZERO;
    loop {
        match Transaction::new_unchecked(conn, TransactionBehavior::Immediate) {
            Err(e) if is_busy(&e) && waited < LOCK_PATIENCE => {
                std::thread::sleep(wait);
                waited += wait;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            result => return result,
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn create_study(&self, spec: &StudySpec) -> Result<StudyRecord, StoreError> {
        spec.validate()?;
        let mut inner = self.lock();
        let tx = begin(&mut inner.conn).map_err(|e| self.classify(e))?;
        let existing: Option<(i64, String, i64)> = tx
            .query_row(
                "SELECT id, spec, created_at FROM studies WHERE name = ?1",
                [&spec.name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(sql)?;
        let record = match existing {
            Some((id, json, created_at)) => {
                let stored = parse_spec(&json)?;
                if let Some(what) = spec_difference(&stored, spec) {
                    return Err(StoreError::SpecMismatch {
                        name: spec.name.clone(),
                        what,
                    });
                }
                StudyRecord {
                    id: StudyId(id as u64),
                    spec: stored,
                    created_at: Timestamp(created_at as u64),
                }
            }
            None => {
                let created_at = Timestamp::now();
                tx.execute(
                    "INSERT INTO studies (name, spec, created_at) VALUES (?1, ?2, ?3)",
                    params![spec.name, to_json(spec), created_at.0 as i64],
                )
                .map_err(sql)?;
                StudyRecord {
                    id: StudyId(tx.last_insert_rowid() as u64),
                    spec: spec.clone(),
                    created_at,
                }
            }
        };
        tx.commit().map_err(|e| self.classify(e))?;
        Ok(record)
    }

    fn study(&self, name: &str) -> Result<StudyRecord, StoreError> {
        let inner = self.lock();
        let row: Option<(i64, String, i64)> = inner
            .conn
            .query_row(
                "SELECT id, spec, created_at FROM studies WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.classify(e))?;
        let (id, json, created_at) = row.ok_or_else(|| StoreError::StudyNotFound {
            name: name.to_owned(),
        })?;
        Ok(StudyRecord {
            id: StudyId(id as u64),
            spec: parse_spec(&json)?,
            created_at: Timestamp(created_at as u64),
        })
    }

    fn studies(&self) -> Result<Vec<StudyRecord>, StoreError> {
        let inner = self.lock();
        let mut s = inner
            .conn
            .prepare("SELECT id, spec, created_at FROM studies ORDER BY name")
            .map_err(sql)?;
        let rows = s
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(sql)?;
        rows.map(|row| {
            let (id, json, created_at) = row.map_err(sql)?;
            Ok(StudyRecord {
                id: StudyId(id as u64),
                spec: parse_spec(&json)?,
                created_at: Timestamp(created_at as u64),
            })
        })
        .collect()
    }

    fn delete_study(&self, name: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let tx = begin(&mut inner.conn).map_err(|e| self.classify(e))?;
        let id: i64 = tx
            .query_row("SELECT id FROM studies WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql)?
            .ok_or_else(|| StoreError::StudyNotFound {
                name: name.to_owned(),
            })?;
        for table in [
            "changes",
            "intermediate",
            "user_attrs",
            "registered_params",
            "trials",
        ] {
            tx.execute(&format!("DELETE FROM {table} WHERE study_id = ?1"), [id])
                .map_err(sql)?;
        }
        tx.execute("DELETE FROM studies WHERE id = ?1", [id])
            .map_err(sql)?;
        tx.commit().map_err(|e| self.classify(e))?;
        inner.specs.remove(&StudyId(id as u64));
        Ok(())
    }

    fn create_trial(
        &self,
        study: StudyId,
        new: &NewTrial,
        max_trials: Option<u64>,
        propose: &mut dyn FnMut(TrialNumber) -> Option<Proposal>,
    ) -> Result<Created, StoreError> {
        self.write(study, |tx, _| {
            let (count, retries): (i64, i64) = tx
                .prepare_cached("SELECT n_trials, n_retries FROM studies WHERE id = ?1")
                .and_then(|mut s| s.query_row([study.0 as i64], |r| Ok((r.get(0)?, r.get(1)?))))
                .optional()
                .map_err(sql)?
                .ok_or(StoreError::StudyIdNotFound(study))?;
            if !rules::fits_budget(new, (count - retries) as u64, max_trials) {
                return Ok(Created::LimitReached);
            }
            let Some(proposal) = propose(TrialNumber(count as u64)) else {
                return Ok(Created::Declined);
            };
            let trial = insert_trial(
                tx,
                study,
                TrialNumber(count as u64),
                new,
                Arc::new(proposal.params),
            )?;
            let at = Timestamp::now();
            for (key, value) in proposal.state {
                append(tx, study, at, &Change::SamplerStateSet { key, value })?;
            }
            Ok(Created::Trial(trial))
        })
    }

    fn claim_pending(
        &self,
        study: StudyId,
        lease: Option<Duration>,
    ) -> Result<Option<Trial>, StoreError> {
        self.write(study, |tx, _| {
            let number: Option<i64> = tx
                .prepare_cached(
                    "SELECT number FROM trials WHERE study_id = ?1 AND state = 'pending' ORDER BY number LIMIT 1",
                )
                .and_then(|mut s| s.query_row([study.0 as i64], |r| r.get(0)))
                .optional()
                .map_err(sql)?;
            let Some(number) = number else { return Ok(None) };
            let at = Timestamp::now();
            tx.prepare_cached(
                "UPDATE trials SET state = 'running', started_at = ?3, heartbeat_at = ?4 \
                 WHERE study_id = ?1 AND number = ?2",
            )
            .and_then(|mut s| {
                let until = lease.map(|lease| lease_end(at, lease).0 as i64);
                s.execute(params![study.0 as i64, number, at.0 as i64, until])
            })
            .map_err(sql)?;
            append(tx, study, at, &Change::TrialStarted { number: TrialNumber(number as u64) })?;
            load_trial(tx, study, TrialNumber(number as u64)).map(Some)
        })
    }

    fn set_param(
        &self,
        study: StudyId,
        number: TrialNumber,
        name: &str,
        value: &ParamValue,
        distribution: &Distribution,
    ) -> Result<(), StoreError> {
        self.write(study, |tx, spec| {
            require_running(tx, study, number)?;
            let json: String = tx
                .prepare_cached("SELECT params FROM trials WHERE study_id = ?1 AND number = ?2")
                .and_then(|mut s| s.query_row(params![study.0 as i64, number.0 as i64], |r| r.get(0)))
                .map_err(sql)?;
            let mut params: Params = from_json("params", &json)?;
            let registered: Option<String> = tx
                .prepare_cached("SELECT distribution FROM registered_params WHERE study_id = ?1 AND name = ?2")
                .and_then(|mut s| s.query_row(params![study.0 as i64, name], |r| r.get(0)))
                .optional()
                .map_err(sql)?;
            let registered = match registered {
                Some(json) => Some(from_json::<Distribution>("distribution", &json)?),
                None => spec.space.get(name).map(|p| p.distribution.clone()),
            };
            let new = check_param(number, name, value, distribution, params.contains_key(name), registered.as_ref())?;
            let at = Timestamp::now();
            if new {
                tx.prepare_cached("INSERT INTO registered_params (study_id, name, distribution) VALUES (?1, ?2, ?3)")
                    .and_then(|mut s| s.execute(params![study.0 as i64, name, to_json(distribution)]))
                    .map_err(sql)?;
                let change = Change::ParamRegistered { name: name.to_owned(), distribution: distribution.clone() };
                append(tx, study, at, &change)?;
            }
            params.insert(name.to_owned(), value.clone());
            tx.prepare_cached("UPDATE trials SET params = ?3 WHERE study_id = ?1 AND number = ?2")
                .and_then(|mut s| s.execute(params![study.0 as i64, number.0 as i64, to_json(&params)]))
                .map_err(sql)?;
            append(tx, study, at, &Change::ParamSet { number, name: name.to_owned(), value: value.clone() })
        })
    }

    fn heartbeat(
        &self,
        study: StudyId,
        numbers: &[TrialNumber],
        lease: Duration,
    ) -> Result<(), StoreError> {
        self.write(study, |tx, _| {
            let until = lease_end(Timestamp::now(), lease).0 as i64;
            let mut s = tx
                .prepare_cached(
                    "UPDATE trials SET heartbeat_at = ?3 WHERE study_id = ?1 AND number = ?2 AND state = 'running'",
                )
                .map_err(sql)?;
            let mut renewed = 0;
            for &n in numbers {
                renewed += s.execute(params![study.0 as i64, n.0 as i64, until]).map_err(sql)?;
            }
            // Trials may have finished meanwhile; but if the study is gone, say so.
            if renewed < numbers.len() {
                let exists: Option<i64> = tx
                    .query_row("SELECT id FROM studies WHERE id = ?1", [study.0 as i64], |r| r.get(0))
                    .optional()
                    .map_err(sql)?;
                exists.ok_or(StoreError::StudyIdNotFound(study))?;
            }
            Ok(())
        })
    }

    fn fail_stale(&self, study: StudyId, max_retries: u32) -> Result<Vec<TrialNumber>, StoreError> {
        self.write(study, |tx, _| {
            let now = Timestamp::now().0 as i64;
            let stale: Vec<(TrialNumber, i64)> = tx
                .prepare_cached(
                    "SELECT number, heartbeat_at FROM trials WHERE study_id = ?1 AND state = 'running' \
                     AND heartbeat_at < ?2 ORDER BY number",
                )
                .and_then(|mut s| {
                    s.query_map(params![study.0 as i64, now], |r| Ok((TrialNumber(r.get::<_, i64>(0)? as u64), r.get(1)?)))?
                        .collect()
                })
                .map_err(sql)?;
            for &(number, until) in &stale {
                let error = stale_error(Timestamp(until as u64));
                let at = Timestamp::now();
                tx.prepare_cached(
                    "UPDATE trials SET state = 'failed', message = ?3, finished_at = ?4 WHERE study_id = ?1 AND number = ?2",
                )
                .and_then(|mut s| s.execute(params![study.0 as i64, number.0 as i64, error, at.0 as i64]))
                .map_err(sql)?;
                let state = TrialState::Failed { error: error.clone() };
                append(tx, study, at, &Change::TrialFinished { number, state, values: None })?;
                let trial = load_trial(tx, study, number)?;
                let mut retry_of = tx
                    .prepare_cached("SELECT retry_of FROM trials WHERE study_id = ?1 AND number = ?2")
                    .map_err(sql)?;
                let depth = retry_depth(number, |n| {
                    retry_of.query_row(params![study.0 as i64, n.0 as i64], |r| r.get::<_, Option<i64>>(0)).ok().flatten().map(|p| TrialNumber(p as u64))
                });
                if let Some(new) = rules::retry(&trial, depth, max_retries) {
                    let next: i64 = tx
                        .query_row("SELECT n_trials FROM studies WHERE id = ?1", [study.0 as i64], |r| r.get(0))
                        .map_err(sql)?;
                    insert_trial(tx, study, TrialNumber(next as u64), &new, trial.params.clone())?;
                }
            }
            Ok(stale.into_iter().map(|(n, _)| n).collect())
        })
    }

    fn log(&self, study: StudyId, change: &Change) -> Result<(), StoreError> {
        check_log_only(change)?;
        self.write(study, |tx, _| {
            // Kept with the trial too, for who inspects it from elsewhere.
            let kept = match change {
                Change::TrialLaunched { number, launch } => Some((
                    "UPDATE trials SET launch = ?3 WHERE study_id = ?1 AND number = ?2",
                    number,
                    to_json(launch),
                )),
                Change::StagesRecorded { number, stages } => Some((
                    "UPDATE trials SET stages = ?3 WHERE study_id = ?1 AND number = ?2",
                    number,
                    to_json(stages),
                )),
                _ => None,
            };
            if let Some((update, number, value)) = kept {
                tx.prepare_cached(update)
                    .and_then(|mut s| s.execute(params![study.0 as i64, number.0 as i64, value]))
                    .map_err(sql)?;
            }
            append(tx, study, Timestamp::now(), change)
        })
    }

    fn decisions(&self, study: StudyId) -> Result<Vec<Decision>, StoreError> {
        self.read(study, |conn, _| {
            let mut s = conn
                .prepare_cached(
                    "SELECT change FROM changes WHERE study_id = ?1 AND kind = 'decision_recorded' ORDER BY seq",
                )
                .map_err(sql)?;
            let rows = s.query_map([study.0 as i64], |r| r.get::<_, String>(0)).map_err(sql)?;
            rows.map(|json| match from_json("change", &json.map_err(sql)?)? {
                Change::DecisionRecorded(d) => Ok(d),
                other => Err(StoreError::Inconsistent(format!("a {} logged as a decision", other.kind()))),
            })
            .collect()
        })
    }

    fn report(
        &self,
        study: StudyId,
        number: TrialNumber,
        step: u64,
        values: &[f64],
    ) -> Result<(), StoreError> {
        self.write(study, |tx, spec| {
            require_running(tx, study, number)?;
            check_report(number, step, values, spec.objectives.len())?;
            let (value, others) = (values[0], values[1..].to_vec());
            let others_json = (!others.is_empty()).then(|| to_json(&others));
            tx.prepare_cached(
                "INSERT OR REPLACE INTO intermediate (study_id, number, step, value, others) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![study.0 as i64, number.0 as i64, step as i64, value, others_json]))
            .map_err(sql)?;
            append(tx, study, Timestamp::now(), &Change::MetricReported { number, step, value, others })
        })
    }

    fn set_user_attr(
        &self,
        study: StudyId,
        number: TrialNumber,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.write(study, |tx, _| {
            state_of(tx, study, number)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO user_attrs (study_id, number, key, value) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![study.0 as i64, number.0 as i64, key, to_json(value)]))
            .map_err(sql)?;
            let change = Change::UserAttrSet { number, key: key.to_owned(), value: value.clone() };
            append(tx, study, Timestamp::now(), &change)
        })
    }

    fn keep_metrics(
        &self,
        study: StudyId,
        number: TrialNumber,
        metrics: &std::collections::BTreeMap<String, f64>,
    ) -> Result<(), StoreError> {
        let metrics = &rules::finite(metrics);
        self.write(study, |tx, _| {
            state_of(tx, study, number)?;
            tx.prepare_cached("UPDATE trials SET metrics = ?3 WHERE study_id = ?1 AND number = ?2")
                .and_then(|mut s| {
                    s.execute(params![study.0 as i64, number.0 as i64, to_json(metrics)])
                })
                .map_err(sql)?;
            let change = Change::MetricsKept {
                number,
                metrics: metrics.clone(),
            };
            append(tx, study, Timestamp::now(), &change)
        })
    }

    fn finish_trial(
        &self,
        study: StudyId,
        number: TrialNumber,
        state: TrialState,
        values: Option<Vec<f64>>,
    ) -> Result<Trial, StoreError> {
        self.write(study, |tx, spec| {
            rules::check_unfinished(number, state_name(&state_of(tx, study, number)?))?;
            check_values(number, &state, values.as_deref(), spec.objectives.len())?;
            let at = Timestamp::now();
            let (name, step, message) = state_columns(&state);
            let first = values.as_ref().and_then(|v| v.first().copied());
            tx.prepare_cached(
                "UPDATE trials SET state = ?3, prune_step = ?4, message = ?5, objective_values = ?6, value0 = ?7, \
                 finished_at = ?8 WHERE study_id = ?1 AND number = ?2",
            )
            .and_then(|mut s| {
                s.execute(params![
                    study.0 as i64,
                    number.0 as i64,
                    name,
                    step,
                    message,
                    values.as_ref().map(to_json),
                    first,
                    at.0 as i64
                ])
            })
            .map_err(sql)?;
            append(tx, study, at, &Change::TrialFinished { number, state, values })?;
            load_trial(tx, study, number)
        })
    }

    fn revise_values(
        &self,
        study: StudyId,
        number: TrialNumber,
        values: &[f64],
        version: u32,
    ) -> Result<(), StoreError> {
        self.write(study, |tx, spec| {
            let state = state_of(tx, study, number)?;
            crate::check_revision(number, &state, values, spec.objectives.len())?;
            tx.prepare_cached(
                "UPDATE trials SET objective_values = ?3, value0 = ?4, objective_version = ?5 \
                 WHERE study_id = ?1 AND number = ?2",
            )
            .and_then(|mut s| {
                s.execute(params![
                    study.0 as i64,
                    number.0 as i64,
                    to_json(&values),
                    values.first().copied(),
                    version
                ])
            })
            .map_err(sql)?;
            let change = Change::ValuesRevised {
                number,
                values: values.to_vec(),
                version,
            };
            append(tx, study, Timestamp::now(), &change)
        })
    }

    fn changes_since(&self, study: StudyId, cursor: u64) -> Result<Vec<LoggedChange>, StoreError> {
        self.read(study, |conn, _| {
            let mut s = conn
                .prepare_cached("SELECT seq, at, change FROM changes WHERE study_id = ?1 AND seq > ?2 ORDER BY seq")
                .map_err(sql)?;
            let rows = s
                .query_map(params![study.0 as i64, cursor as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                })
                .map_err(sql)?;
            rows.map(|row| {
                let (seq, at, json) = row.map_err(sql)?;
                Ok(LoggedChange { seq: seq as u64, at: Timestamp(at as u64), change: from_json("change", &json)? })
            })
            .collect()
        })
    }

    fn last_activity(&self, study: StudyId) -> Result<Option<Timestamp>, StoreError> {
        self.read(study, |conn, _| {
            conn.prepare_cached(
                "SELECT at FROM changes WHERE study_id = ?1 ORDER BY seq DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row(params![study.0 as i64], |r| r.get::<_, i64>(0))
                    .optional()
            })
            .map(|at| at.map(|at| Timestamp(at as u64)))
            .map_err(sql)
        })
    }

    fn trial(&self, study: StudyId, number: TrialNumber) -> Result<Trial, StoreError> {
        self.read(study, |conn, _| load_trial(conn, study, number))
    }

    fn trials(&self, study: StudyId) -> Result<Vec<Trial>, StoreError> {
        self.trials_page(study, 0, i64::MAX as u64)
    }

    fn trials_page(
        &self,
        study: StudyId,
        first: u64,
        limit: u64,
    ) -> Result<Vec<Trial>, StoreError> {
        let (lo, hi) = crate::columns::number_range(first, limit);
        self.read(study, |conn, _| {
            let id = study.0 as i64;
            let mut s = conn
                .prepare_cached(&format!(
                    "SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = ?1 AND number >= ?2 AND number < ?3 ORDER BY number"
                ))
                .map_err(sql)?;
            let mut trials = s
                .query_map(params![id, lo, hi], trial_from_row)
                .map_err(sql)?
                .map(|row| row.map_err(sql)?)
                .collect::<Result<Vec<Trial>, StoreError>>()?;
            let mut s = conn
                .prepare_cached(
                    "SELECT number, step, value, others FROM intermediate WHERE study_id = ?1 AND number >= ?2 AND number < ?3",
                )
                .map_err(sql)?;
            let rows = s.query_map(params![id, lo, hi], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, f64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            });
            for row in rows.map_err(sql)? {
                let (number, step, value, others) = row.map_err(sql)?;
                if let Some(t) = trials.get_mut((number - lo) as usize) {
                    add_intermediate(t, step as u64, value, others)?;
                }
            }
            let mut s = conn
                .prepare_cached("SELECT number, key, value FROM user_attrs WHERE study_id = ?1 AND number >= ?2 AND number < ?3")
                .map_err(sql)?;
            let rows = s.query_map(params![id, lo, hi], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            });
            for row in rows.map_err(sql)? {
                let (number, key, value) = row.map_err(sql)?;
                if let Some(t) = trials.get_mut((number - lo) as usize) {
                    t.user_attrs
                        .insert(key, from_json("user attribute", &value)?);
                }
            }
            Ok(trials)
        })
    }

    fn counts(&self, study: StudyId) -> Result<hyperion_core::Counts, StoreError> {
        self.read(study, |conn, _| {
            let mut s = conn
                .prepare_cached(
                    "SELECT state, count(*) FROM trials WHERE study_id = ?1 GROUP BY state",
                )
                .map_err(sql)?;
            let rows = s
                .query_map([study.0 as i64], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .map_err(sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql)?;
            Ok(crate::columns::counts_of(rows))
        })
    }

    fn phases(
        &self,
        study: StudyId,
    ) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        self.read(study, |conn, _| {
            let mut s = conn
                .prepare_cached(
                    "SELECT stages FROM trials WHERE study_id = ?1 AND state = 'running' AND stages IS NOT NULL",
                )
                .map_err(sql)?;
            let rows = s
                .query_map([study.0 as i64], |r| r.get::<_, String>(0))
                .map_err(sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql)?;
            crate::columns::phases_of(rows)
        })
    }

    fn best_trial(&self, study: StudyId) -> Result<Option<Trial>, StoreError> {
        self.read(study, |conn, spec| {
            let [objective] = spec.objectives.as_slice() else { return Ok(None) };
            let pick = match objective.direction {
                hyperion_core::Direction::Minimize => "MIN",
                hyperion_core::Direction::Maximize => "MAX",
            };
            // Two index lookups: the best value, then the earliest trial with it.
            let number: Option<i64> = conn
                .prepare_cached(&format!(
                    "SELECT number FROM trials WHERE study_id = ?1 AND state = 'completed' AND value0 = \
                     (SELECT {pick}(value0) FROM trials WHERE study_id = ?1 AND state = 'completed') \
                     ORDER BY number LIMIT 1"
                ))
                .and_then(|mut s| s.query_row([study.0 as i64], |r| r.get(0)))
                .optional()
                .map_err(sql)?;
            number.map(|n| load_trial(conn, study, TrialNumber(n as u64))).transpose()
        })
    }
}
