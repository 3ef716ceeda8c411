//! The routes: `/api/v1/…` (documented in `docs/http-api.md`), the event streams, `/metrics`
//! and the dashboard's files.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream, StreamExt};
use hyperion_core::{StudySpec, Trial, TrialNumber};
use hyperion_runtime::{Outcome, Verdict};
use hyperion_store::{Store, StoreError};
use serde_json::{Value, json};

use hyperion_analysis::plots::{self, Kind, Options, PlotError};

use crate::guard::Access;
use crate::metrics::Metrics;
use crate::tracked::{Studies, Tip, Tracked};

/// What every handler shares.
#[derive(Debug)]
pub struct App {
    pub studies: Arc<Studies>,
    pub access: Access,
    pub read_only: bool,
    pub metrics: Metrics,
}

impl App {
    pub fn new(store: Arc<dyn Store>, access: Access, read_only: bool) -> Self {
        App {
            studies: Arc::new(Studies::new(store)),
            access,
            read_only,
            metrics: Metrics::default(),
        }
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.studies.store
    }
}

pub fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/studies", get(studies))
        .route("/studies/{study}", get(study))
        .route("/studies/{study}/trials", get(trials))
        .route("/studies/{study}/trials/{number}", get(trial))
        .route("/studies/{study}/plots/{kind}", get(plot))
        .route("/compare", get(compare))
        .route("/studies/{study}/events", get(events))
        .route("/studies/{study}/ask", post(ask))
        .route("/studies/{study}/trials/{number}/report", post(report))
        .route("/studies/{study}/trials/{number}/tell", post(tell))
        .route("/studies/{study}/stop", post(stop))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_route",
                "no such API route (see docs/http-api.md)",
            )
        });
    Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(crate::assets::routes())
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::metrics::count,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::guard::check,
        ))
        .with_state(app)
}

/// An error as the API answers it: a status and `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.status, self.code, self.message)
    }
}

pub fn error(status: StatusCode, code: &str, message: String) -> Response {
    let body = json!({"error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let (status, code) = match &e {
            StoreError::StudyNotFound { .. } | StoreError::StudyIdNotFound(_) => {
                (StatusCode::NOT_FOUND, "study_not_found")
            }
            StoreError::TrialNotFound { .. } => (StatusCode::NOT_FOUND, "trial_not_found"),
            StoreError::NotRunning { .. } => (StatusCode::CONFLICT, "trial_not_running"),
            StoreError::InvalidValues { .. } | StoreError::Param(_) => {
                (StatusCode::BAD_REQUEST, "invalid_values")
            }
            StoreError::Server { .. } | StoreError::Backend { .. } | StoreError::Open { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "store_error"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<hyperion_runtime::Error> for ApiError {
    fn from(e: hyperion_runtime::Error) -> Self {
        match e {
            hyperion_runtime::Error::Store(e) => e.into(),
            hyperion_runtime::Error::BudgetSpent { .. } | hyperion_runtime::Error::Exhausted => {
                ApiError::new(StatusCode::CONFLICT, "budget_spent", e.to_string())
            }
            hyperion_runtime::Error::Param(_) => ApiError::bad(e.to_string()),
            e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "error", e.to_string()),
        }
    }
}

type Reply = Result<Response, ApiError>;

/// Runs store work off the async threads (store calls block).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "panic",
            format!("the request failed: {e}"),
        ))
    })
}

fn json_reply(value: Value) -> Reply {
    Ok(axum::Json(value).into_response())
}

/// The query's pairs, in order; a malformed query is a 400 that says so.
type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

fn pairs(query: Pairs) -> Result<Vec<(String, String)>, ApiError> {
    query
        .map(|Query(pairs)| pairs)
        .map_err(|e| ApiError::bad(format!("malformed query string: {e}")))
}

fn number_arg<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ApiError> {
    value.parse().map_err(|_| {
        ApiError::bad(format!(
            "query parameter `{key}`: `{value}` is not a number of the expected kind"
        ))
    })
}

