//! Values between Python and the engine: parameter values, objective values, user attributes.

use std::collections::BTreeMap;

use hyperion_core::{ParamValue, Params, Timestamp};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::{IntoPyObjectExt, intern};

pub(crate) fn param_to_py(py: Python<'_>, value: &ParamValue) -> PyResult<Py<PyAny>> {
    match value {
        ParamValue::Bool(b) => b.into_py_any(py),
        ParamValue::Int(i) => i.into_py_any(py),
        ParamValue::Float(x) => x.into_py_any(py),
        ParamValue::Str(s) => s.into_py_any(py),
    }
}

/// A categorical choice or an enqueued value: a bool, an int, a float or a str. `what` names
/// it in the error ("choice 2 of \"optimizer\"").
pub(crate) fn param_from_py(value: &Bound<'_, PyAny>, what: &str) -> PyResult<ParamValue> {
    // bool first: Python's bool is an int.
    if value.is_instance_of::<PyBool>() {
        return Ok(ParamValue::Bool(value.extract()?));
    }
    if value.is_instance_of::<PyInt>() {
        return value.extract::<i64>().map(ParamValue::Int).map_err(|_| {
            PyValueError::new_err(format!("{what}: {value} does not fit in 64 bits"))
        });
    }
    if value.is_instance_of::<PyFloat>() {
        return Ok(ParamValue::Float(value.extract()?));
    }
    if value.is_instance_of::<PyString>() {
        return Ok(ParamValue::Str(value.extract()?));
    }
    Err(PyTypeError::new_err(format!(
        "{what}: {} is a {}; parameter values are bool, int, float or str",
        value.repr()?,
        value.get_type().name()?
    )))
}

pub(crate) fn params_to_py<'py>(py: Python<'py>, params: &Params) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in params {
        dict.set_item(name, param_to_py(py, value)?)?;
    }
    Ok(dict)
}

pub(crate) fn params_from_py(params: &Bound<'_, PyDict>) -> PyResult<Params> {
    let mut out = Params::new();
    for (name, value) in params.iter() {
        let name: String = name.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "parameter names are str, not {}",
                name.repr().map_or_else(|_| "?".into(), |r| r.to_string())
            ))
        })?;
        let value = param_from_py(&value, &format!("parameter \"{name}\""))?;
        out.insert(name, value);
    }
    Ok(out)
}

/// What an objective returned, or what `tell` was given: one number, or one per objective.
/// `Ok(Err(why))` for something that is no number (the trial then fails, as Optuna does).
pub(crate) fn values_from_py(value: &Bound<'_, PyAny>) -> PyResult<Result<Vec<f64>, String>> {
    if let Ok(x) = value.extract::<f64>() {
        return Ok(Ok(vec![x]));
    }
    if (value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>())
        && let Ok(values) = value.extract::<Vec<f64>>()
    {
        return Ok(Ok(values));
    }
    Ok(Err(format!(
        "the objective returned {}, which is not a number or a sequence of numbers",
        value.repr()?
    )))
}

pub(crate) fn json_to_py(py: Python<'_>, value: &serde_json::Value) -> PyResult<Py<PyAny>> {
    use serde_json::Value;
    Ok(match value {
        Value::Null => py.None(),
        Value::Bool(b) => b.into_py_any(py)?,
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into_py_any(py)?,
            (None, Some(x)) => x.into_py_any(py)?,
            (None, None) => n.to_string().into_py_any(py)?,
        },
        Value::String(s) => s.into_py_any(py)?,
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any().unbind()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_to_py(py, v)?)?;
            }
            dict.into_any().unbind()
        }
    })
}

/// A user attribute: what JSON can hold (None, bool, int, float, str, lists, dicts with str
/// keys), as Optuna requires.
pub(crate) fn json_from_py(value: &Bound<'_, PyAny>, key: &str) -> PyResult<serde_json::Value> {
    use serde_json::Value;
    if value.is_none() {
        return Ok(Value::Null);
    }
    if value.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(value.extract()?));
    }
    if value.is_instance_of::<PyInt>()
        && let Ok(i) = value.extract::<i64>()
    {
        return Ok(Value::from(i));
    }
    if let Ok(x) = value.extract::<f64>() {
        // NaN and infinities have no JSON form; they are stored as null.
        return Ok(serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number));
    }
    if value.is_instance_of::<PyString>() {
        return Ok(Value::String(value.extract()?));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        return value
            .try_iter()?
            .map(|item| json_from_py(&item?, key))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut map = serde_json::Map::new();
        for (k, v) in dict.iter() {
            let k: String = k.extract().map_err(|_| {
                PyTypeError::new_err(format!("user attribute \"{key}\": dict keys must be str"))
            })?;
            map.insert(k, json_from_py(&v, key)?);
        }
        return Ok(Value::Object(map));
    }
    Err(PyTypeError::new_err(format!(
        "user attribute \"{key}\": a {} is not JSON (give None, bool, int, float, str, list or dict)",
        value.get_type().name()?
    )))
}

pub(crate) fn attrs_to_py<'py>(
    py: Python<'py>,
    attrs: &BTreeMap<String, serde_json::Value>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in attrs {
        dict.set_item(k, json_to_py(py, v)?)?;
    }
    Ok(dict)
}

/// A `datetime.datetime` in local time, as Optuna's trials have (naive).
pub(crate) fn datetime_to_py(py: Python<'_>, at: Option<Timestamp>) -> PyResult<Py<PyAny>> {
    let Some(at) = at else {
        return Ok(py.None());
    };
    let datetime = py
        .import(intern!(py, "datetime"))?
        .getattr(intern!(py, "datetime"))?;
    let seconds = at.0 as f64 / 1e6;
    Ok(datetime
        .call_method1(intern!(py, "fromtimestamp"), (seconds,))?
        .unbind())
}
