//! Resuming, stopping, and driving a study from another program.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::{Sandbox, state};

const SLOW: &str = "name: r
command: [sh, trial.sh]
parameters:
  x: {type: float, low: 0.0, high: 1.0}
  k: {type: int, low: 1, high: 5}
metric: {name: loss, goal: minimize}
method: sobol
seed: 5
budget: {max_trials: 16}
resources: {max_concurrent: 2}
recovery: {heartbeat: 100ms, grace: 500ms}
";

fn completed_params(s: &Sandbox) -> BTreeSet<String> {
    s.trials("r")
        .iter()
        .filter(|t| state(t) == "completed")
        .map(|t| t["params"].to_string())
        .collect()
}

#[test]
fn a_sigkilled_run_rerun_ends_with_the_same_completed_set_as_an_uninterrupted_one() {
    // Trials 2 and on hang while `hang` exists: the run is killed with trials 0 and 1
    // completed and 2 and 3 running, the case where the rerun's retries come first.
    let script = "n=$HYPERION_TRIAL_NUMBER\n\
                  if [ -e hang ] && [ $n -ge 2 ]; then sleep 30 & echo $! > sleeper-$n; wait; fi\n\
                  sleep 0.15\necho 'HYPERION_METRIC {\"loss\": 1}'\n";
    let whole = Sandbox::new();
    whole.write("trial.sh", script);
    whole.run(SLOW, &[]);
    let expected = completed_params(&whole);
    assert_eq!(expected.len(), 16);

    let killed = Sandbox::new();
    killed.write("trial.sh", script);
    killed.write("study.yaml", SLOW);
    killed.write("hang", "");
    let mut child = killed
        .command(&["run", "study.yaml", "-q"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Until the run has created the store and the study, `trials` fails.
        let listed = killed.hyperion(&["trials", "r", "--format", "json"]);
        let trials: Vec<serde_json::Value> =
            serde_json::from_slice(&listed.stdout).unwrap_or_default();
        let count = |s: &str| trials.iter().filter(|t| state(t) == s).count();
        let sleeping = [2, 3].map(|n| killed.path().join(format!("sleeper-{n}")).exists());
        if (count("completed"), count("running")) == (2, 2) && sleeping == [true; 2] {
            break;
        }
        assert!(Instant::now() < deadline, "trials 2 and 3 never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // No trial outlives the run, not even a child of a trial's script.
    for n in [2, 3] {
        let pid = std::fs::read_to_string(killed.path().join(format!("sleeper-{n}"))).unwrap();
        let proc = std::path::PathBuf::from(format!("/proc/{}", pid.trim()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while proc.exists() {
            assert!(
                Instant::now() < deadline,
                "trial {n}'s sleep outlived the killed run"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    std::fs::remove_file(killed.path().join("hang")).unwrap();
    assert_eq!(completed_params(&killed).len(), 2);

    killed.run(SLOW, &["-q"]);
    assert_eq!(completed_params(&killed), expected);
    assert_eq!(running(&killed), 0, "every trial settled");
}

fn running(s: &Sandbox) -> usize {
    (s.trials("r").iter())
        .filter(|t| matches!(state(t), "running" | "pending"))
        .count()
}

#[test]
fn rerunning_continues_to_a_larger_budget() {
    let s = Sandbox::new();
    s.write("trial.sh", "echo 'HYPERION_METRIC {\"loss\": 1}'\n");
    s.run(SLOW, &["budget.max_trials=3"]);
    s.run(SLOW, &["budget.max_trials=5"]);
    let numbers: Vec<u64> = s
        .trials("r")
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [0, 1, 2, 3, 4]);
}

#[test]
fn hyperion_stop_ends_a_run_after_its_running_trials() {
    let s = Sandbox::new();
    s.write(
        "trial.sh",
        "sleep 0.3\necho 'HYPERION_METRIC {\"loss\": 1}'\n",
    );
    s.write(
        "study.yaml",
        &SLOW.replace("max_trials: 16", "max_trials: 1000"),
    );
    let run = s.command(&["run", "study.yaml", "-q"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let stop = s.hyperion(&["stop", "r"]);
    assert!(stop.status.success(), "{}", crate::stderr(&stop));
    let output = run.wait_with_output().unwrap();
    assert!(output.status.success());
    let trials = s.trials("r");
    assert!(
        trials.len() < 20,
        "the run stopped launching ({} trials)",
        trials.len()
    );
    assert!(
        trials.iter().all(|t| state(t) == "completed"),
        "running trials finished"
    );
}

#[test]
fn ask_and_tell_drive_a_study_from_another_program() {
    let s = Sandbox::new();
    let space = r#"{"x": {"type": "float", "low": 0, "high": 1}}"#;
    let asked = s.hyperion(&[
        "ask",
        "--study",
        "at",
        "--space",
        space,
        "--maximize",
        "acc",
    ]);
    assert!(asked.status.success(), "{}", crate::stderr(&asked));
    let trial: serde_json::Value = serde_json::from_slice(&asked.stdout).unwrap();
    assert_eq!(trial["number"], 0);
    let x = trial["params"]["x"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&x));
    let told = s.hyperion(&["tell", "--study", "at", "--trial", "0", "--value", "0.75"]);
    assert!(told.status.success(), "{}", crate::stderr(&told));
    let second = s.hyperion(&["ask", "--study", "at"]);
    let second: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(second["number"], 1);
    s.hyperion(&[
        "tell",
        "--study",
        "at",
        "--trial",
        "1",
        "--state",
        "failed",
        "--message",
        "oom",
    ]);
    let best = s.hyperion(&["best", "at", "--json"]);
    let best: serde_json::Value = serde_json::from_slice(&best.stdout).unwrap();
    assert_eq!(
        (best["number"].as_u64(), best["values"][0].as_f64()),
        (Some(0), Some(0.75))
    );
    let again = s.hyperion(&["tell", "--study", "at", "--trial", "0", "--value", "0.1"]);
    assert!(crate::stderr(&again).contains("trial 0 is completed, not running"));
}

fn interrupt(child: &std::process::Child) {
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn ctrl_c_once_waits_for_running_trials_and_twice_kills_them() {
    let s = Sandbox::new();
    s.write(
        "trial.sh",
        "sleep 1\necho 'HYPERION_METRIC {\"loss\": 1}'\n",
    );
    s.write(
        "study.yaml",
        &SLOW.replace("max_trials: 16", "max_trials: 100"),
    );
    let run = s.command(&["run", "study.yaml", "-q"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    interrupt(&run);
    let output = run.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "the status after Ctrl-C is 128 + SIGINT"
    );
    let trials = s.trials("r");
    assert_eq!(trials.len(), 2, "no trial started after Ctrl-C");
    assert!(
        trials.iter().all(|t| state(t) == "completed"),
        "the running trials finished"
    );

    let s = Sandbox::new();
    s.write(
        "trial.sh",
        "sleep 30\necho 'HYPERION_METRIC {\"loss\": 1}'\n",
    );
    s.write(
        "study.yaml",
        &SLOW.replace("max_trials: 16", "max_trials: 100"),
    );
    let started = std::time::Instant::now();
    let run = s
        .command(&["run", "study.yaml", "-q", "resources.kill_grace=1s"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    interrupt(&run);
    std::thread::sleep(Duration::from_millis(200));
    interrupt(&run);
    let output = run.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the trials were killed, not waited for"
    );
    let trials = s.trials("r");
    assert_eq!(trials.len(), 4, "two killed trials and their retries");
    for t in &trials[..2] {
        assert_eq!(
            (state(t), crate::error(t)),
            ("failed", "killed: the run was stopped")
        );
    }
    // The next run runs the killed trials again, then the rest of the budget.
    s.write("trial.sh", "echo 'HYPERION_METRIC {\"loss\": 1}'\n");
    s.run(&SLOW.replace("max_trials: 16", "max_trials: 4"), &["-q"]);
    let trials = s.trials("r");
    let completed = trials.iter().filter(|t| state(t) == "completed").count();
    assert_eq!((trials.len(), completed), (6, 4));
}

#[test]
fn enqueued_points_run_first_and_a_rerun_does_not_add_them_again() {
    let s = Sandbox::new();
    s.write("trial.sh", "echo 'HYPERION_METRIC {\"loss\": 1}'\n");
    let study = SLOW.replace("max_trials: 16", "max_trials: 3")
        + "enqueue:\n  - {x: 0.25, k: 2}\n  - {x: 1, k: 4}\n";
    let output = s.run(&study, &[]);
    assert!(crate::stderr(&output).contains("trying 2 enqueued points"));
    let points = |s: &Sandbox| -> Vec<(f64, i64)> {
        (s.trials("r").iter())
            .map(|t| {
                (
                    t["params"]["x"].as_f64().unwrap(),
                    t["params"]["k"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let first = points(&s);
    assert_eq!(first.len(), 3);
    assert_eq!(first[..2], [(0.25, 2), (1.0, 4)]);
    s.run(&study, &["budget.max_trials=5"]);
    let again = points(&s);
    assert_eq!(again.len(), 5);
    assert_eq!(again[..3], first[..]);
    assert!(!again[3..].contains(&(0.25, 2)), "not enqueued twice");
}

#[test]
fn each_run_is_recorded_and_a_run_with_other_code_stops_unless_accepted() {
    let s = Sandbox::new();
    s.write("trial.sh", "echo 'HYPERION_METRIC {\"loss\": 1}'\n");
    let git = |args: &[&str]| {
        let done = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(s.path())
            .output()
            .unwrap();
        assert!(done.status.success(), "git {args:?}");
        String::from_utf8(done.stdout).unwrap().trim().to_owned()
    };
    git(&["init", "-q"]);
    s.write(".gitignore", ".hyperion/\n");
    s.write("study.yaml", SLOW);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "first"]);
    let head = git(&["rev-parse", "HEAD"]);
    s.run(SLOW, &["budget.max_trials=2"]);

    let runs = s.hyperion_json(&["runs", "r", "--json"]);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["git"]["commit"], head.as_str());
    assert_eq!(runs[0]["git"]["dirty"], false);
    assert!(runs[0]["ended_at"].is_u64(), "{}", runs[0]);
    assert_eq!(runs[0]["overrides"][0], "budget.max_trials=2");
    let digest = runs[0]["code"]["trial.sh"].as_str().unwrap().to_owned();
    assert!(digest.starts_with("b3:"));

    // The script changes: the next run stops before any trial, naming the file.
    s.write("trial.sh", "echo 'HYPERION_METRIC {\"loss\": 2}'\n");
    s.write("study.yaml", SLOW);
    let output = s.hyperion(&["run", "study.yaml", "budget.max_trials=4"]);
    assert!(!output.status.success());
    let said = crate::stderr(&output);
    assert!(said.contains("the code differs from run 1's"), "{said}");
    assert!(
        said.contains(&format!("trial.sh: {}", &digest[..15])),
        "{said}"
    );
    assert!(said.contains("--accept-code-change"), "{said}");
    assert_eq!(s.trials("r").len(), 2, "nothing ran");

    let output = s.hyperion(&[
        "run",
        "study.yaml",
        "-q",
        "budget.max_trials=4",
        "--accept-code-change",
    ]);
    assert!(output.status.success(), "{}", crate::stderr(&output));
    assert_eq!(s.trials("r").len(), 4);
    let runs = s.hyperion_json(&["runs", "r", "--json"]);
    assert_eq!(runs.len(), 2, "the refused run is not one");
    assert_eq!(runs[1]["git"]["dirty"], true);
    assert_ne!(runs[1]["code"]["trial.sh"], runs[0]["code"]["trial.sh"]);
    let listed = s.hyperion(&["runs", "r"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("run 2: ") && listed.contains("(dirty)"),
        "{listed}"
    );
}

#[test]
fn a_grid_point_whose_run_was_killed_runs_again_when_the_study_is_rerun_at_once() {
    let s = Sandbox::new();
    s.write(
        "trial.sh",
        "if [ -e hang ]; then touch started; sleep 30; fi\necho 'HYPERION_METRIC {\"loss\": 1}'\n",
    );
    let study = "name: g\ncommand: [sh, trial.sh, '{x}']\nmethod: grid\n\
                 parameters: {x: {type: categorical, choices: [1]}}\n\
                 metric: {name: loss, goal: minimize}\n\
                 recovery: {heartbeat: 100ms, grace: 500ms}\n";
    s.write("study.yaml", study);
    s.write("hang", "");
    let mut run = s.command(&["run", "study.yaml", "-q"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.path().join("started").exists() {
        assert!(Instant::now() < deadline, "the trial never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    run.kill().unwrap(); // SIGKILL
    run.wait().unwrap();
    std::fs::remove_file(s.path().join("hang")).unwrap();
    // Rerun at once, before the dead run's lease runs out: the run waits for it, then retries.
    s.run(study, &["-q"]);
    let trials = s.trials("g");
    let completed = trials.iter().filter(|t| state(t) == "completed").count();
    assert_eq!(completed, 1, "the grid's point ran again: {trials:?}");
}
