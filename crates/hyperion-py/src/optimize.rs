//! `study.optimize`: Optuna's loop — ask, call the objective, tell, run the callbacks — on
//! `n_jobs` threads, the calling thread one of them (so Ctrl-C reaches an objective as Optuna's
//! users know it). The engine's own `Study::optimize` cannot serve: its objective is a Rust
//! closure that holds a borrowed trial, while a Python objective may keep its `Trial`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyperion_runtime::{Error, Outcome, Study};
use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::convert::values_from_py;
use crate::study::PyStudy;
use crate::trial::PyTrial;
use crate::{TrialPruned, to_py};

/// `optimize`'s arguments.
#[derive(Debug)]
pub(crate) struct Options<'py> {
    pub func: Py<PyAny>,
    pub n_trials: Option<u64>,
    pub timeout: Option<f64>,
    pub n_jobs: i64,
    pub catch: Option<&'py Bound<'py, PyAny>>,
    pub callbacks: Vec<Py<PyAny>>,
    pub gc_after_trial: bool,
    pub show_progress_bar: bool,
}

/// What the threads of one `optimize` call share.
#[derive(Debug)]
struct Run {
    study: Py<PyStudy>,
    engine: Arc<Study>,
    func: Py<PyAny>,
    callbacks: Vec<Py<PyAny>>,
    /// The exception types that fail a trial without ending the run.
    catch: Py<PyTuple>,
    gc_after_trial: bool,
    n_trials: Option<u64>,
    deadline: Option<Instant>,
    /// Trials this call has started.
    started: AtomicU64,
    /// The study's log position when the call began: stop requests after it end the call.
    since: u64,
    /// Set when the run ends early (an error, Ctrl-C): no thread starts another trial.
    ending: AtomicBool,
    /// The running trials' halt flags, raised with `ending` so that `should_prune()` is true.
    running: Mutex<Vec<Arc<AtomicBool>>>,
    /// The first exception that ends the run.
    error: Mutex<Option<PyErr>>,
}

