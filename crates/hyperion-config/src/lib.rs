//! Study files: how a user describes a sweep.
//!
//! A study file (YAML, or TOML by extension) names the study, the command that runs a trial,
//! the parameters, the metric(s) and their goal, the method, the budget and the resources.
//! [`load`] reads it in layers: `imports:` (files merged under this one, in order), dotted keys
//! (`model.hidden: 512` sets one key and keeps its siblings), then command-line overrides
//! (`budget.max_trials=50`), which win. A W&B Sweeps file is recognised and rewritten first,
//! so it runs unmodified. The merged tree is then checked against the schema: every error names
//! the file, the line where it can be found, and the key; an unknown key gets a "did you mean".
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("study.yaml");
//! std::fs::write(&path, "
//! name: demo
//! command: [sh, -c, 'echo HYPERION_METRIC {{\"loss\": 1}}', '{args}']
//! parameters:
//!   lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
//! metric: {name: loss, goal: minimize}
//! budget: {max_trials: 20}
//! ")?;
//! let study = hyperion_config::load(&path, &["budget.max_trials=50".to_owned()])?;
//! assert_eq!(study.budget.max_trials, Some(50));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod layers;
mod wandb;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyperion_core::{Objective, Param, ParamValue, SearchSpace, StudySpec};
use hyperion_runtime::{Budget, ProcessConfig, Recovery};
use hyperion_samplers::SamplerConfig;
use hyperion_schedulers::SchedulerConfig;
use serde::Deserialize;
use serde_json::Value;

/// The largest `resources.gpus` count.
const MAX_GPUS: usize = 4096;

/// A study file, read and checked.
#[derive(Clone, Debug)]
pub struct StudyFile {
    pub path: PathBuf,
    pub spec: StudySpec,
    pub sampler: SamplerConfig,
    pub seed: Option<u64>,
    pub budget: Budget,
    /// How trials run; its `trials_dir` is left empty for the caller to set (it follows the store
    /// unless `trials_dir` below says otherwise).
    pub process: ProcessConfig,
    /// The `trials_dir` key: where the trials' directories go, relative to the study file's
    /// directory (none when absent).
    pub trials_dir: Option<PathBuf>,
    pub recovery: Recovery,
    pub description: Option<String>,
    pub storage: Option<String>,
    /// The `early_stopping` section: when running trials stop (none when absent).
    pub early_stopping: SchedulerConfig,
    /// Things the user should know (a W&B method mapped onto another, …).
    pub notes: Vec<String>,
    /// The `enqueue` list: points to try before the sampler's, each a whole point of the space
    /// (constants filled in). A run enqueues those the study has no trial of yet.
    pub enqueue: Vec<hyperion_core::Params>,
    /// The `stages:` section: each trial is a pipeline of cached stages (none for a plain
    /// `command:`).
    pub pipeline: Option<hyperion_runtime::PipelineConfig>,
}

impl StudyFile {
    /// The directory the study file is in (`.` for a bare file name).
    pub fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

/// What is wrong with a study file, and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl ConfigError {
    fn file(path: &Path, message: String) -> Self {
        ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            message,
        }
    }

    /// An error about `key` (a dotted path), located in `text` when it can be found there.
    fn at(path: &Path, text: &str, key: &str, message: String) -> Self {
        ConfigError {
            file: path.to_path_buf(),
            line: locate(text, key),
            key: Some(key.to_owned()),
            message,
        }
    }
}

/// Reads the study file at `path` with its imports, then applies `overrides` (`key.path=value`).
pub fn load(path: &Path, overrides: &[String]) -> Result<StudyFile, ConfigError> {
    let mut tree = layers::load_tree(path, &mut Vec::new())?;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut notes = Vec::new();
    // A W&B file takes overrides in its own keys (`run_cap=30`) as well as Hyperion's: they
    // apply before it is rewritten.
    let wandb = wandb::is_wandb(&tree);
    for o in overrides {
        layers::apply_override(&mut tree, o).map_err(|message| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: o.split_once('=').map(|(k, _)| k.to_owned()),
            message: format!("{message} (command-line override)"),
        })?;
    }
    if wandb {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default();
        tree = wandb::convert(tree, &stem, &mut notes)
            .map_err(|(key, message)| ConfigError::at(path, &text, &key, message))?;
    }
    build(path, &text, tree, notes).map_err(|mut e| {
        // A value an override set is wrong in the override, not on a line of the file.
        let key = e.key.clone().unwrap_or_default();
        let set = |o: &&String| {
            let k = o.split_once('=').map_or(o.as_str(), |(k, _)| k.trim());
            key == k || key.starts_with(&format!("{k}.")) || k.starts_with(&format!("{key}."))
        };
        if let Some(o) = overrides.iter().find(set) {
            e.line = None;
            e.message = format!("{} (the command-line override `{o}`)", e.message);
        }
        e
    })
}

