//! Mastodon streaming API (see `protocols.md` §2): the public timeline of an
//! instance. A frame's `payload` is itself a JSON document (parse twice);
//! `content` is HTML (tags stripped, entities decoded). Statuses are keyed
//! by their ActivityPub `uri`, the same on every instance, so a status seen
//! through two instances is counted once.
//!
//! `created_at` is set by the author's server and client: the event time is
//! the arrival time, and the claim is used only to drop statuses claiming to
//! be older than the de-duplication horizon (a backfill, not news).

mod discovery;
mod html;

use serde::Deserialize;

use super::kind::{Connection, Link, Origin, Source, Task};
use super::server;
use super::url::SourceUrl;
use super::ws::{Control, Prepare, Protocol};
use super::{
    BACKFILL_HORIZON_US, Decoded, Frame, FrameError, RawPost, SkipReason, SourceError, parse_json,
};
use crate::Micros;
pub use discovery::{
    Discovery, DiscoveryError, MAX_INSTANCE_DOC_BYTES, discover, discovered_endpoint,
    discovery_client, streaming_endpoint, streaming_from_document,
};
pub use html::{MAX_HTML_BYTES, MAX_HTML_REFERENCES, html_to_text};

/// The Mastodon source kind: one instance's streaming API.
pub struct Mastodon;

impl Source for Mastodon {
    fn decode(&self, frame: &[u8], origin: &Origin<'_>) -> Result<Frame, FrameError> {
        decode(frame, origin.instance, origin.arrival_us).map(|(t, d)| Frame::timed(t, d))
    }

    fn arrival_is_event_time(&self) -> bool {
        true
    }

    fn reads_instance(&self) -> bool {
        true
    }

    /// The account's domain, as far as it costs something to hold
    /// ([`server::account_server`]): it vouches for the account to every
    /// other instance.
    fn server_of(&self, author: &str, _connection: &str) -> Option<String> {
        Some(server::account_server(author))
    }

    /// The streaming API takes no `since`: a connection gets what is
    /// posted from then on.
    fn resumes_from_watermark(&self) -> bool {
        false
    }

    fn run(&self, connection: Connection, link: Link) -> Task {
        Box::pin(async move {
            let client = match discovery_client(&link.tls) {
                Ok(client) => client,
                Err(e) => {
                    tracing::error!(source = %connection.name, error = %e, "cannot build an HTTP client for discovery");
                    return;
                }
            };
            let protocol = MastodonProtocol {
                stream: connection.stream,
                token: connection.token,
                discovery: Some(Discovery::new(client, connection.name.clone())),
            };
            super::ws::run(connection.urls, connection.settings, protocol, link).await
        })
    }
}

