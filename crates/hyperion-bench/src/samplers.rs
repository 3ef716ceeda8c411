//! `hyperion-bench samplers`: the samplers beyond TPE on the seven problems of the tpe suite,
//! beside Optuna's (`bench/optuna/samplers.py`): CMA-ES after 100, 300 and 1,000 trials, and
//! the time of a trial (ask, the problem, tell on an in-memory study) over a whole run, the same
//! loop on both sides; NSGA-II on ZDT1–3 (two objectives, 30 variables), each run's final Pareto
//! front (the report computes both sides' hypervolumes). GP joins when it is built.

use std::sync::Arc;
use std::time::Instant;

use hyperion::{MemoryStore, Objective, Outcome, SamplerConfig, SearchSpace, Study};
use serde_json::json;

use crate::tpe::{curve_of, problems, seeds_or};

pub fn run(quick: bool) {
    cmaes_on_problems(quick);
    nsga2_on_zdt(quick);
}

fn cmaes_on_problems(quick: bool) {
    let (seeds, trials) = if quick { (5, 300) } else { (20, 1_000) };
    for problem in problems() {
        for seed in seeds_or(seeds) {
            let started = Instant::now();
            let c = curve_of(&problem, cmaes(), seed, trials);
            let ms_per_trial = started.elapsed().as_secs_f64() * 1e3 / trials as f64;
            let at = |n: usize| c.get(n - 1).copied();
            println!(
                "{}",
                json!({"impl": "hyperion", "suite": "samplers", "sampler": "cmaes",
                       "problem": problem.name, "seed": seed, "regret_100": at(100),
                       "regret_300": at(300), "regret_1000": at(1_000),
                       "ms_per_trial": ms_per_trial})
            );
        }
    }
}

/// ZDT1–3 (Zitzler, Deb and Thiele 2000) over `x` in [0, 1]ⁿ, both objectives minimized; the
/// Optuna side's `bench/optuna/samplers.py` has the same three.
pub fn zdt(problem: &str, x: &[f64]) -> [f64; 2] {
    let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (x.len() - 1) as f64;
    let r = x[0] / g;
    let h = match problem {
        "zdt1" => 1.0 - r.sqrt(),
        "zdt2" => 1.0 - r * r,
        _ => 1.0 - r.sqrt() - r * (10.0 * std::f64::consts::PI * x[0]).sin(),
    };
    [x[0], g * h]
}

/// The completed trials' Pareto front after `trials` trials of `config` on `problem`.
pub fn zdt_front(problem: &str, config: SamplerConfig, seed: u64, trials: usize) -> Vec<[f64; 2]> {
    let space = (0..30)
        .fold(SearchSpace::builder(), |b, i| {
            b.param(
                &format!("x{i:02}"),
                hyperion::FloatDistribution::new(0.0, 1.0),
            )
        })
        .build()
        .expect("a space");
    let study = Study::builder(problem)
        .objectives(vec![Objective::minimize("f1"), Objective::minimize("f2")])
        .space(space)
        .sampler(config)
        .seed(seed)
        .store(Arc::new(MemoryStore::new()))
        .open()
        .expect("opens");
    for _ in 0..trials {
        let trial = study.ask().expect("ask");
        let x: Vec<f64> = trial.params().values().filter_map(|v| v.as_f64()).collect();
        let f = zdt(problem, &x);
        let number = trial.number();
        drop(trial);
        study
            .tell(number, Outcome::Completed(f.to_vec()))
            .expect("tell");
    }
    let front = study.pareto_front().expect("front");
    front
        .iter()
        .filter_map(|t| Some([t.values.as_ref()?[0], t.values.as_ref()?[1]]))
        .collect()
}

fn nsga2_on_zdt(quick: bool) {
    let (seeds, trials) = if quick { (3, 2_000) } else { (10, 5_000) };
    for problem in ["zdt1", "zdt2", "zdt3"] {
        for seed in seeds_or(seeds) {
            let started = Instant::now();
            let front = zdt_front(
                problem,
                SamplerConfig::Nsga2(Default::default()),
                seed,
                trials,
            );
            let ms_per_trial = started.elapsed().as_secs_f64() * 1e3 / trials as f64;
            println!(
                "{}",
                json!({"impl": "hyperion", "suite": "samplers", "sampler": "nsga2",
                       "problem": problem, "seed": seed, "trials": trials, "front": front,
                       "ms_per_trial": ms_per_trial})
            );
        }
    }
}

/// Hyperion's CMA-ES with its defaults, or with HYPERION_CMAES (JSON of `CmaesConfig`
/// fields), to try settings without a rebuild.
fn cmaes() -> SamplerConfig {
    let config = std::env::var("HYPERION_CMAES")
        .ok()
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default();
    SamplerConfig::Cmaes(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zdt_fronts_are_non_dominated_and_near_the_true_front_for_nsga2() {
        for problem in ["zdt1", "zdt2", "zdt3"] {
            let front = zdt_front(problem, SamplerConfig::Nsga2(Default::default()), 1, 300);
            assert!(!front.is_empty());
            for a in &front {
                assert!(!front.iter().any(|b| b[0] <= a[0] && b[1] <= a[1] && b != a));
            }
        }
        // On the true front g = 1: f2 = 1 - √f1 for ZDT1.
        assert_eq!(zdt("zdt1", &[0.0; 30]), [0.0, 1.0]);
        assert_eq!(zdt("zdt2", &[1.0; 30]), [1.0, 10.0 * (1.0 - 0.01)]);
    }

    #[test]
    fn the_benchmark_runs_cmaes_on_every_problem() {
        // The smoke form of `bench/run samplers`: past several generations, never increasing,
        // never negative.
        for problem in problems() {
            let c = curve_of(&problem, cmaes(), 1, 40);
            assert_eq!(c.len(), 40);
            assert!(
                c.windows(2).all(|w| w[1] <= w[0]) && c[39] >= 0.0,
                "{}: {c:?}",
                problem.name
            );
        }
    }
}
