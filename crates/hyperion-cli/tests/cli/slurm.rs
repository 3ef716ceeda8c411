//! Trials as jobs of the real single-node Slurm that `infra/slurm-up.sh` starts: early stopping
//! cancels jobs, Slurm's time limit, failures, lost jobs retried, a controller SIGKILLed again
//! and again, and the errors before anything runs. `HYPERION_TEST_SLURM=skip` skips them.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Sandbox, error, state, stderr};

/// Whether to run the Slurm tests; says so when they are skipped.
pub(crate) fn slurm() -> bool {
    if std::env::var("HYPERION_TEST_SLURM").as_deref() == Ok("skip") {
        eprintln!("skipped: HYPERION_TEST_SLURM=skip");
        return false;
    }
    let ping = Command::new("scontrol").arg("ping").output();
    assert!(
        ping.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("UP")),
        "no Slurm here: start one with `infra/slurm-up.sh` (root), or set HYPERION_TEST_SLURM=skip"
    );
    true
}

/// The jobs of `study`'s trials that Slurm knows, finished ones included: name → states.
fn jobs(study: &str) -> BTreeMap<String, Vec<String>> {
    let out = Command::new("squeue")
        .args([
            "--noheader",
            "--states=all",
            "--me",
            "--Format=Name:200|,State:|",
        ])
        .output()
        .unwrap();
    let prefix = format!("hyperion-{study}-");
    let mut jobs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut fields = line.split('|').map(str::trim);
        let (Some(name), Some(state)) = (fields.next(), fields.next()) else {
            continue;
        };
        if name.starts_with(&prefix) && !name.ends_with("-probe") {
            jobs.entry(name.to_owned())
                .or_default()
                .push(state.to_owned());
        }
    }
    jobs
}

/// Asserts that none of `study`'s jobs is queued or running.
fn queue_is_empty(study: &str) {
    let left: Vec<(String, Vec<String>)> = jobs(study)
        .into_iter()
        .filter(|(_, states)| {
            states
                .iter()
                .any(|s| matches!(s.as_str(), "PENDING" | "RUNNING" | "CONFIGURING"))
        })
        .collect();
    assert!(left.is_empty(), "jobs left in the queue: {left:?}");
}

/// A name no other run of the tests uses (Slurm's queue outlives a test run).
pub(crate) fn unique(stem: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{stem}{}x{}", std::process::id(), nanos % 1_000_000_000)
}

