//! `hyperion-bench SUITE [--quick]`: the Hyperion half of `bench/run SUITE`. Prints one JSON
//! line per measurement; `bench/report.py` sets them beside the peer's. `hyperion-bench fuzz
//! [SECONDS]` is `bench/fuzz`, which has no peer.

mod dashboard;
mod fuzz;
mod mlp;
mod pipeline;
mod postgres;
mod pruning;
mod samplers;
mod tpe;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperion::store::SqliteStore;
use hyperion::{
    Budget, FloatDistribution, OptimizeConfig, Outcome, SamplerConfig, SearchSpace, Store, Study,
    TrialError,
};
use serde_json::json;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    match args.first().map(String::as_str) {
        Some("overhead") => overhead(quick),
        Some("store") => store(quick),
        Some("store-worker") => return store_worker(&args[1..]),
        Some("launch") => launch(quick),
        Some("postgres") => postgres::run(quick),
        Some("pg-worker") => return postgres::worker(&args[1..]),
        Some("tpe") => tpe::run(quick),
        Some("pruning") => pruning::run(quick),
        Some("samplers") => samplers::run(quick),
        Some("dashboard") => dashboard::run(quick),
        Some("pipeline-engine") => pipeline::run(quick),
        // `tpe-cost [SIZE]`: one size alone, for a profiler.
        Some("tpe-cost") => match args.get(1).and_then(|n| n.parse().ok()) {
            Some(size) => tpe::cost(&[size]),
            None => tpe::cost(&[1_000, 10_000]),
        },
        Some("tpe-quality") => tpe::quality(quick, &["tpe"]),
        Some("fuzz") => return fuzz::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: hyperion-bench SUITE [--quick] | hyperion-bench fuzz [SECONDS] [FINDINGS_FILE]\n\
                 suites: overhead, store, launch, tpe, pruning, postgres, samplers, dashboard, \
                 pipeline-engine"
            );
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

/// The benchmarks' search space: 10 floats in [-5, 5].
fn space() -> SearchSpace {
    (0..10)
        .fold(SearchSpace::builder(), |b, i| {
            b.param(&format!("x{i}"), FloatDistribution::new(-5.0, 5.0))
        })
        .build()
        .expect("a valid space")
}

fn open_study(store: Arc<dyn Store>) -> Study {
    Study::builder("bench")
        .minimize("value")
        .space(space())
        .sampler(SamplerConfig::Random)
        .seed(0)
        .store(store)
        .open()
        .expect("the benchmark study opens")
}

/// Runs ask+tell cycles from an empty study; at each checkpoint N prints the rate over the
/// cycles in [0.9 N, N), so each figure shows the cost at that study size.
fn cycles(study: &Study, checkpoints: &[u64], suite: &str) {
    let mut window_start = None;
    let mut next = 0;
    for cycle in 0..*checkpoints.last().unwrap_or(&0) {
        let checkpoint = checkpoints[next];
        if cycle == checkpoint - checkpoint / 10 {
            window_start = Some(Instant::now());
        }
        let trial = study.ask().expect("random sampling never runs out");
        let value = objective(trial.params());
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
            let line = json!({
                "impl": "hyperion", "suite": suite, "trials": checkpoint, "cycles": cycles,
                "seconds": seconds, "per_s": cycles as f64 / seconds,
            });
            println!("{line}");
            next += 1;
        }
    }
}

/// Ask+tell cycles with random sampling on a 10-D float space and the in-memory store.
fn overhead(quick: bool) {
    let checkpoints: &[u64] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    cycles(
        &open_study(Arc::new(hyperion::MemoryStore::new())),
        checkpoints,
        "overhead",
    );
}

