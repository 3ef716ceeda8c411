//! The `pruning` suite: early stopping on multi-fidelity problems with simulated learning curves
//! (a simulator, so that thousands of trials of 27 epochs run in seconds), and a real
//! scikit-learn MLP as a sanity check. `bench/optuna/pruning.py` runs the same problems with
//! Optuna's pruners; both must stay in step (the curve model, the constants, the budgets).
//!
//! The curve model: a trial has a quality `q` (a standard function of its params, in [0, 1],
//! 0 at the optimum) and a `step_size` on a log scale, `u = (log10(step_size) + 3) / 3`. Its
//! loss starts at 2 and decays exponentially toward the floor `q + 0.5 (u − 0.5)²` at the rate
//! `0.05 + 0.25 u` per epoch, and is observed with Gaussian noise (σ = 0.02). Large steps learn
//! fast but settle high, so curves cross: the short-horizon trap early stopping has to survive.
//! Regret is the noiseless final loss of the trial with the best observed final loss, minus the
//! best final loss any configuration reaches.

use std::sync::Arc;

use hyperion::schedulers::{AshaConfig, HyperbandConfig, PbtConfig, PercentileConfig};
use hyperion::{
    FloatDistribution, MemoryStore, Outcome, Params, SamplerConfig, SchedulerConfig, SearchSpace,
    Study,
};
use serde_json::json;

use crate::tpe::{Problem, problems};

pub const EPOCHS: u64 = 27;
const START: f64 = 2.0;
const NOISE: f64 = 0.02;
/// Points of the regret-against-epochs curve each run reports: fractions k / GRID of the budget.
const GRID: usize = 60;

/// A problem of the suite: a standard function and how to squash its regret into [0, 1].
pub struct CurveProblem {
    pub base: Problem,
    /// `q = ln(1 + regret) / ln(1 + scale)`.
    pub scale: f64,
}

pub fn curve_problems() -> Vec<CurveProblem> {
    let scales = [("hartmann6", 3.33), ("branin", 310.0), ("mixed", 60.0)];
    problems()
        .into_iter()
        .filter_map(|base| {
            let (_, scale) = scales.iter().find(|(n, _)| *n == base.name)?;
            Some(CurveProblem {
                base,
                scale: *scale,
            })
        })
        .collect()
}

impl CurveProblem {
    pub fn space(&self) -> SearchSpace {
        let mut params = self.base.space.params().to_vec();
        let step = SearchSpace::builder()
            .param("step_size", FloatDistribution::new(1e-3, 1.0).log())
            .build()
            .expect("valid");
        params.extend(step.params().iter().cloned());
        SearchSpace::new(params).expect("valid")
    }

    /// The loss floor and the decay rate of a configuration.
    pub fn dynamics(&self, params: &Params) -> (f64, f64) {
        let regret = (self.base.regret)(params).max(0.0);
        let q = (1.0 + regret).ln() / (1.0 + self.scale).ln();
        let u = (params["step_size"].as_f64().unwrap_or(1.0).log10() + 3.0) / 3.0;
        (q + 0.5 * (u - 0.5).powi(2), 0.05 + 0.25 * u)
    }
}

/// One epoch of training from `loss`.
pub fn train(loss: f64, (floor, rate): (f64, f64)) -> f64 {
    floor + (loss - floor) * (1.0 - rate)
}

/// The best final loss any configuration reaches (q = 0, the best step size).
pub fn optimum() -> f64 {
    (0..=100_000)
        .map(|i| {
            let u = i as f64 / 100_000.0;
            let dynamics = (0.5 * (u - 0.5).powi(2), 0.05 + 0.25 * u);
            (0..EPOCHS).fold(START, |loss, _| train(loss, dynamics))
        })
        .fold(f64::INFINITY, f64::min)
}

