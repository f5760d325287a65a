//! The daemon against a local Jetstream server (loopback only): disconnects,
//! stalls, garbage, binary and oversized frames, refused connections, a
//! SIGKILL and a restart, SIGTERM. Every run must end with exactly the
//! counts and alerts of an uninterrupted replay of the same frames. Each
//! fault runs on the v1 plain wire and on v2 compressed (the default).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use outagewatch::state::{SledStore, Store};
use outagewatch::window::Bucket;
use support::{
    Conn, Daemon, Inject, JetstreamServer, Plan, Wire, demo_frames, jetstream_config_wire,
    newest_time, start_daemon,
};

/// Everything that must match between two runs.
#[derive(Debug, PartialEq)]
struct Outcome {
    alerts: Vec<String>,
    buckets: Vec<Bucket>,
    open: Vec<Bucket>,
    detector: Option<outagewatch::detect::Snapshot>,
}

fn outcome(state: &Path, alerts: &Path) -> Outcome {
    let store = SledStore::open(state).expect("state opens after exit");
    let checkpoint = store
        .checkpoint()
        .expect("checkpoint")
        .expect("a checkpoint was saved");
    let lines = std::fs::read_to_string(alerts).unwrap_or_default();
    Outcome {
        alerts: lines
            .lines()
            .filter(|l| !l.contains("\"service\":\"source:"))
            .map(str::to_owned)
            .collect(),
        buckets: store.buckets_since(i64::MIN).expect("buckets"),
        open: checkpoint.open,
        detector: checkpoint.detector,
    }
}

/// The reference: `outagewatch replay` over the same frames.
fn replayed(frames: &[String], dir: &Path) -> Outcome {
    let outcome = replayed_any(frames, dir);
    assert_eq!(
        outcome.alerts.len(),
        3,
        "the demo's incident fires, escalates and resolves"
    );
    outcome
}

/// Two tests of a scenario taking a [`Wire`]: `SCENARIO::v1_plain` and
/// `SCENARIO::v2_compressed`.
macro_rules! on_both_wires {
    ($scenario:ident) => {
        mod $scenario {
            #[test]
            fn v1_plain() {
                super::$scenario(super::Wire::V1_PLAIN);
            }

            #[test]
            fn v2_compressed() {
                super::$scenario(super::Wire::V2_ZSTD);
            }
        }
    };
}

on_both_wires!(disconnects_stalls_garbage_and_refusals_lose_nothing_and_count_nothing_twice);

fn disconnects_stalls_garbage_and_refusals_lose_nothing_and_count_nothing_twice(wire: Wire) {
    let frames = demo_frames();
    let newest = newest_time(&frames);
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = replayed(&frames, dir.path());

    let server = JetstreamServer::start(
        frames,
        Plan {
            refuse_first: 2,
            conns: vec![
                Conn::CloseAfter(4000),
                Conn::StallAfter(3000),
                Conn::DropAfter(3000),
            ],
            inject: vec![
                Inject::Garbage(100),
                Inject::Binary(200),
                Inject::Oversized(300, 2 << 20),
            ],
            ..Plan::default()
        },
    );
    let config = jetstream_config_wire(dir.path(), &[server.url()], 1.0, wire);
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let daemon = start_daemon(&config, &state, &alerts);
    daemon.wait_for_newest(newest, Duration::from_secs(120));
    let (status, took, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}");

    let seen = server.seen.lock().expect("lock");
    assert_eq!(seen.refused, 2, "two refused handshakes");
    assert!(
        seen.cursors.len() >= 4,
        "reconnected after close, stall and drop: {:?}",
        seen.cursors
    );
    assert_eq!(seen.cursors[0], None, "a fresh start asks for live data");
    for cursor in &seen.cursors[1..] {
        assert!(
            cursor.is_some(),
            "every reconnect resumes from a cursor: {:?}",
            seen.cursors
        );
        if wire.protocol == "v2" {
            assert!(
                cursor.is_some_and(|c| c < 1_000_000_000_000_000),
                "v2 resumes by sequence number: {:?}",
                seen.cursors
            );
        }
    }
    assert_wire(&seen, wire);
    assert!(log.contains("oversized frame dropped"), "{log}");
    assert!(
        log.contains("no data for"),
        "the watchdog noticed the stall:\n{log}"
    );
    assert!(
        log.contains("malformed=1"),
        "the garbage frame was counted:\n{log}"
    );
    assert!(
        log.contains("binary=1"),
        "the binary frame was counted:\n{log}"
    );
    drop(seen);

    assert_eq!(outcome(&state, &alerts), reference);
}

on_both_wires!(sigkill_and_restart_continue_without_gap_or_double_count);

fn sigkill_and_restart_continue_without_gap_or_double_count(wire: Wire) {
    let frames = demo_frames();
    let newest = newest_time(&frames);
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = replayed(&frames, dir.path());
    let middle = {
        let mut times: Vec<i64> = frames
            .iter()
            .filter_map(|f| serde_json::from_str::<serde_json::Value>(f).ok()?["time_us"].as_i64())
            .collect();
        times.sort_unstable();
        times[times.len() / 2]
    };

    let server = JetstreamServer::start(
        frames,
        Plan {
            pace_every: 4,
            ..Plan::default()
        },
    );
    let config = jetstream_config_wire(dir.path(), &[server.url()], 5.0, wire);
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let first = start_daemon(&config, &state, &alerts);
    first.wait_until(
        |log| support::processed(log).is_some_and(|p| p >= middle),
        Duration::from_secs(120),
    );
    first.kill();

    let second = start_daemon(&config, &state, &alerts);
    second.wait_for_newest(newest, Duration::from_secs(120));
    let (status, _, log) = second.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    assert!(log.contains("resuming from the saved cursor"), "{log}");
    let seen = server.seen.lock().expect("lock");
    assert!(
        seen.cursors.last().is_some_and(|c| c.is_some()),
        "the restart resumed from a cursor: {:?}",
        seen.cursors
    );
    if wire.protocol == "v2" {
        let last = seen.cursors.last().copied().flatten().expect("cursor");
        assert!(
            last < 1_000_000_000_000_000,
            "the restart resumed by the saved sequence number: {last}"
        );
        assert!(log.contains("seq "), "{log}");
    }
    assert_wire(&seen, wire);
    drop(seen);

    assert_eq!(outcome(&state, &alerts), reference);
}

on_both_wires!(sigterm_exits_zero_within_the_bound_with_state_and_cursor_flushed);

fn sigterm_exits_zero_within_the_bound_with_state_and_cursor_flushed(wire: Wire) {
    stops_in_order_on("TERM", wire);
}

