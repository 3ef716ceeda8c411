//! The study as a fold of its changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::{
    Change, Distribution, Error, Event, Launch, LoggedChange, StudyId, StudySpec, Trial,
    TrialNumber, TrialState, dominates,
};

/// How many trials are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub pending: u64,
    pub running: u64,
    pub completed: u64,
    pub pruned: u64,
    pub failed: u64,
}

impl Counts {
    pub fn finished(&self) -> u64 {
        self.completed + self.pruned + self.failed
    }
    pub fn total(&self) -> u64 {
        self.pending + self.running + self.finished()
    }

    /// Counts one more trial in `state`.
    pub fn add(&mut self, state: &TrialState) {
        *self.slot(state) += 1;
    }

    fn slot(&mut self, state: &TrialState) -> &mut u64 {
        match state {
            TrialState::Pending => &mut self.pending,
            TrialState::Running => &mut self.running,
            TrialState::Completed => &mut self.completed,
            TrialState::Pruned { .. } => &mut self.pruned,
            TrialState::Failed { .. } => &mut self.failed,
        }
    }
}

/// A study's state, built by applying its changes in order, and kept up to date by applying
/// only the changes after [`StudyView::cursor`]. Applying a change costs O(1), except a
/// multi-objective completion, which costs O(size of the Pareto front).
///
/// Samplers read the history from here; the runtime refreshes it from the store.
#[derive(Clone, Debug)]
pub struct StudyView {
    id: StudyId,
    spec: StudySpec,
    registered: BTreeMap<String, Distribution>,
    sampler_state: BTreeMap<String, serde_json::Value>,
    /// Indexed by trial number.
    trials: Vec<Trial>,
    /// Numbers of completed trials, in order of completion.
    completed: Vec<TrialNumber>,
    /// Numbers of running trials.
    running: std::collections::BTreeSet<TrialNumber>,
    cursor: u64,
    counts: Counts,
    /// Trials that take the place of another in the trial budget: retries, and PBT children
    /// (trials with a parent), which continue a population member.
    /// Their numbers, in order.
    takers: Vec<TrialNumber>,
    best: Option<TrialNumber>,
    pareto: Vec<TrialNumber>,
    total: Option<u64>,
    /// Failed trials that run again (stale, or killed with their run): not the study's
    /// failures.
    retried_failures: u64,
    /// The latest [`Change::SettingsRecorded`].
    settings: Option<serde_json::Value>,
    /// Sequence numbers of the latest stop and kill requests (0: none).
    last_stop: u64,
    last_kill: u64,
    /// Why each trial a scheduler stopped was stopped (its first stopping decision).
    stopped: std::collections::HashMap<TrialNumber, String>,
    /// The define-by-run parameters every completed trial has (`None` before the first).
    common: Option<BTreeSet<String>>,
    /// The study's runs, in the order they started.
    runs: Vec<crate::RunManifest>,
    /// How many times completed trials' values were revised (`hyperion reeval`).
    revisions: u64,
}

/// What the runs of a study were asked to do by a [`Change::StopRequested`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopRequest {
    /// Start no more trials; running ones finish.
    Stop,
    /// Start no more trials and kill the running ones.
    Kill,
}

impl StudyView {
    pub fn new(id: StudyId, spec: StudySpec) -> Self {
        StudyView {
            id,
            spec,
            registered: BTreeMap::new(),
            sampler_state: BTreeMap::new(),
            trials: Vec::new(),
            completed: Vec::new(),
            running: Default::default(),
            cursor: 0,
            counts: Counts::default(),
            takers: Vec::new(),
            best: None,
            pareto: Vec::new(),
            total: None,
            retried_failures: 0,
            settings: None,
            last_stop: 0,
            last_kill: 0,
            stopped: Default::default(),
            common: None,
            runs: Vec::new(),
            revisions: 0,
        }
    }

