//! The server's guards, over loopback with raw requests: what a client
//! that never finishes a request, or opens too many connections, gets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{HttpSettings, Server, ServerLimits};
use crate::supervise::Supervisor;
use crate::telemetry::{Mode, Telemetry};

/// Far longer than any limit the tests set: "eventually", not a timing.
const BOUND: Duration = Duration::from_secs(20);

pub(super) async fn start(limits: ServerLimits, token: Option<&str>) -> (Server, Arc<Telemetry>) {
    let mut settings =
        HttpSettings::new("127.0.0.1:0", token.map(str::to_owned)).expect("settings");
    settings.limits = limits;
    let telemetry = Telemetry::new(Mode::Replay, None);
    let server = Server::start(&settings, telemetry.clone(), None, None, &Supervisor::new())
        .await
        .expect("starts");
    (server, telemetry)
}

/// The total cap only: one peer may take every place.
fn limits(header_read_ms: u64, connections: usize) -> ServerLimits {
    ServerLimits {
        header_read: Duration::from_millis(header_read_ms),
        connections,
        per_peer: connections,
        reserved: 0,
        ..ServerLimits::default()
    }
}

/// Reads until the server closes the connection; `None` if it has not
/// within [`BOUND`].
async fn read_to_close(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(BOUND, read).await.ok()?;
    Some(got)
}

/// Sends one whole request (`Connection: close` added) and returns the
/// status and body.
pub(super) async fn exchange(addr: SocketAddr, head: &str, body: &str) -> (u16, String) {
    let (status, _, body) = exchange_whole(addr, head, body).await;
    (status, body)
}

/// The same, with the response's head too.
pub(super) async fn exchange_whole(
    addr: SocketAddr,
    head: &str,
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let request = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("sends");
    let got = read_to_close(&mut stream).await.expect("an answer");
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_owned(), body.to_owned())
}

