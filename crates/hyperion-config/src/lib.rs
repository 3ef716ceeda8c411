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
    /// How trials run; `trials_dir` is left empty for the caller to set (it follows the store).
    pub process: ProcessConfig,
    pub storage: Option<String>,
    /// The `early_stopping` section: when running trials stop (none when absent).
    pub early_stopping: SchedulerConfig,
    /// Things the user should know (a W&B method mapped onto another, …).
    pub notes: Vec<String>,
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
    if wandb::is_wandb(&tree) {
        tree = wandb::convert(tree, &mut notes)
            .map_err(|(key, message)| ConfigError::at(path, &text, &key, message))?;
    }
    for o in overrides {
        layers::apply_override(&mut tree, o).map_err(|message| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: o.split_once('=').map(|(k, _)| k.to_owned()),
            message: format!("{message} (command-line override)"),
        })?;
    }
    build(path, &text, tree, notes)
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
    command: RawCommand,
    #[serde(default)]
    shell: bool,
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
    recovery: RawRecovery,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRecovery {
    heartbeat: Option<DurationText>,
    grace: Option<DurationText>,
    max_retries: Option<u32>,
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

fn build(
    path: &Path,
    text: &str,
    tree: Value,
    notes: Vec<String>,
) -> Result<StudyFile, ConfigError> {
    let raw: Raw = serde_path_to_error::deserialize(tree).map_err(|e| {
        let key = e.path().to_string();
        let message = with_suggestion(&e.inner().to_string());
        let key = if key == "." { None } else { Some(key) };
        let line = key.as_deref().and_then(|k| locate(text, k));
        ConfigError {
            file: path.to_path_buf(),
            line,
            key,
            message,
        }
    })?;
    let at = |key: &str, message: String| ConfigError::at(path, text, key, message);
    let _ = raw.description;

    let space = space_from_map(&raw.parameters).map_err(|(key, message)| at(&key, message))?;
    let metrics = match (raw.metric, raw.metrics) {
        (Some(_), Some(_)) => {
            return Err(at("metrics", "give `metric` or `metrics`, not both".into()));
        }
        (Some(m), None) => vec![m],
        (None, Some(ms)) if !ms.is_empty() => ms,
        _ => {
            return Err(ConfigError::file(
                path,
                "no metric: add `metric: {name: val_loss, goal: minimize}`".into(),
            ));
        }
    };
    let objectives: Vec<Objective> = metrics
        .into_iter()
        .map(|m| Objective {
            metric: m.name,
            direction: m.goal,
        })
        .collect();
    let spec = StudySpec::new(&raw.name, objectives, space);
    spec.validate().map_err(|e| at("name", e.to_string()))?;

    let sampler = match raw.method {
        Method::Random => SamplerConfig::Random,
        Method::Sobol => SamplerConfig::Sobol,
        Method::Tpe => SamplerConfig::Tpe(raw.tpe),
        Method::Grid => {
            let SamplerConfig::Grid { points, .. } = SamplerConfig::grid() else {
                unreachable!()
            };
            SamplerConfig::Grid {
                points: raw.grid.points.unwrap_or(points),
                values: raw.grid.values,
            }
        }
    };
    if let SamplerConfig::Tpe(tpe) = &sampler {
        tpe.validate().map_err(|e| at("tpe", e.to_string()))?;
    }
    if let SamplerConfig::Grid { points, values } = &sampler {
        hyperion_samplers::GridSampler::new(*points, values.clone())
            .and_then(|g| g.size(&spec.space))
            .map_err(|e| at("grid", e.to_string()))?;
    }

    let duration = |key: &str, d: &Option<DurationText>| {
        d.as_ref()
            .map(|d| d.parse().map_err(|e| at(key, e)))
            .transpose()
    };
    let mut budget = Budget {
        max_trials: raw.budget.max_trials,
        max_time: duration("budget.max_time", &raw.budget.max_time)?,
        target: raw.budget.target,
        max_failures: raw.budget.max_failures,
    };
    if budget.target.is_some() && spec.objectives.len() != 1 {
        return Err(at(
            "budget.target",
            "a target needs exactly one metric".into(),
        ));
    }

    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let workdir = raw.workdir.map(|w| dir.join(w)).unwrap_or(dir);
    let argv = match raw.command {
        RawCommand::Argv(argv) => argv,
        RawCommand::Line(line) if raw.shell => vec![line],
        RawCommand::Line(line) => split_words(&line).map_err(|e| at("command", e))?,
    };
    if argv.is_empty() || argv[0].trim().is_empty() {
        return Err(at("command", "the command is empty".into()));
    }
    if !workdir.is_dir() {
        return Err(at(
            "workdir",
            format!("{} is not a directory", workdir.display()),
        ));
    }
    check_placeholders(&argv, &spec).map_err(|e| at("command", e))?;
    if !raw.shell {
        check_program(&argv[0], &workdir).map_err(|e| at("command", e))?;
    }

    let gpus: Vec<String> = match raw.resources.gpus {
        None => Vec::new(),
        // A count names the GPUs 0..n: far beyond any machine it is a typo, and would not fit
        // in memory.
        Some(Gpus::Count(n)) if n > MAX_GPUS => {
            return Err(at(
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
    let gpus_per_trial = raw
        .resources
        .gpus_per_trial
        .unwrap_or(usize::from(!gpus.is_empty()));
    if gpus_per_trial > gpus.len() {
        return Err(at(
            "resources.gpus_per_trial",
            format!(
                "{gpus_per_trial} GPUs per trial, but only {} listed in resources.gpus",
                gpus.len()
            ),
        ));
    }
    let max_concurrent = raw.resources.max_concurrent.unwrap_or(1);
    if max_concurrent == 0 {
        return Err(at("resources.max_concurrent", "must be at least 1".into()));
    }
    let stdout_regex = raw
        .report
        .regex
        .map(|r| {
            regex::Regex::new(&r).map_err(|e| at("report.regex", format!("invalid regex: {e}")))
        })
        .transpose()?;
    let mut process = ProcessConfig::new(argv, workdir, PathBuf::new());
    process.shell = raw.shell;
    process.env = raw.env;
    process.max_concurrent = max_concurrent;
    process.trial_timeout = duration("resources.trial_timeout", &raw.resources.trial_timeout)?;
    if let Some(grace) = duration("resources.kill_grace", &raw.resources.kill_grace)? {
        process.kill_grace = grace;
    }
    process.gpus = gpus;
    process.gpus_per_trial = gpus_per_trial;
    if let Some(prefix) = raw.report.prefix {
        process.stdout_prefix = prefix;
    }
    process.stdout_regex = stdout_regex;
    let early_stopping = raw.early_stopping.unwrap_or(SchedulerConfig::None);
    early_stopping
        .build(0)
        .map_err(|e| at("early_stopping", e.to_string()))?;
    if let SchedulerConfig::Pbt(pbt) = &early_stopping
        && let Some(population) = pbt.population_size
    {
        // Members are compared while they run: the whole population runs at once.
        let budget_trials = budget.max_trials.get_or_insert(population);
        if *budget_trials < population {
            return Err(at(
                "budget.max_trials",
                format!("{budget_trials} trials cannot hold a PBT population of {population}"),
            ));
        }
        match raw.resources.max_concurrent {
            None => process.max_concurrent = population as usize,
            Some(n) if (n as u64) < population => {
                return Err(at(
                    "resources.max_concurrent",
                    format!(
                        "{n} trials at once cannot hold a PBT population of {population}: its \
                         members are compared while they run"
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    let defaults = Recovery::default();
    process.recovery = Recovery {
        heartbeat: duration("recovery.heartbeat", &raw.recovery.heartbeat)?
            .unwrap_or(defaults.heartbeat),
        grace: duration("recovery.grace", &raw.recovery.grace)?.unwrap_or(defaults.grace),
        max_retries: raw.recovery.max_retries.unwrap_or(defaults.max_retries),
    };
    if process.recovery.grace <= process.recovery.heartbeat {
        return Err(at(
            "recovery.grace",
            "must be longer than recovery.heartbeat".into(),
        ));
    }

    Ok(StudyFile {
        path: path.to_path_buf(),
        spec,
        sampler,
        seed: raw.seed,
        budget,
        process,
        storage: raw.storage,
        early_stopping,
        notes,
    })
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
