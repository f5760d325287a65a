//! Bluesky Jetstream v1 frames (`/subscribe`; `protocols.md` §1).
//!
//! Decoding is a pure function of the frame's bytes. It reads the envelope
//! and the record in one pass (see `super::parse_frame`); a frame that pass
//! cannot decode is decoded again with the record kept raw and parsed only
//! for a post create, which reports the fault.

use std::borrow::Cow;

use serde::Deserialize;

use super::{Envelope, Frame};
use crate::source::{Decoded, FrameError, SkipReason};

/// A v1 frame's `commit` object.
#[derive(Deserialize)]
pub(super) struct Commit<'a, R> {
    #[serde(borrow)]
    operation: Cow<'a, str>,
    #[serde(borrow)]
    collection: Cow<'a, str>,
    #[serde(borrow)]
    rkey: Cow<'a, str>,
    #[serde(borrow)]
    rev: Option<Cow<'a, str>>,
    record: Option<R>,
}

/// A v1 frame (`{"did","time_us","kind",...}`). Unknown fields are ignored
/// (a v2 server adds `"cursor": seq`, kept as the frame's sequence number);
/// unknown kinds are skipped and counted rather than rejected, as the
/// protocol grows.
pub(super) fn decode<R: super::Record>(envelope: Envelope<'_, R>) -> Result<Frame, FrameError> {
    let kind = envelope.kind.ok_or(FrameError::MissingField("kind"))?;
    let time_us = envelope
        .time_us
        .ok_or(FrameError::MissingField("time_us"))?;
    let frame = |decoded| Frame {
        time_us: Some(time_us),
        seq: envelope.cursor,
        decoded,
    };
    match kind.as_ref() {
        "commit" => {}
        "identity" => return Ok(frame(Decoded::Skipped(SkipReason::Identity))),
        "account" => return Ok(frame(Decoded::Skipped(SkipReason::Account))),
        _ => return Ok(frame(Decoded::Skipped(SkipReason::UnknownKind))),
    }
    let commit = envelope.commit.ok_or(FrameError::MissingField("commit"))?;
    let decoded = super::commit_to_post(
        time_us,
        envelope.did.as_deref(),
        super::CommitOp {
            operation: &commit.operation,
            collection: &commit.collection,
            rkey: &commit.rkey,
            rev: commit.rev.as_deref(),
            record: commit.record,
        },
        "commit.record",
    )?;
    Ok(frame(decoded))
}

#[cfg(test)]
mod tests {
    use crate::source::jetstream::decode;
    use crate::source::{Decoded, RawPost, SkipReason};

    fn post(line: &str) -> RawPost {
        match decode(line.as_bytes()) {
            Ok(Decoded::Post(post)) => *post,
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
                SkipReason::NotAPost,
            ),
            (
                r#"{"did":"d","time_us":1,"kind":"commit","commit":{"rev":"r","operation":"delete","collection":"app.bsky.feed.post","rkey":"k"}}"#,
                SkipReason::PostDelete,
            ),
            (
                r#"{"did":"d","time_us":1,"kind":"commit","commit":{"rev":"r","operation":"archive","collection":"app.bsky.feed.post","rkey":"k"}}"#,
                SkipReason::UnknownOperation,
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
