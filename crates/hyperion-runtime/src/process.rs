//! Trials as local processes: the trial protocol.
//!
//! A trial is a process started from an argv template, in its own process group, never through
//! a shell unless asked (then every value is quoted). Its stdout and stderr are read by one
//! thread each, which write them to `stdout.log` and `stderr.log` in the trial's directory and
//! look for metric lines; a waiter thread reaps it. Those threads feed one channel, so the
//! controller loop sleeps until something happens: an exit, a line, a deadline.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyperion_core::{Event, Params, StopReason};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::{ActiveTrial, Budget, Error, Outcome, Recovery, Study, Summary};

/// Lines of stderr kept for a failed trial's error.
const STDERR_TAIL: usize = 20;
/// The longest the loop sleeps while trials run (to read metrics files and check deadlines).
const TICK: Duration = Duration::from_millis(200);

/// How trials run as processes. Built from a study file by the `hyperion` command.
#[derive(Clone, Debug)]
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
    /// Trial `n` gets the directory `trials_dir/n`.
    pub trials_dir: PathBuf,
    /// Trials running at once (default 1).
    pub max_concurrent: usize,
    /// A trial running longer is killed and failed.
    pub trial_timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL when a trial is stopped.
    pub kill_grace: Duration,
    /// GPU ids handed out through `CUDA_VISIBLE_DEVICES`, `gpus_per_trial` to each trial.
    pub gpus: Vec<String>,
    pub gpus_per_trial: usize,
    /// Stdout lines starting with this prefix carry a JSON object of metrics.
    pub stdout_prefix: String,
    /// A regex over stdout lines whose named groups are metrics (`step` is the step).
    pub stdout_regex: Option<regex::Regex>,
    pub recovery: Recovery,
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
            recovery: Recovery::default(),
        }
    }
}

/// The default stdout prefix of metric lines: `HYPERION_METRIC {"step": 1, "loss": 0.5}`.
pub const DEFAULT_PREFIX: &str = "HYPERION_METRIC";

/// Asks a running [`Study::run_processes`] to stop, from another thread (a Ctrl-C handler, a
/// `hyperion stop` seen in the store).
#[derive(Clone, Debug, Default)]
pub struct RunControl(Arc<AtomicU8>);

impl RunControl {
    /// Start no more trials; running ones finish.
    pub fn stop(&self) {
        self.0.fetch_max(1, Ordering::SeqCst);
    }
    /// Start no more trials and kill the running ones (SIGTERM, then SIGKILL).
    pub fn kill(&self) {
        self.0.fetch_max(2, Ordering::SeqCst);
    }
    fn level(&self) -> u8 {
        self.0.load(Ordering::SeqCst)
    }
}

enum Message {
    Line {
        number: u64,
        stderr: bool,
        line: String,
    },
    Exited {
        number: u64,
        status: std::io::Result<ExitStatus>,
    },
}

struct Running<'s> {
    trial: ActiveTrial<'s>,
    pgid: Pid,
    started: Instant,
    gpus: Vec<String>,
    metrics_file: PathBuf,
    metrics_read: u64,
    /// The last value of every metric reported, and the next step for records without one.
    last: BTreeMap<String, f64>,
    next_step: u64,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// When SIGTERM was sent, and how the trial ends.
    terminated: Option<(Instant, Ending)>,
}

/// How a trial that was sent SIGTERM ends, whatever its exit status.
#[derive(Clone, Debug)]
enum Ending {
    /// The scheduler stopped it.
    Pruned(String),
    /// A timeout or a stopped run.
    Failed(String),
}

