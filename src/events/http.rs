//! The status server's events: connections turned away at the cap and
//! requests cut off by a timeout. A client holding connections open by the
//! thousand would otherwise write a line each; they are counted every one
//! and logged at most [`super::LINES_PER_MINUTE`] a minute per kind.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::{InternalEvent, Sampled, bump};

/// The status server's counters (read by the metrics).
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// Connections closed at once because the cap was reached.
    pub refused: AtomicU64,
    /// Connections closed because a request's head did not arrive in time.
    pub header_timeouts: AtomicU64,
    /// Requests answered 503 because they took longer than allowed.
    pub request_timeouts: AtomicU64,
    lines: HttpLines,
}

#[derive(Debug, Default)]
struct HttpLines {
    refused: Sampled,
    timeouts: Sampled,
}

/// Which of the server's connection caps turned one away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionLimit {
    /// All connections.
    Total,
    /// The peer's own.
    PerPeer,
    /// Only the places kept for peers holding none were left.
    Reserved,
}

impl ConnectionLimit {
    /// The name in the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionLimit::Total => "connections",
            ConnectionLimit::PerPeer => "per_peer",
            ConnectionLimit::Reserved => "reserved",
        }
    }
}

/// A connection over a cap, closed without being read.
pub struct HttpConnectionRefused<'a> {
    pub counters: &'a HttpCounters,
    pub peer: SocketAddr,
    pub which: ConnectionLimit,
    /// The cap's number.
    pub limit: usize,
}

impl InternalEvent for HttpConnectionRefused<'_> {
    fn emit(self) {
        let refused = bump(&self.counters.refused);
        let Some(left_out) = self.counters.lines.refused.line() else {
            return;
        };
        tracing::warn!(event = "http_connection_refused", stage = "http", error_type = "too_many_connections", peer = %self.peer, which = self.which.as_str(), limit = self.limit, refused, left_out, "status server: too many connections; closed one");
    }
}

/// What took too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimedOut {
    /// The request line and headers (the connection is closed).
    Headers,
    /// The whole request, body and handler included (answered 503).
    Request,
}

/// A request cut off by a timeout.
pub struct HttpTimedOut<'a> {
    pub counters: &'a HttpCounters,
    pub what: TimedOut,
    pub after: Duration,
}

impl InternalEvent for HttpTimedOut<'_> {
    fn emit(self) {
        let (kind, count) = match self.what {
            TimedOut::Headers => ("headers", bump(&self.counters.header_timeouts)),
            TimedOut::Request => ("request", bump(&self.counters.request_timeouts)),
        };
        let Some(left_out) = self.counters.lines.timeouts.line() else {
            return;
        };
        tracing::warn!(
            event = "http_timed_out",
            stage = "http",
            error_type = "timeout",
            kind,
            after_ms = self.after.as_millis() as u64,
            count,
            left_out,
            "status server: a request took too long; cut off"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::*;

    #[test]
    fn each_http_event_counts_itself_once() {
        let c = HttpCounters::default();
        let peer: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        HttpConnectionRefused {
            counters: &c,
            peer,
            which: ConnectionLimit::PerPeer,
            limit: 1,
        }
        .emit();
        let after = Duration::from_secs(1);
        for what in [TimedOut::Headers, TimedOut::Request, TimedOut::Request] {
            HttpTimedOut {
                counters: &c,
                what,
                after,
            }
            .emit();
        }
        let got = [&c.refused, &c.header_timeouts, &c.request_timeouts].map(|a| a.load(Relaxed));
        assert_eq!(got, [1, 1, 2]);
    }
}
