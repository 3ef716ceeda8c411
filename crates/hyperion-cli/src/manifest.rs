//! Run manifests: each `hyperion run` records what it ran with (`hyperion runs STUDY` lists
//! them), and a run whose code differs from the last one's stops unless told to go on.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;

use anyhow::Result;
use hyperion_core::{Change, GitState, RunManifest, Timestamp};
use hyperion_store::Store;

use crate::{find_study, out};

/// The manifest of this run of a study whose trials are `process` (or `pipeline`), before it
/// starts.
pub fn begin(
    process: &hyperion_runtime::ProcessConfig,
    pipeline: Option<&hyperion_runtime::PipelineConfig>,
    overrides: &[String],
) -> RunManifest {
    let started_at = Timestamp::now();
    let host = hyperion_runtime::this_host().to_owned();
    RunManifest {
        id: format!("{host}-{}-{}", std::process::id(), started_at.0),
        started_at,
        ended_at: None,
        host,
        command: std::env::args().collect(),
        overrides: overrides.to_vec(),
        git: git(&process.workdir),
        code: code(process, pipeline),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// Stops a run whose code differs from the study's last run's, unless `accept`.
pub fn check(name: &str, earlier: &[RunManifest], now: &RunManifest, accept: bool) -> Result<()> {
    let Some((n, last)) = earlier.iter().enumerate().next_back() else {
        return Ok(());
    };
    let changes = now.code_changes(last);
    if changes.is_empty() {
        return Ok(());
    }
    let list = changes.join("\n  ");
    if accept {
        eprintln!(
            "note: study \"{name}\" goes on with code that differs from run {}'s:\n  {list}",
            n + 1
        );
        return Ok(());
    }
    anyhow::bail!(
        "study \"{name}\": the code differs from run {}'s ({}):\n  {list}\n\
         Its trials would mix two versions of the code. Restore the code, give the study \
         another name, or rerun with --accept-code-change to go on with this code \
         (`hyperion runs {name}` lists the runs)",
        n + 1,
        last.started_at.rfc3339()
    )
}

/// Records `run` in the study's log (at its start, and again with its end).
pub fn record(
    store: &Arc<dyn Store>,
    study: hyperion_core::StudyId,
    run: &RunManifest,
) -> Result<()> {
    store.log(study, &Change::RunRecorded { run: run.clone() })?;
    Ok(())
}

/// The working directory's git commit and whether tracked files differ from it; `None` outside
/// a repository or without git.
fn git(workdir: &Path) -> Option<GitState> {
    let output = |args: &[&str]| {
        let o = Command::new("git")
            .args(args)
            .current_dir(workdir)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = output(&["rev-parse", "HEAD"])?;
    let dirty = !output(&["status", "--porcelain", "--untracked-files=no"])?.is_empty();
    Some(GitState { commit, dirty })
}

/// The digests of the code the trials run: a pipeline's `code:` paths, or the files a plain
/// command names (`train.py` in `python train.py …`).
fn code(
    process: &hyperion_runtime::ProcessConfig,
    pipeline: Option<&hyperion_runtime::PipelineConfig>,
) -> BTreeMap<String, String> {
    let workdir = &process.workdir;
    let paths: Vec<(String, std::path::PathBuf)> = match pipeline {
        Some(pipeline) => pipeline
            .stages
            .iter()
            .flat_map(|s| s.code.iter().cloned())
            .collect(),
        None => process
            .argv
            .iter()
            .filter(|word| !word.contains('{'))
            .map(|word| (word.clone(), workdir.join(word)))
            .filter(|(_, path)| path.is_file())
            .collect(),
    };
    paths
        .into_iter()
        .filter_map(|(name, path)| Some((name, hyperion_cache::digest::of_path(&path).ok()?)))
        .collect()
}

/// `hyperion runs STUDY`: the study's runs, oldest first.
pub fn runs(store: &Arc<dyn Store>, study: &str, json: bool) -> Result<ExitCode> {
    let record = find_study(store, study)?;
    let view = crate::show::study_view(store, &record)?;
    let runs = view.runs();
    if json {
        out(&(serde_json::to_string_pretty(runs)? + "\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        out(&format!(
            "study \"{study}\" has no recorded run (`hyperion run` records them)\n"
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = String::new();
    for (i, run) in runs.iter().enumerate() {
        let ended = match run.ended_at {
            Some(at) => format!("ended {}", at.rfc3339()),
            None => "no end recorded (running, or killed)".into(),
        };
        let git = match &run.git {
            Some(g) => format!(
                "git {}{}",
                g.commit.chars().take(12).collect::<String>(),
                if g.dirty { " (dirty)" } else { "" }
            ),
            None => "no git".into(),
        };
        text.push_str(&format!(
            "run {}: {} on {}, {ended}\n  {git}, hyperion {}, {} code files\n  {}\n",
            i + 1,
            run.started_at.rfc3339(),
            run.host,
            run.version,
            run.code.len(),
            run.command.join(" ")
        ));
    }
    out(&text)?;
    Ok(ExitCode::SUCCESS)
}
