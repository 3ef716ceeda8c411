//! `stages:`: trials as pipelines whose stages are cached by content across trials and studies.
//! Each stage script appends a line to `count/STAGE.log`, so that executions can be counted.

use crate::{Sandbox, state, stderr};

const PREP: &str = "#!/bin/sh\necho run >> count/prepare.log\nsleep \"${SLEEP:-0}\"\n\
                    echo \"features $1\" > \"$2/features.txt\"\n";
const TRAIN: &str = "#!/bin/sh\necho run >> count/train.log\n\
                     cat \"$1/features.txt\" > \"$3/model.txt\"\necho \"lr $2\" >> \"$3/model.txt\"\n";
const EVAL: &str = "#!/bin/sh\necho run >> count/eval.log\n\
                    awk 'NR==1{n=$2} NR==2{lr=$2} END{printf \"HYPERION_METRIC {\\\"loss\\\": %f}\\n\", n*lr}' \"$1/model.txt\"\n";

fn sandbox() -> Sandbox {
    let s = Sandbox::new();
    s.write("prep.sh", PREP);
    s.write("train.sh", TRAIN);
    s.write("eval.sh", EVAL);
    std::fs::create_dir(s.path().join("count")).unwrap();
    s
}

/// A grid over `n_features` and `lr` whose trials are prepare → train → eval.
fn study(name: &str, features: &str, lrs: &str, concurrent: u32, env: &str) -> String {
    format!(
        "name: {name}\nmethod: grid\nmetric: {{name: loss, goal: minimize}}\n\
         parameters:\n  n_features: {{type: categorical, choices: [{features}]}}\n  \
         lr: {{type: categorical, choices: [{lrs}]}}\n\
         resources: {{max_concurrent: {concurrent}}}\nenv: {{{env}}}\n\
         stages:\n  \
         prepare:\n    command: ./prep.sh {{n_features}} {{out}}\n    params: [n_features]\n    \
         code: [prep.sh]\n    outputs: [features.txt]\n  \
         train:\n    command: ./train.sh {{in.prepare}} {{lr}} {{out}}\n    needs: [prepare]\n    \
         params: [lr]\n    code: [train.sh]\n  \
         eval:\n    command: ./eval.sh {{in.train}}\n    needs: [train]\n    code: [eval.sh]\n"
    )
}

