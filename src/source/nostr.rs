//! Nostr relays (NIP-01, see `protocols.md` §3): kind-1 text notes. The
//! subscription asks for notes since the last processed `created_at` (a
//! little before), and notes are keyed by their id, so the same note from
//! several relays, or from a resumed subscription, is counted once.
//! `created_at` is set by the client and can be false: a note dated in the
//! future beyond a tolerance is rejected and counted.

use serde::Deserialize;
use serde_json::Value;

use super::ws::{Control, Protocol};
use super::{Decoded, FrameError, RawPost, SkipReason};
use crate::{MICROS_PER_SEC, Micros};

/// The subscription id this client uses.
pub const SUBSCRIPTION: &str = "outagewatch";
/// Notes dated further ahead of the clock than this are rejected.
pub const FUTURE_TOLERANCE_US: Micros = 300 * MICROS_PER_SEC;
/// How far before the last processed note a resumed subscription starts.
pub const RESUME_OVERLAP_SECS: i64 = 5;

#[derive(Deserialize)]
struct Event {
    id: String,
    pubkey: String,
    created_at: i64,
    kind: u64,
    #[serde(default)]
    tags: Vec<Vec<String>>,
    content: String,
}

/// Decodes one relay message; `now` (wall clock, µs) bounds `created_at`.
pub fn decode(frame: &[u8], now: Micros) -> Result<(Micros, Decoded), FrameError> {
    let text = std::str::from_utf8(frame).map_err(|e| FrameError::InvalidUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let message: Vec<Value> =
        serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
    match message.first().and_then(Value::as_str) {
        Some("EVENT") => {}
        Some(_) => return Ok((0, Decoded::Skipped(SkipReason::UnknownKind))),
        None => return Err(FrameError::MissingField("message type")),
    }
    let event = message.get(2).ok_or(FrameError::MissingField("event"))?;
    let event: Event =
        serde_json::from_value(event.clone()).map_err(|e| FrameError::BadRecord(e.to_string()))?;
    let time_us = event
        .created_at
        .checked_mul(MICROS_PER_SEC)
        .ok_or_else(|| {
            FrameError::BadRecord(format!("created_at {} out of range", event.created_at))
        })?;
    if time_us > now + FUTURE_TOLERANCE_US {
        return Err(FrameError::BadRecord(format!(
            "created_at {} is {} s in the future",
            event.created_at,
            (time_us - now) / MICROS_PER_SEC
        )));
    }
    if event.kind != 1 {
        return Ok((time_us, Decoded::Skipped(SkipReason::OtherCollection)));
    }
    let tag_values = |name: &str| -> Vec<String> {
        event
            .tags
            .iter()
            .filter(|t| t.first().is_some_and(|k| k == name))
            .filter_map(|t| t.get(1).cloned())
            .collect()
    };
    Ok((
        time_us,
        Decoded::Post(RawPost {
            time_us,
            author: event.pubkey,
            uri: format!("nostr:{}", event.id),
            key: super::dedupe::key_of(&[&event.id]),
            text: event.content,
            langs: tag_values("l")
                .into_iter()
                .filter(|l| l.len() <= 3)
                .collect(),
            tags: tag_values("t"),
        }),
    ))
}

/// One relay: a `REQ` for kind-1 notes since the last processed one.
#[derive(Debug, Default)]
pub struct NostrProtocol;

impl Protocol for NostrProtocol {
    fn connect_url(&mut self, host: &str, _processed: Option<Micros>) -> String {
        host.to_owned()
    }

    fn hello(&mut self, processed: Option<Micros>) -> Vec<String> {
        let since = processed
            .map(|t| t / MICROS_PER_SEC - RESUME_OVERLAP_SECS)
            .unwrap_or_else(|| super::health::wall_now() / MICROS_PER_SEC);
        vec![serde_json::json!(["REQ", SUBSCRIPTION, {"kinds": [1], "since": since}]).to_string()]
    }

    fn control(&mut self, frame: &str) -> Control {
        let Ok(message) = serde_json::from_str::<Vec<Value>>(frame) else {
            return Control::Data;
        };
        let text = |i: usize| {
            message
                .get(i)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        match text(0).as_str() {
            "EVENT" => Control::Data,
            "EOSE" => Control::Info("end of stored events; live notes follow".into()),
            "NOTICE" => Control::Info(format!("notice: {}", text(1))),
            "CLOSED" => Control::Reconnect(text(2)),
            "OK" | "AUTH" | "COUNT" => Control::Info(frame.chars().take(200).collect()),
            _ => Control::Data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Micros = 1_783_175_000 * MICROS_PER_SEC;

    fn event(kind: u64, created_at: i64) -> String {
        serde_json::json!(["EVENT", SUBSCRIPTION, {
            "id": "ab12", "pubkey": "pk1", "created_at": created_at, "kind": kind,
            "tags": [["t", "discorddown"], ["l", "en", "ISO-639-1"], ["p", "x"]],
            "content": "is discord down?", "sig": "s"
        }])
        .to_string()
    }

    #[test]
    fn kind_one_is_a_post() {
        let (t, decoded) = decode(event(1, 1_783_174_990).as_bytes(), NOW).expect("decodes");
        assert_eq!(t, 1_783_174_990 * MICROS_PER_SEC);
        let Decoded::Post(post) = decoded else {
            panic!("a post")
        };
        assert_eq!(post.author, "pk1");
        assert_eq!(post.key, crate::source::dedupe::key_of(&["ab12"]));
        assert_eq!(post.uri, "nostr:ab12");
        assert_eq!(post.text, "is discord down?");
        assert_eq!(post.tags, vec!["discorddown"]);
        assert_eq!(post.langs, vec!["en"]);
    }

    #[test]
    fn every_message_type_is_handled() {
        assert_eq!(
            decode(event(7, 1_783_174_990).as_bytes(), NOW).map(|d| d.1),
            Ok(Decoded::Skipped(SkipReason::OtherCollection))
        );
        for frame in [
            r#"["EOSE","outagewatch"]"#,
            r#"["NOTICE","slow down"]"#,
            r#"["CLOSED","outagewatch","rate-limited"]"#,
            r#"["OK","id",true,""]"#,
        ] {
            assert_eq!(
                decode(frame.as_bytes(), NOW).map(|d| d.1),
                Ok(Decoded::Skipped(SkipReason::UnknownKind)),
                "{frame}"
            );
        }
        let future = decode(event(1, 1_783_175_000 + 3600).as_bytes(), NOW).expect_err("future");
        assert!(future.to_string().contains("in the future"), "{future}");
        for bad in [
            "{}",
            "[]",
            r#"["EVENT","s"]"#,
            r#"["EVENT","s",{"id":1}]"#,
            "nope",
        ] {
            assert!(decode(bad.as_bytes(), NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn subscription_and_control() {
        let mut p = NostrProtocol;
        assert_eq!(
            p.hello(Some(1_000 * MICROS_PER_SEC)),
            vec![r#"["REQ","outagewatch",{"kinds":[1],"since":995}]"#.to_owned()]
        );
        assert_eq!(
            p.control(r#"["CLOSED","outagewatch","auth-required: x"]"#),
            Control::Reconnect("auth-required: x".into())
        );
        assert!(matches!(
            p.control(r#"["EOSE","outagewatch"]"#),
            Control::Info(_)
        ));
        assert_eq!(p.control(&event(1, 1)), Control::Data);
    }
}
