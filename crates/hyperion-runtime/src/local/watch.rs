//! The one thread that follows every trial of a [`super::LocalDispatcher`]: it reads their
//! stdout and stderr into `stdout.log` and `stderr.log`, sends their lines and metric lines,
//! reads their metrics files, and reaps them, all from one `poll(2)`. A launch starts no
//! thread, and a trial's exit reaches the loop in one hand-off, after its last line.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{PipeReader, PipeWriter, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyperion_core::TrialNumber;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use rustix::event::{PollFd, PollFlags, Timespec, poll};

use crate::controller::{Exit, Message};
use crate::protocol::{self, MetricsTail, Parse};

/// How often the metrics files are read: appends to a file cannot wake anyone.
const METRICS_POLL: Duration = Duration::from_millis(100);
/// A longer line is taken in pieces, so that output without newlines cannot fill memory.
const MAX_LINE: usize = 1 << 20;

/// A started trial, handed to the watcher.
pub(super) struct Watch {
    pub number: TrialNumber,
    /// The group's leader, with stdout and stderr piped.
    pub child: Child,
    pub dir: PathBuf,
    pub parse: Parse,
    pub metrics: MetricsTail,
    /// Set, under its lock, when the leader is reaped: its pid may then name another process.
    pub reaped: Arc<Mutex<bool>>,
    pub tx: Sender<Message>,
}

/// The handle on the watching thread, which ends when this is dropped.
#[derive(Debug)]
pub(super) struct Watcher {
    // Dropped before `wake`, so that the thread, woken by the end of `wake`, finds the
    // channel closed.
    watches: Sender<Followed>,
    wake: PipeWriter,
}

