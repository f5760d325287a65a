//! `/api/v1/outbox` over loopback: its dead letters a page at a time, the
//! totals on every page, and a bad query a 400 in JSON.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;

use super::super::server_tests::exchange;
use super::super::{HttpSettings, Server};
use super::LETTERS_PER_PAGE;
use crate::alert::deliver::{SinkProbe, SinkStats};
use crate::alert::format::sample_alert;
use crate::state::outbox::DeadLetter;
use crate::supervise::Supervisor;
use crate::telemetry::{Mode, Telemetry};

/// A server over sinks `hook` (with `hook_letters` dead letters) and `pager`
/// (with 3); a letter of `gone`, a sink not running, is in the store too.
async fn serve(hook_letters: u64) -> (Server, crate::state::SledStore) {
    let (server, store, _) = serve_telemetry(hook_letters).await;
    (server, store)
}

/// [`serve`], with the telemetry it serves.
async fn serve_telemetry(hook_letters: u64) -> (Server, crate::state::SledStore, Arc<Telemetry>) {
    let store = crate::state::SledStore::temporary().expect("store");
    let outbox = store.outbox::<crate::alert::Alert>();
    let letter = |sink: &str, seq: u64| DeadLetter {
        sink: sink.into(),
        seq,
        alert: sample_alert(),
        reason: "HTTP 500".into(),
        attempts: 2,
        failed_at: "2026-07-04T10:02:00Z".into(),
        superseded_by: None,
    };
    for seq in 1..=hook_letters {
        outbox.add_dead_letter(&letter("hook", seq)).expect("add");
    }
    for seq in [7, 8, 9] {
        outbox.add_dead_letter(&letter("pager", seq)).expect("add");
    }
    outbox.add_dead_letter(&letter("gone", 5)).expect("add");
    let sinks = ["hook", "pager"].map(|name| {
        let (_cursor_tx, cursor) = watch::channel(None);
        (name.to_owned(), Arc::new(SinkStats::default()), cursor)
    });
    let telemetry = Telemetry::new(Mode::Daemon, None);
    telemetry.set_sinks(SinkProbe::new(sinks.into(), outbox));
    let settings = HttpSettings::new("127.0.0.1:0", None).expect("settings");
    let server = Server::start(&settings, telemetry.clone(), None, None, &Supervisor::new())
        .await
        .expect("starts");
    (server, store, telemetry)
}

async fn get(server: &Server, path: &str) -> (u16, Value) {
    let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1");
    let (status, body) = exchange(server.addr, &head, "").await;
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, value)
}

fn ids(page: &Value) -> Vec<String> {
    page["sinks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["dead_letters"].as_array().into_iter().flatten())
        .filter_map(|l| l["id"].as_str().map(str::to_owned))
        .collect()
}

/// 250 + 3 letters: the default page holds 100, the counts are whole on
/// every page, and following `next` lists each letter once, in order,
/// the sink not running left out as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_come_a_page_at_a_time_with_the_totals() {
    let (server, _store) = serve(250).await;
    let (status, first) = get(&server, "/api/v1/outbox").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(ids(&first).len(), LETTERS_PER_PAGE);
    assert_eq!(first["dead_letters_total"], 253);
    assert_eq!(first["dead_letters_shown"], 100);
    assert_eq!(first["sinks"][0]["dead_letter_count"], 250);
    assert_eq!(first["sinks"][1]["dead_letter_count"], 3);
    assert_eq!(first["next"], "hook:100");

    let mut seen = Vec::new();
    let mut path = "/api/v1/outbox?limit=120".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = get(&server, &path).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["dead_letters_total"], 253, "{path}");
        assert!(ids(&page).len() <= 120);
        seen.extend(ids(&page));
        pages += 1;
        match page["next"].as_str() {
            Some(next) => path = format!("/api/v1/outbox?limit=120&after={next}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut want: Vec<String> = (1..=250).map(|s| format!("hook:{s}")).collect();
    want.extend(["pager:7", "pager:8", "pager:9"].map(str::to_owned));
    want.sort_by_key(|id| {
        let (sink, seq) = id.rsplit_once(':').expect("an id");
        (sink.to_owned(), seq.parse::<u64>().expect("a seq"))
    });
    assert_eq!(seen, want);
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 253, "once each");

    // A cursor past a letter that went meanwhile still goes on after it.
    let (_, rest) = get(&server, "/api/v1/outbox?after=hook:9999").await;
    assert_eq!(ids(&rest), ["pager:7", "pager:8", "pager:9"]);
    assert!(rest["next"].is_null());
    server.stop().await;
}

