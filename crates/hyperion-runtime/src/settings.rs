//! A study's settings: facts in the store, so that every entry point — `hyperion run`, `ask`,
//! `report`, `tell`, the library, a worker on another machine — drives the study the same way.
//!
//! They are recorded as a [`Change::SettingsRecorded`](hyperion_core::Change) when the study is
//! created and again whenever a run brings different ones; the latest is in force. Some changes
//! would corrupt a study and are refused before anything is written ([`SettingsChange`]).

use std::time::Duration;

use hyperion_samplers::SamplerConfig;
use hyperion_schedulers::SchedulerConfig;
use serde::{Deserialize, Serialize};

use crate::{Budget, Error, ProcessConfig, Recovery};

/// Everything about a study but its space and objectives (its spec) and its trials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudySettings {
    /// What to try next. `None`: a sampler of the program that created the study, which the
    /// store cannot rebuild.
    pub sampler: Option<SamplerConfig>,
    /// When running trials stop. `None`: a scheduler of the program's own.
    pub early_stopping: Option<SchedulerConfig>,
    /// The seed of every random choice.
    pub seed: u64,
    /// The study's limits (`max_time` is a property of one run and is never recorded).
    pub budget: Budget,
    pub recovery: Recovery,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How a trial runs as a process, for studies whose trials are commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<ProcessConfig>,
    /// With `trial`: the stages each trial is (a study file's `stages:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<crate::PipelineConfig>,
}

impl StudySettings {
    /// The settings of a new study of that name that says nothing: random sampling, no early
    /// stopping, the seed derived from the name, no limits.
    pub fn defaults(name: &str) -> Self {
        StudySettings {
            sampler: Some(SamplerConfig::Random),
            early_stopping: Some(SchedulerConfig::None),
            seed: hyperion_samplers::name_salt(name),
            budget: Budget::default(),
            recovery: Recovery::default(),
            description: None,
            trial: None,
            pipeline: None,
        }
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut settings = self.clone();
        settings.budget.max_time = None;
        serde_json::to_value(settings).expect("settings serialize")
    }

    pub(crate) fn from_json(value: &serde_json::Value) -> Result<Self, Error> {
        serde_json::from_value(value.clone()).map_err(|e| {
            Error::Config(format!(
                "the study's recorded settings cannot be read ({e}); were they written by a \
                 newer Hyperion?"
            ))
        })
    }

    /// What changes from `self` (recorded) to `new`, for the user to read; an error when the
    /// change would corrupt the study: another seed, or a switch to, from or within a grid
    /// (its cursor is the trial number, so the points already taken would be taken again).
    pub fn changes_to(&self, new: &StudySettings) -> Result<Vec<SettingsChange>, Error> {
        if self.seed != new.seed {
            return Err(Error::Config(format!(
                "the study's seed is {}, not {}: a new seed would make its trials irreproducible \
                 (remove `seed`, or give the study another name)",
                self.seed, new.seed
            )));
        }
        let grid = |s: &StudySettings| matches!(s.sampler, Some(SamplerConfig::Grid { .. }));
        if (grid(self) || grid(new)) && self.sampler != new.sampler {
            return Err(Error::Config(format!(
                "the study samples with {}, not {}: a grid cannot be switched to, from or \
                 changed mid-study (its position is the trial number); give the study another \
                 name",
                sampler_name(&self.sampler),
                sampler_name(&new.sampler)
            )));
        }
        let mut changes = Vec::new();
        let mut note = |what: &str, old: String, new: String| {
            if old != new {
                changes.push(SettingsChange {
                    what: what.to_owned(),
                    old,
                    new,
                });
            }
        };
        note("sampler", show(&self.sampler), show(&new.sampler));
        note(
            "early_stopping",
            show(&self.early_stopping),
            show(&new.early_stopping),
        );
        let b = (&self.budget, &new.budget);
        note(
            "budget.max_trials",
            show(&b.0.max_trials),
            show(&b.1.max_trials),
        );
        note("budget.target", show(&b.0.target), show(&b.1.target));
        note(
            "budget.max_failures",
            show(&b.0.max_failures),
            show(&b.1.max_failures),
        );
        note(
            "description",
            show(&self.description),
            show(&new.description),
        );
        // Sections by their keys: "trial.slurm.partition: "gpu" → "debug"", not two objects.
        let mut leaves = Vec::new();
        let json = |v: serde_json::Result<serde_json::Value>| v.unwrap_or_default();
        for (what, old_json, new_json) in [
            (
                "recovery",
                json(serde_json::to_value(&self.recovery)),
                json(serde_json::to_value(&new.recovery)),
            ),
            (
                "trial",
                json(serde_json::to_value(&self.trial)),
                json(serde_json::to_value(&new.trial)),
            ),
            (
                "pipeline",
                json(serde_json::to_value(&self.pipeline)),
                json(serde_json::to_value(&new.pipeline)),
            ),
        ] {
            key_changes(what, &old_json, &new_json, &mut leaves);
        }
        for (what, old, new) in leaves {
            note(&what, old, new);
        }
        Ok(changes)
    }
}

/// The keys under `what` whose values differ between `old` and `new`, objects followed key by
/// key, as (dotted key, old, new).
fn key_changes(
    what: &str,
    old: &serde_json::Value,
    new: &serde_json::Value,
    out: &mut Vec<(String, String, String)>,
) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let (x, y) = (
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                );
                key_changes(&format!("{what}.{key}"), x, y, out);
            }
        }
        (a, b) if a != b => out.push((what.to_owned(), show(a), show(b))),
        _ => {}
    }
}

/// One setting that a run changed: printed as "budget.max_trials: 100 → 200".
#[derive(Clone, Debug, PartialEq)]
pub struct SettingsChange {
    pub what: String,
    pub old: String,
    pub new: String,
}

impl std::fmt::Display for SettingsChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} → {}", self.what, self.old, self.new)
    }
}

fn sampler_name(sampler: &Option<SamplerConfig>) -> String {
    match sampler {
        Some(SamplerConfig::Grid { .. }) => "a grid".into(),
        Some(SamplerConfig::Random) => "random sampling".into(),
        Some(SamplerConfig::Sobol) => "Sobol points".into(),
        Some(SamplerConfig::Tpe(_)) => "TPE".into(),
        Some(SamplerConfig::Cmaes(_)) => "CMA-ES".into(),
        Some(SamplerConfig::Nsga2(_)) => "NSGA-II".into(),
        None => "a custom sampler".into(),
    }
}

/// Compact JSON of a setting, for messages (`none` when unset).
fn show<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Null) => "none".into(),
        Ok(value) => value.to_string(),
        Err(e) => format!("({e})"),
    }
}

/// Serde for durations as seconds (`2.5`), the way people write them.
pub(crate) mod seconds {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }

    /// The same for `Option<Duration>`.
    pub mod option {
        use super::*;

        pub fn serialize<S: serde::Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_some(&d.as_secs_f64()),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            Option::<f64>::deserialize(d)?
                .map(|secs| Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}
