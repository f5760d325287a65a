//! Stand-ins for a Mastodon instance: its statuses as the stream sends
//! them, its HTTP documents, a streaming endpoint that refuses or
//! redirects the handshake, and a config reading one instance.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use super::loopback;

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .expect("time")
        .to_rfc3339()
}

pub fn mastodon_update(id: &str, acct: &str, secs: i64, html: &str) -> String {
    let status = json!({
        "id": id, "created_at": rfc3339(secs), "content": html, "spoiler_text": "",
        "language": "en", "tags": [], "visibility": "public",
        "account": {"id": "1", "acct": acct, "username": acct},
        "uri": format!("https://social.example/users/{acct}/statuses/{id}"),
        "url": format!("https://social.example/@{acct}/{id}"), "reblog": null
    });
    json!({"stream": ["public"], "event": "update", "payload": status.to_string()}).to_string()
}

/// A plain HTTP stand-in answering every GET from `answer(path)` with
/// (status, Location, JSON body); on its own runtime.
pub fn http_stand_in(
    answer: impl Fn(&str) -> (u16, Option<String>, String) + Send + Sync + 'static,
) -> (SocketAddr, tokio::runtime::Runtime) {
    use axum::http::{StatusCode, Uri, header};
    use axum::response::IntoResponse;
    let (runtime, listener) = loopback("127.0.0.1:0".parse().expect("addr"));
    let addr = listener.local_addr().expect("addr");
    let answer = Arc::new(answer);
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let answer = Arc::clone(&answer);
        async move {
            let (status, location, body) = answer(uri.path());
            let mut response = (
                StatusCode::from_u16(status).expect("status"),
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
            if let Some(location) = location {
                response
                    .headers_mut()
                    .insert(header::LOCATION, location.parse().expect("location"));
            }
            response
        }
    });
    runtime.spawn(async move { axum::serve(listener, app).await });
    (addr, runtime)
}

/// A config with one Mastodon source named `m` reading `url` (plus the
/// source's `extra` lines, such as a token), quick reconnects, the health
/// alerts all but off and a status line every 0.2 s.
pub fn one_mastodon_source(dir: &std::path::Path, url: &str, extra: &str) -> std::path::PathBuf {
    let config = dir.join("ow.toml");
    std::fs::write(
        &config,
        format!(
            "[[sources]]\nkind = \"mastodon\"\nname = \"m\"\nurls = [\"{url}\"]\n{extra}\n[sources.connection]\nbackoff_min_ms = 50\nbackoff_max_ms = 200\n\n[health]\nsilence_secs = 3600\nlag_secs = 100000000\n\n[daemon]\nstatus_secs = 0.2\n"
        ),
    )
    .expect("config");
    config
}

/// A websocket endpoint whose handshake answers 301 to `location`.
pub fn redirecting_ws(location: String) -> (SocketAddr, tokio::runtime::Runtime) {
    let (addr, runtime, _) = refusing_ws(301, vec![("location", location)], None);
    (addr, runtime)
}

/// A websocket endpoint whose every handshake is answered with `status`,
/// `headers` and `body` instead of an upgrade; and how many were.
pub fn refusing_ws(
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
) -> (SocketAddr, tokio::runtime::Runtime, Arc<AtomicUsize>) {
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    use tokio_tungstenite::tungstenite::http::StatusCode;
    let (runtime, listener) = loopback("127.0.0.1:0".parse().expect("addr"));
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&count);
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let (headers, body) = (headers.clone(), body.clone());
            tokio::spawn(async move {
                let callback = move |_: &Request, _: Response| -> Result<Response, ErrorResponse> {
                    let mut error = ErrorResponse::new(body);
                    *error.status_mut() = StatusCode::from_u16(status).expect("status");
                    for (name, value) in headers {
                        error
                            .headers_mut()
                            .insert(name, value.parse().expect("header"));
                    }
                    Err(error)
                };
                let _ = tokio_tungstenite::accept_hdr_async(stream, callback).await;
            });
        }
    });
    (addr, runtime, count)
}
