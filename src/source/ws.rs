//! Live websocket sources that survive: one task per source, reconnecting
//! for ever with capped, jittered exponential backoff, failing over across
//! the source's hosts, and reconnecting when the stream stalls.
//!
//! The wire protocol (Jetstream, Mastodon, Nostr) plugs in through
//! [`Protocol`]: work before connecting (Jetstream v2 fetches its
//! dictionary), the URL to connect to (Jetstream puts its cursor there),
//! the messages to send once connected (Nostr's `REQ`), how a binary frame
//! becomes text (Jetstream's compression, bounded), how a refused handshake
//! reads (Jetstream v2's `CursorTooOld`), and which text frames are control
//! messages rather than data. Data frames go to the pipeline as text, over a
//! bounded channel: a slow pipeline slows the reading instead of growing
//! memory. Every frame is bounded in size (compressed and decompressed) and
//! each connection's data frames per second are capped; what is over a
//! limit is counted and dropped.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

use super::backoff::Backoff;
use super::health::SourceHealth;
use super::kind::Link;
use super::url::{MAX_REDIRECTS, redirect_allowed};
use crate::Micros;
use crate::events::{
    BinaryFrameDropped, FrameOversized, FrameRateDropped, InternalEvent, RedirectRefused,
    ServerError, SourceReconnect, WatchdogStall,
};
use crate::numbers as num;

/// Timing and size limits of a live source: the `[sources.connection]`
/// table of the configuration, read straight into this (every key
/// optional, bounded where it is declared; the README's "Limits").
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WsSettings {
    /// Reconnect when no frame that decodes arrives for this long: junk,
    /// control and undecodable binary frames keep bytes flowing but do not
    /// count (the pipeline marks data in [`SourceHealth::count_data`]).
    /// `watchdog_secs`, 1 s to 1 h.
    #[serde(
        rename = "watchdog_secs",
        deserialize_with = "num::secs::<_, 1_000, 3_600_000>",
        serialize_with = "num::as_secs"
    )]
    pub watchdog: Duration,
    /// How often to ping the server: `ping_secs`, 1 s to 1 h.
    #[serde(
        rename = "ping_secs",
        deserialize_with = "num::secs::<_, 1_000, 3_600_000>",
        serialize_with = "num::as_secs"
    )]
    pub ping_every: Duration,
    /// Larger text frames (after decompression) are dropped and counted
    /// (1 KiB to 16 MiB).
    #[serde(deserialize_with = "num::int::<_, usize, 1024, 16_777_216>")]
    pub max_frame_bytes: usize,
    /// Larger compressed (binary) frames are dropped and counted before
    /// being decompressed (1 KiB to 16 MiB).
    #[serde(deserialize_with = "num::int::<_, usize, 1024, 16_777_216>")]
    pub max_compressed_frame_bytes: usize,
    /// Data frames beyond this many in one second of one connection are
    /// counted and dropped, not processed; 0 = no limit (at most 10
    /// million).
    #[serde(deserialize_with = "num::int::<_, u32, 0, 10_000_000>")]
    pub max_frames_per_sec: u32,
    /// First wait before reconnecting; doubles up to `backoff_max`.
    /// `backoff_min_ms`, 50 ms to 10 min: a dead host is never hammered.
    #[serde(
        rename = "backoff_min_ms",
        deserialize_with = "num::millis::<_, 50, 600_000>",
        serialize_with = "num::as_millis"
    )]
    pub backoff_min: Duration,
    /// `backoff_max_ms`, 50 ms to 1 h (and never below `backoff_min`:
    /// see [`super::backoff::Backoff`]).
    #[serde(
        rename = "backoff_max_ms",
        deserialize_with = "num::millis::<_, 50, 3_600_000>",
        serialize_with = "num::as_millis"
    )]
    pub backoff_max: Duration,
    /// A session that lasted this long resets the backoff:
    /// `healthy_after_secs`, 1 s to 1 day.
    #[serde(
        rename = "healthy_after_secs",
        deserialize_with = "num::secs::<_, 1_000, 86_400_000>",
        serialize_with = "num::as_secs"
    )]
    pub healthy_after: Duration,
    /// `connect_timeout_secs`, 1 s to 5 min.
    #[serde(
        rename = "connect_timeout_secs",
        deserialize_with = "num::secs::<_, 1_000, 300_000>",
        serialize_with = "num::as_secs"
    )]
    pub connect_timeout: Duration,
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            watchdog: Duration::from_secs(30),
            ping_every: Duration::from_secs(20),
            max_frame_bytes: 1 << 20,
            max_compressed_frame_bytes: 512 << 10,
            max_frames_per_sec: 20_000,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(15),
        }
    }
}

