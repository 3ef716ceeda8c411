//! TPE against random search, with a small driver over a `StudyView`.

use std::sync::Arc;

use hyperion_core::{
    Change, FloatDistribution, LoggedChange, Objective, Params, SearchSpace, StudyId, StudySpec,
    StudyView, Timestamp, TrialId, TrialNumber, TrialState,
};
use hyperion_samplers::{SampleContext, Sampler, SamplerConfig, TpeConfig};

/// A study run one trial at a time against `f`, returning the best value after `n` trials.
pub(crate) struct Driver {
    pub(crate) view: StudyView,
    seq: u64,
}

impl Driver {
    pub(crate) fn new(space: &SearchSpace) -> Self {
        Driver::with(space, vec![Objective::minimize("y")])
    }

    pub(crate) fn with(space: &SearchSpace, objectives: Vec<Objective>) -> Self {
        let spec = StudySpec::new("t", objectives, space.clone());
        Driver {
            view: StudyView::new(StudyId(1), spec),
            seq: 0,
        }
    }

    fn push(&mut self, change: Change) {
        self.seq += 1;
        self.view
            .apply(
                &LoggedChange {
                    seq: self.seq,
                    at: Timestamp(self.seq),
                    change,
                },
                &mut Vec::new(),
            )
            .unwrap();
    }

    /// Asks `sampler` for trial `n` and records it as running, with the sampler state it
    /// proposed.
    pub(crate) fn start(&mut self, sampler: &dyn Sampler, space: &SearchSpace) -> (u64, Params) {
        let number = self.view.trials().len() as u64;
        let proposal = sampler
            .propose(
                space,
                &SampleContext {
                    view: &self.view,
                    trial_number: number,
                },
            )
            .unwrap()
            .unwrap();
        let params = proposal.params;
        self.push(Change::TrialCreated {
            id: TrialId(number),
            number: TrialNumber(number),
            state: TrialState::Running,
            params: Arc::new(params.clone()),
            parent: None,
            depth: 0,
            retry_of: None,
        });
        for (key, value) in proposal.state {
            self.push(Change::SamplerStateSet { key, value });
        }
        (number, params)
    }

    pub(crate) fn finish(&mut self, number: u64, value: f64) {
        self.finish_with(number, vec![value]);
    }

    pub(crate) fn finish_with(&mut self, number: u64, values: Vec<f64>) {
        self.push(Change::TrialFinished {
            number: TrialNumber(number),
            state: TrialState::Completed,
            values: Some(values),
        });
    }
}

pub(crate) fn run(
    config: &SamplerConfig,
    seed: u64,
    space: &SearchSpace,
    f: &dyn Fn(&[f64]) -> f64,
    n: usize,
) -> f64 {
    let sampler = config.build(seed).unwrap();
    let mut driver = Driver::new(space);
    let mut best = f64::INFINITY;
    for _ in 0..n {
        let (number, params) = driver.start(&*sampler, space);
        let x: Vec<f64> = space
            .params()
            .iter()
            .map(|p| params[&p.name].as_f64().unwrap())
            .collect();
        let y = f(&x);
        best = best.min(y);
        driver.finish(number, y);
    }
    best
}

pub(crate) fn boxed(bounds: &[(f64, f64)]) -> SearchSpace {
    bounds
        .iter()
        .enumerate()
        .fold(SearchSpace::builder(), |b, (i, &(lo, hi))| {
            b.param(&format!("x{i}"), FloatDistribution::new(lo, hi))
        })
        .build()
        .unwrap()
}

fn branin(x: &[f64]) -> f64 {
    let (a, b, c) = (
        1.0,
        5.1 / (4.0 * std::f64::consts::PI.powi(2)),
        5.0 / std::f64::consts::PI,
    );
    let (r, s, t) = (6.0, 10.0, 1.0 / (8.0 * std::f64::consts::PI));
    a * (x[1] - b * x[0] * x[0] + c * x[0] - r).powi(2) + s * (1.0 - t) * x[0].cos() + s - 0.397887
}

fn hartmann6(x: &[f64]) -> f64 {
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
    let s: f64 = (0..4)
        .map(|i| {
            ALPHA[i]
                * (-(0..6)
                    .map(|j| A[i][j] * (x[j] - P[i][j]).powi(2))
                    .sum::<f64>())
                .exp()
        })
        .sum();
    -s + 3.32237
}

/// TPE's median regret is below random search's, and it wins on most seeds.
fn beats_random(space: &SearchSpace, f: &dyn Fn(&[f64]) -> f64) {
    let seeds = 15;
    let tpe = SamplerConfig::Tpe(TpeConfig::default());
    let mut wins = 0;
    let (mut t, mut r): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for seed in 0..seeds {
        let a = run(&tpe, seed, space, f, 100);
        let b = run(&SamplerConfig::Random, seed, space, f, 100);
        wins += usize::from(a < b);
        t.push(a);
        r.push(b);
    }
    t.sort_by(f64::total_cmp);
    r.sort_by(f64::total_cmp);
    let (mt, mr) = (t[seeds as usize / 2], r[seeds as usize / 2]);
    assert!(mt < mr, "median regret: tpe {mt} vs random {mr}");
    assert!(
        wins >= 11,
        "tpe won {wins} of {seeds} seeds (tpe {t:?}, random {r:?})"
    );
}

#[test]
fn tpe_beats_random_on_branin_at_100_trials() {
    beats_random(&boxed(&[(-5.0, 10.0), (0.0, 15.0)]), &branin);
}