/// A terminal closed or an ssh session ended under a daemon run by hand:
/// SIGHUP had its default action, the process died like a kill -9
/// (exit 129, no "shutting down", no seal; found by review).
#[test]
fn sighup_stops_the_daemon_as_sigterm_does() {
    stops_in_order_on("HUP", Wire::V1_PLAIN);
}

/// The daemon stopped by `signal`: exit 0 within the grace, the state and
/// its cursors saved, nothing to warn about.
fn stops_in_order_on(signal: &str, wire: Wire) {
    let frames = demo_frames();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = JetstreamServer::start(
        frames,
        Plan {
            pace_every: 2,
            ..Plan::default()
        },
    );
    let config = jetstream_config_wire(dir.path(), &[server.url()], 5.0, wire);
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let daemon = start_daemon(&config, &state, &alerts);
    daemon.wait_until(
        |log| support::processed(log).is_some(),
        Duration::from_secs(60),
    );
    let (status, took, log) = daemon.stop_with(signal, Duration::from_secs(20));
    assert!(status.success(), "SIG{signal}: exit {status:?}\n{log}");
    assert!(
        took < Duration::from_secs(12),
        "took {took:?} (bound: 10 s grace)"
    );
    assert!(log.contains("stopped; state saved"), "{log}");
    // A clean run and shutdown has nothing to warn about.
    assert!(log.contains(" INFO "), "the log is plain text:\n{log}");
    assert_eq!(
        support::warnings(&log),
        Vec::<&str>::new(),
        "a clean shutdown logs no WARN or ERROR:\n{log}"
    );
    let last_logged = support::processed(&log).expect("a processed cursor was logged");
    let store = SledStore::open(&state).expect("state opens");
    let checkpoint = store.checkpoint().expect("read").expect("saved");
    let cursor = checkpoint
        .cursors
        .get("bluesky")
        .copied()
        .expect("cursor saved");
    assert!(
        cursor >= last_logged,
        "saved cursor {cursor} covers the last logged {last_logged}"
    );
    if wire.protocol == "v2" {
        let seq = checkpoint.seqs.get("bluesky").expect("sequence saved");
        assert!(seq.seq >= support::SEQ_BASE, "{seq:?}");
    }
}

/// The shared real capture (`../shared/fixtures/jetstream/`), if present.
fn shared_capture() -> Option<Vec<String>> {
    let dir = support::shared_dir()?;
    let text = std::fs::read_to_string(dir.join("fixtures/jetstream/expected_v1.jsonl"))
        .expect("the shared folder holds the capture");
    Some(text.lines().map(str::to_owned).collect())
}

/// The capture through the daemon on one wire, with a reconnect half-way.
fn capture_through(wire: Wire, frames: &[String]) -> (Outcome, String) {
    let newest = newest_time(frames);
    let dir = tempfile::tempdir().expect("tempdir");
    let server = JetstreamServer::start(
        frames.to_vec(),
        Plan {
            conns: vec![Conn::CloseAfter(80)],
            ..Plan::default()
        },
    );
    let config = jetstream_config_wire(dir.path(), &[server.url()], 5.0, wire);
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let daemon = start_daemon(&config, &state, &alerts);
    daemon.wait_for_newest(newest, Duration::from_secs(60));
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    assert_wire(&server.seen.lock().expect("lock"), wire);
    (outcome(&state, &alerts), log)
}

#[test]
fn the_shared_capture_gives_the_same_posts_and_alerts_on_v1_plain_and_v2_compressed() {
    let Some(frames) = shared_capture() else {
        return;
    };
    let (v1, v1_log) = capture_through(Wire::V1_PLAIN, &frames);
    let (v2, v2_log) = capture_through(Wire::V2_ZSTD, &frames);
    // 17 post creates in the capture, each counted once despite the
    // reconnect (v1's overlap is de-duplicated; v2 resumes exactly).
    for log in [&v1_log, &v2_log] {
        assert!(log.contains("posts=17"), "{log}");
        assert!(log.contains("malformed=0"), "{log}");
        assert!(log.contains("binary=0"), "{log}");
    }
    assert!(
        v1_log.contains("duplicates=") && v2_log.contains("duplicates=0"),
        "{v2_log}"
    );
    assert_eq!(v1, v2, "same buckets, detector state and alerts");
    assert!(
        !v1.buckets.is_empty() || !v1.open.is_empty(),
        "the capture was counted"
    );
}

/// The connections asked for the wire the config names.
fn assert_wire(seen: &support::Seen, wire: Wire) {
    assert!(!seen.requests.is_empty());
    for (request, subprotocol) in seen.requests.iter().zip(&seen.subprotocols) {
        if wire.protocol == "v2" {
            assert!(request.starts_with(support::V2_PATH), "{request}");
            assert!(
                request.contains("kinds=commit&collections=app.bsky.feed.post"),
                "{request}"
            );
            assert_eq!(subprotocol.as_deref(), Some("xrpc.v1.json"));
            assert_eq!(
                request.contains("zstdDictionary=1612007021"),
                wire.compress,
                "{request}"
            );
        } else {
            assert!(
                request.starts_with("/subscribe?wantedCollections="),
                "{request}"
            );
            assert_eq!(
                request.contains("compress=true"),
                wire.compress,
                "{request}"
            );
        }
    }
}

on_both_wires!(a_silent_source_raises_a_source_alert_and_resolves_it);

