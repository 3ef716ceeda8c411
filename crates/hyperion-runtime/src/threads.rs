//! The thread dispatcher: trials are calls of a Rust closure on a pool of threads.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::Scope;

use hyperion_core::{Launch, TrialNumber};

use crate::controller::{Dispatcher, Exit, Message};
use crate::optimize::panic_message;
use crate::{ActiveTrial, IntoValues, Outcome, TrialError};

type Job<'s> = (ActiveTrial<'s>, Sender<Message>);

/// Runs the objective on `threads` threads of `scope`. Stopping a trial raises the flag its
/// [`ActiveTrial::should_prune`] reads: a thread cannot be killed, so an objective that never
/// looks runs to its end.
pub(crate) struct ThreadDispatcher<'s> {
    threads: usize,
    jobs: Option<Sender<Job<'s>>>,
    running: std::collections::HashMap<TrialNumber, Arc<AtomicBool>>,
}

impl<'s> ThreadDispatcher<'s> {
    pub(crate) fn new<'scope, F, V>(
        scope: &'scope Scope<'scope, 's>,
        objective: &'s F,
        threads: usize,
    ) -> Self
    where
        F: Fn(&mut ActiveTrial<'_>) -> Result<V, TrialError> + Sync,
        V: IntoValues,
    {
        let (jobs, queue) = mpsc::channel::<Job<'s>>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..threads {
            let queue = queue.clone();
            scope.spawn(move || {
                loop {
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((mut trial, tx)) = job else { return };
                    let number = trial.number();
                    let outcome = match catch_unwind(AssertUnwindSafe(|| objective(&mut trial))) {
                        Ok(Ok(values)) => Outcome::Completed(values.into_values()),
                        Ok(Err(TrialError::Pruned { reason })) => Outcome::Pruned { reason },
                        Ok(Err(TrialError::Failed(error))) => Outcome::Failed { error },
                        Err(panic) => Outcome::Failed {
                            error: format!("the objective panicked: {}", panic_message(&*panic)),
                        },
                    };
                    drop(trial);
                    let exit = Exit::Returned(outcome);
                    let _ = tx.send(Message::Exited { number, exit });
                }
            });
        }
        ThreadDispatcher {
            threads,
            jobs: Some(jobs),
            running: Default::default(),
        }
    }
}

impl std::fmt::Debug for ThreadDispatcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadDispatcher")
            .field("threads", &self.threads)
            .field("running", &self.running.len())
            .finish()
    }
}

impl<'s> Dispatcher<'s> for ThreadDispatcher<'s> {
    fn has_room(&self) -> bool {
        self.running.len() < self.threads
    }

    fn launch(
        &mut self,
        trial: ActiveTrial<'s>,
        tx: &Sender<Message>,
    ) -> Result<Option<Launch>, String> {
        self.running.insert(trial.number(), trial.halt_flag());
        let jobs = self.jobs.as_ref().expect("jobs close only on drop");
        jobs.send((trial, tx.clone()))
            .map_err(|_| "the worker threads are gone".to_owned())?;
        Ok(None)
    }

    fn stop(&mut self, number: TrialNumber) {
        if let Some(flag) = self.running.get(&number) {
            flag.store(true, Ordering::SeqCst);
        }
    }

    fn kill(&mut self, number: TrialNumber) {
        self.stop(number);
    }

    fn release(&mut self, number: TrialNumber) {
        self.running.remove(&number);
    }
}

impl Drop for ThreadDispatcher<'_> {
    fn drop(&mut self) {
        // Running objectives that look at their flag end early; the threads end after them.
        for flag in self.running.values() {
            flag.store(true, Ordering::SeqCst);
        }
        self.jobs = None;
    }
}
