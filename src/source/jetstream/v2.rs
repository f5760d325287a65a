//! Jetstream v2 frames (`subscribeEvents`, `xrpc.v1.json`; `protocols.md`
//! §1b and the lexicon): `{"$type":"message","payload":{...}}` for events
//! and `#info` notices, `{"$type":"error","error":NAME,"message":...}` for
//! the terminal error.

use std::borrow::Cow;

use serde::Deserialize;

use super::{CommitOp, Envelope, Frame};
use crate::Micros;
use crate::source::{Decoded, FrameError, SkipReason};
use crate::text::server_text;

/// The event inside a `message` frame; which fields are present depends on
/// its `$type` (`…#commit`, `#identity`, `#account`, `#sync`, `#info`).
#[derive(Deserialize)]
pub(super) struct Payload<'a, R> {
    #[serde(rename = "$type", borrow)]
    kind: Option<Cow<'a, str>>,
    seq: Option<u64>,
    #[serde(borrow)]
    did: Option<Cow<'a, str>>,
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    rev: Option<Cow<'a, str>>,
    #[serde(borrow)]
    operation: Option<Cow<'a, str>>,
    #[serde(borrow)]
    collection: Option<Cow<'a, str>>,
    #[serde(borrow)]
    rkey: Option<Cow<'a, str>>,
    record: Option<R>,
    /// `#info`: the notice's name (`OutdatedCursor`) and text.
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
}

/// What a v2 frame is to the connection (see [`classify`]).
#[derive(Debug, PartialEq, Eq)]
pub enum V2Control {
    /// An event: data for the pipeline.
    Event,
    /// `#info` (`OutdatedCursor` after a clamped time cursor): advisory.
    Info { name: String, message: String },
    /// `error` frames are terminal: the server closes right after.
    Error { name: String, message: String },
}

/// The message-union member named by a `$type`: the part after `#`
/// (`network.bsky.jetstream.subscribeEvents#commit` and `#commit` alike).
fn member(kind: &str) -> &str {
    kind.rsplit_once('#').map_or(kind, |(_, m)| m)
}

/// Classifies a v2 frame for the connection without keeping anything.
/// Malformed frames are data: the pipeline counts and reports them.
pub fn classify(text: &str) -> V2Control {
    let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(text) else {
        return V2Control::Event;
    };
    match envelope.kind_v2.as_deref() {
        Some("error") => V2Control::Error {
            name: server_text(envelope.error.as_deref().unwrap_or("unnamed error")),
            message: server_text(envelope.message.as_deref().unwrap_or("")),
        },
        Some("message") => match envelope.payload {
            Some(p) if p.kind.as_deref().map(member) == Some("info") => V2Control::Info {
                name: server_text(p.name.as_deref().unwrap_or("unnamed notice")),
                message: server_text(p.message.as_deref().unwrap_or("")),
            },
            _ => V2Control::Event,
        },
        _ => V2Control::Event,
    }
}

/// An RFC 3339 `time` as microseconds since the epoch.
fn parse_time(time: &str) -> Result<Micros, FrameError> {
    chrono::DateTime::parse_from_rfc3339(time)
        .map(|t| t.timestamp_micros())
        .map_err(|e| FrameError::BadTime(format!("{}: {e}", server_text(time))))
}

/// A v2 frame. Notices and errors carry no event (no time, no seq) and are
/// skipped as [`SkipReason::ServerNotice`]; the live connection handles
/// them before they get here (see [`classify`]).
pub(super) fn decode<R: super::Record>(envelope: Envelope<'_, R>) -> Result<Frame, FrameError> {
    let notice = Frame {
        time_us: None,
        seq: None,
        decoded: Decoded::Skipped(SkipReason::ServerNotice),
    };
    match envelope.kind_v2.as_deref() {
        Some("message") => {}
        Some("error") => return Ok(notice),
        _ => return Ok(notice.with(SkipReason::UnknownKind)),
    }
    let payload = envelope
        .payload
        .ok_or(FrameError::MissingField("payload"))?;
    let kind = payload
        .kind
        .as_deref()
        .map(member)
        .ok_or(FrameError::MissingField("payload.$type"))?;
    if kind == "info" {
        return Ok(notice);
    }
    let seq = payload.seq.ok_or(FrameError::MissingField("payload.seq"))?;
    let time = payload
        .time
        .as_deref()
        .ok_or(FrameError::MissingField("payload.time"))?;
    let time_us = parse_time(time)?;
    let frame = |decoded| Frame {
        time_us: Some(time_us),
        seq: Some(seq),
        decoded,
    };
    let decoded = match kind {
        "commit" => commit(time_us, *payload)?,
        "identity" => Decoded::Skipped(SkipReason::Identity),
        "account" => Decoded::Skipped(SkipReason::Account),
        _ => Decoded::Skipped(SkipReason::UnknownKind),
    };
    Ok(frame(decoded))
}

/// A `#commit` payload: a post when it creates one, else why it is skipped.
fn commit<R: super::Record>(
    time_us: Micros,
    payload: Payload<'_, R>,
) -> Result<Decoded, FrameError> {
    fn field<'a>(
        value: Option<Cow<'a, str>>,
        name: &'static str,
    ) -> Result<Cow<'a, str>, FrameError> {
        value.ok_or(FrameError::MissingField(name))
    }
    let operation = field(payload.operation, "payload.operation")?;
    let collection = field(payload.collection, "payload.collection")?;
    let rkey = field(payload.rkey, "payload.rkey")?;
    super::commit_to_post(
        time_us,
        payload.did.as_deref(),
        CommitOp {
            operation: &operation,
            collection: &collection,
            rkey: &rkey,
            rev: payload.rev.as_deref(),
            record: payload.record,
        },
        "payload.record",
    )
}