    pub fn id(&self) -> StudyId {
        self.id
    }
    pub fn spec(&self) -> &StudySpec {
        &self.spec
    }
    /// Sequence number of the last change applied (0 before any).
    pub fn cursor(&self) -> u64 {
        self.cursor
    }
    pub fn counts(&self) -> Counts {
        self.counts
    }
    /// Trials that count against a trial budget: all but retries, which take the place of the
    /// trial they retry.
    pub fn budget_used(&self) -> u64 {
        self.trials.len() as u64 - self.takers.len() as u64
    }
    /// Trial `number`'s place in the sequence of trials that take a new place in the trial
    /// budget (all but retries and PBT children): the cursor of a sampler that walks a sequence
    /// (grid, Sobol), so that a retry skips no point and an interrupted study
    /// ends with the points an uninterrupted one has. Exact for a trial in the view, and for the
    /// next one (`number` = the view's trial count).
    pub fn place(&self, number: TrialNumber) -> u64 {
        number.0 - self.takers.partition_point(|&n| n < number) as u64
    }
    /// All trials, indexed by number.
    pub fn trials(&self) -> &[Trial] {
        &self.trials
    }
    pub fn trial(&self, number: TrialNumber) -> Option<&Trial> {
        self.trials.get(number.index())
    }
    /// Completed trials in order of completion.
    pub fn completed(&self) -> impl ExactSizeIterator<Item = &Trial> + '_ {
        self.completed.iter().map(|&n| &self.trials[n.index()])
    }
    /// Running trials, by number (for samplers that account for work in progress).
    pub fn running(&self) -> impl Iterator<Item = &Trial> + '_ {
        self.running.iter().map(|&n| &self.trials[n.index()])
    }
    /// The best completed trial of a single-objective study (the earliest among equals); `None`
    /// with several objectives: see [`StudyView::pareto_front`].
    pub fn best_trial(&self) -> Option<&Trial> {
        self.best.and_then(|n| self.trial(n))
    }
    /// The completed trials that no other completed trial dominates.
    pub fn pareto_front(&self) -> Vec<&Trial> {
        match self.spec.objectives.len() {
            1 => self.best_trial().into_iter().collect(),
            _ => self
                .pareto
                .iter()
                .map(|&n| &self.trials[n.index()])
                .collect(),
        }
    }
    /// The distribution of a declared or define-by-run parameter.
    pub fn distribution(&self, name: &str) -> Option<&Distribution> {
        match self.spec.space.get(name) {
            Some(p) => Some(&p.distribution),
            None => self.registered.get(name),
        }
    }
    /// Define-by-run parameters and their distributions.
    pub fn registered(&self) -> &BTreeMap<String, Distribution> {
        &self.registered
    }
    /// The define-by-run parameters that every completed trial has, with their distributions:
    /// what a sampler can draw jointly when a define-by-run trial starts (Optuna's intersection
    /// search space). Kept as trials complete, O(parameters) each.
    pub fn common_params(&self) -> impl Iterator<Item = (&str, &Distribution)> + '_ {
        self.common.iter().flatten().filter_map(|name| {
            let distribution = self.registered.get(name)?;
            Some((name.as_str(), distribution))
        })
    }
    /// What samplers persisted with [`Change::SamplerStateSet`].
    pub fn sampler_state(&self, key: &str) -> Option<&serde_json::Value> {
        self.sampler_state.get(key)
    }
    /// Failed trials that are not running again: what `max_failures` counts.
    pub fn failures(&self) -> u64 {
        self.counts.failed.saturating_sub(self.retried_failures)
    }
    /// The settings last recorded ([`Change::SettingsRecorded`]), if any.
    pub fn settings(&self) -> Option<&serde_json::Value> {
        self.settings.as_ref()
    }

    /// How many times completed trials' values were revised ([`Change::ValuesRevised`]): a
    /// cache of the completed trials' values is stale when this moved.
    pub fn revisions(&self) -> u64 {
        self.revisions
    }

    /// The study's runs ([`Change::RunRecorded`]), in the order they started.
    pub fn runs(&self) -> &[crate::RunManifest] {
        &self.runs
    }
    /// The strongest stop request recorded after sequence number `since` (a run passes the
    /// cursor it started at, so it obeys only the requests made while it runs).
    pub fn stop_requested_since(&self, since: u64) -> Option<StopRequest> {
        if self.last_kill > since {
            Some(StopRequest::Kill)
        } else if self.last_stop > since {
            Some(StopRequest::Stop)
        } else {
            None
        }
    }
    /// Why a scheduler stopped trial `number`, if one did (the rationale of its decision).
    pub fn stop_reason(&self, number: TrialNumber) -> Option<&str> {
        self.stopped.get(&number).map(String::as_str)
    }
    /// Where trial `number`'s process runs or ran, if it is a process.
    pub fn launch(&self, number: TrialNumber) -> Option<&Launch> {
        self.trial(number)?.launch.as_ref()
    }
    /// The trial budget announced in progress events.
    pub fn set_total(&mut self, total: Option<u64>) {
        self.total = total;
    }

    /// Applies one change, appending the events it causes to `events`. A change at or before
    /// the cursor is skipped, so re-reading an overlapping range is harmless.
    pub fn apply(&mut self, logged: &LoggedChange, events: &mut Vec<Event>) -> Result<(), Error> {
        if logged.seq <= self.cursor {
            return Ok(());
        }
        if logged.seq != self.cursor + 1 {
            return Err(self.inconsistent(format!(
                "change {} follows change {}",
                logged.seq, self.cursor
            )));
        }
        let at = logged.at;
        match &logged.change {
            Change::TrialCreated {
                id,
                number,
                state,
                params,
                parent,
                depth,
                retry_of,
            } => {
                if number.0 != self.trials.len() as u64 {
                    return Err(self.inconsistent(format!(
                        "trial {number} created after {} trials",
                        self.trials.len()
                    )));
                }
                let running = *state == TrialState::Running;
                self.trials.push(Trial {
                    id: *id,
                    number: *number,
                    state: state.clone(),
                    params: params.clone(),
                    values: None,
                    intermediate: BTreeMap::new(),
                    intermediate_others: BTreeMap::new(),
                    user_attrs: BTreeMap::new(),
                    metrics: BTreeMap::new(),
                    parent: *parent,
                    depth: *depth,
                    retry_of: *retry_of,
                    created_at: at,
                    started_at: running.then_some(at),
                    finished_at: None,
                    launch: None,
                    stages: Vec::new(),
                    objective_version: 0,
                });
                *self.counts.slot(state) += 1;
                if retry_of.is_some() || parent.is_some() {
                    self.takers.push(*number);
                }
                if let Some(of) = retry_of
                    && self
                        .trial(*of)
                        .is_some_and(|t| matches!(t.state, TrialState::Failed { .. }))
                {
                    self.retried_failures += 1;
                }
                if running {
                    self.running.insert(*number);
                }
                if running {
                    events.push(Event::TrialStarted {
                        number: *number,
                        params: params.clone(),
                    });
                }
            }
            Change::TrialStarted { number } => {
                let trial = self.trial_mut(*number)?;
                trial.state = TrialState::Running;
                trial.started_at = Some(at);
                let params = trial.params.clone();
                self.counts.pending -= 1;
                self.counts.running += 1;
                self.running.insert(*number);
                events.push(Event::TrialStarted {
                    number: *number,
                    params,
                });
            }
            Change::ParamRegistered { name, distribution } => {
                self.registered.insert(name.clone(), distribution.clone());
            }
            Change::ParamSet {
                number,
                name,
                value,
            } => {
                let trial = self.trial_mut(*number)?;
                Arc::make_mut(&mut trial.params).insert(name.clone(), value.clone());
            }
            Change::MetricReported {
                number,
                step,
                value,
                others,
            } => {
                let trial = self.trial_mut(*number)?;
                trial.intermediate.insert(*step, *value);
                if others.is_empty() {
                    trial.intermediate_others.remove(step);
                } else {
                    trial.intermediate_others.insert(*step, others.clone());
                }
                events.push(Event::MetricReported {
                    number: *number,
                    step: *step,
                    value: *value,
                });
            }
            Change::MetricsKept { number, metrics } => {
                self.trial_mut(*number)?.metrics = metrics.clone();
            }
            Change::UserAttrSet { number, key, value } => {
                self.trial_mut(*number)?
                    .user_attrs
                    .insert(key.clone(), value.clone());
            }
            Change::DecisionRecorded(decision) => {
                if let (Some(number), true) = (decision.trial, decision.stops()) {
                    self.stopped
                        .entry(number)
                        .or_insert_with(|| decision.rationale.clone());
                }
                events.push(Event::DecisionRecorded(decision.clone()))
            }
            Change::SettingsRecorded { settings } => self.settings = Some(settings.clone()),
            Change::TrialLaunched { number, launch } => {
                self.trial_mut(*number)?.launch = Some(launch.clone());
            }
            Change::ValuesRevised {
                number,
                values,
                version,
            } => {
                let trial = self.trial_mut(*number)?;
                trial.values = Some(values.clone());
                trial.objective_version = *version;
                self.revisions += 1;
                // Any completed trial may now be the best: fold them again.
                self.best = None;
                self.pareto.clear();
                for n in self.completed.clone() {
                    let values = self.trials[n.index()].values.clone().unwrap_or_default();
                    self.update_best(n, &values);
                }
            }
            Change::StagesRecorded { number, stages } => {
                self.trial_mut(*number)?.stages = stages.clone();
            }
            Change::RunRecorded { run } => match self.runs.iter_mut().find(|r| r.id == run.id) {
                Some(earlier) => *earlier = run.clone(),
                None => self.runs.push(run.clone()),
            },
            Change::StopRequested { kill, .. } => {
                if *kill {
                    self.last_kill = logged.seq;
                }
                self.last_stop = logged.seq;
            }
            Change::SamplerStateSet { key, value } => {
                self.sampler_state.insert(key.clone(), value.clone());
            }
            Change::TrialFinished {
                number,
                state,
                values,
            } => {
                let trial = self.trial_mut(*number)?;
                let before = std::mem::replace(&mut trial.state, state.clone());
                trial.values = values.clone();
                trial.finished_at = Some(at);
                *self.counts.slot(&before) -= 1;
                *self.counts.slot(state) += 1;
                self.running.remove(number);
                match state {
                    TrialState::Completed => {
                        let values = values.clone().unwrap_or_default();
                        events.push(Event::TrialCompleted {
                            number: *number,
                            values: values.clone(),
                        });
                        self.completed.push(*number);
                        let params = &self.trials[number.index()].params;
                        match &mut self.common {
                            Some(common) => common.retain(|name| params.contains_key(name)),
                            None => {
                                let registered = &self.registered;
                                self.common = Some(
                                    (params.keys())
                                        .filter(|name| registered.contains_key(*name))
                                        .cloned()
                                        .collect(),
                                );
                            }
                        }
                        if self.update_best(*number, &values) {
                            events.push(Event::BestUpdated {
                                number: *number,
                                values,
                            });
                        }
                    }
                    TrialState::Pruned { step, reason } => events.push(Event::TrialPruned {
                        number: *number,
                        step: *step,
                        reason: reason.clone(),
                    }),
                    TrialState::Failed { error } => events.push(Event::TrialFailed {
                        number: *number,
                        error: error.clone(),
                    }),
                    TrialState::Pending | TrialState::Running => {
                        return Err(self
                            .inconsistent(format!("trial {number} finished as {}", state.name())));
                    }
                }
                events.push(Event::StudyProgress {
                    // A retry or a PBT child carries on a finished trial's place in the budget.
                    finished: (self.counts.finished()).saturating_sub(self.takers.len() as u64),
                    total: self.total,
                    completed: self.counts.completed,
                    pruned: self.counts.pruned,
                    failed: self.counts.failed,
                    best: self.best_trial().and_then(Trial::value),
                });
            }
        }
        self.cursor = logged.seq;
        Ok(())
    }

    /// Records a completion in the best trial or the Pareto front; true if it joined.
    fn update_best(&mut self, number: TrialNumber, values: &[f64]) -> bool {
        let objectives = &self.spec.objectives;
        if values.len() != objectives.len() || values.iter().any(|v| !v.is_finite()) {
            return false; // Stores refuse these; never let one become the best.
        }
        if objectives.len() == 1 {
            let better = match self.best_trial().and_then(Trial::value) {
                None => true,
                Some(best) => objectives[0].direction.better(values[0], best),
            };
            if better {
                self.best = Some(number);
            }
            return better;
        }
        let trials = &self.trials;
        let value_of = |n: TrialNumber| trials[n.index()].values.as_deref().unwrap_or_default();
        if self
            .pareto
            .iter()
            .any(|&n| dominates(objectives, value_of(n), values))
        {
            return false;
        }
        self.pareto
            .retain(|&n| !dominates(objectives, values, value_of(n)));
        self.pareto.push(number);
        true
    }

    fn trial_mut(&mut self, number: TrialNumber) -> Result<&mut Trial, Error> {
        let len = self.trials.len();
        self.trials.get_mut(number.index()).ok_or_else(|| {
            Error::Inconsistent(format!(
                "change for trial {number}, but only {len} trials exist"
            ))
        })
    }

    fn inconsistent(&self, what: String) -> Error {
        Error::Inconsistent(format!("study \"{}\": {what}", self.spec.name))
    }
}

#[cfg(test)]
mod tests;
