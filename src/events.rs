//! Named internal events of the live edges (sources and delivery) and of
//! the pipeline, in one place. Each event logs itself with structured fields (`event`, `stage`,
//! `error_type` where it is a fault, and what an operator acts on) and
//! counts itself in the counters the metrics and the status API read, so a
//! log line and its counter can never disagree, and a new event is one
//! struct here rather than a `warn!` string and a counter in two files.
//!
//! The counters live here too ([`ConnectionCounters`], [`SinkCounters`],
//! and the pipeline's [`pipeline::Stats`]): this module depends on no
//! stage of the crate (only on leaf types: the wall clock, [`SourceUrl`]
//! for a URL field, which logs itself masked), so sources, delivery and
//! the pipeline emit into it and telemetry reads it without an import
//! cycle. The pipeline's events
//! (malformed frame, quarantined event, stale post) are in [`pipeline`].

pub mod http;
pub mod pipeline;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::masked_url::SourceUrl;

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
    /// Server messages that are neither data nor errors ([`ServerMessage`]).
    pub messages: AtomicU64,
    /// Refusals for good ([`SourceRefused`]).
    pub refusals: AtomicU64,
    /// Messages for a subscription this client did not open, ignored.
    pub foreign: AtomicU64,
    /// Data frames over the per-connection rate limit, dropped.
    pub rate_dropped: AtomicU64,
    /// The log lines of the events a server can send by the thousand.
    pub lines: ServerLines,
}

/// Log lines of one connection's events that the server decides how often
/// to send (a frame too large, a binary frame, a message or an error of
/// its own): each kind at most [`LINES_PER_MINUTE`] a minute, the next
/// line after a cut saying how many were left out. Every one is still
/// counted. A server sending them by the thousand wrote a log line each.
#[derive(Debug, Default)]
pub struct ServerLines {
    pub binary: Sampled,
    pub oversized: Sampled,
    pub said: Sampled,
}

/// Lines of one kind of event a minute, at most.
pub const LINES_PER_MINUTE: u64 = 10;

/// How many lines one kind of event has had this minute (monotonic).
#[derive(Debug, Default)]
pub struct Sampled {
    minute: AtomicU64,
    lines: AtomicU64,
    left_out: AtomicU64,
}

impl Sampled {
    /// `Some(n)`: this occurrence gets a line, and `n` were left out since
    /// the last one; `None`: it is left out.
    pub fn line(&self) -> Option<u64> {
        self.line_at(crate::wall::since_start().as_secs() / 60)
    }

    fn line_at(&self, minute: u64) -> Option<u64> {
        if self.minute.swap(minute, Relaxed) != minute {
            self.lines.store(0, Relaxed);
        }
        if self.lines.fetch_add(1, Relaxed) < LINES_PER_MINUTE {
            Some(self.left_out.swap(0, Relaxed))
        } else {
            self.left_out.fetch_add(1, Relaxed);
            None
        }
    }
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
        let Some(left_out) = self.counters.lines.oversized.line() else {
            return;
        };
        tracing::warn!(event = "frame_oversized", stage = "source", error_type = "oversized", source = %self.source, bytes = self.bytes, why = %self.why, oversized, left_out, "oversized frame dropped");
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
        let Some(left_out) = self.counters.lines.binary.line() else {
            return;
        };
        tracing::warn!(event = "binary_frame_dropped", stage = "source", error_type = "unusable_binary", source = %self.source, bytes = self.bytes, why = %self.why, binary, left_out, "binary frame dropped");
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
/// The URL is a [`SourceUrl`], which logs itself masked: as a `&str` it
/// was logged whole, a Mastodon `access_token` at every retry.
pub struct SourceReconnect<'a> {
    pub source: &'a str,
    pub counters: &'a ConnectionCounters,
    pub url: &'a SourceUrl,
    pub reason: &'a str,
}

impl InternalEvent for SourceReconnect<'_> {
    fn emit(self) {
        let reconnects = bump(&self.counters.reconnects);
        tracing::warn!(event = "source_reconnect", stage = "source", error_type = "connection_lost", source = %self.source, url = %self.url, reason = %self.reason, reconnects, "connection lost; reconnecting");
    }
}

/// The server refuses this client for good (a relay's `CLOSED` with
/// `auth-required:`, `restricted:`, `blocked:`); a reconnect follows after
/// the longest backoff. The first refusal of a run is an error line (an
/// operator must act: a key, an allow-list, another relay), the rest are
/// counted: retried at once, one relay's refusal was 14 warnings in 3
/// minutes.
pub struct SourceRefused<'a> {
    pub source: &'a str,
    pub counters: &'a ConnectionCounters,
    pub url: &'a SourceUrl,
    pub reason: &'a str,
    /// Refusals in a row, this one included.
    pub in_a_row: u64,
}