// --- studies -------------------------------------------------------------------------------

async fn studies(State(app): State<Arc<App>>) -> Reply {
    let store = app.store().clone();
    let list = blocking(move || {
        let mut list = Vec::new();
        for record in store.studies()? {
            list.push(summary(&*store, &record)?);
        }
        Ok(list)
    })
    .await?;
    json_reply(json!(list))
}

/// A study in the list: from the store's indexes, without reading its trials.
fn summary(store: &dyn Store, record: &hyperion_store::StudyRecord) -> Result<Value, ApiError> {
    let counts = store.counts(record.id)?;
    let best = match record.spec.objectives.len() {
        1 => store.best_trial(record.id)?.map(|t| brief(&t)),
        _ => None,
    };
    Ok(json!({
        "name": record.spec.name,
        "objectives": record.spec.objectives,
        "state": if counts.running > 0 { "running" } else { "idle" },
        "counts": counts_json(&counts),
        "best": best,
        "created_at": record.created_at.rfc3339(),
        "updated_at": store.last_activity(record.id)?.map(|at| at.rfc3339()),
    }))
}

fn counts_json(c: &hyperion_core::Counts) -> Value {
    json!({
        "total": c.total(),
        "pending": c.pending,
        "running": c.running,
        "completed": c.completed,
        "pruned": c.pruned,
        "failed": c.failed,
    })
}

/// A trial in a summary: its number, values and params.
fn brief(t: &Trial) -> Value {
    json!({"number": t.number, "values": t.values, "params": &*t.params})
}

async fn tracked(app: &Arc<App>, name: String) -> Result<Arc<Tracked>, ApiError> {
    let studies = app.studies.clone();
    blocking(move || Ok(studies.get(&name)?)).await
}

async fn study(State(app): State<Arc<App>>, Path(name): Path<String>) -> Reply {
    let tracked = tracked(&app, name).await?;
    let folded = tracked.folded();
    let view = &folded.view;
    let spec = view.spec();
    let best: Vec<Value> = match spec.objectives.len() {
        1 => view.best_trial().map(brief).into_iter().collect(),
        _ => view
            .pareto_front()
            .into_iter()
            .take(1000)
            .map(brief)
            .collect(),
    };
    let mut params: Vec<Value> = spec
        .space
        .params()
        .iter()
        .map(|p| json!({"name": p.name, "distribution": p.distribution}))
        .collect();
    for (name, distribution) in view.registered() {
        if spec.space.params().iter().all(|p| &p.name != name) {
            params.push(json!({"name": name, "distribution": distribution}));
        }
    }
    json_reply(json!({
        "name": spec.name,
        "objectives": spec.objectives,
        "params": params,
        "spec": spec,
        "settings": view.settings(),
        "counts": counts_json(&view.counts()),
        "best": best,
        "seq": view.cursor(),
        "created_at": tracked.record.created_at.rfc3339(),
        "updated_at": folded.last_at.map(|at| at.rfc3339()),
    }))
}

// --- trials --------------------------------------------------------------------------------

/// What a trial is sorted or filtered by.
#[derive(Clone, Debug)]
enum Key {
    Number,
    Value,
    Duration,
    Param(String),
    Metric(String),
}

impl Key {
    fn parse(text: &str) -> Result<Key, ApiError> {
        Ok(match text {
            "number" => Key::Number,
            "value" => Key::Value,
            "duration" => Key::Duration,
            _ => match text.split_once(':') {
                Some(("param", name)) => Key::Param(name.to_owned()),
                Some(("metric", name)) => Key::Metric(name.to_owned()),
                _ => {
                    return Err(ApiError::bad(format!(
                        "`{text}` is not a key: use number, value, duration, param:NAME or \
                         metric:NAME"
                    )));
                }
            },
        })
    }

