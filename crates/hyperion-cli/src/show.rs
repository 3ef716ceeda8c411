//! Reading studies: status, studies, trials, best, export.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use hyperion_core::{StudySpec, StudyView, Trial, TrialState};
use hyperion_store::{Store, StudyRecord};

use crate::{ExportFormat, TableFormat, find_study, out};

/// The study folded from its log: counts, best, Pareto front.
pub fn study_view(store: &Arc<dyn Store>, record: &StudyRecord) -> Result<StudyView> {
    let mut view = StudyView::new(record.id, record.spec.clone());
    for change in store.changes_since(record.id, 0)? {
        view.apply(&change, &mut Vec::new())?;
    }
    Ok(view)
}

/// The best trial, from the store's index; with several objectives the Pareto front, from the
/// whole study.
fn best_of(store: &Arc<dyn Store>, record: &StudyRecord) -> Result<Vec<Trial>> {
    if record.spec.objectives.len() == 1 {
        return Ok(store.best_trial(record.id)?.into_iter().collect());
    }
    Ok(study_view(store, record)?
        .pareto_front()
        .into_iter()
        .cloned()
        .collect())
}

pub fn status(store: &Arc<dyn Store>, study: Option<&str>, json: bool) -> Result<ExitCode> {
    let records = match study {
        Some(name) => vec![find_study(store, name)?],
        None => store.studies()?,
    };
    if json {
        let mut all = Vec::new();
        for record in &records {
            let c = store.counts(record.id)?;
            let best: Vec<_> = best_of(store, record)?
                .iter()
                .map(|t| t.record(&record.spec))
                .collect();
            all.push(serde_json::json!({
                "study": record.spec.name,
                "trials": c.total(),
                "completed": c.completed,
                "running": c.running,
                "phases": store.phases(record.id)?,
                "pending": c.pending,
                "pruned": c.pruned,
                "failed": c.failed,
                "objectives": record.spec.objectives,
                "best": best,
            }));
        }
        out(&(serde_json::to_string_pretty(&all)? + "\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    if records.is_empty() {
        out("no studies yet: `hyperion run study.yaml` creates one\n")?;
    }
    let mut text = String::new();
    for record in &records {
        let c = store.counts(record.id)?;
        let _ = writeln!(
            text,
            "{}: {} trials — {} completed, {} running, {} pending, {} pruned, {} failed",
            record.spec.name,
            c.total(),
            c.completed,
            c.running,
            c.pending,
            c.pruned,
            c.failed
        );
        let phases = store.phases(record.id)?;
        if !phases.is_empty() {
            let phases: Vec<String> = phases.iter().map(|(p, n)| format!("{n} {p}")).collect();
            let _ = writeln!(text, "  running: {}", phases.join(", "));
        }
        for trial in best_of(store, record)? {
            let _ = writeln!(
                text,
                "  best: trial {} {}",
                trial.number,
                values_text(&record.spec, &trial)
            );
        }
    }
    out(&text)?;
    Ok(ExitCode::SUCCESS)
}

pub fn studies(store: &Arc<dyn Store>) -> Result<ExitCode> {
    let mut rows = vec![vec![
        "study".to_owned(),
        "trials".into(),
        "completed".into(),
        "objectives".into(),
    ]];
    for record in store.studies()? {
        let view = study_view(store, &record)?;
        let objectives: Vec<String> = record
            .spec
            .objectives
            .iter()
            .map(|o| format!("{} ({:?})", o.metric, o.direction).to_lowercase())
            .collect();
        rows.push(vec![
            record.spec.name.clone(),
            view.counts().total().to_string(),
            view.counts().completed.to_string(),
            objectives.join(", "),
        ]);
    }
    out(&table(&rows))?;
    Ok(ExitCode::SUCCESS)
}

pub fn trials(
    store: &Arc<dyn Store>,
    study: &str,
    format: TableFormat,
    metrics: &[String],
    page: (u64, Option<u64>),
) -> Result<ExitCode> {
    let record = find_study(store, study)?;
    let trials = match page {
        (0, None) => store.trials(record.id)?,
        (first, limit) => store.trials_page(record.id, first, limit.unwrap_or(u64::MAX))?,
    };
    let text = match format {
        TableFormat::Json => serde_json::to_string_pretty(&trials)? + "\n",
        TableFormat::Csv => csv(&record.spec, &trials),
        TableFormat::Table => {
            // PBT children: the trial each continues from.
            let lineage = trials.iter().any(|t| t.parent.is_some());
            let mut header = vec![
                "#".to_owned(),
                "state".into(),
                "value".into(),
                "duration".into(),
                "params".into(),
            ];
            header.splice(4..4, metrics.iter().cloned());
            if lineage {
                header.insert(1, "from".into());
            }
            let mut rows = vec![header];
            for t in &trials {
                let params: Vec<String> = t
                    .params
                    .iter()
                    .map(|(k, v)| format!("{k}={}", short(&v.to_string())))
                    .collect();
                let mut row = vec![
                    t.number.to_string(),
                    t.phase().unwrap_or_else(|| state_text(&t.state)),
                    t.values
                        .as_ref()
                        .map(|v| {
                            v.iter()
                                .map(|x| format!("{x:.6}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default(),
                    t.duration()
                        .map(|d| format!("{:.1}s", d.as_secs_f64()))
                        .unwrap_or_default(),
                    params.join(" "),
                ];
                let objective = |m: &String| {
                    let i = record.spec.objectives.iter().position(|o| &o.metric == m)?;
                    t.values.as_ref()?.get(i).copied()
                };
                let chosen = metrics.iter().map(|m| {
                    t.metrics
                        .get(m)
                        .copied()
                        .or_else(|| objective(m))
                        .map(|v| format!("{v:.6}"))
                        .unwrap_or_default()
                });
                row.splice(4..4, chosen);
                if lineage {
                    row.insert(1, t.parent.map(|p| p.to_string()).unwrap_or_default());
                }
                rows.push(row);
            }
            table(&rows)
        }
    };
    out(&text)?;
    Ok(ExitCode::SUCCESS)
}

pub fn decisions(
    store: &Arc<dyn Store>,
    study: &str,
    trial: Option<hyperion_core::TrialNumber>,
    json: bool,
) -> Result<ExitCode> {
    let record = find_study(store, study)?;
    let decisions: Vec<_> = store
        .decisions(record.id)?
        .into_iter()
        .filter(|d| trial.is_none() || d.trial == trial)
        .collect();
    let text = if json {
        serde_json::to_string_pretty(&decisions)? + "\n"
    } else {
        let mut rows = vec![vec![
            "trial".to_owned(),
            "policy".into(),
            "action".into(),
            "rationale".into(),
        ]];
        for d in &decisions {
            rows.push(vec![
                d.trial.map(|t| t.to_string()).unwrap_or_default(),
                d.policy.clone(),
                d.action.to_string(),
                d.rationale.clone(),
            ]);
        }
        table(&rows)
    };
    out(&text)?;
    Ok(ExitCode::SUCCESS)
}

pub fn best(store: &Arc<dyn Store>, study: &str, json: bool) -> Result<ExitCode> {
    let record = find_study(store, study)?;
    let view = study_view(store, &record)?;
    let front = view.pareto_front();
    if front.is_empty() {
        anyhow::bail!("study \"{study}\" has no completed trial yet");
    }
    let text = if json {
        match front.as_slice() {
            [one] if record.spec.objectives.len() == 1 => serde_json::to_string_pretty(one)?,
            many => serde_json::to_string_pretty(many)?,
        }
    } else {
        front
            .iter()
            .map(|t| {
                let params: Vec<String> = t
                    .params
                    .iter()
                    .map(|(k, v)| format!("  {k} = {v}"))
                    .collect();
                format!(
                    "trial {}: {}\n{}",
                    t.number,
                    values_text(&record.spec, t),
                    params.join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    out(&(text + "\n"))?;
    Ok(ExitCode::SUCCESS)
}

pub fn export(
    store: &Arc<dyn Store>,
    study: &str,
    format: ExportFormat,
    output: Option<&Path>,
) -> Result<ExitCode> {
    let record = find_study(store, study)?;
    let trials = store.trials(record.id)?;
    let text = match format {
        ExportFormat::Csv => csv(&record.spec, &trials),
        ExportFormat::Json => {
            let records: Vec<_> = trials.iter().map(|t| t.record(&record.spec)).collect();
            serde_json::to_string_pretty(&records)? + "\n"
        }
        ExportFormat::Jsonl => {
            let mut text = String::new();
            for t in &trials {
                text.push_str(&serde_json::to_string(&t.record(&record.spec))?);
                text.push('\n');
            }
            text
        }
    };
    match output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => out(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// One row per trial, with the columns of Optuna's `trials_dataframe` (`number`, `value` or
/// `values_0…`, `datetime_start`, `datetime_complete`, `duration`, `params_<name>…`,
/// `user_attrs_<key>…`, `state`), then one per objective by name and the message.
fn csv(spec: &StudySpec, trials: &[Trial]) -> String {
    let mut names: Vec<String> = spec.space.params().iter().map(|p| p.name.clone()).collect();
    let mut attrs: Vec<String> = Vec::new();
    for t in trials {
        for k in t.params.keys() {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
        for k in t.user_attrs.keys() {
            if !attrs.contains(k) {
                attrs.push(k.clone());
            }
        }
    }
    let objectives: Vec<&str> = spec.objectives.iter().map(|o| o.metric.as_str()).collect();
    let mut metrics: Vec<String> = Vec::new();
    for t in trials {
        for k in t.metrics.keys() {
            if !objectives.contains(&k.as_str()) && !metrics.contains(k) {
                metrics.push(k.clone());
            }
        }
    }
    let one = spec.objectives.len() == 1;
    let mut header = vec!["number".to_owned()];
    match one {
        true => header.push("value".into()),
        false => header.extend((0..spec.objectives.len()).map(|i| format!("values_{i}"))),
    }
    header.extend(["datetime_start", "datetime_complete", "duration"].map(String::from));
    header.extend(names.iter().map(|n| format!("params_{n}")));
    header.extend(attrs.iter().map(|k| format!("user_attrs_{k}")));
    header.push("state".into());
    header.extend(spec.objectives.iter().map(|o| o.metric.clone()));
    header.extend(metrics.iter().cloned());
    header.push("message".into());
    let mut text = header
        .iter()
        .map(|h| csv_field(h))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    for t in trials {
        let values: Vec<String> = (0..spec.objectives.len())
            .map(|i| {
                t.values
                    .as_ref()
                    .and_then(|v| v.get(i))
                    .map(|x| x.to_string())
                    .unwrap_or_default()
            })
            .collect();
        let mut row = vec![t.number.to_string()];
        row.extend(values.iter().cloned());
        row.push(t.started_at.map(|at| at.rfc3339()).unwrap_or_default());
        row.push(t.finished_at.map(|at| at.rfc3339()).unwrap_or_default());
        row.push(
            t.duration()
                .map(|d| format!("{:.6}", d.as_secs_f64()))
                .unwrap_or_default(),
        );
        for n in &names {
            row.push(t.params.get(n).map(|v| v.to_string()).unwrap_or_default());
        }
        for k in &attrs {
            row.push(
                t.user_attrs
                    .get(k)
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            );
        }
        row.push(t.state.name().to_owned());
        // An objective's column holds its value, else (pruned, failed) its last report.
        for (i, v) in values.into_iter().enumerate() {
            let last = t.metrics.get(objectives[i]).map(|x| x.to_string());
            row.push(if v.is_empty() {
                last.unwrap_or_default()
            } else {
                v
            });
        }
        for k in &metrics {
            row.push(t.metrics.get(k).map(|x| x.to_string()).unwrap_or_default());
        }
        row.push(match &t.state {
            TrialState::Failed { error } => error.clone(),
            TrialState::Pruned { reason, .. } => reason.clone(),
            _ => String::new(),
        });
        text.push_str(
            &row.iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        text.push('\n');
    }
    text
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

fn values_text(spec: &StudySpec, trial: &Trial) -> String {
    let values = trial.values.as_deref().unwrap_or_default();
    spec.objectives
        .iter()
        .zip(values)
        .map(|(o, v)| format!("{}={v}", o.metric))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn state_text(state: &TrialState) -> String {
    match state {
        TrialState::Failed { error } => format!(
            "failed: {}",
            short(error.lines().next().unwrap_or_default())
        ),
        TrialState::Pruned { step, reason } => {
            let at = step.map(|s| format!(" at {s}")).unwrap_or_default();
            match reason.lines().next().filter(|r| !r.is_empty()) {
                Some(reason) => format!("pruned{at}: {}", short(reason)),
                None => format!("pruned{at}"),
            }
        }
        other => other.name().to_owned(),
    }
}

fn short(text: &str) -> String {
    if text.chars().count() > 40 {
        text.chars().take(39).collect::<String>() + "…"
    } else {
        text.to_owned()
    }
}

/// Left-aligned columns separated by two spaces.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// `hyperion trial STUDY N`: everything about one trial, its failure's whole reason included.
pub fn trial(
    store: &Arc<dyn Store>,
    study: &str,
    number: hyperion_core::TrialNumber,
    dir: Option<&Path>,
    json: bool,
) -> Result<ExitCode> {
    let record = find_study(store, study)?;
    let t = store.trial(record.id, number)?;
    // Where it ran, as its run recorded it; its files can be read when that is this machine.
    let host = t.launch.as_ref().map(|l| l.host.as_str());
    let recorded = t
        .launch
        .as_ref()
        .and_then(|l| l.dir.as_deref())
        .map(Path::new);
    let dir = dir
        .map(|d| d.join(number.to_string()))
        .filter(|d| d.is_dir())
        .or_else(|| {
            let here = t
                .launch
                .as_ref()
                .and_then(hyperion_runtime::protocol::dir_here);
            here.map(Path::to_path_buf)
        });
    let stderr_tail = dir
        .as_deref()
        .and_then(|d| hyperion_runtime::protocol::stderr_tail(d, 20));
    if json {
        let mut value = t.record(&record.spec);
        value["host"] = serde_json::json!(host);
        value["directory"] = serde_json::json!(dir.as_deref().or(recorded));
        value["stderr_tail"] = serde_json::json!(stderr_tail);
        out(&(serde_json::to_string_pretty(&value)? + "\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let phase = t.phase().map(|p| format!(" ({p})")).unwrap_or_default();
    let mut text = format!(
        "trial {} of \"{study}\": {}{phase}\n",
        t.number,
        t.state.name()
    );
    match &t.state {
        TrialState::Failed { error } => {
            let _ = writeln!(text, "error:\n  {}", error.replace('\n', "\n  "));
        }
        TrialState::Pruned { step, reason } => {
            let at = step.map(|s| format!(" at step {s}")).unwrap_or_default();
            let _ = writeln!(text, "pruned{at}: {reason}");
        }
        TrialState::Completed => {
            let _ = writeln!(text, "values: {}", values_text(&record.spec, &t));
        }
        _ => {}
    }
    let _ = writeln!(text, "params:");
    for (k, v) in t.params.iter() {
        let _ = writeln!(text, "  {k} = {v}");
    }
    if !t.intermediate.is_empty() {
        let steps: Vec<String> = t
            .intermediate
            .iter()
            .map(|(s, v)| format!("{s}: {v}"))
            .collect();
        let _ = writeln!(text, "reported: {}", steps.join(", "));
    }
    if !t.stages.is_empty() {
        let _ = writeln!(text, "stages:");
        for s in &t.stages {
            let status = serde_json::to_value(s.status).unwrap_or_default();
            let status = status.as_str().unwrap_or_default().replace('_', " ");
            let cached = if s.cached { " (cached)" } else { "" };
            let key = s.key.as_deref().unwrap_or("not cached");
            let _ = writeln!(text, "  {}: {status}{cached}  {key}", s.stage);
        }
    }
    if let Some(parent) = t.parent {
        let _ = writeln!(text, "continues trial {parent} (generation {})", t.depth);
    }
    if let Some(of) = t.retry_of {
        let _ = writeln!(text, "retries trial {of}");
    }
    if let Some(host) = host {
        let _ = writeln!(text, "host: {host}");
    }
    if let Some(d) = dir.as_deref().or(recorded) {
        let _ = writeln!(text, "directory: {}", d.display());
    }
    if let Some(tail) = stderr_tail.filter(|t| !t.is_empty()) {
        let _ = writeln!(text, "--- last lines of stderr ---\n{tail}");
    }
    out(&text)?;
    Ok(ExitCode::SUCCESS)
}