/// Reads a search space given as JSON: a list of parameters (the library's serde form) or a
/// mapping of names to parameters (a study file's `parameters`).
pub fn parse_space(json: &str) -> Result<SearchSpace, String> {
    let value: Value = serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
    match value {
        Value::Array(_) => serde_json::from_value(value).map_err(|e| e.to_string()),
        Value::Object(map) => {
            space_from_map(&map).map_err(|(key, message)| format!("{key}: {message}"))
        }
        _ => Err("a search space is a list or a mapping of parameters".into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    command: Option<RawCommand>,
    #[serde(default)]
    shell: bool,
    #[serde(default)]
    stages: Option<BTreeMap<String, RawStage>>,
    #[serde(default)]
    cache: RawCacheSection,
    #[serde(default)]
    parameters: serde_json::Map<String, Value>,
    #[serde(default)]
    metric: Option<RawMetric>,
    #[serde(default)]
    metrics: Option<Vec<RawMetric>>,
    #[serde(default)]
    method: Method,
    #[serde(default)]
    grid: RawGrid,
    #[serde(default)]
    tpe: hyperion_samplers::TpeConfig,
    #[serde(default)]
    cmaes: hyperion_samplers::CmaesConfig,
    #[serde(default)]
    nsga2: hyperion_samplers::Nsga2Config,
    #[serde(default)]
    enqueue: Vec<BTreeMap<String, ParamValue>>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    budget: RawBudget,
    #[serde(default)]
    resources: RawResources,
    #[serde(default)]
    early_stopping: Option<SchedulerConfig>,
    #[serde(default)]
    storage: Option<String>,
    #[serde(default)]
    report: RawReport,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    workdir: Option<String>,
    #[serde(default)]
    trials_dir: Option<String>,
    #[serde(default)]
    recovery: RawRecovery,
    #[serde(default)]
    slurm: Option<RawSlurm>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRecovery {
    heartbeat: Option<DurationText>,
    grace: Option<DurationText>,
    max_retries: Option<u32>,
    lease: Option<DurationText>,
}

/// One of `stages:`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    #[serde(default)]
    command: Option<RawCommand>,
    /// Another pipeline file whose stages this one stands for.
    #[serde(default)]
    uses: Option<String>,
    #[serde(default)]
    shell: bool,
    #[serde(default)]
    needs: Vec<String>,
    #[serde(default)]
    params: Vec<String>,
    #[serde(default)]
    code: Vec<String>,
    #[serde(default)]
    inputs: Vec<String>,
    #[serde(default)]
    outputs: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// This stage's metrics are the trial's.
    #[serde(default)]
    reports: bool,
    #[serde(default)]
    cache: Option<RawStageCache>,
    #[serde(default)]
    max_concurrent: Option<usize>,
    #[serde(default)]
    retries: u32,
    /// Among stages ready to run, a higher priority goes first.
    #[serde(default)]
    priority: i32,
    /// `{fold: [0, 1, 2]}`: one item of the stage per value, each cached by itself.
    #[serde(default)]
    foreach: Option<BTreeMap<String, Vec<serde_json::Value>>>,
    #[serde(default)]
    resources: RawStageResources,
    #[serde(default)]
    executor: Option<String>,
}

/// A stage's `resources`: what each of its processes holds while it runs.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStageResources {
    /// GPUs from the study's `resources.gpus`.
    #[serde(default)]
    gpus: usize,
}

/// `cache: false`, or `cache: {version: "2"}` to salt the key.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawStageCache {
    On(bool),
    Salted { version: String },
}