#[test]
fn tpe_beats_random_on_hartmann6_at_100_trials() {
    beats_random(&boxed(&[(0.0, 1.0); 6]), &hartmann6);
}

#[test]
fn same_seed_and_history_give_the_same_suggestion() {
    let space = boxed(&[(-5.0, 10.0), (0.0, 15.0)]);
    let tpe = SamplerConfig::Tpe(TpeConfig::default());
    let sampler = tpe.build(4).unwrap();
    let mut driver = Driver::new(&space);
    for _ in 0..30 {
        let (n, p) = driver.start(&*sampler, &space);
        let x: Vec<f64> = space
            .params()
            .iter()
            .map(|q| p[&q.name].as_f64().unwrap())
            .collect();
        driver.finish(n, branin(&x));
    }
    let ctx = SampleContext {
        view: &driver.view,
        trial_number: 30,
    };
    let fresh = tpe.build(4).unwrap();
    assert_eq!(
        sampler.suggest(&space, &ctx).unwrap(),
        fresh.suggest(&space, &ctx).unwrap()
    );
    assert_eq!(
        sampler.suggest(&space, &ctx).unwrap(),
        sampler.suggest(&space, &ctx).unwrap()
    );
}

#[test]
fn constant_liar_spreads_eight_parallel_suggestions() {
    let space = boxed(&[(0.0, 1.0), (0.0, 1.0)]);
    let spread = |liar: bool, seed: u64| -> (usize, f64) {
        let config = SamplerConfig::Tpe(TpeConfig {
            constant_liar: liar,
            ..TpeConfig::default()
        });
        let sampler = config.build(seed).unwrap();
        let mut driver = Driver::new(&space);
        for _ in 0..30 {
            let (n, p) = driver.start(&*sampler, &space);
            let (x, y) = (p["x0"].as_f64().unwrap(), p["x1"].as_f64().unwrap());
            driver.finish(n, (x - 0.3).powi(2) + (y - 0.7).powi(2));
        }
        // Eight workers ask before any of them tells.
        let points: Vec<(f64, f64)> = (0..8)
            .map(|_| {
                let (_, p) = driver.start(&*sampler, &space);
                (p["x0"].as_f64().unwrap(), p["x1"].as_f64().unwrap())
            })
            .collect();
        let mut distinct = points.clone();
        distinct.sort_by(|a, b| a.partial_cmp(b).unwrap());
        distinct.dedup();
        let mut min = f64::INFINITY;
        for (i, a) in points.iter().enumerate() {
            for b in &points[i + 1..] {
                min = min.min(((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt());
            }
        }
        (distinct.len(), min)
    };
    let (mut with, mut without) = (0.0, 0.0);
    for seed in 0..10 {
        let (n, d) = spread(true, seed);
        assert_eq!(n, 8, "eight distinct suggestions");
        with += d;
        without += spread(false, seed).1;
    }
    assert!(
        with > without,
        "the liar spreads the batch: mean min distance {} vs {}",
        with / 10.0,
        without / 10.0
    );
}

#[test]
fn tpe_suggestions_are_points_of_a_conditional_mixed_space() {
    use hyperion_core::{CategoricalDistribution, Condition, IntDistribution};
    let space = SearchSpace::builder()
        .param("lr", FloatDistribution::new(1e-5, 1e-1).log())
        .param("units", IntDistribution::new(16, 512).step(16))
        .param("layers", IntDistribution::new(1, 64).log())
        .param("drop", FloatDistribution::new(0.0, 0.5).step(0.1))
        .param("opt", CategoricalDistribution::new(["adam", "sgd"]))
        .param_if(
            "momentum",
            FloatDistribution::new(0.0, 0.99),
            Condition::new("opt", ["sgd"]),
        )
        .build()
        .unwrap();
    for multivariate in [true, false] {
        let sampler = SamplerConfig::Tpe(TpeConfig {
            multivariate,
            ..TpeConfig::default()
        })
        .build(9)
        .unwrap();
        let mut driver = Driver::new(&space);
        for _ in 0..60 {
            let (n, p) = driver.start(&*sampler, &space);
            space
                .check_point(&p)
                .unwrap_or_else(|e| panic!("trial {n}: {e} in {p:?}"));
            let lr = p["lr"].as_f64().unwrap();
            driver.finish(
                n,
                (lr.log10() + 3.0).powi(2) + p["units"].as_i64().unwrap() as f64 / 512.0,
            );
        }
    }
}

#[test]
fn tpe_thins_a_history_longer_than_its_kernel_cap_with_a_categorical() {
    // Past 2,048 "above" kernels TPE thins them; a categorical's clip has no masses to thin.
    let space = SearchSpace::builder()
        .param("x", FloatDistribution::new(-5.0, 5.0))
        .param(
            "c",
            hyperion_core::CategoricalDistribution::new(["a", "b", "c"]),
        )
        .build()
        .unwrap();
    let random = SamplerConfig::Random.build(1).unwrap();
    let mut driver = Driver::new(&space);
    for _ in 0..2_400 {
        let (number, params) = driver.start(&*random, &space);
        let x = params["x"].as_f64().unwrap();
        driver.finish(number, x * x);
    }
    let tpe = SamplerConfig::Tpe(TpeConfig::default()).build(1).unwrap();
    let (_, params) = driver.start(&*tpe, &space);
    space.check_point(&params).unwrap();
}
