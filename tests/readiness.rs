//! `/readyz` against a live source that goes silent without closing: the
//! stand-in accepts the websocket, sends some frames, then nothing on this
//! and the next connections (each watchdog reconnect succeeds), then
//! delivers again. Readiness follows the health monitor's verdict, not the
//! socket: 503 naming the silent source while it sends nothing, 200 again
//! once frames flow.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use support::{Conn, Daemon, JetstreamServer, Plan, demo_frames, jetstream_config, start_daemon};

/// Far longer than any phase of the test takes: "eventually", not a timing.
const BOUND: Duration = Duration::from_secs(90);

/// Waits for the daemon to write its bound address to the state directory.
fn bound_address(state: &Path, daemon: &Daemon) -> SocketAddr {
    let file = state.join("http.addr");
    let start = Instant::now();
    while start.elapsed() < BOUND {
        if let Some(addr) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|a| a.trim().parse::<SocketAddr>().ok())
        {
            return addr;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no {} in time; log:\n{}", file.display(), daemon.log_text());
}

/// One GET over loopback: the status and the body parsed as JSON.
fn get(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("sends");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("an answer");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let value = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (status, value)
}

/// Polls `path` until `done(status, body)` holds; panics after [`BOUND`].
fn wait_for(
    addr: SocketAddr,
    path: &str,
    daemon: &Daemon,
    done: impl Fn(u16, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (status, value) = get(addr, path);
        if done(status, &value) {
            return value;
        }
        assert!(
            start.elapsed() < BOUND,
            "GET {path} never satisfied the condition: {status} {value}\nlog:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_connected_source_that_sends_nothing_makes_readyz_503_until_frames_resume() {
    let frames = demo_frames();
    let dir = tempfile::tempdir().expect("tempdir");
    // 2000 frames, then four connections that say nothing (the watchdog
    // reconnects every 3 s, and each reconnect succeeds), then the rest.
    // Paced (1 ms a frame), so frames flow for seconds at each end.
    let server = JetstreamServer::start(
        frames,
        Plan {
            conns: vec![
                Conn::StallAfter(2000),
                Conn::StallAfter(0),
                Conn::StallAfter(0),
                Conn::StallAfter(0),
                Conn::StallAfter(0),
                Conn::All,
            ],
            pace_every: 1,
            ..Plan::default()
        },
    );
    let config = jetstream_config(dir.path(), &[server.url()], 3.0);
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace("silence_secs = 3600", "silence_secs = 2\ngrace_secs = 0");
    std::fs::write(&config, text).expect("config");
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let daemon = start_daemon(&config, &state, &alerts);
    let addr = bound_address(&state, &daemon);

    wait_for(addr, "/readyz", &daemon, |status, body| {
        status == 200 && body["ready"] == true
    });
    let silent = |status: u16, body: &serde_json::Value| {
        status == 503
            && body["reason"]
                .as_str()
                .is_some_and(|r| r.contains("no usable frames from bluesky for"))
    };
    let body = wait_for(addr, "/readyz", &daemon, silent);
    assert_eq!(body["ready"], false, "{body}");
    // The dashboard's pill and the gauge say the same (the same verdict).
    wait_for(addr, "/api/v1/dashboard", &daemon, |_, body| {
        body["ready"] == false
            && body["ready_reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("no source is delivering: no usable frames"))
    });
    // The watchdog's reconnects succeed, and change nothing.
    let start = Instant::now();
    while server.seen.lock().expect("lock").cursors.len() < 3 {
        assert!(
            start.elapsed() < BOUND,
            "no reconnect:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for(addr, "/readyz", &daemon, silent);
    // Frames again: ready again.
    wait_for(addr, "/readyz", &daemon, |status, body| {
        status == 200 && body["ready"] == true
    });
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit {status:?}\n{log}");
}
