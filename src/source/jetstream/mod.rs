//! Bluesky Jetstream: both wires (`protocols.md` §1 and §1b) and their
//! dictionary-zstd compression.
//!
//! - `v1`: the `/subscribe` wire, `{"did","time_us","kind",...}` frames,
//!   resumed by event time (with an overlap that is de-duplicated).
//! - `v2`: `/xrpc/network.bsky.jetstream.subscribeEvents`, the
//!   `xrpc.v1.json` subprotocol, `{"$type":"message","payload":{...}}`
//!   frames with a per-server sequence number, resumed exactly by it.
//! - [`compression`]: the dictionaries (v1's ships in the binary, v2's is
//!   fetched from the server and cached) and the bounded decompressor.
//! - [`protocol`]: the connection (cursors, control frames, refusals) for
//!   [`crate::source::ws`]; the URLs it asks for and the HTTP client are in
//!   `url`.
//!
//! Decoding is a pure function of the (decompressed) frame's text, and one
//! decoder reads both wires, told apart by their fields, so a recording
//! holding either replays through the same pipeline. It reads the envelope
//! and the record in one pass ([`parse_frame`]); before that, `skim`
//! recognises the likes, follows and reposts that make up most of the
//! firehose by a few key lookups, without parsing them.

pub mod compression;
pub mod protocol;
mod skim;
mod url;
mod v1;
mod v2;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

pub use protocol::{JetstreamOptions, JetstreamProtocol, SeqCursor, Wire};

pub use super::Frame;
use super::kind::{Connection, Link, Origin, Source, Task};
use super::server;
use super::{Decoded, FrameError, RawPost, SkipReason, parse_json};
use crate::{MICROS_PER_SEC, Micros};

/// The collection that holds posts.
pub const POST_COLLECTION: &str = "app.bsky.feed.post";

/// The v2 endpoint's path.
pub const V2_PATH: &str = "/xrpc/network.bsky.jetstream.subscribeEvents";
/// The v1 endpoint's path.
pub const V1_PATH: &str = "/subscribe";

/// The public Jetstream hosts, in the order they are tried. The path picks
/// nothing: each source's `protocol` decides which endpoint is used.
pub const PUBLIC_HOSTS: [&str; 4] = [
    "wss://jetstream1.us-east.bsky.network/subscribe",
    "wss://jetstream2.us-east.bsky.network/subscribe",
    "wss://jetstream1.us-west.bsky.network/subscribe",
    "wss://jetstream2.us-west.bsky.network/subscribe",
];

/// How far before the last processed event a connection resumed by time
/// starts: `time_us` is only nearly increasing, so the events just before
/// the cursor may not all have been seen. The overlap is de-duplicated.
pub const RESUME_OVERLAP_US: Micros = 5 * MICROS_PER_SEC;

/// The Jetstream source kind: Bluesky's firehose, v1 or v2, hosts tried
/// in turn.
pub struct Jetstream;

impl Source for Jetstream {
    fn decode(&self, frame: &[u8], _origin: &Origin<'_>) -> Result<Frame, FrameError> {
        decode_frame(frame)
    }

    /// A `did:web` identity's domain, which its holder can mint without
    /// end under subdomains ([`server::did_web_host`]). A `did:plc` account
    /// counts alone: the frame does not say which server holds it.
    fn server_of(&self, author: &str, _connection: &str) -> Option<String> {
        server::did_web_host(author).map(server::account_server)
    }

    fn run(&self, connection: Connection, link: Link) -> Task {
        let protocol = JetstreamProtocol::new(JetstreamOptions {
            state_dir: link.state_dir.clone(),
            resume: link.resume.clone(),
            ..connection.jetstream
        });
        Box::pin(super::ws::run(
            connection.urls,
            connection.settings,
            protocol,
            link,
        ))
    }
}

