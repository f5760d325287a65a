//! Mastodon and Nostr sources against local servers speaking their
//! documented frames (protocols.md §2 and §3), a frame of every event type
//! included, several instances and relays at once, de-duplicated; notes
//! signed with keys made here; authors' clocks jittered, far ahead and far
//! behind.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{
    ScriptServer, http_stand_in, mastodon_update, now_secs, one_mastodon_source, redirecting_ws,
};

/// 2100-01-01 and 1990-01-01, in seconds.
const YEAR_2100: i64 = 4_102_444_800;
const YEAR_1990: i64 = 631_152_000;

/// A note signed by the key made from `author` (a seed), as a relay sends it.
fn nostr_event(author: &str, secs: i64, kind: u64, content: &str) -> String {
    use k256::schnorr::SigningKey;
    use sha2::Digest;
    let secret: [u8; 32] = sha2::Sha256::digest(author.as_bytes()).into();
    let key = SigningKey::from_bytes(&secret.into()).expect("key");
    let pubkey = hex::encode(key.verifying_key().to_bytes());
    let tags = vec![vec!["t".to_owned(), "discord".to_owned()]];
    let id = outagewatch::source::nostr::verify::event_id(&pubkey, secs, kind, &tags, content);
    let sig = key.sign_raw(&id, &[3; 32]).expect("sign");
    json!(["EVENT", "outagewatch", {
        "id": hex::encode(id), "pubkey": pubkey, "created_at": secs, "kind": kind,
        "tags": tags, "content": content, "sig": hex::encode(sig.to_bytes())
    }])
    .to_string()
}

/// Seconds now, once the clock is early in a 10 s bucket. Event time is the
/// arrival time: the reports, sent at once, then share one bucket.
fn early_in_a_bucket() -> i64 {
    while now_secs().rem_euclid(10) != 1 {
        std::thread::sleep(Duration::from_millis(100));
    }
    now_secs()
}

/// Two Mastodon instances and two Nostr relays sending outage reports
/// about Discord (12 authors), relayed duplicates, posts dated 2100 and
/// 1990, malformed and forged frames, every relay message type, and 16 s
/// later chatter that closes the reports' bucket.
struct Fediverse {
    instance_a: ScriptServer,
    instance_b: ScriptServer,
    relay_a: ScriptServer,
    relay_b: ScriptServer,
}