/// Whether a request on `stream` is answered (the connection stays open).
async fn answered(stream: &mut TcpStream) -> bool {
    let request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 1024];
    matches!(
        tokio::time::timeout(BOUND, stream.read(&mut buf)).await,
        Ok(Ok(n)) if n > 0 && buf[..n].starts_with(b"HTTP/1.1 200")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_request_head_is_closed_after_the_header_timeout() {
    let (server, telemetry) = start(limits(200, 16), None).await;
    let mut partial = TcpStream::connect(server.addr).await.expect("connects");
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("sends");
    let mut silent = TcpStream::connect(server.addr).await.expect("connects");
    for stream in [&mut partial, &mut silent] {
        let got = read_to_close(stream).await;
        assert!(
            got.is_some(),
            "the connection is still open after {BOUND:?}"
        );
        assert!(!got.unwrap_or_default().starts_with(b"HTTP/1.1 200"));
    }
    assert!(telemetry.http.header_timeouts.load(Relaxed) >= 1);
    // A whole request is still answered.
    let (status, body) =
        exchange(server.addr, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1", "").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let metrics = telemetry.metrics.render(&telemetry).expect("metrics");
    assert!(
        metrics.contains("outagewatch_http_timeouts_total{kind=\"headers\"}"),
        "{metrics}"
    );
    server.stop().await;
}

/// A kept-alive connection that goes quiet after its answer (a scrape, a
/// closed tab) is closed without a warning or a count; one that has sent
/// part of its next request head is a header timeout. The timeout is
/// long enough that the partial head is surely sent before it (that is
/// not what is measured), and both connections wait it out together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed_without_counting_a_header_timeout() {
    let (server, telemetry) = start(limits(5_000, 16), None).await;
    let mut idle = TcpStream::connect(server.addr).await.expect("connects");
    let mut partial = TcpStream::connect(server.addr).await.expect("connects");
    assert!(answered(&mut idle).await, "the first request is answered");
    assert!(
        answered(&mut partial).await,
        "the first request is answered"
    );
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127")
        .await
        .expect("sends");
    let (idle_end, partial_end) =
        tokio::join!(read_to_close(&mut idle), read_to_close(&mut partial));
    assert!(idle_end.is_some(), "an idle connection is closed in time");
    assert!(partial_end.is_some(), "a partial head is closed in time");
    assert_eq!(
        telemetry.http.header_timeouts.load(Relaxed),
        1,
        "the partial head only"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_and_counted() {
    let (server, telemetry) = start(limits(60_000, 3), None).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connects");
        assert!(answered(&mut stream).await, "under the cap");
        held.push(stream);
    }
    let mut over = TcpStream::connect(server.addr)
        .await
        .expect("the kernel accepts");
    let _ = over
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    let got = read_to_close(&mut over).await.expect("closed");
    assert!(got.is_empty(), "over the cap, no answer: {got:?}");
    assert_eq!(telemetry.http.refused.load(Relaxed), 1);
    // One held connection closes: its place is free again.
    drop(held.pop());
    let mut again = false;
    for _ in 0..100 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connects");
        if answered(&mut stream).await {
            again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again, "a freed place is taken again");
    server.stop().await;
    // Stopping closes the idle kept-alive connections.
    for stream in &mut held {
        assert!(read_to_close(stream).await.is_some(), "closed at stop");
    }
}

/// A connection from `local` (a loopback address of the test's choosing:
/// Linux answers all of 127.0.0.0/8), so the server sees another peer.
async fn connect_from(local: &str, server: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{local}:0").parse().expect("addr"))
        .expect("binds");
    socket.connect(server).await.expect("connects")
}

/// Opens connections from `local` and asks each for `/healthz` until one
/// is not answered (or `at_most` are held); returns those held.
async fn fill_from(local: &str, server: SocketAddr, at_most: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..at_most {
        let mut stream = connect_from(local, server).await;
        if !answered(&mut stream).await {
            break;
        }
        held.push(stream);
    }
    held
}

/// One client holding every connection it can (the reviewer's Python
/// client held all 256 and `curl /healthz` failed 12 times in 12) is
/// refused past its own cap, and leaves room for another peer's health
/// probe, even when a few peers crowd the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_cannot_hold_every_connection() {
    let limits = ServerLimits {
        header_read: Duration::from_secs(60),
        connections: 12,
        per_peer: 4,
        reserved: 2,
        ..ServerLimits::default()
    };
    let (server, telemetry) = start(limits, None).await;
    let greedy = fill_from("127.0.0.1", server.addr, 13).await;
    assert_eq!(greedy.len(), 4, "one peer holds its own cap");
    assert_eq!(
        telemetry.http.refused.load(Relaxed),
        1,
        "its next one refused"
    );
    let mut probe = connect_from("127.0.0.2", server.addr).await;
    assert!(
        answered(&mut probe).await,
        "another peer's probe is answered"
    );
    // Two more peers take what they can: 4 + 1 + 4 + 1 of 12, the last
    // two places are kept for peers holding none.
    let second = fill_from("127.0.0.3", server.addr, 13).await;
    let third = fill_from("127.0.0.4", server.addr, 13).await;
    assert_eq!((second.len(), third.len()), (4, 1));
    let mut newcomer = connect_from("127.0.0.5", server.addr).await;
    assert!(answered(&mut newcomer).await, "a newcomer's probe still is");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_its_time_is_answered_503() {
    let limits = ServerLimits {
        request: Duration::from_millis(200),
        ..ServerLimits::default()
    };
    let (server, telemetry) = start(limits, None).await;
    // A body announced and never sent: the handler waits for it.
    let mut stream = TcpStream::connect(server.addr).await.expect("connects");
    stream
        .write_all(
            b"POST /api/v1/outbox/retry HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .expect("sends");
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(BOUND, stream.read(&mut buf))
        .await
        .expect("an answer in time")
        .expect("reads");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 503"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert_eq!(telemetry.http.request_timeouts.load(Relaxed), 1);
    server.stop().await;
}

/// DNS rebinding: without a token, a name that is not loopback is refused;
/// with a token the token is the guard and any name is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_only_loopback_host_names_are_served() {
    let (server, _) = start(ServerLimits::default(), None).await;
    let port = server.addr.port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "[::1]:1".to_owned(),
        "localhost".to_owned(),
    ] {
        let head = format!("GET /api/v1/outbox HTTP/1.1\r\nHost: {host}");
        let (status, body) = exchange(server.addr, &head, "").await;
        assert_eq!((status, body.as_str()), (200, r#"{"sinks":[]}"#), "{host}");
    }
    for host in [
        "rebind.evil.example",
        "rebind.evil.example:9464",
        "10.1.2.3",
    ] {
        for path in ["/api/v1/outbox", "/metrics", "/api/v1/dashboard"] {
            let head = format!("GET {path} HTTP/1.1\r\nHost: {host}");
            let (status, body) = exchange(server.addr, &head, "").await;
            assert_eq!(status, 403, "{host} {path}: {body}");
            assert!(body.contains(r#""error""#), "{body}");
        }
    }
    server.stop().await;

    let (server, _) = start(ServerLimits::default(), Some("s3cret")).await;
    let head =
        "GET /api/v1/outbox HTTP/1.1\r\nHost: status.example.net\r\nAuthorization: Bearer s3cret";
    assert_eq!(exchange(server.addr, head, "").await.0, 200);
    let head = "GET /api/v1/outbox HTTP/1.1\r\nHost: status.example.net";
    assert_eq!(exchange(server.addr, head, "").await.0, 401);
    server.stop().await;
}

/// A page elsewhere can POST without a preflight only as a "simple"
/// request (no JSON type); one from a foreign origin is refused anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_post_changes_nothing() {
    let (server, _) = start(ServerLimits::default(), None).await;
    let port = server.addr.port();
    let post = |extra: &str| {
        format!("POST /api/v1/outbox/retry HTTP/1.1\r\nHost: 127.0.0.1:{port}{extra}")
    };
    let json = "\r\nContent-Type: application/json";
    let cases: [(String, &str, u16); 8] = [
        // No type (a no-cors fetch, a form): refused.
        (post(""), "", 415),
        (post("\r\nOrigin: https://evil.example"), "", 415),
        (post("\r\nContent-Type: text/plain"), r#"{"id":"a:1"}"#, 415),
        (
            post("\r\nContent-Type: application/x-www-form-urlencoded"),
            "id=a",
            415,
        ),
        // JSON from another origin (after a preflight nobody answers).
        (
            post(&format!("{json}\r\nOrigin: https://evil.example")),
            "{}",
            403,
        ),
        (post(&format!("{json}\r\nOrigin: null")), "{}", 403),
        // JSON from the page itself or a command-line client: through to
        // the handler (no sinks here, so 503).
        (
            post(&format!("{json}\r\nOrigin: http://127.0.0.1:{port}")),
            "{}",
            503,
        ),
        (
            post("\r\nContent-Type: Application/JSON; charset=utf-8"),
            "",
            503,
        ),
    ];
    for (head, body, want) in cases {
        let (status, answer) = exchange(server.addr, &head, body).await;
        assert_eq!(status, want, "{head:?} {body:?}: {answer}");
        assert!(answer.contains(r#""error""#), "{answer}");
    }
    let (status, answer) = exchange(server.addr, &post(json), "[1").await;
    assert_eq!(status, 400, "bad JSON: {answer}");
    server.stop().await;
}

/// Every error is `{"error": …}` JSON, a query string that does not fit
/// included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_errors_are_json() {
    let (server, _) = start(ServerLimits::default(), None).await;
    for path in [
        "/api/v1/services?active=maybe",
        "/api/v1/services/discord/series?minutes=-1",
        "/api/v1/services/discord/series?minutes=lots",
        "/api/v1/services/discord/series?minutes=0",
        "/api/v1/services/discord/series?minutes=181",
        "/api/v1/incidents?state=bogus",
        "/api/v1/incidents/%FF%FE",
    ] {
        let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1");
        let mut stream = TcpStream::connect(server.addr).await.expect("connects");
        let request = format!("{head}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("sends");
        let got = read_to_close(&mut stream).await.expect("an answer");
        let text = String::from_utf8_lossy(&got).into_owned();
        assert!(text.starts_with("HTTP/1.1 400"), "{path}: {text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{path}: {text}"
        );
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let value: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert!(value["error"].is_string(), "{path}: {body}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_is_answered_in_json() {
    let (server, _) = start(ServerLimits::default(), None).await;
    for head in [
        "GET /api/v1/outbox/retry HTTP/1.1\r\nHost: 127.0.0.1",
        "POST /api/v1/incidents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json",
    ] {
        let (status, body) = exchange(server.addr, head, "").await;
        assert_eq!(status, 405, "{head}");
        let value: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{head}: not JSON ({e}): {body:?}"));
        assert!(
            value["error"]
                .as_str()
                .is_some_and(|e| e.contains("is not allowed")),
            "{head}: {body}"
        );
    }
    server.stop().await;
}

/// The headers the README promises, on the page, the data, an error and
/// a refusal alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let (server, _) = start(ServerLimits::default(), None).await;
    for path in ["/", "/assets/app.js", "/api/v1/dashboard", "/no/such/route"] {
        let mut stream = TcpStream::connect(server.addr).await.expect("connects");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("sends");
        let got = read_to_close(&mut stream).await.expect("an answer");
        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
        let head = text
            .split_once("\r\n\r\n")
            .map_or(text.as_str(), |(h, _)| h);
        for want in [
            "x-content-type-options: nosniff",
            "x-frame-options: deny",
            "referrer-policy: no-referrer",
            "cache-control: no-store",
            "content-security-policy: default-src 'none'; script-src 'self';",
            "frame-ancestors 'none'",
        ] {
            assert!(head.contains(want), "{path}: no {want:?} in\n{head}");
        }
        assert!(
            !head.contains("unsafe-inline") && !head.contains("unsafe-eval"),
            "{path}: {head}"
        );
    }
    server.stop().await;
}
