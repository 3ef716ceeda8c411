//! The store keeps every fact of every study: here is a trial, keep it safe.
//!
//! [`Store`] is the contract every backend meets (in memory now; SQLite and PostgreSQL next).
//! Each method is one transaction: it happens entirely or not at all, and concurrent callers —
//! threads now, processes and machines later — see each other's writes in one order. Every
//! write appends a [`Change`](hyperion_core::Change) to the study's log with the next sequence
//! number, in the same transaction, so [`Store::changes_since`] lets a reader follow a study
//! from a cursor and rebuild it exactly.
//!
//! Trial numbers are reserved atomically by [`Store::create_trial`], which asks the caller for
//! the params of the number it reserved while it holds the study: the sampler sees its trial
//! number, the trial budget is met exactly, and no half-created trial can exist.
//!
//! The [`conformance`] module is the test suite every backend runs unchanged
//! ([`conformance_tests!`]).
//!
//! ```
//! use hyperion_core::{Objective, Params, SearchSpace, StudySpec, TrialState};
//! use hyperion_store::{Created, MemoryStore, NewTrial, Store};
//!
//! let store = MemoryStore::new();
//! let study = store.create_study(&StudySpec::new("demo", vec![Objective::minimize("loss")], SearchSpace::default()))?;
//! let Created::Trial(trial) = store.create_trial(study.id, &NewTrial::running(), None, &mut |_number| Some(Params::new().into()))? else {
//!     unreachable!()
//! };
//! store.finish_trial(study.id, trial.number, TrialState::Completed, Some(vec![0.5]))?;
//! assert_eq!(store.best_trial(study.id)?.unwrap().values, Some(vec![0.5]));
//! # Ok::<(), hyperion_store::StoreError>(())
//! ```

mod columns;
pub mod conformance;
mod copy;
mod memory;
pub mod pg;
mod sqlite;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use hyperion_core::{
    Change, Decision, Distribution, LoggedChange, ParamValue, Params, Proposal, StudyId, StudySpec,
    Timestamp, Trial, TrialId, TrialNumber, TrialState,
};

pub use copy::{Copied, copy_study};
pub use memory::MemoryStore;
pub use pg::PgStore;
pub use pg::url::redact;
pub use sqlite::SqliteStore;

/// Where a study lives when nothing else is configured (the `hyperion` command, study files):
/// an SQLite file in the current directory.
pub const DEFAULT_STORAGE: &str = ".hyperion/hyperion.db";

/// A kind of store, chosen by the scheme of a storage URL (as sqlx's `AnyDriver`s are).
#[derive(Clone, Copy, Debug)]
pub struct Backend {
    /// The URL schemes it serves (`sqlite` for `sqlite:PATH`).
    pub schemes: &'static [&'static str],
    /// Opens the store `url` names (the whole URL, scheme included).
    pub open: fn(&str) -> Result<std::sync::Arc<dyn Store>, StoreError>,
}

/// Every backend this build has. A new backend adds one entry.
pub const BACKENDS: &[Backend] = &[
    Backend {
        schemes: &["sqlite"],
        open: |url| match sqlite_path(url)? {
            Some(path) => Ok(std::sync::Arc::new(SqliteStore::open(path)?)),
            None => Ok(std::sync::Arc::new(MemoryStore::new())),
        },
    },
    Backend {
        schemes: &["memory"],
        open: |_| Ok(std::sync::Arc::new(MemoryStore::new())),
    },
    Backend {
        schemes: &["postgresql", "postgres"],
        open: |url| Ok(std::sync::Arc::new(PgStore::open(url)?)),
    },
];

/// Opens the store a storage URL names: `sqlite:PATH`, `sqlite:///relative/path` or
/// `sqlite:////abs/path` (as SQLAlchemy and Optuna read them), or a bare path, for SQLite;
/// `memory` for a new in-memory store; the scheme picks the [`Backend`].
pub fn open(url: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    let scheme = match url.split_once(':') {
        _ if url == "memory" || url == ":memory:" => "memory",
        Some((scheme, _)) if BACKENDS.iter().any(|b| b.schemes.contains(&scheme)) => scheme,
        // A bare path, or an unknown scheme (which `sqlite_path` names in its error).
        _ => "sqlite",
    };
    let backend = BACKENDS
        .iter()
        .find(|b| b.schemes.contains(&scheme))
        .expect("the scheme was found above");
    (backend.open)(url)
}

