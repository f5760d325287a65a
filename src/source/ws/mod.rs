//! Live websocket sources that survive: one task per source, reconnecting
//! for ever with capped, jittered exponential backoff (its longest after
//! a refusal for good, and no sooner than a host's `Retry-After`),
//! failing over across the source's hosts, and reconnecting when the
//! stream stalls.
//!
//! The wire protocol (Jetstream, Mastodon, Nostr) plugs in through
//! [`Protocol`]: work before connecting (Jetstream v2 fetches its
//! dictionary), the URL to connect to (Jetstream puts its cursor there),
//! the messages to send once connected (Nostr's `REQ`), how a binary frame
//! becomes text (Jetstream's compression, bounded), how a refused handshake
//! reads (Jetstream v2's `CursorTooOld`), what to forget when a connection
//! fails (Mastodon's discovered streaming host), and which text frames are
//! control messages rather than data. Data frames go to the pipeline as text, over a
//! bounded channel: a slow pipeline slows the reading instead of growing
//! memory. Every frame is bounded in size (compressed and decompressed) and
//! each connection's data frames per second are capped; what is over a
//! limit is counted and dropped.

mod handshake;
mod holds;
mod inbound;
mod session;
mod settings;

use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use super::SourceError;
use super::backoff::Backoff;
use super::health::SourceHealth;
use super::kind::Link;
use super::url::{MAX_REDIRECTS, SourceUrl, redirect_allowed, server_of};
use crate::Micros;
use crate::events::{InternalEvent, RedirectRefused, SourceReconnect, SourceRefused};
use holds::Holds;
pub use inbound::{DEFAULT_BUDGET_BYTES, FrameBudget, Inbound, arrival_now};
use inbound::{Handed, hand_over};
use session::session;
pub use settings::WsSettings;

/// How many `watchdog_secs` without data drop a connection of a quiet
/// stream ([`Protocol::quiet`]) that still answers pings: 10 minutes by
/// default.
pub const QUIET_DATA_WATCHDOG: u32 = 20;

/// How often a connection to a source dated by arrival says that time
/// passed ([`Ticks`]): buckets close at most this long after their end
/// plus the lateness, however quiet the stream.
pub const TICK_EVERY: Duration = Duration::from_secs(2);

/// When a connection tells the pipeline that time passed with nothing
/// received. Buckets close when a watermark passes them, and the
/// watermark of a source dated by arrival (Mastodon, Nostr) moved only
/// with its posts: a surge followed by quiet was not alerted until the
/// next post came (80 s later in a review), and a stream of deletes
/// looked like a source lagging behind. Nothing such a source sends later
/// can be dated before its arrival, so the time is worth saying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ticks {
    /// Dated by its server (Jetstream): after a quiet spell it may still
    /// send older events (a catch-up from its cursor), so time passing
    /// here says nothing.
    #[default]
    Never,
    /// Dated by arrival, and a reconnect asks for what was missed (a Nostr
    /// `REQ`'s `since`): while connected only, since what comes after a
    /// reconnect is dated before it and its buckets must stay open.
    WhileConnected,
    /// Dated by arrival, and a reconnect starts at the live tail (Mastodon):
    /// while away too, as nothing missed will ever come.
    Always,
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
    /// Decodes a data frame on the connection's own task, for a kind whose
    /// decoding holds work too costly for the pipeline's one thread (a
    /// Nostr note's Schnorr signature, tens of microseconds: a relay
    /// flooding notes, good or forged, slowed every source's counting).
    /// The pipeline then judges what this hands over ([`Inbound::checked`])
    /// and decodes nothing. The connection reads its next frame only once
    /// this one is checked and handed over, so the work is bounded by the
    /// connections, with no queue of its own: a flood waits in its relay's
    /// socket, under the connection's `max_frames_per_sec` (frames over it
    /// are dropped before they get here). `None` (the default): the
    /// pipeline decodes the text.
    fn check(
        &self,
        _frame: &str,
        _arrival_us: Micros,
        _stored_since: Option<Micros>,
    ) -> Option<super::Checked> {
        None
    }
    /// The connection to `host` (as configured, not a redirect's target)
    /// failed or was lost. A protocol that learned where `host`'s stream
    /// is (Mastodon's discovered streaming host) forgets it here, so the
    /// next attempt asks again instead of dialling, for the rest of the
    /// run, a host that may be gone. The default keeps nothing.
    fn failed(&mut self, _host: &SourceUrl) {}
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
        let reason = match body.is_empty() {
            true => format!("the server refused with HTTP {status}"),
            false => format!("the server refused with HTTP {status}: {body}"),
        };
        Rejection { reason, gap: None }
    }
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    Shutdown,
    PipelineGone,
    /// Ended by the server or the network; reconnect.
    Lost(String),
    /// The server refuses this client for good (a Nostr `CLOSED` with
    /// `auth-required:`, an HTTP 401 or 403 to the handshake): reconnect
    /// after the longest backoff.
    Refused(String),
    /// The server asked not to be called again for `wait` (a 429 or 503
    /// to the handshake with `Retry-After`, bounded): that host is not
    /// connected to before then.
    Throttled {
        reason: String,
        wait: Duration,
    },
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
    // The host of the list being connected to (always below its length).
    let mut host_index = 0usize;
    let mut holds = Holds::new(hosts.len());
    // A redirect being followed (bounded; same scheme or ws→wss only).
    let mut redirect = Redirect::default();
    // Refusals in a row: the first is an error line, the rest only counted.
    let mut refusals = 0u64;
    loop {
        if *link.shutdown.borrow() || hosts.is_empty() {
            return;
        }
        let host = &hosts[host_index];
        // A redirect is followed by the attempt right after it, or never: a
        // failed preparation must not leave it for the next host's attempt.
        let redirected = redirect.to.take();
        let prepared = tokio::select! {
            prepared = protocol.prepare(host) => prepared,
            _ = link.shutdown.changed() => return,
        };
        let started = Instant::now();
        let frames_before = link.health.frames();
        let (url, end, alive) = match prepared {
            // One host that cannot be prepared (an instance that does not
            // answer) is one failed connection: the next host is tried.
            Err(error) => (host.clone(), End::Lost(error.to_string()), Duration::ZERO),
            Ok(()) => {
                // Credentials go only where the configuration sends them: a
                // redirect to another origin gets none (as browsers and reqwest).
                // What a redirect's target sends is handed over as its
                // own: a sequence number means something only on the
                // server that issued it, and filed under the host that
                // redirected, a second target's lower numbers were dropped
                // as repeats (and the cursor saved was sent back to the
                // wrong server after a restart).
                let (url, credentials, served_by) = match redirected {
                    Some(to) => {
                        protocol.redirected(&to);
                        let server = SourceUrl::from(server_of(to.secret()));
                        (to, redirect.same_origin, server)
                    }
                    None => (
                        protocol.connect_url(host, link.health.processed()),
                        true,
                        host.clone(),
                    ),
                };
                let (end, alive) = session(
                    &served_by,
                    &url,
                    credentials,
                    &settings,
                    &mut protocol,
                    &mut link,
                )
                .await;
                (url, end, alive)
            }
        };
        link.health.set_connected(false);
        if matches!(end, End::Lost(_) | End::Refused(_) | End::Throttled { .. }) {
            protocol.failed(host);
        }
        let outcome = Outcome {
            quiet: protocol.quiet(),
            lasted: started.elapsed(),
            alive,
            delivered: link.health.frames() > frames_before,
        };
        let wait = match after_session(end, &url, &mut redirect, &mut refusals, &link.health) {
            After::Stop => return,
            After::Again => continue,
            After::Wait => None,
            After::WaitLongest => Some(backoff.longest()),
            After::Hold(wait) => {
                holds.hold(host_index, wait);
                None
            }
        };
        if outcome.healthy(settings.healthy_after) {
            backoff.reset();
        }
        let wait = wait.unwrap_or_else(|| backoff.next_delay());
        let (next, at) = holds.next(host_index, Instant::now() + wait);
        host_index = next;
        if !wait_to_reconnect(at, &hosts[next], &mut link).await {
            return;
        }
    }
}

