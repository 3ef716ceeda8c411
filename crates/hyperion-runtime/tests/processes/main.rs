//! Studies shared by real processes on one SQLite file: SIGKILLed and restarted runs, and many
//! workers at once. This binary is its own harness: run with `worker …` it is a worker process
//! (the same code a user's program runs); run without, it runs the cases below.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperion_core::{
    CategoricalDistribution, FloatDistribution, IntDistribution, SearchSpace, StudyView, Trial,
    TrialState,
};
use hyperion_runtime::{Budget, OptimizeConfig, Recovery, Study, TrialError};
use hyperion_samplers::SamplerConfig;
use hyperion_store::{SqliteStore, Store};

/// Crashes are detected after `grace`. The crash test keeps it short; the worker tests keep it
/// long, since 8 processes on 2 cores can delay a heartbeat past a short one.
fn recovery(grace_ms: u64) -> Recovery {
    Recovery {
        heartbeat: Duration::from_millis(100),
        grace: Duration::from_millis(grace_ms),
        max_retries: 3,
        ..Recovery::default()
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("worker") {
        return worker(&args[1..]);
    }
    let cases: [(&str, fn()); 4] = [
        (
            "sigkilled_runs_lose_nothing_and_stop_at_the_budget",
            sigkilled_runs_lose_nothing_and_stop_at_the_budget,
        ),
        (
            "eight_processes_share_2000_trials_exactly",
            eight_processes_share_2000_trials_exactly,
        ),
        (
            "eight_processes_never_duplicate_a_grid_point",
            eight_processes_never_duplicate_a_grid_point,
        ),
        (
            "four_processes_with_a_fit_longer_than_the_lease_miss_no_heartbeat",
            four_processes_with_a_fit_longer_than_the_lease_miss_no_heartbeat,
        ),
    ];
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in cases {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        match std::panic::catch_unwind(case) {
            Ok(()) => {
                passed += 1;
                println!(
                    "test {name} ... ok ({:.1}s)",
                    started.elapsed().as_secs_f64()
                );
            }
            Err(_) => {
                failed += 1;
                println!("test {name} ... FAILED");
            }
        }
    }
    println!("\n{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn space(method: &str) -> SearchSpace {
    match method {
        "grid" => SearchSpace::builder()
            .param("a", IntDistribution::new(1, 10))
            .param("b", IntDistribution::new(1, 10))
            .param(
                "c",
                CategoricalDistribution::new(["x", "y", "z", "u", "v", "w"]),
            )
            .build(),
        _ => SearchSpace::builder()
            .param("x", FloatDistribution::new(-5.0, 5.0))
            .param("y", FloatDistribution::new(-5.0, 5.0))
            .param("z", FloatDistribution::new(1e-3, 1.0).log())
            .build(),
    }
    .unwrap()
}

/// `worker DB STUDY METHOD BUDGET THREADS SLEEP_MS GRACE_MS`: runs the study to its budget.
fn worker(args: &[String]) -> ExitCode {
    let [db, study, method, budget, threads, sleep_ms, grace_ms] = args else {
        eprintln!("worker: expected DB STUDY METHOD BUDGET THREADS SLEEP_MS GRACE_MS");
        return ExitCode::from(2);
    };
    let store: Arc<dyn Store> = match SqliteStore::open(db) {
        Ok(store) => Arc::new(store),
        Err(e) => {
            eprintln!("worker: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sampler = match method.as_str() {
        "grid" => SamplerConfig::Grid {
            points: 10,
            values: Default::default(),
        },
        _ => SamplerConfig::Random,
    };
    let study = Study::builder(study)
        .minimize("loss")
        .space(space(method))
        .store(store);
    let study = match method.as_str() {
        "slow" => study.custom_sampler(Box::new(SlowFit)),
        _ => study.sampler(sampler),
    };
    let budget = match budget.parse::<u64>() {
        Ok(0) | Err(_) => Budget::default(),
        Ok(n) => Budget::trials(n),
    };
    let sleep_ms: u64 = sleep_ms.parse().unwrap_or(0);
    let config = OptimizeConfig::new(budget)
        .threads(threads.parse().unwrap_or(1))
        .recovery(recovery(grace_ms.parse().unwrap_or(600)));
    let result = study.open().and_then(|study| {
        study.optimize(&config, |trial| {
            let value: f64 = trial
                .params()
                .values()
                .filter_map(|v| v.as_f64())
                .map(|x| x * x)
                .sum();
            // A run time that varies with the params, so kills land mid-trial.
            std::thread::sleep(Duration::from_millis(
                (value * 1000.0) as u64 % (sleep_ms + 1),
            ));
            Ok::<_, TrialError>(value)
        })
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker: {e}");
            ExitCode::FAILURE
        }
    }
}

fn spawn(
    db: &Path,
    study: &str,
    method: &str,
    budget: u64,
    threads: usize,
    sleep_ms: u64,
    grace_ms: u64,
) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["worker", db.to_str().unwrap(), study, method])
        .args([
            budget.to_string(),
            threads.to_string(),
            sleep_ms.to_string(),
            grace_ms.to_string(),
        ])
        .spawn()
        .unwrap()
}

/// The study as stored, checked for consistency: numbers dense, and the change log folding
/// to exactly the stored trials.
fn snapshot(db: &Path, study: &str) -> (StudyView, Vec<Trial>) {
    let store = SqliteStore::open(db).unwrap();
    let record = store.study(study).unwrap();
    let trials = store.trials(record.id).unwrap();
    assert!(
        trials.iter().enumerate().all(|(i, t)| t.number == i as u64),
        "trial numbers are dense"
    );
    let mut view = StudyView::new(record.id, record.spec.clone());
    for change in store.changes_since(record.id, 0).unwrap() {
        view.apply(&change, &mut Vec::new()).unwrap();
    }
    assert_eq!(
        view.trials(),
        trials.as_slice(),
        "the change log rebuilds the trials"
    );
    (view, trials)
}

fn sigkilled_runs_lose_nothing_and_stop_at_the_budget() {
    // Two studies: their seeds (derived from the name) give different trials and timings.
    for (study, kill_seed) in [
        ("crash-a", 0x2545_f491_4f6c_dd1du64),
        ("crash-b", 0x9e37_79b9_7f4a_7c15),
    ] {
        killed_and_restarted(study, kill_seed);
    }
}

fn killed_and_restarted(study: &str, mut rng: u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("study.db");
    const BUDGET: u64 = 400;
    let mut completed: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    let mut kills = 0;
    while kills < 20 {
        let mut child = spawn(&db, study, "random", BUDGET, 2, 40, 600);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(20 + rng % 300));
        if child.try_wait().unwrap().is_some() {
            break; // It finished before the kill: the study is done.
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        if !db.exists() {
            continue;
        }
        let (_, trials) = snapshot(&db, study);
        for (number, values) in &completed {
            assert_eq!(
                trials[*number as usize].values.as_ref(),
                Some(values),
                "completed trial {number} kept"
            );
        }
        for t in trials.iter().filter(|t| t.state == TrialState::Completed) {
            completed.insert(t.number.0, t.values.clone().unwrap());
        }
    }
    assert_eq!(
        kills, 20,
        "only {kills} kills landed before the study finished"
    );
    let status = spawn(&db, study, "random", BUDGET, 2, 40, 600)
        .wait()
        .unwrap();
    assert!(status.success());

    let (view, trials) = snapshot(&db, study);
    assert_eq!(
        view.budget_used(),
        BUDGET,
        "exactly the budget, retries replacing stale trials"
    );
    let counts = view.counts();
    assert_eq!(
        (counts.running, counts.pending),
        (0, 0),
        "every trial settled"
    );
    for (number, values) in &completed {
        assert_eq!(trials[*number as usize].values.as_ref(), Some(values));
    }
    // Every stale trial was retried with its params, unless it was the third retry of its
    // original (max_retries 3): a trial killed in four runs in a row is given up on.
    for t in &trials {
        if let TrialState::Failed { error } = &t.state {
            assert!(
                error.starts_with("stale"),
                "trial {} failed: {error}",
                t.number
            );
            let depth = hyperion_store::retry_depth(t.number, |n| trials[n.0 as usize].retry_of);
            match trials.iter().find(|r| r.retry_of == Some(t.number)) {
                Some(retry) => {
                    assert!(depth < 3, "trial {} retried past max_retries", t.number);
                    assert_eq!(retry.params, t.params);
                }
                None => assert_eq!(depth, 3, "stale trial {} has no retry", t.number),
            }
        }
    }
    println!(
        "  {study}: {kills} kills, {} trials, {} completed",
        trials.len(),
        counts.completed
    );
}

fn eight_processes_share_2000_trials_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("study.db");
    let children: Vec<Child> = (0..8)
        .map(|_| spawn(&db, "shared", "random", 2000, 1, 0, 30_000))
        .collect();
    for mut child in children {
        assert!(
            child.wait().unwrap().success(),
            "a worker failed (see its stderr above)"
        );
    }
    let (view, trials) = snapshot(&db, "shared");
    assert_eq!(trials.len(), 2000);
    assert_eq!(view.counts().completed, 2000);
}

fn eight_processes_never_duplicate_a_grid_point() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("study.db");
    let children: Vec<Child> = (0..8)
        .map(|_| spawn(&db, "grid", "grid", 0, 1, 0, 30_000))
        .collect();
    for mut child in children {
        assert!(
            child.wait().unwrap().success(),
            "a worker failed (see its stderr above)"
        );
    }
    let (_, trials) = snapshot(&db, "grid");
    let points: BTreeSet<String> = trials
        .iter()
        .map(|t| serde_json::to_string(&t.params).unwrap())
        .collect();
    assert_eq!((trials.len(), points.len()), (600, 600));
}

