//! The accept loop: hyper's HTTP/1 connection with a header read timeout,
//! caps on open connections (in all, per peer, and places kept for
//! newcomers) and a bound on each connection's life.
//!
//! `axum::serve` has none of these: a client that opened connections and
//! never finished a request head held each one open for ever (18,000 such
//! connections held 18,012 file descriptors and took the resident memory
//! from 26 to 475 MB), before any token was checked.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::AppState;
use super::traffic::{Traffic, Watched};
use crate::events::InternalEvent;
use crate::events::http::{ConnectionLimit, HttpConnectionRefused, HttpTimedOut, TimedOut};
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
    /// Connections one peer (an IPv4 address, an IPv6 /64) may hold at
    /// once. With one cap for all, one client holding 256 idle or
    /// kept-alive connections made `/healthz` fail 12 times in 12.
    pub per_peer: usize,
    /// Of `connections`, the places only a peer holding none may take (one
    /// each): a supervisor's health probe from another address still gets
    /// in when a few peers, each under its own cap, fill the rest.
    pub reserved: usize,
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
            per_peer: 32,
            reserved: 16,
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
    let places = Arc::new(Places::new(&limits));
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
        let permit = match Places::take(&places, peer.ip()) {
            Ok(place) => place,
            Err(which) => {
                HttpConnectionRefused {
                    counters: &telemetry.http,
                    peer,
                    which,
                    limit: places.limit(which),
                }
                .emit();
                drop(stream);
                continue;
            }
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
    /// Its place under the caps, given back when it ends.
    _permit: Place,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, peer: SocketAddr) {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read);
        let traffic = Arc::new(Traffic::default());
        let stream = Watched {
            inner: stream,
            traffic: Arc::clone(&traffic),
        };
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
                        if e.is_timeout() && traffic.idle() {
                            // A kept-alive connection nobody used again:
                            // closed as it should be, nothing went wrong.
                            tracing::debug!(peer = %peer, "status server: closed an idle kept-alive connection");
                        } else if e.is_timeout() {
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

/// The connections held, in all and per peer, under [`ServerLimits`].
///
/// A serious server caps each client as well as the total (nginx's
/// `limit_conn` per address beside `worker_connections`): with only the
/// total, one client filled it and the health probe was refused like
/// everyone else. Per-peer caps alone are not enough either: eight
/// addresses at 32 each fill 256. So the last `reserved` places go only to
/// a peer holding no connection, one each: a probe from an address of its
/// own is answered while the others crowd. Answering `/healthz` at the cap
/// instead would mean reading every connection's request first, which is
/// what the cap exists to avoid.
#[derive(Debug)]
struct Places {
    connections: usize,
    per_peer: usize,
    reserved: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    /// At most `connections` entries: a peer's goes with its last place.
    by_peer: HashMap<IpAddr, usize>,
}

impl Places {
    fn new(limits: &ServerLimits) -> Self {
        let connections = limits.connections.max(1);
        Places {
            connections,
            per_peer: limits.per_peer.max(1),
            // At least one place is never reserved, so a peer can hold one.
            reserved: limits.reserved.min(connections - 1),
            held: Mutex::new(Held::default()),
        }
    }

    /// A place for a connection from `ip`, or the limit it would break.
    fn take(places: &Arc<Places>, ip: IpAddr) -> Result<Place, ConnectionLimit> {
        let peer = peer_key(ip);
        let mut held = places.held.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = held.by_peer.get(&peer).copied().unwrap_or(0);
        if held.total >= places.connections {
            return Err(ConnectionLimit::Total);
        }
        if mine >= places.per_peer {
            return Err(ConnectionLimit::PerPeer);
        }
        if mine > 0 && places.connections - held.total <= places.reserved {
            return Err(ConnectionLimit::Reserved);
        }
        held.total += 1;
        *held.by_peer.entry(peer).or_default() += 1;
        Ok(Place {
            places: Arc::clone(places),
            peer,
        })
    }

    /// The number behind `which`, for the log line.
    fn limit(&self, which: ConnectionLimit) -> usize {
        match which {
            ConnectionLimit::Total => self.connections,
            ConnectionLimit::PerPeer => self.per_peer,
            ConnectionLimit::Reserved => self.reserved,
        }
    }
}

/// Who a peer is for its cap: an IPv4 address (an IPv4-mapped IPv6 one
/// too), or an IPv6 /64, the block one host is given, so one host cannot
/// take a fresh cap with each address of its own.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// One connection's place, given back when it is dropped.
#[derive(Debug)]
struct Place {
    places: Arc<Places>,
    peer: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self
            .places
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.by_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.by_peer.remove(&self.peer);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Who gets a place, in order: per peer, the total, and the places
    /// kept for a peer holding none.
    #[test]
    fn places_are_capped_per_peer_and_kept_for_newcomers() {
        use ConnectionLimit::{PerPeer, Reserved, Total};
        let limits = ServerLimits {
            connections: 6,
            per_peer: 3,
            reserved: 2,
            ..ServerLimits::default()
        };
        let places = Arc::new(Places::new(&limits));
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let mut held = Vec::new();
        let cases: [(&str, Result<(), ConnectionLimit>); 10] = [
            ("10.0.0.1", Ok(())),
            ("10.0.0.1", Ok(())),
            ("10.0.0.1", Ok(())),
            ("10.0.0.1", Err(PerPeer)),
            // The same host by its IPv4-mapped address.
            ("::ffff:10.0.0.1", Err(PerPeer)),
            ("10.0.0.2", Ok(())),
            // 2 places left, both reserved: not for a peer holding one.
            ("10.0.0.2", Err(Reserved)),
            ("2001:db8::1", Ok(())),
            // Same /64: the same peer.
            ("2001:db8::2", Err(Reserved)),
            ("10.0.0.3", Ok(())),
        ];
        for (n, (from, want)) in cases.into_iter().enumerate() {
            let got = Places::take(&places, ip(from));
            assert_eq!(
                got.as_ref().map(|_| ()).map_err(|e| *e),
                want,
                "{n}: {from}"
            );
            held.extend(got.ok());
        }
        assert_eq!(Places::take(&places, ip("10.0.0.4")).err(), Some(Total));
        // Places come back when connections end, and with them the peer's
        // own entry.
        held.clear();
        let left = places.held.lock().expect("lock");
        assert_eq!((left.total, left.by_peer.len()), (0, 0));
    }
}