/// The top-level `cache:` section.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCacheSection {
    dir: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCommand {
    Argv(Vec<String>),
    Line(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetric {
    name: String,
    #[serde(default = "minimize")]
    goal: hyperion_core::Direction,
}

fn minimize() -> hyperion_core::Direction {
    hyperion_core::Direction::Minimize
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Method {
    Grid,
    #[default]
    Random,
    Sobol,
    Tpe,
    Cmaes,
    Nsga2,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGrid {
    points: Option<usize>,
    #[serde(default)]
    values: BTreeMap<String, Vec<ParamValue>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    max_trials: Option<u64>,
    max_time: Option<DurationText>,
    target: Option<f64>,
    max_failures: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawResources {
    max_concurrent: Option<usize>,
    trial_timeout: Option<DurationText>,
    kill_grace: Option<DurationText>,
    gpus: Option<Gpus>,
    gpus_per_trial: Option<usize>,
    executor: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSlurm {
    partition: Option<String>,
    account: Option<String>,
    qos: Option<String>,
    time: Option<DurationText>,
    cpus_per_task: Option<u32>,
    mem: Option<String>,
    gpus_per_trial: Option<u32>,
    gres: Option<String>,
    constraint: Option<String>,
    nodes: Option<u32>,
    #[serde(default)]
    extra_args: Vec<String>,
    #[serde(default)]
    setup: Vec<String>,
    max_submitted: Option<usize>,
    probe: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Gpus {
    Count(usize),
    List(Vec<Value>),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReport {
    prefix: Option<String>,
    regex: Option<String>,
}

/// `90`, `90s`, `30m`, `2h`, `1h30m`, `500ms`.
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationText {
    Seconds(f64),
    Text(String),
}

impl DurationText {
    fn parse(&self) -> Result<Duration, String> {
        match self {
            // Debug writes 1e300 as `1e300`, where Display writes 301 digits.
            DurationText::Seconds(s) => seconds(*s, &format!("{s:?}")),
            DurationText::Text(t) => parse_duration(t),
        }
    }
}

/// Parses `2h`, `1h30m`, `45s`, `500ms`, `90` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (write 90s, 30m, 2h or 1h30m)");
    let t = text.trim();
    if let Ok(value) = t.parse::<f64>() {
        return seconds(value, text);
    }
    let mut total = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let n: f64 = number.parse().map_err(|_| bad())?;
        total += match unit.trim() {
            "ms" => n / 1000.0,
            "s" | "sec" => n,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            "d" => n * 86400.0,
            _ => return Err(bad()),
        };
        rest = next;
    }
    seconds(total, text)
}

/// `secs` seconds as a duration, refusing what `Duration::from_secs_f64` panics on: negative,
/// NaN, or longer than a `Duration` holds. `text` is what the user wrote.
fn seconds(secs: f64, text: &str) -> Result<Duration, String> {
    if secs.is_nan() || secs < 0.0 {
        return Err(format!(
            "`{text}` is not a duration (write 90s, 30m, 2h or 1h30m)"
        ));
    }
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("`{text}` is longer than a duration can be"))
}

/// Checks the merged tree against the schema, one section after another: the first error found
/// is the one reported.
fn build(
    path: &Path,
    text: &str,
    tree: Value,
    notes: Vec<String>,
) -> Result<StudyFile, ConfigError> {
    let cx = Ctx { path, text };
    let raw = deserialize(&cx, tree)?;
    let space = space_from_map(&raw.parameters).map_err(|(key, message)| cx.at(&key, message))?;
    let spec = StudySpec::new(&raw.name, objectives(&cx, raw.metric, raw.metrics)?, space);
    spec.validate().map_err(|e| cx.at("name", e.to_string()))?;
    let sampler = sampler(
        &cx,
        raw.method,
        raw.tpe,
        raw.cmaes,
        raw.nsga2,
        raw.grid,
        &spec.space,
    )?;
    let mut budget = budget(&cx, &raw.budget)?;
    let (raw_command, pipeline) = match (raw.command, raw.stages) {
        (Some(_), Some(_)) => {
            return Err(cx.at("stages", "give `command` or `stages`, not both".into()));
        }
        (Some(command), None) => (command, None),
        (None, Some(stages)) => {
            let workdir = raw
                .workdir
                .as_ref()
                .map(|w| cx.dir().join(w))
                .unwrap_or(cx.dir());
            let pipeline = pipeline(&cx, stages, raw.cache, &workdir, &spec)?;
            // The stages have their own commands; the plain trial template is unused.
            (RawCommand::Argv(vec!["true".into()]), Some(pipeline))
        }
        (None, None) => {
            return Err(ConfigError::file(
                cx.path,
                "no command: add `command: python train.py {args}` (or `stages:`)".into(),
            ));
        }
    };
    let command = command(&cx, raw_command, raw.shell, raw.workdir, raw.env, &spec)?;
    let trials_dir = trials_dir(&cx, raw.trials_dir)?;
    let concurrency_set = raw.resources.max_concurrent.is_some();
    let mut process = resources(&cx, command, raw.resources, raw.report)?;
    for stage in pipeline.iter().flat_map(|p| &p.stages) {
        if stage.gpus > process.gpus.len() {
            let name = stage.group();
            return Err(cx.at(
                &format!("stages.{name}.resources.gpus"),
                format!(
                    "stage `{name}` needs {} GPUs, but resources.gpus lists {}",
                    stage.gpus,
                    process.gpus.len()
                ),
            ));
        }
    }
    process.slurm = raw.slurm.map(|s| slurm(&cx, s)).transpose()?;
    let early_stopping = early_stopping(
        &cx,
        raw.early_stopping,
        &spec,
        concurrency_set,
        &mut budget,
        &mut process,
    )?;
    let recovery = recovery(&cx, &raw.recovery)?;
    let enqueue = enqueue(&cx, raw.enqueue, &spec.space)?;
    Ok(StudyFile {
        path: path.to_path_buf(),
        spec,
        sampler,
        seed: raw.seed,
        budget,
        process,
        trials_dir,
        recovery,
        description: raw.description,
        storage: raw.storage,
        early_stopping,
        notes,
        enqueue,
        pipeline,
    })
}

/// The `enqueue` points, each checked against the space: ints given for floats become floats,
/// constants are filled in, and anything else missing, unknown or out of range is an error that
/// names the point and the parameter.
fn enqueue(
    cx: &Ctx<'_>,
    points: Vec<BTreeMap<String, ParamValue>>,
    space: &SearchSpace,
) -> Result<Vec<hyperion_core::Params>, ConfigError> {
    use hyperion_core::Distribution;
    points
        .into_iter()
        .enumerate()
        .map(|(i, mut point)| {
            for p in space.params() {
                match (&p.distribution, point.get_mut(&p.name)) {
                    (Distribution::Float(_), Some(v @ ParamValue::Int(_))) => {
                        *v = ParamValue::Float(v.as_f64().unwrap_or_default());
                    }
                    (Distribution::Constant { value }, None) => {
                        point.insert(p.name.clone(), value.clone());
                    }
                    _ => {}
                }
            }
            space
                .check_point(&point)
                .map_err(|e| cx.at("enqueue", format!("point {}: {e}", i + 1)))?;
            Ok(point)
        })
        .collect()
}

/// The study file being checked: where its errors point.
struct Ctx<'a> {
    path: &'a Path,
    /// Its text, to find the line where a key is written.
    text: &'a str,
}

impl Ctx<'_> {
    /// An error about `key` (a dotted path), at its line.
    fn at(&self, key: &str, message: String) -> ConfigError {
        ConfigError::at(self.path, self.text, key, message)
    }

    /// The duration written at `key`, if any.
    fn duration(
        &self,
        key: &str,
        duration: &Option<DurationText>,
    ) -> Result<Option<Duration>, ConfigError> {
        duration
            .as_ref()
            .map(|d| d.parse().map_err(|e| self.at(key, e)))
            .transpose()
    }

    /// The study file's directory: relative paths in the file start there.
    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

/// The tree as the schema's [`Raw`]: an unknown key, a missing one or a wrong type is an error
/// at that key (with a "did you mean" for a typo), or about the whole file at the top level.
fn deserialize(cx: &Ctx<'_>, tree: Value) -> Result<Raw, ConfigError> {
    serde_path_to_error::deserialize(tree).map_err(|e| {
        let key = e.path().to_string();
        let message = with_suggestion(&e.inner().to_string());
        let key = if key == "." { None } else { Some(key) };
        let line = key.as_deref().and_then(|k| locate(cx.text, k));
        ConfigError {
            file: cx.path.to_path_buf(),
            line,
            key,
            message,
        }
    })
}

/// `metric` or `metrics` (one of them, not empty) as the study's objectives.
fn objectives(
    cx: &Ctx<'_>,
    metric: Option<RawMetric>,
    metrics: Option<Vec<RawMetric>>,
) -> Result<Vec<Objective>, ConfigError> {
    let metrics = match (metric, metrics) {
        (Some(_), Some(_)) => {
            return Err(cx.at("metrics", "give `metric` or `metrics`, not both".into()));
        }
        (Some(m), None) => vec![m],
        (None, Some(ms)) if !ms.is_empty() => ms,
        _ => {
            return Err(ConfigError::file(
                cx.path,
                "no metric: add `metric: {name: val_loss, goal: minimize}`".into(),
            ));
        }
    };
    Ok(metrics
        .into_iter()
        .map(|m| Objective {
            metric: m.name,
            direction: m.goal,
        })
        .collect())
}

/// `method` with its `tpe`, `cmaes`, `nsga2` or `grid` settings, checked against the space.
fn sampler(
    cx: &Ctx<'_>,
    method: Method,
    tpe: hyperion_samplers::TpeConfig,
    cmaes: hyperion_samplers::CmaesConfig,
    nsga2: hyperion_samplers::Nsga2Config,
    grid: RawGrid,
    space: &SearchSpace,
) -> Result<SamplerConfig, ConfigError> {
    Ok(match method {
        Method::Random => SamplerConfig::Random,
        Method::Sobol => SamplerConfig::Sobol,
        Method::Tpe => {
            tpe.validate().map_err(|e| cx.at("tpe", e.to_string()))?;
            SamplerConfig::Tpe(tpe)
        }
        Method::Cmaes => {
            cmaes
                .validate()
                .map_err(|e| cx.at("cmaes", e.to_string()))?;
            SamplerConfig::Cmaes(cmaes)
        }
        Method::Nsga2 => {
            nsga2
                .validate()
                .map_err(|e| cx.at("nsga2", e.to_string()))?;
            SamplerConfig::Nsga2(nsga2)
        }
        Method::Grid => {
            let SamplerConfig::Grid {
                points: default_points,
                ..
            } = SamplerConfig::grid()
            else {
                unreachable!()
            };
            let points = grid.points.unwrap_or(default_points);
            // A study file declares every parameter: other grid values are a typo.
            if let Some(name) = grid.values.keys().find(|k| space.get(k).is_none()) {
                return Err(cx.at(
                    "grid",
                    format!("values of \"{name}\": it is not one of the parameters"),
                ));
            }
            hyperion_samplers::GridSampler::new(points, grid.values.clone())
                .and_then(|g| g.size(space))
                .map_err(|e| cx.at("grid", e.to_string()))?;
            SamplerConfig::Grid {
                points,
                values: grid.values,
            }
        }
    })
}

/// The `budget` section.
fn budget(cx: &Ctx<'_>, budget: &RawBudget) -> Result<Budget, ConfigError> {
    Ok(Budget {
        max_trials: budget.max_trials,
        max_time: cx.duration("budget.max_time", &budget.max_time)?,
        target: budget.target,
        max_failures: budget.max_failures,
    })
}

/// What runs a trial, checked before anything runs.
struct Command {
    argv: Vec<String>,
    shell: bool,
    workdir: PathBuf,
    env: BTreeMap<String, String>,
}

/// `command` as an argv (a string is split into words, unless `shell`), run in `workdir`
/// (relative to the study file): the argv is not empty, the working directory exists, every
/// placeholder is known and (without `shell`) the program exists.
fn command(
    cx: &Ctx<'_>,
    command: RawCommand,
    shell: bool,
    workdir: Option<String>,
    env: BTreeMap<String, String>,
    spec: &StudySpec,
) -> Result<Command, ConfigError> {
    let dir = cx.dir();
    let workdir = workdir.map(|w| dir.join(w)).unwrap_or(dir);
    let argv = match command {
        RawCommand::Argv(argv) => argv,
        RawCommand::Line(line) if shell => vec![line],
        RawCommand::Line(line) => split_words(&line).map_err(|e| cx.at("command", e))?,
    };
    if argv.is_empty() || argv[0].trim().is_empty() {
        return Err(cx.at("command", "the command is empty".into()));
    }
    if !workdir.is_dir() {
        return Err(cx.at(
            "workdir",
            format!("{} is not a directory", workdir.display()),
        ));
    }
    check_placeholders(&argv, spec).map_err(|e| cx.at("command", e))?;
    if !shell {
        check_program(&argv[0], &workdir).map_err(|e| cx.at("command", e))?;
        check_script(&argv, &workdir).map_err(|e| cx.at("command", e))?;
    }
    Ok(Command {
        argv,
        shell,
        workdir,
        env,
    })
}

/// Names every stage command knows; a cached stage may not use the trial's own.
const TRIAL_PLACEHOLDERS: [&str; 3] = ["trial_dir", "trial_id", "trial_number"];

/// The `stages:` section as a pipeline: each stage checked, the DAG sorted so that each stage
/// comes after those it needs, and a cycle, an unknown `needs` or param, or a cached stage
/// reading what it does not declare refused at its line.
fn pipeline(
    cx: &Ctx<'_>,
    stages: BTreeMap<String, RawStage>,
    cache: RawCacheSection,
    workdir: &Path,
    spec: &StudySpec,
) -> Result<hyperion_runtime::PipelineConfig, ConfigError> {
    use hyperion_runtime::{PipelineConfig, StageConfig};
    if stages.is_empty() {
        return Err(cx.at("stages", "no stages: give at least one".into()));
    }
    let stages = inline_uses(cx, stages, &cx.dir(), &mut Vec::new())?;
    let names: Vec<&str> = stages.keys().map(String::as_str).collect();
    for (name, stage) in &stages {
        let at = |field: &str| format!("stages.{name}.{field}");
        for need in &stage.needs {
            if !stages.contains_key(need) {
                let hint = closest(need, names.iter().copied())
                    .map(|k| format!("; did you mean `{k}`?"))
                    .unwrap_or_default();
                return Err(cx.at(
                    &at("needs"),
                    format!("stage `{name}` needs `{need}`, which is not a stage{hint}"),
                ));
            }
        }
        for param in &stage.params {
            if spec.space.get(param).is_none() {
                return Err(cx.at(
                    &at("params"),
                    format!("stage `{name}`: `{param}` is not one of the parameters"),
                ));
            }
        }
        if let Some(executor) = stage
            .executor
            .as_deref()
            .filter(|e| !["local", "slurm"].contains(e))
        {
            return Err(cx.at(
                &at("executor"),
                format!("stage `{name}`: executor `{executor}` is not one of local, slurm"),
            ));
        }
        if stage.max_concurrent == Some(0) {
            return Err(cx.at(&at("max_concurrent"), "must be at least 1".into()));
        }
        if let Some(foreach) = &stage.foreach {
            foreach_items(name, foreach, spec).map_err(|e| cx.at(&at("foreach"), e))?;
        }
    }
    let order = topological(&stages).map_err(|cycle| {
        cx.at(
            &format!("stages.{}", cycle[0]),
            format!("the stages form a cycle: {}", cycle.join(" → ")),
        )
    })?;
    // A foreach stage is one stage per item, side by side: `train[0]`, `train[1]`, …; a stage
    // that needs it needs them all.
    let mut index: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut at_index = 0;
    for name in &order {
        let items = match &stages[*name].foreach {
            Some(foreach) => foreach.values().next().map_or(1, Vec::len),
            None => 1,
        };
        index.insert(name, (at_index..at_index + items).collect());
        at_index += items;
    }
    let mut built = Vec::new();
    for name in &order {
        let stage = &stages[*name];
        let at = |field: &str| format!("stages.{name}.{field}");
        let cached = !matches!(stage.cache, Some(RawStageCache::On(false)));
        let argv = match &stage.command {
            Some(RawCommand::Argv(argv)) => argv.clone(),
            Some(RawCommand::Line(line)) if stage.shell => vec![line.clone()],
            Some(RawCommand::Line(line)) => {
                split_words(line).map_err(|e| cx.at(&at("command"), e))?
            }
            None => {
                return Err(cx.at(
                    &format!("stages.{name}"),
                    format!("stage `{name}` has no `command` (or `uses`)"),
                ));
            }
        };
        if argv.is_empty() || argv[0].trim().is_empty() {
            return Err(cx.at(
                &at("command"),
                format!("stage `{name}`: the command is empty"),
            ));
        }
        check_stage_placeholders(name, &argv, stage, cached, spec)
            .map_err(|e| cx.at(&at("command"), e))?;
        let items: Vec<Option<hyperion_runtime::pipeline::Item>> = match &stage.foreach {
            Some(foreach) => foreach_items(name, foreach, spec)
                .map_err(|e| cx.at(&at("foreach"), e))?
                .into_iter()
                .map(Some)
                .collect(),
            None => vec![None],
        };
        for item in items {
            // An item's paths may name it: `folds/{fold}.csv`.
            let paths =
                |field: &str, list: &[String]| -> Result<Vec<(String, PathBuf)>, ConfigError> {
                    list.iter()
                        .map(|p| {
                            let p = match &item {
                                Some(item) => p.replace(&format!("{{{}}}", item.var), &item.text),
                                None => p.clone(),
                            };
                            let path = workdir.join(&p);
                            if path.exists() {
                                Ok((p, path))
                            } else {
                                Err(cx.at(
                                    &at(field),
                                    format!("stage `{name}`: {} does not exist", path.display()),
                                ))
                            }
                        })
                        .collect()
                };
            built.push(StageConfig {
                name: match &item {
                    Some(item) => format!("{name}[{}]", item.text),
                    None => (*name).to_owned(),
                },
                argv: argv.clone(),
                shell: stage.shell,
                env: stage.env.clone(),
                needs: stage
                    .needs
                    .iter()
                    .flat_map(|n| index[n.as_str()].clone())
                    .collect(),
                params: stage.params.clone(),
                code: paths("code", &stage.code)?,
                inputs: paths("inputs", &stage.inputs)?,
                outputs: stage.outputs.clone(),
                cache: cached,
                version: match &stage.cache {
                    Some(RawStageCache::Salted { version }) => Some(version.clone()),
                    _ => None,
                },
                max_concurrent: stage.max_concurrent,
                retries: stage.retries,
                priority: stage.priority,
                gpus: stage.resources.gpus,
                executor: stage.executor.clone().unwrap_or_else(|| "local".into()),
                item,
            });
        }
    }
    let reporters: Vec<usize> = order
        .iter()
        .filter(|n| stages[**n].reports)
        .flat_map(|n| index[*n].clone())
        .collect();
    let sinks: Vec<usize> = (0..built.len())
        .filter(|i| !built.iter().any(|s| s.needs.contains(i)))
        .collect();
    let ends = if reporters.is_empty() {
        &sinks
    } else {
        &reporters
    };
    if let Some(&item) = ends.iter().find(|&&i| built[i].item.is_some()) {
        let name = built[item].group();
        return Err(cx.at(
            &format!("stages.{name}"),
            format!(
                "stage `{name}` runs for each item, so it cannot report the trial's objective: \
                 add a stage that needs it and reports (say, the mean over the items)"
            ),
        ));
    }
    let reporter = match (reporters.as_slice(), sinks.as_slice()) {
        ([one], _) => *one,
        ([], [one]) => *one,
        ([], _) => {
            return Err(cx.at(
                "stages",
                "several stages end the pipeline: mark the one that reports the objective with \
                 `reports: true`"
                    .into(),
            ));
        }
        _ => return Err(cx.at("stages", "only one stage may say `reports: true`".into())),
    };
    if built[reporter..].len() > 1 {
        // The trial ends with the reporter: what would follow it never runs.
        let after = &built[reporter + 1].name;
        return Err(cx.at(
            &format!("stages.{after}"),
            format!(
                "stage `{after}` would run after `{}`, which reports the objective and ends the trial",
                built[reporter].name
            ),
        ));
    }
    let cache_dir = cx
        .dir()
        .join(cache.dir.as_deref().unwrap_or(".hyperion/cache"));
    Ok(PipelineConfig {
        force: vec![false; built.len()],
        stages: built,
        reporter,
        cache_dir,
    })
}

/// The stages with each `uses: FILE` stage replaced by that file's `stages:` (recursively),
/// named `STAGE.SUB`: the file's first stages need what the using stage needs, and a stage
/// that needs the using stage needs the file's last one (its `{in.STAGE}` is that one's output).
fn inline_uses(
    cx: &Ctx<'_>,
    stages: BTreeMap<String, RawStage>,
    dir: &Path,
    using: &mut Vec<PathBuf>,
) -> Result<BTreeMap<String, RawStage>, ConfigError> {
    let mut inlined = BTreeMap::new();
    // Each using stage and the stage that stands for its output.
    let mut outputs: BTreeMap<String, String> = BTreeMap::new();
    for (name, stage) in stages {
        let Some(file) = stage.uses.clone() else {
            inlined.insert(name, stage);
            continue;
        };
        let at = format!("stages.{name}.uses");
        if stage.command.is_some() || !stage.params.is_empty() || stage.foreach.is_some() {
            return Err(cx.at(
                &at,
                format!(
                    "stage `{name}` uses {file}: it takes only `needs` (its stages have the rest)"
                ),
            ));
        }
        let path = dir.join(&file);
        let canonical = std::fs::canonicalize(&path).map_err(|e| {
            cx.at(
                &at,
                format!("stage `{name}`: cannot read {}: {e}", path.display()),
            )
        })?;
        if using.contains(&canonical) {
            return Err(cx.at(&at, format!("stage `{name}`: {file} uses itself")));
        }
        let tree = layers::load_tree(&path, &mut Vec::new())?;
        let in_file = |message: String| cx.at(&at, format!("{}: {message}", path.display()));
        let sub: BTreeMap<String, RawStage> = match tree.get("stages") {
            Some(stages) => serde_json::from_value(stages.clone())
                .map_err(|e| in_file(format!("stages: {e}")))?,
            None => return Err(in_file("no `stages:`".into())),
        };
        using.push(canonical);
        let sub = inline_uses(cx, sub, path.parent().unwrap_or(dir), using)?;
        using.pop();
        let ends: Vec<&String> = (sub.keys())
            .filter(|s| !sub.values().any(|t| t.needs.contains(s)))
            .collect();
        let [end] = ends[..] else {
            return Err(in_file(format!(
                "its stages end in {} stages; `{name}` stands for one (the output its dependents read)",
                ends.len()
            )));
        };
        outputs.insert(name.clone(), format!("{name}.{end}"));
        let names: Vec<String> = sub.keys().cloned().collect();
        for (sub_name, mut s) in sub {
            s.needs = if s.needs.is_empty() {
                stage.needs.clone()
            } else {
                s.needs.iter().map(|n| format!("{name}.{n}")).collect()
            };
            // Its outputs are read by the using pipeline's stages, not reported by it.
            s.reports = false;
            for other in &names {
                rename_input(&mut s, other, &format!("{name}.{other}"));
            }
            inlined.insert(format!("{name}.{sub_name}"), s);
        }
    }
    for stage in inlined.values_mut() {
        for (using, output) in &outputs {
            for need in stage.needs.iter_mut().filter(|n| *n == using) {
                *need = output.clone();
            }
            rename_input(stage, using, output);
        }
    }
    Ok(inlined)
}

/// `{in.FROM}` in `stage`'s command as `{in.TO}`.
fn rename_input(stage: &mut RawStage, from: &str, to: &str) {
    let (from, to) = (format!("{{in.{from}}}"), format!("{{in.{to}}}"));
    match &mut stage.command {
        Some(RawCommand::Argv(argv)) => {
            for word in argv {
                *word = word.replace(&from, &to);
            }
        }
        Some(RawCommand::Line(line)) => *line = line.replace(&from, &to),
        None => {}
    }
}

/// The items of a `foreach: {VAR: [values]}`: one variable, not a parameter, and distinct
/// scalar values.
fn foreach_items(
    name: &str,
    foreach: &BTreeMap<String, Vec<serde_json::Value>>,
    spec: &StudySpec,
) -> Result<Vec<hyperion_runtime::pipeline::Item>, String> {
    let [(var, values)] = foreach.iter().collect::<Vec<_>>()[..] else {
        return Err(format!(
            "stage `{name}`: `foreach` takes one variable and its values, as `{{fold: [0, 1, 2]}}`"
        ));
    };
    if spec.space.get(var).is_some() {
        return Err(format!(
            "stage `{name}`: the foreach variable `{var}` is also a parameter; give it another name"
        ));
    }
    if values.is_empty() {
        return Err(format!("stage `{name}`: `foreach.{var}` has no values"));
    }
    let mut items: Vec<hyperion_runtime::pipeline::Item> = Vec::new();
    for value in values {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => {
                return Err(format!(
                    "stage `{name}`: `foreach.{var}` values are numbers or strings, not {other}"
                ));
            }
        };
        if text.is_empty() || text.contains(['/', '[', ']']) || text == "." || text == ".." {
            return Err(format!(
                "stage `{name}`: `foreach.{var}` value {value} cannot name a directory"
            ));
        }
        if items.iter().any(|i| i.text == text) {
            return Err(format!("stage `{name}`: `foreach.{var}` has {value} twice"));
        }
        items.push(hyperion_runtime::pipeline::Item {
            stage: name.to_owned(),
            var: var.clone(),
            value: value.clone(),
            text,
        });
    }
    Ok(items)
}

/// The stages in an order where each comes after those it needs (ties by name), or a cycle.
fn topological(stages: &BTreeMap<String, RawStage>) -> Result<Vec<&str>, Vec<String>> {
    let mut order: Vec<&str> = Vec::new();
    while order.len() < stages.len() {
        let next = stages.iter().find(|(name, stage)| {
            !order.contains(&name.as_str())
                && stage.needs.iter().all(|n| order.contains(&n.as_str()))
        });
        match next {
            Some((name, _)) => order.push(name),
            None => {
                // Every stage left needs another one left: follow `needs` until one repeats.
                let mut path: Vec<String> = Vec::new();
                let mut at = stages
                    .keys()
                    .find(|n| !order.contains(&n.as_str()))
                    .expect("a stage is left")
                    .clone();
                while !path.contains(&at) {
                    path.push(at.clone());
                    at = stages[&at]
                        .needs
                        .iter()
                        .find(|n| !order.contains(&n.as_str()))
                        .expect("it needs a stage left")
                        .clone();
                }
                let start = path.iter().position(|p| *p == at).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(at);
                return Err(cycle);
            }
        }
    }
    Ok(order)
}

/// A stage's placeholders: `{out}`, `{in.S}` for a stage it needs, `{args}` and the
/// parameters; a cached stage only the parameters it declares, and none of the trial's own.
fn check_stage_placeholders(
    name: &str,
    argv: &[String],
    stage: &RawStage,
    cached: bool,
    spec: &StudySpec,
) -> Result<(), String> {
    for element in argv {
        hyperion_runtime::substitute(element, |placeholder| {
            let item = stage.foreach.as_ref().and_then(|f| f.keys().next());
            let known = match placeholder {
                "out" | "args" | "args_no_hyphens" | "study" => true,
                p if item.is_some_and(|var| var == p) => true,
                p if p.starts_with("in.") => stage.needs.iter().any(|n| *n == p[3..]),
                p if TRIAL_PLACEHOLDERS.contains(&p) => {
                    if cached {
                        return Err(format!(
                            "stage `{name}` is cached, so it cannot use `{{{p}}}`: its output would \
                             depend on the trial (declare `cache: false` for a stage with side effects)"
                        ));
                    }
                    true
                }
                p if spec.space.get(p).is_some() => {
                    if cached && !stage.params.iter().any(|d| d == p) {
                        return Err(format!(
                            "stage `{name}` uses `{{{p}}}` but does not declare it: add it to its \
                             `params`, so that it is part of the stage's cache key"
                        ));
                    }
                    true
                }
                _ => false,
            };
            if known {
                Ok(String::new())
            } else if let Some(upstream) = placeholder.strip_prefix("in.") {
                Err(format!(
                    "stage `{name}` uses `{{{placeholder}}}` but does not need `{upstream}`"
                ))
            } else {
                Err(format!(
                    "stage `{name}`: unknown placeholder `{{{placeholder}}}`"
                ))
            }
        })?;
    }
    Ok(())
}

/// `trials_dir`, relative to the study file: a directory, or not there yet.
fn trials_dir(cx: &Ctx<'_>, trials_dir: Option<String>) -> Result<Option<PathBuf>, ConfigError> {
    let Some(trials_dir) = trials_dir else {
        return Ok(None);
    };
    let trials_dir = cx.dir().join(trials_dir);
    if trials_dir.exists() && !trials_dir.is_dir() {
        return Err(cx.at(
            "trials_dir",
            format!("{} is not a directory", trials_dir.display()),
        ));
    }
    Ok(Some(trials_dir))
}

/// The dispatchers a study file may name in `resources.executor`.
const EXECUTORS: [&str; 2] = ["local", "slurm"];

/// The `slurm:` section: how each trial's job is asked for.
fn slurm(cx: &Ctx<'_>, raw: RawSlurm) -> Result<hyperion_runtime::SlurmConfig, ConfigError> {
    if raw.gres.is_some() && raw.gpus_per_trial.is_some() {
        return Err(cx.at(
            "slurm.gres",
            "give either gres or gpus_per_trial (which is --gres=gpu:N), not both".into(),
        ));
    }
    if raw.max_submitted == Some(0) {
        return Err(cx.at("slurm.max_submitted", "must be at least 1".into()));
    }
    for (key, value) in [
        ("slurm.cpus_per_task", raw.cpus_per_task),
        ("slurm.nodes", raw.nodes),
    ] {
        if value == Some(0) {
            return Err(cx.at(key, "must be at least 1".into()));
        }
    }
    if let Some(i) = raw.extra_args.iter().position(|a| !a.starts_with('-')) {
        return Err(cx.at(
            "slurm.extra_args",
            format!(
                "`{}` is not an sbatch option (each element is one option, such as --exclusive \
                 or --reservation=name)",
                raw.extra_args[i]
            ),
        ));
    }
    let defaults = hyperion_runtime::SlurmConfig::default();
    Ok(hyperion_runtime::SlurmConfig {
        partition: raw.partition,
        account: raw.account,
        qos: raw.qos,
        time: cx.duration("slurm.time", &raw.time)?,
        cpus_per_task: raw.cpus_per_task,
        mem: raw.mem,
        gpus_per_trial: raw.gpus_per_trial,
        gres: raw.gres,
        constraint: raw.constraint,
        nodes: raw.nodes,
        extra_args: raw.extra_args,
        setup: raw.setup,
        max_submitted: raw.max_submitted,
        probe: raw.probe.unwrap_or(defaults.probe),
    })
}

/// The command with the `resources` and `report` sections: how trials run. `trials_dir` is
/// left empty.
fn resources(
    cx: &Ctx<'_>,
    command: Command,
    resources: RawResources,
    report: RawReport,
) -> Result<ProcessConfig, ConfigError> {
    let gpus: Vec<String> = match resources.gpus {
        None => Vec::new(),
        // A count names the GPUs 0..n: far beyond any machine it is a typo, and would not fit
        // in memory.
        Some(Gpus::Count(n)) if n > MAX_GPUS => {
            return Err(cx.at(
                "resources.gpus",
                format!("{n} GPUs is more than the {MAX_GPUS} Hyperion schedules at most"),
            ));
        }
        Some(Gpus::Count(n)) => (0..n).map(|i| i.to_string()).collect(),
        Some(Gpus::List(list)) => list
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect(),
    };
    let gpus_per_trial = resources
        .gpus_per_trial
        .unwrap_or(usize::from(!gpus.is_empty()));
    if gpus_per_trial > gpus.len() {
        return Err(cx.at(
            "resources.gpus_per_trial",
            format!(
                "{gpus_per_trial} GPUs per trial, but only {} listed in resources.gpus",
                gpus.len()
            ),
        ));
    }
    let max_concurrent = resources.max_concurrent.unwrap_or(1);
    if max_concurrent == 0 {
        return Err(cx.at("resources.max_concurrent", "must be at least 1".into()));
    }
    if let Some(executor) = &resources.executor
        && !EXECUTORS.contains(&executor.as_str())
    {
        return Err(cx.at(
            "resources.executor",
            format!(
                "unknown executor \"{executor}\" (this release runs trials with: {})",
                EXECUTORS.join(", ")
            ),
        ));
    }
    let stdout_regex = report
        .regex
        .map(|r| hyperion_runtime::MetricRegex::new(&r).map_err(|e| cx.at("report.regex", e)))
        .transpose()?;
    let mut process = ProcessConfig::new(command.argv, command.workdir, PathBuf::new());
    process.shell = command.shell;
    process.env = command.env;
    process.max_concurrent = max_concurrent;
    process.trial_timeout = cx.duration("resources.trial_timeout", &resources.trial_timeout)?;
    if let Some(grace) = cx.duration("resources.kill_grace", &resources.kill_grace)? {
        process.kill_grace = grace;
    }
    process.gpus = gpus;
    process.gpus_per_trial = gpus_per_trial;
    if let Some(prefix) = report.prefix {
        process.stdout_prefix = prefix;
    }
    process.stdout_regex = stdout_regex;
    if let Some(executor) = resources.executor {
        process.executor = executor;
    }
    Ok(process)
}

/// The `early_stopping` section (none when absent), built once to check it. A PBT population
/// sets the trial budget, and the concurrency unless the file sets it (`concurrency_set`): its
/// members are compared while they run. Then the limits that bind the budget, the scheduler and
/// the concurrency together are checked.
fn early_stopping(
    cx: &Ctx<'_>,
    section: Option<SchedulerConfig>,
    spec: &StudySpec,
    concurrency_set: bool,
    budget: &mut Budget,
    process: &mut ProcessConfig,
) -> Result<SchedulerConfig, ConfigError> {
    let early_stopping = section.unwrap_or(SchedulerConfig::None);
    early_stopping
        .build(0)
        .map_err(|e| cx.at("early_stopping", e.to_string()))?;
    if let SchedulerConfig::Pbt(pbt) = &early_stopping
        && let Some(population) = pbt.population_size
    {
        budget.max_trials.get_or_insert(population);
        if !concurrency_set {
            process.max_concurrent = population as usize;
        }
    }
    hyperion_runtime::check_limits(
        spec.objectives.len(),
        budget,
        Some(&early_stopping),
        process.max_concurrent,
    )
    .map_err(|(key, message)| cx.at(key, message))?;
    Ok(early_stopping)
}

/// The `recovery` section over the defaults: `grace` must be longer than `heartbeat`.
fn recovery(cx: &Ctx<'_>, recovery: &RawRecovery) -> Result<Recovery, ConfigError> {
    let defaults = Recovery::default();
    let recovery = Recovery {
        heartbeat: cx
            .duration("recovery.heartbeat", &recovery.heartbeat)?
            .unwrap_or(defaults.heartbeat),
        grace: cx
            .duration("recovery.grace", &recovery.grace)?
            .unwrap_or(defaults.grace),
        max_retries: recovery.max_retries.unwrap_or(defaults.max_retries),
        lease: cx
            .duration("recovery.lease", &recovery.lease)?
            .unwrap_or(defaults.lease),
    };
    if recovery.grace <= recovery.heartbeat {
        return Err(cx.at(
            "recovery.grace",
            "must be longer than recovery.heartbeat".into(),
        ));
    }
    Ok(recovery)
}

/// The `parameters` mapping as a space: `{type: …}` mappings, or a bare value for a constant.
fn space_from_map(map: &serde_json::Map<String, Value>) -> Result<SearchSpace, (String, String)> {
    let mut params = Vec::with_capacity(map.len());
    for (name, spec) in map {
        let key = format!("parameters.{name}");
        let mut object = match spec {
            Value::Object(object) => object.clone(),
            scalar => {
                let mut object = serde_json::Map::new();
                object.insert("type".into(), "constant".into());
                object.insert("value".into(), scalar.clone());
                object
            }
        };
        if !object.contains_key("type") {
            return Err((
                key,
                "needs a `type`: float, int, categorical or constant".into(),
            ));
        }
        object.insert("name".into(), Value::String(name.clone()));
        let param: Param =
            serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
                let inner = e.path().to_string();
                let key = if inner == "." {
                    key.clone()
                } else {
                    format!("{key}.{inner}")
                };
                (key, with_suggestion(&e.inner().to_string()))
            })?;
        params.push(param);
    }
    SearchSpace::new(params).map_err(|e| {
        let param = match &e {
            hyperion_core::Error::InvalidParam { param, .. }
            | hyperion_core::Error::DuplicateParam { param }
            | hyperion_core::Error::UnknownParent { param, .. }
            | hyperion_core::Error::ImpossibleCondition { param, .. } => param.clone(),
            _ => String::new(),
        };
        (
            if param.is_empty() {
                "parameters".into()
            } else {
                format!("parameters.{param}")
            },
            e.to_string(),
        )
    })
}

/// Every `{name}` in the command is a parameter or a built-in placeholder.
fn check_placeholders(argv: &[String], spec: &StudySpec) -> Result<(), String> {
    const BUILTIN: [&str; 6] = [
        "args",
        "args_no_hyphens",
        "trial_dir",
        "trial_number",
        "trial_id",
        "study",
    ];
    let known: Vec<&str> = spec
        .space
        .params()
        .iter()
        .map(|p| p.name.as_str())
        .chain(BUILTIN)
        .collect();
    for element in argv {
        hyperion_runtime::substitute(element, |name| {
            if known.contains(&name) {
                Ok(String::new())
            } else {
                let hint = closest(name, known.iter().copied())
                    .map(|k| format!("; did you mean `{{{k}}}`?"))
                    .unwrap_or_default();
                Err(format!("unknown placeholder `{{{name}}}`{hint}"))
            }
        })?;
    }
    Ok(())
}

/// The program exists: a path (relative to the working directory) or a name on `PATH`.
fn check_program(program: &str, workdir: &Path) -> Result<(), String> {
    if program.contains('/') {
        let path = workdir.join(program);
        return if path.exists() {
            Ok(())
        } else {
            Err(format!(
                "`{program}` does not exist (in {})",
                workdir.display()
            ))
        };
    }
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(format!("`{program}` is not a command found on PATH"))
    }
}

