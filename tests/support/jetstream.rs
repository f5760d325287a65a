//! A local stand-in for a Jetstream server: plays recorded frames on
//! either wire (honouring `cursor`), serves the v2 zstd dictionary, and
//! injects faults on demand (`Plan`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

use super::*;

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
    /// v2: send this many frames, then the terminal `ConsumerTooSlow`
    /// error frame, then close.
    TooSlowAfter(usize),
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
    /// `(n, seq)`: from the n-th handshake (1-based) on, the oldest
    /// sequence number kept (retention moved on while the client was away).
    /// On v2 an older sequence cursor gets HTTP 400 `CursorTooOld`, an older
    /// time cursor is clamped to it with an `#info OutdatedCursor` frame; on
    /// v1 an older time cursor is clamped to it without a word.
    pub floor: Option<(usize, u64)>,
    /// v2: the dictionary served and required (default: the v1 one).
    pub dictionary: Option<Vec<u8>>,
    /// v2: what the dictionary endpoint serves when asked for no id, if
    /// not the required one (a lagging deploy or cache behind the server).
    pub endpoint_serves: Option<Vec<u8>>,
}

/// What the server saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub handshakes: usize,
    pub refused: usize,
    /// The `cursor` of each accepted connection.
    pub cursors: Vec<Option<i64>>,
    /// Path and query of each accepted connection.
    pub requests: Vec<String>,
    /// The subprotocol each accepted connection asked for.
    pub subprotocols: Vec<Option<String>>,
    /// Handshakes refused with a v2 error (`CursorTooOld`, …), by name.
    pub xrpc_errors: Vec<String>,
    /// `getZstdDictionary` requests (path and query).
    pub dictionary_fetches: Vec<String>,
    /// Connections that sent every frame up to the newest.
    pub finished: usize,
}

/// The first sequence number the stand-in gives (frame `i` has `SEQ_BASE + i`).
pub const SEQ_BASE: u64 = 1000;

/// One event, on both wires.
struct Event {
    time_us: i64,
    seq: u64,
    v1: String,
    v2: String,
}

/// A v1 frame as the v2 wire carries it: the commit's fields flattened into
/// a `#commit` payload with `seq` and an RFC 3339 `time` (six fractional
/// digits, so the time is exact). Frames that are not events pass as they are.
pub fn v1_to_v2(frame: &str, seq: u64) -> String {
    let Ok(serde_json::Value::Object(v1)) = serde_json::from_str::<serde_json::Value>(frame) else {
        return frame.to_owned();
    };
    let (Some(time_us), Some(kind)) = (
        v1.get("time_us").and_then(|t| t.as_i64()),
        v1.get("kind").and_then(|k| k.as_str()),
    ) else {
        return frame.to_owned();
    };
    let time = chrono::DateTime::from_timestamp_micros(time_us)
        .expect("time in range")
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let mut payload = serde_json::Map::new();
    payload.insert(
        "$type".into(),
        format!("network.bsky.jetstream.subscribeEvents#{kind}").into(),
    );
    payload.insert("seq".into(), seq.into());
    if let Some(did) = v1.get("did") {
        payload.insert("did".into(), did.clone());
    }
    payload.insert("time".into(), time.into());
    match v1.get(kind) {
        Some(serde_json::Value::Object(inner)) if kind == "commit" => {
            for (k, v) in inner {
                payload.insert(k.clone(), v.clone());
            }
        }
        Some(inner) => {
            payload.insert(kind.to_owned(), inner.clone());
        }
        None => {}
    }
    serde_json::json!({"$type": "message", "payload": payload}).to_string()
}

pub struct JetstreamServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
    _runtime: tokio::runtime::Runtime,
}

/// The v2 endpoint's path.
pub const V2_PATH: &str = "/xrpc/network.bsky.jetstream.subscribeEvents";
const DICTIONARY_PATH: &str = "/xrpc/network.bsky.jetstream.getZstdDictionary";

/// A zstd dictionary's id (bytes 4..8, little-endian).
pub fn dictionary_id(dict: &[u8]) -> u32 {
    u32::from_le_bytes([dict[4], dict[5], dict[6], dict[7]])
}

impl JetstreamServer {
    /// The v1 endpoint.
    pub fn url(&self) -> String {
        format!("ws://{}/subscribe", self.addr)
    }

    /// The v2 endpoint.
    pub fn v2_url(&self) -> String {
        format!("ws://{}{V2_PATH}", self.addr)
    }

