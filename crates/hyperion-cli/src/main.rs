//! The `hyperion` command.

mod analysis;
mod ask_tell;
mod cache;
mod manifest;
mod reeval;
mod run;
mod show;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use hyperion_store::{DEFAULT_STORAGE, Store, StudyRecord};

const EXAMPLES: &str = "\
Examples:
  hyperion run study.yaml                     create the study, or continue it
  hyperion run study.yaml budget.max_trials=50 resources.max_concurrent=4
  hyperion create study.yaml --storage postgresql://me@db/hpo
  hyperion worker --storage postgresql://me@db/hpo mnist   on each machine
  hyperion status                             every study at a glance
  hyperion trials mnist --format csv          all trials of a study
  hyperion best mnist --json                  the best trial
  hyperion ask --study mnist                  a trial for another program to run
  hyperion report --study mnist --trial 7 --step 3 --value 0.41
  hyperion tell --study mnist --trial 7 --value 0.93
  hyperion dashboard                          the web dashboard at http://127.0.0.1:8080/
  hyperion completions bash > /etc/bash_completion.d/hyperion";

/// Hyperparameter optimization for training scripts in any language.
#[derive(Parser)]
#[command(name = "hyperion", version, after_help = EXAMPLES)]
struct Cli {
    /// Where studies live: an SQLite file (`sqlite:PATH` or a path), a PostgreSQL database
    /// (`postgresql://user@host:port/db`, shared by many machines) or `memory`.
    #[arg(long, global = true, env = "HYPERION_STORAGE", value_name = "URL")]
    storage: Option<String>,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run a study file: creates the study, or continues it (the same command resumes).
    Run(run::RunArgs),
    /// Create a study from its file (or update its settings) without running it, for the
    /// workers a cluster script starts.
    Create(run::CreateArgs),
    /// Join a study and run its trials on this machine with its stored settings: no study
    /// file needed. Many workers on many machines can share one study (PostgreSQL store).
    Worker(run::WorkerArgs),
    /// Submit a Slurm job array of `hyperion worker` processes on a study in a PostgreSQL
    /// store: each array task runs trials on its own allocation.
    SubmitWorkers(run::SubmitWorkersArgs),
    /// Progress of one study, or of all.
    Status {
        study: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Everything about one trial: params, values, its whole failure reason, the end of its
    /// stderr, its directory.
    Trial {
        study: String,
        number: hyperion_core::TrialNumber,
        #[arg(long)]
        json: bool,
    },
    /// The studies in the store.
    Studies,
    /// The trials of a study.
    Trials {
        study: String,
        #[arg(long, value_enum, default_value = "table")]
        format: TableFormat,
        /// Metrics to show as columns (the last value each trial reported), comma-separated.
        #[arg(long, value_delimiter = ',')]
        metrics: Vec<String>,
        /// Show at most N trials (a page of a large study, read without the rest).
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Start at trial number N.
        #[arg(long, value_name = "N", default_value_t = 0)]
        from: u64,
    },
    /// The best trial of a study (the Pareto front with several metrics).
    Best {
        study: String,
        #[arg(long)]
        json: bool,
    },
    /// The runs of a study: when and where each ran, its git commit, its code's digests and
    /// its command line.
    Runs {
        study: String,
        #[arg(long)]
        json: bool,
    },
    /// The decision log of a study: what the schedulers decided about its trials, and why.
    Decisions {
        study: String,
        /// Only the decisions about this trial.
        #[arg(long)]
        trial: Option<hyperion_core::TrialNumber>,
        #[arg(long)]
        json: bool,
    },
    /// Every trial of a study, for other tools.
    Export {
        study: String,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Ask a running `hyperion run` to start no more trials.
    Stop {
        study: String,
        /// Also kill the running trials.
        #[arg(long)]
        kill: bool,
    },
    /// Copy a study from one store to another (SQLite ↔ PostgreSQL), with its numbers, states,
    /// values, settings, decisions and change log.
    Copy {
        study: String,
        /// The store to copy from (default: --storage, or the nearest store).
        #[arg(long, value_name = "URL")]
        from: Option<String>,
        /// The store to copy into (created if it is a new SQLite file).
        #[arg(long, value_name = "URL")]
        to: String,
        /// The copy's name (default: the study's).
        #[arg(long = "as", value_name = "NAME")]
        as_name: Option<String>,
    },
    /// Delete a study with all its trials and their directories.
    Delete {
        study: String,
        /// Keep the trials' directories (logs, checkpoints) on disk.
        #[arg(long)]
        keep_files: bool,
    },
    /// Start a trial for another program to run; prints its number and params as JSON.
    Ask(ask_tell::AskArgs),
    /// Record an intermediate value of an asked trial; prints `continue`, or `stop: REASON`
    /// and exits with status 3 when the study's early stopping stops it. `report STUDY -o
    /// report.html` instead writes the study's report: one self-contained HTML file.
    Report(ask_tell::ReportArgs),
    /// Record the result of an asked trial.
    Tell(ask_tell::TellArgs),
    /// Serve the web dashboard and the HTTP API (ask, report, tell, live events, /metrics).
    #[command(visible_alias = "serve")]
    Dashboard {
        /// The address to listen on; any but loopback requires a token.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
        bind: std::net::SocketAddr,
        /// The token requests must carry (default: a new one when not bound to loopback).
        #[arg(long, env = "HYPERION_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Another host name the dashboard is reached by (behind a proxy, by DNS name).
        #[arg(long = "allowed-host", value_name = "HOST")]
        allowed_hosts: Vec<String>,
        /// Refuse every write (ask, report, tell, stop).
        #[arg(long)]
        read_only: bool,
    },
    /// Draw a plot of a study as an SVG file: the dashboard's pictures without a browser.
    Plot(analysis::PlotArgs),
    /// Which parameters matter (PED-ANOVA, as Optuna's default), with the direction of each.
    Importance {
        study: String,
        /// The objective, by index (0 is the first).
        #[arg(long, default_value_t = 0)]
        objective: usize,
        #[arg(long)]
        json: bool,
    },
    /// Studies side by side: trials, best value and trial; `-o FILE.svg` draws their running
    /// bests on one chart.
    Compare {
        #[arg(required = true, num_args = 2..)]
        studies: Vec<String>,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// The cache of pipeline stages: `stats`, `explain FILE TRIAL STAGE`, `gc`, `forget KEY|STAGE`.
    Cache(cache::CacheArgs),
    /// Run a pipeline study's reporting stage again for its completed trials and record the
    /// new values as a new objective version, which the samplers and `best` then use.
    Reeval(reeval::ReevalArgs),
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

#[derive(Clone, Copy, ValueEnum)]
enum TableFormat {
    Table,
    Csv,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Csv,
    Json,
    Jsonl,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    let storage = cli.storage;
    match cli.command {
        Commands::Run(args) => run::run(storage, args),
        Commands::Create(args) => run::create(storage, args),
        Commands::Worker(args) => run::worker(storage, args),
        Commands::SubmitWorkers(args) => run::submit_workers(storage, args),
        Commands::Status { study, json } => {
            show::status(&open_store(storage.as_deref())?, study.as_deref(), json)
        }
        Commands::Trial {
            study,
            number,
            json,
        } => {
            let url = store_url(storage.as_deref())?;
            // The default place of the study's trial directories, beside its SQLite file.
            let dir = Some(study_dir(&url, &study)?.join("trials"));
            show::trial(
                &open_store(Some(&url))?,
                &study,
                number,
                dir.as_deref(),
                json,
            )
        }
        Commands::Studies => show::studies(&open_store(storage.as_deref())?),
        Commands::Trials {
            study,
            format,
            metrics,
            limit,
            from,
        } => show::trials(
            &open_store(storage.as_deref())?,
            &study,
            format,
            &metrics,
            (from, limit),
        ),
        Commands::Best { study, json } => {
            show::best(&open_store(storage.as_deref())?, &study, json)
        }
        Commands::Runs { study, json } => {
            manifest::runs(&open_store(storage.as_deref())?, &study, json)
        }
        Commands::Decisions { study, trial, json } => {
            show::decisions(&open_store(storage.as_deref())?, &study, trial, json)
        }
        Commands::Export {
            study,
            format,
            output,
        } => show::export(
            &open_store(storage.as_deref())?,
            &study,
            format,
            output.as_deref(),
        ),
        Commands::Stop { study, kill } => {
            run::request_stop(&open_store(storage.as_deref())?, &study, kill)
        }
        Commands::Copy {
            study,
            from,
            to,
            as_name,
        } => {
            let source = open_store(from.as_deref().or(storage.as_deref()))?;
            find_study(&source, &study)?;
            let (to_url, target) = open_or_create_store(Some(&to), Path::new("."))?;
            let as_name = as_name.unwrap_or_else(|| study.clone());
            let copied = hyperion_store::copy_study(&*source, &*target, &study, &as_name)?;
            println!(
                "copied study \"{study}\" ({} trials, {} changes) to {} as \"{as_name}\"",
                copied.trials,
                copied.changes,
                hyperion_store::redact(&to_url)
            );
            Ok(ExitCode::SUCCESS)
        }
        Commands::Delete { study, keep_files } => {
            let url = store_url(storage.as_deref())?;
            let store = open_store(Some(&url))?;
            let trials = find_study(&store, &study).and_then(|r| Ok(store.trials(r.id)?.len()))?;
            // The study's directory beside its SQLite file holds its trials' directories.
            // Only a store in a file has its studies' files beside it.
            let in_a_file = hyperion_store::sqlite_path(&url)?.is_some();
            let files = Some(study_dir(&url, &study)?)
                .filter(|dir| in_a_file && !keep_files && dir.is_dir());
            let (count, bytes) = files.as_deref().map(disk_usage).unwrap_or_default();
            store.delete_study(&study)?;
            match files {
                Some(dir) => {
                    std::fs::remove_dir_all(&dir)
                        .with_context(|| format!("removing {}", dir.display()))?;
                    println!(
                        "deleted study \"{study}\" ({trials} trials) and {} ({count} files, {:.1} MB)",
                        dir.display(),
                        bytes as f64 / 1e6
                    );
                }
                None => println!("deleted study \"{study}\" ({trials} trials)"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Commands::Ask(args) => ask_tell::ask(storage.as_deref(), args),
        Commands::Report(args) => match args.html() {
            Some((study, output)) => {
                analysis::html_report(&open_store(storage.as_deref())?, &study, &output)
            }
            None => ask_tell::report(&open_store(storage.as_deref())?, args),
        },
        Commands::Cache(args) => cache::cache(storage, args),
        Commands::Reeval(args) => reeval::reeval(storage, args),
        Commands::Plot(args) => analysis::plot(&open_store(storage.as_deref())?, args),
        Commands::Importance {
            study,
            objective,
            json,
        } => analysis::importance(&open_store(storage.as_deref())?, &study, objective, json),
        Commands::Compare { studies, output } => analysis::compare(
            &open_store(storage.as_deref())?,
            &studies,
            output.as_deref(),
        ),
        Commands::Tell(args) => ask_tell::tell(&open_store(storage.as_deref())?, args),
        Commands::Dashboard {
            bind,
            token,
            allowed_hosts,
            read_only,
        } => {
            let url = store_url(storage.as_deref())?;
            let store = open_store(Some(&url))?;
            let options = hyperion_server::Options {
                bind,
                token,
                allowed_hosts,
                read_only,
            };
            let listening = hyperion_server::bind(store, options)?;
            println!(
                "dashboard of {} at {}",
                hyperion_store::redact(&url),
                listening.url
            );
            std::io::stdout().flush()?;
            listening.serve()?;
            Ok(ExitCode::SUCCESS)
        }
        Commands::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "hyperion",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The store a command that reads (or adds to) existing studies uses: the one `--storage` /
/// `HYPERION_STORAGE` names, else the nearest `.hyperion/hyperion.db` from the working
/// directory upward, as git finds `.git`. It never creates a store.
fn open_store(url: Option<&str>) -> Result<Arc<dyn Store>> {
    let url = store_url(url)?;
    let path = hyperion_store::sqlite_path(&url)?;
    if let Some(path) = &path
        && !path.exists()
    {
        anyhow::bail!(
            "no Hyperion store at {} (the file does not exist)",
            path.display()
        );
    }
    let opened = hyperion_store::open(&url);
    match (opened, &path) {
        (Ok(store), _) => Ok(store),
        // Where nothing can be written (a read-only directory), the store can still be read.
        (Err(e), Some(path)) if writable_dir(path) == Some(false) || is_read_only(&e) => {
            match hyperion_store::SqliteStore::open_read_only(path) {
                Ok(store) => Ok(Arc::new(store)),
                Err(_) => Err(anyhow::Error::from(e).context(format!("opening the store {url}"))),
            }
        }
        (Err(e), _) => Err(opening(e, &url)),
    }
}

/// A store that would not open, named once (a server's error names its URL already).
fn opening(e: hyperion_store::StoreError, url: &str) -> anyhow::Error {
    match e {
        e @ hyperion_store::StoreError::Server { .. } => e.into(),
        e => anyhow::Error::from(e)
            .context(format!("opening the store {}", hyperion_store::redact(url))),
    }
}

/// Whether the directory of `file` takes new files (SQLite's WAL needs two beside it).
fn writable_dir(file: &Path) -> Option<bool> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(format!(".hyperion-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Some(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(false),
        Err(_) => None,
    }
}

fn is_read_only(e: &hyperion_store::StoreError) -> bool {
    let text = e.to_string();
    text.contains("read-only") || text.contains("readonly") || text.contains("writable")
}

/// The store [`open_store`] opens: the one named, or the nearest above the working directory.
fn store_url(url: Option<&str>) -> Result<String> {
    Ok(match url {
        Some(url) => url.to_owned(),
        None => {
            let here = std::env::current_dir().context("reading the working directory")?;
            match find_store(&here) {
                Some(found) => found.display().to_string(),
                None => anyhow::bail!(
                    "no Hyperion store in {} or any directory above it (none has {DEFAULT_STORAGE}); \
                     `hyperion run STUDY_FILE` creates one, or give --storage",
                    here.display()
                ),
            }
        }
    })
}

/// Where a study's files (its trials' directories) are by default: `STUDY/` beside its
/// SQLite file, or in `.hyperion/` for a store that is not a file in a directory.
fn study_dir(url: &str, study: &str) -> Result<PathBuf> {
    let root = hyperion_store::sqlite_path(url)?
        .and_then(|p| p.parent().map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(".hyperion"));
    Ok(root.join(study))
}

/// Files and bytes under `dir`.
fn disk_usage(dir: &Path) -> (u64, u64) {
    let mut total = (0, 0);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match entry.metadata() {
            Ok(m) if m.is_dir() => {
                let (files, bytes) = disk_usage(&entry.path());
                total = (total.0 + files, total.1 + bytes);
            }
            Ok(m) => total = (total.0 + 1, total.1 + m.len()),
            Err(_) => {}
        }
    }
    total
}

/// The store a command that may create studies uses: the one named, else the nearest
/// `.hyperion/hyperion.db` from `start` upward, else a new one in `start/.hyperion/`.
fn open_or_create_store(url: Option<&str>, start: &Path) -> Result<(String, Arc<dyn Store>)> {
    let url = match url {
        Some(url) => url.to_owned(),
        None => find_store(start)
            .unwrap_or_else(|| start.join(DEFAULT_STORAGE))
            .display()
            .to_string(),
    };
    let store = hyperion_store::open(&url).map_err(|e| opening(e, &url))?;
    Ok((url, store))
}

/// The nearest `.hyperion/hyperion.db` in `start` or a directory above it.
fn find_store(start: &Path) -> Option<PathBuf> {
    let start = std::path::absolute(start).ok()?;
    start
        .ancestors()
        .map(|dir| dir.join(DEFAULT_STORAGE))
        .find(|db| db.is_file())
}

fn find_study(store: &Arc<dyn Store>, name: &str) -> Result<StudyRecord> {
    store.study(name).map_err(|e| {
        if !matches!(e, hyperion_store::StoreError::StudyNotFound { .. }) {
            return anyhow::Error::from(e);
        }
        let names: Vec<String> = store
            .studies()
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.spec.name)
            .collect();
        let known = if names.is_empty() {
            "the store has no study".to_owned()
        } else {
            format!("studies: {}", names.join(", "))
        };
        anyhow::anyhow!("{e} in {} ({known})", store.location())
    })
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes to stdout, turning a closed pipe into an error `main` treats as success.
fn out(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
