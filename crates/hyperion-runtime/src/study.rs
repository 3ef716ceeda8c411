use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard};

use hyperion_core::{
    CategoricalDistribution, Distribution, Error as CoreError, Event, EventKind, FloatDistribution,
    IntDistribution, Objective, ParamValue, Params, SearchSpace, StudySpec, StudyView, Trial,
    TrialState,
};
use hyperion_samplers::{SampleContext, Sampler, SamplerConfig, SamplerError, name_salt};
use hyperion_store::{Created, MemoryStore, NewTrial, Store, StudyRecord};

use hyperion_schedulers::{Action, NoStopping, Scheduler, SchedulerConfig};

use crate::{Error, EventBus, TrialError};

/// How a trial ended, as told by whoever ran it.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// One value per objective. A NaN or infinite value fails the trial instead (see
    /// [`Study::tell`]).
    Completed(Vec<f64>),
    Pruned {
        reason: String,
    },
    Failed {
        error: String,
    },
}

/// Builds or reopens a [`Study`].
#[derive(Debug)]
pub struct StudyBuilder {
    name: String,
    objectives: Vec<Objective>,
    space: SearchSpace,
    sampler: SamplerChoice,
    seed: Option<u64>,
    store: Option<Arc<dyn Store>>,
    scheduler: SchedulerChoice,
}

#[derive(Debug)]
enum SamplerChoice {
    Config(SamplerConfig),
    Custom(Box<dyn Sampler>),
}

#[derive(Debug)]
enum SchedulerChoice {
    Config(SchedulerConfig),
    Custom(Box<dyn Scheduler>),
}

impl StudyBuilder {
    pub fn minimize(mut self, metric: &str) -> Self {
        self.objectives.push(Objective::minimize(metric));
        self
    }
    pub fn maximize(mut self, metric: &str) -> Self {
        self.objectives.push(Objective::maximize(metric));
        self
    }
    /// The declared search space; define-by-run parameters may be added by the objective.
    pub fn space(mut self, space: SearchSpace) -> Self {
        self.space = space;
        self
    }
    /// The sampler (default: random).
    pub fn sampler(mut self, config: SamplerConfig) -> Self {
        self.sampler = SamplerChoice::Config(config);
        self
    }
    /// A sampler of your own.
    pub fn custom_sampler(mut self, sampler: Box<dyn Sampler>) -> Self {
        self.sampler = SamplerChoice::Custom(sampler);
        self
    }
    /// The seed of every random choice (default: derived from the study name, so a study is
    /// reproducible by default and two studies differ).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// Where the study lives (default: a new in-memory store).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }
    /// When running trials stop early (default: never): median, ASHA, Hyperband, PBT.
    pub fn early_stopping(mut self, config: SchedulerConfig) -> Self {
        self.scheduler = SchedulerChoice::Config(config);
        self
    }
    /// A scheduler of your own (or a [`Pipeline`](hyperion_schedulers::Pipeline) of several).
    pub fn custom_scheduler(mut self, scheduler: Box<dyn Scheduler>) -> Self {
        self.scheduler = SchedulerChoice::Custom(scheduler);
        self
    }

    /// Creates the study, or reopens it (same name and spec) with all its trials.
    pub fn open(self) -> Result<Study, Error> {
        let objectives = match self.objectives.is_empty() {
            true => vec![Objective::minimize("value")],
            false => self.objectives,
        };
        let spec = StudySpec::new(&self.name, objectives, self.space);
        let seed = self.seed.unwrap_or_else(|| name_salt(&spec.name));
        let sampler = match self.sampler {
            SamplerChoice::Config(config) => config.build(seed)?,
            SamplerChoice::Custom(sampler) => sampler,
        };
        let scheduler = match self.scheduler {
            SchedulerChoice::Config(config) => config.build(seed)?,
            SchedulerChoice::Custom(scheduler) => scheduler,
        };
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let record = store.create_study(&spec)?;
        let study = Study {
            view: Mutex::new(StudyView::new(record.id, record.spec.clone())),
            record,
            store,
            sampler,
            scheduler,
            bus: EventBus::default(),
            stop: AtomicBool::new(false),
        };
        study.catch_up()?;
        Ok(study)
    }
}

