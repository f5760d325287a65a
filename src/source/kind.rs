//! The source kinds and what each must provide. A kind is one module
//! implementing [`Source`] and one line in [`SourceKind::source`]: the
//! configuration, the daemon, the replay and the pipeline reach every kind
//! through these, never by naming one.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::health::{HealthRule, SourceHealth};
use super::jetstream::{JetstreamOptions, SeqCursor};
use super::url::SourceUrl;
use super::ws::{DEFAULT_BUDGET_BYTES, FrameBudget, Inbound, Ticks, WsSettings};
use super::{FrameError, jetstream, mastodon, nostr};
use crate::Micros;
use crate::supervise::Supervisor;

/// The kind of a configured source (`kind = "..."` in the configuration,
/// and in a recording's clock lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Jetstream,
    Mastodon,
    Nostr,
}

impl SourceKind {
    /// The registration: the one place that maps a kind to its code.
    pub fn source(self) -> &'static dyn Source {
        match self {
            SourceKind::Jetstream => &jetstream::Jetstream,
            SourceKind::Mastodon => &mastodon::Mastodon,
            SourceKind::Nostr => &nostr::Nostr,
        }
    }

    /// When its connections tell the pipeline that time passed ([`Ticks`]).
    pub fn ticks(self) -> Ticks {
        let source = self.source();
        match (
            source.arrival_is_event_time(),
            source.resumes_from_watermark(),
        ) {
            (false, _) => Ticks::Never,
            (true, true) => Ticks::WhileConnected,
            (true, false) => Ticks::Always,
        }
    }

    /// Whether an arrival at this kind's connection is time passing there
    /// (it moves the watermark, [`super::clock::SourceClock::time_passed`]): only
    /// for a kind dated by arrival, and never inside a stored range (a
    /// relay's catch-up is history, dated by its authors). The one test
    /// for the pipeline, a replay's clock lines and `record`'s clocks.
    pub fn arrival_passes_time(self, stored_since: Option<crate::Micros>) -> bool {
        stored_since.is_none() && self.source().arrival_is_event_time()
    }

    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Jetstream => "jetstream",
            SourceKind::Mastodon => "mastodon",
            SourceKind::Nostr => "nostr",
        }
    }

    /// Decodes one frame of this kind. Also says whether the event time is
    /// the arrival clock (sources whose own timestamps authors set, when the
    /// arrival is known).
    pub fn decode(
        self,
        frame: &[u8],
        origin: &Origin<'_>,
    ) -> (Result<super::Frame, FrameError>, bool) {
        let source = self.source();
        let own_clock = source.arrival_is_event_time() && origin.arrival_us.is_some();
        (source.decode(frame, origin), own_clock)
    }

    /// [`SourceKind::decode`], the frame then [`Frame::checked`](super::Frame::checked):
    /// what the pipeline judges, and what `record` moves a source's clock
    /// with (so its reconnects resume where the daemon's would).
    pub fn decode_checked(
        self,
        frame: &[u8],
        origin: &Origin<'_>,
    ) -> (Result<super::Frame, FrameError>, bool) {
        let (decoded, own_clock) = self.decode(frame, origin);
        (decoded.and_then(super::Frame::checked), own_clock)
    }
}

impl SourceKind {
    /// A frame as the pipeline judges it: blank, or decoded by this kind
    /// and [`Frame::checked`](super::Frame::checked) ([`SourceKind::decode_checked`]).
    /// The only way to make a [`Checked`].
    pub fn check(self, frame: &[u8], origin: &Origin<'_>) -> Checked {
        if frame.iter().all(u8::is_ascii_whitespace) {
            return Checked {
                decoded: None,
                own_clock: false,
            };
        }
        let (decoded, own_clock) = self.decode_checked(frame, origin);
        Checked {
            decoded: Some(decoded),
            own_clock,
        }
    }
}

/// A frame read by its kind's decoder, every check of that kind made (a
/// Nostr note's id and signature among them). Only [`SourceKind::check`]
/// makes one, so wherever it was made (a relay's connection task, live,
/// see [`super::ws::Protocol::check`]; a replay's thread pool) the
/// pipeline that takes one ([`Checked::into_parts`]) judges it without
/// decoding or checking anything again.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// `None`: a blank frame (counted as such, never decoded).
    decoded: Option<Result<super::Frame, FrameError>>,
    /// The event time is the arrival ([`SourceKind::decode`]).
    own_clock: bool,
}

