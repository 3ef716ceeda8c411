//! `hyperion run` and `hyperion stop`, with the live view.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::ValueEnum;
use hyperion_core::{Event, EventKind, StopReason};
use hyperion_runtime::{RunControl, Study, StudyBuilder};
use hyperion_store::{Store, StoreError};

use crate::{find_study, open_or_create_store, out};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The study file (YAML, or TOML by extension).
    file: PathBuf,
    /// Overrides of the file's keys, as key.path=value (they win over the file).
    overrides: Vec<String>,
    #[command(flatten)]
    show: ShowArgs,
    /// Run the study's failed trials again (each retry takes its trial's place in the budget),
    /// say after fixing what made them fail.
    #[arg(long)]
    retry_failed: bool,
    /// Go on although the code the trials run differs from the study's last run's (the study
    /// then mixes both versions; `hyperion runs STUDY` lists what each run ran).
    #[arg(long)]
    accept_code_change: bool,
    /// Compute this stage and those after it again for the trials this run runs, instead of
    /// taking them from the cache (each key once).
    #[arg(long, value_name = "STAGE")]
    from_stage: Option<String>,
}

/// How a run shows itself.
#[derive(clap::Args)]
pub struct ShowArgs {
    /// Show the trials' output as it comes, each line prefixed by its trial number.
    #[arg(short, long)]
    stream: bool,
    /// Print nothing but errors and the final summary.
    #[arg(short, long, conflicts_with = "log")]
    quiet: bool,
    /// `json`: one JSON event per line on standard output instead of the progress bar.
    #[arg(long, value_enum)]
    log: Option<LogFormat>,
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// The study file (YAML, or TOML by extension).
    file: PathBuf,
    /// Overrides of the file's keys, as key.path=value (they win over the file).
    overrides: Vec<String>,
}

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// The study to work on, as `hyperion create` or `hyperion run` made it.
    study: String,
    /// Trials at once on this machine (default: the study's `resources.max_concurrent`).
    #[arg(long, value_name = "N")]
    max_concurrent: Option<usize>,
    /// This machine's GPUs to give trials, comma-separated (default: the study's).
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    gpus: Option<Vec<String>>,
    /// Where this machine keeps the trials' directories (default: `.hyperion/STUDY/trials`
    /// here, or beside the SQLite file).
    #[arg(long, value_name = "DIR")]
    trials_dir: Option<PathBuf>,
    /// Where trials run (default: the study file's directory when this machine has it, else
    /// the current directory).
    #[arg(long, value_name = "DIR")]
    workdir: Option<PathBuf>,
    /// Start at most N trials here, then leave when they end (the study's budget still holds).
    #[arg(long, value_name = "N")]
    max_trials_here: Option<u64>,
    #[command(flatten)]
    show: ShowArgs,
}

