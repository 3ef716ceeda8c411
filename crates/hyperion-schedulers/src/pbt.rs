//! Population-based training (Jaderberg et al. 2017), asynchronous as in Ray Tune.
//!
//! The population is the study's running trials. Every `perturbation_interval` steps of its own
//! training, a trial is ranked among them by its latest value. One in the bottom
//! `quantile_fraction` is *exploited*: it stops, and a child trial takes its place in the
//! population — the child restores the checkpoint of a trial drawn from the top quantile (its
//! parent, `HYPERION_RESTORE_FROM` for process trials) and trains on with the parent's
//! hyperparameters *explored*: each one resampled with `resample_probability`, else multiplied
//! by one of `perturbation_factors` (a neighbouring choice for categoricals). The lineage
//! (parent, generation) is recorded with the child.

use std::collections::HashMap;
use std::sync::Mutex;

use hyperion_core::{
    Change, Distribution, ParamValue, Params, StudyView, Trial, TrialNumber, TrialState,
};
use hyperion_samplers::{from_unit, stream};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::{Action, Scheduler, SchedulerError, Verdict, direction, lower_is_better, num};

/// Settings of population-based training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PbtConfig {
    /// Trials trained together. A study file uses it as the default trial budget and
    /// concurrency: every member must run at once to be compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub population_size: Option<u64>,
    /// Steps a trial trains between two chances to be exploited (required).
    pub perturbation_interval: u64,
    /// The bottom fraction that is exploited, and the top fraction it copies (default 0.25).
    #[serde(default = "quarter")]
    pub quantile_fraction: f64,
    /// Chance that a hyperparameter is resampled rather than perturbed (default 0.25).
    #[serde(default = "quarter")]
    pub resample_probability: f64,
    /// A perturbed number is multiplied by one of these, at random (default [0.8, 1.2]).
    #[serde(default = "factors")]
    pub perturbation_factors: [f64; 2],
}

fn quarter() -> f64 {
    0.25
}
fn factors() -> [f64; 2] {
    [0.8, 1.2]
}

/// Population-based training.
#[derive(Debug)]
pub struct Pbt {
    config: PbtConfig,
    seed: u64,
    /// Each running trial's latest value, lower is better.
    latest: Mutex<HashMap<TrialNumber, f64>>,
}

impl Pbt {
    pub fn new(config: PbtConfig, seed: u64) -> Result<Self, SchedulerError> {
        let bad = |m: String| Err(SchedulerError::Config(m));
        if config.perturbation_interval == 0 {
            return bad("perturbation_interval must be at least 1".into());
        }
        if !(config.quantile_fraction > 0.0 && config.quantile_fraction <= 0.5) {
            return bad(format!(
                "quantile_fraction is {}; it must be in (0, 0.5]",
                config.quantile_fraction
            ));
        }
        if !(0.0..=1.0).contains(&config.resample_probability) {
            return bad(format!(
                "resample_probability is {}; it must be in [0, 1]",
                config.resample_probability
            ));
        }
        if config
            .perturbation_factors
            .iter()
            .any(|f| !(*f > 0.0 && f.is_finite()))
        {
            return bad("perturbation_factors must be positive numbers".into());
        }
        if config.population_size == Some(0) {
            return bad("population_size must be at least 1".into());
        }
        Ok(Pbt {
            config,
            seed,
            latest: Mutex::new(HashMap::new()),
        })
    }

    /// The parent's params, explored: each resampled or perturbed. Parameters that decide
    /// whether others are active keep their value, so the child's params stay a valid point.
    fn explore(&self, view: &StudyView, parent: &Params, rng: &mut impl RngExt) -> Params {
        let space = &view.spec().space;
        let is_parent = |name: &str| {
            space
                .params()
                .iter()
                .any(|p| p.condition.as_ref().is_some_and(|c| c.parent == name))
        };
        let mut params = parent.clone();
        for (name, value) in parent {
            let Some(distribution) = space
                .get(name)
                .map(|p| &p.distribution)
                .or_else(|| view.distribution(name))
            else {
                continue;
            };
            if is_parent(name) {
                continue;
            }
            let u: f64 = rng.random();
            let explored = if u < self.config.resample_probability {
                from_unit(distribution, rng.random())
            } else {
                let factor = self.config.perturbation_factors[usize::from(rng.random::<bool>())];
                perturb(distribution, value, factor)
            };
            params.insert(name.clone(), explored);
        }
        params
    }
}