impl Study {
    /// Runs the study's trials as processes (see [`ProcessConfig`]) until the budget is spent,
    /// the sampler is exhausted or `control` stops it. The study stays resumable whatever
    /// happens: rerunning continues it.
    pub fn run_processes(
        &self,
        config: &ProcessConfig,
        budget: &Budget,
        control: &RunControl,
    ) -> Result<Summary, Error> {
        if config.argv.is_empty() {
            return Err(Error::Config("the command is empty".into()));
        }
        if config.gpus_per_trial > config.gpus.len() {
            return Err(Error::Config(format!(
                "gpus_per_trial is {} but only {} GPUs are listed",
                config.gpus_per_trial,
                config.gpus.len()
            )));
        }
        // Trials run in `workdir`: every path handed to them must be absolute.
        let mut config = config.clone();
        config.trials_dir =
            std::path::absolute(&config.trials_dir).map_err(|e| io_error(&config.trials_dir, e))?;
        let config = &config;
        fs::create_dir_all(&config.trials_dir).map_err(|e| io_error(&config.trials_dir, e))?;
        self.catch_up()?;
        self.sync()?.set_total(budget.max_trials);
        self.bus.publish(&Event::StudyStarted {
            study: self.name().to_owned(),
        });

        let started = Instant::now();
        let (tx, rx) = mpsc::channel();
        let mut running: HashMap<u64, Running<'_>> = HashMap::new();
        let mut free_gpus: VecDeque<String> = config.gpus.iter().cloned().collect();
        let mut stop: Option<StopReason> = None;
        let mut budget_spent = false;
        let mut trials_run = 0;
        let mut last_beat = Instant::now();
        self.keep_alive(&[], &config.recovery)?;

        loop {
            // 1. Stop requests and budget limits.
            match control.level() {
                0 => {}
                1 => {
                    stop.get_or_insert(StopReason::Stopped);
                }
                _ => {
                    stop.get_or_insert(StopReason::Stopped);
                    for r in running.values_mut() {
                        terminate(r, Ending::Failed("killed: the run was stopped".into()));
                    }
                }
            }
            {
                let view = self.sync()?;
                if stop.is_none()
                    && let Some(reason) = budget.reached(&view, started)
                {
                    stop = Some(reason);
                }
                // A spent budget still runs pending trials (retries, PBT children) at once.
                if view.counts().pending > 0 {
                    budget_spent = false;
                }
            }

            // 2. Launch while there is room.
            while stop.is_none()
                && !budget_spent
                && running.len() < config.max_concurrent.max(1)
                && free_gpus.len() >= config.gpus_per_trial
            {
                match self.ask_within(budget.max_trials, true) {
                    Ok(Some(trial)) => {
                        let gpus: Vec<String> = free_gpus.drain(..config.gpus_per_trial).collect();
                        trials_run += 1;
                        match launch(self, config, trial, gpus, &tx) {
                            Ok(r) => {
                                running.insert(r.trial.number(), r);
                            }
                            Err((number, gpus, error)) => {
                                free_gpus.extend(gpus);
                                self.tell(number, Outcome::Failed { error })?;
                            }
                        }
                    }
                    Ok(None) => budget_spent = true,
                    Err(Error::Exhausted) => stop = Some(StopReason::SpaceExhausted),
                    Err(e) => {
                        kill_all(&mut running);
                        return Err(e);
                    }
                }
            }

            // 3. Done when nothing runs here and nothing more will start.
            if running.is_empty() {
                if stop.is_some() {
                    break;
                }
                if budget_spent {
                    let counts = self.sync()?.counts();
                    if counts.running == 0 && counts.pending == 0 {
                        stop = Some(StopReason::MaxTrials);
                        break;
                    }
                    // Another run's trials may still come back as retries: wait for them.
                    budget_spent = false;
                    std::thread::sleep(TICK);
                    continue;
                }
            }

            // 4. Wait for something to happen.
            let wait = next_deadline(&running, config).map_or(TICK, |d| d.min(TICK));
            match rx.recv_timeout(wait) {
                Ok(Message::Line {
                    number,
                    stderr,
                    line,
                }) => {
                    if let Some(r) = running.get_mut(&number) {
                        if !stderr {
                            for (step, metrics) in parse_stdout(&line, config) {
                                record(r, step, metrics)?;
                            }
                        }
                        self.bus.publish(&Event::TrialOutput {
                            number,
                            stderr,
                            line,
                        });
                    }
                }
                Ok(Message::Exited { number, status }) => {
                    if let Some(mut r) = running.remove(&number) {
                        read_metrics_file(&mut r)?;
                        let outcome = outcome(self, &r, status);
                        free_gpus.extend(r.gpus.drain(..));
                        drop(r.trial);
                        match self.tell(number, outcome) {
                            Err(e) if !e.settled_elsewhere() => return Err(e),
                            _ => {}
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => unreachable!("the loop holds a sender"),
            }

            // 5. Metrics files, deadlines, heartbeats.
            for r in running.values_mut() {
                read_metrics_file(r)?;
                if let Some(limit) = config.trial_timeout
                    && r.started.elapsed() >= limit
                {
                    terminate(
                        r,
                        Ending::Failed(format!("timed out after {}", human(limit))),
                    );
                }
                if let Some((at, _)) = &r.terminated
                    && at.elapsed() >= config.kill_grace
                {
                    let _ = killpg(r.pgid, Signal::SIGKILL);
                }
            }
            if last_beat.elapsed() >= config.recovery.heartbeat {
                let mine: Vec<u64> = running.keys().copied().collect();
                self.keep_alive(&mine, &config.recovery)?;
                last_beat = Instant::now();
            }
        }

        let reason = stop.unwrap_or(StopReason::Stopped);
        self.bus.publish(&Event::StudyCompleted {
            study: self.name().to_owned(),
            reason: reason.clone(),
        });
        Ok(Summary {
            reason,
            trials_run,
            best: self.best_trial()?,
        })
    }
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Config(format!("{}: {e}", path.display()))
}

/// Starts trial `trial`; on failure gives back its number, GPUs and the reason.
fn launch<'s>(
    study: &'s Study,
    config: &ProcessConfig,
    trial: ActiveTrial<'s>,
    gpus: Vec<String>,
    tx: &Sender<Message>,
) -> Result<Running<'s>, (u64, Vec<String>, String)> {
    let number = trial.number();
    let dir = config.trials_dir.join(number.to_string());
    let restore = trial
        .trial()
        .parent
        .map(|_| restore_dir(&config.trials_dir, number));
    let prepared = (|| -> std::io::Result<(File, File, PathBuf)> {
        fs::create_dir_all(dir.join("checkpoint"))?;
        if let (Some(restore), Some(parent)) = (&restore, trial.trial().parent) {
            // Copied when the parent was exploited, by the run that decided it; a child another
            // run created gets the parent's checkpoint as it is now.
            if !restore.exists() {
                copy_checkpoint(&config.trials_dir, parent, number)?;
            }
        }
        fs::write(
            dir.join("params.json"),
            serde_json::to_vec_pretty(trial.params()).unwrap_or_default(),
        )?;
        let metrics = dir.join("metrics.jsonl");
        File::create(&metrics)?;
        Ok((
            File::create(dir.join("stdout.log"))?,
            File::create(dir.join("stderr.log"))?,
            metrics,
        ))
    })();
    let (stdout_log, stderr_log, metrics_file) = match prepared {
        Ok(files) => files,
        Err(e) => {
            return Err((
                number,
                gpus,
                format!("cannot prepare {}: {e}", dir.display()),
            ));
        }
    };
    let vars = Placeholders {
        params: trial.params(),
        trial_dir: &dir,
        number,
        id: trial.trial().id.0,
        study: study.name(),
    };
    let argv = match render_argv(&config.argv, config.shell, &vars) {
        Ok(argv) => argv,
        Err(e) => return Err((number, gpus, e)),
    };
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .current_dir(&config.workdir)
        .envs(&config.env)
        .env("HYPERION_STUDY", study.name())
        .env("HYPERION_TRIAL_ID", trial.trial().id.0.to_string())
        .env("HYPERION_TRIAL_NUMBER", number.to_string())
        .env(
            "HYPERION_PARAMS",
            serde_json::to_string(trial.params()).unwrap_or_default(),
        )
        .env("HYPERION_TRIAL_DIR", &dir)
        .env("HYPERION_METRICS_FILE", &metrics_file)
        .env("HYPERION_CHECKPOINT_DIR", dir.join("checkpoint"))
        .envs(restore.iter().map(|r| ("HYPERION_RESTORE_FROM", r)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if !gpus.is_empty() {
        command.env("CUDA_VISIBLE_DEVICES", gpus.join(","));
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Err((number, gpus, format!("cannot start `{}`: {e}", argv[0]))),
    };
    let pgid = Pid::from_raw(child.id() as i32);
    let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
    let readers = [
        child
            .stdout
            .take()
            .map(|out| spawn_reader(number, false, out, stdout_log, None, tx.clone())),
        child.stderr.take().map(|err| {
            spawn_reader(
                number,
                true,
                err,
                stderr_log,
                Some(stderr_tail.clone()),
                tx.clone(),
            )
        }),
    ];
    let tx = tx.clone();
    std::thread::spawn(move || {
        let status = child.wait();
        // Exit after the last line, so metrics printed at the end count.
        for reader in readers.into_iter().flatten() {
            let _ = reader.join();
        }
        let _ = tx.send(Message::Exited { number, status });
    });
    Ok(Running {
        trial,
        pgid,
        started: Instant::now(),
        gpus,
        metrics_file,
        metrics_read: 0,
        last: BTreeMap::new(),
        next_step: 0,
        stderr_tail,
        terminated: None,
    })
}

/// Where trial `child` finds its parent's checkpoint (`HYPERION_RESTORE_FROM`).
fn restore_dir(trials_dir: &Path, child: u64) -> PathBuf {
    trials_dir.join(child.to_string()).join("restore")
}

/// Copies trial `parent`'s checkpoint to where its child restores it from.
fn copy_checkpoint(trials_dir: &Path, parent: u64, child: u64) -> std::io::Result<()> {
    let from = trials_dir.join(parent.to_string()).join("checkpoint");
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

fn spawn_reader(
    number: u64,
    stderr: bool,
    stream: impl Read + Send + 'static,
    mut log: File,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
    tx: Sender<Message>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        while let Ok(n) = reader.read_until(b'\n', &mut buf) {
            if n == 0 {
                break;
            }
            let _ = log.write_all(&buf);
            let line = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\n', '\r'])
                .to_owned();
            buf.clear();
            if let Some(tail) = &tail {
                let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line.clone());
            }
            let _ = tx.send(Message::Line {
                number,
                stderr,
                line,
            });
        }
    })
}

struct Placeholders<'a> {
    params: &'a Params,
    trial_dir: &'a Path,
    number: u64,
    id: u64,
    study: &'a str,
}