/// The SQLite file a storage URL names; `None` for `memory` and the other backends' URLs.
pub fn sqlite_path(url: &str) -> Result<Option<PathBuf>, StoreError> {
    let unsupported = |reason: String| StoreError::Open {
        // A mistyped server URL may hold a password.
        path: PathBuf::from(pg::url::redact(url)),
        reason,
    };
    let another_backend = url.split_once(':').is_some_and(|(scheme, _)| {
        scheme != "sqlite" && BACKENDS.iter().any(|b| b.schemes.contains(&scheme))
    });
    if url == "memory" || url == ":memory:" || another_backend {
        return Ok(None);
    }
    let path = match url.split_once(':') {
        // As SQLAlchemy and Optuna read it: `sqlite:///x.db` is `x.db` in the working
        // directory, `sqlite:////abs/x.db` is `/abs/x.db`.
        Some(("sqlite", rest)) => rest.strip_prefix("///").unwrap_or(rest),
        Some((scheme, rest)) if rest.starts_with("//") => {
            return Err(unsupported(format!(
                "unknown storage scheme \"{scheme}\" (this build has {}; a file path is an \
                 SQLite file)",
                BACKENDS
                    .iter()
                    .flat_map(|b| b.schemes)
                    .map(|s| format!("{s}:"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        _ => url,
    };
    if path.is_empty() {
        return Err(unsupported("the storage URL names no file".into()));
    }
    Ok(Some(PathBuf::from(path)))
}

/// A study as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyRecord {
    pub id: StudyId,
    pub spec: StudySpec,
    pub created_at: Timestamp,
}

/// How to create a trial; its params come from the `propose` callback of
/// [`Store::create_trial`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewTrial {
    /// Whether the trial starts now, or waits to be claimed (enqueued).
    pub pending: bool,
    /// How long a running trial lives without a heartbeat: it goes stale when its lease runs
    /// out (see [`Store::fail_stale`]), and each [`Store::heartbeat`] renews it. `None`: it
    /// never goes stale.
    pub lease: Option<Duration>,
    pub parent: Option<TrialNumber>,
    pub depth: u32,
    pub retry_of: Option<TrialNumber>,
}

impl NewTrial {
    /// Whether the trial takes the place of another in the trial budget: a retry, or a PBT
    /// child that continues its population member.
    pub fn takes_a_place(&self) -> bool {
        self.retry_of.is_some() || self.parent.is_some()
    }

    pub fn running() -> Self {
        NewTrial::default()
    }
    pub fn pending() -> Self {
        NewTrial {
            pending: true,
            ..NewTrial::default()
        }
    }

    /// The state the trial starts in.
    pub fn state(&self) -> TrialState {
        if self.pending {
            TrialState::Pending
        } else {
            TrialState::Running
        }
    }

    /// The end of a running trial's first lease, when it starts at `at`.
    pub fn lease_end(&self, at: Timestamp) -> Option<Timestamp> {
        self.lease
            .filter(|_| !self.pending)
            .map(|lease| lease_end(at, lease))
    }

    /// The trial as a store creates it: with the id, number and time the store gives it.
    pub fn trial(
        &self,
        id: TrialId,
        number: TrialNumber,
        params: Arc<Params>,
        at: Timestamp,
    ) -> Trial {
        Trial {
            id,
            number,
            state: self.state(),
            params,
            values: None,
            intermediate: Default::default(),
            intermediate_others: Default::default(),
            user_attrs: Default::default(),
            metrics: Default::default(),
            parent: self.parent,
            depth: self.depth,
            retry_of: self.retry_of,
            created_at: at,
            started_at: (!self.pending).then_some(at),
            finished_at: None,
            launch: None,
            stages: Vec::new(),
            objective_version: 0,
        }
    }
}

/// The change that logs a new trial's creation.
pub fn created(trial: &Trial) -> Change {
    Change::TrialCreated {
        id: trial.id,
        number: trial.number,
        state: trial.state.clone(),
        params: trial.params.clone(),
        parent: trial.parent,
        depth: trial.depth,
        retry_of: trial.retry_of,
    }
}

/// How a trial ends, as [`Store::finish_trial`] takes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Finish {
    pub number: TrialNumber,
    pub state: TrialState,
    pub values: Option<Vec<f64>>,
}

/// What [`Store::finish_and_create`] did: the finished trial, the creation, and every change
/// of the study after the caller's cursor up to these two (at least).
#[derive(Clone, Debug, PartialEq)]
pub struct Succession {
    pub finished: Trial,
    pub created: Created,
    pub changes: Vec<LoggedChange>,
}

/// What [`Store::create_trial`] did.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // Returned once per trial, never stored.
pub enum Created {
    Trial(Trial),
    /// The study already has `max_trials` trials; nothing was created.
    LimitReached,
    /// `propose` returned `None`; nothing was created and no number was used.
    Declined,
}

/// The store contract. Every method is atomic; see the crate docs.
pub trait Store: Send + Sync + Debug {
    /// Where the store is, for messages: a file's path, a server's URL without its password.
    fn location(&self) -> String {
        "the store".into()
    }

    /// Creates a study, or returns the existing study of that name if its spec is the same.
    /// A different spec under an existing name is [`StoreError::SpecMismatch`].
    fn create_study(&self, spec: &StudySpec) -> Result<StudyRecord, StoreError>;

    /// The study called `name`.
    fn study(&self, name: &str) -> Result<StudyRecord, StoreError>;

    /// Every study, by name.
    fn studies(&self) -> Result<Vec<StudyRecord>, StoreError>;

    /// Deletes a study with its trials and log.
    fn delete_study(&self, name: &str) -> Result<(), StoreError>;

    /// Reserves the study's next trial number `n` (0, 1, 2, …) and creates the trial with the
    /// params `propose(n)` returns, and appends the sampler state it returns with them. Nothing is created when the study already has `max_trials`
    /// trials (in any state; a retry takes the place of the trial it retries, see
    /// [`Store::fail_stale`], and a trial with a parent the place of the member it continues,
    /// see [`NewTrial::takes_a_place`]: such a trial is
    /// never refused) or when `propose` returns `None`. `propose` may run inside the
    /// transaction: keep it short, and do not call the store from it. It may be asked about
    /// more numbers than the one the trial gets (a server's store proposes for the numbers
    /// it expects before it locks the study), but about each number once, and the trial gets
    /// the proposal made for its number.
    fn create_trial(
        &self,
        study: StudyId,
        new: &NewTrial,
        max_trials: Option<u64>,
        propose: &mut dyn FnMut(TrialNumber) -> Option<Proposal>,
    ) -> Result<Created, StoreError>;

    /// Moves the lowest-numbered pending trial to running and returns it; `None` if there is
    /// none. Two callers never claim the same trial.
    /// `lease` as in [`NewTrial::lease`].
    fn claim_pending(
        &self,
        study: StudyId,
        lease: Option<Duration>,
    ) -> Result<Option<Trial>, StoreError>;

    /// Sets a define-by-run parameter of a running trial. The first use of `name` in the study
    /// registers `distribution` for it; a later use with another distribution is
    /// [`StoreError::Param`] and changes nothing.
    fn set_param(
        &self,
        study: StudyId,
        number: TrialNumber,
        name: &str,
        value: &ParamValue,
        distribution: &Distribution,
    ) -> Result<(), StoreError>;

    /// Renews the leases of running trials for `lease` from now (their worker's heartbeat), on
    /// the store's clock. Not logged: a heartbeat is not a fact of the study.
    fn heartbeat(
        &self,
        study: StudyId,
        numbers: &[TrialNumber],
        lease: Duration,
    ) -> Result<(), StoreError>;

    /// Settles trials whose worker died: each running trial whose lease ran out becomes failed
    /// ([`STALE`]…) and, unless it is already the `max_retries`-th retry of its original, is
    /// retried as a new pending trial with the same params, lineage and `retry_of` set to it.
    /// Returns the numbers of the trials it failed.
    fn fail_stale(&self, study: StudyId, max_retries: u32) -> Result<Vec<TrialNumber>, StoreError>;

    /// Appends a change that touches no trial ([`Change::is_log_only`]: a decision, sampler
    /// state, settings, a stop request) to the study's log. Any other change is
    /// [`StoreError::Inconsistent`] and nothing is written.
    fn log(&self, study: StudyId, change: &Change) -> Result<(), StoreError>;

    /// Appends a policy's decision and its rationale to the decision log.
    fn record_decision(&self, study: StudyId, decision: &Decision) -> Result<(), StoreError> {
        self.log(study, &Change::DecisionRecorded(decision.clone()))
    }

    /// The decision log, oldest first.
    fn decisions(&self, study: StudyId) -> Result<Vec<Decision>, StoreError>;

    /// Persists a piece of sampler state (readable from the study view as it is replayed).
    fn set_sampler_state(
        &self,
        study: StudyId,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let change = Change::SamplerStateSet {
            key: key.to_owned(),
            value: value.clone(),
        };
        self.log(study, &change)
    }

    /// Records the intermediate values of a running trial at `step`: the first objective's, or
    /// one per objective (finite); a repeated step replaces them.
    fn report(
        &self,
        study: StudyId,
        number: TrialNumber,
        step: u64,
        values: &[f64],
    ) -> Result<(), StoreError>;

    fn set_user_attr(
        &self,
        study: StudyId,
        number: TrialNumber,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError>;

    /// Keeps the last values of every metric trial `number` reported (replacing those kept);
    /// non-finite values are left out ([`rules::finite`]).
    fn keep_metrics(
        &self,
        study: StudyId,
        number: TrialNumber,
        metrics: &std::collections::BTreeMap<String, f64>,
    ) -> Result<(), StoreError>;

    /// Moves a running (or pending) trial to a final state. `Completed` needs `values`, one
    /// finite value per objective; the other states take `None`. A trial already finished is
    /// [`StoreError::NotRunning`] and keeps its first result.
    fn finish_trial(
        &self,
        study: StudyId,
        number: TrialNumber,
        state: TrialState,
        values: Option<Vec<f64>>,
    ) -> Result<Trial, StoreError>;

    /// Replaces the values of completed trial `number` with a re-evaluation's (one finite
    /// value per objective), as objective version `version`; the best trial follows. Any
    /// other state is [`StoreError::InvalidValues`] and changes nothing.
    fn revise_values(
        &self,
        study: StudyId,
        number: TrialNumber,
        values: &[f64],
        version: u32,
    ) -> Result<(), StoreError>;

    /// [`Store::finish_trial`] of `finish`, then [`Store::create_trial`] of `new`, then
    /// [`Store::changes_since`] `cursor`: what a worker does when a trial ends and it starts
    /// the next. A store that can does it all in one transaction and one round trip, with one
    /// commit under the study's lock instead of two. When the finish fails, its error is
    /// returned and nothing is created.
    fn finish_and_create(
        &self,
        study: StudyId,
        finish: Finish,
        new: &NewTrial,
        max_trials: Option<u64>,
        cursor: u64,
        propose: &mut dyn FnMut(TrialNumber) -> Option<Proposal>,
    ) -> Result<Succession, StoreError> {
        let finished = self.finish_trial(study, finish.number, finish.state, finish.values)?;
        let created = self.create_trial(study, new, max_trials, propose)?;
        let changes = self.changes_since(study, cursor)?;
        Ok(Succession {
            finished,
            created,
            changes,
        })
    }

    /// The study's logged changes with a sequence number above `cursor`, in order.
    fn changes_since(&self, study: StudyId, cursor: u64) -> Result<Vec<LoggedChange>, StoreError>;

    /// When the study's last change was logged (its last activity); `None` for an empty log.
    fn last_activity(&self, study: StudyId) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.changes_since(study, 0)?.last().map(|c| c.at))
    }

    fn trial(&self, study: StudyId, number: TrialNumber) -> Result<Trial, StoreError>;

    /// All trials of the study, by number.
    fn trials(&self, study: StudyId) -> Result<Vec<Trial>, StoreError>;

    /// The best completed trial of a single-objective study (the earliest among equals).
    fn best_trial(&self, study: StudyId) -> Result<Option<Trial>, StoreError>;

    /// How many trials the study has in each state, without reading them.
    fn counts(&self, study: StudyId) -> Result<hyperion_core::Counts, StoreError> {
        let mut counts = hyperion_core::Counts::default();
        for trial in self.trials(study)? {
            counts.add(&trial.state);
        }
        Ok(counts)
    }

    /// How many running pipeline trials are at each lifecycle state (`IN_TRAINING`, …; see
    /// [`hyperion_core::lifecycle`]), reading the running trials' stages only.
    fn phases(&self, study: StudyId) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut phases = BTreeMap::new();
        for trial in self.trials(study)? {
            if let Some(phase) = trial.phase() {
                *phases.entry(phase).or_default() += 1;
            }
        }
        Ok(phases)
    }

    /// Trials `first`, `first + 1`, … up to `limit` of them (numbers are dense: a page of the
    /// listing, read without reading the rest).
    fn trials_page(
        &self,
        study: StudyId,
        first: u64,
        limit: u64,
    ) -> Result<Vec<Trial>, StoreError> {
        let trials = self.trials(study)?;
        let first = (first as usize).min(trials.len());
        let end = first.saturating_add(limit as usize).min(trials.len());
        Ok(trials[first..end].to_vec())
    }

    /// Calls `wake` soon after a write to study `study` (by any process), until the returned
    /// guard is dropped, so that a run need not wait for its heartbeat to see other runs'
    /// work. `None`: this backend cannot tell.
    fn watch(
        &self,
        _study: StudyId,
        _wake: Box<dyn Fn() + Send>,
    ) -> Result<Option<Watch>, StoreError> {
        Ok(None)
    }
}

/// Keeps a [`Store::watch`] going while it lives.
pub type Watch = Box<dyn std::any::Any + Send>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("study \"{name}\" not found")]
    StudyNotFound { name: String },
    #[error("study {0:?} not found (deleted?)")]
    StudyIdNotFound(StudyId),
    #[error("study \"{name}\" already exists with {what}; use another study name")]
    SpecMismatch { name: String, what: String },
    #[error(
        "study \"{name}\" already exists there; copy it under another name (--as NAME) or delete that one first"
    )]
    StudyExists { name: String },
    #[error("trial {number} not found")]
    TrialNotFound { number: TrialNumber },
    #[error("trial {number} is {state}, not running")]
    NotRunning {
        number: TrialNumber,
        state: &'static str,
    },
    #[error("trial {number}: {reason}")]
    InvalidValues { number: TrialNumber, reason: String },
    #[error(transparent)]
    Param(#[from] hyperion_core::Error),
    #[error("cannot open the store {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    #[error("{} is an SQLite database of another program, not a Hyperion store; it was left untouched", path.display())]
    NotAStore { path: PathBuf },
    #[error("{} is not a readable SQLite database (corrupted?): {reason}; it was left untouched", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{} was written by a newer Hyperion (schema version {found}; this one reads up to {supported}); \
         upgrade Hyperion to open it. It was left untouched",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i32,
        supported: i32,
    },
    /// A database server refused the store or could not be reached (`url` without its
    /// password).
    #[error("cannot use the store {url}: {reason}")]
    Server { url: String, reason: String },
    /// An error from the database engine (its `source`), and where.
    #[error("store error in {context}")]
    Backend {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A bug in a backend, or a corrupted store.
    #[error("store inconsistency (a bug): {0}")]
    Inconsistent(String),
}

