//! The dashboard's one document: the live page polls it, the replay report
//! carries it inline. It says what is wrong in words as well as numbers:
//! why the process is not ready, how far the event clock is behind, how
//! many incidents there are beyond those shown.

use serde_json::{Value, json};

use super::api::{Letters, ServiceView, outbox_view, source_views};
use crate::Micros;
use crate::alert::rfc3339;
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
                let mut value = serde_json::to_value(r).unwrap_or(Value::Null);
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
