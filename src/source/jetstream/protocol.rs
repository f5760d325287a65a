//! The Jetstream connection for [`crate::source::ws`]: which endpoint and
//! cursor to ask for, the compression dictionary, the server's control
//! frames and refusals.
//!
//! **Resuming.** v1 resumes by event time minus [`RESUME_OVERLAP_US`]
//! (the overlap is de-duplicated). v2 resumes exactly by sequence number:
//! `cursor = last seq + 1` (the v2 cursor is inclusive). A sequence number
//! means something only on the host that issued it, so it is kept with its
//! host: on another host (failover) the connection resumes by time instead.
//! Within a run the cursor is the last frame handed to the pipeline; across
//! runs it is the one saved with the counts (see [`SeqCursor`]).
//!
//! **Refusals.** A v2 `CursorTooOld` (HTTP 400 before the upgrade, naming
//! the server's floor) resumes from the floor and reports the lost range as
//! a gap; `UnknownZstdDictionary` fetches the current dictionary again.
//! `ConsumerTooSlow` (an `error` frame) is logged and reconnected.
//!
//! **A clamped v1 cursor.** A v1 server given a time cursor older than its
//! history (about 36 h) starts from its oldest event without a word
//! (`protocols.md` §1). So the first event after resuming by time is
//! checked: dated more than [`V1_CLAMP_TOLERANCE_US`] after the cursor, on a
//! firehose that carries posts every second, means the events between were
//! lost, and it is reported as a gap (the frame itself is data as usual).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RESUME_OVERLAP_US;
use super::compression::{self, Dictionary, DictionaryCache, Inflater};
use super::url::http_client;
pub use super::url::{v1_url, v2_url};
use super::v2::{self, V2Control, XrpcError};
use crate::Micros;
use crate::source::url::{MaskedUrl, SourceUrl};
use crate::source::ws::{BinaryFrame, Control, Prepare, Protocol, Rejection, WsSettings};

/// Which Jetstream wire a source speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Wire {
    /// `/subscribe`, resumed by time.
    V1,
    /// `/xrpc/network.bsky.jetstream.subscribeEvents`, resumed by sequence.
    #[default]
    V2,
}

/// A v2 sequence number with the host that issued it; saved with the
/// counts, so a restart resumes exactly where the counts stop. The host is
/// kept masked: its user, password and tokens are not the state's to hold.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct SeqCursor {
    pub host: MaskedUrl,
    pub seq: u64,
}

/// How a Jetstream source connects.
#[derive(Debug, Clone)]
pub struct JetstreamOptions {
    pub wire: Wire,
    /// Ask for dictionary-zstd frames.
    pub compress: bool,
    /// Where v2 dictionaries are cached (none: fetched every run).
    pub state_dir: Option<PathBuf>,
    /// Where to start when nothing was processed yet (`replay --since`);
    /// none: the live tail.
    pub start: Option<Micros>,
    /// The sequence cursor saved with the counts, if any.
    pub resume: Option<SeqCursor>,
    /// Time allowed for fetching a dictionary.
    pub fetch_timeout: Duration,
    /// Log a failed dictionary fetch at debug, not warn: `replay
    /// --jetstream` against a dead host warned twice per attempt (the
    /// fetch, then the connection), and the connection's warning says it.
    pub quiet_dictionary: bool,
}

impl Default for JetstreamOptions {
    fn default() -> Self {
        JetstreamOptions {
            wire: Wire::V2,
            compress: true,
            state_dir: None,
            start: None,
            resume: None,
            fetch_timeout: Duration::from_secs(15),
            quiet_dictionary: false,
        }
    }
}

/// Values at or above this (2001-09-09) are time cursors on v2
/// (`protocols.md` §1b); `replay --since` refuses an earlier time.
pub(crate) const TIME_CURSOR_MIN: i64 = 1_000_000_000_000_000;

