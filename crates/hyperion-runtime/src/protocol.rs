//! The trial protocol: what a trial that is a command receives, how it reports, how it ends.
//! Every dispatcher that runs commands (local processes now, Slurm jobs next) shares this
//! module unchanged; `docs/trial-protocol.md` is its user-facing description.
//!
//! - The argv comes from a template ([`render_argv`]): placeholders, `{args}`, shell quoting.
//! - The environment ([`environment`]): the trial's identity, params and directories.
//! - Metrics: JSON lines appended to `$HYPERION_METRICS_FILE` ([`MetricsTail`]), stdout lines
//!   with a prefix or matching a regex ([`parse_stdout`]).
//! - The end ([`outcome`]): exit 0 with every objective reported completes the trial.
//! - Checkpoints: `checkpoint/` in the trial's directory, a PBT child's `restore/`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use hyperion_core::{Params, StudySpec, Trial, TrialNumber};
use serde::{Deserialize, Serialize};

use crate::Outcome;
use crate::settings::seconds;

/// The default stdout prefix of metric lines: `HYPERION_METRIC {"step": 1, "loss": 0.5}`.
pub const DEFAULT_PREFIX: &str = "HYPERION_METRIC";

/// How trials run as commands: the trial template of a study's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// The argv template: `{name}` is a parameter's value, `{args}` expands to one
    /// `--name=value` element per active parameter (`{args_no_hyphens}`: `name=value`), `{trial_dir}`, `{trial_number}`,
    /// `{trial_id}` and `{study}` are the trial's; `{{` and `}}` are literal braces.
    pub argv: Vec<String>,
    /// Run `argv` joined by spaces through `sh -c`, with every substituted value quoted.
    pub shell: bool,
    /// Working directory of every trial.
    pub workdir: PathBuf,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Trial `n` gets the directory `trials_dir/n`. A property of the machine that runs the
    /// trials, not of the study: never recorded.
    #[serde(skip)]
    pub trials_dir: PathBuf,
    /// Trials running at once (default 1).
    pub max_concurrent: usize,
    /// A trial running longer is killed and failed.
    #[serde(with = "seconds::option")]
    pub trial_timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL when a trial is stopped.
    #[serde(with = "seconds")]
    pub kill_grace: Duration,
    /// GPU ids handed out through `CUDA_VISIBLE_DEVICES`, `gpus_per_trial` to each trial.
    pub gpus: Vec<String>,
    pub gpus_per_trial: usize,
    /// Stdout lines starting with this prefix carry a JSON object of metrics.
    pub stdout_prefix: String,
    /// A regex over stdout lines whose named groups are metrics (`step` is the step).
    pub stdout_regex: Option<MetricRegex>,
    /// Which dispatcher runs the trials: `local` (processes on this machine) or `slurm`.
    pub executor: String,
    /// How Slurm jobs are asked for (`executor: slurm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<crate::SlurmConfig>,
}

impl ProcessConfig {
    /// Defaults for everything but the command and the directories.
    pub fn new(argv: Vec<String>, workdir: PathBuf, trials_dir: PathBuf) -> Self {
        ProcessConfig {
            argv,
            shell: false,
            workdir,
            env: BTreeMap::new(),
            trials_dir,
            max_concurrent: 1,
            trial_timeout: None,
            kill_grace: Duration::from_secs(10),
            gpus: Vec::new(),
            gpus_per_trial: 0,
            stdout_prefix: DEFAULT_PREFIX.to_owned(),
            stdout_regex: None,
            executor: "local".to_owned(),
            slurm: None,
        }
    }
}

impl ProcessConfig {
    /// This template, checked, with its trials' directory absolute (trials run in `workdir`,
    /// so every path handed to them must be) and created: what every dispatcher starts from.
    pub(crate) fn ready(&self) -> Result<ProcessConfig, crate::Error> {
        if self.argv.is_empty() {
            return Err(crate::Error::Config("the command is empty".into()));
        }
        let mut config = self.clone();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| crate::Error::Io { path, source }
        };
        config.trials_dir =
            std::path::absolute(&config.trials_dir).map_err(io(&config.trials_dir))?;
        fs::create_dir_all(&config.trials_dir).map_err(io(&config.trials_dir))?;
        Ok(config)
    }
}