impl InternalEvent for SourceRefused<'_> {
    fn emit(self) {
        let reconnects = bump(&self.counters.reconnects);
        bump(&self.counters.refusals);
        if self.in_a_row == 1 {
            tracing::error!(event = "source_refused", stage = "source", error_type = "refused", source = %self.source, url = %self.url, reason = %self.reason, reconnects, "the server refuses this client; asking again after the longest backoff");
        } else {
            tracing::debug!(event = "source_refused", stage = "source", error_type = "refused", source = %self.source, url = %self.url, reason = %self.reason, in_a_row = self.in_a_row, reconnects, "refused again");
        }
    }
}

/// A message for a subscription this client did not open: ignored.
pub struct ForeignMessage<'a> {
    pub source: &'a str,
    pub counters: &'a ConnectionCounters,
}

impl InternalEvent for ForeignMessage<'_> {
    fn emit(self) {
        let foreign = bump(&self.counters.foreign);
        tracing::debug!(event = "foreign_message", stage = "source", error_type = "foreign_subscription", source = %self.source, foreign, "message for another subscription ignored");
    }
}

/// A handshake redirect not followed (another scheme, a downgrade, too
/// many); a reconnect follows.
pub struct RedirectRefused<'a> {
    pub source: &'a str,
    pub counters: &'a ConnectionCounters,
    pub url: &'a SourceUrl,
    /// The server's `Location`, which may carry the source's secrets back.
    pub location: &'a SourceUrl,
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

/// A message of the server's own that is neither data nor an error (a
/// relay's `EOSE`, `NOTICE`, `OK`, `AUTH`; Jetstream v2's `#info`): counted,
/// and logged at most [`LINES_PER_MINUTE`] a minute. They were only logged,
/// so a relay's flood of notices showed in no counter.
pub struct ServerMessage<'a> {
    pub source: &'a str,
    pub counters: &'a ConnectionCounters,
    /// Cut to a server message's length already.
    pub info: &'a str,
}

impl InternalEvent for ServerMessage<'_> {
    fn emit(self) {
        let messages = bump(&self.counters.messages);
        if let Some(left_out) = self.counters.lines.said.line() {
            tracing::info!(event = "server_message", stage = "source", source = %self.source, info = %self.info, messages, left_out, "server message");
        }
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
        let Some(left_out) = self.counters.lines.said.line() else {
            return;
        };
        tracing::warn!(event = "server_error", stage = "source", error_type = "server_error", source = %self.source, error = %self.error, server_errors, left_out, "server reported an error");
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

/// An outbox alert that cannot be read, passed over (counted as dead: it
/// cannot be delivered).
pub struct DeliveryUnreadable<'a> {
    pub sink: &'a str,
    pub counters: &'a SinkCounters,
    pub seq: u64,
    pub detail: &'a str,
}

impl InternalEvent for DeliveryUnreadable<'_> {
    fn emit(self) {
        let dead_letters = bump(&self.counters.dead);
        tracing::error!(event = "delivery_unreadable", stage = "delivery", error_type = "unreadable", sink = %self.sink, seq = self.seq, detail = %self.detail, dead_letters, "an outbox alert cannot be read (written by a newer version, or damaged): passed over");
    }
}

/// A re-queued dead letter not re-sent: the sink's receiver keeps
/// incidents open and already holds a later state of its incident (counted
/// as skipped).
pub struct DeliverySuperseded<'a> {
    pub sink: &'a str,
    pub counters: &'a SinkCounters,
    pub alert: &'a str,
    pub state: &'a str,
    pub later: &'a str,
}

impl InternalEvent for DeliverySuperseded<'_> {
    fn emit(self) {
        bump(&self.counters.skipped);
        tracing::warn!(event = "delivery_superseded", stage = "delivery", sink = %self.sink, alert = %self.alert, state = %self.state, later = %self.later, "a re-queued alert was not sent again: the receiver already holds its incident's later state, which it would undo");
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

    /// Ten lines a minute of one kind; the first line of the next minute
    /// says how many were left out. Every event is counted all the same.
    #[test]
    fn a_flood_of_one_kind_gets_ten_lines_a_minute() {
        let sampled = Sampled::default();
        let first: Vec<Option<u64>> = (0..25).map(|_| sampled.line_at(7)).collect();
        assert_eq!(first[..10], [Some(0); 10]);
        assert_eq!(first[10..], [None; 15]);
        assert_eq!(sampled.line_at(8), Some(15), "then says what it left out");
        assert_eq!(sampled.line_at(8), Some(0));
        let c = ConnectionCounters::default();
        for _ in 0..1000 {
            ServerError {
                source: "relay",
                counters: &c,
                error: "busy",
            }
            .emit();
        }
        assert_eq!(load(&c.server_errors), 1000, "all counted");
        for _ in 0..1000 {
            ServerMessage {
                source: "relay",
                counters: &c,
                info: "notice: slow down",
            }
            .emit();
        }
        assert_eq!(load(&c.messages), 1000, "every message counted");
    }

    #[test]
    fn each_connection_event_counts_itself_once() {
        let c = ConnectionCounters::default();
        let (source, url) = ("bluesky", &SourceUrl::from("wss://x"));
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
            location: &"ftp://y".into(),
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
