//! `hyperion reeval`: the objective's stage of a pipeline study run again for its completed
//! trials (an eval script that changed, a fixed metric), the new values recorded as a new
//! objective version that the samplers and `best` use from then on.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use hyperion_cache::{Cache, Lookup};
use hyperion_core::{Trial, TrialState};

/// How long a claim of reeval's holds: it renews none, and a dead reeval's claims on this
/// machine are taken over at once.
const LEASE: Duration = Duration::from_secs(600);

#[derive(clap::Args)]
pub struct ReevalArgs {
    /// The study: its file, or its name in the store (which keeps its stages).
    study: String,
    /// Only these completed trials (comma-separated numbers).
    #[arg(long, value_delimiter = ',', value_name = "N,…")]
    trials: Option<Vec<u64>>,
}

/// What evaluating one trial again gave.
enum Again {
    /// The stage's key and output are those the trial has: nothing to revise.
    Same,
    Values(Vec<f64>),
    Failed(String),
}

/// What every trial's evaluation shares.
struct Reeval {
    spec: hyperion_core::StudySpec,
    pipeline: hyperion_runtime::PipelineConfig,
    process: hyperion_runtime::ProcessConfig,
    cache: Cache,
    digests: std::collections::BTreeMap<PathBuf, String>,
    objectives: Vec<String>,
}

/// The study to evaluate again: its store and record, how its trials run, and its stages.
struct Opened {
    store: std::sync::Arc<dyn hyperion_store::Store>,
    record: hyperion_store::StudyRecord,
    process: hyperion_runtime::ProcessConfig,
    pipeline: Option<hyperion_runtime::PipelineConfig>,
}

/// The study to evaluate again, from its file or from the store.
fn open(storage: Option<String>, study: &str) -> Result<Opened> {
    let path = Path::new(study);
    if path.is_file() {
        let (file, url, store) = crate::run::load(storage, path, &[])?;
        let record = crate::find_study(&store, &file.spec.name)?;
        let mut process = file.process.clone();
        process.trials_dir = match &file.trials_dir {
            Some(dir) => dir.clone(),
            None => crate::study_dir(&url, &file.spec.name)?.join("trials"),
        };
        let pipeline = file.pipeline;
        return Ok(Opened {
            store,
            record,
            process,
            pipeline,
        });
    }
    let url = crate::store_url(storage.as_deref())?;
    let store = crate::open_store(Some(&url))?;
    let record = crate::find_study(&store, study)?;
    let settings = hyperion_runtime::Study::open(store.clone(), &record.spec.name)?
        .settings()
        .clone();
    let mut process = settings.trial.with_context(|| {
        format!("study \"{study}\" has no trial command: only a pipeline study is evaluated again")
    })?;
    process.trials_dir = crate::study_dir(&url, &record.spec.name)?.join("trials");
    Ok(Opened {
        store,
        record,
        process,
        pipeline: settings.pipeline,
    })
}