    /// Starts the server on a loopback port, on its own runtime. It speaks
    /// v1 on `/subscribe` and v2 on `subscribeEvents`, each plain or
    /// compressed as the client asks, and serves the v2 dictionary.
    pub fn start(frames: Vec<String>, plan: Plan) -> JetstreamServer {
        let (runtime, listener) = loopback("127.0.0.1:0".parse().expect("addr"));
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let events: Arc<Vec<Event>> = Arc::new(
            frames
                .into_iter()
                .enumerate()
                .map(|(i, f)| {
                    let t = serde_json::from_str::<serde_json::Value>(&f)
                        .ok()
                        .and_then(|v| v["time_us"].as_i64())
                        .unwrap_or(0);
                    let seq = SEQ_BASE + i as u64;
                    Event {
                        time_us: t,
                        seq,
                        v2: v1_to_v2(&f, seq),
                        v1: f,
                    }
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
                let (events, plan, seen) = (
                    Arc::clone(&events),
                    Arc::clone(&plan),
                    Arc::clone(&seen_task),
                );
                tokio::spawn(async move { serve(stream, events, plan, seen).await });
            }
        });
        JetstreamServer {
            addr,
            seen,
            _runtime: runtime,
        }
    }
}

fn v2_dictionary(plan: &Plan) -> Vec<u8> {
    plan.dictionary
        .clone()
        .unwrap_or_else(|| outagewatch::source::jetstream::compression::V1_DICTIONARY.to_vec())
}

/// Answers `getZstdDictionary` (plain HTTP on the same port).
async fn serve_dictionary(mut stream: tokio::net::TcpStream, plan: &Plan, seen: &Mutex<Seen>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let target = text.split_whitespace().nth(1).unwrap_or("").to_owned();
    seen.lock()
        .expect("lock")
        .dictionary_fetches
        .push(target.clone());
    let dict = v2_dictionary(plan);
    let wanted = target
        .split_once("id=")
        .and_then(|(_, id)| id.split('&').next()?.parse::<u32>().ok());
    let dict = match (wanted, &plan.endpoint_serves) {
        (None, Some(served)) => served.clone(),
        _ => dict,
    };
    let response = match wanted {
        Some(id) if id != dictionary_id(&dict) => {
            let body = br#"{"error":"DictionaryNotFound","message":"no such dictionary"}"#;
            let mut r = format!(
                "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(body);
            r
        }
        _ => {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                dict.len()
            )
            .into_bytes();
            r.extend_from_slice(&dict);
            r
        }
    };
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}

/// What a handshake asked for.
#[derive(Debug, Default, Clone)]
struct Asked {
    v2: bool,
    cursor: Option<i64>,
    /// The dictionary to compress with, if compression was asked for.
    dictionary: Option<Vec<u8>>,
    target: String,
    subprotocol: Option<String>,
}

fn xrpc_error(name: &str, message: &str) -> ErrorResponse {
    let body = serde_json::json!({"error": name, "message": message}).to_string();
    let mut error = ErrorResponse::new(Some(body));
    *error.status_mut() = StatusCode::BAD_REQUEST;
    error
}

