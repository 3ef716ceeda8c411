//! The local dispatcher: trials are processes on this machine.
//!
//! Each trial is a process group of its own (`process_group(0)`), started from the template
//! without a shell unless asked. One thread for all of them (see [`watch`]) writes their
//! `stdout.log` and `stderr.log`, sends their lines and metric lines, follows their metrics
//! files, reaps them, kills what is left of their groups, and sends each exit after its last
//! line. Each group is owned by a [`ProcessGroup`], which kills it when dropped, so no error
//! path, panic or early return leaves a trial running; and a [`watchdog`] process kills the
//! groups if the run's process dies without dropping them (SIGKILL, a crash).

mod pipeline;
mod watch;
mod watchdog;

pub use pipeline::PipelineDispatcher;

use std::collections::{HashMap, VecDeque};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use hyperion_core::{Launch, TrialNumber};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::controller::{Dispatcher, Message};
use crate::machine::Machine;
use crate::protocol::{self, MetricsTail, ProcessConfig};
use crate::{ActiveTrial, Error};
use watch::{Watch, Watcher};
use watchdog::Watchdog;

/// Runs trials as processes on this machine, `max_concurrent` at a time, each with
/// `gpus_per_trial` of the listed GPUs.
#[derive(Debug)]
pub struct LocalDispatcher {
    config: ProcessConfig,
    study: String,
    free_gpus: VecDeque<String>,
    running: HashMap<TrialNumber, Running>,
    machine: Machine,
    watcher: Watcher,
    watchdog: Arc<Watchdog>,
}

#[derive(Debug)]
struct Running {
    group: ProcessGroup,
    gpus: Vec<String>,
}

impl LocalDispatcher {
    /// Checks the template and creates the trials' directory.
    pub fn new(study: &str, config: &ProcessConfig) -> Result<Self, Error> {
        if config.gpus_per_trial > config.gpus.len() {
            return Err(Error::Config(format!(
                "gpus_per_trial is {} but only {} GPUs are listed",
                config.gpus_per_trial,
                config.gpus.len()
            )));
        }
        let config = config.ready()?;
        let watcher = Watcher::start().map_err(|source| Error::System {
            what: "start the thread that follows the trials",
            source,
        })?;
        let watchdog = Watchdog::start().map_err(|source| Error::System {
            what: "start the process that kills the trials if the run dies",
            source,
        })?;
        Ok(LocalDispatcher {
            watchdog: Arc::new(watchdog),
            free_gpus: config.gpus.iter().cloned().collect(),
            config,
            study: study.to_owned(),
            running: HashMap::new(),
            machine: Machine::this(),
            watcher,
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
        let protocol::Prepared { dir, restore, argv } =
            protocol::prepare(config, &self.study, trial, space)?;
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
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", argv[0]))?;
        let group = ProcessGroup::new(child.id(), &self.watchdog);
        let objectives: Vec<String> = spec_objectives.to_vec();
        let parse = protocol::stdout_parser(config, objectives.clone());
        self.watcher.add(Watch {
            number,
            child,
            metrics: MetricsTail::new(dir.join("metrics.jsonl"), objectives),
            dir,
            parse,
            reaped: group.reaped.clone(),
            tx: tx.clone(),
        })?;
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
                let dir = protocol::trial_dir(&self.config.trials_dir, trial.number());
                let launch = self.machine.launch(running.group.pgid, &dir);
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

    fn clean_up(&mut self, _number: TrialNumber, launch: Option<&Launch>) {
        // A job's launch names the run that submitted it, not a group of the trial's.
        if let Some(launch) = launch.filter(|l| l.job.is_none())
            && self.machine.runs(launch)
        {
            let _ = killpg(Pid::from_raw(launch.pgid), Signal::SIGKILL);
        }
    }
}

/// A trial's process group, killed when dropped (as rust-analyzer's `JodChild`), unless its
/// leader was reaped (its pid, and so the group's id, may then belong to another process).
#[derive(Debug)]
struct ProcessGroup {
    pgid: Pid,
    reaped: Arc<Mutex<bool>>,
    /// Kills the group if the run dies before it drops this.
    watchdog: Arc<Watchdog>,
}

impl ProcessGroup {
    fn new(pid: u32, watchdog: &Arc<Watchdog>) -> Self {
        let pgid = Pid::from_raw(pid as i32);
        watchdog.watch(pgid.as_raw());
        ProcessGroup {
            pgid,
            reaped: Arc::default(),
            watchdog: watchdog.clone(),
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
        self.watchdog.forget(self.pgid.as_raw());
    }
}

/// Runs `command` to its end in a process group of its own that dies with this process,
/// however this process ends (for the one-off stage runs of `hyperion reeval` and `hyperion
/// cache verify`).
pub fn run_guarded(
    command: &mut std::process::Command,
) -> std::io::Result<std::process::ExitStatus> {
    let watchdog = Arc::new(Watchdog::start()?);
    let mut child = command.process_group(0).spawn()?;
    let group = ProcessGroup::new(child.id(), &watchdog);
    let status = child.wait();
    *group.reaped.lock().unwrap_or_else(|e| e.into_inner()) = true;
    status
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
            max_trials_here: None,
        };
        self.run_with(&mut local, &options, control)
    }
}