fn runs(s: &Sandbox, stage: &str) -> usize {
    std::fs::read_to_string(s.path().join(format!("count/{stage}.log")))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Waits until a stage script wrote `path` (which it does once it runs), at most a minute.
fn wait_for(path: &std::path::Path, otherwise: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !path.exists() {
        assert!(std::time::Instant::now() < deadline, "{otherwise}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn counts(s: &Sandbox) -> [usize; 3] {
    [runs(s, "prepare"), runs(s, "train"), runs(s, "eval")]
}

#[test]
fn a_grid_computes_each_shared_stage_once_and_a_second_study_reuses_it() {
    let s = sandbox();
    s.run(&study("grid", "1, 2, 3", "0.1, 0.2, 0.3", 9, ""), &["-q"]);
    assert_eq!(counts(&s), [3, 9, 9], "prepare once per n_features");
    let trials = s.trials("grid");
    assert_eq!(trials.len(), 9);
    for t in &trials {
        assert_eq!(state(t), "completed", "{t}");
        let n = t["params"]["n_features"].as_f64().unwrap();
        let lr = t["params"]["lr"].as_f64().unwrap();
        let loss = t["values"][0].as_f64().unwrap();
        assert!(
            (loss - n * lr).abs() < 1e-6,
            "trial {t}: the eval read its own train"
        );
    }
    // Each trial's directory shows its stages' entries.
    let features = s.trial_dir("grid", 4).join("prepare/out/features.txt");
    assert!(
        std::fs::read_to_string(features)
            .unwrap()
            .starts_with("features ")
    );

    let stats = s.hyperion_json(&["cache", "stats", "--json"]);
    let prepare = stats.iter().find(|e| e["stage"] == "prepare").unwrap();
    assert_eq!(
        (prepare["runs"].as_u64(), prepare["hits"].as_u64()),
        (Some(3), Some(6))
    );

    // Another study, other learning rates, the same cache: no prepare at all.
    s.write("other.yaml", &study("other", "1, 2, 3", "0.5, 0.7", 9, ""));
    let out = s.hyperion(&["run", "other.yaml", "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(counts(&s), [3, 15, 15]);
}

#[test]
fn concurrent_trials_needing_one_stage_run_it_once() {
    let s = sandbox();
    for round in 0..20 {
        let name = format!("round{round}");
        let text = study(
            &name,
            "7",
            "0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8",
            8,
            "SLEEP: '0.3'",
        );
        s.write("study.yaml", &text);
        let out = s.hyperion(&["run", "study.yaml", "-q"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            runs(&s, "prepare"),
            round + 1,
            "round {round}: prepare ran twice"
        );
        assert!(s.trials(&name).iter().all(|t| state(t) == "completed"));
        let forget = s.hyperion(&["cache", "forget", "prepare"]);
        assert!(forget.status.success(), "{}", stderr(&forget));
    }
}

#[test]
fn a_change_that_leaves_a_stage_output_alike_reruns_only_that_stage() {
    let s = sandbox();
    s.run(&study("first", "1, 2", "0.1", 2, ""), &["-q"]);
    assert_eq!(counts(&s), [2, 2, 2]);
    // A comment in prep.sh: prepare's key changes, its output does not.
    s.write("prep.sh", &format!("{PREP}# a comment\n"));
    let explain = s.hyperion(&["cache", "explain", "study.yaml", "0", "prepare"]);
    let text = String::from_utf8_lossy(&explain.stdout).into_owned();
    assert!(text.contains("code.prep.sh:"), "{text}");
    s.write("second.yaml", &study("second", "1, 2", "0.1", 2, ""));
    let out = s.hyperion(&["run", "second.yaml", "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        counts(&s),
        [4, 2, 2],
        "train and eval found by their inputs' bytes"
    );
    let explain = s.hyperion(&["cache", "explain", "second.yaml", "0", "train"]);
    let text = String::from_utf8_lossy(&explain.stdout).into_owned();
    assert!(text.contains("in the cache (nothing changed)"), "{text}");
    assert!(s.trials("second").iter().all(|t| state(t) == "completed"));
}

#[test]
fn a_failing_shared_stage_is_retried_as_often_as_it_may_not_once_per_trial() {
    let s = sandbox();
    s.write(
        "prep.sh",
        "#!/bin/sh\necho run >> count/prepare.log\necho broken >&2\nexit 3\n",
    );
    let text = study("broken", "1", "0.1, 0.2, 0.3", 3, "").replace(
        "outputs: [features.txt]",
        "outputs: [features.txt]\n    retries: 1",
    );
    s.run(&text, &["-q"]);
    assert_eq!(
        counts(&s),
        [2, 0, 0],
        "one run and one retry for all three trials"
    );
    for t in s.trials("broken") {
        assert_eq!(state(&t), "failed");
        let error = t["state"]["error"].as_str().unwrap();
        assert!(
            error.contains("stage `prepare`") && error.contains("exit code 3"),
            "{error}"
        );
    }
}

#[test]
fn a_pipeline_that_reads_what_it_does_not_declare_is_refused_at_its_line() {
    let s = sandbox();
    let base = study("bad", "1", "0.1", 1, "");
    // (the file, the text on the line the error names, the message)
    let cases = [
        (
            base.replace("needs: [prepare]", "needs: [prepar]"),
            "needs: [prepar]",
            "stage `train` needs `prepar`, which is not a stage; did you mean `prepare`?",
        ),
        (
            base.replace("params: [lr]", "params: [lr, depth]"),
            "params: [lr, depth]",
            "stage `train`: `depth` is not one of the parameters",
        ),
        (
            base.replace(
                "./prep.sh {n_features} {out}",
                "./prep.sh {n_features} {lr} {out}",
            ),
            "command: ./prep.sh",
            "stage `prepare` uses `{lr}` but does not declare it",
        ),
        (
            base.replace(
                "./prep.sh {n_features} {out}",
                "./prep.sh {trial_dir} {out}",
            ),
            "command: ./prep.sh",
            "stage `prepare` is cached, so it cannot use `{trial_dir}`",
        ),
        (
            base.replace(
                "params: [n_features]",
                "params: [n_features]\n    needs: [eval]",
            ),
            "  eval:",
            "the stages form a cycle: eval → train → prepare → eval",
        ),
        (
            base.replace("./eval.sh {in.train}", "./eval.sh {in.prepare}"),
            "command: ./eval.sh",
            "stage `eval` uses `{in.prepare}` but does not need `prepare`",
        ),
        (
            base.replace("params: [lr]", "params: [lr]\n    foreach: {lr: [1, 2]}"),
            "foreach: {lr",
            "stage `train`: the foreach variable `lr` is also a parameter",
        ),
        (
            base.replace(
                "params: [lr]",
                "params: [lr]\n    foreach: {a: [1], b: [2]}",
            ),
            "foreach: {a",
            "stage `train`: `foreach` takes one variable and its values",
        ),
        (
            base.replace(
                "code: [eval.sh]",
                "code: [eval.sh]\n    foreach: {seed: [1, 1]}",
            ),
            "foreach: {seed",
            "stage `eval`: `foreach.seed` has 1 twice",
        ),
        (
            base.replace(
                "code: [eval.sh]",
                "code: [eval.sh]\n    foreach: {seed: [1, 2]}",
            ),
            "  eval:",
            "stage `eval` runs for each item, so it cannot report the trial's objective",
        ),
    ];
    for (text, on, message) in cases {
        let line = text
            .lines()
            .position(|l| l.starts_with(on) || l.trim_start().starts_with(on));
        let line = line.expect("the line is in the file") + 1;
        let error = s.run_error(&text);
        assert!(
            error.contains(&format!("study.yaml:{line}:")),
            "line {line}: {error}"
        );
        assert!(error.contains(message), "expected `{message}` in: {error}");
    }
    assert_eq!(counts(&s), [0, 0, 0], "nothing ran");
}

#[test]
fn a_stage_limit_holds_across_trials() {
    let s = sandbox();
    // Two evals at once would find the other's lock.
    s.write(
        "eval.sh",
        &format!(
            "#!/bin/sh\nmkdir count/eval.lock || echo overlap >> count/overlap.log\nsleep 0.1\n\
             rmdir count/eval.lock\n{}",
            EVAL.trim_start_matches("#!/bin/sh\n")
        ),
    );
    let text = study("limited", "1, 2", "0.1, 0.2, 0.3", 4, "")
        .replace("needs: [train]", "needs: [train]\n    max_concurrent: 1");
    s.run(&text, &["-q"]);
    assert_eq!(counts(&s), [2, 6, 6]);
    assert!(
        !s.path().join("count/overlap.log").exists(),
        "two evals ran at once"
    );
    assert!(s.trials("limited").iter().all(|t| state(t) == "completed"));
}

#[test]
fn trained_trials_wait_for_a_busy_eval_which_a_free_slot_serves_before_a_new_trial() {
    let s = sandbox();
    // One eval at a time, slower than training; with lr 0.3 it exits 0 without the loss.
    s.write(
        "eval.sh",
        &format!(
            "{}\"$HB\" status lifecycle >> count/status.log\nsleep 0.3\n\
             grep -q 'lr 0.3' \"$1/model.txt\" && exit 0\n{}",
            EVAL.lines()
                .take(2)
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
            EVAL.lines().nth(2).unwrap()
        ),
    );
    // More trials than the run takes at once (twice its slots), so that some start late.
    let lrs = "0.1, 0.2, 0.3, 0.4, 0.5, 0.6";
    let hb = format!("HB: {}", env!("CARGO_BIN_EXE_hyperion"));
    let text = study("lifecycle", "1, 2", lrs, 4, &hb).replace(
        "needs: [train]",
        "needs: [train]\n    max_concurrent: 1\n    cache: false",
    );
    s.run(&text, &["-q"]);
    assert_eq!(counts(&s), [2, 12, 12]);

    // The store's log, in order: each trial's stages as they moved, and the trials' creation.
    let store = hyperion_store::SqliteStore::open(s.path().join(".hyperion/hyperion.db")).unwrap();
    use hyperion_store::Store as _;
    let study = store.study("lifecycle").unwrap().id;
    let mut latest: std::collections::BTreeMap<u64, Vec<hyperion_core::StageRun>> =
        Default::default();
    let (mut seen_waiting_for_eval, mut created) = (0, 0);
    for logged in store.changes_since(study, 0).unwrap() {
        match logged.change {
            hyperion_core::Change::StagesRecorded { number, stages } => {
                latest.insert(number.0, stages);
            }
            hyperion_core::Change::TrialFinished { number, .. } => {
                latest.remove(&number.0);
            }
            hyperion_core::Change::TrialCreated { number, .. } => {
                let phases: Vec<String> = latest
                    .values()
                    .filter_map(|s| hyperion_core::lifecycle(s))
                    .collect();
                let waiting = phases
                    .iter()
                    .filter(|p| *p == "TRAINING_DONE_NO_EVAL")
                    .count();
                let evaluating = phases.iter().filter(|p| *p == "IN_EVAL").count();
                assert!(
                    waiting == 0 || evaluating == 1,
                    "trial {number} started while an eval could run: {phases:?}"
                );
                seen_waiting_for_eval = seen_waiting_for_eval.max(waiting);
                created += 1;
            }
            _ => {}
        }
    }
    assert_eq!(created, 12);
    // What `hyperion status` said while the evals ran.
    let status = std::fs::read_to_string(s.path().join("count/status.log")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("  running: ")
            && l.contains("1 IN_EVAL")
            && l.contains("TRAINING_DONE_NO_EVAL")),
        "{status}"
    );
    assert!(
        seen_waiting_for_eval >= 1,
        "with evals one at a time, trained trials wait for theirs"
    );

    let trials = s.trials("lifecycle");
    for t in &trials {
        let stages: Vec<&str> = t["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["status"].as_str().unwrap())
            .collect();
        if t["params"]["lr"].as_f64() == Some(0.3) {
            assert_eq!(state(t), "failed");
            assert!(
                crate::error(t).starts_with(
                    "EVAL_DONE_NOT_COMPLETED: stage `eval` exited 0 but never reported \"loss\""
                ),
                "{t}"
            );
            assert_eq!(stages, ["done", "done", "not_completed"], "{t}");
        } else {
            assert_eq!(state(t), "completed", "{t}");
            assert_eq!(stages, ["done", "done", "done"], "{t}");
        }
    }
}

#[test]
fn a_killed_run_resumes_each_trial_at_its_first_stage_not_done() {
    let s = sandbox();
    // While `hang` exists, lr 0.3's train and lr 0.4's eval hang (in a child, which must die
    // with the run), so that the run is killed with one train and one eval under way.
    let hang = |stage: &str, when: &str, script: &str| {
        let (count, rest) = script.split_once("log\n").unwrap();
        format!(
            "{count}log\nif [ -e hang ] && {when}; then\n  \
             sleep 30 & echo $! > sleeper-{stage}; wait\nfi\n{rest}"
        )
    };
    s.write("train.sh", &hang("train", "[ \"$2\" = 0.3 ]", TRAIN));
    s.write(
        "eval.sh",
        &hang("eval", "grep -q 'lr 0.4' \"$1/model.txt\"", EVAL),
    );
    s.write("hang", "");
    let text = study("resumed", "1", "0.1, 0.2, 0.3, 0.4", 4, "")
        + "recovery: {heartbeat: 100ms, grace: 500ms}\n";
    s.write("study.yaml", &text);
    let mut child = s.command(&["run", "study.yaml", "-q"]).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let listed = s.hyperion(&["trials", "resumed", "--format", "json"]);
        let trials: Vec<serde_json::Value> =
            serde_json::from_slice(&listed.stdout).unwrap_or_default();
        let completed = trials.iter().filter(|t| state(t) == "completed").count();
        let hanging = ["train", "eval"].map(|st| s.path().join(format!("sleeper-{st}")).exists());
        if completed == 2 && hanging == [true; 2] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never got there"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for stage in ["train", "eval"] {
        let pid = std::fs::read_to_string(s.path().join(format!("sleeper-{stage}"))).unwrap();
        let proc = std::path::PathBuf::from(format!("/proc/{}", pid.trim()));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while proc.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the hanging {stage} outlived the killed run"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    assert_eq!(counts(&s), [1, 4, 3]);
    let before: Vec<serde_json::Value> = (s.trials("resumed").into_iter())
        .filter(|t| state(t) == "completed")
        .collect();

    std::fs::remove_file(s.path().join("hang")).unwrap();
    s.run(&text, &["-q"]);
    // Prepare untouched; the interrupted train once more; the evals of the two trials that
    // had not completed (lr 0.4's train is found in the cache).
    assert_eq!(counts(&s), [1, 5, 5]);
    let trials = s.trials("resumed");
    let mut completed: Vec<f64> = (trials.iter())
        .filter(|t| state(t) == "completed")
        .map(|t| t["params"]["lr"].as_f64().unwrap())
        .collect();
    completed.sort_by(f64::total_cmp);
    assert_eq!(completed, [0.1, 0.2, 0.3, 0.4]);
    for t in &before {
        let now = &trials[t["number"].as_u64().unwrap() as usize];
        assert_eq!(now, t, "a trial completed before the kill is untouched");
    }

    // The killed train's temporary directory is left until `cache gc`.
    let tmp = s.path().join(".hyperion/cache/tmp");
    let output = s.hyperion(&["cache", "gc"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_random_stage_is_shared_as_one_output_verify_finds_it_and_gc_spares_what_runs() {
    let s = sandbox();
    // prepare writes random bytes, slowly enough that the four trials needing it wait for one.
    s.write(
        "prep.sh",
        "#!/bin/sh\necho run >> count/prepare.log\nsleep 0.3\n\
         od -An -N16 -tx1 /dev/urandom | tr -d ' \\n' > \"$2/features.txt\"\n\
         echo >> \"$2/features.txt\"\n",
    );
    s.run(&study("noisy", "1", "0.1, 0.2, 0.3, 0.4", 4, ""), &["-q"]);
    assert_eq!(runs(&s, "prepare"), 1);
    let seen: std::collections::BTreeSet<String> = (0..4)
        .map(|n| {
            let model = s.trial_dir("noisy", n).join("train/out/model.txt");
            let text = std::fs::read_to_string(model).unwrap();
            text.lines().next().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        seen.len(),
        1,
        "every trial read the same features: {seen:?}"
    );

    let verify = s.hyperion(&["cache", "verify", "study.yaml", "prepare"]);
    let said = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(verify.status.code(), Some(1), "{said}{}", stderr(&verify));
    assert!(
        said.contains("`prepare` of trial 0: NOT deterministic: features.txt differs"),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "one output, verified once: {said}");
    let verify = s.hyperion(&["cache", "verify", "study.yaml", "train", "--trial", "2"]);
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{said}{}", stderr(&verify));
    assert!(
        said.contains("`train` of trial 2: the same bytes again"),
        "{said}"
    );

    // A run whose eval waits: gc down to nothing keeps what its trial needs.
    s.write(
        "eval.sh",
        &format!(
            "#!/bin/sh\ntouch waiting\nwhile [ ! -e go ]; do sleep 0.05; done\n{}",
            EVAL.trim_start_matches("#!/bin/sh\n")
        ),
    );
    s.write("study.yaml", &study("held", "2", "0.5", 1, ""));
    let mut held = s.command(&["run", "study.yaml", "-q"]).spawn().unwrap();
    wait_for(&s.path().join("waiting"), "the eval never started");
    let gc = s.hyperion(&["cache", "gc", "--max-size", "0"]);
    let said = String::from_utf8_lossy(&gc.stdout);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(
        said.contains("(2 entries kept: a running trial needs them)"),
        "{said}"
    );
    for stage in ["prepare", "train"] {
        let kept = s.trial_dir("held", 0).join(stage).join("done.json");
        assert!(kept.exists(), "the waiting trial's {stage} was evicted");
    }
    assert!(
        !s.trial_dir("noisy", 0).join("prepare/done.json").exists(),
        "a finished study's entries go"
    );
    s.write("go", "");
    assert!(held.wait().unwrap().success());
    assert_eq!(state(&s.trials("held")[0]), "completed");

    let gc = s.hyperion(&["cache", "gc", "--max-size", "1K"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    let stats = s.hyperion_json(&["cache", "stats", "--json"]);
    let bytes: u64 = stats.iter().map(|e| e["bytes"].as_u64().unwrap()).sum();
    assert!(bytes <= 1024, "{stats:?}");
}

#[test]
fn reeval_reruns_only_the_changed_eval_and_its_values_become_a_new_objective_version() {
    let s = sandbox();
    let text = study("again", "1, 2", "0.1, 0.2", 4, "");
    s.run(&text, &["-q"]);
    assert_eq!(counts(&s), [2, 4, 4]);
    let before = s.trials("again");

    // The eval now reports ten times the loss.
    s.write("eval.sh", &EVAL.replace("n*lr}", "n*lr*10}"));
    let explain = s.hyperion(&["cache", "explain", "study.yaml", "0", "eval"]);
    let said = String::from_utf8_lossy(&explain.stdout);
    assert!(said.contains("code.eval.sh: b3:"), "{said}");
    let output = s.hyperion(&["reeval", "study.yaml"]);
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{said}{}", stderr(&output));
    assert!(
        said.contains("4 with new values (objective version 1), 0 unchanged, 0 failed"),
        "{said}"
    );
    assert_eq!(counts(&s), [2, 4, 8], "eval alone ran again");
    for (t, old) in s.trials("again").iter().zip(&before) {
        assert_eq!(t["objective_version"], 1, "{t}");
        let (new, old) = (
            t["values"][0].as_f64().unwrap(),
            old["values"][0].as_f64().unwrap(),
        );
        assert!((new - 10.0 * old).abs() < 1e-9, "{new} vs {old}");
    }
    let best = s.hyperion(&["best", "again", "--json"]);
    let best: serde_json::Value = serde_json::from_slice(&best.stdout).unwrap();
    assert!(
        (best["values"][0].as_f64().unwrap() - 1.0).abs() < 1e-9,
        "{best}"
    );
    let explain = s.hyperion(&["cache", "explain", "study.yaml", "0", "eval"]);
    assert!(String::from_utf8_lossy(&explain.stdout).contains("in the cache (nothing changed)"));

    // Nothing changed since: nothing runs, nothing is revised (the study named, not its file:
    // the store keeps its stages).
    let output = s.hyperion(&["reeval", "again"]);
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("0 with new values (objective version 2), 4 unchanged"),
        "{said}"
    );
    assert_eq!(counts(&s), [2, 4, 8]);
    // The next run goes on with the code reeval ran, not against it.
    s.run(&text, &["-q"]);
}

#[test]
fn a_foreach_stage_runs_one_cached_item_per_fold_and_its_fan_in_averages_them() {
    let s = sandbox();
    std::fs::create_dir(s.path().join("folds")).unwrap();
    for fold in 0..5 {
        s.write(&format!("folds/{fold}.txt"), &format!("{}\n", fold + 1));
    }
    s.write(
        "train.sh",
        "#!/bin/sh\necho \"run $2\" >> count/train.log\ntouch count/running.$$\n\
         ls count/running.* | wc -l >> count/overlap.log\nsleep 0.2\nrm count/running.$$\n\
         awk -v lr=\"$1\" '{printf \"%f\\n\", $1 * lr}' \"folds/$2.txt\" > \"$3/score.txt\"\n",
    );
    s.write(
        "eval.sh",
        "#!/bin/sh\necho run >> count/eval.log\n\
         cat \"$1\"/*/out/score.txt | awk '{s += $1} END{printf \"HYPERION_METRIC {\\\"loss\\\": %f}\\n\", s / NR}'\n",
    );
    let text = |name: &str| {
        format!(
            "name: {name}\nmethod: grid\nmetric: {{name: loss, goal: minimize}}\n\
             parameters:\n  lr: {{type: categorical, choices: [0.1, 0.2]}}\n\
             resources: {{max_concurrent: 4}}\n\
             stages:\n  \
             train:\n    command: ./train.sh {{lr}} {{fold}} {{out}}\n    params: [lr]\n    \
             foreach: {{fold: [0, 1, 2, 3, 4]}}\n    inputs: ['folds/{{fold}}.txt']\n    \
             code: [train.sh]\n    max_concurrent: 3\n  \
             eval:\n    command: ./eval.sh {{in.train}}\n    needs: [train]\n    code: [eval.sh]\n"
        )
    };
    s.run(&text("folds"), &["-q"]);
    assert_eq!(
        (runs(&s, "train"), runs(&s, "eval")),
        (10, 2),
        "5 folds a trial"
    );
    let overlap = std::fs::read_to_string(s.path().join("count/overlap.log")).unwrap();
    let most = overlap
        .lines()
        .map(|l| l.trim().parse::<u32>().unwrap())
        .max();
    assert!(
        matches!(most, Some(2..=3)),
        "folds run side by side, at most 3 (the stage's max_concurrent) at once: {most:?}"
    );
    for t in s.trials("folds") {
        assert_eq!(state(&t), "completed", "{t}");
        let lr = t["params"]["lr"].as_f64().unwrap();
        let loss = t["values"][0].as_f64().unwrap();
        assert!((loss - 3.0 * lr).abs() < 1e-6, "the mean of the folds: {t}");
        let stages = t["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 6, "{t}");
        assert_eq!(stages[3]["stage"], "train[3]");
    }
    let fold = s.trial_dir("folds", 1).join("train/3/out/score.txt");
    assert_eq!(std::fs::read_to_string(fold).unwrap(), "0.800000\n");

    // One fold's data changes: a study over the same cache runs that fold again, and the evals.
    s.write("folds/3.txt", "9\n");
    std::fs::write(s.path().join("count/train.log"), "").unwrap();
    s.run(&text("folds-again"), &["-q"]);
    let train = std::fs::read_to_string(s.path().join("count/train.log")).unwrap();
    assert_eq!(train, "run 3\nrun 3\n", "fold 3 alone, once per lr");
    assert_eq!(runs(&s, "eval"), 4);
    for t in s.trials("folds-again") {
        let lr = t["params"]["lr"].as_f64().unwrap();
        let loss = t["values"][0].as_f64().unwrap();
        assert!((loss - 4.0 * lr).abs() < 1e-6, "(1+2+3+9+5)/5 × lr: {t}");
    }
}

#[test]
fn from_stage_computes_that_stage_and_those_after_it_again_once_per_key() {
    let s = sandbox();
    s.run(&study("first", "1, 2", "0.1, 0.2", 4, ""), &["-q"]);
    assert_eq!(counts(&s), [2, 4, 4]);
    // The same points in another study: all from the cache, unless told otherwise.
    s.run(&study("second", "1, 2", "0.1, 0.2", 4, ""), &["-q"]);
    assert_eq!(counts(&s), [2, 4, 4]);
    s.run(
        &study("third", "1, 2", "0.1, 0.2", 4, ""),
        &["-q", "--from-stage", "train"],
    );
    assert_eq!(
        counts(&s),
        [2, 8, 8],
        "train and eval again, each key once; prepare not"
    );
    assert!(s.trials("third").iter().all(|t| state(t) == "completed"));

    let output = s.hyperion(&["run", "study.yaml", "--from-stage", "trian"]);
    assert!(!output.status.success());
    let said = stderr(&output);
    assert!(
        said.contains("--from-stage trian: no such stage (the stages: prepare, train, eval)"),
        "{said}"
    );
}

#[test]
fn a_stage_that_uses_another_pipeline_file_runs_its_stages_cached_alike() {
    let s = sandbox();
    std::fs::create_dir(s.path().join("pipelines")).unwrap();
    s.write(
        "select.sh",
        "#!/bin/sh\necho run >> count/select.log\nhead -1 \"$1/features.txt\" > \"$2/features.txt\"\n",
    );
    // Its first stage reads nothing of the using pipeline; its last is what `{in.features}` is.
    s.write(
        "pipelines/features.yaml",
        "stages:\n  \
         raw:\n    command: ./prep.sh {n_features} {out}\n    params: [n_features]\n    \
         code: [prep.sh]\n    outputs: [features.txt]\n  \
         select:\n    command: ./select.sh {in.raw} {out}\n    needs: [raw]\n    code: [select.sh]\n",
    );
    let text = study("nested", "1, 2", "0.1, 0.2, 0.3", 6, "")
        .replace(
            "  prepare:\n    command: ./prep.sh {n_features} {out}\n    params: [n_features]\n    \
             code: [prep.sh]\n    outputs: [features.txt]\n",
            "  features:\n    uses: pipelines/features.yaml\n",
        )
        .replace("{in.prepare}", "{in.features}")
        .replace("needs: [prepare]", "needs: [features]");
    s.run(&text, &["-q"]);
    assert_eq!(
        (runs(&s, "prepare"), runs(&s, "select")),
        (2, 2),
        "once per n_features"
    );
    assert_eq!((runs(&s, "train"), runs(&s, "eval")), (6, 6));
    for t in s.trials("nested") {
        assert_eq!(state(&t), "completed", "{t}");
        let names: Vec<&str> = (t["stages"].as_array().unwrap().iter())
            .map(|s| s["stage"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["features.raw", "features.select", "train", "eval"]);
    }

    // A file that uses itself is refused, naming it.
    s.write(
        "pipelines/loop.yaml",
        "stages:\n  again:\n    uses: loop.yaml\n",
    );
    let error = s.run_error(&text.replace("pipelines/features.yaml", "pipelines/loop.yaml"));
    assert!(
        error.contains("stage `again`: loop.yaml uses itself"),
        "{error}"
    );
}

#[test]
fn workers_run_a_pipeline_study_from_its_stored_settings_and_share_its_cache() {
    let s = sandbox();
    let text = study("shared", "1, 2", "0.1, 0.2, 0.3", 2, "SLEEP: '0.3'");
    s.write("study.yaml", &text);
    let out = s.hyperion(&["create", "study.yaml", "--storage", "study.db"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Two workers on the study, neither with its file: each prepare runs once between them.
    let workers: Vec<std::process::Child> = (0..2)
        .map(|_| {
            let mut worker = s.command(&["worker", "shared", "--storage", "study.db", "-q"]);
            worker.stderr(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for worker in workers {
        let out = worker.wait_with_output().unwrap();
        assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    }
    assert_eq!(counts(&s), [2, 6, 6]);
    let trials = s.hyperion_json(&[
        "trials",
        "shared",
        "--format",
        "json",
        "--storage",
        "study.db",
    ]);
    assert_eq!(trials.len(), 6);
    assert!(trials.iter().all(|t| state(t) == "completed"), "{trials:?}");
}

#[test]
fn a_stage_holds_the_gpus_it_asks_for_and_no_two_stages_share_one() {
    let s = sandbox();
    // Each train takes 2 of the 3 GPUs: a GPU directory that exists is a GPU in use.
    s.write(
        "train.sh",
        &format!(
            "#!/bin/sh\necho \"$CUDA_VISIBLE_DEVICES\" >> count/gpus.log\n\
             for g in $(echo \"$CUDA_VISIBLE_DEVICES\" | tr ',' ' '); do \
             mkdir count/gpu-$g || echo \"$g\" >> count/clash.log; done\nsleep 0.2\n\
             for g in $(echo \"$CUDA_VISIBLE_DEVICES\" | tr ',' ' '); do rmdir count/gpu-$g; done\n{}",
            TRAIN.trim_start_matches("#!/bin/sh\n")
        ),
    );
    s.write(
        "prep.sh",
        &format!(
            "#!/bin/sh\necho \"[$CUDA_VISIBLE_DEVICES]\" >> count/cpu.log\n{}",
            PREP.trim_start_matches("#!/bin/sh\n")
        ),
    );
    let text = study("gpus", "1", "0.1, 0.2, 0.3, 0.4", 4, "")
        .replace(
            "resources: {max_concurrent: 4}",
            "resources: {max_concurrent: 4, gpus: [0, 1, 2]}",
        )
        .replace("params: [lr]", "params: [lr]\n    resources: {gpus: 2}");
    s.run(&text, &["-q"]);
    assert_eq!(counts(&s), [1, 4, 4]);
    assert!(
        !s.path().join("count/clash.log").exists(),
        "two trains shared a GPU"
    );
    let seen = std::fs::read_to_string(s.path().join("count/gpus.log")).unwrap();
    assert!(seen.lines().all(|l| l.split(',').count() == 2), "{seen}");
    let cpu = std::fs::read_to_string(s.path().join("count/cpu.log")).unwrap();
    assert_eq!(cpu, "[]\n", "a stage that asks for none sees none");

    let error = s.run_error(&text.replace("gpus: 2}", "gpus: 4}"));
    assert!(
        error.contains("stage `train` needs 4 GPUs, but resources.gpus lists 3"),
        "{error}"
    );
}

#[test]
fn a_stage_whose_executor_is_slurm_runs_as_a_batch_job_beside_local_stages() {
    if !crate::slurm::slurm() {
        return;
    }
    let s = sandbox();
    s.write(
        "train.sh",
        &format!(
            "#!/bin/sh\necho \"job ${{SLURM_JOB_ID:-none}}\" >> count/jobs.log\n{}",
            TRAIN.trim_start_matches("#!/bin/sh\n")
        ),
    );
    let name = crate::slurm::unique("stages");
    let text = study(&name, "1", "0.1, 0.2", 2, "")
        .replace("params: [lr]", "params: [lr]\n    executor: slurm")
        + "slurm: {time: 5m}\n";
    s.run(&text, &["-q"]);
    assert_eq!(counts(&s), [1, 2, 2]);
    let jobs = std::fs::read_to_string(s.path().join("count/jobs.log")).unwrap();
    assert_eq!(jobs.lines().count(), 2, "{jobs}");
    assert!(
        jobs.lines()
            .all(|l| l.trim_start_matches("job ").parse::<u64>().is_ok()),
        "each train ran in a job: {jobs}"
    );
    for t in s.trials(&name) {
        assert_eq!(state(&t), "completed", "{t}");
    }
}

#[test]
fn a_slurm_stage_job_that_a_killed_run_left_is_cancelled_by_the_next_run() {
    if !crate::slurm::slurm() {
        return;
    }
    let s = sandbox();
    // While `hang` exists, the train job sleeps (and says which job it is).
    s.write(
        "train.sh",
        &format!(
            "#!/bin/sh\nif [ -e hang ]; then echo \"$SLURM_JOB_ID\" > count/hanging; sleep 60; fi\n{}",
            TRAIN.trim_start_matches("#!/bin/sh\n")
        ),
    );
    s.write("hang", "");
    let name = crate::slurm::unique("orphans");
    let text = study(&name, "1", "0.1", 1, "")
        .replace("params: [lr]", "params: [lr]\n    executor: slurm")
        + "slurm: {time: 5m}\nrecovery: {heartbeat: 100ms, grace: 500ms}\n";
    s.write("study.yaml", &text);
    let mut run = s.command(&["run", "study.yaml", "-q"]).spawn().unwrap();
    let hanging = s.path().join("count/hanging");
    wait_for(&hanging, "the train job never ran");
    run.kill().unwrap(); // SIGKILL: the job lives on
    run.wait().unwrap();
    let id = std::fs::read_to_string(&hanging).unwrap().trim().to_owned();
    let job_state = |id: &str| {
        let out = std::process::Command::new("squeue")
            .args([
                "--noheader",
                "--states=all",
                "--me",
                "--Format=JobID:|,State:|",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| {
                let (job, state) = l.split_once('|')?;
                (job.trim() == id).then(|| state.trim_matches(|c| c == '|' || c == ' ').to_owned())
            })
            .unwrap_or_default()
    };
    assert_eq!(job_state(&id), "RUNNING", "the killed run's job runs on");

    std::fs::remove_file(s.path().join("hang")).unwrap();
    let output = s.run(&text, &["-q"]);
    assert!(
        stderr(&output).contains(&format!(
            "cancelled 1 stage jobs that a run that is gone left behind ({id})"
        )),
        "{}",
        stderr(&output)
    );
    assert_ne!(job_state(&id), "RUNNING");
    let trials = s.trials(&name);
    assert!(
        trials.iter().any(|t| state(t) == "completed"),
        "{trials:?}\n{}",
        stderr(&output)
    );
}
