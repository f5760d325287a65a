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

use k256::schnorr::{Signature, VerifyingKey};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

use super::kind::{Checked, Connection, Link, Origin, Source, SourceKind, Task};
use super::url::SourceUrl;
use super::ws::{Control, Protocol};
use super::{BACKFILL_HORIZON_US, Decoded, Frame, FrameError, RawPost, SkipReason, parse_json};
use crate::{MICROS_PER_SEC, Micros};

/// The subscription id this client uses.
pub const SUBSCRIPTION: &str = "outagewatch";
/// How far before the last processed note a resumed subscription starts.
pub const RESUME_OVERLAP_SECS: i64 = 5;
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

/// Why a note failed verification (the counter names).
pub mod reject {
    pub const ID_MALFORMED: &str = "nostr_id_malformed";
    pub const ID_MISMATCH: &str = "nostr_id_mismatch";
    pub const PUBKEY_MALFORMED: &str = "nostr_pubkey_malformed";
    pub const SIG_MALFORMED: &str = "nostr_sig_malformed";
    pub const SIG_INVALID: &str = "nostr_sig_invalid";
}

/// The NIP-01 id of a note: sha256 of `[0,pubkey,created_at,kind,tags,content]`
/// serialised without whitespace (serde_json escapes exactly as NIP-01 asks:
/// `"`, `\\` and control characters; other characters as UTF-8).
pub fn event_id(
    pubkey: &str,
    created_at: i64,
    kind: u64,
    tags: &[Vec<String>],
    content: &str,
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    // Written into the hash as it is serialised: no copy of the note. A
    // tuple is a JSON array; writing to a hasher cannot fail.
    let canonical = (0, pubkey, created_at, kind, tags, content);
    if serde_json::to_writer(&mut hasher, &canonical).is_err() {
        return [0; 32];
    }
    hasher.finalize().into()
}

fn hex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Lowercase only, as NIP-01 requires: one spelling per id.
    if text.len() != 2 * N || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// An event's id, key and signature as bytes, once its shape is checked.
struct Shape {
    id: [u8; 32],
    pubkey: [u8; 32],
    sig: [u8; 64],
}

/// Checks what every event must be, whatever its kind or age: `id`,
/// `pubkey` and `sig` lowercase hex of their lengths, `id` the hash of the
/// event. Done before an event is classified: a relay sending only
/// `{"id":"","kind":7,...}` every 5 s had each one skipped as a non-post,
/// counted as data, and looked healthy for ever. (The signature, the
/// costly part, is checked for posts only: [`verify`].)
fn shape(event: &Event) -> Result<Shape, FrameError> {
    let id: [u8; 32] = hex_array(&event.id).ok_or(FrameError::Unverified(reject::ID_MALFORMED))?;
    let pubkey: [u8; 32] =
        hex_array(&event.pubkey).ok_or(FrameError::Unverified(reject::PUBKEY_MALFORMED))?;
    let sig: [u8; 64] =
        hex_array(&event.sig).ok_or(FrameError::Unverified(reject::SIG_MALFORMED))?;
    if event_id(
        &event.pubkey,
        event.created_at,
        event.kind,
        &event.tags,
        &event.content,
    ) != id
    {
        return Err(FrameError::Unverified(reject::ID_MISMATCH));
    }
    Ok(Shape { id, pubkey, sig })
}

/// Proof that a note's signature verified: only [`verify`] makes one, and
/// a note becomes a post only with one ([`post`]).
struct Verified(());

/// Checks a well-shaped event's BIP-340 signature by its key over its id:
/// the costly part of decoding a note (tens of microseconds), done where
/// the note is decoded: on its relay's connection task live
/// ([`NostrProtocol`]'s `check`), on a replay's thread pool.
fn verify(shape: &Shape) -> Result<Verified, FrameError> {
    #[cfg(test)]
    VERIFIED_HERE.with(|n| n.set(n.get() + 1));
    let Shape { id, pubkey, sig } = shape;
    let key = VerifyingKey::from_bytes(&(*pubkey).into())
        .map_err(|_| FrameError::Unverified(reject::PUBKEY_MALFORMED))?;
    let sig =
        Signature::try_from(&sig[..]).map_err(|_| FrameError::Unverified(reject::SIG_MALFORMED))?;
    key.verify_raw(id, &sig)
        .map_err(|_| FrameError::Unverified(reject::SIG_INVALID))?;
    Ok(Verified(()))
}

