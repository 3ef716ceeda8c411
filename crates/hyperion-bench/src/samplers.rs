//! `hyperion-bench samplers`: the samplers beyond TPE on the seven problems of the tpe suite,
//! beside Optuna's (`bench/optuna/samplers.py`): CMA-ES after 100, 300 and 1,000 trials, and
//! the time of a trial (ask, the problem, tell on an in-memory study) over a whole run, the same
//! loop on both sides. GP and NSGA-II join when they are built.

use std::time::Instant;

use hyperion::SamplerConfig;
use serde_json::json;

use crate::tpe::{curve_of, problems, seeds_or};

pub fn run(quick: bool) {
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
