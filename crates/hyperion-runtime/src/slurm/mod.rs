//! The Slurm dispatcher: each trial is a batch job.
//!
//! The controller stays where `hyperion run` runs (a login node). A trial's job runs a script
//! Hyperion writes (`job.sh` in the trial's directory): the `setup` lines, the trial's
//! environment and its argv, every value quoted. Its stdout, stderr and metrics files are the
//! local trial protocol's, in the trial's directory, which the compute nodes must see (a probe
//! job checks it before the first trial). One thread follows every job ([`poll`]): one
//! `squeue` per tick for all of them. A job's id is recorded with its trial, its name
//! (`hyperion-<study>-<number>`) before it is submitted, so a run that restarts after a kill
//! adopts the jobs its dead predecessor left (or cancels those whose trial was retried).

mod commands;
mod poll;
mod script;

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use hyperion_core::{Job, Launch, Trial, TrialNumber};
use serde::{Deserialize, Serialize};

use crate::controller::{Dispatcher, Message};
use crate::machine::Machine;
use crate::protocol::{self, ProcessConfig};
use crate::settings::seconds;
use crate::{ActiveTrial, Error};
use commands::{Outage, Refusal};
use poll::Poller;
pub(crate) use script::job_name;

/// A study file's `slurm:` section: how each trial's job is asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmConfig {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Each job's time limit (`--time`): the trial timeout.
    #[serde(with = "seconds::option", skip_serializing_if = "Option::is_none")]
    pub time: Option<Duration>,
    pub cpus_per_task: Option<u32>,
    /// As sbatch's `--mem` reads it (`16G`).
    pub mem: Option<String>,
    /// `--gres=gpu:N`.
    pub gpus_per_trial: Option<u32>,
    /// `--gres` as written, instead of `gpus_per_trial`.
    pub gres: Option<String>,
    pub constraint: Option<String>,
    pub nodes: Option<u32>,
    /// Handed to sbatch unchanged, after the options above.
    pub extra_args: Vec<String>,
    /// Shell lines run before the command (`module load cuda/12`).
    pub setup: Vec<String>,
    /// Jobs queued or running at once; default `max_concurrent`.
    pub max_submitted: Option<usize>,
    /// Whether a probe job checks, before the first trial, that the nodes see the trials'
    /// directory (default true).
    pub probe: bool,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            partition: None,
            account: None,
            qos: None,
            time: None,
            cpus_per_task: None,
            mem: None,
            gpus_per_trial: None,
            gres: None,
            constraint: None,
            nodes: None,
            extra_args: Vec::new(),
            setup: Vec::new(),
            max_submitted: None,
            probe: true,
        }
    }
}

/// Runs trials as Slurm jobs, up to `max_submitted` queued or running at once.
#[derive(Debug)]
pub struct SlurmDispatcher {
    config: ProcessConfig,
    slurm: SlurmConfig,
    study: String,
    objectives: Vec<String>,
    machine: Machine,
    poller: Poller,
    outage: Outage,
}

impl SlurmDispatcher {
    /// Checks that Slurm is there and takes the study's options, then (unless `probe: false`)
    /// runs a probe job that checks that the nodes see the trials' directory.
    pub fn new(
        study: &str,
        objectives: Vec<String>,
        config: &ProcessConfig,
    ) -> Result<Self, Error> {
        let slurm = config.slurm.clone().unwrap_or_default();
        for name in config.env.keys() {
            if !script::exportable(name) {
                return Err(Error::Config(format!(
                    "env: `{name}` cannot be exported to a Slurm job (a variable's name is \
                     letters, digits and `_`)"
                )));
            }
        }
        let config = config.ready()?;
        commands::call("sbatch", &["--version".to_owned()]).map_err(slurm_error)?;
        let dispatcher = SlurmDispatcher {
            poller: Poller::start().map_err(|source| Error::System {
                what: "start the thread that follows the jobs",
                source,
            })?,
            config,
            slurm,
            study: study.to_owned(),
            objectives,
            machine: Machine::this(),
            outage: Outage::default(),
        };
        if dispatcher.slurm.probe {
            dispatcher.probe()?;
        }
        Ok(dispatcher)
    }