#[derive(Deserialize)]
struct StreamFrame {
    event: Option<String>,
    payload: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    created_at: String,
    content: String,
    #[serde(default)]
    spoiler_text: String,
    language: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    account: Account,
    uri: String,
    url: Option<String>,
    reblog: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Tag {
    name: String,
}

#[derive(Deserialize)]
struct Account {
    acct: String,
}

/// Decodes one streaming frame from `instance` (the configured host, which
/// names local accounts when a status's `uri` has no host) that arrived at
/// `arrival_us` (without it, as for a hand-made file, `created_at` is used).
pub fn decode(
    frame: &[u8],
    instance: &str,
    arrival_us: Option<Micros>,
) -> Result<(Option<Micros>, Decoded), FrameError> {
    let frame: StreamFrame = parse_json(frame)?;
    if let Some(error) = frame.error {
        return Err(FrameError::BadRecord(format!(
            "server error: {}",
            crate::text::server_text(&error)
        )));
    }
    let event = frame.event.ok_or(FrameError::MissingField("event"))?;
    // Only an event of the stream is skipped as data for the source's
    // health: a `delete` of a status id, an edit holding a status (a
    // `filters_changed` is skipped as a notice). Anything else is malformed: an instance sending
    // `{"event":"delete"}` or an unknown event once a second had each one
    // skipped, counted as data, and looked healthy for ever.
    let skip = |reason| Ok((None, Decoded::Skipped(reason)));
    match event.as_str() {
        "update" => {}
        "delete" => {
            return match frame.payload.as_deref() {
                Some(id) if is_status_id(id) => skip(SkipReason::PostDelete),
                Some(_) => Err(FrameError::BadRecord(
                    "`delete` whose payload is not a status id".into(),
                )),
                None => Err(FrameError::MissingField("payload")),
            };
        }
        "status.update" => {
            let payload = frame.payload.ok_or(FrameError::MissingField("payload"))?;
            parse_status(&payload)?;
            return skip(SkipReason::PostUpdate);
        }
        // About the token's user (sent on the user stream), not the
        // stream's traffic: a notice, which is no sign of the stream's life.
        "filters_changed" => return skip(SkipReason::ServerNotice),
        other => {
            return Err(FrameError::BadRecord(format!(
                "unknown event {:?}",
                crate::text::server_text(other)
            )));
        }
    }
    let payload = frame.payload.ok_or(FrameError::MissingField("payload"))?;
    let (status, claimed_us) = parse_status(&payload)?;
    let time_us = arrival_us.unwrap_or(claimed_us);
    if claimed_us < time_us.saturating_sub(BACKFILL_HORIZON_US) {
        return Ok((Some(time_us), Decoded::Skipped(SkipReason::Backfill)));
    }
    if status.reblog.as_ref().is_some_and(|r| !r.is_null()) {
        // A boost repeats someone else's words: not a new report.
        return Ok((Some(time_us), Decoded::Skipped(SkipReason::NotAPost)));
    }
    let mut text = html_to_text(&status.content);
    if !status.spoiler_text.is_empty() {
        text = format!("{}\n{text}", status.spoiler_text);
    }
    let author = account_name(status.account.acct, &status.uri, instance)?;
    Ok((
        Some(time_us),
        Decoded::Post(Box::new(RawPost {
            time_us,
            author,
            uri: status.url.unwrap_or_else(|| status.uri.clone()),
            key: Some(super::dedupe::key_of(&[&status.uri])),
            text,
            langs: status.language.into_iter().collect(),
            tags: status.tags.into_iter().map(|t| t.name).collect(),
        })),
    ))
}

/// The name `acct` goes by on every instance: a remote account's `acct`
/// already holds its domain (`alice@mastodon.social`); a local one's is
/// the bare user name, completed by the host of the status's ActivityPub
/// `uri`, the instance's own name for its accounts. Not by the host the
/// stream came from: `streaming.mastodon.social`, or the second URL of a
/// failover list, would make one person two authors beside their name
/// seen through another instance. A `uri` without a host falls back to
/// `instance` (the configured host); with neither, the account cannot be
/// told from another instance's user of the same name, and the status is
/// malformed.
fn account_name(acct: String, uri: &str, instance: &str) -> Result<String, FrameError> {
    if acct.contains('@') {
        return Ok(acct);
    }
    let parsed = reqwest::Url::parse(uri).ok();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str())
        .unwrap_or(instance);
    if host.is_empty() {
        return Err(FrameError::BadRecord(format!(
            "the local account {:?} has no instance to be named by (its status's uri has no host, and the recording names no instance)",
            crate::text::server_text(&acct)
        )));
    }
    Ok(format!("{acct}@{host}"))
}

/// A status (an `update` or `status.update` payload) and the time its
/// author's server claims for it.
fn parse_status(payload: &str) -> Result<(Status, Micros), FrameError> {
    let status: Status = serde_json::from_str(payload)
        .map_err(|e| FrameError::BadRecord(format!("payload: {e}")))?;
    let claimed_us = chrono::DateTime::parse_from_rfc3339(&status.created_at)
        .map_err(|e| FrameError::BadRecord(format!("created_at {:?}: {e}", status.created_at)))?
        .timestamp_micros();
    Ok((status, claimed_us))
}

