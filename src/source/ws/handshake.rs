//! Opening one connection: the request with the protocol's headers (the
//! credentials only where the configuration sends them), bounded in time,
//! and a refused handshake read by the protocol and classed by its
//! status (a redirect handed back to [`super::run`]). Apart from the
//! reading of frames ([`super::session`]), which it only precedes.

use std::sync::Arc;

use tokio::time::timeout;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

use super::session::Socket;
use super::{End, Protocol, WsSettings};
use crate::http_client::parse_retry_after;
use crate::source::health::{SourceHealth, span};
use crate::source::kind::Link;
use crate::source::url::SourceUrl;

/// Bytes of our own frames (pings, pongs, a subscription) queued for a
/// server at most: a server that stops reading while it sends pings had a
/// pong queued for each, without bound. Past it a pong waits for room and
/// our next ping fails, which ends the connection.
const MAX_WRITE_BUFFER_BYTES: usize = 1 << 20;

/// Headers that carry a source's credentials: sent only to the origin the
/// configuration names, never after a redirect to another one.
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// Opens the websocket: the request with the protocol's headers, the
/// connection bounded in time, a refusal read by the protocol.
pub(super) async fn handshake<P: Protocol>(
    url: &SourceUrl,
    credentials: bool,
    settings: &WsSettings,
    protocol: &mut P,
    link: &mut Link,
) -> Result<Socket, End> {
    let mut request = url
        .secret()
        .into_client_request()
        .map_err(|e| End::Lost(format!("bad URL: {e}")))?;
    for (name, value) in protocol.headers() {
        if !credentials && CREDENTIAL_HEADERS.contains(&name) {
            tracing::info!(source = %link.health.name, %url, header = name, "not sent: the redirect left the configured origin");
            continue;
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| End::Lost(format!("header {name} has characters HTTP does not allow")))?;
        request.headers_mut().insert(name, value);
    }
    // tungstenite's own limit is generous: frames between our limit and
    // this one are dropped and counted without losing the connection.
    let hard_limit = settings.max_frame_bytes.saturating_mul(16).max(16 << 20);
    let config = WebSocketConfig::default()
        .max_message_size(Some(hard_limit))
        .max_frame_size(Some(hard_limit))
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES);
    let tls = Connector::Rustls(Arc::clone(&link.tls));
    let connect = connect_async_tls_with_config(request, Some(config), true, Some(tls));
    let result = tokio::select! {
        _ = link.shutdown.changed() => return Err(End::Shutdown),
        result = timeout(settings.connect_timeout, connect) => result,
    };
    match result {
        Err(_) => Err(End::Lost(format!(
            "connect timed out after {:?}",
            settings.connect_timeout
        ))),
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(response))) => {
            Err(refused(&response, protocol, &link.health))
        }
        Ok(Err(e)) => Err(End::Lost(format!("cannot connect: {e}"))),
    }
}

/// How a handshake answered with an HTTP status ends: a redirect to
/// follow, or a refusal the protocol reads (perhaps reporting lost
/// events), classed by its status: 401 and 403 refuse this client for
/// good (asked again only after the longest backoff, as a relay's
/// `auth-required:`), 429 and 503 with `Retry-After` hold the host as
/// long as asked (at most an hour), anything else is a failed connection.
/// They were all failed connections, retried from the shortest backoff.
fn refused<P: Protocol>(
    response: &tungstenite::http::Response<Option<Vec<u8>>>,
    protocol: &mut P,
    health: &SourceHealth,
) -> End {
    if response.status().is_redirection() {
        return match response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
        {
            Some(location) => End::Redirect(location.into()),
            None => End::Lost(format!("HTTP {} without a Location", response.status())),
        };
    }
    let status = response.status().as_u16();
    let body = response.body().as_deref().unwrap_or_default();
    let rejection = protocol.rejected(status, body);
    if let Some(gap) = rejection.gap {
        tracing::warn!(source = %health.name, %gap, "events lost");
        health.report_gap(gap);
    }
    let reason = rejection.reason;
    let asked = || {
        let now = chrono::DateTime::from_timestamp_micros(health.now())?;
        let value = response.headers().get("retry-after")?.to_str().ok()?;
        parse_retry_after(value, now)
    };
    match status {
        401 | 403 => End::Refused(reason),
        429 | 503 => match asked() {
            Some(wait) => End::Throttled {
                reason: format!(
                    "{reason} (asked to retry after {})",
                    span(wait.as_secs() as i64)
                ),
                wait,
            },
            None => End::Lost(reason),
        },
        _ => End::Lost(reason),
    }
}