/// The top level of a frame of either wire, read in one pass: v1 fields,
/// and v2's `$type` with its `payload` (or `error`).
#[derive(Deserialize)]
struct Envelope<'a, R = &'a RawValue> {
    #[serde(rename = "$type", borrow)]
    kind_v2: Option<Cow<'a, str>>,
    #[serde(borrow)]
    did: Option<Cow<'a, str>>,
    time_us: Option<i64>,
    cursor: Option<u64>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    commit: Option<v1::Commit<'a, R>>,
    /// Boxed: a v2 payload is larger than all the rest of the envelope,
    /// which v1 frames (the recordings' wire) carried and copied empty.
    #[serde(borrow)]
    payload: Option<Box<v2::Payload<'a, R>>>,
    #[serde(borrow)]
    error: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
}

/// Decodes one frame of either wire. Unknown fields are ignored; unknown
/// kinds are skipped and counted rather than rejected, as the protocol grows.
pub fn decode(frame: &[u8]) -> Result<Decoded, FrameError> {
    decode_frame(frame).map(|f| f.decoded)
}

/// [`decode`], with the frame's event time (posts and non-posts alike).
pub fn decode_with_time(frame: &[u8]) -> Result<(Option<Micros>, Decoded), FrameError> {
    decode_frame(frame).map(|f| (f.time_us, f.decoded))
}

/// [`decode`], with the frame's event time and sequence number: the
/// `skim`'s answer when it vouches for one, else [`parse_frame`]'s.
pub fn decode_frame(frame: &[u8]) -> Result<Frame, FrameError> {
    skim::non_post(frame).map_or_else(|| parse_frame(frame), Ok)
}

pub use skim::non_post as skim_non_post;

/// The full decoder: parses the whole frame and reports what is wrong
/// with it. [`decode_frame`] uses it for every frame the skim declines.
///
/// One pass reads the envelope and the record together (a post's record
/// is otherwise scanned twice). That pass may fail where the decoder
/// that keeps the record raw would not (a record of another collection
/// that does not fit a post's shape) or report a fault differently (a
/// bad record as bad JSON), so whatever it cannot decode is decoded again
/// by `parse_frame_exact`, which gives the answer and the fault. When the
/// one pass succeeds, the other would have too, with the same result: it is
/// the same parser over the same bytes, the record read to the same type.
pub fn parse_frame(frame: &[u8]) -> Result<Frame, FrameError> {
    parse_json::<Envelope<'_, EagerRecord>>(frame)
        .and_then(route)
        .or_else(|_| parse_frame_exact(frame))
}

/// The decoder that keeps the record raw and parses it only for a post
/// create: the reference for [`parse_frame`], and its fallback.
fn parse_frame_exact(frame: &[u8]) -> Result<Frame, FrameError> {
    route(parse_json::<Envelope<'_>>(frame)?)
}

fn route<R: Record>(envelope: Envelope<'_, R>) -> Result<Frame, FrameError> {
    if envelope.kind_v2.is_some() {
        v2::decode(envelope)
    } else {
        v1::decode(envelope)
    }
}

/// A commit's record as the envelope's pass leaves it.
trait Record {
    /// The record as a post's.
    fn post(self) -> Result<PostRecord, FrameError>;
}

/// Kept raw: parsed only when the commit creates a post.
impl Record for &RawValue {
    fn post(self) -> Result<PostRecord, FrameError> {
        serde_json::from_str(self.get()).map_err(|e| FrameError::BadRecord(e.to_string()))
    }
}

/// Read as a post's record in the envelope's pass, whatever the commit.
#[derive(Deserialize)]
#[serde(transparent)]
struct EagerRecord(PostRecord);

impl Record for EagerRecord {
    fn post(self) -> Result<PostRecord, FrameError> {
        Ok(self.0)
    }
}

/// The parts of a commit both wires share.
struct CommitOp<'a, R> {
    operation: &'a str,
    collection: &'a str,
    rkey: &'a str,
    rev: Option<&'a str>,
    record: Option<R>,
}