/// The trial's argv from the template. With `shell`, the template is joined and run by
/// `sh -c`, every substituted value single-quoted.
fn render_argv(
    template: &[String],
    shell: bool,
    vars: &Placeholders<'_>,
) -> Result<Vec<String>, String> {
    let quote = |s: String| {
        if shell {
            format!("'{}'", s.replace('\'', "'\\''"))
        } else {
            s
        }
    };
    let args: Vec<String> = vars
        .params
        .iter()
        .map(|(k, v)| quote(format!("--{k}={v}")))
        .collect();
    let bare: Vec<String> = vars
        .params
        .iter()
        .map(|(k, v)| quote(format!("{k}={v}")))
        .collect();
    let mut argv = Vec::with_capacity(template.len() + args.len());
    for element in template {
        match element.as_str() {
            "{args}" => argv.extend(args.iter().cloned()),
            "{args_no_hyphens}" => argv.extend(bare.iter().cloned()),
            _ => {}
        }
        if matches!(element.as_str(), "{args}" | "{args_no_hyphens}") {
            continue;
        }
        argv.push(substitute(element, |name| {
            let value = match name {
                "args" => args.join(" "),
                "args_no_hyphens" => bare.join(" "),
                "trial_dir" => vars.trial_dir.display().to_string(),
                "trial_number" => vars.number.to_string(),
                "trial_id" => vars.id.to_string(),
                "study" => vars.study.to_owned(),
                // An inactive conditional parameter is empty.
                name => vars
                    .params
                    .get(name)
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            };
            Ok(quote(value))
        })?);
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

/// Metrics in a stdout line: a prefixed JSON object, or the named groups of the regex.
fn parse_stdout(line: &str, config: &ProcessConfig) -> Vec<(Option<u64>, BTreeMap<String, f64>)> {
    let mut found = Vec::new();
    if let Some(json) = line.strip_prefix(config.stdout_prefix.as_str())
        && let Some(record) = parse_record(json.trim_start_matches(':').trim())
    {
        found.push(record);
    }
    if let Some(regex) = &config.stdout_regex
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
                step = Some(value as u64);
            } else {
                metrics.insert(name.to_owned(), value);
            }
        }
        if !metrics.is_empty() {
            found.push((step, metrics));
        }
    }
    found
}