    /// The trial's number for this key (a categorical by its text's order is not a number:
    /// `None`, as for an absent value).
    fn of(&self, spec: &StudySpec, t: &Trial) -> Option<f64> {
        match self {
            Key::Number => Some(t.number.0 as f64),
            Key::Value => t.value(),
            Key::Duration => t.duration().map(|d| d.as_secs_f64()),
            Key::Param(name) => t.params.get(name).and_then(|v| v.as_f64()),
            Key::Metric(name) => t.metrics.get(name).copied().or_else(|| {
                let i = spec.objectives.iter().position(|o| &o.metric == name)?;
                t.values.as_ref()?.get(i).copied()
            }),
        }
    }
}

/// A page of trials, filtered and sorted on the server.
#[derive(Debug)]
struct TrialQuery {
    states: Option<Vec<String>>,
    sort: Key,
    descending: bool,
    offset: usize,
    limit: usize,
    ranges: Vec<(Key, Option<f64>, Option<f64>)>,
}

const MAX_PAGE: usize = 1000;

impl TrialQuery {
    fn parse(pairs: &[(String, String)]) -> Result<TrialQuery, ApiError> {
        let mut q = TrialQuery {
            states: None,
            sort: Key::Number,
            descending: false,
            offset: 0,
            limit: 50,
            ranges: Vec::new(),
        };
        for (key, value) in pairs {
            match key.as_str() {
                "state" => {
                    let states: Vec<String> = value.split(',').map(str::to_owned).collect();
                    for s in &states {
                        if !["pending", "running", "completed", "pruned", "failed"]
                            .contains(&s.as_str())
                        {
                            return Err(ApiError::bad(format!(
                                "query parameter `state`: `{s}` is not a state (pending, \
                                 running, completed, pruned, failed)"
                            )));
                        }
                    }
                    q.states = Some(states);
                }
                "sort" => q.sort = Key::parse(value)?,
                "order" => {
                    q.descending = match value.as_str() {
                        "asc" => false,
                        "desc" => true,
                        _ => {
                            return Err(ApiError::bad(format!(
                                "query parameter `order`: `{value}` is neither asc nor desc"
                            )));
                        }
                    }
                }
                "offset" => q.offset = number_arg(key, value)?,
                "limit" => {
                    q.limit = number_arg(key, value)?;
                    if q.limit > MAX_PAGE {
                        return Err(ApiError::bad(format!(
                            "query parameter `limit`: at most {MAX_PAGE} trials a page"
                        )));
                    }
                }
                "range" => q.ranges.push(range(value)?),
                "token" => {}
                _ => {
                    return Err(ApiError::bad(format!(
                        "unknown query parameter `{key}` (state, sort, order, offset, limit, \
                         range)"
                    )));
                }
            }
        }
        Ok(q)
    }

    fn keeps(&self, spec: &StudySpec, t: &Trial) -> bool {
        self.states
            .as_ref()
            .is_none_or(|s| s.iter().any(|s| s == t.state.name()))
            && self.ranges.iter().all(|(key, low, high)| {
                key.of(spec, t).is_some_and(|v| {
                    low.is_none_or(|low| v >= low) && high.is_none_or(|high| v <= high)
                })
            })
    }
}

/// `KEY:LOW:HIGH`, either bound may be empty: `param:lr:0.001:0.1`, `value::0.5`.
fn range(text: &str) -> Result<(Key, Option<f64>, Option<f64>), ApiError> {
    let wrong = || {
        ApiError::bad(format!(
            "query parameter `range`: `{text}` is not KEY:LOW:HIGH (e.g. param:lr:0.001:0.1 or \
             value::0.5)"
        ))
    };
    let (rest, high) = text.rsplit_once(':').ok_or_else(wrong)?;
    let (key, low) = rest.rsplit_once(':').ok_or_else(wrong)?;
    let bound = |b: &str| -> Result<Option<f64>, ApiError> {
        match b {
            "" => Ok(None),
            _ => b.parse().map(Some).map_err(|_| wrong()),
        }
    };
    Ok((Key::parse(key)?, bound(low)?, bound(high)?))
}

