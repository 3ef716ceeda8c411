use std::path::PathBuf;

use hyperion_core::{Direction, Distribution, ParamValue};
use hyperion_samplers::SamplerConfig;
use hyperion_schedulers::{AshaConfig, HyperbandConfig};

use super::*;

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
    fn load(&self, name: &str, text: &str) -> Result<StudyFile, ConfigError> {
        load(&self.write(name, text), &[])
    }
    fn error(&self, text: &str) -> String {
        let e = self.load("study.yaml", text).unwrap_err();
        e.to_string()
            .replace(&self.0.path().display().to_string(), "DIR")
    }
}

const BASIC: &str = "
name: demo
command: [sh, -c, 'exit 0', '{args}']
parameters:
  lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
  layers: {type: int, low: 1, high: 4}
  optimizer: {type: categorical, choices: [adam, sgd]}
  momentum: {type: float, low: 0.0, high: 0.99, condition: {parent: optimizer, values: [sgd]}}
  epochs: 10
metric: {name: val_loss, goal: minimize}
method: sobol
seed: 3
budget: {max_trials: 20, max_time: 1h30m, max_failures: 3}
resources: {max_concurrent: 4, trial_timeout: 90s, gpus: [0, 1], gpus_per_trial: 1}
";

#[test]
fn a_native_file_reads_into_a_study() {
    let dir = Dir::new();
    let study = dir.load("study.yaml", BASIC).unwrap();
    assert_eq!(study.spec.name, "demo");
    let names: Vec<&str> = study
        .spec
        .space
        .params()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["lr", "layers", "optimizer", "momentum", "epochs"],
        "declared order is kept"
    );
    assert_eq!(
        study.spec.space.get("epochs").unwrap().distribution,
        Distribution::constant(10)
    );
    assert_eq!(study.spec.objectives[0].direction, Direction::Minimize);
    assert_eq!(study.sampler, SamplerConfig::Sobol);
    assert_eq!(study.seed, Some(3));
    assert_eq!(study.budget.max_time, Some(Duration::from_secs(5400)));
    assert_eq!(study.process.trial_timeout, Some(Duration::from_secs(90)));
    assert_eq!(
        (study.process.max_concurrent, study.process.gpus.clone()),
        (4, vec!["0".into(), "1".into()])
    );
    assert_eq!(study.process.workdir, dir.0.path());
}

#[test]
fn imports_dotted_keys_and_overrides_compose_in_that_order() {
    let dir = Dir::new();
    dir.write(
        "base.yaml",
        "method: grid\nbudget: {max_trials: 5, max_failures: 2}\nresources.max_concurrent: 2\n",
    );
    let path = dir.write(
        "study.yaml",
        "imports: [base.yaml]\nname: composed\ncommand: [sh, -c, 'exit 0']\n\
         parameters:\n  x: {type: int, low: 1, high: 3}\nmetric: {name: loss, goal: maximize}\n\
         budget.max_trials: 9\n",
    );
    let study = load(&path, &["budget.max_failures=7".into(), "seed=11".into()]).unwrap();
    assert!(
        matches!(study.sampler, SamplerConfig::Grid { .. }),
        "from the import"
    );
    assert_eq!(
        study.budget.max_trials,
        Some(9),
        "the file's dotted key wins over the import"
    );
    assert_eq!(
        study.budget.max_failures,
        Some(7),
        "the override wins over both; siblings kept"
    );
    assert_eq!(study.process.max_concurrent, 2);
    assert_eq!(study.seed, Some(11));
}

#[test]
fn toml_files_read_the_same() {
    let dir = Dir::new();
    let study = dir
        .load(
            "study.toml",
            "name = \"t\"\ncommand = [\"sh\", \"-c\", \"exit 0\"]\nmethod = \"random\"\n\
             [parameters.x]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0\n[metric]\nname = \"loss\"\ngoal = \"minimize\"\n",
        )
        .unwrap();
    assert_eq!(study.spec.space.len(), 1);
}

#[test]
fn yes_and_no_choices_stay_strings() {
    let dir = Dir::new();
    let text = BASIC.replace("choices: [adam, sgd]", "choices: [yes, no, adam, sgd]");
    let study = dir.load("study.yaml", &text).unwrap();
    let Distribution::Categorical(c) = &study.spec.space.get("optimizer").unwrap().distribution
    else {
        panic!()
    };
    assert_eq!(c.choices[0], ParamValue::from("yes"));
}