/// A JSON object of metrics, `step` apart. Non-numeric fields are ignored; `NaN` and
/// `Infinity` (as Python's json writes them) are read as such.
fn parse_record(text: &str) -> Option<(Option<u64>, BTreeMap<String, f64>)> {
    let text = text.trim();
    if !text.starts_with('{') {
        return None;
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
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).ok()?;
    let mut step = None;
    let mut metrics = BTreeMap::new();
    for (key, value) in object {
        let number = match &value {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.parse::<f64>().ok(),
            _ => None,
        };
        match (key.as_str(), number) {
            ("step", Some(n)) => step = Some(n as u64),
            (_, Some(n)) => {
                metrics.insert(key, n);
            }
            _ => {}
        }
    }
    Some((step, metrics))
}

/// Reads what the trial appended to its metrics file since the last read (whole lines only).
fn read_metrics_file(r: &mut Running<'_>) -> Result<(), Error> {
    let Ok(mut file) = File::open(&r.metrics_file) else {
        return Ok(());
    };
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return Ok(());
    };
    if len <= r.metrics_read {
        return Ok(());
    }
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(r.metrics_read)).is_err() || file.read_to_end(&mut buf).is_err() {
        return Ok(());
    }
    let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    r.metrics_read += complete as u64;
    for line in String::from_utf8_lossy(&buf[..complete]).lines() {
        if let Some((step, metrics)) = parse_record(line) {
            record(r, step, metrics)?;
        }
    }
    Ok(())
}

