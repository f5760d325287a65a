//! Sources: where frames come from and how a wire frame becomes a post.
//!
//! A source hands the pipeline raw frames (one JSON document each). Turning a
//! frame into a [`RawPost`] is a pure function per source kind
//! ([`Source::decode`]), so the same code serves a recording and a live
//! socket, and replaying a recording gives the alerts the live run gave.
//!
//! One source kind is one module (`jetstream/`, `mastodon/`, `nostr.rs`)
//! implementing [`Source`] (decode, connections, how a connection runs) and
//! one line in [`SourceKind::source`]. What every kind shares lives beside
//! them: the websocket session ([`ws`]), the reconnect backoff
//! ([`backoff`]), URL checks ([`url`]), health counters ([`health`]), the
//! event-time clock ([`clock`]), de-duplication ([`dedupe`]) and recordings
//! ([`recording`]).

pub mod backoff;
pub mod clock;
pub mod dedupe;
pub mod delay;
pub mod health;
pub mod jetstream;
pub mod kind;
pub mod mastodon;
pub mod nostr;
pub mod recording;
pub mod server;
pub mod url;
pub mod ws;

pub use kind::{Checked, Connection, Link, Links, Origin, Source, SourceKind};

use crate::Micros;

/// A post as the wire delivered it, before normalization.
#[derive(Debug, Clone, PartialEq)]
pub struct RawPost {
    /// Event time (the server's `time_us`), never the client's `createdAt`,
    /// which can be wrong by hours.
    pub time_us: Micros,
    /// Author identity (a DID for Bluesky); used to count distinct authors.
    pub author: String,
    /// Stable address of the post, shown in alert samples.
    pub uri: String,
    /// Identity of this event for de-duplication (see [`dedupe::key_of`]):
    /// the same event delivered twice (a resumed cursor's overlap, two
    /// relays) has the same key. `None`: not de-duplicated (a post typed
    /// into `check`, a count series).
    pub key: Option<u64>,
    pub text: String,
    /// Language tags the client declared; may be empty and may be wrong.
    pub langs: Vec<String>,
    /// Hashtags declared outside the text (facets and `record.tags`), without `#`.
    pub tags: Vec<String>,
}

impl RawPost {
    /// A post known only by its text and declared languages (typed into
    /// `check`, or a test's): no time, no address, not de-duplicated.
    pub fn typed(text: impl Into<String>, langs: Vec<String>) -> RawPost {
        RawPost {
            time_us: 0,
            author: "check".into(),
            uri: String::new(),
            key: None,
            text: text.into(),
            langs,
            tags: Vec::new(),
        }
    }
}

/// What one frame turned out to be. Everything but `Post` is skipped after
/// being counted, so a full-firehose recording costs little per non-post.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// Boxed: a frame's decoding is moved several times on its way, and
    /// most frames (likes, follows) are not posts, which then moved a
    /// post's worth of bytes each time.
    Post(Box<RawPost>),
    Skipped(SkipReason),
}

impl Decoded {
    /// The post's author as a source's clock counts it ([`clock::author_key`]);
    /// `None` for a frame that holds no post.
    pub fn author_key(&self) -> Option<u64> {
        match self {
            Decoded::Post(post) => Some(clock::author_key(&post.author)),
            Decoded::Skipped(_) => None,
        }
    }
}

/// Why a well-formed frame carries no post for the matcher. The variants
/// are the counters in the replay summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// An edit of an existing post: counting it would count the report twice.
    PostUpdate,
    /// A deleted post (Jetstream `delete`, Mastodon `delete`).
    PostDelete,
    /// A commit operation on a post this version does not know (neither
    /// create, update nor delete); newer servers may add some.
    UnknownOperation,
    /// An event that is not an original post: a Jetstream commit to another
    /// collection (likes, follows, reposts, profiles, other apps), a
    /// Mastodon boost (someone else's words) or `filters_changed`, a Nostr
    /// event of another kind (its id checked).
    NotAPost,
    Identity,
    Account,
    /// A `kind` this version does not know; newer servers may add some.
    UnknownKind,
    /// A server's notice or error in a recording (Jetstream v2 `#info`,
    /// `error`; a Nostr relay's `EOSE`, `NOTICE`, `OK`, ...): no event, and
    /// no event time.
    ServerNotice,
    /// A Mastodon status or Nostr note whose author-set time is older than
    /// the de-duplication horizon before its arrival: history delivered
    /// again (a relay's stored notes, a backfill), not a report of now. Also
    /// a relay's stored note dated more than 5 minutes after its arrival:
    /// stored before it was asked for, whatever it claims.
    Backfill,
}

