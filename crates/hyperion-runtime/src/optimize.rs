use std::collections::BTreeSet;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use hyperion_core::{Direction, Event, StopReason, StudyView, Trial};

use crate::{ActiveTrial, Error, Outcome, Study};

/// When a run of [`Study::optimize`] ends. Every limit is optional; with none, the run goes on
/// until the sampler is exhausted or [`Study::request_stop`] is called.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Budget {
    /// Trials in the study, counting earlier runs: a resumed study runs only the rest.
    pub max_trials: Option<u64>,
    /// Wall time of this run; running trials finish after it.
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

    /// The limit other than `max_trials` (which the store enforces) that a run started at
    /// `started` has reached, if any.
    pub(crate) fn reached(&self, view: &StudyView, started: Instant) -> Option<StopReason> {
        if self.max_time.is_some_and(|t| started.elapsed() >= t) {
            return Some(StopReason::MaxTime);
        }
        if self
            .max_failures
            .is_some_and(|max| view.counts().failed >= max)
        {
            return Some(StopReason::MaxFailures);
        }
        let best = view.best_trial().and_then(Trial::value)?;
        let reached = match view.spec().objectives.first()?.direction {
            Direction::Minimize => best <= self.target?,
            Direction::Maximize => best >= self.target?,
        };
        reached.then_some(StopReason::TargetReached)
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
/// While it runs, a study sends a heartbeat for its running trials every `heartbeat`; any run
/// on the study fails a running trial whose heartbeat is older than `grace` ("stale") and
/// retries it as a new trial with the same params, at most `max_retries` times per original.
#[derive(Clone, Debug, PartialEq)]
pub struct Recovery {
    /// Default 2 s.
    pub heartbeat: Duration,
    /// Default 20 s; keep it several heartbeats long.
    pub grace: Duration,
    /// Default 1.
    pub max_retries: u32,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            heartbeat: Duration::from_secs(2),
            grace: Duration::from_secs(20),
            max_retries: 1,
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
    /// pruned one. The run ends at the first budget limit reached, when the sampler is
    /// exhausted, or on [`Study::request_stop`]; trials already running finish first. Only a
    /// store or sampler error ends it with `Err`.
    pub fn optimize<F, V>(&self, config: &OptimizeConfig, objective: F) -> Result<Summary, Error>
    where
        F: Fn(&mut ActiveTrial<'_>) -> Result<V, TrialError> + Sync,
        V: IntoValues,
    {
        let budget = &config.budget;
        if budget.target.is_some() && self.spec().objectives.len() != 1 {
            return Err(Error::Config(
                "a target value needs exactly one objective".into(),
            ));
        }
        self.stop.store(false, Ordering::SeqCst);
        self.sync()?.set_total(budget.max_trials);
        self.bus.publish(&Event::StudyStarted {
            study: self.name().to_owned(),
        });

        let run = Run {
            study: self,
            budget,
            recovery: &config.recovery,
            started: Instant::now(),
            stop: Mutex::new(None),
            trials_run: Mutex::new(0),
            running: Mutex::new(BTreeSet::new()),
        };
        // Settle what a dead run left behind before starting anything.
        run.keep_alive()?;
        let threads = config.threads.max(1);
        let results: Vec<Result<(), Error>> = std::thread::scope(|s| {
            let (done, finished) = mpsc::channel::<()>();
            let heartbeat = s.spawn(|| run.heartbeats(finished));
            let workers: Vec<_> = (0..threads)
                .map(|_| s.spawn(|| run.worker(&objective)))
                .collect();
            let mut results: Vec<_> = workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err(Error::Config("a worker panicked".into())))
                })
                .collect();
            drop(done);
            results.push(
                heartbeat
                    .join()
                    .unwrap_or_else(|_| Err(Error::Config("the heartbeat panicked".into()))),
            );
            results
        });
        results.into_iter().collect::<Result<(), Error>>()?;

        let reason = run
            .stop
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(StopReason::Stopped);
        self.bus.publish(&Event::StudyCompleted {
            study: self.name().to_owned(),
            reason: reason.clone(),
        });
        Ok(Summary {
            reason,
            trials_run: run
                .trials_run
                .into_inner()
                .unwrap_or_else(|e| e.into_inner()),
            best: self.best_trial()?,
        })
    }
}

