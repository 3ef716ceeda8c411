//! The controller through the binary: settings kept in the store and used by every command,
//! report by number, no trial process outliving its run, and a resume that never hangs.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperion_runtime::Study;
use hyperion_samplers::SamplerConfig;
use hyperion_store::{SqliteStore, Store};
use serde_json::Value;

use crate::{Sandbox, state, stderr};

/// Reports `loss` at steps 1 to 3; the loss is `(x - 1)²`, a little worse at earlier steps.
const TRIAL: &str = "import json, os, sys, time
x = float(sys.argv[1].split('=')[1])
time.sleep(float(os.environ.get('PAUSE', '0')))
with open(os.environ['HYPERION_METRICS_FILE'], 'a') as f:
    for step in range(1, 4):
        f.write(json.dumps({'step': step, 'loss': (x - 1) ** 2 + 1 / step}) + '\\n')
";

const TPE_ASHA: &str = "name: ta
command: [python3, trial.py, '{args}']
parameters:
  x: {type: float, low: -3.0, high: 3.0}
metric: {name: loss, goal: minimize}
method: tpe
seed: 11
budget: {max_trials: 8}
early_stopping: {type: asha, min_resource: 1, reduction_factor: 2}
";

fn store(path: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(path).unwrap())
}

fn json(output: &std::process::Output) -> Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn ask_report_and_tell_use_the_settings_of_a_study_that_run_created() {
    let s = Sandbox::new();
    s.write("trial.py", TRIAL);
    s.run(TPE_ASHA, &["budget.max_trials=6", "-q"]);
    let spent = s.hyperion(&["ask", "--study", "ta"]);
    assert!(
        stderr(&spent).contains("trial budget is spent: it has its 6 trials"),
        "`ask` obeys the study's budget: {}",
        stderr(&spent)
    );
    let db = s.path().join(".hyperion/hyperion.db");
    let copy = s.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();

    // The file raises the budget to 8; TPE, its seed and ASHA come from the store.
    let asked = json(&s.hyperion(&["ask", "--file", "study.yaml"]));
    assert_eq!(asked["number"], 6);
    // The library, on a copy of the store, suggests the same.
    let spec = store(&copy).study("ta").unwrap().spec;
    let library = Study::builder("ta")
        .objectives(spec.objectives)
        .space(spec.space)
        .budget(hyperion_runtime::Budget::trials(8))
        .store(store(&copy))
        .open()
        .unwrap();
    assert!(matches!(
        library.settings().sampler,
        Some(SamplerConfig::Tpe(_))
    ));
    let expected = library.ask().unwrap().params().clone();
    assert_eq!(asked["params"], serde_json::to_value(&expected).unwrap());

    // ASHA stops a trial far worse than the others at the first rung: exit 3.
    let bad = s.hyperion(&[
        "report", "--study", "ta", "--trial", "6", "--step", "1", "--value", "1e6",
    ]);
    assert_eq!(bad.status.code(), Some(3), "{}", stderr(&bad));
    let said = String::from_utf8_lossy(&bad.stdout).into_owned();
    assert!(
        said.starts_with("stop: ") && said.contains("rung"),
        "{said}"
    );
    let again = s.hyperion(&[
        "report",
        "--study",
        "ta",
        "--trial",
        "6",
        "--step",
        "1",
        "--metrics",
        r#"{"loss": 0.0}"#,
    ]);
    assert_eq!(
        (
            again.status.code(),
            String::from_utf8_lossy(&again.stdout).into_owned()
        ),
        (Some(3), said),
        "a stopped trial stays stopped"
    );
    let told = s.hyperion(&["tell", "--study", "ta", "--trial", "6", "--state", "pruned"]);
    assert!(told.status.success(), "{}", stderr(&told));

    let next = json(&s.hyperion(&["ask", "--study", "ta"]));
    assert_eq!(next["number"], 7);
    let fine = s.hyperion(&[
        "report", "--study", "ta", "--trial", "7", "--step", "1", "--value", "0",
    ]);
    assert_eq!(fine.status.code(), Some(0), "{}", stderr(&fine));
    assert_eq!(String::from_utf8_lossy(&fine.stdout), "continue\n");
    let missing = s.hyperion(&[
        "report",
        "--study",
        "ta",
        "--trial",
        "7",
        "--step",
        "2",
        "--metrics",
        r#"{"acc": 1}"#,
    ]);
    assert!(
        stderr(&missing).contains("no finite value of \"loss\""),
        "{}",
        stderr(&missing)
    );
    assert!(
        !s.hyperion(&["ask", "--study", "ta"]).status.success(),
        "8 trials: spent"
    );
}