async fn trials(State(app): State<Arc<App>>, Path(name): Path<String>, query: Pairs) -> Reply {
    let query = TrialQuery::parse(&pairs(query)?)?;
    let tracked = tracked(&app, name).await?;
    let folded = tracked.folded();
    let view = &folded.view;
    let spec = view.spec();
    let mut matched: Vec<(Option<f64>, &Trial)> = view
        .trials()
        .iter()
        .filter(|t| query.keeps(spec, t))
        .map(|t| (query.sort.of(spec, t), t))
        .collect();
    if !matches!(query.sort, Key::Number) || query.descending {
        // Trials without the key last, either way; ties by number.
        matched.sort_by(|(a, ta), (b, tb)| {
            let by_key = match (a, b) {
                (Some(a), Some(b)) if query.descending => b.total_cmp(a),
                (Some(a), Some(b)) => a.total_cmp(b),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            by_key.then(ta.number.cmp(&tb.number))
        });
    }
    let page: Vec<Value> = matched
        .iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|(_, t)| listed(spec, t))
        .collect();
    json_reply(json!({
        "total": matched.len(),
        "offset": query.offset,
        "limit": query.limit,
        "seq": view.cursor(),
        "trials": page,
    }))
}

/// A trial in a listing: its record without the learning curve (its length instead).
fn listed(spec: &StudySpec, t: &Trial) -> Value {
    let mut record = t.record(spec);
    if let Some(fields) = record.as_object_mut() {
        fields.remove("intermediate");
        fields.insert("steps".into(), json!(t.intermediate.len()));
    }
    record
}

async fn trial(State(app): State<Arc<App>>, Path((name, number)): Path<(String, String)>) -> Reply {
    let number = trial_number(&number)?;
    let tracked = tracked(&app, name).await?;
    let folded = tracked.folded();
    let spec = folded.view.spec();
    let t = folded
        .view
        .trial(number)
        .ok_or(StoreError::TrialNotFound { number })?;
    let mut record = t.record(spec);
    let launch = t.launch.as_ref().or(folded.view.launch(number));
    record["host"] = json!(launch.map(|l| &l.host));
    record["directory"] = json!(launch.and_then(|l| l.dir.as_ref()));
    // Its stderr can be read when it ran on this machine.
    let here = launch.and_then(hyperion_runtime::protocol::dir_here);
    record["stderr_tail"] =
        json!(here.and_then(|d| hyperion_runtime::protocol::stderr_tail(d, 20)));
    record["job"] = json!(launch.and_then(|l| l.job.as_ref()));
    record["decisions"] = json!(folded.decisions.get(&Some(number)));
    record["stop_reason"] = json!(folded.view.stop_reason(number));
    json_reply(record)
}

fn trial_number(text: &str) -> Result<TrialNumber, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad(format!("`{text}` is not a trial number (0, 1, 2, …)")))
}

// --- plots ---------------------------------------------------------------------------------

