//! Events: what subscribers of a running study hear (progress bars, dashboards, callbacks).
//!
//! They are derived from the study's [`Change`](crate::Change)s as a [`StudyView`](crate::StudyView)
//! applies them, plus the start and the end of a run, so every subscriber sees them in the order
//! the store recorded them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Params, TrialNumber};

/// Why a run of a study ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `max_trials` trials exist.
    MaxTrials,
    MaxTime,
    /// The best value reached the target.
    TargetReached,
    MaxFailures,
    /// The sampler has no point left (an exhausted grid).
    SpaceExhausted,
    /// Someone asked the run to stop.
    Stopped,
    /// The study's first trials all failed the same way (a missing script, a typo): running
    /// the rest would only repeat it.
    RepeatedFailure,
    /// This run started as many trials as it was told to (`hyperion worker --max-trials-here`).
    TrialsHere,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    StudyStarted {
        study: String,
    },
    TrialStarted {
        number: TrialNumber,
        params: Arc<Params>,
    },
    MetricReported {
        number: TrialNumber,
        step: u64,
        value: f64,
    },
    TrialCompleted {
        number: TrialNumber,
        values: Vec<f64>,
    },
    TrialPruned {
        number: TrialNumber,
        step: Option<u64>,
        reason: String,
    },
    TrialFailed {
        number: TrialNumber,
        error: String,
    },
    /// A new best trial (single objective), or a trial joined the Pareto front (several).
    BestUpdated {
        number: TrialNumber,
        values: Vec<f64>,
    },
    /// After each finished trial: `finished` counts 1, 2, … up to `total` (the trial budget, if
    /// any), as the budget counts (a retry or a PBT child takes the place of the trial it carries
    /// on); the state counts are of every trial.
    StudyProgress {
        finished: u64,
        total: Option<u64>,
        completed: u64,
        pruned: u64,
        failed: u64,
        best: Option<f64>,
    },
    StudyCompleted {
        study: String,
        reason: StopReason,
    },
    DecisionRecorded(crate::Decision),
    /// A line a trial process printed (not stored: its logs are in the trial's directory).
    /// Something about a trial the user should know (a metric line that was ignored).
    Warning {
        number: TrialNumber,
        message: String,
    },
    TrialOutput {
        number: TrialNumber,
        stderr: bool,
        line: String,
    },
}

/// The kind of an [`Event`], to subscribe to one kind only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    StudyStarted,
    TrialStarted,
    MetricReported,
    TrialCompleted,
    TrialPruned,
    TrialFailed,
    BestUpdated,
    StudyProgress,
    StudyCompleted,
    DecisionRecorded,
    TrialOutput,
    Warning,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::StudyStarted { .. } => EventKind::StudyStarted,
            Event::TrialStarted { .. } => EventKind::TrialStarted,
            Event::MetricReported { .. } => EventKind::MetricReported,
            Event::TrialCompleted { .. } => EventKind::TrialCompleted,
            Event::TrialPruned { .. } => EventKind::TrialPruned,
            Event::TrialFailed { .. } => EventKind::TrialFailed,
            Event::BestUpdated { .. } => EventKind::BestUpdated,
            Event::StudyProgress { .. } => EventKind::StudyProgress,
            Event::StudyCompleted { .. } => EventKind::StudyCompleted,
            Event::DecisionRecorded(_) => EventKind::DecisionRecorded,
            Event::TrialOutput { .. } => EventKind::TrialOutput,
            Event::Warning { .. } => EventKind::Warning,
        }
    }
}
