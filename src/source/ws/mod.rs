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

mod session;
mod settings;

use std::sync::Arc;

use tokio::time::{Instant, sleep};

use super::SourceError;
use super::backoff::Backoff;
use super::health::SourceHealth;
use super::kind::Link;
use super::url::{MAX_REDIRECTS, SourceUrl, redirect_allowed};
use crate::Micros;
use crate::events::{InternalEvent, RedirectRefused, SourceReconnect, SourceRefused};
use session::session;
pub use settings::WsSettings;

/// How many `watchdog_secs` without data drop a connection of a quiet
/// stream ([`Protocol::quiet`]) that still answers pings: 10 minutes by
/// default.
pub const QUIET_DATA_WATCHDOG: u32 = 20;

/// One data frame for the pipeline, from source number `source`, read
/// from `host` (a sequence number means something only on its host).
#[derive(Debug)]
pub struct Inbound {
    pub source: usize,
    pub host: SourceUrl,
    pub frame: String,
    /// When it arrived (wall clock, whole milliseconds, so a recording's
    /// clock lines hold it exactly and a replay judges it as the live run did).
    pub arrival_us: Micros,
    /// While the subscription is still sending stored events (Nostr,
    /// before `EOSE`): the start of the time range it asked for. See
    /// [`Protocol::stored_since`].
    pub stored_since: Option<Micros>,
    /// The frame's share of the [`FrameBudget`], given back when the
    /// frame is dropped (processed).
    pub held: tokio::sync::OwnedSemaphorePermit,
}

/// Bytes of frames in flight between the sources and the pipeline, at
/// most, by default: 64 MiB.
pub const DEFAULT_BUDGET_BYTES: usize = 64 << 20;

/// The bytes of frames the sources may have in flight to the pipeline,
/// shared by all of them. The channel is bounded by frames (4096), and
/// 4096 frames of the 1 MiB frame limit (16 MiB configurable) were
/// gigabytes held while the pipeline waited on a slow disk: a source now
/// waits for room in bytes too, and reads more slowly.
#[derive(Debug, Clone)]
pub struct FrameBudget {
    bytes: Arc<tokio::sync::Semaphore>,
    total: u32,
}

impl FrameBudget {
    pub fn new(bytes: usize) -> Self {
        let total = u32::try_from(bytes).unwrap_or(u32::MAX);
        FrameBudget {
            bytes: Arc::new(tokio::sync::Semaphore::new(total as usize)),
            total,
        }
    }

    /// Waits until a frame of `len` bytes fits (one larger than the whole
    /// budget waits for all of it); `None` only if the budget was closed,
    /// which nothing does.
    pub async fn reserve(&self, len: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let wanted = u32::try_from(len)
            .unwrap_or(u32::MAX)
            .clamp(1, self.total.max(1));
        Arc::clone(&self.bytes)
            .acquire_many_owned(wanted)
            .await
            .ok()
    }

