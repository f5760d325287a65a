//! The JSON API (`/api/v1/…`), `/readyz` and `/metrics`. The views are
//! built by plain functions over [`Telemetry`], shared with the dashboard's
//! snapshot and the replay report. Every time is RFC 3339.

use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use crate::alert::deliver::SinkReport;
use crate::alert::rfc3339;
use crate::detect::ServiceStatus;
use crate::events::pipeline::SourceCounts;
use crate::state::outbox::{DeadLetters, parse_letter_id};
use crate::telemetry::Telemetry;
use crate::telemetry::board::IncidentRecord;

/// Longest series the API returns, in minutes.
pub const MAX_MINUTES: usize = 180;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/incidents", get(incidents))
        .route("/api/v1/incidents/{id}", get(incident))
        .route("/api/v1/services", get(services))
        .route("/api/v1/services/{name}/series", get(series))
        .route("/api/v1/sources", get(sources))
        .route("/api/v1/outbox", get(outbox))
        // The only route that changes something: JSON from this origin only
        // (after the token, before the handler; other methods get 405).
        .route(
            "/api/v1/outbox/retry",
            post(retry).route_layer(axum::middleware::from_fn(super::guard::json_same_origin)),
        )
}

/// A query string read as `T`; one that does not fit is a JSON error like
/// every other (axum's own rejection is plain text: `?minutes=-1` and
/// `?active=maybe` answered `text/plain`).
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(query)) => Ok(ApiQuery(query)),
            Err(rejection) => Err(error(rejection.status(), &truncate(&rejection.body_text()))),
        }
    }
}

/// A path parameter, with a JSON error when it cannot be read (it is not
/// UTF-8 once decoded).
pub struct ApiPath<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(error(rejection.status(), &truncate(&rejection.body_text()))),
        }
    }
}

/// A JSON error body: `{"error": "..."}`.
pub fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.telemetry.readiness() {
        Ok(()) => axum::Json(json!({ "ready": true })).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "ready": false, "reason": reason })),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let telemetry = state.telemetry.clone();
    // Reading the store and /proc is blocking work.
    let rendered = tokio::task::spawn_blocking(move || telemetry.metrics.render(&telemetry)).await;
    match rendered {
        Ok(Ok(text)) => {
            let mut response = text.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics",
        ),
    }
}

/// Unknown keys are refused, as for [`OutboxQuery`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentsQuery {
    state: Option<String>,
}

async fn incidents(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<IncidentsQuery>,
) -> Response {
    let all = match query.state.as_deref() {
        None | Some("open") => false,
        Some("all") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("state must be open or all, not {:?}", truncate(other)),
            );
        }
    };
    let board = state.telemetry.board();
    let list: Vec<Value> = board
        .incidents(all)
        .into_iter()
        .map(incident_summary)
        .collect();
    axum::Json(json!({ "incidents": list })).into_response()
}

async fn incident(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Response {
    let board = state.telemetry.board();
    match board.incident(&id) {
        Some(record) => axum::Json(record).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("no incident {:?}", truncate(&id)),
        ),
    }
}

/// Unknown keys are refused, as for [`OutboxQuery`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServicesQuery {
    active: Option<bool>,
}

async fn services(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ServicesQuery>,
) -> Response {
    let list = service_views(&state.telemetry, query.active.unwrap_or(false));
    axum::Json(json!({ "services": list })).into_response()
}

/// Unknown keys are refused, as for [`OutboxQuery`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesQuery {
    minutes: Option<usize>,
}

async fn series(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<SeriesQuery>,
) -> Response {
    // A length outside the range is refused, not clamped: `?minutes=0`
    // answered one minute, as if that were what was asked.
    let minutes = query.minutes.unwrap_or(MAX_MINUTES);
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("minutes must be 1 to {MAX_MINUTES}, not {minutes}"),
        );
    }
    let board = state.telemetry.board();
    match board.series(&name, minutes) {
        Some(points) => axum::Json(json!({
            "service": name,
            "minutes": points.len(),
            "points": points,
        }))
        .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("no series for {:?} (not seen recently)", truncate(&name)),
        ),
    }
}

async fn sources(State(state): State<AppState>) -> Response {
    axum::Json(json!({ "sources": source_views(&state.telemetry) })).into_response()
}

