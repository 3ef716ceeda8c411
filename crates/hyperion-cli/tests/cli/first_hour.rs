//! A new user's first hour, as the reproductions in the issue run it.

use crate::{Sandbox, stderr};

const ONE: &str = "print('HYPERION_METRIC {\"loss\": 1}')\n";

#[test]
fn two_wandb_files_without_names_are_two_studies() {
    let s = Sandbox::new();
    let sweep = "program: a.py\nmethod: random\nmetric: {name: loss, goal: minimize}\n\
                 parameters: {x: {min: 0.0, max: 1.0}}\nrun_cap: 2\n";
    s.write("a.yaml", sweep);
    s.write("b.yaml", &sweep.replace("a.py", "b.py"));
    s.write("a.py", ONE);
    s.write("b.py", &ONE.replace("1}", "2}"));
    for file in ["a.yaml", "b.yaml"] {
        let output = s.hyperion(&["run", file, "-q"]);
        assert!(output.status.success(), "{file}: {}", stderr(&output));
    }
    assert_eq!(s.trials("a").len(), 2);
    let b = s.trials("b");
    assert_eq!(b.len(), 2, "b.py ran in a study of its own");
    assert!(b.iter().all(|t| t["values"][0] == 2.0), "{b:?}");
    // W&B's own keys work as overrides.
    let more = s.hyperion(&["run", "a.yaml", "-q", "run_cap=3"]);
    assert!(more.status.success(), "{}", stderr(&more));
    assert_eq!(s.trials("a").len(), 3);
}

#[test]
fn a_study_name_never_chooses_a_path() {
    let s = Sandbox::new();
    s.write("one.py", ONE);
    s.write(
        "e.yaml",
        "name: \"../../escape\"\ncommand: [\"python3\", \"one.py\"]\n\
         metric: {name: loss, goal: minimize}\nbudget: {max_trials: 1}\n",
    );
    let output = s.hyperion(&["run", "e.yaml", "-q"]);
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(
        error.contains("e.yaml:1: name:") && error.contains("\"../../escape\" starts with a dot"),
        "{error}"
    );
    assert!(!s.path().join("../escape").exists() && !s.path().join(".hyperion").exists());
}

#[test]
fn results_go_to_stdout_progress_to_stderr_and_a_closed_pipe_is_quiet() {
    let s = Sandbox::new();
    s.write("one.py", ONE);
    let study = "name: q\ncommand: [python3, one.py]\nmetric: {name: loss, goal: minimize}\n\
                 budget: {max_trials: 2}\n";
    s.write("q.yaml", study);
    let quiet = s.hyperion(&["run", "q.yaml", "-q"]);
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    let out = String::from_utf8_lossy(&quiet.stdout);
    assert!(
        out.contains("study \"q\": the trial budget is spent") && out.contains("best: trial"),
        "{out}"
    );
    assert!(
        !stderr(&quiet).contains('#'),
        "-q prints no progress bar: {}",
        stderr(&quiet)
    );
    // A resumed study counts from where it is, and a trial's line counts that trial.
    let more = s.hyperion(&["run", "q.yaml", "budget.max_trials=3"]);
    let lines = stderr(&more);
    assert!(
        lines.contains("trial 2 completed [1.0] · [####################] 3/3 · 3 completed"),
        "{lines}"
    );

    let piped = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' run q.yaml --log json budget.max_trials=50 | head -1",
            env!("CARGO_BIN_EXE_hyperion")
        ))
        .current_dir(s.path())
        .output()
        .unwrap();
    assert!(piped.status.success());
    let first = String::from_utf8_lossy(&piped.stdout);
    assert!(first.starts_with("{\"event\":\"study_started\""), "{first}");
    assert!(!stderr(&piped).contains("panicked"), "{}", stderr(&piped));
}

