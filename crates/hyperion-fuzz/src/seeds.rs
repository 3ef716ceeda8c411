//! Valid inputs the mutators start from: a mutation of a valid file reaches much deeper into
//! the checks than random bytes, which stop at the YAML or TOML parser.

/// A valid study file: its name in the scratch directory, and its text.
#[derive(Clone, Copy, Debug)]
pub struct Seed {
    pub file: &'static str,
    pub text: &'static str,
}

/// Imported by [`STUDY_FILES`]' `imports:` seed; written beside every study file.
pub const BASE_FILE: Seed = Seed {
    file: "base.yaml",
    text: "method: grid\ngrid: {points: 3}\nbudget: {max_trials: 5, max_failures: 2}\n\
           resources.max_concurrent: 2\n",
};

/// Study files that load: the examples, one with every section, W&B Sweeps files, TOML.
pub const STUDY_FILES: &[Seed] = &[
    Seed {
        file: "study.yaml",
        text: include_str!("../../../examples/quickstart/study.yaml"),
    },
    Seed {
        file: "study.yaml",
        text: include_str!("../../../examples/sklearn/study.yaml"),
    },
    Seed {
        file: "study.yaml",
        text: "\
name: full
description: every section, durations as numbers and as text
command: [sh, -c, 'echo HYPERION_METRIC {{\"val_loss\": 1}}', '{args}', '--lr={lr}', '{trial_dir}']
parameters:
  lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
  layers: {type: int, low: 1, high: 9, step: 2}
  width: {type: int, low: 16, high: 512, log: true}
  optimizer: {type: categorical, choices: [adam, sgd, 3, 0.5, true]}
  momentum: {type: float, low: 0.0, high: 0.99, condition: {parent: optimizer, values: [sgd]}}
  dropout: {type: float, low: 0.0, high: 0.5, step: 0.1}
  model.name: resnet
  epochs: 10
metric: {name: val_loss, goal: minimize}
method: tpe
tpe: {startup_trials: 5, candidates: 24, gamma: 0.25, multivariate: true}
seed: 3
budget: {max_trials: 20, max_time: 1h30m, target: 0.01, max_failures: 3}
resources: {max_concurrent: 4, trial_timeout: 90, kill_grace: 2.5, gpus: [0, 1], gpus_per_trial: 1}
early_stopping: {type: asha, min_resource: 1, max_resource: 27, reduction_factor: 3}
storage: sqlite:study.db
report: {prefix: 'METRIC ', regex: 'loss=(?P<val_loss>[0-9.]+)'}
env: {OMP_NUM_THREADS: '1', CUDA.DEVICE: x}
recovery: {heartbeat: 10s, grace: 1m, max_retries: 2}
",
    },
    Seed {
        file: "study.yaml",
        text: "\
# Block style, a shell line, a grid with listed values, anchors and aliases.
name: grid-demo
shell: true
command: \"echo HYPERION_METRIC '{{\\\"acc\\\": 0.5}}' {args}\"
workdir: .
parameters:
  a: &range
    type: int
    low: 1
    high: 3
  b: *range
  kind:
    type: categorical
    choices:
      - linear
      - 'yes'
      - no
  c:
    type: float
    low: -1.5
    high: 1.5
metrics:
  - name: acc
    goal: maximize
  - {name: time}
method: grid
grid:
  points: 4
  values:
    c: [-1.5, 0.0, 1.5]
early_stopping:
  type: median
  n_warmup_steps: 5
recovery:
  heartbeat: 500ms
  grace: 2s
",
    },
    Seed {
        file: "study.yaml",
        text: "\
imports: [base.yaml]
name: composed
command: [sh, -c, 'exit 0']
parameters:
  x: {type: int, low: 1, high: 3}
metric: {name: loss, goal: maximize}
budget.max_trials: 9
resources.trial_timeout: 1h
",
    },
    Seed {
        file: "study.yaml",
        text: "\
name: pbt
command: [sh, -c, 'exit 0']
parameters: {lr: {type: float, low: 0.001, high: 0.1, log: true}}
metric: {name: loss}
early_stopping: {type: pbt, population_size: 4, perturbation_interval: 2}
budget: {max_trials: 8}
",
    },
    Seed {
        file: "sweep.yaml",
        text: "program: a.py\nmethod: random\nmetric: {name: loss, goal: minimize}\n\
               parameters: {x: {min: 0.0, max: 1.0}}\n",
    },
    Seed {
        file: "sweep.yaml",
        text: "\
program: train.py
project: demo
entity: me
method: bayes
command:
  - ${env}
  - ${interpreter}
  - ${program}
  - --fixed
  - ${args}
metric:
  name: val_loss
  goal: minimize
  target: 0.1
parameters:
  learning_rate: {distribution: log_uniform_values, min: 0.0001, max: 0.1}
  weight_decay: {distribution: log_uniform, min: -9.2, max: -2.3}
  batch_size: {values: [16, 32, 64]}
  epochs: {value: 5}
  dropout: {distribution: q_uniform, min: 0.0, max: 0.5, q: 0.1}
  layers: {min: 1, max: 4}
early_terminate: {type: hyperband, max_iter: 27, s: 2, eta: 3}
run_cap: 12
",
    },
    Seed {
        file: "study.toml",
        text: r#"name = "t"
command = ["sh", "-c", "exit 0", "{args}"]
method = "sobol"
seed = 7
budget.max_time = "2h"
resources = { max_concurrent = 2, trial_timeout = 30.5 }

[parameters.x]
type = "float"
low = 0.0
high = 1.0

[parameters.n]
type = "int"
low = -5
high = 5

[parameters.kind]
type = "categorical"
choices = ["a", "b", 1.5]

[metric]
name = "loss"
goal = "minimize"

[early_stopping]
type = "hyperband"
max_resource = 81
"#,
    },
];

/// Search spaces that parse, as JSON: the library's list form and a study file's mapping.
pub const SPACES: &[&str] = &[
    r#"[{"name": "lr", "type": "float", "low": 0.0001, "high": 0.1, "log": true},
       {"name": "layers", "type": "int", "low": 1, "high": 8, "step": 1},
       {"name": "opt", "type": "categorical", "choices": ["adam", "sgd", 1, 2.5, false]},
       {"name": "momentum", "type": "float", "low": 0.0, "high": 0.9, "step": 0.1,
        "condition": {"parent": "opt", "values": ["sgd"]}},
       {"name": "epochs", "type": "constant", "value": 10}]"#,
    r#"{"x": {"type": "float", "low": -5, "high": 5},
        "n": {"type": "int", "low": 1, "high": 1000, "log": true},
        "kind": {"type": "categorical", "choices": ["a", "b"]},
        "y": {"type": "int", "low": 0, "high": 10, "condition": {"parent": "kind", "values": ["b"]}},
        "fixed": 3}"#,
];