pub(crate) fn run(study: &Bound<'_, PyStudy>, options: Options<'_>) -> PyResult<()> {
    let py = study.py();
    let threads = match options.n_jobs {
        -1 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n if n >= 1 => n as usize,
        n => {
            return Err(PyValueError::new_err(format!(
                "n_jobs is {n}; give 1 or more, or -1 for one per CPU"
            )));
        }
    };
    let deadline = match options.timeout {
        Some(t) if !(t >= 0.0 && t.is_finite()) => {
            return Err(PyValueError::new_err(format!(
                "timeout is {t}; give seconds, 0 or more"
            )));
        }
        Some(t) => Some(Instant::now() + Duration::from_secs_f64(t)),
        None => None,
    };
    let catch = match options.catch {
        None => PyTuple::empty(py),
        Some(c) if c.is_instance_of::<PyTuple>() => c.cast::<PyTuple>()?.clone(),
        Some(c) => PyTuple::new(py, c.try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
    };
    let mut callbacks = options.callbacks;
    let progress = match options.show_progress_bar {
        true => {
            let bar = py.import(intern!(py, "hyperion._progress"))?.call_method1(
                intern!(py, "ProgressBar"),
                (options.n_trials, options.timeout),
            )?;
            callbacks.push(bar.clone().unbind());
            Some(bar)
        }
        false => None,
    };
    let engine = study.get().engine.clone();
    let run = Arc::new(Run {
        study: study.clone().unbind(),
        since: engine.cursor(),
        engine,
        func: options.func,
        callbacks,
        catch: catch.unbind(),
        gc_after_trial: options.gc_after_trial,
        n_trials: options.n_trials,
        deadline,
        started: AtomicU64::new(0),
        ending: AtomicBool::new(false),
        running: Mutex::default(),
        error: Mutex::default(),
    });
    let (done, finished) = mpsc::channel();
    let mut others = Vec::new();
    for _ in 1..threads {
        let (run, done) = (run.clone(), done.clone());
        let handle = std::thread::Builder::new()
            .name("hyperion-optimize".into())
            .spawn(move || {
                Python::attach(|py| run.work(py));
                let _ = done.send(());
            })
            .map_err(|e| {
                to_py(Error::System {
                    what: "start a thread for n_jobs",
                    source: e,
                })
            })?;
        others.push(handle);
    }
    run.work(py);
    // Wait for the other threads without the GIL (they need it), waking now and then to let
    // Ctrl-C through: a signal reaches Python only when this thread runs Python code.
    let (mut left, mut finished) = (others.len(), finished);
    while left > 0 {
        let (receiver, received) = py.detach(move || {
            let received = finished.recv_timeout(Duration::from_millis(100));
            (finished, received)
        });
        finished = receiver;
        match received {
            Ok(()) => left -= 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(interrupt) = py.check_signals() {
                    run.end(interrupt);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for handle in others {
        let _ = py.detach(|| handle.join());
    }
    if let Some(bar) = progress {
        bar.call_method0(intern!(py, "close"))?;
    }
    let error = run.error.lock().unwrap_or_else(|e| e.into_inner()).take();
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

impl Run {
    /// One thread's loop: trials until the run ends. Its errors go to `self.error`.
    fn work(&self, py: Python<'_>) {
        while self.may_start() {
            if let Err(e) = self.one_trial(py) {
                self.end(e);
            }
        }
    }

    /// Whether another trial may start: nothing ended the run, `n_trials` and `timeout` allow,
    /// and no stop was requested since the call began (the view knows of requests from other
    /// processes after each ask and tell, without a read of its own).
    fn may_start(&self) -> bool {
        if self.ending.load(Ordering::SeqCst)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
            || self.engine.stop_requested_since(self.since).is_some()
        {
            return false;
        }
        match self.n_trials {
            Some(n) => self.started.fetch_add(1, Ordering::SeqCst) < n,
            None => true,
        }
    }

    /// Ends the run with `error`, the first one kept; running trials see `should_prune()`.
    fn end(&self, error: PyErr) {
        self.ending.store(true, Ordering::SeqCst);
        self.error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(error);
        for halt in self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            halt.store(true, Ordering::SeqCst);
        }
    }

    fn one_trial(&self, py: Python<'_>) -> PyResult<()> {
        let engine = &self.engine;
        let trial = match py.detach(|| engine.ask()) {
            Ok(trial) => trial.into_trial(),
            // The study's own budget, or a grid with no point left: the run is over.
            Err(Error::BudgetSpent { .. } | Error::Exhausted) => {
                self.ending.store(true, Ordering::SeqCst);
                return Ok(());
            }
            Err(e) => return Err(to_py(e)),
        };
        let number = trial.number;
        let py_trial = PyTrial::new(self.study.clone_ref(py), engine.clone(), trial);
        let halt = py_trial.halt_flag();
        halt.store(self.ending.load(Ordering::SeqCst), Ordering::SeqCst);
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(halt.clone());
        let py_trial = Bound::new(py, py_trial)?;
        let returned = self.func.call1(py, (&py_trial,));
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|h| !Arc::ptr_eq(h, &halt));
        let stopped = py_trial.borrow().stopped.clone();
        let (outcome, raise) = self.outcome(py, returned, stopped)?;
        let told = py.detach(|| engine.tell(number, outcome)).map_err(to_py)?;
        if let Some(e) = raise {
            return Err(e);
        }
        if self.callbacks.is_empty() {
            return self.collect_garbage(py);
        }
        let frozen = self.study.get().frozen_py(py, told)?;
        for callback in &self.callbacks {
            callback.call1(py, (&self.study, &frozen))?;
        }
        self.collect_garbage(py)
    }

    fn collect_garbage(&self, py: Python<'_>) -> PyResult<()> {
        if self.gc_after_trial {
            py.import(intern!(py, "gc"))?
                .call_method0(intern!(py, "collect"))?;
        }
        Ok(())
    }

    /// How the objective's return ends its trial, and the exception that ends the run (one
    /// not in `catch`, or Ctrl-C), as Optuna decides.
    fn outcome(
        &self,
        py: Python<'_>,
        returned: PyResult<Py<PyAny>>,
        stopped: Option<String>,
    ) -> PyResult<(Outcome, Option<PyErr>)> {
        let e = match returned {
            Ok(value) => {
                let outcome = match values_from_py(value.bind(py))? {
                    Ok(values) => Outcome::Completed(values),
                    Err(error) => Outcome::Failed { error },
                };
                return Ok((outcome, None));
            }
            Err(e) => e,
        };
        if e.is_instance_of::<TrialPruned>(py) {
            let message = e.value(py).str()?.to_string();
            let reason = stopped
                .or_else(|| (!message.is_empty()).then_some(message))
                .unwrap_or_else(|| "the objective raised TrialPruned".into());
            return Ok((Outcome::Pruned { reason }, None));
        }
        let error = traceback(py, &e);
        let caught =
            !e.is_instance_of::<PyKeyboardInterrupt>(py) && e.matches(py, self.catch.bind(py))?;
        Ok((Outcome::Failed { error }, (!caught).then_some(e)))
    }
}

/// The exception with its traceback, as Python prints it.
fn traceback(py: Python<'_>, e: &PyErr) -> String {
    let formatted = (|| -> PyResult<String> {
        let lines = py.import(intern!(py, "traceback"))?.call_method1(
            intern!(py, "format_exception"),
            (e.get_type(py), e.value(py), e.traceback(py)),
        )?;
        let text = PyString::new(py, "").call_method1(intern!(py, "join"), (lines,))?;
        text.extract::<String>()
    })();
    formatted.unwrap_or_else(|_| e.to_string())
}