    fn time(&self) -> Option<Duration> {
        self.slurm.time.or(self.config.trial_timeout)
    }

    fn name(&self, number: TrialNumber) -> String {
        job_name(&self.study, number)
    }

    /// Submits a job with `options` and the script at `path`; returns its id. Slurm's
    /// refusal names the options.
    fn submit(&mut self, options: Vec<String>, path: &Path) -> Result<String, String> {
        let mut args = options;
        args.push(path.display().to_string());
        commands::sbatch(&mut self.outage, &args, &[]).map_err(|e| {
            let options: Vec<&str> = args
                .iter()
                .filter(|a| a.starts_with('-'))
                .map(String::as_str)
                .collect();
            format!("sbatch refused the job ({}): {e}", options.join(" "))
        })
    }

    /// Writes trial `trial`'s job script and submits it; returns the job id.
    fn start(
        &mut self,
        trial: &Trial,
        space: &hyperion_core::SearchSpace,
    ) -> Result<(String, PathBuf), String> {
        let number = trial.number;
        let config = &self.config;
        let protocol::Prepared { dir, restore, argv } =
            protocol::prepare(config, &self.study, trial, space)?;
        let mut env: Vec<(String, String)> = config
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.extend(
            protocol::environment(&self.study, trial, &dir, restore.as_deref())
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_string_lossy().into_owned())),
        );
        let what = format!("trial {number} of study {}", self.study);
        let text = script::job_script(&what, &self.slurm.setup, &env, &argv);
        let path = dir.join("job.sh");
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let mut options = script::job_options(&self.name(number), &dir, &config.workdir);
        options.extend(script::resource_options(&self.slurm, self.time()));
        let id = self.submit(options, &path)?;
        Ok((id, dir))
    }

    fn follow(&self, number: TrialNumber, id: String, dir: PathBuf, tx: &Sender<Message>) {
        let parse = protocol::stdout_parser(&self.config, self.objectives.clone());
        self.poller.add(poll::Job {
            number,
            id,
            dir,
            objectives: self.objectives.clone(),
            parse,
            tx: tx.clone(),
        });
    }

    /// Cancels jobs (`scancel` sends SIGTERM, then SIGKILL after Slurm's `KillWait`).
    fn cancel(&mut self, ids: Vec<String>, signal: Option<&str>) {
        if ids.is_empty() {
            return;
        }
        let mut args: Vec<String> = signal
            .map(|s| format!("--signal={s}"))
            .into_iter()
            .collect();
        args.extend(ids.iter().cloned());
        if let Err(e) = commands::call_patiently(&mut self.outage, "scancel", &args) {
            eprintln!("warning: cannot cancel Slurm jobs {}: {e}", ids.join(","));
        }
    }

    /// Submits a job that checks, on a node the trials' jobs may get, that the trials'
    /// directory is there, and waits for its answer.
    fn probe(&self) -> Result<(), Error> {
        let dir = &self.config.trials_dir;
        let token = format!(".probe-{}-{}", std::process::id(), unique());
        let seen = dir.join(&token);
        let script_path = dir.join(format!("{token}.sh"));
        let text = format!(
            "#!/bin/bash\n# Written by Hyperion: can this node see the trials' directory?\n\
             if [ -d {dir} ]; then hostname > {seen}; else exit 7; fi\n",
            dir = protocol::shell_quote(&dir.display().to_string()),
            seen = protocol::shell_quote(&seen.display().to_string()),
        );
        std::fs::write(&script_path, text).map_err(|source| Error::Io {
            path: script_path.clone(),
            source,
        })?;
        let _clean = RemoveOnDrop(vec![script_path.clone(), seen.clone()]);
        // The trials' own options (their time limit aside: the probe takes a minute at most).
        let shown = script::resource_options(&self.slurm, self.time()).join(" ");
        let mut args = vec![
            "--parsable".to_owned(),
            format!("--job-name={}", job_name(&self.study, "probe")),
            "--output=/dev/null".to_owned(),
            "--error=/dev/null".to_owned(),
            "--chdir=/".to_owned(),
        ];
        args.extend(script::resource_options(
            &self.slurm,
            Some(Duration::from_secs(60)),
        ));
        args.push(script_path.display().to_string());
        let mut outage = Outage::default();
        let id = commands::sbatch(&mut outage, &args, &[]).map_err(|e| {
            Error::Config(format!(
                "slurm: sbatch refused the study's options ({shown}): {e}"
            ))
        })?;
        let cancel = CancelOnDrop(Some(id.clone()));
        let started = Instant::now();
        let mut said = false;
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let states = match outage.note("squeue", commands::squeue(std::slice::from_ref(&id))) {
                Ok(states) => states,
                Err(Refusal::Unreachable(_)) => continue,
                Err(e) => return Err(slurm_error(e)),
            };
            let Some(job) = states.into_iter().next() else {
                return Err(Error::Config(format!(
                    "slurm: the probe job {id} vanished from the queue"
                )));
            };
            let waited = started.elapsed();
            match job.state.as_str() {
                "COMPLETED" => {
                    // A shared filesystem may show another machine's new file a moment late.
                    let shown = Instant::now();
                    while !seen.exists() && shown.elapsed() < Duration::from_secs(10) {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    if seen.exists() {
                        drop(cancel.disarm());
                        return Ok(());
                    }
                    return Err(unseen(dir, &id, &job.nodes));
                }
                "FAILED" if job.wait_status == 7 << 8 => return Err(unseen(dir, &id, &job.nodes)),
                "PENDING" if poll::never_starts(&job.reason) => {
                    return Err(Error::Config(format!(
                        "slurm: Slurm cannot start a job with the study's options ({shown}): {}",
                        job.reason
                    )));
                }
                "PENDING" | "CONFIGURING" | "RUNNING" | "COMPLETING" => {
                    if waited > PROBE_PATIENCE {
                        return Err(Error::Config(format!(
                            "slurm: the probe job {id} did not finish within {} ({} {}); \
                             the queue may be busy: `slurm: {{probe: false}}` skips the check",
                            crate::human(PROBE_PATIENCE),
                            job.state,
                            job.reason
                        )));
                    }
                    if !said && waited > Duration::from_secs(10) {
                        eprintln!(
                            "note: waiting for the probe job {id} ({}, {}) that checks that \
                             the nodes see {}",
                            job.state,
                            job.reason,
                            dir.display()
                        );
                        said = true;
                    }
                }
                _ => {
                    return Err(Error::Config(format!(
                        "slurm: the probe job {id} ended as {} ({}) on {}",
                        job.state, job.reason, job.nodes
                    )));
                }
            }
        }
    }
}

