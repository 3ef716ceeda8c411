//! The local dispatcher: trials are processes on this machine.
//!
//! Each trial is a process group of its own (`process_group(0)`), started from the template
//! without a shell unless asked. Its stdout and stderr are read by one thread each, which write
//! `stdout.log` and `stderr.log` in its directory and send its lines and metric lines; a third
//! follows its metrics file; a waiter reaps it, kills what is left of its group, and sends its
//! exit after every line. The group is owned by a [`ProcessGroup`], which kills it when dropped,
//! so no error path, panic or early return leaves a trial running.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyperion_core::{Launch, TrialNumber};
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;

use crate::controller::{Dispatcher, Exit, Message};
use crate::protocol::{self, MetricsTail, Placeholders, ProcessConfig};
use crate::{ActiveTrial, Error};

/// Lines of stderr kept for a failed trial's error.
const STDERR_TAIL: usize = 20;
/// How often a trial's metrics file is read: appends to a file cannot wake anyone.
const METRICS_POLL: Duration = Duration::from_millis(100);

/// Runs trials as processes on this machine, `max_concurrent` at a time, each with
/// `gpus_per_trial` of the listed GPUs.
#[derive(Debug)]
pub struct LocalDispatcher {
    config: ProcessConfig,
    study: String,
    free_gpus: VecDeque<String>,
    running: HashMap<TrialNumber, Running>,
    machine: Machine,
    poller: Poller,
}

#[derive(Debug)]
struct Running {
    group: ProcessGroup,
    gpus: Vec<String>,
}

impl LocalDispatcher {
    /// Checks the template and creates the trials' directory.
    pub fn new(study: &str, config: &ProcessConfig) -> Result<Self, Error> {
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
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        config.trials_dir =
            std::path::absolute(&config.trials_dir).map_err(io(&config.trials_dir))?;
        std::fs::create_dir_all(&config.trials_dir).map_err(io(&config.trials_dir))?;
        Ok(LocalDispatcher {
            free_gpus: config.gpus.iter().cloned().collect(),
            config,
            study: study.to_owned(),
            running: HashMap::new(),
            machine: Machine::this(),
            poller: Poller::start(),
        })
    }