/// The study rules every backend applies inside its own transactions, so that no backend
/// writes them again: backends provide the atomic reads and writes, these decide.
pub mod rules {
    use super::*;

    /// Whether a new trial fits the trial budget when `used` places are taken: a retry or a
    /// PBT child takes the place of the trial it carries on, so it always fits.
    pub fn fits_budget(new: &NewTrial, used: u64, max_trials: Option<u64>) -> bool {
        new.takes_a_place() || max_trials.is_none_or(|max| used < max)
    }

    /// The pending retry of stale `trial`, which is the `depth`-th retry of its original;
    /// `None` once it is the `max_retries`-th. Same params and lineage, `retry_of` set.
    pub fn retry(trial: &Trial, depth: u32, max_retries: u32) -> Option<NewTrial> {
        (depth < max_retries).then(|| NewTrial {
            pending: true,
            parent: trial.parent,
            depth: trial.depth,
            retry_of: Some(trial.number),
            ..NewTrial::default()
        })
    }

    /// The metrics a store keeps: the finite ones (JSON has no NaN; a trial's NaN objective
    /// is in its state's error).
    pub fn finite(
        metrics: &std::collections::BTreeMap<String, f64>,
    ) -> std::collections::BTreeMap<String, f64> {
        metrics
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// A trial finishes once: only a pending or running trial can; a finished one keeps its
    /// first result ([`StoreError::NotRunning`]).
    pub fn check_unfinished(number: TrialNumber, state: &'static str) -> Result<(), StoreError> {
        match state {
            "pending" | "running" => Ok(()),
            state => Err(StoreError::NotRunning { number, state }),
        }
    }
}

/// `1 objective`, `2 objectives`.
fn count(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// Checks intermediate `values` at `step`: the first objective's, or one per objective, finite.
pub fn check_report(
    number: TrialNumber,
    step: u64,
    values: &[f64],
    objectives: usize,
) -> Result<(), StoreError> {
    let invalid = |reason: String| Err(StoreError::InvalidValues { number, reason });
    if values.len() != 1 && values.len() != objectives {
        return invalid(format!(
            "{} at step {step} for {} (give the first objective's, or one per objective)",
            count(values.len(), "intermediate value"),
            count(objectives, "objective")
        ));
    }
    match values.iter().find(|v| !v.is_finite()) {
        Some(v) => invalid(format!(
            "intermediate value {v} at step {step} is not a finite number"
        )),
        None => Ok(()),
    }
}

/// Checks `values` for completing a trial of a study with `objectives` objectives.
/// A revision's values: the trial is completed, and they are one finite value per objective.
pub fn check_revision(
    number: TrialNumber,
    state: &str,
    values: &[f64],
    objectives: usize,
) -> Result<(), StoreError> {
    if state != "completed" {
        return Err(StoreError::InvalidValues {
            number,
            reason: format!("it is {state}: only a completed trial is evaluated again"),
        });
    }
    check_values(number, &TrialState::Completed, Some(values), objectives)
}

pub fn check_values(
    number: TrialNumber,
    state: &TrialState,
    values: Option<&[f64]>,
    objectives: usize,
) -> Result<(), StoreError> {
    let invalid = |reason: String| Err(StoreError::InvalidValues { number, reason });
    match (state, values) {
        (TrialState::Pending | TrialState::Running, _) => {
            invalid(format!("cannot finish as {}", state.name()))
        }
        (TrialState::Completed, None) => invalid("completed without values".into()),
        (TrialState::Completed, Some(v)) if v.len() != objectives => invalid(format!(
            "{} for {}",
            count(v.len(), "value"),
            count(objectives, "objective")
        )),
        (TrialState::Completed, Some(v)) => match v.iter().position(|x| !x.is_finite()) {
            Some(i) => invalid(format!("objective {i} is {}, not a finite number", v[i])),
            None => Ok(()),
        },
        (_, Some(_)) => invalid(format!("a {} trial has no values", state.name())),
        (_, None) => Ok(()),
    }
}

/// Checks a define-by-run value before a store sets it: the distribution valid, the value in
/// it, no value yet in the trial, and the same distribution as `registered` (the name's
/// distribution in the study, if any). Returns whether the name is new to the study.
pub fn check_param(
    number: TrialNumber,
    name: &str,
    value: &ParamValue,
    distribution: &Distribution,
    already_set: bool,
    registered: Option<&Distribution>,
) -> Result<bool, StoreError> {
    let invalid = |reason: String| {
        StoreError::Param(hyperion_core::Error::InvalidParam {
            param: name.to_owned(),
            reason,
        })
    };
    if already_set {
        return Err(invalid(format!("trial {number} already has a value")));
    }
    distribution.validate().map_err(invalid)?;
    if !distribution.contains(value) {
        return Err(invalid(format!("{value} is not in {distribution}")));
    }
    match registered {
        Some(existing) if existing != distribution => {
            Err(StoreError::Param(hyperion_core::Error::ParamConflict {
                param: name.to_owned(),
                existing: existing.to_string(),
                requested: distribution.to_string(),
            }))
        }
        Some(_) => Ok(false),
        None => Ok(true),
    }
}

/// How the error of a trial failed by [`Store::fail_stale`] starts.
pub const STALE: &str = "stale: no heartbeat";

/// The error of a trial failed by [`Store::fail_stale`], whose lease ran out at `until`.
pub fn stale_error(until: Timestamp) -> String {
    let late = Timestamp::now().0.saturating_sub(until.0) as f64 / 1e6;
    format!("{STALE} before its lease ran out {late:.1}s ago (its worker died?)")
}

/// Refuses a change [`Store::log`] must not append.
pub fn check_log_only(change: &Change) -> Result<(), StoreError> {
    match change.is_log_only() {
        true => Ok(()),
        false => Err(StoreError::Inconsistent(format!(
            "a {} is not a log-only change",
            change.kind()
        ))),
    }
}

/// The end of a lease of `lease` from `now`.
pub fn lease_end(now: Timestamp, lease: Duration) -> Timestamp {
    Timestamp(
        now.0
            .saturating_add(lease.as_micros().min(u64::MAX as u128) as u64),
    )
}

/// How many retries precede trial `number` in its chain (0 for an original), following
/// `retry_of` through `retry_of_fn`.
pub fn retry_depth(
    number: TrialNumber,
    mut retry_of_fn: impl FnMut(TrialNumber) -> Option<TrialNumber>,
) -> u32 {
    let mut depth = 0;
    let mut current = number;
    while let Some(previous) = retry_of_fn(current) {
        depth += 1;
        current = previous;
    }
    depth
}

/// Describes how two specs of the same study differ, for [`StoreError::SpecMismatch`].
pub fn spec_difference(old: &StudySpec, new: &StudySpec) -> Option<String> {
    if old.objectives != new.objectives {
        let show = |s: &StudySpec| {
            s.objectives
                .iter()
                .map(|o| format!("{} {:?}", o.metric, o.direction).to_lowercase())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Some(format!(
            "other objectives ({}, not {})",
            show(old),
            show(new)
        ));
    }
    if old.space == new.space {
        return None;
    }
    for p in old.space.params() {
        match new.space.get(&p.name) {
            None => {
                return Some(format!(
                    "another search space (parameter \"{}\" was removed)",
                    p.name
                ));
            }
            Some(q) if q != p => {
                return Some(format!(
                    "another search space (parameter \"{}\" was {}, now {})",
                    p.name, p.distribution, q.distribution
                ));
            }
            Some(_) => {}
        }
    }
    let added = new
        .space
        .params()
        .iter()
        .find(|p| old.space.get(&p.name).is_none());
    Some(match added {
        Some(p) => format!("another search space (parameter \"{}\" was added)", p.name),
        None => "another search space (the parameters were reordered)".into(),
    })
}