impl SkipReason {
    pub const ALL: [SkipReason; 9] = [
        SkipReason::PostUpdate,
        SkipReason::PostDelete,
        SkipReason::UnknownOperation,
        SkipReason::NotAPost,
        SkipReason::Identity,
        SkipReason::Account,
        SkipReason::UnknownKind,
        SkipReason::ServerNotice,
        SkipReason::Backfill,
    ];

    /// Whether a frame skipped for this reason shows that its source is
    /// delivering, for the connection's no-data watchdog and the silence
    /// rule. An event of the stream that is no post (a deletion, an edit,
    /// another collection's commit, an identity change, a backfill) does:
    /// the firehose is alive. A server's notice and a kind this version
    /// does not know vouch for nothing: a relay sending `["X"]` once a
    /// second was counted as delivering, with no alert and no reconnect,
    /// for as long as it went on.
    pub fn shows_life(self) -> bool {
        !matches!(self, SkipReason::UnknownKind | SkipReason::ServerNotice)
    }

    pub fn name(self) -> &'static str {
        match self {
            SkipReason::PostUpdate => "post_updates",
            SkipReason::PostDelete => "post_deletes",
            SkipReason::UnknownOperation => "unknown_operation",
            SkipReason::NotAPost => "not_posts",
            SkipReason::Identity => "identity",
            SkipReason::Account => "account",
            SkipReason::UnknownKind => "unknown_kind",
            SkipReason::ServerNotice => "server_notices",
            SkipReason::Backfill => "backfill",
        }
    }
}

/// Author-set times older than this before arrival are backfill (the
/// de-duplication horizon: anything older could not be recognised as a
/// repeat anyway).
pub const BACKFILL_HORIZON_US: Micros = dedupe::DEFAULT_HORIZON_SECS * crate::MICROS_PER_SEC;

/// Event times a frame may carry: from 1970 to the end of year 9999. A
/// time outside them is a malformed frame ([`FrameError::BadTime`]), not a
/// post from before the epoch: bucket and window arithmetic on such a time
/// would overflow.
pub const EVENT_TIMES: std::ops::RangeInclusive<Micros> = 0..=253_402_300_799_999_999;

/// Longest author id a post may carry, in bytes: a DID is at most 2 KiB
/// (atproto), a Mastodon `user@domain` and a Nostr key far shorter.
pub const MAX_AUTHOR_BYTES: usize = 2048;
/// Longest post URI, in bytes: an AT URI is at most 8 KiB (atproto), a
/// status URL far shorter. Both go into alert samples.
pub const MAX_URI_BYTES: usize = 8192;
/// The largest sequence number a frame may carry: a cursor is sent back as
/// a signed 64-bit integer, so a larger one could never be resumed from.
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// One decoded frame, whatever its source kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The event time; `None` for frames that carry none (Jetstream v2
    /// `#info`, a Mastodon `delete`).
    pub time_us: Option<Micros>,
    /// The server's sequence number (Jetstream v2 `seq`, or the `cursor` a
    /// v2 server adds to v1 frames), if any.
    pub seq: Option<u64>,
    pub decoded: Decoded,
}

impl Frame {
    /// The frame, if its event time (when it has one) is in [`EVENT_TIMES`],
    /// its sequence number (when it has one) at most [`MAX_SEQ`], and its
    /// post's author and URI are no longer than an identifier can be
    /// ([`MAX_AUTHOR_BYTES`], [`MAX_URI_BYTES`]): both are written by the
    /// sender and travel into alerts.
    pub fn checked(self) -> Result<Frame, FrameError> {
        if let Some(t) = self.time_us.filter(|t| !EVENT_TIMES.contains(t)) {
            return Err(FrameError::BadTime(format!(
                "{t} µs is outside 1970 to 9999"
            )));
        }
        if let Some(seq) = self.seq.filter(|seq| *seq > MAX_SEQ) {
            return Err(FrameError::BadSeq(seq));
        }
        if let Decoded::Post(post) = &self.decoded {
            for (field, len, max) in [
                ("author", post.author.len(), MAX_AUTHOR_BYTES),
                ("uri", post.uri.len(), MAX_URI_BYTES),
            ] {
                if len > max {
                    return Err(FrameError::BadRecord(format!(
                        "`{field}` of {len} bytes is longer than an identifier can be ({max})"
                    )));
                }
            }
        }
        Ok(self)
    }

    /// A frame without a sequence number.
    pub fn timed(time_us: Option<Micros>, decoded: Decoded) -> Self {
        Frame {
            time_us,
            seq: None,
            decoded,
        }
    }
}

/// The preamble every decoder shares: the frame must be UTF-8 and one JSON
/// document of the shape `T`; either failure is a [`FrameError`] naming it.
pub fn parse_json<'a, T: serde::Deserialize<'a>>(frame: &'a [u8]) -> Result<T, FrameError> {
    let text = std::str::from_utf8(frame).map_err(|e| FrameError::InvalidUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))
}

