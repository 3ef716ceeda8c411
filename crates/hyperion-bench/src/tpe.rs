//! `hyperion-bench tpe`: quality on standard problems and the cost of a suggestion.

use std::sync::Arc;
use std::time::Instant;

use hyperion::samplers::TpeConfig;
use hyperion::{
    CategoricalDistribution, FloatDistribution, IntDistribution, MemoryStore, Outcome, ParamValue,
    Params, SamplerConfig, SearchSpace, Study,
};
use serde_json::json;

/// A benchmark problem: its space and its regret (value minus the known optimum).
pub struct Problem {
    pub name: &'static str,
    pub space: SearchSpace,
    pub regret: fn(&Params) -> f64,
}

fn floats(p: &Params, d: usize) -> Vec<f64> {
    (0..d)
        .map(|i| p[&format!("x{i}")].as_f64().unwrap_or_default())
        .collect()
}

fn boxed(d: usize, low: f64, high: f64) -> SearchSpace {
    (0..d)
        .fold(SearchSpace::builder(), |b, i| {
            b.param(&format!("x{i}"), FloatDistribution::new(low, high))
        })
        .build()
        .expect("a valid space")
}

pub fn problems() -> Vec<Problem> {
    use std::f64::consts::PI;
    vec![
        Problem {
            name: "branin",
            space: SearchSpace::builder()
                .param("x0", FloatDistribution::new(-5.0, 10.0))
                .param("x1", FloatDistribution::new(0.0, 15.0))
                .build()
                .expect("valid"),
            regret: |p| {
                let x = floats(p, 2);
                let (b, c, t) = (5.1 / (4.0 * PI * PI), 5.0 / PI, 1.0 / (8.0 * PI));
                (x[1] - b * x[0] * x[0] + c * x[0] - 6.0).powi(2)
                    + 10.0 * (1.0 - t) * x[0].cos()
                    + 10.0
                    - 0.397_887_357_729_738
            },
        },
        Problem {
            name: "hartmann6",
            space: boxed(6, 0.0, 1.0),
            regret: |p| {
                const A: [[f64; 6]; 4] = [
                    [10., 3., 17., 3.5, 1.7, 8.],
                    [0.05, 10., 17., 0.1, 8., 14.],
                    [3., 3.5, 1.7, 10., 17., 8.],
                    [17., 8., 0.05, 10., 0.1, 14.],
                ];
                const P: [[f64; 6]; 4] = [
                    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
                    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
                    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
                    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
                ];
                const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
                let x = floats(p, 6);
                let s: f64 = (0..4)
                    .map(|i| {
                        ALPHA[i]
                            * (-(0..6)
                                .map(|j| A[i][j] * (x[j] - P[i][j]).powi(2))
                                .sum::<f64>())
                            .exp()
                    })
                    .sum();
                3.322_368_011_391_339 - s
            },
        },
        Problem {
            name: "rosenbrock10",
            space: boxed(10, -5.0, 10.0),
            regret: |p| {
                let x = floats(p, 10);
                (0..9)
                    .map(|i| 100.0 * (x[i + 1] - x[i] * x[i]).powi(2) + (1.0 - x[i]).powi(2))
                    .sum()
            },
        },
        Problem {
            name: "ackley10",
            space: boxed(10, -32.768, 32.768),
            regret: |p| {
                let x = floats(p, 10);
                let n = x.len() as f64;
                let s1 = x.iter().map(|v| v * v).sum::<f64>() / n;
                let s2 = x.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>() / n;
                -20.0 * (-0.2 * s1.sqrt()).exp() - s2.exp() + 20.0 + std::f64::consts::E
            },
        },
        Problem {
            name: "levy10",
            space: boxed(10, -10.0, 10.0),
            regret: |p| {
                let w: Vec<f64> = floats(p, 10)
                    .iter()
                    .map(|x| 1.0 + (x - 1.0) / 4.0)
                    .collect();
                let d = w.len();
                let mid: f64 = (0..d - 1)
                    .map(|i| (w[i] - 1.0).powi(2) * (1.0 + 10.0 * (PI * w[i] + 1.0).sin().powi(2)))
                    .sum();
                (PI * w[0]).sin().powi(2)
                    + mid
                    + (w[d - 1] - 1.0).powi(2) * (1.0 + (2.0 * PI * w[d - 1]).sin().powi(2))
            },
        },
        Problem {
            name: "styblinski_tang10",
            space: boxed(10, -5.0, 5.0),
            regret: |p| {
                let x = floats(p, 10);
                x.iter()
                    .map(|v| v.powi(4) - 16.0 * v * v + 5.0 * v)
                    .sum::<f64>()
                    / 2.0
                    + 39.166_165_703_771_42 * 10.0
            },
        },
        Problem {
            name: "mixed",
            space: SearchSpace::builder()
                .param("x", FloatDistribution::new(-5.0, 5.0))
                .param("n", IntDistribution::new(1, 10))
                .param("c", CategoricalDistribution::new(["a", "b", "c", "d"]))
                .param("lr", FloatDistribution::new(1e-5, 1.0).log())
                .build()
                .expect("valid"),
            // Optimum 0 at x = 1.5, n = 7, c = b, lr = 1e-3.
            regret: |p| {
                let x = p["x"].as_f64().unwrap_or_default();
                let n = p["n"].as_i64().unwrap_or_default() as f64;
                let c = match p["c"].as_str() {
                    Some("a") => 1.0,
                    Some("b") => 0.0,
                    Some("c") => 2.0,
                    _ => 3.0,
                };
                let lr = p["lr"].as_f64().unwrap_or(1.0).log10();
                (x - 1.5).powi(2) + 0.5 * (n - 7.0).powi(2) + c + (lr + 3.0).powi(2)
            },
        },
    ]
}