/// `value` multiplied by `factor`, kept in `distribution` (on its step grid); a categorical
/// moves to the neighbouring choice (down for a factor below 1, up otherwise).
fn perturb(distribution: &Distribution, value: &ParamValue, factor: f64) -> ParamValue {
    match (distribution, value) {
        (Distribution::Float(d), _) => {
            let Some(x) = value.as_f64() else {
                return value.clone();
            };
            let mut y = (x * factor).clamp(d.low, d.high);
            if let Some(step) = d.step {
                y = (d.low + ((y - d.low) / step).round() * step).clamp(d.low, d.high);
            }
            ParamValue::Float(y)
        }
        (Distribution::Int(d), ParamValue::Int(x)) => {
            let mut y = (*x as f64 * factor).round() as i64;
            if y == *x {
                y += if factor < 1.0 { -d.step } else { d.step };
            }
            let y = d.low + ((y - d.low) as f64 / d.step as f64).round() as i64 * d.step;
            ParamValue::Int(y.clamp(d.low, d.high - (d.high - d.low) % d.step))
        }
        (Distribution::Categorical(d), _) => {
            let Some(i) = d.index_of(value) else {
                return value.clone();
            };
            let j = if factor < 1.0 {
                i.saturating_sub(1)
            } else {
                (i + 1).min(d.choices.len() - 1)
            };
            d.choices[j].clone()
        }
        _ => value.clone(),
    }
}

impl Scheduler for Pbt {
    fn observe(&self, view: &StudyView, change: &Change) {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        match change {
            Change::MetricReported { number, value, .. }
                if view
                    .trial(*number)
                    .is_some_and(|t| t.state == TrialState::Running) =>
            {
                latest.insert(*number, lower_is_better(direction(view), *value));
            }
            Change::TrialFinished { number, .. } => {
                latest.remove(number);
            }
            _ => {}
        }
    }

    fn decide(&self, view: &StudyView, trial: &Trial, step: u64) -> Option<Verdict> {
        let interval = self.config.perturbation_interval;
        let (&first, _) = trial.intermediate.first_key_value()?;
        // Steps it has trained itself (a child's first report follows its restored step).
        let trained = |s: u64| s - first + 1;
        let before = trial.intermediate.range(..step).next_back();
        let trained_before = before.map_or(0, |(&s, _)| trained(s));
        if trained(step) / interval <= trained_before / interval {
            return None;
        }
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let mut members: Vec<(f64, TrialNumber)> = latest.iter().map(|(&n, &v)| (v, n)).collect();
        drop(latest);
        if members.len() < 2 {
            return None;
        }
        members.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let n = members.len();
        let q = ((n as f64 * self.config.quantile_fraction).ceil() as usize).clamp(1, n / 2);
        let rank = members.iter().position(|&(_, m)| m == trial.number)? + 1;
        let shown = |v: f64| num(lower_is_better(direction(view), v));
        let value = shown(members[rank - 1].0);
        if rank <= n - q {
            return Some(Verdict {
                policy: "pbt",
                action: Action::Continue,
                rationale: format!(
                    "step {step}: value {value} ranks {rank} of {n} running trials, above the bottom {q}"
                ),
            });
        }
        let mut rng = stream(self.seed, trial.number.0, 0x0070_6274 ^ step);
        let (parent_value, parent) = members[rng.random_range(0..q)];
        let parent_trial = view.trial(parent)?;
        let params = self.explore(view, &parent_trial.params, &mut rng);
        Some(Verdict {
            policy: "pbt",
            action: Action::Exploit { parent, params },
            rationale: format!(
                "step {step}: value {value} ranks {rank} of {n} running trials, in the bottom {q}; \
                 continues from trial {parent} (value {}, step {}) with explored hyperparameters",
                shown(parent_value),
                parent_trial.last_report().map_or(0, |(s, _)| s)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use hyperion_core::{CategoricalDistribution, FloatDistribution, IntDistribution};

    use super::*;

    #[test]
    fn perturbation_stays_in_the_distribution() {
        let f = Distribution::Float(FloatDistribution::new(0.0, 1.0).step(0.1));
        let up = perturb(&f, &ParamValue::Float(0.5), 1.2);
        assert!(
            f.contains(&up) && (up.as_f64().unwrap() - 0.6).abs() < 1e-9,
            "{up:?}"
        );
        assert_eq!(
            perturb(&f, &ParamValue::Float(0.95), 1.2),
            ParamValue::Float(1.0)
        );
        let i = Distribution::Int(IntDistribution::new(1, 10));
        assert_eq!(perturb(&i, &ParamValue::Int(2), 1.2), ParamValue::Int(3));
        assert_eq!(perturb(&i, &ParamValue::Int(1), 0.8), ParamValue::Int(1));
        assert_eq!(perturb(&i, &ParamValue::Int(10), 1.2), ParamValue::Int(10));
        let c = Distribution::Categorical(CategoricalDistribution::new(["a", "b", "c"]));
        assert_eq!(perturb(&c, &"b".into(), 0.8), "a".into());
        assert_eq!(perturb(&c, &"c".into(), 1.2), "c".into());
    }
}
