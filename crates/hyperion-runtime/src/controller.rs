//! The controller loop: one loop for every way a trial runs.
//!
//! The loop asks the study for trials and hands them to a [`Dispatcher`] (threads running a
//! closure, local processes, Slurm jobs next), which owns the resources trials need (slots,
//! GPUs). Everything that happens comes back as a [`Message`] on one channel: a trial's output
//! and metrics, its exit, a stop request, a tick. The loop sleeps until the next message or its
//! next deadline (a timeout, a SIGKILL after SIGTERM, the time budget, the next settlement of
//! stale trials), never on a clock of its own, so a trial's exit starts the next trial at once.
//!
//! The budget, stale-trial recovery, scheduler decisions on reported metrics and the rule for
//! when a study is done exist here only. The loop keeps nothing that matters: the store is the
//! truth, and a run killed at any instant is resumed by the next one.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitStatus;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyperion_core::{Change, Event, Launch, StopReason, StopRequest, Trial, TrialNumber};
use hyperion_schedulers::SchedulerConfig;

use crate::protocol::{Record, Reported, human};
use crate::{
    ActiveTrial, Budget, Error, Outcome, Recovery, Study, StudySettings, Summary, Verdict,
};

/// What reaches the controller loop.
#[derive(Debug)]
pub enum Message {
    /// A line a trial printed.
    Output {
        number: TrialNumber,
        stderr: bool,
        line: String,
    },
    /// A metric record a trial reported (a line of its metrics file, or of its stdout).
    Metrics { number: TrialNumber, record: Record },
    /// A metric line that is not a record: the line, and why.
    Malformed {
        number: TrialNumber,
        line: String,
        why: String,
    },
    /// A pipeline trial moved on: its stages, as far as it got.
    Stages {
        number: TrialNumber,
        stages: Vec<hyperion_core::StageRun>,
    },
    /// A trial's process or thread ended; nothing about it follows.
    Exited { number: TrialNumber, exit: Exit },
    /// A stop request (Ctrl-C, a signal, `hyperion stop`, [`Study::stop`]).
    Stop(StopRequest),
    /// Something changed in the store that may let a trial start: look again.
    Tick,
    /// A helper of the loop (the heartbeat) failed: the run ends with this error.
    Failed(Error),
}

impl Message {
    /// The message for what reading a metric line gave.
    pub fn metrics(number: TrialNumber, read: Result<Record, crate::protocol::Malformed>) -> Self {
        match read {
            Ok(record) => Message::Metrics { number, record },
            Err((line, why)) => Message::Malformed { number, line, why },
        }
    }
}

/// How a trial's run ended.
#[derive(Debug)]
pub enum Exit {
    /// The objective returned (a closure on a thread).
    Returned(Outcome),
    /// The process ended at `at`, with the last lines of its stderr.
    Process {
        status: std::io::Result<ExitStatus>,
        stderr_tail: Vec<String>,
        at: Instant,
    },
    /// The trial was lost for reasons not its own (a preempted job, a failed node, a job
    /// cancelled by someone else): it fails with this reason and runs again, up to
    /// `max_retries` times, as a stale trial does.
    Lost(String),
}