#[cfg(test)]
thread_local! {
    /// Signatures checked on this thread: the tests that say on which
    /// thread the costly check runs read it.
    static VERIFIED_HERE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many signatures were checked on the calling thread so far.
#[cfg(test)]
pub fn verified_on_this_thread() -> u64 {
    VERIFIED_HERE.with(std::cell::Cell::get)
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

/// NIP-01's machine-readable prefixes of a `CLOSED` reason that no retry
/// changes: the relay wants authentication (NIP-42, which this client
/// does not speak), or refuses this client or its request.
const REFUSED_FOR_GOOD: [&str; 3] = ["auth-required:", "restricted:", "blocked:"];

fn refused_for_good(reason: &str) -> bool {
    REFUSED_FOR_GOOD
        .iter()
        .any(|prefix| reason.trim_start().starts_with(prefix))
}

/// How long after its `REQ` a relay's notes may still be stored ones. A
/// relay sends its stored notes at once (minutes of them in a second), then
/// `EOSE`; one that never sends `EOSE` (it was optional before NIP-01 took
/// in NIP-15, and a hostile relay may leave it out) would have every live
/// note placed at the time its author claims, so notes written over
/// minutes could be made to land in one bucket.
pub const MAX_STORED_PHASE_US: Micros = 30 * MICROS_PER_SEC;

/// One relay: a `REQ` for kind-1 notes since the last processed one.
#[derive(Debug, Default)]
pub struct NostrProtocol {
    /// The relay's URL, for the log (by its [`super::url::relay_name`]).
    relay: Option<SourceUrl>,
    /// The `since` of this connection's `REQ` (µs) until its `EOSE`, or
    /// until [`MAX_STORED_PHASE_US`] after the `REQ`: the notes before it
    /// are stored ones.
    stored_since: Option<Micros>,
    /// When the stored phase ends at the latest (arrival time, µs).
    stored_until: Micros,
}

impl Protocol for NostrProtocol {
    fn connect_url(&mut self, host: &SourceUrl, _processed: Option<Micros>) -> SourceUrl {
        self.relay = Some(host.clone());
        host.clone()
    }

    fn hello(&mut self, processed: Option<Micros>) -> Vec<String> {
        let now = crate::wall::now_us();
        let since = processed
            .map(|t| t / MICROS_PER_SEC - RESUME_OVERLAP_SECS)
            .unwrap_or(now / MICROS_PER_SEC);
        self.stored_since = Some(since.saturating_mul(MICROS_PER_SEC));
        self.stored_until = now.saturating_add(MAX_STORED_PHASE_US);
        vec![serde_json::json!(["REQ", SUBSCRIPTION, {"kinds": [1], "since": since}]).to_string()]
    }

    fn quiet(&self) -> bool {
        true
    }

    fn stored_since(&mut self, arrival_us: Micros) -> Option<Micros> {
        if self.stored_since.is_some() && arrival_us > self.stored_until {
            self.stored_since = None;
            tracing::warn!(
                relay = %self.relay.as_ref().map(|r| crate::source::url::relay_name(r.secret())).unwrap_or_default(),
                "the relay sent no EOSE within {} s of the subscription: its notes count as live from here (at their arrival)",
                MAX_STORED_PHASE_US / MICROS_PER_SEC
            );
        }
        self.stored_since
    }

    /// Every note is decoded here, on the relay's own task, its signature
    /// checked (`verify`): the pipeline's thread, which counts every
    /// source, judges what this hands over and checks nothing.
    fn check(
        &self,
        frame: &str,
        arrival_us: Micros,
        stored_since: Option<Micros>,
    ) -> Option<Checked> {
        let origin = Origin {
            instance: "",
            arrival_us: Some(arrival_us),
            stored_since,
        };
        Some(SourceKind::Nostr.check(frame.as_bytes(), &origin))
    }

    fn control(&mut self, frame: &str) -> Control {
        // Only the first parts are read: a note is parsed by the decoder,
        // not here as well.
        let Ok(message) = serde_json::from_str::<Vec<&RawValue>>(frame) else {
            return Control::Data;
        };
        let text = |i: usize| {
            message
                .get(i)
                .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
                .unwrap_or_default()
        };
        let ours = text(1) == SUBSCRIPTION;
        match text(0).as_str() {
            "EVENT" | "EOSE" | "CLOSED" if !ours => Control::Foreign,
            "EVENT" => Control::Data,
            "EOSE" => {
                self.stored_since = None;
                Control::Info("end of stored events; live notes follow".into())
            }
            "NOTICE" => Control::Info(format!("notice: {}", text(1))),
            "CLOSED" if refused_for_good(&text(2)) => Control::Refused(text(2)),
            "CLOSED" => Control::Reconnect(text(2)),
            "OK" | "AUTH" | "COUNT" => Control::Info(frame.to_owned()),
            // Not a relay message: the pipeline counts it as malformed
            // (see [`RELAY_MESSAGES`]), which is no data for the watchdog.
            _ => Control::Data,
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use k256::schnorr::SigningKey;
    use serde_json::Value;

    const NOW: Micros = 1_783_175_000 * MICROS_PER_SEC;

    /// A key made in the test from a seed (BIP-340 keys are any non-zero
    /// scalar below the group order; a sha256 of a seed is one).
    pub fn key(seed: &str) -> SigningKey {
        let bytes: [u8; 32] = Sha256::digest(seed.as_bytes()).into();
        SigningKey::from_bytes(&bytes.into()).expect("a valid secret key")
    }

    /// A signed note as a relay sends it.
    pub fn signed(
        signer: &SigningKey,
        created_at: i64,
        kind: u64,
        tags: Vec<Vec<String>>,
        content: &str,
    ) -> Value {
        let pubkey = hex::encode(signer.verifying_key().to_bytes());
        let id = event_id(&pubkey, created_at, kind, &tags, content);
        let sig = signer.sign_raw(&id, &[7u8; 32]).expect("sign");
        serde_json::json!({
            "id": hex::encode(id), "pubkey": pubkey, "created_at": created_at, "kind": kind,
            "tags": tags, "content": content, "sig": hex::encode(sig.to_bytes())
        })
    }

    fn frame(event: &Value) -> String {
        serde_json::json!(["EVENT", SUBSCRIPTION, event]).to_string()
    }

    fn note(kind: u64, created_at: i64) -> Value {
        let tags = vec![
            vec!["t".to_owned(), "discorddown".to_owned()],
            vec!["l".to_owned(), "en".to_owned(), "ISO-639-1".to_owned()],
            vec!["p".to_owned(), "x".to_owned()],
        ];
        signed(
            &key("alice"),
            created_at,
            kind,
            tags,
            "is discord down? \"quoted\"\n😀",
        )
    }

    /// The id is the sha256 of NIP-01's serialisation, written here by
    /// hand (escapes of `"`, `\\` and control characters, other characters
    /// as UTF-8, no white space) rather than by the serialiser under test.
    #[test]
    fn the_id_is_the_hash_of_nip_01s_serialisation() {
        let pubkey = "a".repeat(64);
        let tags = vec![
            vec!["t".to_owned(), "down".to_owned()],
            vec!["e".to_owned()],
        ];
        let content = "is \"x\" down?\n\\ 😀\u{1}";
        let canonical = format!(
            r#"[0,"{pubkey}",1783175000,1,[["t","down"],["e"]],"is \"x\" down?\n\\ 😀\u0001"]"#
        );
        let want: [u8; 32] = Sha256::digest(canonical.as_bytes()).into();
        assert_eq!(event_id(&pubkey, 1_783_175_000, 1, &tags, content), want);
        assert_eq!(
            event_id(&pubkey, 1_783_175_000, 1, &[], ""),
            <[u8; 32]>::from(Sha256::digest(format!(
                r#"[0,"{pubkey}",1783175000,1,[],""]"#
            )))
        );
    }

    /// A note of more tags than [`MAX_TAGS`] is malformed before they are
    /// read; one at the bound is read (and checked as any other).
    #[test]
    fn a_note_of_too_many_tags_is_malformed() {
        let with_tags = |n: usize| {
            let mut event = note(1, 1_783_174_990);
            event["tags"] = Value::Array(vec![serde_json::json!([]); n]);
            frame(&event)
        };
        let many = decode(with_tags(MAX_TAGS + 1).as_bytes(), Some(NOW), None);
        match many {
            Err(FrameError::BadRecord(why)) => {
                assert!(why.contains("more than 2000 tags"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        let bound = decode(with_tags(MAX_TAGS).as_bytes(), Some(NOW), None);
        assert_eq!(
            bound.map(|d| d.1),
            Err(FrameError::Unverified(reject::ID_MISMATCH)),
            "read, and its id no longer matches"
        );
    }

    #[test]
    fn only_iso_639_1_labels_declare_a_language() {
        let tag = |parts: &[&str]| parts.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
        // (tags, languages)
        let cases: [(Vec<Vec<String>>, &[&str]); 6] = [
            (vec![tag(&["l", "en", "ISO-639-1"])], &["en"]),
            (
                vec![tag(&["L", "ISO-639-1"]), tag(&["l", "pt", "iso-639-1"])],
                &["pt"],
            ),
            (
                vec![tag(&["L", "license"]), tag(&["l", "MIT", "license"])],
                &[],
            ),
            (vec![tag(&["l", "en"])], &[]),
            (vec![tag(&["t", "en", "ISO-639-1"])], &[]),
            (
                vec![
                    tag(&["l", "ja", "ISO-639-1"]),
                    tag(&["l", "x", "ugc"]),
                    tag(&["l"]),
                ],
                &["ja"],
            ),
        ];
        for (tags, want) in cases {
            assert_eq!(languages(&tags), want, "{tags:?}");
        }
    }

    #[test]
    fn a_signed_kind_one_note_is_a_post_at_its_arrival_time() {
        let event = note(1, 1_783_174_990);
        let (t, decoded) = decode(frame(&event).as_bytes(), Some(NOW), None).expect("decodes");
        assert_eq!(
            t,
            Some(NOW),
            "event time is the arrival time, not created_at"
        );
        let Decoded::Post(post) = decoded else {
            panic!("a post")
        };
        let id = event["id"].as_str().expect("id");
        assert_eq!(post.author, event["pubkey"].as_str().expect("pubkey"));
        assert_eq!(
            post.key,
            Some(crate::source::dedupe::key_of(&[NOTE_KEY, id]))
        );
        assert_ne!(
            post.key,
            Some(crate::source::dedupe::key_of(&[id])),
            "not the key of a Mastodon status whose uri is the note's id"
        );
        assert_eq!(post.uri, format!("nostr:{id}"));
        assert_eq!(post.text, "is discord down? \"quoted\"\n😀");
        assert_eq!(post.tags, vec!["discorddown"]);
        assert_eq!(post.langs, vec!["en"]);
    }

    #[test]
    fn the_authors_clock_moves_nothing_but_old_claims_are_backfill() {
        // Dated a year ahead: still now.
        let ahead = note(1, 1_783_175_000 + 365 * 86_400);
        let (t, decoded) = decode(frame(&ahead).as_bytes(), Some(NOW), None).expect("decodes");
        assert_eq!(t, Some(NOW));
        assert!(matches!(decoded, Decoded::Post(_)));
        // Claiming to be older than the de-duplication horizon: backfill.
        let old = note(1, 1_783_175_000 - 601);
        assert_eq!(
            decode(frame(&old).as_bytes(), Some(NOW), None),
            Ok((Some(NOW), Decoded::Skipped(SkipReason::Backfill)))
        );
        let recent = note(1, 1_783_175_000 - 599);
        assert!(matches!(
            decode(frame(&recent).as_bytes(), Some(NOW), None),
            Ok((_, Decoded::Post(_)))
        ));
        // Stored (before `EOSE`) yet dated after its arrival: history too.
        let since = Some(NOW - 3_600 * MICROS_PER_SEC);
        assert_eq!(
            decode(frame(&ahead).as_bytes(), Some(NOW), since),
            Ok((Some(NOW), Decoded::Skipped(SkipReason::Backfill)))
        );
        let a_fast_clock = note(1, 1_783_175_000 + 299);
        assert!(matches!(
            decode(frame(&a_fast_clock).as_bytes(), Some(NOW), since),
            Ok((Some(NOW), Decoded::Post(_)))
        ));
    }

    #[test]
    fn forged_rewritten_and_re_ided_notes_are_rejected_by_reason() {
        let good = note(1, 1_783_174_990);
        let mut cases: Vec<(Value, &str)> = Vec::new();
        let mut rewritten = good.clone();
        rewritten["content"] = "discord is down (rewritten by the relay)".into();
        cases.push((rewritten, reject::ID_MISMATCH));
        let mut redated = good.clone();
        redated["created_at"] = (1_783_174_991).into();
        cases.push((redated, reject::ID_MISMATCH));
        // Re-signed id by another key, presented under alice's pubkey.
        let mallory = signed(&key("mallory"), 1_783_174_990, 1, vec![], "discord down");
        let mut stolen = mallory.clone();
        stolen["pubkey"] = good["pubkey"].clone();
        stolen["id"] = hex::encode(event_id(
            good["pubkey"].as_str().expect("pk"),
            1_783_174_990,
            1,
            &[],
            "discord down",
        ))
        .into();
        cases.push((stolen, reject::SIG_INVALID));
        let mut zero_sig = good.clone();
        zero_sig["sig"] = "00".into();
        cases.push((zero_sig, reject::SIG_MALFORMED));
        let mut made_up = good.clone();
        made_up["id"] = "ab12".into();
        cases.push((made_up, reject::ID_MALFORMED));
        let mut upper = good.clone();
        upper["id"] = good["id"].as_str().expect("id").to_uppercase().into();
        cases.push((upper, reject::ID_MALFORMED));
        let mut bad_key = good.clone();
        bad_key["pubkey"] = "zz".repeat(32).into();
        cases.push((bad_key, reject::PUBKEY_MALFORMED));
        let mut flipped = good.clone();
        let sig = good["sig"].as_str().expect("sig");
        let last = if sig.ends_with('0') { "1" } else { "0" };
        flipped["sig"] = format!("{}{last}", &sig[..127]).into();
        cases.push((flipped, reject::SIG_INVALID));
        for (event, reason) in cases {
            assert_eq!(
                decode(frame(&event).as_bytes(), Some(NOW), None),
                Err(FrameError::Unverified(reason)),
                "{event}"
            );
        }
        assert!(decode(frame(&good).as_bytes(), Some(NOW), None).is_ok());
    }

    /// Every event's shape is checked before it is classified: a non-post
    /// or an old note with a made-up id is malformed, not skipped (and so
    /// not data for the watchdog); only a post's signature is checked.
    #[test]
    fn an_events_shape_is_checked_whatever_its_kind_or_age() {
        let junk: Value = serde_json::json!({
            "id": "", "pubkey": "", "created_at": 0, "kind": 7, "content": "", "sig": ""
        });
        let mut re_kinded = note(7, 1_783_174_990);
        re_kinded["kind"] = 6.into();
        let mut old_rewritten = note(1, 1_783_175_000 - 3600);
        old_rewritten["content"] = "rewritten".into();
        let mut bad_sig_reaction = note(7, 1_783_174_990);
        let sig = bad_sig_reaction["sig"].as_str().expect("sig").to_owned();
        let last = if sig.ends_with('0') { "1" } else { "0" };
        bad_sig_reaction["sig"] = format!("{}{last}", &sig[..127]).into();
        let mut no_sig = note(7, 1_783_174_990);
        no_sig["sig"] = "".into();
        // (event, outcome)
        let cases: Vec<(Value, Result<Decoded, FrameError>)> = vec![
            (junk, Err(FrameError::Unverified(reject::ID_MALFORMED))),
            (re_kinded, Err(FrameError::Unverified(reject::ID_MISMATCH))),
            (
                old_rewritten,
                Err(FrameError::Unverified(reject::ID_MISMATCH)),
            ),
            (no_sig, Err(FrameError::Unverified(reject::SIG_MALFORMED))),
            (bad_sig_reaction, Ok(Decoded::Skipped(SkipReason::NotAPost))),
            (
                note(7, 1_783_174_990),
                Ok(Decoded::Skipped(SkipReason::NotAPost)),
            ),
            (
                note(1, 1_783_175_000 - 3600),
                Ok(Decoded::Skipped(SkipReason::Backfill)),
            ),
        ];
        for (event, want) in cases {
            assert_eq!(
                decode(frame(&event).as_bytes(), Some(NOW), None).map(|d| d.1),
                want,
                "{event}"
            );
        }
    }

    #[test]
    fn every_message_type_is_handled() {
        assert_eq!(
            decode(frame(&note(7, 1_783_174_990)).as_bytes(), Some(NOW), None).map(|d| d.1),
            Ok(Decoded::Skipped(SkipReason::NotAPost))
        );
        for frame in [
            r#"["EOSE","outagewatch"]"#,
            r#"["NOTICE","slow down"]"#,
            r#"["CLOSED","outagewatch","rate-limited"]"#,
            r#"["OK","id",true,""]"#,
            r#"["AUTH","challenge"]"#,
            r#"["COUNT","outagewatch",{"count":1}]"#,
        ] {
            assert_eq!(
                decode(frame.as_bytes(), Some(NOW), None).map(|d| d.1),
                Ok(Decoded::Skipped(SkipReason::ServerNotice)),
                "{frame}"
            );
        }
        // No relay message: malformed, never a skip (a skip of a known
        // kind is data for the source's health).
        for bad in [
            r#"["X"]"#,
            r#"["event","outagewatch",{}]"#,
            r#"["NOTICES","x"]"#,
            r#"[""]"#,
            "{}",
            "[]",
            "[1]",
            r#"["EVENT","s"]"#,
            r#"["EVENT","s",{"id":1}]"#,
            "nope",
        ] {
            assert!(decode(bad.as_bytes(), Some(NOW), None).is_err(), "{bad}");
        }
        // A correctly signed note whose time has no microsecond count is
        // malformed for its time; one dated before 1970 is history.
        let signer = key("alice");
        let far = frame(&signed(&signer, i64::MAX, 1, vec![], "is x down"));
        match decode(far.as_bytes(), Some(NOW), None) {
            Err(FrameError::BadRecord(why)) => assert!(why.contains("out of range"), "{why}"),
            other => panic!("{other:?}"),
        }
        let before = frame(&signed(&signer, -1, 1, vec![], "is x down"));
        assert_eq!(
            decode(before.as_bytes(), Some(NOW), None).map(|d| d.1),
            Ok(Decoded::Skipped(SkipReason::Backfill))
        );
    }

    /// A Nostr source reads every relay at once, one connection each,
    /// named after the relay; one relay keeps the source's name.
    #[test]
    fn one_connection_per_relay() {
        let mut source = crate::config::SourceConfig::jetstream(
            "nostr",
            vec!["wss://relay.one".into(), "ws://127.0.0.1:7000/r".into()],
        );
        source.kind = super::super::SourceKind::Nostr;
        let connections = source.connections();
        let names: Vec<&str> = connections.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["nostr:relay.one", "nostr:127.0.0.1:7000/r"]);
        assert_eq!(connections[1].urls, ["ws://127.0.0.1:7000/r".into()]);
        assert_eq!(connections[1].instance(), "127.0.0.1:7000");
        source.urls.truncate(1);
        let one = source.connections();
        assert_eq!((one.len(), one[0].name.as_str()), (1, "nostr"));
        source.kind = super::super::SourceKind::Jetstream;
        source.urls.push("wss://two".into());
        assert_eq!(
            source.connections().len(),
            1,
            "Jetstream fails over instead"
        );
    }

    /// A stored note (before `EOSE`) is placed at its claim within the
    /// range its `REQ` asked for; a live one at its arrival.
    #[test]
    fn a_stored_note_is_placed_at_its_claim_within_the_catch_up() {
        const S: Micros = MICROS_PER_SEC;
        let since = NOW - 570 * S;
        // (claimed, arrival, stored since, event time)
        let cases = [
            (NOW - 300 * S, Some(NOW), Some(since), NOW - 300 * S),
            (NOW - 590 * S, Some(NOW), Some(since), since),
            (NOW + 3600 * S, Some(NOW), Some(since), NOW),
            (NOW - 300 * S, Some(NOW), None, NOW),
            (NOW + 3600 * S, Some(NOW), None, NOW),
            (NOW - 300 * S, None, None, NOW - 300 * S),
            // A since after the arrival (a clock stepped back): the arrival.
            (NOW - 300 * S, Some(NOW), Some(NOW + S), NOW),
        ];
        for (claimed, arrival, stored, want) in cases {
            assert_eq!(
                event_time(claimed, arrival, stored),
                want,
                "{claimed} {arrival:?} {stored:?}"
            );
        }
        let event = note(1, (NOW - 300 * S) / S);
        let (t, decoded) = decode(frame(&event).as_bytes(), Some(NOW), Some(since)).expect("ok");
        assert_eq!(t, Some(NOW - 300 * S));
        assert!(matches!(decoded, Decoded::Post(ref p) if p.time_us == NOW - 300 * S));
        // Older than the horizon before its arrival: backfill all the same.
        let old = note(1, (NOW - 601 * S) / S);
        assert_eq!(
            decode(frame(&old).as_bytes(), Some(NOW), Some(NOW - 900 * S)).map(|d| d.1),
            Ok(Decoded::Skipped(SkipReason::Backfill))
        );
    }

    /// Notes are stored from the `REQ` until the `EOSE` of this
    /// subscription, on every connection, and at most
    /// [`MAX_STORED_PHASE_US`] after the `REQ`: a relay that never sends
    /// `EOSE` cannot have its live notes placed at their authors' claims.
    #[test]
    fn stored_until_this_subscriptions_eose() {
        const S: Micros = MICROS_PER_SEC;
        let mut p = NostrProtocol::default();
        let soon = crate::wall::now_us() + S;
        assert_eq!(p.stored_since(soon), None);
        p.hello(Some(1_000 * MICROS_PER_SEC));
        assert_eq!(p.stored_since(soon), Some(995 * MICROS_PER_SEC));
        p.control(r#"["EOSE","another"]"#);
        assert_eq!(p.stored_since(soon), Some(995 * MICROS_PER_SEC));
        p.control(r#"["EOSE","outagewatch"]"#);
        assert_eq!(p.stored_since(soon), None);
        p.hello(Some(2_000 * MICROS_PER_SEC));
        assert_eq!(p.stored_since(soon), Some(1_995 * MICROS_PER_SEC));

        // No `EOSE`: ten thousand notes keep it stored only until the
        // limit, and it stays live after.
        let mut p = NostrProtocol::default();
        p.hello(Some(NOW - 60 * S));
        let start = crate::wall::now_us();
        let stored = frame(&note(1, 1_783_175_000));
        for _ in 0..10_000 {
            p.control(&stored);
        }
        assert_eq!(p.stored_since(start + S), Some(NOW - 65 * S));
        let late = start + MAX_STORED_PHASE_US + 2 * S;
        assert_eq!(p.stored_since(late), None);
        assert_eq!(p.stored_since(start + S), None, "over for this connection");
    }

    #[test]
    fn subscription_and_control() {
        let mut p = NostrProtocol::default();
        assert_eq!(
            p.hello(Some(1_000 * MICROS_PER_SEC)),
            vec![r#"["REQ","outagewatch",{"kinds":[1],"since":995}]"#.to_owned()]
        );
        // (message, control)
        let cases = [
            (
                r#"["CLOSED","outagewatch","auth-required: x"]"#,
                Control::Refused("auth-required: x".into()),
            ),
            (
                r#"["CLOSED","outagewatch","restricted: paid relay"]"#,
                Control::Refused("restricted: paid relay".into()),
            ),
            (
                r#"["CLOSED","outagewatch","blocked: you"]"#,
                Control::Refused("blocked: you".into()),
            ),
            (
                r#"["CLOSED","outagewatch","rate-limited: slow down"]"#,
                Control::Reconnect("rate-limited: slow down".into()),
            ),
            (
                r#"["CLOSED","outagewatch","error: auth-required: later"]"#,
                Control::Reconnect("error: auth-required: later".into()),
            ),
            (r#"["CLOSED","other","blocked: x"]"#, Control::Foreign),
            (r#"["CLOSED","other","rate-limited"]"#, Control::Foreign),
            (r#"["EOSE","other"]"#, Control::Foreign),
            (r#"["EVENT","other",{}]"#, Control::Foreign),
            (r#"["EVENT",7,{}]"#, Control::Foreign),
            (r#"["EVENT","outagewatch",{}]"#, Control::Data),
        ];
        for (message, control) in cases {
            assert_eq!(p.control(message), control, "{message}");
        }
        assert!(matches!(
            p.control(r#"["EOSE","outagewatch"]"#),
            Control::Info(_)
        ));
        assert_eq!(p.control(&frame(&note(1, 1))), Control::Data);
    }
}