fn a_silent_source_raises_a_source_alert_and_resolves_it(wire: Wire) {
    let frames = demo_frames();
    let dir = tempfile::tempdir().expect("tempdir");
    // The first connection goes silent after 200 frames without closing;
    // the watchdog reconnects after 4 s and the second one delivers.
    let server = JetstreamServer::start(
        frames,
        Plan {
            conns: vec![Conn::StallAfter(200)],
            ..Plan::default()
        },
    );
    let config = jetstream_config_wire(dir.path(), &[server.url()], 4.0, wire);
    let text = std::fs::read_to_string(&config).expect("config");
    // Resolved at the first healthy tick (`calm_secs = 0`): the demo's
    // frames arrive in under a second, then the stand-in falls silent
    // again, shorter than the default calm of one silence rule, so the
    // incident would (rightly) stay open; the calm has its own test.
    let text = text.replace(
        "silence_secs = 3600",
        "silence_secs = 2\ngrace_secs = 0\ncalm_secs = 0",
    );
    std::fs::write(&config, text).expect("config");
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let daemon = start_daemon(&config, &state, &alerts);
    let resolved = |a: &str| {
        a.lines().any(|l| {
            l.contains("\"service\":\"source:bluesky\"") && l.contains("\"state\":\"resolved\"")
        })
    };
    daemon.wait_until(
        |_| std::fs::read_to_string(&alerts).is_ok_and(|a| resolved(&a)),
        Duration::from_secs(60),
    );
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    let lines = std::fs::read_to_string(&alerts).expect("alerts");
    let source: Vec<serde_json::Value> = lines
        .lines()
        .filter(|l| l.contains("source:bluesky"))
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(source[0]["state"], "firing", "{lines}");
    assert!(
        source[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no usable frames from bluesky for")),
        "{lines}"
    );
    assert_eq!(source[1]["state"], "resolved");
    assert_eq!(source[0]["id"], source[1]["id"]);
}

on_both_wires!(a_recording_replays_to_the_alerts_of_the_live_stream);

fn a_recording_replays_to_the_alerts_of_the_live_stream(wire: Wire) {
    let frames = demo_frames();
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = replayed(&frames, dir.path());
    // A reconnect in the middle: the recording holds the resumed overlap
    // as received, and replay drops it as the daemon does.
    let server = JetstreamServer::start(
        frames,
        Plan {
            conns: vec![Conn::CloseAfter(5000)],
            ..Plan::default()
        },
    );
    let recording = dir.path().join("recorded.jsonl.zst");
    let server_url = server.url();

    let mut args = vec![
        "record",
        "--jetstream",
        &server_url,
        "--out",
        recording.to_str().expect("utf8"),
        "--protocol",
        wire.protocol,
    ];
    if !wire.compress {
        args.push("--no-compress");
    }
    let recorder = Daemon::start(&args);
    // The recorder logs nothing per frame: wait until the server has sent
    // every frame after the reconnect, and until the recorder has written
    // them (a fixed 3 s was too short on a loaded machine).
    let log = stop_when_written(&server, recorder, recording.to_str().expect("utf8"));
    assert!(log.contains("recorded "), "{log}");
    let state = dir.path().join("from-recording");
    let alerts = dir.path().join("from-recording.jsonl");
    let out = replay_recording(&recording, &state, &alerts);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    if wire.protocol == "v1" {
        assert!(
            stderr.contains("duplicate posts dropped"),
            "the overlap was recorded and dropped: {stderr}"
        );
    } else {
        assert!(
            !stderr.contains("duplicate posts dropped"),
            "v2 resumes exactly, without overlap: {stderr}"
        );
    }
    assert_wire(&server.seen.lock().expect("lock"), wire);
    // The file holds text frames (decompressed), readable by old tools.
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut zstd::stream::read::Decoder::new(std::fs::File::open(&recording).expect("open"))
            .expect("zstd"),
        &mut text,
    )
    .expect("read");
    assert!(text.lines().all(|l| l.starts_with('{')), "text frames only");

    assert_eq!(outcome(&state, &alerts), reference);
}

/// `record` killed with SIGKILL mid-stream, then run again on the same
/// file: the second run cuts the torn tail, and the file reads back whole,
/// the frames committed before the kill (at least one commit point,
/// `--commit-secs 0.5`, passed) then every frame of the second run, which
/// resumed from the committed frames' watermark minus 5 s (the overlap
/// as received). Before commit points, the killed run's single zstd frame
/// or gzip member was never finished and nothing after it could be read.
#[test]
fn a_recorder_killed_mid_stream_keeps_its_committed_frames_and_appends_after_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo: Vec<String> = demo_frames();
    let time = |frame: &str| {
        serde_json::from_str::<serde_json::Value>(frame)
            .ok()
            .and_then(|v| v["time_us"].as_i64())
            .unwrap_or(0)
    };
    for name in ["killed.jsonl.zst", "killed.jsonl.gz", "killed.jsonl"] {
        let recording = dir.path().join(name);
        let path = recording.to_str().expect("utf8");
        let (_slow, first) = start_recording_part(path, Wire::V1_PLAIN);
        first.kill();

        let (server, second) = record_to(path, Wire::V1_PLAIN, Plan::default());
        let log = stop_when_written(&server, second, path);
        let recorded: usize = log
            .split("recorded ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {log}"));
        let cursor = server.seen.lock().expect("lock").cursors[0]
            .unwrap_or_else(|| panic!("{name}: resumed, not at the live tail\n{log}"));

        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut outagewatch::source::recording::open(path).expect("open"),
            &mut text,
        )
        .unwrap_or_else(|e| panic!("{name} reads to its end: {e}"));
        let frames: Vec<&str> = text
            .lines()
            .filter(|l| outagewatch::source::recording::ClockLine::parse(l.as_bytes()).is_none())
            .collect();
        let (before, after) = frames.split_at(frames.len() - recorded);
        assert!(!before.is_empty(), "{name}: a commit point before the kill");
        assert!(
            before.len() < demo.len() / 2,
            "{name}: killed mid-stream ({} of {})",
            before.len(),
            demo.len()
        );
        let line = |f: &String| outagewatch::source::recording::frame_line(f).into_owned();
        let sent: Vec<String> = demo.iter().map(line).collect();
        assert_eq!(
            before,
            &sent[..before.len()],
            "{name}: the killed run's frames, whole"
        );
        let resumed: Vec<String> = demo
            .iter()
            .filter(|f| time(f) >= cursor)
            .map(line)
            .collect();
        assert_eq!(
            (after.len(), resumed.len()),
            (resumed.len(), resumed.len()),
            "{name}: the second run, from its cursor {cursor}"
        );
        assert_eq!(after, resumed, "{name}: the second run, from its cursor");
        assert!(
            time(after[0]) <= time(before[before.len() - 1]),
            "{name}: no gap between the runs"
        );
    }
}

/// `record` stopped with SIGINT mid-stream, then started again on the
/// same file against a server that still has the stream: the second run's
/// first connection asks for the first run's watermark minus 5 s (it
/// connected at the live tail, and everything between the two runs was
/// missing from the recording), stderr says so, and the file replays to
/// the alerts of the whole stream. v2 compressed to a `.zst` file, v1
/// plain to a plain one.
#[test]
fn a_restarted_recorder_resumes_where_its_recording_stops() {
    let frames = demo_frames();
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = replayed(&frames, dir.path());
    for (name, wire) in [
        ("resumed.jsonl.zst", Wire::V2_ZSTD),
        ("resumed.jsonl", Wire::V1_PLAIN),
    ] {
        let recording = dir.path().join(name);
        let path = recording.to_str().expect("utf8");
        record_part_of_the_stream(path, wire);
        let watermark = recorded_watermark(path);

        let (server, second) = record_to(path, wire, Plan::default());
        let log = stop_when_written(&server, second, path);
        let cursors = server.seen.lock().expect("lock").cursors.clone();
        assert_eq!(
            cursors.first().copied().flatten(),
            Some(watermark - 5_000_000),
            "{name}: the first connection resumes from the recording's watermark\n{log}"
        );
        let resumed = chrono::DateTime::from_timestamp_micros(watermark)
            .expect("time")
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        assert!(
            log.contains(&format!(
                "{path}: resuming bluesky from {resumed} (the recording's last frames)"
            )),
            "{name}: {log}"
        );

        let state = dir.path().join(format!("{name}-state"));
        let alerts = dir.path().join(format!("{name}-alerts.jsonl"));
        let out = replay_recording(&recording, &state, &alerts);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        assert!(
            stderr.contains("duplicate posts dropped"),
            "{name}: the overlap was recorded and dropped: {stderr}"
        );
        let got = outcome(&state, &alerts);
        assert_eq!(got.alerts, reference.alerts, "{name}: {stderr}");
        assert!(got == reference, "{name}: the counts differ: {stderr}");
    }
}