/// Dead letters on a page of `/api/v1/outbox` unless `limit` says.
pub const LETTERS_PER_PAGE: usize = 100;
/// The most `limit` may ask for.
pub const MAX_LETTERS_PER_PAGE: usize = 1000;

/// `/api/v1/outbox?limit=N&after=SINK:SEQ`. Unknown keys are refused: a
/// misspelt `limit` silently served the default page.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboxQuery {
    limit: Option<usize>,
    after: Option<String>,
}

/// Which dead letters a view lists: none (the dashboard: counts only), or
/// a page of at most `limit` after the letter `after`.
#[derive(Debug, Clone, PartialEq)]
pub enum Letters {
    None,
    Page {
        after: Option<(String, u64)>,
        limit: usize,
    },
}

async fn outbox(State(state): State<AppState>, ApiQuery(query): ApiQuery<OutboxQuery>) -> Response {
    let limit = query.limit.unwrap_or(LETTERS_PER_PAGE);
    if !(1..=MAX_LETTERS_PER_PAGE).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("limit must be 1 to {MAX_LETTERS_PER_PAGE}, not {limit}"),
        );
    }
    let after = match query.after.as_deref().map(parse_letter_id) {
        None => None,
        Some(Some((sink, seq))) => Some((sink.to_owned(), seq)),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "after must be a dead letter's id, SINK:SEQ, not {:?}",
                    truncate(query.after.as_deref().unwrap_or_default())
                ),
            );
        }
    };
    let telemetry = state.telemetry.clone();
    let letters = Letters::Page { after, limit };
    match tokio::task::spawn_blocking(move || outbox_view(&telemetry, &letters)).await {
        Ok(Ok(view)) => axum::Json(view).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the outbox reader failed",
        ),
    }
}

/// Unknown fields are refused: a misspelt `{"ID":…}` or `{"ids":…}` read
/// as no id at all would re-queue every dead letter (duplicate pages).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RetryBody {
    /// `SINK:SEQ` as `alerts dead` and `/api/v1/outbox` show; all if absent.
    /// `null` is refused, not read as absent: a client whose selection is
    /// unset sends `{"id":null}` and meant one letter, not every one.
    #[serde(default, deserialize_with = "an_id")]
    id: Option<String>,
}

/// A present `id` is a string (`Option`'s own reading takes `null` for
/// "absent").
fn an_id<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    String::deserialize(deserializer).map(Some)
}

/// The body is JSON (the guard has checked the type) or empty, for all.
async fn retry(
    State(state): State<AppState>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), &truncate(&rejection.body_text())),
    };
    let id = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<RetryBody>(&body) {
            Ok(RetryBody { id: Some(id) }) if parse_letter_id(&id).is_none() => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "id must be a dead letter's id, SINK:SEQ, not {:?}",
                        truncate(&id)
                    ),
                );
            }
            Ok(body) => body.id,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("the body must be {{\"id\":\"SINK:SEQ\"}} or {{}}: {e}"),
                );
            }
        }
    };
    let Some(probe) = state.telemetry.sinks() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the sinks are not running");
    };
    let requeued = {
        let id = id.clone();
        let configured: Vec<String> = probe.reports().into_iter().map(|r| r.name).collect();
        tokio::task::spawn_blocking(move || {
            probe.outbox().requeue(id.as_deref(), Some(&configured))
        })
        .await
    };
    match requeued {
        Ok(Ok(moved)) => {
            if let Some(id) = id.filter(|_| moved == 0) {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!("no dead letter {:?}", truncate(&id)),
                );
            }
            if let Some(wake) = &state.wake {
                wake.notify_waiters();
            }
            tracing::info!(requeued = moved, "dead letters re-queued through the API");
            axum::Json(json!({ "requeued": moved })).into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the re-queue failed"),
    }
}

/// At most 200 characters of something a client sent, for an error message.
/// A requester's text quoted back in an error, cut (with `…` when cut).
fn truncate(s: &str) -> String {
    crate::text::truncate_chars(s, 200)
}

/// An incident without its alerts and chart (the list view).
pub fn incident_summary(record: &IncidentRecord) -> Value {
    let mut value = serde_json::to_value(record).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.remove("alerts");
        map.remove("series");
        map.insert("alert_count".into(), json!(record.alerts.len()));
    }
    value
}

