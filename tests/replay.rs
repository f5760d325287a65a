//! End-to-end: the real binary replaying recordings.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outagewatch"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo.jsonl.gz")
}

fn run(cmd: &mut Command) -> Output {
    let output = cmd.output().expect("binary runs");
    assert!(
        output.status.success(),
        "exit {:?}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn alerts(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each alert line is JSON"))
        .collect()
}

#[test]
fn demo_fires_the_discord_outage_and_nothing_else() {
    let out = run(bin().arg("replay").arg(demo()));
    let alerts = alerts(&out.stdout);
    let summary: Vec<(String, String)> = alerts
        .iter()
        .map(|a| {
            (
                a["service"].as_str().unwrap_or("?").to_owned(),
                a["state"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("discord".to_owned(), "firing".to_owned()),
            ("discord".to_owned(), "updated".to_owned()),
            ("discord".to_owned(), "resolved".to_owned())
        ],
        "one incident: it fires, escalates as the surge grows, resolves: {alerts:#?}"
    );
    let firing = &alerts[0];
    for later in &alerts[1..] {
        assert_eq!(firing["id"], later["id"], "one incident, one id");
    }
    assert_eq!(alerts[1]["severity"], "medium");
    let sequence: Vec<u64> = alerts
        .iter()
        .filter_map(|a| a["sequence"].as_u64())
        .collect();
    assert_eq!(sequence, vec![1, 2, 3]);
    // The surge starts at 14:17:00 in event time; it must fire within a minute.
    let at = firing["at"].as_str().expect("at");
    assert!(
        at.as_bytes() < b"2026-07-04T14:18:00Z".as_slice()
            && at.as_bytes() > b"2026-07-04T14:17:00Z".as_slice(),
        "fired at {at}"
    );
    let samples = firing["samples"].as_array().expect("samples");
    assert!(!samples.is_empty() && samples.len() <= 5);
    for sample in samples {
        let text = sample["text"].as_str().expect("text").to_lowercase();
        assert!(text.contains("discord"), "sample about discord: {text}");
        assert!(
            sample["uri"]
                .as_str()
                .expect("uri")
                .starts_with("at://did:plc:")
        );
    }
    for key in [
        "id",
        "service",
        "state",
        "at",
        "started_at",
        "severity",
        "reports",
        "authors",
        "rate_per_min",
        "baseline_per_min",
        "samples",
    ] {
        assert!(firing.get(key).is_some(), "alert schema field {key}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("replayed 16654 events"), "{stderr}");
    assert!(stderr.contains("malformed: 0"), "{stderr}");
}

#[test]
fn replay_is_byte_identical_run_after_run() {
    let first = run(bin().arg("replay").arg(demo()));
    let second = run(bin().arg("replay").arg(demo()));
    assert!(!first.stdout.is_empty());
    assert_eq!(first.stdout, second.stdout);
}

#[test]
fn malformed_lines_are_counted_named_and_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.jsonl");
    let mut file = std::fs::File::create(&path).expect("create");
    let good = r#"{"did":"did:plc:a","time_us":1783173600000000,"kind":"commit","commit":{"rev":"r","operation":"create","collection":"app.bsky.feed.post","rkey":"k","record":{"text":"hello"}}}"#;
    writeln!(file, "{good}").expect("write");
    writeln!(file, "{{\"did\":\"truncated").expect("write");
    file.write_all(b"{\"text\":\"caf\xc3\x28\"}\n")
        .expect("write");
    writeln!(file, r#"{{"did":"d","time_us":1783173600000001,"kind":"commit","commit":{{"operation":"create","collection":"app.bsky.feed.post","rkey":"k2","record":{{"langs":["en"]}}}}}}"#).expect("write");
    let huge = format!("{{\"did\":\"{}\"}}", "x".repeat(3 * 1024 * 1024));
    writeln!(file, "{huge}").expect("write");
    writeln!(
        file,
        "{}",
        good.replace("\"rkey\":\"k\"", "\"rkey\":\"k3\"")
    )
    .expect("write");
    writeln!(file, "{good}").expect("write");
    drop(file);
    let out = run(bin().arg("replay").arg(&path));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = path.display().to_string();
    assert!(stderr.contains("replayed 7 events"), "{stderr}");
    assert!(
        stderr.contains("duplicate posts dropped: 1"),
        "the repeated line: {stderr}"
    );
    assert!(
        stderr.contains("posts 2 "),
        "both good posts processed: {stderr}"
    );
    assert!(stderr.contains("malformed: 4"), "{stderr}");
    assert!(stderr.contains(&format!("{name}:2: bad JSON")), "{stderr}");
    assert!(
        stderr.contains(&format!("{name}:3: invalid UTF-8")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{name}:4: post record has no `text`")),
        "{stderr}"
    );
    let oversized = format!("{name}:5: frame of {} bytes exceeds the limit", huge.len());
    assert!(stderr.contains(&oversized), "{stderr}");
}

/// A file none of whose lines is a frame is not a recording: an error
/// naming it (exit 1), while a file with one good line beside bad ones
/// (above) is a replay with malformed lines (exit 0).
#[test]
fn a_file_with_no_frame_at_all_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "# notes\n\n{\"foo\":1}\nplain text\n").expect("write");
    let out = bin().arg("replay").arg(&path).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let name = path.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{name}: none of its 4 lines is a frame (3 malformed"
        )),
        "{stderr}"
    );
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").expect("write");
    run(bin().arg("replay").arg(&empty));
}

#[test]
fn unreadable_input_is_a_clear_error() {
    let out = bin()
        .args(["replay", "/nonexistent/file.jsonl"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open /nonexistent/file.jsonl"),
        "{stderr}"
    );
}

/// `record --config` records the configuration's sources: the flags that
/// describe the one Jetstream source recorded without it are a usage
/// error with it, before anything connects or the file is created.
#[test]
fn record_config_refuses_the_flags_of_a_single_jetstream_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("never.jsonl");
    let flags: [&[&str]; 5] = [
        &["--jetstream", "ws://127.0.0.1:9"],
        &["--name", "bluesky"],
        &["--protocol", "v1"],
        &["--no-compress"],
        &["--watchdog-secs", "5"],
    ];
    for flag in flags {
        let output = bin()
            .args(["record", "--config", "never-read.toml", "--out"])
            .arg(&out)
            .args(flag)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag:?}: {stderr}");
        assert!(
            stderr.contains(flag[0]) && stderr.contains("cannot be used with"),
            "{flag:?}: {stderr}"
        );
        assert!(!out.exists(), "{flag:?}");
    }
}