/// How far past a v1 time cursor the first event may be before the
/// stream is taken to have been clamped: the posts of the whole network
/// come several a second, so minutes without one are history the server
/// no longer has (or a firehose outage, a loss all the same).
pub const V1_CLAMP_TOLERANCE_US: Micros = 5 * 60 * crate::MICROS_PER_SEC;

/// The Jetstream [`Protocol`].
#[derive(Debug)]
pub struct JetstreamProtocol {
    options: JetstreamOptions,
    /// The host of the current connection.
    host: SourceUrl,
    /// Newest sequence number handed to the pipeline, with its host.
    seq: Option<SeqCursor>,
    /// The seq cursor the current connection asked for.
    asked: Option<u64>,
    /// v1: the time cursor the current connection asked for, until its
    /// first dated event has been checked against it.
    asked_time: Option<Micros>,
    /// After `CursorTooOld`: the next connection to this host starts here
    /// (`None` inside: at the live tail).
    floor: Option<(SourceUrl, Option<u64>)>,
    dictionary: Option<Dictionary>,
    dictionary_stale: bool,
    /// After `UnknownZstdDictionary`: the id refused, and the id the
    /// refusal named as current, if any. The next fetch asks for the named
    /// one; a server whose endpoint still serves the refused one is read
    /// uncompressed, not refused for ever.
    refused_dictionary: Option<(u32, Option<u32>)>,
    /// Decompressor of the current connection, if it asked for compression.
    inflater: Option<Inflater>,
    client: Option<reqwest::Client>,
}

impl JetstreamProtocol {
    pub fn new(options: JetstreamOptions) -> Self {
        JetstreamProtocol {
            seq: options.resume.clone(),
            options,
            host: SourceUrl::from(""),
            asked: None,
            asked_time: None,
            floor: None,
            dictionary: None,
            dictionary_stale: false,
            refused_dictionary: None,
            inflater: None,
            client: None,
        }
    }

    /// v1, uncompressed: the plain wire.
    pub fn v1_plain() -> Self {
        JetstreamProtocol::new(JetstreamOptions {
            wire: Wire::V1,
            compress: false,
            ..JetstreamOptions::default()
        })
    }

    /// The dictionary for this connection, fetching or loading it if
    /// needed. A failure is logged and the connection goes uncompressed.
    async fn ensure_dictionary(&mut self, host: &SourceUrl) {
        if self.options.wire == Wire::V1 {
            if self.dictionary.is_none() {
                self.dictionary = Some(Dictionary::v1());
            }
            return;
        }
        let cache = self.options.state_dir.as_deref().map(DictionaryCache::new);
        if self.dictionary.is_none()
            && !self.dictionary_stale
            && let Some(cached) = cache.as_ref().and_then(DictionaryCache::newest)
        {
            tracing::info!(
                dictionary = cached.id,
                "using the cached Jetstream dictionary"
            );
            self.dictionary = Some(cached);
        }
        if self.dictionary.is_some() && !self.dictionary_stale {
            return;
        }
        let client = match &self.client {
            Some(client) => client.clone(),
            None => match http_client() {
                Ok(client) => {
                    self.client = Some(client.clone());
                    client
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot build an HTTP client; reading uncompressed");
                    self.dictionary = None;
                    return;
                }
            },
        };
        let named = self.refused_dictionary.and_then(|(_, named)| named);
        match compression::fetch(&client, host, named, self.options.fetch_timeout).await {
            Ok(dictionary)
                if self
                    .refused_dictionary
                    .is_some_and(|(refused, _)| refused == dictionary.id) =>
            {
                tracing::warn!(
                    dictionary = dictionary.id,
                    "the server refused this dictionary and serves it again: this connection reads uncompressed"
                );
                self.dictionary = None;
            }
            Ok(dictionary) => {
                tracing::info!(
                    dictionary = dictionary.id,
                    bytes = dictionary.bytes.len(),
                    "fetched the Jetstream dictionary"
                );
                if let Some(cache) = &cache
                    && let Err(e) = cache.store(&dictionary)
                {
                    tracing::warn!(error = %e, "cannot cache the Jetstream dictionary");
                }
                self.dictionary = Some(dictionary);
                self.dictionary_stale = false;
                self.refused_dictionary = None;
            }
            Err(e) if self.options.quiet_dictionary => {
                tracing::debug!(error = %e, "cannot fetch the Jetstream dictionary; this connection reads uncompressed");
                self.dictionary = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch the Jetstream dictionary; this connection reads uncompressed");
                self.dictionary = None;
            }
        }
    }

