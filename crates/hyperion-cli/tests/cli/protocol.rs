//! The trial protocol: params in, metrics out, failures, timeouts, GPUs, no shell injection.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{Sandbox, error, state};

#[test]
fn params_and_environment_reach_the_trial() {
    let s = Sandbox::new();
    s.write(
        "trial.sh",
        r#"printf '%s\n' "$@" > "$HYPERION_TRIAL_DIR/argv.txt"
printf '%s' "$HYPERION_PARAMS" > "$HYPERION_TRIAL_DIR/params_env.json"
echo "$HYPERION_STUDY $HYPERION_TRIAL_NUMBER $HYPERION_CHECKPOINT_DIR" > "$HYPERION_TRIAL_DIR/env.txt"
echo '{"step": 0, "loss": 1.5}' >> "$HYPERION_METRICS_FILE"
"#,
    );
    s.run(
        "name: p
command: [sh, trial.sh, '--x={x}', '{args}']
parameters:
  x: {type: float, low: 0.0, high: 1.0}
  n: {type: int, low: 1, high: 3}
  opt: {type: categorical, choices: [adam, sgd]}
metric: {name: loss, goal: minimize}
budget: {max_trials: 3}
",
        &[],
    );
    let trials = s.trials("p");
    assert_eq!(trials.len(), 3);
    for t in &trials {
        assert_eq!(state(t), "completed");
        let number = t["number"].as_u64().unwrap();
        let dir = s.trial_dir("p", number);
        let argv = std::fs::read_to_string(dir.join("argv.txt")).unwrap();
        let params = &t["params"];
        let expected = format!(
            "--x={}\n--x={}\n--n={}\n--opt={}\n",
            params["x"],
            params["x"],
            params["n"],
            params["opt"].as_str().unwrap(),
        );
        assert_eq!(argv, expected);
        let from_env: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("params_env.json")).unwrap())
                .unwrap();
        assert_eq!(&from_env, params);
        let env = std::fs::read_to_string(dir.join("env.txt")).unwrap();
        assert_eq!(
            env.trim(),
            format!("p {number} {}", dir.join("checkpoint").display())
        );
        let stored: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("params.json")).unwrap())
                .unwrap();
        assert_eq!(&stored, params);
    }
}

#[test]
fn metrics_are_read_from_the_file_from_stdout_and_through_a_regex() {
    let cases = [
        (
            "file",
            r#"echo '{"step": 0, "loss": 2}' >> "$HYPERION_METRICS_FILE"; echo '{"step": 1, "loss": 1}' >> "$HYPERION_METRICS_FILE""#,
            "",
        ),
        (
            "stdout",
            r#"echo 'HYPERION_METRIC {"step": 0, "loss": 2}'; echo 'HYPERION_METRIC {"step": 1, "loss": 1}'"#,
            "",
        ),
        (
            "regex",
            "echo 'epoch 0 loss=2.0'; echo 'epoch 1 loss=1.0'",
            "report: {regex: 'epoch (?P<step>\\d+) loss=(?P<loss>[0-9.]+)'}\n",
        ),
    ];
    for (how, script, extra) in cases {
        let s = Sandbox::new();
        s.write("trial.sh", script);
        s.run(
            &format!(
                "name: m\ncommand: [sh, trial.sh]\nparameters:\n  x: {{type: float, low: 0.0, high: 1.0}}\n\
                 metric: {{name: loss, goal: minimize}}\nbudget: {{max_trials: 1}}\n{extra}"
            ),
            &[],
        );
        let t = &s.trials("m")[0];
        assert_eq!(state(t), "completed", "{how}: {t}");
        assert_eq!(t["values"], serde_json::json!([1.0]), "{how}");
        let steps: BTreeMap<String, f64> =
            serde_json::from_value(t["intermediate"].clone()).unwrap();
        assert_eq!(
            steps,
            BTreeMap::from([("0".into(), 2.0), ("1".into(), 1.0)]),
            "{how}"
        );
    }
}