/// The stages of a pipeline that run as batch jobs (`executor: slurm`): each stage process a
/// job, followed by the same poller as trials' jobs, which reports to the pipeline's channel
/// as the local watcher does, under the pipeline's process id.
#[derive(Debug)]
pub(crate) struct StageJobs {
    slurm: SlurmConfig,
    time: Option<Duration>,
    poller: Poller,
    outage: Outage,
}

impl StageJobs {
    /// Checks that Slurm is there, and cancels the stage jobs of `study` that a run on this
    /// machine that is gone left behind.
    pub(crate) fn new(study: &str, config: &ProcessConfig) -> Result<Self, Error> {
        commands::call("sbatch", &["--version".to_owned()]).map_err(slurm_error)?;
        let slurm = config.slurm.clone().unwrap_or_default();
        let mut jobs = StageJobs {
            time: slurm.time.or(config.trial_timeout),
            slurm,
            poller: Poller::start().map_err(|source| Error::System {
                what: "start the thread that follows the stages' jobs",
                source,
            })?,
            outage: Outage::default(),
        };
        jobs.cancel_left_behind(study)?;
        Ok(jobs)
    }

    /// The name of process `what`'s job (`NUMBER-STAGE`): the study's job name with this run's
    /// process and machine, so that a later run can tell the jobs of a dead one.
    pub(crate) fn name(study: &str, what: &str) -> String {
        job_name(
            study,
            format!("{what}.{}.{}", std::process::id(), crate::this_host()),
        )
    }

