use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyperion_core::{
    Change, Decision, Distribution, Event, LoggedChange, ParamValue, Params, Proposal, StudyId,
    StudySpec, StudyView, Timestamp, Trial, TrialId, TrialNumber, TrialState,
};

use crate::{
    Created, NewTrial, Store, StoreError, StudyRecord, check_log_only, check_param, check_report,
    check_values, lease_end, retry_depth, rules, spec_difference, stale_error,
};

/// A store in this process's memory: fast, shared by threads, gone when the process ends.
/// Useful for tests, benchmarks and throwaway in-process studies; not for anything to resume.
///
/// One lock guards everything, so each method is trivially atomic. Each study keeps its change
/// log and a [`StudyView`] folded from it, which answers the queries.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_study: u64,
    next_trial: u64,
    names: BTreeMap<String, StudyId>,
    studies: HashMap<StudyId, StudyData>,
}

#[derive(Debug)]
struct StudyData {
    record: StudyRecord,
    log: Vec<LoggedChange>,
    view: StudyView,
    /// Pending trial numbers, lowest first.
    pending: std::collections::BTreeSet<TrialNumber>,
    /// Running trials with a lease, and when it ends.
    alive: BTreeMap<TrialNumber, Timestamp>,
    /// Scratch space for the view's events, which the store does not need.
    events: Vec<Event>,
}

impl StudyData {
    fn record(&mut self, change: Change) -> Result<(), StoreError> {
        let logged = LoggedChange {
            seq: self.log.len() as u64 + 1,
            at: Timestamp::now(),
            change,
        };
        self.view
            .apply(&logged, &mut self.events)
            .map_err(|e| StoreError::Inconsistent(e.to_string()))?;
        self.events.clear();
        self.log.push(logged);
        Ok(())
    }

    fn insert_trial(
        &mut self,
        next_trial: &mut u64,
        new: &NewTrial,
        params: Arc<Params>,
    ) -> Result<TrialNumber, StoreError> {
        let number = TrialNumber(self.view.trials().len() as u64);
        *next_trial += 1;
        let trial = new.trial(TrialId(*next_trial), number, params, Timestamp::now());
        self.record(crate::created(&trial))?;
        if new.pending {
            self.pending.insert(number);
        } else if let Some(lease) = new.lease {
            self.alive
                .insert(number, lease_end(Timestamp::now(), lease));
        }
        Ok(number)
    }

    fn trial(&self, number: TrialNumber) -> Result<&Trial, StoreError> {
        self.view
            .trial(number)
            .ok_or(StoreError::TrialNotFound { number })
    }

    fn running(&self, number: TrialNumber) -> Result<&Trial, StoreError> {
        let trial = self.trial(number)?;
        match trial.state {
            TrialState::Running => Ok(trial),
            ref state => Err(StoreError::NotRunning {
                number,
                state: state.name(),
            }),
        }
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn with<T>(
        &self,
        study: StudyId,
        f: impl FnOnce(&mut StudyData, &mut u64) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Inner {
            studies,
            next_trial,
            ..
        } = &mut *inner;
        let data = studies
            .get_mut(&study)
            .ok_or(StoreError::StudyIdNotFound(study))?;
        f(data, next_trial)
    }
}

impl Store for MemoryStore {
    fn location(&self) -> String {
        "the in-memory store".into()
    }

    fn create_study(&self, spec: &StudySpec) -> Result<StudyRecord, StoreError> {
        spec.validate()?;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = inner.names.get(&spec.name) {
            let existing = &inner.studies[id].record;
            return match spec_difference(&existing.spec, spec) {
                None => Ok(existing.clone()),
                Some(what) => Err(StoreError::SpecMismatch {
                    name: spec.name.clone(),
                    what,
                }),
            };
        }
        inner.next_study += 1;
        let id = StudyId(inner.next_study);
        let record = StudyRecord {
            id,
            spec: spec.clone(),
            created_at: Timestamp::now(),
        };
        let data = StudyData {
            record: record.clone(),
            log: Vec::new(),
            view: StudyView::new(id, spec.clone()),
            pending: Default::default(),
            alive: BTreeMap::new(),
            events: Vec::new(),
        };
        inner.names.insert(spec.name.clone(), id);
        inner.studies.insert(id, data);
        Ok(record)
    }