async fn serve(
    stream: tokio::net::TcpStream,
    events: Arc<Vec<Event>>,
    plan: Arc<Plan>,
    seen: Arc<Mutex<Seen>>,
) {
    let mut head = [0u8; 128];
    let mut peeked = 0;
    for _ in 0..50 {
        match stream.peek(&mut head).await {
            Ok(n) if n >= 60 || head[..n].contains(&b'\n') => {
                peeked = n;
                break;
            }
            Ok(n) => {
                peeked = n;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(_) => return,
        }
    }
    if head[..peeked].starts_with(format!("GET {DICTIONARY_PATH}").as_bytes()) {
        serve_dictionary(stream, &plan, &seen).await;
        return;
    }
    let asked = Arc::new(Mutex::new(Asked::default()));
    let (refuse, floor) = {
        let mut s = seen.lock().expect("lock");
        s.handshakes += 1;
        let refuse = s.handshakes <= plan.refuse_first;
        if refuse {
            s.refused += 1;
        }
        let floor = plan
            .floor
            .filter(|(from, _)| s.handshakes >= *from)
            .map_or(0, |(_, seq)| seq);
        (refuse, floor)
    };
    let asked_cb = Arc::clone(&asked);
    let seen_cb = Arc::clone(&seen);
    let plan_cb = Arc::clone(&plan);
    let callback =
        move |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
            if refuse {
                let mut error = ErrorResponse::new(Some("busy".into()));
                *error.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                return Err(error);
            }
            let query = request.uri().query().unwrap_or("");
            let param = |key: &str| {
                query
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.to_owned())
            };
            let v2 = request.uri().path() == V2_PATH;
            let cursor = param("cursor").and_then(|v| v.parse::<i64>().ok());
            let subprotocol = request
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let refuse_xrpc = |name: &str, message: String| {
                seen_cb
                    .lock()
                    .expect("lock")
                    .xrpc_errors
                    .push(name.to_owned());
                Err(xrpc_error(name, &message))
            };
            let dictionary = if v2 {
                if param("wantedCollections").is_some() {
                    return refuse_xrpc("InvalidRequest", "wantedCollections is v1".into());
                }
                if let Some(c) = cursor
                    && c < 1_000_000_000_000_000
                    && (c as u64) < floor
                {
                    return refuse_xrpc(
                        "CursorTooOld",
                        format!("cursor {c} is below the retention floor {floor}"),
                    );
                }
                match param("zstdDictionary").map(|v| v.parse::<u32>()) {
                    None => None,
                    Some(Ok(id)) if id == dictionary_id(&v2_dictionary(&plan_cb)) => {
                        Some(v2_dictionary(&plan_cb))
                    }
                    Some(_) => {
                        let current = dictionary_id(&v2_dictionary(&plan_cb));
                        return refuse_xrpc(
                            "UnknownZstdDictionary",
                            format!("unknown dictionary; the current one is {current}"),
                        );
                    }
                }
            } else {
                (param("compress").as_deref() == Some("true"))
                    .then(|| outagewatch::source::jetstream::compression::V1_DICTIONARY.to_vec())
            };
            if v2 && let Some(protocol) = &subprotocol {
                response.headers_mut().insert(
                    "sec-websocket-protocol",
                    protocol.parse().expect("header value"),
                );
            }
            *asked_cb.lock().expect("lock") = Asked {
                v2,
                cursor,
                dictionary,
                target: request.uri().to_string(),
                subprotocol,
            };
            Ok(response)
        };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let asked = asked.lock().expect("lock").clone();
    let conn_index = {
        let mut s = seen.lock().expect("lock");
        s.cursors.push(asked.cursor);
        s.requests.push(asked.target.clone());
        s.subprotocols.push(asked.subprotocol.clone());
        s.cursors.len() - 1
    };
    let conn = plan.conns.get(conn_index).cloned().unwrap_or(Conn::All);
    let (mut write, mut read) = ws.split();
    // Answer pings (tungstenite queues the pong; reading drives it).
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = read.next().await {} });
    let limit = match conn {
        Conn::All => usize::MAX,
        Conn::CloseAfter(n) | Conn::StallAfter(n) | Conn::DropAfter(n) | Conn::TooSlowAfter(n) => n,
    };
    let mut compressor = asked
        .dictionary
        .as_ref()
        .map(|d| zstd::bulk::Compressor::with_dictionary(3, d).expect("the dictionary loads"));
    let mut encode = move |text: String| -> Message {
        match compressor.as_mut() {
            Some(c) => Message::binary(c.compress(text.as_bytes()).expect("compress")),
            None => Message::text(text),
        }
    };
    // Where this connection starts.
    let start = match (asked.v2, asked.cursor) {
        (_, None) => 0,
        (false, Some(_)) => 0,
        (true, Some(c)) if c >= 1_000_000_000_000_000 => {
            let first = events
                .iter()
                .position(|e| e.time_us >= c)
                .unwrap_or(events.len());
            let first_seq = events.get(first).map_or(u64::MAX, |e| e.seq);
            if first_seq < floor {
                let info = serde_json::json!({"$type": "message", "payload": {
                    "$type": "network.bsky.jetstream.subscribeEvents#info",
                    "name": "OutdatedCursor",
                    "message": format!("cursor clamped to the retention floor; resumed from seq {floor}")}});
                if write.send(encode(info.to_string())).await.is_err() {
                    return;
                }
            }
            first
        }
        (true, Some(c)) => events
            .iter()
            .position(|e| e.seq >= c as u64)
            .unwrap_or(events.len()),
    };
    let mut sent = 0usize;
    for (index, event) in events.iter().enumerate().skip(start) {
        if event.seq < floor {
            continue;
        }
        if !asked.v2 && asked.cursor.is_some_and(|c| event.time_us < c) {
            continue;
        }
        if sent >= limit {
            break;
        }
        if conn_index == 0 {
            for inject in &plan.inject {
                let message = match *inject {
                    Inject::Garbage(at) if at == index => encode("{this is not json".into()),
                    Inject::Binary(at) if at == index => {
                        Message::binary(vec![0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3])
                    }
                    Inject::Oversized(at, bytes) if at == index => {
                        encode(format!("{{\"pad\":\"{}\"}}", "x".repeat(bytes)))
                    }
                    _ => continue,
                };
                if write.send(message).await.is_err() {
                    return;
                }
            }
        }
        let text = if asked.v2 { &event.v2 } else { &event.v1 };
        if write.send(encode(text.clone())).await.is_err() {
            return;
        }
        sent += 1;
        if plan.pace_every > 0 && sent.is_multiple_of(plan.pace_every) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    if sent < limit {
        seen.lock().expect("lock").finished += 1;
    }
    match conn {
        Conn::CloseAfter(_) if sent >= limit => {
            let _ = write.send(Message::Close(None)).await;
        }
        Conn::DropAfter(_) if sent >= limit => {
            reader.abort();
            return;
        }
        Conn::TooSlowAfter(_) if sent >= limit => {
            let error = r#"{"$type":"error","error":"ConsumerTooSlow","message":"reading below the floor rate"}"#;
            let _ = write.send(encode(error.into())).await;
            let _ = write.send(Message::Close(None)).await;
        }
        _ => {}
    }
    // Hold the connection (idle, or stalled) until the client goes.
    let _ = reader.await;
}