/// A compiled metric regex that travels as its pattern.
#[derive(Clone, Debug)]
pub struct MetricRegex(pub regex::Regex);

impl MetricRegex {
    /// Compiles a user's metric regex, within a size that keeps matching a line fast.
    pub fn new(pattern: &str) -> Result<Self, String> {
        regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map(MetricRegex)
            .map_err(|e| format!("invalid regex: {e}"))
    }
}

/// Lines longer than this are not matched against the user's regex: a regex with capture
/// groups costs the line's length times its own size, and metric lines are short.
pub const MAX_REGEX_LINE: usize = 64 * 1024;

impl PartialEq for MetricRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Serialize for MetricRegex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for MetricRegex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pattern = String::deserialize(d)?;
        MetricRegex::new(&pattern).map_err(serde::de::Error::custom)
    }
}

/// A metric record: the step it is at (when it says) and its numeric fields.
pub type Record = (Option<u64>, BTreeMap<String, f64>);

/// What a trial's template is filled with.
#[derive(Debug)]
pub struct Placeholders<'a> {
    pub params: &'a Params,
    /// The declared space: `{args}` lists its parameters in their declared order, then the
    /// define-by-run ones.
    pub space: &'a hyperion_core::SearchSpace,
    pub trial_dir: &'a Path,
    pub number: TrialNumber,
    pub id: u64,
    pub study: &'a str,
    /// More names a pipeline stage knows (`out`, `in.prepare`), with their values.
    pub extra: &'a [(String, String)],
}

/// The trial's argv from the template. With `shell`, the template is joined and run by
/// `sh -c`, every substituted value single-quoted.
pub fn render_argv(
    template: &[String],
    shell: bool,
    vars: &Placeholders<'_>,
) -> Result<Vec<String>, String> {
    let quote = |s: String| if shell { shell_quote(&s) } else { s };
    let declared = vars.space.params().iter().map(|p| p.name.as_str());
    let others = vars
        .params
        .keys()
        .map(String::as_str)
        .filter(|k| vars.space.get(k).is_none());
    let active: Vec<(&str, &hyperion_core::ParamValue)> = declared
        .chain(others)
        .filter_map(|k| Some((k, vars.params.get(k)?)))
        .collect();
    let args: Vec<String> = active
        .iter()
        .map(|(k, v)| quote(format!("--{k}={v}")))
        .collect();
    let bare: Vec<String> = active
        .iter()
        .map(|(k, v)| quote(format!("{k}={v}")))
        .collect();
    let mut argv = Vec::with_capacity(template.len() + args.len());
    for element in template {
        match element.as_str() {
            "{args}" => argv.extend(args.iter().cloned()),
            "{args_no_hyphens}" => argv.extend(bare.iter().cloned()),
            _ => argv.push(substitute(element, |name| {
                let value = match name {
                    "args" => args.join(" "),
                    "args_no_hyphens" => bare.join(" "),
                    "trial_dir" => vars.trial_dir.display().to_string(),
                    "trial_number" => vars.number.to_string(),
                    "trial_id" => vars.id.to_string(),
                    "study" => vars.study.to_owned(),
                    name if vars.extra.iter().any(|(k, _)| k == name) => vars
                        .extra
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default(),
                    // An inactive conditional parameter is empty.
                    name => vars
                        .params
                        .get(name)
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                };
                Ok(quote(value))
            })?),
        }
    }
    if shell {
        return Ok(vec!["sh".into(), "-c".into(), argv.join(" ")]);
    }
    Ok(argv)
}

