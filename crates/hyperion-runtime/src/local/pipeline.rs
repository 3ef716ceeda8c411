//! The pipeline dispatcher: each trial is a pipeline of stage processes on this machine, a
//! cached stage computed once for every trial (and study) whose key it is.
//!
//! A trial's stages run one after another in the pipeline's order. Before a stage starts its
//! key is looked up: a hit skips it, a miss claims it and queues it for a slot, and a key
//! another trial or process is computing leaves the trial waiting *without a slot* until that
//! claim ends (a commit here wakes the waiters at once; a claim of another process is looked at
//! again every tick). Slots (`max_concurrent` processes, and each stage's own limit) go to
//! started trials' stages before a new trial is taken: `has_room` counts the queued ones.
//!
//! Stage processes are followed by the same watcher as plain trials, on a channel of this
//! dispatcher's: one thread (the pump) turns their exits into commits and next stages, and
//! passes the reporting stage's lines and metrics, and the trial's end, to the loop.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyperion_cache::{Cache, Claim, Lookup};
use hyperion_core::{Launch, SearchSpace, StageRun, StageStatus, Trial, TrialNumber};
use nix::sys::signal::Signal;

use super::ProcessGroup;
use super::watch::{Watch, Watcher};
use super::watchdog::Watchdog;
use crate::controller::{Dispatcher, Exit, Message};
use crate::pipeline::PipelineConfig;
use crate::protocol::{self, MetricsTail, ProcessConfig};
use crate::study::Outcome;
use crate::{ActiveTrial, Error};

/// How long a claim holds without a heartbeat; the pump renews its claims every tick.
const LEASE: Duration = Duration::from_secs(30);
/// The pump's tick: heartbeats, and another look at keys other processes compute.
const TICK: Duration = Duration::from_millis(250);

/// Runs trials as pipelines of processes on this machine (see the module's docs).
#[derive(Debug)]
pub struct PipelineDispatcher {
    shared: Arc<Mutex<Shared>>,
    /// Wakes the pump to end it.
    wake: Sender<Message>,
    pump: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    pipeline: Arc<PipelineConfig>,
    cache: Arc<Cache>,
    config: ProcessConfig,
    study: String,
    /// Each code and input path's digest, taken once when the run starts.
    digests: BTreeMap<PathBuf, String>,
    watcher: Watcher,
    watchdog: Arc<Watchdog>,
    flows: HashMap<TrialNumber, Flow>,
    /// Stages ready to start (trial, stage), in the order they became ready.
    queued: VecDeque<(TrialNumber, usize)>,
    /// Processes running, in all and per stage limit (the items of a foreach stage share
    /// one: `limit_of` maps a stage to it).
    running: usize,
    per_stage: Vec<usize>,
    limit_of: Vec<usize>,
    /// The watcher follows processes, not trials: each stage process gets an id of its own,
    /// which it reports as its "trial number".
    procs: HashMap<TrialNumber, (TrialNumber, usize)>,
    next_proc: u64,
    /// The keys of forced stages (`--from-stage`) this run claimed to compute again.
    refreshed: std::collections::HashSet<String>,
    /// The study's GPUs no stage process holds.
    free_gpus: VecDeque<String>,
    /// The batch jobs of the stages that run on Slurm (none when no stage does).
    jobs: Option<crate::slurm::StageJobs>,
    /// The stage processes' channel (the pump reads it) and the loop's.
    stage_tx: Sender<Message>,
    loop_tx: Option<Sender<Message>>,
    /// Set when the dispatcher is dropped: the pump ends.
    closing: bool,
}

/// A trial on its way through the pipeline.
#[derive(Debug)]
struct Flow {
    trial: Trial,
    space: SearchSpace,
    objectives: Vec<String>,
    /// Where each stage is.
    at: Vec<At>,
    /// Each finished stage's output directory and digest.
    outputs: Vec<Option<(PathBuf, String)>>,
    /// Its stages as far as they got, for the store; `unsent` when they changed since the loop
    /// last had them.
    stages: Vec<Option<StageRun>>,
    unsent: bool,
    /// The objectives its reporting stage reported.
    reported: std::collections::BTreeSet<String>,
    /// Its exit went to the loop.
    ended: bool,
}

