//! `Study` and the functions that create, load and delete studies, as Optuna names them.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use hyperion_core::{Direction, Objective, TrialNumber};
use hyperion_runtime::{Outcome, Study, StudyBuilder};
use hyperion_samplers::SamplerConfig;
use hyperion_schedulers::SchedulerConfig;
use hyperion_store::Store;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyo3::{IntoPyObjectExt, intern};

use crate::convert::{params_from_py, params_to_py, values_from_py};
use crate::trial::{PyFrozenTrial, PyTrial, TrialState};
use crate::{DuplicatedStudyError, store_err, to_py};

/// A study: its trials live in its store; several processes may work on it at once.
#[pyclass(module = "hyperion", name = "Study", frozen)]
#[derive(Debug)]
pub struct PyStudy {
    pub(crate) engine: Arc<Study>,
}

impl PyStudy {
    fn objectives(&self) -> usize {
        self.engine.spec().objectives.len()
    }
    pub(crate) fn frozen(&self, trial: hyperion_core::Trial) -> PyFrozenTrial {
        PyFrozenTrial::new(trial, self.objectives())
    }
    /// The Python object for a trial told in `optimize`, for its callbacks.
    pub(crate) fn frozen_py(
        &self,
        py: Python<'_>,
        trial: hyperion_core::Trial,
    ) -> PyResult<Py<PyAny>> {
        self.frozen(trial).into_py_any(py)
    }
    fn single_objective(&self, what: &str) -> PyResult<()> {
        match self.objectives() {
            1 => Ok(()),
            _ => Err(PyRuntimeError::new_err(format!(
                "{what} is for a study with one objective; this one has several: use best_trials"
            ))),
        }
    }
    fn best(&self, py: Python<'_>) -> PyResult<hyperion_core::Trial> {
        self.single_objective("best_trial")?;
        py.detach(|| self.engine.best_trial())
            .map_err(to_py)?
            .ok_or_else(|| PyValueError::new_err("no trial of the study has completed yet"))
    }
}

#[pymethods]
impl PyStudy {
    #[getter]
    fn study_name(&self) -> &str {
        self.engine.name()
    }