/// Replaces every `{name}` in `text` with `value(name)`; `{{` and `}}` are literal braces.
pub fn substitute(
    text: &str,
    mut value: impl FnMut(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
        } else if let Some(stripped) = tail.strip_prefix('{') {
            let end = stripped
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in `{text}`"))?;
            out.push_str(&value(&stripped[..end])?);
            rest = &stripped[end + 1..];
        } else {
            return Err(format!(
                "unmatched `}}` in `{text}` (write `}}}}` for a brace)"
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `s` as one word for `sh`: single-quoted, each `'` written as `'\\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// How many of its last stderr lines a failed trial's error quotes.
pub const STDERR_TAIL: usize = 20;

/// A trial ready to start: its directory made, its argv rendered.
#[derive(Debug)]
pub struct Prepared {
    pub dir: PathBuf,
    /// A PBT child's copy of its parent's checkpoint.
    pub restore: Option<PathBuf>,
    pub argv: Vec<String>,
}

/// Makes `trial`'s directory ([`prepare_dir`]) and renders its argv from `config`'s template.
pub fn prepare(
    config: &ProcessConfig,
    study: &str,
    trial: &Trial,
    space: &hyperion_core::SearchSpace,
) -> Result<Prepared, String> {
    let (dir, restore) = prepare_dir(&config.trials_dir, trial).map_err(|e| {
        let dir = trial_dir(&config.trials_dir, trial.number);
        format!("cannot prepare {}: {e}", dir.display())
    })?;
    let vars = Placeholders {
        params: &trial.params,
        space,
        trial_dir: &dir,
        number: trial.number,
        id: trial.id.0,
        study,
        extra: &[],
    };
    let argv = render_argv(&config.argv, config.shell, &vars)?;
    Ok(Prepared { dir, restore, argv })
}

/// Reads one stdout line of a trial into its metric records.
pub type Parse = Box<dyn Fn(&str) -> Vec<Result<Record, Malformed>> + Send>;

/// The stdout reader of `config`'s prefix and regex, for records that report `objectives`.
pub fn stdout_parser(config: &ProcessConfig, objectives: Vec<String>) -> Parse {
    let prefix = config.stdout_prefix.clone();
    let regex = config.stdout_regex.as_ref().map(|r| r.0.clone());
    Box::new(move |line: &str| parse_stdout(line, &prefix, regex.as_ref(), &objectives))
}

/// The metric records a finished stage left in `dir`: its metrics file's, then the metric lines
/// of its `stdout.log`.
pub fn records_in(
    dir: &Path,
    config: &ProcessConfig,
    objectives: &[String],
) -> Vec<Result<Record, Malformed>> {
    let mut records = MetricsTail::new(dir.join("metrics.jsonl"), objectives.to_vec()).read();
    let parse = stdout_parser(config, objectives.to_vec());
    let stdout = std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
    records.extend(stdout.lines().flat_map(&parse));
    records
}

/// The last lines of a trial's stderr for its error: the last one first (it usually says what
/// went wrong), then the tail; empty without stderr.
pub fn stderr_summary(tail: &[String]) -> String {
    match tail.last() {
        None => String::new(),
        Some(last) => format!(
            ": {last}\n--- last lines of stderr ---\n{}",
            tail.join("\n")
        ),
    }
}

/// The directory a launch recorded, when it is on this machine and still there: where its
/// files (logs, checkpoints) can be read.
pub fn dir_here(launch: &hyperion_core::Launch) -> Option<&Path> {
    let dir = Path::new(launch.dir.as_deref()?);
    (launch.host == crate::this_host() && dir.is_dir()).then_some(dir)
}

/// The last `lines` lines of the `stderr.log` in a trial's directory, read from its last 64 KiB
/// however long the log is; `None` without the file.
pub fn stderr_tail(dir: &Path, lines: usize) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(dir.join("stderr.log")).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))
        .ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    Some(all[all.len().saturating_sub(lines)..].join("\n"))
}

/// Where trial `number` keeps its files.
pub fn trial_dir(trials_dir: &Path, number: TrialNumber) -> PathBuf {
    trials_dir.join(number.to_string())
}

/// The environment a trial gets besides the template's `env`.
pub fn environment(
    study: &str,
    trial: &Trial,
    dir: &Path,
    restore: Option<&Path>,
) -> Vec<(&'static str, std::ffi::OsString)> {
    let mut env = vec![
        ("HYPERION_STUDY", study.into()),
        ("HYPERION_TRIAL_ID", trial.id.0.to_string().into()),
        ("HYPERION_TRIAL_NUMBER", trial.number.to_string().into()),
        (
            "HYPERION_PARAMS",
            serde_json::to_string(&*trial.params)
                .unwrap_or_default()
                .into(),
        ),
        ("HYPERION_TRIAL_DIR", dir.into()),
        ("HYPERION_METRICS_FILE", dir.join("metrics.jsonl").into()),
        ("HYPERION_CHECKPOINT_DIR", dir.join("checkpoint").into()),
    ];
    if let Some(restore) = restore {
        env.push(("HYPERION_RESTORE_FROM", restore.into()));
    }
    env
}

/// A trial's logs, which exist once something is written to them.
const LOGS: [&str; 2] = ["stdout.log", "stderr.log"];

/// Creates trial `trial`'s directory: `checkpoint/`, `params.json`, an empty metrics file, and
/// for a PBT child `restore/` with its parent's checkpoint (unless the run that decided the
/// exploit copied it then). Returns the directory and the child's restore directory.
pub fn prepare_dir(
    trials_dir: &Path,
    trial: &Trial,
) -> std::io::Result<(PathBuf, Option<PathBuf>)> {
    let dir = trial_dir(trials_dir, trial.number);
    fs::create_dir_all(dir.join("checkpoint"))?;
    let restore = trial.parent.map(|_| restore_dir(trials_dir, trial.number));
    if let (Some(restore), Some(parent)) = (&restore, trial.parent)
        && !restore.exists()
    {
        copy_checkpoint(trials_dir, parent, trial.number)?;
    }
    fs::write(
        dir.join("params.json"),
        serde_json::to_vec_pretty(&*trial.params).unwrap_or_default(),
    )?;
    // Scripts may open it without creating it.
    File::create(dir.join("metrics.jsonl"))?;
    // The logs are created at their first line (a new file is the dearest step of a launch),
    // so none may be left by an earlier study of the same name.
    for log in LOGS {
        match fs::remove_file(dir.join(log)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok((dir, restore))
}

/// Where trial `child` finds its parent's checkpoint (`HYPERION_RESTORE_FROM`).
fn restore_dir(trials_dir: &Path, child: TrialNumber) -> PathBuf {
    trial_dir(trials_dir, child).join("restore")
}

/// Copies trial `parent`'s checkpoint to where its child restores it from.
pub fn copy_checkpoint(
    trials_dir: &Path,
    parent: TrialNumber,
    child: TrialNumber,
) -> std::io::Result<()> {
    let from = trial_dir(trials_dir, parent).join("checkpoint");
    copy_dir(&from, &restore_dir(trials_dir, child))
}

/// Copies the directory tree `from` to `to` (an absent `from` gives an empty `to`).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    let Ok(entries) = fs::read_dir(from) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// What a metric line that cannot be read was, and why.
pub type Malformed = (String, String);

/// Metrics in a stdout line: a prefixed JSON object, or the named groups of the regex. A
/// prefixed line that is not a record is an `Err` with the line and why.
pub fn parse_stdout(
    line: &str,
    prefix: &str,
    regex: Option<&regex::Regex>,
    objectives: &[String],
) -> Vec<Result<Record, Malformed>> {
    let mut found = Vec::new();
    if let Some(json) = line.strip_prefix(prefix) {
        let json = json.trim_start_matches(':').trim();
        found.push(read_record_of(json, objectives).map_err(|why| (line.to_owned(), why)));
    }
    if let Some(regex) = regex
        && line.len() <= MAX_REGEX_LINE
        && let Some(caps) = regex.captures(line)
    {
        let mut metrics = BTreeMap::new();
        let mut step = None;
        for name in regex.capture_names().flatten() {
            let Some(value) = caps
                .name(name)
                .and_then(|m| m.as_str().trim().parse::<f64>().ok())
            else {
                continue;
            };
            if name == "step" {
                step = as_step(value);
            } else {
                metrics.insert(name.to_owned(), value);
            }
        }
        if !metrics.is_empty() {
            found.push(Ok((step, metrics)));
        }
    }
    found
}

/// A step is a whole number of at least 0.
fn as_step(value: f64) -> Option<u64> {
    (value >= 0.0 && value.fract() == 0.0 && value < u64::MAX as f64).then_some(value as u64)
}

/// [`read_record`], and a line whose objective is not a number (`"loss": "abc"`, a list) is
/// malformed too: the value the trial meant to report would be lost without a word.
pub fn read_record_of(text: &str, objectives: &[String]) -> Result<Record, String> {
    let record = read_record(text)?;
    for metric in objectives.iter().filter(|m| !record.1.contains_key(*m)) {
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text.trim()).unwrap_or_default();
        if let Some(value) = object.get(metric) {
            return Err(format!("objective `{metric}` is {value}, not a number"));
        }
    }
    Ok(record)
}

/// A JSON object of metrics, `step` apart, or `None` when the text is not one.
pub fn parse_record(text: &str) -> Option<Record> {
    read_record(text).ok()
}

/// A JSON object of metrics, `step` apart: numbers (and strings of numbers) are metrics,
/// other fields are ignored; `NaN` and `Infinity` (as Python's json writes them) are read as
/// such. An `Err` says why the text is not a record: not a JSON object, invalid JSON, or a
/// `step` that is not a whole number of at least 0.
pub fn read_record(text: &str) -> Result<Record, String> {
    let text = text.trim();
    if !text.starts_with('{') {
        return Err("not a JSON object".into());
    }
    let fixed;
    let text = if text.contains("NaN") || text.contains("Infinity") {
        fixed = text
            .replace("-Infinity", "\"-inf\"")
            .replace("Infinity", "\"inf\"")
            .replace("NaN", "\"nan\"");
        fixed.as_str()
    } else {
        text
    };
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?;
    let mut step = None;
    let mut metrics = BTreeMap::new();
    for (key, value) in object {
        let number = match &value {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.parse::<f64>().ok(),
            _ => None,
        };
        match (key.as_str(), number) {
            ("step", n) => {
                step = Some(n.and_then(as_step).ok_or_else(|| {
                    format!("`step` must be a whole number of at least 0, not {value}")
                })?);
            }
            (_, Some(n)) => {
                metrics.insert(key, n);
            }
            _ => {}
        }
    }
    Ok((step, metrics))
}

/// Follows a file that something appends lines to: each read returns the whole lines appended
/// since the last one (a line still being written waits for its end).
#[derive(Debug)]
pub struct LineTail {
    path: PathBuf,
    read: u64,
}

impl LineTail {
    pub fn new(path: PathBuf) -> Self {
        LineTail { path, read: 0 }
    }

    /// The new whole lines (none while the file does not exist).
    pub fn lines(&mut self) -> Vec<String> {
        let Ok(mut file) = File::open(&self.path) else {
            return Vec::new();
        };
        let Ok(len) = file.metadata().map(|m| m.len()) else {
            return Vec::new();
        };
        if len <= self.read {
            return Vec::new();
        }
        let mut buf = Vec::new();
        if file.seek(SeekFrom::Start(self.read)).is_err() || file.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.read += complete as u64;
        String::from_utf8_lossy(&buf[..complete])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Everything after the last whole line: what a process that ended left unterminated.
    pub fn rest(&mut self) -> Option<String> {
        let mut file = File::open(&self.path).ok()?;
        let mut buf = Vec::new();
        file.seek(SeekFrom::Start(self.read)).ok()?;
        file.read_to_end(&mut buf).ok()?;
        self.read += buf.len() as u64;
        let text = String::from_utf8_lossy(&buf).trim_end().to_owned();
        (!text.is_empty()).then_some(text)
    }
}

/// Follows a trial's metrics file: each read returns the records of the whole lines appended
/// since the last one.
#[derive(Debug)]
pub struct MetricsTail {
    lines: LineTail,
    objectives: Vec<String>,
}

impl MetricsTail {
    /// Follows `path`, where records report `objectives` (among other metrics).
    pub fn new(path: PathBuf, objectives: Vec<String>) -> Self {
        MetricsTail {
            lines: LineTail::new(path),
            objectives,
        }
    }

    /// The new records, and the lines that were not records with why.
    pub fn read(&mut self) -> Vec<Result<Record, Malformed>> {
        self.lines
            .lines()
            .iter()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                read_record_of(line, &self.objectives).map_err(|why| (line.to_owned(), why))
            })
            .collect()
    }
}

/// What a trial reported so far: the last value of every metric, and the step a record
/// without one is at.
#[derive(Debug, Default)]
pub struct Reported {
    pub last: BTreeMap<String, f64>,
    next_step: u64,
}

impl Reported {
    /// Takes in a record; returns its step and the objectives' intermediate values: every
    /// objective's when the record has them all, else the first one's, else none (finite
    /// values only: the final value decides what a NaN means).
    pub fn take(&mut self, spec: &StudySpec, record: Record) -> (u64, Vec<f64>) {
        let (step, metrics) = record;
        let step = step.unwrap_or(self.next_step);
        self.next_step = step.saturating_add(1);
        let objectives = &spec.objectives;
        let mut values: Vec<f64> = objectives
            .iter()
            .map_while(|o| metrics.get(&o.metric).copied().filter(|v| v.is_finite()))
            .collect();
        if values.len() != objectives.len() {
            values.truncate(1);
        }
        self.last.extend(metrics);
        (step, values)
    }
}

/// How a trial process that exited on its own ends: a signal or a non-zero exit fails it
/// (with the last lines of its stderr), exit 0 completes it with the last value of every
/// objective, and fails it when one was never reported.
pub fn outcome(
    spec: &StudySpec,
    reported: &Reported,
    status: &std::io::Result<ExitStatus>,
    stderr_tail: &[String],
) -> Outcome {
    let tail = || stderr_summary(stderr_tail);
    let failed = |error: String| Outcome::Failed { error };
    let status = match status {
        Ok(status) => status,
        Err(e) => return failed(format!("cannot wait for the trial process: {e}")),
    };
    if let Some(signal) = status.signal() {
        return failed(format!("killed by signal {signal}{}", tail()));
    }
    if !status.success() {
        return failed(format!(
            "exit code {}{}",
            status.code().unwrap_or(-1),
            tail()
        ));
    }
    let mut values = Vec::new();
    for objective in &spec.objectives {
        match reported.last.get(&objective.metric) {
            Some(&v) => values.push(v),
            None => {
                return failed(format!(
                    "metric \"{}\" was never reported (append {{\"{}\": …}} to $HYPERION_METRICS_FILE, or print a \
                     `{DEFAULT_PREFIX} {{…}}` line)",
                    objective.metric, objective.metric
                ));
            }
        }
    }
    Outcome::Completed(values)
}

/// `90s`, `2m30s`, `1h`: for messages.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitute_replaces_names_and_keeps_escaped_braces() {
        let got = substitute("--lr={lr} {{x}}", |n| Ok(format!("<{n}>"))).unwrap();
        assert_eq!(got, "--lr=<lr> {x}");
        assert!(
            substitute("{lr", |_| Ok(String::new()))
                .unwrap_err()
                .contains("unclosed")
        );
    }

    #[test]
    fn records_parse_json_and_python_nan() {
        let (step, m) = parse_record(r#"{"step": 3, "val_loss": 0.21, "note": "x"}"#).unwrap();
        assert_eq!((step, m.len(), m["val_loss"]), (Some(3), 1, 0.21));
        let (_, m) = parse_record(r#"{"loss": NaN}"#).unwrap();
        assert!(m["loss"].is_nan());
        assert!(parse_record("epoch 3 done").is_none());
    }

    #[test]
    fn args_follow_the_declared_order_then_define_by_run_names() {
        use hyperion_core::{FloatDistribution, ParamValue};
        let space = hyperion_core::SearchSpace::builder()
            .param("lr", FloatDistribution::new(0.0, 1.0))
            .param("layers", FloatDistribution::new(0.0, 9.0))
            .build()
            .unwrap();
        let params = Params::from([
            ("layers".to_owned(), ParamValue::Float(3.0)),
            ("lr".to_owned(), ParamValue::Float(0.5)),
            ("extra".to_owned(), ParamValue::Float(1.0)),
        ]);
        let vars = Placeholders {
            params: &params,
            space: &space,
            trial_dir: Path::new("/t"),
            number: TrialNumber(0),
            id: 1,
            study: "s",
            extra: &[],
        };
        let argv = render_argv(&["run".into(), "{args}".into()], false, &vars).unwrap();
        assert_eq!(argv, ["run", "--lr=0.5", "--layers=3", "--extra=1"]);
    }

    #[test]
    fn a_step_is_a_whole_number_of_at_least_zero() {
        for bad in ["-1", "2.5", "1e30", "\"three\""] {
            let e = read_record(&format!(r#"{{"step": {bad}, "x": 1}}"#)).unwrap_err();
            assert!(
                e.contains("`step` must be a whole number"),
                "step {bad}: {e}"
            );
        }
        assert!(
            read_record(r#"{"loss": 0.5"#)
                .unwrap_err()
                .starts_with("not valid JSON")
        );
        assert_eq!(read_record("epoch 3").unwrap_err(), "not a JSON object");
    }
}
