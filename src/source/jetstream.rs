//! Bluesky Jetstream v1 frames (see `protocols.md` §1).
//!
//! Decoding is a pure function of the frame's bytes. It reads the envelope
//! first and parses a record only for post creates, so the likes, follows
//! and reposts that make up most of the firehose cost one validating scan.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::ws::Protocol;
use super::{Decoded, FrameError, RawPost, SkipReason};
use crate::{MICROS_PER_SEC, Micros};

/// The collection that holds posts.
pub const POST_COLLECTION: &str = "app.bsky.feed.post";

/// The public Jetstream hosts, in the order they are tried.
pub const PUBLIC_HOSTS: [&str; 4] = [
    "wss://jetstream1.us-east.bsky.network/subscribe",
    "wss://jetstream2.us-east.bsky.network/subscribe",
    "wss://jetstream1.us-west.bsky.network/subscribe",
    "wss://jetstream2.us-west.bsky.network/subscribe",
];

/// How far before the last processed event a resumed connection starts:
/// `time_us` is only nearly increasing, so the events just before the
/// cursor may not all have been seen. The overlap is de-duplicated.
pub const RESUME_OVERLAP_US: Micros = 5 * MICROS_PER_SEC;

/// Jetstream's connection: posts only, resumed from the last processed
/// event minus the overlap.
#[derive(Debug, Default)]
pub struct JetstreamProtocol;

impl Protocol for JetstreamProtocol {
    fn connect_url(&mut self, host: &str, processed: Option<Micros>) -> String {
        subscribe_url(host, processed.map(|t| t - RESUME_OVERLAP_US))
    }
}

/// `host` with `wantedCollections` (unless the host names its own) and the
/// cursor (replacing any cursor already in the URL).
pub fn subscribe_url(host: &str, cursor: Option<Micros>) -> String {
    let Ok(mut url) = reqwest::Url::parse(host) else {
        return host.to_owned();
    };
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "cursor")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let wants_collections = kept.iter().any(|(k, _)| k == "wantedCollections");
    {
        let mut query = url.query_pairs_mut();
        query.clear();
        for (k, v) in &kept {
            query.append_pair(k, v);
        }
        if !wants_collections {
            query.append_pair("wantedCollections", POST_COLLECTION);
        }
        if let Some(cursor) = cursor {
            query.append_pair("cursor", &cursor.to_string());
        }
    }
    url.to_string()
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    did: Option<Cow<'a, str>>,
    time_us: Option<i64>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    commit: Option<Commit<'a>>,
}

#[derive(Deserialize)]
struct Commit<'a> {
    #[serde(borrow)]
    operation: Cow<'a, str>,
    #[serde(borrow)]
    collection: Cow<'a, str>,
    #[serde(borrow)]
    rkey: Cow<'a, str>,
    #[serde(borrow)]
    rev: Option<Cow<'a, str>>,
    #[serde(borrow)]
    record: Option<&'a RawValue>,
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

/// Decodes one Jetstream v1 frame. Unknown fields are ignored; unknown kinds
/// are skipped and counted rather than rejected, as the protocol grows.
pub fn decode(frame: &[u8]) -> Result<Decoded, FrameError> {
    decode_with_time(frame).map(|(_, decoded)| decoded)
}

