//! Mastodon and Nostr sources against local servers speaking their
//! documented frames (protocols.md §2 and §3), a frame of every event type
//! included, several instances and relays at once, de-duplicated.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Daemon, ScriptServer};

const T0: i64 = 1_783_174_000; // 2026-07-04T14:06:40Z, in the past

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .expect("time")
        .to_rfc3339()
}

fn mastodon_update(id: &str, acct: &str, secs: i64, html: &str) -> String {
    let status = json!({
        "id": id, "created_at": rfc3339(secs), "content": html, "spoiler_text": "",
        "language": "en", "tags": [], "visibility": "public",
        "account": {"id": "1", "acct": acct, "username": acct},
        "uri": format!("https://social.example/users/{acct}/statuses/{id}"),
        "url": format!("https://social.example/@{acct}/{id}"), "reblog": null
    });
    json!({"stream": ["public"], "event": "update", "payload": status.to_string()}).to_string()
}

fn nostr_event(id: &str, pubkey: &str, secs: i64, kind: u64, content: &str) -> String {
    json!(["EVENT", "outagewatch", {
        "id": id, "pubkey": pubkey, "created_at": secs, "kind": kind,
        "tags": [["t", "discord"]], "content": content, "sig": "00"
    }])
    .to_string()
}

#[test]
fn mastodon_and_nostr_reports_combine_once_each() {
    // Mastodon: two instances; the second relays three of the first's
    // statuses (same ActivityPub uri) and adds one of its own.
    let relayed: Vec<String> = vec![
        mastodon_update(
            "1",
            "ann@social.example",
            T0,
            "<p>is <a href=\"x\">#discord</a> down?</p>",
        ),
        mastodon_update(
            "2",
            "bob@social.example",
            T0 + 5,
            "<p>discord won&#39;t load for me</p>",
        ),
        mastodon_update(
            "3",
            "cat@social.example",
            T0 + 9,
            "<p>Discord is down again &amp; I&apos;m sad</p>",
        ),
    ];
    let mut first = relayed.clone();
    first.extend([
        json!({"stream": ["public"], "event": "delete", "payload": "99"}).to_string(),
        json!({"stream": ["public"], "event": "status.update", "payload": "{}"}).to_string(),
        json!({"stream": ["public"], "event": "filters_changed"}).to_string(),
        json!({"error": "Rate limited", "status": 429}).to_string(),
        "<binary>".to_owned(),
        "{not json".to_owned(),
        // Later chatter moves event time on once every source has spoken
        // (sources share one event-time watermark).
        "<sleep:700>".to_owned(),
        mastodon_update("4", "dan@social.example", T0 + 200, "<p>lovely weather</p>"),
    ]);
    let mut second = relayed;
    second.extend([mastodon_update(
        "5",
        "eve@other.example",
        T0 + 12,
        "<p>discord not working here either</p>",
    )]);
    let instance_a = ScriptServer::start(vec![first], false);
    let instance_b = ScriptServer::start(vec![second], false);
    // Nostr: two relays sending the same notes (same ids), plus a reaction
    // (kind 7) and every relay message type.
    let notes = vec![
        nostr_event("n1", "pk1", T0 + 14, 1, "discord down?"),
        nostr_event("n2", "pk2", T0 + 16, 1, "is discord down for anyone else"),
        nostr_event("n3", "pk3", T0 + 18, 1, "#discorddown"),
        nostr_event("n4", "pk4", T0 + 19, 7, "+"),
        nostr_event("n6", "pk6", T0 + 20, 1, "discord not loading"),
        nostr_event("n7", "pk7", T0 + 21, 1, "discord is down again"),
        nostr_event("n8", "pk8", T0 + 22, 1, "is discord down??"),
        json!(["EOSE", "outagewatch"]).to_string(),
        json!(["NOTICE", "be nice"]).to_string(),
        json!(["OK", "n9", true, ""]).to_string(),
        "<sleep:700>".to_owned(),
        nostr_event("n5", "pk5", T0 + 210, 1, "gm"),
    ];
    let relay_a = ScriptServer::start(vec![notes.clone()], true);
    let mut closing = notes;
    closing.push(json!(["CLOSED", "outagewatch", "rate-limited: slow down"]).to_string());
    let relay_b = ScriptServer::start(vec![closing], true);

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("ow.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[sources]]
kind = "mastodon"
name = "social"
urls = ["ws://{a}/api/v1/streaming"]
token = "${{OW_TEST_MASTODON_TOKEN}}"

[[sources]]
kind = "mastodon"
name = "other"
urls = ["ws://{b}/api/v1/streaming"]

[[sources]]
kind = "nostr"
name = "nostr"
urls = ["ws://{r1}", "ws://{r2}"]

[sources.connection]
backoff_min_ms = 50
backoff_max_ms = 200

[health]
silence_secs = 3600
lag_secs = 100000000

[daemon]
status_secs = 0.2
"#,
            a = instance_a.addr,
            b = instance_b.addr,
            r1 = relay_a.addr,
            r2 = relay_b.addr
        ),
    )
    .expect("config");
    let alerts = dir.path().join("alerts.jsonl");
    let daemon = Daemon::start_with_env(
        &[
            "run",
            "--config",
            config.to_str().expect("utf8"),
            "--state-dir",
            dir.path().join("state").to_str().expect("utf8"),
            "--alerts",
            alerts.to_str().expect("utf8"),
        ],
        &[("OW_TEST_MASTODON_TOKEN", "s3cret")],
    );
    // 5 distinct Mastodon statuses (one of them later chatter) and 7
    // distinct kind-1 notes (one of them later chatter).
    daemon.wait_for("posts=12 ", Duration::from_secs(60));
    daemon.wait_until(
        |_| std::fs::read_to_string(&alerts).is_ok_and(|a| a.contains("\"firing\"")),
        Duration::from_secs(30),
    );
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    eprintln!(
        "DEBUG alerts: {}",
        std::fs::read_to_string(&alerts).unwrap_or_default()
    );
    eprintln!("DEBUG log: {log}");

    let fired: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&alerts)
            .expect("alerts")
            .lines()
            .find(|l| l.contains("\"firing\""))
            .expect("a firing alert"),
    )
    .expect("JSON");
    assert_eq!(fired["service"], "discord");
    assert_eq!(
        fired["authors"], 10,
        "4 Mastodon accounts + 6 Nostr keys, each once (a brand-new detector wants 10): {fired}"
    );
    assert_eq!(fired["reports"], 10, "{fired}");

    // Mastodon: token in the header, the public stream asked for.
    let a = instance_a.seen.lock().expect("lock");
    assert_eq!(a[0].authorization.as_deref(), Some("Bearer s3cret"));
    assert!(a[0].path_and_query.contains("stream=public"), "{:?}", a[0]);
    let b = instance_b.seen.lock().expect("lock");
    assert_eq!(b[0].authorization, None, "no token configured for this one");
    // Nostr: a REQ for kind 1; the CLOSED relay was reconnected with a new REQ.
    let r1 = relay_a.seen.lock().expect("lock");
    let req: serde_json::Value = serde_json::from_str(&r1[0].received[0]).expect("REQ is JSON");
    assert_eq!(req[0], "REQ");
    assert_eq!(req[2]["kinds"], json!([1]));
    let r2 = relay_b.seen.lock().expect("lock");
    assert!(r2.len() >= 2, "reconnected after CLOSED");
    let again: serde_json::Value = serde_json::from_str(&r2[1].received[0]).expect("REQ");
    assert!(
        again[2]["since"]
            .as_i64()
            .is_some_and(|s| s >= T0 + 200 - 5),
        "resumed since the last note: {again}"
    );

    for needle in [
        "duplicates=",
        "server reported an error",
        "Rate limited (status 429)",
        "end of stored events",
        "notice: be nice",
        "rate-limited: slow down",
        "malformed=1",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
    // 3 Mastodon statuses seen twice, 7 kind-1 notes seen twice: 3 + 7
    // duplicate posts dropped (the kind-7 reaction is not a post).
    assert!(log.contains("duplicates=10"), "{log}");
}
