//! Test helpers shared by the live-source tests: a local websocket server
//! that plays recorded frames (honouring Jetstream's `cursor`) with faults on
//! demand, and a handle on the real binary running as a daemon.
#![allow(dead_code)]
// tungstenite's handshake callback returns `Result<Response, ErrorResponse>`
// by its own signature; the size of its error is not ours to choose.
#![allow(clippy::result_large_err)]

pub mod receiver;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

/// What to do on one connection, in order of connections.
#[derive(Clone, Debug)]
pub enum Conn {
    /// Send everything from the cursor on, then stay open.
    All,
    /// Send this many frames, then close with a close frame.
    CloseAfter(usize),
    /// Send this many frames, then hold the connection without a word.
    StallAfter(usize),
    /// Send this many frames, then drop the TCP connection.
    DropAfter(usize),
}

/// Extra frames sent (on the first connection only) before frame `index`.
#[derive(Clone, Debug)]
pub enum Inject {
    Garbage(usize),
    Binary(usize),
    Oversized(usize, usize),
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// The first handshakes are refused with HTTP 503.
    pub refuse_first: usize,
    pub conns: Vec<Conn>,
    pub inject: Vec<Inject>,
    /// Pause 1 ms after every this many frames (0: as fast as possible), so
    /// a test can act "mid-stream".
    pub pace_every: usize,
}

/// What the server saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub handshakes: usize,
    pub refused: usize,
    /// The `cursor` of each accepted connection.
    pub cursors: Vec<Option<i64>>,
}

pub struct JetstreamServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
    _runtime: tokio::runtime::Runtime,
}

impl JetstreamServer {
    pub fn url(&self) -> String {
        format!("ws://{}/subscribe", self.addr)
    }

    /// Starts the server on a loopback port, on its own runtime.
    pub fn start(frames: Vec<String>, plan: Plan) -> JetstreamServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let frames: Arc<Vec<(i64, String)>> = Arc::new(
            frames
                .into_iter()
                .map(|f| {
                    let t = serde_json::from_str::<serde_json::Value>(&f)
                        .ok()
                        .and_then(|v| v["time_us"].as_i64())
                        .unwrap_or(0);
                    (t, f)
                })
                .collect(),
        );
        let plan = Arc::new(plan);
        let seen_task = Arc::clone(&seen);
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (frames, plan, seen) = (
                    Arc::clone(&frames),
                    Arc::clone(&plan),
                    Arc::clone(&seen_task),
                );
                tokio::spawn(async move { serve(stream, frames, plan, seen).await });
            }
        });
        JetstreamServer {
            addr,
            seen,
            _runtime: runtime,
        }
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    frames: Arc<Vec<(i64, String)>>,
    plan: Arc<Plan>,
    seen: Arc<Mutex<Seen>>,
) {
    let cursor = Arc::new(Mutex::new(None::<i64>));
    let refuse = {
        let mut s = seen.lock().expect("lock");
        s.handshakes += 1;
        let refuse = s.handshakes <= plan.refuse_first;
        if refuse {
            s.refused += 1;
        }
        refuse
    };
    let cursor_cb = Arc::clone(&cursor);
    let callback =
        move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
            if refuse {
                let mut error = ErrorResponse::new(Some("busy".into()));
                *error.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                return Err(error);
            }
            let query = request.uri().query().unwrap_or("");
            let parsed = query
                .split('&')
                .filter_map(|kv| kv.strip_prefix("cursor="))
                .find_map(|v| v.parse::<i64>().ok());
            *cursor_cb.lock().expect("lock") = parsed;
            Ok(response)
        };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let cursor = *cursor.lock().expect("lock");
    let conn_index = {
        let mut s = seen.lock().expect("lock");
        s.cursors.push(cursor);
        s.cursors.len() - 1
    };
    let conn = plan.conns.get(conn_index).cloned().unwrap_or(Conn::All);
    let (mut write, mut read) = ws.split();
    // Answer pings (tungstenite queues the pong; reading drives it).
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = read.next().await {} });
    let limit = match conn {
        Conn::All => usize::MAX,
        Conn::CloseAfter(n) | Conn::StallAfter(n) | Conn::DropAfter(n) => n,
    };
    let mut sent = 0usize;
    for (index, (time_us, frame)) in frames.iter().enumerate() {
        if cursor.is_some_and(|c| *time_us < c) {
            continue;
        }
        if sent >= limit {
            break;
        }
        if conn_index == 0 {
            for inject in &plan.inject {
                let message = match *inject {
                    Inject::Garbage(at) if at == index => Message::text("{this is not json"),
                    Inject::Binary(at) if at == index => {
                        Message::binary(vec![0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3])
                    }
                    Inject::Oversized(at, bytes) if at == index => {
                        Message::text(format!("{{\"pad\":\"{}\"}}", "x".repeat(bytes)))
                    }
                    _ => continue,
                };
                if write.send(message).await.is_err() {
                    return;
                }
            }
        }
        if write.send(Message::text(frame.clone())).await.is_err() {
            return;
        }
        sent += 1;
        if plan.pace_every > 0 && sent.is_multiple_of(plan.pace_every) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    match conn {
        Conn::CloseAfter(_) if sent >= limit => {
            let _ = write.send(Message::Close(None)).await;
        }
        Conn::DropAfter(_) if sent >= limit => {
            reader.abort();
            return;
        }
        _ => {}
    }
    // Hold the connection (idle, or stalled) until the client goes.
    let _ = reader.await;
}

/// The demo recording, decompressed, one frame per line.
pub fn demo_frames() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo.jsonl.gz");
    let file = std::fs::File::open(path).expect("demo");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(file), &mut text)
        .expect("gunzip");
    text.lines().map(str::to_owned).collect()
}

