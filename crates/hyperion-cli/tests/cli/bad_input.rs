//! Bad input: a clear error naming file, line and key, and nothing stored lost.

use crate::{Sandbox, error, state};

const GOOD: &str = "name: s
command: [sh, trial.sh]
parameters:
  x: {type: float, low: 0.0, high: 1.0}
metric: {name: loss, goal: minimize}
budget: {max_trials: 2}
";

/// A sandbox holding study `s` with 2 completed trials.
fn with_study() -> Sandbox {
    let s = Sandbox::new();
    s.write("trial.sh", "echo 'HYPERION_METRIC {\"loss\": 0.5}'\n");
    s.run(GOOD, &[]);
    assert_eq!(s.trials("s").len(), 2);
    s
}

fn assert_untouched(s: &Sandbox) {
    let trials = s.trials("s");
    assert_eq!(trials.len(), 2, "nothing stored was lost or added");
    assert!(trials.iter().all(|t| state(t) == "completed"));
}

#[test]
fn malformed_yaml_names_the_file_and_line() {
    let s = with_study();
    let e = s.run_error("name: s\ncommand: [sh, trial.sh\nmetric: {name: loss}\n");
    assert!(e.starts_with("error: study.yaml:"), "{e}");
    assert!(e.contains("malformed YAML"), "{e}");
    assert_untouched(&s);
}

#[test]
fn an_unknown_key_gets_a_did_you_mean() {
    let s = with_study();
    let e = s.run_error(&GOOD.replace("budget: {max_trials: 2}", "budget: {max_trails: 2}"));
    assert!(
        e.starts_with("error: study.yaml:6: budget.max_trails: unknown field `max_trails`"),
        "{e}"
    );
    assert!(e.contains("did you mean `max_trials`?"), "{e}");
    assert_untouched(&s);
}

#[test]
fn a_bad_range_names_the_parameter() {
    let s = with_study();
    let e = s.run_error(&GOOD.replace("low: 0.0, high: 1.0", "low: 1.0, high: 0.0"));
    assert_eq!(
        e.trim(),
        "error: study.yaml:4: parameters.x: parameter \"x\": low (1) must be < high (0)"
    );
    assert_untouched(&s);
}

#[test]
fn a_missing_or_nonexistent_command_is_refused_before_anything_runs() {
    let s = with_study();
    let e = s.run_error(&GOOD.replace("command: [sh, trial.sh]\n", ""));
    assert!(e.contains("no command: add `command:"), "{e}");
    let e = s.run_error(&GOOD.replace("[sh, trial.sh]", "[trian.sh]"));
    assert!(
        e.contains("command: `trian.sh` is not a command found on PATH"),
        "{e}"
    );
    let e = s.run_error(&GOOD.replace("[sh, trial.sh]", "[./trian.sh]"));
    assert!(e.contains("`./trian.sh` does not exist"), "{e}");
    assert_untouched(&s);
}

#[test]
fn a_metric_never_reported_or_nan_fails_the_trial_with_the_reason() {
    let s = Sandbox::new();
    s.write("quiet.sh", "echo 'HYPERION_METRIC {\"acc\": 0.5}'\n");
    s.write("nan.sh", "echo 'HYPERION_METRIC {\"loss\": NaN}'\n");
    s.run(
        &GOOD
            .replace("trial.sh", "quiet.sh")
            .replace("name: s", "name: quiet"),
        &[],
    );
    let t = &s.trials("quiet")[0];
    assert_eq!(state(t), "failed");
    assert!(
        error(t).starts_with("metric \"loss\" was never reported"),
        "{}",
        error(t)
    );
    s.run(
        &GOOD
            .replace("trial.sh", "nan.sh")
            .replace("name: s", "name: nan"),
        &[],
    );
    let t = &s.trials("nan")[0];
    assert_eq!(
        (state(t), error(t)),
        ("failed", "objective \"loss\" is NaN")
    );
    let best = s.hyperion(&["best", "nan"]);
    assert!(!best.status.success(), "a NaN never becomes the best");
}

#[test]
fn a_changed_space_is_refused_with_how_to_start_a_new_study() {
    let s = with_study();
    let e = s.run_error(&GOOD.replace("high: 1.0", "high: 2.0"));
    assert!(
        e.contains("study \"s\" already exists with another search space"),
        "{e}"
    );
    assert!(
        e.contains("name=NEW") && e.contains("hyperion delete s"),
        "{e}"
    );
    assert_untouched(&s);
}