#[test]
fn the_store_is_found_upward_and_read_commands_never_create_one() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path().join("project/sub")).unwrap();
    s.write("project/one.py", ONE);
    s.write(
        "project/study.yaml",
        "name: up\ncommand: [python3, one.py]\nmetric: {name: loss, goal: minimize}\n\
         budget: {max_trials: 1}\n",
    );
    // Run from elsewhere: the store goes beside the study file.
    let run = s.hyperion(&["run", "project/study.yaml", "-q"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(s.path().join("project/.hyperion/hyperion.db").is_file());
    assert!(!s.path().join(".hyperion").exists());
    // From a directory below, `status` finds it.
    let status = s
        .command(&["status", "up"])
        .current_dir(s.path().join("project/sub"))
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
    // Where there is none, read commands say where they looked and create nothing.
    for args in [
        &["status"][..],
        &["best", "up"],
        &["trials", "up"],
        &["export", "up"],
    ] {
        let output = s.hyperion(args);
        assert!(!output.status.success());
        let error = stderr(&output);
        assert!(
            error.contains("no Hyperion store in") && error.contains(".hyperion/hyperion.db"),
            "{error}"
        );
        assert!(
            !s.path().join(".hyperion").exists(),
            "{args:?} created a store"
        );
    }
    let missing = s
        .command(&["best", "nope"])
        .current_dir(s.path().join("project"))
        .output()
        .unwrap();
    assert!(
        stderr(&missing).contains("project/.hyperion/hyperion.db"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn delete_removes_the_trials_directories_unless_asked_to_keep_them() {
    let s = Sandbox::new();
    s.write("one.py", ONE);
    let study = "name: d\ncommand: [python3, one.py]\nmetric: {name: loss, goal: minimize}\n\
                 budget: {max_trials: 2}\n";
    s.run(study, &["-q"]);
    assert!(s.trial_dir("d", 1).is_dir());
    let deleted = s.hyperion(&["delete", "d"]);
    let said = String::from_utf8_lossy(&deleted.stdout);
    assert!(
        said.contains("deleted study \"d\" (2 trials) and") && said.contains("files"),
        "{said}"
    );
    assert!(!s.path().join(".hyperion/d").exists());

    s.run(study, &["-q"]);
    let kept = s.hyperion(&["delete", "d", "--keep-files"]);
    assert!(kept.status.success(), "{}", stderr(&kept));
    assert!(s.trial_dir("d", 1).is_dir(), "--keep-files keeps them");
}

#[test]
fn a_study_without_a_budget_says_it_runs_until_stopped() {
    let s = Sandbox::new();
    s.write("one.py", ONE);
    s.write(
        "study.yaml",
        "name: nb\ncommand: [python3, one.py]\nmetric: {name: loss, goal: minimize}\n",
    );
    let mut run = s
        .command(&["run", "study.yaml"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let stop = s.hyperion(&["stop", "nb"]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    let status = run.wait().unwrap();
    assert!(status.success());
    let mut text = String::new();
    std::io::Read::read_to_string(&mut run.stderr.take().unwrap(), &mut text).unwrap();
    assert_eq!(
        text.matches("has no budget: it runs until stopped").count(),
        1,
        "{text}"
    );
}

#[test]
fn trials_failing_the_same_way_stop_the_study_and_can_be_retried() {
    let s = Sandbox::new();
    let missing = "name: t\ncommand: [\"python3\", \"trian.py\"]\nmetric: {name: loss, goal: minimize}\n\
                   budget: {max_trials: 30}\n";
    s.write("t.yaml", missing);
    let typo = s.hyperion(&["run", "t.yaml", "-q"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(
        stderr(&typo).contains("`trian.py` does not exist"),
        "{}",
        stderr(&typo)
    );

    s.write("train.py", "import no_such_package\n");
    s.write("t.yaml", &missing.replace("trian.py", "train.py"));
    let failing = s.hyperion(&["run", "t.yaml", "-q"]);
    assert_eq!(failing.status.code(), Some(1), "{}", stderr(&failing));
    let error = stderr(&failing);
    assert!(
        error.contains("first trials all failed with") && error.contains("No module named"),
        "{error}"
    );
    assert!(s.trials("t").len() < 30, "the budget was not burnt");

    s.write("train.py", ONE);
    let retried = s.hyperion(&[
        "run",
        "t.yaml",
        "-q",
        "--retry-failed",
        "budget.max_trials=4",
    ]);
    assert!(retried.status.success(), "{}", stderr(&retried));
    let trials = s.trials("t");
    let completed = trials
        .iter()
        .filter(|t| crate::state(t) == "completed")
        .count();
    assert_eq!(
        completed, 4,
        "the failed trials ran again and the budget is met: {trials:?}"
    );
}

#[test]
fn exports_read_as_a_pandas_user_expects_and_a_failure_is_one_command_away() {
    let s = Sandbox::new();
    s.write(
        "mixed.py",
        "import os, sys\nn = int(os.environ['HYPERION_TRIAL_NUMBER'])\n\
         if n == 1:\n    sys.stderr.write('CUDA out of memory\\n'); sys.exit(3)\n\
         print('HYPERION_METRIC {\"step\": 0, \"loss\": %d}' % (n + 1))\n",
    );
    let study = "name: x\ncommand: [python3, mixed.py, '{args}']\n\
                 parameters: {lr: {type: float, low: 0.1, high: 1.0}}\n\
                 metric: {name: loss, goal: minimize}\nbudget: {max_trials: 3, max_failures: 5}\n";
    s.run(study, &["-q"]);
    let jsonl = s.hyperion(&["export", "x", "--format", "jsonl"]);
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&jsonl.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records[0]["state"], "completed");
    assert_eq!(
        (records[0]["value"].as_f64(), records[0]["loss"].as_f64()),
        (Some(1.0), Some(1.0))
    );
    assert!(
        records[0]["datetime_start"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(records[0]["duration_s"].as_f64().unwrap() >= 0.0);
    assert_eq!(records[0]["intermediate"]["0"], 1.0);
    assert_eq!(records[1]["state"], "failed");
    assert!(
        records[1]["error"]
            .as_str()
            .unwrap()
            .contains("CUDA out of memory")
    );
    assert!(records[1]["retry_of"].is_null() && records[1]["parent"].is_null());

    let csv = String::from_utf8_lossy(&s.hyperion(&["export", "x", "--format", "csv"]).stdout)
        .into_owned();
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "number,value,datetime_start,datetime_complete,duration,params_lr,state,loss,message"
    );

    let status = s.hyperion(&["status", "x", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        (
            status[0]["completed"].as_u64(),
            status[0]["failed"].as_u64()
        ),
        (Some(2), Some(1))
    );

    let trial = s.hyperion(&["trial", "x", "1"]);
    let text = String::from_utf8_lossy(&trial.stdout);
    assert!(trial.status.success(), "{}", stderr(&trial));
    assert!(
        text.contains("failed")
            && text.contains("CUDA out of memory")
            && text.contains("params:")
            && text.contains("directory: ")
            && text.contains("last lines of stderr"),
        "{text}"
    );
    // Where it ran is in the store: read from anywhere, it names the machine and directory.
    let elsewhere = s.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let storage = format!(
        "sqlite:///{}",
        s.path().join(".hyperion/hyperion.db").display()
    );
    let trial = s
        .command(&["--storage", &storage, "trial", "x", "1", "--json"])
        .current_dir(&elsewhere)
        .output()
        .unwrap();
    assert!(trial.status.success(), "{}", stderr(&trial));
    let trial: serde_json::Value = serde_json::from_slice(&trial.stdout).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(trial["host"].as_str(), Some(host.trim()));
    let dir = trial["directory"].as_str().unwrap();
    assert!(dir.starts_with('/') && dir.ends_with("/trials/1"), "{dir}");
    assert!(
        trial["stderr_tail"]
            .as_str()
            .is_some_and(|t| t.contains("CUDA out of memory")),
        "{trial}"
    );
}

#[test]
fn a_trial_that_ends_before_a_wandb_hyperband_stop_reaches_it_completes() {
    let s = Sandbox::new();
    // Each trial writes its whole curve to the metrics file and exits at once (os._exit, no
    // interpreter teardown): the file is read every 100 ms, so its reports are read after the
    // process ended, and no stop can reach it. Later trials are worse.
    s.write(
        "curve.py",
        "import json, os\nn = int(os.environ['HYPERION_TRIAL_NUMBER'])\n\
         lines = ''.join(json.dumps({'epoch': e, 'step': e, 'loss': n + 1 / e}) + '\\n' for e in range(1, 5))\n\
         fd = os.open(os.environ['HYPERION_METRICS_FILE'], os.O_WRONLY | os.O_APPEND)\n\
         os.write(fd, lines.encode())\nos._exit(0)\n",
    );
    s.write(
        "sweep.yaml",
        "program: curve.py\nmethod: random\nmetric: {name: loss, goal: minimize}\n\
         parameters: {x: {min: 0.0, max: 1.0}}\nrun_cap: 4\n\
         early_terminate: {type: hyperband, min_iter: 1, eta: 2}\n",
    );
    let output = s.hyperion(&["run", "sweep.yaml", "-q"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("has no max_iter"),
        "{}",
        stderr(&output)
    );
    let trials = s.trials("sweep");
    let states: Vec<&str> = trials.iter().map(crate::state).collect();
    assert_eq!(states, ["completed"; 4], "{trials:?}");
    let decisions =
        String::from_utf8_lossy(&s.hyperion(&["decisions", "sweep", "--json"]).stdout).into_owned();
    assert!(
        decisions.contains("\"stop\""),
        "ASHA did decide stops: {decisions}"
    );
}

#[test]
fn the_trials_table_shows_why_a_told_trial_was_pruned() {
    let s = Sandbox::new();
    let space = r#"{"x": {"type": "float", "low": 0, "high": 1}}"#;
    let asked = s.hyperion(&["ask", "--study", "m", "--space", space]);
    assert!(asked.status.success(), "{}", stderr(&asked));
    let told = s.hyperion(&[
        "tell",
        "--study",
        "m",
        "--trial",
        "0",
        "--state",
        "pruned",
        "--message",
        "diverged",
    ]);
    assert!(told.status.success(), "{}", stderr(&told));
    let table = String::from_utf8_lossy(&s.hyperion(&["trials", "m"]).stdout).into_owned();
    assert!(table.contains("pruned: diverged"), "{table}");
}

#[test]
fn every_metric_is_kept_shown_and_exported() {
    let s = Sandbox::new();
    s.write(
        "m.py",
        "for step in range(1, 4):\n\
         \x20   print('HYPERION_METRIC {\"step\": %d, \"loss\": %g, \"train_loss\": %g, \"lr\": 0.01}' \
         % (step, 1 / step, 2 / step))\n",
    );
    let study = "name: k\ncommand: [python3, m.py]\nmetric: {name: loss, goal: minimize}\n\
                 budget: {max_trials: 1}\n";
    s.run(study, &["-q"]);
    let table = String::from_utf8_lossy(
        &s.hyperion(&["trials", "k", "--metrics", "train_loss,lr"])
            .stdout,
    )
    .into_owned();
    assert!(
        table.lines().next().unwrap().contains("train_loss  lr"),
        "{table}"
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[4..6], ["0.666667", "0.010000"], "{table}");
    let jsonl = s.hyperion(&["export", "k", "--format", "jsonl"]);
    let record: serde_json::Value = serde_json::from_slice(&jsonl.stdout).unwrap();
    assert_eq!(
        (record["train_loss"].as_f64(), record["lr"].as_f64()),
        (Some(0.666667), Some(0.01))
    );
    let csv = String::from_utf8_lossy(&s.hyperion(&["export", "k", "--format", "csv"]).stdout)
        .into_owned();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with("state,loss,lr,train_loss,message"),
        "{csv}"
    );
}

#[test]
fn a_malformed_metric_line_is_reported_once_per_trial_with_the_line() {
    let s = Sandbox::new();
    s.write(
        "bad.py",
        "print('HYPERION_METRIC {\"loss\": 0.5')\nprint('HYPERION_METRIC {\"step\": -1, \"loss\": 1}')\n\
         print('HYPERION_METRIC {\"loss\": 0.25}')\n",
    );
    let study = "name: b\ncommand: [python3, bad.py]\nmetric: {name: loss, goal: minimize}\n\
                 budget: {max_trials: 2}\n";
    let output = s.run(study, &["-q"]);
    let text = stderr(&output);
    assert_eq!(
        text.matches("warning: trial 0:").count(),
        1,
        "once per trial: {text}"
    );
    assert!(
        text.contains("a metric line was ignored (not valid JSON")
            && text.contains("{\"loss\": 0.5"),
        "{text}"
    );
    let trials = s.trials("b");
    assert!(
        trials[0]["user_attrs"]["hyperion_note"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(trials[0]["values"][0], 0.25, "the good lines count");
}

#[test]
fn a_store_in_a_directory_that_takes_no_writes_can_still_be_read() {
    let s = Sandbox::new();
    s.write("one.py", ONE);
    s.run(
        "name: r\ncommand: [python3, one.py]\nmetric: {name: loss, goal: minimize}\n\
         budget: {max_trials: 2}\n",
        &["-q"],
    );
    let dir = s.path().join(".hyperion");
    // Root writes anywhere, except into an immutable directory.
    let locked = std::process::Command::new("chattr")
        .arg("+i")
        .arg(&dir)
        .status();
    if !locked.is_ok_and(|s| s.success()) {
        eprintln!("skipped: chattr +i is not available here");
        return;
    }
    let status = s.hyperion(&["status", "r"]);
    let trials = s.hyperion(&["trials", "r"]);
    let _ = std::process::Command::new("chattr")
        .arg("-i")
        .arg(&dir)
        .status();
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(String::from_utf8_lossy(&status.stdout).contains("2 completed"));
    assert!(trials.status.success(), "{}", stderr(&trials));
}

#[test]
fn a_corrupted_store_is_named_once_and_not_mistaken_for_an_empty_one() {
    let s = Sandbox::new();
    s.write("one.py", ONE);
    s.run(
        "name: c\ncommand: [python3, one.py]\nmetric: {name: loss, goal: minimize}\n\
         budget: {max_trials: 1}\n",
        &["-q"],
    );
    let db = s.path().join(".hyperion/hyperion.db");
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[8192..12288].fill(0xff); // page 3 of 4 KiB: the studies table
    std::fs::write(&db, bytes).unwrap();
    let output = s.hyperion(&["trials", "c"]);
    let error = stderr(&output);
    assert!(!output.status.success());
    assert!(
        error.contains("is not a readable SQLite database (corrupted?)"),
        "{error}"
    );
    assert_eq!(
        error.matches("hyperion.db").count(),
        1,
        "named once: {error}"
    );
    assert!(!error.contains("has no study"), "{error}");
}

#[test]
fn an_objective_that_is_not_a_number_is_reported() {
    let s = Sandbox::new();
    s.write(
        "str.py",
        "import json, os\nwith open(os.environ['HYPERION_METRICS_FILE'], 'a') as f:\n\
         \x20   f.write(json.dumps({'loss': 'abc', 'note': 'fine'}) + '\\n')\n\
         print('HYPERION_METRIC {\"loss\": 0.5, \"note\": \"fine\"}')\n",
    );
    let study = "name: st\ncommand: [python3, str.py]\nmetric: {name: loss, goal: minimize}\n\
                 budget: {max_trials: 1}\n";
    let output = s.run(study, &["-q"]);
    let text = stderr(&output);
    assert!(
        text.contains("objective `loss` is \"abc\", not a number"),
        "{text}"
    );
    assert_eq!(
        s.trials("st")[0]["values"][0],
        0.5,
        "other fields that are not numbers are fine"
    );
}
