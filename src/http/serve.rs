//! The accept loop: hyper's HTTP/1 connection with a header read timeout,
//! a cap on open connections and a bound on each connection's life.
//!
//! `axum::serve` has none of these: a client that opened connections and
//! never finished a request head held each one open for ever (18,000 such
//! connections held 18,012 file descriptors and took the resident memory
//! from 26 to 475 MB), before any token was checked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use super::AppState;
use crate::events::InternalEvent;
use crate::events::http::{HttpConnectionRefused, HttpTimedOut, TimedOut};
use crate::telemetry::Telemetry;

/// What one client may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// From the connection's first byte (or the end of the last response)
    /// to the end of the request head; then the connection is closed.
    pub header_read: Duration,
    /// Reading the body and answering; then 503.
    pub request: Duration,
    /// Connections open at once; one more is closed without being read.
    pub connections: usize,
    /// A kept-alive connection is closed after this long (after the request
    /// in flight, given `request` more), so none is held for ever.
    pub connection_life: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(30),
            connections: 256,
            connection_life: Duration::from_secs(600),
        }
    }
}

/// Serves `app` on `listener` until `stop` turns true (or its sender is
/// gone), then lets the connections finish their request in flight.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    telemetry: Arc<Telemetry>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.connections.max(1)));
    // Dropped (and every connection aborted) if `Server::stop` gives up.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, mostly: wait for some to close
                // rather than spin.
                tracing::warn!(error = %e, "status server: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            HttpConnectionRefused {
                counters: &telemetry.http,
                peer,
                limit: limits.connections,
            }
            .emit();
            drop(stream);
            continue;
        };
        let connection = Connection {
            app: app.clone(),
            limits,
            telemetry: telemetry.clone(),
            stop: stop.clone(),
            _permit: permit,
        };
        connections.spawn(connection.run(stream, peer));
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// One accepted connection and what it holds.
struct Connection {
    app: Router,
    limits: ServerLimits,
    telemetry: Arc<Telemetry>,
    stop: watch::Receiver<bool>,
    /// Its place under the cap, given back when it ends.
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, peer: SocketAddr) {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read);
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(self.app));
        tokio::pin!(conn);
        let end = tokio::time::sleep(self.limits.connection_life);
        tokio::pin!(end);
        let mut closing = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        if e.is_timeout() {
                            HttpTimedOut {
                                counters: &self.telemetry.http,
                                what: TimedOut::Headers,
                                after: self.limits.header_read,
                            }
                            .emit();
                        } else {
                            tracing::debug!(peer = %peer, error = %e, "status server: connection ended");
                        }
                    }
                    return;
                }
                _ = self.stop.wait_for(|s| *s), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                    end.as_mut().reset(tokio::time::Instant::now() + self.limits.request);
                }
                () = &mut end => {
                    if closing {
                        // The request in flight had its time: cut it off.
                        return;
                    }
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                    end.as_mut().reset(tokio::time::Instant::now() + self.limits.request);
                }
            }
        }
    }
}

/// 503 when reading the body and answering takes longer than allowed.
pub(super) async fn request_timeout(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.limits.request;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            HttpTimedOut {
                counters: &state.telemetry.http,
                what: TimedOut::Request,
                after: limit,
            }
            .emit();
            super::api::error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the request took longer than {} s", limit.as_secs_f64()),
            )
        }
    }
}
