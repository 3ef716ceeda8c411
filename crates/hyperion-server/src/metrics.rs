//! `/metrics` in Prometheus' text format: the studies' figures read from the store at each
//! scrape (so they are never stale), and the server's own request counts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use hyperion_core::Counts;

use crate::api::App;

/// The studies a scrape reports on, so that label sets stay bounded.
pub const MAX_STUDIES: usize = 100;

#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests by (route template, status).
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

/// Counts each request by its route template (never its path: bounded labels).
pub async fn count(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let mut requests = app
        .metrics
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    *requests.entry((route, status)).or_default() += 1;
    response
}

impl Metrics {
    pub fn render(&self, studies: &[(String, Counts, Option<f64>)], read: Duration) -> String {
        let mut text = String::new();
        family(
            &mut text,
            "hyperion_trials",
            "gauge",
            "Trials by study and state.",
        );
        for (study, c, _) in studies {
            let study = label(study);
            for (state, n) in [
                ("pending", c.pending),
                ("running", c.running),
                ("completed", c.completed),
                ("pruned", c.pruned),
                ("failed", c.failed),
            ] {
                let _ = writeln!(
                    text,
                    "hyperion_trials{{study=\"{study}\",state=\"{state}\"}} {n}"
                );
            }
        }
        // One number per study.
        let per_study: [Family; 3] = [
            (
                "hyperion_trials_running",
                "gauge",
                "Running trials by study.",
                |c| c.running,
            ),
            (
                "hyperion_trials_started_total",
                "counter",
                "Trials that started, by study (rate() gives trials started per second).",
                |c| c.total() - c.pending,
            ),
            (
                "hyperion_trials_finished_total",
                "counter",
                "Trials that finished (completed, pruned or failed), by study.",
                Counts::finished,
            ),
        ];
        for (name, kind, help, of) in per_study {
            family(&mut text, name, kind, help);
            for (study, c, _) in studies {
                let _ = writeln!(text, "{name}{{study=\"{}\"}} {}", label(study), of(c));
            }
        }
        family(
            &mut text,
            "hyperion_best_value",
            "gauge",
            "The best value of each single-objective study.",
        );
        for (study, _, best) in studies {
            if let Some(best) = best {
                let _ = writeln!(
                    text,
                    "hyperion_best_value{{study=\"{}\"}} {best}",
                    label(study)
                );
            }
        }
        family(
            &mut text,
            "hyperion_store_read_seconds",
            "gauge",
            "How long this scrape's reads of the store took.",
        );
        let _ = writeln!(text, "hyperion_store_read_seconds {}", read.as_secs_f64());
        family(
            &mut text,
            "hyperion_http_requests_total",
            "counter",
            "HTTP requests by route and status.",
        );
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, status), n) in requests.iter() {
            let _ = writeln!(
                text,
                "hyperion_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                label(route)
            );
        }
        text
    }
}

/// A metric family with one number per study: name, type, help, the number.
type Family = (&'static str, &'static str, &'static str, fn(&Counts) -> u64);

fn family(text: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