/// The server no longer keeps where the recording stops: the existing
/// handling of a v2 time cursor below the retention floor applies (the
/// server resumes from its floor, `record` warns that events were lost).
#[test]
fn a_restarted_recorder_behind_the_servers_history_reports_the_lost_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = dir.path().join("behind.jsonl.zst");
    let path = recording.to_str().expect("utf8");
    record_part_of_the_stream(path, Wire::V2_ZSTD);
    let watermark = recorded_watermark(path);
    // The server keeps only the last 1000 events.
    let floor = support::SEQ_BASE + demo_frames().len() as u64 - 1000;
    let plan = Plan {
        floor: Some((1, floor)),
        ..Plan::default()
    };
    let (server, second) = record_to(path, Wire::V2_ZSTD, plan);
    second.wait_until(
        |_| server.seen.lock().expect("lock").finished >= 1,
        Duration::from_secs(60),
    );
    let (status, _, log) = second.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    let cursors = server.seen.lock().expect("lock").cursors.clone();
    assert_eq!(
        cursors.first().copied().flatten(),
        Some(watermark - 5_000_000)
    );
    assert!(
        log.contains("events lost") && log.contains("does not reach back to the requested time"),
        "{log}"
    );
}

/// Stops `recorder` once `server` has sent its whole stream and the
/// recording at `path` holds it (see [`wait_until_written`]); its log,
/// after a clean exit.
fn stop_when_written(server: &JetstreamServer, recorder: Daemon, path: &str) -> String {
    recorder.wait_until(
        |_| server.seen.lock().expect("lock").finished >= 1,
        Duration::from_secs(60),
    );
    wait_until_written(path);
    let (status, _, log) = recorder.terminate(Duration::from_secs(20));
    assert!(status.success(), "{path}: {log}");
    log
}

/// Waits until the recording at `path` has not grown for 2 s: the
/// recorder has written what the server sent (on a loaded machine, well
/// after the server finished sending), at most a minute.
fn wait_until_written(path: &str) {
    let len = || std::fs::metadata(path).map_or(0, |m| m.len());
    let started = std::time::Instant::now();
    let mut last = (len(), std::time::Instant::now());
    while started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(250));
        let now = len();
        if now != last.0 {
            last = (now, std::time::Instant::now());
        } else if last.1.elapsed() >= Duration::from_secs(2) {
            return;
        }
    }
}

/// `record` of the stand-in's stream (served as `plan` says) to `path`,
/// with `--commit-secs 0.5`.
fn record_to(path: &str, wire: Wire, plan: Plan) -> (JetstreamServer, Daemon) {
    let server = JetstreamServer::start(demo_frames(), plan);
    let url = server.url();
    let mut args = vec!["record", "--jetstream", &url, "--out", path];
    args.extend(["--protocol", wire.protocol, "--commit-secs", "0.5"]);
    if !wire.compress {
        args.push("--no-compress");
    }
    let recorder = Daemon::start(&args);
    (server, recorder)
}

/// `record` to `path` of a stream paced at 1 ms a frame, which lasts well
/// past the moment this returns: 2 s after the file has data.
fn start_recording_part(path: &str, wire: Wire) -> (JetstreamServer, Daemon) {
    let plan = Plan {
        pace_every: 1,
        ..Plan::default()
    };
    let (server, recorder) = record_to(path, wire, plan);
    recorder.wait_until(
        |_| std::fs::metadata(path).is_ok_and(|m| m.len() > 0),
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_secs(2));
    (server, recorder)
}

/// Records part of the stand-in's stream to `path`, then stops `record`
/// with SIGINT.
fn record_part_of_the_stream(path: &str, wire: Wire) {
    let (slow, first) = start_recording_part(path, wire);
    let (status, _, log) = first.stop_with("INT", Duration::from_secs(20));
    assert!(status.success(), "{path}: {log}");
    assert_eq!(
        slow.seen.lock().expect("lock").finished,
        0,
        "{path}: mid-stream"
    );
}

/// The watermark of source `bluesky` after following every frame of the
/// recording at `path`, as `record` follows them live.
fn recorded_watermark(path: &str) -> i64 {
    use outagewatch::source::recording::follow::{Followed, Sender};
    use outagewatch::source::recording::{ClockLine, open};
    let mut followed = Followed::new(&outagewatch::source::Connection {
        name: "bluesky".to_owned(),
        kind: outagewatch::source::SourceKind::Jetstream,
        urls: vec!["ws://127.0.0.1/subscribe".into()],
        settings: Default::default(),
        stream: String::new(),
        token: None,
        jetstream: Default::default(),
    });
    let mut text = String::new();
    std::io::Read::read_to_string(&mut open(path).expect("open"), &mut text).expect("read");
    let mut sender = None;
    for line in text.lines() {
        match ClockLine::parse(line.as_bytes()) {
            Some(clock) => {
                sender = Some(Sender {
                    arrival_us: clock.time_us,
                    connection: 0,
                    stored_since: clock.stored_since,
                });
            }
            None => {
                let sender = sender.expect("a clock line first");
                followed.follow(line.as_bytes(), sender, &Default::default());
            }
        }
    }
    followed.health.processed().expect("a watermark")
}