/// Sinks that have stopped (a replay's after its drain, served on with
/// `--serve-after`) still say how many dead letters each has, and the
/// newest, as the store held them when they stopped: `dead_letter_count`
/// was `null`, though the count was known, then `last_dead_letter` was,
/// and the store is closed by then. None of these letters died in this
/// run (the sinks' counters are 0): a restart's store is what counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_sinks_still_count_their_dead_letters() {
    let (server, store, telemetry) = serve_telemetry(4).await;
    telemetry.clear_sinks();
    // The store is closed after the sinks stop: nothing reads it now.
    drop(store);
    let (status, page) = get(&server, "/api/v1/outbox").await;
    assert_eq!(status, 200, "{page}");
    let sinks = page["sinks"].as_array().expect("sinks");
    assert_eq!(sinks.len(), 2, "{page}");
    for (sink, count) in [(&sinks[0], 4), (&sinks[1], 3)] {
        assert_eq!(sink["stopped"], true, "{sink}");
        assert_eq!(sink["dead_letter_count"], count, "{sink}");
        // The newest letter as the store held it (it was `null`).
        assert_eq!(sink["last_dead_letter"]["reason"], "HTTP 500", "{sink}");
        assert_eq!(
            sink["last_dead_letter"]["failed_at"], "2026-07-04T10:02:00Z",
            "{sink}"
        );
    }
    assert_eq!(sinks[0]["name"], "hook");
    assert_eq!(sinks[1]["name"], "pager");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_page_query_is_a_400_in_json() {
    let (server, _store) = serve(2).await;
    for path in [
        "/api/v1/outbox?limit=0",
        "/api/v1/outbox?limit=1001",
        "/api/v1/outbox?limit=-5",
        "/api/v1/outbox?limit=many",
        "/api/v1/outbox?after=hook",
        "/api/v1/outbox?after=hook:x",
        "/api/v1/outbox?after=:3",
        "/api/v1/outbox?limt=5",
    ] {
        let (status, body) = get(&server, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let (status, most) = get(&server, "/api/v1/outbox?limit=1000").await;
    assert_eq!((status, ids(&most).len()), (200, 5), "{most}");
    server.stop().await;
}

async fn post_retry(server: &Server, body: &str) -> (u16, Value) {
    let head =
        "POST /api/v1/outbox/retry HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json";
    let (status, text) = exchange(server.addr, head, body).await;
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{body}: {e}: {text}"));
    (status, value)
}

/// A misspelt or malformed retry body is a 400 that re-queues nothing; it
/// used to read as "no id", which re-queues every dead letter (`null` did
/// until stop 48).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_retry_body_requeues_nothing() {
    let (server, _store) = serve(2).await;
    for body in [
        r#"{"ID":"hook:1"}"#,
        r#"{"ids":["hook:1"]}"#,
        r#"{"id":"hook:1","all":true}"#,
        r#"{"id":"hook"}"#,
        r#"{"id":"hook:x"}"#,
        r#"{"id":":1"}"#,
        // An unset selection, not "all".
        r#"{"id":null}"#,
        r#"{"id":1}"#,
    ] {
        let (status, answer) = post_retry(&server, body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"].is_string(), "{body}: {answer}");
    }
    let (_, page) = get(&server, "/api/v1/outbox").await;
    assert_eq!(page["dead_letters_total"], 5, "nothing re-queued: {page}");
    let (status, answer) = post_retry(&server, r#"{"id":"hook:1"}"#).await;
    assert_eq!(
        (status, &answer["requeued"]),
        (200, &Value::from(1)),
        "{answer}"
    );
    server.stop().await;
}

/// `/api/v1/sources` says why each live source's last connection failed
/// (`null` while none has): it was in the log alone.
#[test]
fn a_live_source_shows_why_its_last_connection_failed() {
    use crate::source::health::SourceHealth;
    let telemetry = Telemetry::new(Mode::Daemon, None);
    let refused = Arc::new(SourceHealth::new("masto", None));
    refused.set_last_failure("the server refused with HTTP 401: {\"error\":\"no\"}");
    let fine = Arc::new(SourceHealth::new("bluesky", None));
    telemetry.set_sources(vec![refused, fine]);
    let views = super::source_views(&telemetry);
    assert_eq!(
        views[0]["last_failure"],
        "the server refused with HTTP 401: {\"error\":\"no\"}"
    );
    assert!(views[1]["last_failure"].is_null(), "{}", views[1]);
}

/// `/api/v1/sources` shows the rule each source is judged by (its own
/// `[sources.health]` keys over `[health]`): the page read the global
/// `silence_secs` alone, and called a quiet relay silent by it.
#[test]
fn a_live_source_shows_its_own_health_rule() {
    use crate::source::health::{HealthOverride, HealthRule, SourceHealth};
    let telemetry = Telemetry::new(Mode::Daemon, None);
    telemetry.set_health(HealthRule {
        silence_secs: 60,
        lag_secs: 120,
        grace_secs: 30,
        calm_secs: None,
    });
    let own = HealthOverride {
        silence_secs: Some(600),
        lag_secs: Some(900),
        ..HealthOverride::default()
    };
    let quiet = Arc::new(SourceHealth::new("quiet", None).with_rule(own));
    let busy = Arc::new(SourceHealth::new("bluesky", None));
    telemetry.set_sources(vec![quiet, busy]);
    let views = super::source_views(&telemetry);
    assert_eq!(
        views[0]["health"],
        serde_json::json!({"silence_secs": 600, "lag_secs": 900, "grace_secs": 30, "calm_secs": 600})
    );
    assert_eq!(
        views[1]["health"],
        serde_json::json!({"silence_secs": 60, "lag_secs": 120, "grace_secs": 30, "calm_secs": 60})
    );
}

/// `silent_seconds` is the silence the health rule judges: since the last
/// frame that decodes (or since the source was set up), on the monotonic
/// clock. It was the time since the last frame of any kind, `null`
/// before one: a server sending only junk, or accepting the connection
/// and sending nothing, showed "up" while `/readyz` said silent.
#[tokio::test(start_paused = true)]
async fn silent_seconds_count_only_frames_that_decode() {
    use crate::source::health::SourceHealth;
    use std::time::Duration;
    let clock: crate::wall::SharedClock = Arc::new(crate::wall::TokioClock::starting_at(0));
    let telemetry = Telemetry::new(Mode::Daemon, None);
    let junk = Arc::new(SourceHealth::with_clock("junk", None, Arc::clone(&clock)));
    let mute = Arc::new(SourceHealth::with_clock("mute", None, Arc::clone(&clock)));
    let fine = Arc::new(SourceHealth::with_clock("fine", None, clock));
    for source in [&junk, &mute, &fine] {
        source.set_connected(true);
    }
    telemetry.set_sources(vec![
        Arc::clone(&junk),
        Arc::clone(&mute),
        Arc::clone(&fine),
    ]);
    fine.count_frame();
    fine.count_data();
    tokio::time::sleep(Duration::from_secs(90)).await;
    junk.count_frame();
    fine.count_frame();
    fine.count_data();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let views = super::source_views(&telemetry);
    let silent: Vec<f64> = views
        .iter()
        .map(|v| v["silent_seconds"].as_f64().unwrap_or(-1.0))
        .collect();
    assert_eq!(silent, [100.0, 100.0, 10.0], "junk, mute, fine");
}
