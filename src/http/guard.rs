//! Guards against other web pages: DNS rebinding and cross-site requests.
//!
//! Without a token the server trusts whoever can reach loopback, and a web
//! page can reach loopback too: through a name of its own that it points
//! at 127.0.0.1 (DNS rebinding: `GET /api/v1/outbox` with
//! `Host: rebind.evil.example` returned the dead letters), or with a
//! `fetch(…, {method: "POST", mode: "no-cors"})`, which is sent without a
//! preflight (a POST without a body from `Origin: https://evil.example`
//! re-queued every dead letter). So without a token only a loopback `Host`
//! (or the listen address) is served ([`local_host_only`], around every
//! route), and with or without one a request to a route that changes
//! something ([`json_same_origin`], on those routes alone) must be
//! `Content-Type: application/json` (which a page cannot send cross-site
//! without a preflight the server never answers) and must not come from
//! another origin.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use super::api::error;

/// Refuses a foreign `Host` (without a token): every route, the page
/// included, since a rebinding page reads whatever it can load.
pub(super) async fn local_host_only(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if state.token_digest.is_none() && !host.is_some_and(|h| local_host(h, state.listen)) {
        return error(
            StatusCode::FORBIDDEN,
            "the Host is not a loopback name or address: without a token only localhost, 127.0.0.1, [::1] or the listen address are served",
        );
    }
    next.run(request).await
}

/// Refuses a request to a route that changes something unless it is JSON
/// from no other origin. A route layer of those routes only (their
/// method's handler), never an outer layer: as one, it answered 415 to
/// `POST /api/v1/incidents` and `DELETE /` (405 and 404 are the truth, and
/// what the README promised), and before the 401 of a route that needs
/// the token.
pub(super) async fn json_same_origin(request: Request, next: Next) -> Response {
    let headers = request.headers();
    if !is_json(headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request that changes something must be Content-Type: application/json",
        );
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if let Some(origin) = headers.get(header::ORIGIN)
        && !same_origin(origin.to_str().unwrap_or(""), host)
    {
        return error(
            StatusCode::FORBIDDEN,
            "cross-origin requests may not change anything",
        );
    }
    next.run(request).await
}

/// `application/json`, with or without parameters.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// The origin is this server as the client named it: `http://` and the
/// `Host` (the server speaks plain HTTP). `null` and anything else are
/// foreign.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

/// A `Host` (name or address, any port) that only this machine answers
/// to: `localhost`, a loopback address, or the address it listens on.
fn local_host(host: &str, listen: SocketAddr) -> bool {
    let Some(name) = host_name(host) else {
        return false;
    };
    if let Ok(ip) = name.parse::<IpAddr>() {
        return ip.to_canonical().is_loopback() || ip == listen.ip();
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
}

/// The name or address of a `Host` value, without its port; `None` when
/// the value is not `NAME[:PORT]` or `[V6][:PORT]`.
fn host_name(host: &str) -> Option<&str> {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']')?;
            match after {
                "" => (v6, None),
                _ => (v6, Some(after.strip_prefix(':')?)),
            }
        }
        None => match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    (port_ok && !name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_local() {
        let listen: SocketAddr = "127.0.0.5:9464".parse().expect("addr");
        let cases = [
            ("localhost", true),
            ("localhost:9464", true),
            ("LOCALHOST:1", true),
            ("localhost.:9464", true),
            ("127.0.0.1", true),
            ("127.0.0.1:9464", true),
            ("127.0.0.5:80", true),
            ("127.1.2.3:9464", true),
            ("[::1]", true),
            ("[::1]:9464", true),
            ("[::ffff:127.0.0.1]:9464", true),
            ("rebind.evil.example", false),
            ("rebind.evil.example:9464", false),
            ("localhost.evil.example", false),
            ("127.0.0.1.nip.io:9464", false),
            ("evil.localhost.example", false),
            ("10.0.0.1:9464", false),
            ("[::2]:9464", false),
            ("[::1", false),
            ("[::1]x", false),
            ("localhost:", false),
            ("localhost:x", false),
            ("localhost:1:2", false),
            (":9464", false),
            ("", false),
        ];
        for (host, want) in cases {
            assert_eq!(local_host(host, listen), want, "{host:?}");
        }
        let public: SocketAddr = "192.0.2.7:9464".parse().expect("addr");
        assert!(local_host("192.0.2.7:9464", public), "the listen address");
        assert!(!local_host("192.0.2.8:9464", public));
    }

    #[test]
    fn an_origin_is_same_only_as_the_host() {
        let cases = [
            ("http://127.0.0.1:9464", Some("127.0.0.1:9464"), true),
            ("http://LOCALHOST:9464", Some("localhost:9464"), true),
            ("https://127.0.0.1:9464", Some("127.0.0.1:9464"), false),
            ("http://127.0.0.1:9465", Some("127.0.0.1:9464"), false),
            ("https://evil.example", Some("127.0.0.1:9464"), false),
            ("null", Some("127.0.0.1:9464"), false),
            ("http://127.0.0.1:9464", None, false),
        ];
        for (origin, host, want) in cases {
            assert_eq!(same_origin(origin, host), want, "{origin:?} {host:?}");
        }
    }
}