/// A study being driven from this process: ask for trials and tell their results, or let
/// [`Study::optimize`] run an objective on threads.
///
/// The store is the truth. The study keeps a [`StudyView`] of it, refreshed with only the
/// changes since its cursor before each decision, so other threads and processes working on
/// the same study are seen, and no operation costs time proportional to the study's size.
/// Events reach the bus as the view applies changes, hence in the store's order.
#[derive(Debug)]
pub struct Study {
    pub(crate) record: StudyRecord,
    store: Arc<dyn Store>,
    sampler: Box<dyn Sampler>,
    scheduler: Box<dyn Scheduler>,
    /// Lock order: `view`, then the store.
    view: Mutex<StudyView>,
    pub(crate) bus: EventBus,
    pub(crate) stop: AtomicBool,
}

impl Study {
    pub fn builder(name: &str) -> StudyBuilder {
        StudyBuilder {
            name: name.to_owned(),
            objectives: Vec::new(),
            space: SearchSpace::default(),
            sampler: SamplerChoice::Config(SamplerConfig::Random),
            seed: None,
            store: None,
            scheduler: SchedulerChoice::Custom(Box::new(NoStopping)),
        }
    }

    pub fn name(&self) -> &str {
        &self.record.spec.name
    }
    pub fn spec(&self) -> &StudySpec {
        &self.record.spec
    }
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Starts a trial: a pending (enqueued) trial if there is one, else a new one with params
    /// from the sampler. [`Error::Exhausted`] when the sampler has no point left.
    pub fn ask(&self) -> Result<ActiveTrial<'_>, Error> {
        self.ask_within(None, false)?.ok_or(Error::Exhausted)
    }

    /// [`Study::ask`], creating nothing when the study has `max_trials` trials (`Ok(None)`).
    /// `watched`: this process sends the trial's heartbeats (see `Recovery`).
    pub(crate) fn ask_within(
        &self,
        max_trials: Option<u64>,
        watched: bool,
    ) -> Result<Option<ActiveTrial<'_>>, Error> {
        let mut view = self.sync()?;
        if view.counts().pending > 0
            && let Some(trial) = self.store.claim_pending(self.record.id, watched)?
        {
            self.refresh(&mut view)?;
            return Ok(Some(ActiveTrial::new(self, trial)));
        }
        let mut failure: Option<SamplerError> = None;
        let mut exhausted = false;
        let space = &self.record.spec.space;
        let created = self.store.create_trial(
            self.record.id,
            &NewTrial {
                watched,
                ..NewTrial::running()
            },
            max_trials,
            &mut |number| {
                let ctx = SampleContext {
                    view: &view,
                    trial_number: number,
                };
                match self.sampler.suggest(space, &ctx) {
                    Ok(Some(params)) => Some(params),
                    Ok(None) => {
                        exhausted = true;
                        None
                    }
                    Err(e) => {
                        failure = Some(e);
                        None
                    }
                }
            },
        )?;
        match created {
            Created::Trial(trial) => {
                self.refresh(&mut view)?;
                Ok(Some(ActiveTrial::new(self, trial)))
            }
            Created::LimitReached => Ok(None),
            Created::Declined => match failure {
                Some(e) => Err(e.into()),
                None if exhausted => Err(Error::Exhausted),
                None => Err(Error::Config(
                    "the sampler declined without a reason".into(),
                )),
            },
        }
    }

    /// Records how trial `number` ended and returns it as stored.
    ///
    /// A NaN or infinite objective value never becomes a result: the trial is recorded as
    /// failed, with the offending objective named in its error (as Optuna does). A wrong number
    /// of values is an error and leaves the trial running.
    pub fn tell(&self, number: u64, outcome: Outcome) -> Result<Trial, Error> {
        let (state, values) = match outcome {
            Outcome::Completed(values) => {
                let objectives = &self.record.spec.objectives;
                let bad = values.iter().zip(objectives).find(|(v, _)| !v.is_finite());
                match bad {
                    Some((v, o)) if values.len() == objectives.len() => (
                        TrialState::Failed {
                            error: format!("objective \"{}\" is {v}", o.metric),
                        },
                        None,
                    ),
                    _ => (TrialState::Completed, Some(values)),
                }
            }
            Outcome::Pruned { reason } => {
                let step = self
                    .store
                    .trial(self.record.id, number)?
                    .last_report()
                    .map(|(s, _)| s);
                (TrialState::Pruned { step, reason }, None)
            }
            Outcome::Failed { error } => (TrialState::Failed { error }, None),
        };
        let trial = self
            .store
            .finish_trial(self.record.id, number, state, values)?;
        self.catch_up()?;
        Ok(trial)
    }

    /// Adds a trial with fixed params, run by the next [`Study::ask`] (before any sampled one).
    /// The params must be a point of the declared space.
    pub fn enqueue(&self, params: Params) -> Result<Trial, Error> {
        self.record.spec.space.check_point(&params)?;
        let mut params = Some(params);
        let created =
            self.store
                .create_trial(self.record.id, &NewTrial::pending(), None, &mut |_| {
                    params.take()
                })?;
        self.catch_up()?;
        match created {
            Created::Trial(trial) => Ok(trial),
            other => Err(Error::Store(hyperion_store::StoreError::Inconsistent(
                format!("enqueue: {other:?}"),
            ))),
        }
    }

    /// All trials, by number.
    pub fn trials(&self) -> Result<Vec<Trial>, Error> {
        Ok(self.sync()?.trials().to_vec())
    }

    /// The best completed trial (single objective).
    pub fn best_trial(&self) -> Result<Option<Trial>, Error> {
        Ok(self.sync()?.best_trial().cloned())
    }

    /// The completed trials no other completed trial dominates (several objectives).
    pub fn pareto_front(&self) -> Result<Vec<Trial>, Error> {
        Ok(self.sync()?.pareto_front().into_iter().cloned().collect())
    }

    /// The study's state, up to date, for as long as the guard lives (it blocks the study).
    pub fn view(&self) -> Result<MutexGuard<'_, StudyView>, Error> {
        self.sync()
    }

    pub fn subscribe(&self, kind: EventKind) -> Receiver<Event> {
        self.bus.subscribe(kind)
    }
    pub fn subscribe_all(&self) -> Receiver<Event> {
        self.bus.subscribe_all()
    }

    /// Asks a running [`Study::optimize`] to start no more trials; running ones finish.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Creates the pending child of a PBT exploit: it continues trial `parent` with `params`,
    /// one generation deeper. Returns its number.
    fn start_child(&self, parent: u64, params: Params) -> Result<u64, Error> {
        let id = self.record.id;
        let new = NewTrial {
            pending: true,
            parent: Some(parent),
            // The parent is in the view: no need to load it with its reports from the store.
            depth: self.sync()?.trial(parent).map_or(0, |t| t.depth) + 1,
            ..NewTrial::default()
        };
        let mut params = Some(params);
        match self
            .store
            .create_trial(id, &new, None, &mut |_| params.take())?
        {
            Created::Trial(child) => Ok(child.number),
            other => Err(Error::Store(hyperion_store::StoreError::Inconsistent(
                format!("a PBT child was not created: {other:?}"),
            ))),
        }
    }

    /// Sends the heartbeat of this process's running trials `mine`, and settles stale trials.
    pub(crate) fn keep_alive(&self, mine: &[u64], recovery: &crate::Recovery) -> Result<(), Error> {
        if !mine.is_empty() {
            self.store.heartbeat(self.record.id, mine)?;
        }
        self.store
            .fail_stale(self.record.id, recovery.grace, recovery.max_retries)?;
        Ok(())
    }

    /// Locks the view and brings it up to date with the store.
    pub(crate) fn sync(&self) -> Result<MutexGuard<'_, StudyView>, Error> {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh(&mut view)?;
        Ok(view)
    }

    /// Brings the view up to date, publishing the events of what changed.
    pub(crate) fn catch_up(&self) -> Result<(), Error> {
        self.sync().map(drop)
    }

    fn refresh(&self, view: &mut StudyView) -> Result<(), Error> {
        let changes = self.store.changes_since(self.record.id, view.cursor())?;
        let mut events = Vec::new();
        for change in &changes {
            view.apply(change, &mut events)?;
            self.scheduler.observe(view, &change.change);
        }
        for event in &events {
            self.bus.publish(event);
        }
        Ok(())
    }

    fn suggest_value(
        &self,
        trial: &Trial,
        name: &str,
        distribution: Distribution,
    ) -> Result<ParamValue, Error> {
        distribution
            .validate()
            .map_err(|reason| CoreError::InvalidParam {
                param: name.to_owned(),
                reason,
            })?;
        let conflict = |existing: &Distribution| CoreError::ParamConflict {
            param: name.to_owned(),
            existing: existing.to_string(),
            requested: distribution.to_string(),
        };
        if let Some(declared) = self.record.spec.space.get(name) {
            if declared.distribution != distribution {
                return Err(conflict(&declared.distribution).into());
            }
            return trial.params.get(name).cloned().ok_or_else(|| {
                CoreError::InvalidParam {
                    param: name.to_owned(),
                    reason: format!(
                        "inactive in trial {}: its condition is not met",
                        trial.number
                    ),
                }
                .into()
            });
        }
        let view = self.sync()?;
        if let Some(existing) = view.distribution(name)
            && *existing != distribution
        {
            return Err(conflict(existing).into());
        }
        if let Some(value) = trial.params.get(name) {
            return Ok(value.clone());
        }
        let ctx = SampleContext {
            view: &view,
            trial_number: trial.number,
        };
        let value = self.sampler.suggest_param(name, &distribution, &ctx)?;
        self.store
            .set_param(self.record.id, trial.number, name, &value, &distribution)?;
        Ok(value)
    }
}