#[test]
fn a_wandb_sweeps_file_runs_unmodified() {
    let dir = Dir::new();
    dir.write("train.py", "print('hi')\n");
    let study = dir
        .load(
            "sweep.yaml",
            "program: train.py
method: bayes
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
  dropout:
    min: 0.0
    max: 0.5
  layers:
    min: 1
    max: 4
early_terminate:
  type: hyperband
  min_iter: 3
run_cap: 12
",
        )
        .unwrap();
    assert_eq!(
        study.process.argv,
        ["/usr/bin/env", "python3", "train.py", "{args}"]
    );
    assert_eq!(study.budget.max_trials, Some(12));
    assert!(matches!(study.sampler, SamplerConfig::Tpe(_)));
    assert!(study.notes[0].contains("bayes"));
    let space = &study.spec.space;
    assert!(
        matches!(&space.get("learning_rate").unwrap().distribution, Distribution::Float(f) if f.log)
    );
    assert!(matches!(
        &space.get("layers").unwrap().distribution,
        Distribution::Int(_)
    ));
    assert!(matches!(
        &space.get("dropout").unwrap().distribution,
        Distribution::Float(_)
    ));
    assert_eq!(
        study.early_stopping,
        SchedulerConfig::Asha(AshaConfig {
            min_resource: 3,
            max_resource: None,
            reduction_factor: 3,
            brackets: 1,
        }),
        "W&B's hyperband stops at min_iter · eta^k, as ASHA does"
    );
    assert!(study.notes.iter().any(|n| n.contains("asha")));
}

#[test]
fn wandb_early_terminate_with_max_iter_and_s_sets_the_milestones() {
    let dir = Dir::new();
    dir.write("train.py", "print('hi')\n");
    let sweep = |early: &str| {
        dir.load(
            "sweep.yaml",
            &format!(
                "program: train.py\nmetric: {{name: loss}}\nparameters:\n  x: {{min: 0.0, max: 1.0}}\nearly_terminate: {early}\n"
            ),
        )
    };
    let study = sweep("{type: hyperband, max_iter: 27, s: 2, eta: 3}").unwrap();
    assert_eq!(
        study.early_stopping,
        SchedulerConfig::Asha(AshaConfig {
            min_resource: 3,
            max_resource: Some(27),
            reduction_factor: 3,
            brackets: 1,
        })
    );
    let e = sweep("{type: hyperband, max_iter: 27}")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("early_terminate") && e.contains("needs s"),
        "{e}"
    );
    let e = sweep("{type: median}").unwrap_err().to_string();
    assert!(
        e.contains("`median` is not a W&B early_terminate type"),
        "{e}"
    );
}

#[test]
fn early_stopping_sections_build_their_scheduler() {
    let with = |section: &str| {
        Dir::new().load("study.yaml", &format!("{BASIC}early_stopping: {section}\n"))
    };
    let study = with("{type: hyperband, max_resource: 81}").unwrap();
    assert_eq!(
        study.early_stopping,
        SchedulerConfig::Hyperband(HyperbandConfig {
            min_resource: 1,
            max_resource: 81,
            reduction_factor: 3,
        })
    );
    let study = with("{type: asha, max_resource: 27}").unwrap();
    assert_eq!(
        study.early_stopping,
        SchedulerConfig::Asha(AshaConfig {
            min_resource: 1,
            max_resource: Some(27),
            reduction_factor: 3,
            brackets: 1,
        }),
        "every ASHA setting but the maximum has a default"
    );
    let study = with("{type: median, n_warmup_steps: 5}").unwrap();
    let SchedulerConfig::Median(median) = &study.early_stopping else {
        panic!("{:?}", study.early_stopping)
    };
    assert_eq!((median.n_warmup_steps, median.n_startup_trials), (5, 5));
    let plain = Dir::new().load("study.yaml", BASIC).unwrap();
    assert_eq!(plain.early_stopping, SchedulerConfig::None);
}