/// The history's flags do nothing to a file replay: a usage error naming
/// the flag (`--since 1h FILE` replayed the whole file, exit 0).
#[test]
fn history_flags_on_a_file_replay_are_refused() {
    let flags: [&[&str]; 6] = [
        &["--since", "1h"],
        &["--until", "1h"],
        &["--record", "never-written.jsonl"],
        &["--protocol", "v1"],
        &["--no-compress"],
        &["--tail-idle-secs", "9"],
    ];
    for flag in flags {
        let out = bin()
            .arg("replay")
            .args(flag)
            .arg(demo())
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag:?}: {stderr}");
        assert!(
            stderr.contains(flag[0]) && stderr.contains("cannot be used with"),
            "{flag:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{flag:?}: nothing replayed");
    }
    assert!(!Path::new("never-written.jsonl").exists());
}

#[test]
fn stdin_and_alerts_file_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alerts_path = dir.path().join("alerts.jsonl");
    let mut child = bin()
        .args(["replay", "-", "--alerts"])
        .arg(&alerts_path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let demo = std::fs::read(demo()).expect("demo");
    let mut stdin = child.stdin.take().expect("stdin");
    std::thread::spawn(move || stdin.write_all(&demo));
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "alerts went to the file");
    let written = std::fs::read(&alerts_path).expect("alerts file");
    assert_eq!(alerts(&written).len(), 3);
}

#[test]
fn a_restart_with_the_same_state_continues_where_it_stopped() {
    // Split the demo in two recordings at a line in the middle of the surge,
    // replay them one after the other with one state directory, and expect
    // exactly the alerts of one uninterrupted replay.
    let text = {
        let mut s = String::new();
        let file = std::fs::File::open(demo()).expect("demo");
        std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(file), &mut s)
            .expect("gunzip");
        s
    };
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines.len() * 19 / 30;
    let dir = tempfile::tempdir().expect("tempdir");
    let first = dir.path().join("first.jsonl");
    let second = dir.path().join("second.jsonl");
    std::fs::write(&first, lines[..cut].join("\n")).expect("write");
    std::fs::write(&second, lines[cut..].join("\n")).expect("write");
    let state = dir.path().join("state");

    let whole = run(bin().arg("replay").arg(demo()));
    let a = run(bin()
        .arg("replay")
        .arg(&first)
        .arg("--state-dir")
        .arg(&state));
    let b = run(bin()
        .arg("replay")
        .arg(&second)
        .arg("--state-dir")
        .arg(&state));
    let mut resumed = alerts(&a.stdout);
    resumed.extend(alerts(&b.stdout));
    assert_eq!(resumed, alerts(&whole.stdout));
}

#[test]
fn the_committed_demo_is_what_its_generator_makes() {
    let mut text = String::new();
    let file = std::fs::File::open(demo()).expect("demo");
    std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(file), &mut text)
        .expect("gunzip");
    let mut generated = String::new();
    outagewatch_synth::Generator::new(outagewatch_synth::demo_config()).run(|frame| {
        generated.push_str(&frame);
        generated.push('\n');
    });
    assert!(
        text == generated,
        "data/demo.jsonl.gz differs from `cargo run --example make_demo`; regenerate it"
    );
}