/// Random sampling that takes 400 ms to "fit": longer than the trials' lease (300 ms).
#[derive(Debug)]
struct SlowFit;

impl hyperion_samplers::Sampler for SlowFit {
    fn suggest(
        &self,
        space: &SearchSpace,
        ctx: &hyperion_samplers::SampleContext<'_>,
    ) -> Result<Option<hyperion_core::Params>, hyperion_samplers::SamplerError> {
        std::thread::sleep(Duration::from_millis(400));
        hyperion_samplers::RandomSampler::new(7).suggest(space, ctx)
    }
    fn suggest_param(
        &self,
        _: &str,
        _: &hyperion_core::Distribution,
        _: &hyperion_samplers::SampleContext<'_>,
    ) -> Result<hyperion_core::ParamValue, hyperion_samplers::SamplerError> {
        unreachable!("the space is declared")
    }
    fn fits_slowly(&self) -> bool {
        true
    }
}

fn four_processes_with_a_fit_longer_than_the_lease_miss_no_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("study.db");
    let children: Vec<Child> = (0..4)
        .map(|_| spawn(&db, "slow", "slow", 12, 2, 900, 300))
        .collect();
    for mut child in children {
        assert!(
            child.wait().unwrap().success(),
            "a worker failed (see its stderr above)"
        );
    }
    // Two threads a worker: one trial runs while the loop fits for the next.
    let (_, trials) = snapshot(&db, "slow");
    let states: Vec<&str> = trials.iter().map(|t| t.state.name()).collect();
    assert_eq!(states, ["completed"; 12], "no trial went stale: {trials:?}");
    let points: BTreeSet<String> = trials
        .iter()
        .map(|t| serde_json::to_string(&t.params).unwrap())
        .collect();
    assert_eq!(points.len(), 12, "no trial was created twice");
}
