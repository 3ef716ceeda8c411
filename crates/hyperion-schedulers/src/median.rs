//! Median and percentile stopping (Optuna's `MedianPruner` / `PercentilePruner`, Ray's median
//! stopping rule): a trial whose best value so far is worse than a percentile of the completed
//! trials' values at the same step stops.

use std::collections::HashMap;
use std::sync::Mutex;

use hyperion_core::{Change, StudyView, Trial, TrialState, dominates_minimizing};
use serde::{Deserialize, Serialize};

use crate::{
    Action, Scheduler, SchedulerError, Verdict, direction, insert_sorted, lower_is_better, num,
    oriented, point_text,
};

/// Settings of the median and percentile rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PercentileConfig {
    /// Trials better than this percentile of the completed ones continue: 50 is the median, 25
    /// keeps the best quarter. Set by `median`; required by `percentile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentile: Option<f64>,
    /// No trial stops before this many trials have completed (default 5).
    #[serde(default = "default_startup")]
    pub n_startup_trials: u64,
    /// No trial stops before this step (default 0).
    #[serde(default)]
    pub n_warmup_steps: u64,
    /// Decide every this many steps after the warm-up (default 1).
    #[serde(default = "one")]
    pub interval_steps: u64,
    /// Decide at a step only when this many completed trials reported it (default 1).
    #[serde(default = "one")]
    pub n_min_trials: u64,
}

fn default_startup() -> u64 {
    5
}
fn one() -> u64 {
    1
}

impl Default for PercentileConfig {
    fn default() -> Self {
        PercentileConfig {
            percentile: Some(50.0),
            n_startup_trials: default_startup(),
            n_warmup_steps: 0,
            interval_steps: 1,
            n_min_trials: 1,
        }
    }
}

/// The median or percentile rule.
#[derive(Debug)]
pub struct PercentileRule {
    config: PercentileConfig,
    percentile: f64,
    index: Mutex<Index>,
}

/// The completed trials' values at each step, one sorted list per objective, lower is better.
#[derive(Debug, Default)]
struct Index {
    by_step: HashMap<u64, Vec<Vec<f64>>>,
    completed: u64,
}

impl PercentileRule {
    pub fn new(config: PercentileConfig) -> Result<Self, SchedulerError> {
        let percentile = config.percentile.unwrap_or(50.0);
        if !(0.0..=100.0).contains(&percentile) {
            return Err(SchedulerError::Config(format!(
                "percentile is {percentile}; it must be between 0 and 100"
            )));
        }
        if config.interval_steps == 0 {
            return Err(SchedulerError::Config(
                "interval_steps must be at least 1".into(),
            ));
        }
        Ok(PercentileRule {
            config,
            percentile,
            index: Mutex::new(Index::default()),
        })
    }

    fn name(&self) -> &'static str {
        if self.percentile == 50.0 {
            "median"
        } else {
            "percentile"
        }
    }
}

impl Scheduler for PercentileRule {
    fn observe(&self, view: &StudyView, change: &Change) {
        let Change::TrialFinished {
            number,
            state: TrialState::Completed,
            ..
        } = change
        else {
            return;
        };
        let Some(trial) = view.trial(*number) else {
            return;
        };
        let objectives = view.spec().objectives.len();
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        index.completed += 1;
        for &step in trial.intermediate.keys() {
            let Some(point) = trial.intermediate_point(step, objectives) else {
                continue;
            };
            let lists = index
                .by_step
                .entry(step)
                .or_insert_with(|| vec![Vec::new(); objectives]);
            for (list, value) in lists.iter_mut().zip(oriented(view, &point)) {
                insert_sorted(list, value);
            }
        }
    }

    fn decide(&self, view: &StudyView, trial: &Trial, step: u64) -> Option<Verdict> {
        let c = &self.config;
        if step < c.n_warmup_steps || !(step - c.n_warmup_steps).is_multiple_of(c.interval_steps) {
            return None;
        }
        let index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        if index.completed < c.n_startup_trials {
            return None;
        }
        let lists = index.by_step.get(&step)?;
        let completed = lists[0].len();
        if (completed as u64) < c.n_min_trials.max(1) {
            return None;
        }
        // The trial's best value so far on each objective, against each objective's percentile.
        let objectives = lists.len();
        let mut best = vec![f64::INFINITY; objectives];
        for (s, &first) in trial.intermediate.range(..=step) {
            let others = trial
                .intermediate_others
                .get(s)
                .map_or(&[][..], Vec::as_slice);
            if others.len() + 1 != objectives {
                continue; // not every objective reported at this step
            }
            let values = std::iter::once(first).chain(others.iter().copied());
            for ((b, v), o) in best.iter_mut().zip(values).zip(&view.spec().objectives) {
                *b = b.min(lower_is_better(o.direction, v));
            }
        }
        if best.iter().any(|b| b.is_infinite()) {
            return None;
        }
        let threshold: Vec<f64> = lists
            .iter()
            .map(|l| percentile(l, self.percentile))
            .collect();
        let stop = if objectives == 1 {
            best[0] > threshold[0]
        } else {
            dominates_minimizing(&threshold, &best)
        };
        let (action, verb) = match (stop, objectives) {
            (true, 1) => (Action::Stop, "is worse than"),
            (false, 1) => (Action::Continue, "is no worse than"),
            (true, _) => (Action::Stop, "are dominated by"),
            (false, _) => (Action::Continue, "are not dominated by"),
        };
        let (what, best, threshold) = match objectives {
            1 => (
                "value",
                num(lower_is_better(direction(view), best[0])),
                num(lower_is_better(direction(view), threshold[0])),
            ),
            _ => (
                "values",
                point_text(view, &best),
                point_text(view, &threshold),
            ),
        };
        Some(Verdict {
            policy: self.name(),
            action,
            rationale: format!(
                "best {what} so far {best} {verb} the {}th percentile {threshold} of {completed} \
                 completed trials at step {step}",
                self.percentile,
            ),
        })
    }
}

/// The `p`th percentile of sorted `values`, interpolated linearly (as NumPy does).
fn percentile(values: &[f64], p: f64) -> f64 {
    let rank = p / 100.0 * (values.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (rank - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 4.0);
        assert_eq!(percentile(&v, 25.0), 1.75);
        assert_eq!(percentile(&[7.0], 50.0), 7.0);
    }
}
