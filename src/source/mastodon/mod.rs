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

    /// A quiet stream's
    /// ([`HealthRule::quiet_stream`](crate::source::health::HealthRule::quiet_stream)):
    /// a healthy small instance, or `public:local`, goes minutes without
    /// a post.
    fn health_defaults(&self) -> crate::source::health::HealthRule {
        crate::source::health::HealthRule::quiet_stream()
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

    /// An `{"error": …}` frame is the server's error (a refusal for good
    /// with status 401 or 403) whatever its `status` holds: a number (as Mastodon sends it), a numeric string
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
        match code {
            // The token refused (`Invalid access token`) or the stream
            // forbidden, said in the stream rather than to the handshake:
            // a refusal for good as a 401 or 403 there is (the longest
            // backoff, one error line). As a server error it was asked
            // again from the shortest backoff, a warning each time.
            Some(code @ (401 | 403)) => Control::Refused(format!(
                "the server refused in the stream with status {code}: {error}"
            )),
            Some(code) => Control::ServerError(format!("{error} (status {code})")),
            None => Control::ServerError(error),
        }
    }
}

#[cfg(test)]
mod tests;
