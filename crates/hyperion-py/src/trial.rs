//! `Trial` (a running trial an objective suggests from and reports to), `FrozenTrial` (a trial as
//! stored) and `TrialState`, as Optuna names them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hyperion_core::{
    CategoricalDistribution, Distribution, FloatDistribution, IntDistribution, Trial,
    TrialState as State,
};
use hyperion_runtime::{JointDraw, Study, Verdict};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::{IntoPyObjectExt, intern};

use crate::convert::{
    attrs_to_py, datetime_to_py, json_from_py, param_from_py, param_to_py, params_to_py,
};
use crate::study::PyStudy;
use crate::to_py;

/// A trial's state, with Optuna's names and numbers.
#[pyclass(
    module = "hyperion",
    name = "TrialState",
    eq,
    eq_int,
    hash,
    frozen,
    from_py_object
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrialState {
    #[pyo3(name = "RUNNING")]
    Running = 0,
    #[pyo3(name = "COMPLETE")]
    Complete = 1,
    #[pyo3(name = "PRUNED")]
    Pruned = 2,
    #[pyo3(name = "FAIL")]
    Fail = 3,
    #[pyo3(name = "WAITING")]
    Waiting = 4,
}

impl TrialState {
    pub(crate) fn of(state: &State) -> Self {
        match state {
            State::Pending => TrialState::Waiting,
            State::Running => TrialState::Running,
            State::Completed => TrialState::Complete,
            State::Pruned { .. } => TrialState::Pruned,
            State::Failed { .. } => TrialState::Fail,
        }
    }
}

#[pymethods]
impl TrialState {
    #[getter]
    pub(crate) fn name(&self) -> &'static str {
        match self {
            TrialState::Running => "RUNNING",
            TrialState::Complete => "COMPLETE",
            TrialState::Pruned => "PRUNED",
            TrialState::Fail => "FAIL",
            TrialState::Waiting => "WAITING",
        }
    }
    fn is_finished(&self) -> bool {
        matches!(
            self,
            TrialState::Complete | TrialState::Pruned | TrialState::Fail
        )
    }
    pub(crate) fn __repr__(&self) -> String {
        format!("TrialState.{}", self.name())
    }
}

/// A running trial: what `study.ask()` returns and an objective receives.
#[pyclass(module = "hyperion", name = "Trial")]
#[derive(Debug)]
pub struct PyTrial {
    study: Py<PyStudy>,
    engine: Arc<Study>,
    pub(crate) trial: Trial,
    joint: JointDraw,
    /// The scheduler's reason for stopping it, once it has.
    pub(crate) stopped: Option<String>,
    /// Raised by `optimize` when it ends early (Ctrl-C, an error on another thread).
    halted: Arc<AtomicBool>,
}

impl PyTrial {
    pub(crate) fn new(study: Py<PyStudy>, engine: Arc<Study>, trial: Trial) -> Self {
        PyTrial {
            study,
            engine,
            trial,
            joint: JointDraw::default(),
            stopped: None,
            halted: Arc::default(),
        }
    }

    pub(crate) fn halt_flag(&self) -> Arc<AtomicBool> {
        self.halted.clone()
    }

    fn suggest(
        &mut self,
        py: Python<'_>,
        name: &str,
        distribution: Distribution,
    ) -> PyResult<Py<PyAny>> {
        let (engine, trial, joint) = (&self.engine, &mut self.trial, &mut self.joint);
        let value = py
            .detach(|| engine.suggest_for(trial, joint, name, distribution))
            .map_err(to_py)?;
        param_to_py(py, &value)
    }
}

#[pymethods]
impl PyTrial {
    /// A float in `[low, high]`; `log=True` samples `ln(x)` uniformly, `step` discretizes.
    #[pyo3(signature = (name, low, high, *, step = None, log = false))]
    fn suggest_float(
        &mut self,
        py: Python<'_>,
        name: &str,
        low: f64,
        high: f64,
        step: Option<f64>,
        log: bool,
    ) -> PyResult<Py<PyAny>> {
        if log && step.is_some() {
            return Err(PyValueError::new_err(format!(
                "parameter \"{name}\": give step or log=True, not both (as Optuna)"
            )));
        }
        let mut distribution = FloatDistribution::new(low, high);
        if log {
            distribution = distribution.log();
        }
        if let Some(step) = step {
            distribution = distribution.step(step);
        }
        self.suggest(py, name, distribution.into())
    }

    /// An int in `[low, high]`, both included.
    #[pyo3(signature = (name, low, high, *, step = 1, log = false))]
    fn suggest_int(
        &mut self,
        py: Python<'_>,
        name: &str,
        low: i64,
        high: i64,
        step: i64,
        log: bool,
    ) -> PyResult<Py<PyAny>> {
        if log && step != 1 {
            return Err(PyValueError::new_err(format!(
                "parameter \"{name}\": give step or log=True, not both (as Optuna)"
            )));
        }
        let mut distribution = IntDistribution::new(low, high);
        if log {
            distribution = distribution.log();
        }
        if step != 1 {
            distribution = distribution.step(step);
        }
        self.suggest(py, name, distribution.into())
    }

    /// One of `choices` (bool, int, float or str values).
    fn suggest_categorical(
        &mut self,
        py: Python<'_>,
        name: &str,
        choices: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let choices = choices
            .try_iter()?
            .enumerate()
            .map(|(i, c)| param_from_py(&c?, &format!("choice {i} of \"{name}\"")))
            .collect::<PyResult<Vec<_>>>()?;
        self.suggest(py, name, CategoricalDistribution::new(choices).into())
    }