    fn start(
        &mut self,
        trial: &hyperion_core::Trial,
        space: &hyperion_core::SearchSpace,
        spec_objectives: &[String],
        gpus: &[String],
        tx: &Sender<Message>,
    ) -> Result<Running, String> {
        let number = trial.number;
        let config = &self.config;
        let (dir, restore) = protocol::prepare_dir(&config.trials_dir, trial).map_err(|e| {
            let dir = protocol::trial_dir(&config.trials_dir, number);
            format!("cannot prepare {}: {e}", dir.display())
        })?;
        let vars = Placeholders {
            params: &trial.params,
            space,
            trial_dir: &dir,
            number,
            id: trial.id.0,
            study: &self.study,
        };
        let argv = protocol::render_argv(&config.argv, config.shell, &vars)?;
        let logs = (|| {
            Ok::<_, std::io::Error>((
                File::create(dir.join("stdout.log"))?,
                File::create(dir.join("stderr.log"))?,
            ))
        })()
        .map_err(|e| format!("cannot create the logs in {}: {e}", dir.display()))?;
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .current_dir(&config.workdir)
            .envs(&config.env)
            .envs(protocol::environment(
                &self.study,
                trial,
                &dir,
                restore.as_deref(),
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if !gpus.is_empty() {
            command.env("CUDA_VISIBLE_DEVICES", gpus.join(","));
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", argv[0]))?;
        let group = ProcessGroup::new(child.id());
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let prefix = config.stdout_prefix.clone();
        let objectives: Vec<String> = spec_objectives.to_vec();
        let regex = config.stdout_regex.as_ref().map(|r| r.0.clone());
        let readers = [
            child.stdout.take().map(|out| {
                let objectives = objectives.clone();
                let parse = move |line: &str| {
                    protocol::parse_stdout(line, &prefix, regex.as_ref(), &objectives)
                };
                spawn_reader(
                    number,
                    Stream::Stdout(Box::new(parse)),
                    out,
                    logs.0,
                    tx.clone(),
                )
            }),
            child.stderr.take().map(|err| {
                spawn_reader(
                    number,
                    Stream::Stderr(tail.clone()),
                    err,
                    logs.1,
                    tx.clone(),
                )
            }),
        ];
        let metrics = self.poller.follow(
            number,
            MetricsTail::new(dir.join("metrics.jsonl"), objectives),
            tx,
        );
        let poller = self.poller.clone();
        let reaped = group.reaped.clone();
        let pid = group.pgid;
        let tx = tx.clone();
        std::thread::spawn(move || {
            // Wait for the leader without reaping it, so that its pid still names the group
            // while what is left of the group is killed.
            let _ = waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
            let at = std::time::Instant::now();
            let status = {
                let mut reaped = reaped.lock().unwrap_or_else(|e| e.into_inner());
                let _ = killpg(pid, Signal::SIGKILL);
                *reaped = true;
                child.wait()
            };
            // Exit after the last line, so metrics printed at the end count.
            for reader in readers.into_iter().flatten() {
                let _ = reader.join();
            }
            // The last lines of the metrics file, after which the poller forgets it.
            poller.forget(number);
            let mut metrics = metrics.lock().unwrap_or_else(|e| e.into_inner());
            for record in metrics.read() {
                let _ = tx.send(Message::metrics(number, record));
            }
            drop(metrics);
            let stderr_tail = Vec::from(tail.lock().unwrap_or_else(|e| e.into_inner()).clone());
            let exit = Exit::Process {
                status,
                stderr_tail,
                at,
            };
            let _ = tx.send(Message::Exited { number, exit });
        });
        Ok(Running {
            group,
            gpus: gpus.to_vec(),
        })
    }
}

impl<'s> Dispatcher<'s> for LocalDispatcher {
    fn has_room(&self) -> bool {
        self.running.len() < self.config.max_concurrent.max(1)
            && self.free_gpus.len() >= self.config.gpus_per_trial
    }

    fn launch(
        &mut self,
        trial: ActiveTrial<'s>,
        tx: &Sender<Message>,
    ) -> Result<Option<Launch>, String> {
        let gpus: Vec<String> = self.free_gpus.drain(..self.config.gpus_per_trial).collect();
        let spec = trial.study().spec();
        let objectives: Vec<String> = spec.objectives.iter().map(|o| o.metric.clone()).collect();
        match self.start(trial.trial(), &spec.space, &objectives, &gpus, tx) {
            Ok(running) => {
                let launch = self.machine.launch(running.group.pgid);
                self.running.insert(trial.number(), running);
                Ok(launch)
            }
            Err(e) => {
                self.free_gpus.extend(gpus);
                Err(e)
            }
        }
    }

    fn stop(&mut self, number: TrialNumber) {
        if let Some(r) = self.running.get(&number) {
            r.group.signal(Signal::SIGTERM);
        }
    }

    fn kill(&mut self, number: TrialNumber) {
        if let Some(r) = self.running.get(&number) {
            r.group.signal(Signal::SIGKILL);
        }
    }

    fn release(&mut self, number: TrialNumber) {
        if let Some(mut r) = self.running.remove(&number) {
            self.free_gpus.extend(r.gpus.drain(..));
        }
    }

    fn hand_over(&mut self, parent: TrialNumber, child: TrialNumber) {
        if let Err(e) = protocol::copy_checkpoint(&self.config.trials_dir, parent, child) {
            eprintln!("warning: cannot copy trial {parent}'s checkpoint for trial {child}: {e}");
        }
    }

    fn clean_up(&mut self, launch: &Launch) {
        if self.machine.runs(launch) {
            let _ = killpg(Pid::from_raw(launch.pgid), Signal::SIGKILL);
        }
    }
}

/// Reads the metrics files of the running trials every [`METRICS_POLL`], on one thread for
/// all of them, and sends their new records. It ends with its dispatcher.
#[derive(Clone, Debug)]
struct Poller {
    files: Arc<Mutex<PollerFiles>>,
}

type PollerFiles = HashMap<TrialNumber, (Arc<Mutex<MetricsTail>>, Sender<Message>)>;

impl Poller {
    fn start() -> Self {
        let files: Arc<Mutex<PollerFiles>> = Arc::default();
        let weak = Arc::downgrade(&files);
        std::thread::spawn(move || {
            while let Some(files) = weak.upgrade() {
                let followed: Vec<_> = files
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|(&n, (tail, tx))| (n, tail.clone(), tx.clone()))
                    .collect();
                drop(files);
                for (number, tail, tx) in followed {
                    // Sent under the lock: the trial's waiter reads the rest after, and so
                    // sends its exit after these records.
                    let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                    for record in tail.read() {
                        let _ = tx.send(Message::metrics(number, record));
                    }
                }
                std::thread::sleep(METRICS_POLL);
            }
        });
        Poller { files }
    }

    /// Follows trial `number`'s metrics file; the caller reads what is left after the trial.
    fn follow(
        &self,
        number: TrialNumber,
        tail: MetricsTail,
        tx: &Sender<Message>,
    ) -> Arc<Mutex<MetricsTail>> {
        let tail = Arc::new(Mutex::new(tail));
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files.insert(number, (tail.clone(), tx.clone()));
        tail
    }

    fn forget(&self, number: TrialNumber) {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files.remove(&number);
    }
}

/// A trial's process group, killed when dropped (as rust-analyzer's `JodChild`), unless its
/// leader was reaped (its pid, and so the group's id, may then belong to another process).
#[derive(Debug)]
struct ProcessGroup {
    pgid: Pid,
    reaped: Arc<Mutex<bool>>,
}

impl ProcessGroup {
    fn new(pid: u32) -> Self {
        ProcessGroup {
            pgid: Pid::from_raw(pid as i32),
            reaped: Arc::default(),
        }
    }

    fn signal(&self, signal: Signal) {
        let reaped = self.reaped.lock().unwrap_or_else(|e| e.into_inner());
        if !*reaped {
            let _ = killpg(self.pgid, signal);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// Which machine this is, for [`Launch`]: a process group is named by its host, boot and
/// leader's start time as well as its id.
#[derive(Debug)]
struct Machine {
    host: String,
    boot_id: String,
}

impl Machine {
    fn this() -> Self {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        Machine {
            host: read("/proc/sys/kernel/hostname"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
        }
    }

    fn launch(&self, pgid: Pid) -> Option<Launch> {
        let (group, start_time) = leader(pgid.as_raw())?;
        (group == pgid.as_raw()).then(|| Launch {
            host: self.host.clone(),
            boot_id: self.boot_id.clone(),
            pgid: pgid.as_raw(),
            start_time,
        })
    }

    /// Whether `launch`'s group is still there: on this machine since the same boot, its
    /// leader alive with the same start time.
    fn runs(&self, launch: &Launch) -> bool {
        launch.host == self.host
            && launch.boot_id == self.boot_id
            && !self.boot_id.is_empty()
            && leader(launch.pgid) == Some((launch.pgid, launch.start_time))
    }
}

/// The process group and start time (clock ticks after boot) of process `pid`, from
/// `/proc/PID/stat`.
fn leader(pid: i32) -> Option<(i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields are counted after its end.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    Some((fields.get(2)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// Finds the metric records in a stdout line.
type Parse = Box<dyn Fn(&str) -> Vec<Result<protocol::Record, protocol::Malformed>> + Send>;

enum Stream {
    Stdout(Parse),
    /// Keeps the last lines.
    Stderr(Arc<Mutex<VecDeque<String>>>),
}

fn spawn_reader(
    number: TrialNumber,
    stream: Stream,
    pipe: impl Read + Send + 'static,
    mut log: File,
    tx: Sender<Message>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
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
            match &stream {
                Stream::Stdout(parse) => {
                    for record in parse(&line) {
                        let _ = tx.send(Message::metrics(number, record));
                    }
                }
                Stream::Stderr(tail) => {
                    let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                    if tail.len() == STDERR_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line.clone());
                }
            }
            let stderr = matches!(stream, Stream::Stderr(_));
            let _ = tx.send(Message::Output {
                number,
                stderr,
                line,
            });
        }
    })
}

impl crate::Study {
    /// Runs the study's trials as processes on this machine (see [`LocalDispatcher`]) until
    /// the budget is spent, the sampler is exhausted or `control` stops it.
    pub fn run_processes(
        &self,
        config: &ProcessConfig,
        budget: &crate::Budget,
        recovery: &crate::Recovery,
        control: &crate::RunControl,
    ) -> Result<crate::Summary, Error> {
        let mut local = LocalDispatcher::new(self.name(), config)?;
        let options = crate::RunOptions {
            budget: budget.clone(),
            recovery: recovery.clone(),
            trial_timeout: config.trial_timeout,
            kill_grace: config.kill_grace,
            max_concurrent: config.max_concurrent,
        };
        self.run_with(&mut local, &options, control)
    }
}