#[test]
fn a_failure_keeps_the_tail_of_stderr() {
    let s = Sandbox::new();
    s.write(
        "trial.sh",
        "echo 'loading data' >&2\necho 'CUDA out of memory' >&2\nexit 3\n",
    );
    s.run(
        "name: f\ncommand: [sh, trial.sh]\nparameters: {x: {type: int, low: 1, high: 2}}\n\
         metric: {name: loss, goal: minimize}\nbudget: {max_trials: 1}\n",
        &[],
    );
    let t = &s.trials("f")[0];
    assert_eq!(state(t), "failed");
    assert!(
        error(t).starts_with("exit code 3: CUDA out of memory\n"),
        "{}",
        error(t)
    );
    assert!(error(t).contains("loading data"));
    let log = std::fs::read_to_string(s.trial_dir("f", 0).join("stderr.log")).unwrap();
    assert_eq!(log, "loading data\nCUDA out of memory\n");
}

#[test]
fn the_logs_hold_the_output_exactly_and_a_last_line_without_newline_counts() {
    let s = Sandbox::new();
    // 200 KiB of one line, then a metric line that the trial never ends: both are read.
    s.write(
        "trial.py",
        "import sys\nsys.stdout.write('x' * 200_000 + '\\n')\n\
         sys.stdout.write('HYPERION_METRIC {\"loss\": 0.25}')\n",
    );
    s.run(
        "name: l\ncommand: [python3, trial.py]\nparameters: {x: {type: int, low: 1, high: 2}}\n\
         metric: {name: loss, goal: minimize}\nbudget: {max_trials: 1}\n",
        &[],
    );
    let t = &s.trials("l")[0];
    assert_eq!(state(t), "completed", "{t}");
    assert_eq!(t["values"], serde_json::json!([0.25]));
    let dir = s.trial_dir("l", 0);
    let log = std::fs::read_to_string(dir.join("stdout.log")).unwrap();
    assert_eq!(
        log,
        format!(
            "{}\nHYPERION_METRIC {{\"loss\": 0.25}}",
            "x".repeat(200_000)
        )
    );
    // Nothing on stderr, so no stderr log; the metrics file is there for scripts to open.
    assert!(!dir.join("stderr.log").exists());
    assert!(dir.join("metrics.jsonl").exists());
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let s = Sandbox::new();
    // The trial starts a grandchild that would outlive a kill of the trial alone.
    s.write(
        "trial.sh",
        "sleep 60 &\necho $! > \"$HYPERION_TRIAL_DIR/child.pid\"\nsleep 60\n",
    );
    let started = std::time::Instant::now();
    s.run(
        "name: t\ncommand: [sh, trial.sh]\nparameters: {x: {type: int, low: 1, high: 2}}\n\
         metric: {name: loss, goal: minimize}\nbudget: {max_trials: 1}\n\
         resources: {trial_timeout: 1s, kill_grace: 1s}\n",
        &[],
    );
    assert!(
        started.elapsed().as_secs() < 30,
        "the run waited for the sleeps"
    );
    let t = &s.trials("t")[0];
    assert_eq!((state(t), error(t)), ("failed", "timed out after 1s"));
    let pid = std::fs::read_to_string(s.trial_dir("t", 0).join("child.pid")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap_or_default();
    assert!(
        status.is_empty() || status.contains("State:\tZ"),
        "the grandchild {pid} is still alive"
    );
}

#[test]
fn parameter_values_reach_the_script_as_plain_text() {
    let s = Sandbox::new();
    s.write("x", "precious\n");
    s.write("trial.sh", "printf '%s' \"$1\" > \"$HYPERION_TRIAL_DIR/got.txt\"\necho 'HYPERION_METRIC {\"loss\": 0}'\n");
    let choices = ["; rm -rf x", "$(touch pwned)", "`touch pwned2`", "a'b\"c"];
    for shell in [false, true] {
        let command = if shell {
            "command: 'sh trial.sh {c}'\nshell: true\n"
        } else {
            "command: [sh, trial.sh, '{c}']\n"
        };
        let name = if shell { "shell" } else { "plain" };
        s.run(
            &format!(
                "name: {name}\n{command}parameters:\n  c: {{type: categorical, choices: {}}}\n\
                 metric: {{name: loss, goal: minimize}}\nmethod: grid\n",
                serde_json::to_string(&choices).unwrap()
            ),
            &[],
        );
        let trials = s.trials(name);
        assert_eq!(trials.len(), 4);
        for t in &trials {
            let got = std::fs::read_to_string(
                s.trial_dir(name, t["number"].as_u64().unwrap())
                    .join("got.txt"),
            )
            .unwrap();
            assert_eq!(got, t["params"]["c"].as_str().unwrap(), "shell: {shell}");
        }
    }
    assert!(!s.path().join("pwned").exists() && !s.path().join("pwned2").exists());
    assert_eq!(
        std::fs::read_to_string(s.path().join("x")).unwrap(),
        "precious\n"
    );
}

#[test]
fn no_gpu_is_given_to_two_trials_at_once() {
    let s = Sandbox::new();
    s.write(
        "trial.sh",
        "start=$(date +%s%N)\nsleep 0.2\necho \"$CUDA_VISIBLE_DEVICES $start $(date +%s%N)\" > \"$HYPERION_TRIAL_DIR/gpu.txt\"\n\
         echo 'HYPERION_METRIC {\"loss\": 0}'\n",
    );
    s.run(
        "name: g\ncommand: [sh, trial.sh]\nparameters: {x: {type: float, low: 0.0, high: 1.0}}\n\
         metric: {name: loss, goal: minimize}\nbudget: {max_trials: 8}\n\
         resources: {max_concurrent: 4, gpus: [0, 1], gpus_per_trial: 1}\n",
        &[],
    );
    let mut uses: Vec<(String, u128, u128)> = Vec::new();
    for n in 0..8 {
        let text = std::fs::read_to_string(s.trial_dir("g", n).join("gpu.txt")).unwrap();
        let parts: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(parts.len(), 3, "trial {n} got one GPU: {text}");
        uses.push((
            parts[0].to_owned(),
            parts[1].parse().unwrap(),
            parts[2].parse().unwrap(),
        ));
    }
    for (i, a) in uses.iter().enumerate() {
        assert!(a.0 == "0" || a.0 == "1");
        for b in &uses[i + 1..] {
            let overlap = a.1 < b.2 && b.1 < a.2;
            assert!(
                !(a.0 == b.0 && overlap),
                "GPU {} shared by two trials at once",
                a.0
            );
        }
    }
}

#[test]
fn a_wandb_sweeps_file_runs_as_is() {
    let s = Sandbox::new();
    s.write(
        "train.py",
        r#"import argparse, json, os
p = argparse.ArgumentParser()
p.add_argument("--learning_rate", type=float, required=True)
p.add_argument("--batch_size", type=int, required=True)
p.add_argument("--epochs", type=int, required=True)
a = p.parse_args()
with open(os.environ["HYPERION_METRICS_FILE"], "a") as f:
    f.write(json.dumps({"val_loss": a.learning_rate * a.batch_size / a.epochs}) + "\n")
"#,
    );
    s.write(
        "sweep.yaml",
        "program: train.py
method: random
metric:
  name: val_loss
  goal: minimize
parameters:
  learning_rate:
    distribution: log_uniform_values
    min: 0.0001
    max: 0.1
  batch_size:
    values: [16, 32, 64]
  epochs:
    value: 5
run_cap: 4
",
    );
    let output = s.hyperion(&["run", "sweep.yaml"]);
    assert!(output.status.success(), "{}", crate::stderr(&output));
    let trials = s.trials("sweep");
    assert_eq!(trials.len(), 4);
    assert!(trials.iter().all(|t| state(t) == "completed"), "{trials:?}");
}