impl Fediverse {
    /// The servers, the authors' clocks jittered around `t0`.
    fn start(t0: i64) -> Fediverse {
        // Authors' clocks, jittered by minutes either way.
        let jitter = |i: i64| t0 + (i * 97) % 400 - 200;
        // Mastodon: two instances; the second relays three of the first's
        // statuses (same ActivityPub uri) and adds one of its own.
        let relayed: Vec<String> = vec![
            mastodon_update(
                "1",
                "ann@social.example",
                jitter(1),
                "<p>is <a href=\"x\">#discord</a> down?</p>",
            ),
            mastodon_update(
                "2",
                "bob@social.example",
                jitter(2),
                "<p>discord won&#39;t load for me</p>",
            ),
            mastodon_update(
                "3",
                "cat@social.example",
                jitter(3),
                "<p>Discord is down again &amp; I&apos;m sad</p>",
            ),
        ];
        let mut first = relayed.clone();
        first.extend([
            // A report dated in 2100 counts, at its arrival; one dated 1990 is
            // history (a backfill) and is dropped.
            mastodon_update("6", "zed@social.example", YEAR_2100, "<p>discord down</p>"),
            mastodon_update("7", "old@social.example", YEAR_1990, "<p>discord down</p>"),
            json!({"stream": ["public"], "event": "delete", "payload": "99"}).to_string(),
            // An edit holds the whole status: skipped, not counted again.
            mastodon_update(
                "8",
                "eve@social.example",
                YEAR_2100,
                "<p>discord down (edited)</p>",
            )
            .replace(r#""event":"update""#, r#""event":"status.update""#),
            json!({"stream": ["public"], "event": "filters_changed"}).to_string(),
            json!({"error": "Rate limited", "status": 429}).to_string(),
            "<binary>".to_owned(),
            "{not json".to_owned(),
            // Later chatter: event time (arrival) passes the bucket's end and
            // its lateness, and the bucket closes.
            "<sleep:16000>".to_owned(),
            mastodon_update(
                "4",
                "dan@social.example",
                jitter(4),
                "<p>lovely weather</p>",
            ),
        ]);
        let mut second = relayed;
        second.extend([mastodon_update(
            "5",
            "eve@other.example",
            jitter(5),
            "<p>discord not working here either</p>",
        )]);
        let instance_a = ScriptServer::start(vec![first], false);
        let instance_b = ScriptServer::start(vec![second], false);
        // Nostr: two relays sending the same signed notes (same ids), plus a
        // reaction (kind 7) and every relay message type.
        let notes = vec![
            nostr_event("pk1", jitter(11), 1, "discord down?"),
            nostr_event("pk2", jitter(12), 1, "is discord down for anyone else"),
            nostr_event("pk3", jitter(13), 1, "#discorddown"),
            nostr_event("pk4", jitter(14), 7, "+"),
            nostr_event("pk6", jitter(15), 1, "discord not loading"),
            nostr_event("pk7", jitter(16), 1, "discord is down again"),
            nostr_event("pk8", jitter(17), 1, "is discord down??"),
            json!(["EOSE", "outagewatch"]).to_string(),
            // A relay's text with a line break, to forge a log line.
            json!([
                "NOTICE",
                "be nice\n2026-12-02T06:00:00Z ERROR FORGED page the on-call"
            ])
            .to_string(),
            json!(["OK", "n9", true, ""]).to_string(),
        ];
        let chatter = [
            "<sleep:16000>".to_owned(),
            nostr_event("pk5", jitter(18), 1, "gm"),
        ];
        // The first relay also sends a note dated 2100 (counted at arrival), one
        // dated 1990 (backfill) and a forged one (the id of another note, a
        // made-up signature): dropped and counted.
        let mut from_a = notes.clone();
        from_a.push(nostr_event("pk9", YEAR_2100, 1, "discord down here too"));
        from_a.push(nostr_event("pk10", YEAR_1990, 1, "discord down"));
        let mut forged: serde_json::Value =
            serde_json::from_str(&nostr_event("pk11", t0, 1, "discord down")).expect("JSON");
        forged[2]["content"] = "discord is down, trust me".into();
        from_a.push(forged.to_string());
        from_a.extend(chatter.clone());
        // A relay's own text is a stranger's too: a notice of 5,000 characters
        // is logged cut to 200.
        from_a.push(json!(["NOTICE", "n".repeat(5000)]).to_string());
        let relay_a = ScriptServer::start(vec![from_a], true);
        let mut closing = notes;
        closing.extend(chatter);
        closing.push(
            json!([
                "CLOSED",
                "outagewatch",
                "rate-limited: slow down\r\nFORGED too"
            ])
            .to_string(),
        );
        let relay_b = ScriptServer::start(vec![closing], true);
        Fediverse {
            instance_a,
            instance_b,
            relay_a,
            relay_b,
        }
    }

    /// A config reading them: `social` (token from
    /// `$OW_TEST_MASTODON_TOKEN`) and `other` on the two instances, `nostr`
    /// on both relays, quick reconnects, health alerts all but off, and
    /// the cap on one server's authors lifted: these tests count how
    /// sources combine, every author once (the cap, 2 of `social.example`'s
    /// four accounts and of each relay's keys, has its own test in
    /// `tests/replay.rs`).
    fn config(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let config = dir.join("ow.toml");
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

[detector]
max_authors_per_server = 10000
"#,
                a = self.instance_a.addr,
                b = self.instance_b.addr,
                r1 = self.relay_a.addr,
                r2 = self.relay_b.addr
            ),
        )
        .expect("config");
        config
    }
}

