//! Trials: one evaluation of the objective at one point of the space.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::Params;

/// A trial's identity in its store (unique across studies). Users mostly see [`Trial::number`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TrialId(pub u64);

/// A trial's number in its study: 0, 1, 2, … without gaps, never reused. Written as the bare
/// number (`7`) in JSON, the log and the command line.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TrialNumber(pub u64);

impl TrialNumber {
    /// The number as an index (into a view's trials).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for TrialNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq<u64> for TrialNumber {
    fn eq(&self, other: &u64) -> bool {
        self.0 == *other
    }
}

impl From<u64> for TrialNumber {
    fn from(n: u64) -> Self {
        TrialNumber(n)
    }
}

impl std::str::FromStr for TrialNumber {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(TrialNumber)
    }
}

/// Microseconds since the Unix epoch: portable, cheap to store and compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn now() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(since.as_micros() as u64)
    }

    /// RFC 3339 in UTC with microseconds: `2026-12-01T20:46:18.123456Z` (what pandas and
    /// every JSON reader parse).
    pub fn rfc3339(self) -> String {
        let secs = self.0 / 1_000_000;
        let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
        // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60,
            self.0 % 1_000_000
        )
    }

    /// Time from `earlier` to `self`; zero if `earlier` is later (clocks can step back).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

/// Where a trial is in its life. `Completed`, `Pruned` and `Failed` are final.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum TrialState {
    /// Created with fixed params (enqueued), waiting for a worker to claim it.
    Pending,
    Running,
    Completed,
    /// Stopped early by a scheduler (or by the objective) at `step`.
    Pruned {
        step: Option<u64>,
        reason: String,
    },
    Failed {
        error: String,
    },
}

impl TrialState {
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            TrialState::Completed | TrialState::Pruned { .. } | TrialState::Failed { .. }
        )
    }

    /// Lowercase name: `pending`, `running`, `completed`, `pruned`, `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            TrialState::Pending => "pending",
            TrialState::Running => "running",
            TrialState::Completed => "completed",
            TrialState::Pruned { .. } => "pruned",
            TrialState::Failed { .. } => "failed",
        }
    }
}

/// Everything known about one trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub id: TrialId,
    /// 0, 1, 2, … within its study, in order of creation; never reused.
    pub number: TrialNumber,
    pub state: TrialState,
    /// Shared with the change that created the trial: cloning a trial does not copy them.
    pub params: Arc<Params>,
    /// One value per objective, set when the trial completes. Always finite.
    pub values: Option<Vec<f64>>,
    /// Which evaluation `values` come from: 0 as the trial completed, 1, 2, … after each
    /// re-evaluation (`hyperion reeval`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub objective_version: u32,
    /// Intermediate values of the first objective by step (`report`); a later report of a step
    /// replaces it.
    pub intermediate: BTreeMap<u64, f64>,
    /// With several objectives, the other objectives' intermediate values, at the steps where
    /// they were reported (see [`Trial::intermediate_point`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub intermediate_others: BTreeMap<u64, Vec<f64>>,
    pub user_attrs: BTreeMap<String, serde_json::Value>,
    /// The last value of every metric the trial reported (its objectives and the rest:
    /// `train_loss`, `lr`, …), as its command's metric lines gave them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    /// Lineage for schedulers (PBT): the trial this one continues from, and how many ancestors
    /// it has.
    pub parent: Option<TrialNumber>,
    pub depth: u32,
    /// The trial this one runs again (after a crash or a stale heartbeat).
    pub retry_of: Option<TrialNumber>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Where its process ran: the machine and the trial's directory there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<crate::Launch>,
    /// A pipeline trial's stages as far as it got, in the pipeline's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<crate::StageRun>,
}

impl Trial {
    /// A trial as a flat record, for pandas and other tools: the state a plain string, the error,
    /// pruning reason and step as fields, RFC 3339 times, the duration in seconds.
    pub fn record(&self, spec: &crate::StudySpec) -> serde_json::Value {
        let t = self;
        let (error, reason, step) = match &t.state {
            TrialState::Failed { error } => (Some(error.as_str()), None, None),
            TrialState::Pruned { step, reason } => (None, Some(reason.as_str()), *step),
            _ => (None, None, None),
        };
        let values = t.values.clone().unwrap_or_default();
        let mut record = serde_json::json!({
            "number": t.number,
            "state": t.state.name(),
            "value": (spec.objectives.len() == 1).then(|| values.first().copied()).flatten(),
            "values": t.values,
            "objective_version": t.objective_version,
            "params": &*t.params,
            "error": error,
            "reason": reason,
            "step": step,
            "intermediate": t.intermediate,
            "user_attrs": t.user_attrs,
            "metrics": t.metrics,
            "parent": t.parent,
            "depth": t.depth,
            "retry_of": t.retry_of,
            "datetime_created": t.created_at.rfc3339(),
            "datetime_start": t.started_at.map(|at| at.rfc3339()),
            "datetime_complete": t.finished_at.map(|at| at.rfc3339()),
            "duration_s": t.duration().map(|d| d.as_secs_f64()),
        });
        if !t.stages.is_empty() {
            record["phase"] = serde_json::json!(t.phase());
            record["stages"] = serde_json::json!(t.stages);
        }
        for (o, v) in spec.objectives.iter().zip(&values) {
            record[&o.metric] = serde_json::json!(v);
        }
        // Every other metric as a column of its own too, unless it would hide a field.
        for (k, v) in &t.metrics {
            if record.get(k).is_none() {
                record[k] = serde_json::json!(v);
            }
        }
        record
    }

    /// An unfinished pipeline trial's lifecycle state (`IN_TRAINING`, …; see
    /// [`crate::lifecycle`]); `None` once it finished, or for a trial without stages.
    pub fn phase(&self) -> Option<String> {
        if self.state.is_finished() {
            return None;
        }
        crate::lifecycle(&self.stages)
    }

    /// Running time: from start to finish, or to now while running.
    pub fn duration(&self) -> Option<Duration> {
        let start = self.started_at?;
        Some(self.finished_at.unwrap_or_else(Timestamp::now).since(start))
    }

    /// The first objective's value, for single-objective studies.
    pub fn value(&self) -> Option<f64> {
        self.values.as_ref().and_then(|v| v.first().copied())
    }

    /// Every objective's intermediate value at `step`, if all were reported there.
    pub fn intermediate_point(&self, step: u64, objectives: usize) -> Option<Vec<f64>> {
        let first = *self.intermediate.get(&step)?;
        if objectives == 1 {
            return Some(vec![first]);
        }
        let others = self.intermediate_others.get(&step)?;
        (others.len() + 1 == objectives).then(|| {
            let mut point = Vec::with_capacity(objectives);
            point.push(first);
            point.extend_from_slice(others);
            point
        })
    }

    /// The latest intermediate value and its step.
    pub fn last_report(&self) -> Option<(u64, f64)> {
        self.intermediate.iter().next_back().map(|(&s, &v)| (s, v))
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