/// How trials run: threads, local processes, Slurm jobs, … The contract:
/// - [`Dispatcher::launch`] starts a trial; everything about it then arrives on the channel,
///   ending with exactly one [`Message::Exited`], after which the loop calls
///   [`Dispatcher::release`].
/// - [`Dispatcher::stop`] asks a trial to end (SIGTERM, a flag the objective sees);
///   [`Dispatcher::kill`] ends it now. Neither waits; the exit still comes as a message.
/// - The dispatcher owns what trials need (slots, GPU ids) and frees them on release; when it
///   is dropped, nothing it started is left running.
pub trait Dispatcher<'s> {
    /// Whether one more trial can start now.
    fn has_room(&self) -> bool;
    /// Starts `trial`. Returns where its process runs, if it is one, so that a later run can
    /// clean up after this one if it dies; an `Err` fails the trial with that reason.
    fn launch(
        &mut self,
        trial: ActiveTrial<'s>,
        tx: &Sender<Message>,
    ) -> Result<Option<Launch>, String>;
    fn stop(&mut self, number: TrialNumber);
    fn kill(&mut self, number: TrialNumber);
    /// The trial's exit was handled: free what it held.
    fn release(&mut self, number: TrialNumber);
    /// PBT exploited a trial: `child` will restore `parent`'s checkpoint as it is now.
    fn hand_over(&mut self, parent: TrialNumber, child: TrialNumber) {
        let _ = (parent, child);
    }
    /// Ends what is left of a stale trial of a dead run (see [`Launch`]; a run that died while
    /// launching it may have left no launch).
    fn clean_up(&mut self, number: TrialNumber, launch: Option<&Launch>) {
        let _ = (number, launch);
    }
    /// Where `trial` will run, when it can outlive its run (a batch job): the loop records it
    /// before [`Dispatcher::launch`], so that a later run finds the job even if this one dies
    /// while submitting it.
    fn before_launch(&mut self, trial: &Trial) -> Option<Launch> {
        let _ = trial;
        None
    }
    /// Takes over `trial`, which a run that is gone launched as `launch` and which may still
    /// be running (a batch job). When it returns true, everything about the trial then
    /// arrives as after a launch, ending with one [`Message::Exited`].
    fn adopt(&mut self, trial: &Trial, launch: &Launch, tx: &Sender<Message>) -> bool {
        let _ = (trial, launch, tx);
        false
    }
}

/// What one run of the loop obeys besides the study's settings.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Limits of this run; each one it leaves unset comes from the study's settings.
    pub budget: Budget,
    pub recovery: Recovery,
    /// A trial running longer is stopped and failed.
    pub trial_timeout: Option<Duration>,
    /// Between [`Dispatcher::stop`] and [`Dispatcher::kill`].
    pub kill_grace: Duration,
    /// Trials at once, for the PBT population check.
    pub max_concurrent: usize,
    /// Trials this run starts at most (the study's budget still holds).
    pub max_trials_here: Option<u64>,
}

/// Asks a run to stop, from another thread (a Ctrl-C handler): a handle on the loop's channel.
#[derive(Clone, Debug, Default)]
pub struct RunControl(Arc<Mutex<ControlState>>);

#[derive(Debug, Default)]
struct ControlState {
    /// Requests so far, and the serial numbers of the last stop and the last kill.
    serial: u64,
    last_stop: u64,
    last_kill: u64,
    loops: Vec<Sender<Message>>,
}

impl RunControl {
    /// Start no more trials; running ones finish.
    pub fn stop(&self) {
        self.request(StopRequest::Stop);
    }
    /// Start no more trials and kill the running ones (SIGTERM, then SIGKILL).
    pub fn kill(&self) {
        self.request(StopRequest::Kill);
    }

    pub(crate) fn request(&self, request: StopRequest) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.serial += 1;
        state.last_stop = state.serial;
        if request == StopRequest::Kill {
            state.last_kill = state.serial;
        }
        state
            .loops
            .retain(|tx| tx.send(Message::Stop(request)).is_ok());
    }

    /// The strongest request made after the `since`-th one.
    fn requested_since(&self, since: u64) -> Option<StopRequest> {
        let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match (state.last_kill > since, state.last_stop > since) {
            (true, _) => Some(StopRequest::Kill),
            (false, true) => Some(StopRequest::Stop),
            (false, false) => None,
        }
    }

    /// Connects a loop, which hears every later request; returns how many came before.
    fn attach(&self, tx: Sender<Message>) -> u64 {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.loops.push(tx);
        state.serial
    }
}

/// Whether a stop was requested of any of `controls` after the request it counts from.
fn requested(controls: &[(&RunControl, u64)]) -> bool {
    controls
        .iter()
        .any(|(c, since)| c.requested_since(*since).is_some())
}

