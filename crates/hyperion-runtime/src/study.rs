use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyperion_core::{
    CategoricalDistribution, Change, Distribution, Error as CoreError, Event, EventKind,
    FloatDistribution, IntDistribution, LoggedChange, Objective, Param, ParamValue, Params,
    Proposal, SearchSpace, StopRequest, StudySpec, StudyView, Trial, TrialNumber, TrialState,
};
use hyperion_samplers::{SampleContext, Sampler, SamplerConfig, SamplerError};
use hyperion_store::{Created, Finish, MemoryStore, NewTrial, Store, StudyRecord};

use hyperion_schedulers::{Action, NoStopping, Scheduler, SchedulerConfig};

use crate::{
    Budget, Error, EventBus, ProcessConfig, Recovery, RunControl, SettingsChange, StudySettings,
    TrialError,
};

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

/// What a report decided about its trial.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// The trial goes on.
    Continue,
    /// The trial should stop now; it ends as pruned at its last step.
    Stop {
        /// The scheduler's rationale.
        reason: String,
        /// When PBT exploited it: the child that takes its place.
        successor: Option<Successor>,
    },
}

/// A PBT child that continues trial `parent` in the place of the trial it stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Successor {
    pub child: TrialNumber,
    pub parent: TrialNumber,
}

/// Builds or reopens a [`Study`]. What the builder leaves unset comes from the study's
/// recorded settings when it exists (so reopening a TPE study keeps TPE), and from the
/// defaults when it is new.
#[derive(Debug)]
pub struct StudyBuilder {
    name: String,
    objectives: Vec<Objective>,
    space: SearchSpace,
    store: Option<Arc<dyn Store>>,
    sampler: Option<SamplerChoice>,
    scheduler: Option<SchedulerChoice>,
    seed: Option<u64>,
    budget: Option<Budget>,
    recovery: Option<Recovery>,
    description: Option<String>,
    trial: Option<ProcessConfig>,
    pipeline: Option<crate::PipelineConfig>,
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
    /// The objectives, in order.
    pub fn objectives(mut self, objectives: Vec<Objective>) -> Self {
        self.objectives = objectives;
        self
    }
    /// The declared search space; define-by-run parameters may be added by the objective.
    pub fn space(mut self, space: SearchSpace) -> Self {
        self.space = space;
        self
    }
    /// The sampler (default: random).
    pub fn sampler(mut self, config: SamplerConfig) -> Self {
        self.sampler = Some(SamplerChoice::Config(config));
        self
    }
    /// A sampler of your own. The store cannot rebuild it: a program that reopens the study
    /// passes it again.
    pub fn custom_sampler(mut self, sampler: Box<dyn Sampler>) -> Self {
        self.sampler = Some(SamplerChoice::Custom(sampler));
        self
    }
    /// The seed of every random choice (default: derived from the study name, so a study is
    /// reproducible by default and two studies differ). A study keeps its seed for life.
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
        self.scheduler = Some(SchedulerChoice::Config(config));
        self
    }
    /// A scheduler of your own (or a [`Pipeline`](hyperion_schedulers::Pipeline) of several).
    pub fn custom_scheduler(mut self, scheduler: Box<dyn Scheduler>) -> Self {
        self.scheduler = Some(SchedulerChoice::Custom(scheduler));
        self
    }
    /// The study's limits (`max_time` belongs to a run and is not kept).
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = Some(budget);
        self
    }
    /// How trials whose worker died are noticed and retried.
    pub fn recovery(mut self, recovery: Recovery) -> Self {
        self.recovery = Some(recovery);
        self
    }
    pub fn description(mut self, description: &str) -> Self {
        self.description = Some(description.to_owned());
        self
    }
    /// How a trial runs as a command (`hyperion run`); kept so that any process can run the
    /// study's trials.
    pub fn trial_template(mut self, template: ProcessConfig) -> Self {
        self.trial = Some(template);
        self
    }

    /// With [`StudyBuilder::trial_template`]: each trial is this pipeline of stages, as
    /// workers run it too.
    pub fn pipeline(mut self, pipeline: crate::PipelineConfig) -> Self {
        self.pipeline = Some(pipeline);
        self
    }

    /// Creates the study, or reopens it (same name and spec) with all its trials. Settings
    /// that differ from the recorded ones are recorded as a change (see
    /// [`Study::settings_changes`]); a change that would corrupt the study (another seed, a
    /// grid switched) is an error and nothing is written.
    pub fn open(self) -> Result<Study, Error> {
        let objectives = match self.objectives.is_empty() {
            true => vec![Objective::minimize("value")],
            false => self.objectives.clone(),
        };
        let spec = StudySpec::new(&self.name, objectives, self.space.clone());
        let store = self
            .store
            .clone()
            .unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let record = store.create_study(&spec)?;
        self.assemble(record, store)
    }

    /// Builds the study on its stored `record` with these settings over the recorded ones.
    fn assemble(self, record: StudyRecord, store: Arc<dyn Store>) -> Result<Study, Error> {
        // The log is read once: the latest settings come from it, then the view folds it.
        let changes = store.changes_since(record.id, 0)?;
        let recorded = changes
            .iter()
            .rev()
            .find_map(|c| match &c.change {
                Change::SettingsRecorded { settings } => Some(settings),
                _ => None,
            })
            .map(StudySettings::from_json)
            .transpose()?;
        let says_something = self.sampler.is_some()
            || self.scheduler.is_some()
            || self.seed.is_some()
            || self.budget.is_some()
            || self.recovery.is_some()
            || self.description.is_some()
            || self.trial.is_some();
        let mut settings = recorded
            .clone()
            .unwrap_or_else(|| StudySettings::defaults(&record.spec.name));
        if let Some(seed) = self.seed {
            settings.seed = seed;
        }
        let sampler = match self.sampler {
            Some(SamplerChoice::Config(config)) => {
                settings.sampler = Some(config.clone());
                config.build(settings.seed)?
            }
            Some(SamplerChoice::Custom(sampler)) => {
                settings.sampler = None;
                sampler
            }
            None => match &settings.sampler {
                Some(config) => config.build(settings.seed)?,
                None => {
                    return Err(Error::Config(format!(
                        "study \"{}\" uses a custom sampler: open it with \
                         `Study::builder(…).custom_sampler(…)`",
                        record.spec.name
                    )));
                }
            },
        };
        let scheduler = match self.scheduler {
            Some(SchedulerChoice::Config(config)) => {
                settings.early_stopping = Some(config.clone());
                config.build(settings.seed)?
            }
            Some(SchedulerChoice::Custom(scheduler)) => {
                settings.early_stopping = None;
                scheduler
            }
            // A scheduler of the program's own that this one did not pass: stop nothing.
            None => match &settings.early_stopping {
                Some(config) => config.build(settings.seed)?,
                None => Box::new(NoStopping),
            },
        };
        if let Some(budget) = self.budget {
            settings.budget = Budget {
                max_time: None,
                ..budget
            };
        }
        if let Some(recovery) = self.recovery {
            settings.recovery = recovery;
        }
        if self.description.is_some() {
            settings.description = self.description;
        }
        if self.trial.is_some() {
            settings.trial = self.trial;
            settings.pipeline = self.pipeline;
        }
        let settings_changes = match &recorded {
            Some(old) => old.changes_to(&settings)?,
            None => Vec::new(),
        };
        if (recorded.is_none() && says_something) || !settings_changes.is_empty() {
            let change = Change::SettingsRecorded {
                settings: settings.to_json(),
            };
            store.log(record.id, &change)?;
        }
        let study = Study {
            view: Mutex::new(Arc::new(StudyView::new(record.id, record.spec.clone()))),
            record,
            store,
            sampler,
            scheduler,
            settings,
            settings_changes,
            bus: EventBus::default(),
            control: RunControl::default(),
        };
        study.fold(
            &mut study.view.lock().unwrap_or_else(|e| e.into_inner()),
            &changes,
        )?;
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
    settings: StudySettings,
    settings_changes: Vec<SettingsChange>,
    /// Lock order: `view`, then the store. Shared with the snapshots samplers that fit
    /// slowly read outside the lock; a refresh copies it only while such a snapshot lives.
    view: Mutex<Arc<StudyView>>,
    pub(crate) bus: EventBus,
    /// Reaches this process's runs of the study at once; other processes' at their next
    /// heartbeat, through the store.
    pub(crate) control: RunControl,
}