    /// Bytes in flight now, with those set aside for a frame waiting for
    /// the rest.
    pub fn in_flight(&self) -> usize {
        (self.total as usize).saturating_sub(self.bytes.available_permits())
    }
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
    /// The server refuses this client for good (a Nostr relay's `CLOSED`
    /// with `auth-required:`, `restricted:` or `blocked:`): asking again at
    /// once changes nothing. Reconnect after the longest backoff, with one
    /// error line for the whole run of refusals.
    Refused(String),
    /// A message for a subscription this client did not open (a relay's
    /// `EVENT` or `CLOSED` under another id): counted and ignored.
    Foreign,
    /// The server says events were lost (a clamped cursor): raise a gap
    /// alert for the source, and go on.
    Gap(String),
    /// Data, which shows that events before it were lost (the first event
    /// after a cursor a server clamped without saying so): raise a gap
    /// alert, and hand the frame to the pipeline.
    DataAfterGap(String),
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

/// A boxed future, for the protocol's asynchronous step before connecting:
/// an error is a failed connection to that host.
pub type Prepare<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SourceError>> + Send + 'a>>;

/// The parts of a wire protocol that shape the connection. Its URLs are
/// [`SourceUrl`]s: a protocol's log line or error that names one shows it
/// masked, and only building a URL or a request takes its text.
pub trait Protocol: Send + 'static {
    /// The URL for the next connection to `host`, resuming after
    /// `processed` (newest event time the pipeline has processed), if any.
    fn connect_url(&mut self, host: &SourceUrl, processed: Option<Micros>) -> SourceUrl;
    /// The next connection goes to a redirect's target `to` instead of the
    /// URL [`Protocol::connect_url`] gave: a protocol keeping state per
    /// server (Jetstream v2's sequence numbers mean something only to the
    /// server that issued them) must not file what the target sends under
    /// the host that redirected. The default keeps nothing per server.
    fn redirected(&mut self, _to: &SourceUrl) {}
    /// Extra request headers (an `Authorization` token).
    fn headers(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// Messages to send right after connecting.
    fn hello(&mut self, _processed: Option<Micros>) -> Vec<String> {
        Vec::new()
    }
    /// While the subscription is sending stored events (history it asked
    /// for, as a Nostr relay does before `EOSE`), the start of the range
    /// asked for: those events did not happen at their arrival, and the
    /// decoder may place them between this and the arrival. Asked for each
    /// frame with its arrival, so a protocol can end the stored phase by
    /// time. `None` (the default): every event is live.
    fn stored_since(&mut self, _arrival_us: Micros) -> Option<Micros> {
        None
    }
    /// Whether the stream may be quiet for minutes while healthy (a small
    /// Mastodon instance, `public:local`, a Nostr relay): then a connection
    /// is alive while the server answers pings, and only
    /// [`QUIET_DATA_WATCHDOG`] times `watchdog_secs` without data (a server
    /// sending only junk) drops it. The default (Jetstream, never quiet):
    /// `watchdog_secs` without data drops it.
    fn quiet(&self) -> bool {
        false
    }
    /// Classifies a text frame; the default treats every frame as data.
    fn control(&mut self, _frame: &str) -> Control {
        Control::Data
    }
    /// Work before connecting to `host` (Jetstream v2 fetches its
    /// compression dictionary, Mastodon asks an instance for its streaming
    /// host); an error counts as a failed connection, and the next host is
    /// tried after the backoff. The default does nothing.
    fn prepare<'a>(&'a mut self, _host: &'a SourceUrl) -> Prepare<'a> {
        Box::pin(std::future::ready(Ok(())))
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
        let body = crate::text::server_text(&String::from_utf8_lossy(body));
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
    /// The server refuses this client for good: reconnect after the
    /// longest backoff.
    Refused(String),
    /// The handshake was answered with a redirect to this `Location`.
    Redirect(SourceUrl),
}

/// Reads one source until shutdown. Never returns early on errors: every
/// failure is logged, counted and followed by a reconnect after a backoff.
pub async fn run<P: Protocol>(
    hosts: Vec<SourceUrl>,
    settings: WsSettings,
    mut protocol: P,
    mut link: Link,
) {
    let mut backoff = Backoff::new(&settings);
    let mut host_index = 0usize;
    // A redirect being followed (bounded; same scheme or ws→wss only).
    let mut redirect = Redirect::default();
    // Refusals in a row: the first is an error line, the rest only counted.
    let mut refusals = 0u64;
    loop {
        if *link.shutdown.borrow() || hosts.is_empty() {
            return;
        }
        let host = &hosts[host_index % hosts.len()];
        // A redirect is followed by the attempt right after it, or never: a
        // failed preparation must not leave it for the next host's attempt.
        let redirected = redirect.to.take();
        let prepared = tokio::select! {
            prepared = protocol.prepare(host) => prepared,
            _ = link.shutdown.changed() => return,
        };
        let started = Instant::now();
        let frames_before = link.health.frames();
        let (url, end) = match prepared {
            // One host that cannot be prepared (an instance that does not
            // answer) is one failed connection: the next host is tried.
            Err(error) => (host.clone(), End::Lost(error.to_string())),
            Ok(()) => {
                // Credentials go only where the configuration sends them: a
                // redirect to another origin gets none (as browsers and reqwest).
                let (url, credentials) = match redirected {
                    Some(to) => {
                        protocol.redirected(&to);
                        (to, redirect.same_origin)
                    }
                    None => (protocol.connect_url(host, link.health.processed()), true),
                };
                let end =
                    session(host, &url, credentials, &settings, &mut protocol, &mut link).await;
                (url, end)
            }
        };
        link.health.set_connected(false);
        let longest = match after_session(end, &url, &mut redirect, &mut refusals, &link.health) {
            After::Stop => return,
            After::Again => continue,
            After::Wait => false,
            After::WaitLongest => true,
        };
        if started.elapsed() >= settings.healthy_after && link.health.frames() > frames_before {
            backoff.reset();
        }
        host_index += 1;
        let next_host = &hosts[host_index % hosts.len()];
        if !wait_to_reconnect(&mut backoff, longest, next_host, &mut link).await {
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
    /// Wait the longest backoff (a refusal for good), then connect.
    WaitLongest,
}

/// Reads how a session on `url` ended: logs and counts it, and says what
/// comes next.
fn after_session(
    end: End,
    url: &SourceUrl,
    redirect: &mut Redirect,
    refusals: &mut u64,
    health: &SourceHealth,
) -> After {
    if !matches!(end, End::Refused(_)) {
        *refusals = 0;
    }
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
        End::Refused(reason) => {
            redirect.hops = 0;
            *refusals += 1;
            health.set_last_failure(&reason);
            SourceRefused {
                source: &health.name,
                counters: &health.counters,
                url,
                reason: &reason,
                in_a_row: *refusals,
            }
            .emit();
            After::WaitLongest
        }
        End::Lost(reason) => {
            redirect.hops = 0;
            health.set_last_failure(&reason);
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

/// Waits the backoff's next delay (its longest when `longest`) before
/// connecting to `next_host`; false when shut down meanwhile.
async fn wait_to_reconnect(
    backoff: &mut Backoff,
    longest: bool,
    next_host: &SourceUrl,
    link: &mut Link,
) -> bool {
    let delay = match longest {
        true => backoff.longest(),
        false => backoff.next_delay(),
    };
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
    to: Option<SourceUrl>,
    hops: usize,
    /// Every hop so far kept the origin (scheme, host, port) it came from,
    /// so `to` may be sent the source's credentials.
    same_origin: bool,
}

impl Redirect {
    /// Follows `location` (answered for `url`) if allowed: true when the
    /// next connection should go there at once; otherwise counts a
    /// reconnect.
    fn follow(&mut self, url: &SourceUrl, location: &SourceUrl, health: &SourceHealth) -> bool {
        let target = reqwest::Url::parse(url.secret())
            .and_then(|from| Ok((from.join(location.secret())?, from)))
            .ok()
            .filter(|(to, from)| redirect_allowed(from, to));
        match target {
            Some((to, from)) if self.hops < MAX_REDIRECTS => {
                self.same_origin =
                    (self.hops == 0 || self.same_origin) && to.origin() == from.origin();
                self.hops += 1;
                tracing::info!(
                    source = %health.name,
                    from = %url,
                    to = %SourceUrl::from(&to),
                    "following a redirect"
                );
                self.to = Some(SourceUrl::from(&to));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Which hops are followed, and whether the source's credentials may go
    /// to where the chain ends.
    #[test]
    fn credentials_follow_a_redirect_only_within_its_origin() {
        let health = SourceHealth::new("t", None);
        /// Hops as (from, `Location`).
        type Hops<'a> = &'a [(&'a str, &'a str)];
        // (hops, followed, may send credentials)
        let cases: [(Hops, bool, bool); 7] = [
            (&[("wss://a.example/s", "/elsewhere")], true, true),
            (
                &[("wss://a.example/s", "wss://a.example:443/t")],
                true,
                true,
            ),
            (&[("wss://a.example/s", "wss://b.example/s")], true, false),
            (
                &[("ws://a.example/s", "ws://a.example:8080/s")],
                true,
                false,
            ),
            // An upgrade to TLS is followed, but it is another origin.
            (&[("ws://a.example/s", "wss://a.example/s")], true, false),
            // Away and back: the hop that left decides.
            (
                &[
                    ("wss://a.example/s", "wss://b.example/s"),
                    ("wss://b.example/s", "wss://a.example/s"),
                ],
                true,
                false,
            ),
            (&[("wss://a.example/s", "ws://a.example/s")], false, false),
        ];
        for (hops, followed, credentials) in cases {
            let mut redirect = Redirect::default();
            let mut last = false;
            for (from, location) in hops {
                last = redirect.follow(&(*from).into(), &(*location).into(), &health);
            }
            assert_eq!(last, followed, "{hops:?}");
            if followed {
                assert_eq!(redirect.same_origin, credentials, "{hops:?}");
            }
        }
    }

    /// Every text frame is data, from the one URL.
    struct Plain(SourceUrl);

    impl Protocol for Plain {
        fn connect_url(&mut self, _host: &SourceUrl, _processed: Option<Micros>) -> SourceUrl {
            self.0.clone()
        }
    }

    /// Connects to each host as given; its second preparation fails.
    struct FailsSecondPreparation(usize);

    impl Protocol for FailsSecondPreparation {
        fn connect_url(&mut self, host: &SourceUrl, _processed: Option<Micros>) -> SourceUrl {
            host.clone()
        }
        fn prepare<'a>(&'a mut self, _host: &'a SourceUrl) -> Prepare<'a> {
            self.0 += 1;
            let result = if self.0 == 2 {
                Err(SourceError::NoData(std::time::Duration::ZERO))
            } else {
                Ok(())
            };
            Box::pin(std::future::ready(result))
        }
    }

    /// A redirect is followed by the attempt right after it or not at all:
    /// when that attempt's preparation fails, the next host is connected to
    /// itself, not to the first host's redirect target.
    #[tokio::test]
    async fn a_redirect_does_not_outlive_a_failed_preparation() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
        let (first, target, second) = (
            bind().await.expect("bind"),
            bind().await.expect("bind"),
            bind().await.expect("bind"),
        );
        let url = |l: &tokio::net::TcpListener| format!("ws://{}/", l.local_addr().expect("addr"));
        let (first_url, target_url, second_url) = (url(&first), url(&target), url(&second));
        let location = target_url.clone();
        let redirecting = tokio::spawn(async move {
            while let Ok((mut stream, _)) = first.accept().await {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {location}\r\ncontent-length: 0\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        let targeted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&targeted);
        let target_server = tokio::spawn(async move {
            while target.accept().await.is_ok() {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let (reached, mut reached_rx) = tokio::sync::mpsc::channel(1);
        let second_server = tokio::spawn(async move {
            let (stream, _) = second.accept().await.expect("accept");
            let _ws = tokio_tungstenite::accept_async(stream)
                .await
                .expect("handshake");
            let _ = reached.send(()).await;
            std::future::pending::<()>().await;
        });
        let (frames, _queue) = tokio::sync::mpsc::channel(16);
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let tls = crate::tls::client_config().expect("tls");
        let link = Link::new(
            0,
            tls,
            frames,
            Arc::new(SourceHealth::new("t", None)),
            shutdown,
        );
        let settings = WsSettings {
            backoff_min: std::time::Duration::from_millis(10),
            ..WsSettings::default()
        };
        let reader = tokio::spawn(run(
            vec![first_url.into(), second_url.into()],
            settings,
            FailsSecondPreparation(0),
            link,
        ));
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), reached_rx.recv()).await;
        stop.send(true).expect("reader listens");
        let _ = reader.await;
        for server in [redirecting, target_server, second_server] {
            server.abort();
        }
        assert!(got.is_ok(), "the second host was never connected to");
        assert_eq!(
            targeted.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "the first host's redirect target was connected to"
        );
    }

    /// A server that sends pings and never reads: the pongs queued for it
    /// are bounded, our own ping gives up, and the shutdown signal is
    /// heard. A write without a bound waited for ever, and with it the
    /// watchdog and the shutdown.
    #[tokio::test]
    async fn a_server_that_never_reads_cannot_hold_the_source() {
        use std::time::Duration;
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = SourceUrl::from(format!("ws://{}/", listener.local_addr().expect("addr")));
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let mut ws = tokio_tungstenite::accept_async(stream)
                .await
                .expect("handshake");
            // Unmasked ping frames of 125 bytes, written straight to the
            // socket; nothing is ever read back.
            let mut ping = vec![0x89u8, 125];
            ping.extend([b'p'; 125]);
            let burst = ping.repeat(1000);
            loop {
                if ws.get_mut().write_all(&burst).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let (frames, _queue) = tokio::sync::mpsc::channel(16);
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let tls = crate::tls::client_config().expect("tls");
        let health = Arc::new(SourceHealth::new("t", None));
        let link = Link::new(0, tls, frames, health, shutdown);
        let settings = WsSettings {
            ping_every: Duration::from_secs(2),
            watchdog: Duration::from_secs(60),
            ..WsSettings::default()
        };
        let reader = tokio::spawn(run(vec![url.clone()], settings, Plain(url), link));
        // Long enough for the socket's buffers to fill and a ping to be due.
        tokio::time::sleep(Duration::from_secs(5)).await;
        stop.send(true).expect("reader listens");
        let ended = tokio::time::timeout(Duration::from_secs(5), reader).await;
        server.abort();
        assert!(ended.is_ok(), "the source never heard the shutdown");
    }

    /// A server sending forty frames of 100 kB to a pipeline that reads
    /// none: the frames in flight stay within the byte budget (2 of them
    /// in 250 kB), where the channel alone would hold all forty.
    #[tokio::test]
    async fn frames_in_flight_stay_within_the_byte_budget() {
        use futures_util::SinkExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = SourceUrl::from(format!("ws://{}/", listener.local_addr().expect("addr")));
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let mut ws = tokio_tungstenite::accept_async(stream)
                .await
                .expect("handshake");
            let frame = "x".repeat(100_000);
            for _ in 0..40 {
                let message = tokio_tungstenite::tungstenite::Message::text(frame.clone());
                if ws.send(message).await.is_err() {
                    return;
                }
            }
            std::future::pending::<()>().await;
        });
        let (frames, mut queue) = tokio::sync::mpsc::channel(4096);
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let tls = crate::tls::client_config().expect("tls");
        let health = Arc::new(SourceHealth::new("t", None));
        let mut link = Link::new(0, tls, frames, health, shutdown);
        link.budget = FrameBudget::new(250_000);
        let budget = link.budget.clone();
        let reader = tokio::spawn(run(
            vec![url.clone()],
            WsSettings::default(),
            Plain(url),
            link,
        ));
        // Wait until the budget is full (or give up after 10 s).
        for _ in 0..200 {
            if queue.len() >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(queue.len(), 2, "two frames of 100 kB in a 250 kB budget");
        // The third frame waits with the last 50 kB set aside for it.
        assert_eq!(budget.in_flight(), 250_000);
        // Reading one frees its share: one more comes in.
        let first = queue.recv().await.expect("a frame");
        assert_eq!(first.frame.len(), 100_000);
        drop(first);
        for _ in 0..200 {
            if queue.len() >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(queue.len(), 2);
        stop.send(true).expect("reader listens");
        reader.await.expect("reader ends");
        server.abort();
    }
}