/// `plots/{kind}`: the plot's data as JSON, or drawn (`format=svg`) by the same code as
/// `hyperion plot`, so the dashboard and the files cannot disagree.
async fn plot(
    State(app): State<Arc<App>>,
    Path((name, kind)): Path<(String, String)>,
    query: Pairs,
) -> Result<Response, ApiError> {
    let kind: Kind = kind
        .parse()
        .map_err(|e: PlotError| ApiError::bad(e.to_string()))?;
    let mut options = Options::default();
    let mut svg = false;
    for (key, value) in pairs(query)? {
        match key.as_str() {
            "objective" => options.objective = number_arg(&key, &value)?,
            "width" => options.width = number_arg::<usize>(&key, &value)?.clamp(10, 10_000),
            "x" => options.x = Some(value),
            "y" => options.y = Some(value),
            "format" => {
                svg = match value.as_str() {
                    "svg" => true,
                    "json" => false,
                    _ => {
                        return Err(ApiError::bad(format!(
                            "query parameter `format`: `{value}` is not json or svg"
                        )));
                    }
                }
            }
            "token" => {}
            _ => {
                return Err(ApiError::bad(format!(
                    "unknown query parameter `{key}` (objective, width, x, y, format)"
                )));
            }
        }
    }
    let tracked = tracked(&app, name).await?;
    // Plots take milliseconds at 10⁵ trials: off the async threads, like store calls.
    blocking(move || {
        let mut folded = tracked.folded();
        let key = format!("{kind}|{options:?}|{svg}");
        let cursor = folded.view.cursor();
        let body = match folded.drawn.get(&key) {
            Some((at, body)) if *at == cursor => body.clone(),
            _ => {
                let drawn = plots::plot(&folded.view, kind, &options)
                    .map_err(|e| ApiError::bad(e.to_string()))?;
                let body: Arc<str> = if svg {
                    hyperion_analysis::svg::draw(&drawn, options.width, false).into()
                } else {
                    let mut value = serde_json::to_value(&drawn).expect("plot data is JSON");
                    value["seq"] = json!(cursor);
                    value.to_string().into()
                };
                if folded.drawn.len() >= 64 {
                    folded.drawn.clear();
                }
                folded.drawn.insert(key, (cursor, body.clone()));
                body
            }
        };
        let content = if svg {
            "image/svg+xml; charset=utf-8"
        } else {
            "application/json"
        };
        Ok(([(header::CONTENT_TYPE, content)], body.to_string()).into_response())
    })
    .await
}

/// `format=svg` (a drawing) or `format=json` (the data, the default).
fn is_svg(format: &str) -> Result<bool, ApiError> {
    match format {
        "svg" => Ok(true),
        "json" => Ok(false),
        _ => Err(ApiError::bad(format!(
            "query parameter `format`: `{format}` is not json or svg"
        ))),
    }
}

/// `compare?study=A&study=B[&format=svg]`: studies side by side (`hyperion compare` in the
/// terminal).
async fn compare(State(app): State<Arc<App>>, query: Pairs) -> Reply {
    let mut names = Vec::new();
    let (mut svg, mut width) = (false, 1000usize);
    for (key, value) in pairs(query)? {
        match key.as_str() {
            "study" => names.push(value),
            "width" => width = number_arg::<usize>(&key, &value)?.clamp(10, 10_000),
            "format" => svg = is_svg(&value)?,
            "token" => {}
            _ => {
                return Err(ApiError::bad(format!(
                    "unknown query parameter `{key}` (study, width, format)"
                )));
            }
        }
    }
    if names.is_empty() {
        return Err(ApiError::bad(
            "name the studies to compare: `?study=A&study=B`",
        ));
    }
    let mut tracked_studies = Vec::new();
    for name in names {
        tracked_studies.push(tracked(&app, name).await?);
    }
    blocking(move || {
        // One study locked at a time: two comparisons in other orders cannot deadlock.
        let studies = tracked_studies
            .iter()
            .map(|t| plots::compared(&t.folded().view))
            .collect();
        let compared = plots::Compare { studies };
        if svg {
            let body = hyperion_analysis::svg::compare(&compared, width, false);
            return Ok((
                [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
                body,
            )
                .into_response());
        }
        Ok(axum::Json(serde_json::to_value(&compared).expect("plot data is JSON")).into_response())
    })
    .await
}

// --- live events ---------------------------------------------------------------------------

/// Server-Sent Events: every change after the client's cursor (`Last-Event-ID`, else `since`,
/// else now), each with its sequence number as the event id, so a reconnect resumes exactly.
async fn events(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    query: Pairs,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let mut since = None;
    for (key, value) in pairs(query)? {
        match key.as_str() {
            "since" => since = Some(number_arg::<u64>(&key, &value)?),
            "token" => {}
            _ => {
                return Err(ApiError::bad(format!(
                    "unknown query parameter `{key}` (since)"
                )));
            }
        }
    }
    let last_event = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiError::bad(format!("Last-Event-ID `{v}` is not a sequence number")))
        })
        .transpose()?;
    let tracked = tracked(&app, name).await?;
    let cursor = last_event
        .or(since)
        .unwrap_or_else(|| tracked.folded().view.cursor());
    let following = Following {
        follow: tracked.follow(),
        tracked,
        cursor,
        store: app.store().clone(),
        ended: false,
    };
    let events = stream::unfold(following, Following::next)
        .flat_map(|events| stream::iter(events.into_iter().map(Ok)));
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// An event stream's place in its study's log.
struct Following {
    tracked: Arc<Tracked>,
    follow: tokio::sync::watch::Receiver<Tip>,
    /// The last sequence number sent.
    cursor: u64,
    store: Arc<dyn Store>,
    ended: bool,
}