/// Ask+tell cycles on SQLite (one process, then four sharing the file), and reads of a large
/// study.
fn store(quick: bool) {
    let dir = scratch_dir();
    let db = dir.join("store.db");
    let checkpoints: &[u64] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).expect("open the benchmark store"));
    cycles(&open_study(store), checkpoints, "store");

    // Reads of the study just built, from a fresh connection as a CLI would.
    let store = SqliteStore::open(&db).expect("reopen");
    let id = store.study("bench").expect("the study").id;
    let trials = checkpoints.last().copied().unwrap_or(0);
    let best_ms = median_ms(9, || {
        store
            .best_trial(id)
            .expect("best trial")
            .expect("a best trial");
    });
    let list_ms = median_ms(3, || {
        assert_eq!(store.trials(id).expect("list").len() as u64, trials);
    });
    println!(
        "{}",
        json!({"impl": "hyperion", "suite": "store", "read": "best", "trials": trials, "ms": best_ms})
    );
    println!(
        "{}",
        json!({"impl": "hyperion", "suite": "store", "read": "list", "trials": trials, "ms": list_ms})
    );

    // Four processes share one study until it has `total` trials.
    let total: u64 = if quick { 1_000 } else { 4_000 };
    let db4 = dir.join("store4.db");
    SqliteStore::open(&db4).expect("create the shared store");
    let exe = std::env::current_exe().expect("own path");
    let started = Instant::now();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&exe)
                .args(["store-worker", &db4.to_string_lossy(), &total.to_string()])
                .spawn()
        })
        .collect::<Result<_, _>>()
        .expect("spawn workers");
    for mut child in children {
        assert!(
            child.wait().expect("wait").success(),
            "a store worker failed"
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"impl": "hyperion", "suite": "store", "processes": 4, "cycles": total, "seconds": seconds,
               "per_s": total as f64 / seconds})
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// One of the processes sharing the benchmark study: optimizes it until it has `total` trials.
fn work_on(store: Arc<dyn Store>, total: &str) {
    let config = OptimizeConfig::new(Budget::trials(total.parse().expect("a trial count")));
    open_study(store)
        .optimize(&config, |trial| {
            Ok::<_, TrialError>(objective(trial.params()))
        })
        .expect("optimize");
}

/// The benchmarks' objective: the sum of the squares of the params.
fn objective(params: &hyperion::Params) -> f64 {
    params
        .values()
        .filter_map(|v| v.as_f64())
        .map(|x| x * x)
        .sum()
}

/// `store-worker DB TOTAL`: one of the processes of the shared-study measurement.
fn store_worker(args: &[String]) -> ExitCode {
    let [db, total] = args else {
        return ExitCode::from(2);
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(db).expect("open the shared store"));
    work_on(store, total);
    ExitCode::SUCCESS
}