/// One data frame for the pipeline, from source number `source`, read
/// from `host` (a sequence number means something only on its host).
#[derive(Debug)]
pub struct Inbound {
    pub source: usize,
    pub host: Arc<str>,
    pub frame: String,
    /// When it arrived (wall clock, whole milliseconds, so a recording's
    /// clock lines hold it exactly and a replay judges it as the live run did).
    pub arrival_us: Micros,
}

/// The arrival clock: wall-clock µs rounded down to the millisecond.
pub fn arrival_now() -> Micros {
    let now = crate::wall::now_us();
    now - now.rem_euclid(1000)
}

/// What a text frame is, to the protocol.
#[derive(Debug, PartialEq)]
pub enum Control {
    /// Data: hand it to the pipeline.
    Data,
    /// A control message worth a log line (Nostr `EOSE`, `NOTICE`).
    Info(String),
    /// The server reports an error but the stream goes on.
    ServerError(String),
    /// The server ended the subscription: reconnect.
    Reconnect(String),
    /// The server says events were lost (a clamped cursor): raise a gap
    /// alert for the source, and go on.
    Gap(String),
}

/// A binary frame, to the protocol.
#[derive(Debug, PartialEq)]
pub enum BinaryFrame {
    /// Decompressed to its text frame.
    Text(String),
    /// Larger than a limit (compressed, or once decompressed): dropped.
    Oversized(String),
    /// Not a frame of this protocol, or undecodable: dropped and counted.
    Unusable(String),
}

/// A handshake the server refused with an HTTP status, as the protocol
/// reads the answer.
#[derive(Debug, PartialEq)]
pub struct Rejection {
    /// For the log line.
    pub reason: String,
    /// Events the refusal makes lost for good, described for a gap alert.
    pub gap: Option<String>,
}

/// A boxed future, for the protocol's asynchronous step before connecting.
pub type Prepare<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

/// The parts of a wire protocol that shape the connection.
pub trait Protocol: Send + 'static {
    /// The URL for the next connection to `host`, resuming after
    /// `processed` (newest event time the pipeline has processed), if any.
    fn connect_url(&mut self, host: &str, processed: Option<Micros>) -> String;
    /// Extra request headers (an `Authorization` token).
    fn headers(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// Messages to send right after connecting.
    fn hello(&mut self, _processed: Option<Micros>) -> Vec<String> {
        Vec::new()
    }
    /// Classifies a text frame; the default treats every frame as data.
    fn control(&mut self, _frame: &str) -> Control {
        Control::Data
    }
    /// Work before connecting to `host` (Jetstream v2 fetches its
    /// compression dictionary); the default does nothing.
    fn prepare<'a>(&'a mut self, _host: &'a str) -> Prepare<'a> {
        Box::pin(std::future::ready(()))
    }
    /// Turns a binary frame into text (Jetstream's compression), within
    /// the limits; the default has no binary frames.
    fn binary(&mut self, bytes: &[u8], _settings: &WsSettings) -> BinaryFrame {
        BinaryFrame::Unusable(format!(
            "binary frame of {} bytes: not part of this protocol",
            bytes.len()
        ))
    }
    /// Reads a refused handshake's status and body (at most a few KiB).
    fn rejected(&mut self, status: u16, body: &[u8]) -> Rejection {
        let body = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        Rejection {
            reason: format!("the server refused with HTTP {status}: {body}"),
            gap: None,
        }
    }
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    Shutdown,
    PipelineGone,
    /// Ended by the server or the network; reconnect.
    Lost(String),
    /// The handshake was answered with a redirect to this `Location`.
    Redirect(String),
}

