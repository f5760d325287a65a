//! Named internal events of the live edges (sources and delivery) and of
//! the pipeline, in one place. Each event logs itself with structured fields (`event`, `stage`,
//! `error_type` where it is a fault, and what an operator acts on) and
//! counts itself in the counters the metrics and the status API read, so a
//! log line and its counter can never disagree, and a new event is one
//! struct here rather than a `warn!` string and a counter in two files.
//!
//! The counters live here too ([`ConnectionCounters`], [`SinkCounters`],
//! and the pipeline's [`pipeline::Stats`]): this module depends on nothing
//! of the crate, so sources, delivery and the pipeline emit into it and
//! telemetry reads it without an import cycle. The pipeline's events
//! (malformed frame, quarantined event, stale post) are in [`pipeline`].

pub mod pipeline;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// One named event: emitting it logs it and counts it.
pub trait InternalEvent {
    fn emit(self);
}

/// The counters of one live connection, each moved by one event.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    pub frames: AtomicU64,
    pub binary: AtomicU64,
    pub oversized: AtomicU64,
    pub reconnects: AtomicU64,
    pub stalls: AtomicU64,
    pub server_errors: AtomicU64,
    /// Data frames over the per-connection rate limit, dropped.
    pub rate_dropped: AtomicU64,
}

/// The counters of one sink, each moved by one event.
#[derive(Debug, Default)]
pub struct SinkCounters {
    pub delivered: AtomicU64,
    pub retries: AtomicU64,
    pub dead: AtomicU64,
    pub skipped: AtomicU64,
}

/// Adds one, and returns the new count (for the log line).
fn bump(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Relaxed) + 1
}

/// A frame over a size limit (its text, or compressed), dropped.
pub struct FrameOversized<'a> {
    pub source: &'a str,
    pub counters: &'a ConnectionCounters,
    pub bytes: usize,
    /// Which limit, in words.
    pub why: &'a str,
}

impl InternalEvent for FrameOversized<'_> {
    fn emit(self) {
        let oversized = bump(&self.counters.oversized);
        tracing::warn!(event = "frame_oversized", stage = "source", error_type = "oversized", source = %self.source, bytes = self.bytes, why = %self.why, oversized, "oversized frame dropped");
    }
}

/// A binary frame the protocol cannot use, dropped.
pub struct BinaryFrameDropped<'a> {
    pub source: &'a str,
    pub counters: &'a ConnectionCounters,
    pub bytes: usize,
    pub why: &'a str,
}

impl InternalEvent for BinaryFrameDropped<'_> {
    fn emit(self) {
        let binary = bump(&self.counters.binary);
        tracing::warn!(event = "binary_frame_dropped", stage = "source", error_type = "unusable_binary", source = %self.source, bytes = self.bytes, why = %self.why, binary, "binary frame dropped");
    }
}

/// A data frame over the connection's rate cap, dropped. Not logged (it
/// comes in floods); counted, and shown in the status line and metrics.
pub struct FrameRateDropped<'a> {
    pub counters: &'a ConnectionCounters,
}

impl InternalEvent for FrameRateDropped<'_> {
    fn emit(self) {
        bump(&self.counters.rate_dropped);
    }
}

/// A connection ended by the server or the network; a reconnect follows.
pub struct SourceReconnect<'a> {
    pub source: &'a str,
    pub counters: &'a ConnectionCounters,
    pub url: &'a str,
    pub reason: &'a str,
}

impl InternalEvent for SourceReconnect<'_> {
    fn emit(self) {
        let reconnects = bump(&self.counters.reconnects);
        tracing::warn!(event = "source_reconnect", stage = "source", error_type = "connection_lost", source = %self.source, url = %self.url, reason = %self.reason, reconnects, "connection lost; reconnecting");
    }
}

/// A handshake redirect not followed (another scheme, a downgrade, too
/// many); a reconnect follows.
pub struct RedirectRefused<'a> {
    pub source: &'a str,
    pub counters: &'a ConnectionCounters,
    pub url: &'a str,
    pub location: &'a str,
    pub hops: usize,
}

impl InternalEvent for RedirectRefused<'_> {
    fn emit(self) {
        let reconnects = bump(&self.counters.reconnects);
        tracing::warn!(event = "redirect_refused", stage = "source", error_type = "redirect_refused", source = %self.source, url = %self.url, location = %self.location, hops = self.hops, reconnects, "redirect refused (another scheme, a downgrade, or too many); reconnecting");
    }
}

/// No frame that decodes for a whole watchdog period: the connection is
/// dropped (the reconnect that follows is logged as such).
pub struct WatchdogStall<'a> {
    pub counters: &'a ConnectionCounters,
}

impl InternalEvent for WatchdogStall<'_> {
    fn emit(self) {
        bump(&self.counters.stalls);
    }
}