    /// The cursor for the next connection to `host`.
    fn cursor(&mut self, host: &SourceUrl, processed: Option<Micros>) -> Option<i64> {
        let by_time = |t: Micros| t - RESUME_OVERLAP_US;
        if self.options.wire == Wire::V1 {
            return processed.map(by_time).or(self.options.start);
        }
        if let Some((floor_host, floor)) = &self.floor
            && floor_host == host
        {
            return floor.and_then(|f| i64::try_from(f).ok());
        }
        // A number the server would read as a time (10^15 and up) is never
        // sent back as a sequence number: one frame numbered so (a careless
        // or hostile server) would have resumed from a date, skipping or
        // repeating hours; the time cursor below takes over.
        if let Some(seq) = self
            .seq
            .as_ref()
            .filter(|c| &c.host == host.masked())
            .and_then(|c| i64::try_from(c.seq.saturating_add(1)).ok())
            .filter(|seq| *seq < TIME_CURSOR_MIN)
        {
            return Some(seq);
        }
        // By time: only a value the server reads as a time, never one it
        // would take for a sequence number.
        processed
            .map(by_time)
            .or(self.options.start)
            .filter(|t| *t >= TIME_CURSOR_MIN)
    }
}

impl JetstreamProtocol {
    /// Every v1 frame is data; the first dated one after resuming by time
    /// also reports a clamped cursor (see the module's docs).
    fn v1_control(&mut self, frame: &str) -> Control {
        let Some(asked) = self.asked_time else {
            return Control::Data;
        };
        let Some(first) = super::decode_frame(frame.as_bytes())
            .and_then(crate::source::Frame::checked)
            .ok()
            .and_then(|f| f.time_us)
        else {
            return Control::Data;
        };
        self.asked_time = None;
        let skipped = first.saturating_sub(asked);
        if skipped <= V1_CLAMP_TOLERANCE_US {
            return Control::Data;
        }
        Control::DataAfterGap(format!(
            "asked to resume from {} but the first event is dated {}, {} later: a v1 server keeps about 36 h and starts an older cursor at its oldest event without a word; the events between were lost",
            crate::wall::rfc3339(asked),
            crate::wall::rfc3339(first),
            crate::wall::human_duration(skipped),
        ))
    }
}

impl Protocol for JetstreamProtocol {
    fn prepare<'a>(&'a mut self, host: &'a SourceUrl) -> Prepare<'a> {
        Box::pin(async move {
            if self.options.compress {
                self.ensure_dictionary(host).await;
            }
            Ok(())
        })
    }

    fn connect_url(&mut self, host: &SourceUrl, processed: Option<Micros>) -> SourceUrl {
        self.host = host.clone();
        let cursor = self.cursor(host, processed);
        self.inflater = match (&self.dictionary, self.options.compress) {
            (Some(d), true) => match Inflater::new(d) {
                Ok(inflater) => Some(inflater),
                Err(e) => {
                    tracing::warn!(error = %e, "the dictionary does not load; reading uncompressed");
                    self.dictionary_stale = true;
                    None
                }
            },
            _ => None,
        };
        let dictionary = self.inflater.as_ref().map(Inflater::dictionary_id);
        match self.options.wire {
            Wire::V1 => {
                self.asked = None;
                self.asked_time = cursor;
                v1_url(host.secret(), cursor, dictionary.is_some()).into()
            }
            Wire::V2 => {
                self.asked = cursor
                    .filter(|c| *c < TIME_CURSOR_MIN)
                    .and_then(|c| u64::try_from(c).ok());
                v2_url(host.secret(), cursor, dictionary).into()
            }
        }
    }