#[test]
fn a_bad_early_stopping_section_names_the_key() {
    let e = Dir::new().error(&format!(
        "{BASIC}early_stopping: {{type: asha, reduction_factr: 2}}\n"
    ));
    assert!(
        e.contains("early_stopping") && e.contains("reduction_factr"),
        "{e}"
    );
    let e = Dir::new().error(&format!(
        "{BASIC}early_stopping: {{type: asha, reduction_factor: 1}}\n"
    ));
    assert!(
        e.contains("early_stopping") && e.contains("reduction_factor is 1"),
        "{e}"
    );
    let e = Dir::new().error(&format!("{BASIC}early_stopping: {{type: hyperband}}\n"));
    assert!(
        e.contains("early_stopping") && e.contains("max_resource"),
        "{e}"
    );
    let e = Dir::new().error(&format!("{BASIC}early_stopping: {{type: sha}}\n"));
    assert!(e.contains("early_stopping") && e.contains("sha"), "{e}");
}

#[test]
fn a_pbt_population_sets_the_budget_and_must_run_at_once() {
    let with = |extra: &str| {
        Dir::new().load(
            "study.yaml",
            &format!(
                "name: pbt\ncommand: [sh, -c, 'exit 0']\nparameters: {{lr: {{type: float, low: 0.001, high: 0.1}}}}\n\
                 metric: {{name: loss}}\nearly_stopping: {{type: pbt, population_size: 4, perturbation_interval: 2}}\n{extra}"
            ),
        )
    };
    let study = with("").unwrap();
    assert_eq!(study.budget.max_trials, Some(4));
    assert_eq!(study.process.max_concurrent, 4);
    let e = with("resources: {max_concurrent: 2}\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("resources.max_concurrent") && e.contains("population of 4"),
        "{e}"
    );
    let e = with("budget: {max_trials: 3}\n").unwrap_err().to_string();
    assert!(e.contains("budget.max_trials"), "{e}");
}

#[test]
fn malformed_yaml_names_the_file_and_line() {
    let e = Dir::new().error("name: demo\ncommand: [sh\nparameters: {\n");
    assert!(e.starts_with("DIR/study.yaml:"), "{e}");
    assert!(e.contains("malformed YAML"), "{e}");
}

#[test]
fn an_unknown_key_names_its_line_and_suggests_the_right_one() {
    let e = Dir::new().error(&BASIC.replace("max_trials: 20", "max_trails: 20"));
    assert!(
        e.starts_with("DIR/study.yaml:13: budget.max_trails: unknown field `max_trails`"),
        "{e}"
    );
    assert!(e.ends_with("did you mean `max_trials`?"), "{e}");
    let e = Dir::new().error(&BASIC.replace("method: sobol", "method: sobl"));
    assert!(
        e.contains("method: unknown variant `sobl`") && e.ends_with("did you mean `sobol`?"),
        "{e}"
    );
}

#[test]
fn a_bad_range_names_the_parameter_and_its_line() {
    let e = Dir::new().error(&BASIC.replace("low: 1, high: 4", "low: 4, high: 1"));
    assert_eq!(
        e,
        "DIR/study.yaml:6: parameters.layers: parameter \"layers\": low (4) must be < high (1)"
    );
}

#[test]
fn a_missing_or_unknown_command_is_an_error() {
    let e = Dir::new().error(&BASIC.replace("command: [sh, -c, 'exit 0', '{args}']\n", ""));
    assert!(e.contains("no command: add `command:"), "{e}");
    let e = Dir::new().error(&BASIC.replace("[sh, -c,", "[no-such-program-xyz, -c,"));
    assert!(
        e.contains("command: `no-such-program-xyz` is not a command found on PATH"),
        "{e}"
    );
    let e = Dir::new().error(&BASIC.replace("'{args}'", "'--lr={lrr}'"));
    assert!(
        e.contains("unknown placeholder `{lrr}`; did you mean `{lr}`?"),
        "{e}"
    );
}

#[test]
fn durations_read_as_people_write_them() {
    assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
    assert!(parse_duration("2 weeks").is_err());
}