#[test]
fn check_reads_stdin_and_reports_a_line_that_is_not_utf8() {
    let mut child = bin()
        .arg("check")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"is twitter down?\ncaf\xc3\x28 instagram not loading\nthe Dow is down\n")
        .expect("write");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let results = alerts(&out.stdout);
    let reports: Vec<bool> = results
        .iter()
        .map(|r| r["report"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(
        reports,
        vec![true, true, false],
        "every line answered, in order"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stdin line 2: invalid UTF-8"), "{stderr}");
}

/// The demo's frames, one per line.
fn demo_lines() -> Vec<String> {
    let file = std::fs::File::open(demo()).expect("demo");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(file), &mut text)
        .expect("gunzip");
    text.lines().map(str::to_owned).collect()
}

fn jetstream_post(did: &str, rkey: &str, time_us: i64, text: &str) -> String {
    serde_json::json!({
        "did": did, "time_us": time_us, "kind": "commit",
        "commit": {"rev": "r", "operation": "create", "collection": "app.bsky.feed.post",
                   "rkey": rkey, "record": {"text": text, "langs": ["en"]}}
    })
    .to_string()
}

/// 2100-01-01 and 1990-01-01, in µs.
const YEAR_2100_US: i64 = 4_102_444_800_000_000;
const YEAR_1990_US: i64 = 631_152_000_000_000;

fn replay_state(lines: &[String], dir: &Path, name: &str) -> (String, String, PathBuf) {
    let state = dir.join(format!("{name}-state"));
    let (stdout, stderr) = replay_with(
        lines,
        dir,
        name,
        &["--state-dir".as_ref(), state.as_os_str()],
    );
    (stdout, stderr, state)
}

/// `lines` replayed as a file of `dir` with `args` after it: (stdout,
/// stderr).
fn replay_with(lines: &[String], dir: &Path, name: &str, args: &[&OsStr]) -> (String, String) {
    let file = dir.join(format!("{name}.jsonl"));
    std::fs::write(&file, lines.join("\n")).expect("write");
    let out = run(bin().arg("replay").arg(&file).args(args));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--config` with a configuration in `dir` that lifts the cap on one
/// server's authors (`max_authors_per_server`, 2 by default).
fn cap_lifted(dir: &Path) -> [std::ffi::OsString; 2] {
    let config = dir.join("cap-lifted.toml");
    std::fs::write(&config, "[detector]\nmax_authors_per_server = 10000\n").expect("config");
    ["--config".into(), config.into()]
}

fn cursors(state: &Path) -> std::collections::BTreeMap<String, i64> {
    use outagewatch::state::{SledStore, Store};
    let store = SledStore::open(state).expect("state opens");
    store
        .checkpoint()
        .expect("checkpoint")
        .expect("saved")
        .cursors
}

#[test]
fn one_post_dated_2100_or_1990_keeps_the_demos_alerts_and_cursor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = demo_lines();
    let (want, _, clean_state) = replay_state(&demo, dir.path(), "clean");
    assert_eq!(alerts(want.as_bytes()).len(), 3, "{want}");
    let clean_cursor = cursors(&clean_state);
    // Reports of the very service that surges, dated far ahead and far back,
    // in the middle of the stream and (harder: no watermark yet) first.
    let future = jetstream_post("did:plc:liar", "f1", YEAR_2100_US, "discord is down");
    let past = jetstream_post("did:plc:old", "p1", YEAR_1990_US, "discord is down");
    for (name, at) in [("middle", demo.len() / 2), ("first", 0)] {
        let mut lines = demo.clone();
        lines.insert(at, past.clone());
        lines.insert(at, future.clone());
        let (got, stderr, state) = replay_state(&lines, dir.path(), name);
        assert_eq!(
            got, want,
            "{name}: the same alerts, byte for byte\n{stderr}"
        );
        let cursor = cursors(&state);
        assert!(
            cursor.values().all(|&c| c < YEAR_2100_US / 2),
            "{name}: the saved cursor does not resume from 2100: {cursor:?}"
        );
        if name == "middle" {
            assert_eq!(
                cursor.values().collect::<Vec<_>>(),
                clean_cursor.values().collect::<Vec<_>>(),
                "{stderr}"
            );
            assert!(stderr.contains("future (quarantined"), "{stderr}");
            assert!(stderr.contains("late 0 | stale 1 | future 1"), "{stderr}");
        }
    }
}

/// A multi-source recording with clock lines: Jetstream (the demo, with
/// arrival times), a Mastodon instance and a Nostr relay, in arrival order.
struct Recording {
    /// (arrival µs, source, protocol, frame)
    frames: Vec<(i64, &'static str, &'static str, String)>,
}

impl Recording {
    fn lines(&self) -> Vec<String> {
        let mut frames = self.frames.clone();
        frames.sort_by_key(|f| f.0);
        let mut out = Vec::new();
        for (arrival, source, protocol, frame) in frames {
            let mut clock = serde_json::json!({
                "kind": "#clock", "time_us": arrival, "source": source, "protocol": protocol
            });
            if protocol == "mastodon" {
                clock["instance"] = "social.example".into();
            }
            out.push(clock.to_string());
            out.push(frame);
        }
        out
    }
}

fn mastodon_status(id: usize, claimed_us: i64, text: &str) -> String {
    mastodon_status_by(id, &format!("user{id}"), claimed_us, text)
}

/// A status by `acct` (a local account's name, or `name@domain` for one
/// of another server).
fn mastodon_status_by(id: usize, acct: &str, claimed_us: i64, text: &str) -> String {
    let created = chrono::DateTime::from_timestamp_micros(claimed_us)
        .expect("time")
        .to_rfc3339();
    let status = serde_json::json!({
        "id": id.to_string(), "created_at": created, "content": format!("<p>{text}</p>"),
        "spoiler_text": "", "language": "en", "tags": [], "visibility": "public",
        "account": {"id": "1", "acct": acct, "username": "u"},
        "uri": format!("https://social.example/users/u{id}/statuses/{id}"),
        "url": null, "reblog": null
    });
    serde_json::json!({"stream": ["public"], "event": "update", "payload": status.to_string()})
        .to_string()
}

fn nostr_note(seed: usize, claimed_us: i64, text: &str) -> String {
    use k256::schnorr::SigningKey;
    use sha2::Digest;
    let secret: [u8; 32] = sha2::Sha256::digest(format!("key {seed}").as_bytes()).into();
    let key = SigningKey::from_bytes(&secret.into()).expect("key");
    let pubkey = hex::encode(key.verifying_key().to_bytes());
    let created = claimed_us / 1_000_000;
    let tags: Vec<Vec<String>> = vec![];
    let id = outagewatch::source::nostr::verify::event_id(&pubkey, created, 1, &tags, text);
    let sig = key.sign_raw(&id, &[1; 32]).expect("sign");
    serde_json::json!(["EVENT", "outagewatch", {
        "id": hex::encode(id), "pubkey": pubkey, "created_at": created, "kind": 1,
        "tags": tags, "content": text, "sig": hex::encode(sig.to_bytes())
    }])
    .to_string()
}

/// The summary line of one source's late/stale/future counts.
fn source_line<'a>(stderr: &'a str, source: &str) -> &'a str {
    stderr
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("source {source}:")))
        .unwrap_or("")
}

#[test]
fn far_future_and_far_past_posts_on_every_source_change_no_alert_and_no_other_sources_counts() {
    let demo = demo_lines();
    let time_of = |frame: &str| {
        serde_json::from_str::<serde_json::Value>(frame).expect("demo JSON")["time_us"]
            .as_i64()
            .expect("time_us")
    };
    let mut base = Recording { frames: Vec::new() };
    for frame in &demo {
        // Arrival: a quarter second after the server's time, whole ms.
        let arrival = (time_of(frame) / 1000) * 1000 + 250_000;
        base.frames
            .push((arrival, "bluesky", "jetstream", frame.clone()));
    }
    let (start, end) = (time_of(&demo[0]), time_of(&demo[demo.len() - 1]));
    // Mastodon and Nostr chatter all along (authors' clocks jittered by up
    // to ±4 minutes), with some discord reports during the surge.
    for i in 0..180 {
        let arrival = start + i as i64 * 10_000_000;
        let jitter = ((i as i64 * 7919) % 480 - 240) * 1_000_000;
        let surge = (1020..1500).contains(&(i * 10)) && i % 2 == 0;
        let text = if surge {
            "is discord down for anyone?"
        } else {
            "lovely morning"
        };
        base.frames.push((
            arrival,
            "social",
            "mastodon",
            mastodon_status(i, arrival + jitter, text),
        ));
        base.frames.push((
            arrival + 5_000_000,
            "relay",
            "nostr",
            nostr_note(i, arrival - jitter, text),
        ));
    }
    // Control: three extra neutral posts per fediverse source, honest clocks.
    let middle = (start + end) / 2;
    let mut control = Recording {
        frames: base.frames.clone(),
    };
    let mut attacked = Recording {
        frames: base.frames.clone(),
    };
    for (k, arrival) in [middle, middle + 1_000, middle + 2_000]
        .into_iter()
        .enumerate()
    {
        control.frames.push((
            arrival,
            "social",
            "mastodon",
            mastodon_status(900 + k, arrival, "nice tea"),
        ));
        control.frames.push((
            arrival,
            "relay",
            "nostr",
            nostr_note(900 + k, arrival, "nice tea"),
        ));
    }
    // Attacked: the same posts claiming 2100 (counted at arrival all the
    // same), one claiming 1990 (a backfill) in place of the third, and on
    // Jetstream reports dated 2100 and 1990 (server time: quarantined, stale).
    for (k, arrival) in [middle, middle + 1_000].into_iter().enumerate() {
        attacked.frames.push((
            arrival,
            "social",
            "mastodon",
            mastodon_status(900 + k, YEAR_2100_US, "nice tea"),
        ));
        attacked.frames.push((
            arrival,
            "relay",
            "nostr",
            nostr_note(900 + k, YEAR_2100_US, "nice tea"),
        ));
    }
    attacked.frames.push((
        middle + 2_000,
        "social",
        "mastodon",
        mastodon_status(902, YEAR_1990_US, "nice tea"),
    ));
    attacked.frames.push((
        middle + 2_000,
        "relay",
        "nostr",
        nostr_note(902, YEAR_1990_US, "nice tea"),
    ));
    attacked.frames.push((
        middle,
        "bluesky",
        "jetstream",
        jetstream_post("did:plc:liar", "f", YEAR_2100_US, "discord is down"),
    ));
    attacked.frames.push((
        middle,
        "bluesky",
        "jetstream",
        jetstream_post("did:plc:old", "p", YEAR_1990_US, "discord is down"),
    ));
    // The control minus its third pair: what the backfill drop leaves.
    let mut without_third = control.frames.clone();
    without_third.retain(|f| !(f.0 == middle + 2_000 && f.1 != "bluesky"));
    let control = Recording {
        frames: without_third,
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let (want, want_err, _) = replay_state(&control.lines(), dir.path(), "control");
    let (got, got_err, state) = replay_state(&attacked.lines(), dir.path(), "attacked");
    let fired = alerts(want.as_bytes());
    assert!(
        fired
            .iter()
            .any(|a| a["service"] == "discord" && a["state"] == "firing"),
        "the control fires: {want}\n{want_err}"
    );
    assert_eq!(got, want, "the same alerts, byte for byte\n{got_err}");
    for source in ["social", "relay"] {
        assert_eq!(
            source_line(&got_err, source),
            source_line(&want_err, source),
            "{got_err}"
        );
        assert!(
            source_line(&got_err, source).contains("future 0"),
            "{got_err}"
        );
    }
    assert!(
        source_line(&got_err, "bluesky").contains("stale 1 | future 1"),
        "{got_err}"
    );
    assert!(
        source_line(&want_err, "bluesky").contains("stale 0 | future 0"),
        "{want_err}"
    );
    assert!(got_err.contains("backfill 2"), "{got_err}");
    let cursor = cursors(&state);
    assert_eq!(cursor.len(), 3, "{cursor:?}");
    assert!(
        cursor.values().all(|&c| c <= end + 300_000_000),
        "{cursor:?}"
    );
}

#[test]
fn forged_nostr_notes_in_a_recording_are_counted_by_reason() {
    let arrival = 1_783_174_000_000_000;
    let good = nostr_note(1, arrival, "discord down");
    let mut value: serde_json::Value = serde_json::from_str(&good).expect("JSON");
    value[2]["content"] = "discord down!!".into();
    let rewritten = value.to_string();
    value[2]["sig"] = "00".into();
    let zero_sig = value.to_string();
    let rec = Recording {
        frames: vec![
            (arrival, "relay", "nostr", good.clone()),
            (arrival + 1, "relay", "nostr", good),
            (arrival + 2, "relay", "nostr", rewritten),
            (arrival + 3, "relay", "nostr", zero_sig),
        ],
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, stderr, _) = replay_state(&rec.lines(), dir.path(), "forged");
    assert!(stderr.contains("posts 1 "), "{stderr}");
    assert!(stderr.contains("duplicate posts dropped: 1"), "{stderr}");
    assert!(
        stderr.contains("failed verification: nostr_id_mismatch 1, nostr_sig_malformed 1"),
        "{stderr}"
    );
}

/// Every distinct alert once, in the order first seen: a resumed run may
/// deliver again what the killed one had not acknowledged (at least once).
fn distinct(alerts: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    let mut seen = Vec::new();
    for alert in alerts {
        if !seen.contains(&alert) {
            seen.push(alert);
        }
    }
    seen
}

#[test]
fn a_replay_killed_mid_file_and_run_again_ends_with_the_same_alerts() {
    use std::io::BufRead;
    let whole = alerts(&run(bin().arg("replay").arg(demo())).stdout);
    assert_eq!(whole.len(), 3, "the demo's firing, update and resolution");
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    // Paced (30 minutes of event time in about 3 s) so the kill lands after
    // the second alert and before the end, with closed buckets not saved yet.
    let mut child = bin()
        .arg("replay")
        .arg(demo())
        .arg("--state-dir")
        .arg(&state)
        .args(["--speed", "600"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut killed_run = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        killed_run.push(line.expect("line"));
        if killed_run.len() == 2 {
            break;
        }
    }
    child.kill().expect("kill");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "killed before the end: {status}");
    assert_eq!(killed_run.len(), 2, "{killed_run:?}");
    let again = run(bin()
        .arg("replay")
        .arg(demo())
        .arg("--state-dir")
        .arg(&state));
    let mut all = alerts(killed_run.join("\n").as_bytes());
    all.extend(alerts(&again.stdout));
    assert_eq!(distinct(all), whole);
}

#[test]
fn a_pipeline_lost_between_batches_resumes_from_the_last_one_with_the_same_alerts() {
    use outagewatch::pipeline::{SAVE_EVERY_LIVE, SAVE_EVERY_REPLAY};
    let lines: Vec<_> = demo_lines().into_iter().map(|l| (l, None)).collect();
    for save_every in [SAVE_EVERY_LIVE, SAVE_EVERY_REPLAY] {
        let whole = lost_and_resumed(&lines, save_every, None);
        assert_eq!(whole.len(), 3, "{whole:?}");
        // Lost at many places, before, during and after the outage: the
        // frames after the last saved batch are decided again, the same way,
        // and the ones before it are neither lost nor counted twice.
        for cut in (1..10).map(|k| lines.len() * k / 10) {
            let resumed = lost_and_resumed(&lines, save_every, Some(cut));
            assert_eq!(
                resumed, whole,
                "saving every {save_every} buckets, lost after line {cut}"
            );
        }
    }
}

/// A recording with clock lines, resumed: every frame is read again from
/// the start, each with its old arrival time, while the source's clock
/// is the one saved at the cut. The frames read again once taught the
/// clock how far the source runs behind its arrival against the saved
/// (later) watermark, so it seemed to run minutes ahead, and for the next
/// five minutes every late post was taken for a catch-up and dropped as
/// stale: a surge of late reports after the cut paged in the whole run and
/// not in the resumed one.
#[test]
fn a_resumed_replay_with_arrival_times_counts_late_posts_as_the_whole_run_does() {
    use outagewatch::pipeline::{SAVE_EVERY_LIVE, SAVE_EVERY_REPLAY};
    const S: i64 = 1_000_000;
    let start = 1_783_173_600 * S;
    let mut lines = Vec::new();
    let mut surge_at = None;
    for half in 0..3_000_i64 {
        let arrival = start + half * S / 2;
        // Background: 40 authors, a post every 0.5 s, 0.3 s on the way.
        let did = format!("did:plc:bg{}", half % 40);
        let text = format!("hello world, a nice day number {half}");
        let post = jetstream_post(&did, &format!("b{half}"), arrival - 3 * S / 10, &text);
        lines.push((post, Some(arrival)));
        // From 1,000 s: 30 reports by new authors, one a second, each
        // delivered 20 s after it was posted (late: its bucket has closed).
        if (2_000..2_060).contains(&half) && half % 2 == 0 {
            surge_at.get_or_insert(lines.len());
            let did = format!("did:plc:rep{half}");
            let text = "is discord down for anyone else";
            let post = jetstream_post(&did, &format!("r{half}"), arrival - 20 * S, text);
            lines.push((post, Some(arrival)));
        }
    }
    let surge_at = surge_at.expect("surge");
    for save_every in [SAVE_EVERY_LIVE, SAVE_EVERY_REPLAY] {
        let whole = lost_and_resumed(&lines, save_every, None);
        assert!(
            whole
                .iter()
                .any(|a| a.contains("\"firing\"") && a.contains("discord")),
            "the late reports page: {whole:?}"
        );
        let cuts = (1..10)
            .map(|k| surge_at * k / 10)
            .chain([surge_at - 100, surge_at]);
        for cut in cuts {
            let resumed = lost_and_resumed(&lines, save_every, Some(cut));
            assert_eq!(
                resumed, whole,
                "saving every {save_every} buckets, lost after line {cut}"
            );
        }
    }
}

/// The alerts (as JSON) of Jetstream frames, each with its arrival time
/// (a recording's clock line) if any, through a pipeline that, with
/// `cut`, is dropped without `finish` after `cut` frames, then reopened on
/// its store and fed every frame from the start, as `replay` would be.
fn lost_and_resumed(
    lines: &[(String, Option<i64>)],
    save_every: usize,
    cut: Option<usize>,
) -> Vec<String> {
    use std::sync::Arc;

    use outagewatch::matcher::Matcher;
    use outagewatch::pipeline::{Emitted, Pipeline, PipelineConfig, Received};
    use outagewatch::state::SledStore;

    let config = PipelineConfig {
        save_every,
        ..PipelineConfig::new()
    };
    let matcher = Arc::new(Matcher::embedded().expect("patterns"));
    let open = |dir: &Path| {
        let store = SledStore::open(dir).expect("store");
        Pipeline::open(Arc::clone(&matcher), config.clone(), store).expect("pipeline")
    };
    let json = |emitted: Vec<Emitted>| {
        emitted
            .into_iter()
            .map(|e| serde_json::to_string(&e.alert).expect("alert JSON"))
            .collect::<Vec<_>>()
    };
    let feed = |pipeline: &mut Pipeline<SledStore>,
                lines: &[(String, Option<i64>)],
                out: &mut Vec<String>| {
        for (n, (line, arrival_us)) in lines.iter().enumerate() {
            let received = Received {
                arrival_us: *arrival_us,
                ..Received::jetstream()
            };
            let emitted = pipeline
                .process_frame("demo", n as u64, line.as_bytes(), &received)
                .expect("process");
            out.extend(json(emitted));
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut alerts = Vec::new();
    if let Some(cut) = cut {
        let mut lost = open(dir.path());
        feed(&mut lost, &lines[..cut], &mut alerts);
        // Dropped without `finish`: whatever was not saved is gone.
    }
    let mut pipeline = open(dir.path());
    feed(&mut pipeline, lines, &mut alerts);
    alerts.extend(json(pipeline.finish().expect("finish")));
    alerts
}

#[test]
fn a_post_delivered_again_within_a_long_lateness_is_counted_once() {
    use std::sync::Arc;

    use outagewatch::matcher::Matcher;
    use outagewatch::pipeline::{Pipeline, PipelineConfig, Received};
    use outagewatch::state::SledStore;

    // Posts may be up to an hour late here: the same post delivered again
    // 20 minutes on (past the de-duplication's own 10 minutes) is still
    // one post.
    let mut config = PipelineConfig::new();
    config.window.max_late_secs = 3600;
    let matcher = Arc::new(Matcher::embedded().expect("patterns"));
    let store = SledStore::temporary().expect("store");
    let mut pipeline = Pipeline::open(matcher, config, store).expect("pipeline");
    let start = 1_783_173_600_000_000_i64;
    let again = jetstream_post("did:plc:p", "p1", start, "is discord down?");
    let mut frames = vec![again.clone()];
    for i in 1..=120 {
        let did = format!("did:plc:{}", i % 5);
        let at = start + i * 10_000_000;
        frames.push(jetstream_post(&did, &format!("k{i}"), at, "lunch was good"));
    }
    frames.push(again);
    for (n, frame) in frames.iter().enumerate() {
        pipeline
            .process_frame("test", n as u64, frame.as_bytes(), &Received::jetstream())
            .expect("process");
    }
    let stats = pipeline.stats();
    assert_eq!(stats.duplicates, 1, "{stats:?}");
    assert_eq!(stats.posts, 121, "{stats:?}");
}

/// A relay's catch-up after a 9.5-minute disconnect: the notes written
/// meanwhile arrive in one second, before the subscription's `EOSE`.
/// Marked as stored (clock lines with `stored_since`, as the live source
/// sees them), they are placed at their claimed times within the gap and
/// raise no alert, as when they arrived one by one; counted at their
/// arrival, 8 reports by 8 authors written over 9 minutes made a surge.
#[test]
fn a_relays_catch_up_is_spread_over_the_gap_not_counted_at_arrival() {
    const S: i64 = 1_000_000;
    let t0: i64 = 1_783_170_000 * S;
    let mut notes: Vec<(i64, String)> = (0..240)
        .map(|k| {
            let at = t0 + k as i64 * 10 * S;
            (at, nostr_note(k, at, &format!("lunch was great today {k}")))
        })
        .collect();
    for j in 0..8 {
        let at = t0 + (1200 + j * 70) * S;
        notes.push((
            at,
            nostr_note(1000 + j as usize, at, "is discord down? it won't load"),
        ));
    }
    notes.sort_by_key(|n| n.0);
    let clock = |arrival: i64, stored_since: Option<i64>| {
        let mut line = serde_json::json!({
            "kind": "#clock", "time_us": arrival, "source": "relay", "protocol": "nostr"
        });
        if let Some(since) = stored_since {
            line["stored_since"] = since.into();
        }
        line.to_string()
    };
    // (gap, whether the catch-up is marked as stored)
    let recording = |gap: Option<(i64, i64)>, stored: bool, newest_first: bool| {
        let mut lines = Vec::new();
        let mut pending = Vec::new();
        let mut last_arrival = t0;
        for (at, note) in &notes {
            if let Some((from, to)) = gap {
                if (from..to).contains(at) {
                    pending.push(note.clone());
                    continue;
                }
                if *at >= to && !pending.is_empty() {
                    // The REQ asked from the watermark less 5 s.
                    let since = (last_arrival / S - 5) * S;
                    lines.push(clock(to, stored.then_some(since)));
                    if newest_first {
                        pending.reverse();
                    }
                    lines.append(&mut pending);
                }
            }
            last_arrival = at + S;
            lines.push(clock(last_arrival, None));
            lines.push(note.clone());
        }
        lines
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let gap = Some((t0 + 1200 * S, t0 + 1770 * S));
    // The 8 keys come through one relay, which by default counts as at
    // most 2 authors (tested in `made_up_accounts_of_one_server_page_nobody`):
    // lifted here, where what is tested is when notes count.
    let lifted = cap_lifted(dir.path());
    let discord = |lines: Vec<String>, name: &str| {
        let args = lifted.each_ref().map(|a| a.as_os_str());
        let (stdout, stderr) = replay_with(&lines, dir.path(), name, &args);
        let fired = alerts(stdout.as_bytes())
            .into_iter()
            .filter(|a| a["service"] == "discord")
            .count();
        (fired, stderr)
    };
    let (spread, stderr) = discord(recording(None, false, false), "spread");
    assert_eq!(spread, 0, "{stderr}");
    let (caught_up, stderr) = discord(recording(gap, true, false), "stored");
    assert_eq!(caught_up, 0, "the catch-up counts as the spread: {stderr}");
    // Sent newest first (as NIP-01 suggests): the first stored note had
    // moved the watermark to its arrival, and the rest of the catch-up
    // was stale.
    let (caught_up, stderr) = discord(recording(gap, true, true), "newest-first");
    assert_eq!(caught_up, 0, "{stderr}");
    assert!(
        stderr.contains("source relay: late 0 | stale 0"),
        "{stderr}"
    );
    // The same frames counted at their arrival: the false surge.
    let (at_arrival, stderr) = discord(recording(gap, false, false), "at-arrival");
    assert!(at_arrival > 0, "{stderr}");
}

/// A replay read again on its own state, the file spelled another way
/// (`dir/./demo.jsonl.gz`, then `dir/demo.jsonl.gz`), counts nothing a
/// second time: the file is one source by its canonical path. Named as
/// typed, the second spelling was a new source, and the demo's last ten
/// minutes counted again as late posts.
#[test]
fn a_file_read_again_under_another_spelling_counts_nothing_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("demo.jsonl.gz");
    std::fs::copy(demo(), &copy).expect("copy the demo");
    let state = dir.path().join("state");
    let spelled = dir.path().join(".").join("demo.jsonl.gz");
    let first = run(bin()
        .arg("replay")
        .arg(&spelled)
        .arg("--state-dir")
        .arg(&state));
    assert!(!alerts(&first.stdout).is_empty(), "the demo fires");
    let again = run(bin()
        .arg("replay")
        .arg(&copy)
        .arg("--state-dir")
        .arg(&state));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(alerts(&again.stdout).is_empty(), "{stderr}");
    assert!(stderr.contains("late 0 |"), "{stderr}");
}

/// Accounts cost nothing on Nostr (a key), on a Mastodon server or as a
/// Bluesky `did:web` (to whoever holds the domain): twelve made-up authors
/// through one relay, or on the subdomains of one domain, are one server's
/// voice and page nobody
/// (`max_authors_per_server`, 2 a window). Twelve authors of twelve
/// domains are twelve people and page; so do the relay's twelve once the
/// cap is lifted, which shows the cap is what keeps them quiet.
#[test]
fn made_up_accounts_of_one_server_page_nobody() {
    const S: i64 = 1_000_000;
    let t0: i64 = 1_783_180_000 * S;
    let report = "is discord down? cant log in";
    // Twelve reports within 48 s, then two minutes of chatter that close
    // their buckets.
    let recording = |protocol: &'static str, post: &dyn Fn(usize, i64, &str) -> String| {
        let source = if protocol == "nostr" {
            "relay"
        } else {
            "social"
        };
        let mut frames: Vec<(i64, &'static str, &'static str, String)> = (0..12)
            .map(|k| {
                let at = t0 + k as i64 * 4 * S;
                (at, source, protocol, post(k, at, report))
            })
            .collect();
        frames.extend((0..12).map(|k| {
            let at = t0 + (60 + k as i64 * 10) * S;
            (at, source, protocol, post(100 + k, at, "good morning"))
        }));
        Recording { frames }.lines()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let lifted = cap_lifted(dir.path());
    let discord = |lines: Vec<String>, name: &str, args: &[&OsStr]| {
        let (stdout, stderr) = replay_with(&lines, dir.path(), name, args);
        let fired: Vec<serde_json::Value> = alerts(stdout.as_bytes())
            .into_iter()
            .filter(|a| a["service"] == "discord" && a["state"] == "firing")
            .collect();
        (fired, stderr)
    };

    let keys = recording("nostr", &|k, at, text| nostr_note(5000 + k, at, text));
    let (fired, stderr) = discord(keys.clone(), "keys", &[]);
    assert!(fired.is_empty(), "{fired:?}\n{stderr}");
    assert!(
        stderr.contains("reports 12"),
        "all twelve are reports: {stderr}"
    );
    let (fired, stderr) = discord(
        keys,
        "keys-lifted",
        &lifted.each_ref().map(|a| a.as_os_str()),
    );
    assert_eq!(fired.len(), 1, "{stderr}");
    // Paged at the tenth (a first start doubles `min_authors`).
    assert!(fired[0]["authors"].as_u64() >= Some(10), "{:?}", fired[0]);

    let by = |domain: fn(usize) -> String| {
        move |k: usize, at: i64, text: &str| {
            mastodon_status_by(k, &format!("user{k}@{}", domain(k)), at, text)
        }
    };
    let subdomains = recording("mastodon", &by(|k| format!("a{k}.evil.social")));
    let (fired, stderr) = discord(subdomains, "subdomains", &[]);
    assert!(fired.is_empty(), "{fired:?}\n{stderr}");
    let domains = recording("mastodon", &by(|k| format!("town{k}.social")));
    let (fired, stderr) = discord(domains, "domains", &[]);
    assert_eq!(fired.len(), 1, "{stderr}");
    assert!(fired[0]["authors"].as_u64() >= Some(10), "{:?}", fired[0]);

    // Bluesky: `did:web` identities minted under one domain are its
    // server's; `did:plc` accounts each count alone.
    let did = |method: fn(usize) -> String| {
        move |k: usize, at: i64, text: &str| jetstream_post(&method(k), &format!("k{k}"), at, text)
    };
    let minted = recording("jetstream", &did(|k| format!("did:web:a{k}.evil.social")));
    let (fired, stderr) = discord(minted, "did-web", &[]);
    assert!(fired.is_empty(), "{fired:?}\n{stderr}");
    assert!(stderr.contains("reports 12"), "{stderr}");
    let plc = recording("jetstream", &did(|k| format!("did:plc:person{k}")));
    let (fired, stderr) = discord(plc, "did-plc", &[]);
    assert_eq!(fired.len(), 1, "{stderr}");
    assert!(fired[0]["authors"].as_u64() >= Some(10), "{:?}", fired[0]);
}

/// `--speed` paces on the events' own times: it paced on the newest
/// watermark, which moves only once three authors agree, so a recording
/// of one author replayed at full speed. Four posts 10 s apart at
/// `--speed 20` take at least three waits of half a second (a lower
/// bound: no sleep is shorter than asked; nothing here times how fast).
#[test]
fn speed_paces_a_recording_of_one_author() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("one.jsonl");
    let start: i64 = 1_783_173_600_000_000;
    let lines: Vec<String> = (0..4)
        .map(|i| {
            jetstream_post(
                "did:plc:only",
                &format!("k{i}"),
                start + i * 10_000_000,
                "lunch was good",
            )
        })
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").expect("write");
    let began = std::time::Instant::now();
    run(bin().args(["replay", "--speed", "20"]).arg(&file));
    let took = began.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(1_500),
        "30 s of event time at 20x took {took:?}"
    );
}