/// What a session that ended showed of the server's health.
struct Outcome {
    /// The protocol's stream may be quiet for minutes ([`Protocol::quiet`]).
    quiet: bool,
    /// From the attempt's start to its end.
    lasted: Duration,
    /// From the handshake to the last message the server sent (a pong
    /// included); zero if it never connected.
    alive: Duration,
    /// Frames arrived.
    delivered: bool,
}

impl Outcome {
    /// Whether it proved the server healthy, which starts the backoff
    /// again from its shortest wait. A stream that is never quiet
    /// (Jetstream) must have delivered frames for `healthy_after`: one
    /// that connects and sends nothing is a stalled host, and its
    /// reconnects back off. A quiet stream (Mastodon, Nostr) is healthy
    /// while the server answers: one that answered for `healthy_after`
    /// is, whatever data it had to send. Only frames counted there, so a
    /// quiet instance dropped by the quiet-data watchdog every 10 minutes
    /// grew the wait each time to the 60 s cap, and Mastodon, which has
    /// no resume, lost whatever was posted meanwhile.
    fn healthy(&self, healthy_after: Duration) -> bool {
        match self.quiet {
            true => self.alive >= healthy_after,
            false => self.lasted >= healthy_after && self.delivered,
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
    /// Wait out the backoff, then connect to the next host; this host not
    /// before this long (what it asked).
    Hold(Duration),
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
    let lost = |reason: &str| {
        health.set_last_failure(reason);
        SourceReconnect {
            source: &health.name,
            counters: &health.counters,
            url,
            reason,
        }
        .emit();
    };
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
        End::Throttled { reason, wait } => {
            redirect.hops = 0;
            lost(&reason);
            After::Hold(wait)
        }
        End::Lost(reason) => {
            redirect.hops = 0;
            lost(&reason);
            After::Wait
        }
    }
}

/// Waits until `at` before connecting to `next_host`; false when shut
/// down meanwhile.
async fn wait_to_reconnect(at: Instant, next_host: &SourceUrl, link: &mut Link) -> bool {
    let delay = at.saturating_duration_since(Instant::now());
    tracing::info!(source = %link.health.name, next_host = %next_host, delay_ms = delay.as_millis() as u64, "waiting before reconnecting");
    let wait = sleep_until(at);
    tokio::pin!(wait);
    let mut tick = tick_interval();
    loop {
        tokio::select! {
            _ = &mut wait => return true,
            _ = link.shutdown.changed() => return false,
            _ = tick.tick(), if link.ticks == Ticks::Always => {
                let tick = Handed::Tick { arrival_us: arrival_now() };
                if hand_over(link, next_host, tick).await.is_some() {
                    return false;
                }
            }
        }
    }
}

/// Every [`TICK_EVERY`], the first a whole period from now.
fn tick_interval() -> tokio::time::Interval {
    let mut tick = tokio::time::interval_at(Instant::now() + TICK_EVERY, TICK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
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
#[path = "run_tests.rs"]
mod run_tests;

#[cfg(test)]
mod tests;
