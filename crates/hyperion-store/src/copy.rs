//! Copying a study from one store to another (`hyperion copy`, SQLite ↔ PostgreSQL): its log
//! is replayed through the target's own writes, so the copy has the same trial numbers,
//! states, params, intermediate values, attributes, kept metrics, settings, decisions and
//! sampler state, in the same order, whatever the two backends. Times are the copy's own.

use std::collections::HashMap;
use std::time::Duration;

use hyperion_core::{Change, Distribution, Proposal, TrialState};

use crate::{Created, NewTrial, Store, StoreError, StudyRecord};

/// What a copy made.
#[derive(Clone, Debug)]
pub struct Copied {
    pub study: StudyRecord,
    pub trials: u64,
    pub changes: u64,
}

/// Copies study `name` of `from` into `to` as `as_name`. A study of that name in `to` is
/// refused, and a copy that fails half way is removed from `to`. Trials running in `from`
/// arrive with a spent lease: the target's next run fails and retries them, as after a crash.
pub fn copy_study(
    from: &dyn Store,
    to: &dyn Store,
    name: &str,
    as_name: &str,
) -> Result<Copied, StoreError> {
    let source = from.study(name)?;
    match to.study(as_name) {
        Ok(_) => {
            return Err(StoreError::StudyExists {
                name: as_name.to_owned(),
            });
        }
        Err(StoreError::StudyNotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let mut spec = source.spec.clone();
    spec.name = as_name.to_owned();
    let target = to.create_study(&spec)?;
    let changes = from.changes_since(source.id, 0)?;
    match replay(to, &target, &spec, changes.iter().map(|c| &c.change)) {
        Ok(trials) => Ok(Copied {
            study: target,
            trials,
            changes: changes.len() as u64,
        }),
        Err(e) => {
            let _ = to.delete_study(as_name);
            Err(e)
        }
    }
}

fn replay<'c>(
    to: &dyn Store,
    target: &StudyRecord,
    spec: &hyperion_core::StudySpec,
    changes: impl Iterator<Item = &'c Change>,
) -> Result<u64, StoreError> {
    let id = target.id;
    let spent = Some(Duration::ZERO);
    let mut distributions: HashMap<String, Distribution> = HashMap::new();
    let mut trials = 0;
    for change in changes {
        match change {
            Change::TrialCreated {
                number,
                state,
                params,
                parent,
                depth,
                retry_of,
                ..
            } => {
                let new = NewTrial {
                    pending: *state == TrialState::Pending,
                    lease: spent,
                    parent: *parent,
                    depth: *depth,
                    retry_of: *retry_of,
                };
                let mut propose = |n| (n == *number).then(|| Proposal::from((**params).clone()));
                match to.create_trial(id, &new, None, &mut propose)? {
                    Created::Trial(_) => trials += 1,
                    _ => return Err(out_of_step(format!("trial {number} could not be created"))),
                }
            }
            Change::TrialStarted { number } => match to.claim_pending(id, spent)? {
                Some(t) if t.number == *number => {}
                _ => return Err(out_of_step(format!("trial {number} could not be started"))),
            },
            Change::ParamRegistered { name, distribution } => {
                distributions.insert(name.clone(), distribution.clone());
            }
            Change::ParamSet {
                number,
                name,
                value,
            } => {
                let distribution = distributions
                    .get(name)
                    .cloned()
                    .or_else(|| spec.space.get(name).map(|p| p.distribution.clone()))
                    .ok_or_else(|| out_of_step(format!("param {name} has no distribution")))?;
                to.set_param(id, *number, name, value, &distribution)?;
            }
            Change::MetricReported {
                number,
                step,
                value,
                others,
            } => {
                let values: Vec<f64> = std::iter::once(*value)
                    .chain(others.iter().copied())
                    .collect();
                to.report(id, *number, *step, &values)?;
            }
            Change::UserAttrSet { number, key, value } => {
                to.set_user_attr(id, *number, key, value)?;
            }
            Change::MetricsKept { number, metrics } => to.keep_metrics(id, *number, metrics)?,
            Change::ValuesRevised {
                number,
                values,
                version,
            } => to.revise_values(id, *number, values, *version)?,
            Change::TrialFinished {
                number,
                state,
                values,
            } => {
                to.finish_trial(id, *number, state.clone(), values.clone())?;
            }
            other => to.log(id, other)?,
        }
    }
    Ok(trials)
}

fn out_of_step(what: String) -> StoreError {
    StoreError::Inconsistent(format!("copying the log: {what}"))
}