    /// "minimize" or "maximize" (a study with several objectives has `directions`).
    #[getter]
    fn direction(&self) -> PyResult<&'static str> {
        self.single_objective("direction")?;
        Ok(direction_name(self.engine.spec().objectives[0].direction))
    }

    #[getter]
    fn directions(&self) -> Vec<&'static str> {
        let objectives = &self.engine.spec().objectives;
        objectives
            .iter()
            .map(|o| direction_name(o.direction))
            .collect()
    }

    /// Runs `func(trial)` on new trials until `n_trials` more have run, `timeout` seconds
    /// have passed, the study's budget is spent, or `study.stop()` (from any process).
    #[pyo3(signature = (func, n_trials = None, timeout = None, n_jobs = 1, catch = None, callbacks = None, gc_after_trial = false, show_progress_bar = false))]
    #[allow(clippy::too_many_arguments)]
    fn optimize(
        slf: &Bound<'_, Self>,
        func: Py<PyAny>,
        n_trials: Option<u64>,
        timeout: Option<f64>,
        n_jobs: i64,
        catch: Option<&Bound<'_, PyAny>>,
        callbacks: Option<Vec<Py<PyAny>>>,
        gc_after_trial: bool,
        show_progress_bar: bool,
    ) -> PyResult<()> {
        crate::optimize::run(
            slf,
            crate::optimize::Options {
                func,
                n_trials,
                timeout,
                n_jobs,
                catch,
                callbacks: callbacks.unwrap_or_default(),
                gc_after_trial,
                show_progress_bar,
            },
        )
    }

    /// Starts a trial (an enqueued one first) for an ask-and-tell loop.
    fn ask(slf: &Bound<'_, Self>) -> PyResult<PyTrial> {
        let py = slf.py();
        let engine = slf.get().engine.clone();
        let trial = py
            .detach(|| engine.ask().map(|t| t.into_trial()))
            .map_err(to_py)?;
        Ok(PyTrial::new(slf.clone().unbind(), engine, trial))
    }

    /// Ends `trial` (a Trial or its number): with `values` it completes; `state=PRUNED` or
    /// `state=FAIL` end it so. A NaN value fails it, as in Optuna.
    #[pyo3(signature = (trial, values = None, state = None, skip_if_finished = false))]
    fn tell(
        &self,
        py: Python<'_>,
        trial: &Bound<'_, PyAny>,
        values: Option<&Bound<'_, PyAny>>,
        state: Option<TrialState>,
        skip_if_finished: bool,
    ) -> PyResult<PyFrozenTrial> {
        let (number, stopped) = match trial.cast::<PyTrial>() {
            Ok(t) => {
                let t = t.borrow();
                (t.trial.number, t.stopped.clone())
            }
            Err(_) => (
                TrialNumber(trial.extract::<u64>().map_err(|_| {
                    PyTypeError::new_err("tell: give the Trial that ask returned, or its number")
                })?),
                None,
            ),
        };
        let outcome = match (state, values) {
            (None | Some(TrialState::Complete), Some(values)) => match values_from_py(values)? {
                Ok(values) => Outcome::Completed(values),
                Err(error) => Outcome::Failed { error },
            },
            (None | Some(TrialState::Complete), None) => {
                return Err(PyValueError::new_err(format!(
                    "tell: trial {number} completes with values; give values= (or state=)"
                )));
            }
            (Some(TrialState::Pruned), _) => Outcome::Pruned {
                reason: stopped.unwrap_or_else(|| "told as pruned".into()),
            },
            (Some(TrialState::Fail), _) => Outcome::Failed {
                error: "told as failed".into(),
            },
            (Some(state), _) => {
                return Err(PyValueError::new_err(format!(
                    "tell: a trial ends as COMPLETE, PRUNED or FAIL, not {}",
                    state.name()
                )));
            }
        };
        let engine = &self.engine;
        if skip_if_finished {
            let stored = py
                .detach(|| engine.store().trial(engine.record_id(), number))
                .map_err(store_err)?;
            if stored.state.is_finished() {
                return Ok(self.frozen(stored));
            }
        }
        let told = py.detach(|| engine.tell(number, outcome)).map_err(to_py)?;
        Ok(self.frozen(told))
    }

    /// Queues a trial with these params: the next `ask` (or trial of `optimize`) runs it, and
    /// its `suggest_*` calls return them.
    #[pyo3(signature = (params, user_attrs = None, skip_if_exists = false))]
    fn enqueue_trial(
        &self,
        py: Python<'_>,
        params: &Bound<'_, PyDict>,
        user_attrs: Option<&Bound<'_, PyDict>>,
        skip_if_exists: bool,
    ) -> PyResult<()> {
        let params = params_from_py(params)?;
        let engine = &self.engine;
        if skip_if_exists {
            let trials = py.detach(|| engine.trials()).map_err(to_py)?;
            if trials.iter().any(|t| *t.params == params) {
                return Ok(());
            }
        }
        let attrs = user_attrs
            .map(|attrs| {
                attrs
                    .iter()
                    .map(|(k, v)| {
                        let k: String = k.extract()?;
                        let v = crate::convert::json_from_py(&v, &k)?;
                        Ok((k, v))
                    })
                    .collect::<PyResult<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default();
        py.detach(|| -> Result<(), hyperion_runtime::Error> {
            let trial = engine.enqueue(params)?;
            for (k, v) in &attrs {
                engine
                    .store()
                    .set_user_attr(engine.record_id(), trial.number, k, v)?;
            }
            Ok(())
        })
        .map_err(to_py)
    }

    /// Every trial, by number.
    #[getter(trials)]
    fn all_trials(&self, py: Python<'_>) -> PyResult<Vec<PyFrozenTrial>> {
        self.trials_in(py, true, None)
    }

    /// The trials, only those in `states` when given.
    #[pyo3(name = "get_trials", signature = (deepcopy = true, states = None))]
    fn trials_in(
        &self,
        py: Python<'_>,
        deepcopy: bool,
        states: Option<Vec<TrialState>>,
    ) -> PyResult<Vec<PyFrozenTrial>> {
        // Frozen trials are copies already: `deepcopy` is accepted for Optuna's code.
        let _ = deepcopy;
        let trials = py.detach(|| self.engine.trials()).map_err(to_py)?;
        Ok(trials
            .into_iter()
            .filter(|t| {
                states
                    .as_ref()
                    .is_none_or(|s| s.contains(&TrialState::of(&t.state)))
            })
            .map(|t| self.frozen(t))
            .collect())
    }

    #[getter]
    fn best_trial(&self, py: Python<'_>) -> PyResult<PyFrozenTrial> {
        Ok(self.frozen(self.best(py)?))
    }
    #[getter]
    fn best_value(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        Ok(self.best(py)?.value())
    }
    #[getter]
    fn best_params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        params_to_py(py, &self.best(py)?.params)
    }
    /// The completed trials no other completed trial dominates (the Pareto front).
    #[getter]
    fn best_trials(&self, py: Python<'_>) -> PyResult<Vec<PyFrozenTrial>> {
        let front = py.detach(|| self.engine.pareto_front()).map_err(to_py)?;
        Ok(front.into_iter().map(|t| self.frozen(t)).collect())
    }

    /// The trials as a pandas DataFrame, one row each (pandas must be installed).
    #[pyo3(signature = (attrs = None, multi_index = false))]
    fn trials_dataframe(
        slf: &Bound<'_, Self>,
        attrs: Option<Vec<String>>,
        multi_index: bool,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let frame = py.import(intern!(py, "hyperion._frame"))?;
        Ok(frame
            .call_method1(intern!(py, "trials_dataframe"), (slf, attrs, multi_index))?
            .unbind())
    }

    /// Asks every run of the study — `optimize` here and in other processes, `hyperion run` and
    /// workers — to start no more trials; running ones finish. Recorded in the store.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.engine.request(false, "study.stop() in Python"))
            .map_err(to_py)
    }

    fn __repr__(&self) -> String {
        format!("Study(study_name={:?})", self.engine.name())
    }
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Minimize => "minimize",
        Direction::Maximize => "maximize",
    }
}