#[derive(Debug)]
enum At {
    /// A stage it needs is not done.
    Blocked,
    /// It may start when a slot is free: with a claim for a cached stage.
    Queued(Option<Claim>),
    /// Another trial or process computes its key.
    Waiting,
    Running {
        runner: Runner,
        claim: Option<Claim>,
        dir: PathBuf,
        gpus: Vec<String>,
    },
    Done,
}

/// What runs a stage: a process group here, or a batch job (named by its process id).
#[derive(Debug)]
enum Runner {
    Process(ProcessGroup),
    Job(TrialNumber),
}

impl PipelineDispatcher {
    /// Opens the cache, digests the stages' code and inputs, and starts the pump.
    pub fn new(
        study: &str,
        config: &ProcessConfig,
        pipeline: &PipelineConfig,
    ) -> Result<Self, Error> {
        let config = config.ready()?;
        let cache = Cache::open(&pipeline.cache_dir).map_err(|e| Error::Config(e.to_string()))?;
        let digests = pipeline.digests().map_err(Error::Config)?;
        let watcher = Watcher::start().map_err(|source| Error::System {
            what: "start the thread that follows the stages",
            source,
        })?;
        let watchdog = Watchdog::start().map_err(|source| Error::System {
            what: "start the process that kills the stages if the run dies",
            source,
        })?;
        let jobs = (pipeline.stages.iter().any(|s| s.executor == "slurm"))
            .then(|| crate::slurm::StageJobs::new(study, &config))
            .transpose()?;
        let (stage_tx, stage_rx) = mpsc::channel();
        let limit_of = (pipeline.stages.iter())
            .map(|s| {
                (pipeline.stages.iter())
                    .position(|t| t.group() == s.group())
                    .unwrap_or(0)
            })
            .collect();
        let shared = Arc::new(Mutex::new(Shared {
            per_stage: vec![0; pipeline.stages.len()],
            limit_of,
            procs: HashMap::new(),
            next_proc: 0,
            refreshed: Default::default(),
            free_gpus: config.gpus.iter().cloned().collect(),
            jobs,
            pipeline: Arc::new(pipeline.clone()),
            cache: Arc::new(cache),
            config,
            study: study.to_owned(),
            digests,
            watcher,
            watchdog: Arc::new(watchdog),
            flows: HashMap::new(),
            queued: VecDeque::new(),
            running: 0,
            stage_tx: stage_tx.clone(),
            loop_tx: None,
            closing: false,
        }));
        let pump = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("hyperion-pipeline".into())
                .spawn(move || {
                    let pumped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        pump(&shared, &stage_rx)
                    }));
                    if pumped.is_err() {
                        // The loop must not wait for exits that will never come.
                        lock(&shared).send(Message::Failed(Error::System {
                            what: "run the pipeline's stages",
                            source: std::io::Error::other("its thread panicked"),
                        }));
                    }
                })
                .map_err(|source| Error::System {
                    what: "start the pipeline's thread",
                    source,
                })?
        };
        Ok(PipelineDispatcher {
            shared,
            wake: stage_tx,
            pump: Some(pump),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for PipelineDispatcher {
    fn drop(&mut self) {
        let mut shared = self.lock();
        let numbers: Vec<TrialNumber> = shared.flows.keys().copied().collect();
        for number in numbers {
            shared.forget(number);
        }
        shared.loop_tx = None;
        shared.closing = true;
        drop(shared);
        let _ = self.wake.send(Message::Tick);
        if let Some(pump) = self.pump.take() {
            let _ = pump.join();
        }
    }
}

/// The pump: stage exits become commits and next stages; ticks renew leases and look again at
/// keys other processes compute.
fn pump(shared: &Mutex<Shared>, rx: &Receiver<Message>) {
    let mut next_tick = Instant::now() + TICK;
    loop {
        let message = match rx.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
            Ok(message) => Some(message),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut shared = lock(shared);
        if shared.closing {
            return;
        }
        match message {
            Some(Message::Exited { number, exit }) => {
                if let Some((trial, stage)) = shared.procs.remove(&number) {
                    shared.stage_exited(trial, stage, exit);
                }
            }
            Some(message) => shared.pass_on(message),
            None => {}
        }
        if Instant::now() >= next_tick {
            shared.tick();
            next_tick = Instant::now() + TICK;
        }
        shared.start_queued();
        shared.send_stages();
    }
}

impl Shared {
    /// Room for a new trial: a slot that no started trial's ready stage could take. Waiting
    /// trials, and those whose next stage is at its own limit (`TRAINING_DONE_NO_EVAL` behind
    /// a busy eval), hold no slot, but not without end: at most as many again.
    fn has_room(&self) -> bool {
        let max = self.config.max_concurrent.max(1);
        let ready = (self.queued.iter())
            .filter(|(_, i)| self.may_start(*i))
            .count();
        self.running + ready < max && self.flows.len() < 2 * max
    }

    /// Whether stage `index` is below its own limit, with the GPUs it needs free.
    fn may_start(&self, index: usize) -> bool {
        let stage = &self.pipeline.stages[index];
        let limit = self.limit_of[index];
        stage
            .max_concurrent
            .is_none_or(|m| self.per_stage[limit] < m)
            && self.free_gpus.len() >= self.local_gpus(index)
    }

    /// The GPUs of this machine a process of stage `index` holds: a Slurm stage's come from
    /// Slurm.
    fn local_gpus(&self, index: usize) -> usize {
        let stage = &self.pipeline.stages[index];
        if stage.executor == "slurm" {
            0
        } else {
            stage.gpus
        }
    }

    /// Records where stage `index` of trial `number` is (keeping the key it had, when `key` is
    /// `None`); the loop gets it with the next [`Shared::send_stages`].
    fn record(
        &mut self,
        number: TrialNumber,
        index: usize,
        status: StageStatus,
        cached: bool,
        key: Option<String>,
    ) {
        let Some(flow) = self.flows.get_mut(&number) else {
            return;
        };
        let key = key.or_else(|| flow.stages[index].as_ref().and_then(|r| r.key.clone()));
        flow.stages[index] = Some(StageRun {
            stage: self.pipeline.stages[index].name.clone(),
            status,
            cached,
            key,
        });
        flow.unsent = true;
    }

    /// Gives the loop the stages that changed, one message per trial whatever the steps since.
    fn send_stages(&mut self) {
        let mut sent = Vec::new();
        for (number, flow) in &mut self.flows {
            if std::mem::take(&mut flow.unsent) {
                sent.push(Message::Stages {
                    number: *number,
                    stages: flow.stages.iter().flatten().cloned().collect(),
                });
            }
        }
        for message in sent {
            self.send(message);
        }
    }

    fn send(&self, message: Message) {
        if let Some(tx) = &self.loop_tx {
            let _ = tx.send(message);
        }
    }

    /// A line or metric of a stage process: the reporting stage's go to the loop, as its
    /// trial's.
    fn pass_on(&mut self, message: Message) {
        let proc = match &message {
            Message::Output { number, .. }
            | Message::Metrics { number, .. }
            | Message::Malformed { number, .. } => *number,
            _ => return,
        };
        let Some(&(number, index)) = self.procs.get(&proc) else {
            return;
        };
        if index == self.pipeline.reporter {
            self.report(renumber(message, number), number);
        }
    }

    /// Sends a message of trial `number`'s reporting stage, noting the objectives it reports.
    fn report(&mut self, message: Message, number: TrialNumber) {
        let Some(flow) = self.flows.get_mut(&number) else {
            return;
        };
        if let Message::Metrics { record, .. } = &message {
            let reported = record.1.keys().filter(|k| flow.objectives.contains(k));
            flow.reported.extend(reported.cloned());
        }
        self.send(message);
    }

    /// Ends the trial with `exit`: what it still runs is stopped. The slot it frees goes to a
    /// started trial's ready stage first, and the loop hears of that (and of every stage
    /// recorded) before the end, so its log shows the order.
    fn finish(&mut self, number: TrialNumber, exit: Exit) {
        let Some(flow) = self.flows.get_mut(&number) else {
            return;
        };
        if std::mem::replace(&mut flow.ended, true) {
            return;
        }
        self.stop_stages(number);
        self.start_queued();
        self.send_stages();
        self.send(Message::Exited { number, exit });
    }

    fn fail(&mut self, number: TrialNumber, error: String) {
        self.finish(number, Exit::Returned(Outcome::Failed { error }));
    }

    /// Kills trial `number`'s running stages and gives back its claims.
    fn stop_stages(&mut self, number: TrialNumber) {
        self.queued.retain(|(n, _)| *n != number);
        let Some(flow) = self.flows.get_mut(&number) else {
            return;
        };
        let mut freed = Vec::new();
        for (index, at) in flow.at.iter_mut().enumerate() {
            match std::mem::replace(at, At::Blocked) {
                At::Running {
                    runner,
                    claim,
                    gpus,
                    ..
                } => {
                    if let (Runner::Job(proc), Some(jobs)) = (&runner, self.jobs.as_mut()) {
                        jobs.cancel(*proc, None);
                    }
                    drop(runner);
                    self.free_gpus.extend(gpus);
                    freed.push((index, claim, true));
                }
                At::Queued(claim) => freed.push((index, claim, false)),
                At::Done => *at = At::Done,
                _ => {}
            }
        }
        for (index, claim, running) in freed {
            if running {
                self.running -= 1;
                self.per_stage[self.limit_of[index]] -= 1;
            }
            if let Some(claim) = claim {
                let _ = self.cache.release(&claim);
            }
        }
        self.procs.retain(|_, (n, _)| *n != number);
    }

    /// Takes trial `number`'s stages as far as they go: each stage whose needs are done is
    /// looked up; hits are done at once, a miss is queued with its claim, a key being computed
    /// elsewhere leaves the stage waiting. The reporting stage done ends the trial.
    fn advance(&mut self, number: TrialNumber) {
        let pipeline = self.pipeline.clone();
        // Each stage is looked up once per call: a key computed elsewhere stays waiting.
        let mut looked = vec![false; pipeline.stages.len()];
        loop {
            let Some(flow) = self.flows.get(&number) else {
                return;
            };
            if flow.ended {
                return;
            }
            if matches!(flow.at[pipeline.reporter], At::Done) {
                return self.finish(number, success());
            }
            let ready = (0..pipeline.stages.len()).find(|&i| {
                !looked[i]
                    && matches!(flow.at[i], At::Blocked | At::Waiting)
                    && pipeline.stages[i]
                        .needs
                        .iter()
                        .all(|&n| matches!(flow.at[n], At::Done))
            });
            let Some(index) = ready else {
                return;
            };
            looked[index] = true;
            let waiting_before = matches!(flow.at[index], At::Waiting);
            let stage = &pipeline.stages[index];
            if !stage.cache {
                self.record(number, index, StageStatus::Queued, false, None);
                self.queue(number, index, None);
                continue;
            }
            let upstream = stage
                .needs
                .iter()
                .filter_map(|&n| {
                    let (_, digest) = flow.outputs[n].as_ref()?;
                    Some((pipeline.stages[n].name.clone(), digest.clone()))
                })
                .collect();
            let material = stage.material(&flow.trial.params, &self.digests, upstream);
            let key = material.key();
            let holder = self.holder(number);
            let looked_up =
                if pipeline.force.get(index) == Some(&true) && !self.refreshed.contains(&key) {
                    let claimed = self.cache.claim_again(&material, LEASE, &holder);
                    if let Ok(Lookup::Run(_)) = &claimed {
                        self.refreshed.insert(key.clone());
                    }
                    claimed
                } else {
                    self.cache.lookup(&material, LEASE, stage.retries, &holder)
                };
            let key = Some(key);
            match looked_up {
                Ok(Lookup::Hit(entry)) => {
                    self.link(number, index, &entry.dir);
                    self.record(number, index, StageStatus::Done, true, key);
                    if index == pipeline.reporter {
                        self.replay(number, &entry.dir);
                    }
                    let flow = self.flows.get_mut(&number).expect("looked up");
                    flow.outputs[index] = Some((entry.out(), entry.digest));
                    flow.at[index] = At::Done;
                }
                Ok(Lookup::Run(claim)) => {
                    self.record(number, index, StageStatus::Queued, false, key);
                    self.queue(number, index, Some(claim));
                }
                Ok(Lookup::Wait) => {
                    if !waiting_before {
                        self.record(number, index, StageStatus::Waiting, false, key);
                    }
                    // Other stages of the trial go on meanwhile; this one is looked at again
                    // when a claim ends.
                    self.flows.get_mut(&number).expect("looked up").at[index] = At::Waiting;
                }
                Ok(Lookup::Failed(error)) => {
                    let name = stage.name.clone();
                    self.record(number, index, StageStatus::Failed, false, key);
                    return self.fail(number, format!("stage `{name}` failed: {error}"));
                }
                Err(e) => {
                    self.record(number, index, StageStatus::Failed, false, key);
                    return self.fail(number, e.to_string());
                }
            }
        }
    }

    fn queue(&mut self, number: TrialNumber, index: usize, claim: Option<Claim>) {
        if let Some(flow) = self.flows.get_mut(&number) {
            flow.at[index] = At::Queued(claim);
            self.queued.push_back((number, index));
        }
    }

    /// Starts queued stages while slots are free: the highest `priority` first, then the
    /// oldest; one whose stage is at its own limit lets the next go.
    fn start_queued(&mut self) {
        let max = self.config.max_concurrent.max(1);
        self.queued.retain(|(n, i)| {
            (self.flows.get(n)).is_some_and(|f| !f.ended && matches!(f.at[*i], At::Queued(_)))
        });
        while self.running < max {
            let priority = |i: usize| self.pipeline.stages[i].priority;
            let next = (0..self.queued.len())
                .filter(|&q| self.may_start(self.queued[q].1))
                .max_by_key(|&q| (priority(self.queued[q].1), std::cmp::Reverse(q)));
            let Some(q) = next else {
                return;
            };
            let (number, index) = self.queued.remove(q).expect("an index of the queue");
            self.start(number, index);
        }
    }

    /// Starts stage `index` of trial `number`: in its claim's directory when cached, in the
    /// trial's directory otherwise.
    fn start(&mut self, number: TrialNumber, index: usize) {
        let pipeline = self.pipeline.clone();
        let flow = self.flows.get_mut(&number).expect("queued");
        let At::Queued(claim) = std::mem::replace(&mut flow.at[index], At::Blocked) else {
            return;
        };
        let stage = &pipeline.stages[index];
        let trial_dir = protocol::trial_dir(&self.config.trials_dir, number);
        let dir = match &claim {
            Some(claim) => claim.dir.clone(),
            None => stage.trial_path(&trial_dir),
        };
        let out = dir.join("out");
        let trial = crate::TrialRef {
            study: &self.study,
            space: &flow.space,
            number,
            id: flow.trial.id.0,
            params: &flow.trial.params,
            dir: &trial_dir,
        };
        let objectives = flow.objectives.clone();
        let proc = TrialNumber(self.next_proc);
        let command = std::fs::create_dir_all(&out)
            .map_err(|e| format!("cannot create {}: {e}", out.display()))
            .and_then(|()| pipeline.command(index, &self.config, &trial, &dir));
        let gpus: Vec<String> = self.free_gpus.drain(..self.local_gpus(index)).collect();
        let started = command.and_then(|mut command| {
            std::fs::File::create(dir.join("metrics.jsonl"))
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let parse = protocol::stdout_parser(&self.config, objectives.clone());
            if let (true, Some(jobs)) = (stage.executor == "slurm", self.jobs.as_mut()) {
                let what = format!("{number}-{}", stage.name);
                let name = crate::slurm::StageJobs::name(&self.study, &what);
                let tx = &self.stage_tx;
                jobs.submit(
                    proc, &name, &command, stage.gpus, &dir, objectives, parse, tx,
                )?;
                return Ok(Runner::Job(proc));
            }
            command
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0);
            // A stage sees the GPUs it holds, and no others.
            if !self.config.gpus.is_empty() {
                command.env("CUDA_VISIBLE_DEVICES", gpus.join(","));
            }
            let child = command
                .spawn()
                .map_err(|e| format!("cannot start `{}`: {e}", command.get_program().display()))?;
            let group = ProcessGroup::new(child.id(), &self.watchdog);
            let watch = Watch {
                number: proc,
                child,
                metrics: MetricsTail::new(dir.join("metrics.jsonl"), objectives),
                dir: dir.clone(),
                parse,
                reaped: group.reaped.clone(),
                tx: self.stage_tx.clone(),
            };
            self.watcher.add(watch)?;
            Ok(Runner::Process(group))
        });
        match started {
            Ok(runner) => {
                self.next_proc += 1;
                self.procs.insert(proc, (number, index));
                self.flows.get_mut(&number).expect("queued").at[index] = At::Running {
                    runner,
                    claim,
                    dir,
                    gpus,
                };
                self.running += 1;
                self.per_stage[self.limit_of[index]] += 1;
                self.record(number, index, StageStatus::Running, false, None);
            }
            Err(e) => {
                self.free_gpus.extend(gpus);
                let error = format!("stage `{}`: {e}", stage.name);
                if let Some(claim) = &claim {
                    let _ = self.cache.fail(claim, &error);
                }
                self.record(number, index, StageStatus::Failed, false, None);
                self.fail(number, error);
            }
        }
    }

    /// Stage `index` of trial `number` ended: commit and go on, or end the trial.
    fn stage_exited(&mut self, number: TrialNumber, index: usize, exit: Exit) {
        let Some(flow) = self.flows.get_mut(&number) else {
            return;
        };
        let At::Running {
            claim, dir, gpus, ..
        } = std::mem::replace(&mut flow.at[index], At::Blocked)
        else {
            return;
        };
        self.free_gpus.extend(gpus);
        self.running -= 1;
        self.per_stage[self.limit_of[index]] -= 1;
        let pipeline = self.pipeline.clone();
        let stage = &pipeline.stages[index];
        let name = stage.name.clone();
        let reporter = index == pipeline.reporter;
        let ok = matches!(&exit, Exit::Process { status: Ok(s), .. } if s.success());
        if !ok {
            let error = match &exit {
                Exit::Process {
                    status: Ok(status),
                    stderr_tail,
                    ..
                } => match status.signal() {
                    Some(signal) => format!("killed by signal {signal}"),
                    None => format!(
                        "exit code {}{}",
                        status.code().unwrap_or(-1),
                        protocol::stderr_summary(stderr_tail)
                    ),
                },
                other => format!("{other:?}"),
            };
            let signalled =
                matches!(&exit, Exit::Process { status: Ok(s), .. } if s.signal().is_some());
            if !signalled {
                self.record(number, index, StageStatus::Failed, false, None);
            }
            if let Some(claim) = &claim {
                // A stage stopped by a signal (a pruned trial, a timeout, a kill) did not fail:
                // its key is free for the next trial that needs it.
                let _ = if signalled {
                    self.cache.release(claim)
                } else {
                    self.cache.fail(claim, &error)
                };
            }
            self.wake_waiters();
            if reporter {
                // The loop reads the reporter's exit as a plain trial's.
                return self.finish(number, exit);
            }
            return self.fail(number, format!("stage `{name}`: {error}"));
        }
        if reporter && let Some(missing) = self.unreported(number) {
            // A failure of the stage, as a non-zero exit is: not a result to keep.
            self.record(number, index, StageStatus::NotCompleted, false, None);
            let stages: Vec<StageRun> = self.flows[&number]
                .stages
                .iter()
                .flatten()
                .cloned()
                .collect();
            let phase = hyperion_core::lifecycle(&stages).unwrap_or_default();
            let error = format!(
                "{phase}: stage `{name}` exited 0 but never reported {missing} (append {{{missing}: …}} \
                 to $HYPERION_METRICS_FILE, or print a metric line)"
            );
            if let Some(claim) = &claim {
                let _ = self.cache.fail(claim, &error);
            }
            self.wake_waiters();
            return self.fail(number, error);
        }
        let committed = match &claim {
            Some(claim) => self
                .cache
                .commit(claim, &stage.outputs)
                .map(|entry| (entry.dir.clone(), entry.out(), entry.digest))
                .map_err(|e| {
                    let _ = self.cache.fail(claim, &e.to_string());
                    e.to_string()
                }),
            None => {
                let out = dir.join("out");
                match stage.outputs.iter().find(|o| !out.join(o).exists()) {
                    Some(missing) => {
                        Err(format!("the stage exited 0 but did not write `{missing}`"))
                    }
                    None => hyperion_cache::digest::of_path(&out)
                        .map(|d| (dir.clone(), out, d))
                        .map_err(|e| e.to_string()),
                }
            }
        };
        self.wake_waiters();
        let (entry_dir, out, digest) = match committed {
            Ok(c) => c,
            Err(e) => {
                self.record(number, index, StageStatus::Failed, false, None);
                return self.fail(number, format!("stage `{name}`: {e}"));
            }
        };
        self.record(number, index, StageStatus::Done, false, None);
        if claim.is_some() {
            self.link(number, index, &entry_dir);
        }
        if let Some(flow) = self.flows.get_mut(&number) {
            flow.outputs[index] = Some((out, digest));
            flow.at[index] = At::Done;
        }
        self.advance(number);
    }

    /// The first objective trial `number`'s reporting stage did not report, quoted.
    fn unreported(&self, number: TrialNumber) -> Option<String> {
        let flow = self.flows.get(&number)?;
        let missing = flow
            .objectives
            .iter()
            .find(|o| !flow.reported.contains(*o))?;
        Some(format!("\"{missing}\""))
    }

    /// Shows a cached stage's entry in the trial's directory as `<trial>/<stage>` (an item's
    /// as `<trial>/<stage>/<value>`).
    fn link(&self, number: TrialNumber, index: usize, entry: &std::path::Path) {
        let trial_dir = protocol::trial_dir(&self.config.trials_dir, number);
        let link = self.pipeline.stages[index].trial_path(&trial_dir);
        if let Some(parent) = link.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::remove_file(&link);
        let _ = std::os::unix::fs::symlink(entry, &link);
    }

    /// The metrics a cached reporting stage wrote (its metrics file, then its stdout's metric
    /// lines), sent as if it ran now.
    fn replay(&mut self, number: TrialNumber, dir: &std::path::Path) {
        let Some(flow) = self.flows.get(&number) else {
            return;
        };
        let records = protocol::records_in(dir, &self.config, &flow.objectives);
        for record in records {
            self.report(Message::metrics(number, record), number);
        }
    }

    /// A claim ended: the trials waiting for a key look again.
    fn wake_waiters(&mut self) {
        let waiting: Vec<TrialNumber> = self
            .flows
            .iter()
            .filter(|(_, f)| !f.ended && f.at.iter().any(|a| matches!(a, At::Waiting)))
            .map(|(n, _)| *n)
            .collect();
        for number in waiting {
            self.advance(number);
        }
    }

    fn tick(&mut self) {
        let claims: Vec<&Claim> = self
            .flows
            .values()
            .flat_map(|f| f.at.iter())
            .filter_map(|at| match at {
                At::Running { claim, .. } | At::Queued(claim) => claim.as_ref(),
                _ => None,
            })
            .collect();
        self.cache.heartbeat(claims, LEASE);
        self.wake_waiters();
    }

    /// What the cache calls trial `number` when it pins the entries the trial needs.
    fn holder(&self, number: TrialNumber) -> String {
        format!("{}/{number}", self.study)
    }

    /// Drops trial `number`: its processes are killed, its claims given back, its entries
    /// unpinned.
    fn forget(&mut self, number: TrialNumber) {
        let _ = self.cache.unpin(&self.holder(number));
        self.stop_stages(number);
        self.flows.remove(&number);
    }

    fn signal(&mut self, number: TrialNumber, signal: Signal) {
        let Some(flow) = self.flows.get(&number) else {
            return;
        };
        if flow.ended {
            return;
        }
        let mut running = false;
        let mut jobs = Vec::new();
        for at in &flow.at {
            match at {
                At::Running {
                    runner: Runner::Process(group),
                    ..
                } => group.signal(signal),
                At::Running {
                    runner: Runner::Job(proc),
                    ..
                } => jobs.push(*proc),
                _ => continue,
            }
            running = true;
        }
        if let Some(slurm) = self.jobs.as_mut() {
            let name = if signal == Signal::SIGKILL {
                "KILL"
            } else {
                "TERM"
            };
            for proc in jobs {
                slurm.cancel(proc, Some(name));
            }
        }
        if !running {
            // Nothing runs: it ends now, as a process stopped by that signal would.
            self.finish(
                number,
                Exit::Process {
                    status: Ok(ExitStatus::from_raw(signal as i32)),
                    stderr_tail: Vec::new(),
                    at: Instant::now(),
                },
            );
        }
    }
}

/// `message` as trial `number`'s (the watcher numbers processes).
fn renumber(message: Message, number: TrialNumber) -> Message {
    match message {
        Message::Output { stderr, line, .. } => Message::Output {
            number,
            stderr,
            line,
        },
        Message::Metrics { record, .. } => Message::Metrics { number, record },
        Message::Malformed { line, why, .. } => Message::Malformed { number, line, why },
        other => other,
    }
}

/// A stage that was not run but found: its exit, as a process's exit 0.
fn success() -> Exit {
    Exit::Process {
        status: Ok(ExitStatus::from_raw(0)),
        stderr_tail: Vec::new(),
        at: Instant::now(),
    }
}

impl<'s> Dispatcher<'s> for PipelineDispatcher {
    fn has_room(&self) -> bool {
        self.lock().has_room()
    }

    fn launch(
        &mut self,
        trial: ActiveTrial<'s>,
        tx: &Sender<Message>,
    ) -> Result<Option<Launch>, String> {
        let spec = trial.study().spec();
        let objectives: Vec<String> = spec.objectives.iter().map(|o| o.metric.clone()).collect();
        let mut shared = self.lock();
        shared.loop_tx = Some(tx.clone());
        let number = trial.number();
        let trial_dir = protocol::trial_dir(&shared.config.trials_dir, number);
        std::fs::create_dir_all(&trial_dir)
            .and_then(|()| {
                std::fs::write(
                    trial_dir.join("params.json"),
                    serde_json::to_vec_pretty(&*trial.trial().params).unwrap_or_default(),
                )
            })
            .map_err(|e| format!("cannot prepare {}: {e}", trial_dir.display()))?;
        let stages = shared.pipeline.stages.len();
        shared.flows.insert(
            number,
            Flow {
                trial: trial.trial().clone(),
                space: spec.space.clone(),
                objectives,
                at: (0..stages).map(|_| At::Blocked).collect(),
                outputs: vec![None; stages],
                stages: vec![None; stages],
                unsent: false,
                reported: Default::default(),
                ended: false,
            },
        );
        shared.advance(number);
        shared.start_queued();
        shared.send_stages();
        // Stage processes come and go: a dead run's are killed by the watchdog, so no launch
        // is recorded for a later run to clean up.
        Ok(None)
    }

    fn stop(&mut self, number: TrialNumber) {
        self.lock().signal(number, Signal::SIGTERM);
    }

    fn kill(&mut self, number: TrialNumber) {
        self.lock().signal(number, Signal::SIGKILL);
    }

    fn release(&mut self, number: TrialNumber) {
        let mut shared = self.lock();
        shared.forget(number);
        shared.start_queued();
    }
}
