//! `hyperion cache`: what the stage cache holds, why a stage's key changed, and cleaning it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use hyperion_cache::Cache;

#[derive(clap::Args)]
pub struct CacheArgs {
    /// The cache directory (default: `.hyperion/cache`; `explain` reads the study file's
    /// `cache.dir`).
    #[arg(long, value_name = "DIR", global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(clap::Subcommand)]
enum CacheCommand {
    /// Entries, hits and runs of each stage.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Why a trial's stage has the key it has: what differs from the nearest entry of that
    /// stage (a param, a code or input file, an upstream output, the command).
    Explain {
        /// The study file.
        file: PathBuf,
        trial: u64,
        stage: String,
    },
    /// Remove the temporary directories no live claim owns.
    Gc,
    /// Remove an entry (by key) or every entry of a stage.
    Forget { what: String },
}

pub fn cache(storage: Option<String>, args: CacheArgs) -> Result<ExitCode> {
    let open = |dir: &Path| Cache::open(dir).map_err(anyhow::Error::from);
    let default = PathBuf::from(".hyperion/cache");
    match args.command {
        CacheCommand::Stats { json } => {
            let stats = open(args.dir.as_deref().unwrap_or(&default))?.stats()?;
            if json {
                println!("{}", serde_json::to_string(&stats)?);
            } else {
                println!("stage         entries  ready  running  failed  runs  hits  bytes");
                for s in stats {
                    println!(
                        "{:<13} {:>7}  {:>5}  {:>7}  {:>6}  {:>4}  {:>4}  {}",
                        s.stage, s.entries, s.ready, s.running, s.failed, s.runs, s.hits, s.bytes
                    );
                }
            }
        }
        CacheCommand::Gc => {
            let removed = open(args.dir.as_deref().unwrap_or(&default))?.clean_tmp()?;
            println!("removed {removed} temporary directories");
        }
        CacheCommand::Forget { what } => {
            let removed = open(args.dir.as_deref().unwrap_or(&default))?.forget(&what)?;
            if removed == 0 {
                anyhow::bail!("no entry or stage `{what}` in the cache");
            }
            println!("removed {removed} entries");
        }
        CacheCommand::Explain { file, trial, stage } => {
            return explain(storage, args.dir, &file, trial, &stage);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The key of trial `trial`'s stage `name` as it would be now, against the cache.
fn explain(
    storage: Option<String>,
    dir: Option<PathBuf>,
    path: &Path,
    trial: u64,
    name: &str,
) -> Result<ExitCode> {
    let file = hyperion_config::load(path, &[])?;
    let pipeline = file
        .pipeline
        .as_ref()
        .with_context(|| format!("{} has no `stages:`", path.display()))?;
    let stage = pipeline.stage(name).with_context(|| {
        let names: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
        format!(
            "no stage `{name}` in {} (its stages: {})",
            path.display(),
            names.join(", ")
        )
    })?;
    let trials_dir = match &file.trials_dir {
        Some(dir) => dir.clone(),
        None => {
            let url = crate::store_url(storage.as_deref())?;
            crate::study_dir(&url, &file.spec.name)?.join("trials")
        }
    };
    let trial_dir = trials_dir.join(trial.to_string());
    let params: hyperion_core::Params = serde_json::from_slice(
        &std::fs::read(trial_dir.join("params.json"))
            .with_context(|| format!("trial {trial} has not run here ({})", trial_dir.display()))?,
    )?;
    let mut upstream = std::collections::BTreeMap::new();
    for &need in &stage.needs {
        let need = &pipeline.stages[need].name;
        let done = trial_dir.join(need).join("done.json");
        let digest = match std::fs::read(&done) {
            Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)?["digest"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            Err(_) => hyperion_cache::digest::of_path(&trial_dir.join(need).join("out"))
                .with_context(|| format!("trial {trial} has no output of stage `{need}` yet"))?,
        };
        upstream.insert(need.clone(), digest);
    }
    let digests = pipeline.digests().map_err(anyhow::Error::msg)?;
    let material = stage.material(&params, &digests, upstream);
    let cache = Cache::open(dir.as_deref().unwrap_or(&pipeline.cache_dir))?;
    let key = material.key();
    match cache.explain(&material)? {
        None => println!("{key}: in the cache (nothing changed)"),
        Some((nearest, changes)) => {
            println!("{key}: not in the cache; against {nearest}, the nearest entry of `{name}`:");
            for change in changes {
                println!("  {change}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