/// Opens the store a storage argument names: None is a new in-memory store; a URL is one of
/// Hyperion's (SQLAlchemy's `postgresql+psycopg2://` driver suffix is dropped, so Optuna's URLs
/// work as they are).
fn open_store(py: Python<'_>, storage: Option<&str>) -> PyResult<Arc<dyn Store>> {
    let Some(url) = storage else {
        return Ok(Arc::new(hyperion_store::MemoryStore::new()));
    };
    let url = match url.split_once("://") {
        Some((scheme, rest)) if scheme.contains('+') => {
            let base = scheme.split('+').next().unwrap_or(scheme);
            format!("{base}://{rest}")
        }
        _ => url.to_owned(),
    };
    py.detach(|| hyperion_store::open(&url)).map_err(store_err)
}

fn parse_direction(direction: &str) -> PyResult<Direction> {
    match direction.to_ascii_lowercase().as_str() {
        "minimize" => Ok(Direction::Minimize),
        "maximize" => Ok(Direction::Maximize),
        _ => Err(PyValueError::new_err(format!(
            "direction is {direction:?}; it must be \"minimize\" or \"maximize\""
        ))),
    }
}

/// The objectives: "value" for one, "values_0", "values_1", … for several (the columns of
/// Optuna's `trials_dataframe`).
fn objectives(
    direction: Option<&str>,
    directions: Option<Vec<String>>,
) -> PyResult<Vec<Objective>> {
    let directions = match (direction, directions) {
        (Some(_), Some(_)) => {
            return Err(PyValueError::new_err(
                "give direction or directions, not both",
            ));
        }
        (Some(d), None) => vec![d.to_owned()],
        (None, Some(ds)) if ds.is_empty() => {
            return Err(PyValueError::new_err("directions is empty"));
        }
        (None, Some(ds)) => ds,
        (None, None) => vec!["minimize".to_owned()],
    };
    let several = directions.len() > 1;
    directions
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let metric = match several {
                true => format!("values_{i}"),
                false => "value".to_owned(),
            };
            Ok(Objective {
                metric,
                direction: parse_direction(d)?,
            })
        })
        .collect()
}

/// A sampler or pruner object's settings: the JSON its `_hyperion_config()` gives, read as
/// `T` (a study file's `method:` or `early_stopping:` section), and its seed.
fn config_of<T: serde::de::DeserializeOwned>(
    object: &Bound<'_, PyAny>,
    what: &str,
) -> PyResult<(T, Option<u64>)> {
    let py = object.py();
    let text: String = object
        .call_method0(intern!(py, "_hyperion_config"))
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "{what}: {} is not one of hyperion.{what}s (e.g. hyperion.{what}s.{})",
                object.repr().map_or_else(|_| "?".into(), |r| r.to_string()),
                match what {
                    "sampler" => "TPESampler",
                    _ => "MedianPruner",
                }
            ))
        })?
        .extract()?;
    let config = serde_json::from_str(&text)
        .map_err(|e| PyValueError::new_err(format!("{what}: {e} in {text}")))?;
    let seed = object
        .getattr(intern!(py, "seed"))
        .ok()
        .map(|s| s.extract::<Option<u64>>())
        .transpose()
        .map_err(|_| PyValueError::new_err(format!("{what}: seed must be an int ≥ 0")))?
        .flatten();
    Ok((config, seed))
}

