//! How the SQL backends store what is not a plain number: JSON columns, and a trial's state as
//! its name with a step and a message.

use std::sync::Arc;

use hyperion_core::{StudySpec, Timestamp, Trial, TrialId, TrialNumber, TrialState};

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
fn state_from_columns(
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

/// Lifecycle counts from the `stages` column of running trials.
pub(crate) fn phases_of(
    rows: impl IntoIterator<Item = String>,
) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
    let mut phases = std::collections::BTreeMap::new();
    for text in rows {
        let stages: Vec<hyperion_core::StageRun> = from_json("stages", &text)?;
        if let Some(phase) = hyperion_core::lifecycle(&stages) {
            *phases.entry(phase).or_default() += 1;
        }
    }
    Ok(phases)
}

/// The numbers of a page of `limit` trials from `first`, as `[lo, hi)` for SQL: numbers are
/// dense, so a page is a range of numbers, read through the indexes.
pub(crate) fn number_range(first: u64, limit: u64) -> (i64, i64) {
    let clamp = |n: u64| n.min(i64::MAX as u64) as i64;
    (clamp(first), clamp(first.saturating_add(limit)))
}

/// A trial's columns as both SQL backends store them (`SELECT id, number, state, prune_step,
/// message, params, objective_values, parent, depth, retry_of, created_at, started_at,
/// finished_at, metrics, launch, stages, objective_version`).
pub(crate) struct TrialRow {
    pub id: i64,
    pub number: i64,
    pub state: String,
    pub prune_step: Option<i64>,
    pub message: Option<String>,
    pub params: String,
    pub values: Option<String>,
    pub parent: Option<i64>,
    pub depth: i64,
    pub retry_of: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub metrics: Option<String>,
    pub launch: Option<String>,
    pub stages: Option<String>,
    pub objective_version: i64,
}

impl TrialRow {
    /// The trial, without its intermediate values and attributes (rows of their own).
    pub fn into_trial(self) -> Result<Trial, StoreError> {
        let time = |t: Option<i64>| t.map(|t| Timestamp(t as u64));
        let number = |n: i64| TrialNumber(n as u64);
        Ok(Trial {
            id: TrialId(self.id as u64),
            number: number(self.number),
            state: state_from_columns(self.number, &self.state, self.prune_step, self.message)?,
            params: Arc::new(from_json("params", &self.params)?),
            values: self.values.map(|v| from_json("values", &v)).transpose()?,
            intermediate: Default::default(),
            intermediate_others: Default::default(),
            user_attrs: Default::default(),
            metrics: self
                .metrics
                .map(|m| from_json("metrics", &m))
                .transpose()?
                .unwrap_or_default(),
            parent: self.parent.map(number),
            depth: self.depth as u32,
            retry_of: self.retry_of.map(number),
            created_at: Timestamp(self.created_at as u64),
            started_at: time(self.started_at),
            finished_at: time(self.finished_at),
            launch: self.launch.map(|l| from_json("launch", &l)).transpose()?,
            objective_version: self.objective_version as u32,
            stages: self
                .stages
                .map(|s| from_json("stages", &s))
                .transpose()?
                .unwrap_or_default(),
        })
    }
}
