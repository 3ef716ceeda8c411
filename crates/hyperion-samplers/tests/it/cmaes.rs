//! CMA-ES through the sampler interface: it learns, stores its distribution once per
//! generation, restarts when stalled, and keeps every value in its domain.

use hyperion_core::{FloatDistribution, IntDistribution, SearchSpace};
use hyperion_samplers::{CmaesConfig, SamplerConfig};

use crate::tpe::{Driver, boxed, run};

fn cmaes() -> SamplerConfig {
    SamplerConfig::Cmaes(CmaesConfig::default())
}

/// A shifted ellipsoid with condition number 10⁴ on [-5, 5]⁶: CMA-ES's home ground.
fn ellipsoid(x: &[f64]) -> f64 {
    let n = x.len();
    x.iter()
        .enumerate()
        .map(|(i, v)| 10f64.powf(4.0 * i as f64 / (n - 1) as f64) * (v - 1.0).powi(2))
        .sum()
}

#[test]
fn cmaes_beats_random_and_tpe_on_an_ill_conditioned_ellipsoid() {
    let space = boxed(&[(-5.0, 5.0); 6]);
    let tpe = SamplerConfig::Tpe(Default::default());
    let mut wins = 0;
    for seed in 100..108 {
        let c = run(&cmaes(), seed, &space, &ellipsoid, 400);
        let r = run(&SamplerConfig::Random, seed, &space, &ellipsoid, 400);
        let t = run(&tpe, seed, &space, &ellipsoid, 400);
        assert!(c < r / 10.0, "seed {seed}: cmaes {c} vs random {r}");
        wins += usize::from(c < t);
        // With more trials it converges (random stays near 10²).
        let longer = run(&cmaes(), seed, &space, &ellipsoid, 1000);
        assert!(
            longer < 1e-2,
            "seed {seed}: cmaes reached only {longer} in 1000 trials"
        );
    }
    assert!(
        wins >= 7,
        "cmaes beat tpe on {wins} of 8 seeds at 400 trials"
    );
}

#[test]
fn the_distribution_is_stored_once_per_generation() {
    let space = boxed(&[(-5.0, 5.0); 4]);
    let sampler = cmaes().build(3).unwrap();
    let mut driver = Driver::new(&space);
    for _ in 0..80 {
        let (number, params) = driver.start(&*sampler, &space);
        let x: Vec<f64> = params.values().map(|v| v.as_f64().unwrap()).collect();
        driver.finish(number, ellipsoid(&x));
    }
    let state = driver.view.sampler_state("cmaes").expect("a stored state");
    // 4 + ⌊3 ln 4⌋ = 8 trials a generation: 80 trials close 9 generations (the 10th is open).
    assert_eq!(state["cma"]["popsize"], 8);
    assert_eq!(state["cma"]["generation"], 9);
    assert_eq!(state["since"], 72);
}

#[test]
fn a_stalled_search_restarts_with_twice_the_population() {
    let space = boxed(&[(-1.0, 1.0); 2]);
    let sampler = cmaes().build(5).unwrap();
    let mut driver = Driver::new(&space);
    // A flat objective: the best value never changes, so the run must restart (IPOP).
    for _ in 0..400 {
        let (number, _) = driver.start(&*sampler, &space);
        driver.finish(number, 1.0);
    }
    let state = driver.view.sampler_state("cmaes").unwrap();
    assert!(state["restarts"].as_u64().unwrap() >= 1, "{state}");
    assert!(state["cma"]["popsize"].as_u64().unwrap() >= 12);
}

