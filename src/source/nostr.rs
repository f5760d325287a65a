//! Nostr relays (NIP-01, see `protocols.md` §3): kind-1 text notes.
//!
//! Nothing a relay sends is taken on trust. Each note's `id` must be the
//! sha256 of its NIP-01 serialisation and `sig` a valid BIP-340 Schnorr
//! signature by `pubkey` over that id (checked with `k256`); a note that
//! fails is dropped and counted by reason. Notes are keyed by their
//! verified id, so the same note from several relays, or from a resumed
//! subscription, is counted once.
//!
//! `created_at` is set by the author and can be anything: the event time of
//! a live note (one after the subscription's `EOSE`) is the arrival time,
//! so a note dated ahead or behind cannot move a count. A stored note (one
//! the relay sends before `EOSE`: the catch-up after a reconnect or a
//! restart, asked for from the last processed note) did not happen at its
//! arrival: minutes of notes arrive in a second, and counted at arrival
//! they made one bucket of a surge that never was. Its event time is its
//! `created_at` clamped to the range the `REQ` asked for, from `since` to
//! the arrival: an author's claim places it only within the gap being
//! caught up. The claim is also used to drop notes claiming to be older
//! than the de-duplication horizon before their arrival (history a relay
//! sends again, a backfill).
//!
//! This file holds what a note is on the wire and how it becomes a post
//! ([`decode`], the [`Nostr`] source); beside it are the id and signature
//! checks ([`verify`](mod@verify): the proof a post needs, kept apart so
//! that only one module can make it) and one relay's connection
//! ([`protocol`]: the `REQ`, the stored phase, the relay's control
//! messages).

pub mod protocol;
pub mod verify;

use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

use super::kind::{Connection, Link, Origin, Source, Task};
use super::url::SourceUrl;
use super::{BACKFILL_HORIZON_US, Decoded, Frame, FrameError, RawPost, SkipReason, parse_json};
use crate::{MICROS_PER_SEC, Micros};
use protocol::NostrProtocol;
use verify::{Verified, shape, verify};

/// The one server every note is counted under (see [`Nostr`]'s
/// `server_of`). Not a domain: a Mastodon account's server would have to
/// be named this to be counted with the notes (and two servers counted as
/// one only ever count fewer authors).
const NOSTR_SERVER: &str = "nostr:";

/// Most tags a note may carry. A kind-1 note has a handful (mentions,
/// hashtags, labels); a frame of empty tags (`[[],[],…]`, 350,000 in a
/// megabyte, its id easy to compute) was read into that many vectors.
pub const MAX_TAGS: usize = 2_000;

#[derive(Deserialize)]
struct Event {
    id: String,
    pubkey: String,
    created_at: i64,
    kind: u64,
    #[serde(default, deserialize_with = "bounded_tags")]
    tags: Vec<Vec<String>>,
    content: String,
    #[serde(default)]
    sig: String,
}

/// Reads at most [`MAX_TAGS`] tags, refusing the event at the next one
/// (before it is allocated).
fn bounded_tags<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Vec<String>>, D::Error> {
    struct Tags;
    impl<'de> serde::de::Visitor<'de> for Tags {
        type Value = Vec<Vec<String>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "an array of at most {MAX_TAGS} tags")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut tags = Vec::new();
            while let Some(tag) = seq.next_element::<Vec<String>>()? {
                if tags.len() == MAX_TAGS {
                    return Err(serde::de::Error::custom(format!(
                        "more than {MAX_TAGS} tags"
                    )));
                }
                tags.push(tag);
            }
            Ok(tags)
        }
    }
    deserializer.deserialize_seq(Tags)
}
/// The event time of a note claiming `claimed_us`: the arrival for a live
/// note, the claim within `[stored_since, arrival]` for a stored one, the
/// claim when the arrival is unknown (a hand-made file).
pub fn event_time(
    claimed_us: Micros,
    arrival_us: Option<Micros>,
    stored_since: Option<Micros>,
) -> Micros {
    match (arrival_us, stored_since) {
        (None, _) => claimed_us,
        (Some(arrival), None) => arrival,
        (Some(arrival), Some(since)) => claimed_us.clamp(since.min(arrival), arrival),
    }
}

/// The messages a relay sends besides `EVENT` (NIP-01, NIP-42's `AUTH`,
/// NIP-45's `COUNT`): the live connection acts on them before they reach
/// the decoder; in a recording they are server notices. Any other type is
/// malformed: a relay sending only `["X"]` once a second had each one
/// skipped as an unknown kind, counted as data, and looked healthy for
/// ever.
const RELAY_MESSAGES: [&str; 6] = ["EOSE", "NOTICE", "OK", "CLOSED", "AUTH", "COUNT"];

