//! One thread follows all of a dispatcher's jobs: one `squeue` for all of them per tick, and
//! their files (stdout, stderr, metrics) read as the local trial protocol has them. When a job
//! ends, its last lines are sent, then its exit.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hyperion_core::TrialNumber;

use super::commands::{self, JobState, Outage, Refusal};
use crate::Outcome;
use crate::controller::{Exit, Message};
use crate::protocol::{self, LineTail, MetricsTail, Parse, STDERR_TAIL};

/// How often files are read: appends to a file cannot wake anyone.
const READ_EVERY: Duration = Duration::from_millis(250);
/// How often `squeue` is asked while a job is waiting to start, or was just submitted or
/// cancelled: what decides how soon the next trial starts.
const FAST_TICK: Duration = Duration::from_millis(250);
/// …and while every job runs: most of a long trial's life, when nothing is expected.
const SLOW_TICK: Duration = Duration::from_secs(2);
/// How long after a change a job is watched at the fast tick.
const SETTLING: Duration = Duration::from_secs(5);

/// Pending reasons that no waiting clears: the job can never start as it was asked.
const NEVER: [&str; 12] = [
    "BadConstraints",
    "PartitionConfig",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "InvalidAccount",
    "InvalidQOS",
    "QOSJobLimit",
    "AccountNotAllowed",
    "QOSNotAllowed",
    "DependencyNeverSatisfied",
    "PartitionDown",
    "InactiveLimit",
];

/// Whether a job pending for `reason` can never start.
pub(super) fn never_starts(reason: &str) -> bool {
    NEVER.contains(&reason)
}

/// A job to follow.
pub(super) struct Job {
    pub number: TrialNumber,
    pub id: String,
    pub dir: PathBuf,
    pub objectives: Vec<String>,
    pub parse: Parse,
    pub tx: Sender<Message>,
}

struct Followed {
    job: Job,
    stdout: LineTail,
    stderr: LineTail,
    metrics: MetricsTail,
    tail: VecDeque<String>,
    /// When something last changed (submitted, started, cancelled).
    changed: Instant,
    state: String,
    /// Whether Hyperion cancelled it: a cancellation then is the loop's stop, not a loss.
    cancelled: bool,
    /// `squeue` ticks it was missing from.
    missing: u32,
}

#[derive(Default)]
struct Shared {
    jobs: BTreeMap<TrialNumber, Followed>,
    done: bool,
}

/// The handle on the thread; dropping it ends the thread.
pub(super) struct Poller {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Poller")
    }
}

impl Poller {
    pub(super) fn start() -> std::io::Result<Self> {
        let shared: Arc<(Mutex<Shared>, Condvar)> = Arc::default();
        let thread = std::thread::Builder::new()
            .name("hyperion-slurm".into())
            .spawn({
                let shared = shared.clone();
                move || run(&shared)
            })?;
        Ok(Poller {
            shared,
            thread: Some(thread),
        })
    }

    pub(super) fn add(&self, job: Job) {
        let dir = job.dir.clone();
        let followed = Followed {
            stdout: LineTail::new(dir.join("stdout.log")),
            stderr: LineTail::new(dir.join("stderr.log")),
            metrics: MetricsTail::new(dir.join("metrics.jsonl"), job.objectives.clone()),
            tail: VecDeque::new(),
            changed: Instant::now(),
            state: String::new(),
            cancelled: false,
            missing: 0,
            job,
        };
        lock_of(&self.shared.0)
            .jobs
            .insert(followed.job.number, followed);
    }

    /// Marks `number` as cancelled by Hyperion; returns its job id.
    pub(super) fn cancelled(&self, number: TrialNumber) -> Option<String> {
        let mut shared = lock_of(&self.shared.0);
        let followed = shared.jobs.get_mut(&number)?;
        followed.cancelled = true;
        followed.changed = Instant::now();
        Some(followed.job.id.clone())
    }

    /// The ids of the jobs still followed.
    pub(super) fn ids(&self) -> Vec<String> {
        lock_of(&self.shared.0)
            .jobs
            .values()
            .map(|f| f.job.id.clone())
            .collect()
    }