/// Why a frame could not be used. Each is counted and reported with the
/// line (or frame) number; none stops the pipeline.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    #[error("invalid UTF-8 after byte {valid_up_to}")]
    InvalidUtf8 { valid_up_to: usize },
    /// A websocket text frame that is not UTF-8: the websocket library
    /// refuses it without its bytes (and the connection is closed, as RFC
    /// 6455 requires), so only the library's words are left.
    #[error("invalid UTF-8 in a text frame ({0})")]
    TextNotUtf8(String),
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    Oversized { len: usize, limit: usize },
    #[error("bad JSON: {0}")]
    Json(String),
    #[error("bad event time: {0}")]
    BadTime(String),
    #[error("sequence number {0} is beyond what a cursor can name (2^63 - 1)")]
    BadSeq(u64),
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("post record has no `text`")]
    PostWithoutText,
    #[error("bad post record: {0}")]
    BadRecord(String),
    /// A signed event that failed verification; the reason is a counter name.
    #[error("failed verification: {0}")]
    Unverified(&'static str),
}

impl FrameError {
    /// A short stable name for the kind of fault (a metrics label).
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::InvalidUtf8 { .. } | FrameError::TextNotUtf8(_) => "invalid_utf8",
            FrameError::Oversized { .. } => "oversized",
            FrameError::Json(_) => "bad_json",
            FrameError::BadTime(_) => "bad_time",
            FrameError::BadSeq(_) => "bad_seq",
            FrameError::MissingField(_) => "missing_field",
            FrameError::PostWithoutText => "post_without_text",
            FrameError::BadRecord(_) => "bad_record",
            // The verification reason (e.g. `nostr_sig_invalid`) is the label.
            FrameError::Unverified(reason) => reason,
        }
    }
}

/// Why a source could not be opened, reached or read (as opposed to one
/// bad frame).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A Mastodon instance did not say where its streaming API is: that
    /// connection fails, the next host is tried.
    #[error("cannot discover the streaming host: {0}")]
    Discovery(mastodon::DiscoveryError),
    /// The data watchdog: nothing decoded for this long.
    #[error("no data for {0:?} (watchdog)")]
    NoData(std::time::Duration),
    /// A quiet stream's watchdog: no frame and no pong for this long.
    #[error("no frame or pong for {0:?} (watchdog)")]
    NoPong(std::time::Duration),
    /// No HTTP client (for the Jetstream dictionary): no TLS configuration.
    #[error(transparent)]
    Tls(#[from] rustls::Error),
    /// No HTTP client (for the Jetstream dictionary).
    #[error(transparent)]
    HttpClient(#[from] reqwest::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(author: &str, uri: &str) -> Frame {
        Frame::timed(
            Some(1),
            Decoded::Post(Box::new(RawPost {
                time_us: 1,
                author: author.into(),
                uri: uri.into(),
                key: None,
                text: "is discord down?".into(),
                langs: vec![],
                tags: vec![],
            })),
        )
    }

    fn with_seq(seq: u64) -> Frame {
        Frame {
            seq: Some(seq),
            ..Frame::timed(Some(1), Decoded::Skipped(SkipReason::NotAPost))
        }
    }

    /// What a sender writes into an identifier is bounded like the
    /// identifier itself; the event time like a date; a sequence number
    /// like a cursor.
    #[test]
    fn a_frame_is_checked_for_its_time_and_its_identifiers() {
        let long_did = format!("did:plc:{}", "a".repeat(MAX_AUTHOR_BYTES));
        let long_uri = format!(
            "at://did:plc:a/app.bsky.feed.post/{}",
            "k".repeat(MAX_URI_BYTES)
        );
        // (frame, fault's reason or none)
        let cases = [
            (
                post("did:plc:a", "at://did:plc:a/app.bsky.feed.post/k"),
                None,
            ),
            (post(&"a".repeat(MAX_AUTHOR_BYTES), ""), None),
            (post(&long_did, ""), Some("bad_record")),
            (post("did:plc:a", &"u".repeat(MAX_URI_BYTES)), None),
            (post("did:plc:a", &long_uri), Some("bad_record")),
            (
                Frame::timed(Some(-1), Decoded::Skipped(SkipReason::NotAPost)),
                Some("bad_time"),
            ),
            (
                Frame::timed(None, Decoded::Skipped(SkipReason::NotAPost)),
                None,
            ),
            (with_seq(MAX_SEQ), None),
            (with_seq(MAX_SEQ + 1), Some("bad_seq")),
            (with_seq(u64::MAX), Some("bad_seq")),
        ];
        for (i, (frame, fault)) in cases.into_iter().enumerate() {
            assert_eq!(frame.checked().err().map(|e| e.reason()), fault, "case {i}");
        }
    }
}