/// Decodes and verifies one relay message. `arrival_us` is when it arrived,
/// `stored_since` is set for a stored note (before `EOSE`): see
/// [`event_time`].
pub fn decode(
    frame: &[u8],
    arrival_us: Option<Micros>,
    stored_since: Option<Micros>,
) -> Result<(Option<Micros>, Decoded), FrameError> {
    // The message's parts are read only as far as they are used: the event
    // goes straight into its type, never through a tree of values.
    let message: Vec<&RawValue> = parse_json(frame)?;
    let kind = message
        .first()
        .and_then(|raw| serde_json::from_str::<Cow<'_, str>>(raw.get()).ok());
    match kind.as_deref() {
        Some("EVENT") => {}
        Some(other) if RELAY_MESSAGES.contains(&other) => {
            return Ok((None, Decoded::Skipped(SkipReason::ServerNotice)));
        }
        Some(other) => {
            return Err(FrameError::BadRecord(format!(
                "unknown message type {:?}",
                crate::text::server_text(other)
            )));
        }
        None => return Err(FrameError::MissingField("message type")),
    }
    let event = message.get(2).ok_or(FrameError::MissingField("event"))?;
    let event: Event =
        serde_json::from_str(event.get()).map_err(|e| FrameError::BadRecord(e.to_string()))?;
    let claimed_us = event
        .created_at
        .checked_mul(MICROS_PER_SEC)
        .ok_or_else(|| {
            FrameError::BadRecord(format!("created_at {} out of range", event.created_at))
        })?;
    let time_us = event_time(claimed_us, arrival_us, stored_since);
    let shape = shape(&event)?;
    if event.kind != 1 {
        return Ok((Some(time_us), Decoded::Skipped(SkipReason::NotAPost)));
    }
    let reference = arrival_us.unwrap_or(claimed_us);
    if claimed_us < reference.saturating_sub(BACKFILL_HORIZON_US) {
        return Ok((Some(time_us), Decoded::Skipped(SkipReason::Backfill)));
    }
    // A stored note is older than the request that asked for it, whatever
    // its author's clock says; one dated well after its arrival is stored
    // history too, and comes back in every catch-up (its claim is after
    // every `since`): counted at each arrival, it was a new post after
    // every reconnect.
    if stored_since.is_some()
        && arrival_us.is_some_and(|arrival| claimed_us > arrival.saturating_add(STORED_AHEAD_US))
    {
        return Ok((Some(time_us), Decoded::Skipped(SkipReason::Backfill)));
    }
    let verified = verify(&shape)?;
    Ok((
        Some(time_us),
        Decoded::Post(Box::new(post(event, time_us, verified))),
    ))
}

/// A verified note as a post, keyed by its id.
fn post(event: Event, time_us: Micros, _verified: Verified) -> RawPost {
    let tag_values = |name: &str| -> Vec<String> {
        event
            .tags
            .iter()
            .filter(|t| t.first().is_some_and(|k| k == name))
            .filter_map(|t| t.get(1).cloned())
            .collect()
    };
    RawPost {
        time_us,
        // Two parts, where a Mastodon status's key has one (its `uri`):
        // an instance that names a status after a note's id cannot
        // make the note a duplicate.
        key: Some(super::dedupe::key_of(&[NOTE_KEY, &event.id])),
        uri: format!("nostr:{}", event.id),
        langs: languages(&event.tags),
        tags: tag_values("t"),
        author: event.pubkey,
        text: event.content,
    }
}

/// How far a stored note's claim may run past its arrival before it is
/// history, not a report (see [`decode`]): an author's clock a few minutes
/// fast.
const STORED_AHEAD_US: Micros = 5 * 60 * MICROS_PER_SEC;

/// The first part of a note's de-duplication key (see [`decode`]).
const NOTE_KEY: &str = "nostr";

/// The languages a note declares: NIP-32 labels in the ISO 639-1
/// namespace (`["l", "en", "ISO-639-1"]`). A label of another namespace
/// (`["l", "MIT", "license"]`) or of none (a user's own label) says nothing
/// of the language, and read as one it would cost the post its context
/// phrases.
fn languages(tags: &[Vec<String>]) -> Vec<String> {
    tags.iter()
        .filter_map(|tag| match tag.as_slice() {
            [name, value, namespace, ..]
                if name == "l" && namespace.eq_ignore_ascii_case("ISO-639-1") =>
            {
                Some(value.clone())
            }
            _ => None,
        })
        .collect()
}

/// The Nostr source kind: relays, each read at once on its own connection.
pub struct Nostr;

impl Source for Nostr {
    fn decode(&self, frame: &[u8], origin: &Origin<'_>) -> Result<Frame, FrameError> {
        decode(frame, origin.arrival_us, origin.stored_since).map(|(t, d)| Frame::timed(t, d))
    }

    fn arrival_is_event_time(&self) -> bool {
        true
    }

    /// A quiet stream's
    /// ([`HealthRule::quiet_stream`](crate::source::health::HealthRule::quiet_stream)):
    /// a healthy relay may carry a few notes a minute, or none for minutes.
    fn health_defaults(&self) -> crate::source::health::HealthRule {
        crate::source::health::HealthRule::quiet_stream()
    }

    /// Nostr as a whole: a key costs nothing and a relay takes notes from
    /// anyone, so no relay vouches for anybody. One server for every note,
    /// not the relay that delivered it first: which relay wins a note's
    /// race is the network's timing, and the counts must not depend on it.
    fn server_of(&self, _author: &str, _connection: &str) -> Option<String> {
        Some(NOSTR_SERVER.to_owned())
    }

    /// One connection per relay (all read at once), each named
    /// `NAME:host[:port][/path]` when there are several (the configuration
    /// refuses two relays of one name).
    fn connections(&self, source: Connection) -> Vec<Connection> {
        if source.urls.len() <= 1 {
            return vec![source];
        }
        let relay = |url: &SourceUrl| Connection {
            name: format!("{}:{}", source.name, super::url::relay_name(url.secret())),
            urls: vec![url.clone()],
            ..source.clone()
        };
        source.urls.iter().map(relay).collect()
    }

    fn run(&self, connection: Connection, link: Link) -> Task {
        Box::pin(super::ws::run(
            connection.urls,
            connection.settings,
            NostrProtocol::default(),
            link,
        ))
    }
}

#[cfg(test)]
#[path = "nostr_tests.rs"]
pub mod tests;