impl Checked {
    /// The decoded frame (`None` when blank), and whether its event time
    /// is the arrival.
    pub fn into_parts(self) -> (Option<Result<super::Frame, FrameError>>, bool) {
        (self.decoded, self.own_clock)
    }

    /// [`Checked::into_parts`] by reference.
    pub fn parts(&self) -> (Option<&Result<super::Frame, FrameError>>, bool) {
        (self.decoded.as_ref(), self.own_clock)
    }
}

/// Where a frame came from, as its decoder needs it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Origin<'a> {
    /// The host that names a Mastodon instance's local accounts when a
    /// status's `uri` has no host.
    pub instance: &'a str,
    /// When the frame arrived (live, or from a recording's clock line).
    pub arrival_us: Option<Micros>,
    /// A stored event of a subscription that asked for events since then
    /// (Nostr before `EOSE`), not a live one.
    pub stored_since: Option<Micros>,
}

/// A boxed task future, for [`Source::run`].
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// One kind of source: how its frames decode and how its connections run.
pub trait Source: Sync {
    /// Decodes one frame (pure: no I/O, no clock).
    fn decode(&self, frame: &[u8], origin: &Origin<'_>) -> Result<super::Frame, FrameError>;

    /// Whether a frame's event time is its arrival time when that is known
    /// (Mastodon and Nostr: the timestamps in the frame are the author's).
    fn arrival_is_event_time(&self) -> bool {
        false
    }

    /// Whether its decoder reads [`Origin::instance`] (Mastodon: the host
    /// that names local accounts when a status's `uri` has none). A
    /// recording's clock lines
    /// carry the instance for such kinds only.
    fn reads_instance(&self) -> bool {
        false
    }

    /// The server that vouches for `author`, on a network whose accounts
    /// cost nothing to make: whoever runs that server (or, on Nostr, holds
    /// a key generator) can be as many authors as they like, so the
    /// detector counts at most `max_authors_per_server` of one server's
    /// authors. `connection` is the name of the connection the post came
    /// through. `None` (the default; a Bluesky `did:plc` account): each
    /// author counts alone.
    fn server_of(&self, _author: &str, _connection: &str) -> Option<String> {
        None
    }

    /// Whether a connection can ask its server for what it sent since a
    /// time (Jetstream's `cursor`, a Nostr `REQ`'s `since`), so that a
    /// restart resumes from its watermark. Mastodon's streaming API has no
    /// such parameter: it starts at the live tail.
    fn resumes_from_watermark(&self) -> bool {
        true
    }

    /// The health rule its sources are judged by where neither their
    /// `[sources.health]` nor `[health]` sets a key; the default is a
    /// firehose's ([`HealthRule::firehose`]).
    fn health_defaults(&self) -> HealthRule {
        HealthRule::firehose()
    }

    /// The connections one configured source opens; the default is one
    /// that fails over across the source's URLs.
    fn connections(&self, source: Connection) -> Vec<Connection> {
        vec![source]
    }

    /// Reads one connection until shutdown (reconnecting for ever).
    fn run(&self, connection: Connection, link: Link) -> Task;
}

/// One live connection as configured (a Nostr source with three relays is
/// three).
#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    pub kind: SourceKind,
    /// Masked wherever shown ([`SourceUrl`]).
    pub urls: Vec<SourceUrl>,
    pub settings: WsSettings,
    /// Mastodon: the stream to follow and the access token.
    pub stream: String,
    pub token: Option<String>,
    /// Jetstream: the wire and compression.
    pub jetstream: JetstreamOptions,
}

impl Connection {
    /// The first URL's `host[:port]`: names each Nostr relay, and a
    /// Mastodon instance's local accounts when a status's `uri` has no host.
    pub fn instance(&self) -> String {
        self.urls
            .first()
            .map(|url| super::url::host_port(url.secret()))
            .unwrap_or_default()
    }
}