#[test]
fn rerunning_with_other_settings_records_them_and_says_what_changed() {
    let s = Sandbox::new();
    s.write("trial.py", TRIAL);
    let random = TPE_ASHA.replace("method: tpe", "method: random");
    s.run(&random, &["budget.max_trials=3", "-q"]);
    let output = s.run(TPE_ASHA, &["budget.max_trials=5", "-q"]);
    let text = stderr(&output);
    assert!(text.contains("changes budget.max_trials: 3 → 5"), "{text}");
    assert!(
        text.contains("changes sampler: {\"method\":\"random\"} → {\"method\":\"tpe\""),
        "{text}"
    );
    assert_eq!(s.trials("ta").len(), 5);
    let reseeded = TPE_ASHA.replace("seed: 11", "seed: 12");
    let error = s.run_error(&reseeded);
    assert!(
        error.contains("study.yaml") && error.contains("seed is 11, not 12"),
        "{error}"
    );
    let grid = TPE_ASHA.replace("method: tpe", "method: grid");
    let error = s.run_error(&grid);
    assert!(error.contains("a grid cannot be switched"), "{error}");
    assert_eq!(s.trials("ta").len(), 5, "nothing written");
}

#[test]
fn a_store_of_the_previous_release_opens_and_takes_its_settings_from_the_first_run() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path().join(".hyperion")).unwrap();
    let db = s.path().join(".hyperion/hyperion.db");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v2-legacy.db"),
        &db,
    )
    .unwrap();
    s.write("trial.py", TRIAL);
    // Six trials run by `hyperion run`, then trial 6 handed out by `ask` and never told.
    let trials = s.trials("legacy");
    assert_eq!(trials.len(), 7);
    assert_eq!(state(&trials[6]), "running");
    assert!(
        Study::open(store(&db), "legacy")
            .unwrap()
            .settings()
            .budget
            .max_trials
            .is_none()
    );
    let told = s.hyperion(&["tell", "--study", "legacy", "--trial", "6", "--value", "3"]);
    assert!(told.status.success(), "{}", stderr(&told));

    let file = "name: legacy
command: [python3, trial.py, '{args}']
parameters:
  x: {type: float, low: -3.0, high: 3.0}
metric: {name: loss, goal: minimize}
method: tpe
seed: 3
budget: {max_trials: 9}
";
    s.run(file, &["-q"]);
    let trials = s.trials("legacy");
    assert_eq!(trials.len(), 9);
    assert!(trials.iter().all(|t| state(t) == "completed"));
    let settings = Study::open(store(&db), "legacy")
        .unwrap()
        .settings()
        .clone();
    assert!(matches!(settings.sampler, Some(SamplerConfig::Tpe(_))));
    assert_eq!((settings.seed, settings.budget.max_trials), (3, Some(9)));
}

/// A trial that starts a grandchild and waits; both write their pids to `pids/`.
const SLEEPER: &str = "mkdir -p pids
sleep ${NAP:-60} & echo $! > pids/$HYPERION_TRIAL_NUMBER.child
echo $$ > pids/$HYPERION_TRIAL_NUMBER.leader
wait
echo 'HYPERION_METRIC {\"loss\": 1}'
";

const SLEEPERS: &str = "name: z
command: [sh, trial.sh]
metric: {name: loss, goal: minimize}
budget: {max_trials: 2}
resources: {max_concurrent: 2, kill_grace: 1s}
recovery: {heartbeat: 100ms, grace: 600ms, max_retries: 50}
";