/// Standard normal noise for (seed, trial, epoch), from a hash (Box–Muller).
fn noise(seed: u64, trial: u64, epoch: u64) -> f64 {
    let mut z = seed
        ^ trial.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ epoch.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    let mut next = || {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = z;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((x ^ (x >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let (a, b) = (next().max(1e-300), next());
    (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
}

pub fn scheduler(strategy: &str) -> SchedulerConfig {
    match strategy {
        "median" => SchedulerConfig::Median(PercentileConfig::default()),
        "asha" => SchedulerConfig::Asha(AshaConfig {
            min_resource: 1,
            max_resource: Some(EPOCHS),
            reduction_factor: 3,
            brackets: 1,
        }),
        "hyperband" => SchedulerConfig::Hyperband(HyperbandConfig {
            min_resource: 1,
            max_resource: EPOCHS,
            reduction_factor: 3,
        }),
        "pbt" => SchedulerConfig::Pbt(PbtConfig {
            population_size: Some(PBT_POPULATION),
            perturbation_interval: 3,
            quantile_fraction: 0.25,
            resample_probability: 0.25,
            perturbation_factors: [0.8, 1.2],
        }),
        _ => SchedulerConfig::None,
    }
}

const PBT_POPULATION: u64 = 16;

/// Tracks the best completed trial (by observed final loss) against epochs spent.
struct Tracker {
    optimum: f64,
    budget: u64,
    epochs: u64,
    best_observed: f64,
    /// (epochs spent, regret) each time the best trial changed.
    history: Vec<(u64, f64)>,
}

impl Tracker {
    fn new(budget: u64) -> Self {
        Tracker {
            optimum: optimum(),
            budget,
            epochs: 0,
            best_observed: f64::INFINITY,
            history: Vec::new(),
        }
    }

    fn epoch(&mut self) {
        self.epochs += 1;
    }

    fn completed(&mut self, observed: f64, loss: f64) {
        if observed < self.best_observed {
            self.best_observed = observed;
            self.history.push((self.epochs, loss - self.optimum));
        }
    }

    /// The epochs spent, and the regret once k / GRID of the budget was spent (k = 1..=GRID).
    fn finish(self) -> (u64, Vec<f64>) {
        let grid = (1..=GRID as u64)
            .map(|k| {
                let spent = (k * self.budget).div_ceil(GRID as u64);
                let known = self.history.iter().take_while(|(e, _)| *e <= spent).last();
                known.map_or(f64::INFINITY, |(_, r)| *r)
            })
            .collect();
        (self.epochs, grid)
    }
}

/// One study of `strategy` on `problem` until `budget` epochs are spent; returns the epochs spent
/// and the regret at each point of the grid.
pub fn simulate(problem: &CurveProblem, strategy: &str, seed: u64, budget: u64) -> (u64, Vec<f64>) {
    let study = Study::builder(problem.base.name)
        .minimize("loss")
        .space(problem.space())
        .sampler(SamplerConfig::Random)
        .early_stopping(scheduler(strategy))
        .seed(seed)
        .store(Arc::new(MemoryStore::new()))
        .open()
        .expect("opens");
    let mut tracker = Tracker::new(budget);
    if strategy == "pbt" {
        return simulate_pbt(problem, &study, seed, tracker);
    }
    while tracker.epochs < budget {
        let mut trial = study.ask().expect("ask");
        let dynamics = problem.dynamics(trial.params());
        let mut loss = START;
        let mut observed = loss;
        let mut pruned = false;
        for epoch in 1..=EPOCHS {
            loss = train(loss, dynamics);
            observed = loss + NOISE * noise(seed, trial.number().0, epoch);
            tracker.epoch();
            trial.report(epoch, observed).expect("report");
            if trial.should_prune() {
                pruned = true;
                break;
            }
        }
        let number = trial.number();
        let outcome = if pruned {
            Outcome::Pruned {
                reason: trial.prune_reason().unwrap_or_default().to_owned(),
            }
        } else {
            tracker.completed(observed, loss);
            Outcome::Completed(vec![observed])
        };
        drop(trial);
        study.tell(number, outcome).expect("tell");
    }
    tracker.finish()
}

/// PBT needs its population training side by side: every member trains one epoch in turn; an
/// exploited member's child takes its place with the parent's loss (its checkpoint).
fn simulate_pbt(
    problem: &CurveProblem,
    study: &Study,
    seed: u64,
    mut tracker: Tracker,
) -> (u64, Vec<f64>) {
    struct Member<'s> {
        trial: hyperion::ActiveTrial<'s>,
        epoch: u64,
        loss: f64,
        observed: f64,
    }
    let mut checkpoints = std::collections::HashMap::new();
    let mut members: Vec<Member<'_>> = (0..PBT_POPULATION)
        .map(|_| Member {
            trial: study.ask().expect("ask"),
            epoch: 0,
            loss: START,
            observed: START,
        })
        .collect();
    for _ in 0..EPOCHS {
        for m in &mut members {
            m.epoch += 1;
            m.loss = train(m.loss, problem.dynamics(m.trial.params()));
            m.observed = m.loss + NOISE * noise(seed, m.trial.number().0, m.epoch);
            checkpoints.insert(m.trial.number(), (m.epoch, m.loss));
            tracker.epoch();
            m.trial.report(m.epoch, m.observed).expect("report");
        }
        for m in &mut members {
            if let Some(reason) = m.trial.prune_reason().map(str::to_owned) {
                study
                    .tell(m.trial.number(), Outcome::Pruned { reason })
                    .expect("tell");
                let child = study.ask().expect("the child");
                let parent = child.trial().parent.expect("a PBT child");
                (m.epoch, m.loss) = checkpoints[&parent];
                m.trial = child;
            }
        }
    }
    for m in members {
        tracker.completed(m.observed, m.loss);
        study
            .tell(m.trial.number(), Outcome::Completed(vec![m.observed]))
            .expect("tell");
    }
    tracker.finish()
}

pub fn run(quick: bool) {
    let (seeds, trials) = if quick { (5, 30) } else { (100, 60) };
    let budget = trials * EPOCHS;
    for problem in curve_problems() {
        for strategy in ["none", "median", "asha", "hyperband", "pbt"] {
            for seed in 0..seeds {
                let started = std::time::Instant::now();
                let (epochs, grid) = simulate(&problem, strategy, seed, budget);
                println!(
                    "{}",
                    json!({"impl": "hyperion", "suite": "pruning", "problem": problem.base.name,
                           "strategy": strategy, "seed": seed, "budget": budget, "epochs": epochs,
                           "seconds": started.elapsed().as_secs_f64(), "regret": grid})
                );
            }
        }
    }
    crate::mlp::run(quick);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_configuration_has_zero_regret_and_curves_cross() {
        let opt = optimum();
        assert!((0.0..0.1).contains(&opt), "{opt}");
        let problems = curve_problems();
        let p = problems
            .iter()
            .find(|p| p.base.name == "hartmann6")
            .unwrap();
        let point = |step: f64| {
            let mut params: Params = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]
                .iter()
                .enumerate()
                .map(|(i, &x)| (format!("x{i}"), x.into()))
                .collect();
            params.insert("step_size".into(), step.into());
            params
        };
        let losses = |step: f64| {
            let d = p.dynamics(&point(step));
            let mut loss = START;
            (0..EPOCHS)
                .map(|_| {
                    loss = train(loss, d);
                    loss
                })
                .collect::<Vec<f64>>()
        };
        let (fast, good) = (losses(1.0), losses(10f64.powf(-1.35)));
        assert!(fast[0] < good[0], "large steps learn faster at first");
        assert!(good[26] < fast[26], "and settle higher");
        assert!((good[26] - opt).abs() < 0.01, "{} vs {opt}", good[26]);
    }

    #[test]
    fn every_strategy_spends_its_budget_and_no_trial_completes_early_without_stopping() {
        let p = &curve_problems()[0];
        for strategy in ["none", "asha", "hyperband", "median", "pbt"] {
            let budget = if strategy == "pbt" {
                PBT_POPULATION
            } else {
                10
            } * EPOCHS;
            let (epochs, grid) = simulate(p, strategy, 1, budget);
            assert_eq!(grid.len(), GRID);
            assert!(
                grid.last().unwrap().is_finite(),
                "{strategy} completes a trial"
            );
            if strategy == "pbt" {
                assert_eq!(epochs, PBT_POPULATION * EPOCHS);
            } else {
                assert!(
                    (10 * EPOCHS..11 * EPOCHS).contains(&epochs),
                    "{strategy}: {epochs}"
                );
            }
        }
        let (_, none) = simulate(p, "none", 1, 10 * EPOCHS);
        assert!(
            none[..GRID / 10 - 1].iter().all(|r| r.is_infinite()),
            "no trial completes early"
        );
    }
}