/// Each of these panicked in `Duration::from_secs_f64` (found by tests/fuzz.rs).
#[test]
fn durations_too_long_or_not_numbers_are_errors_that_quote_the_text() {
    for text in ["inf", "1e400", "99999999999999999999d"] {
        let e = parse_duration(text).unwrap_err();
        assert_eq!(e, format!("`{text}` is longer than a duration can be"));
    }
    let e = parse_duration("10000000000000000000s10000000000000000000s").unwrap_err();
    assert!(e.contains("is longer than a duration can be"), "{e}");
    for text in ["NaN", "-1", "-inf", "-1h", "1e19s1e19s"] {
        let e = parse_duration(text).unwrap_err();
        assert!(e.starts_with(&format!("`{text}` is not a duration")), "{e}");
    }
    assert_eq!(parse_duration("-0").unwrap(), Duration::ZERO);
}

#[test]
fn a_duration_in_seconds_too_long_for_one_names_its_key() {
    let e = Dir::new().error(&BASIC.replace("trial_timeout: 90s", "trial_timeout: 1.0e300"));
    assert_eq!(
        e,
        "DIR/study.yaml:14: resources.trial_timeout: `1e300` is longer than a duration can be"
    );
    let e = Dir::new().error(&BASIC.replace("trial_timeout: 90s", "trial_timeout: -1"));
    assert!(
        e.contains("resources.trial_timeout: `-1.0` is not a duration"),
        "{e}"
    );
}

/// Found by tests/fuzz.rs: the count was expanded into a list of GPU names ("capacity overflow").
#[test]
fn a_gpu_count_beyond_any_machine_is_an_error() {
    let dir = Dir::new();
    let path = dir.write("study.yaml", BASIC);
    let e = load(&path, &["resources.gpus=18446744073709551615".into()]).unwrap_err();
    assert_eq!(
        e.to_string()
            .replace(&dir.0.path().display().to_string(), "DIR"),
        "DIR/study.yaml: resources.gpus: 18446744073709551615 GPUs is more than the 4096 \
         Hyperion schedules at most (the command-line override \
         `resources.gpus=18446744073709551615`)"
    );
}

/// Found by tests/fuzz.rs: a key of 10,000 parts nested the tree so deep that the steps after
/// it overflowed the stack (an abort, not even a panic).
#[test]
fn a_dotted_key_of_too_many_parts_is_an_error() {
    let key = vec!["a"; 10_000].join(".");
    let dir = Dir::new();
    let e = dir.error(&format!("{BASIC}? {key}\n: 1\n"));
    assert!(
        e.starts_with("DIR/study.yaml: the dotted key `a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.…` has more than 64 parts"),
        "{e}"
    );
    let e = dir
        .load("study.toml", &format!("\"{key}\" = 1\n"))
        .unwrap_err();
    assert!(e.message.contains("has more than 64 parts"), "{e}");
    let path = dir.write("study.yaml", BASIC);
    let e = load(&path, &[format!("budget.{key}=1")]).unwrap_err();
    assert!(
        e.message.contains("has more than 64 parts in its key"),
        "{e}"
    );
    let e = load(&path, &[format!("budget.{}=1", vec!["a"; 63].join("."))]).unwrap_err();
    assert!(
        e.message.contains("unknown field `a`"),
        "64 parts are read: {e}"
    );
}

#[test]
fn command_strings_split_like_a_shell_without_expanding() {
    assert_eq!(
        split_words("python3 'my script.py' --x=\"a b\" $(rm)").unwrap(),
        ["python3", "my script.py", "--x=a b", "$(rm)"]
    );
}

#[test]
fn a_missing_working_directory_is_refused_before_anything_runs() {
    let e = Dir::new().error(&format!("{BASIC}workdir: no-such-dir\n"));
    assert!(
        e.contains("workdir: DIR/no-such-dir is not a directory"),
        "{e}"
    );
}

#[test]
fn bad_tpe_settings_name_the_setting() {
    let e = Dir::new().error(&BASIC.replace("method: sobol", "method: tpe\ntpe: {gamma: 2}"));
    assert!(e.contains("tpe") && e.contains("gamma is 2"), "{e}");
    let e = Dir::new().error(&BASIC.replace(
        "method: sobol",
        "method: tpe\ntpe: {min_bandwidth_factor: -0.1}",
    ));
    assert!(e.contains("min_bandwidth_factor is -0.1"), "{e}");
}

