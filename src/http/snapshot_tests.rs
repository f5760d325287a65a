//! What the dashboard's document says: every open incident, why it is not
//! ready, how far behind the event clock is, and sinks that fail or have
//! stopped.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;

use super::*;
use crate::alert::deliver::{SinkProbe, SinkStats};
use crate::alert::format::sample_alert;
use crate::detect::TransitionKind;
use crate::state::outbox::{DeadLetter, RetryState};
use crate::telemetry::Mode;

/// An incident `id` started at `minute` (of 2026-07-04 10:00).
fn alert(id: &str, minute: u32, state: TransitionKind) -> crate::alert::Alert {
    let mut a = sample_alert();
    a.id = id.into();
    a.service = id.into();
    a.state = state;
    a.started_at = format!("2026-07-04T{:02}:{:02}:00Z", 10 + minute / 60, minute % 60);
    a.at = a.started_at.clone();
    a
}

#[test]
fn every_open_incident_is_shown_and_the_totals_are_sent() {
    let telemetry = Telemetry::new(Mode::Daemon, None);
    {
        let mut board = telemetry.board();
        // The open ones are the oldest: a cut at 20 dropped them first.
        for i in 0..28 {
            board.record_alert(&alert(&format!("open-{i}"), i, TransitionKind::Firing));
        }
        for i in 0..25 {
            let id = format!("done-{i}");
            board.record_alert(&alert(&id, 100 + i, TransitionKind::Firing));
            board.record_alert(&alert(&id, 100 + i, TransitionKind::Resolved));
        }
    }
    let snap = snapshot(&telemetry, false);
    let shown = snap["incidents"].as_array().expect("incidents");
    let open = shown.iter().filter(|i| i["open"] == true).count();
    assert_eq!(open, 28, "every open incident");
    assert_eq!(shown.len(), 28 + RESOLVED_SHOWN);
    assert!(shown.iter().any(|i| i["id"] == "open-0"), "the oldest open");
    assert_eq!(snap["incident_totals"]["open"], 28);
    assert_eq!(snap["incident_totals"]["all"], 53);
    assert_eq!(
        snapshot(&telemetry, true)["incidents"]
            .as_array()
            .map(Vec::len),
        Some(53),
        "the report keeps all"
    );
}

