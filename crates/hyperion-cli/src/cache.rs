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
    /// Remove the temporary directories no live claim owns and, with `--max-size`, the least
    /// recently used entries until the rest fit (never one a live run's trial needs).
    Gc {
        /// `500M`, `20G`, `1.5GiB`, or bytes.
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
    },
    /// Remove an entry (by key) or every entry of a stage.
    Forget { what: String },
    /// Run a stage again for each trial that has its output here (one trial per distinct
    /// output), and report the ones whose bytes differ: a stage that is not deterministic.
    Verify {
        /// The study file.
        file: PathBuf,
        stage: String,
        /// Only this trial's.
        #[arg(long)]
        trial: Option<u64>,
    },
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
        CacheCommand::Gc { max_size } => {
            let c = open(args.dir.as_deref().unwrap_or(&default))?.gc(max_size)?;
            println!(
                "removed {} temporary directories and {} entries: {} → {} bytes{}",
                c.tmp_removed,
                c.evicted,
                c.bytes_before,
                c.bytes_after,
                match c.kept_in_use {
                    0 => String::new(),
                    n => format!(" ({n} entries kept: a running trial needs them)"),
                }
            );
            if let Some(max) = max_size.filter(|max| c.bytes_after > *max) {
                eprintln!(
                    "warning: the cache is still over {max} bytes: running trials need the rest"
                );
            }
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
        CacheCommand::Verify { file, stage, trial } => {
            return verify(storage, &file, &stage, trial);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `500M`, `20G`, `1.5GiB`, `1000`: bytes, by powers of 1024 (`K`, `M`, `G`, `T`, with or
/// without `B` or `iB`).
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => {
            return Err(format!(
                "`{text}` is not a size: write 500M, 20G or a number of bytes"
            ));
        }
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size: write 500M, 20G or a number of bytes"))?;
    Ok((number * (1u64 << shift) as f64) as u64)
}

/// A trial's stage as this machine ran it: the study file, its pipeline's stage, and the
/// trial's directory and params.
struct TrialStage<'a> {
    file: &'a hyperion_config::StudyFile,
    stage: usize,
    trials_dir: &'a Path,
    number: u64,
    params: hyperion_core::Params,
}

/// The study file at `path`, which must have stages, and its trials' directory here.
fn pipeline_study(
    storage: Option<&str>,
    path: &Path,
) -> Result<(hyperion_config::StudyFile, PathBuf)> {
    let file = hyperion_config::load(path, &[])?;
    if file.pipeline.is_none() {
        anyhow::bail!("{} has no `stages:`", path.display());
    }
    let trials_dir = match &file.trials_dir {
        Some(dir) => dir.clone(),
        None => {
            let url = crate::store_url(storage)?;
            crate::study_dir(&url, &file.spec.name)?.join("trials")
        }
    };
    Ok((file, trials_dir))
}

impl<'a> TrialStage<'a> {
    fn load(
        file: &'a hyperion_config::StudyFile,
        trials_dir: &'a Path,
        number: u64,
        name: &str,
    ) -> Result<Self> {
        let pipeline = file.pipeline.as_ref().expect("a pipeline study");
        let stage = (pipeline.stages.iter().position(|s| s.name == name)).with_context(|| {
            let names: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
            format!(
                "no stage `{name}` in {} (its stages: {})",
                file.path.display(),
                names.join(", ")
            )
        })?;
        let trial_dir = trials_dir.join(number.to_string());
        let params =
            serde_json::from_slice(&std::fs::read(trial_dir.join("params.json")).with_context(
                || format!("trial {number} has not run here ({})", trial_dir.display()),
            )?)?;
        Ok(TrialStage {
            file,
            stage,
            trials_dir,
            number,
            params,
        })
    }

    fn pipeline(&self) -> &hyperion_runtime::PipelineConfig {
        self.file.pipeline.as_ref().expect("checked when loaded")
    }

    fn config(&self) -> &hyperion_runtime::StageConfig {
        &self.pipeline().stages[self.stage]
    }

    fn dir(&self) -> PathBuf {
        self.trials_dir.join(self.number.to_string())
    }

    /// Where the stage's output is in this trial's directory.
    fn recorded(&self) -> PathBuf {
        self.config().trial_path(&self.dir())
    }

    /// The stage's key material as it would be now.
    fn material(&self) -> Result<hyperion_cache::KeyMaterial> {
        let pipeline = self.pipeline();
        let upstream = (pipeline.upstream_in(self.stage, &self.dir()))
            .map_err(|e| anyhow::anyhow!("trial {}: {e}", self.number))?;
        let digests = pipeline.digests().map_err(anyhow::Error::msg)?;
        Ok(self.config().material(&self.params, &digests, upstream))
    }
}

/// The key of trial `trial`'s stage `name` as it would be now, against the cache.
fn explain(
    storage: Option<String>,
    dir: Option<PathBuf>,
    path: &Path,
    trial: u64,
    name: &str,
) -> Result<ExitCode> {
    let (file, trials_dir) = pipeline_study(storage.as_deref(), path)?;
    let at = TrialStage::load(&file, &trials_dir, trial, name)?;
    let material = at.material()?;
    let cache = Cache::open(dir.as_deref().unwrap_or(&at.pipeline().cache_dir))?;
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

/// Runs stage `name` again for each trial that has its output here (or trial `only`), one
/// trial per distinct output, into a scratch directory, and compares the bytes.
fn verify(storage: Option<String>, path: &Path, name: &str, only: Option<u64>) -> Result<ExitCode> {
    let (file, trials_dir) = pipeline_study(storage.as_deref(), path)?;
    let mut numbers: Vec<u64> = match only {
        Some(n) => vec![n],
        None => std::fs::read_dir(&trials_dir)
            .with_context(|| format!("no trial has run here ({})", trials_dir.display()))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|n: &u64| {
                let at = TrialStage::load(&file, &trials_dir, *n, name);
                at.is_ok_and(|at| at.recorded().join("out").is_dir())
            })
            .collect(),
    };
    numbers.sort();
    if numbers.is_empty() {
        anyhow::bail!(
            "no trial has an output of stage `{name}` here ({})",
            trials_dir.display()
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut differing = 0;
    for number in numbers {
        let at = TrialStage::load(&file, &trials_dir, number, name)?;
        let recorded = at.recorded();
        if !seen.insert(std::fs::canonicalize(&recorded).unwrap_or(recorded.clone())) {
            continue;
        }
        let expected = hyperion_cache::output_digest(&recorded)?;
        let again = rerun(&at)?;
        let key = at.material()?.key();
        let digest = hyperion_cache::digest::of_path(&again.join("out"))?;
        if digest == expected {
            println!("{key} `{name}` of trial {number}: the same bytes again");
        } else {
            differing += 1;
            let before = hyperion_cache::digest::files(&recorded.join("out"))?;
            let now = hyperion_cache::digest::files(&again.join("out"))?;
            let mut paths: Vec<&String> = before.keys().chain(now.keys()).collect();
            paths.sort();
            paths.dedup();
            let changed: Vec<&str> = (paths.into_iter())
                .filter(|p| before.get(*p) != now.get(*p))
                .map(String::as_str)
                .collect();
            println!(
                "{key} `{name}` of trial {number}: NOT deterministic: {} differ{}",
                changed.join(", "),
                if changed.len() == 1 { "s" } else { "" }
            );
        }
        let _ = std::fs::remove_dir_all(&again);
    }
    Ok(if differing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs the stage of `at` once more, with its trial's upstream outputs, into a scratch
/// directory in the cache's `tmp/` (which `gc` clears if this dies); returns the directory.
fn rerun(at: &TrialStage) -> Result<PathBuf> {
    let pipeline = at.pipeline();
    let stage = at.config();
    let scratch = pipeline.cache_dir.join("tmp").join(format!(
        "verify-{}-{}-{}",
        stage.name,
        at.number,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(scratch.join("out"))
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    let trial_dir = at.dir();
    let trial = hyperion_runtime::TrialRef {
        study: &at.file.spec.name,
        space: &at.file.spec.space,
        number: hyperion_core::TrialNumber(at.number),
        id: 0,
        params: &at.params,
        dir: &trial_dir,
    };
    let command = (pipeline.command(at.stage, &at.file.process, &trial, &scratch))
        .map_err(anyhow::Error::msg)?;
    run_stage(&stage.name, command, &scratch)
        .with_context(|| format!("trial {}, run again", at.number))?;
    Ok(scratch)
}

/// Runs stage `name`'s `command` once in `dir` (its output in `dir/out`, its logs and metrics
/// beside), guarded so that it dies with this process.
pub fn run_stage(name: &str, mut command: std::process::Command, dir: &Path) -> Result<()> {
    let log = |name: &str| {
        std::fs::File::create(dir.join(name))
            .with_context(|| format!("cannot create {}", dir.join(name).display()))
    };
    command
        .stdout(log("stdout.log")?)
        .stderr(log("stderr.log")?);
    let status = hyperion_runtime::run_guarded(&mut command)
        .with_context(|| format!("cannot start stage `{name}`"))?;
    if !status.success() {
        let tail = hyperion_runtime::protocol::stderr_tail(dir, 5).unwrap_or_default();
        anyhow::bail!("stage `{name}` failed ({status}): {}", tail.trim());
    }
    Ok(())
}