/// Reads one source until shutdown. Never returns early on errors: every
/// failure is logged, counted and followed by a reconnect after a backoff.
pub async fn run<P: Protocol>(
    hosts: Vec<String>,
    settings: WsSettings,
    mut protocol: P,
    mut link: Link,
) {
    let mut backoff = Backoff::new(&settings);
    let mut host_index = 0usize;
    // A redirect being followed (bounded; same scheme or ws→wss only).
    let mut redirect = Redirect::default();
    loop {
        if *link.shutdown.borrow() || hosts.is_empty() {
            return;
        }
        let host = &hosts[host_index % hosts.len()];
        tokio::select! {
            _ = protocol.prepare(host) => {}
            _ = link.shutdown.changed() => return,
        }
        let url = redirect
            .to
            .take()
            .unwrap_or_else(|| protocol.connect_url(host, link.health.processed()));
        let host: Arc<str> = Arc::from(host.as_str());
        let started = Instant::now();
        let frames_before = link.health.frames();
        let end = session(&host, &url, &settings, &mut protocol, &mut link).await;
        link.health.set_connected(false);
        match after_session(end, &url, &mut redirect, &link.health) {
            After::Stop => return,
            After::Again => continue,
            After::Wait => {}
        }
        if started.elapsed() >= settings.healthy_after && link.health.frames() > frames_before {
            backoff.reset();
        }
        host_index += 1;
        let next_host = &hosts[host_index % hosts.len()];
        if !wait_to_reconnect(&mut backoff, next_host, &mut link).await {
            return;
        }
    }
}

/// What to do once a session has ended.
enum After {
    /// Shut down, or the pipeline is gone.
    Stop,
    /// Connect again at once (a redirect being followed).
    Again,
    /// Wait out the backoff, then connect to the next host.
    Wait,
}

/// Reads how a session on `url` ended: logs and counts it, and says what
/// comes next.
fn after_session(end: End, url: &str, redirect: &mut Redirect, health: &SourceHealth) -> After {
    match end {
        End::Shutdown => {
            tracing::info!(source = %health.name, "source stopped");
            After::Stop
        }
        End::PipelineGone => After::Stop,
        End::Redirect(location) => match redirect.follow(url, &location, health) {
            true => After::Again,
            false => After::Wait,
        },
        End::Lost(reason) => {
            redirect.hops = 0;
            SourceReconnect {
                source: &health.name,
                counters: &health.counters,
                url,
                reason: &reason,
            }
            .emit();
            After::Wait
        }
    }
}

/// Waits the backoff's next delay before connecting to `next_host`; false
/// when shut down meanwhile.
async fn wait_to_reconnect(backoff: &mut Backoff, next_host: &str, link: &mut Link) -> bool {
    let delay = backoff.next_delay();
    tracing::info!(source = %link.health.name, next_host = %next_host, delay_ms = delay.as_millis() as u64, "waiting before reconnecting");
    tokio::select! {
        _ = sleep(delay) => true,
        _ = link.shutdown.changed() => false,
    }
}

/// A handshake redirect being followed: at most [`MAX_REDIRECTS`] in a
/// row, same scheme or an upgrade only.
#[derive(Default)]
struct Redirect {
    to: Option<String>,
    hops: usize,
}

impl Redirect {
    /// Follows `location` (answered for `url`) if allowed: true when the
    /// next connection should go there at once; otherwise counts a
    /// reconnect.
    fn follow(&mut self, url: &str, location: &str, health: &SourceHealth) -> bool {
        let target = reqwest::Url::parse(url)
            .and_then(|from| Ok((from.join(location)?, from)))
            .ok()
            .filter(|(to, from)| redirect_allowed(from, to));
        match target {
            Some((to, _)) if self.hops < MAX_REDIRECTS => {
                self.hops += 1;
                tracing::info!(source = %health.name, from = %url, to = %to, "following a redirect");
                self.to = Some(to.to_string());
                true
            }
            _ => {
                let hops = std::mem::take(&mut self.hops);
                let counters = &health.counters;
                RedirectRefused {
                    source: &health.name,
                    counters,
                    url,
                    location,
                    hops,
                }
                .emit();
                false
            }
        }
    }
}