/// A running trial: its params, define-by-run suggestions, intermediate reports.
#[derive(Debug)]
pub struct ActiveTrial<'s> {
    study: &'s Study,
    trial: Trial,
    /// Why the scheduler stopped this trial, once it has.
    stopped: Option<String>,
    /// When PBT exploited it: the child that takes its place, and the child's parent.
    successor: Option<(u64, u64)>,
}

impl<'s> ActiveTrial<'s> {
    fn new(study: &'s Study, trial: Trial) -> Self {
        ActiveTrial {
            study,
            trial,
            stopped: None,
            successor: None,
        }
    }

    /// The trial's number in its study: pass it to [`Study::tell`].
    pub fn number(&self) -> u64 {
        self.trial.number
    }
    /// The params so far (declared ones, then define-by-run ones as they are suggested).
    pub fn params(&self) -> &Params {
        &self.trial.params
    }
    /// The study this trial belongs to.
    pub fn study(&self) -> &'s Study {
        self.study
    }
    /// The trial as this handle knows it (params, lineage, start time).
    pub fn trial(&self) -> &Trial {
        &self.trial
    }

    /// The value of parameter `name` on `distribution`: the declared one if `name` is in the
    /// study's space (the distribution must then be the declared one), the value already
    /// suggested in this trial, or a new one from the sampler. A name keeps one distribution
    /// for the whole study: asking for another is an error that names it.
    pub fn suggest(
        &mut self,
        name: &str,
        distribution: impl Into<Distribution>,
    ) -> Result<ParamValue, Error> {
        let value = self
            .study
            .suggest_value(&self.trial, name, distribution.into())?;
        if !self.trial.params.contains_key(name) {
            Arc::make_mut(&mut self.trial.params).insert(name.to_owned(), value.clone());
        }
        Ok(value)
    }

    /// A float, uniform in `[low, high]`. See [`ActiveTrial::suggest`] for steps.
    pub fn suggest_float(&mut self, name: &str, low: f64, high: f64) -> Result<f64, Error> {
        self.suggest_f64(name, FloatDistribution::new(low, high))
    }

    /// A float, uniform in `ln(x)` over `[low, high]` (learning rates, weight decays).
    pub fn suggest_float_log(&mut self, name: &str, low: f64, high: f64) -> Result<f64, Error> {
        self.suggest_f64(name, FloatDistribution::new(low, high).log())
    }

    /// An integer in `[low, high]`, both included.
    pub fn suggest_int(&mut self, name: &str, low: i64, high: i64) -> Result<i64, Error> {
        self.suggest_i64(name, IntDistribution::new(low, high))
    }

    /// An integer from a distribution with a step or a log scale.
    pub fn suggest_i64(&mut self, name: &str, distribution: IntDistribution) -> Result<i64, Error> {
        let value = self.suggest(name, distribution)?;
        value
            .as_i64()
            .ok_or_else(|| type_error(name, "an int", &value))
    }

    /// A float from a distribution with a step or a log scale.
    pub fn suggest_f64(
        &mut self,
        name: &str,
        distribution: FloatDistribution,
    ) -> Result<f64, Error> {
        let value = self.suggest(name, distribution)?;
        value
            .as_f64()
            .ok_or_else(|| type_error(name, "a float", &value))
    }

    /// One of `choices`.
    pub fn suggest_categorical<V: Into<ParamValue>>(
        &mut self,
        name: &str,
        choices: impl IntoIterator<Item = V>,
    ) -> Result<ParamValue, Error> {
        self.suggest(name, CategoricalDistribution::new(choices))
    }

    /// Records the objective's intermediate value at `step` (an epoch, an iteration), finite,
    /// and lets the study's scheduler decide whether the trial goes on; its decision, with the
    /// rationale, goes to the decision log. Then [`ActiveTrial::should_prune`] tells.
    pub fn report(&mut self, step: u64, value: f64) -> Result<(), Error> {
        self.report_values(step, &[value])
    }

    /// [`ActiveTrial::report`] for a study with several objectives: one value per objective,
    /// so that schedulers can stop the trials other trials dominate.
    pub fn report_values(&mut self, step: u64, values: &[f64]) -> Result<(), Error> {
        let study = self.study;
        let id = study.record.id;
        study.store.report(id, self.trial.number, step, values)?;
        if let Some((&first, others)) = values.split_first() {
            self.trial.intermediate.insert(step, first);
            if !others.is_empty() {
                self.trial.intermediate_others.insert(step, others.to_vec());
            }
        }
        if self.stopped.is_some() {
            return Ok(());
        }
        let verdict = {
            let view = study.sync()?;
            let trial = view.trial(self.trial.number).unwrap_or(&self.trial);
            study.scheduler.decide(&view, trial, step)
        };
        let Some(verdict) = verdict else {
            return Ok(());
        };
        study
            .store
            .record_decision(id, &verdict.decision(self.trial.number))?;
        match verdict.action {
            Action::Continue => {}
            Action::Stop => self.stopped = Some(verdict.rationale),
            Action::Exploit { parent, params } => {
                let child = study.start_child(parent, params)?;
                self.stopped = Some(format!("{} (as trial {child})", verdict.rationale));
                self.successor = Some((child, parent));
            }
        }
        study.catch_up()?;
        Ok(())
    }

    /// Whether the scheduler stopped this trial at its last report. An objective that gets
    /// `true` returns `Err(TrialError::pruned(…))`, or uses [`ActiveTrial::check_pruned`].
    pub fn should_prune(&self) -> bool {
        self.stopped.is_some()
    }

    /// When PBT exploited this trial: the child that takes its place and the trial whose
    /// checkpoint the child restores.
    pub fn successor(&self) -> Option<(u64, u64)> {
        self.successor
    }

    /// The scheduler's reason for stopping this trial, if it did.
    pub fn prune_reason(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// `Err(TrialError::Pruned)` once the scheduler stopped this trial:
    /// `trial.report(epoch, loss)?; trial.check_pruned()?;` in an objective.
    pub fn check_pruned(&self) -> Result<(), TrialError> {
        match &self.stopped {
            Some(reason) => Err(TrialError::pruned(reason.clone())),
            None => Ok(()),
        }
    }

    pub fn set_user_attr(&mut self, key: &str, value: serde_json::Value) -> Result<(), Error> {
        self.study
            .store
            .set_user_attr(self.study.record.id, self.trial.number, key, &value)?;
        self.trial.user_attrs.insert(key.to_owned(), value);
        Ok(())
    }
}

fn type_error(name: &str, want: &str, got: &ParamValue) -> Error {
    CoreError::InvalidParam {
        param: name.to_owned(),
        reason: format!("expected {want}, got {got}"),
    }
    .into()
}