    fn cancel_left_behind(&mut self, study: &str) -> Result<(), Error> {
        let args = ["--me", "--noheader", "--Format=JobID:|,Name:500|"].map(String::from);
        let listed =
            commands::call_patiently(&mut self.outage, "squeue", &args).map_err(slurm_error)?;
        let prefix = job_name(study, "");
        let here = format!(".{}", crate::this_host());
        let mut left = Vec::new();
        for line in listed.lines() {
            let mut fields = line.split('|').map(str::trim);
            let (Some(id), Some(name)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Some(rest) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(&here))
            else {
                continue;
            };
            let Some(pid) = rest
                .rsplit_once('.')
                .and_then(|(_, p)| p.parse::<i32>().ok())
            else {
                continue;
            };
            let gone = matches!(
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
                Err(nix::errno::Errno::ESRCH)
            );
            if gone {
                left.push(id.to_owned());
            }
        }
        if !left.is_empty() {
            commands::call_patiently(&mut self.outage, "scancel", &left).map_err(slurm_error)?;
            eprintln!(
                "note: study \"{study}\": cancelled {} stage jobs that a run that is gone left \
                 behind ({})",
                left.len(),
                left.join(", ")
            );
        }
        Ok(())
    }

    /// Writes `command` (its program, arguments, working directory and the environment it
    /// sets) as a job script in `dir` and submits it as job `name`, with `gpus` GPUs; the
    /// job's lines, metrics and exit come on `tx` as process `proc`'s.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn submit(
        &mut self,
        proc: TrialNumber,
        name: &str,
        command: &std::process::Command,
        gpus: usize,
        dir: &Path,
        objectives: Vec<String>,
        parse: protocol::Parse,
        tx: &Sender<Message>,
    ) -> Result<String, String> {
        let text = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
        let argv: Vec<String> = std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(text)
            .collect();
        let mut env = Vec::new();
        for (key, value) in command.get_envs() {
            let (key, Some(value)) = (text(key), value) else {
                continue;
            };
            if !script::exportable(&key) {
                return Err(format!(
                    "`{key}` cannot be exported to a Slurm job (a variable's name is letters, \
                     digits and `_`)"
                ));
            }
            env.push((key, text(value)));
        }
        let script_path = dir.join("job.sh");
        std::fs::write(
            &script_path,
            script::job_script(name, &self.slurm.setup, &env, &argv),
        )
        .map_err(|e| format!("cannot write {}: {e}", script_path.display()))?;
        let workdir = command.get_current_dir().unwrap_or(dir);
        let mut args = script::job_options(name, dir, workdir);
        let mut slurm = self.slurm.clone();
        if gpus > 0 {
            (slurm.gpus_per_trial, slurm.gres) = (Some(gpus as u32), None);
        }
        args.extend(script::resource_options(&slurm, self.time));
        args.push(script_path.display().to_string());
        let id = commands::sbatch(&mut self.outage, &args, &[])
            .map_err(|e| format!("sbatch refused the stage's job: {e}"))?;
        self.poller.add(poll::Job {
            number: proc,
            id: id.clone(),
            dir: dir.to_path_buf(),
            objectives,
            parse,
            tx: tx.clone(),
        });
        Ok(id)
    }

    /// Cancels process `proc`'s job, with `signal` first (`scancel --signal`) or for good.
    pub(crate) fn cancel(&mut self, proc: TrialNumber, signal: Option<&str>) {
        let Some(id) = self.poller.cancelled(proc) else {
            return;
        };
        let mut args: Vec<String> = signal
            .map(|s| format!("--signal={s}"))
            .into_iter()
            .collect();
        args.push(id.clone());
        if let Err(e) = commands::call_patiently(&mut self.outage, "scancel", &args) {
            eprintln!("warning: cannot cancel Slurm job {id}: {e}");
        }
    }
}