impl Study {
    pub fn builder(name: &str) -> StudyBuilder {
        StudyBuilder {
            name: name.to_owned(),
            objectives: Vec::new(),
            space: SearchSpace::default(),
            store: None,
            sampler: None,
            scheduler: None,
            seed: None,
            budget: None,
            recovery: None,
            description: None,
            trial: None,
            pipeline: None,
        }
    }

    /// Reopens study `name` from the store alone: its spec and its recorded settings (sampler,
    /// early stopping, seed, budget, recovery, trial template).
    pub fn open(store: Arc<dyn Store>, name: &str) -> Result<Study, Error> {
        let record = store.study(name)?;
        Study::builder(name).assemble(record, store)
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
    /// The study's id in its store.
    pub fn record_id(&self) -> hyperion_core::StudyId {
        self.record.id
    }
    /// The settings in force.
    pub fn settings(&self) -> &StudySettings {
        &self.settings
    }
    /// What opening the study changed in its recorded settings ("budget.max_trials: 100 →
    /// 200"); empty when nothing changed or the study is new.
    pub fn settings_changes(&self) -> &[SettingsChange] {
        &self.settings_changes
    }

    /// Starts a trial: a pending (enqueued) trial if there is one, else a new one with params
    /// from the sampler. [`Error::Exhausted`] when the sampler has no point left,
    /// [`Error::BudgetSpent`] when the study has its `max_trials`. The trial has a lease of
    /// [`Recovery::lease`], which [`Study::report`] renews: a trial nobody reports or tells
    /// about for that long goes stale, and a run retries it.
    pub fn ask(&self) -> Result<ActiveTrial<'_>, Error> {
        let max_trials = self.settings.budget.max_trials;
        self.catch_up()?;
        self.ask_within(max_trials, self.settings.recovery.lease)?
            .ok_or(Error::BudgetSpent {
                max_trials: max_trials.unwrap_or_default(),
            })
    }