/// The live page gets an incident's number of alerts, not the alerts
/// (each with its posts' text); the report keeps them. Both carry every
/// other field of the record.
#[test]
fn the_live_document_counts_an_incidents_alerts_without_sending_them() {
    let telemetry = Telemetry::new(Mode::Daemon, None);
    {
        let mut board = telemetry.board();
        let mut updated = alert("a", 0, TransitionKind::Updated);
        updated.at = "2026-07-04T10:05:00Z".into();
        board.record_alert(&alert("a", 0, TransitionKind::Firing));
        board.record_alert(&updated);
    }
    let live = snapshot(&telemetry, false)["incidents"][0].clone();
    let report = snapshot(&telemetry, true)["incidents"][0].clone();
    assert!(live.get("alerts").is_none(), "{live}");
    assert_eq!(live["alert_count"], 2, "{live}");
    assert_eq!(report["alert_count"], 2);
    assert_eq!(report["alerts"].as_array().map(Vec::len), Some(2));
    let keys = |v: &Value| -> Vec<String> {
        let mut keys: Vec<String> = v
            .as_object()
            .map(|m| m.keys().filter(|k| *k != "alerts").cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    };
    assert_eq!(keys(&live), keys(&report), "the same fields but the alerts");
    assert!(
        !live["samples"].as_array().is_none_or(Vec::is_empty),
        "{live}"
    );
}

#[test]
fn the_reason_for_not_ready_and_the_event_lag_are_in_the_document() {
    let telemetry = Telemetry::new(Mode::Daemon, None);
    let snap = snapshot(&telemetry, false);
    assert_eq!(snap["ready"], false);
    assert_eq!(snap["ready_reason"], "the state store is not open");
    assert!(snap["event_lag_seconds"].is_null(), "no event yet");
    assert_eq!(snap["health"]["lag_secs"], 120);

    let bucket = crate::window::Bucket {
        start: crate::wall::now_us() - 300 * crate::MICROS_PER_SEC,
        ..Default::default()
    };
    telemetry.board().on_bucket(&bucket, Vec::new(), &[]);
    telemetry.set_store_open(true);
    telemetry.set_sources(vec![Arc::new(crate::source::health::SourceHealth::new(
        "jetstream",
        None,
    ))]);
    let snap = snapshot(&telemetry, false);
    assert_eq!(
        snap["ready_reason"], "no source is connected (jetstream)",
        "{snap}"
    );
    let lag = snap["event_lag_seconds"].as_f64().expect("a lag");
    assert!((299.0..=330.0).contains(&lag), "{lag}");
}

/// A probe over one sink `hook` in a fresh store, with one alert waiting.
fn probe() -> (crate::state::SledStore, SinkProbe) {
    let store = crate::state::SledStore::temporary().expect("store");
    let outbox = store.outbox::<crate::alert::Alert>();
    outbox
        .append(&alert("waiting", 5, TransitionKind::Firing))
        .expect("append");
    let (_cursor_tx, cursor) = watch::channel(None);
    let stats = Arc::new(SinkStats::default());
    let probe = SinkProbe::new(vec![("hook".into(), stats, cursor)], outbox);
    (store, probe)
}

fn sink(view: &Value) -> &Value {
    &view["sinks"][0]
}

#[test]
fn a_failing_sink_shows_its_last_error_and_its_newest_dead_letter() {
    let (_store, probe) = probe();
    let outbox = probe.outbox().clone();
    let telemetry = Telemetry::new(Mode::Daemon, None);
    telemetry.set_sinks(probe);
    let quiet = outbox_view(&telemetry, &Letters::None).expect("view");
    assert!(sink(&quiet)["failing"].is_null(), "{quiet}");
    assert_eq!(sink(&quiet)["oldest_pending_at"], "2026-07-04T10:05:00Z");

    outbox
        .set_retry_state(
            "hook",
            &RetryState {
                seq: 1,
                attempts: 3,
                first_failure_ms: 1_783_160_000_000,
                last_error: "HTTP 500: upstream down".into(),
                failing_ms: 1000,
            },
        )
        .expect("retry state");
    outbox
        .add_dead_letter(&DeadLetter {
            sink: "hook".into(),
            seq: 0,
            alert: alert("dead", 1, TransitionKind::Firing),
            reason: "HTTP 500: gave up".into(),
            attempts: 9,
            failed_at: "2026-07-04T10:02:00Z".into(),
            superseded_by: None,
        })
        .expect("dead letter");
    let view = outbox_view(&telemetry, &Letters::None).expect("view");
    let hook = sink(&view);
    assert_eq!(hook["failing"]["last_error"], "HTTP 500: upstream down");
    assert_eq!(hook["failing"]["attempts"], 3);
    assert_eq!(hook["last_dead_letter"]["reason"], "HTTP 500: gave up");
    assert_eq!(hook["dead_letter_count"], 1);
    assert_eq!(hook["stopped"], false);
}

#[test]
fn sinks_that_have_stopped_are_still_shown_with_what_waits() {
    let (_store, probe) = probe();
    let telemetry = Telemetry::new(Mode::Replay, None);
    telemetry.set_sinks(probe);
    telemetry.clear_sinks();
    assert!(telemetry.sinks().is_none(), "the outbox is let go");
    let view = outbox_view(&telemetry, &Letters::None).expect("view");
    let hook = sink(&view);
    assert_eq!(hook["name"], "hook", "{view}");
    assert_eq!(hook["stopped"], true);
    assert_eq!(hook["depth"], 1, "the undelivered alert is still counted");
}

/// After a replay (`--serve-after`), `/metrics` keeps the sinks' last
/// figures: what waits, what was delivered and what is dead. They were
/// gone once the sinks stopped, while `/api/v1/outbox` still showed them,
/// so a page scraped after the run said nothing of the undelivered alert.
#[test]
fn the_metrics_keep_the_sinks_last_figures_once_they_have_stopped() {
    let (_store, probe) = probe();
    let outbox = probe.outbox().clone();
    outbox
        .add_dead_letter(&DeadLetter {
            sink: "hook".into(),
            seq: 0,
            alert: alert("dead", 1, TransitionKind::Firing),
            reason: "HTTP 400".into(),
            attempts: 1,
            failed_at: "2026-07-04T10:02:00Z".into(),
            superseded_by: None,
        })
        .expect("dead letter");
    let telemetry = Telemetry::new(Mode::Replay, None);
    telemetry.set_sinks(probe);
    telemetry.clear_sinks();
    let metrics = telemetry.metrics.render(&telemetry).expect("metrics");
    let scrape =
        prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    let value = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("sink") == Some("hook"))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(value("outagewatch_outbox_depth"), Some(1.0), "{metrics}");
    assert_eq!(value("outagewatch_dead_letters_stored"), Some(1.0));
    assert_eq!(value("outagewatch_deliveries_total"), Some(0.0));
    assert_eq!(value("outagewatch_alerts_set_aside"), Some(0.0));
}

#[test]
fn an_open_incident_carries_its_service_figures_now_and_every_alert_is_counted() {
    let telemetry = Telemetry::new(Mode::Daemon, None);
    let fired = alert("surge", 0, TransitionKind::Firing);
    let status = |rate: f64| crate::detect::ServiceStatus {
        service: "surge".into(),
        reports: 1,
        authors: 1,
        rate_per_min: rate,
        expected_per_min: 0.5,
        fire_per_min: 10.0,
        p_value: 0.5,
        basis: crate::detect::Basis::Prior,
        last_report: 0,
        discovered: false,
        incident: None,
    };
    let bucket = crate::window::Bucket::default();
    // It fired at 19/min (the alert's figure); the service is at 345 now.
    telemetry
        .board()
        .on_bucket(&bucket, vec![status(19.0)], std::slice::from_ref(&fired));
    telemetry
        .board()
        .on_bucket(&bucket, vec![status(345.0)], &[]);
    // A source-health alert, raised outside the pipeline.
    telemetry.record_alert(&alert("source:jetstream", 1, TransitionKind::Firing));
    let snap = snapshot(&telemetry, false);
    let surge = snap["incidents"]
        .as_array()
        .and_then(|l| l.iter().find(|i| i["id"] == "surge"))
        .expect("the incident");
    assert_eq!(surge["rate_per_min"], 19.0, "at its last alert");
    assert_eq!(surge["live"]["rate_per_min"], 345.0, "{surge}");
    assert_eq!(snap["alerts_recorded"], 2, "pipeline and source alerts");
    assert_eq!(snap["stats"]["alerts"], 0);
}