/// How long the probe job may wait for a node.
const PROBE_PATIENCE: Duration = Duration::from_secs(300);

fn unseen(dir: &Path, id: &str, nodes: &str) -> Error {
    Error::Config(format!(
        "slurm: the compute node {nodes} cannot see the trials' directory {} (probe job {id}): \
         trials write their logs and metrics there, so it must be on a filesystem every node \
         shares (set trials_dir: in the study file)",
        dir.display()
    ))
}

fn slurm_error(e: Refusal) -> Error {
    Error::Config(format!("slurm: {e}"))
}

/// A number no other probe of this process has.
fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Cancels the probe job on every early return.
struct CancelOnDrop(Option<String>);

impl CancelOnDrop {
    fn disarm(mut self) -> Self {
        self.0 = None;
        self
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.0.take() {
            let _ = commands::call("scancel", &[id]);
        }
    }
}

impl<'s> Dispatcher<'s> for SlurmDispatcher {
    fn has_room(&self) -> bool {
        let limit = self
            .slurm
            .max_submitted
            .unwrap_or(self.config.max_concurrent);
        self.poller.len() < limit.max(1)
    }

    fn launch(
        &mut self,
        trial: ActiveTrial<'s>,
        tx: &Sender<Message>,
    ) -> Result<Option<Launch>, String> {
        let space = &trial.study().spec().space;
        let number = trial.number();
        let (id, dir) = self.start(trial.trial(), space)?;
        self.follow(number, id.clone(), dir.clone(), tx);
        let job = Job {
            name: self.name(number),
            id: Some(id),
        };
        Ok(Some(self.machine.submitter(&dir, job)))
    }

    fn before_launch(&mut self, trial: &Trial) -> Option<Launch> {
        let dir = protocol::trial_dir(&self.config.trials_dir, trial.number);
        let job = Job {
            name: self.name(trial.number),
            id: None,
        };
        Some(self.machine.submitter(&dir, job))
    }

    fn stop(&mut self, number: TrialNumber) {
        if let Some(id) = self.poller.cancelled(number) {
            self.cancel(vec![id], None);
        }
    }

    fn kill(&mut self, number: TrialNumber) {
        if let Some(id) = self.poller.cancelled(number) {
            self.cancel(vec![id], Some("KILL"));
        }
    }

    fn release(&mut self, _number: TrialNumber) {}

    fn hand_over(&mut self, parent: TrialNumber, child: TrialNumber) {
        if let Err(e) = protocol::copy_checkpoint(&self.config.trials_dir, parent, child) {
            eprintln!("warning: cannot copy trial {parent}'s checkpoint for trial {child}: {e}");
        }
    }

    fn clean_up(&mut self, number: TrialNumber, launch: Option<&Launch>) {
        match launch.map(|l| l.job.as_ref()) {
            // A local process: not a job of ours.
            Some(None) => {}
            Some(Some(Job { id: Some(id), .. })) => self.cancel(vec![id.clone()], None),
            // Killed while submitting: the job, if there is one, has only its name.
            Some(Some(Job { id: None, .. })) | None => {
                let name = self.name(number);
                let args = ["--me".to_owned(), format!("--name={name}")];
                if let Err(e) = commands::call_patiently(&mut self.outage, "scancel", &args) {
                    eprintln!("warning: cannot cancel Slurm job {name}: {e}");
                }
            }
        }
    }

    fn adopt(&mut self, trial: &Trial, launch: &Launch, tx: &Sender<Message>) -> bool {
        let Some(job) = &launch.job else {
            return false;
        };
        let id = match &job.id {
            Some(id) => Some(id.clone()),
            // The run died between sbatch and recording the id: find the job by its name.
            None => commands::squeue_named(std::slice::from_ref(&job.name))
                .ok()
                .and_then(|jobs| {
                    jobs.into_iter()
                        .map(|j| j.id)
                        .max_by_key(|id| id.parse::<u64>().unwrap_or(0))
                }),
        };
        let Some(id) = id else {
            return false;
        };
        let dir = protocol::trial_dir(&self.config.trials_dir, trial.number);
        self.follow(trial.number, id, dir, tx);
        true
    }
}

