//! Early stopping of trial processes: ASHA and the median rule stop them (SIGTERM, then
//! SIGKILL), PBT restarts the weak ones from a better trial's checkpoint.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Sandbox, state, stderr};

/// A learning curve that gets to `(x - 0.5)²` as epochs go by.
const CURVE: &str = r#"import json, os, sys, time
x = float(sys.argv[1])
with open(os.environ["HYPERION_METRICS_FILE"], "a") as out:
    for epoch in range(1, 10):
        loss = (x - 0.5) ** 2 + 1.0 / epoch
        out.write(json.dumps({"step": epoch, "loss": loss}) + "\n")
        out.flush()
        time.sleep(0.02)
"#;

fn decisions(s: &Sandbox, study: &str) -> Vec<Value> {
    let output = s.hyperion(&["decisions", study, "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn asha_stops_processes_at_rungs_and_logs_why() {
    let s = Sandbox::new();
    s.write("curve.py", CURVE);
    s.run(
        "name: a\ncommand: [python3, curve.py, '{x}']\nparameters: {x: {type: float, low: 0.0, high: 1.0}}\n\
         metric: {name: loss}\nmethod: sobol\nbudget: {max_trials: 12}\nresources: {max_concurrent: 2}\n\
         early_stopping: {type: asha, min_resource: 1, max_resource: 9, reduction_factor: 3}\n",
        &["-q"],
    );
    let trials = s.trials("a");
    let pruned: Vec<&Value> = trials.iter().filter(|t| state(t) == "pruned").collect();
    assert!(
        pruned.len() >= 4,
        "ASHA stops most trials: {} of 12",
        pruned.len()
    );
    assert!(trials.iter().any(|t| state(t) == "completed"));
    let log = decisions(&s, "a");
    for t in &pruned {
        let step = t["state"]["step"].as_u64().unwrap();
        assert!(
            step == 1 || step == 3,
            "pruned at a rung, not at step {step}"
        );
        let reason = t["state"]["reason"].as_str().unwrap();
        assert!(reason.contains(&format!("(step {step})")), "{reason}");
        let number = &t["number"];
        assert!(
            log.iter()
                .any(|d| &d["trial"] == number && d["action"] == "stop" && d["policy"] == "asha"),
            "trial {number} has its decision in the log"
        );
        // It was stopped there, not at the end: its metrics end soon after the rung.
        let intermediate = t["intermediate"].as_object().unwrap();
        assert_eq!(
            intermediate.keys().map(|k| k.parse::<u64>().unwrap()).max(),
            Some(step),
            "reports after the stop are not recorded"
        );
    }
    // A stop decided after a trial had ended (its metrics file is read every 100 ms) leaves
    // it completed; every other stop prunes its trial.
    let stops = log.iter().filter(|d| d["action"] == "stop").count();
    assert!(
        stops >= pruned.len(),
        "{stops} stops, {} pruned",
        pruned.len()
    );
    let table = s.hyperion(&["decisions", "a"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("is promoted"));
}

#[test]
fn a_pruned_process_that_ignores_sigterm_is_killed_after_the_grace() {
    let s = Sandbox::new();
    // Trial 0 (x = 1) finishes with loss 1; trial 1 (x = 9) is far worse from its first step,
    // ignores SIGTERM and would report for 60 s.
    s.write(
        "stubborn.sh",
        "trap '' TERM\necho $$ > \"$HYPERION_TRIAL_DIR/pid\"\nfor i in $(seq 0 600); do\n\
         echo \"{\\\"step\\\": $i, \\\"loss\\\": $1}\" >> \"$HYPERION_METRICS_FILE\"\n\
         [ \"$1\" = 1 ] && [ $i = 5 ] && exit 0\nsleep 0.1\ndone\n",
    );
    let started = Instant::now();
    s.run(
        "name: m\ncommand: [sh, stubborn.sh, '{x}']\nparameters: {x: {type: categorical, choices: [1, 9]}}\n\
         metric: {name: loss}\nmethod: grid\nbudget: {max_trials: 2}\nresources: {kill_grace: 1s}\n\
         early_stopping: {type: median, n_startup_trials: 1}\n",
        &["-q"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the run waited for the script"
    );
    let trials = s.trials("m");
    assert_eq!(state(&trials[0]), "completed");
    let t = &trials[1];
    assert_eq!(state(t), "pruned", "{t}");
    assert_eq!(t["state"]["step"], 0);
    let reason = t["state"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("worse than the 50th percentile 1"),
        "{reason}"
    );
    let pid = std::fs::read_to_string(s.trial_dir("m", 1).join("pid")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap_or_default();
    assert!(
        status.is_empty() || status.contains("State:\tZ"),
        "the trial {pid} outlived SIGKILL"
    );
}

/// Trains `w ← w · (1 − lr)` from 5 (or from a restored checkpoint), saving the state and its
/// history (which trial trained which step) after every step.
const PBT: &str = r#"import json, os, sys, time
lr = float(sys.argv[1])
number = int(os.environ["HYPERION_TRIAL_NUMBER"])
state = {"step": 0, "w": 5.0, "history": []}
restore = os.environ.get("HYPERION_RESTORE_FROM")
if restore:
    with open(os.path.join(restore, "state.json")) as f:
        state = json.load(f)
    with open(os.path.join(os.environ["HYPERION_TRIAL_DIR"], "restored.json"), "w") as f:
        json.dump(state, f)
ckpt = os.environ["HYPERION_CHECKPOINT_DIR"]
with open(os.environ["HYPERION_METRICS_FILE"], "a") as out:
    for step in range(state["step"] + 1, 13):
        state["w"] *= 1.0 - lr
        state["step"] = step
        state["history"].append([number, step])
        with open(os.path.join(ckpt, "tmp.json"), "w") as f:
            json.dump(state, f)
        os.replace(os.path.join(ckpt, "tmp.json"), os.path.join(ckpt, "state.json"))
        out.write(json.dumps({"step": step, "loss": state["w"] ** 2}) + "\n")
        out.flush()
        time.sleep(0.15)
    if state["step"] == 12 and restore and not state["history"][-1][0] == number:
        # Restored a finished state: nothing left to train, report it as it is.
        out.write(json.dumps({"step": 12, "loss": state["w"] ** 2}) + "\n")
"#;

#[test]
fn pbt_children_resume_from_their_parents_checkpoint() {
    let s = Sandbox::new();
    s.write("pbt.py", PBT);
    s.run(
        "name: p\ncommand: [python3, pbt.py, '{lr}']\nparameters: {lr: {type: float, low: 0.001, high: 0.5}}\n\
         metric: {name: loss}\nmethod: grid\ngrid: {values: {lr: [0.01, 0.1, 0.2, 0.3]}}\n\
         early_stopping: {type: pbt, population_size: 4, perturbation_interval: 3}\n",
        &["-q"],
    );
    let trials = s.trials("p");
    let children: Vec<&Value> = trials.iter().filter(|t| !t["parent"].is_null()).collect();
    assert!(
        !children.is_empty(),
        "the slow learner (lr 0.01) is exploited"
    );
    assert_eq!(
        trials.len() - children.len(),
        4,
        "children take their member's place: the population stays 4"
    );
    for child in &children {
        let number = child["number"].as_u64().unwrap();
        let parent = child["parent"].as_u64().unwrap();
        let parent_trial = &trials[parent as usize];
        assert_eq!(child["depth"], parent_trial["depth"].as_u64().unwrap() + 1);
        // The child restored the parent's state: its history is the parent's, then its own.
        let restored: Value = serde_json::from_str(
            &std::fs::read_to_string(s.trial_dir("p", number).join("restored.json")).unwrap(),
        )
        .unwrap();
        let step = restored["step"].as_u64().unwrap();
        let history = restored["history"].as_array().unwrap();
        assert_eq!(history.last().unwrap(), &serde_json::json!([parent, step]));
        let first = child["intermediate"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .cloned();
        assert_eq!(
            first,
            Some((step + 1).min(12).to_string()),
            "it trains on from step {step}"
        );
        assert!(state(child) == "completed" || state(child) == "pruned");
        if step == 12 {
            continue; // restored a finished parent: nothing left to train
        }
        // Its own checkpoint continues that history.
        let own: Value = serde_json::from_str(
            &std::fs::read_to_string(s.trial_dir("p", number).join("checkpoint/state.json"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            &own["history"].as_array().unwrap()[..history.len()],
            &history[..]
        );
    }
    // The exploited trials ended as pruned, naming the trial they continue as.
    let exploited: Vec<&Value> = trials
        .iter()
        .filter(|t| {
            t["state"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("continues from trial"))
        })
        .collect();
    assert_eq!(exploited.len(), children.len());
    let table = String::from_utf8_lossy(&s.hyperion(&["trials", "p"]).stdout).into_owned();
    assert!(table.lines().next().unwrap().contains("from"), "{table}");
    let log = decisions(&s, "p");
    assert!(
        log.iter()
            .any(|d| d["policy"] == "pbt" && d["action"].as_str().unwrap().starts_with("exploit"))
    );
}

#[test]
fn with_two_metrics_a_trial_dominated_at_a_rung_is_stopped() {
    let s = Sandbox::new();
    // Each trial reports loss and latency at every epoch; both are to be minimized.
    s.write(
        "two.sh",
        "case $1 in\n  first) set -- 1 1 ;;\n  worse) set -- 2 2 ;;\n  trade) set -- 0.5 5 ;;\nesac\n\
         for i in 1 2 3 4 5 6; do\n\
         echo \"HYPERION_METRIC {\\\"step\\\": $i, \\\"loss\\\": $1, \\\"latency\\\": $2}\"\nsleep 0.3\ndone\n",
    );
    s.run(
        "name: mo\ncommand: [sh, two.sh, '{run}']\n\
         parameters: {run: {type: categorical, choices: [first, worse, trade]}}\n\
         metrics: [{name: loss}, {name: latency}]\nmethod: grid\n\
         early_stopping: {type: asha, min_resource: 1, reduction_factor: 3}\n",
        &["-q"],
    );
    let trials = s.trials("mo");
    let states: Vec<&str> = trials.iter().map(state).collect();
    // (2, 2) is dominated by (1, 1); (0.5, 5) trades latency for loss: nothing dominates it.
    assert_eq!(states, ["completed", "pruned", "completed"], "{trials:#?}");
    let reason = trials[1]["state"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("values (2, 2) are dominated by 1 of 2"),
        "{reason}"
    );
    assert_eq!(trials[1]["state"]["step"], 1);
}