    /// [`Study::ask`], creating nothing when the study has `max_trials` trials (`Ok(None)`),
    /// the trial leased for `lease`. The caller has just caught up with the store: the sampler
    /// proposes from the view, and whether a trial is pending comes from it.
    pub(crate) fn ask_within(
        &self,
        max_trials: Option<u64>,
        lease: Duration,
    ) -> Result<Option<ActiveTrial<'_>>, Error> {
        let mut view = self.view_as_is();
        if view.counts().pending > 0
            && let Some(trial) = self.store.claim_pending(self.record.id, Some(lease))?
        {
            self.refresh(&mut view)?;
            return Ok(Some(ActiveTrial::new(self, trial)));
        }
        if self.sampler.fits_slowly() {
            drop(view);
            return self.ask_after_fit(max_trials, lease);
        }
        let new = NewTrial {
            lease: Some(lease),
            ..NewTrial::running()
        };
        loop {
            let attempt = self.create_next(&mut view, |propose, _| {
                let created = self
                    .store
                    .create_trial(self.record.id, &new, max_trials, propose)?;
                Ok((created, None))
            })?;
            match attempt {
                Attempt::Done(trial) => return Ok(trial),
                Attempt::Stale => self.refresh(&mut view)?,
            }
        }
    }

    /// Tells trial `number` that it completed with `values` and asks for the next trial as
    /// [`Study::ask_within`] does, in one write where the store can: for a loop that starts a
    /// trial as soon as one ends, with a sampler that ignores results
    /// ([`Sampler::ignores_results`]), so that telling first could not change the proposal.
    /// `Ok(None)` when the study has its `max_trials`; when the tell fails, nothing is created.
    pub(crate) fn tell_and_ask(
        &self,
        number: TrialNumber,
        values: Vec<f64>,
        max_trials: Option<u64>,
        lease: Duration,
    ) -> Result<Option<ActiveTrial<'_>>, Error> {
        debug_assert!(self.sampler.ignores_results());
        let mut view = self.view_as_is();
        let new = NewTrial {
            lease: Some(lease),
            ..NewTrial::running()
        };
        let finish = Finish {
            number,
            state: TrialState::Completed,
            values: Some(values),
        };
        let id = self.record.id;
        let attempt = self.create_next(&mut view, |propose, cursor| {
            let succession =
                (self.store).finish_and_create(id, finish, &new, max_trials, cursor, propose)?;
            Ok((succession.created, Some(succession.changes)))
        })?;
        match attempt {
            Attempt::Done(trial) => Ok(trial),
            // The tell is written (and the view has caught up): ask again, on its own.
            Attempt::Stale => {
                drop(view);
                self.ask_within(max_trials, lease)
            }
        }
    }

    /// A new trial with the sampler's proposal from `view`, by `create` (which hands the
    /// proposals to the store, and may bring the changes after the view's cursor); then the
    /// view catches up with the store. [`Attempt::Stale`] when the sampler walks a sequence
    /// and the view lacks trials created meanwhile: the trial's place would be a guess, so
    /// nothing is proposed.
    fn create_next(
        &self,
        view: &mut Arc<StudyView>,
        create: impl FnOnce(
            &mut dyn FnMut(TrialNumber) -> Option<Proposal>,
            u64,
        )
            -> Result<(Created, Option<Vec<LoggedChange>>), hyperion_store::StoreError>,
    ) -> Result<Attempt<'_>, Error> {
        let mut failure: Option<SamplerError> = None;
        let mut stale = false;
        let sequence = self.sampler.walks_a_sequence();
        let cursor = view.cursor();
        let (created, changes) = create(
            &mut |number| {
                if sequence && number.0 != view.trials().len() as u64 {
                    stale = true;
                    return None;
                }
                match self.suggest(view, number) {
                    Ok(proposal) => Some(proposal),
                    Err(e) => {
                        failure = Some(e);
                        None
                    }
                }
            },
            cursor,
        )?;
        match changes {
            Some(changes) => self.fold(view, &changes)?,
            None if matches!(created, Created::Trial(_)) => self.refresh(view)?,
            None => {}
        }
        match created {
            Created::Trial(trial) => Ok(Attempt::Done(Some(ActiveTrial::new(self, trial)))),
            Created::LimitReached => Ok(Attempt::Done(None)),
            Created::Declined if stale => Ok(Attempt::Stale),
            Created::Declined => Err(failure.map_or(Error::Exhausted, Error::from)),
        }
    }

    /// Whether the study's sampler ignores results ([`Sampler::ignores_results`]).
    pub(crate) fn sampler_ignores_results(&self) -> bool {
        self.sampler.ignores_results()
    }

    /// [`Study::ask_within`] for a sampler that fits slowly: it suggests for the next number
    /// from a snapshot of the study, with no lock held (heartbeats and reports go on), and the
    /// trial is created only if that number is still the next one; otherwise another worker
    /// created a trial meanwhile, and the sampler suggests again from the fresh study.
    fn ask_after_fit(
        &self,
        max_trials: Option<u64>,
        lease: Duration,
    ) -> Result<Option<ActiveTrial<'_>>, Error> {
        let new = NewTrial {
            lease: Some(lease),
            ..NewTrial::running()
        };
        loop {
            let snapshot = Arc::clone(&*self.sync()?);
            if max_trials.is_some_and(|n| snapshot.budget_used() >= n) {
                return Ok(None);
            }
            let number = TrialNumber(snapshot.trials().len() as u64);
            let mut proposal = Some(self.suggest(&snapshot, number)?);
            drop(snapshot);
            let mut moved = false;
            let created = self
                .store
                .create_trial(self.record.id, &new, max_trials, &mut |n| {
                    moved = n != number;
                    if moved { None } else { proposal.take() }
                })?;
            match created {
                Created::Trial(trial) => {
                    self.catch_up()?;
                    return Ok(Some(ActiveTrial::new(self, trial)));
                }
                Created::LimitReached => return Ok(None),
                Created::Declined if moved => continue,
                Created::Declined => unreachable!("the proposal is only declined when stale"),
            }
        }
    }

    /// The sampler's proposal for trial `number` over the declared space.
    fn suggest(&self, view: &StudyView, number: TrialNumber) -> Result<Proposal, SamplerError> {
        self.propose(&self.record.spec.space, view, number)
    }

    /// The sampler's proposal for trial `number` over `space`; a panic in it is an error.
    fn propose(
        &self,
        space: &SearchSpace,
        view: &StudyView,
        number: TrialNumber,
    ) -> Result<Proposal, SamplerError> {
        let ctx = SampleContext {
            view,
            trial_number: number.0,
        };
        match catch_unwind(AssertUnwindSafe(|| self.sampler.propose(space, &ctx))) {
            Ok(Ok(Some(proposal))) => Ok(proposal),
            Ok(Ok(None)) => Err(SamplerError::Exhausted),
            Ok(Err(e)) => Err(e),
            Err(panic) => Err(SamplerError::Failed(format!(
                "it panicked: {}",
                crate::optimize::panic_message(&*panic)
            ))),
        }
    }

    /// Records trial `number`'s intermediate values at `step` — the first objective's, or one
    /// per objective — and lets the study's scheduler decide whether it goes on; the decision,
    /// with its rationale, goes to the decision log. Works from any thread or process that
    /// holds the store, not only through the handle `ask` returned. A trial already stopped
    /// stays stopped.
    pub fn report(&self, number: TrialNumber, step: u64, values: &[f64]) -> Result<Verdict, Error> {
        let id = self.record.id;
        self.store.report(id, number, step, values)?;
        let verdict = {
            let view = self.sync()?;
            if let Some(reason) = view.stop_reason(number) {
                return Ok(Verdict::Stop {
                    reason: reason.to_owned(),
                    successor: None,
                });
            }
            let trial = view
                .trial(number)
                .ok_or(hyperion_store::StoreError::TrialNotFound { number })?;
            self.scheduler.decide(&view, trial, step)
        };
        let Some(verdict) = verdict else {
            return Ok(Verdict::Continue);
        };
        self.store.record_decision(id, &verdict.decision(number))?;
        let verdict = match verdict.action {
            Action::Continue => Verdict::Continue,
            Action::Stop => Verdict::Stop {
                reason: verdict.rationale,
                successor: None,
            },
            Action::Exploit { parent, params } => {
                let child = self.start_child(parent, params)?;
                Verdict::Stop {
                    reason: format!("{} (as trial {child})", verdict.rationale),
                    successor: Some(Successor { child, parent }),
                }
            }
        };
        self.catch_up()?;
        Ok(verdict)
    }

    /// What the scheduler last decided about trial `number`: whether it should stop.
    pub fn verdict(&self, number: TrialNumber) -> Result<Verdict, Error> {
        let view = self.sync()?;
        if view.trial(number).is_none() {
            return Err(hyperion_store::StoreError::TrialNotFound { number }.into());
        }
        Ok(match view.stop_reason(number) {
            Some(reason) => Verdict::Stop {
                reason: reason.to_owned(),
                successor: None,
            },
            None => Verdict::Continue,
        })
    }

    /// Renews the lease of trial `number` (run by another program) for [`Recovery::lease`].
    pub fn renew_lease(&self, number: TrialNumber) -> Result<(), Error> {
        let lease = self.settings.recovery.lease;
        Ok(self.store.heartbeat(self.record.id, &[number], lease)?)
    }

    /// Asks every run of the study — in this process at once, in others within a heartbeat
    /// — to start no more trials; running ones finish. Recorded in the store.
    pub fn stop(&self) -> Result<(), Error> {
        self.request(false, "Study::stop")
    }

    /// As [`Study::stop`], and the runs kill their running trials.
    pub fn kill(&self) -> Result<(), Error> {
        self.request(true, "Study::kill")
    }

    /// The position of the study's log as this process last read it: a loop of its own passes
    /// it to [`Study::stop_requested_since`].
    pub fn cursor(&self) -> u64 {
        self.view_as_is().cursor()
    }

    /// The stop request recorded after log position `since`, as of the last read of the store
    /// (every ask, report and tell makes one): no read of its own.
    pub fn stop_requested_since(&self, since: u64) -> Option<StopRequest> {
        self.view_as_is().stop_requested_since(since)
    }

    /// Records a stop request by `by`; this process's runs obey it at once.
    pub fn request(&self, kill: bool, by: &str) -> Result<(), Error> {
        self.control.request(match kill {
            true => StopRequest::Kill,
            false => StopRequest::Stop,
        });
        let change = Change::StopRequested {
            kill,
            by: by.to_owned(),
        };
        self.store.log(self.record.id, &change)?;
        // Into the view too, for loops that look there (`stop_requested_since`).
        self.catch_up()
    }

    /// Records how trial `number` ended and returns it as stored.
    ///
    /// A NaN or infinite objective value never becomes a result: the trial is recorded as
    /// failed, with the offending objective named in its error (as Optuna does). A wrong number
    /// of values is an error and leaves the trial running.
    pub fn tell(&self, number: TrialNumber, outcome: Outcome) -> Result<Trial, Error> {
        let trial = self.finish(number, outcome)?;
        self.catch_up()?;
        Ok(trial)
    }

    /// [`Study::tell`] without the catch-up that publishes its events at once: for a caller
    /// that reads the store next anyway (the controller's loop), one round trip fewer.
    pub(crate) fn finish(&self, number: TrialNumber, outcome: Outcome) -> Result<Trial, Error> {
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
        Ok(self
            .store
            .finish_trial(self.record.id, number, state, values)?)
    }

    /// Queues trial `number` to run again, as a pending trial with its params and lineage and
    /// `retry_of` set; it takes the place of `number` in the trial budget.
    pub fn retry(&self, number: TrialNumber) -> Result<TrialNumber, Error> {
        let trial = self.store.trial(self.record.id, number)?;
        let new = NewTrial {
            pending: true,
            parent: trial.parent,
            depth: trial.depth,
            retry_of: Some(number),
            ..NewTrial::default()
        };
        let mut proposal = Some(Proposal::from(trial.params.as_ref().clone()));
        match self
            .store
            .create_trial(self.record.id, &new, None, &mut |_| proposal.take())?
        {
            Created::Trial(retry) => {
                self.catch_up()?;
                Ok(retry.number)
            }
            other => Err(Error::Store(hyperion_store::StoreError::Inconsistent(
                format!("a retry was not created: {other:?}"),
            ))),
        }
    }

    /// Queues every failed trial that has no retry yet to run again ([`Study::retry`]);
    /// returns the retries.
    pub fn retry_failed(&self) -> Result<Vec<TrialNumber>, Error> {
        let failed: Vec<TrialNumber> = {
            let view = self.sync()?;
            let retried: std::collections::HashSet<TrialNumber> =
                view.trials().iter().filter_map(|t| t.retry_of).collect();
            view.trials()
                .iter()
                .filter(|t| matches!(t.state, TrialState::Failed { .. }))
                .filter(|t| !retried.contains(&t.number))
                .map(|t| t.number)
                .collect()
        };
        failed.into_iter().map(|n| self.retry(n)).collect()
    }

    /// Adds a trial with fixed params, run by the next [`Study::ask`] (before any sampled one).
    /// The declared parameters must be a point of the declared space; the others are
    /// define-by-run values, which the trial's `suggest` returns (and checks against the
    /// distribution it is asked with).
    pub fn enqueue(&self, params: Params) -> Result<Trial, Error> {
        let space = &self.record.spec.space;
        let declared: Params = params
            .iter()
            .filter(|(name, _)| space.get(name).is_some())
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        space.check_point(&declared)?;
        let mut params = Some(params);
        let created =
            self.store
                .create_trial(self.record.id, &NewTrial::pending(), None, &mut |_| {
                    params.take().map(Proposal::from)
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
    pub fn view(&self) -> Result<MutexGuard<'_, Arc<StudyView>>, Error> {
        self.sync()
    }

    pub fn subscribe(&self, kind: EventKind) -> Receiver<Event> {
        self.bus.subscribe(kind)
    }
    pub fn subscribe_all(&self) -> Receiver<Event> {
        self.bus.subscribe_all()
    }

    /// Creates the pending child of a PBT exploit: it continues trial `parent` with `params`,
    /// one generation deeper. Returns its number.
    fn start_child(&self, parent: TrialNumber, params: Params) -> Result<TrialNumber, Error> {
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
            .create_trial(id, &new, None, &mut |_| params.take().map(Proposal::from))?
        {
            Created::Trial(child) => Ok(child.number),
            other => Err(Error::Store(hyperion_store::StoreError::Inconsistent(
                format!("a PBT child was not created: {other:?}"),
            ))),
        }
    }

    /// Locks the view as it is, without reading the store.
    pub(crate) fn view_as_is(&self) -> MutexGuard<'_, Arc<StudyView>> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the view and brings it up to date with the store.
    pub(crate) fn sync(&self) -> Result<MutexGuard<'_, Arc<StudyView>>, Error> {
        let mut view = self.view_as_is();
        self.refresh(&mut view)?;
        Ok(view)
    }

    /// Brings the view up to date, publishing the events of what changed.
    pub(crate) fn catch_up(&self) -> Result<(), Error> {
        self.sync().map(drop)
    }

    fn refresh(&self, view: &mut Arc<StudyView>) -> Result<(), Error> {
        let changes = self.store.changes_since(self.record.id, view.cursor())?;
        self.fold(view, &changes)
    }

    /// Applies `changes` (in log order, after the view's cursor) to the view and the
    /// scheduler's index, publishing the events they cause.
    fn fold(&self, view: &mut Arc<StudyView>, changes: &[LoggedChange]) -> Result<(), Error> {
        if changes.is_empty() {
            return Ok(());
        }
        let view = Arc::make_mut(view);
        let mut events = Vec::new();
        for change in changes {
            view.apply(change, &mut events)?;
            self.scheduler.observe(view, &change.change);
        }
        for event in &events {
            self.bus.publish(event);
        }
        Ok(())
    }

    /// [`ActiveTrial::suggest`] for a caller that keeps the running `trial` itself (a binding
    /// that cannot hold the borrowing handle): the value, added to `trial`'s params.
    pub fn suggest_for(
        &self,
        trial: &mut Trial,
        joint: &mut JointDraw,
        name: &str,
        distribution: Distribution,
    ) -> Result<ParamValue, Error> {
        let value = self.suggest_value(trial, joint, name, distribution)?;
        if !trial.params.contains_key(name) {
            Arc::make_mut(&mut trial.params).insert(name.to_owned(), value.clone());
        }
        Ok(value)
    }

    fn suggest_value(
        &self,
        trial: &Trial,
        joint: &mut JointDraw,
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
        // No store read: the view is as fresh as the trial's ask, which is what the sampler
        // needs, and the store checks the distribution again as it writes.
        let mut view = self.view_as_is();
        if let Some(existing) = view.distribution(name)
            && *existing != distribution
        {
            return Err(conflict(existing).into());
        }
        if let Some(value) = trial.params.get(name) {
            // Suggested before in this trial, or fixed by `enqueue`, which could not check it.
            if !distribution.contains(value) {
                return Err(CoreError::InvalidParam {
                    param: name.to_owned(),
                    reason: format!("the enqueued {value} is not in {distribution}"),
                }
                .into());
            }
            return Ok(value.clone());
        }
        if joint.0.is_none() && self.sampler.samples_jointly() {
            joint.0 = Some(self.draw_jointly(&mut view, trial.number)?);
        }
        // A drawn parameter is registered, and its distribution was checked above.
        let drawn = joint.0.as_ref().and_then(|params| params.get(name));
        let value = match drawn {
            Some(value) => value.clone(),
            None => {
                let ctx = SampleContext {
                    view: &view,
                    trial_number: trial.number.0,
                };
                self.sampler.suggest_param(name, &distribution, &ctx)?
            }
        };
        let unseen = view.distribution(name).is_none();
        self.store
            .set_param(self.record.id, trial.number, name, &value, &distribution)?;
        if unseen {
            // A parameter's first suggestion registers its distribution: the view learns it
            // now, so that a conflicting suggestion is refused even within this trial.
            self.refresh(&mut view)?;
        }
        Ok(value)
    }

    /// The sampler's joint draw, for trial `number`, of the define-by-run parameters that every
    /// completed trial has; empty when there are none yet. The sampler state it brings (a
    /// CMA-ES generation closed) is written, and the view learns it.
    fn draw_jointly(
        &self,
        view: &mut Arc<StudyView>,
        number: TrialNumber,
    ) -> Result<Params, Error> {
        let common = view.common_params().map(|(name, distribution)| Param {
            name: name.to_owned(),
            distribution: distribution.clone(),
            condition: None,
        });
        let space = SearchSpace::new(common.collect())?;
        if space.is_empty() {
            return Ok(Params::new());
        }
        let proposal = match self.propose(&space, view, number) {
            Ok(proposal) => proposal,
            Err(SamplerError::Exhausted) => return Ok(Params::new()),
            Err(e) => return Err(e.into()),
        };
        for (key, value) in &proposal.state {
            self.store.set_sampler_state(self.record.id, key, value)?;
        }
        if !proposal.state.is_empty() {
            self.refresh(view)?;
        }
        Ok(proposal.params)
    }
}

