//! `hyperion-bench SUITE [--quick]`: the Hyperion half of `bench/run SUITE`. Prints one JSON
//! line per measurement; `bench/report.py` sets them beside the peer's.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use hyperion::{FloatDistribution, Outcome, SamplerConfig, SearchSpace, Study};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    match args.first().map(String::as_str) {
        Some("overhead") => overhead(quick),
        _ => {
            eprintln!("usage: hyperion-bench SUITE [--quick]\nsuites: overhead");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

/// Ask+tell cycles with random sampling on a 10-D float space and the in-memory store. Cycles
/// run from an empty study; at each checkpoint N the rate over the cycles in [0.9 N, N) is
/// printed, so the figure shows the cost at that study size.
fn overhead(quick: bool) {
    let checkpoints: &[u64] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    let space = (0..10)
        .fold(SearchSpace::builder(), |b, i| {
            b.param(&format!("x{i}"), FloatDistribution::new(-5.0, 5.0))
        })
        .build()
        .expect("a valid space");
    let study = Study::builder("overhead")
        .minimize("value")
        .space(space)
        .sampler(SamplerConfig::Random)
        .seed(0)
        .store(Arc::new(hyperion::MemoryStore::new()))
        .open()
        .expect("an in-memory study opens");
    let mut window_start = None;
    let mut next = 0;
    for cycle in 0..*checkpoints.last().unwrap_or(&0) {
        let checkpoint = checkpoints[next];
        if cycle == checkpoint - checkpoint / 10 {
            window_start = Some(Instant::now());
        }
        let trial = study.ask().expect("random sampling never runs out");
        let value: f64 = trial
            .params()
            .values()
            .filter_map(|v| v.as_f64())
            .map(|x| x * x)
            .sum();
        let number = trial.number();
        drop(trial);
        study
            .tell(number, Outcome::Completed(vec![value]))
            .expect("tell");
        if cycle + 1 == checkpoint {
            let seconds = window_start
                .take()
                .map_or(0.0, |t| t.elapsed().as_secs_f64());
            let cycles = checkpoint / 10;
            let line = serde_json::json!({
                "impl": "hyperion",
                "trials": checkpoint,
                "cycles": cycles,
                "seconds": seconds,
                "per_s": cycles as f64 / seconds,
            });
            println!("{line}");
            next += 1;
        }
    }
}