/// An interpreter's script exists (`python3 trian.py` fails every trial the same way): the
/// first argument of a known interpreter, when it is a plain file name with an extension.
fn check_script(argv: &[String], workdir: &Path) -> Result<(), String> {
    const INTERPRETERS: [&str; 10] = [
        "python", "python3", "bash", "sh", "zsh", "Rscript", "julia", "node", "perl", "ruby",
    ];
    let program = Path::new(&argv[0])
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    // `python3.11` is `python3`.
    let interpreter = program.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    let is_interpreter = INTERPRETERS.contains(&program) || INTERPRETERS.contains(&interpreter);
    let Some(script) = argv.get(1).filter(|_| is_interpreter) else {
        return Ok(());
    };
    let plain = !script.starts_with('-') && !script.contains(['{', '$', ' ']);
    let has_extension = Path::new(script).extension().is_some();
    if plain && has_extension && !workdir.join(script).exists() {
        return Err(format!(
            "`{script}` does not exist (in {}): every trial would fail running `{} {script}`",
            workdir.display(),
            argv[0]
        ));
    }
    Ok(())
}

/// Splits a command line into words: whitespace separates, quotes group, no expansion.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => word.extend(chars.next()),
                        Some(x) => word.push(x),
                        None => return Err(format!("unclosed {c} in the command")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Adds "did you mean" to serde's "unknown field `x`, expected one of `a`, `b`" and
/// "unknown variant" messages.
fn with_suggestion(message: &str) -> String {
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let is_unknown = message.starts_with("unknown field") || message.starts_with("unknown variant");
    match quoted.split_first() {
        Some((unknown, expected)) if is_unknown => match closest(unknown, expected.iter().copied())
        {
            Some(best) => format!("{message}; did you mean `{best}`?"),
            None => message.to_owned(),
        },
        _ => message.to_owned(),
    }
}

/// The candidate closest to `word` in edit distance, if close enough to be a typo.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The 1-based line where the dotted `key` is written in a YAML or TOML text, following
/// indentation for nested YAML keys; `None` when it cannot be found.
fn locate(text: &str, key: &str) -> Option<usize> {
    let parts: Vec<&str> = key
        .split('.')
        .filter(|p| !p.is_empty() && p.parse::<usize>().is_err())
        .collect();
    let mut line_no = 0;
    let mut min_indent = 0;
    let lines: Vec<&str> = text.lines().collect();
    let mut found = None;
    for part in &parts {
        let hit = lines
            .iter()
            .enumerate()
            .skip(line_no)
            .find_map(|(i, line)| {
                let indent = line.len() - line.trim_start().len();
                let trimmed = line.trim_start().trim_start_matches("- ");
                let is_key = trimmed.starts_with(&format!("{part}:"))
                    || trimmed.starts_with(&format!("{part} ="))
                    || trimmed.starts_with(&format!("{part}="))
                    || trimmed.starts_with(&format!("[{part}]"))
                    || trimmed.contains(&format!("{{{part}:"))
                    || trimmed.contains(&format!(", {part}:"))
                    || trimmed.starts_with(&format!("\"{part}\":"));
                (is_key && indent >= min_indent).then_some((i, indent))
            });
        match hit {
            Some((i, indent)) => {
                found = Some(i + 1);
                line_no = i;
                min_indent = indent;
            }
            None => break,
        }
    }
    found
}

#[cfg(test)]
mod tests;
