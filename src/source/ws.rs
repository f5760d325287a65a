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

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

use super::health::SourceHealth;
use crate::Micros;

/// Timing and size limits of a live source.
#[derive(Debug, Clone, PartialEq)]
pub struct WsSettings {
    /// Reconnect when no frame that decodes arrives for this long: junk,
    /// control and undecodable binary frames keep bytes flowing but do not
    /// count (the pipeline marks data in [`SourceHealth::count_data`]).
    pub watchdog: Duration,
    /// How often to ping the server.
    pub ping_every: Duration,
    /// Larger text frames (after decompression) are dropped and counted.
    pub max_frame_bytes: usize,
    /// Larger compressed (binary) frames are dropped and counted before
    /// being decompressed.
    pub max_compressed_frame_bytes: usize,
    /// Data frames beyond this many in one second of one connection are
    /// counted and dropped, not processed; 0 = no limit.
    pub max_frames_per_sec: u32,
    /// First wait before reconnecting; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A session that lasted this long resets the backoff.
    pub healthy_after: Duration,
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
    let now = super::health::wall_now();
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
#[allow(clippy::too_many_arguments)]
pub async fn run<P: Protocol>(
    source: usize,
    hosts: Vec<String>,
    settings: WsSettings,
    mut protocol: P,
    tls: Arc<rustls::ClientConfig>,
    tx: mpsc::Sender<Inbound>,
    health: Arc<SourceHealth>,
    mut shutdown: watch::Receiver<bool>,
) {
    let backoff_builder = ExponentialBuilder::default()
        .with_min_delay(settings.backoff_min)
        .with_max_delay(settings.backoff_max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    let mut backoff = backoff_builder.build();
    let mut host_index = 0usize;
    let name = health.name.clone();
    // A redirect being followed (bounded; same scheme or ws→wss only).
    let (mut redirect_to, mut hops) = (None::<String>, 0usize);
    loop {
        if *shutdown.borrow() || hosts.is_empty() {
            return;
        }
        let host = &hosts[host_index % hosts.len()];
        tokio::select! {
            _ = protocol.prepare(host) => {}
            _ = shutdown.changed() => return,
        }
        let url = redirect_to
            .take()
            .unwrap_or_else(|| protocol.connect_url(host, health.processed()));
        let host: Arc<str> = Arc::from(host.as_str());
        let started = Instant::now();
        let frames_before = health.frames();
        let end = session(
            (source, &host),
            &url,
            &settings,
            &mut protocol,
            &tls,
            &tx,
            &health,
            &mut shutdown,
        )
        .await;
        health.set_connected(false);
        if !matches!(end, End::Redirect(_)) {
            hops = 0;
        }
        match end {
            End::Shutdown => {
                tracing::info!(source = %name, "source stopped");
                return;
            }
            End::PipelineGone => return,
            End::Redirect(location) => {
                let target = reqwest::Url::parse(&url)
                    .and_then(|from| Ok((from.join(&location)?, from)))
                    .ok()
                    .filter(|(to, from)| super::mastodon::redirect_allowed(from, to));
                match target {
                    Some((to, _)) if hops < super::mastodon::MAX_REDIRECTS => {
                        hops += 1;
                        tracing::info!(source = %name, from = %url, to = %to, "following a redirect");
                        redirect_to = Some(to.to_string());
                        continue;
                    }
                    _ => {
                        hops = 0;
                        health.count_reconnect();
                        tracing::warn!(source = %name, %url, %location, hops, "redirect refused (another scheme, a downgrade, or too many); reconnecting");
                    }
                }
            }
            End::Lost(reason) => {
                health.count_reconnect();
                tracing::warn!(source = %name, %url, %reason, reconnects = health.reconnects(), "connection lost; reconnecting");
            }
        }
        if started.elapsed() >= settings.healthy_after && health.frames() > frames_before {
            backoff = backoff_builder.build();
        }
        host_index += 1;
        let delay = backoff
            .next()
            .unwrap_or(settings.backoff_max)
            .max(settings.backoff_min / 2);
        tracing::info!(source = %name, next_host = %hosts[host_index % hosts.len()], delay_ms = delay.as_millis() as u64, "waiting before reconnecting");
        tokio::select! {
            _ = sleep(delay) => {}
            _ = shutdown.changed() => return,
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
    let since = Duration::from_micros((super::health::wall_now() - last).max(0) as u64);
    (since < watchdog).then(|| Instant::now() + (watchdog - since))
}

#[allow(clippy::too_many_arguments)]
async fn session<P: Protocol>(
    (source, host): (usize, &Arc<str>),
    url: &str,
    settings: &WsSettings,
    protocol: &mut P,
    tls: &Arc<rustls::ClientConfig>,
    tx: &mpsc::Sender<Inbound>,
    health: &SourceHealth,
    shutdown: &mut watch::Receiver<bool>,
) -> End {
    let mut request = match url.into_client_request() {
        Ok(request) => request,
        Err(e) => return End::Lost(format!("bad URL: {e}")),
    };
    for (name, value) in protocol.headers() {
        match HeaderValue::from_str(&value) {
            Ok(value) => {
                request.headers_mut().insert(name, value);
            }
            Err(_) => {
                return End::Lost(format!("header {name} has characters HTTP does not allow"));
            }
        }
    }
    // tungstenite's own limit is generous: frames between our limit and
    // this one are dropped and counted without losing the connection.
    let hard_limit = settings.max_frame_bytes.saturating_mul(16).max(16 << 20);
    let config = WebSocketConfig::default()
        .max_message_size(Some(hard_limit))
        .max_frame_size(Some(hard_limit));
    let connect = connect_async_tls_with_config(
        request,
        Some(config),
        true,
        Some(Connector::Rustls(Arc::clone(tls))),
    );
    let ws = tokio::select! {
        _ = shutdown.changed() => return End::Shutdown,
        result = timeout(settings.connect_timeout, connect) => match result {
            Err(_) => return End::Lost(format!("connect timed out after {:?}", settings.connect_timeout)),
            Ok(Err(tungstenite::Error::Http(response))) if response.status().is_redirection() => {
                return match response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                {
                    Some(location) => End::Redirect(location.to_owned()),
                    None => End::Lost(format!("HTTP {} without a Location", response.status())),
                };
            }
            Ok(Err(tungstenite::Error::Http(response))) => {
                let body = response.body().as_deref().unwrap_or_default();
                let rejection = protocol.rejected(response.status().as_u16(), body);
                if let Some(gap) = rejection.gap {
                    tracing::warn!(source = %health.name, %gap, "events lost");
                    health.report_gap(gap);
                }
                return End::Lost(rejection.reason);
            }
            Ok(Err(e)) => return End::Lost(format!("cannot connect: {e}")),
            Ok(Ok((ws, _response))) => ws,
        },
    };
    let (mut write, mut read) = ws.split();
    for hello in protocol.hello(health.processed()) {
        if let Err(e) = write.send(Message::text(hello)).await {
            return End::Lost(format!("cannot send subscription: {e}"));
        }
    }
    health.set_connected(true);
    tracing::info!(source = %health.name, %url, "connected");
    let mut ping = tokio::time::interval(settings.ping_every);
    ping.tick().await;
    let connected_at = super::health::wall_now();
    let mut deadline = Instant::now() + settings.watchdog;
    let mut limiter = RateLimit::new(settings.max_frames_per_sec);
    loop {
        let message = tokio::select! {
            _ = shutdown.changed() => {
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
                match data_deadline(health, connected_at, settings.watchdog) {
                    Some(next) => {
                        deadline = next;
                        continue;
                    }
                    None => {
                        health.count_stall();
                        return End::Lost(format!("no data for {:?} (watchdog)", settings.watchdog));
                    }
                }
            }
            message = read.next() => message,
        };
        let text = match message {
            None => return End::Lost("the server closed the stream".into()),
            Some(Err(tungstenite::Error::Capacity(e))) => {
                health.count_oversized();
                return End::Lost(format!("frame too large for the connection: {e}"));
            }
            Some(Err(e)) => return End::Lost(format!("read error: {e}")),
            Some(Ok(Message::Text(text))) => {
                health.count_frame();
                if limiter.over() {
                    health.count_rate_dropped();
                    continue;
                }
                if text.len() > settings.max_frame_bytes {
                    health.count_oversized();
                    tracing::warn!(source = %health.name, bytes = text.len(), limit = settings.max_frame_bytes, oversized = health.oversized(), "oversized frame dropped");
                    continue;
                }
                text.as_str().to_owned()
            }
            Some(Ok(Message::Binary(bytes))) => {
                health.count_frame();
                if limiter.over() {
                    health.count_rate_dropped();
                    continue;
                }
                match protocol.binary(&bytes, settings) {
                    BinaryFrame::Text(text) => text,
                    BinaryFrame::Oversized(why) => {
                        health.count_oversized();
                        tracing::warn!(source = %health.name, bytes = bytes.len(), %why, oversized = health.oversized(), "oversized frame dropped");
                        continue;
                    }
                    BinaryFrame::Unusable(why) => {
                        health.count_binary();
                        tracing::warn!(source = %health.name, bytes = bytes.len(), %why, binary = health.binary(), "binary frame dropped");
                        continue;
                    }
                }
            }
            Some(Ok(Message::Close(frame))) => {
                let reason = frame.map_or_else(
                    || "no reason given".to_owned(),
                    |f| format!("code {}: {}", u16::from(f.code), f.reason),
                );
                return End::Lost(format!("the server closed the connection ({reason})"));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
        };
        match protocol.control(&text) {
            Control::Data => {}
            Control::Info(info) => {
                tracing::info!(source = %health.name, %info, "server message");
                continue;
            }
            Control::ServerError(error) => {
                health.count_server_error();
                tracing::warn!(source = %health.name, %error, "server reported an error");
                continue;
            }
            Control::Gap(gap) => {
                tracing::warn!(source = %health.name, %gap, "events lost");
                health.report_gap(gap);
                continue;
            }
            Control::Reconnect(reason) => {
                return End::Lost(format!("server ended the subscription: {reason}"));
            }
        }
        let inbound = Inbound {
            source,
            host: Arc::clone(host),
            frame: text,
            arrival_us: arrival_now(),
        };
        tokio::select! {
            _ = shutdown.changed() => return End::Shutdown,
            sent = tx.send(inbound) => if sent.is_err() { return End::PipelineGone },
        }
    }
}

/// Counts one connection's data frames per second of wall time.
struct RateLimit {
    limit: u32,
    window: Instant,
    count: u32,
}

impl RateLimit {
    fn new(limit: u32) -> Self {
        RateLimit {
            limit,
            window: Instant::now(),
            count: 0,
        }
    }

    /// Counts a frame; true when it is over this second's allowance.
    fn over(&mut self) -> bool {
        if self.limit == 0 {
            return false;
        }
        let now = Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count > self.limit
    }
}