#[test]
fn cmaes_is_a_method_with_its_own_settings_checked_by_name() {
    let study = Dir::new()
        .load(
            "study.yaml",
            &BASIC.replace(
                "method: sobol",
                "method: cmaes\ncmaes: {popsize: 12, restart: none}",
            ),
        )
        .unwrap();
    let SamplerConfig::Cmaes(config) = &study.sampler else {
        panic!("{:?}", study.sampler)
    };
    assert_eq!(config.popsize, Some(12));
    assert_eq!(config.restart, hyperion_samplers::CmaesRestart::None);
    let e = Dir::new().error(&BASIC.replace("method: sobol", "method: cmaes\ncmaes: {sigma0: 2}"));
    assert!(e.contains("cmaes") && e.contains("sigma0 is 2"), "{e}");
    let e = Dir::new().error(&BASIC.replace("method: sobol", "method: cmaes\ncmaes: {popsz: 2}"));
    assert!(
        e.contains("popsz") && e.contains("did you mean `popsize`"),
        "{e}"
    );
}

#[test]
fn resources_executor_is_local_unless_another_is_named() {
    let dir = Dir::new();
    let plain = dir.load("study.yaml", BASIC).unwrap();
    assert_eq!(plain.process.executor, "local", "the default");
    let text = BASIC.replace("gpus_per_trial: 1}", "gpus_per_trial: 1, executor: local}");
    let study = dir.load("study.yaml", &text).unwrap();
    assert_eq!(study.process.executor, "local");
    let e = Dir::new()
        .error(&BASIC.replace("gpus_per_trial: 1}", "gpus_per_trial: 1, executor: condor}"));
    assert_eq!(
        e,
        "DIR/study.yaml:14: resources.executor: unknown executor \"condor\" \
         (this release runs trials with: local, slurm)"
    );
}

#[test]
fn the_slurm_section_says_how_jobs_are_asked_for_and_names_its_errors() {
    let dir = Dir::new();
    let text = format!(
        "{}slurm:\n  partition: gpu\n  time: 2h\n  gpus_per_trial: 2\n  mem: 16G\n  \
         setup: ['module load cuda/12']\n  extra_args: [--exclusive]\n",
        BASIC.replace("gpus_per_trial: 1}", "gpus_per_trial: 1, executor: slurm}")
    );
    let study = dir.load("study.yaml", &text).unwrap();
    assert_eq!(study.process.executor, "slurm");
    let slurm = study.process.slurm.unwrap();
    assert_eq!(slurm.partition.as_deref(), Some("gpu"));
    assert_eq!(slurm.time, Some(Duration::from_secs(7200)));
    assert_eq!(slurm.gpus_per_trial, Some(2));
    assert_eq!(slurm.setup, ["module load cuda/12"]);
    assert!(slurm.probe, "probes by default");
    // Overridable on the command line, as any key.
    let path = dir.write("study.yaml", BASIC);
    let study = load(
        &path,
        &["resources.executor=slurm".into(), "slurm.qos=high".into()],
    )
    .unwrap();
    assert_eq!(study.process.executor, "slurm");
    assert_eq!(study.process.slurm.unwrap().qos.as_deref(), Some("high"));

    let errors = [
        (
            "  partiton: gpu\n",
            "slurm.partiton: unknown field `partiton`",
        ),
        ("  time: soon\n", "slurm.time: `soon` is not a duration"),
        (
            "  gres: 'gpu:1'\n  gpus_per_trial: 1\n",
            "slurm.gres: give either gres or gpus_per_trial",
        ),
        (
            "  max_submitted: 0\n",
            "slurm.max_submitted: must be at least 1",
        ),
        (
            "  extra_args: [exclusive]\n",
            "slurm.extra_args: `exclusive` is not an sbatch option",
        ),
    ];
    for (section, expected) in errors {
        let e = Dir::new().error(&format!("{BASIC}slurm:\n{section}"));
        assert!(e.starts_with("DIR/study.yaml:"), "{e}");
        assert!(e.contains(expected), "{section:?}: {e}");
    }
}