#[test]
fn bipop_alternates_large_populations_with_small_runs_of_small_steps() {
    let space = boxed(&[(-1.0, 1.0); 2]);
    let config = SamplerConfig::Cmaes(CmaesConfig {
        restart: hyperion_samplers::CmaesRestart::Bipop,
        ..CmaesConfig::default()
    });
    let sampler = config.build(5).unwrap();
    let mut driver = Driver::new(&space);
    // A flat objective stalls every run: each restart picks the regime that told fewer trials.
    let (mut small_runs, mut large_runs) = (0, 0);
    let mut restarts = 0;
    for _ in 0..3000 {
        let (number, _) = driver.start(&*sampler, &space);
        driver.finish(number, 1.0);
        // None until the first generation closes.
        let Some(state) = driver.view.sampler_state("cmaes") else {
            continue;
        };
        if state["restarts"].as_u64().unwrap() > restarts {
            restarts = state["restarts"].as_u64().unwrap();
            let (popsize, sigma) = (
                state["cma"]["popsize"].as_u64().unwrap(),
                state["cma"]["sigma"].as_f64().unwrap(),
            );
            if state["bipop"]["small"].as_bool().unwrap() {
                small_runs += 1;
                let most = 6 << state["bipop"]["large_restarts"].as_u64().unwrap();
                assert!((2..=most).contains(&popsize), "{state}");
                assert!(
                    (1.0 / 600.0 - 1e-12..=1.0 / 6.0 + 1e-12).contains(&sigma),
                    "{state}"
                );
            } else {
                large_runs += 1;
                let k = state["bipop"]["large_restarts"].as_u64().unwrap();
                assert_eq!(popsize, 6 << k, "{state}");
            }
        }
    }
    assert!(
        small_runs >= 2 && large_runs >= 2,
        "{small_runs} small, {large_runs} large"
    );
    let state = driver.view.sampler_state("cmaes").unwrap();
    let (small, large) = (
        state["bipop"]["small_trials"].as_u64().unwrap(),
        state["bipop"]["large_trials"].as_u64().unwrap(),
    );
    // Neither regime runs far ahead of the other: the one behind goes next.
    assert!(small * 8 >= large && large * 8 >= small, "{state}");
}

#[test]
fn trials_started_in_parallel_still_close_generations() {
    let space = boxed(&[(-5.0, 5.0); 3]);
    let sampler = cmaes().build(9).unwrap();
    let mut driver = Driver::new(&space);
    let mut best = f64::INFINITY;
    // Eight workers: eight trials are asked before any of them reports.
    for _ in 0..40 {
        let batch: Vec<_> = (0..8).map(|_| driver.start(&*sampler, &space)).collect();
        for (number, params) in batch {
            let x: Vec<f64> = params.values().map(|v| v.as_f64().unwrap()).collect();
            let y = ellipsoid(&x);
            best = best.min(y);
            driver.finish(number, y);
        }
    }
    let state = driver.view.sampler_state("cmaes").unwrap();
    assert!(
        state["cma"]["generation"].as_u64().unwrap() >= 20,
        "{state}"
    );
    let random = run(&SamplerConfig::Random, 9, &space, &ellipsoid, 320);
    assert!(best < random / 10.0, "best {best}, random's {random}");
}

#[test]
fn ints_and_categoricals_stay_in_their_domain_and_the_distribution_still_moves() {
    let space = SearchSpace::builder()
        .param("x", FloatDistribution::new(-3.0, 3.0))
        .param("n", IntDistribution::new(1, 20))
        .param(
            "act",
            hyperion_core::CategoricalDistribution::new(["relu", "tanh"]),
        )
        .build()
        .unwrap();
    let sampler = cmaes().build(1).unwrap();
    let mut driver = Driver::new(&space);
    for _ in 0..120 {
        let (number, params) = driver.start(&*sampler, &space);
        space.check_point(&params).unwrap();
        let x = params["x"].as_f64().unwrap();
        let n = params["n"].as_f64().unwrap();
        driver.finish(number, (x - 1.0).powi(2) + (n - 7.0).powi(2));
    }
    let state = driver.view.sampler_state("cmaes").unwrap();
    assert_eq!(state["dims"], serde_json::json!(["x", "n"]));
    // The distribution learned where the optimum is: its mean is near x = 1, n = 7.
    let mean = state["cma"]["mean"].as_array().unwrap();
    let x = -3.0 + 6.0 * mean[0].as_f64().unwrap();
    let n = 1.0 + 20.0 * mean[1].as_f64().unwrap() - 0.5;
    assert!(
        (x - 1.0).abs() < 0.5 && (n - 7.0).abs() < 1.5,
        "mean at x {x}, n {n}"
    );
}

#[test]
fn bad_settings_name_the_setting() {
    let e = SamplerConfig::Cmaes(CmaesConfig {
        popsize: Some(1),
        ..Default::default()
    })
    .build(0)
    .unwrap_err();
    assert!(e.to_string().contains("popsize is 1"), "{e}");
    let e = SamplerConfig::Cmaes(CmaesConfig {
        sigma0: Some(0.0),
        ..Default::default()
    })
    .build(0)
    .unwrap_err();
    assert!(e.to_string().contains("sigma0 is 0"), "{e}");
}
