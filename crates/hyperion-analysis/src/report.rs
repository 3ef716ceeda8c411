//! `hyperion report`: one self-contained HTML file — the summary, the best trials, every plot
//! that applies as inline SVG, the search space and the settings — that opens offline, with no
//! script, for a paper, a pull request or an email.

use std::fmt::Write;

use hyperion_core::{StudyView, Trial};

use crate::plots::{self, Kind, Options, param_axes};
use crate::svg::{self, escape};

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;\
padding:0 1em;color:#222}h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #eee}\
td.num{text-align:right;font-variant-numeric:tabular-nums}pre{background:#f6f6f6;padding:1em;overflow:auto}\
.note{color:#666}";

/// The report of the study in `view`, `width` pixels wide, written at `generated` (a label).
pub fn html(view: &StudyView, width: usize, generated: &str) -> String {
    let spec = view.spec();
    let counts = view.counts();
    let mut out = String::new();
    let name = escape(&spec.name);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{name} — Hyperion report</title>\
<style>{STYLE}</style></head><body><h1>Study {name}</h1><p class=\"note\">Hyperion report, {}</p>",
        escape(generated)
    );
    let objectives: Vec<String> = spec
        .objectives
        .iter()
        .map(|o| format!("{} ({})", o.metric, o.direction.name()))
        .collect();
    let _ = write!(
        out,
        "<table><tr><th>objectives</th><td>{}</td></tr><tr><th>trials</th><td>{} — {} completed, {} running, {} pending, {} pruned, {} failed</td></tr></table>",
        escape(&objectives.join(", ")),
        counts.total(),
        counts.completed,
        counts.running,
        counts.pending,
        counts.pruned,
        counts.failed
    );
    best_trials(&mut out, view);

    for kind in Kind::ALL {
        if !kind.applies_to(view) {
            continue;
        }
        let options = Options {
            width,
            ..Options::default()
        };
        let Ok(plot) = plots::plot(view, kind, &options) else {
            continue;
        };
        let _ = write!(
            out,
            "<h2>{}</h2>{}",
            title(kind),
            svg::draw(&plot, width, true)
        );
    }

    out.push_str("<h2>Search space</h2><table><tr><th>parameter</th><th>distribution</th></tr>");
    for axis in param_axes(view) {
        let d = view.distribution(&axis.name).map_or(String::new(), |d| {
            serde_json::to_string(d).unwrap_or_default()
        });
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td></tr>",
            escape(&axis.name),
            escape(&d)
        );
    }
    out.push_str("</table>");
    if let Some(settings) = view.settings() {
        let text = serde_json::to_string_pretty(settings).unwrap_or_default();
        let _ = write!(out, "<h2>Settings</h2><pre>{}</pre>", escape(&text));
    }
    out.push_str("</body></html>\n");
    out
}

fn title(kind: Kind) -> &'static str {
    match kind {
        Kind::History => "Optimization history",
        Kind::Parallel => "Parallel coordinates",
        Kind::Slice => "Slices",
        Kind::Contour => "Contour of the first two parameters",
        Kind::Intermediate => "Intermediate values",
        Kind::Pareto => "Pareto front",
        Kind::Importance => "Parameter importance",
        Kind::Timeline => "Timeline",
    }
}

/// The ten best completed trials (the Pareto front's first ten with several objectives).
fn best_trials(out: &mut String, view: &StudyView) {
    let spec = view.spec();
    let mut best: Vec<&Trial> = if spec.objectives.len() == 1 {
        let mut done: Vec<_> = plots::completed(view, 0).collect();
        plots::sort_best_first(&mut done, spec.objectives[0].direction);
        done.into_iter().map(|(t, _)| t).collect()
    } else {
        view.pareto_front()
    };
    best.truncate(10);
    if best.is_empty() {
        return;
    }
    out.push_str(
        "<h2>Best trials</h2><table><tr><th>trial</th><th>values</th><th>parameters</th></tr>",
    );
    for t in best {
        let values: Vec<String> = t.values.iter().flatten().map(|v| svg::fmt(*v)).collect();
        let params: Vec<String> = t.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = write!(
            out,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            t.number.0,
            values.join(", "),
            escape(&params.join(", "))
        );
    }
    out.push_str("</table>");
}