/// One service as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    pub service: String,
    pub reports: u64,
    pub authors: u64,
    pub rate_per_min: f64,
    pub expected_per_min: f64,
    pub fire_per_min: f64,
    pub p_value: f64,
    pub basis: crate::detect::Basis,
    pub last_report: String,
    pub discovered: bool,
    /// The open incident's id and severity, if any.
    pub incident: Option<String>,
    pub severity: Option<String>,
}

impl From<&ServiceStatus> for ServiceView {
    fn from(s: &ServiceStatus) -> Self {
        let round = crate::numbers::round3;
        ServiceView {
            service: s.service.clone(),
            reports: s.reports,
            authors: s.authors,
            rate_per_min: round(s.rate_per_min),
            expected_per_min: round(s.expected_per_min),
            fire_per_min: round(s.fire_per_min),
            p_value: s.p_value,
            basis: s.basis,
            last_report: rfc3339(s.last_report),
            discovered: s.discovered,
            incident: s.incident.as_ref().map(|i| i.id.clone()),
            severity: s.incident.as_ref().map(|i| i.severity.as_str().to_owned()),
        }
    }
}

/// The tracked services, busiest first; `active`: only those with reports
/// in the window or an open incident.
pub fn service_views(telemetry: &Telemetry, active: bool) -> Vec<ServiceView> {
    telemetry
        .board()
        .services()
        .into_iter()
        .filter(|s| !active || s.authors > 0 || s.incident.is_some())
        .map(ServiceView::from)
        .collect()
}

/// Live sources (daemon) with their connection counters, the health rule
/// each is judged by, why the last connection failed (one bounded line, quoting the server perhaps:
/// JSON-escaped here like every string) and pipeline counts; for a
/// replay, the files read.
pub fn source_views(telemetry: &Telemetry) -> Vec<Value> {
    let now = crate::wall::now_us();
    let live = telemetry.sources();
    if live.is_empty() {
        return telemetry
            .stats()
            .by_source
            .iter()
            .map(|(name, counts)| {
                json!({ "name": name, "kind": "recording", "connected": null, "pipeline": counts })
            })
            .collect();
    }
    let global = telemetry.health();
    live.iter()
        .map(|source| {
            let s = source.snapshot();
            let rule = source.rule(&global);
            let counts: SourceCounts = telemetry.source_counts(&source.name);
            json!({
                "name": source.name,
                "kind": "live",
                "connected": s.connected,
                "received_frames": s.frames,
                "last_frame_at": s.last_frame_wall.map(rfc3339),
                "silent_seconds": source.silent_for_us() as f64 / 1e6,
                "processed_through": s.processed.map(rfc3339),
                "lag_seconds": s.processed.map(|p| ((now - p) as f64 / 1e6).max(0.0)),
                "reconnects": s.reconnects,
                "stalls": s.stalls,
                "server_errors": s.server_errors,
                "server_messages": s.messages,
                "refusals": s.refusals,
                "last_failure": source.last_failure(),
                "foreign_messages": s.foreign,
                "oversized_frames": s.oversized,
                "binary_frames": s.binary,
                // The rule this source is judged by (its own keys over
                // `[health]`): the page said "silent" by the global one.
                "health": {
                    "silence_secs": rule.silence_secs,
                    "lag_secs": rule.lag_secs,
                    "grace_secs": rule.grace_secs,
                    "calm_secs": rule.calm_us() / crate::MICROS_PER_SEC,
                },
                "pipeline": counts,
            })
        })
        .collect()
}