#[test]
fn mastodon_and_nostr_reports_combine_once_each() {
    let t0 = early_in_a_bucket();
    let servers = Fediverse::start(t0);
    let Fediverse {
        instance_a,
        instance_b,
        relay_a,
        relay_b,
    } = &servers;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = servers.config(dir.path());
    let alerts = dir.path().join("alerts.jsonl");
    let daemon = support::run_daemon(
        &config,
        &dir.path().join("state"),
        Some(&alerts),
        &[("OW_TEST_MASTODON_TOKEN", "s3cret")],
    );
    // 6 distinct Mastodon statuses (one of them later chatter, one dated
    // 2100) and 8 distinct kind-1 notes (one later chatter, one dated 2100).
    daemon.wait_for("posts=14 ", Duration::from_secs(60));
    daemon.wait_until(
        |_| std::fs::read_to_string(&alerts).is_ok_and(|a| a.contains("\"firing\"")),
        Duration::from_secs(30),
    );
    // The relay that ended the subscription after the chatter is asked again.
    daemon.wait_until(
        |_| {
            relay_b
                .seen
                .lock()
                .is_ok_and(|s| s.len() >= 2 && !s[1].received.is_empty())
        },
        Duration::from_secs(30),
    );
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");

    let fired = support::first_alert(&alerts, "\"firing\"");
    assert_eq!(fired["service"], "discord");
    assert_eq!(
        fired["authors"], 12,
        "5 Mastodon accounts + 7 Nostr keys, each once, whatever their clocks said: {fired}"
    );
    assert_eq!(fired["reports"], 12, "{fired}");

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
    // Resumed from the watermark (arrival time), never from a claim of 2100.
    assert!(
        again[2]["since"]
            .as_i64()
            .is_some_and(|s| s >= t0 + 10 && s <= now_secs()),
        "resumed since the last note: {again}"
    );

    assert!(!log.contains(&"n".repeat(200)), "a server's text is cut");
    // Nor does it start a line of its own.
    assert!(
        !log.lines()
            .any(|line| line.trim_start().starts_with("2026-12-02T06:00:00Z")
                || line.trim_start().starts_with("FORGED")),
        "{log}"
    );
    let cut_notice = format!("notice: {}…", "n".repeat(199 - "notice: ".len()));
    for needle in [
        "duplicates=",
        "server reported an error",
        "Rate limited (status 429)",
        "end of stored events",
        "notice: be nice 2026-12-02T06:00:00Z ERROR FORGED page the on-call",
        cut_notice.as_str(),
        "rate-limited: slow down  FORGED too",
        "malformed=2",
        "future=0",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
    // 3 Mastodon statuses seen twice, 7 kind-1 notes seen twice: 3 + 7
    // duplicate posts dropped (the kind-7 reaction is not a post).
    assert!(log.contains("duplicates=10"), "{log}");
    assert!(log.contains("failed verification"), "{log}");
}

/// `record --config` opens the connections the daemon would for the
/// same configuration (two Mastodon instances, one with a token from the
/// environment, and a Nostr source of two relays), and its recording
/// replays to the daemon's alert: the same 12 authors and 12 reports,
/// relayed duplicates dropped, the 1990 posts a backfill, the 2100 ones
/// counted at their arrival, malformed frames counted. The relay that ends
/// its subscription is asked again from its watermark, as by the daemon.
/// A plain and a zstd recording, at once, each from servers of its own
/// (a script plays once per connection).
#[test]
fn a_recording_of_every_configured_source_replays_to_the_live_alert() {
    let t0 = early_in_a_bucket();
    let dir = tempfile::tempdir().expect("tempdir");
    let runs: Vec<(Fediverse, std::path::PathBuf, support::Daemon)> =
        ["fediverse.jsonl", "fediverse.jsonl.zst"]
            .into_iter()
            .map(|name| {
                let servers = Fediverse::start(t0);
                let own = dir.path().join(format!("{name}.d"));
                std::fs::create_dir(&own).expect("dir");
                let config = servers.config(&own);
                let out = dir.path().join(name);
                let recorder = support::Daemon::start_with_env(
                    &[
                        "record",
                        "--config",
                        config.to_str().expect("utf8"),
                        "--out",
                        out.to_str().expect("utf8"),
                    ],
                    &[("OW_TEST_MASTODON_TOKEN", "s3cret")],
                );
                (servers, out, recorder)
            })
            .collect();
    // The relay that ended its subscription after the chatter is asked
    // again: every frame was sent by then.
    for (servers, _, recorder) in &runs {
        recorder.wait_until(
            |_| {
                servers
                    .relay_b
                    .seen
                    .lock()
                    .is_ok_and(|s| s.len() >= 2 && !s[1].received.is_empty())
            },
            Duration::from_secs(60),
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    for (servers, out, recorder) in runs {
        let file = out
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or("")
            .to_owned();
        let name = out.display().to_string();
        let (status, _, log) = recorder.stop_with("INT", Duration::from_secs(20));
        assert!(status.success(), "{name}: {log}");
        assert!(log.contains("recorded "), "{name}: {log}");
        let a = servers.instance_a.seen.lock().expect("lock");
        assert_eq!(a[0].authorization.as_deref(), Some("Bearer s3cret"));
        let last_arrival = recording_names_its_senders(&out, &servers);
        // Resumed from the watermark, the newest arrival (the chatter's),
        // less 5 s, as the daemon does; never from a claim of 2100, nor
        // from now.
        let relay_b = format!("nostr:{}", servers.relay_b.addr);
        let r2 = servers.relay_b.seen.lock().expect("lock");
        let again: serde_json::Value = serde_json::from_str(&r2[1].received[0]).expect("REQ");
        assert_eq!(
            again[2]["since"].as_i64(),
            Some(last_arrival[&relay_b] / 1_000_000 - 5),
            "{name}: {again}"
        );
        assert!(last_arrival[&relay_b] / 1_000_000 >= t0 + 10, "{name}");
        replay_fires_the_live_alert(&out, &dir.path().join(format!("{file}.d/ow.toml")));
    }
}

/// The recording's clock lines name each connection's source with its
/// kind, and a Mastodon instance with its `host:port`; the first relay's
/// notes sent before `EOSE` are marked stored, those after are not. The
/// last arrival of each connection.
fn recording_names_its_senders(
    out: &std::path::Path,
    servers: &Fediverse,
) -> std::collections::BTreeMap<String, i64> {
    use outagewatch::source::recording::{ClockLine, open};
    let name = out.display().to_string();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut open(&name).expect("open"), &mut text).expect("read");
    let mut senders = std::collections::BTreeSet::new();
    let mut clock: Option<ClockLine> = None;
    let relay_a = format!("nostr:{}", servers.relay_a.addr);
    let mut stored_notes_of_relay_a = Vec::new();
    let mut last_arrival = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(c) = ClockLine::parse(line.as_bytes()) {
            senders.insert((c.source.clone(), c.protocol.name(), c.instance.clone()));
            last_arrival.insert(c.source.clone(), c.time_us);
            clock = Some(c);
            continue;
        }
        let clock = clock.as_ref().expect("a clock line before every frame");
        if clock.source == relay_a && line.starts_with(r#"["EVENT""#) {
            stored_notes_of_relay_a.push(clock.stored_since.is_some());
        }
    }
    let want = [
        (
            "social".to_owned(),
            "mastodon",
            servers.instance_a.addr.to_string(),
        ),
        (
            "other".to_owned(),
            "mastodon",
            servers.instance_b.addr.to_string(),
        ),
        (relay_a, "nostr", String::new()),
        (
            format!("nostr:{}", servers.relay_b.addr),
            "nostr",
            String::new(),
        ),
    ];
    assert_eq!(senders, want.into_iter().collect(), "{name}:\n{text}");
    // 7 notes before EOSE; then 2100, 1990, the forged one and the chatter.
    let mut want = vec![true; 7];
    want.extend([false; 4]);
    assert_eq!(stored_notes_of_relay_a, want, "{name}:\n{text}");
    last_arrival
}

/// `replay` of the recording fires the alert the live daemon fired, and
/// counts what it dropped as the daemon did.
fn replay_fires_the_live_alert(out: &std::path::Path, config: &std::path::Path) {
    let name = out.display().to_string();
    let alerts = out.with_extension("alerts");
    let replayed = std::process::Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .arg("replay")
        .arg(out)
        .arg("--config")
        .arg(config)
        .env("OW_TEST_MASTODON_TOKEN", "s3cret")
        .arg("--state-dir")
        .arg(out.with_extension("state"))
        .arg("--alerts")
        .arg(&alerts)
        .env("RUST_LOG", "warn")
        .output()
        .expect("replay runs");
    let stderr = String::from_utf8_lossy(&replayed.stderr);
    assert!(replayed.status.success(), "{name}: {stderr}");
    let fired = support::first_alert(&alerts, "\"firing\"");
    assert_eq!(fired["service"], "discord");
    assert_eq!(
        fired["authors"], 12,
        "{name}: 5 Mastodon accounts + 7 Nostr keys, each once: {fired}"
    );
    assert_eq!(fired["reports"], 12, "{name}: {fired}");
    // The daemon's figures (`posts=14`, `duplicates=10`, `malformed=2`,
    // `future=0`): the 2100 posts counted at arrival, not quarantined.
    for needle in [
        "posts 14 | reports 12",
        "backfill 2",
        "duplicate posts dropped: 10",
        "malformed: 2",
        "nostr_id_mismatch 1",
    ] {
        assert!(stderr.contains(needle), "{name} lacks {needle:?}: {stderr}");
    }
    assert_eq!(stderr.matches("| future 0").count(), 4, "{name}: {stderr}");
}

#[test]
fn mastodon_streaming_host_is_discovered_through_redirects() {
    let t0 = now_secs();
    let statuses = vec![
        mastodon_update("1", "ann@m.example", t0, "<p>is discord down?</p>"),
        mastodon_update("2", "bob@m.example", t0, "<p>discord won&#39;t load</p>"),
        mastodon_update("3", "cat@m.example", t0, "<p>discord is down again</p>"),
    ];
    let streaming = ScriptServer::start(vec![statuses], false);
    // The streaming endpoint the instance names redirects its handshake
    // (ws → ws, to the real streaming server).
    let (moved_ws, _ws_rt) = redirecting_ws(format!(
        "ws://{}/api/v1/streaming?stream=public",
        streaming.addr
    ));
    // The instance serves only the v1 document (v2 is 404).
    let (instance, _instance_rt) = http_stand_in(move |path| match path {
        "/api/v1/instance" => (
            200,
            None,
            json!({"uri": "m.example", "urls": {"streaming_api": format!("ws://{moved_ws}")}})
                .to_string(),
        ),
        _ => (404, None, json!({"error": "Record not found"}).to_string()),
    });
    // The configured address has moved: everything redirects there.
    let (front, _front_rt) =
        http_stand_in(move |path| (301, Some(format!("http://{instance}{path}")), String::new()));

    let dir = tempfile::tempdir().expect("tempdir");
    let config = one_mastodon_source(dir.path(), &format!("http://{front}"), "");
    let daemon = support::run_daemon(&config, &dir.path().join("state"), None, &[]);
    daemon.wait_for("posts=3 ", Duration::from_secs(60));
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    assert!(log.contains("streaming host discovered"), "{log}");
    assert!(log.contains("following a redirect"), "{log}");
    let seen = streaming.seen.lock().expect("lock");
    assert_eq!(seen[0].path_and_query, "/api/v1/streaming?stream=public");
}

#[test]
fn a_token_is_not_sent_to_a_redirect_on_another_origin() {
    let streaming = ScriptServer::start(vec![Vec::new()], false);
    // Another port of the same address is another origin.
    let (moved, _rt) = redirecting_ws(format!("ws://{}/api/v1/streaming", streaming.addr));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = one_mastodon_source(
        dir.path(),
        &format!("ws://{moved}/api/v1/streaming"),
        "token = \"s3cret\"\n",
    );
    let daemon = support::run_daemon(&config, &dir.path().join("state"), None, &[]);
    daemon.wait_until(
        |_| streaming.seen.lock().is_ok_and(|s| !s.is_empty()),
        Duration::from_secs(30),
    );
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    assert!(log.contains("following a redirect"), "{log}");
    assert!(
        log.contains("not sent: the redirect left the configured origin"),
        "{log}"
    );
    let seen = streaming.seen.lock().expect("lock");
    assert_eq!(
        seen[0].authorization, None,
        "the token stayed home: {:?}",
        seen[0]
    );
    assert!(!log.contains("s3cret"), "{log}");
}

#[test]
fn a_streaming_redirect_to_another_scheme_is_refused() {
    let (moved, _rt) = redirecting_ws("http://127.0.0.1:9/api/v1/streaming".to_owned());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = one_mastodon_source(dir.path(), &format!("ws://{moved}/api/v1/streaming"), "");
    let daemon = support::run_daemon(&config, &dir.path().join("state"), None, &[]);
    daemon.wait_for("redirect refused", Duration::from_secs(30));
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    assert!(!log.contains("following a redirect"), "{log}");
}

/// A config with one Nostr source named `n` reading `url`, the backoff
/// from 50 ms to `backoff_max_ms`, a status line every 0.2 s.
fn one_nostr_source(dir: &std::path::Path, url: &str, backoff_max_ms: u64) -> std::path::PathBuf {
    let config = dir.join("ow.toml");
    std::fs::write(
        &config,
        format!(
            "[[sources]]\nkind = \"nostr\"\nname = \"n\"\nurls = [\"{url}\"]\n\n[sources.connection]\nbackoff_min_ms = 50\nbackoff_max_ms = {backoff_max_ms}\n\n[health]\nsilence_secs = 3600\nlag_secs = 100000000\n\n[daemon]\nstatus_secs = 0.2\n"
        ),
    )
    .expect("config");
    config
}

/// A relay that wants authentication (NIP-42) refuses every `REQ`:
/// asked again only after the longest backoff, with one error line (it
/// was retried from 50 ms up, a warning each time: 14 in 3 minutes).
/// Messages under another subscription id are ignored, signed reports
/// included.
#[test]
fn a_relay_refusing_for_good_is_asked_again_only_after_the_longest_backoff() {
    let t0 = now_secs();
    let connection = vec![
        nostr_event("pk1", t0, 1, "is discord down?").replace("\"outagewatch\"", "\"theirs\""),
        json!(["EOSE", "theirs"]).to_string(),
        json!(["CLOSED", "theirs", "rate-limited: not you"]).to_string(),
        json!(["CLOSED", "outagewatch", "auth-required: sign in first"]).to_string(),
    ];
    let relay = ScriptServer::start(vec![connection; 40], true);
    let dir = tempfile::tempdir().expect("tempdir");
    // The longest backoff far beyond the 3.5 s looked at: a log line read
    // late on a busy machine cannot make the wait look short.
    let config = one_nostr_source(dir.path(), &format!("ws://{}", relay.addr), 30_000);
    let daemon = support::run_daemon(&config, &dir.path().join("state"), None, &[]);
    daemon.wait_for("sign in first", Duration::from_secs(30));
    // Backing off from 50 ms, a relay is asked 6 times in 3.5 s.
    std::thread::sleep(Duration::from_millis(3_500));
    let connections = relay.seen.lock().expect("lock").len();
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    assert_eq!(connections, 1, "asked again within 3.5 s:\n{log}");
    let refusals: Vec<&str> = support::warnings(&log)
        .into_iter()
        .filter(|l| l.contains("sign in first"))
        .collect();
    assert_eq!(refusals.len(), 1, "{log}");
    assert!(refusals[0].contains("ERROR"), "{log}");
    assert!(
        !log.contains("not you"),
        "another subscription's CLOSED: {log}"
    );
    assert!(
        !log.contains("posts=1"),
        "another subscription's note: {log}"
    );
}

/// An instance that does not answer is one failed connection, not a wall:
/// the next instance of the list is asked and read. (Every instance was
/// asked first, each retried for ever, so a dead first one kept the live
/// second from ever being read.)
#[test]
fn a_dead_instance_does_not_keep_the_next_one_from_being_read() {
    let t0 = now_secs();
    let statuses = vec![
        mastodon_update("1", "ann@m.example", t0, "<p>is discord down?</p>"),
        mastodon_update("2", "bob@m.example", t0, "<p>discord won&#39;t load</p>"),
    ];
    let streaming = ScriptServer::start(vec![statuses], false);
    let streaming_url = format!("ws://{}", streaming.addr);
    let (instance, _instance_rt) = http_stand_in(move |path| match path {
        "/api/v2/instance" => (
            200,
            None,
            json!({"configuration": {"urls": {"streaming": streaming_url}}}).to_string(),
        ),
        _ => (404, None, String::new()),
    });
    // A port nothing listens on: bound, then let go.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("ow.toml");
    let mastodon = one_mastodon_source(dir.path(), "x", "");
    let text = std::fs::read_to_string(&mastodon).expect("config").replace(
        "urls = [\"x\"]",
        &format!("urls = [\"http://{dead}\", \"http://{instance}\"]"),
    );
    std::fs::write(&config, text).expect("config");
    let daemon = support::run_daemon(&config, &dir.path().join("state"), None, &[]);
    daemon.wait_for("posts=2 ", Duration::from_secs(30));
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    assert!(log.contains("cannot discover the streaming host"), "{log}");
    assert!(log.contains("streaming host discovered"), "{log}");
}

/// A quiet instance (one status, then nothing for seconds) that answers
/// pings keeps its connection: with a 1 s watchdog it was dropped every
/// second. (A stream that neither sends nor answers is still dropped:
/// the next test.)
#[test]
fn a_quiet_stream_that_answers_pings_keeps_its_connection() {
    let t0 = now_secs();
    let quiet = ScriptServer::start(
        vec![vec![mastodon_update(
            "1",
            "ann@m.example",
            t0,
            "<p>hello</p>",
        )]],
        false,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = one_mastodon_source(dir.path(), &format!("ws://{}", quiet.addr), "");
    let text = std::fs::read_to_string(&config).expect("config").replace(
        "backoff_min_ms = 50",
        "watchdog_secs = 3\nping_secs = 1\nbackoff_min_ms = 50",
    );
    std::fs::write(&config, text).expect("config");
    let daemon = support::run_daemon(&config, &dir.path().join("state"), None, &[]);
    daemon.wait_for("posts=1 ", Duration::from_secs(30));
    // Quiet for longer than the 3 s watchdog: only the pongs (one a
    // second, 3 s allowed between them) keep it.
    std::thread::sleep(Duration::from_millis(6_000));
    let connections = quiet.seen.lock().expect("lock").len();
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    assert_eq!(connections, 1, "dropped while quiet:\n{log}");
    assert!(!log.contains("watchdog"), "{log}");
}

/// A quiet instance that stops answering pings too (open, but deaf) is
/// dropped after twice the ping period and connected again: a dead peer
/// behind a half-open connection is not read as a quiet stream for ever.
#[test]
fn a_quiet_stream_that_answers_no_ping_is_dropped_and_reconnected() {
    let t0 = now_secs();
    let update = mastodon_update("1", "ann@m.example", t0, "<p>hello</p>");
    let deaf = ScriptServer::start(vec![vec![update, "<deaf>".into()], vec![]], false);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = one_mastodon_source(dir.path(), &format!("ws://{}", deaf.addr), "");
    let text = std::fs::read_to_string(&config).expect("config").replace(
        "backoff_min_ms = 50",
        "watchdog_secs = 1\nping_secs = 1\nbackoff_min_ms = 50",
    );
    std::fs::write(&config, text).expect("config");
    let daemon = support::run_daemon(&config, &dir.path().join("state"), None, &[]);
    daemon.wait_for("no frame or pong", Duration::from_secs(30));
    daemon.wait_until(
        |_| deaf.seen.lock().expect("lock").len() >= 2,
        Duration::from_secs(30),
    );
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
}

/// A relay and an instance that send only junk once every 100 ms (a relay
/// message of no known type, an instance's `delete` of no status id, an
/// unknown event) get their `source:` silence alerts: bytes flow, frames
/// parse as JSON, but nothing is an event of the stream. Each such frame
/// was skipped and counted as data, and after 58 s neither source had an
/// alert or a reconnect.
#[test]
fn a_relay_or_an_instance_sending_only_junk_raises_its_source_alert() {
    let junk = |frames: &[&str]| -> Vec<String> {
        (0..300)
            .flat_map(|i| {
                [
                    frames[i % frames.len()].to_owned(),
                    "<sleep:100>".to_owned(),
                ]
            })
            .collect()
    };
    let relay = ScriptServer::start(
        vec![junk(&[r#"["X"]"#, r#"["X","outagewatch",{}]"#]); 4],
        true,
    );
    let instance = ScriptServer::start(
        vec![
            junk(&[
                r#"{"event":"delete"}"#,
                r#"{"event":"delete","payload":"{}"}"#,
                r#"{"event":"X","payload":"1"}"#,
                r#"{"event":"status.update","payload":"{}"}"#,
            ]);
            4
        ],
        false,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("ow.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[sources]]
kind = "nostr"
name = "n"
urls = ["ws://{relay}"]

[[sources]]
kind = "mastodon"
name = "m"
urls = ["ws://{instance}/api/v1/streaming"]

[health]
silence_secs = 2
grace_secs = 0
lag_secs = 100000000

[daemon]
status_secs = 0.2
"#,
            relay = relay.addr,
            instance = instance.addr,
        ),
    )
    .expect("config");
    let alerts = dir.path().join("alerts.jsonl");
    let daemon = support::start_daemon(&config, &dir.path().join("state"), &alerts);
    daemon.wait_until(
        |_| {
            std::fs::read_to_string(&alerts).is_ok_and(|a| {
                a.contains("\"service\":\"source:n\"") && a.contains("\"service\":\"source:m\"")
            })
        },
        Duration::from_secs(30),
    );
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    for source in ["source:n", "source:m"] {
        let fired = support::first_alert(&alerts, source);
        assert_eq!(fired["state"], "firing", "{fired}");
        assert!(
            fired["detail"]
                .as_str()
                .is_some_and(|d| d.contains("no usable frames")),
            "{fired}"
        );
    }
    assert!(log.contains("unknown message type"), "{log}");
    assert!(log.contains("unknown event"), "{log}");
    assert!(!log.contains("posts=1"), "junk is never a post: {log}");
}

/// A Mastodon instance sends twelve reports of a Discord outage, then for
/// 16 s only deletes, then nothing (it still answers pings). The alert
/// comes while no other status arrives, and the instance is not paged as
/// lagging: its events are dated by their arrival, so time passing moves
/// its watermark (a tick every 2 s), not its posts alone. Before, the
/// alert waited for the next status, and deletes alone looked like a
/// source falling behind. `record` of the same stream replays to the same
/// alert.
#[test]
fn a_surge_then_quiet_on_an_instance_fires_without_another_post() {
    let t0 = early_in_a_bucket();
    let script = || {
        let mut frames: Vec<String> = (0..12)
            .map(|i| {
                mastodon_update(
                    &i.to_string(),
                    &format!("user{i}@host{i}.net"),
                    t0,
                    &format!("<p>is discord down? try {i} failed</p>"),
                )
            })
            .collect();
        for i in 0..16 {
            frames.push("<sleep:1000>".to_owned());
            frames.push(
                json!({"stream": ["public"], "event": "delete", "payload": i.to_string()})
                    .to_string(),
            );
        }
        vec![frames]
    };
    let (live, recorded) = (
        ScriptServer::start(script(), false),
        ScriptServer::start(script(), false),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let health = "\n[health]\nsilence_secs = 3600\nlag_secs = 5\ngrace_secs = 0\n";
    let config_of = |name: &str, server: &ScriptServer| {
        let own = dir.path().join(name);
        std::fs::create_dir(&own).expect("dir");
        let config =
            one_mastodon_source(&own, &format!("ws://{}/api/v1/streaming", server.addr), "");
        let text = std::fs::read_to_string(&config).expect("config");
        std::fs::write(
            &config,
            text.replace(
                "\n[health]\nsilence_secs = 3600\nlag_secs = 100000000\n",
                health,
            ),
        )
        .expect("config");
        config
    };
    let (live_config, record_config) = (config_of("live", &live), config_of("record", &recorded));
    let out = dir.path().join("quiet.jsonl");
    let recorder = support::Daemon::start_with_env(
        &[
            "record",
            "--config",
            record_config.to_str().expect("utf8"),
            "--out",
            out.to_str().expect("utf8"),
        ],
        &[],
    );
    let alerts = dir.path().join("alerts.jsonl");
    let daemon = support::run_daemon(&live_config, &dir.path().join("state"), Some(&alerts), &[]);
    daemon.wait_until(
        |_| std::fs::read_to_string(&alerts).is_ok_and(|a| a.contains("\"firing\"")),
        Duration::from_secs(40),
    );
    let fired = support::first_alert(&alerts, "\"firing\"");
    assert_eq!(fired["service"], "discord", "{fired}");
    assert_eq!(fired["authors"], 12, "{fired}");
    // Within the bucket and its lateness (and a tick) of the reports, not
    // at some later post: none comes.
    let at_secs = |alert: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(alert["at"].as_str().expect("at"))
            .expect("rfc3339")
            .timestamp()
    };
    let at = at_secs(&fired);
    assert!(at <= t0 + 20, "fired at {at}, reports at {t0}: {fired}");
    // The deletes go on past `lag_secs`, then quiet: never lagging.
    std::thread::sleep(Duration::from_secs(20));
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    let all = std::fs::read_to_string(&alerts).expect("alerts");
    assert!(
        !all.contains("source:m"),
        "the instance was paged: {all}\n{log}"
    );
    let (status, _, log) = recorder.stop_with("INT", Duration::from_secs(20));
    assert!(status.success(), "{log}");
    let replayed_alerts = dir.path().join("replayed.jsonl");
    let replayed = std::process::Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .args(["replay", "--config"])
        .arg(&record_config)
        .arg("--state-dir")
        .arg(dir.path().join("replay-state"))
        .arg("--alerts")
        .arg(&replayed_alerts)
        .arg(&out)
        .env("RUST_LOG", "warn")
        .output()
        .expect("replay runs");
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    let again = support::first_alert(&replayed_alerts, "\"firing\"");
    assert_eq!(again["service"], "discord", "{again}");
    assert_eq!(again["authors"], 12, "{again}");
    // The recording's ticks close the bucket where the recorder's clock
    // said: within the same bound of the reports, not at the end of file.
    let replayed_at = at_secs(&again);
    assert!(
        replayed_at <= t0 + 20,
        "replay fired at {replayed_at}: {again}"
    );
    let recording = std::fs::read_to_string(&out).expect("recording");
    let ticks = recording
        .lines()
        .zip(recording.lines().skip(1))
        .filter(|(a, b)| a.contains("\"#clock\"") && b.contains("\"#clock\""))
        .count();
    assert!(
        ticks >= 5,
        "clock lines alone (ticks) in the recording:\n{recording}"
    );
}