/// Trials of a trivial command through `hyperion run` (SQLite store, the default), at
/// max_concurrent 1 and 8, beside a bare spawn of the same command: the engine's cost per trial
/// is the difference.
fn launch(quick: bool) {
    let trials: u64 = if quick { 100 } else { 500 };
    let dir = scratch_dir();
    let argv = ["echo", "HYPERION_METRIC", r#"{"v": 1}"#];

    // The floor: spawn, read the output, wait; one after the other.
    let started = Instant::now();
    for _ in 0..trials {
        let out = Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .expect("spawn echo");
        assert!(out.status.success());
    }
    let bare_ms = started.elapsed().as_secs_f64() * 1e3 / trials as f64;
    println!(
        "{}",
        json!({"impl": "bare", "suite": "launch", "trials": trials, "ms_per_trial": bare_ms})
    );

    // What the file system charges for the entries a trial directory starts with, made the
    // same way: on a journal-less ext4 this varies several-fold with recent deletions.
    let started = Instant::now();
    for n in 0..trials {
        let trial = dir.join(format!("files/{n}"));
        std::fs::create_dir_all(trial.join("checkpoint")).expect("create a trial directory");
        std::fs::write(trial.join("params.json"), r#"{"x": 0.5}"#).expect("write params");
        for file in ["metrics.jsonl", "stdout.log"] {
            std::fs::File::create(trial.join(file)).expect("create a trial file");
        }
    }
    let files_ms = started.elapsed().as_secs_f64() * 1e3 / trials as f64;
    println!(
        "{}",
        json!({"impl": "files", "suite": "launch", "trials": trials, "ms_per_trial": files_ms})
    );

    let study = dir.join("launch.yaml");
    std::fs::write(
        &study,
        "name: launch\ncommand: [echo, HYPERION_METRIC, '{{\"v\": 1}}']\n\
         parameters: {x: {type: float, low: 0.0, high: 1.0}}\nmetric: {name: v, goal: minimize}\n",
    )
    .expect("write the study file");
    // The same at concurrency 1 with the store and trial directories in memory (tmpfs), where
    // the file system costs next to nothing: the engine's own cost.
    let shm = Path::new("/dev/shm");
    let memory = shm.is_dir().then(|| {
        let dir = shm.join(format!("hyperion-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a directory in /dev/shm");
        dir
    });
    let runs = [(1, &dir, "disk"), (8, &dir, "disk")]
        .into_iter()
        .chain(memory.as_ref().map(|m| (1, m, "tmpfs")));
    for (concurrency, dir, fs) in runs {
        let db = dir.join(format!("launch-{concurrency}.db"));
        let started = Instant::now();
        hyperion_run(
            &db,
            &study,
            &[
                format!("budget.max_trials={trials}"),
                format!("resources.max_concurrent={concurrency}"),
            ],
        );
        let seconds = started.elapsed().as_secs_f64();
        let store = SqliteStore::open(&db).expect("the launch store");
        let id = store.study("launch").expect("the study").id;
        let completed = store
            .trials(id)
            .expect("trials")
            .iter()
            .filter(|t| t.values.is_some())
            .count();
        assert_eq!(completed as u64, trials, "every trial completed");
        println!(
            "{}",
            json!({"impl": "hyperion", "suite": "launch", "concurrency": concurrency, "trials": trials,
                   "fs": fs, "seconds": seconds, "per_s": trials as f64 / seconds,
                   "overhead_ms": seconds * 1e3 / trials as f64 - bare_ms})
        );
    }
    if let Some(memory) = memory {
        std::fs::remove_dir_all(memory).ok();
    }
    next_start(&dir, trials);
    std::fs::remove_dir_all(&dir).ok();
}

/// The time from one trial's exit to the next trial's start, at concurrency 1: each trial
/// writes the time just before it exits to its directory (a little early, so the figure errs
/// high), and the store has when the next trial started.
fn next_start(dir: &std::path::Path, trials: u64) {
    let script = dir.join("exit.sh");
    std::fs::write(
        &script,
        "echo 'HYPERION_METRIC {\"v\": 1}'\ndate +%s%N > \"$HYPERION_TRIAL_DIR/exit\"\n",
    )
    .expect("write the trial script");
    let study = dir.join("next.yaml");
    std::fs::write(
        &study,
        format!(
            "name: next\ncommand: [sh, {}]\nmetric: {{name: v, goal: minimize}}\n",
            script.display()
        ),
    )
    .expect("write the study file");
    let db = dir.join("next.db");
    hyperion_run(&db, &study, &[format!("budget.max_trials={trials}")]);
    let store = SqliteStore::open(&db).expect("the store");
    let id = store.study("next").expect("the study").id;
    let started: Vec<u64> = store
        .trials(id)
        .expect("trials")
        .iter()
        .map(|t| t.started_at.expect("started").0)
        .collect();
    let mut gaps: Vec<f64> = (1..trials as usize)
        .map(|n| {
            let exit = dir.join(format!("next/trials/{}/exit", n - 1));
            let nanos: u64 = std::fs::read_to_string(&exit)
                .expect("the exit time")
                .trim()
                .parse()
                .expect("nanoseconds");
            (started[n] as f64 - nanos as f64 / 1e3) / 1e3
        })
        .collect();
    gaps.sort_by(f64::total_cmp);
    let at = |q: f64| gaps[((gaps.len() - 1) as f64 * q).round() as usize];
    println!(
        "{}",
        json!({"impl": "hyperion", "suite": "launch", "next_start": true, "trials": trials,
               "next_start_p50_ms": at(0.5), "next_start_p99_ms": at(0.99)})
    );
}

/// `hyperion --storage DB run STUDY -q OVERRIDES…` with the `hyperion` built beside this
/// program; it must succeed.
fn hyperion_run(db: &std::path::Path, study: &std::path::Path, overrides: &[String]) {
    let hyperion = std::env::current_exe()
        .expect("own path")
        .with_file_name("hyperion");
    let status = Command::new(hyperion)
        .arg("--storage")
        .arg(db)
        .arg("run")
        .arg(study)
        .arg("-q")
        .args(overrides)
        // Its summary goes to stdout, which is this program's JSON lines.
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run hyperion (build it with cargo build --release -p hyperion-cli)");
    assert!(status.success(), "hyperion run {} failed", study.display());
}

fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2].as_secs_f64() * 1e3
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hyperion-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}
