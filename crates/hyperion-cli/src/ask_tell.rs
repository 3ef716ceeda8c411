//! `hyperion ask` and `hyperion tell`: another program runs the trials.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use hyperion_core::{Objective, SearchSpace, StudySpec};
use hyperion_runtime::{Outcome, Study};
use hyperion_samplers::SamplerConfig;
use hyperion_store::Store;
use serde_json::json;

use crate::{find_study, open_store, out};

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
}

#[derive(clap::Args)]
pub struct TellArgs {
    #[arg(long)]
    study: String,
    /// The trial's number, as `ask` printed it.
    #[arg(long)]
    trial: u64,
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
    let (spec, mut sampler, mut seed, store) = match &args.file {
        Some(path) => {
            let file = hyperion_config::load(path, &[])?;
            let mut spec = file.spec;
            if let Some(name) = &args.study {
                spec.name = name.clone();
            }
            let url = storage.map(str::to_owned).or(file.storage);
            (spec, file.sampler, file.seed, open_store(url.as_deref())?)
        }
        None => {
            let Some(name) = &args.study else {
                bail!("give --study NAME (or --file STUDY_FILE)")
            };
            let store = open_store(storage)?;
            let spec = match (&args.space, store.study(name)) {
                (None, Ok(record)) => record.spec,
                (None, Err(_)) => {
                    find_study(&store, name)?;
                    unreachable!("find_study fails for a missing study")
                }
                (Some(space), _) => {
                    let objective = match (&args.minimize, &args.maximize) {
                        (_, Some(m)) => Objective::maximize(m),
                        (Some(m), None) => Objective::minimize(m),
                        (None, None) => Objective::minimize("value"),
                    };
                    StudySpec::new(name, vec![objective], read_space(space)?)
                }
            };
            (spec, SamplerConfig::Random, None, store)
        }
    };
    if let Some(method) = args.method {
        sampler = match method {
            Method::Random => SamplerConfig::Random,
            Method::Sobol => SamplerConfig::Sobol,
            Method::Grid => SamplerConfig::grid(),
            Method::Tpe => SamplerConfig::Tpe(Default::default()),
        };
    }
    seed = args.seed.or(seed);
    let study = open(&store, &spec, sampler, seed)?;
    let trial = study.ask()?;
    let line = json!({"study": spec.name, "number": trial.number(), "params": trial.params()});
    out(&format!("{line}\n"))?;
    Ok(ExitCode::SUCCESS)
}

pub fn tell(store: &Arc<dyn Store>, args: TellArgs) -> Result<ExitCode> {
    let record = find_study(store, &args.study)?;
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
    let study = open(store, &record.spec, SamplerConfig::Random, None)?;
    let trial = study.tell(args.trial, outcome)?;
    out(&format!(
        "trial {} of \"{}\" is {}\n",
        trial.number,
        args.study,
        crate::show::state_text(&trial.state)
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn open(
    store: &Arc<dyn Store>,
    spec: &StudySpec,
    sampler: SamplerConfig,
    seed: Option<u64>,
) -> Result<Study> {
    let mut builder = Study::builder(&spec.name)
        .space(spec.space.clone())
        .sampler(sampler)
        .store(store.clone());
    for o in &spec.objectives {
        builder = match o.direction {
            hyperion_core::Direction::Minimize => builder.minimize(&o.metric),
            hyperion_core::Direction::Maximize => builder.maximize(&o.metric),
        };
    }
    if let Some(seed) = seed {
        builder = builder.seed(seed);
    }
    Ok(builder.open()?)
}

fn read_space(text: &str) -> Result<SearchSpace> {
    let json = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => text.to_owned(),
    };
    hyperion_config::parse_space(&json).map_err(|e| anyhow::anyhow!("--space: {e}"))
}