#[derive(Deserialize)]
struct PostRecord {
    text: Option<String>,
    #[serde(default)]
    langs: Vec<String>,
    #[serde(default)]
    facets: Vec<Facet>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
struct Facet {
    #[serde(default)]
    features: Vec<Feature>,
}

#[derive(Deserialize)]
struct Feature {
    #[serde(rename = "$type", default)]
    kind: String,
    tag: Option<String>,
}

const TAG_FEATURE: &str = "app.bsky.richtext.facet#tag";

/// A commit of either wire: a post create becomes a [`RawPost`], the rest
/// are skipped with their reason. `record_field` names the record in errors.
fn commit_to_post<R: Record>(
    time_us: Micros,
    did: Option<&str>,
    commit: CommitOp<'_, R>,
    record_field: &'static str,
) -> Result<Decoded, FrameError> {
    if commit.collection != POST_COLLECTION {
        return Ok(Decoded::Skipped(SkipReason::NotAPost));
    }
    match commit.operation {
        "create" => {}
        "update" => return Ok(Decoded::Skipped(SkipReason::PostUpdate)),
        "delete" => return Ok(Decoded::Skipped(SkipReason::PostDelete)),
        _ => return Ok(Decoded::Skipped(SkipReason::UnknownOperation)),
    }
    let did = did.ok_or(FrameError::MissingField("did"))?;
    let record = commit
        .record
        .ok_or(FrameError::MissingField(record_field))?;
    let record = record.post()?;
    let text = record.text.ok_or(FrameError::PostWithoutText)?;
    let mut tags = record.tags;
    tags.extend(
        record
            .facets
            .into_iter()
            .flat_map(|facet| facet.features)
            .filter(|feature| feature.kind == TAG_FEATURE)
            .filter_map(|feature| feature.tag),
    );
    Ok(Decoded::Post(Box::new(RawPost {
        time_us,
        key: Some(super::dedupe::key_of(&[
            did,
            POST_COLLECTION,
            commit.rkey,
            commit.rev.unwrap_or(""),
        ])),
        // Joined rather than `format!`ted: this runs for every post, and
        // the formatting machinery cost more than the rest of the decode.
        uri: ["at://", did, "/", POST_COLLECTION, "/", commit.rkey].concat(),
        author: did.to_owned(),
        text,
        langs: record.langs,
        tags,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same events on both wires decode to the same posts, times and
    /// skip reasons; v2 adds the sequence number.
    #[test]
    fn both_wires_decode_the_same_events_alike() {
        let cases = [
            (
                r##"{"did":"did:plc:a","time_us":1725911162329308,"kind":"commit","commit":{"rev":"r1","operation":"create","collection":"app.bsky.feed.post","rkey":"k1","record":{"text":"is #TwitterDown","langs":["en"],"facets":[{"features":[{"$type":"app.bsky.richtext.facet#tag","tag":"TwitterDown"}]}]},"cid":"c"}}"##,
                r##"{"$type":"message","payload":{"$type":"network.bsky.jetstream.subscribeEvents#commit","seq":7,"did":"did:plc:a","time":"2024-09-09T19:46:02.329308Z","rev":"r1","operation":"create","collection":"app.bsky.feed.post","rkey":"k1","cid":"c","record":{"text":"is #TwitterDown","langs":["en"],"facets":[{"features":[{"$type":"app.bsky.richtext.facet#tag","tag":"TwitterDown"}]}]}}}"##,
            ),
            (
                r#"{"did":"d","time_us":1725911162000000,"kind":"commit","commit":{"rev":"r","operation":"delete","collection":"app.bsky.feed.post","rkey":"k"}}"#,
                r#"{"payload":{"seq":8,"did":"d","time":"2024-09-09T19:46:02.000000Z","rev":"r","operation":"delete","collection":"app.bsky.feed.post","rkey":"k","$type":"network.bsky.jetstream.subscribeEvents#commit"},"$type":"message"}"#,
            ),
            (
                r#"{"did":"d","time_us":1725911162000001,"kind":"identity","identity":{"did":"d","seq":1,"time":"t"}}"#,
                r#"{"$type":"message","payload":{"$type":"network.bsky.jetstream.subscribeEvents#identity","seq":9,"did":"d","time":"2024-09-09T19:46:02.000001Z","identity":{"did":"d","seq":1,"time":"t"}}}"#,
            ),
            (
                r#"{"did":"d","time_us":1725911162000002,"kind":"account","account":{"active":true}}"#,
                r##"{"$type":"message","payload":{"$type":"#account","seq":10,"did":"d","time":"2024-09-09T19:46:02.000002Z","account":{"active":true}}}"##,
            ),
        ];
        for (one, two) in cases {
            let a = decode_frame(one.as_bytes()).expect(one);
            let b = decode_frame(two.as_bytes()).expect(two);
            assert_eq!(a.time_us, b.time_us, "{two}");
            assert_eq!(a.decoded, b.decoded, "{two}");
            assert_eq!(a.seq, None);
            assert!(b.seq.is_some());
        }
    }

    /// The one pass decodes every frame as the raw-record decoder does,
    /// faults and their messages included: on sample frames of each kind,
    /// cut at every byte and with each byte replaced by ones that damage
    /// JSON, and with a key repeated.
    #[test]
    fn the_one_pass_decodes_exactly_as_the_raw_record_decoder() {
        let samples = [
            r##"{"did":"did:plc:a","time_us":1725911162329308,"kind":"commit","commit":{"rev":"r1","operation":"create","collection":"app.bsky.feed.post","rkey":"k1","record":{"$type":"app.bsky.feed.post","text":"is #TwitterDown \u00e9\n","langs":["en"],"tags":["x"],"facets":[{"features":[{"$type":"app.bsky.richtext.facet#tag","tag":"TwitterDown"}],"index":{"byteStart":3,"byteEnd":15}}],"reply":{"root":{"cid":"c","uri":"u"}}},"cid":"c"}}"##,
            r#"{"did":"d","time_us":1725911162000000,"kind":"commit","commit":{"rev":"r","operation":"delete","collection":"app.bsky.feed.post","rkey":"k"}}"#,
            r#"{"did":"d","time_us":1,"kind":"commit","commit":{"rev":"r","operation":"update","collection":"app.bsky.feed.post","rkey":"k","record":{"text":"edited"}}}"#,
            r#"{"did":"d","time_us":1,"kind":"commit","commit":{"rev":"r","operation":"create","collection":"app.bsky.feed.like","rkey":"k","record":{"subject":{"cid":"c"},"text":5,"langs":"x"}}}"#,
            r#"{"did":"d","time_us":1725911162000001,"kind":"identity","identity":{"did":"d","seq":1,"time":"t"}}"#,
            r##"{"$type":"message","payload":{"$type":"network.bsky.jetstream.subscribeEvents#commit","seq":7,"did":"did:plc:a","time":"2024-09-09T19:46:02.329308Z","rev":"r1","operation":"create","collection":"app.bsky.feed.post","rkey":"k1","cid":"c","record":{"text":"down?","langs":["en"],"facets":[{"features":[{"$type":"app.bsky.richtext.facet#tag","tag":"Down"}]}]}}}"##,
            r#"{"$type":"error","error":"ConsumerTooSlow","message":"slow"}"#,
        ];
        let check = |frame: &[u8]| {
            assert_eq!(
                parse_frame(frame),
                parse_frame_exact(frame),
                "{}",
                String::from_utf8_lossy(frame)
            );
        };
        let damage: &[u8] = b"\"\\{}[],:0-.ex \x01\xff";
        for sample in samples {
            let bytes = sample.as_bytes();
            check(bytes);
            for end in 0..bytes.len() {
                check(&bytes[..end]);
                for &b in damage {
                    let mut damaged = bytes.to_vec();
                    damaged[end] = b;
                    check(&damaged);
                }
            }
            for key in ["\"record\":", "\"text\":", "\"collection\":", "\"langs\":"] {
                if let Some(at) = sample.find(key) {
                    let end = sample[at..].find(',').map_or(sample.len(), |e| at + e + 1);
                    let repeated = format!("{}{}", &sample[..end], &sample[at..]);
                    check(repeated.as_bytes());
                }
            }
        }
    }

    #[test]
    fn a_v1_frame_from_a_v2_server_keeps_its_sequence_number() {
        let f = decode_frame(br#"{"did":"d","time_us":5,"kind":"account","cursor":31527015322}"#)
            .expect("decodes");
        assert_eq!(f.seq, Some(31_527_015_322));
    }
}