struct Run<'a> {
    study: &'a Study,
    budget: &'a Budget,
    recovery: &'a Recovery,
    started: Instant,
    /// The first reason to stop; once set, no thread starts a trial.
    stop: Mutex<Option<StopReason>>,
    trials_run: Mutex<u64>,
    /// Trials this run's threads are running.
    running: Mutex<BTreeSet<u64>>,
}

impl Run<'_> {
    fn worker<F, V>(&self, objective: &F) -> Result<(), Error>
    where
        F: Fn(&mut ActiveTrial<'_>) -> Result<V, TrialError> + Sync,
        V: IntoValues,
    {
        loop {
            if let Some(reason) = self.should_stop()? {
                self.stop_with(reason);
                return Ok(());
            }
            let mut trial = match self.study.ask_within(self.budget.max_trials, true) {
                Ok(Some(trial)) => trial,
                Ok(None) => {
                    // The budget is spent, but trials of other runs may still fail (a dead
                    // worker's, once stale) and come back as retries: wait for them.
                    let counts = self.study.sync()?.counts();
                    let mine = lock(&self.running).len() as u64;
                    if counts.pending == 0 && counts.running <= mine {
                        self.stop_with(StopReason::MaxTrials);
                        return Ok(());
                    }
                    std::thread::sleep(WAIT_FOR_OTHERS.min(self.recovery.heartbeat));
                    continue;
                }
                Err(Error::Exhausted) => {
                    self.stop_with(StopReason::SpaceExhausted);
                    return Ok(());
                }
                Err(e) => {
                    self.stop_with(StopReason::Stopped);
                    return Err(e);
                }
            };
            *lock(&self.trials_run) += 1;
            let number = trial.number();
            lock(&self.running).insert(number);
            let outcome = match catch_unwind(AssertUnwindSafe(|| objective(&mut trial))) {
                Ok(Ok(values)) => Outcome::Completed(values.into_values()),
                Ok(Err(TrialError::Pruned { reason })) => Outcome::Pruned { reason },
                Ok(Err(TrialError::Failed(error))) => Outcome::Failed { error },
                Err(panic) => Outcome::Failed {
                    error: format!("the objective panicked: {}", panic_message(&*panic)),
                },
            };
            drop(trial);
            let told = self.study.tell(number, outcome);
            lock(&self.running).remove(&number);
            match told {
                Ok(_) => {}
                // A result the store refuses (say, two values for one objective) fails the trial.
                Err(Error::Store(hyperion_store::StoreError::InvalidValues { reason, .. })) => {
                    self.study.tell(number, Outcome::Failed { error: reason })?;
                }
                Err(e) if e.settled_elsewhere() => {}
                Err(e) => {
                    self.stop_with(StopReason::Stopped);
                    return Err(e);
                }
            }
        }
    }

    /// Sends this run's heartbeats and settles stale trials until `finished` disconnects.
    fn heartbeats(&self, finished: mpsc::Receiver<()>) -> Result<(), Error> {
        while let Err(mpsc::RecvTimeoutError::Timeout) =
            finished.recv_timeout(self.recovery.heartbeat)
        {
            self.keep_alive()?;
        }
        Ok(())
    }

    fn keep_alive(&self) -> Result<(), Error> {
        let mine: Vec<u64> = lock(&self.running).iter().copied().collect();
        self.study.keep_alive(&mine, self.recovery)
    }

    fn should_stop(&self) -> Result<Option<StopReason>, Error> {
        if let Some(reason) = lock(&self.stop).clone() {
            return Ok(Some(reason));
        }
        if self.study.stop.load(Ordering::SeqCst) {
            return Ok(Some(StopReason::Stopped));
        }
        Ok(self.budget.reached(&*self.study.sync()?, self.started))
    }

    fn stop_with(&self, reason: StopReason) {
        self.stop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(reason);
    }
}

/// How long a run whose budget is spent waits before looking again for retries to run.
const WAIT_FOR_OTHERS: Duration = Duration::from_millis(50);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}
