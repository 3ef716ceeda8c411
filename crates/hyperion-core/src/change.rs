//! Changes: the facts a store records, in order. A study's state is the fold of its changes
//! ([`StudyView`](crate::StudyView)), so the log alone can rebuild it and a reader can follow a
//! study from a cursor (the last sequence number it saw).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Distribution, ParamValue, Params, Timestamp, TrialId, TrialNumber, TrialState};

/// One recorded fact about a study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A trial was created `Running` (asked) or `Pending` (enqueued) with its first params.
    TrialCreated {
        id: TrialId,
        number: TrialNumber,
        state: TrialState,
        params: Arc<Params>,
        parent: Option<TrialNumber>,
        depth: u32,
        retry_of: Option<TrialNumber>,
    },
    /// A pending trial was claimed by a worker.
    TrialStarted { number: TrialNumber },
    /// A define-by-run parameter got its distribution; the same name keeps it for the study.
    ParamRegistered {
        name: String,
        distribution: Distribution,
    },
    /// A define-by-run parameter got its value in a running trial.
    ParamSet {
        number: TrialNumber,
        name: String,
        value: ParamValue,
    },
    /// An intermediate value: the first objective's, and for a study with several objectives
    /// possibly the others' (`others`, objectives 2, 3, …; empty when not reported).
    MetricReported {
        number: TrialNumber,
        step: u64,
        value: f64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        others: Vec<f64>,
    },
    UserAttrSet {
        number: TrialNumber,
        key: String,
        value: serde_json::Value,
    },
    /// The last values of the metrics a trial reported, objectives and others; they replace
    /// the ones kept before.
    MetricsKept {
        number: TrialNumber,
        metrics: std::collections::BTreeMap<String, f64>,
    },
    /// A trial reached a final state; `values` are set for `Completed` only.
    TrialFinished {
        number: TrialNumber,
        state: TrialState,
        values: Option<Vec<f64>>,
    },
    /// A completed trial was evaluated again (`hyperion reeval`): its values are now these, of
    /// objective version `version` (1, 2, …; a trial never revised is at version 0).
    ValuesRevised {
        number: TrialNumber,
        values: Vec<f64>,
        version: u32,
    },
    /// A policy (scheduler, controller) decided something, and why.
    DecisionRecorded(Decision),
    /// A sampler persisted part of its state (what it cannot derive from the trials).
    SamplerStateSet {
        key: String,
        value: serde_json::Value,
    },
    /// The study's settings (sampler, early stopping, seed, budget, recovery, trial template),
    /// in the runtime's serde form, which this crate does not interpret. The latest is in force.
    SettingsRecorded { settings: serde_json::Value },
    /// Someone asked the study's runs to start no more trials and, with `kill`, to kill their
    /// running ones. Runs started before it obey it; later runs do not.
    StopRequested { kill: bool, by: String },
    /// A running trial's process started: where, so that a later run on the same machine can
    /// kill what is left of it once its own run is gone.
    TrialLaunched { number: TrialNumber, launch: Launch },
    /// A run of the study started, or ended (the same id again, with `ended_at`).
    RunRecorded { run: crate::RunManifest },
    /// A pipeline trial's stages, as far as it got (they replace the ones recorded before).
    StagesRecorded {
        number: TrialNumber,
        stages: Vec<crate::StageRun>,
    },
}

/// Where a trial's process group runs. The group is the one to kill only while its leader is
/// the process with this start time on the machine with this boot id: a pid can be reused.
///
/// For a trial that is a batch job (Slurm), `job` names it, and the process is the run that
/// submitted it: while that run lives the job is its own, once it is gone another run may
/// adopt the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launch {
    pub host: String,
    pub boot_id: String,
    pub pgid: i32,
    /// The leader's start time, in clock ticks after boot (`/proc/PID/stat`, field 22).
    pub start_time: u64,
    /// The trial's directory on `host` (its logs, metrics and checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Job>,
}

/// A batch job that runs a trial: its name, known before it is submitted, and its id once the
/// scheduler gave one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
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
            Change::MetricsKept { .. } => "metrics_kept",
            Change::TrialFinished { .. } => "trial_finished",
            Change::ValuesRevised { .. } => "values_revised",
            Change::DecisionRecorded(_) => "decision_recorded",
            Change::SamplerStateSet { .. } => "sampler_state_set",
            Change::SettingsRecorded { .. } => "settings_recorded",
            Change::StopRequested { .. } => "stop_requested",
            Change::TrialLaunched { .. } => "trial_launched",
            Change::StagesRecorded { .. } => "stages_recorded",
            Change::RunRecorded { .. } => "run_recorded",
        }
    }

    /// Whether the change is a fact of the log alone, touching no trial: such changes are what
    /// a store appends with `Store::log`.
    pub fn is_log_only(&self) -> bool {
        matches!(
            self,
            Change::DecisionRecorded(_)
                | Change::SamplerStateSet { .. }
                | Change::SettingsRecorded { .. }
                | Change::StopRequested { .. }
                | Change::TrialLaunched { .. }
                | Change::StagesRecorded { .. }
                | Change::RunRecorded { .. }
        )
    }
}

/// What a sampler proposes for a new trial: its params, and pieces of sampler state (what the
/// sampler cannot derive from the trials) that the store appends in the same transaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Proposal {
    pub params: Params,
    pub state: Vec<(String, serde_json::Value)>,
}

impl From<Params> for Proposal {
    fn from(params: Params) -> Self {
        Proposal {
            params,
            state: Vec::new(),
        }
    }
}

/// What a policy decided about a study or a trial, and its rationale: the decision log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The trial it concerns, if any.
    pub trial: Option<TrialNumber>,
    /// Who decided: `asha`, `median`, `controller`, …
    pub policy: String,
    pub action: DecisionAction,
    pub rationale: String,
}

impl Decision {
    /// Whether the decision ends its trial (a stop, or an exploit that hands its place on).
    pub fn stops(&self) -> bool {
        matches!(
            self.action,
            DecisionAction::Stop | DecisionAction::Exploit { .. }
        )
    }
}

/// What a decision does, written in the log as `continue`, `stop` or `exploit N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecisionAction {
    Continue,
    /// The trial stops now and ends as pruned.
    Stop,
    /// The trial stops and a child continues trial `parent` in its place (PBT).
    Exploit {
        parent: TrialNumber,
    },
    /// An action this release does not know (written by another release); kept as it is.
    Other(String),
}

impl std::fmt::Display for DecisionAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecisionAction::Continue => f.write_str("continue"),
            DecisionAction::Stop => f.write_str("stop"),
            DecisionAction::Exploit { parent } => write!(f, "exploit {parent}"),
            DecisionAction::Other(text) => f.write_str(text),
        }
    }
}

impl std::str::FromStr for DecisionAction {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let exploit = text
            .strip_prefix("exploit ")
            .and_then(|n| n.parse().ok())
            .map(|parent| DecisionAction::Exploit { parent });
        Ok(match text {
            "continue" => DecisionAction::Continue,
            "stop" => DecisionAction::Stop,
            _ => exploit.unwrap_or_else(|| DecisionAction::Other(text.to_owned())),
        })
    }
}

impl Serialize for DecisionAction {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DecisionAction {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(text.parse().unwrap_or_else(|never| match never {}))
    }
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