impl Following {
    /// The next events: the changes after the cursor once there are some, or the study's end.
    async fn next(mut self) -> Option<(Vec<Event>, Following)> {
        if self.ended {
            return None;
        }
        loop {
            let tip = *self.follow.borrow_and_update();
            match tip {
                Tip::Gone => {
                    let event = Event::default()
                        .event("study_deleted")
                        .data(json!({"study": self.tracked.record.spec.name}).to_string());
                    self.ended = true;
                    return Some((vec![event], self));
                }
                Tip::At(seq) if seq > self.cursor => {
                    let changes = match self.tracked.recent_since(self.cursor) {
                        Some(changes) => changes,
                        // Older than what memory keeps: from the store. If it fails, the
                        // stream ends and the client reconnects from its last event.
                        None => {
                            let (store, id, cursor) =
                                (self.store.clone(), self.tracked.id(), self.cursor);
                            let read = tokio::task::spawn_blocking(move || {
                                store.changes_since(id, cursor)
                            });
                            let changes = read.await.ok()?.ok()?;
                            changes.into_iter().map(Arc::new).collect()
                        }
                    };
                    let events = changes
                        .iter()
                        .filter(|c| c.seq > self.cursor)
                        .map(|c| {
                            Event::default()
                                .id(c.seq.to_string())
                                .event("change")
                                .data(serde_json::to_string(&**c).unwrap_or_default())
                        })
                        .collect();
                    self.cursor = changes
                        .last()
                        .map_or(self.cursor, |c| c.seq.max(self.cursor));
                    return Some((events, self));
                }
                Tip::At(_) => self.follow.changed().await.ok()?,
            }
        }
    }
}

// --- writes --------------------------------------------------------------------------------

/// The JSON body of a write; a body that is not a JSON object is a 400 (415 without the JSON
/// content type, which also keeps other sites' forms out).
fn body(headers: &HeaderMap, bytes: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type && !bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not_json",
            "send the body as Content-Type: application/json",
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad(format!("the body is not valid JSON: {e}"))),
    }
}

fn field_f64s(body: &serde_json::Map<String, Value>) -> Result<Option<Vec<f64>>, ApiError> {
    let as_f64 = |v: &Value, what: &str| {
        v.as_f64()
            .ok_or_else(|| ApiError::bad(format!("`{what}`: `{v}` is not a number")))
    };
    match (body.get("value"), body.get("values")) {
        (Some(v), None) => Ok(Some(vec![as_f64(v, "value")?])),
        (None, Some(Value::Array(vs))) => vs
            .iter()
            .map(|v| as_f64(v, "values"))
            .collect::<Result<_, _>>()
            .map(Some),
        (None, Some(v)) => Err(ApiError::bad(format!("`values`: `{v}` is not a list"))),
        (Some(_), Some(_)) => Err(ApiError::bad("give `value` or `values`, not both")),
        (None, None) => Ok(None),
    }
}