fn sampler(name: &str) -> SamplerConfig {
    match name {
        // HYPERION_TPE (JSON of TpeConfig fields) tries other defaults without a rebuild.
        "tpe" => SamplerConfig::Tpe(
            std::env::var("HYPERION_TPE")
                .ok()
                .and_then(|json| serde_json::from_str(&json).ok())
                .unwrap_or_default(),
        ),
        "tpe_independent" => SamplerConfig::Tpe(TpeConfig {
            multivariate: false,
            ..TpeConfig::default()
        }),
        "sobol" => SamplerConfig::Sobol,
        _ => SamplerConfig::Random,
    }
}

/// Best regret so far after each of `trials` trials.
pub fn curve(problem: &Problem, sampler_name: &str, seed: u64, trials: usize) -> Vec<f64> {
    curve_of(problem, sampler(sampler_name), seed, trials)
}

/// [`curve`] with the sampler `config`.
pub fn curve_of(problem: &Problem, config: SamplerConfig, seed: u64, trials: usize) -> Vec<f64> {
    let study = Study::builder(problem.name)
        .minimize("regret")
        .space(problem.space.clone())
        .sampler(config)
        .seed(seed)
        .store(Arc::new(MemoryStore::new()))
        .open()
        .expect("opens");
    let mut best = f64::INFINITY;
    (0..trials)
        .map(|_| {
            let trial = study.ask().expect("ask");
            let regret = (problem.regret)(trial.params()).max(0.0);
            let number = trial.number();
            drop(trial);
            study
                .tell(number, Outcome::Completed(vec![regret]))
                .expect("tell");
            best = best.min(regret);
            best
        })
        .collect()
}

pub fn run(quick: bool) {
    quality(quick, &["tpe", "tpe_independent", "random", "sobol"]);
    cost(if quick {
        &[100, 1_000]
    } else {
        &[100, 1_000, 10_000]
    });
}

/// The quality half of the suite for `samplers` (`tpe-quality` runs Hyperion's default TPE
/// alone, to try settings through `HYPERION_TPE`).
pub fn quality(quick: bool, samplers: &[&str]) {
    let (seeds, trials) = if quick { (5, 100) } else { (20, 200) };
    let seeds = seeds_or(seeds);
    for problem in problems() {
        for &name in samplers {
            for seed in seeds.clone() {
                let c = curve(&problem, name, seed, trials);
                let at = |n: usize| c.get(n - 1).copied();
                println!(
                    "{}",
                    json!({"impl": "hyperion", "suite": "tpe", "problem": problem.name, "sampler": name, "seed": seed,
                           "regret_50": at(50), "regret_100": at(100), "regret_200": at(200)})
                );
            }
        }
    }
}