/// Waits until `study`'s job for trial `number` runs; returns its id.
fn running_job(study: &str, number: u64) -> String {
    let name = format!("hyperion-{study}-{number}");
    let start = Instant::now();
    loop {
        let out = Command::new("squeue")
            .args([
                "--noheader",
                "--me",
                &format!("--name={name}"),
                "--states=RUNNING",
                "--Format=JobID:|",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(id) = text.lines().next() {
            return id.trim().trim_end_matches('|').to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{name} never ran"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const CURVE: &str = r#"import json, os, sys, time
x = float(sys.argv[1])
with open(os.environ["HYPERION_METRICS_FILE"], "a") as out:
    for epoch in range(1, 10):
        out.write(json.dumps({"step": epoch, "loss": (x - 0.5) ** 2 + 1.0 / epoch}) + "\n")
        out.flush()
        time.sleep(0.3)
"#;

#[test]
fn asha_cancels_the_jobs_of_the_trials_it_stops() {
    if !slurm() {
        return;
    }
    let s = Sandbox::new();
    let study = unique("asha");
    s.write("curve.py", CURVE);
    s.run(
        &format!(
            "name: {study}\ncommand: [python3, curve.py, '{{x}}']\n\
             parameters: {{x: {{type: float, low: 0.0, high: 1.0}}}}\nmetric: {{name: loss}}\n\
             method: sobol\nbudget: {{max_trials: 20}}\n\
             resources: {{max_concurrent: 6, executor: slurm}}\nslurm: {{time: 10m}}\n\
             early_stopping: {{type: asha, min_resource: 1, max_resource: 9, reduction_factor: 3}}\n"
        ),
        &["-q"],
    );
    let trials = s.trials(&study);
    assert_eq!(trials.len(), 20);
    let pruned: Vec<&Value> = trials.iter().filter(|t| state(t) == "pruned").collect();
    assert!(
        pruned.len() >= 5,
        "ASHA stops most trials: {} of 20",
        pruned.len()
    );
    assert!(trials.iter().any(|t| state(t) == "completed"));
    let jobs = jobs(&study);
    for t in &trials {
        let name = format!("hyperion-{study}-{}", t["number"]);
        let expected = if state(t) == "pruned" {
            "CANCELLED"
        } else {
            "COMPLETED"
        };
        assert_eq!(
            jobs.get(&name).map(Vec::as_slice),
            Some(&[expected.to_owned()][..]),
            "trial {} is {}: one job, {expected}",
            t["number"],
            state(t)
        );
    }
    queue_is_empty(&study);
    // Where each trial ran is kept: its directory, with the job script Hyperion wrote.
    let script = std::fs::read_to_string(s.trial_dir(&study, 0).join("job.sh")).unwrap();
    assert!(script.contains("exec 'python3' 'curve.py' '"), "{script}");
}

#[test]
fn a_job_past_its_time_limit_fails_with_time_limit_and_a_failing_job_with_its_stderr() {
    if !slurm() {
        return;
    }
    let s = Sandbox::new();
    let study = unique("limits");
    s.write(
        "job.sh",
        "#!/bin/sh\nif [ \"$1\" = 0 ]; then echo 'loading data' >&2; echo 'CUDA error: out of cheese' >&2; exit 3; fi\n\
         echo started >&2\nexec sleep 300\n",
    );
    s.write(
        "study.yaml",
        &format!(
            "name: {study}\ncommand: [./job.sh, '{{which}}']\n\
             parameters: {{which: {{type: categorical, choices: [0, 1]}}}}\nmetric: {{name: loss}}\n\
             method: grid\nresources: {{max_concurrent: 2, executor: slurm}}\nslurm: {{time: 1m}}\n"
        ),
    );
    let started = Instant::now();
    let output = s.hyperion(&["run", "study.yaml", "-q"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let trials = s.trials(&study);
    let by_which = |w: i64| {
        trials
            .iter()
            .find(|t| t["params"]["which"] == w)
            .unwrap_or_else(|| panic!("a trial with which={w}: {trials:?}"))
    };
    let failing = by_which(0);
    assert_eq!(state(failing), "failed");
    let e = error(failing);
    assert!(
        e.starts_with("exit code 3: CUDA error: out of cheese"),
        "{e}"
    );
    assert!(e.contains("loading data"), "the tail of stderr: {e}");
    let late = by_which(1);
    assert_eq!(state(late), "failed");
    assert!(
        error(late).starts_with("time limit: Slurm ended job"),
        "{}",
        error(late)
    );
    assert!(error(late).contains("started"), "{}", error(late));
    assert!(
        started.elapsed() >= Duration::from_secs(55),
        "Slurm's limit, not ours"
    );
    queue_is_empty(&study);
}

/// A trial that sleeps, so that the test can do something to its job while it runs.
fn sleeper(s: &Sandbox, study: &str, trials: u64, (low, high): (f64, f64), extra: &str) {
    s.write(
        "nap.py",
        "import json, os, sys, time\ntime.sleep(float(sys.argv[1]))\n\
         open(os.environ['HYPERION_METRICS_FILE'], 'a').write(json.dumps({'loss': 1.0}) + '\\n')\n",
    );
    s.write(
        "study.yaml",
        &format!(
            "name: {study}\ncommand: [python3, nap.py, '{{nap}}']\n\
             parameters: {{nap: {{type: float, low: {low:?}, high: {high:?}}}}}\nmetric: {{name: loss}}\n\
             budget: {{max_trials: {trials}}}\nresources: {{max_concurrent: 4, executor: slurm}}\n\
             slurm: {{time: 10m}}\n{extra}"
        ),
    );
}

#[test]
fn jobs_cancelled_by_someone_else_or_requeued_run_again_as_retries() {
    if !slurm() {
        return;
    }
    let s = Sandbox::new();
    let study = unique("lost");
    sleeper(&s, &study, 2, (6.0, 6.5), "");
    let run = s
        .command(&["run", "study.yaml", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let cancelled = running_job(&study, 0);
    let requeued = running_job(&study, 1);
    let status = Command::new("scancel").arg(&cancelled).status().unwrap();
    assert!(status.success());
    let status = Command::new("scontrol")
        .args(["requeue", &requeued])
        .status()
        .unwrap();
    assert!(status.success());
    let output = run.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let trials = s.trials(&study);
    let find = |n: u64| trials.iter().find(|t| t["number"] == n).unwrap();
    assert!(
        error(find(0)).contains("was cancelled, not by Hyperion"),
        "{}",
        error(find(0))
    );
    assert!(error(find(1)).contains("requeued"), "{}", error(find(1)));
    for lost in [0, 1] {
        let retry = trials
            .iter()
            .find(|t| t["retry_of"] == lost)
            .unwrap_or_else(|| panic!("trial {lost} has a retry: {trials:?}"));
        assert_eq!(state(retry), "completed", "{retry}");
        assert_eq!(retry["params"], find(lost)["params"]);
    }
    assert_eq!(trials.len(), 4);
    queue_is_empty(&study);
}

#[test]
fn a_controller_killed_ten_times_loses_nothing_and_submits_each_trial_once() {
    if !slurm() {
        return;
    }
    let s = Sandbox::new();
    let study = unique("kill");
    sleeper(
        &s,
        &study,
        16,
        (0.5, 2.0),
        "recovery: {heartbeat: 0.5s, grace: 3s}\n",
    );
    // Moments spread over a run's life: during the probe, submissions, and while jobs run.
    let mut moments = [300u64, 2500, 900, 1700, 3100, 600, 2100, 1300, 2800, 1100].into_iter();
    for _ in 0..10 {
        let mut run = s
            .command(&["run", "study.yaml", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(moments.next().unwrap()));
        run.kill().unwrap();
        run.wait().unwrap();
    }
    let output = s.hyperion(&["run", "study.yaml", "-q"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let trials = s.trials(&study);
    let originals = trials.iter().filter(|t| t["retry_of"].is_null()).count();
    assert_eq!(originals, 16, "exactly the budget: {trials:?}");
    // Every lineage ends completed; a retry only for a trial whose job never got submitted.
    let retried: Vec<&Value> = trials
        .iter()
        .filter_map(|t| t["retry_of"].as_u64())
        .map(|n| trials.iter().find(|t| t["number"] == n).unwrap())
        .collect();
    for t in &trials {
        let retried_later = retried.iter().any(|r| r["number"] == t["number"]);
        if !retried_later {
            assert_eq!(state(t), "completed", "{t}");
        }
    }
    // One job per trial attempt.
    let jobs = jobs(&study);
    for (name, states) in &jobs {
        assert_eq!(
            states.len(),
            1,
            "{name} was submitted {} times: {states:?}",
            states.len()
        );
    }
    for t in trials.iter().filter(|t| state(t) == "completed") {
        let name = format!("hyperion-{study}-{}", t["number"]);
        assert_eq!(
            jobs.get(&name).map(Vec::as_slice),
            Some(&["COMPLETED".to_owned()][..]),
            "{name}"
        );
    }
    queue_is_empty(&study);
}

#[test]
fn nodes_that_cannot_see_the_trials_directory_stop_the_run_before_any_trial() {
    if !slurm() {
        return;
    }
    let s = Sandbox::new();
    let study = unique("probe");
    std::fs::create_dir(s.path().join("private")).unwrap();
    sleeper(&s, &study, 2, (0.5, 2.0), "trials_dir: private/trials\n");
    // The run sees a filesystem of its own at private/ (a mount namespace), as a login node
    // sees a local disk: the node (slurmd, outside it) cannot.
    let script = format!(
        "mount -t tmpfs tmpfs {dir}/private && exec {hyperion} run study.yaml -q",
        dir = s.path().display(),
        hyperion = env!("CARGO_BIN_EXE_hyperion"),
    );
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .current_dir(s.path())
        .env_remove("HYPERION_STORAGE")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let e = stderr(&output);
    assert!(e.contains("cannot see the trials' directory"), "{e}");
    assert!(e.contains("private/trials"), "{e}");
    assert!(s.trials(&study).is_empty(), "no trial was created");
    assert!(jobs(&study).is_empty());
}

#[test]
fn options_slurm_refuses_are_errors_before_any_trial() {
    if !slurm() {
        return;
    }
    let s = Sandbox::new();
    let study = unique("refused");
    sleeper(&s, &study, 2, (0.5, 2.0), "");
    let created = s.hyperion(&["create", "study.yaml"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let output = s.hyperion(&["run", "study.yaml", "slurm.partition=nopart"]);
    assert!(!output.status.success());
    let e = stderr(&output);
    assert!(
        e.contains("sbatch refused the study's options (--partition=nopart"),
        "{e}"
    );
    assert!(e.contains("invalid partition specified: nopart"), "{e}");
    // A changed option is named by its key.
    assert!(
        e.contains("changes trial.slurm.partition: none → \"nopart\""),
        "{e}"
    );
    // A request no node can satisfy never waits in the queue.
    let output = s.hyperion(&["run", "study.yaml", "slurm.cpus_per_task=512"]);
    assert!(!output.status.success());
    let e = stderr(&output);
    assert!(e.contains("--cpus-per-task=512"), "{e}");
    assert!(s.trials(&study).is_empty(), "no trial was created");
    // No sbatch on PATH (but the trials' python).
    let bin = s.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink("/usr/bin/python3", bin.join("python3")).unwrap();
    let output = s
        .command(&["run", "study.yaml"])
        .env("PATH", &bin)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("`sbatch` is not on PATH"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_job_array_of_workers_runs_a_postgresql_study_and_keeps_its_password_out_of_sight() {
    if !slurm() {
        return;
    }
    let Some(schema) = hyperion_store::pg::testing::TestSchema::new() else {
        return;
    };
    let s = Sandbox::new();
    let study = unique("array");
    sleeper(&s, &study, 12, (0.5, 2.0), "");
    let created = s.hyperion(&["create", "study.yaml", "--storage", &schema.url]);
    assert!(created.status.success(), "{}", stderr(&created));
    let output = s.hyperion(&[
        "submit-workers",
        &study,
        "--count",
        "3",
        "--max-concurrent",
        "2",
        "--time",
        "10m",
        "--storage",
        &schema.url,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(said.contains("3 workers"), "{said}");
    // Wait for the array to end.
    let name = format!("hyperion-{study}-worker");
    let start = Instant::now();
    loop {
        let jobs = jobs(&study);
        let states = jobs.get(&name).cloned().unwrap_or_default();
        if states.len() == 3 && states.iter().all(|s| s == "COMPLETED") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120) && !states.iter().any(|s| s == "FAILED"),
            "the workers: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let trials = s.hyperion_json(&[
        "trials",
        &study,
        "--format",
        "json",
        "--storage",
        &schema.url,
    ]);
    assert_eq!(trials.len(), 12);
    assert!(trials.iter().all(|t| state(t) == "completed"), "{trials:?}");
    // The URL (and its password) reached the workers through the environment, not the script.
    let script = std::fs::read_to_string(
        s.path()
            .join(".hyperion")
            .join(&study)
            .join("workers")
            .join("workers.sh"),
    )
    .unwrap();
    assert!(script.contains("'worker'"), "{script}");
    assert!(!script.contains("postgres"), "{script}");
    // A SQLite store is refused.
    let output = s.hyperion(&[
        "submit-workers",
        &study,
        "--count",
        "2",
        "--storage",
        "sqlite:x.db",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("need a server store"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn stop_kill_cancels_the_jobs_that_a_dead_run_left() {
    if !slurm() {
        return;
    }
    let s = Sandbox::new();
    let study = unique("stopkill");
    sleeper(&s, &study, 3, (60.0, 61.0), "");
    let mut run = s
        .command(&["run", "study.yaml", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for number in 0..3 {
        running_job(&study, number);
    }
    run.kill().unwrap();
    run.wait().unwrap();
    let output = s.hyperion(&["stop", &study, "--kill"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        said.contains("cancelled 3 Slurm jobs that no run follows"),
        "{said}"
    );
    let start = Instant::now();
    while jobs(&study).values().flatten().any(|s| s != "CANCELLED") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{:?}",
            jobs(&study)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    queue_is_empty(&study);
}