impl Frame {
    fn with(self, reason: SkipReason) -> Frame {
        Frame {
            decoded: Decoded::Skipped(reason),
            ..self
        }
    }
}

/// The JSON body of an XRPC error (`{"error":NAME,"message":TEXT}`), as a
/// v2 server sends it with HTTP 400 before the upgrade.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct XrpcError {
    pub error: String,
    #[serde(default)]
    pub message: String,
}

/// Characters of an error's message kept: its numbers are read from them
/// (a floor named after a long sentence must not be cut off), and only
/// [`server_text`] of them is ever printed.
const XRPC_MESSAGE_CHARS: usize = 4096;

impl XrpcError {
    /// Parses an error body; `None` when it is not one. The name is cut as
    /// server text; the message is kept longer, for [`Self::numbers`], and
    /// must go through [`server_text`] to be printed.
    pub fn parse(body: &[u8]) -> Option<XrpcError> {
        let e: XrpcError = serde_json::from_slice(body).ok()?;
        Some(XrpcError {
            error: server_text(&e.error),
            message: crate::text::truncate_chars(&e.message, XRPC_MESSAGE_CHARS),
        })
    }

    /// The numbers in the message: a `CursorTooOld` message names the
    /// floor, an `UnknownZstdDictionary` one the current dictionary id.
    pub fn numbers(&self) -> Vec<u64> {
        self.message
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|digits| digits.parse().ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::jetstream::decode_frame;

    #[test]
    fn notices_errors_and_bad_frames() {
        let info = r#"{"$type":"message","payload":{"$type":"network.bsky.jetstream.subscribeEvents#info","name":"OutdatedCursor","message":"resumed from seq 42"}}"#;
        assert_eq!(
            classify(info),
            V2Control::Info {
                name: "OutdatedCursor".into(),
                message: "resumed from seq 42".into()
            }
        );
        let error = r#"{"$type":"error","error":"ConsumerTooSlow","message":"bye"}"#;
        assert_eq!(
            classify(error),
            V2Control::Error {
                name: "ConsumerTooSlow".into(),
                message: "bye".into()
            }
        );
        assert_eq!(classify("{not json"), V2Control::Event);
        for frame in [info, error] {
            let f = decode_frame(frame.as_bytes()).expect(frame);
            assert_eq!(f.decoded, Decoded::Skipped(SkipReason::ServerNotice));
            assert_eq!((f.time_us, f.seq), (None, None), "moves no cursor");
        }
        let cases = [
            (r#"{"$type":"message"}"#, "missing field `payload`"),
            (
                r##"{"$type":"message","payload":{"$type":"#commit","time":"2024-09-09T19:46:02.329308Z"}}"##,
                "missing field `payload.seq`",
            ),
            (
                r##"{"$type":"message","payload":{"$type":"#commit","seq":1,"time":"yesterday"}}"##,
                "bad event time: yesterday",
            ),
            (
                r##"{"$type":"message","payload":{"$type":"#commit","seq":1,"time":"2024-09-09T19:46:02.329308Z","did":"d","operation":"create","collection":"app.bsky.feed.post","rkey":"k"}}"##,
                "missing field `payload.record`",
            ),
            (
                r##"{"$type":"message","payload":{"$type":"#commit","seq":1,"time":"2024-09-09T19:46:02.329308Z","operation":"create","collection":"app.bsky.feed.post","rkey":"k","record":{"text":"x"}}}"##,
                "missing field `did`",
            ),
        ];
        for (frame, want) in cases {
            let err = decode_frame(frame.as_bytes()).expect_err(frame);
            assert!(err.to_string().contains(want), "{frame}: {err}");
        }
        assert_eq!(
            decode_frame(br#"{"$type":"future"}"#).map(|f| f.decoded),
            Ok(Decoded::Skipped(SkipReason::UnknownKind))
        );
    }

    #[test]
    fn error_bodies_name_their_numbers() {
        let e = XrpcError::parse(
            br#"{"error":"CursorTooOld","message":"cursor 5 is below the retention floor 31527015322"}"#,
        )
        .expect("parses");
        assert_eq!(e.error, "CursorTooOld");
        assert_eq!(e.numbers(), vec![5, 31_527_015_322]);
        assert_eq!(XrpcError::parse(b"<html>busy</html>"), None);
        // A floor after a long sentence is still read; a message of any
        // length is kept bounded.
        let late = format!(
            r#"{{"error":"CursorTooOld","message":"{} cursor 1000 is below the floor 1500"}}"#,
            "x".repeat(300)
        );
        let e = XrpcError::parse(late.as_bytes()).expect("parses");
        assert_eq!(e.numbers(), vec![1000, 1500]);
        let long = format!(r#"{{"error":"X","message":"{}"}}"#, "é".repeat(50_000));
        let e = XrpcError::parse(long.as_bytes()).expect("parses");
        let kept = e.message.chars().count();
        assert_eq!(kept, XRPC_MESSAGE_CHARS, "bounded: {kept} characters");
    }
}
