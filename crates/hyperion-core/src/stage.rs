//! Where a pipeline trial is: one record per stage it reached, and the lifecycle state
//! (`IN_TRAINING`, `TRAINING_DONE_NO_EVAL`, …) derived from them.

use serde::{Deserialize, Serialize};

/// One stage of a trial's pipeline, as far as it got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRun {
    pub stage: String,
    pub status: StageStatus,
    /// Found in the cache (by this trial's key) instead of run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// Its cache key, for `hyperion cache explain`; `None` for an uncached stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    /// Ready, waiting for a slot.
    Queued,
    /// Another trial (or process) computes its key.
    Waiting,
    Running,
    Done,
    /// Exited 0 without the objective it should report.
    NotCompleted,
    Failed,
}

/// The lifecycle state of an unfinished trial from its stages (in pipeline order): `PENDING`
/// before its first stage runs, `IN_<STAGE>` while one runs (or another trial computes it),
/// `<STAGE>_DONE` between stages, `<STAGE>_FAILED`, and `<STAGE>_DONE_NOT_COMPLETED`. The
/// common `train → eval` pair has the sweep controller's names: `IN_TRAINING`,
/// `TRAINING_DONE_NO_EVAL`, `IN_EVAL`. `None` for a trial that is not a pipeline's.
pub fn lifecycle(stages: &[StageRun]) -> Option<String> {
    // Stages that run side by side (the items of a foreach stage): the last that runs.
    let running = (stages.iter().rev())
        .find(|s| matches!(s.status, StageStatus::Running | StageStatus::Waiting));
    if let Some(stage) = running {
        return Some(format!("IN_{}", label(&stage.stage)));
    }
    let last = stages.last()?;
    let name = label(&last.stage);
    Some(match last.status {
        StageStatus::Running | StageStatus::Waiting => format!("IN_{name}"),
        StageStatus::Done => format!("{name}_DONE"),
        StageStatus::NotCompleted => format!("{name}_DONE_NOT_COMPLETED"),
        StageStatus::Failed => format!("{name}_FAILED"),
        StageStatus::Queued => match stages.len().checked_sub(2).map(|i| &stages[i]) {
            None => "PENDING".into(),
            Some(before) if name == "EVAL" && label(&before.stage) == "TRAINING" => {
                "TRAINING_DONE_NO_EVAL".into()
            }
            Some(before) => format!("{}_DONE", label(&before.stage)),
        },
    })
}

/// A stage's name in a lifecycle state: upper case, `train` as `TRAINING`; an item as its
/// stage (`train[3]` as `TRAINING`).
fn label(stage: &str) -> String {
    let stage = stage.split_once('[').map_or(stage, |(name, _)| name);
    match stage {
        "train" | "training" => "TRAINING".into(),
        "eval" | "evaluate" | "evaluation" => "EVAL".into(),
        other => other
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(stages: &[(&str, StageStatus)]) -> Option<String> {
        let runs: Vec<StageRun> = stages
            .iter()
            .map(|(stage, status)| StageRun {
                stage: stage.to_string(),
                status: *status,
                cached: false,
                key: None,
            })
            .collect();
        lifecycle(&runs)
    }

    #[test]
    fn a_train_eval_pipeline_has_the_sweep_controllers_states() {
        use StageStatus::*;
        assert_eq!(at(&[]), None);
        assert_eq!(at(&[("prepare", Queued)]).unwrap(), "PENDING");
        assert_eq!(at(&[("prepare", Waiting)]).unwrap(), "IN_PREPARE");
        let prepared = ("prepare", Done);
        assert_eq!(at(&[prepared, ("train", Queued)]).unwrap(), "PREPARE_DONE");
        assert_eq!(at(&[prepared, ("train", Running)]).unwrap(), "IN_TRAINING");
        let trained = ("train", Done);
        assert_eq!(
            at(&[prepared, trained, ("eval", Queued)]).unwrap(),
            "TRAINING_DONE_NO_EVAL"
        );
        assert_eq!(
            at(&[prepared, trained, ("eval", Running)]).unwrap(),
            "IN_EVAL"
        );
        assert_eq!(
            at(&[prepared, trained, ("eval", NotCompleted)]).unwrap(),
            "EVAL_DONE_NOT_COMPLETED"
        );
        assert_eq!(at(&[("fine-tune", Failed)]).unwrap(), "FINE_TUNE_FAILED");
        let folds = [
            prepared,
            ("train[0]", Running),
            ("train[1]", Done),
            ("train[2]", Queued),
        ];
        assert_eq!(at(&folds).unwrap(), "IN_TRAINING", "items run side by side");
    }
}