    pub(super) fn len(&self) -> usize {
        lock_of(&self.shared.0).jobs.len()
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        let (lock, wake) = &*self.shared;
        lock_of(lock).done = true;
        wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(shared: &(Mutex<Shared>, Condvar)) {
    let (lock, wake) = shared;
    let mut outage = Outage::default();
    let mut last_squeue = Instant::now();
    loop {
        let ids: Vec<String> = {
            let mut guard = lock_of(lock);
            // The tick is the one the jobs need now: a job just submitted or cancelled makes
            // it fast, without a call of its own.
            let now = Instant::now();
            let due = last_squeue + tick(&guard.jobs, now);
            let until = due.min(now + READ_EVERY);
            if !guard.done && until > now {
                guard = wake
                    .wait_timeout(guard, until - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if guard.done {
                return;
            }
            for followed in guard.jobs.values_mut() {
                read_files(followed);
            }
            let now = Instant::now();
            if guard.jobs.is_empty() || now < last_squeue + tick(&guard.jobs, now) {
                continue;
            }
            guard.jobs.values().map(|f| f.job.id.clone()).collect()
        };
        last_squeue = Instant::now();
        let states = outage.note("squeue", commands::squeue(&ids));
        let mut guard = lock_of(lock);
        match states {
            Ok(states) => {
                let by_id: BTreeMap<&str, &JobState> =
                    states.iter().map(|s| (s.id.as_str(), s)).collect();
                let mut gone = Vec::new();
                for (&number, followed) in guard.jobs.iter_mut() {
                    match by_id.get(followed.job.id.as_str()) {
                        Some(state) => {
                            followed.missing = 0;
                            if let Some(exit) = observe(followed, state) {
                                gone.push((number, exit));
                            }
                        }
                        None => followed.missing += 1,
                    }
                }
                gone.extend(vanished(&mut guard.jobs));
                for (number, exit) in gone {
                    if let Some(mut followed) = guard.jobs.remove(&number) {
                        finish(&mut followed, exit);
                    }
                }
            }
            // Said once by `outage`; the jobs keep running meanwhile, and are asked about
            // again at the next tick.
            Err(Refusal::Unreachable(_)) => {}
            Err(e) => eprintln!("warning: cannot read the jobs' states: {e}"),
        }
    }
}

/// Between two `squeue` calls: fast while a job waits to start or was just submitted, started
/// or cancelled, slow while every job runs.
fn tick(jobs: &BTreeMap<TrialNumber, Followed>, now: Instant) -> Duration {
    let settling = jobs
        .values()
        .any(|f| f.state != "RUNNING" || f.cancelled || now.duration_since(f.changed) < SETTLING);
    if settling { FAST_TICK } else { SLOW_TICK }
}

/// Takes in a job's state; returns its exit when it has ended.
fn observe(followed: &mut Followed, job: &JobState) -> Option<Exit> {
    // The lines written until now, for the error of a job that ended.
    read_files(followed);
    if followed.state != job.state {
        followed.state = job.state.clone();
        followed.changed = Instant::now();
    }
    let id = &job.id;
    let tail = |followed: &Followed| {
        let tail: Vec<String> = followed.tail.iter().cloned().collect();
        protocol::stderr_summary(&tail)
    };
    let failed = |error: String| Some(Exit::Returned(Outcome::Failed { error }));
    // Our jobs are never requeued on purpose: a restart means the first run was lost.
    if job.restarts > 0 && !followed.cancelled {
        cancel(&followed.job.id);
        return Some(Exit::Lost(format!(
            "Slurm requeued job {id} (preempted, or its node failed); it runs again as a new trial"
        )));
    }
    match job.state.as_str() {
        "PENDING" if never_starts(&job.reason) && !followed.cancelled => {
            cancel(&followed.job.id);
            failed(format!(
                "Slurm cannot start job {id}: {} (check the slurm: section's partition, account, \
                 qos and resources)",
                job.reason
            ))
        }
        "COMPLETED" => Some(process_exit(followed, job.wait_status)),
        "FAILED" if matches!(job.reason.as_str(), "NonZeroExitCode" | "None") => {
            Some(process_exit(followed, job.wait_status))
        }
        "FAILED" => failed(format!(
            "Slurm job {id} failed on {}: {}{}",
            if job.nodes.is_empty() {
                "no node"
            } else {
                &job.nodes
            },
            job.reason,
            tail(followed)
        )),
        "OUT_OF_MEMORY" => failed(format!("out of memory (Slurm job {id}){}", tail(followed))),
        "TIMEOUT" => failed(format!(
            "time limit: Slurm ended job {id} at its --time{}",
            tail(followed)
        )),
        "DEADLINE" => failed(format!("Slurm ended job {id} at its deadline")),
        "CANCELLED" if followed.cancelled => Some(process_exit(followed, job.wait_status)),
        "CANCELLED" => Some(Exit::Lost(format!(
            "Slurm job {id} was cancelled, not by Hyperion"
        ))),
        "PREEMPTED" | "NODE_FAIL" | "BOOT_FAIL" | "REVOKED" => Some(Exit::Lost(format!(
            "Slurm job {id} ended as {} ({})",
            job.state, job.reason
        ))),
        _ => None,
    }
}

/// The jobs missing from two `squeue` answers in a row: how they ended comes from
/// accounting where it is on, else they are lost.
fn vanished(jobs: &mut BTreeMap<TrialNumber, Followed>) -> Vec<(TrialNumber, Exit)> {
    let missing: Vec<(TrialNumber, String)> = jobs
        .iter()
        .filter(|(_, f)| f.missing >= 2)
        .map(|(&n, f)| (n, f.job.id.clone()))
        .collect();
    if missing.is_empty() {
        return Vec::new();
    }
    let ids: Vec<String> = missing.iter().map(|(_, id)| id.clone()).collect();
    let accounted: BTreeMap<String, (String, i32)> = commands::sacct(&ids)
        .unwrap_or_default()
        .into_iter()
        .map(|(id, state, status)| (id, (state, status)))
        .collect();
    missing
        .into_iter()
        .map(|(number, id)| {
            let followed = jobs.get_mut(&number).expect("a followed job");
            let exit = match accounted.get(&id) {
                Some((state, status)) => {
                    let job = JobState {
                        id: id.clone(),
                        name: String::new(),
                        state: state.clone(),
                        reason: "None".into(),
                        wait_status: *status,
                        restarts: 0,
                        nodes: String::new(),
                    };
                    observe(followed, &job)
                }
                None => None,
            };
            let exit = exit.unwrap_or_else(|| {
                Exit::Lost(format!(
                    "Slurm no longer knows job {id} (MinJobAge passed, or its controller lost \
                     its state)"
                ))
            });
            (number, exit)
        })
        .collect()
}

/// The exit of a job whose batch script (the command, run with `exec`) ended: as a local
/// process's, with its stderr's tail.
fn process_exit(followed: &mut Followed, wait_status: i32) -> Exit {
    read_files(followed);
    Exit::Process {
        status: Ok(ExitStatus::from_raw(wait_status)),
        stderr_tail: followed.tail.iter().cloned().collect(),
        at: Instant::now(),
    }
}

/// Sends the job's new lines and metric records.
fn read_files(followed: &mut Followed) {
    let Followed {
        job,
        stdout,
        stderr,
        metrics,
        tail,
        ..
    } = followed;
    for line in stdout.lines() {
        for record in (job.parse)(&line) {
            let _ = job.tx.send(Message::metrics(job.number, record));
        }
        let _ = job.tx.send(Message::Output {
            number: job.number,
            stderr: false,
            line,
        });
    }
    for line in stderr.lines() {
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        let _ = job.tx.send(Message::Output {
            number: job.number,
            stderr: true,
            line,
        });
    }
    for record in metrics.read() {
        let _ = job.tx.send(Message::metrics(job.number, record));
    }
}

/// Sends what is left of an ended job, then its exit.
fn finish(followed: &mut Followed, exit: Exit) {
    read_files(followed);
    if let Some(rest) = followed.stderr.rest() {
        followed.tail.push_back(rest);
    }
    let exit = match exit {
        Exit::Process { status, at, .. } => Exit::Process {
            status,
            stderr_tail: followed.tail.iter().cloned().collect(),
            at,
        },
        other => other,
    };
    let _ = followed.job.tx.send(Message::Exited {
        number: followed.job.number,
        exit,
    });
}

/// Cancels a job the thread found it must end (requeued, or never to start).
fn cancel(id: &str) {
    if let Err(e) = commands::call("scancel", &[id.to_owned()]) {
        eprintln!("warning: cannot cancel Slurm job {id}: {e}");
    }
}

fn lock_of<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