/// Keeps the latest value of every metric and reports the objectives' as intermediate values:
/// every objective's when the record has them all, else the first one's (finite values only:
/// the final value decides what a NaN means). Then the scheduler's decision may stop the trial.
fn record(
    r: &mut Running<'_>,
    step: Option<u64>,
    metrics: BTreeMap<String, f64>,
) -> Result<(), Error> {
    if r.terminated.is_some() {
        // A stopped trial's last words change nothing: it ends at the step it was stopped.
        return Ok(());
    }
    let step = step.unwrap_or(r.next_step);
    r.next_step = step + 1;
    let objectives = &r.trial.study().spec().objectives;
    let values: Vec<f64> = objectives
        .iter()
        .map_while(|o| metrics.get(&o.metric).copied().filter(|v| v.is_finite()))
        .collect();
    let values = if values.len() == objectives.len() {
        &values[..]
    } else {
        &values[..values.len().min(1)]
    };
    if !values.is_empty() {
        match r.trial.report_values(step, values) {
            Err(e) if !e.settled_elsewhere() => return Err(e),
            _ => {}
        }
        if let Some(reason) = r.trial.prune_reason() {
            terminate(r, Ending::Pruned(reason.to_owned()));
            if let Some((child, parent)) = r.trial.successor() {
                // The child restores the parent's state as it was at this decision.
                let trials_dir = r.metrics_file.parent().and_then(Path::parent);
                if let Some(dir) = trials_dir
                    && let Err(e) = copy_checkpoint(dir, parent, child)
                {
                    eprintln!(
                        "warning: cannot copy trial {parent}'s checkpoint for trial {child}: {e}"
                    );
                }
            }
        }
    }
    r.last.extend(metrics);
    Ok(())
}

fn outcome(study: &Study, r: &Running<'_>, status: std::io::Result<ExitStatus>) -> Outcome {
    // The last stderr line first (it usually says what went wrong), then the tail.
    let tail = || {
        let tail = r.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        match tail.back() {
            None => String::new(),
            Some(last) => format!(
                ": {last}\n--- last lines of stderr ---\n{}",
                Vec::from(tail.clone()).join("\n")
            ),
        }
    };
    match &r.terminated {
        Some((_, Ending::Pruned(reason))) => {
            return Outcome::Pruned {
                reason: reason.clone(),
            };
        }
        Some((_, Ending::Failed(error))) => {
            return Outcome::Failed {
                error: error.clone(),
            };
        }
        None => {}
    }
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            return Outcome::Failed {
                error: format!("cannot wait for the trial process: {e}"),
            };
        }
    };
    if let Some(signal) = status.signal() {
        return Outcome::Failed {
            error: format!("killed by signal {signal}{}", tail()),
        };
    }
    if !status.success() {
        return Outcome::Failed {
            error: format!("exit code {}{}", status.code().unwrap_or(-1), tail()),
        };
    }
    let mut values = Vec::new();
    for objective in &study.spec().objectives {
        match r.last.get(&objective.metric) {
            Some(&v) => values.push(v),
            None => {
                return Outcome::Failed {
                    error: format!(
                        "metric \"{}\" was never reported (append {{\"{}\": …}} to $HYPERION_METRICS_FILE, or print a \
                         `{DEFAULT_PREFIX} {{…}}` line)",
                        objective.metric, objective.metric
                    ),
                };
            }
        }
    }
    Outcome::Completed(values)
}

/// Asks the trial's process group to stop (SIGTERM); SIGKILL follows after the grace period.
fn terminate(r: &mut Running<'_>, ending: Ending) {
    if r.terminated.is_none() {
        let _ = killpg(r.pgid, Signal::SIGTERM);
        r.terminated = Some((Instant::now(), ending));
    }
}

fn kill_all(running: &mut HashMap<u64, Running<'_>>) {
    for r in running.values() {
        let _ = killpg(r.pgid, Signal::SIGKILL);
    }
}

/// Time until the next timeout or SIGKILL is due.
fn next_deadline(running: &HashMap<u64, Running<'_>>, config: &ProcessConfig) -> Option<Duration> {
    running
        .values()
        .filter_map(|r| match (&r.terminated, config.trial_timeout) {
            (Some((at, _)), _) => {
                Some((*at + config.kill_grace).saturating_duration_since(Instant::now()))
            }
            (None, Some(limit)) => {
                Some((r.started + limit).saturating_duration_since(Instant::now()))
            }
            (None, None) => None,
        })
        .min()
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
}
