//! The pipeline's counters ([`Stats`], per source [`SourceCounts`]) and
//! the named events that move them when a frame or a post cannot be used:
//! [`FrameMalformed`], [`EventQuarantined`], [`PostStale`].
//!
//! They live here, below the pipeline, so that telemetry and the HTTP API
//! read them without importing the pipeline (which feeds telemetry). Each
//! event logs at `debug`: a hostile source can send these by the million,
//! and the operator's view of them is the counters (metrics, status API,
//! the replay summary) and the daemon's rate-limited warning for malformed
//! frames.

use std::collections::BTreeMap;

use serde::Serialize;

use super::InternalEvent;
use crate::Micros;
use crate::text::{SERVER_TEXT_CHARS, display_chars};

/// How many malformed frames are kept, with their numbers, for the summary.
pub const MALFORMED_EXAMPLES: usize = 10;

/// What a run has seen; printed as the replay summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Frames (lines) read, good or bad.
    pub frames: u64,
    pub posts: u64,
    pub reports: u64,
    pub recoveries: u64,
    pub maintenance: u64,
    /// Well-formed frames without a post to match, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Frames that could not be used.
    pub malformed: u64,
    /// Of those, signed events that failed verification, by reason.
    pub unverified: BTreeMap<&'static str, u64>,
    /// The first few malformed frames: where (source:line) and why.
    pub malformed_examples: Vec<(String, String)>,
    /// The last malformed frame's reason (`FrameError::reason`) and why,
    /// cut: for the daemon's warning, which names each source's first few.
    #[serde(skip)]
    pub last_malformed: Option<(&'static str, String)>,
    pub blank_lines: u64,
    /// Of the skipped frames, those that show nothing of their source's
    /// stream (see [`crate::source::SkipReason::shows_life`]): no data for
    /// its health. Counted in `skipped` too, so not printed again.
    #[serde(skip)]
    pub lifeless: u64,
    /// Posts that came after their bucket closed, added to the oldest open one.
    pub late_posts: u64,
    /// Posts too far behind the newest to count; see `window`.
    pub stale_posts: u64,
    /// Reports of discovered services turned away by the bound on them.
    pub discovered_rejected: u64,
    /// Events too far ahead of the arrival clock or of their source's
    /// watermark: quarantined, never counted (see `source::clock`).
    pub future: u64,
    /// Reports of discovered names held back until enough authors used them.
    pub discovered_pending: u64,
    /// Most discovered names tracked, candidates remembered and detector
    /// services at once (the bounds at work).
    pub peak_discovered: usize,
    pub peak_candidates: usize,
    pub peak_detector_services: usize,
    /// Posts delivered twice (a resumed cursor's overlap, several relays), dropped.
    pub duplicates: u64,
    /// Jetstream v2 frames at or below the saved sequence number (by at
    /// most `pipeline::SEQ_REWIND`), dropped.
    pub duplicate_frames: u64,
    /// Jetstream v2 frames numbered further back than that: the server
    /// numbering afresh, followed.
    pub seq_restarts: u64,
    pub buckets_closed: u64,
    pub alerts: u64,
    /// The same counts per source (a file, or a configured source's name),
    /// for the metrics.
    pub by_source: BTreeMap<String, SourceCounts>,
}

/// What one source delivered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceCounts {
    pub frames: u64,
    pub posts: u64,
    pub reports: u64,
    pub recoveries: u64,
    pub maintenance: u64,
    pub duplicates: u64,
    /// Frames that could not be used, by `FrameError::reason`.
    pub malformed: BTreeMap<&'static str, u64>,
    /// Well-formed frames without a post, by reason (`blank` for blank lines).
    pub skipped: BTreeMap<&'static str, u64>,
    /// Posts after their bucket closed, added to the oldest open one.
    pub late: u64,
    /// Posts too far behind this source's watermark to count.
    pub stale: u64,
    /// Events quarantined as too far ahead (see `source::clock`).
    pub future: u64,
    /// Newest event time accepted (not the watermark, which lags it).
    pub newest: Option<Micros>,
}

