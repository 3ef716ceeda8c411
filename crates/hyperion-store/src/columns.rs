//! How the SQL backends store what is not a plain number: JSON columns, and a trial's state as
//! its name with a step and a message.

use hyperion_core::{StudySpec, TrialNumber, TrialState};

use crate::StoreError;

pub(crate) fn parse_spec(json: &str) -> Result<StudySpec, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Inconsistent(format!("stored study spec: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("serializing plain data cannot fail")
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    what: &str,
    json: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Inconsistent(format!("stored {what}: {e}")))
}

/// The state names a store holds, as `'static` strings for errors.
pub(crate) fn state_name(stored: &str) -> &'static str {
    ["pending", "running", "completed", "pruned", "failed"]
        .into_iter()
        .find(|s| *s == stored)
        .unwrap_or("unknown")
}

/// A state as its columns: name, pruning step, message (reason or error).
pub(crate) fn state_columns(state: &TrialState) -> (&'static str, Option<i64>, Option<&str>) {
    match state {
        TrialState::Pruned { step, reason } => ("pruned", step.map(|s| s as i64), Some(reason)),
        TrialState::Failed { error } => ("failed", None, Some(error)),
        other => (other.name(), None, None),
    }
}

/// The state its columns hold.
pub(crate) fn state_from_columns(
    number: i64,
    state: &str,
    step: Option<i64>,
    message: Option<String>,
) -> Result<TrialState, StoreError> {
    Ok(match state {
        "pending" => TrialState::Pending,
        "running" => TrialState::Running,
        "completed" => TrialState::Completed,
        "pruned" => TrialState::Pruned {
            step: step.map(|s| s as u64),
            reason: message.unwrap_or_default(),
        },
        "failed" => TrialState::Failed {
            error: message.unwrap_or_default(),
        },
        other => {
            return Err(StoreError::Inconsistent(format!(
                "trial {} has state \"{other}\"",
                TrialNumber(number as u64)
            )));
        }
    })
}

/// Counts from `(state name, count)` rows.
pub(crate) fn counts_of(rows: impl IntoIterator<Item = (String, i64)>) -> hyperion_core::Counts {
    let mut counts = hyperion_core::Counts::default();
    for (state, n) in rows {
        let n = n as u64;
        match state.as_str() {
            "pending" => counts.pending += n,
            "running" => counts.running += n,
            "completed" => counts.completed += n,
            "pruned" => counts.pruned += n,
            _ => counts.failed += n,
        }
    }
    counts
}
