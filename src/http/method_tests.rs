//! What a wrong method, an unknown path and a missing token get, in which
//! order: 404 and 405 (with `Allow`) as the README says, 401 before any
//! check of the body's type, and the JSON and origin checks only on the
//! route that changes something (as an outer layer they answered 415 to
//! every other method on every path, and before the 401).

use super::ServerLimits;
use super::server_tests::{exchange_whole, start};
use std::net::SocketAddr;

/// Sends `head` (no body, `Connection: close` added) and returns the
/// status and the lower-cased response head.
async fn ask(addr: SocketAddr, head: &str) -> (u16, String) {
    let (status, head, _) = exchange_whole(addr, head, "").await;
    (status, head.to_ascii_lowercase())
}

/// The methods a 405 names in `Allow`, sorted.
fn allowed(head: &str) -> Vec<String> {
    let mut methods: Vec<String> = head
        .lines()
        .filter_map(|l| l.strip_prefix("allow:"))
        .flat_map(|v| v.split(','))
        .map(|m| m.trim().to_ascii_uppercase())
        .collect();
    methods.sort();
    methods
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_is_405_with_allow_and_an_unknown_path_404() {
    let (server, _) = start(ServerLimits::default(), None).await;
    let host = "\r\nHost: 127.0.0.1";
    // (request line, status, Allow)
    let cases: [(&str, u16, &[&str]); 7] = [
        ("POST /api/v1/incidents HTTP/1.1", 405, &["GET", "HEAD"]),
        ("DELETE / HTTP/1.1", 405, &["GET", "HEAD"]),
        ("PUT /healthz HTTP/1.1", 405, &["GET", "HEAD"]),
        ("DELETE /api/v1/outbox/retry HTTP/1.1", 405, &["POST"]),
        ("GET /api/v1/outbox/retry HTTP/1.1", 405, &["POST"]),
        ("POST /no/such/route HTTP/1.1", 404, &[]),
        // The route that changes something still wants JSON.
        ("POST /api/v1/outbox/retry HTTP/1.1", 415, &[]),
    ];
    for (line, want, allow) in cases {
        let (status, head) = ask(server.addr, &format!("{line}{host}")).await;
        assert_eq!(status, want, "{line}: {head}");
        assert_eq!(allowed(&head), allow, "{line}: {head}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_asked_for_before_the_body_s_type() {
    let (server, _) = start(ServerLimits::default(), Some("s3cret")).await;
    let host = "\r\nHost: status.example.net";
    let auth = "\r\nAuthorization: Bearer s3cret";
    let cases = [
        ("POST /api/v1/outbox/retry HTTP/1.1", "", 401),
        ("POST /api/v1/outbox/retry HTTP/1.1", auth, 415),
        // A wrong method is only that, token or not (the routes are no
        // secret: the README lists them).
        ("POST /api/v1/incidents HTTP/1.1", "", 405),
        ("POST /api/v1/incidents HTTP/1.1", auth, 405),
        ("GET /api/v1/incidents HTTP/1.1", "", 401),
        // The page needs no token: a wrong method on it is only that.
        ("DELETE / HTTP/1.1", "", 405),
        ("POST /no/such/route HTTP/1.1", auth, 404),
    ];
    for (line, extra, want) in cases {
        let (status, head) = ask(server.addr, &format!("{line}{host}{extra}")).await;
        assert_eq!(status, want, "{line} {extra:?}: {head}");
    }
    server.stop().await;
}
