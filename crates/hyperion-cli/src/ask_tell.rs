//! `hyperion ask` and `hyperion tell`: another program runs the trials.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use hyperion_core::{Objective, SearchSpace};
use hyperion_runtime::{Outcome, Study, StudyBuilder, Verdict, protocol};
use hyperion_samplers::SamplerConfig;
use hyperion_store::Store;
use serde_json::json;

use crate::{find_study, open_or_create_store, open_store, out};

#[derive(clap::Args)]
pub struct AskArgs {
    /// The study (created if it does not exist and a space or a study file is given).
    #[arg(long)]
    study: Option<String>,
    /// Create the study from this study file (its name, space, metric, method and seed).
    #[arg(long, conflicts_with = "space")]
    file: Option<PathBuf>,
    /// Create the study from this search space: JSON, or @FILE holding JSON.
    #[arg(long)]
    space: Option<String>,
    /// The metric to minimize when creating the study from --space (default `value`).
    #[arg(long, conflicts_with = "maximize")]
    minimize: Option<String>,
    /// The metric to maximize when creating the study from --space.
    #[arg(long)]
    maximize: Option<String>,
    #[arg(long, value_enum)]
    method: Option<Method>,
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Method {
    Random,
    Sobol,
    Grid,
    Tpe,
    Cmaes,
    Nsga2,
}

#[derive(clap::Args)]
pub struct TellArgs {
    #[arg(long)]
    study: String,
    /// The trial's number, as `ask` printed it.
    #[arg(long)]
    trial: hyperion_core::TrialNumber,
    /// The objective's value.
    #[arg(long, allow_hyphen_values = true, conflicts_with_all = ["values", "state"])]
    value: Option<f64>,
    /// One value per objective, comma-separated.
    #[arg(
        long,
        allow_hyphen_values = true,
        value_delimiter = ',',
        conflicts_with = "state"
    )]
    values: Option<Vec<f64>>,
    /// End the trial without a value.
    #[arg(long, value_enum)]
    state: Option<EndState>,
    /// Why it failed or was pruned.
    #[arg(long, default_value = "")]
    message: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum EndState {
    Failed,
    Pruned,
}

pub fn ask(storage: Option<&str>, args: AskArgs) -> Result<ExitCode> {
    let study = match &args.file {
        Some(path) => {
            let mut file = hyperion_config::load(path, &[])?;
            if let Some(name) = &args.study {
                file.spec.name = name.clone();
            }
            let url = storage.map(str::to_owned).or(file.storage.clone());
            let (_, store) = open_or_create_store(url.as_deref(), &file.dir())?;
            let builder = crate::run::builder(&file, store);
            args.choose(builder).open()?
        }
        None => {
            let Some(name) = &args.study else {
                bail!("give --study NAME (or --file STUDY_FILE)")
            };
            let store = match &args.space {
                // A new study may start a store here.
                Some(_) => open_or_create_store(storage, Path::new("."))?.1,
                None => open_store(storage)?,
            };
            match &args.space {
                None => {
                    let record = find_study(&store, name)?;
                    if args.method.is_none() && args.seed.is_none() {
                        Study::open(store, name)?
                    } else {
                        let builder = Study::builder(name)
                            .objectives(record.spec.objectives)
                            .space(record.spec.space)
                            .store(store);
                        args.choose(builder).open()?
                    }
                }
                Some(space) => {
                    let objective = match (&args.minimize, &args.maximize) {
                        (_, Some(m)) => Objective::maximize(m),
                        (Some(m), None) => Objective::minimize(m),
                        (None, None) => Objective::minimize("value"),
                    };
                    let builder = Study::builder(name)
                        .objectives(vec![objective])
                        .space(read_space(space)?)
                        .store(store);
                    args.choose(builder).open()?
                }
            }
        }
    };
    for change in study.settings_changes() {
        eprintln!("note: study \"{}\" changes {change}", study.name());
    }
    let trial = study.ask()?;
    let line = json!({"study": study.name(), "number": trial.number(), "params": trial.params()});
    out(&format!("{line}\n"))?;
    Ok(ExitCode::SUCCESS)
}

impl AskArgs {
    /// The builder with the sampler and seed given on the command line.
    fn choose(&self, mut builder: StudyBuilder) -> StudyBuilder {
        if let Some(method) = self.method {
            builder = builder.sampler(match method {
                Method::Random => SamplerConfig::Random,
                Method::Sobol => SamplerConfig::Sobol,
                Method::Grid => SamplerConfig::grid(),
                Method::Tpe => SamplerConfig::Tpe(Default::default()),
                Method::Cmaes => SamplerConfig::Cmaes(Default::default()),
                Method::Nsga2 => SamplerConfig::Nsga2(Default::default()),
            });
        }
        if let Some(seed) = self.seed {
            builder = builder.seed(seed);
        }
        builder
    }
}