/// The pids the running trials of study `z` (in `s`) wrote, once there are `at_least` and the
/// run has taken charge of both trials (their launches are recorded: the run knows their
/// process groups). A trial's script can write its pid a moment before its run registers it.
fn started_pids(s: &Sandbox, at_least: usize) -> Vec<i32> {
    let found = pids(s.path(), at_least);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let listed = s.hyperion(&["trials", "z", "--format", "json"]);
        let trials: Vec<serde_json::Value> =
            serde_json::from_slice(&listed.stdout).unwrap_or_default();
        if trials.len() == 2 && trials.iter().all(|t| t["launch"].is_object()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    found
}

fn pids(dir: &Path, at_least: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found: Vec<i32> = std::fs::read_dir(dir.join("pids"))
            .map(|entries| {
                entries
                    .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .filter_map(|s| s.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if found.len() >= at_least || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` is a live process (not a zombie).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

fn survivors(pids: &[i32]) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    pids.iter().copied().filter(|&p| alive(p)).collect()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sigterm_and_sighup_to_run_leave_no_trial_process() {
    for name in ["TERM", "HUP"] {
        let s = Sandbox::new();
        s.write("trial.sh", SLEEPER);
        s.write("study.yaml", SLEEPERS);
        let run = s.command(&["run", "study.yaml", "-q"]).spawn().unwrap();
        let started = started_pids(&s, 4);
        assert_eq!(started.len(), 4, "two trials and their grandchildren");
        signal(&run, name);
        let output = run.wait_with_output().unwrap();
        assert_eq!(
            survivors(&started),
            Vec::<i32>::new(),
            "SIG{name} left processes"
        );
        let trials = s.trials("z");
        let states: Vec<&str> = trials.iter().map(state).collect();
        assert_eq!(
            states,
            ["failed", "failed", "pending", "pending"],
            "SIG{name}: the killed trials are settled and queued to run again: {}",
            stderr(&output)
        );
    }
}

#[test]
fn a_sigkilled_run_takes_its_trials_with_it_and_the_next_run_retries_them() {
    let s = Sandbox::new();
    s.write("trial.sh", SLEEPER);
    s.write("study.yaml", SLEEPERS);
    let mut run = s.command(&["run", "study.yaml", "-q"]).spawn().unwrap();
    let trials = started_pids(&s, 4);
    assert_eq!(trials.len(), 4);
    run.kill().unwrap();
    run.wait().unwrap();
    assert_eq!(
        survivors(&trials),
        Vec::<i32>::new(),
        "the watchdog killed the trials and their children"
    );
    std::fs::remove_dir_all(s.path().join("pids")).unwrap();
    let output = s.hyperion(&["run", "study.yaml", "-q", "env.NAP=0s"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let trials = s.trials("z");
    let completed = trials.iter().filter(|t| state(t) == "completed").count();
    assert_eq!((trials.len(), completed), (4, 2), "{trials:?}");
}

#[test]
fn the_run_after_a_sigkill_of_run_and_watchdog_kills_the_dead_runs_trials_then_retries_them() {
    let s = Sandbox::new();
    s.write("trial.sh", SLEEPER);
    s.write("study.yaml", SLEEPERS);
    let mut run = s.command(&["run", "study.yaml", "-q"]).spawn().unwrap();
    let orphans = started_pids(&s, 4);
    assert_eq!(orphans.len(), 4);
    let watchdog = watchdog_of(run.id() as i32).expect("the run has a watchdog");
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &watchdog.to_string()])
            .status()
            .unwrap()
            .success()
    );
    run.kill().unwrap();
    run.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        orphans.iter().all(|&p| alive(p)),
        "without its watchdog, a SIGKILL leaves the trials running"
    );
    std::fs::remove_dir_all(s.path().join("pids")).unwrap();
    let output = s.hyperion(&["run", "study.yaml", "-q", "env.NAP=0s"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        survivors(&orphans),
        Vec::<i32>::new(),
        "the dead run's groups are gone"
    );
    let trials = s.trials("z");
    let completed = trials.iter().filter(|t| state(t) == "completed").count();
    assert_eq!((trials.len(), completed), (4, 2), "{trials:?}");
}

/// The watchdog process that `run` started (a child of it running `hyperion-watchdog`).
fn watchdog_of(run: i32) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let ppid: i32 = stat
            .rsplit(')')
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let named = String::from_utf8_lossy(&cmdline).contains("hyperion-watchdog");
        (ppid == run && named).then_some(pid)
    })
}

#[test]
fn runs_sigkilled_at_random_moments_then_one_plain_run_completes_the_budget() {
    let s = Sandbox::new();
    s.write(
        "trial.sh",
        "sleep 0.2\necho 'HYPERION_METRIC {\"loss\": 1}'\n",
    );
    let study = "name: k
command: [sh, trial.sh]
metric: {name: loss, goal: minimize}
budget: {max_trials: 6}
resources: {max_concurrent: 2}
recovery: {heartbeat: 100ms, grace: 500ms, max_retries: 100}
";
    s.write("study.yaml", study);
    // Pseudo-random moments, reproducible: a small LCG.
    let mut seed: u64 = 0x5eed;
    let mut kills = 0;
    loop {
        let listed = s.hyperion(&["trials", "k", "--format", "json"]);
        let trials: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap_or_default();
        let created = trials.iter().filter(|t| t["retry_of"].is_null()).count();
        if created >= 6 {
            break;
        }
        let mut run = s.command(&["run", "study.yaml", "-q"]).spawn().unwrap();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(50 + (seed >> 33) % 500));
        run.kill().unwrap();
        run.wait().unwrap();
        kills += 1;
        assert!(kills < 200, "the budget was never created");
    }
    let started = Instant::now();
    let output = s.hyperion(&["run", "study.yaml", "-q"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the final run took {:?}",
        started.elapsed()
    );
    let trials = s.trials("k");
    let completed = trials.iter().filter(|t| state(t) == "completed").count();
    let unsettled = trials
        .iter()
        .filter(|t| matches!(state(t), "running" | "pending"))
        .count();
    assert_eq!(
        (completed, unsettled),
        (6, 0),
        "after {kills} kills: {trials:?}"
    );
}

#[test]
fn a_trial_asked_and_never_told_goes_stale_after_its_lease() {
    let s = Sandbox::new();
    s.write("trial.sh", "echo 'HYPERION_METRIC {\"loss\": 1}'\n");
    let study = "name: l
command: [sh, trial.sh]
metric: {name: loss, goal: minimize}
budget: {max_trials: 3}
recovery: {heartbeat: 100ms, grace: 500ms, lease: 1s}
";
    s.write("study.yaml", study);
    let asked = json(&s.hyperion(&["ask", "--file", "study.yaml"]));
    assert_eq!(asked["number"], 0);
    let started = Instant::now();
    let output = s.hyperion(&["run", "study.yaml", "-q"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let trials = s.trials("l");
    assert!(
        crate::error(&trials[0]).starts_with("stale"),
        "{:?}",
        trials[0]
    );
    let completed = trials.iter().filter(|t| state(t) == "completed").count();
    assert_eq!(completed, 3, "the asked trial's retry ran: {trials:?}");
}

#[test]
fn a_cmaes_study_runs_and_stores_its_distribution_once_per_generation() {
    let s = Sandbox::new();
    s.write("trial.py", TRIAL);
    let file = "name: cm
command: [python3, trial.py, '{args}']
parameters:
  x: {type: float, low: -3.0, high: 3.0}
metric: {name: loss, goal: minimize}
method: cmaes
cmaes: {popsize: 4}
seed: 2
budget: {max_trials: 16}
";
    s.run(file, &["-q"]);
    let trials = s.trials("cm");
    assert_eq!(trials.len(), 16);
    assert!(trials.iter().all(|t| state(t) == "completed"));
    let store = store(&s.path().join(".hyperion/hyperion.db"));
    let id = store.study("cm").unwrap().id;
    let states: Vec<_> = store
        .changes_since(id, 0)
        .unwrap()
        .into_iter()
        .filter_map(|c| match c.change {
            hyperion_core::Change::SamplerStateSet { key, value } => Some((key, value)),
            _ => None,
        })
        .collect();
    // One run, one trial at a time: generations close at trials 4, 8 and 12.
    assert_eq!(states.len(), 3, "{states:?}");
    assert!(states.iter().all(|(key, _)| key == "cmaes"));
    assert_eq!(states[2].1["cma"]["generation"], 3);
}