    /// Records the objective's value at `step` and lets the study's pruner decide; then
    /// `should_prune()` tells.
    fn report(&mut self, py: Python<'_>, value: f64, step: i64) -> PyResult<()> {
        let step = u64::try_from(step).map_err(|_| {
            PyValueError::new_err(format!("report: step is {step}; it must be 0 or more"))
        })?;
        let (engine, number) = (&self.engine, self.trial.number);
        let verdict = py
            .detach(|| engine.report(number, step, &[value]))
            .map_err(to_py)?;
        self.trial.intermediate.insert(step, value);
        if let Verdict::Stop { reason, .. } = verdict {
            self.stopped.get_or_insert(reason);
        }
        Ok(())
    }

    /// Whether the pruner stopped this trial at its last report (or `optimize` is ending):
    /// then `raise hyperion.TrialPruned()`.
    fn should_prune(&self) -> bool {
        self.stopped.is_some() || self.halted.load(Ordering::SeqCst)
    }

    fn set_user_attr(
        &mut self,
        py: Python<'_>,
        key: &str,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let value = json_from_py(value, key)?;
        let (engine, number) = (&self.engine, self.trial.number);
        py.detach(|| {
            engine
                .store()
                .set_user_attr(engine.record_id(), number, key, &value)
        })
        .map_err(crate::store_err)?;
        self.trial.user_attrs.insert(key.to_owned(), value);
        Ok(())
    }

    #[getter]
    fn number(&self) -> u64 {
        self.trial.number.0
    }
    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        params_to_py(py, &self.trial.params)
    }
    #[getter]
    fn user_attrs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        attrs_to_py(py, &self.trial.user_attrs)
    }
    #[getter]
    fn datetime_start(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        datetime_to_py(py, self.trial.started_at)
    }
    #[getter]
    fn study(&self, py: Python<'_>) -> Py<PyStudy> {
        self.study.clone_ref(py)
    }
    fn __repr__(&self) -> String {
        format!("Trial(number={})", self.trial.number)
    }
}

/// A trial as stored: what `study.trials`, `best_trial` and callbacks give.
#[pyclass(module = "hyperion", name = "FrozenTrial", frozen)]
#[derive(Debug)]
pub struct PyFrozenTrial {
    pub(crate) trial: Trial,
    objectives: usize,
}

impl PyFrozenTrial {
    pub(crate) fn new(trial: Trial, objectives: usize) -> Self {
        PyFrozenTrial { trial, objectives }
    }
}

#[pymethods]
impl PyFrozenTrial {
    #[getter]
    fn number(&self) -> u64 {
        self.trial.number.0
    }
    #[getter]
    fn state(&self) -> TrialState {
        TrialState::of(&self.trial.state)
    }
    /// The objective's value; for a study with several, `values`.
    #[getter]
    fn value(&self) -> PyResult<Option<f64>> {
        if self.objectives > 1 {
            return Err(PyRuntimeError::new_err(
                "this study has several objectives: use `values`",
            ));
        }
        Ok(self.trial.value())
    }
    #[getter]
    fn values(&self) -> Option<Vec<f64>> {
        self.trial.values.clone()
    }
    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        params_to_py(py, &self.trial.params)
    }
    #[getter]
    fn user_attrs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        attrs_to_py(py, &self.trial.user_attrs)
    }
    /// Reported values by step.
    #[getter]
    fn intermediate_values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (step, value) in &self.trial.intermediate {
            dict.set_item(step, value)?;
        }
        Ok(dict)
    }
    #[getter]
    fn last_step(&self) -> Option<u64> {
        self.trial.last_report().map(|(step, _)| step)
    }
    #[getter]
    fn datetime_start(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        datetime_to_py(py, self.trial.started_at)
    }
    #[getter]
    fn datetime_complete(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        datetime_to_py(py, self.trial.finished_at)
    }
    /// A `datetime.timedelta`, or None before the trial started.
    #[getter]
    fn duration(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let Some(duration) = self.trial.duration() else {
            return Ok(py.None());
        };
        let timedelta = py
            .import(intern!(py, "datetime"))?
            .getattr(intern!(py, "timedelta"))?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("seconds", duration.as_secs_f64())?;
        Ok(timedelta.call((), Some(&kwargs))?.unbind())
    }
    /// Why it failed (the objective's traceback), or None.
    #[getter]
    fn error(&self) -> Option<&str> {
        match &self.trial.state {
            State::Failed { error } => Some(error),
            _ => None,
        }
    }
    /// Why it was pruned (the pruner's rationale), or None.
    #[getter]
    fn pruned_reason(&self) -> Option<&str> {
        match &self.trial.state {
            State::Pruned { reason, .. } => Some(reason),
            _ => None,
        }
    }
    /// The trial this one retries, or None.
    #[getter]
    fn retry_of(&self) -> Option<u64> {
        self.trial.retry_of.map(|n| n.0)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let params = params_to_py(py, &self.trial.params)?;
        let values = self.trial.values.clone().into_py_any(py)?;
        Ok(format!(
            "FrozenTrial(number={}, state={}, values={}, params={})",
            self.trial.number,
            self.state().__repr__(),
            values.bind(py).repr()?,
            params.repr()?
        ))
    }
}