impl Stats {
    /// `f` on the counts of `source`, created at its first frame.
    pub fn source_mut<T>(&mut self, source: &str, f: impl FnOnce(&mut SourceCounts) -> T) -> T {
        per_source(&mut self.by_source, source, f)
    }
}

/// `f` on the entry of `source` in a per-source map, created at its first
/// event. This runs for every event: a known source costs one look-up by
/// `&str`, and only a new one allocates its key. (A function returning the
/// entry would need a second look-up: the borrow checker does not let a
/// reference found by the first escape past the branch that inserts.)
pub fn per_source<V: Default, T>(
    map: &mut BTreeMap<String, V>,
    source: &str,
    f: impl FnOnce(&mut V) -> T,
) -> T {
    match map.get_mut(source) {
        Some(entry) => f(entry),
        None => f(map.entry(source.to_owned()).or_default()),
    }
}

/// A frame that could not be used (not UTF-8, bad JSON, a missing field, a
/// signature that does not verify): counted in total and per source and
/// reason, kept as an example while there are fewer than
/// [`MALFORMED_EXAMPLES`].
pub struct FrameMalformed<'a> {
    pub stats: &'a mut Stats,
    pub source: &'a str,
    /// The frame's number in its source (a recording's line).
    pub frame_no: u64,
    /// `FrameError::reason`: the metric label.
    pub reason: &'static str,
    /// For a signed event that failed verification: why.
    pub unverified: Option<&'static str>,
    pub error: &'a dyn std::fmt::Display,
}

impl InternalEvent for FrameMalformed<'_> {
    fn emit(self) {
        let stats = self.stats;
        stats.source_mut(self.source, |counts| {
            *counts.malformed.entry(self.reason).or_default() += 1;
        });
        stats.malformed += 1;
        if let Some(why) = self.unverified {
            *stats.unverified.entry(why).or_default() += 1;
        }
        // The reason can quote the sender's text (a serde message holds a
        // whole bad value: a 300 KB `created_at` made a 600 KB replay
        // summary): cut like a server's message, here where every
        // malformed frame's reason passes.
        let error = display_chars(self.error, SERVER_TEXT_CHARS);
        tracing::debug!(event = "frame_malformed", stage = "decode", error_type = self.reason, source = %self.source, frame_no = self.frame_no, error = %error, malformed = stats.malformed, "malformed frame skipped");
        if stats.malformed_examples.len() < MALFORMED_EXAMPLES {
            let at = format!("{}:{}", self.source, self.frame_no);
            stats.malformed_examples.push((at, error.clone()));
        }
        stats.last_malformed = Some((self.reason, error));
    }
}

/// An event too far ahead of the arrival clock or of its source's
/// watermark: quarantined, never counted or used as a cursor.
pub struct EventQuarantined<'a> {
    pub stats: &'a mut Stats,
    pub source: &'a str,
    pub frame_no: u64,
    pub time_us: Micros,
    pub watermark: Option<Micros>,
    pub arrival_us: Option<Micros>,
}

impl InternalEvent for EventQuarantined<'_> {
    fn emit(self) {
        self.stats.future += 1;
        self.stats
            .source_mut(self.source, |counts| counts.future += 1);
        tracing::debug!(event = "event_quarantined", stage = "clock", error_type = "future", source = %self.source, frame_no = self.frame_no, time_us = self.time_us, watermark = ?self.watermark, arrival = ?self.arrival_us, "event too far ahead: quarantined");
    }
}

/// A post too far behind its source's watermark to count: left out of the
/// buckets (lumping it into "now" would fake a surge), counted.
pub struct PostStale<'a> {
    pub stats: &'a mut Stats,
    /// Empty for posts fed without a source (counted in total only).
    pub source: &'a str,
    pub time_us: Micros,
    /// The watermark it was judged against.
    pub reference: Option<Micros>,
}