/// The retention moved past the saved cursor while the daemon was away:
/// v2 refuses with `CursorTooOld`, the daemon resumes from the floor and
/// raises a `source:` gap alert saying how many events were lost; the rest
/// counts exactly as a replay of the frames that were not lost.
#[test]
fn cursor_too_old_resumes_from_the_floor_and_raises_a_gap_alert() {
    let frames = demo_frames();
    let newest = newest_time(&frames);
    let dir = tempfile::tempdir().expect("tempdir");
    let (served, lost) = (2000usize, 1000usize);
    let mut kept: Vec<String> = frames[..served].to_vec();
    kept.extend_from_slice(&frames[served + lost..]);
    let reference = replayed_any(&kept, dir.path());

    let floor = support::SEQ_BASE + (served + lost) as u64;
    let server = JetstreamServer::start(
        frames,
        Plan {
            conns: vec![Conn::DropAfter(served)],
            floor: Some((2, floor)),
            ..Plan::default()
        },
    );
    let config = jetstream_config_wire(dir.path(), &[server.url()], 5.0, Wire::V2_ZSTD);
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let daemon = start_daemon(&config, &state, &alerts);
    daemon.wait_for_newest(newest, Duration::from_secs(120));
    let log = wait_for_gap_alert(daemon, &alerts);
    let seen = server.seen.lock().expect("lock");
    assert_eq!(seen.xrpc_errors, vec!["CursorTooOld".to_owned()], "{log}");
    let resumed = support::SEQ_BASE as i64 + served as i64;
    assert_eq!(
        seen.cursors,
        vec![None, Some(floor as i64)],
        "asked for {resumed}, refused, then resumed from the floor"
    );
    drop(seen);
    let text = std::fs::read_to_string(&alerts).expect("alerts");
    let gap = gap_alert(&text).expect("a gap alert");
    assert!(
        gap.contains(&format!(
            "{lost} events (seq {resumed} to {}) were lost",
            floor - 1
        )),
        "{gap}"
    );
    assert!(gap.contains("\"state\":\"firing\""), "{gap}");
    assert_eq!(outcome(&state, &alerts), reference);
}

/// The `source:bluesky` gap alert in the alert lines `text`, if any.
fn gap_alert(text: &str) -> Option<String> {
    text.lines()
        .find(|l| l.contains("\"service\":\"source:bluesky\"") && l.contains("gap: "))
        .map(str::to_owned)
}

/// Waits until `daemon` has written a gap alert to `alerts`, then stops it
/// (a clean exit); its log.
fn wait_for_gap_alert(daemon: Daemon, alerts: &Path) -> String {
    daemon.wait_until(
        |_| std::fs::read_to_string(alerts).is_ok_and(|a| gap_alert(&a).is_some()),
        Duration::from_secs(30),
    );
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    log
}