#[test]
fn trials_dir_is_relative_to_the_study_file() {
    let dir = Dir::new();
    let plain = dir.load("study.yaml", BASIC).unwrap();
    assert_eq!(plain.trials_dir, None);
    assert!(
        plain.process.trials_dir.as_os_str().is_empty(),
        "left for the caller"
    );
    let study = dir
        .load("study.yaml", &format!("{BASIC}trials_dir: runs/trials\n"))
        .unwrap();
    assert_eq!(study.trials_dir, Some(dir.0.path().join("runs/trials")));
    let elsewhere = dir.0.path().join("elsewhere");
    let study = dir
        .load(
            "study.yaml",
            &format!("{BASIC}trials_dir: {}\n", elsewhere.display()),
        )
        .unwrap();
    assert_eq!(study.trials_dir, Some(elsewhere), "an absolute path stays");

    let dir = Dir::new();
    dir.write("notes.txt", "not a directory\n");
    let e = dir.error(&format!("{BASIC}trials_dir: notes.txt\n"));
    assert_eq!(
        e,
        "DIR/study.yaml:15: trials_dir: DIR/notes.txt is not a directory"
    );
    let e = Dir::new().error(&format!("{BASIC}trials_dir: [a, b]\n"));
    assert!(
        e.starts_with("DIR/study.yaml:15: trials_dir: invalid type: sequence"),
        "{e}"
    );
}

#[test]
fn a_wandb_file_takes_overrides_in_its_own_keys_and_in_ours() {
    let dir = Dir::new();
    dir.write("train.py", "print('hi')\n");
    let path = dir.write(
        "sweep.yaml",
        "program: train.py\nmethod: random\nmetric: {name: loss, goal: minimize, target: 0.1}\n\
         parameters: {x: {min: 0.0, max: 1.0}}\nrun_cap: 2\n",
    );
    let study = load(&path, &["run_cap=30".into()]).unwrap();
    assert_eq!(study.spec.name, "sweep", "named after the file");
    assert_eq!(
        (study.budget.max_trials, study.budget.target),
        (Some(30), Some(0.1))
    );
    let ours = load(&path, &["budget.max_failures=3".into()]).unwrap();
    assert_eq!(
        (
            ours.budget.max_trials,
            ours.budget.target,
            ours.budget.max_failures
        ),
        (Some(2), Some(0.1), Some(3)),
        "an override of ours joins the converted budget"
    );
}

#[test]
fn a_bad_value_from_an_override_names_the_override_not_a_line() {
    let dir = Dir::new();
    let path = dir.write("study.yaml", BASIC);
    let e = load(&path, &["budget.max_trials=many".into()]).unwrap_err();
    assert_eq!(
        (e.line, e.key.as_deref()),
        (None, Some("budget.max_trials"))
    );
    assert!(
        e.message.contains("override `budget.max_trials=many`"),
        "{e}"
    );
}

#[test]
fn enqueued_points_are_whole_points_of_the_space() {
    let dir = Dir::new();
    let text = format!(
        "{BASIC}enqueue:\n  - {{lr: 0.01, layers: 3, optimizer: adam}}\n  - {{lr: 1, layers: 1, optimizer: sgd, momentum: 0.5}}\n"
    )
    .replace("high: 1.0e-1, log: true", "high: 1.0, log: true");
    let file = dir.load("study.yaml", &text).unwrap();
    assert_eq!(file.enqueue.len(), 2);
    assert_eq!(
        file.enqueue[0]["epochs"],
        ParamValue::Int(10),
        "constants are filled in"
    );
    assert_eq!(
        file.enqueue[1]["lr"],
        ParamValue::Float(1.0),
        "an int for a float is a float"
    );
    let bad = |point: &str| dir.error(&format!("{BASIC}enqueue:\n  - {point}\n"));
    assert_eq!(
        bad("{lr: 0.01, layers: 9, optimizer: adam}"),
        "DIR/study.yaml:15: enqueue: point 1: parameter \"layers\": 9 is not in int 1..4"
    );
    assert!(bad("{lr: 0.01, optimizer: adam}").contains("point 1: parameter \"layers\": missing"));
    assert!(
        bad("{lr: 0.01, layers: 2, optimizer: adam, momentum: 0.5}")
            .contains("parameter \"momentum\": given, but its condition is not met")
    );
    assert!(
        bad("{lr: 0.01, layers: 2, optimizer: adam, width: 8}")
            .contains("\"width\": not in the search space")
    );
}
