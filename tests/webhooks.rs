//! Webhook delivery against loopback receivers: a receiver that is down,
//! that answers 500 (with Retry-After) or 400, a daemon killed with alerts
//! undelivered; keys, order and signatures checked on what arrives.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use outagewatch::alert::sign;
use support::receiver::{Receiver, free_port};
use support::{Daemon, JetstreamServer, Plan, demo_frames, jetstream_config, newest_time};

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo.jsonl.gz")
}

fn outagewatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("OUTAGEWATCH_WEBHOOK_SECRET")
        .output()
        .expect("runs")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// (id, state, sequence) of delivered alerts, in arrival order.
fn delivered(receiver: &Receiver) -> Vec<(String, String, u64)> {
    receiver
        .delivered()
        .iter()
        .map(|r| {
            let a = r.json();
            (
                a["id"].as_str().unwrap_or("?").to_owned(),
                a["state"].as_str().unwrap_or("?").to_owned(),
                a["sequence"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

const DEMO_STATES: [&str; 3] = ["firing", "updated", "resolved"];

#[test]
fn a_receiver_down_for_a_while_gets_every_alert_in_order() {
    let addr = free_port();
    let url = format!("http://{addr}/hook");
    // The receiver comes up three seconds into the replay.
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        Receiver::start_on(addr)
    });
    let out = outagewatch(&[
        "replay",
        path(&demo()),
        "--webhook",
        &url,
        "--drain-timeout",
        "60",
    ]);
    let receiver = late.join().expect("receiver thread");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let got = delivered(&receiver);
    let states: Vec<&str> = got.iter().map(|g| g.1.as_str()).collect();
    assert_eq!(states, DEMO_STATES, "every alert, in order: {stderr}");
    assert!(stderr.contains("sink webhook-1: 3 delivered"), "{stderr}");
    assert!(stderr.contains("retries"), "{stderr}");
    // Idempotency keys: one per alert event, stable.
    let keys: Vec<String> = receiver
        .delivered()
        .iter()
        .filter_map(|r| r.header("idempotency-key"))
        .collect();
    let expected: Vec<String> = got
        .iter()
        .map(|(id, _, seq)| format!("{id}:{seq}"))
        .collect();
    assert_eq!(keys, expected);
}

#[test]
fn server_errors_are_retried_honouring_retry_after_with_the_same_key_and_signature() {
    let receiver = Receiver::start();
    receiver.script(&[(500, None), (503, Some(2)), (429, None)]);
    let out = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .args([
            "replay",
            path(&demo()),
            "--webhook",
            &receiver.url(),
            "--drain-timeout",
            "60",
        ])
        .env("OUTAGEWATCH_WEBHOOK_SECRET", "s3cret")
        .env("RUST_LOG", "warn")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let all = receiver.received();
    let statuses: Vec<u16> = all.iter().map(|r| r.status).collect();
    assert_eq!(&statuses[..4], &[500, 503, 429, 200], "{statuses:?}");
    // The first alert was tried four times with one key.
    let first_keys: Vec<Option<String>> = all[..4]
        .iter()
        .map(|r| r.header("idempotency-key"))
        .collect();
    assert!(
        first_keys
            .iter()
            .all(|k| k.is_some() && *k == first_keys[0]),
        "{first_keys:?}"
    );
    // Retry-After: 2 was honoured before the third attempt.
    let waited = all[2].at.duration_since(all[1].at);
    assert!(waited >= Duration::from_millis(1900), "waited {waited:?}");
    assert_eq!(
        delivered(&receiver)
            .iter()
            .map(|g| g.1.as_str())
            .collect::<Vec<_>>(),
        DEMO_STATES
    );
    // Every request is signed; the signature verifies as the README says,
    // and fails with another secret.
    for request in &all {
        let timestamp = request
            .header(sign::TIMESTAMP_HEADER)
            .expect("timestamp header");
        let signature = request
            .header(sign::SIGNATURE_HEADER)
            .expect("signature header");
        assert!(sign::verify(
            b"s3cret",
            &timestamp,
            &request.body,
            &signature
        ));
        assert!(!sign::verify(
            b"not-the-secret",
            &timestamp,
            &request.body,
            &signature
        ));
    }
}

#[test]
fn a_client_error_is_a_dead_letter_that_alerts_retry_requeues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let receiver = Receiver::start();
    receiver.always(Some(400));
    let out = outagewatch(&[
        "replay",
        path(&demo()),
        "--webhook",
        &receiver.url(),
        "--state-dir",
        path(&state),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "undeliverable alerts: exit 3\n{stderr}"
    );
    assert!(stderr.contains("3 dead letters"), "{stderr}");
    assert_eq!(receiver.received().len(), 3, "a 400 is not retried");

    let dead = outagewatch(&["alerts", "dead", "--state-dir", path(&state)]);
    let listing = String::from_utf8_lossy(&dead.stdout);
    assert!(dead.status.success());
    assert_eq!(listing.lines().count(), 3, "{listing}");
    assert!(
        listing.contains("HTTP 400"),
        "the reason is kept: {listing}"
    );
    let first_id = listing.split_whitespace().next().expect("an id").to_owned();
    assert!(first_id.starts_with("webhook-1:"), "{first_id}");

    let retry = outagewatch(&["alerts", "retry", &first_id, "--state-dir", path(&state)]);
    assert!(
        retry.status.success(),
        "{}",
        String::from_utf8_lossy(&retry.stderr)
    );
    let left = outagewatch(&["alerts", "dead", "--state-dir", path(&state)]);
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).lines().count(),
        2,
        "one re-queued"
    );

    // The receiver is fixed; the next run delivers the re-queued alert.
    receiver.always(None);
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").expect("write");
    let again = outagewatch(&[
        "replay",
        path(&empty),
        "--webhook",
        &receiver.url(),
        "--state-dir",
        path(&state),
    ]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let got = delivered(&receiver);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, "firing");
}

#[test]
fn alerts_left_undelivered_by_a_killed_daemon_are_delivered_after_restart() {
    let frames = demo_frames();
    let newest = newest_time(&frames);
    let dir = tempfile::tempdir().expect("tempdir");
    let server = JetstreamServer::start(frames, Plan::default());
    let config = jetstream_config(dir.path(), &[server.url()], 5.0);
    let state = dir.path().join("state");
    let alerts = dir.path().join("alerts.jsonl");
    let receiver = Receiver::start();
    receiver.always(Some(503));
    let args = |receiver: &Receiver| {
        vec![
            "run".to_owned(),
            "--config".into(),
            path(&config).into(),
            "--state-dir".into(),
            path(&state).into(),
            "--alerts".into(),
            path(&alerts).into(),
            "--webhook".into(),
            receiver.url(),
        ]
    };
    let first_args = args(&receiver);
    let first = Daemon::start(&first_args.iter().map(String::as_str).collect::<Vec<_>>());
    first.wait_for(
        &format!("processed={}", support::at(newest)),
        Duration::from_secs(120),
    );
    first.wait_until(|_| receiver.received().len() >= 2, Duration::from_secs(30));
    first.kill();
    assert!(
        receiver.delivered().is_empty(),
        "nothing could be delivered yet"
    );

    receiver.always(None);
    let second = Daemon::start(&first_args.iter().map(String::as_str).collect::<Vec<_>>());
    second.wait_until(|_| delivered(&receiver).len() >= 3, Duration::from_secs(60));
    let (status, _, log) = second.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    let states: Vec<String> = delivered(&receiver).into_iter().map(|g| g.1).collect();
    assert_eq!(
        states, DEMO_STATES,
        "all three, in order, after the restart"
    );
}

#[test]
fn alerts_test_sends_a_test_alert_to_a_sink() {
    let receiver = Receiver::start();
    let out = outagewatch(&[
        "alerts",
        "test",
        "--sink",
        "hook",
        "--webhook",
        &receiver.url(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("test alert delivered (HTTP 200)"));
    assert_eq!(receiver.delivered().len(), 1);
    receiver.always(Some(404));
    let failed = outagewatch(&[
        "alerts",
        "test",
        "--sink",
        "hook",
        "--webhook",
        &receiver.url(),
    ]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("HTTP 404") && stderr.contains("dead letter"),
        "{stderr}"
    );
}