pub fn reeval(storage: Option<String>, args: ReevalArgs) -> Result<ExitCode> {
    let Opened {
        store,
        record,
        process,
        pipeline,
    } = open(storage, &args.study)?;
    let name = record.spec.name.clone();
    let pipeline = pipeline.with_context(|| {
        format!("study \"{name}\" has no `stages:`: reeval runs a pipeline's reporting stage again")
    })?;
    let stage = pipeline.stages[pipeline.reporter].clone();
    let trials: Vec<Trial> = (store.trials(record.id)?.into_iter())
        .filter(|t| t.state == TrialState::Completed)
        .filter(|t| (args.trials.as_ref()).is_none_or(|only| only.contains(&t.number.0)))
        .collect();
    if trials.is_empty() {
        anyhow::bail!("study \"{name}\" has no completed trial to evaluate again");
    }
    let version = trials
        .iter()
        .map(|t| t.objective_version)
        .max()
        .unwrap_or(0)
        + 1;
    // A run of the study's code like any: the next `hyperion run` compares with this one.
    let mut manifest = crate::manifest::begin(&process, Some(&pipeline), &[]);
    crate::manifest::record(&store, record.id, &manifest)?;
    let work = Reeval {
        cache: Cache::open(&pipeline.cache_dir)?,
        digests: pipeline.digests().map_err(anyhow::Error::msg)?,
        objectives: (record.spec.objectives.iter())
            .map(|o| o.metric.clone())
            .collect(),
        spec: record.spec.clone(),
        pipeline,
        process,
    };
    // As many at once as the study and the stage allow.
    let workers = (work.process.max_concurrent)
        .min(stage.max_concurrent.unwrap_or(usize::MAX))
        .clamp(1, trials.len());
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(trial) = trials.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let again = work.one(trial);
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((trial, again));
                }
            });
        }
    });
    manifest.ended_at = Some(hyperion_core::Timestamp::now());
    crate::manifest::record(&store, record.id, &manifest)?;
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(t, _)| t.number);
    let (mut revised, mut same, mut failed) = (0, 0, 0);
    for (trial, again) in results {
        match again {
            Again::Same => same += 1,
            Again::Values(values) if Some(&values) == trial.values.as_ref() => same += 1,
            Again::Values(values) => {
                store.revise_values(record.id, trial.number, &values, version)?;
                revised += 1;
            }
            Again::Failed(error) => {
                failed += 1;
                eprintln!("trial {}: {error}; its values stay", trial.number);
            }
        }
    }
    println!(
        "study \"{name}\": stage `{}` evaluated {} trials again: {revised} with new values \
         (objective version {version}), {same} unchanged, {failed} failed",
        stage.name,
        revised + same + failed
    );
    if let Some(best) = store.best_trial(record.id)? {
        let values: Vec<String> = (best.values.iter().flatten())
            .map(|v| v.to_string())
            .collect();
        println!("best: trial {} ({})", best.number, values.join(", "));
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

impl Reeval {
    /// Runs the reporting stage for `trial` as it would run now: a cache hit when neither its
    /// key nor (for another trial's entry) its output changed.
    fn one(&self, trial: &Trial) -> Again {
        match self.try_one(trial) {
            Ok(again) => again,
            Err(e) => Again::Failed(format!("{e:#}")),
        }
    }

    fn try_one(&self, trial: &Trial) -> Result<Again> {
        let pipeline = &self.pipeline;
        let stage = &pipeline.stages[pipeline.reporter];
        let trial_dir =
            hyperion_runtime::protocol::trial_dir(&self.process.trials_dir, trial.number);
        let upstream =
            (pipeline.upstream_in(pipeline.reporter, &trial_dir)).map_err(anyhow::Error::msg)?;
        let at = hyperion_runtime::TrialRef {
            study: &self.spec.name,
            space: &self.spec.space,
            number: trial.number,
            id: trial.id.0,
            params: &trial.params,
            dir: &trial_dir,
        };
        let run = |dir: &Path| -> Result<Vec<f64>> {
            std::fs::create_dir_all(dir.join("out"))?;
            let command = (pipeline.command(pipeline.reporter, &self.process, &at, dir))
                .map_err(anyhow::Error::msg)?;
            crate::cache::run_stage(&stage.name, command, dir)?;
            self.values_in(dir)
        };
        if !stage.cache {
            // An uncached stage runs in the trial's directory: beside the first run, not over it.
            let dir = trial_dir.join(format!("{}.again", stage.name));
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(Again::Values(run(&dir)?));
        }
        let material = stage.material(&trial.params, &self.digests, upstream);
        let holder = format!("reeval/{}/{}", self.spec.name, trial.number);
        let link = trial_dir.join(&stage.name);
        let had = std::fs::canonicalize(&link).ok();
        let again = loop {
            match self
                .cache
                .lookup(&material, LEASE, stage.retries, &holder)?
            {
                Lookup::Hit(entry) if had.as_ref() == Some(&entry.dir) => break Again::Same,
                Lookup::Hit(entry) => break Again::Values(self.values_in(&entry.dir)?),
                Lookup::Run(claim) => {
                    let values = run(&claim.dir);
                    let values = match values {
                        Ok(values) => values,
                        Err(e) => {
                            let _ = self.cache.fail(&claim, &format!("{e:#}"));
                            return Err(e);
                        }
                    };
                    let entry = self.cache.commit(&claim, &stage.outputs)?;
                    let _ = std::fs::remove_file(&link);
                    std::os::unix::fs::symlink(&entry.dir, &link)?;
                    break Again::Values(values);
                }
                // Another process computes this key: ask again soon.
                Lookup::Wait => std::thread::sleep(Duration::from_millis(250)),
                Lookup::Failed(error) => anyhow::bail!("stage `{}` failed: {error}", stage.name),
            }
        };
        let _ = self.cache.unpin(&holder);
        Ok(again)
    }

    /// The last value of each objective among the records a stage's run left in `dir`.
    fn values_in(&self, dir: &Path) -> Result<Vec<f64>> {
        let records = hyperion_runtime::protocol::records_in(dir, &self.process, &self.objectives);
        let mut last = std::collections::BTreeMap::new();
        for (_, metrics) in records.into_iter().flatten() {
            last.extend(metrics);
        }
        (self.objectives.iter())
            .map(|o| {
                last.get(o).copied().with_context(|| {
                    format!(
                        "the stage exited 0 but never reported \"{o}\" (EVAL_DONE_NOT_COMPLETED)"
                    )
                })
            })
            .collect()
    }
}
