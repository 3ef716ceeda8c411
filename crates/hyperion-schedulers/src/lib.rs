//! Schedulers decide when a running trial stops: after each report, continue, stop it early, or
//! (population-based training) end it in favour of a child that continues a better trial.
//!
//! A scheduler reads the study's state the way a sampler does, from the
//! [`StudyView`] the runtime keeps up to date, and never touches the
//! store. What it needs beyond the view (the values at each rung, the completed trials' values at
//! each step) it folds from the study's change log as the runtime applies it
//! ([`Scheduler::observe`]): an index that a restarted process rebuilds by replaying the log, so
//! that a decision costs O(log n) and never a scan of the study.
//!
//! Every decision comes with a rationale ([`Verdict`]); the runtime writes it to the study's
//! decision log. Schedulers compose with any sampler (TPE sampling with ASHA stopping), and with
//! each other ([`Pipeline`]).
//!
//! ```
//! use hyperion_schedulers::{AshaConfig, SchedulerConfig};
//!
//! let config: SchedulerConfig = serde_json::from_str(r#"{"type": "asha", "min_resource": 1, "reduction_factor": 3}"#)?;
//! assert_eq!(config, SchedulerConfig::Asha(AshaConfig { min_resource: 1, max_resource: None, reduction_factor: 3, brackets: 1 }));
//! let scheduler = config.build(42)?;
//! # let _ = scheduler;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod halving;
mod median;
mod pbt;

use std::fmt::Debug;

use hyperion_core::{
    Change, Decision, DecisionAction, Direction, Params, StudyView, Trial, TrialNumber,
};
use serde::{Deserialize, Serialize};

pub use halving::{Asha, AshaConfig, Bracket, Hyperband, HyperbandConfig, hyperband_brackets};
pub use median::{PercentileConfig, PercentileRule};
pub use pbt::{Pbt, PbtConfig};

/// Decides, after each report of a running trial, whether it goes on.
pub trait Scheduler: Send + Sync + Debug {
    /// Folds one change of the study's log into the scheduler's index. The runtime calls it for
    /// every change, in log order from the first, right after applying it to `view`.
    fn observe(&self, view: &StudyView, change: &Change) {
        let _ = (view, change);
    }

    /// The decision about `trial`, which has just reported `step` (already in `view` and in
    /// `trial`). `None` when `step` is not a point where this scheduler decides: nothing is
    /// logged then.
    fn decide(&self, view: &StudyView, trial: &Trial, step: u64) -> Option<Verdict>;
}

/// A scheduler's decision about one trial, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Who decided: `median`, `asha`, `hyperband`, `pbt`, …
    pub policy: &'static str,
    pub action: Action,
    pub rationale: String,
}

/// What happens to the trial.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Continue,
    /// Stop it now; it ends as pruned at its last step.
    Stop,
    /// Population-based training: stop it, and start a child that restores trial `parent`'s
    /// checkpoint and trains on with `params`.
    Exploit {
        parent: TrialNumber,
        params: Params,
    },
}

impl Verdict {
    pub fn stops(&self) -> bool {
        !matches!(self.action, Action::Continue)
    }

    /// The entry of the decision log.
    pub fn decision(&self, trial: TrialNumber) -> Decision {
        let action = match &self.action {
            Action::Continue => DecisionAction::Continue,
            Action::Stop => DecisionAction::Stop,
            Action::Exploit { parent, .. } => DecisionAction::Exploit { parent: *parent },
        };
        Decision {
            trial: Some(trial),
            policy: self.policy.to_owned(),
            action,
            rationale: self.rationale.clone(),
        }
    }
}

/// Lets every trial run to the end.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStopping;

impl Scheduler for NoStopping {
    fn decide(&self, _: &StudyView, _: &Trial, _: u64) -> Option<Verdict> {
        None
    }
}

/// Several schedulers in turn: the first that stops a trial decides; otherwise the first that
/// decided at all (a logged "continue").
#[derive(Debug, Default)]
pub struct Pipeline(pub Vec<Box<dyn Scheduler>>);

