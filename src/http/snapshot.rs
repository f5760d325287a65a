//! The dashboard's one document: the live page polls it, the replay report
//! carries it inline. It says what is wrong in words as well as numbers:
//! why the process is not ready, how far the event clock is behind, how
//! many incidents there are beyond those shown.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::api::{Letters, ServiceView, outbox_view, source_views};
use crate::Micros;
use crate::alert::{AlertSample, rfc3339};
use crate::detect::{PhraseCount, TransitionKind};
use crate::telemetry::Telemetry;
use crate::telemetry::board::{IncidentRecord, Point};

/// Resolved incidents the live page shows besides every open one.
pub const RESOLVED_SHOWN: usize = 20;

/// Every open incident, then the most recent resolved ones; the report
/// (`all`) keeps every incident. Open ones are never cut: with 28 open,
/// cutting at 20 hid the oldest real outages. The board bounds the total.
pub fn shown_incidents(mut list: Vec<&IncidentRecord>, all: bool) -> Vec<&IncidentRecord> {
    if all {
        return list;
    }
    // Stable: newest first within open and within resolved.
    list.sort_by_key(|r| !r.open);
    let open = list.iter().filter(|r| r.open).count();
    list.truncate(open + RESOLVED_SHOWN);
    list
}

/// An incident as the live page gets it: the record without its alerts,
/// only their number, which is all the page shows. Each alert carries its
/// samples (posts' text), up to 50 alerts an incident, and the page polls
/// every 5 s, serialised under the board's lock: sending them cost the
/// pipeline and the wire for nothing. The report keeps them (see
/// `incident_value`).
#[derive(Serialize)]
struct LiveIncident<'a> {
    id: &'a str,
    service: &'a str,
    state: &'a TransitionKind,
    open: bool,
    severity: &'a str,
    started_at: &'a str,
    updated_at: &'a str,
    reports: u64,
    peak_authors: u64,
    rate_per_min: f64,
    baseline_per_min: f64,
    p_value: f64,
    discovered: bool,
    samples: &'a [AlertSample],
    top_phrases: &'a [PhraseCount],
    languages: &'a BTreeMap<String, u64>,
    detail: Option<&'a str>,
    alert_count: usize,
    series: &'a [Point],
}

impl<'a> From<&'a IncidentRecord> for LiveIncident<'a> {
    fn from(r: &'a IncidentRecord) -> Self {
        LiveIncident {
            id: &r.id,
            service: &r.service,
            state: &r.state,
            open: r.open,
            severity: &r.severity,
            started_at: &r.started_at,
            updated_at: &r.updated_at,
            reports: r.reports,
            peak_authors: r.peak_authors,
            rate_per_min: r.rate_per_min,
            baseline_per_min: r.baseline_per_min,
            p_value: r.p_value,
            discovered: r.discovered,
            samples: &r.samples,
            top_phrases: &r.top_phrases,
            languages: &r.languages,
            detail: r.detail.as_deref(),
            alert_count: r.alerts.len(),
            series: &r.series,
        }
    }
}

/// An incident of the document: the whole record with `alert_count` in
/// the report, the [`LiveIncident`] view on the live page.
fn incident_value(r: &IncidentRecord, report: bool) -> Value {
    if !report {
        return serde_json::to_value(LiveIncident::from(r)).unwrap_or(Value::Null);
    }
    let mut value = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("alert_count".into(), r.alerts.len().into());
    }
    value
}

/// Everything the dashboard shows. `report`: every incident, else every
/// open one and the [`RESOLVED_SHOWN`] most recent resolved.
pub fn snapshot(telemetry: &Telemetry, report: bool) -> Value {
    let now = crate::wall::now_us();
    let stats = telemetry.stats();
    let (incidents, totals, services, closest, newest, alerts_recorded) = {
        let board = telemetry.board();
        let all = board.incidents(true);
        let totals = json!({
            "all": all.len(),
            "open": all.iter().filter(|r| r.open).count(),
        });
        let statuses = board.services();
        let incidents: Vec<Value> = shown_incidents(all, report)
            .into_iter()
            .map(|r| {
                let mut value = incident_value(r, report);
                // The record holds the last alert's figures; an open
                // incident also carries the service's figures now.
                let now = statuses.iter().find(|s| s.service == r.service);
                if let (true, Some(status), Some(map)) = (r.open, now, value.as_object_mut()) {
                    let view = ServiceView::from(*status);
                    map.insert(
                        "live".into(),
                        json!({
                            "rate_per_min": view.rate_per_min,
                            "expected_per_min": view.expected_per_min,
                            "fire_per_min": view.fire_per_min,
                        }),
                    );
                }
                value
            })
            .collect();
        let alerts_recorded: u64 = board.alerts_by_state().values().sum();
        let services: Vec<Value> = board
            .services()
            .into_iter()
            .take(12)
            .map(|s| {
                let points: Vec<Point> = board.series(&s.service, 60).unwrap_or_default();
                json!({ "status": ServiceView::from(s), "series": points })
            })
            .collect();
        (
            incidents,
            totals,
            services,
            serde_json::to_value(board.closest(10)).unwrap_or(Value::Null),
            board.newest(),
            alerts_recorded,
        )
    };
    let readiness = telemetry.readiness();
    let health = telemetry.health();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "mode": telemetry.mode,
        "report": report,
        "generated_at": rfc3339(now),
        "event_time": newest.map(rfc3339),
        "event_lag_seconds": newest.map(|t| lag_seconds(now, t)),
        "health": { "silence_secs": health.silence_secs, "lag_secs": health.lag_secs },
        "ready": readiness.is_ok(),
        "ready_reason": readiness.err(),
        "replaying": telemetry.replaying(),
        "stats": {
            "frames": stats.frames,
            "posts": stats.posts,
            "reports": stats.reports,
            "recoveries": stats.recoveries,
            "malformed": stats.malformed,
            "duplicates": stats.duplicates,
            "alerts": stats.alerts,
        },
        // Every alert the board saw, source-health ones included (the
        // pipeline's `stats.alerts` counts only its own).
        "alerts_recorded": alerts_recorded,
        "incidents": incidents,
        "incident_totals": totals,
        "services": services,
        "closest": closest,
        "sources": source_views(telemetry),
        "outbox": outbox_view(telemetry, &Letters::None).unwrap_or(Value::Null),
    })
}

/// Seconds from event time `t` to wall time `now`, never negative.
fn lag_seconds(now: Micros, t: Micros) -> f64 {
    (now.saturating_sub(t) as f64 / 1e6).max(0.0).round()
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
