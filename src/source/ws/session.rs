//! One connection of a live source: the handshake (`handshake.rs`: a refusal read by the
//! protocol and classed by its status, a redirect handed back to
//! [`super::run`]), the subscription,
//! then frames (bounded in size and rate, binary ones made text by the
//! protocol, control messages told apart from data) until it ends; the
//! watchdog reconnects when no frame that decodes arrives for too long.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use super::handshake::handshake;
use super::{
    BinaryFrame, Control, End, Handed, Protocol, QUIET_DATA_WATCHDOG, Ticks, WsSettings,
    arrival_now, hand_over, tick_interval,
};
use crate::Micros;
use crate::events::{
    BinaryFrameDropped, ForeignMessage, FrameOversized, FrameRateDropped, InternalEvent,
    ServerError, ServerMessage, WatchdogStall,
};
use crate::source::health::SourceHealth;
use crate::source::kind::Link;
use crate::source::url::SourceUrl;
use crate::source::{FrameError, SourceError};
use crate::text::server_text;

/// When the watchdog should look again, or `None` if no frame has decoded
/// for a whole `watchdog` period of this connection (a stall).
fn data_deadline(
    health: &SourceHealth,
    connected_at: Micros,
    watchdog: Duration,
) -> Option<Instant> {
    let last = health
        .last_data_mono()
        .unwrap_or(connected_at)
        .max(connected_at);
    let since = Duration::from_micros((health.monotonic() - last).max(0) as u64);
    (since < watchdog).then(|| Instant::now() + (watchdog - since))
}

pub(super) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One connection to `url`: handshake, subscription, then frames until
/// it ends, each handed over as read from `host` (the configured host, or
/// the server a redirect led to). Returns how it ended, and how long the
/// server showed it was alive: from the handshake to the last message it
/// sent, a pong included (zero if it never connected).
pub(super) async fn session<P: Protocol>(
    host: &SourceUrl,
    url: &SourceUrl,
    credentials: bool,
    settings: &WsSettings,
    protocol: &mut P,
    link: &mut Link,
) -> (End, Duration) {
    let ws = match handshake(url, credentials, settings, protocol, link).await {
        Ok(ws) => ws,
        Err(end) => return (end, Duration::ZERO),
    };
    let (mut write, read) = ws.split();
    for hello in protocol.hello(link.health.processed()) {
        let limit = settings.connect_timeout;
        match send_unless_stopped(&mut write, Message::text(hello), limit, link).await {
            Some(Ok(())) => {}
            Some(Err(why)) => {
                let end = End::Lost(format!("cannot send subscription: {why}"));
                return (end, Duration::ZERO);
            }
            None => return (End::Shutdown, Duration::ZERO),
        }
    }
    link.health.set_connected(true);
    tracing::info!(source = %link.health.name, %url, "connected");
    let opened = Instant::now();
    let mut reader = Reader {
        host,
        settings,
        protocol,
        link,
        limiter: RateLimit::new(settings.max_frames_per_sec),
        last_message: opened,
    };
    let end = reader.read(write, read).await;
    (end, reader.last_message.duration_since(opened))
}

/// How long closing a connection at shutdown may take: a server that does
/// not read must not hold the daemon's shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Sends one message within `limit`: a server that stops reading leaves a
/// write pending for ever, and the reading loop, the watchdog and the
/// shutdown signal with it.
async fn send(
    write: &mut futures_util::stream::SplitSink<Socket, Message>,
    message: Message,
    limit: Duration,
) -> Result<(), String> {
    match timeout(limit, write.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("the server read nothing for {limit:?}")),
    }
}

/// [`send`], given up at the shutdown signal (`None`): a server that
/// stops reading holds a send for its whole limit (a ping's is
/// `ping_secs`, up to an hour), and the daemon's shutdown waited for it
/// past its grace, until the stall watchdog exited 1 with the pipeline
/// neither drained nor saved.
async fn send_unless_stopped(
    write: &mut futures_util::stream::SplitSink<Socket, Message>,
    message: Message,
    limit: Duration,
    link: &mut Link,
) -> Option<Result<(), String>> {
    tokio::select! {
        sent = send(write, message, limit) => Some(sent),
        _ = link.shutdown.changed() => None,
    }
}

/// The reading half of one connection.
struct Reader<'a, P> {
    host: &'a SourceUrl,
    settings: &'a WsSettings,
    protocol: &'a mut P,
    link: &'a mut Link,
    limiter: RateLimit,
    /// When the server last sent anything (a pong too): the connection is
    /// alive.
    last_message: Instant,
}

/// What one websocket message comes to.
enum Step {
    /// A text frame for the protocol to classify.
    Text(String),
    /// Nothing to do (pings, dropped frames).
    Skip,
    End(End),
}

