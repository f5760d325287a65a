//! A Mastodon source against instances that fail it: one that moves its
//! streaming API while the daemon runs, one that refuses the token. The
//! waits themselves (refusals, `Retry-After`, quiet connections) are
//! tested on the websocket reader (`src/source/ws/run_tests.rs`); these
//! run the daemon.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use support::{
    ScriptServer, http_stand_in, mastodon_update, now_secs, one_mastodon_source, refusing_ws,
};

/// An instance that moves its streaming API (its document names another
/// host, and the old one dies) is asked again once the connection to the
/// old host fails, and the new host is read. The host discovered first
/// was kept for the whole run and dialled for ever (24 reconnects in
/// 40 s, the document naming the new host all along).
#[test]
fn a_streaming_host_the_instance_moved_is_discovered_again() {
    let t0 = now_secs();
    let hello = |id: &str, acct: &str| vec![mastodon_update(id, acct, t0, "<p>hello</p>")];
    let old = ScriptServer::start(vec![hello("1", "ann@m.example")], false);
    let new = ScriptServer::start(vec![hello("2", "bob@m.example")], false);
    let named = Arc::new(Mutex::new(format!("ws://{}", old.addr)));
    let document = Arc::clone(&named);
    let (instance, _instance_rt) = http_stand_in(move |path| match path {
        "/api/v2/instance" => {
            let streaming = document.lock().expect("lock").clone();
            let body = json!({"configuration": {"urls": {"streaming": streaming}}});
            (200, None, body.to_string())
        }
        _ => (404, None, String::new()),
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = one_mastodon_source(dir.path(), &format!("http://{instance}"), "");
    let daemon = support::run_daemon(&config, &dir.path().join("state"), None, &[]);
    daemon.wait_for("posts=1 ", Duration::from_secs(30));
    *named.lock().expect("lock") = format!("ws://{}", new.addr);
    // The old host dies: its connection and its port.
    drop(old);
    daemon.wait_for("posts=2 ", Duration::from_secs(30));
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    assert!(
        log.matches("streaming host discovered").count() >= 2,
        "{log}"
    );
}

/// An instance refusing the token (HTTP 401 to the handshake) is asked
/// again only after the longest backoff, with one error line, and the
/// source's alert says why. It was retried from the shortest backoff, a
/// warning each time, and the alert said only "no usable frames from m
/// for 2 s".
#[test]
fn an_instance_refusing_the_token_is_left_alone_and_its_alert_says_why() {
    let refusal = r#"{"error":"The access token is invalid"}"#;
    let (streaming, _rt, handshakes) = refusing_ws(401, Vec::new(), Some(refusal.into()));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = one_mastodon_source(
        dir.path(),
        &format!("ws://{streaming}/api/v1/streaming"),
        "token = \"t0k\"\n",
    );
    // The longest backoff far beyond the seconds looked at, the silence
    // rule within them.
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("backoff_max_ms = 200", "backoff_max_ms = 60000")
        .replace("silence_secs = 3600", "silence_secs = 2\ngrace_secs = 0");
    std::fs::write(&config, text).expect("config");
    let alerts = dir.path().join("alerts.jsonl");
    let daemon = support::start_daemon(&config, &dir.path().join("state"), &alerts);
    daemon.wait_until(
        |_| std::fs::read_to_string(&alerts).is_ok_and(|a| a.contains("source:m")),
        Duration::from_secs(30),
    );
    // Backing off from 50 ms, it was asked about 15 times by now.
    std::thread::sleep(Duration::from_millis(1_000));
    let asked = handshakes.load(Ordering::SeqCst);
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    assert_eq!(asked, 1, "asked again too soon:\n{log}");
    let fired = support::first_alert(&alerts, "source:m");
    let detail = fired["detail"].as_str().unwrap_or_default();
    assert!(
        detail.ends_with(&format!(
            "; last connection failure: the server refused with HTTP 401: {refusal}"
        )),
        "{fired}"
    );
    // One line for the connection (`source_refused`, no `source_reconnect`).
    let connection: Vec<&str> = support::warnings(&log)
        .into_iter()
        .filter(|l| l.contains("event=\"source_re"))
        .collect();
    assert_eq!(connection.len(), 1, "{log}");
    assert!(connection[0].contains("ERROR"), "{log}");
    assert!(connection[0].contains("access token is invalid"), "{log}");
}