/// How one attempt to create the next trial ended.
#[allow(clippy::large_enum_variant)] // Returned once per ask, straight to the caller.
enum Attempt<'s> {
    /// The trial, or `None` at the trial budget.
    Done(Option<ActiveTrial<'s>>),
    /// Declined: the view lacked trials that the sampler's sequence needs; refresh and retry.
    Stale,
}

/// What the sampler drew together for a define-by-run trial at its first suggestion: values
/// for the define-by-run parameters that every completed trial has
/// ([`StudyView::common_params`]). The trial's later suggestions of those parameters take their
/// values from here (a value reaches the trial and the store only when it is suggested), so a
/// joint model is fitted once per trial, and the parameters are modelled together.
#[derive(Clone, Debug, Default)]
pub struct JointDraw(Option<Params>);

/// A running trial: its params, define-by-run suggestions, intermediate reports.
#[derive(Debug)]
pub struct ActiveTrial<'s> {
    study: &'s Study,
    trial: Trial,
    joint: JointDraw,
    /// Why the scheduler stopped this trial, once it has.
    stopped: Option<String>,
    /// Set by the run when it stops this trial from outside (a kill request).
    halted: Arc<AtomicBool>,
}

impl<'s> ActiveTrial<'s> {
    fn new(study: &'s Study, trial: Trial) -> Self {
        ActiveTrial {
            study,
            trial,
            joint: JointDraw::default(),
            stopped: None,
            halted: Arc::default(),
        }
    }

