//! The sinks at their edges, end to end with the real binary: an alerts
//! file that is a FIFO nobody has open or whose reader stopped reading
//! (`run` and `replay` start, serve, stop and say what waits), and
//! Discord's 429s read in the units of the sink's API version (against
//! the loopback receiver).

mod support;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::receiver::{Answer, Receiver};
use support::{Daemon, JetstreamServer, Plan, demo_frames, jetstream_config};

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo.jsonl.gz")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// A FIFO at `dir/name`.
fn fifo(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let fifo = dir.join(name);
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    fifo
}

/// One end of `fifo`, opened without waiting for the other.
fn open_end(fifo: &Path, write: bool) -> File {
    OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .expect("open the FIFO")
}

/// Reads `reader` (non-blocking) until it holds `lines` lines, at most
/// `limit`; the states of the alerts read.
fn read_states(reader: &mut File, lines: usize, limit: Duration) -> Vec<String> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0u8; 8192];
    while got.iter().filter(|b| **b == b'\n').count() < lines {
        assert!(
            start.elapsed() < limit,
            "{lines} lines not read within {limit:?}: {}",
            String::from_utf8_lossy(&got)
        );
        match reader.read(&mut chunk) {
            Ok(n) if n > 0 => got.extend_from_slice(&chunk[..n]),
            // No writer yet (0) or nothing written yet.
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&got)
        .lines()
        .map(|l| {
            let alert: serde_json::Value = serde_json::from_str(l).expect("a whole alert");
            alert["state"].as_str().unwrap_or("?").to_owned()
        })
        .collect()
}

/// Runs the binary with `args` and waits at most `limit` for its exit;
/// one still running then is killed and the test fails with its stderr.
fn run_within(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = reader.join().unwrap_or_default();
            panic!(
                "still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_end(&mut stdout);
    }
    Output {
        status,
        stdout,
        stderr: reader.join().unwrap_or_default(),
    }
}

const DEMO_STATES: [&str; 3] = ["firing", "updated", "resolved"];

/// `[alerts] file` a FIFO nobody has open: the daemon starts, serves, its
/// sources connect and the webhook sink delivers, while the FIFO's sink
/// retries and says why; SIGTERM stops it. Its alerts stayed in the
/// outbox: the next start, with a reader, writes all three. Opening the
/// FIFO used to wait for a reader before the status server and the signal
/// handling started: only SIGKILL ended it.
#[test]
fn a_fifo_nobody_reads_holds_up_its_own_sink_only_and_the_daemon_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = JetstreamServer::start(demo_frames(), Plan::default());
    let config = jetstream_config(dir.path(), &[server.url()], 5.0);
    let state = dir.path().join("state");
    let alerts = fifo(dir.path(), "alerts.fifo");
    let receiver = Receiver::start();
    let url = receiver.url();
    let args = [
        "run",
        "--config",
        path(&config),
        "--state-dir",
        path(&state),
        "--alerts",
        path(&alerts),
        "--webhook",
        &url,
    ];
    let first = Daemon::start(&args);
    first.wait_for("status server listening", Duration::from_secs(60));
    first.wait_until(
        |_| receiver.delivered().len() >= 3,
        Duration::from_secs(120),
    );
    first.wait_for(
        "no process has it open for reading",
        Duration::from_secs(30),
    );
    let (status, took, log) = first.terminate(Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert!(took < Duration::from_secs(15), "stopped in {took:?}");

    let mut reader = open_end(&alerts, false);
    let second = Daemon::start(&args);
    let states = read_states(&mut reader, 3, Duration::from_secs(120));
    assert_eq!(states, DEMO_STATES, "every alert, in order, once read");
    let (status, _, log) = second.terminate(Duration::from_secs(30));
    assert!(status.success(), "{log}");
}