impl Drop for SlurmDispatcher {
    /// No job outlives the dispatcher that follows it (a killed run's jobs are adopted by the
    /// next run instead).
    fn drop(&mut self) {
        let ids = self.poller.ids();
        self.cancel(ids, None);
    }
}

/// A job array of `hyperion worker` processes, each running the study's trials on its own
/// allocation against a server store.
#[derive(Debug)]
pub struct WorkerArray<'a> {
    pub study: &'a str,
    pub count: u32,
    /// The store's URL: it reaches the jobs through the environment (`HYPERION_STORAGE`), never
    /// through the script or an argv, where a password would show.
    pub storage: &'a str,
    /// The `hyperion` program the nodes run.
    pub program: &'a Path,
    /// `hyperion worker`'s own options, after the study's name.
    pub worker_args: &'a [String],
    pub slurm: &'a SlurmConfig,
    /// Where the script and the workers' logs (`%A_%a.out`) go.
    pub dir: &'a Path,
}

impl WorkerArray<'_> {
    /// Writes the array's script and submits it; returns the array's job id.
    pub fn submit(&self) -> Result<String, Error> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let dir = std::path::absolute(self.dir).map_err(io(self.dir))?;
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut argv = vec![
            self.program.display().to_string(),
            "worker".to_owned(),
            self.study.to_owned(),
        ];
        argv.extend(self.worker_args.iter().cloned());
        let what = format!("the workers of study {}", self.study);
        let mut text = script::job_script(&what, &self.slurm.setup, &[], &argv);
        if self.slurm.gpus_per_trial.is_some() {
            // The GPUs Slurm gave the task are the ones its worker hands out.
            text.truncate(text.trim_end().len());
            text.push_str(" ${CUDA_VISIBLE_DEVICES:+\"--gpus=$CUDA_VISIBLE_DEVICES\"}\n");
        }
        let path = dir.join("workers.sh");
        std::fs::write(&path, text).map_err(io(&path))?;
        let name = job_name(self.study, "worker");
        let mut args = vec![
            "--parsable".to_owned(),
            format!("--job-name={name}"),
            format!("--array=0-{}", self.count.saturating_sub(1)),
            format!("--output={}/%A_%a.out", script::output_path(&dir)),
            format!("--chdir={}", dir.display()),
        ];
        let options = script::resource_options(self.slurm, self.slurm.time);
        args.extend(options.iter().cloned());
        args.push(path.display().to_string());
        let env = [("HYPERION_STORAGE", self.storage)];
        commands::sbatch(&mut Outage::default(), &args, &env).map_err(|e| {
            Error::Config(format!(
                "slurm: sbatch refused the workers' job array ({}): {e}",
                options.join(" ")
            ))
        })
    }
}

impl crate::Study {
    /// Cancels the jobs of this study's running trials that no live run follows: their
    /// launcher is gone, or ran on another machine (where a live run cancels its own jobs
    /// anyway, as it obeys the kill). Their trials go stale and run again later. Returns the
    /// cancelled job ids.
    pub fn cancel_orphaned_jobs(&self) -> Result<Vec<String>, Error> {
        let machine = Machine::this();
        let ids: Vec<String> = {
            let view = self.sync()?;
            view.running()
                .filter_map(|t| view.launch(t.number))
                .filter(|l| !machine.runs_here(l) || machine.outlived(l))
                .filter_map(|l| l.job.as_ref()?.id.clone())
                .collect()
        };
        if !ids.is_empty() {
            commands::call_patiently(&mut Outage::default(), "scancel", &ids)
                .map_err(slurm_error)?;
        }
        Ok(ids)
    }
}