pub fn tell(store: &Arc<dyn Store>, args: TellArgs) -> Result<ExitCode> {
    find_study(store, &args.study)?;
    let outcome = match (args.value, args.values, args.state) {
        (Some(v), _, _) => Outcome::Completed(vec![v]),
        (_, Some(vs), _) => Outcome::Completed(vs),
        (_, _, Some(EndState::Failed)) => Outcome::Failed {
            error: args.message,
        },
        (_, _, Some(EndState::Pruned)) => Outcome::Pruned {
            reason: args.message,
        },
        _ => bail!("give --value, --values or --state"),
    };
    let study = Study::open(store.clone(), &args.study)?;
    let trial = study.tell(args.trial, outcome)?;
    out(&format!(
        "trial {} of \"{}\" is {}\n",
        trial.number,
        args.study,
        crate::show::state_text(&trial.state)
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// The exit status of `hyperion report` when the trial should stop.
pub const EXIT_STOP: u8 = 3;

#[derive(clap::Args)]
pub struct ReportArgs {
    /// With `-o`: the study to write the HTML report of.
    #[arg(value_name = "STUDY", requires = "output", conflicts_with_all = ["study", "trial", "step", "value", "metrics"])]
    report_of: Option<String>,
    /// The HTML report's file.
    #[arg(long, short, requires = "report_of")]
    output: Option<std::path::PathBuf>,
    #[arg(long, required_unless_present = "report_of")]
    study: Option<String>,
    /// The trial's number, as `ask` printed it.
    #[arg(long, required_unless_present = "report_of")]
    trial: Option<hyperion_core::TrialNumber>,
    /// The step (epoch, iteration) the values are at.
    #[arg(long, required_unless_present = "report_of")]
    step: Option<u64>,
    /// The first objective's intermediate value.
    #[arg(long, allow_hyphen_values = true, conflicts_with = "metrics")]
    value: Option<f64>,
    /// A JSON object of metrics, e.g. '{"val_loss": 0.3}': every objective's value when it
    /// has them all (as in a metrics line), else the first one's.
    #[arg(long)]
    metrics: Option<String>,
}

/// `hyperion report`: records an intermediate value and prints the verdict: `continue`
/// (exit 0), or `stop: REASON` (exit [`EXIT_STOP`]). It renews the trial's lease.
impl ReportArgs {
    /// `report STUDY -o FILE`: the study and the file of its HTML report.
    pub fn html(&self) -> Option<(String, std::path::PathBuf)> {
        Some((self.report_of.clone()?, self.output.clone()?))
    }
}

pub fn report(store: &Arc<dyn Store>, args: ReportArgs) -> Result<ExitCode> {
    // Clap requires all three without `STUDY -o`.
    let (Some(study), Some(trial), Some(step)) = (&args.study, args.trial, args.step) else {
        bail!("give --study, --trial and --step (or `report STUDY -o report.html`)");
    };
    find_study(store, study)?;
    let study = Study::open(store.clone(), study)?;
    let mut kept = BTreeMap::new();
    let values = match (args.value, &args.metrics) {
        (Some(v), _) => vec![v],
        (None, Some(json)) => {
            let (_, metrics) = protocol::parse_record(json)
                .with_context(|| format!("--metrics: `{json}` is not a JSON object"))?;
            kept = metrics.clone();
            let record = (Some(step), metrics);
            let (_, values) = protocol::Reported::default().take(study.spec(), record);
            if values.is_empty() {
                let wanted = &study.spec().objectives[0].metric;
                bail!(
                    "--metrics: `{json}` has no finite value of \"{wanted}\", the study's objective"
                );
            }
            values
        }
        (None, None) => bail!("give --value or --metrics"),
    };
    let verdict = study.report(trial, step, &values)?;
    study.renew_lease(trial)?;
    if !kept.is_empty() {
        // Every metric is kept with the trial, the latest value of each.
        let mut metrics = store.trial(study.record_id(), trial)?.metrics;
        metrics.extend(kept);
        store.keep_metrics(study.record_id(), trial, &metrics)?;
    }
    match verdict {
        Verdict::Continue => {
            out("continue\n")?;
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Stop { reason, .. } => {
            out(&format!("stop: {reason}\n"))?;
            Ok(ExitCode::from(EXIT_STOP))
        }
    }
}

fn read_space(text: &str) -> Result<SearchSpace> {
    let json = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => text.to_owned(),
    };
    hyperion_config::parse_space(&json).map_err(|e| anyhow::anyhow!("--space: {e}"))
}