/// `replay --alerts FIFO --http` with nobody reading: it replays, says at
/// the drain timeout what was not delivered and exits 3; the alerts are
/// still in the outbox, and a later replay on the same state writes them
/// once a reader is there. It used to hang before reading anything.
#[test]
fn a_replay_to_a_fifo_nobody_opens_ends_and_keeps_the_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let alerts = fifo(dir.path(), "alerts.fifo");
    let replay = |file: &Path, drain: &str| {
        run_within(
            &[
                "replay",
                path(file),
                "--alerts",
                path(&alerts),
                "--http",
                "127.0.0.1:0",
                "--state-dir",
                path(&state),
                "--drain-timeout",
                drain,
            ],
            Duration::from_secs(90),
        )
    };
    let out = replay(&demo(), "2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("sink alerts: 0 delivered")
            && stderr.contains("3 undelivered, kept in the outbox in"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no process has it open for reading"),
        "{stderr}"
    );

    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").expect("write");
    let mut reader = open_end(&alerts, false);
    let out = replay(&empty, "60");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let states = read_states(&mut reader, 3, Duration::from_secs(10));
    assert_eq!(states, DEMO_STATES);
}

/// A reader that opened the FIFO and stopped reading (its pipe full): the
/// write blocks, and the replay still exits at its drain timeout, saying
/// what was not delivered. It stayed alive, its writer thread blocked, for
/// as long as the reader held the pipe.
#[test]
fn a_replay_ends_at_its_drain_timeout_though_the_fifo_s_reader_stopped_reading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alerts = fifo(dir.path(), "alerts.fifo");
    let _reader = open_end(&alerts, false);
    let mut filler = open_end(&alerts, true);
    let chunk = [b'\n'; 4096];
    loop {
        match filler.write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("fill: {e}"),
        }
    }
    let start = Instant::now();
    let out = run_within(
        &[
            "replay",
            path(&demo()),
            "--alerts",
            path(&alerts),
            "--drain-timeout",
            "2",
        ],
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("3 undelivered"), "{stderr}");
    assert!(stderr.contains("drain timeout (2 s) reached"), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(45), "{stderr}");
}

/// Discord's 429s to a webhook URL as Discord hands it out (no API
/// version: served by v6, milliseconds): `{"retry_after": 1500}` alone is
/// waited 1.5 s (it was read as 1500 s), and a global limit's 2500 ms is
/// waited whole though the route's bucket resets in 0.2 s. Every alert is
/// then delivered, in order.
#[test]
fn a_discord_429_is_read_in_the_units_of_the_url_s_api_version() {
    let receiver = Receiver::start();
    receiver.script_answers(vec![
        Answer::status(429)
            .header("content-type", "application/json")
            .body(r#"{"message": "You are being rate limited.", "retry_after": 1500, "global": false}"#),
        Answer::status(429)
            .header("content-type", "application/json")
            .header("x-ratelimit-global", "true")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset-after", "0.2")
            .body(r#"{"message": "You are being rate limited.", "retry_after": 2500, "global": true}"#),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("discord.toml");
    let url = format!("http://{}/api/webhooks/123456/tok", receiver.addr);
    std::fs::write(
        &config,
        format!("[[sinks]]\nname = \"discord\"\nformat = \"discord\"\nurl = \"{url}\"\n"),
    )
    .expect("config");
    let out = run_within(
        &[
            "replay",
            path(&demo()),
            "--config",
            path(&config),
            "--alerts",
            "/dev/null",
            "--drain-timeout",
            "40",
        ],
        Duration::from_secs(90),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let got = receiver.received();
    let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 200, 200, 200], "{stderr}");
    let waited = |i: usize| got[i + 1].at - got[i].at;
    assert!(
        waited(0) >= Duration::from_millis(1450) && waited(0) < Duration::from_secs(10),
        "1500 ms asked, waited {:?}",
        waited(0)
    );
    assert!(
        waited(1) >= Duration::from_millis(2450) && waited(1) < Duration::from_secs(10),
        "a global 2500 ms asked, waited {:?}",
        waited(1)
    );
}