impl Watcher {
    pub fn start() -> std::io::Result<Self> {
        let (woken, wake) = std::io::pipe()?;
        let (watches, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("hyperion-watch".into())
            .spawn(move || run(rx, woken))?;
        Ok(Watcher { watches, wake })
    }

    /// Follows `watch` until its leader has exited and its pipes are closed; then sends its
    /// last metrics and its exit.
    pub fn add(&mut self, mut watch: Watch) -> Result<(), String> {
        let pid = watch.child.id() as i32;
        match exit_fd(pid) {
            Ok(exit) => {
                let followed = Followed {
                    out: Pipe::new(watch.child.stdout.take(), watch.dir.join("stdout.log")),
                    err: Pipe::new(watch.child.stderr.take(), watch.dir.join("stderr.log")),
                    exit,
                    tail: VecDeque::new(),
                    status: None,
                    watch,
                };
                // The thread outlives every handle but this one: sending cannot fail.
                let _ = self.watches.send(followed);
                let _ = self.wake.write_all(&[1]);
                Ok(())
            }
            Err(e) => {
                // Not followed, so not left running: kill it and reap it here.
                let mut reaped = lock(&watch.reaped);
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = watch.child.wait();
                *reaped = true;
                Err(format!("cannot follow the trial's process: {e}"))
            }
        }
    }
}

/// A descriptor that becomes readable when process `pid` exits, before it is reaped: its
/// pidfd, or on kernels without pidfds (before 5.3) a pipe closed by a thread that waits.
fn exit_fd(pid: i32) -> std::io::Result<OwnedFd> {
    let rustix_pid = rustix::process::Pid::from_raw(pid).expect("a child's pid is positive");
    match rustix::process::pidfd_open(rustix_pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::NOSYS) => {
            let (read, write) = std::io::pipe()?;
            std::thread::spawn(move || {
                let _ = waitid(
                    Id::Pid(Pid::from_raw(pid)),
                    WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
                );
                drop(write);
            });
            Ok(read.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// A trial the thread follows.
struct Followed {
    watch: Watch,
    out: Option<Pipe>,
    err: Option<Pipe>,
    exit: OwnedFd,
    tail: VecDeque<String>,
    status: Option<(std::io::Result<ExitStatus>, Instant)>,
}

/// One of a trial's output pipes, with the line it is in and its log.
struct Pipe {
    file: File,
    line: Vec<u8>,
    log: Log,
}

impl Pipe {
    fn new(pipe: Option<impl Into<OwnedFd>>, log: PathBuf) -> Option<Pipe> {
        Some(Pipe {
            file: File::from(pipe?.into()),
            line: Vec::new(),
            log: Log {
                path: log,
                file: None,
            },
        })
    }

    /// Reads what is there (the pipe is readable, so this does not block) and hands each
    /// whole line to `each`; at the end of the pipe, the last piece too. False at the end.
    fn read(&mut self, chunk: &mut [u8], mut each: impl FnMut(String)) -> bool {
        let open = match self.file.read(chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.line.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) => e.kind() == std::io::ErrorKind::Interrupted,
        };
        let mut start = 0;
        while let Some(end) = self.line[start..].iter().position(|&b| b == b'\n') {
            let end = start + end + 1;
            each(self.log.line(&self.line[start..end]));
            start = end;
        }
        self.line.drain(..start);
        if !self.line.is_empty() && (!open || self.line.len() >= MAX_LINE) {
            each(self.log.line(&self.line));
            self.line.clear();
        }
        open
    }
}

/// A log file, created at its first line: most trials write nothing to one of their streams.
struct Log {
    path: PathBuf,
    file: Option<Option<File>>,
}

impl Log {
    /// Writes `bytes` and returns them as a line of text.
    fn line(&mut self, bytes: &[u8]) -> String {
        if let Some(file) = self
            .file
            .get_or_insert_with(|| File::create(&self.path).ok())
        {
            let _ = file.write_all(bytes);
        }
        String::from_utf8_lossy(bytes)
            .trim_end_matches(['\n', '\r'])
            .to_owned()
    }
}

#[derive(Clone, Copy)]
enum Ready {
    Out,
    Err,
    Exit,
}

/// The thread: waits for any pipe, exit or new trial, or for the next read of the metrics
/// files while trials run.
fn run(watches: Receiver<Followed>, woken: PipeReader) {
    let mut trials: Vec<Followed> = Vec::new();
    let mut chunk = vec![0; 64 << 10];
    let mut next_read = Instant::now();
    loop {
        let ready = {
            let mut fds = vec![PollFd::new(&woken, PollFlags::IN)];
            let mut whose = Vec::new();
            for (i, t) in trials.iter().enumerate() {
                let out = t.out.as_ref().map(|p| (p.file.as_fd(), Ready::Out));
                let err = t.err.as_ref().map(|p| (p.file.as_fd(), Ready::Err));
                let exit = t.status.is_none().then(|| (t.exit.as_fd(), Ready::Exit));
                for (fd, r) in [out, err, exit].into_iter().flatten() {
                    fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
                    whose.push((i, r));
                }
            }
            let timeout = (!trials.is_empty()).then(|| {
                let wait = next_read.saturating_duration_since(Instant::now());
                Timespec::try_from(wait).unwrap_or(Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                })
            });
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => panic!("poll over the trials' pipes failed: {e}"),
            }
            let woke = !fds[0].revents().is_empty();
            let ready: Vec<(usize, Ready)> = fds[1..]
                .iter()
                .zip(whose)
                .filter(|(fd, _)| !fd.revents().is_empty())
                .map(|(_, w)| w)
                .collect();
            if woke {
                let _ = (&woken).read(&mut chunk);
                loop {
                    match watches.try_recv() {
                        Ok(followed) => trials.push(followed),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => return,
                    }
                }
            }
            ready
        };
        // An exit first: lines that came with it were written before it.
        let mut ready = ready;
        ready.sort_by_key(|(_, r)| !matches!(r, Ready::Exit));
        for (i, ready) in ready {
            let t = &mut trials[i];
            let number = t.watch.number;
            match ready {
                Ready::Out => {
                    let (parse, tx) = (&t.watch.parse, &t.watch.tx);
                    let pipe = t.out.as_mut().expect("polled while open");
                    let open = pipe.read(&mut chunk, |line| {
                        for record in parse(&line) {
                            let _ = tx.send(Message::metrics(number, record));
                        }
                        let _ = tx.send(Message::Output {
                            number,
                            stderr: false,
                            line,
                        });
                    });
                    if !open {
                        t.out = None;
                    }
                }
                Ready::Err => {
                    let (tail, tx) = (&mut t.tail, &t.watch.tx);
                    let pipe = t.err.as_mut().expect("polled while open");
                    let open = pipe.read(&mut chunk, |line| {
                        if tail.len() == protocol::STDERR_TAIL {
                            tail.pop_front();
                        }
                        tail.push_back(line.clone());
                        let _ = tx.send(Message::Output {
                            number,
                            stderr: true,
                            line,
                        });
                    });
                    if !open {
                        t.err = None;
                    }
                }
                Ready::Exit => reap(t),
            }
        }
        let now = Instant::now();
        if now >= next_read {
            for t in &mut trials {
                // A trial that exited before this read ended before any stop its last
                // reports bring: its exit's time must say so.
                if t.status.is_none() && has_exited(t) {
                    reap(t);
                }
                send_metrics(t);
            }
            next_read = now + METRICS_POLL;
        }
        // Done after the exit and the last line of both pipes, so metrics printed at the end
        // count; the metrics file is read a last time.
        let mut i = 0;
        while i < trials.len() {
            let t = &trials[i];
            if t.status.is_some() && t.out.is_none() && t.err.is_none() {
                let mut t = trials.swap_remove(i);
                send_metrics(&mut t);
                let (status, at) = t.status.take().expect("exited");
                let exit = Exit::Process {
                    status,
                    stderr_tail: Vec::from(std::mem::take(&mut t.tail)),
                    at,
                };
                let number = t.watch.number;
                let _ = t.watch.tx.send(Message::Exited { number, exit });
            } else {
                i += 1;
            }
        }
    }
}

/// Whether the trial's leader has exited, without waiting.
fn has_exited(t: &Followed) -> bool {
    let mut fds = [PollFd::new(&t.exit, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&now)).is_ok_and(|n| n > 0)
}

/// Notes the exit of the trial's leader, now.
fn reap(t: &mut Followed) {
    let at = Instant::now();
    // The leader is a zombie: its pid still names the group while what is left of the group
    // is killed, and is reaped under the lock.
    let mut reaped = lock(&t.watch.reaped);
    let _ = killpg(Pid::from_raw(t.watch.child.id() as i32), Signal::SIGKILL);
    *reaped = true;
    t.status = Some((t.watch.child.wait(), at));
}

fn send_metrics(t: &mut Followed) {
    for record in t.watch.metrics.read() {
        let _ = t.watch.tx.send(Message::metrics(t.watch.number, record));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
