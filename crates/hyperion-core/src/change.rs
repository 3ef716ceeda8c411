//! Changes: the facts a store records, in order. A study's state is the fold of its changes
//! ([`StudyView`](crate::StudyView)), so the log alone can rebuild it and a reader can follow a
//! study from a cursor (the last sequence number it saw).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Distribution, ParamValue, Params, Timestamp, TrialId, TrialState};

/// One recorded fact about a study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A trial was created `Running` (asked) or `Pending` (enqueued) with its first params.
    TrialCreated {
        id: TrialId,
        number: u64,
        state: TrialState,
        params: Arc<Params>,
        parent: Option<u64>,
        depth: u32,
        retry_of: Option<u64>,
    },
    /// A pending trial was claimed by a worker.
    TrialStarted { number: u64 },
    /// A define-by-run parameter got its distribution; the same name keeps it for the study.
    ParamRegistered {
        name: String,
        distribution: Distribution,
    },
    /// A define-by-run parameter got its value in a running trial.
    ParamSet {
        number: u64,
        name: String,
        value: ParamValue,
    },
    /// An intermediate value: the first objective's, and for a study with several objectives
    /// possibly the others' (`others`, objectives 2, 3, …; empty when not reported).
    MetricReported {
        number: u64,
        step: u64,
        value: f64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        others: Vec<f64>,
    },
    UserAttrSet {
        number: u64,
        key: String,
        value: serde_json::Value,
    },
    /// A trial reached a final state; `values` are set for `Completed` only.
    TrialFinished {
        number: u64,
        state: TrialState,
        values: Option<Vec<f64>>,
    },
    /// A policy (scheduler, controller) decided something, and why.
    DecisionRecorded(Decision),
    /// A sampler persisted part of its state (what it cannot derive from the trials).
    SamplerStateSet {
        key: String,
        value: serde_json::Value,
    },
}

impl Change {
    /// The change's tag in its serde form: `trial_created`, `decision_recorded`, …
    pub fn kind(&self) -> &'static str {
        match self {
            Change::TrialCreated { .. } => "trial_created",
            Change::TrialStarted { .. } => "trial_started",
            Change::ParamRegistered { .. } => "param_registered",
            Change::ParamSet { .. } => "param_set",
            Change::MetricReported { .. } => "metric_reported",
            Change::UserAttrSet { .. } => "user_attr_set",
            Change::TrialFinished { .. } => "trial_finished",
            Change::DecisionRecorded(_) => "decision_recorded",
            Change::SamplerStateSet { .. } => "sampler_state_set",
        }
    }
}

/// What a policy decided about a study or a trial, and its rationale: the decision log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The trial it concerns, if any.
    pub trial: Option<u64>,
    /// Who decided: `asha`, `median`, `controller`, …
    pub policy: String,
    /// What: `prune`, `promote`, `continue`, `retry`, …
    pub action: String,
    pub rationale: String,
}

/// A change with its place in the study's log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoggedChange {
    /// 1, 2, 3, … per study, without gaps.
    pub seq: u64,
    pub at: Timestamp,
    #[serde(flatten)]
    pub change: Change,
}