/// A v1 server given a time cursor older than its history starts at its
/// oldest event without a word (`protocols.md` §1): the first event after
/// the resume is dated minutes past the cursor on a stream of several a
/// second, and that is raised as a gap alert naming both times. Before,
/// the loss went unreported.
#[test]
fn a_v1_cursor_clamped_in_silence_raises_a_gap_alert() {
    let frames = demo_frames();
    let newest = newest_time(&frames);
    let times: Vec<i64> = frames
        .iter()
        .map(|f| {
            let frame: serde_json::Value = serde_json::from_str(f).expect("json");
            frame["time_us"].as_i64().expect("dated")
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    // Served up to frame 2000 (3.7 min into the demo), then the server
    // keeps only from frame 5500 on (10 min): 6 minutes lost.
    let (served, kept_from) = (2000usize, 5500usize);
    let server = JetstreamServer::start(
        frames,
        Plan {
            conns: vec![Conn::DropAfter(served)],
            floor: Some((2, support::SEQ_BASE + kept_from as u64)),
            ..Plan::default()
        },
    );
    let config = jetstream_config_wire(dir.path(), &[server.url()], 5.0, Wire::V1_PLAIN);
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let daemon = start_daemon(&config, &state, &alerts);
    daemon.wait_for_newest(newest, Duration::from_secs(120));
    let log = wait_for_gap_alert(daemon, &alerts);
    let cursors = server.seen.lock().expect("lock").cursors.clone();
    let asked = match cursors[..] {
        [None, Some(asked)] => asked,
        _ => panic!("one reconnect, by time: {cursors:?}\n{log}"),
    };
    assert!(asked <= times[served - 1], "resumed within what was served");
    let text = std::fs::read_to_string(&alerts).expect("alerts");
    let gap = gap_alert(&text).expect("a gap alert");
    assert!(gap.contains("a v1 server keeps about 36 h"), "{gap}");
    let said = outagewatch::wall::rfc3339;
    assert!(gap.contains(&said(asked)), "{gap}");
    assert!(gap.contains(&said(times[kept_from])), "{gap}");
    assert!(gap.contains("\"state\":\"firing\""), "{gap}");
    let firing = text
        .lines()
        .filter(|l| l.contains("gap: ") && l.contains("\"state\":\"firing\""));
    assert_eq!(firing.count(), 1, "one gap: {text}");
}

/// A source renamed between runs starts afresh at the live tail (its
/// cursor is under the old name): said at the start, naming the cursor
/// left unused. It used to start in silence.
#[test]
fn a_renamed_source_starting_afresh_is_said_at_the_start() {
    let frames = demo_frames();
    let newest = newest_time(&frames);
    let dir = tempfile::tempdir().expect("tempdir");
    let server = JetstreamServer::start(frames, Plan::default());
    let config = jetstream_config_wire(dir.path(), &[server.url()], 5.0, Wire::V1_PLAIN);
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let first = start_daemon(&config, &state, &alerts);
    first.wait_for_newest(newest, Duration::from_secs(120));
    let (status, _, log) = first.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    assert!(!log.contains("no saved cursor"), "{log}");
    let text = std::fs::read_to_string(&config).expect("config");
    let renamed = text.replace("name = \"bluesky\"", "name = \"bsky-b\"");
    assert_ne!(text, renamed);
    std::fs::write(&config, renamed).expect("config");
    let second = start_daemon(&config, &state, &alerts);
    second.wait_for("no saved cursor", Duration::from_secs(60));
    let (status, _, log) = second.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("no saved cursor"))
        .expect("the warning");
    assert!(
        line.contains("source=bsky-b") && line.contains("unused=bluesky"),
        "{line}"
    );
}

/// A v1 reconnect that loses nothing raises no gap alert.
#[test]
fn a_v1_reconnect_that_loses_nothing_raises_no_gap_alert() {
    let frames = demo_frames();
    let newest = newest_time(&frames);
    let dir = tempfile::tempdir().expect("tempdir");
    let server = JetstreamServer::start(
        frames,
        Plan {
            conns: vec![Conn::DropAfter(2000)],
            ..Plan::default()
        },
    );
    let config = jetstream_config_wire(dir.path(), &[server.url()], 5.0, Wire::V1_PLAIN);
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let daemon = start_daemon(&config, &state, &alerts);
    daemon.wait_for_newest(newest, Duration::from_secs(120));
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    assert_eq!(server.seen.lock().expect("lock").cursors.len(), 2, "{log}");
    let text = std::fs::read_to_string(&alerts).expect("alerts");
    assert_eq!(gap_alert(&text), None, "{text}");
    assert!(!log.contains("events lost"), "{log}");
}

/// `ConsumerTooSlow` is terminal: logged, reconnected, resumed exactly.
#[test]
fn consumer_too_slow_is_logged_and_reconnected_without_loss() {
    let frames = demo_frames();
    let newest = newest_time(&frames);
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = replayed(&frames, dir.path());
    let server = JetstreamServer::start(
        frames,
        Plan {
            conns: vec![Conn::TooSlowAfter(3000)],
            ..Plan::default()
        },
    );
    let config = jetstream_config_wire(dir.path(), &[server.url()], 5.0, Wire::V2_ZSTD);
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let daemon = start_daemon(&config, &state, &alerts);
    daemon.wait_for_newest(newest, Duration::from_secs(120));
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    assert!(
        log.contains("server ended the subscription: ConsumerTooSlow"),
        "{log}"
    );
    let seen = server.seen.lock().expect("lock");
    assert_eq!(
        seen.cursors[1],
        Some(support::SEQ_BASE as i64 + 3000),
        "resumed right after the last frame"
    );
    drop(seen);
    assert!(log.contains("duplicates=0"), "{log}");
    assert_eq!(outcome(&state, &alerts), reference);
}

/// A dictionary other than Jetstream's v1 one: trained on the demo's v2
/// frames.
fn trained_dictionary(frames: &[String]) -> Vec<u8> {
    let samples: Vec<String> = frames
        .iter()
        .take(3000)
        .enumerate()
        .map(|(i, f)| support::v1_to_v2(f, i as u64))
        .collect();
    zstd::dict::from_samples(&samples, 32 << 10).expect("train a dictionary")
}

/// A server refusing the dictionary its own endpoint serves (a lagging
/// deploy or cache behind it): the client fetches the one the refusal
/// names, by id, rather than the refused one again for ever.
#[test]
fn a_refused_dictionary_served_again_is_not_asked_for_again() {
    let frames = demo_frames();
    let newest = newest_time(&frames);
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = replayed(&frames, dir.path());
    let current = trained_dictionary(&frames);
    let current_id = support::dictionary_id(&current);
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let server = JetstreamServer::start(
        frames,
        Plan {
            dictionary: Some(current),
            endpoint_serves: Some(
                outagewatch::source::jetstream::compression::V1_DICTIONARY.to_vec(),
            ),
            ..Plan::default()
        },
    );
    let config = jetstream_config_wire(dir.path(), &[server.url()], 5.0, Wire::V2_ZSTD);
    let daemon = start_daemon(&config, &state, &alerts);
    daemon.wait_for_newest(newest, Duration::from_secs(60));
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    let seen = server.seen.lock().expect("lock");
    assert_eq!(seen.xrpc_errors, vec!["UnknownZstdDictionary".to_owned()]);
    assert_eq!(
        seen.dictionary_fetches.len(),
        2,
        "{:?}",
        seen.dictionary_fetches
    );
    assert!(
        seen.dictionary_fetches[1].ends_with(&format!("id={current_id}")),
        "{:?}",
        seen.dictionary_fetches
    );
    let last = seen.requests.last().expect("connected");
    assert!(
        last.contains(&format!("zstdDictionary={current_id}")),
        "{last}"
    );
    assert!(log.contains("binary=0"), "every frame decompressed: {log}");
    assert_eq!(outcome(&state, &alerts), reference);
}

/// A cached dictionary the server has retired: `UnknownZstdDictionary`,
/// fetch the current one, cache it by id; the next start uses the cache.
#[test]
fn a_retired_dictionary_is_fetched_again_and_cached_by_id() {
    let frames = demo_frames();
    let newest = newest_time(&frames);
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = replayed(&frames, dir.path());
    let current = trained_dictionary(&frames);
    let current_id = support::dictionary_id(&current);
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let cache = state.join("jetstream-dictionaries");
    std::fs::create_dir_all(&cache).expect("cache dir");
    std::fs::write(
        cache.join("1612007021.zdict"),
        outagewatch::source::jetstream::compression::V1_DICTIONARY,
    )
    .expect("retired dictionary in the cache");
    let server = JetstreamServer::start(
        frames,
        Plan {
            dictionary: Some(current.clone()),
            ..Plan::default()
        },
    );
    let config = jetstream_config_wire(dir.path(), &[server.url()], 5.0, Wire::V2_ZSTD);
    let daemon = start_daemon(&config, &state, &alerts);
    daemon.wait_for_newest(newest, Duration::from_secs(120));
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    {
        let seen = server.seen.lock().expect("lock");
        assert_eq!(seen.xrpc_errors, vec!["UnknownZstdDictionary".to_owned()]);
        assert_eq!(
            seen.dictionary_fetches.len(),
            1,
            "{:?}",
            seen.dictionary_fetches
        );
        let last = seen.requests.last().expect("connected");
        assert!(
            last.contains(&format!("zstdDictionary={current_id}")),
            "{last}"
        );
    }
    assert_eq!(
        std::fs::read(cache.join(format!("{current_id}.zdict"))).expect("cached by id"),
        current
    );
    assert!(log.contains("binary=0"), "every frame decompressed: {log}");
    assert_eq!(outcome(&state, &alerts), reference);

    // The next start reads the cache: no fetch, no refusal.
    let daemon = start_daemon(&config, &state, &alerts);
    daemon.wait_for(
        "using the cached Jetstream dictionary",
        Duration::from_secs(30),
    );
    daemon.wait_for("connected", Duration::from_secs(30));
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    let seen = server.seen.lock().expect("lock");
    assert_eq!(
        seen.dictionary_fetches.len(),
        1,
        "{:?}",
        seen.dictionary_fetches
    );
    assert_eq!(seen.xrpc_errors.len(), 1);
}

/// Frames beyond `max_frames_per_sec` on one connection are counted, not
/// processed.
#[test]
fn frames_over_the_rate_limit_are_counted_and_dropped() {
    let frames = demo_frames();
    let total = frames.len();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = JetstreamServer::start(frames, Plan::default());
    let config = jetstream_config_wire(dir.path(), &[server.url()], 30.0, Wire::V2_ZSTD);
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace("ping_secs = 1", "ping_secs = 1\nmax_frames_per_sec = 500");
    std::fs::write(&config, text).expect("config");
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let daemon = start_daemon(&config, &state, &alerts);
    let dropped = |log: &str| {
        log.rmatch_indices("rate_dropped=").find_map(|(at, key)| {
            log[at + key.len()..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<usize>()
                .ok()
        })
    };
    daemon.wait_until(
        |log| dropped(log).is_some_and(|d| d > 0),
        Duration::from_secs(60),
    );
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    let dropped = dropped(&log).expect("counted");
    assert!(dropped > 0 && dropped < total, "{dropped} of {total}");
    let frames_line = log
        .lines()
        .rfind(|l| l.contains("stopped; state saved"))
        .expect("final line");
    assert!(
        !frames_line.contains(&format!("frames={total}")),
        "dropped frames were not processed: {frames_line}"
    );
}

/// [`replayed`] for frames whose alerts are not the demo's three.
/// Each call replays in a fresh folder under `dir`.
fn replayed_any(frames: &[String], dir: &Path) -> Outcome {
    let dir = tempfile::Builder::new()
        .prefix("replay-")
        .tempdir_in(dir)
        .expect("tempdir");
    let dir = dir.path();
    let file = dir.join("frames.jsonl");
    std::fs::write(&file, frames.join("\n")).expect("write frames");
    let (state, alerts) = (dir.join("state"), dir.join("alerts.jsonl"));
    let status = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .arg("replay")
        .arg(&file)
        .arg("--state-dir")
        .arg(&state)
        .arg("--alerts")
        .arg(&alerts)
        .env("RUST_LOG", "warn")
        .status()
        .expect("replay runs");
    assert!(status.success());
    outcome(&state, &alerts)
}

/// `replay --jetstream URL --since T [--until U] [--record F]` over the
/// stand-in's history, with its arguments; returns the outcome and stderr.
fn replay_history(
    server: &JetstreamServer,
    dir: &Path,
    name: &str,
    extra: &[&str],
) -> (Outcome, String) {
    let (state, alerts) = (
        dir.join(format!("{name}-state")),
        dir.join(format!("{name}.jsonl")),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .arg("replay")
        .arg("--jetstream")
        .arg(server.url())
        .args(extra)
        .arg("--tail-idle-secs")
        .arg("2")
        .arg("--state-dir")
        .arg(&state)
        .arg("--alerts")
        .arg(&alerts)
        .env("RUST_LOG", "warn")
        .output()
        .expect("replay runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (outcome(&state, &alerts), stderr)
}

fn rfc3339(time_us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(time_us)
        .expect("in range")
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[test]
fn replaying_jetstream_history_gives_the_alerts_of_replaying_its_frames_from_a_file() {
    let frames = demo_frames();
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = replayed(&frames, dir.path());
    let times: Vec<i64> = frames
        .iter()
        .map(|f| {
            serde_json::from_str::<serde_json::Value>(f).expect("JSON")["time_us"]
                .as_i64()
                .expect("time")
        })
        .collect();
    let first = *times.iter().min().expect("frames");
    let server = JetstreamServer::start(frames.clone(), Plan::default());
    let since = rfc3339(first - 1_000_000);

    // The whole history, v2 compressed (the default), recorded on the way.
    let recording = dir.path().join("history.jsonl.gz");
    let (whole, stderr) = replay_history(
        &server,
        dir.path(),
        "whole",
        &[
            "--since",
            &since,
            "--record",
            recording.to_str().expect("utf8"),
        ],
    );
    assert!(stderr.contains("reached the live tail"), "{stderr}");
    assert!(
        stderr.contains(&format!("replayed {} events", frames.len())),
        "{stderr}"
    );
    assert_eq!(
        whole, reference,
        "same alerts as replaying the frames from a file"
    );
    {
        let seen = server.seen.lock().expect("lock");
        let request = seen.requests.last().expect("connected");
        assert!(request.starts_with(support::V2_PATH), "{request}");
        assert!(
            request.contains(&format!("cursor={}", first - 1_000_000)),
            "{request}"
        );
        assert!(request.contains("zstdDictionary="), "{request}");
    }
    // The recording holds the text frames and replays to the same.
    let out = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .arg("replay")
        .arg(&recording)
        .arg("--state-dir")
        .arg(dir.path().join("rec-state"))
        .arg("--alerts")
        .arg(dir.path().join("rec.jsonl"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("replay runs");
    assert!(out.status.success());
    assert_eq!(
        outcome(&dir.path().join("rec-state"), &dir.path().join("rec.jsonl")),
        reference
    );

    // Up to --until, v1 plain: the same as a file of the frames before it.
    let until = times[times.len() / 2];
    let cut = times.iter().position(|t| *t >= until).expect("cut");
    let (part, stderr) = replay_history(
        &server,
        dir.path(),
        "part",
        &[
            "--since",
            &since,
            "--until",
            &rfc3339(until),
            "--protocol",
            "v1",
            "--no-compress",
        ],
    );
    assert!(stderr.contains("reached --until"), "{stderr}");
    assert_eq!(part, replayed_any(&frames[..cut], dir.path()));
}

/// One frame dated 2100 in the history: the pipeline quarantines it, and
/// the read goes on to the live tail (it ended there, reporting "reached
/// the live tail" a third of the way in).
#[test]
fn a_frame_dated_ahead_does_not_end_a_history_read() {
    let mut frames = demo_frames();
    let first = frames
        .iter()
        .filter_map(|f| serde_json::from_str::<serde_json::Value>(f).ok()?["time_us"].as_i64())
        .min()
        .expect("frames");
    let liar = r#"{"did":"did:plc:liar","time_us":4102444800000000,"kind":"account","account":{"active":true,"did":"did:plc:liar","seq":1,"time":"2100-01-01T00:00:00Z"}}"#;
    frames.insert(frames.len() / 3, liar.to_owned());
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = replayed(&frames, dir.path());
    let server = JetstreamServer::start(frames.clone(), Plan::default());
    let (whole, stderr) = replay_history(
        &server,
        dir.path(),
        "whole",
        &["--since", &rfc3339(first - 1_000_000)],
    );
    assert!(stderr.contains("reached the live tail"), "{stderr}");
    assert!(
        stderr.contains(&format!("replayed {} events", frames.len())),
        "{stderr}"
    );
    assert_eq!(whole, reference);
}

#[test]
fn a_host_sending_only_junk_and_binary_is_failed_over_and_raises_a_source_alert() {
    // Bytes keep flowing (junk text, binary, valid JSON that is no frame)
    // but nothing decodes: that is no data, for the watchdog and the
    // health rule alike.
    let junk: Vec<String> = (0..150)
        .flat_map(|i| {
            [
                "<binary>".to_owned(),
                format!("{{not json {i}"),
                r#"{"hello":"world"}"#.to_owned(),
                "<sleep:100>".to_owned(),
            ]
        })
        .collect();
    let script = vec![junk; 8];
    let (a, b) = (
        support::ScriptServer::start(script.clone(), false),
        support::ScriptServer::start(script, false),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let urls = [
        format!("ws://{}/subscribe", a.addr),
        format!("ws://{}/subscribe", b.addr),
    ];
    let config = jetstream_config_wire(dir.path(), &urls, 1.5, Wire::V1_PLAIN);
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace("silence_secs = 3600", "silence_secs = 2\ngrace_secs = 0");
    std::fs::write(&config, text).expect("config");
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let daemon = start_daemon(&config, &state, &alerts);
    daemon.wait_until(
        |log| {
            log.matches("no data for").count() >= 2
                && std::fs::read_to_string(&alerts)
                    .is_ok_and(|a| a.contains("\"service\":\"source:bluesky\""))
        },
        Duration::from_secs(60),
    );
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    let fired = support::first_alert(&alerts, "source:bluesky");
    assert_eq!(fired["state"], "firing", "{fired}");
    assert!(
        fired["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no usable frames from bluesky")),
        "{fired}"
    );
    assert!(
        !a.seen.lock().expect("lock").is_empty() && !b.seen.lock().expect("lock").is_empty(),
        "the watchdog failed over to the second host"
    );
    assert!(log.contains("binary="), "{log}");
    assert!(!log.contains("posts=1"), "junk is never a post: {log}");
}

#[test]
fn a_live_post_dated_2100_changes_no_alert_and_never_becomes_the_cursor() {
    for wire in [Wire::V2_ZSTD, Wire::V1_PLAIN] {
        far_dated_posts_on(wire);
    }
}

fn far_dated_posts_on(wire: Wire) {
    let clean = demo_frames();
    let newest = newest_time(&clean);
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = replayed(&clean, dir.path());
    // A report of the surging service, dated 2100 by the server, and one
    // dated 1990, in the middle of the stream.
    let post = |did: &str, time_us: i64| {
        serde_json::json!({
            "did": did, "time_us": time_us, "kind": "commit",
            "commit": {"rev": "r", "operation": "create", "collection": "app.bsky.feed.post",
                       "rkey": "x", "record": {"text": "discord is down", "langs": ["en"]}}
        })
        .to_string()
    };
    let mut frames = clean.clone();
    let middle = frames.len() / 2;
    frames.insert(middle, post("did:plc:past", 631_152_000_000_000));
    frames.insert(middle, post("did:plc:future", 4_102_444_800_000_000));
    let server = JetstreamServer::start(frames.clone(), Plan::default());
    let config = jetstream_config_wire(dir.path(), &[server.url()], 5.0, wire);
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let daemon = start_daemon(&config, &state, &alerts);
    daemon.wait_for_newest(newest, Duration::from_secs(120));
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    assert!(log.contains("future=1"), "quarantined and counted: {log}");
    assert!(log.contains("stale=1"), "the 1990 post is stale: {log}");
    // `lag=-` alone is "nothing processed yet" (a status line before the
    // first frame, on a loaded machine); a negative lag would be `lag=-5s`.
    let negative = log
        .split("lag=-")
        .skip(1)
        .any(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    assert!(!negative, "lag is never negative: {log}");
    assert_eq!(outcome(&state, &alerts), reference);
    let cursor = SledStore::open(&state)
        .expect("state")
        .checkpoint()
        .expect("read")
        .expect("saved")
        .cursors["bluesky"];
    assert!(cursor <= newest, "cursor {cursor} is not from 2100");

    // A restart resumes from the watermark, not from 2100.
    let again = JetstreamServer::start(frames, Plan::default());
    let config = jetstream_config_wire(dir.path(), &[again.url()], 5.0, wire);
    let daemon = start_daemon(&config, &state, &alerts);
    daemon.wait_until(
        |_| !again.seen.lock().expect("lock").cursors.is_empty(),
        Duration::from_secs(60),
    );
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    let resumed = again.seen.lock().expect("lock").cursors[0].expect("a cursor");
    // Another host: resumed by time (the watermark − 5 s), not from 2100.
    assert!(
        resumed <= newest && resumed >= newest - 60_000_000,
        "{wire:?}: resumed from {resumed}, the demo ends at {newest}"
    );
}

/// `outagewatch replay RECORDING` on a fresh `state`, its alerts to
/// `alerts`, warnings only on stderr.
fn replay_recording(recording: &Path, state: &Path, alerts: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .arg("replay")
        .arg(recording)
        .arg("--state-dir")
        .arg(state)
        .arg("--alerts")
        .arg(alerts)
        .env("RUST_LOG", "warn")
        .output()
        .expect("replay runs")
}

/// `record` (of a configuration, and of `--jetstream`) and `run` against
/// hosts that refuse every connection, with secrets in their URLs: a
/// user and password, key values, a Mastodon `access_token`. Every retry
/// is logged, and not one secret with it; each was printed at every retry.
#[test]
fn secrets_in_source_urls_never_reach_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let port = support::receiver::free_port().port();
    let jetstream = format!(
        "ws://USERNAME:USERPW@127.0.0.1:{port}/x?apikey=APIKEYVALUE&password=PASSWORDVALUE"
    );
    let config = dir.join("sources.toml");
    std::fs::write(
        &config,
        format!(
            r#"[[sources]]
name = "fedi"
kind = "mastodon"
urls = ["wss://127.0.0.1:{port}/api/v1/streaming?access_token=TOPSECRET"]

[[sources]]
name = "bluesky"
kind = "jetstream"
urls = ["{jetstream}"]
"#
        ),
    )
    .expect("config");
    let path = |name: &str| dir.join(name).to_str().expect("utf8").to_owned();
    let (config, recorded, state) = (path("sources.toml"), path("r.jsonl"), path("state"));
    let commands: [&[&str]; 3] = [
        &["record", "--config", &config, "--out", &recorded],
        &["record", "--jetstream", &jetstream, "--out", &recorded],
        &["run", "--jetstream", &jetstream, "--state-dir", &state],
    ];
    for args in commands {
        let daemon = Daemon::start(args);
        daemon.wait_until(
            |log| {
                log.matches("connection lost; reconnecting").count() >= 3
                    && log.contains("waiting before reconnecting")
            },
            Duration::from_secs(60),
        );
        let (_, _, log) = daemon.terminate(Duration::from_secs(30));
        for secret in [
            "USERNAME",
            "USERPW",
            "APIKEYVALUE",
            "PASSWORDVALUE",
            "TOPSECRET",
        ] {
            assert!(!log.contains(secret), "{args:?}: {secret} in\n{log}");
        }
        assert!(log.contains("ws://***@127.0.0.1"), "{args:?}: {log}");
    }
}
