use std::fmt;
use std::time::{Duration, Instant};

use hyperion_core::{Direction, StopReason, StudySpec, StudyView, Trial};
use serde::{Deserialize, Serialize};

use crate::settings::seconds;
use crate::threads::ThreadDispatcher;
use crate::{ActiveTrial, Error, RunControl, RunOptions, Study};

/// When a run of [`Study::optimize`] ends. Every limit is optional; with none, the run goes on
/// until the sampler is exhausted or [`Study::request_stop`] is called.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Trials in the study, counting earlier runs: a resumed study runs only the rest.
    pub max_trials: Option<u64>,
    /// Wall time of this run; running trials finish after it. Never recorded.
    #[serde(skip)]
    pub max_time: Option<Duration>,
    /// Stop once the best value reaches this (≤ when minimizing, ≥ when maximizing); single
    /// objective only.
    pub target: Option<f64>,
    /// Stop once the study has this many failed trials.
    pub max_failures: Option<u64>,
}

impl Budget {
    pub fn trials(n: u64) -> Self {
        Budget {
            max_trials: Some(n),
            ..Budget::default()
        }
    }

    /// This budget, with each limit it leaves unset taken from `fallback`.
    pub fn or(&self, fallback: &Budget) -> Budget {
        Budget {
            max_trials: self.max_trials.or(fallback.max_trials),
            max_time: self.max_time.or(fallback.max_time),
            target: self.target.or(fallback.target),
            max_failures: self.max_failures.or(fallback.max_failures),
        }
    }

    /// The limit other than `max_trials` (which the store enforces) that a run started at
    /// `started` has reached, if any.
    pub(crate) fn reached(&self, view: &StudyView, started: Instant) -> Option<StopReason> {
        if self.max_time.is_some_and(|t| started.elapsed() >= t) {
            return Some(StopReason::MaxTime);
        }
        if self.max_failures.is_some_and(|max| view.failures() >= max) {
            return Some(StopReason::MaxFailures);
        }
        let best = view.best_trial().and_then(Trial::value)?;
        self.target_reached(view.spec(), best)
            .then_some(StopReason::TargetReached)
    }

    /// Whether `value`, of the first objective, reaches the target.
    pub(crate) fn target_reached(&self, spec: &StudySpec, value: f64) -> bool {
        let (Some(target), Some(objective)) = (self.target, spec.objectives.first()) else {
            return false;
        };
        match objective.direction {
            Direction::Minimize => value <= target,
            Direction::Maximize => value >= target,
        }
    }
}

/// How [`Study::optimize`] runs: `OptimizeConfig::new(budget).threads(4)`.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizeConfig {
    pub budget: Budget,
    /// Trials run at once, each on its own thread (default 1).
    pub threads: usize,
    pub recovery: Recovery,
}

impl OptimizeConfig {
    pub fn new(budget: Budget) -> Self {
        OptimizeConfig {
            budget,
            threads: 1,
            recovery: Recovery::default(),
        }
    }
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
    pub fn recovery(mut self, recovery: Recovery) -> Self {
        self.recovery = recovery;
        self
    }
}

impl Default for OptimizeConfig {
    fn default() -> Self {
        OptimizeConfig::new(Budget::default())
    }
}

/// How a run notices and settles trials whose worker died (a killed process, a lost machine).
///
/// Every running trial has a lease. While it runs, a run renews its trials' leases for `grace`
/// every `heartbeat`; any run on the study fails a running trial whose lease ran out ("stale")
/// and retries it as a new trial with the same params, at most `max_retries` times per
/// original. A trial handed out by `ask` to another program has a lease of `lease`, which each
/// `report` renews.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    /// Default 2 s.
    #[serde(with = "seconds")]
    pub heartbeat: Duration,
    /// Default 20 s; keep it several heartbeats long.
    #[serde(with = "seconds")]
    pub grace: Duration,
    /// Default 1.
    pub max_retries: u32,
    /// The lease of an asked trial. Default 1 h.
    #[serde(with = "seconds", default = "default_lease")]
    pub lease: Duration,
}

fn default_lease() -> Duration {
    Duration::from_secs(3600)
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            heartbeat: Duration::from_secs(2),
            grace: Duration::from_secs(20),
            max_retries: 1,
            lease: default_lease(),
        }
    }
}

/// Why an objective did not produce a value. Any error converts into `Failed` with `?`.
#[derive(Debug, Clone, PartialEq)]
pub enum TrialError {
    Pruned { reason: String },
    Failed(String),
}

impl TrialError {
    pub fn pruned(reason: impl Into<String>) -> Self {
        TrialError::Pruned {
            reason: reason.into(),
        }
    }
}

impl<E: std::error::Error> From<E> for TrialError {
    fn from(e: E) -> Self {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        TrialError::Failed(text)
    }
}

impl fmt::Display for TrialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrialError::Pruned { reason } => write!(f, "pruned: {reason}"),
            TrialError::Failed(e) => f.write_str(e),
        }
    }
}

/// What an objective returns: one value, or one per objective.
pub trait IntoValues {
    fn into_values(self) -> Vec<f64>;
}
impl IntoValues for f64 {
    fn into_values(self) -> Vec<f64> {
        vec![self]
    }
}
impl IntoValues for Vec<f64> {
    fn into_values(self) -> Vec<f64> {
        self
    }
}
impl<const N: usize> IntoValues for [f64; N] {
    fn into_values(self) -> Vec<f64> {
        self.to_vec()
    }
}

/// How a run of [`Study::optimize`] ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub reason: StopReason,
    /// With [`StopReason::RepeatedFailure`], the error every trial failed with.
    pub failure: Option<String>,
    /// Trials this run started.
    pub trials_run: u64,
    /// The study's best trial (single objective).
    pub best: Option<Trial>,
}

impl Study {
    /// Runs `objective` on new trials, `config.threads` at a time, until the budget is spent.
    ///
    /// One bad trial never ends the study: an `Err` from the objective, a panic in it, or a
    /// non-finite value becomes a failed trial (with the message), and `TrialError::Pruned` a
    /// pruned one. The run ends at the first budget limit reached (each limit `config` leaves
    /// unset comes from the study's settings), when the sampler is exhausted, or on
    /// [`Study::stop`] from any process; trials already running finish first. Only a store or
    /// sampler error ends it with `Err`.
    pub fn optimize<F, V>(&self, config: &OptimizeConfig, objective: F) -> Result<Summary, Error>
    where
        F: Fn(&mut ActiveTrial<'_>) -> Result<V, TrialError> + Sync,
        V: IntoValues,
    {
        let options = RunOptions {
            budget: config.budget.clone(),
            recovery: config.recovery.clone(),
            trial_timeout: None,
            kill_grace: Duration::ZERO,
            max_concurrent: config.threads.max(1),
            max_trials_here: None,
        };
        std::thread::scope(|scope| {
            let mut threads = ThreadDispatcher::new(scope, &objective, config.threads.max(1));
            self.run_with(&mut threads, &options, &RunControl::default())
        })
    }
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}