pub fn newest_time(frames: &[String]) -> i64 {
    frames
        .iter()
        .filter_map(|f| serde_json::from_str::<serde_json::Value>(f).ok()?["time_us"].as_i64())
        .max()
        .expect("frames have times")
}

/// The real binary running as a daemon, its stderr collected line by line.
pub struct Daemon {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn start(args: &[&str]) -> Daemon {
        Daemon::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        // Daemons in tests run side by side: the status server takes any
        // free loopback port unless a test says otherwise.
        let mut args: Vec<&str> = args.to_vec();
        if args.first() == Some(&"run")
            && !args
                .iter()
                .any(|a| a.starts_with("--http") || *a == "--no-http")
        {
            args.extend(["--http", "127.0.0.1:0"]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
            .args(&args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("daemon starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lock").push(line);
            }
        });
        Daemon { child, log }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().expect("lock").join("\n")
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_for(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self
                .log
                .lock()
                .expect("lock")
                .iter()
                .any(|l| l.contains(needle))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "no log line with {needle:?} within {limit:?}; log:\n{}",
            self.log_text()
        );
    }

    /// Waits until the whole log satisfies `done`.
    pub fn wait_until(&self, done: impl Fn(&str) -> bool, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done(&self.log_text()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "condition not met within {limit:?}; log:\n{}",
            self.log_text()
        );
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal}");
    }

    /// Sends SIGTERM and waits for the exit, at most `limit`.
    pub fn terminate(mut self, limit: Duration) -> (std::process::ExitStatus, Duration, String) {
        let start = Instant::now();
        self.signal("TERM");
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                std::thread::sleep(Duration::from_millis(100));
                return (status, start.elapsed(), self.log_text());
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "did not exit within {limit:?} of SIGTERM; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// An event time as the status lines print it (RFC 3339 to the µs).
pub fn at(time_us: i64) -> String {
    outagewatch::daemon::precise_time(time_us)
}

/// The last `processed=` cursor a status line logged.
pub fn processed(log: &str) -> Option<i64> {
    log.rmatch_indices("processed=").find_map(|(at, key)| {
        let stamp: String = log[at + key.len()..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        chrono::DateTime::parse_from_rfc3339(&stamp)
            .ok()
            .map(|t| t.timestamp_micros())
    })
}

/// A config file for a daemon reading `urls` as Jetstream, with quick
/// reconnects and health alerts effectively off (they run on wall time).
pub fn jetstream_config(dir: &Path, urls: &[String], watchdog_secs: f64) -> PathBuf {
    let path = dir.join("outagewatch.toml");
    let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    let text = format!(
        "[[sources]]\nkind = \"jetstream\"\nname = \"bluesky\"\nurls = [{}]\n\n[sources.connection]\nwatchdog_secs = {watchdog_secs}\nbackoff_min_ms = 50\nbackoff_max_ms = 400\nping_secs = 1\n\n[health]\nsilence_secs = 3600\nlag_secs = 100000000\n\n[daemon]\nstatus_secs = 0.2\nshutdown_grace_secs = 2\n",
        urls.join(", ")
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// What a scripted server saw of one connection.
#[derive(Debug, Default, Clone)]
pub struct ConnSeen {
    pub path_and_query: String,
    pub authorization: Option<String>,
    /// Text messages the client sent.
    pub received: Vec<String>,
}

/// A websocket server that sends fixed frames per connection: for Mastodon
/// (frames at once) and Nostr (frames after the client's first message, the
/// `REQ`). Connections past the script get no frames and are held open.
/// A frame `<binary>` is sent as a binary frame; `<sleep:MS>` pauses.
pub struct ScriptServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<ConnSeen>>>,
    _runtime: tokio::runtime::Runtime,
}

impl ScriptServer {
    pub fn start(script: Vec<Vec<String>>, wait_for_hello: bool) -> ScriptServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<ConnSeen>>> = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let seen_task = Arc::clone(&seen);
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (script, seen) = (Arc::clone(&script), Arc::clone(&seen_task));
                tokio::spawn(async move {
                    let info = Arc::new(Mutex::new(ConnSeen::default()));
                    let info_cb = Arc::clone(&info);
                    let callback = move |request: &Request,
                                         response: Response|
                          -> Result<Response, ErrorResponse> {
                        let mut i = info_cb.lock().expect("lock");
                        i.path_and_query = request.uri().to_string();
                        i.authorization = request
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        Ok(response)
                    };
                    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                        return;
                    };
                    let index = {
                        let mut s = seen.lock().expect("lock");
                        s.push(info.lock().expect("lock").clone());
                        s.len() - 1
                    };
                    let (mut write, mut read) = ws.split();
                    if wait_for_hello {
                        while let Some(Ok(message)) = read.next().await {
                            if let Message::Text(text) = message {
                                seen.lock().expect("lock")[index]
                                    .received
                                    .push(text.as_str().to_owned());
                                break;
                            }
                        }
                    }
                    for frame in script.get(index).cloned().unwrap_or_default() {
                        if let Some(ms) = frame
                            .strip_prefix("<sleep:")
                            .and_then(|r| r.strip_suffix('>'))
                        {
                            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0)))
                                .await;
                            continue;
                        }
                        let message = if frame == "<binary>" {
                            Message::binary(vec![1, 2, 3])
                        } else {
                            Message::text(frame)
                        };
                        if write.send(message).await.is_err() {
                            return;
                        }
                    }
                    while let Some(Ok(message)) = read.next().await {
                        if let Message::Text(text) = message {
                            seen.lock().expect("lock")[index]
                                .received
                                .push(text.as_str().to_owned());
                        }
                    }
                });
            }
        });
        ScriptServer {
            addr,
            seen,
            _runtime: runtime,
        }
    }
}