    fn study(&self, name: &str) -> Result<StudyRecord, StoreError> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = inner
            .names
            .get(name)
            .ok_or_else(|| StoreError::StudyNotFound {
                name: name.to_owned(),
            })?;
        Ok(inner.studies[id].record.clone())
    }

    fn studies(&self) -> Result<Vec<StudyRecord>, StoreError> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Ok(inner
            .names
            .values()
            .map(|id| inner.studies[id].record.clone())
            .collect())
    }

    fn delete_study(&self, name: &str) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = inner
            .names
            .remove(name)
            .ok_or_else(|| StoreError::StudyNotFound {
                name: name.to_owned(),
            })?;
        inner.studies.remove(&id);
        Ok(())
    }

    fn create_trial(
        &self,
        study: StudyId,
        new: &NewTrial,
        max_trials: Option<u64>,
        propose: &mut dyn FnMut(TrialNumber) -> Option<Proposal>,
    ) -> Result<Created, StoreError> {
        self.with(study, |data, next_trial| {
            if !rules::fits_budget(new, data.view.budget_used(), max_trials) {
                return Ok(Created::LimitReached);
            }
            let Some(proposal) = propose(TrialNumber(data.view.trials().len() as u64)) else {
                return Ok(Created::Declined);
            };
            let number = data.insert_trial(next_trial, new, Arc::new(proposal.params))?;
            for (key, value) in proposal.state {
                data.record(Change::SamplerStateSet { key, value })?;
            }
            Ok(Created::Trial(data.trial(number)?.clone()))
        })
    }

    fn claim_pending(
        &self,
        study: StudyId,
        lease: Option<Duration>,
    ) -> Result<Option<Trial>, StoreError> {
        self.with(study, |data, _| {
            let Some(number) = data.pending.pop_first() else {
                return Ok(None);
            };
            data.record(Change::TrialStarted { number })?;
            if let Some(lease) = lease {
                data.alive
                    .insert(number, lease_end(Timestamp::now(), lease));
            }
            Ok(Some(data.trial(number)?.clone()))
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
        self.with(study, |data, _| {
            let already_set = data.running(number)?.params.contains_key(name);
            let registered = data.view.distribution(name);
            if check_param(number, name, value, distribution, already_set, registered)? {
                data.record(Change::ParamRegistered {
                    name: name.to_owned(),
                    distribution: distribution.clone(),
                })?;
            }
            data.record(Change::ParamSet {
                number,
                name: name.to_owned(),
                value: value.clone(),
            })
        })
    }

    fn heartbeat(
        &self,
        study: StudyId,
        numbers: &[TrialNumber],
        lease: Duration,
    ) -> Result<(), StoreError> {
        self.with(study, |data, _| {
            let until = lease_end(Timestamp::now(), lease);
            for n in numbers {
                if let Some(end) = data.alive.get_mut(n) {
                    *end = until;
                }
            }
            Ok(())
        })
    }

    fn fail_stale(&self, study: StudyId, max_retries: u32) -> Result<Vec<TrialNumber>, StoreError> {
        self.with(study, |data, next_trial| {
            let now = Timestamp::now();
            let stale: Vec<(TrialNumber, Timestamp)> = data
                .alive
                .iter()
                .filter(|(_, end)| **end < now)
                .map(|(n, end)| (*n, *end))
                .collect();
            for &(number, until) in &stale {
                data.alive.remove(&number);
                let state = TrialState::Failed {
                    error: stale_error(until),
                };
                data.record(Change::TrialFinished {
                    number,
                    state,
                    values: None,
                })?;
                let trial = data.trial(number)?.clone();
                let view = &data.view;
                let depth = retry_depth(number, |n| view.trial(n).and_then(|t| t.retry_of));
                if let Some(new) = rules::retry(&trial, depth, max_retries) {
                    data.insert_trial(next_trial, &new, trial.params.clone())?;
                }
            }
            Ok(stale.into_iter().map(|(n, _)| n).collect())
        })
    }

    fn log(&self, study: StudyId, change: &Change) -> Result<(), StoreError> {
        check_log_only(change)?;
        self.with(study, |data, _| data.record(change.clone()))
    }

    fn decisions(&self, study: StudyId) -> Result<Vec<Decision>, StoreError> {
        self.with(study, |data, _| {
            let decisions = data.log.iter().filter_map(|c| match &c.change {
                Change::DecisionRecorded(d) => Some(d.clone()),
                _ => None,
            });
            Ok(decisions.collect())
        })
    }

    fn report(
        &self,
        study: StudyId,
        number: TrialNumber,
        step: u64,
        values: &[f64],
    ) -> Result<(), StoreError> {
        self.with(study, |data, _| {
            data.running(number)?;
            check_report(number, step, values, data.view.spec().objectives.len())?;
            data.record(Change::MetricReported {
                number,
                step,
                value: values[0],
                others: values[1..].to_vec(),
            })
        })
    }

    fn set_user_attr(
        &self,
        study: StudyId,
        number: TrialNumber,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.with(study, |data, _| {
            data.trial(number)?;
            data.record(Change::UserAttrSet {
                number,
                key: key.to_owned(),
                value: value.clone(),
            })
        })
    }

    fn keep_metrics(
        &self,
        study: StudyId,
        number: TrialNumber,
        metrics: &BTreeMap<String, f64>,
    ) -> Result<(), StoreError> {
        self.with(study, |data, _| {
            data.trial(number)?;
            data.record(Change::MetricsKept {
                number,
                metrics: rules::finite(metrics),
            })
        })
    }

    fn finish_trial(
        &self,
        study: StudyId,
        number: TrialNumber,
        state: TrialState,
        values: Option<Vec<f64>>,
    ) -> Result<Trial, StoreError> {
        self.with(study, |data, _| {
            rules::check_unfinished(number, data.trial(number)?.state.name())?;
            check_values(
                number,
                &state,
                values.as_deref(),
                data.record.spec.objectives.len(),
            )?;
            data.pending.remove(&number);
            data.alive.remove(&number);
            data.record(Change::TrialFinished {
                number,
                state,
                values,
            })?;
            Ok(data.trial(number)?.clone())
        })
    }

    fn revise_values(
        &self,
        study: StudyId,
        number: TrialNumber,
        values: &[f64],
        version: u32,
    ) -> Result<(), StoreError> {
        self.with(study, |data, _| {
            let state = data.trial(number)?.state.name();
            crate::check_revision(number, state, values, data.record.spec.objectives.len())?;
            data.record(Change::ValuesRevised {
                number,
                values: values.to_vec(),
                version,
            })
        })
    }

    fn changes_since(&self, study: StudyId, cursor: u64) -> Result<Vec<LoggedChange>, StoreError> {
        self.with(study, |data, _| {
            Ok(data.log.get(cursor as usize..).unwrap_or_default().to_vec())
        })
    }

    fn last_activity(&self, study: StudyId) -> Result<Option<Timestamp>, StoreError> {
        self.with(study, |data, _| Ok(data.log.last().map(|c| c.at)))
    }

    fn trial(&self, study: StudyId, number: TrialNumber) -> Result<Trial, StoreError> {
        self.with(study, |data, _| data.trial(number).cloned())
    }

    fn trials(&self, study: StudyId) -> Result<Vec<Trial>, StoreError> {
        self.with(study, |data, _| Ok(data.view.trials().to_vec()))
    }

    fn best_trial(&self, study: StudyId) -> Result<Option<Trial>, StoreError> {
        self.with(study, |data, _| Ok(data.view.best_trial().cloned()))
    }
}
