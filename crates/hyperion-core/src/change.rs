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
    TrialStarted {
        number: u64,
    },
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
    MetricReported {
        number: u64,
        step: u64,
        value: f64,
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