/// Seeds `0..count`, or HYPERION_BENCH_SEEDS=FIRST,COUNT: other seeds, to choose settings on
/// seeds the benchmark's verdict does not use.
pub fn seeds_or(count: u64) -> std::ops::Range<u64> {
    std::env::var("HYPERION_BENCH_SEEDS")
        .ok()
        .and_then(|s| {
            let (first, count) = s.split_once(',')?;
            let first: u64 = first.parse().ok()?;
            Some(first..first + count.parse::<u64>().ok()?)
        })
        .unwrap_or(0..count)
}

/// The cost of one suggestion against the history size (10-D floats, random history).
pub fn cost(sizes: &[u64]) {
    let space = boxed(10, -5.0, 5.0);
    for &size in sizes {
        let store: Arc<dyn hyperion::Store> = Arc::new(MemoryStore::new());
        let open = |config: SamplerConfig| {
            Study::builder("cost")
                .minimize("y")
                .space(space.clone())
                .sampler(config)
                .seed(1)
                .store(store.clone())
                .open()
        };
        let filler = open(SamplerConfig::Random).expect("opens");
        for _ in 0..size {
            let t = filler.ask().expect("ask");
            let y: f64 = t
                .params()
                .values()
                .filter_map(ParamValue::as_f64)
                .map(|v| v * v)
                .sum();
            let n = t.number();
            drop(t);
            filler.tell(n, Outcome::Completed(vec![y])).expect("tell");
        }
        let study = open(sampler("tpe")).expect("opens");
        let reps = if size <= 1_000 { 200 } else { 50 };
        let started = Instant::now();
        for _ in 0..reps {
            let t = study.ask().expect("ask");
            let n = t.number();
            drop(t);
            // Failed, so the history the next suggestion sees stays the same size.
            study
                .tell(
                    n,
                    Outcome::Failed {
                        error: "timing".into(),
                    },
                )
                .expect("tell");
        }
        let ms = started.elapsed().as_secs_f64() * 1e3 / reps as f64;
        println!(
            "{}",
            json!({"impl": "hyperion", "suite": "tpe", "history": size, "ms_per_suggest": ms})
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(pairs: &[(&str, ParamValue)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn xs(values: &[f64]) -> Params {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| (format!("x{i}"), ParamValue::Float(v)))
            .collect()
    }

    #[test]
    fn every_problem_has_zero_regret_at_its_known_optimum() {
        let optima: Vec<(&str, Params)> = vec![
            ("branin", xs(&[std::f64::consts::PI, 2.275])),
            (
                "hartmann6",
                xs(&[0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]),
            ),
            ("rosenbrock10", xs(&[1.0; 10])),
            ("ackley10", xs(&[0.0; 10])),
            ("levy10", xs(&[1.0; 10])),
            ("styblinski_tang10", xs(&[-2.903534; 10])),
            (
                "mixed",
                point(&[
                    ("x", ParamValue::Float(1.5)),
                    ("n", ParamValue::Int(7)),
                    ("c", ParamValue::from("b")),
                    ("lr", ParamValue::Float(1e-3)),
                ]),
            ),
        ];
        for problem in problems() {
            let (_, at) = optima
                .iter()
                .find(|(name, _)| *name == problem.name)
                .expect("an optimum");
            let regret = (problem.regret)(at);
            assert!(
                regret.abs() < 1e-4,
                "{}: regret {regret} at the optimum",
                problem.name
            );
        }
    }

    #[test]
    fn the_benchmark_runs_every_sampler_on_every_problem() {
        // The smoke form of `bench/run tpe`: short curves, never increasing, never negative.
        for problem in problems() {
            for sampler in ["tpe", "tpe_independent", "random", "sobol"] {
                let c = curve(&problem, sampler, 1, 15);
                assert_eq!(c.len(), 15);
                assert!(
                    c.windows(2).all(|w| w[1] <= w[0]) && c[14] >= 0.0,
                    "{}/{sampler}: {c:?}",
                    problem.name
                );
            }
        }
    }
}