impl Scheduler for Pipeline {
    fn observe(&self, view: &StudyView, change: &Change) {
        for s in &self.0 {
            s.observe(view, change);
        }
    }

    fn decide(&self, view: &StudyView, trial: &Trial, step: u64) -> Option<Verdict> {
        let mut first = None;
        for s in &self.0 {
            match s.decide(view, trial, step) {
                Some(v) if v.stops() => return Some(v),
                Some(v) => {
                    first.get_or_insert(v);
                }
                None => {}
            }
        }
        first
    }
}

/// Which scheduler to use and its settings: a study file's `early_stopping` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SchedulerConfig {
    /// Every trial runs to the end.
    None,
    /// Stop a trial whose best value so far is worse than the median of the completed trials at
    /// the same step.
    Median(PercentileConfig),
    /// As `median`, at another percentile (`percentile: 25` keeps only the best quarter).
    Percentile(PercentileConfig),
    /// Asynchronous successive halving.
    Asha(AshaConfig),
    Hyperband(HyperbandConfig),
    /// Population-based training.
    Pbt(PbtConfig),
}

impl SchedulerConfig {
    /// The scheduler, with the study's `seed` (for PBT's exploration).
    pub fn build(&self, seed: u64) -> Result<Box<dyn Scheduler>, SchedulerError> {
        Ok(match self {
            SchedulerConfig::None => Box::new(NoStopping),
            SchedulerConfig::Median(c) => Box::new(PercentileRule::new(PercentileConfig {
                percentile: Some(50.0),
                ..c.clone()
            })?),
            SchedulerConfig::Percentile(c) => {
                if c.percentile.is_none() {
                    return Err(SchedulerError::Config(
                        "percentile: give `percentile` (0 to 100)".into(),
                    ));
                }
                Box::new(PercentileRule::new(c.clone())?)
            }
            SchedulerConfig::Asha(c) => Box::new(Asha::new(c.clone())?),
            SchedulerConfig::Hyperband(c) => Box::new(Hyperband::new(c.clone())?),
            SchedulerConfig::Pbt(c) => Box::new(Pbt::new(c.clone(), seed)?),
        })
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum SchedulerError {
    #[error("invalid early stopping configuration: {0}")]
    Config(String),
}

/// A value on a "lower is better" scale for `direction`, so that every index sorts one way.
pub(crate) fn lower_is_better(direction: Direction, value: f64) -> f64 {
    match direction {
        Direction::Minimize => value,
        Direction::Maximize => -value,
    }
}

/// The first objective's direction.
pub(crate) fn direction(view: &StudyView) -> Direction {
    view.spec()
        .objectives
        .first()
        .map_or(Direction::Minimize, |o| o.direction)
}

/// Every objective's value on a "lower is better" scale.
pub(crate) fn oriented(view: &StudyView, point: &[f64]) -> Vec<f64> {
    point
        .iter()
        .zip(&view.spec().objectives)
        .map(|(&v, o)| lower_is_better(o.direction, v))
        .collect()
}

/// A point for a rationale: `(0.12, 3.4)`.
pub(crate) fn point_text(view: &StudyView, oriented_point: &[f64]) -> String {
    let raw = oriented(view, oriented_point);
    let parts: Vec<String> = raw.iter().map(|&v| num(v)).collect();
    format!("({})", parts.join(", "))
}

/// Inserts `value` into the sorted `values`.
pub(crate) fn insert_sorted(values: &mut Vec<f64>, value: f64) {
    let at = values.partition_point(|&v| v <= value);
    values.insert(at, value);
}

/// A number for a rationale: four significant decimals, or scientific notation when tiny or
/// huge (`0.4821`, `12.5`, `3.2e-7`).
pub(crate) fn num(v: f64) -> String {
    if v == 0.0 || (1e-3..1e6).contains(&v.abs()) {
        let text = format!("{v:.4}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        text.to_owned()
    } else {
        format!("{v:.3e}")
    }
}