async fn write<T: Send + 'static>(
    app: &Arc<App>,
    name: String,
    f: impl FnOnce(&hyperion_runtime::Study) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let studies = app.studies.clone();
    blocking(move || {
        let tracked = studies.get(&name)?;
        let study = tracked.study(&studies.store)?;
        let result = f(&study);
        // What was written is in the view the next read gets, and on the streams now.
        let _ = studies.sync(&tracked);
        result
    })
    .await
}

async fn ask(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Reply {
    let body = body(&headers, &bytes)?;
    if let Some(key) = body.keys().next() {
        return Err(ApiError::bad(format!("ask takes no field (`{key}` given)")));
    }
    let (number, params) = write(&app, name, |study| {
        let trial = study.ask()?;
        Ok((trial.number(), trial.params().clone()))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"number": number, "params": params})),
    )
        .into_response())
}

async fn report(
    State(app): State<Arc<App>>,
    Path((name, number)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Reply {
    let number = trial_number(&number)?;
    let body = body(&headers, &bytes)?;
    let step = body
        .get("step")
        .and_then(Value::as_u64)
        .ok_or_else(|| ApiError::bad("`step`: give the step (0, 1, 2, …) the value is at"))?;
    let values = field_f64s(&body)?.ok_or_else(|| ApiError::bad("give `value` (or `values`)"))?;
    let verdict = write(&app, name, move |study| {
        let verdict = study.report(number, step, &values)?;
        study.renew_lease(number)?;
        Ok(verdict)
    })
    .await?;
    json_reply(match verdict {
        Verdict::Continue => json!({"decision": "continue"}),
        Verdict::Stop { reason, .. } => json!({"decision": "stop", "reason": reason}),
    })
}

async fn tell(
    State(app): State<Arc<App>>,
    Path((name, number)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Reply {
    let number = trial_number(&number)?;
    let body = body(&headers, &bytes)?;
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let outcome = match (
        field_f64s(&body)?,
        body.get("state").and_then(Value::as_str),
    ) {
        (Some(values), None | Some("completed")) => Outcome::Completed(values),
        (None, Some("failed")) => Outcome::Failed { error: message },
        (None, Some("pruned")) => Outcome::Pruned { reason: message },
        _ => {
            return Err(ApiError::bad(
                "give `value` or `values` (completed), or `state`: \"failed\" or \"pruned\" \
                 (with a `message`)",
            ));
        }
    };
    let trial = write(&app, name.clone(), move |study| {
        Ok(study.tell(number, outcome)?)
    })
    .await?;
    json_reply(json!({"number": trial.number, "state": trial.state.name(), "values": trial.values}))
}

async fn stop(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Reply {
    let body = body(&headers, &bytes)?;
    let kill = match body.get("kill") {
        None => false,
        Some(Value::Bool(kill)) => *kill,
        Some(v) => return Err(ApiError::bad(format!("`kill`: `{v}` is not true or false"))),
    };
    let cancelled = write(&app, name, move |study| {
        study.request(
            kill,
            if kill {
                "hyperion dashboard (kill)"
            } else {
                "hyperion dashboard"
            },
        )?;
        // Jobs whose run is gone have nobody to obey the request.
        Ok(if kill {
            study.cancel_orphaned_jobs().unwrap_or_default()
        } else {
            Vec::new()
        })
    })
    .await?;
    json_reply(json!({"stopping": true, "kill": kill, "cancelled_jobs": cancelled}))
}

// --- metrics -------------------------------------------------------------------------------

async fn metrics(State(app): State<Arc<App>>) -> Reply {
    let started = Instant::now();
    let store = app.store().clone();
    let studies = blocking(move || {
        let mut all = Vec::new();
        for record in store
            .studies()?
            .into_iter()
            .take(crate::metrics::MAX_STUDIES)
        {
            let counts = store.counts(record.id)?;
            let best = match record.spec.objectives.len() {
                1 => store.best_trial(record.id)?.and_then(|t| t.value()),
                _ => None,
            };
            all.push((record.spec.name, counts, best));
        }
        Ok(all)
    })
    .await?;
    let text = app.metrics.render(&studies, started.elapsed());
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