    /// What the target sends is filed under the target, so its numbers are
    /// never sent back to the host that redirected (which would read them
    /// as its own and skip or repeat events); the cursor asked is the one
    /// the target's URL carries, as the server wrote it.
    fn redirected(&mut self, to: &SourceUrl) {
        let (server, cursor) = super::url::redirect_target(to.secret());
        self.host = server.into();
        match self.options.wire {
            Wire::V1 => {
                self.asked = None;
                self.asked_time = cursor;
            }
            Wire::V2 => {
                self.asked = cursor
                    .filter(|c| *c < TIME_CURSOR_MIN)
                    .and_then(|c| u64::try_from(c).ok());
            }
        }
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        match self.options.wire {
            Wire::V1 => Vec::new(),
            Wire::V2 => vec![("sec-websocket-protocol", "xrpc.v1.json".to_owned())],
        }
    }

    fn control(&mut self, frame: &str) -> Control {
        if self.options.wire == Wire::V1 {
            return self.v1_control(frame);
        }
        match v2::classify(frame) {
            V2Control::Event => {
                // Only a frame the pipeline will take (`checked`) moves the
                // resume cursor: a number past 2^63 could not be sent back.
                if let Ok(super::Frame { seq: Some(seq), .. }) =
                    super::decode_frame(frame.as_bytes()).and_then(crate::source::Frame::checked)
                {
                    // Past the floor now: the usual resume applies again.
                    self.floor = None;
                    self.seq = Some(SeqCursor {
                        host: self.host.masked().clone(),
                        seq,
                    });
                }
                Control::Data
            }
            V2Control::Info { name, message } if name == "OutdatedCursor" => Control::Gap(format!(
                "the server's history does not reach back to the requested time; events before its floor were lost ({})",
                crate::text::server_text(&message)
            )),
            V2Control::Info { name, message } => Control::Info(format!("{name}: {message}")),
            V2Control::Error { name, message } => Control::Reconnect(format!("{name}: {message}")),
        }
    }

    fn binary(&mut self, bytes: &[u8], settings: &WsSettings) -> BinaryFrame {
        let Some(inflater) = self.inflater.as_mut() else {
            return BinaryFrame::Unusable(format!(
                "binary frame of {} bytes on an uncompressed connection",
                bytes.len()
            ));
        };
        match inflater.inflate(
            bytes,
            settings.max_compressed_frame_bytes,
            settings.max_frame_bytes,
        ) {
            Ok(text) => BinaryFrame::Text(text),
            Err(
                e @ (compression::CompressionError::CompressedTooLarge { .. }
                | compression::CompressionError::ExpandsTooFar { .. }),
            ) => BinaryFrame::Oversized(e.to_string()),
            Err(e) => BinaryFrame::Unusable(e.to_string()),
        }
    }