impl<P: Protocol> Reader<'_, P> {
    /// Reads until the connection ends: pings on time, a watchdog on data,
    /// every frame bounded and classified.
    async fn read(
        &mut self,
        mut write: futures_util::stream::SplitSink<Socket, Message>,
        mut read: futures_util::stream::SplitStream<Socket>,
    ) -> End {
        let mut ping = tokio::time::interval(self.settings.ping_every);
        ping.tick().await;
        let connected_at = self.link.health.monotonic();
        let mut deadline = Instant::now() + self.settings.watchdog;
        let mut tick = tick_interval();
        let ticks = self.link.ticks != Ticks::Never;
        loop {
            let message = tokio::select! {
                _ = self.link.shutdown.changed() => {
                    // Best effort: the server may be gone or not reading.
                    let _ = send(&mut write, Message::Close(None), CLOSE_TIMEOUT).await;
                    return End::Shutdown;
                }
                _ = ping.tick() => {
                    let ping = Message::Ping(Vec::new().into());
                    let limit = self.settings.ping_every;
                    match send_unless_stopped(&mut write, ping, limit, self.link).await {
                        Some(Ok(())) => continue,
                        Some(Err(why)) => return End::Lost(format!("ping failed: {why}")),
                        None => return End::Shutdown,
                    }
                }
                _ = sleep_until(deadline) => {
                    match self.watchdog(connected_at) {
                        Ok(next) => deadline = next,
                        Err(why) => {
                            WatchdogStall { counters: &self.link.health.counters }.emit();
                            return End::Lost(why.to_string());
                        }
                    }
                    continue;
                }
                _ = tick.tick(), if ticks => {
                    if let Some(end) = self.tick().await {
                        return end;
                    }
                    continue;
                }
                message = read.next() => message,
            };
            if matches!(message, Some(Ok(_))) {
                self.last_message = Instant::now();
            }
            if let Some(Err(tungstenite::Error::Utf8(why))) = &message {
                return self.not_utf8(&mut write, why).await;
            }
            let text = match self.message(message) {
                Step::Text(text) => text,
                Step::Skip => continue,
                Step::End(end) => return end,
            };
            if let Some(end) = self.deliver(text).await {
                return end;
            }
        }
    }

    /// When to look again, or why the connection is stalled. Data is what
    /// the pipeline managed to decode, not bytes. A quiet stream is alive
    /// while the server answers pings: dropped by the data watchdog after
    /// 30 s, a quiet Mastodon instance reconnected every 30 s for ever
    /// (never healthy long enough to reset the backoff), losing what was
    /// posted meanwhile.
    fn watchdog(&self, connected_at: Micros) -> Result<Instant, SourceError> {
        let last_message = self.last_message;
        let watchdog = self.settings.watchdog;
        if !self.protocol.quiet() {
            return data_deadline(&self.link.health, connected_at, watchdog)
                .ok_or(SourceError::NoData(watchdog));
        }
        // A pong comes back within a ping period of the last.
        let alive = watchdog.max(self.settings.ping_every.saturating_mul(2));
        if last_message.elapsed() >= alive {
            return Err(SourceError::NoPong(alive));
        }
        let data_watchdog = watchdog.saturating_mul(QUIET_DATA_WATCHDOG);
        let next = data_deadline(&self.link.health, connected_at, data_watchdog)
            .ok_or(SourceError::NoData(data_watchdog))?;
        Ok(next.min(last_message + alive))
    }

    /// A websocket message as text for the protocol, within the limits.
    fn message(&mut self, message: Option<Result<Message, tungstenite::Error>>) -> Step {
        let health = &self.link.health;
        match message {
            None => Step::End(End::Lost("the server closed the stream".into())),
            Some(Err(tungstenite::Error::Capacity(e))) => {
                let why = format!("frame too large for the connection: {e}");
                let counters = &health.counters;
                FrameOversized {
                    source: &health.name,
                    counters,
                    bytes: 0,
                    why: &why,
                }
                .emit();
                Step::End(End::Lost(why))
            }
            Some(Err(e)) => Step::End(End::Lost(format!("read error: {e}"))),
            Some(Ok(Message::Text(text))) => self.text(text.as_str()),
            Some(Ok(Message::Binary(bytes))) => self.binary(&bytes),
            Some(Ok(Message::Close(frame))) => {
                let reason = frame.map_or_else(
                    || "no reason given".to_owned(),
                    |f| format!("code {}: {}", u16::from(f.code), server_text(&f.reason)),
                );
                Step::End(End::Lost(format!(
                    "the server closed the connection ({reason})"
                )))
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Step::Skip,
        }
    }

    /// Counts a frame; true when the connection's rate cap drops it.
    fn over_rate(&mut self) -> bool {
        self.link.health.count_frame();
        let over = self.limiter.over();
        if over {
            FrameRateDropped {
                counters: &self.link.health.counters,
            }
            .emit();
        }
        over
    }

    fn text(&mut self, text: &str) -> Step {
        if self.over_rate() {
            return Step::Skip;
        }
        let health = &self.link.health;
        let limit = self.settings.max_frame_bytes;
        if text.len() > limit {
            let why = format!("text frame over the limit of {limit} bytes");
            let (source, counters) = (&health.name, &health.counters);
            FrameOversized {
                source,
                counters,
                bytes: text.len(),
                why: &why,
            }
            .emit();
            return Step::Skip;
        }
        Step::Text(text.to_owned())
    }

    fn binary(&mut self, bytes: &[u8]) -> Step {
        if self.over_rate() {
            return Step::Skip;
        }
        let health = &self.link.health;
        let (source, counters, len) = (&health.name, &health.counters, bytes.len());
        match self.protocol.binary(bytes, self.settings) {
            BinaryFrame::Text(text) => return Step::Text(text),
            BinaryFrame::Oversized(why) => {
                FrameOversized {
                    source,
                    counters,
                    bytes: len,
                    why: &why,
                }
                .emit();
            }
            BinaryFrame::Unusable(why) => {
                BinaryFrameDropped {
                    source,
                    counters,
                    bytes: len,
                    why: &why,
                }
                .emit();
            }
        }
        Step::Skip
    }

    /// A text frame that is not UTF-8 (the library's words in `why`): RFC
    /// 6455 has the connection failed, with close code 1007, and it ends
    /// here as lost; the frame itself is counted as received and handed to
    /// the pipeline as a malformed frame of this source, with why. It was
    /// only a reconnect, "read error: UTF-8 encoding error", and a server
    /// sending such frames showed no malformed frame anywhere.
    async fn not_utf8(
        &mut self,
        write: &mut futures_util::stream::SplitSink<Socket, Message>,
        why: &str,
    ) -> End {
        self.link.health.count_frame();
        let error = FrameError::TextNotUtf8(server_text(why));
        let reason = error.to_string();
        let close = CloseFrame {
            code: CloseCode::Invalid,
            reason: "invalid UTF-8 in a text frame".into(),
        };
        // Best effort: the server may be gone or not reading.
        let _ = send(write, Message::Close(Some(close)), CLOSE_TIMEOUT).await;
        let rejected = Handed::Rejected {
            error,
            arrival_us: arrival_now(),
        };
        if let Some(end) = hand_over(self.link, self.host, rejected).await {
            return end;
        }
        End::Lost(reason)
    }

    /// Says that time passed ([`Ticks`]), unless the subscription is still
    /// sending stored events (their buckets, dated before now, must stay
    /// open). `Some` when the connection ends.
    async fn tick(&mut self) -> Option<End> {
        let arrival_us = arrival_now();
        if self.protocol.stored_since(arrival_us).is_some() {
            return None;
        }
        hand_over(self.link, self.host, Handed::Tick { arrival_us }).await
    }

    /// A text frame: control messages acted on, data sent to the pipeline.
    /// `Some` when the connection ends.
    async fn deliver(&mut self, text: String) -> Option<End> {
        let health = &self.link.health;
        match self.protocol.control(&text) {
            Control::Data => {}
            Control::DataAfterGap(gap) => {
                tracing::warn!(source = %health.name, %gap, "events lost");
                health.report_gap(gap);
            }
            Control::Info(info) => {
                ServerMessage {
                    source: &health.name,
                    counters: &health.counters,
                    info: &server_text(&info),
                }
                .emit();
                return None;
            }
            Control::ServerError(error) => {
                let (source, counters) = (&health.name, &health.counters);
                ServerError {
                    source,
                    counters,
                    error: &server_text(&error),
                }
                .emit();
                return None;
            }
            Control::Gap(gap) => {
                tracing::warn!(source = %health.name, %gap, "events lost");
                health.report_gap(gap);
                return None;
            }
            Control::Foreign => {
                ForeignMessage {
                    source: &health.name,
                    counters: &health.counters,
                }
                .emit();
                return None;
            }
            Control::Refused(reason) => {
                return Some(End::Refused(server_text(&reason)));
            }
            Control::Reconnect(reason) => {
                return Some(End::Lost(format!(
                    "server ended the subscription: {}",
                    server_text(&reason)
                )));
            }
        }
        let arrival_us = arrival_now();
        let stored_since = self.protocol.stored_since(arrival_us);
        let checked = self.protocol.check(&text, arrival_us, stored_since);
        let frame = Handed::Frame {
            text,
            arrival_us,
            stored_since,
            checked,
        };
        hand_over(self.link, self.host, frame).await
    }
}

/// Counts one connection's data frames per second of wall time.
struct RateLimit {
    /// Frames allowed per second; `None`: no limit.
    limit: Option<u32>,
    window: Instant,
    count: u32,
}

impl RateLimit {
    /// `per_sec` as configured: `max_frames_per_sec = 0` is no limit.
    fn new(per_sec: u32) -> Self {
        RateLimit {
            limit: (per_sec > 0).then_some(per_sec),
            window: Instant::now(),
            count: 0,
        }
    }

    /// Counts a frame; true when it is over this second's allowance.
    fn over(&mut self) -> bool {
        let Some(limit) = self.limit else {
            return false;
        };
        let now = Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count > limit
    }
}