/// Longest status id a `delete` may name: Mastodon's are decimal
/// snowflakes (18 or so digits; older ones shorter), Pleroma's and
/// Akkoma's base62 flake ids, GoToSocial's ULIDs (26 characters).
pub const MAX_STATUS_ID_BYTES: usize = 64;

/// Whether `id` can be a status id: 1 to [`MAX_STATUS_ID_BYTES`] ASCII
/// letters and digits, what every server speaking this API makes.
fn is_status_id(id: &str) -> bool {
    (1..=MAX_STATUS_ID_BYTES).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The public stream of one instance, with an optional access token.
#[derive(Debug)]
pub struct MastodonProtocol {
    pub stream: String,
    pub token: Option<String>,
    /// How instance URLs (`https://`) become streaming URLs; `None`: every
    /// URL is a streaming URL already.
    pub discovery: Option<Discovery>,
}

impl Protocol for MastodonProtocol {
    fn prepare<'a>(&'a mut self, host: &'a SourceUrl) -> Prepare<'a> {
        Box::pin(async move {
            let Some(discovery) = self.discovery.as_mut() else {
                return Ok(());
            };
            discovery.learn(host).await.map_err(SourceError::Discovery)
        })
    }

    fn failed(&mut self, host: &SourceUrl) {
        if let Some(discovery) = self.discovery.as_mut() {
            discovery.forget(host);
        }
    }

    fn connect_url(&mut self, host: &SourceUrl, _processed: Option<Micros>) -> SourceUrl {
        let host = self
            .discovery
            .as_ref()
            .and_then(|d| d.streaming_url(host))
            .unwrap_or(host);
        let Ok(mut url) = reqwest::Url::parse(host.secret()) else {
            return host.clone();
        };
        if !url.query_pairs().any(|(k, _)| k == "stream") {
            url.query_pairs_mut().append_pair("stream", &self.stream);
        }
        SourceUrl::from(&url)
    }

    fn quiet(&self) -> bool {
        true
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        self.token
            .iter()
            .map(|t| ("authorization", format!("Bearer {t}")))
            .collect()
    }

    /// An `{"error": …}` frame is the server's error whatever its
    /// `status` holds: a number (as Mastodon sends it), a numeric string
    /// (as other servers do), or anything else, left out. Read as a
    /// number only, `"status":"401"` failed to parse here and went to the
    /// decoder as data, counted as `bad_record` instead of `server_error`.
    fn control(&mut self, frame: &str) -> Control {
        #[derive(Deserialize)]
        struct MaybeError {
            error: Option<String>,
            status: Option<serde_json::Value>,
        }
        let Ok(MaybeError {
            error: Some(error),
            status,
        }) = serde_json::from_str::<MaybeError>(frame)
        else {
            return Control::Data;
        };
        let code = status.and_then(|status| match status {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
        Control::ServerError(match code {
            Some(code) => format!("{error} (status {code})"),
            None => error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::MAX_TEXT_CHARS;

    fn update(status: serde_json::Value) -> String {
        serde_json::json!({"stream": ["public"], "event": "update", "payload": status.to_string()})
            .to_string()
    }

    fn status() -> serde_json::Value {
        serde_json::json!({
            "id": "1", "created_at": "2026-07-04T14:17:05.123Z",
            "content": "<p>is <a href=\"https://x\">#<span>Discord</span></a> down?<br/>it won&#39;t load &amp; I&apos;m sad</p>",
            "spoiler_text": "", "language": "en", "tags": [{"name": "discord", "url": "u"}],
            "account": {"id": "9", "acct": "alice", "username": "alice"},
            "uri": "https://mastodon.example/users/alice/statuses/1",
            "url": "https://mastodon.example/@alice/1", "reblog": null, "visibility": "public"
        })
    }

    /// An instance's error is the instance's own words: one line, bounded,
    /// with no control characters to reach a terminal.
    #[test]
    fn a_servers_error_is_one_line_of_visible_text() {
        let frame = serde_json::json!({"error": format!("a\nb\u{1b}[31m{}", "x".repeat(5000)), "status": "401"});
        let e = decode(frame.to_string().as_bytes(), "i", None).expect_err("an error");
        let text = e.to_string();
        assert!(text.contains("server error: a b[31mxxx"), "{text}");
        assert!(!text.contains(['\n', '\u{1b}']), "{text}");
        assert!(text.chars().count() < 1000, "{}", text.len());
    }

    /// A local account is named by its status's `uri` host, the name
    /// other instances know it by, not by the host the stream came from;
    /// a remote one keeps its `acct`; with no host anywhere the status is
    /// refused (one instance's `alice` would be every instance's).
    #[test]
    fn a_local_account_is_named_as_other_instances_name_it() {
        let author = |acct: &str, uri: &str, instance: &str| {
            let mut status = status();
            status["account"]["acct"] = acct.into();
            status["uri"] = uri.into();
            match decode(update(status).as_bytes(), instance, None) {
                Ok((_, Decoded::Post(post))) => Ok(post.author),
                Ok((_, other)) => panic!("{acct} {uri}: {other:?}"),
                Err(e) => Err(e.to_string()),
            }
        };
        let uri = "https://mastodon.social/users/alice/statuses/1";
        for (acct, uri, instance, want) in [
            (
                "alice",
                uri,
                "streaming.mastodon.social",
                "alice@mastodon.social",
            ),
            ("alice", uri, "second.example:8443", "alice@mastodon.social"),
            ("alice", uri, "", "alice@mastodon.social"),
            (
                "alice",
                "https://Mastodon.Social:443/x",
                "i",
                "alice@mastodon.social",
            ),
            (
                "bob@town.social",
                uri,
                "streaming.mastodon.social",
                "bob@town.social",
            ),
            (
                "alice",
                "tag:mastodon.social,2026:1",
                "mastodon.social",
                "alice@mastodon.social",
            ),
            ("alice", "", "mastodon.social", "alice@mastodon.social"),
        ] {
            assert_eq!(
                author(acct, uri, instance).as_deref(),
                Ok(want),
                "{acct} {uri} {instance}"
            );
        }
        let refused = author("alice\n\u{1b}[2J", "not a url", "").expect_err("no host");
        assert!(refused.contains("no instance"), "{refused}");
        assert!(!refused.contains(['\n', '\u{1b}']), "{refused}");
    }

    /// A status of nearly a megabyte, through the decoder: its text is
    /// the first [`MAX_TEXT_CHARS`] characters (see `html`'s bounds).
    #[test]
    fn a_long_status_decodes_to_its_first_characters() {
        let mut long = status();
        long["content"] = format!("<p>{}</p>", "&amp;".repeat(200_000)).into();
        let (_, decoded) = decode(update(long).as_bytes(), "i", None).expect("decodes");
        let Decoded::Post(post) = decoded else {
            panic!("a post")
        };
        assert_eq!(post.text, "&".repeat(MAX_TEXT_CHARS));
    }

    /// A frame's status's `content`.
    fn content_of(frame: &str) -> String {
        let frame: StreamFrame = serde_json::from_str(frame).expect("frame");
        let status: Status =
            serde_json::from_str(&frame.payload.expect("payload")).expect("status");
        status.content
    }

    /// Not a check: what a status costs to decode, by its HTML. Run with
    /// `cargo test --lib mastodon::tests::time_costly_statuses -- --ignored --nocapture`
    /// (timings are printed, never asserted).
    #[test]
    #[ignore]
    fn time_costly_statuses() {
        let contents = [
            ("plain", "discord is down ".repeat(62_000)),
            ("&amp; x180k", "&amp;".repeat(180_000)),
            ("&notit; x120k", "&notit;".repeat(120_000)),
            ("<p>x</p> x100k", "<p>x</p>".repeat(100_000)),
            (
                "ordinary",
                status()["content"].as_str().unwrap_or("").to_owned(),
            ),
        ];
        for (name, content) in contents {
            let mut s = status();
            s["content"] = content.into();
            let frame = update(s);
            let runs = 20;
            let start = std::time::Instant::now();
            for _ in 0..runs {
                let _ = std::hint::black_box(decode(frame.as_bytes(), "i", None));
            }
            let per = start.elapsed() / runs;
            let content = content_of(&frame);
            let start = std::time::Instant::now();
            for _ in 0..runs {
                let _ = std::hint::black_box(html_to_text(&content));
            }
            let html = start.elapsed() / runs;
            println!(
                "{name}: {} bytes, {per:?} a frame, of which the HTML {html:?}",
                frame.len()
            );
        }
    }

    #[test]
    fn update_is_a_post_with_plain_text() {
        let (t, decoded) =
            decode(update(status()).as_bytes(), "mastodon.example", None).expect("decodes");
        assert_eq!(t, Some(1_783_174_625_123_000), "no arrival: the claim");
        let arrival = 1_783_174_700_000_000;
        let (t, _) = decode(
            update(status()).as_bytes(),
            "mastodon.example",
            Some(arrival),
        )
        .expect("decodes");
        assert_eq!(t, Some(arrival), "event time is the arrival time");
        let Decoded::Post(post) = decoded else {
            panic!("a post")
        };
        assert_eq!(post.text, "is #Discord down?\nit won't load & I'm sad");
        assert_eq!(post.author, "alice@mastodon.example");
        assert_eq!(
            post.key,
            Some(crate::source::dedupe::key_of(&[
                "https://mastodon.example/users/alice/statuses/1"
            ]))
        );
        assert_eq!(post.uri, "https://mastodon.example/@alice/1");
        assert_eq!(post.langs, vec!["en"]);
        assert_eq!(post.tags, vec!["discord"]);
    }

    /// Each event the stream documents, well formed, is skipped by its
    /// reason (and, being an event of the stream, is data for the source's
    /// health); the same events malformed, and unknown events, are
    /// malformed frames.
    #[test]
    fn every_event_type_is_handled() {
        let edit = serde_json::json!({
            "stream": ["public"], "event": "status.update", "payload": status().to_string()
        })
        .to_string();
        let frames = [
            (
                r#"{"stream":["public"],"event":"delete","payload":"1"}"#,
                SkipReason::PostDelete,
            ),
            (
                r#"{"stream":["public"],"event":"delete","payload":"113580542345678901"}"#,
                SkipReason::PostDelete,
            ),
            (
                r#"{"stream":["public"],"event":"delete","payload":"01HQ3C5GZPKV1B8Z7YJ3R8N0QX"}"#,
                SkipReason::PostDelete,
            ),
            (edit.as_str(), SkipReason::PostUpdate),
        ];
        for (frame, reason) in frames {
            let decoded = decode(frame.as_bytes(), "i", None).map(|d| d.1);
            assert_eq!(decoded, Ok(Decoded::Skipped(reason)), "{frame}");
            assert!(reason.shows_life(), "{frame}");
        }
        // A notice about the token's user, never on a public stream: not
        // the stream's life (an instance sending only this looked healthy
        // for ever).
        let notice = r#"{"stream":["public"],"event":"filters_changed"}"#;
        let decoded = decode(notice.as_bytes(), "i", None).map(|d| d.1);
        assert_eq!(decoded, Ok(Decoded::Skipped(SkipReason::ServerNotice)));
        assert!(!SkipReason::ServerNotice.shows_life());
        let long_id = format!(
            r#"{{"event":"delete","payload":"{}"}}"#,
            "1".repeat(MAX_STATUS_ID_BYTES + 1)
        );
        // (frame, reason of the fault)
        let malformed = [
            (r#"{"event":"delete"}"#, "missing_field"),
            (r#"{"event":"delete","payload":""}"#, "bad_record"),
            (r#"{"event":"delete","payload":"{}"}"#, "bad_record"),
            (r#"{"event":"delete","payload":"1 2"}"#, "bad_record"),
            (long_id.as_str(), "bad_record"),
            (r#"{"event":"delete","payload":1}"#, "bad_json"),
            (r#"{"event":"status.update"}"#, "missing_field"),
            (r#"{"event":"status.update","payload":"{}"}"#, "bad_record"),
            (r#"{"event":"status.update","payload":"1"}"#, "bad_record"),
            (r#"{"event":"announcement","payload":"{}"}"#, "bad_record"),
            (r#"{"event":"X"}"#, "bad_record"),
            (r#"{"event":""}"#, "bad_record"),
            (r#"{"stream":["public"]}"#, "missing_field"),
        ];
        for (frame, reason) in malformed {
            assert_eq!(
                decode(frame.as_bytes(), "i", None).map_err(|e| e.reason()),
                Err(reason),
                "{frame}"
            );
        }
        let mut boosted = status();
        boosted["reblog"] = serde_json::json!({"id": "2"});
        assert_eq!(
            decode(update(boosted).as_bytes(), "i", None).map(|d| d.1),
            Ok(Decoded::Skipped(SkipReason::NotAPost))
        );
        let bad = [
            r#"{"error":"Invalid access token","status":401}"#,
            r#"{"event":"update","payload":"not json"}"#,
            r#"{"event":"update"}"#,
            "garbage",
        ];
        for frame in bad {
            assert!(decode(frame.as_bytes(), "i", None).is_err(), "{frame}");
        }
    }

    #[test]
    fn claims_far_ahead_change_nothing_and_old_claims_are_backfill() {
        let claimed = 1_783_174_625_123_000;
        let mut ahead = status();
        ahead["created_at"] = "2100-01-01T00:00:00Z".into();
        let (t, decoded) = decode(update(ahead).as_bytes(), "i", Some(claimed)).expect("decodes");
        assert_eq!(t, Some(claimed));
        assert!(matches!(decoded, Decoded::Post(_)));
        let arrival = claimed + BACKFILL_HORIZON_US + 1;
        assert_eq!(
            decode(update(status()).as_bytes(), "i", Some(arrival)),
            Ok((Some(arrival), Decoded::Skipped(SkipReason::Backfill)))
        );
    }

    #[test]
    fn control_frames_and_connection() {
        let mut protocol = MastodonProtocol {
            stream: "public".into(),
            token: Some("t0k".into()),
            discovery: None,
        };
        assert_eq!(
            protocol
                .connect_url(&"wss://streaming.example/api/v1/streaming".into(), None)
                .secret(),
            "wss://streaming.example/api/v1/streaming?stream=public"
        );
        assert_eq!(
            protocol.headers(),
            vec![("authorization", "Bearer t0k".to_owned())]
        );
        for status in ["401", "\"401\"", "\" 401 \""] {
            let frame = format!(r#"{{"error":"Invalid access token","status":{status}}}"#);
            assert_eq!(
                protocol.control(&frame),
                Control::ServerError("Invalid access token (status 401)".into()),
                "{frame}"
            );
        }
        for status in ["\"soon\"", "-1", "{}", "null"] {
            let frame = format!(r#"{{"error":"Rate limited","status":{status}}}"#);
            assert_eq!(
                protocol.control(&frame),
                Control::ServerError("Rate limited".into()),
                "{frame}"
            );
        }
        assert_eq!(protocol.control(&update(status())), Control::Data);
    }
}