impl InternalEvent for PostStale<'_> {
    fn emit(self) {
        self.stats.stale_posts += 1;
        if !self.source.is_empty() {
            self.stats
                .source_mut(self.source, |counts| counts.stale += 1);
        }
        tracing::debug!(event = "post_stale", stage = "window", error_type = "stale", source = %self.source, time_us = self.time_us, reference = ?self.reference, stale = self.stats.stale_posts, "post too far behind its source's watermark: not counted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each event moves its total and its source's count by one, and
    /// nothing else.
    #[test]
    fn each_pipeline_event_counts_itself_once() {
        let mut stats = Stats::default();
        for n in 1..=MALFORMED_EXAMPLES as u64 + 2 {
            FrameMalformed {
                stats: &mut stats,
                source: "f",
                frame_no: n,
                reason: "unverified",
                unverified: Some("bad_signature"),
                error: &"signature does not verify",
            }
            .emit();
        }
        let n = MALFORMED_EXAMPLES as u64 + 2;
        assert_eq!(stats.malformed, n);
        assert_eq!(stats.by_source["f"].malformed["unverified"], n);
        assert_eq!(stats.unverified["bad_signature"], n);
        assert_eq!(stats.malformed_examples.len(), MALFORMED_EXAMPLES);
        assert_eq!(stats.malformed_examples[1].0, "f:2");
        EventQuarantined {
            stats: &mut stats,
            source: "f",
            frame_no: 3,
            time_us: 9,
            watermark: None,
            arrival_us: Some(1),
        }
        .emit();
        for source in ["f", ""] {
            PostStale {
                stats: &mut stats,
                source,
                time_us: 1,
                reference: Some(100),
            }
            .emit();
        }
        assert_eq!((stats.future, stats.stale_posts), (1, 2));
        let f = &stats.by_source["f"];
        assert_eq!((f.future, f.stale, f.frames), (1, 1, 0));
        assert!(!stats.by_source.contains_key(""), "no source: total only");
    }

    /// A reason quoting a sender's huge value is kept and logged cut to a
    /// server message's length: Mastodon and Nostr `created_at` of
    /// 300 KB, a Mastodon status's `tags` a string of 300 KB. (An
    /// instance's `error` is cut by the decoder already.)
    #[test]
    fn a_malformed_reason_is_cut_whatever_the_sender_wrote() {
        use crate::source::{mastodon, nostr};
        let huge = "9é".repeat(150_000);
        let status = serde_json::json!({
            "created_at": huge, "content": "", "account": {"acct": "a"}, "uri": "u"
        });
        let update =
            serde_json::json!({"event": "update", "payload": status.to_string()}).to_string();
        let tags = serde_json::json!({
            "created_at": "2026-07-04T14:17:05Z", "content": "", "account": {"acct": "a"},
            "uri": "u", "tags": huge
        });
        let tags = serde_json::json!({"event": "update", "payload": tags.to_string()}).to_string();
        let note = serde_json::json!(["EVENT", "outagewatch", {
            "id": "", "pubkey": "", "created_at": huge, "kind": 1, "content": "", "sig": ""
        }])
        .to_string();
        let errors = [
            mastodon::decode(update.as_bytes(), "i", Some(1)).expect_err("bad time"),
            mastodon::decode(tags.as_bytes(), "i", Some(1)).expect_err("tags not a list"),
            nostr::decode(note.as_bytes(), Some(1), None).expect_err("bad type"),
        ];
        let mut stats = Stats::default();
        for (n, error) in errors.iter().enumerate() {
            assert!(
                error.to_string().len() > 300_000,
                "{n}: the raw reason is huge"
            );
            FrameMalformed {
                stats: &mut stats,
                source: "s",
                frame_no: n as u64,
                reason: error.reason(),
                unverified: None,
                error,
            }
            .emit();
        }
        assert_eq!(stats.malformed_examples.len(), 3);
        for (_, why) in &stats.malformed_examples {
            assert_eq!(why.chars().count(), SERVER_TEXT_CHARS, "{why}");
            assert!(why.ends_with('…'), "{why}");
        }
    }
}