/// The server reported an error; the stream goes on.
pub struct ServerError<'a> {
    pub source: &'a str,
    pub counters: &'a ConnectionCounters,
    pub error: &'a str,
}

impl InternalEvent for ServerError<'_> {
    fn emit(self) {
        let server_errors = bump(&self.counters.server_errors);
        tracing::warn!(event = "server_error", stage = "source", error_type = "server_error", source = %self.source, error = %self.error, server_errors, "server reported an error");
    }
}

/// An alert delivery failed and will be tried again.
pub struct DeliveryRetried<'a> {
    pub sink: &'a str,
    pub counters: &'a SinkCounters,
    pub alert: &'a str,
    pub attempt: u32,
    pub reason: &'a str,
    pub retry_in: Duration,
}

impl InternalEvent for DeliveryRetried<'_> {
    fn emit(self) {
        let retries = bump(&self.counters.retries);
        tracing::warn!(event = "delivery_retried", stage = "delivery", error_type = "delivery_failed", sink = %self.sink, alert = %self.alert, attempt = self.attempt, reason = %self.reason, retry_in_ms = self.retry_in.as_millis() as u64, retries, "delivery failed; will retry");
    }
}

/// An alert that cannot be delivered, kept as a dead letter.
pub struct DeliveryDead<'a> {
    pub sink: &'a str,
    pub counters: &'a SinkCounters,
    pub alert: &'a str,
    pub reason: &'a str,
}

impl InternalEvent for DeliveryDead<'_> {
    fn emit(self) {
        let dead_letters = bump(&self.counters.dead);
        tracing::error!(event = "delivery_dead", stage = "delivery", error_type = "undeliverable", sink = %self.sink, alert = %self.alert, reason = %self.reason, dead_letters, "alert not deliverable: kept as a dead letter (outagewatch alerts dead)");
    }
}

/// An alert delivered. Logged for webhooks (a JSON-lines sink's output is
/// the alert itself).
pub struct Delivered<'a> {
    pub sink: &'a str,
    pub counters: &'a SinkCounters,
    pub alert: &'a str,
    pub state: &'a dyn std::fmt::Debug,
    pub logged: bool,
}

impl InternalEvent for Delivered<'_> {
    fn emit(self) {
        let delivered = bump(&self.counters.delivered);
        if self.logged {
            tracing::info!(event = "delivered", stage = "delivery", sink = %self.sink, alert = %self.alert, state = ?self.state, delivered, "alert delivered");
        }
    }
}

/// An alert the sink's filter does not want.
pub struct DeliverySkipped<'a> {
    pub counters: &'a SinkCounters,
}

impl InternalEvent for DeliverySkipped<'_> {
    fn emit(self) {
        bump(&self.counters.skipped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    #[test]
    fn each_connection_event_counts_itself_once() {
        let c = ConnectionCounters::default();
        let (source, url) = ("bluesky", "wss://x");
        FrameOversized {
            source,
            counters: &c,
            bytes: 9,
            why: "over 8",
        }
        .emit();
        BinaryFrameDropped {
            source,
            counters: &c,
            bytes: 3,
            why: "no dictionary",
        }
        .emit();
        FrameRateDropped { counters: &c }.emit();
        SourceReconnect {
            source,
            counters: &c,
            url,
            reason: "closed",
        }
        .emit();
        RedirectRefused {
            source,
            counters: &c,
            url,
            location: "ftp://y",
            hops: 0,
        }
        .emit();
        WatchdogStall { counters: &c }.emit();
        ServerError {
            source,
            counters: &c,
            error: "busy",
        }
        .emit();
        let got = [
            load(&c.oversized),
            load(&c.binary),
            load(&c.rate_dropped),
            load(&c.reconnects),
            load(&c.stalls),
            load(&c.server_errors),
        ];
        // A refused redirect is a reconnect too.
        assert_eq!(got, [1, 1, 1, 2, 1, 1]);
    }

    #[test]
    fn each_delivery_event_counts_itself_once() {
        let s = SinkCounters::default();
        let (sink, alert) = ("hook", "discord-1");
        let retry_in = Duration::from_secs(1);
        DeliveryRetried {
            sink,
            counters: &s,
            alert,
            attempt: 1,
            reason: "503",
            retry_in,
        }
        .emit();
        DeliveryDead {
            sink,
            counters: &s,
            alert,
            reason: "410",
        }
        .emit();
        Delivered {
            sink,
            counters: &s,
            alert,
            state: &"firing",
            logged: true,
        }
        .emit();
        DeliverySkipped { counters: &s }.emit();
        let got = [
            load(&s.retries),
            load(&s.dead),
            load(&s.delivered),
            load(&s.skipped),
        ];
        assert_eq!(got, [1, 1, 1, 1]);
    }
}
