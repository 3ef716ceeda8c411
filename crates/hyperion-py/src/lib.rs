//! `hyperion._native`: the Rust engine as a Python extension module. The Python package
//! (`python/hyperion`) re-exports it with the samplers, pruners and trial-script helpers, which
//! are plain Python.
//!
//! Every call that samples or touches the store releases the GIL (`py.detach`), so that
//! threads of `optimize(n_jobs=…)` whose objectives release it too (numpy, PyTorch) run at once.

mod convert;
mod optimize;
mod study;
mod trial;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyError, PyValueError};
use pyo3::prelude::*;

use hyperion_runtime::Error;
use hyperion_store::StoreError;

create_exception!(
    hyperion,
    HyperionError,
    PyException,
    "The base of Hyperion's own exceptions."
);
create_exception!(
    hyperion,
    TrialPruned,
    HyperionError,
    "Raised by an objective to end its trial as pruned (after `trial.should_prune()`)."
);
create_exception!(
    hyperion,
    DuplicatedStudyError,
    HyperionError,
    "`create_study` of a name that exists, without `load_if_exists=True`."
);
create_exception!(
    hyperion,
    StorageError,
    HyperionError,
    "The store failed or refused: a file that is not a Hyperion store, a lost server, a newer \
     schema."
);

/// An engine error as the Python exception an Optuna user expects: `KeyError` for a missing
/// study or trial, `ValueError` for bad arguments, `StorageError` for the store itself.
pub(crate) fn to_py(e: Error) -> PyErr {
    let text = e.to_string();
    match e {
        Error::Store(StoreError::StudyNotFound { .. } | StoreError::TrialNotFound { .. }) => {
            PyKeyError::new_err(text)
        }
        Error::Store(StoreError::StudyExists { .. }) => DuplicatedStudyError::new_err(text),
        Error::Store(
            StoreError::SpecMismatch { .. }
            | StoreError::NotRunning { .. }
            | StoreError::InvalidValues { .. }
            | StoreError::Param(_),
        )
        | Error::Param(_)
        | Error::Config(_)
        | Error::Sampler(_)
        | Error::Scheduler(_)
        | Error::BudgetSpent { .. }
        | Error::Exhausted => PyValueError::new_err(text),
        _ => StorageError::new_err(text),
    }
}

pub(crate) fn store_err(e: StoreError) -> PyErr {
    to_py(Error::Store(e))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("HyperionError", py.get_type::<HyperionError>())?;
    m.add("TrialPruned", py.get_type::<TrialPruned>())?;
    m.add(
        "DuplicatedStudyError",
        py.get_type::<DuplicatedStudyError>(),
    )?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add_class::<study::PyStudy>()?;
    m.add_class::<trial::PyTrial>()?;
    m.add_class::<trial::PyFrozenTrial>()?;
    m.add_class::<trial::TrialState>()?;
    m.add_function(wrap_pyfunction!(study::create_study, m)?)?;
    m.add_function(wrap_pyfunction!(study::load_study, m)?)?;
    m.add_function(wrap_pyfunction!(study::delete_study, m)?)?;
    m.add_function(wrap_pyfunction!(study::get_all_study_names, m)?)?;
    Ok(())
}