    fn rejected(&mut self, status: u16, body: &[u8]) -> Rejection {
        let Some(error) = XrpcError::parse(body) else {
            let body = crate::text::server_text(&String::from_utf8_lossy(body));
            return Rejection {
                reason: format!("the server refused with HTTP {status}: {body}"),
                gap: None,
            };
        };
        let reason = format!(
            "the server refused with HTTP {status}: {}",
            crate::text::server_text(&format!("{}: {}", error.error, error.message))
        );
        match error.error.as_str() {
            "CursorTooOld" => {
                let asked = self.asked.unwrap_or(0);
                let floor = error.numbers().into_iter().filter(|n| *n > asked).min();
                self.floor = Some((self.host.clone(), floor));
                let gap = match floor {
                    Some(floor) => format!(
                        "cursor {asked} is older than the server keeps: {} events (seq {asked} to {}) were lost; resuming from seq {floor}",
                        floor - asked,
                        floor - 1
                    ),
                    None => format!(
                        "cursor {asked} is older than the server keeps and it named no floor: an unknown number of events were lost; resuming at the live tail"
                    ),
                };
                Rejection {
                    reason,
                    gap: Some(gap),
                }
            }
            "UnknownZstdDictionary" => {
                self.dictionary_stale = true;
                if let Some(refused) = self.inflater.as_ref().map(Inflater::dictionary_id) {
                    let named = error
                        .numbers()
                        .into_iter()
                        .filter_map(|n| u32::try_from(n).ok())
                        .find(|n| *n != refused);
                    self.refused_dictionary = Some((refused, named));
                }
                Rejection { reason, gap: None }
            }
            _ => Rejection { reason, gap: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MICROS_PER_SEC;
    use crate::source::MAX_SEQ;

    /// The protocol's URL calls with the URLs as text, for these tables.
    trait AsText {
        fn url(&mut self, host: &str, processed: Option<Micros>) -> String;
        fn redirect(&mut self, to: &str);
    }

    impl AsText for JetstreamProtocol {
        fn url(&mut self, host: &str, processed: Option<Micros>) -> String {
            self.connect_url(&host.into(), processed)
                .secret()
                .to_owned()
        }
        fn redirect(&mut self, to: &str) {
            self.redirected(&to.into());
        }
    }

    #[test]
    fn v1_resumes_by_time_with_an_overlap() {
        let mut p = JetstreamProtocol::v1_plain();
        assert_eq!(
            p.url("wss://h/s", Some(10 * MICROS_PER_SEC)),
            "wss://h/s?wantedCollections=app.bsky.feed.post&cursor=5000000",
            "resumes five seconds before the last processed event"
        );
        assert!(p.headers().is_empty());
    }

    /// A v1 post frame dated `time_us`.
    fn v1_post(time_us: Micros) -> String {
        format!(
            r#"{{"did":"did:plc:a","time_us":{time_us},"kind":"commit","commit":{{"rev":"r","operation":"create","collection":"app.bsky.feed.post","rkey":"k","cid":"c","record":{{"text":"hi","createdAt":"2026-07-04T14:00:00Z"}}}}}}"#
        )
    }

    /// The first dated event after resuming by time, against the cursor
    /// asked for: a gap only past the tolerance, checked once per
    /// connection, never on a live-tail connection.
    #[test]
    fn v1_reports_a_cursor_the_server_clamped_in_silence() {
        let processed = 1_780_000_000 * MICROS_PER_SEC;
        let asked = processed - RESUME_OVERLAP_US;
        let is_gap = |c: &Control| matches!(c, Control::DataAfterGap(_));
        // (first frames after the connection, which of them report a gap)
        let cases: Vec<(Option<Micros>, Vec<String>, Vec<bool>)> = vec![
            // The overlap comes back: nothing lost.
            (
                Some(processed),
                vec![v1_post(asked), v1_post(asked + 1)],
                vec![false, false],
            ),
            // Just within the tolerance.
            (
                Some(processed),
                vec![v1_post(asked + V1_CLAMP_TOLERANCE_US)],
                vec![false],
            ),
            // Past it: the first frame says so, the next does not again.
            (
                Some(processed),
                vec![
                    v1_post(asked + V1_CLAMP_TOLERANCE_US + 1),
                    v1_post(asked + 2 * V1_CLAMP_TOLERANCE_US),
                ],
                vec![true, false],
            ),
            // An undated or broken first frame waits for the first dated one.
            (
                Some(processed),
                vec![
                    "{not json".into(),
                    r#"{"kind":"identity"}"#.into(),
                    v1_post(asked + 3_600 * MICROS_PER_SEC),
                ],
                vec![false, false, true],
            ),
            // The live tail asks for no cursor: nothing to compare.
            (
                None,
                vec![v1_post(asked + 3_600 * MICROS_PER_SEC)],
                vec![false],
            ),
        ];
        for (processed, frames, want) in cases {
            let mut p = JetstreamProtocol::v1_plain();
            p.url("wss://h/s", processed);
            let got: Vec<bool> = frames.iter().map(|f| is_gap(&p.control(f))).collect();
            assert_eq!(got, want, "{frames:?}");
        }
        // Each connection checks its own first event.
        let mut p = JetstreamProtocol::v1_plain();
        p.url("wss://h/s", Some(processed));
        let late = v1_post(asked + 2 * 3_600 * MICROS_PER_SEC);
        let Control::DataAfterGap(gap) = p.control(&late) else {
            panic!("a gap")
        };
        assert!(gap.contains("2h later"), "{gap}");
        assert!(gap.contains(&crate::wall::rfc3339(asked)), "{gap}");
        assert!(matches!(p.control(&late), Control::Data));
        p.url("wss://h/s", Some(processed));
        assert!(is_gap(&p.control(&late)), "checked again after a reconnect");
    }

    fn v2() -> JetstreamProtocol {
        JetstreamProtocol::new(JetstreamOptions {
            compress: false,
            ..JetstreamOptions::default()
        })
    }

    fn event(seq: u64) -> String {
        format!(
            r#"{{"$type":"message","payload":{{"$type":"network.bsky.jetstream.subscribeEvents#commit","seq":{seq},"did":"d","time":"2024-09-09T19:46:02.329308Z","rev":"r","operation":"delete","collection":"app.bsky.feed.post","rkey":"k"}}}}"#
        )
    }

    #[test]
    fn v2_resumes_exactly_by_sequence_on_the_same_host_only() {
        let mut p = v2();
        let t = 1_725_911_162_000_000;
        assert!(!p.url("ws://a", None).contains("cursor"));
        assert_eq!(
            p.headers(),
            vec![("sec-websocket-protocol", "xrpc.v1.json".to_owned())]
        );
        assert_eq!(p.control(&event(41)), Control::Data);
        assert_eq!(p.control(&event(42)), Control::Data);
        assert!(
            p.url("ws://a", Some(t)).ends_with("&cursor=43"),
            "last seq + 1"
        );
        let other = p.url("ws://b", Some(t));
        assert!(
            other.ends_with(&format!("&cursor={}", t - RESUME_OVERLAP_US)),
            "another host's numbers mean nothing here: by time: {other}"
        );
        // Restored from the checkpoint.
        let mut restored = JetstreamProtocol::new(JetstreamOptions {
            compress: false,
            resume: Some(SeqCursor {
                host: "ws://a".into(),
                seq: 99,
            }),
            ..JetstreamOptions::default()
        });
        assert!(restored.url("ws://a", Some(t)).ends_with("&cursor=100"));
    }

    /// What a redirect's target sends is filed under the target: its
    /// numbers are never sent back to the host that redirected, and a
    /// refusal of the target's cursor names the cursor its URL asked for.
    #[test]
    fn a_redirect_target_s_numbers_are_its_own() {
        let t = 1_725_911_162_000_000;
        let mut p = v2();
        p.url("ws://a", None);
        p.control(&event(41));
        p.redirect("ws://b/subscribe?kinds=commit&cursor=42");
        p.control(&event(7));
        let back = p.url("ws://a", Some(t));
        assert!(
            back.ends_with(&format!("&cursor={}", t - RESUME_OVERLAP_US)),
            "the target's seq 7 went back to the host that redirected: {back}"
        );
        p.redirect("ws://b/subscribe?cursor=500");
        let r = p.rejected(
            400,
            br#"{"error":"CursorTooOld","message":"cursor 500 is below the retention floor 900"}"#,
        );
        let gap = r.gap.expect("a gap");
        assert!(gap.contains("400 events (seq 500 to 899)"), "{gap}");
        // The floor is the target's: the configured host resumes by time.
        let again = p.url("ws://a", Some(t));
        assert!(
            again.ends_with(&format!("&cursor={}", t - RESUME_OVERLAP_US)),
            "{again}"
        );
    }

    /// A sequence number the server would read as a time is never sent
    /// back: the connection resumes by time instead.
    #[test]
    fn a_seq_in_the_times_range_is_never_sent_back() {
        let t = 1_725_911_162_000_000;
        for last in [TIME_CURSOR_MIN as u64 - 1, MAX_SEQ] {
            let mut p = v2();
            p.url("ws://a", None);
            p.control(&event(41));
            p.control(&event(last));
            let url = p.url("ws://a", Some(t));
            assert!(
                url.ends_with(&format!("&cursor={}", t - RESUME_OVERLAP_US)),
                "{last}: {url}"
            );
        }
        let mut p = v2();
        p.url("ws://a", None);
        p.control(&event(TIME_CURSOR_MIN as u64 - 2));
        let url = p.url("ws://a", Some(t));
        assert!(
            url.ends_with(&format!("&cursor={}", TIME_CURSOR_MIN - 1)),
            "{url}"
        );
    }

    #[test]
    fn cursor_too_old_resumes_from_the_floor_and_reports_the_gap() {
        let mut p = JetstreamProtocol::new(JetstreamOptions {
            compress: false,
            resume: Some(SeqCursor {
                host: "ws://a".into(),
                seq: 999,
            }),
            ..JetstreamOptions::default()
        });
        assert!(p.url("ws://a", None).ends_with("cursor=1000"));
        let r = p.rejected(
            400,
            br#"{"error":"CursorTooOld","message":"cursor 1000 is below the retention floor 1500"}"#,
        );
        let gap = r.gap.expect("a gap");
        assert!(
            gap.contains("500 events (seq 1000 to 1499) were lost"),
            "{gap}"
        );
        assert!(p.url("ws://a", None).ends_with("cursor=1500"));
        // Once frames flow, the usual cursor takes over.
        p.control(&event(1600));
        assert!(p.url("ws://a", None).ends_with("cursor=1601"));
        // No floor named: live tail, an unknown loss.
        let r = p.rejected(400, br#"{"error":"CursorTooOld","message":"too old"}"#);
        assert!(r.gap.expect("gap").contains("unknown number"));
        assert!(!p.url("ws://a", None).contains("cursor"));
        let r = p.rejected(503, b"<html>busy</html>");
        assert_eq!(r.gap, None);
        assert!(r.reason.contains("503"));
    }

    #[test]
    fn server_frames_are_classified() {
        let mut p = v2();
        assert!(matches!(
            p.control(r#"{"$type":"error","error":"ConsumerTooSlow","message":"reading too slowly"}"#),
            Control::Reconnect(r) if r.contains("ConsumerTooSlow")
        ));
        assert!(matches!(
            p.control(r#"{"$type":"message","payload":{"$type":"network.bsky.jetstream.subscribeEvents#info","name":"OutdatedCursor","message":"resumed from seq 5"}}"#),
            Control::Gap(g) if g.contains("resumed from seq 5")
        ));
        let mut v1 = JetstreamProtocol::v1_plain();
        assert_eq!(v1.control(r#"{"$type":"error"}"#), Control::Data);
    }

    #[test]
    fn binary_frames_need_a_dictionary_and_stay_within_limits() {
        let mut p = JetstreamProtocol::new(JetstreamOptions {
            wire: Wire::V1,
            compress: true,
            ..JetstreamOptions::default()
        });
        let settings = WsSettings::default();
        assert!(matches!(
            p.binary(b"xyz", &settings),
            BinaryFrame::Unusable(_)
        ));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(p.prepare(&"ws://h/subscribe".into()))
            .expect("nothing to fetch");
        let url = p.url("ws://h/subscribe", None);
        assert!(url.ends_with("&compress=true"), "{url}");
        let text = r#"{"did":"d","time_us":1,"kind":"account"}"#;
        let frame = zstd::bulk::Compressor::with_dictionary(3, compression::V1_DICTIONARY)
            .expect("compressor")
            .compress(text.as_bytes())
            .expect("compress");
        assert_eq!(p.binary(&frame, &settings), BinaryFrame::Text(text.into()));
        let tight = WsSettings {
            max_frame_bytes: 10,
            ..WsSettings::default()
        };
        assert!(matches!(
            p.binary(&frame, &tight),
            BinaryFrame::Oversized(_)
        ));
    }
}