/// The trial an ask gave, if any; a spent budget or an exhausted sampler is noted instead.
/// Both are a spent budget: the run still waits for the trials of other runs, which may come
/// back as retries (a grid's point whose run was killed).
fn took<'s>(
    asked: Result<Option<ActiveTrial<'s>>, Error>,
    budget_spent: &mut bool,
    exhausted: &mut bool,
) -> Result<Option<ActiveTrial<'s>>, Error> {
    match asked {
        Ok(Some(trial)) => Ok(Some(trial)),
        Ok(None) => {
            *budget_spent = true;
            Ok(None)
        }
        Err(Error::Exhausted) => {
            (*budget_spent, *exhausted) = (true, true);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// How a trial that the loop stopped ends, whatever its exit status.
#[derive(Clone, Debug)]
enum Ending {
    /// The scheduler stopped it.
    Pruned(String),
    /// PBT stopped it and handed its place to a child: pruned even if it had ended.
    HandedOver(String),
    /// A timeout or a killed run.
    Failed(String),
}

struct Slot {
    started: Instant,
    /// When the loop stopped it, and how it ends.
    ending: Option<(Instant, Ending)>,
    killed: bool,
    reported: Reported,
    /// Whether a malformed metric line was reported already.
    warned: bool,
}

impl Study {
    /// Runs the study's trials on `dispatcher` until the budget is spent, the sampler is
    /// exhausted or a stop request arrives. Only store and sampler errors end it with `Err`;
    /// the study stays resumable whatever happens.
    pub fn run_with<'s>(
        &'s self,
        dispatcher: &mut dyn Dispatcher<'s>,
        options: &RunOptions,
        control: &RunControl,
    ) -> Result<Summary, Error> {
        let budget = options.budget.or(&self.settings().budget);
        self.check_run(&budget, options)?;
        let recovery = &options.recovery;
        Arc::make_mut(&mut *self.sync()?).set_total(budget.max_trials);
        self.bus.publish(&Event::StudyStarted {
            study: self.name().to_owned(),
        });

        let (tx, rx) = mpsc::channel();
        // The caller's control may have been used before the run (a quick Ctrl-C); the
        // study's own serves every run of it in this process, and only later requests count.
        control.attach(tx.clone());
        let controls = [
            (control, 0),
            (&self.control, self.control.attach(tx.clone())),
        ];
        let mine = Mutex::new(BTreeSet::new());
        // Take over the jobs of dead runs, then settle what else they left behind, before
        // starting anything.
        let adopted = self.adopt(dispatcher, &tx, recovery)?;
        lock(&mine).extend(adopted.iter().copied());
        self.settle(dispatcher, recovery.max_retries)?;
        let start_cursor = self.sync()?.cursor();

        std::thread::scope(|scope| {
            let (beating, done) = mpsc::channel::<()>();
            let heartbeat = {
                let tx = tx.clone();
                let mine = &mine;
                scope.spawn(move || {
                    if let Err(e) = self.heartbeats(done, mine, recovery, start_cursor, &tx) {
                        let _ = tx.send(Message::Failed(e));
                    }
                })
            };
            let result = self.drive(
                dispatcher,
                options,
                &controls,
                &budget,
                (&tx, rx),
                (&mine, adopted),
            );
            drop(beating);
            if heartbeat.join().is_err() {
                return Err(Error::Config("the heartbeat thread panicked".into()));
            }
            let (trials_run, reason, failure) = result?;
            self.bus.publish(&Event::StudyCompleted {
                study: self.name().to_owned(),
                reason: reason.clone(),
            });
            Ok(Summary {
                reason,
                failure,
                trials_run,
                best: self.best_trial()?,
            })
        })
    }

    /// The checks every run makes, whoever calls it.
    fn check_run(&self, budget: &Budget, options: &RunOptions) -> Result<(), Error> {
        if options.recovery.grace <= options.recovery.heartbeat {
            return Err(Error::Config(
                "recovery.grace must be longer than recovery.heartbeat".into(),
            ));
        }
        let early_stopping = self.settings().early_stopping.as_ref();
        check_limits(
            self.spec().objectives.len(),
            budget,
            early_stopping,
            options.max_concurrent,
        )
        .map_err(|(key, message)| Error::Config(format!("{key}: {message}")))
    }

    /// The loop. Returns how many trials it started, and why it ended.
    fn drive<'s>(
        &'s self,
        dispatcher: &mut dyn Dispatcher<'s>,
        options: &RunOptions,
        controls: &[(&RunControl, u64)],
        budget: &Budget,
        (tx, rx): (&Sender<Message>, mpsc::Receiver<Message>),
        (mine, adopted): (&Mutex<BTreeSet<TrialNumber>>, Vec<TrialNumber>),
    ) -> Result<(u64, StopReason, Option<String>), Error> {
        let mut stop = None;
        // The first errors of a study that has completed nothing, to stop early when they
        // are all the same.
        let mut failures: Vec<String> = Vec::new();
        let started = Instant::now();
        let recovery = &options.recovery;
        let mut running: BTreeMap<TrialNumber, Slot> =
            adopted.into_iter().map(|n| (n, Slot::new())).collect();
        let mut budget_spent = false;
        // Whether the sampler has nothing left to propose (every grid point has a trial).
        let mut exhausted = false;
        // The budget follows the settings other processes record meanwhile (`hyperion create`
        // with a new file), except for what this run was given.
        let mut budget = budget.clone();
        let mut settings_seen = self.sync()?.settings().cloned();
        let mut trials_run = 0;
        let mut next_settle = after(Instant::now(), recovery.heartbeat);
        let mut kill_all = false;
        let mut look = true;
        // Whether the view is as fresh as the write that just started a trial: the next look
        // needs no read of its own.
        let mut fresh = false;
        let mut watch = None;

        loop {
            if kill_all {
                for (&number, slot) in running.iter_mut() {
                    let ending = Ending::Failed(KILLED.into());
                    terminate(dispatcher, number, slot, ending);
                }
            }
            if look {
                look = false;
                let mut view = match std::mem::take(&mut fresh) {
                    true => self.view_as_is(),
                    false => self.sync()?,
                };
                if view.settings() != settings_seen.as_ref() {
                    settings_seen = view.settings().cloned();
                    let latest = settings_seen
                        .clone()
                        .map(serde_json::from_value::<StudySettings>);
                    if let Some(Ok(latest)) = latest {
                        budget = options.budget.or(&latest.budget);
                        Arc::make_mut(&mut *view).set_total(budget.max_trials);
                        budget_spent = false;
                    }
                }
                if stop.is_none()
                    && let Some(reason) = budget.reached(&view, started)
                {
                    stop = Some(reason);
                }
                // A spent budget still runs pending trials (retries, PBT children) at once.
                if view.counts().pending > 0 {
                    budget_spent = false;
                }
                drop(view);

                // A request made a moment ago may still be on its way as a message.
                if requested(controls) {
                    stop.get_or_insert(StopReason::Stopped);
                }
                while stop.is_none() && !budget_spent && dispatcher.has_room() {
                    if options.max_trials_here.is_some_and(|n| trials_run >= n) {
                        stop = Some(StopReason::TrialsHere);
                        break;
                    }
                    let asked = self.ask_within(budget.max_trials, recovery.grace);
                    if let Some(trial) = took(asked, &mut budget_spent, &mut exhausted)? {
                        trials_run += 1;
                        self.start(dispatcher, trial, tx, mine, &mut running)?;
                    }
                }
            }

            // Done when nothing runs here and nothing more will start.
            if running.is_empty() {
                if let Some(reason) = stop {
                    let failure =
                        (reason == StopReason::RepeatedFailure).then(|| failures.swap_remove(0));
                    return Ok((trials_run, reason, failure));
                }
                if budget_spent {
                    let counts = self.sync()?.counts();
                    if counts.running == 0 && counts.pending == 0 {
                        let reason = match exhausted {
                            true => StopReason::SpaceExhausted,
                            false => StopReason::MaxTrials,
                        };
                        return Ok((trials_run, reason, None));
                    }
                    // Another run's trials may still come back as retries: wait for them,
                    // woken by other processes' writes where the store can tell (else at the
                    // heartbeat). Only now: while this run is busy, they would cost it reads.
                    if watch.is_none() {
                        let tx = Mutex::new(tx.clone());
                        let wake = move || {
                            let _ = lock(&tx).send(Message::Tick);
                        };
                        // A store that cannot watch now (a server away) leaves the heartbeat.
                        watch = Some(
                            self.store()
                                .watch(self.record.id, Box::new(wake))
                                .ok()
                                .flatten(),
                        );
                        // What changed before the watch began is seen by looking once more.
                        look = true;
                        continue;
                    }
                }
            }

            let now = Instant::now();
            let deadline = running
                .values()
                .filter_map(|slot| slot.deadline(options))
                .chain(budget.max_time.and_then(|t| started.checked_add(t)))
                .chain(next_settle)
                .min();
            let wait = deadline.map(|d| d.saturating_duration_since(now));
            let received = match wait {
                Some(wait) => rx.recv_timeout(wait),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let message = match received {
                Ok(message) => Some(message),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => unreachable!("the loop holds a sender"),
            };
            match message {
                Some(Message::Output {
                    number,
                    stderr,
                    line,
                }) => {
                    if running.contains_key(&number) {
                        self.bus.publish(&Event::TrialOutput {
                            number,
                            stderr,
                            line,
                        });
                    }
                }
                Some(Message::Metrics { number, record }) => {
                    if let Some(slot) = running.get_mut(&number) {
                        self.take_record(dispatcher, number, slot, record)?;
                    }
                }
                Some(Message::Malformed { number, line, why }) => {
                    if let Some(slot) = running.get_mut(&number)
                        && !std::mem::replace(&mut slot.warned, true)
                    {
                        // Once per trial: on the terminal, and as a note on the trial.
                        let note = format!("a metric line was ignored ({why}): {line}");
                        let value = serde_json::json!(note);
                        self.store().set_user_attr(
                            self.record.id,
                            number,
                            "hyperion_note",
                            &value,
                        )?;
                        self.bus.publish(&Event::Warning {
                            number,
                            message: note,
                        });
                    }
                }
                Some(Message::Stages { number, stages }) => {
                    if running.contains_key(&number) {
                        let change = Change::StagesRecorded { number, stages };
                        self.store().log(self.record.id, &change)?;
                    }
                }
                Some(Message::Exited { number, exit }) => {
                    if let Some(slot) = running.remove(&number) {
                        let killed =
                            matches!(&slot.ending, Some((_, Ending::Failed(e))) if e == KILLED);
                        let lost = slot.ending.is_none() && matches!(exit, Exit::Lost(_));
                        let outcome = match (slot.ending, exit) {
                            // It ended on its own before the stop reached it (its last report
                            // was the one that stopped it): its result stands.
                            (
                                Some((stopped, Ending::Pruned(_))),
                                Exit::Process {
                                    status,
                                    stderr_tail,
                                    at,
                                },
                            ) if at <= stopped => crate::protocol::outcome(
                                self.spec(),
                                &slot.reported,
                                &status,
                                &stderr_tail,
                            ),
                            (Some((_, Ending::Pruned(reason) | Ending::HandedOver(reason))), _) => {
                                Outcome::Pruned { reason }
                            }
                            (Some((_, Ending::Failed(error))), _) => Outcome::Failed { error },
                            (None, Exit::Returned(outcome)) => outcome,
                            (None, Exit::Lost(error)) => Outcome::Failed { error },
                            (
                                None,
                                Exit::Process {
                                    status,
                                    stderr_tail,
                                    ..
                                },
                            ) => crate::protocol::outcome(
                                self.spec(),
                                &slot.reported,
                                &status,
                                &stderr_tail,
                            ),
                        };
                        dispatcher.release(number);
                        lock(mine).remove(&number);
                        // A completed trial that reported its objectives alone has them as its
                        // values already: no write for it (the common case, on the hot path).
                        let objectives = &self.spec().objectives;
                        let only_values = matches!(outcome, Outcome::Completed(_))
                            && slot
                                .reported
                                .last
                                .keys()
                                .all(|k| objectives.iter().any(|o| &o.metric == k));
                        if !slot.reported.last.is_empty() && !only_values {
                            self.store().keep_metrics(
                                self.record.id,
                                number,
                                &slot.reported.last,
                            )?;
                        }
                        // A run told how many failures to bear (`max_failures`) bears them.
                        if let Outcome::Failed { error } = &outcome
                            && !killed
                            && !lost
                            && budget.max_failures.is_none()
                            && self.sync()?.counts().completed == 0
                        {
                            failures.push(error.clone());
                            if repeated(&failures) {
                                stop.get_or_insert(StopReason::RepeatedFailure);
                            }
                        }
                        // The common end — a result, and room for the next trial — is told
                        // in the write that creates the next trial when the proposal cannot
                        // depend on it: one commit under the study's lock instead of two.
                        let starts_next = stop.is_none()
                            && !budget_spent
                            && dispatcher.has_room()
                            && options.max_trials_here.is_none_or(|n| trials_run < n)
                            // A pending trial (a retry, an enqueued one) goes first: the look
                            // claims it.
                            && self.view_as_is().counts().pending == 0
                            && !requested(controls);
                        match outcome {
                            Outcome::Completed(values)
                                if starts_next
                                    && self.sampler_ignores_results()
                                    && self.is_result(&values, &budget) =>
                            {
                                let max = budget.max_trials;
                                match self.tell_and_ask(number, values, max, recovery.grace) {
                                    // Another run failed it as stale: nothing was created.
                                    Err(e) if e.settled_elsewhere() => {}
                                    asked => {
                                        let asked = took(asked, &mut budget_spent, &mut exhausted)?;
                                        if let Some(trial) = asked {
                                            trials_run += 1;
                                            self.start(dispatcher, trial, tx, mine, &mut running)?;
                                            fresh = true;
                                        }
                                    }
                                }
                            }
                            outcome => self.settle_trial(number, outcome)?,
                        }
                        if killed {
                            // Not the trial's fault: the next run runs it again.
                            self.retry(number)?;
                        } else if lost {
                            let depth = {
                                let view = self.sync()?;
                                hyperion_store::retry_depth(number, |n| view.trial(n)?.retry_of)
                            };
                            if depth < recovery.max_retries {
                                self.retry(number)?;
                            }
                        }
                    }
                    look = true;
                }
                Some(Message::Stop(request)) => {
                    stop.get_or_insert(StopReason::Stopped);
                    kill_all |= request == StopRequest::Kill;
                    look = true;
                }
                Some(Message::Tick) => look = true,
                Some(Message::Failed(e)) => return Err(e),
                None => look = true,
            }

            // Deadlines.
            let now = Instant::now();
            for (&number, slot) in running.iter_mut() {
                if let Some(limit) = options.trial_timeout
                    && slot.ending.is_none()
                    && after(slot.started, limit).is_some_and(|due| now >= due)
                {
                    let ending = Ending::Failed(format!("timed out after {}", human(limit)));
                    terminate(dispatcher, number, slot, ending);
                }
                if let Some((at, _)) = &slot.ending
                    && !slot.killed
                    && after(*at, options.kill_grace).is_some_and(|due| now >= due)
                {
                    dispatcher.kill(number);
                    slot.killed = true;
                }
            }
            if next_settle.is_some_and(|due| now >= due) {
                self.settle(dispatcher, recovery.max_retries)?;
                next_settle = after(now, recovery.heartbeat);
                look = true;
            }
        }
    }

    /// A metric record: keeps its metrics, reports the objectives' values, and stops the trial
    /// when the scheduler says so.
    fn take_record<'s>(
        &'s self,
        dispatcher: &mut dyn Dispatcher<'s>,
        number: TrialNumber,
        slot: &mut Slot,
        record: Record,
    ) -> Result<(), Error> {
        if slot.ending.is_some() {
            // A stopped trial's last words change nothing: it ends at the step it was stopped.
            return Ok(());
        }
        let (step, values) = slot.reported.take(self.spec(), record);
        if values.is_empty() {
            return Ok(());
        }
        match self.report(number, step, &values) {
            Ok(Verdict::Continue) => {}
            Ok(Verdict::Stop { reason, successor }) => {
                let ending = match successor {
                    Some(successor) => {
                        dispatcher.hand_over(successor.parent, successor.child);
                        Ending::HandedOver(reason)
                    }
                    None => Ending::Pruned(reason),
                };
                terminate(dispatcher, number, slot, ending);
            }
            Err(e) if e.settled_elsewhere() => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Hands a new trial to the dispatcher, recording where it runs.
    fn start<'s>(
        &'s self,
        dispatcher: &mut dyn Dispatcher<'s>,
        trial: ActiveTrial<'s>,
        tx: &Sender<Message>,
        mine: &Mutex<BTreeSet<TrialNumber>>,
        running: &mut BTreeMap<TrialNumber, Slot>,
    ) -> Result<(), Error> {
        let number = trial.number();
        lock(mine).insert(number);
        if let Some(launch) = dispatcher.before_launch(trial.trial()) {
            let change = Change::TrialLaunched { number, launch };
            self.store().log(self.record.id, &change)?;
        }
        match dispatcher.launch(trial, tx) {
            Ok(launch) => {
                running.insert(number, Slot::new());
                if let Some(launch) = launch {
                    let change = Change::TrialLaunched { number, launch };
                    self.store().log(self.record.id, &change)?;
                }
            }
            Err(error) => {
                lock(mine).remove(&number);
                self.finish(number, Outcome::Failed { error })?;
            }
        }
        Ok(())
    }

    /// Whether `values` are a result the store keeps as they are (one finite value per
    /// objective) that ends no run by reaching the target.
    fn is_result(&self, values: &[f64], budget: &Budget) -> bool {
        values.len() == self.spec().objectives.len()
            && values.iter().all(|v| v.is_finite())
            && !values
                .first()
                .is_some_and(|v| budget.target_reached(self.spec(), *v))
    }

    /// Records how a trial of this run ended. A result the store refuses (two values for one
    /// objective) fails the trial; a trial another run already settled (stale) is left alone.
    fn settle_trial(&self, number: TrialNumber, outcome: Outcome) -> Result<(), Error> {
        // The loop looks at the store next: no catch-up here.
        match self.finish(number, outcome) {
            Ok(_) => Ok(()),
            Err(Error::Store(hyperion_store::StoreError::InvalidValues { reason, .. })) => self
                .finish(number, Outcome::Failed { error: reason })
                .map(drop)
                .or_else(|e| {
                    if e.settled_elsewhere() {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }),
            Err(e) if e.settled_elsewhere() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Fails the stale trials of dead runs (which queues their retries), after killing what
    /// is left of their processes on this machine.
    fn settle<'s>(
        &'s self,
        dispatcher: &mut dyn Dispatcher<'s>,
        max_retries: u32,
    ) -> Result<(), Error> {
        // Where the running trials run, read before failing them removes it from the view.
        let launches: BTreeMap<TrialNumber, Launch> = {
            let view = self.sync()?;
            view.running()
                .filter_map(|t| Some((t.number, view.launch(t.number)?.clone())))
                .collect()
        };
        for number in self.store().fail_stale(self.record.id, max_retries)? {
            dispatcher.clean_up(number, launches.get(&number));
        }
        Ok(())
    }

    /// Hands the dispatcher the running trials whose run is known to be gone and that it may
    /// still find running (batch jobs), and renews the leases of those it takes. Returns them.
    fn adopt<'s>(
        &'s self,
        dispatcher: &mut dyn Dispatcher<'s>,
        tx: &Sender<Message>,
        recovery: &Recovery,
    ) -> Result<Vec<TrialNumber>, Error> {
        let machine = crate::machine::Machine::this();
        let orphans: Vec<(Trial, Launch)> = {
            let view = self.sync()?;
            view.running()
                .filter_map(|t| {
                    let launch = view.launch(t.number)?;
                    (launch.job.is_some() && machine.outlived(launch))
                        .then(|| (t.clone(), launch.clone()))
                })
                .collect()
        };
        let adopted: Vec<TrialNumber> = orphans
            .iter()
            .filter(|(trial, launch)| dispatcher.adopt(trial, launch, tx))
            .map(|(trial, _)| trial.number)
            .collect();
        if !adopted.is_empty() {
            self.store()
                .heartbeat(self.record.id, &adopted, recovery.grace)?;
            eprintln!(
                "note: study \"{}\": following {} jobs that a run that is gone left behind",
                self.name(),
                adopted.len()
            );
        }
        Ok(adopted)
    }

    /// Renews this run's leases every heartbeat, and passes on the stop requests recorded
    /// after the run started, until `done` disconnects.
    fn heartbeats(
        &self,
        done: mpsc::Receiver<()>,
        mine: &Mutex<BTreeSet<TrialNumber>>,
        recovery: &Recovery,
        since: u64,
        tx: &Sender<Message>,
    ) -> Result<(), Error> {
        let mut obeyed = None;
        while let Err(RecvTimeoutError::Timeout) = done.recv_timeout(recovery.heartbeat) {
            let numbers: Vec<TrialNumber> = lock(mine).iter().copied().collect();
            if !numbers.is_empty() {
                self.store()
                    .heartbeat(self.record.id, &numbers, recovery.grace)?;
            }
            let request = self.sync()?.stop_requested_since(since);
            if request > obeyed {
                obeyed = request;
                let _ = tx.send(Message::Stop(request.expect("a request")));
            }
        }
        Ok(())
    }
}

/// The rules a run's limits obey, for the loop and for study files (which locate the key):
/// a target needs one objective; a PBT population fits in the trial budget and runs at once.
/// An error names the key at fault.
pub fn check_limits(
    objectives: usize,
    budget: &Budget,
    early_stopping: Option<&SchedulerConfig>,
    max_concurrent: usize,
) -> Result<(), (&'static str, String)> {
    if budget.target.is_some() && objectives != 1 {
        return Err((
            "budget.target",
            "a target needs exactly one objective".into(),
        ));
    }
    if let Some(SchedulerConfig::Pbt(pbt)) = early_stopping
        && let Some(population) = pbt.population_size
    {
        if let Some(max_trials) = budget.max_trials.filter(|&n| n < population) {
            return Err((
                "budget.max_trials",
                format!("{max_trials} trials cannot hold a PBT population of {population}"),
            ));
        }
        if (max_concurrent as u64) < population {
            return Err((
                "resources.max_concurrent",
                format!(
                    "{max_concurrent} trials at once cannot hold a PBT population of \
                     {population}: its members are compared while they run"
                ),
            ));
        }
    }
    Ok(())
}

impl Slot {
    fn new() -> Self {
        Slot {
            started: Instant::now(),
            ending: None,
            killed: false,
            reported: Reported::default(),
            warned: false,
        }
    }

    /// When the loop must next act on this trial: its timeout, or its SIGKILL.
    fn deadline(&self, options: &RunOptions) -> Option<Instant> {
        match (&self.ending, options.trial_timeout) {
            (Some(_), _) if self.killed => None,
            (Some((at, _)), _) => after(*at, options.kill_grace),
            (None, Some(limit)) => after(self.started, limit),
            (None, None) => None,
        }
    }
}

/// Asks a trial to stop; it ends as `ending` whatever its exit status.
fn terminate<'s>(
    dispatcher: &mut dyn Dispatcher<'s>,
    number: TrialNumber,
    slot: &mut Slot,
    ending: Ending,
) {
    if slot.ending.is_none() {
        // Before the signal: an exit after this instant may be the signal's doing.
        slot.ending = Some((Instant::now(), ending));
        dispatcher.stop(number);
    }
}

/// How a trial killed with its run fails.
const KILLED: &str = "killed: the run was stopped";

/// How many of a study's first trials failing with the same first line of error stop it.
const FAIL_FAST: usize = 3;

/// Whether the first [`FAIL_FAST`] failures are all the same.
fn repeated(failures: &[String]) -> bool {
    let first_line = |e: &String| e.lines().next().unwrap_or_default().to_owned();
    failures.len() >= FAIL_FAST
        && failures
            .iter()
            .all(|e| first_line(e) == first_line(&failures[0]))
}

/// `d` after `t`; `None` (never) past what an `Instant` can hold (a 1e19 s timeout).
fn after(t: Instant, d: Duration) -> Option<Instant> {
    t.checked_add(d)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