/// When the watchdog should look again, or `None` if no frame has decoded
/// for a whole `watchdog` period of this connection (a stall).
fn data_deadline(
    health: &SourceHealth,
    connected_at: Micros,
    watchdog: Duration,
) -> Option<Instant> {
    let last = health.last_data_wall()?.max(connected_at);
    let since = Duration::from_micros((health.now() - last).max(0) as u64);
    (since < watchdog).then(|| Instant::now() + (watchdog - since))
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One connection: handshake, subscription, then frames until it ends.
async fn session<P: Protocol>(
    host: &Arc<str>,
    url: &str,
    settings: &WsSettings,
    protocol: &mut P,
    link: &mut Link,
) -> End {
    let ws = match handshake(url, settings, protocol, link).await {
        Ok(ws) => ws,
        Err(end) => return end,
    };
    let (mut write, read) = ws.split();
    for hello in protocol.hello(link.health.processed()) {
        if let Err(e) = write.send(Message::text(hello)).await {
            return End::Lost(format!("cannot send subscription: {e}"));
        }
    }
    link.health.set_connected(true);
    tracing::info!(source = %link.health.name, %url, "connected");
    let mut reader = Reader {
        host,
        settings,
        protocol,
        link,
        limiter: RateLimit::new(settings.max_frames_per_sec),
    };
    reader.read(write, read).await
}

/// Opens the websocket: the request with the protocol's headers, the
/// connection bounded in time, a refusal read by the protocol.
async fn handshake<P: Protocol>(
    url: &str,
    settings: &WsSettings,
    protocol: &mut P,
    link: &mut Link,
) -> Result<Socket, End> {
    let mut request = url
        .into_client_request()
        .map_err(|e| End::Lost(format!("bad URL: {e}")))?;
    for (name, value) in protocol.headers() {
        let value = HeaderValue::from_str(&value)
            .map_err(|_| End::Lost(format!("header {name} has characters HTTP does not allow")))?;
        request.headers_mut().insert(name, value);
    }
    // tungstenite's own limit is generous: frames between our limit and
    // this one are dropped and counted without losing the connection.
    let hard_limit = settings.max_frame_bytes.saturating_mul(16).max(16 << 20);
    let config = WebSocketConfig::default()
        .max_message_size(Some(hard_limit))
        .max_frame_size(Some(hard_limit));
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
/// follow, or a refusal the protocol reads (perhaps reporting lost events).
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
            Some(location) => End::Redirect(location.to_owned()),
            None => End::Lost(format!("HTTP {} without a Location", response.status())),
        };
    }
    let body = response.body().as_deref().unwrap_or_default();
    let rejection = protocol.rejected(response.status().as_u16(), body);
    if let Some(gap) = rejection.gap {
        tracing::warn!(source = %health.name, %gap, "events lost");
        health.report_gap(gap);
    }
    End::Lost(rejection.reason)
}

/// The reading half of one connection.
struct Reader<'a, P> {
    host: &'a Arc<str>,
    settings: &'a WsSettings,
    protocol: &'a mut P,
    link: &'a mut Link,
    limiter: RateLimit,
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
        let connected_at = self.link.health.now();
        let mut deadline = Instant::now() + self.settings.watchdog;
        loop {
            let message = tokio::select! {
                _ = self.link.shutdown.changed() => {
                    let _ = write.send(Message::Close(None)).await;
                    return End::Shutdown;
                }
                _ = ping.tick() => {
                    if let Err(e) = write.send(Message::Ping(Vec::new().into())).await {
                        return End::Lost(format!("ping failed: {e}"));
                    }
                    continue;
                }
                _ = sleep_until(deadline) => {
                    // Data is what the pipeline managed to decode, not bytes.
                    match data_deadline(&self.link.health, connected_at, self.settings.watchdog) {
                        Some(next) => deadline = next,
                        None => {
                            WatchdogStall { counters: &self.link.health.counters }.emit();
                            return End::Lost(format!("no data for {:?} (watchdog)", self.settings.watchdog));
                        }
                    }
                    continue;
                }
                message = read.next() => message,
            };
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
                    |f| format!("code {}: {}", u16::from(f.code), f.reason),
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

    /// A text frame: control messages acted on, data sent to the pipeline.
    /// `Some` when the connection ends.
    async fn deliver(&mut self, text: String) -> Option<End> {
        let health = &self.link.health;
        match self.protocol.control(&text) {
            Control::Data => {}
            Control::Info(info) => {
                tracing::info!(source = %health.name, %info, "server message");
                return None;
            }
            Control::ServerError(error) => {
                let (source, counters) = (&health.name, &health.counters);
                ServerError {
                    source,
                    counters,
                    error: &error,
                }
                .emit();
                return None;
            }
            Control::Gap(gap) => {
                tracing::warn!(source = %health.name, %gap, "events lost");
                health.report_gap(gap);
                return None;
            }
            Control::Reconnect(reason) => {
                return Some(End::Lost(format!(
                    "server ended the subscription: {reason}"
                )));
            }
        }
        let inbound = Inbound {
            source: self.link.index,
            host: Arc::clone(self.host),
            frame: text,
            arrival_us: arrival_now(),
        };
        tokio::select! {
            _ = self.link.shutdown.changed() => Some(End::Shutdown),
            sent = self.link.frames.send(inbound) => sent.is_err().then_some(End::PipelineGone),
        }
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