    /// The flag that makes [`ActiveTrial::should_prune`] true from another thread.
    pub(crate) fn halt_flag(&self) -> Arc<AtomicBool> {
        self.halted.clone()
    }

    /// The trial's number in its study: pass it to [`Study::tell`].
    pub fn number(&self) -> TrialNumber {
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
    /// The trial, for a caller that goes on with [`Study::suggest_for`] and [`Study::report`].
    pub fn into_trial(self) -> Trial {
        self.trial
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
        (self.study).suggest_for(&mut self.trial, &mut self.joint, name, distribution.into())
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
        let verdict = self.study.report(self.trial.number, step, values)?;
        if let Some((&first, others)) = values.split_first() {
            self.trial.intermediate.insert(step, first);
            if !others.is_empty() {
                self.trial.intermediate_others.insert(step, others.to_vec());
            }
        }
        if let Verdict::Stop { reason, .. } = verdict {
            self.stopped.get_or_insert(reason);
        }
        Ok(())
    }

    /// Whether the scheduler stopped this trial at its last report (or the run is being
    /// killed). An objective that gets `true` returns `Err(TrialError::pruned(…))`, or uses
    /// [`ActiveTrial::check_pruned`].
    pub fn should_prune(&self) -> bool {
        self.stopped.is_some() || self.halted.load(Ordering::SeqCst)
    }

    /// The scheduler's reason for stopping this trial, if it did.
    pub fn prune_reason(&self) -> Option<&str> {
        match (&self.stopped, self.halted.load(Ordering::SeqCst)) {
            (Some(reason), _) => Some(reason),
            (None, true) => Some(HALTED),
            (None, false) => None,
        }
    }

    /// `Err(TrialError::Pruned)` once the scheduler stopped this trial:
    /// `trial.report(epoch, loss)?; trial.check_pruned()?;` in an objective.
    pub fn check_pruned(&self) -> Result<(), TrialError> {
        match self.prune_reason() {
            Some(reason) => Err(TrialError::pruned(reason)),
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

/// Why a trial that the run halted stops.
const HALTED: &str = "the run is stopping";

fn type_error(name: &str, want: &str, got: &ParamValue) -> Error {
    CoreError::InvalidParam {
        param: name.to_owned(),
        reason: format!("expected {want}, got {got}"),
    }
    .into()
}