/// [`decode`], with the frame's `time_us` (posts and non-posts alike): the
/// cursor a live source resumes from.
pub fn decode_with_time(frame: &[u8]) -> Result<(i64, Decoded), FrameError> {
    let text = std::str::from_utf8(frame).map_err(|e| FrameError::InvalidUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let envelope: Envelope<'_> =
        serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
    let kind = envelope.kind.ok_or(FrameError::MissingField("kind"))?;
    let time_us = envelope
        .time_us
        .ok_or(FrameError::MissingField("time_us"))?;
    match kind.as_ref() {
        "commit" => {}
        "identity" => return Ok((time_us, Decoded::Skipped(SkipReason::Identity))),
        "account" => return Ok((time_us, Decoded::Skipped(SkipReason::Account))),
        _ => return Ok((time_us, Decoded::Skipped(SkipReason::UnknownKind))),
    }
    let commit = envelope.commit.ok_or(FrameError::MissingField("commit"))?;
    if commit.collection != POST_COLLECTION {
        return Ok((time_us, Decoded::Skipped(SkipReason::OtherCollection)));
    }
    match commit.operation.as_ref() {
        "create" => {}
        "update" => return Ok((time_us, Decoded::Skipped(SkipReason::PostUpdate))),
        _ => return Ok((time_us, Decoded::Skipped(SkipReason::PostDelete))),
    }
    let did = envelope.did.ok_or(FrameError::MissingField("did"))?;
    let record = commit
        .record
        .ok_or(FrameError::MissingField("commit.record"))?;
    let record: PostRecord =
        serde_json::from_str(record.get()).map_err(|e| FrameError::BadRecord(e.to_string()))?;
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
    Ok((
        time_us,
        Decoded::Post(RawPost {
            time_us,
            key: super::dedupe::key_of(&[
                &did,
                POST_COLLECTION,
                &commit.rkey,
                commit.rev.as_deref().unwrap_or(""),
            ]),
            uri: format!("at://{did}/{POST_COLLECTION}/{}", commit.rkey),
            author: did.into_owned(),
            text,
            langs: record.langs,
            tags,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_url_table() {
        let cases = [
            (
                "wss://h/subscribe",
                None,
                "wss://h/subscribe?wantedCollections=app.bsky.feed.post",
            ),
            (
                "wss://h/subscribe",
                Some(1_700_000_000_000_000),
                "wss://h/subscribe?wantedCollections=app.bsky.feed.post&cursor=1700000000000000",
            ),
            (
                "ws://127.0.0.1:9/subscribe?cursor=5&wantedCollections=app.bsky.feed.*",
                Some(7),
                "ws://127.0.0.1:9/subscribe?wantedCollections=app.bsky.feed.*&cursor=7",
            ),
        ];
        for (host, cursor, want) in cases {
            assert_eq!(subscribe_url(host, cursor), want);
        }
        assert_eq!(
            JetstreamProtocol.connect_url("wss://h/s", Some(10 * MICROS_PER_SEC)),
            "wss://h/s?wantedCollections=app.bsky.feed.post&cursor=5000000",
            "resumes five seconds before the last processed event"
        );
    }

    fn post(line: &str) -> RawPost {
        match decode(line.as_bytes()) {
            Ok(Decoded::Post(post)) => post,
            other => panic!("expected a post from {line}, got {other:?}"),
        }
    }

    #[test]
    fn post_create_carries_text_langs_tags_and_uri() {
        let p = post(
            r##"{"did":"did:plc:a","time_us":1700000000000001,"kind":"commit","commit":{"rev":"r","operation":"create","collection":"app.bsky.feed.post","rkey":"k1","record":{"$type":"app.bsky.feed.post","text":"is #TwitterDown","langs":["en"],"tags":["outage"],"facets":[{"features":[{"$type":"app.bsky.richtext.facet#tag","tag":"TwitterDown"}],"index":{"byteStart":3,"byteEnd":15}},{"features":[{"$type":"app.bsky.richtext.facet#link","uri":"https://x.com"}],"index":{"byteStart":0,"byteEnd":2}}],"future":{"field":1}},"cid":"c"},"newfield":true}"##,
        );
        assert_eq!(p.time_us, 1_700_000_000_000_001);
        assert_eq!(p.author, "did:plc:a");
        assert_eq!(p.uri, "at://did:plc:a/app.bsky.feed.post/k1");
        assert_eq!(p.text, "is #TwitterDown");
        assert_eq!(p.langs, vec!["en"]);
        assert_eq!(p.tags, vec!["outage", "TwitterDown"]);
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let p = post(
            r#"{"did":"did:plc:\u0061","time_us":1,"kind":"commit","commit":{"operation":"create","collection":"app.bsky.feed.post","rkey":"k","record":{"text":"line\nbreak \"quoted\" \ud83d\ude00"}}}"#,
        );
        assert_eq!(p.author, "did:plc:a");
        assert_eq!(p.text, "line\nbreak \"quoted\" 😀");
    }

    #[test]
    fn non_posts_are_skipped_with_their_reason() {
        let cases = [
            (
                r#"{"did":"d","time_us":1,"kind":"commit","commit":{"rev":"r","operation":"create","collection":"app.bsky.feed.like","rkey":"k","record":{"subject":{}}}}"#,
                SkipReason::OtherCollection,
            ),
            (
                r#"{"did":"d","time_us":1,"kind":"commit","commit":{"rev":"r","operation":"delete","collection":"app.bsky.feed.post","rkey":"k"}}"#,
                SkipReason::PostDelete,
            ),
            (
                r#"{"did":"d","time_us":1,"kind":"commit","commit":{"rev":"r","operation":"update","collection":"app.bsky.feed.post","rkey":"k","record":{"text":"edited"}}}"#,
                SkipReason::PostUpdate,
            ),
            (
                r#"{"did":"d","time_us":1,"kind":"identity","identity":{"did":"d","seq":1,"time":"t"}}"#,
                SkipReason::Identity,
            ),
            (
                r#"{"did":"d","time_us":1,"kind":"account","account":{"active":true}}"#,
                SkipReason::Account,
            ),
            (
                r#"{"did":"d","time_us":1,"kind":"sync"}"#,
                SkipReason::UnknownKind,
            ),
        ];
        for (line, reason) in cases {
            assert_eq!(
                decode(line.as_bytes()),
                Ok(Decoded::Skipped(reason)),
                "{line}"
            );
        }
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        let cases: [(&[u8], &str); 8] = [
            (b"{\"did\":", "bad JSON"),
            (b"not json at all", "bad JSON"),
            (b"[1,2,3]", "bad JSON"),
            (b"{\"did\":\"d\",\"kind\":\"commit\"}", "missing field `time_us`"),
            (b"{\"time_us\":1,\"did\":\"d\"}", "missing field `kind`"),
            (
                b"{\"did\":\"d\",\"time_us\":1,\"kind\":\"commit\",\"commit\":{\"operation\":\"create\",\"collection\":\"app.bsky.feed.post\",\"rkey\":\"k\",\"record\":{\"langs\":[\"en\"]}}}",
                "post record has no `text`",
            ),
            (
                b"{\"did\":\"d\",\"time_us\":1,\"kind\":\"commit\",\"commit\":{\"operation\":\"create\",\"collection\":\"app.bsky.feed.post\",\"rkey\":\"k\",\"record\":{\"text\":5}}}",
                "bad post record",
            ),
            (b"{\"text\":\"caf\xc3\x28\"}", "invalid UTF-8 after byte 12"),
        ];
        for (line, expected) in cases {
            let err = decode(line).expect_err("must be rejected");
            assert!(
                err.to_string().contains(expected),
                "{:?}: got `{err}`, expected `{expected}`",
                String::from_utf8_lossy(line)
            );
        }
    }
}
