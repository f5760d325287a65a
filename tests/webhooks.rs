//! Webhook delivery against loopback receivers: a receiver that is down,
//! that answers 500 (with Retry-After) or 400, a daemon killed with alerts
//! undelivered; keys, order and signatures checked on what arrives.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use axum::http::HeaderMap;
use outagewatch::alert::sign;
use serde_json::Value;
use support::receiver::{Answer, AnswerBody, Receiver, free_port};
use support::{Conn, Daemon, JetstreamServer, Plan, demo_frames, jetstream_config, newest_time};

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo.jsonl.gz")
}

/// A replay whose three demo alerts all became dead letters: exit 3, and
/// the summary says so. Returns its stderr.
fn all_dead(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{what}: exit 3\n{stderr}");
    assert!(stderr.contains("3 dead letters"), "{what}: {stderr}");
    stderr
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

/// A receiver not listening yet (connections refused): the sink retries
/// until it is up, and every alert arrives once, in order. The receiver
/// starts only once the replay has logged a refused delivery, so the
/// retry is certain, not a matter of timing.
#[test]
fn a_receiver_down_for_a_while_gets_every_alert_in_order() {
    use std::io::BufRead;
    let addr = free_port();
    let url = format!("http://{addr}/hook");
    let mut child = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .args([
            "replay",
            path(&demo()),
            "--webhook",
            &url,
            "--drain-timeout",
            "60",
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let stderr_pipe = child.stderr.take().expect("stderr");
    let (refused_tx, refused_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stderr_pipe).lines() {
            let Ok(line) = line else { break };
            if line.contains("delivery failed; will retry") {
                let _ = refused_tx.send(());
            }
            lines.push(line);
        }
        lines.join("\n")
    });
    refused_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("a delivery refused while the receiver is down");
    let receiver = Receiver::start_on(addr);
    let out = child.wait_with_output().expect("the replay ends");
    let out = std::process::Output {
        stderr: reader.join().expect("stderr reader").into_bytes(),
        ..out
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let got = delivered(&receiver);
    let states: Vec<&str> = got.iter().map(|g| g.1.as_str()).collect();
    assert_eq!(states, DEMO_STATES, "every alert, in order: {stderr}");
    let name = outagewatch::config::webhook_name(&url);
    let summary = stderr
        .lines()
        .find_map(|l| l.strip_prefix(&format!("sink {name}: 3 delivered, ")))
        .unwrap_or_else(|| panic!("no summary of 3 delivered: {stderr}"));
    let retries: u64 = summary
        .split_once(" retries")
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no retry count: {summary}"));
    assert!(retries >= 1, "the refused delivery was retried: {stderr}");
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
    all_dead(&out, "undeliverable alerts");
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
    let name = outagewatch::config::webhook_name(&receiver.url());
    assert!(first_id.starts_with(&format!("{name}:")), "{first_id}");

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

/// A hook's secret may be any part of its path or its query: the log and
/// a dead letter's reason show the sink's name and the receiver's scheme,
/// host and port only, whether it cannot be reached or redirects (to a
/// `Location` carrying one). `cannot reach` printed all but the segments
/// that looked like tokens: Slack's `T…/B…`, a Zapier hook's
/// `/hooks/catch/987123/zq7pkx1/` whole.
#[test]
fn a_hook_s_path_and_query_are_never_printed() {
    let secrets = [
        "T000",
        "B000",
        "XXXXSECRET",
        "token",
        "hooks",
        "987123",
        "zq7pkx1",
    ];
    let down = free_port();
    for url in [
        format!("http://{down}/T000/B000/XXXXSECRET?token=abc"),
        format!("http://{down}/hooks/catch/987123/zq7pkx1/"),
    ] {
        let out = outagewatch(&[
            "replay",
            "--drain-timeout",
            "3",
            "--webhook",
            &url,
            path(&demo()),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = outagewatch::config::webhook_name(&url);
        assert!(
            stderr.contains(&format!("sink={name}"))
                && stderr.contains(&format!("reason=cannot reach http://{down}: ")),
            "{url}: {stderr}"
        );
        for secret in secrets {
            assert!(!stderr.contains(secret), "{url}: {secret} in\n{stderr}");
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let receiver = Receiver::start();
    receiver.always_answer(Some(
        Answer::status(302).header("location", "/hooks/catch/987123/zq7pkx1/?token=abc"),
    ));
    let out = outagewatch(&[
        "replay",
        "--webhook",
        &receiver.url(),
        "--state-dir",
        path(&state),
        path(&demo()),
    ]);
    let stderr = all_dead(&out, "redirected");
    let dead = outagewatch(&["alerts", "dead", "--state-dir", path(&state)]);
    let listing = String::from_utf8_lossy(&dead.stdout);
    assert!(
        listing.contains(&format!("redirect to http://{}; ", receiver.addr)),
        "{listing}"
    );
    for secret in secrets {
        assert!(
            !stderr.contains(secret) && !listing.contains(secret),
            "{secret} in\n{stderr}\n{listing}"
        );
    }
}

/// A sink missing from a run's configuration: the alerts it was owed used
/// to be removed with the other sinks' delivered ones, in silence (a
/// `replay` without `--config` on the daemon's state, or a renamed sink).
/// Renamed with `formerly`, a sink takes over its old name's place and
/// gets them; missing, its owed alerts become its dead letters, said at
/// the start, and `alerts retry` sends them once it is configured again.
#[test]
fn a_sink_missing_from_a_run_is_owed_its_alerts_still() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = file_in(dir.path(), "empty.jsonl", "");
    let receiver = Receiver::start();
    let config = |file: &str, sink: &str| {
        let text = format!(
            "[[sinks]]
{sink}
url = \"{}\"
",
            receiver.url()
        );
        file_in(dir.path(), file, &text)
    };
    let oncall = config("oncall.toml", "name = \"oncall\"");
    let pager = config("pager.toml", "name = \"pager\"\nformerly = \"oncall\"");
    let states = || -> Vec<String> { delivered(&receiver).into_iter().map(|d| d.1).collect() };

    // Renamed: the three alerts the failing receiver did not take go out
    // under the new name once it answers.
    let state = dir.path().join("renamed");
    receiver.always(Some(500));
    replay_into(&demo(), &state, Some(&oncall));
    receiver.always(None);
    let stderr = replay_into(&empty, &state, Some(&pager));
    assert_eq!(states(), DEMO_STATES, "{stderr}");

    // Missing from a run: its dead letters, then re-queued and sent.
    let state = dir.path().join("missing");
    receiver.always(Some(500));
    replay_into(&demo(), &state, Some(&oncall));
    let stderr = replay_into(&empty, &state, None);
    assert!(
        stderr.contains("they are its dead letters now") && stderr.contains("oncall"),
        "{stderr}"
    );
    let dead = outagewatch(&["alerts", "dead", "--state-dir", path(&state)]);
    let listing = String::from_utf8_lossy(&dead.stdout);
    assert_eq!(listing.lines().count(), 3, "{listing}");
    assert!(listing.contains("was not configured"), "{listing}");
    // Re-queued, with a word that this configuration lacks the sink; a
    // run without it makes them dead letters again.
    let retry = outagewatch(&["alerts", "retry", "--state-dir", path(&state)]);
    let said = String::from_utf8_lossy(&retry.stderr).into_owned();
    assert!(
        String::from_utf8_lossy(&retry.stdout).contains("3 alert(s) re-queued"),
        "{said}"
    );
    assert!(
        said.contains("configuration does not have: oncall"),
        "{said}"
    );
    replay_into(&empty, &state, None);
    let dead = outagewatch(&["alerts", "dead", "--state-dir", path(&state)]);
    assert_eq!(String::from_utf8_lossy(&dead.stdout).lines().count(), 3);
    let retry = outagewatch(&[
        "alerts",
        "retry",
        "--state-dir",
        path(&state),
        "--config",
        path(&oncall),
    ]);
    assert!(
        String::from_utf8_lossy(&retry.stdout).contains("3 alert(s) re-queued"),
        "{}",
        String::from_utf8_lossy(&retry.stderr)
    );
    receiver.always(None);
    let before = states().len();
    let stderr = replay_into(&empty, &state, Some(&oncall));
    assert_eq!(states()[before..], DEMO_STATES, "{stderr}");
}

/// A sink left out of one run and configured again goes on from where it
/// was retired: beside a failing sink it started at that sink's cursor
/// and was sent the incident it already had a second time (a fresh page
/// at PagerDuty).
#[test]
fn a_sink_left_out_of_one_run_is_not_sent_again_what_it_had() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let empty = file_in(dir.path(), "empty.jsonl", "");
    let (ok, bad) = (Receiver::start(), Receiver::start());
    bad.always(Some(500));
    let sink =
        |name: &str, r: &Receiver| format!("[[sinks]]\nname = \"{name}\"\nurl = \"{}\"\n", r.url());
    let write = |file: &str, text: String| file_in(dir.path(), file, &text);
    let both = write("both.toml", sink("ok", &ok) + &sink("bad", &bad));
    let only_bad = write("bad.toml", sink("bad", &bad));
    let run = |file: &Path, config: &Path| replay_into(file, &state, Some(config));
    run(&demo(), &both);
    assert_eq!(delivered(&ok).len(), 3);
    run(&empty, &only_bad);
    let stderr = run(&empty, &both);
    assert_eq!(delivered(&ok).len(), 3, "nothing sent twice: {stderr}");
}

/// A state from when webhooks given by URL were named by position
/// (`webhook-1`) carries over to the URL's name: the alerts the first
/// webhook was owed go out under its new name once, and are not lost.
#[test]
fn a_positional_webhook_s_state_carries_over_to_its_url_s_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let empty = file_in(dir.path(), "empty.jsonl", "");
    let receiver = Receiver::start();
    let write = |file: &str, text: String| file_in(dir.path(), file, &text);
    // As an older version kept it: the sink `webhook-1`, owed three alerts.
    let old = write(
        "old.toml",
        format!(
            "[[sinks]]\nname = \"webhook-1\"\nurl = \"{}\"\n",
            receiver.url()
        ),
    );
    let new = write(
        "new.toml",
        format!("[alerts]\nwebhooks = [\"{}\"]\n", receiver.url()),
    );
    receiver.always(Some(500));
    let run = |file: &Path, config: &Path| replay_into(file, &state, Some(config));
    run(&demo(), &old);
    receiver.always(None);
    let stderr = run(&empty, &new);
    let states: Vec<String> = delivered(&receiver).into_iter().map(|d| d.1).collect();
    assert_eq!(states, DEMO_STATES, "{stderr}");
    let name = outagewatch::config::webhook_name(&receiver.url());
    assert!(
        stderr.contains(&format!("sink {name}: 3 delivered")),
        "{stderr}"
    );
}

/// A sink's filter picks the incidents it takes; one already delivered
/// gets its later transitions whatever the filter says now. The filter
/// was applied to each transition alone: changed during an incident, it
/// dropped the `resolved`, and a receiver that keeps incidents open held
/// it open for good.
#[test]
fn a_filter_changed_during_an_incident_still_lets_its_resolution_through() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let receiver = Receiver::start();
    // The demo's incident fires at 14:17:40 and resolves at 14:24:00: the
    // first part ends after its `updated`, the second holds its end.
    let frames = demo_frames();
    let cut = frames
        .iter()
        .position(|f| {
            serde_json::from_str::<Value>(f).is_ok_and(|v| {
                v["time_us"]
                    .as_i64()
                    .is_some_and(|t| t >= 1_783_175_000_000_000)
            })
        })
        .expect("a frame after 14:23:20");
    let part = |name: &str, lines: &[String]| {
        let file = dir.path().join(name);
        std::fs::write(&file, lines.join("\n") + "\n").expect("write");
        file
    };
    let (first, second) = (
        part("first.jsonl", &frames[..cut]),
        part("second.jsonl", &frames[cut..]),
    );
    let config = |name: &str, services: &str| {
        let text = format!(
            "[[sinks]]\nname = \"pager\"\nurl = \"{}\"\nservices = [{services}]\n",
            receiver.url()
        );
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("config");
        path
    };
    let (all, other) = (config("all.toml", ""), config("github.toml", "\"github\""));
    for (file, config) in [(&first, &all), (&second, &other)] {
        let out = outagewatch(&[
            "replay",
            path(file),
            "--state-dir",
            path(&state),
            "--config",
            path(config),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got = delivered(&receiver);
    let states: Vec<&str> = got.iter().map(|g| g.1.as_str()).collect();
    assert_eq!(states, DEMO_STATES, "{got:?}");
}

/// A receiver that keeps incidents open (PagerDuty here) refused the
/// incident's `firing` and took its `updated` and `resolved`. Re-queued,
/// the firing was sent after them and reopened the incident there (at
/// Alertmanager it was re-posted for good). It is now kept back, and says
/// why; a receiver of messages (JSON) still gets it.
#[test]
fn a_requeued_firing_is_not_sent_again_to_a_stateful_receiver_after_its_resolution() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let (paging, messages) = (Receiver::start(), Receiver::start());
    paging.script(&[(400, None)]);
    messages.script(&[(400, None)]);
    let config = write_config(
        dir.path(),
        &format!(
            "[[sinks]]\nname = \"pd\"\nformat = \"pagerduty\"\nrouting_key = \"k\"\nurl = \"http://{}/v2/enqueue\"\n\n\
             [[sinks]]\nname = \"messages\"\nurl = \"{}\"\n",
            paging.addr,
            messages.url()
        ),
    );
    let replay = |file: &Path| {
        outagewatch(&[
            "replay",
            path(file),
            "--config",
            path(&config),
            "--state-dir",
            path(&state),
        ])
    };
    replay(&demo());
    let actions = |r: &Receiver| -> Vec<String> {
        r.delivered()
            .iter()
            .map(|r| {
                let v = r.json();
                let action = v["event_action"].as_str().or(v["state"].as_str());
                action.unwrap_or("?").to_owned()
            })
            .collect()
    };
    assert_eq!(
        actions(&paging),
        ["trigger", "resolve"],
        "the firing was refused"
    );
    assert_eq!(actions(&messages), ["updated", "resolved"]);

    let dead = outagewatch(&["alerts", "dead", "--state-dir", path(&state)]);
    let listing = String::from_utf8_lossy(&dead.stdout).into_owned();
    assert_eq!(listing.lines().count(), 2, "{listing}");
    let superseded: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains("superseded by its resolved"))
        .collect();
    assert_eq!(superseded.len(), 1, "{listing}");
    assert!(superseded[0].starts_with("pd:"), "{listing}");

    let retry = outagewatch(&["alerts", "retry", "--state-dir", path(&state)]);
    assert!(
        retry.status.success(),
        "{}",
        String::from_utf8_lossy(&retry.stderr)
    );
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").expect("write");
    let again = replay(&empty);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(
        actions(&paging),
        ["trigger", "resolve"],
        "not reopened: {stderr}"
    );
    assert_eq!(actions(&messages), ["updated", "resolved", "firing"]);
    assert!(stderr.contains("not sent again"), "{stderr}");
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
    first.wait_for_newest(newest, Duration::from_secs(120));
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("delivered (HTTP 200)"), "{stderr}");
    assert!(stderr.contains("the receiver answered: ok"), "{stderr}");
    assert_eq!(receiver.delivered().len(), 1);
    let test = receiver.delivered()[0].json();
    assert_eq!(test["test"], true, "{test}");
    assert_eq!(test["service"], "outagewatch-test");
    // A second test gets a fresh idempotency key.
    let again = outagewatch(&[
        "alerts",
        "test",
        "--sink",
        "hook",
        "--webhook",
        &receiver.url(),
    ]);
    assert!(again.status.success());
    let keys: Vec<Option<String>> = receiver
        .delivered()
        .iter()
        .map(|r| r.header("idempotency-key"))
        .collect();
    assert_eq!(keys.len(), 2);
    assert!(keys[0].is_some() && keys[0] != keys[1], "{keys:?}");
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

/// A file `name` in `dir` holding `text`.
fn file_in(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

/// `replay FILE --state-dir STATE`, with `--config` when given, the sinks
/// given a second to deliver; its stderr.
fn replay_into(file: &Path, state: &Path, config: Option<&Path>) -> String {
    let mut args = vec!["replay", path(file), "--state-dir", path(state)];
    args.extend(["--drain-timeout", "1"]);
    if let Some(config) = config {
        args.extend(["--config", path(config)]);
    }
    String::from_utf8_lossy(&outagewatch(&args).stderr).into_owned()
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("sinks.toml");
    std::fs::write(&path, text).expect("config");
    path
}

fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_outagewatch"));
    command
        .args(args)
        .env("RUST_LOG", "info,outagewatch=debug")
        .env_remove("OUTAGEWATCH_WEBHOOK_SECRET");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("runs")
}

fn text_of(v: &Value, key: &str) -> Result<String, String> {
    v[key]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("{key} is required"))
}

/// PagerDuty Events API v2: routing_key, event_action, dedup_key; on
/// trigger, payload.summary|source|severity.
fn pagerduty_check(path: &str, _: &HeaderMap, v: &Value) -> Result<(), String> {
    if path != "/v2/enqueue" {
        return Err(format!("no route {path}"));
    }
    if text_of(v, "routing_key")? != "pd-routing-key-123" {
        return Err("invalid routing_key".into());
    }
    let action = text_of(v, "event_action")?;
    text_of(v, "dedup_key")?;
    match action.as_str() {
        "trigger" => {
            let p = &v["payload"];
            let summary = text_of(p, "summary")?;
            if summary.chars().count() > 1024 {
                return Err("summary too long".into());
            }
            text_of(p, "source")?;
            let severity = text_of(p, "severity")?;
            if !["critical", "error", "warning", "info"].contains(&severity.as_str()) {
                return Err(format!("bad severity {severity}"));
            }
            Ok(())
        }
        "resolve" | "acknowledge" => Ok(()),
        other => Err(format!("bad event_action {other}")),
    }
}

/// Opsgenie: `Authorization: GenieKey KEY`; create needs message ≤ 130;
/// close is by alias.
fn opsgenie_check(path: &str, headers: &HeaderMap, v: &Value) -> Result<(), String> {
    let auth = headers.get("authorization").and_then(|h| h.to_str().ok());
    if auth != Some("GenieKey og-api-key-456") {
        return Err("missing or wrong GenieKey".into());
    }
    if path == "/v2/alerts" {
        let message = text_of(v, "message")?;
        if message.chars().count() > 130 {
            return Err("message too long".into());
        }
        let priority = text_of(v, "priority")?;
        if !["P1", "P2", "P3", "P4", "P5"].contains(&priority.as_str()) {
            return Err("bad priority".into());
        }
        return Ok(());
    }
    if path.starts_with("/v2/alerts/") && path.ends_with("/close?identifierType=alias") {
        return Ok(());
    }
    Err(format!("no route {path}"))
}

/// An incident that fires `low` and escalates to `medium` (the demo)
/// reaches Opsgenie as a create at P3, then a create of the same alias at
/// P2, which Opsgenie de-duplicates into the open alert and raises it to
/// (a higher priority restarts its notifications), then a close by alias;
/// each with the GenieKey and its own idempotency key.
#[test]
fn an_escalation_raises_the_open_opsgenie_alerts_priority() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start();
    receiver.check(opsgenie_check);
    let config = write_config(
        dir.path(),
        &format!(
            "[[sinks]]\nname = \"og\"\nformat = \"opsgenie\"\napi_key = \"${{OG_KEY}}\"\nurl = \"http://{}\"\n",
            receiver.addr
        ),
    );
    let out = run_with_env(
        &[
            "replay",
            path(&demo()),
            "--config",
            path(&config),
            "--state-dir",
            path(&dir.path().join("state")),
        ],
        &[("OG_KEY", "og-api-key-456")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let got = receiver.received();
    let seen: Vec<(u16, &str, Value)> = got
        .iter()
        .map(|r| (r.status, r.path.as_str(), r.json()))
        .collect();
    assert_eq!(got.len(), 3, "{seen:?}");
    assert!(got.iter().all(|r| r.status == 200), "{seen:?}");
    let (firing, updated) = (got[0].json(), got[1].json());
    let alias = firing["alias"].as_str().expect("alias").to_owned();
    assert_eq!(got[0].path, "/v2/alerts");
    assert_eq!(got[1].path, "/v2/alerts", "an update is a create");
    assert_eq!(updated["alias"], alias.as_str(), "of the open alert");
    assert_eq!(
        (&firing["priority"], &updated["priority"]),
        (&Value::from("P3"), &Value::from("P2")),
        "low, then medium"
    );
    assert_eq!(updated["details"]["state"], "updated");
    assert_eq!(
        got[2].path,
        format!("/v2/alerts/{alias}/close?identifierType=alias")
    );
    let keys: Vec<Option<String>> = got.iter().map(|r| r.header("idempotency-key")).collect();
    assert_eq!(
        keys,
        [1, 2, 3].map(|n| Some(format!("{alias}:{n}"))),
        "one key per event"
    );
}

/// Alertmanager v2: an array of alerts with labels (alertname required),
/// RFC 3339 times.
fn alertmanager_check(path: &str, _: &HeaderMap, v: &Value) -> Result<(), String> {
    if path != "/api/v2/alerts" {
        return Err(format!("no route {path}"));
    }
    let alerts = v.as_array().ok_or("an array of alerts is required")?;
    for a in alerts {
        text_of(&a["labels"], "alertname")?;
        for key in ["startsAt", "endsAt"] {
            let t = text_of(a, key)?;
            chrono::DateTime::parse_from_rfc3339(&t).map_err(|e| format!("{key}: {e}"))?;
        }
    }
    Ok(())
}

fn slack_check(_: &str, _: &HeaderMap, v: &Value) -> Result<(), String> {
    text_of(v, "text")?;
    v["blocks"].as_array().ok_or("blocks")?;
    Ok(())
}

fn discord_check(_: &str, _: &HeaderMap, v: &Value) -> Result<(), String> {
    if v["content"].as_str().is_none() && v["embeds"].as_array().is_none() {
        return Err("content or embeds required".into());
    }
    Ok(())
}

#[test]
fn every_format_reaches_a_receiver_that_checks_its_required_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receivers: Vec<(&str, Receiver)> = vec![
        ("pagerduty", Receiver::start()),
        ("opsgenie", Receiver::start()),
        ("alertmanager", Receiver::start()),
        ("slack", Receiver::start()),
        ("discord", Receiver::start()),
        ("json", Receiver::start()),
    ];
    let checks: [support::receiver::Check; 6] = [
        pagerduty_check,
        opsgenie_check,
        alertmanager_check,
        slack_check,
        discord_check,
        |_, _, v| text_of(v, "id").map(|_| ()),
    ];
    let mut config = String::new();
    for ((format, receiver), check) in receivers.iter().zip(checks) {
        receiver.check(check);
        let base = format!("http://{}", receiver.addr);
        let url = match *format {
            "pagerduty" => format!("{base}/v2/enqueue"),
            "json" | "slack" | "discord" => format!("{base}/hook"),
            _ => base,
        };
        config.push_str(&format!(
            "[[sinks]]\nname = \"{format}\"\nurl = \"{url}\"\nformat = \"{format}\"\nrouting_key = \"${{PD_KEY}}\"\napi_key = \"${{OG_KEY}}\"\n\n"
        ));
    }
    let config = write_config(dir.path(), &config);
    for (format, receiver) in &receivers {
        let out = run_with_env(
            &[
                "alerts",
                "test",
                "--config",
                path(&config),
                "--sink",
                format,
            ],
            &[
                ("PD_KEY", "pd-routing-key-123"),
                ("OG_KEY", "og-api-key-456"),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{format}: {stderr}");
        let got = receiver.received();
        assert!(
            got.iter().all(|r| r.status < 300),
            "{format}: {:?}",
            got.iter()
                .map(|r| (
                    r.status,
                    r.path.clone(),
                    String::from_utf8_lossy(&r.body).to_string()
                ))
                .collect::<Vec<_>>()
        );
        assert!(!stderr.contains("pd-routing-key-123") && !stderr.contains("og-api-key-456"));
        let bodies: Vec<Value> = got.iter().map(|r| r.json()).collect();
        match *format {
            "pagerduty" => {
                let actions: Vec<&str> = bodies
                    .iter()
                    .map(|b| b["event_action"].as_str().unwrap_or(""))
                    .collect();
                assert_eq!(actions, ["trigger", "resolve"]);
                assert_eq!(bodies[0]["dedup_key"], bodies[1]["dedup_key"]);
                assert_eq!(bodies[0]["payload"]["severity"], "info", "a test is info");
                assert!(
                    bodies[0]["payload"]["summary"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("[TEST]")
                );
            }
            "opsgenie" => {
                let alias = bodies[0]["alias"].as_str().expect("alias");
                assert_eq!(
                    got[1].path,
                    format!("/v2/alerts/{alias}/close?identifierType=alias")
                );
                assert!(
                    bodies[0]["message"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("[TEST]")
                );
            }
            "alertmanager" => {
                assert_eq!(got.len(), 2);
                let (first, last) = (&bodies[0][0], &bodies[1][0]);
                assert_eq!(first["labels"]["alertname"], "OutageReported");
                assert_eq!(first["labels"]["test"], "true");
                assert_eq!(first["labels"], last["labels"], "one alert, resolved");
                let ends = |a: &Value| {
                    chrono::DateTime::parse_from_rfc3339(a["endsAt"].as_str().unwrap_or(""))
                        .expect("endsAt")
                };
                assert!(
                    ends(first) > ends(last),
                    "firing ends later than its resolution"
                );
            }
            "slack" => {
                assert_eq!(got.len(), 1);
                assert!(
                    bodies[0]["text"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("[TEST]")
                );
            }
            "discord" => {
                assert_eq!(got.len(), 1);
                assert!(
                    bodies[0]["embeds"][0]["title"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("[TEST]")
                );
                assert_eq!(
                    bodies[0]["allowed_mentions"]["parse"],
                    serde_json::json!([])
                );
            }
            _ => {
                assert_eq!(got.len(), 1);
                assert_eq!(bodies[0]["test"], true);
            }
        }
    }
    // A receiver that finds a field missing answers 400: a dead letter.
    let strict = Receiver::start();
    strict.check(pagerduty_check);
    let out = run_with_env(
        &[
            "alerts",
            "test",
            "--sink",
            "pd",
            "--webhook",
            &format!("http://{}/v2/enqueue", strict.addr),
            "--format",
            "pagerduty",
            "--webhook-key",
            "wrong",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTP 400 Bad Request: invalid routing_key")
    );
}

#[test]
fn a_redirect_is_not_delivered_and_names_its_location() {
    let elsewhere = Receiver::start();
    for status in [301u16, 307] {
        let receiver = Receiver::start();
        let location = format!(
            "http://user:hunter2@{}/other?token=s3cr3tvalue",
            elsewhere.addr
        );
        receiver.always_answer(Some(Answer::status(status).header("location", &location)));
        let dir = tempfile::tempdir().expect("tempdir");
        let out = run_with_env(
            &[
                "replay",
                path(&demo()),
                "--webhook",
                &receiver.url(),
                "--state-dir",
                path(&dir.path().join("state")),
            ],
            &[],
        );
        let stderr = all_dead(&out, &format!("{status}: not delivered"));
        assert!(!stderr.contains("3 delivered"), "{stderr}");
        let named = format!("redirect to http://{}; ", elsewhere.addr);
        assert!(stderr.contains(&named), "{stderr}");
        assert!(
            !stderr.contains("hunter2") && !stderr.contains("s3cr3tvalue"),
            "{stderr}"
        );
        assert_eq!(receiver.received().len(), 3, "each tried once");
    }
    assert!(
        elsewhere.received().is_empty(),
        "nothing went to the other host"
    );

    // Opted in: a same-host 307 is followed with the whole signed POST; a
    // redirect to another host still is not.
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start();
    receiver.script_answers(vec![Answer::status(307).header("location", "/moved")]);
    let config = write_config(
        dir.path(),
        &format!(
            "[[sinks]]\nname = \"follow\"\nurl = \"{}\"\nsecret = \"k\"\nfollow_redirects = true\n\n[[sinks]]\nname = \"away\"\nurl = \"http://{}/hook\"\nfollow_redirects = true\n",
            receiver.url(),
            elsewhere.addr
        ),
    );
    let out = run_with_env(
        &[
            "alerts",
            "test",
            "--config",
            path(&config),
            "--sink",
            "follow",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].path, "/moved");
    assert_eq!(got[0].body, got[1].body, "the whole POST again");
    let (ts, sig) = (
        got[1].header(sign::TIMESTAMP_HEADER).expect("ts"),
        got[1].header(sign::SIGNATURE_HEADER).expect("sig"),
    );
    assert!(sign::verify(b"k", &ts, &got[1].body, &sig));
    elsewhere.always_answer(Some(
        Answer::status(308).header("location", &format!("http://{}/x", receiver.addr)),
    ));
    let out = run_with_env(
        &[
            "alerts",
            "test",
            "--config",
            path(&config),
            "--sink",
            "away",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("redirect to another host"), "{stderr}");
}

/// Peak resident memory of a running process, in kB (Linux).
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_gigabyte_error_body_is_not_read() {
    let receiver = Receiver::start();
    receiver.always_answer(Some(Answer {
        status: 500,
        headers: Vec::new(),
        body: AnswerBody::Huge(1 << 30),
    }));
    let mut child = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .args([
            "alerts",
            "test",
            "--sink",
            "hook",
            "--webhook",
            &receiver.url(),
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let pid = child.id();
    let mut peak = 0;
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        peak = peak.max(peak_rss_kb(pid).unwrap_or(0));
        assert!(started.elapsed() < Duration::from_secs(60), "still reading");
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a 500 is not delivered: {stderr}");
    assert!(stderr.contains("HTTP 500"), "{stderr}");
    assert!(
        stderr.contains("xxxxxxxx"),
        "the start of the answer is shown: {stderr}"
    );
    assert!(
        stderr.len() < 4000,
        "and only the start: {} bytes",
        stderr.len()
    );
    let streamed = receiver.streamed.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("1 GiB error body: {streamed} bytes produced, peak RSS {peak} kB");
    assert!(
        streamed < 64 << 20,
        "the server produced only {streamed} bytes of 1 GiB"
    );
    assert!(peak < 200 * 1024, "peak RSS {peak} kB");
}

#[test]
fn credentials_in_urls_and_headers_are_never_printed_or_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let receiver = Receiver::start();
    receiver.always(Some(400));
    let url = format!(
        "http://user:hunter2@{}/hook?token=s3cr3tvalue",
        receiver.addr
    );
    let out = run_with_env(
        &[
            "replay",
            path(&demo()),
            "--webhook",
            &url,
            "--state-dir",
            path(&state),
        ],
        &[],
    );
    let secret_free = |what: &str, text: &str| {
        assert!(
            !text.contains("hunter2")
                && !text.contains("s3cr3tvalue")
                && !text.contains("Bearer-t0ken"),
            "{what}: {text}"
        );
    };
    assert_eq!(out.status.code(), Some(3));
    secret_free("replay", &String::from_utf8_lossy(&out.stderr));
    secret_free("replay stdout", &String::from_utf8_lossy(&out.stdout));
    let dead = outagewatch(&["alerts", "dead", "--state-dir", path(&state)]);
    assert_eq!(String::from_utf8_lossy(&dead.stdout).lines().count(), 3);
    secret_free("dead letters", &String::from_utf8_lossy(&dead.stdout));
    // Nothing listening: the connection error names the URL's origin.
    let nowhere = format!("http://user:hunter2@{}/hook?token=s3cr3tvalue", free_port());
    let out = run_with_env(
        &["alerts", "test", "--sink", "x", "--webhook", &nowhere],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot reach http://127.0.0.1:"),
        "{stderr}"
    );
    secret_free("alerts test", &stderr);
    // A header from the environment reaches the receiver and no output.
    receiver.always(None);
    let config = write_config(
        dir.path(),
        &format!(
            "[[sinks]]\nname = \"auth\"\nurl = \"{url}\"\nheaders = {{ Authorization = \"${{HOOK_TOKEN}}\" }}\n"
        ),
    );
    let out = run_with_env(
        &[
            "alerts",
            "test",
            "--config",
            path(&config),
            "--sink",
            "auth",
        ],
        &[("HOOK_TOKEN", "Bearer-t0ken")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    secret_free("alerts test with headers", &stderr);
    let last = receiver.received().pop().expect("a request");
    assert_eq!(
        last.header("authorization").as_deref(),
        Some("Bearer-t0ken")
    );
}

// One sink's rate limit never delaying another is tested in-process on
// paused tokio time: `alert::paused_tests`.

/// `source:bluesky` alerts in the alerts file.
fn source_alerts(alerts: &Path) -> Vec<Value> {
    std::fs::read_to_string(alerts)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"service\":\"source:bluesky\""))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn an_open_source_alert_is_resolved_after_a_restart_once_the_source_is_healthy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let alertmanager = Receiver::start();
    alertmanager.check(alertmanager_check);
    // First run: the firehose accepts connections and sends nothing.
    let silent = JetstreamServer::start(
        demo_frames(),
        Plan {
            conns: vec![Conn::StallAfter(0); 1000],
            ..Plan::default()
        },
    );
    let config = jetstream_config(dir.path(), &[silent.url()], 30.0);
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace("silence_secs = 3600", "silence_secs = 2\ngrace_secs = 0")
        + &format!(
            "\n[[sinks]]\nname = \"am\"\nurl = \"http://{}\"\nformat = \"alertmanager\"\nrepeat_secs = 1\n",
            alertmanager.addr
        );
    std::fs::write(&config, &text).expect("config");
    let run = |config: &Path| {
        Daemon::start(&[
            "run",
            "--config",
            path(config),
            "--state-dir",
            path(&state),
            "--alerts",
            path(&alerts),
        ])
    };
    let first = run(&config);
    first.wait_until(
        |_| !source_alerts(&alerts).is_empty(),
        Duration::from_secs(60),
    );
    // Alertmanager hears about it again and again while it fires.
    first.wait_until(
        |_| alertmanager.received().len() >= 3,
        Duration::from_secs(30),
    );
    first.kill();
    let fired = source_alerts(&alerts);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0]["state"], "firing");
    assert_eq!(fired[0]["kind"], "source");
    let detail = fired[0]["detail"].as_str().unwrap_or("");
    assert!(
        detail.starts_with("no usable frames from bluesky for"),
        "{detail}"
    );
    let posts = alertmanager.received();
    assert!(posts.iter().all(|p| p.status == 200));
    let labels: Vec<Value> = posts
        .iter()
        .map(|p| p.json()[0]["labels"].clone())
        .collect();
    assert!(
        labels.iter().all(|l| *l == labels[0]),
        "one alert re-posted: {labels:?}"
    );
    assert_eq!(labels[0]["alertname"], "OutageSourceUnhealthy");

    // Second run: the same state, a firehose that delivers for several
    // seconds (paced: the source must stay healthy for calm_secs, 2 s, and
    // an optimised build had read the whole demo in under one, then fell
    // silent again before the incident could resolve).
    let healthy = JetstreamServer::start(
        demo_frames(),
        Plan {
            pace_every: 3,
            ..Plan::default()
        },
    );
    std::fs::write(&config, text.replace(&silent.url(), &healthy.url())).expect("config");
    let second = run(&config);
    second.wait_until(
        |_| source_alerts(&alerts).len() >= 2,
        Duration::from_secs(60),
    );
    second.wait_until(
        |_| {
            alertmanager.received().iter().any(|p| {
                let a = &p.json()[0];
                a["labels"] == labels[0]
                    && chrono::DateTime::parse_from_rfc3339(a["endsAt"].as_str().unwrap_or(""))
                        .is_ok_and(|t| t <= chrono::Utc::now())
            })
        },
        Duration::from_secs(30),
    );
    let (status, _, log) = second.terminate(Duration::from_secs(20));
    assert!(status.success(), "{log}");
    let all = source_alerts(&alerts);
    assert_eq!(all[1]["state"], "resolved", "{all:?}");
    assert_eq!(all[1]["id"], all[0]["id"], "the same incident");
    let detail = all[1]["detail"].as_str().unwrap_or("");
    assert!(detail.starts_with("bluesky is back"), "{detail}");
    assert_eq!(
        all.iter()
            .filter(|a| a["state"] == "firing" && a["id"] == all[0]["id"])
            .count(),
        1,
        "not raised again: {all:?}"
    );
}

#[test]
fn a_receiver_that_never_answers_times_out() {
    // Accepts connections, reads nothing, answers nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().take(1) {
            open.push(stream);
            // Held far longer than the bound below: only the 1 s timeout
            // can end the request in time, even on a busy machine.
            std::thread::sleep(Duration::from_secs(300));
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!("[[sinks]]\nname = \"slow\"\nurl = \"http://{addr}/hook\"\ntimeout_secs = 1\n"),
    );
    let started = std::time::Instant::now();
    let out = run_with_env(
        &[
            "alerts",
            "test",
            "--config",
            path(&config),
            "--sink",
            "slow",
        ],
        &[],
    );
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("timed out after 1s"), "{stderr}");
    assert!(took < Duration::from_secs(120), "took {took:?}");
    drop(held);
}

/// `alerts test --sink NAME --webhook URL` tests URL even when a configured
/// sink has that name (it posted to the configured sink's URL instead).
#[test]
fn alerts_test_posts_to_the_url_given_even_under_a_configured_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start();
    let old = format!("http://{}/old", free_port());
    let config = write_config(
        dir.path(),
        &format!("[[sinks]]\nname = \"slack\"\nurl = \"{old}\"\n"),
    );
    let new = format!("http://{}/new", receiver.addr);
    let out = outagewatch(&[
        "alerts",
        "test",
        "--config",
        path(&config),
        "--sink",
        "slack",
        "--webhook",
        &new,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = receiver.received();
    assert_eq!(got.len(), 1, "one test alert at the URL given");
}