#[derive(clap::Args)]
pub struct SubmitWorkersArgs {
    /// The study to work on, as `hyperion create` made it.
    study: String,
    /// Workers in the array.
    #[arg(long, value_name = "N")]
    count: u32,
    /// Each worker's time limit (`90m`, `12h`; default: the partition's).
    #[arg(long, value_name = "DURATION")]
    time: Option<String>,
    /// Slurm partition (default: the study's `slurm.partition`).
    #[arg(long)]
    partition: Option<String>,
    /// Slurm account (default: the study's `slurm.account`).
    #[arg(long)]
    account: Option<String>,
    /// Slurm QOS (default: the study's `slurm.qos`).
    #[arg(long)]
    qos: Option<String>,
    /// CPUs of each worker's allocation.
    #[arg(long, value_name = "N")]
    cpus_per_task: Option<u32>,
    /// Memory of each worker's allocation, as sbatch reads it (`64G`).
    #[arg(long)]
    mem: Option<String>,
    /// GPUs of each worker's allocation (`--gres=gpu:N`).
    #[arg(long, value_name = "N")]
    gpus: Option<u32>,
    /// Node features (default: the study's `slurm.constraint`).
    #[arg(long)]
    constraint: Option<String>,
    /// A shell line run before the worker (`module load cuda/12`); repeat for more (default:
    /// the study's `slurm.setup`).
    #[arg(long, value_name = "LINE")]
    setup: Vec<String>,
    /// An option handed to sbatch unchanged; repeat for more (default: the study's
    /// `slurm.extra_args`).
    #[arg(long, value_name = "OPTION", allow_hyphen_values = true)]
    sbatch_arg: Vec<String>,
    /// Trials at once in each worker (default: one per GPU with --gpus, else the study's).
    #[arg(long, value_name = "N")]
    max_concurrent: Option<usize>,
    /// Where the workers keep the trials' directories (default: `.hyperion/STUDY/trials`
    /// here, which the nodes must see).
    #[arg(long, value_name = "DIR")]
    trials_dir: Option<PathBuf>,
    /// Start at most N trials in each worker.
    #[arg(long, value_name = "N")]
    max_trials_here: Option<u64>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum LogFormat {
    Json,
}

/// Enqueues the study file's `enqueue` points that no trial of the study has, so a rerun adds
/// none twice; how many it enqueued.
fn enqueue_new(study: &Study, points: &[hyperion_core::Params]) -> Result<usize> {
    if points.is_empty() {
        return Ok(0);
    }
    let trials = study.trials()?;
    let mut enqueued = 0;
    for point in points {
        if !trials.iter().any(|t| *t.params == *point) {
            study.enqueue(point.clone())?;
            enqueued += 1;
        }
    }
    Ok(enqueued)
}

pub fn run(storage: Option<String>, args: RunArgs) -> Result<ExitCode> {
    let (file, url, store) = load(storage, &args.file, &args.overrides)?;
    let name = file.spec.name.clone();

    let mut process = file.process.clone();
    process.trials_dir = match file.trials_dir.clone() {
        Some(dir) => dir,
        None => crate::study_dir(&url, &name)?.join("trials"),
    };
    let study = open_from_file(&file, store, &args.file)?;
    let mut manifest =
        crate::manifest::begin(&file.process, file.pipeline.as_ref(), &args.overrides);
    let (earlier, completed) = {
        let view = study.view()?;
        (view.runs().to_vec(), view.counts().completed)
    };
    // With nothing completed there is nothing to mix new code with.
    if completed > 0 {
        crate::manifest::check(&name, &earlier, &manifest, args.accept_code_change)?;
    }
    let (store, id) = (study.store().clone(), study.record_id());
    crate::manifest::record(&store, id, &manifest)?;
    let budget = file.budget.or(&study.settings().budget);
    let grid = matches!(file.sampler, hyperion_samplers::SamplerConfig::Grid { .. });
    if budget.max_trials.is_none() && budget.max_time.is_none() && budget.target.is_none() && !grid
    {
        eprintln!(
            "note: study \"{name}\" has no budget: it runs until stopped (Ctrl-C, or \
             `hyperion stop {name}`), as a W&B sweep does; set budget.max_trials to bound it"
        );
    }

    let enqueued = enqueue_new(&study, &file.enqueue)?;
    if enqueued > 0 {
        eprintln!("note: trying {enqueued} enqueued points of \"{name}\" first");
    }
    if args.retry_failed {
        let retries = study.retry_failed()?;
        eprintln!(
            "note: running {} failed trials of \"{name}\" again",
            retries.len()
        );
    }

    let mut pipeline = file.pipeline.clone();
    if let Some(stage) = &args.from_stage {
        let Some(pipeline) = pipeline.as_mut() else {
            anyhow::bail!(
                "--from-stage {stage}: {} has no `stages:`",
                args.file.display()
            );
        };
        pipeline.force_from(stage).map_err(anyhow::Error::msg)?;
    }
    let again = format!("hyperion run {}", args.file.display());
    let run = Run {
        budget: &file.budget,
        recovery: &file.recovery,
        max_trials_here: None,
        pipeline: pipeline.as_ref(),
    };
    let result = execute(study, &process, run, &args.show, &again);
    manifest.ended_at = Some(hyperion_core::Timestamp::now());
    crate::manifest::record(&store, id, &manifest)?;
    result
}

/// `hyperion create`: the study a file describes, created or with its settings updated, and
/// nothing run, for clusters where a script starts the workers.
pub fn create(storage: Option<String>, args: CreateArgs) -> Result<ExitCode> {
    let (file, url, store) = load(storage, &args.file, &args.overrides)?;
    let name = file.spec.name.clone();
    let existed = store.study(&name).is_ok();
    let study = open_from_file(&file, store, &args.file)?;
    let what = match (existed, study.settings_changes().is_empty()) {
        (false, _) => "created",
        (true, true) => "unchanged",
        (true, false) => "updated",
    };
    let url = hyperion_store::redact(&url);
    out(&format!(
        "study \"{name}\" {what} in {url}; start workers with `hyperion worker --storage \
         {url} {name}`\n"
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `hyperion worker`: joins a study and runs its trials here with its stored settings, until
/// its budget is spent and nothing this worker could retry remains.
pub fn worker(storage: Option<String>, args: WorkerArgs) -> Result<ExitCode> {
    let url = crate::store_url(storage.as_deref())?;
    let store = crate::open_store(Some(&url))?;
    let name = find_study(&store, &args.study)?.spec.name;
    let study = Study::open(store, &name)?;
    let settings = study.settings().clone();
    let Some(mut process) = settings.trial else {
        anyhow::bail!(
            "study \"{name}\" has no trial command (the program that made it runs its trials \
             itself); workers run the studies that `hyperion create` or `hyperion run` made"
        );
    };
    process.trials_dir = match args.trials_dir {
        Some(dir) => dir,
        None => crate::study_dir(&url, &name)?.join("trials"),
    };
    if let Some(n) = args.max_concurrent {
        process.max_concurrent = n;
    }
    // A worker runs trials on its own machine (its allocation, as an array task), whatever
    // executor the study's own run uses.
    process.executor = "local".to_owned();
    if let Some(gpus) = args.gpus {
        process.gpus = gpus;
    }
    match args.workdir {
        Some(dir) => process.workdir = dir,
        None if !process.workdir.is_dir() => {
            let here = std::env::current_dir().context("the current directory")?;
            eprintln!(
                "note: this machine has no {}, where the study's trials ran: they run in {}",
                process.workdir.display(),
                here.display()
            );
            process.workdir = here;
        }
        None => {}
    }
    let again = format!("hyperion worker {name}");
    // No budget of its own: the study's, as it is recorded now and whenever it changes.
    let run = Run {
        budget: &hyperion_runtime::Budget::default(),
        recovery: &settings.recovery,
        max_trials_here: args.max_trials_here,
        pipeline: settings.pipeline.as_ref(),
    };
    execute(study, &process, run, &args.show, &again)
}

/// `hyperion submit-workers`: a job array of workers on a study in a server store. The
/// study's `slurm:` section gives the options not given here, except the per-trial ones (time,
/// CPUs, memory, GPUs), which describe a trial rather than a worker.
pub fn submit_workers(storage: Option<String>, args: SubmitWorkersArgs) -> Result<ExitCode> {
    let url = crate::store_url(storage.as_deref())?;
    if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
        anyhow::bail!(
            "workers on other machines need a server store: give --storage postgresql://…, not \
             {} (a SQLite file is not safe on a shared filesystem)",
            hyperion_store::redact(&url)
        );
    }
    if args.count == 0 {
        anyhow::bail!("--count must be at least 1");
    }
    let store = crate::open_store(Some(&url))?;
    let name = find_study(&store, &args.study)?.spec.name;
    let study = Study::open(store, &name)?;
    let stored = study
        .settings()
        .trial
        .as_ref()
        .and_then(|t| t.slurm.clone())
        .unwrap_or_default();
    let time = args
        .time
        .as_deref()
        .map(hyperion_config::parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--time: {e}"))?;
    let slurm = hyperion_runtime::SlurmConfig {
        partition: args.partition.or(stored.partition),
        account: args.account.or(stored.account),
        qos: args.qos.or(stored.qos),
        time,
        cpus_per_task: args.cpus_per_task,
        mem: args.mem,
        gpus_per_trial: args.gpus,
        gres: None,
        constraint: args.constraint.or(stored.constraint),
        nodes: None,
        extra_args: if args.sbatch_arg.is_empty() {
            stored.extra_args
        } else {
            args.sbatch_arg
        },
        setup: if args.setup.is_empty() {
            stored.setup
        } else {
            args.setup
        },
        ..hyperion_runtime::SlurmConfig::default()
    };
    let study_dir = std::path::absolute(crate::study_dir(&url, &name)?)?;
    let trials_dir = match args.trials_dir {
        Some(dir) => std::path::absolute(dir)?,
        None => study_dir.join("trials"),
    };
    let mut worker_args = vec![
        "-q".to_owned(),
        format!("--trials-dir={}", trials_dir.display()),
    ];
    let max_concurrent = args.max_concurrent.or(args.gpus.map(|n| n as usize));
    if let Some(n) = max_concurrent {
        worker_args.push(format!("--max-concurrent={n}"));
    }
    if let Some(n) = args.max_trials_here {
        worker_args.push(format!("--max-trials-here={n}"));
    }
    let program = std::env::current_exe().context("finding the hyperion program")?;
    let array = hyperion_runtime::WorkerArray {
        study: &name,
        count: args.count,
        storage: &url,
        program: &program,
        worker_args: &worker_args,
        slurm: &slurm,
        dir: &study_dir.join("workers"),
    };
    let id = array.submit()?;
    out(&format!(
        "submitted job array {id}: {} workers on study \"{name}\"; logs in {}; watch with \
         `hyperion status {name}` and `squeue --name=hyperion-{name}-worker`\n",
        args.count,
        study_dir.join("workers").display(),
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// A study file with its overrides (its notes printed), and the store it names. The command
/// line wins over the file, which wins over the nearest store above the file (a new one beside
/// it): the same file finds its study from any directory.
pub(crate) fn load(
    storage: Option<String>,
    path: &std::path::Path,
    overrides: &[String],
) -> Result<(hyperion_config::StudyFile, String, Arc<dyn Store>)> {
    let file = hyperion_config::load(path, overrides)?;
    for note in &file.notes {
        eprintln!("note: {note}");
    }
    let (url, store) =
        open_or_create_store(storage.or(file.storage.clone()).as_deref(), &file.dir())?;
    Ok((file, url, store))
}

/// Opens the study `file` describes on `store`, printing how its settings change.
fn open_from_file(
    file: &hyperion_config::StudyFile,
    store: Arc<dyn Store>,
    path: &std::path::Path,
) -> Result<Study> {
    let study = builder(file, store).open().map_err(|e| match e {
        hyperion_runtime::Error::Store(StoreError::SpecMismatch { name, what }) => anyhow::anyhow!(
            "study \"{name}\" already exists with {what}.\n\
             To start a new study, give it another name (`name:` in {}, or `hyperion run {} name=NEW`);\n\
             to start over, delete the old one with `hyperion delete {name}`",
            path.display(),
            path.display()
        ),
        other => anyhow::Error::from(other).context(format!("{}", path.display())),
    })?;
    for change in study.settings_changes() {
        eprintln!("note: study \"{}\" changes {change}", file.spec.name);
    }
    Ok(study)
}

/// The limits of one run.
struct Run<'a> {
    budget: &'a hyperion_runtime::Budget,
    recovery: &'a hyperion_runtime::Recovery,
    max_trials_here: Option<u64>,
    /// Each trial is this pipeline of stages (a study file's `stages:`).
    pipeline: Option<&'a hyperion_runtime::PipelineConfig>,
}

/// Runs `study`'s trials as processes here, with the live view, until the run ends; `again`
/// is the command that continues it.
fn execute(
    study: Study,
    process: &hyperion_runtime::ProcessConfig,
    run: Run<'_>,
    show: &ShowArgs,
    again: &str,
) -> Result<ExitCode> {
    let name = study.name().to_owned();
    let control = RunControl::default();
    let signalled = watch_signals(&control)?;

    let mode = match (show.quiet, show.log) {
        (true, _) => Mode::Quiet,
        (_, Some(LogFormat::Json)) => Mode::Json,
        _ if std::io::stderr().is_terminal() => Mode::Bar,
        _ => Mode::Lines,
    };
    let total = study.settings().budget.max_trials;
    let now = Arc::clone(&*study.view()?);
    let view = LiveView::new(mode, show.stream, total, &now, control.clone());
    let events = study.subscribe_all();
    let printer = std::thread::spawn(move || view.show(events));

    let options = hyperion_runtime::RunOptions {
        budget: run.budget.clone(),
        recovery: run.recovery.clone(),
        trial_timeout: process.trial_timeout,
        kill_grace: process.kill_grace,
        max_concurrent: process.max_concurrent,
        max_trials_here: run.max_trials_here,
    };
    let result = match process.executor.as_str() {
        _ if run.pipeline.is_some() => {
            let pipeline = run.pipeline.expect("matched");
            hyperion_runtime::PipelineDispatcher::new(&name, process, pipeline)
                .and_then(|mut stages| study.run_with(&mut stages, &options, &control))
        }
        "slurm" => {
            let objectives = study.spec().objectives.iter();
            let objectives = objectives.map(|o| o.metric.clone()).collect();
            // A job's time limit is Slurm's to enforce (`--time`).
            let options = hyperion_runtime::RunOptions {
                trial_timeout: None,
                ..options
            };
            hyperion_runtime::SlurmDispatcher::new(&name, objectives, process)
                .and_then(|mut slurm| study.run_with(&mut slurm, &options, &control))
        }
        _ => hyperion_runtime::LocalDispatcher::new(&name, process)
            .and_then(|mut local| study.run_with(&mut local, &options, &control)),
    };
    drop(study); // Closes the event channel, so the printer finishes.
    let (status, closed) = printer
        .join()
        .map_err(|_| anyhow::anyhow!("the live view panicked"))?;
    let result = result?;
    // After a signal, the conventional status: 130 for Ctrl-C, 143 for SIGTERM.
    let code = match signalled.load(std::sync::atomic::Ordering::SeqCst) {
        0 => ExitCode::SUCCESS,
        signal => ExitCode::from(128 + signal as u8),
    };
    if closed {
        // Whoever read the events is gone: nothing more to say.
        return Ok(code);
    }

    if mode != Mode::Json {
        if mode != Mode::Quiet {
            eprintln!("{status}");
        }
        let reason = match result.reason {
            StopReason::MaxTrials => "the trial budget is spent",
            StopReason::MaxTime => "the time budget is spent",
            StopReason::TargetReached => "the target was reached",
            StopReason::MaxFailures => "too many trials failed",
            StopReason::SpaceExhausted => "every grid point has a trial",
            StopReason::Stopped => "stopped; rerun the same command to continue",
            StopReason::RepeatedFailure => "its first trials all failed the same way",
            StopReason::TrialsHere => "this worker ran its --max-trials-here trials",
        };
        let mut summary = format!(
            "study \"{name}\": {reason}; {} trials run here\n",
            result.trials_run
        );
        if let Some(best) = &result.best {
            let params: Vec<String> = best
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let values: Vec<String> = best
                .values
                .iter()
                .flatten()
                .map(|v| v.to_string())
                .collect();
            summary.push_str(&format!(
                "best: trial {} ({}) {}\n",
                best.number,
                values.join(", "),
                params.join(" ")
            ));
        }
        out(&summary)?;
    }
    if let Some(error) = result.failure {
        anyhow::bail!(
            "study \"{name}\" stopped: its first trials all failed with\n  {}\nfix it, then \
             `{again} --retry-failed` runs them again",
            error.replace('\n', "\n  "),
        );
    }
    Ok(code)
}

/// The study a file describes, on `store`: its spec and every setting the file gives.
pub fn builder(file: &hyperion_config::StudyFile, store: Arc<dyn Store>) -> StudyBuilder {
    let mut builder = Study::builder(&file.spec.name)
        .objectives(file.spec.objectives.clone())
        .space(file.spec.space.clone())
        .sampler(file.sampler.clone())
        .early_stopping(file.early_stopping.clone())
        .budget(file.budget.clone())
        .recovery(file.recovery.clone())
        .store(store);
    // The pipeline goes with the template, so that `hyperion worker` runs the same stages.
    builder = builder.trial_template(absolute_workdir(&file.process));
    if let Some(pipeline) = &file.pipeline {
        builder = builder.pipeline(pipeline.clone().absolute());
    }
    if let Some(seed) = file.seed {
        builder = builder.seed(seed);
    }
    if let Some(description) = &file.description {
        builder = builder.description(description);
    }
    builder
}

/// `process` with its working directory absolute, as the store keeps it: a worker elsewhere
/// reads it as the directory it names, not relative to its own.
fn absolute_workdir(process: &hyperion_runtime::ProcessConfig) -> hyperion_runtime::ProcessConfig {
    let mut process = process.clone();
    if let Ok(dir) = std::path::absolute(&process.workdir) {
        process.workdir = dir;
    }
    process
}

/// Ctrl-C once: start no more trials and wait for the running ones. Twice, or SIGTERM or
/// SIGHUP: kill them (their process groups get SIGTERM, then SIGKILL after the grace).
/// Returns where the first signal's number is kept (0 while none came).
fn watch_signals(control: &RunControl) -> Result<Arc<std::sync::atomic::AtomicI32>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("installing signal handlers")?;
    let control = control.clone();
    let first = Arc::new(std::sync::atomic::AtomicI32::new(0));
    let signalled = first.clone();
    std::thread::spawn(move || {
        let mut interrupts = 0;
        for signal in signals.forever() {
            let _ = first.compare_exchange(
                0,
                signal,
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
            );
            interrupts += usize::from(signal == SIGINT);
            if signal == SIGINT && interrupts == 1 {
                eprintln!(
                    "\nstopping: no new trials; waiting for the running ones (Ctrl-C again kills them)"
                );
                control.stop();
            } else {
                eprintln!("\nkilling the running trials");
                control.kill();
            }
        }
    });
    Ok(signalled)
}

/// `hyperion stop`: a stop request in the store, which every run of the study obeys within
/// a heartbeat.
pub fn request_stop(store: &Arc<dyn Store>, study: &str, kill: bool) -> Result<ExitCode> {
    find_study(store, study)?;
    let opened = Study::open(store.clone(), study)?;
    let by = if kill {
        "hyperion stop --kill"
    } else {
        "hyperion stop"
    };
    opened.request(kill, by)?;
    // Jobs whose run is gone have nobody to obey the request: cancel them here.
    if kill {
        match opened.cancel_orphaned_jobs() {
            Ok(ids) if !ids.is_empty() => println!(
                "cancelled {} Slurm jobs that no run follows: {}",
                ids.len(),
                ids.join(",")
            ),
            Ok(_) => {}
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    println!(
        "asked the runs of \"{study}\" to stop{}",
        if kill {
            " and kill their running trials"
        } else {
            " (running trials finish)"
        }
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Quiet,
    Json,
    /// A progress bar redrawn in place (a terminal).
    Bar,
    /// A line per finished trial (a log file, CI).
    Lines,
}

struct LiveView {
    mode: Mode,
    stream: bool,
    total: Option<u64>,
    started: Instant,
    /// Finished when the run started (a resumed study), for the ETA.
    finished_before: u64,
    running: u64,
    finished: u64,
    completed: u64,
    pruned: u64,
    failed: u64,
    best: Option<(hyperion_core::TrialNumber, f64)>,
    /// A finished trial's line, printed once the progress it causes is counted.
    line: Option<String>,
    /// Stops the run when nobody reads its events any more (`--log json | head -1`).
    control: RunControl,
    closed: bool,
}

impl LiveView {
    /// Counts start from the study as it is: a resumed study shows its whole progress.
    fn new(
        mode: Mode,
        stream: bool,
        total: Option<u64>,
        view: &hyperion_core::StudyView,
        control: RunControl,
    ) -> Self {
        let counts = view.counts();
        // A retry or a PBT child carries on a finished trial's place in the budget.
        let carried = view.trials().len() as u64 - view.budget_used();
        let finished = counts.finished().saturating_sub(carried);
        LiveView {
            mode,
            stream,
            total,
            started: Instant::now(),
            finished_before: finished,
            running: 0,
            finished,
            completed: counts.completed,
            pruned: counts.pruned,
            failed: counts.failed,
            best: view.best_trial().and_then(|t| Some((t.number, t.value()?))),
            line: None,
            control,
            closed: false,
        }
    }

    /// Shows events until the study is dropped; returns the final status line, and whether
    /// standard output was closed.
    fn show(mut self, events: Receiver<Event>) -> (String, bool) {
        let stderr = std::io::stderr();
        for event in events {
            match &event {
                Event::TrialStarted { .. } => self.running += 1,
                Event::TrialCompleted { .. }
                | Event::TrialPruned { .. }
                | Event::TrialFailed { .. } => {
                    self.running = self.running.saturating_sub(1);
                }
                Event::StudyProgress {
                    finished,
                    completed,
                    pruned,
                    failed,
                    ..
                } => {
                    (self.finished, self.completed, self.pruned, self.failed) =
                        (*finished, *completed, *pruned, *failed);
                }
                Event::BestUpdated { number, values } => {
                    self.best = values.first().map(|v| (*number, *v))
                }
                _ => {}
            }
            match self.mode {
                Mode::Quiet => {
                    if let Event::Warning { number, message } = &event {
                        eprintln!("warning: trial {number}: {message}");
                    }
                }
                Mode::Json => {
                    if let Ok(line) = serde_json::to_string(&event)
                        && (self.stream || event.kind() != EventKind::TrialOutput)
                        && !self.closed
                        && writeln!(std::io::stdout().lock(), "{line}").is_err()
                    {
                        self.closed = true;
                        self.control.kill();
                    }
                }
                Mode::Bar | Mode::Lines => {
                    let mut err = stderr.lock();
                    if self.mode == Mode::Bar {
                        let _ = write!(err, "\r\x1b[2K");
                    }
                    if let Event::TrialOutput { number, line, .. } = &event
                        && self.stream
                    {
                        let _ = writeln!(err, "[{number}] {line}");
                    }
                    if let Event::Warning { number, message } = &event {
                        let _ = writeln!(err, "warning: trial {number}: {message}");
                    }
                    if self.mode == Mode::Lines {
                        match &event {
                            Event::TrialCompleted { number, values } => {
                                self.line = Some(format!("trial {number} completed {values:?}"));
                            }
                            Event::TrialPruned { number, reason, .. } => {
                                self.line = Some(format!("trial {number} pruned: {reason}"));
                            }
                            Event::TrialFailed { number, error } => {
                                let first = error.lines().next().unwrap_or_default();
                                self.line = Some(format!("trial {number} failed: {first}"));
                            }
                            Event::StudyProgress { .. } => {
                                if let Some(line) = self.line.take() {
                                    let _ = writeln!(err, "{line} · {}", self.status());
                                }
                            }
                            _ => {}
                        }
                    } else {
                        // The line was cleared above: always put the bar back.
                        let _ = write!(err, "{}", self.status());
                    }
                    let _ = err.flush();
                }
            }
        }
        if self.mode == Mode::Bar {
            eprint!("\r\x1b[2K");
        }
        (self.status(), self.closed)
    }

    fn status(&self) -> String {
        let done = match self.total {
            Some(total) => {
                let width = 20;
                let filled =
                    ((self.finished as f64 / total.max(1) as f64) * width as f64).round() as usize;
                let filled = filled.min(width);
                format!(
                    "[{}{}] {}/{total}",
                    "#".repeat(filled),
                    "-".repeat(width - filled),
                    self.finished
                )
            }
            None => format!("{} done", self.finished),
        };
        let mut text = format!(
            "{done} · {} completed · {} failed · {} pruned · {} running",
            self.completed, self.failed, self.pruned, self.running
        );
        if let Some((number, value)) = self.best {
            text.push_str(&format!(" · best {value:.6} (trial {number})"));
        }
        let here = self.finished.saturating_sub(self.finished_before);
        if let (Some(total), true) = (self.total, here > 0 && self.running > 0) {
            let per_trial = self.started.elapsed().as_secs_f64() / here as f64;
            let left = total.saturating_sub(self.finished) as f64 * per_trial;
            text.push_str(&format!(
                " · ETA {}",
                hyperion_runtime::human(Duration::from_secs_f64(left))
            ));
        }
        text
    }
}