/// The sampler and pruner arguments onto a builder.
fn configure(
    mut builder: StudyBuilder,
    sampler: Option<&Bound<'_, PyAny>>,
    pruner: Option<&Bound<'_, PyAny>>,
) -> PyResult<StudyBuilder> {
    if let Some(sampler) = sampler.filter(|s| !s.is_none()) {
        let (config, seed) = config_of::<SamplerConfig>(sampler, "sampler")?;
        builder = builder.sampler(config);
        if let Some(seed) = seed {
            builder = builder.seed(seed);
        }
    }
    if let Some(pruner) = pruner.filter(|p| !p.is_none()) {
        let (config, _) = config_of::<SchedulerConfig>(pruner, "pruner")?;
        builder = builder.early_stopping(config);
    }
    Ok(builder)
}

/// A name for a study created without one, as Optuna's `no-name-…`.
fn fresh_name() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("no-name-{:016x}", hasher.finish())
}

fn build(py: Python<'_>, builder: StudyBuilder) -> PyResult<PyStudy> {
    let study = py.detach(|| builder.open()).map_err(to_py)?;
    Ok(PyStudy {
        engine: Arc::new(study),
    })
}

/// Creates a study (or, with `load_if_exists=True`, opens the one of that name).
#[pyfunction]
#[pyo3(signature = (*, storage = None, sampler = None, pruner = None, study_name = None, direction = None, load_if_exists = false, directions = None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn create_study(
    py: Python<'_>,
    storage: Option<&str>,
    sampler: Option<&Bound<'_, PyAny>>,
    pruner: Option<&Bound<'_, PyAny>>,
    study_name: Option<String>,
    direction: Option<&str>,
    load_if_exists: bool,
    directions: Option<Vec<String>>,
) -> PyResult<PyStudy> {
    let objectives = objectives(direction, directions)?;
    let store = open_store(py, storage)?;
    let name = study_name.unwrap_or_else(fresh_name);
    if !load_if_exists {
        match py.detach(|| store.study(&name)) {
            Ok(_) => {
                return Err(DuplicatedStudyError::new_err(format!(
                    "study \"{name}\" exists in {}; pass load_if_exists=True to open it",
                    store.location()
                )));
            }
            Err(hyperion_store::StoreError::StudyNotFound { .. }) => {}
            Err(e) => return Err(store_err(e)),
        }
    }
    let builder = Study::builder(&name).store(store).objectives(objectives);
    build(py, configure(builder, sampler, pruner)?)
}

/// Opens study `study_name` with its stored settings (sampler, pruner, seed); a sampler or
/// pruner given here replaces the stored one.
#[pyfunction]
#[pyo3(signature = (*, study_name, storage, sampler = None, pruner = None))]
pub(crate) fn load_study(
    py: Python<'_>,
    study_name: &str,
    storage: Option<&str>,
    sampler: Option<&Bound<'_, PyAny>>,
    pruner: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyStudy> {
    let store = open_store(py, storage)?;
    let record = py.detach(|| store.study(study_name)).map_err(store_err)?;
    let builder = Study::builder(study_name)
        .store(store)
        .objectives(record.spec.objectives.clone())
        .space(record.spec.space.clone());
    build(py, configure(builder, sampler, pruner)?)
}

/// Deletes study `study_name` and all its trials.
#[pyfunction]
#[pyo3(signature = (*, study_name, storage))]
pub(crate) fn delete_study(py: Python<'_>, study_name: &str, storage: &str) -> PyResult<()> {
    let store = open_store(py, Some(storage))?;
    py.detach(|| store.delete_study(study_name))
        .map_err(store_err)
}

/// The names of the studies in `storage`.
#[pyfunction]
#[pyo3(signature = (storage))]
pub(crate) fn get_all_study_names(py: Python<'_>, storage: &str) -> PyResult<Py<PyList>> {
    let store = open_store(py, Some(storage))?;
    let studies = py.detach(|| store.studies()).map_err(store_err)?;
    let names: Vec<String> = studies.into_iter().map(|s| s.spec.name).collect();
    Ok(PyList::new(py, names)?.unbind())
}
