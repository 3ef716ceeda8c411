//! `hyperion plot`, `report STUDY -o FILE`, `importance` and `compare`: the dashboard's
//! pictures and figures without a browser, drawn by the same code (`hyperion-analysis`).

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use hyperion_analysis::plots::{self, Kind, Options};
use hyperion_analysis::{report, svg};
use hyperion_store::Store;

use crate::show::study_view;
use crate::{find_study, out};

#[derive(clap::Args)]
pub struct PlotArgs {
    study: String,
    /// history, parallel, slice, contour, intermediate, pareto, importance or timeline.
    #[arg(long)]
    kind: Kind,
    /// The SVG file to write.
    #[arg(long, short)]
    output: std::path::PathBuf,
    /// The objective to plot, by index (0 is the first).
    #[arg(long, default_value_t = 0)]
    objective: usize,
    /// The picture's width in pixels.
    #[arg(long, default_value_t = 1000)]
    width: usize,
    /// The contour's parameters (default: the first two).
    #[arg(long)]
    x: Option<String>,
    #[arg(long)]
    y: Option<String>,
}

pub fn plot(store: &Arc<dyn Store>, args: PlotArgs) -> Result<ExitCode> {
    let view = study_view(store, &find_study(store, &args.study)?)?;
    let options = Options {
        objective: args.objective,
        width: args.width,
        x: args.x,
        y: args.y,
    };
    let drawn = plots::plot(&view, args.kind, &options)
        .with_context(|| format!("study \"{}\": {} plot", args.study, args.kind))?;
    write(&args.output, &svg::draw(&drawn, args.width, true))?;
    Ok(ExitCode::SUCCESS)
}

/// `hyperion report STUDY -o report.html`.
pub fn html_report(store: &Arc<dyn Store>, study: &str, output: &Path) -> Result<ExitCode> {
    let view = study_view(store, &find_study(store, study)?)?;
    let generated = hyperion_core::Timestamp::now().rfc3339();
    write(output, &report::html(&view, 1000, &generated))?;
    Ok(ExitCode::SUCCESS)
}

pub fn importance(
    store: &Arc<dyn Store>,
    study: &str,
    objective: usize,
    json: bool,
) -> Result<ExitCode> {
    let view = study_view(store, &find_study(store, study)?)?;
    let count = view.spec().objectives.len();
    if objective >= count {
        bail!(
            "--objective {objective}: study \"{study}\" has {count} objective(s), numbered from 0"
        );
    }
    let imp = hyperion_analysis::importance::ped_anova(&view, objective);
    if json {
        out(&(serde_json::to_string_pretty(&imp)? + "\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    if imp.completed == 0 {
        bail!("study \"{study}\" has no completed trial yet");
    }
    let mut text = format!(
        "importance for {} (PED-ANOVA: what sets the best 10% apart; {} of {} completed trials)\n",
        imp.objective.metric, imp.top, imp.completed
    );
    if imp.top < 5 {
        text.push_str("note: fewer than 5 trials in the top 10%: these figures are unstable\n");
    }
    let width = imp
        .params
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(5)
        .max(9);
    let _ = writeln!(
        text,
        "{:<width$}  importance  {:<30}  spearman",
        "parameter", ""
    );
    for p in &imp.params {
        let bar = "█".repeat((p.importance * 30.0).round() as usize);
        let rho = p.spearman.map_or("–".to_owned(), |r| format!("{r:+.2}"));
        let _ = writeln!(
            text,
            "{:<width$}  {:>10.3}  {bar:<30}  {rho:>8}",
            p.name, p.importance
        );
    }
    out(&text)?;
    Ok(ExitCode::SUCCESS)
}

pub fn compare(
    store: &Arc<dyn Store>,
    studies: &[String],
    output: Option<&Path>,
) -> Result<ExitCode> {
    let mut views = Vec::new();
    for name in studies {
        views.push(study_view(store, &find_study(store, name)?)?);
    }
    let refs: Vec<_> = views.iter().collect();
    let compared = plots::compare(&refs);
    if let Some(path) = output {
        write(path, &svg::compare(&compared, 1000, true))?;
    }
    let width = studies.iter().map(String::len).max().unwrap_or(5).max(5);
    let mut text = format!(
        "{:<width$}  {:>8}  {:>9}  {:<24}  {:>14}  {:>10}\n",
        "study", "trials", "completed", "objective", "best", "best trial"
    );
    for s in &compared.studies {
        let objective = format!("{} ({})", s.objective.metric, s.objective.direction.name());
        let (best, at) = s
            .best
            .as_ref()
            .map_or(("–".to_owned(), "–".to_owned()), |b| {
                (svg::fmt(b.values[0]), b.number.to_string())
            });
        let _ = writeln!(
            text,
            "{:<width$}  {:>8}  {:>9}  {objective:<24}  {best:>14}  {at:>10}",
            s.name, s.trials, s.completed
        );
    }
    out(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
