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
//!
//! **The dictionary** a compressed connection reads with is fetched,
//! cached and dropped in `dictionary.rs` beside this file.

mod dictionary;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RESUME_OVERLAP_US;
use super::compression::{self, Dictionary, Inflater};
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
#[path = "protocol_tests.rs"]
mod tests;