/// What a running connection is linked to in the daemon.
pub struct Link {
    /// The connection's number: frames carry it to the pipeline.
    pub index: usize,
    pub tls: Arc<rustls::ClientConfig>,
    pub frames: mpsc::Sender<Inbound>,
    /// The bytes of frames in flight, shared by the daemon's sources.
    pub budget: FrameBudget,
    pub health: Arc<SourceHealth>,
    pub shutdown: watch::Receiver<bool>,
    /// Where a source may cache what it fetched (Jetstream dictionaries).
    pub state_dir: Option<PathBuf>,
    /// Jetstream v2: the saved sequence cursor, for an exact resume.
    pub resume: Option<SeqCursor>,
    /// When the connection says that time passed with nothing received.
    pub ticks: Ticks,
}

impl Link {
    /// A link without a state folder or a saved sequence cursor, with a
    /// frame budget of its own (the `record` and `replay --jetstream`
    /// commands).
    pub fn new(
        index: usize,
        tls: Arc<rustls::ClientConfig>,
        frames: mpsc::Sender<Inbound>,
        health: Arc<SourceHealth>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Link {
            index,
            tls,
            frames,
            budget: FrameBudget::new(DEFAULT_BUDGET_BYTES),
            health,
            shutdown,
            state_dir: None,
            resume: None,
            ticks: Ticks::Never,
        }
    }
}

/// What every connection's task shares: the daemon's, or `record`'s.
pub struct Links {
    pub tls: Arc<rustls::ClientConfig>,
    pub frames: mpsc::Sender<Inbound>,
    pub budget: FrameBudget,
    pub shutdown: watch::Receiver<bool>,
    pub state_dir: Option<PathBuf>,
    pub supervisor: Supervisor,
}

impl Links {
    /// One task per connection, each run by its source kind, with its
    /// health and saved sequence cursor (by position). The frame channel
    /// closes when the last of them ends.
    pub fn spawn(
        self,
        connections: Vec<Connection>,
        health: &[Arc<SourceHealth>],
        resume: Vec<Option<SeqCursor>>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let parts = connections.into_iter().zip(health).zip(resume);
        let mut tasks = Vec::new();
        for (index, ((connection, health), resume)) in parts.enumerate() {
            let link = Link {
                index,
                tls: Arc::clone(&self.tls),
                frames: self.frames.clone(),
                budget: self.budget.clone(),
                health: Arc::clone(health),
                shutdown: self.shutdown.clone(),
                state_dir: self.state_dir.clone(),
                resume,
                ticks: connection.kind.ticks(),
            };
            let name = format!("source {}", connection.name);
            let run = connection.kind.source().run(connection, link);
            tasks.push(self.supervisor.spawn(name, run));
        }
        tasks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Decoded, FrameError, SkipReason};

    const KINDS: [SourceKind; 3] = [
        SourceKind::Jetstream,
        SourceKind::Mastodon,
        SourceKind::Nostr,
    ];

    /// Every kind shares the preamble: bad UTF-8 and bad JSON are the same
    /// errors whichever decoder reads them.
    #[test]
    fn every_kind_rejects_bad_utf8_and_bad_json_alike() {
        let origin = Origin::default();
        for kind in KINDS {
            let (bad_utf8, _) = kind.decode(b"{\"a\":\"\xff\"}", &origin);
            assert_eq!(
                bad_utf8,
                Err(FrameError::InvalidUtf8 { valid_up_to: 6 }),
                "{kind:?}"
            );
            let (bad_json, _) = kind.decode(b"{not json", &origin);
            assert!(
                matches!(bad_json, Err(FrameError::Json(_))),
                "{kind:?}: {bad_json:?}"
            );
        }
    }

    /// The event time is the arrival only for the kinds whose timestamps
    /// authors set, and only when the arrival is known.
    #[test]
    fn own_clock_by_kind() {
        let at = |arrival_us| Origin {
            instance: "m.example",
            arrival_us,
            stored_since: None,
        };
        let frame = br#"{"event":"delete","payload":"1"}"#;
        let (decoded, own) = SourceKind::Mastodon.decode(frame, &at(Some(5)));
        assert_eq!(
            decoded.map(|f| f.decoded),
            Ok(Decoded::Skipped(SkipReason::PostDelete))
        );
        assert!(own);
        assert!(!SourceKind::Mastodon.decode(frame, &at(None)).1);
        assert!(!SourceKind::Jetstream.decode(b"{}", &at(Some(5))).1);
        let names: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
        assert_eq!(names, ["jetstream", "mastodon", "nostr"]);
    }
}