/// Depth and counters per sink (`dead_letter_count`: every dead letter
/// it has), with a page of its dead letters as `letters` asks: the page
/// runs through the sinks in order, and `dead_letters_total`,
/// `dead_letters_shown` and `next` (the `after` of the next page, `null`
/// on the last) say where it stands. A failing sink shows its last error,
/// and its newest dead letter's reason. Once the sinks have stopped
/// (after a replay, `--serve-after`), their last reports, marked
/// `stopped`, with the dead letters counted as they stopped and the
/// newest of them (both showed `null`, though the store held them then,
/// from this run or an earlier one): the store is closed, so no page of
/// letters is listed. Counts come from the letters' keys; only the page is
/// decoded (5,860 letters made a 2 MB answer).
pub fn outbox_view(telemetry: &Telemetry, letters: &Letters) -> Result<Value, String> {
    let Some(probe) = telemetry.sinks() else {
        let stopped = telemetry.stopped_sinks();
        let sinks: Vec<Value> = stopped
            .reports
            .iter()
            .map(|report| {
                let mut view = sink_view(report, true);
                // `null` only if the store could not be counted then.
                view["dead_letter_count"] =
                    stopped.dead_stored.as_ref().map_or(Value::Null, |counts| {
                        json!(counts.get(&report.name).copied().unwrap_or(0))
                    });
                view["last_dead_letter"] = stopped
                    .last_dead
                    .get(&report.name)
                    .map_or(Value::Null, |d| last_dead_view(&d.failed_at, &d.reason));
                view
            })
            .collect();
        return Ok(json!({ "sinks": sinks }));
    };
    let outbox = probe.outbox();
    let reports = probe.reports();
    let counts = outbox.dead_counts().map_err(|e| e.to_string())?;
    let page = match letters {
        Letters::None => None,
        Letters::Page { after, limit } => {
            let after = after.as_ref().map(|(sink, seq)| (sink.as_str(), *seq));
            let shown = |sink: &str| reports.iter().any(|r| r.name == sink);
            Some(
                outbox
                    .dead_page(after, *limit, shown)
                    .map_err(|e| e.to_string())?,
            )
        }
    };
    let mut total = 0;
    let mut sinks = Vec::with_capacity(reports.len());
    for report in &reports {
        let count = counts.get(&report.name).copied().unwrap_or(0);
        total += count;
        let last_dead = match count {
            0 => None,
            _ => outbox.last_dead(&report.name).map_err(|e| e.to_string())?,
        };
        let mut view = sink_view(report, false);
        view["dead_letter_count"] = json!(count);
        view["last_dead_letter"] =
            last_dead.map_or(Value::Null, |d| last_dead_view(&d.failed_at, &d.reason));
        if let Some(page) = &page {
            view["dead_letters"] = Value::Array(letter_views(&page.letters, &report.name));
        }
        sinks.push(view);
    }
    let mut view = json!({ "sinks": sinks });
    if let Some(page) = page {
        view["dead_letters_total"] = json!(total);
        view["dead_letters_shown"] =
            json!(page.letters.letters.len() + page.letters.unreadable.len());
        view["next"] = json!(page.next);
    }
    Ok(view)
}

/// A sink's newest dead letter, running or stopped alike.
fn last_dead_view(failed_at: &str, reason: &str) -> Value {
    json!({ "failed_at": failed_at, "reason": bounded(reason) })
}

/// The dead letters of `sink` on a page, readable then unreadable.
fn letter_views(page: &DeadLetters<crate::alert::Alert>, sink: &str) -> Vec<Value> {
    let readable = page.letters.iter().filter(|d| d.sink == sink).map(|d| {
        json!({
            "id": d.id(),
            "alert_id": d.alert.id,
            "service": d.alert.service,
            "state": d.alert.state,
            "attempts": d.attempts,
            "failed_at": d.failed_at,
            "reason": d.reason,
            "superseded_by": d.superseded_by,
        })
    });
    let unreadable = page
        .unreadable
        .iter()
        .filter(|d| d.sink == sink)
        .map(|d| json!({ "id": d.id(), "unreadable": d.detail }));
    readable.chain(unreadable).collect()
}

/// One sink's report as the API shows it.
fn sink_view(report: &SinkReport, stopped: bool) -> Value {
    let failing = report.failing.as_ref().map(|f| {
        json!({
            "attempts": f.attempts,
            "since": rfc3339(f.since_ms.saturating_mul(1000)),
            "last_error": bounded(&f.last_error),
        })
    });
    json!({
        "name": report.name,
        "stopped": stopped,
        "depth": report.pending,
        "set_aside": report.set_aside,
        "delivered": report.delivered,
        "retries": report.retries,
        "dead": report.dead,
        "dead_letter_count": Value::Null,
        "last_dead_letter": Value::Null,
        "failing": failing,
        "oldest_pending_at": report.oldest_pending_at,
    })
}

/// At most 300 characters of a receiver's answer: the delivery code bounds
/// it already, this keeps the page's row readable whatever it stored.
/// A receiver's or a sink's error text as the API shows it, cut.
fn bounded(s: &str) -> String {
    crate::text::truncate_chars(s, 300)
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
