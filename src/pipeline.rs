//! The pipeline: source frames in, alerts out, through every stage in order
//! (decode → normalize → match → window → detect → alert).
//!
//! It is synchronous and owns no task or socket: the replay command feeds it
//! lines from a file, the daemon feeds it frames from websockets, and both
//! get the same alerts for the same frames. State is written to the store
//! in one batch with the checkpoint: whenever buckets close (the live
//! daemon, [`SAVE_EVERY_LIVE`]), or every few closed buckets when replaying
//! ([`PipelineConfig::save_every`]). Either way a batch is written at once
//! when it raises an alert, so the outbox and the detector's memory of the
//! firing are saved together, and a run killed between batches resumes from
//! the last one and decides the frames after it again, the same way.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::alert::Alert;
use crate::detect::{Detector, DetectorConfig};
use crate::matcher::{Class, Matcher, Verdict};
use crate::normalize::{Post, normalize};
use crate::source::clock::{ClockRule, Judgement, SourceClock, Tick, author_key};
use crate::source::dedupe::Deduper;
use crate::source::jetstream::SeqCursor;
use crate::source::{Decoded, FrameError, Origin, SkipReason, SourceKind};
use crate::state::{CheckpointRef, Store, StoreError};
use crate::window::{Bucket, Placement, WindowConfig, Windows};
use crate::{MICROS_PER_SEC, Micros};

/// An alert the pipeline raised, with its place in the store's outbox:
/// deliver it, then acknowledge `seq` with the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub seq: u64,
    pub alert: Alert,
}

/// How many malformed frames are kept, with their numbers, for the summary.
pub const MALFORMED_EXAMPLES: usize = 10;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PipelineConfig {
    pub window: WindowConfig,
    pub detector: DetectorConfig,
    /// How long closed buckets are kept in the store.
    pub retention_secs: i64,
    /// Closed buckets written to the store per batch (at least 1); a batch
    /// that raises an alert is written at once.
    pub save_every: usize,
}

impl PipelineConfig {
    pub fn new() -> Self {
        PipelineConfig {
            window: WindowConfig::default(),
            detector: DetectorConfig::default(),
            retention_secs: DEFAULT_RETENTION_SECS,
            save_every: SAVE_EVERY_LIVE,
        }
    }
}

/// The live daemon saves every closed bucket: a restart loses nothing.
pub const SAVE_EVERY_LIVE: usize = 1;
/// Replays save every 64 closed buckets (about ten minutes of 10 s
/// buckets): a killed replay redoes at most that much event time, and a
/// long replay writes 64 times less often.
pub const SAVE_EVERY_REPLAY: usize = 64;

/// Buckets are kept eight days: a week of history for time-of-day and
/// day-of-week baselines, plus a day of margin.
pub const DEFAULT_RETENTION_SECS: i64 = 8 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("bucket width differs: window {window} s, detector {detector} s")]
    BucketMismatch { window: i64, detector: i64 },
}

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
    pub blank_lines: u64,
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
    /// Jetstream v2 frames at or below the saved sequence number, dropped.
    pub duplicate_frames: u64,
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
    /// Frames that could not be used, by [`FrameError::reason`].
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

/// Where and when a frame was received, as [`Pipeline::process_frame`]
/// needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Received<'a> {
    pub kind: SourceKind,
    /// The host it was read from, live (a sequence number means something
    /// only on its host); `None` from a recording.
    pub host: Option<&'a str>,
    /// The host a Mastodon instance's local account names belong to.
    pub instance: &'a str,
    /// Wall-clock µs of arrival: live, or from a recording's clock line.
    pub arrival_us: Option<Micros>,
}

impl Received<'_> {
    /// A Jetstream frame from a recording without clock lines (as the demo).
    pub fn jetstream() -> Self {
        Received {
            kind: SourceKind::Jetstream,
            host: None,
            instance: "",
            arrival_us: None,
        }
    }
}

/// When and how a frame arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Arrival {
    /// Wall-clock µs of arrival: live, or from a recording's clock line.
    pub at_us: Option<Micros>,
    /// The decoder set the event time to the arrival time (Mastodon, Nostr).
    pub own_clock: bool,
}

pub struct Pipeline<S: Store> {
    matcher: Arc<Matcher>,
    windows: Windows,
    detector: Detector,
    store: S,
    retention_us: Micros,
    cursors: BTreeMap<String, Micros>,
    clocks: BTreeMap<String, SourceClock>,
    clock_rule: ClockRule,
    seqs: BTreeMap<String, SeqCursor>,
    dedupe: Deduper,
    stats: Stats,
    save_every: usize,
    /// Closed buckets not written to the store yet (see the module docs).
    unsaved: Vec<Bucket>,
    /// Told about every closed bucket, for the status API and dashboard.
    telemetry: Option<Arc<crate::telemetry::Telemetry>>,
}

impl<S: Store> Pipeline<S> {
    /// Starts a pipeline, continuing from the store's checkpoint if it has one.
    pub fn open(
        matcher: Arc<Matcher>,
        config: PipelineConfig,
        store: S,
    ) -> Result<Self, PipelineError> {
        if config.window.bucket_secs != config.detector.bucket_secs {
            return Err(PipelineError::BucketMismatch {
                window: config.window.bucket_secs,
                detector: config.detector.bucket_secs,
            });
        }
        let checkpoint = store.checkpoint()?.unwrap_or_default();
        let detector = Detector::restore(
            config.detector.clone(),
            checkpoint.detector,
            store.baselines()?,
        );
        let max_late_us = config.window.max_late_secs.saturating_mul(MICROS_PER_SEC);
        let clock_rule = ClockRule {
            max_future_us: config.window.max_future_secs.max(0) * MICROS_PER_SEC,
            quorum: config.window.watermark_quorum.max(1),
        };
        let clocks = checkpoint
            .cursors
            .iter()
            .map(|(name, &w)| (name.clone(), SourceClock::restored(Some(w))))
            .collect();
        Ok(Pipeline {
            clocks,
            clock_rule,
            matcher,
            windows: Windows::resume(
                config.window,
                checkpoint.closed_through,
                checkpoint.newest,
                checkpoint.open,
            ),
            detector,
            store,
            retention_us: config.retention_secs * MICROS_PER_SEC,
            cursors: checkpoint.cursors,
            seqs: checkpoint.seqs,
            dedupe: checkpoint
                .dedupe
                .map(Deduper::restored)
                .unwrap_or_default()
                .covering(max_late_us),
            stats: Stats::default(),
            save_every: config.save_every.max(1),
            unsaved: Vec::new(),
            telemetry: None,
        })
    }

    /// Tells `telemetry` about every closed bucket from now on.
    pub fn set_telemetry(&mut self, telemetry: Arc<crate::telemetry::Telemetry>) {
        self.telemetry = Some(telemetry);
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The matcher, for preparing frames elsewhere (see [`prepare`]).
    pub fn matcher(&self) -> &Arc<Matcher> {
        &self.matcher
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// One frame of any source kind (a recording's line or a websocket
    /// text frame), decoded by its kind. `source` and `frame_no` name the
    /// frame in error reports. A sequence number (Jetstream v2) read from a
    /// known host is saved with the counts, for an exact resume on that
    /// host; a frame at or below the saved one for the same host, which the
    /// server sent again, is counted as a duplicate and not processed.
    pub fn process_frame(
        &mut self,
        source: &str,
        frame_no: u64,
        frame: &[u8],
        received: &Received<'_>,
    ) -> Result<Vec<Emitted>, PipelineError> {
        let prepared = prepare(&self.matcher, frame, received);
        self.process_prepared(source, frame_no, prepared, received)
    }

    /// [`Pipeline::process_frame`] for a frame [`prepare`]d already (on
    /// another thread, say): everything that needs the pipeline's state,
    /// in frame order.
    pub fn process_prepared(
        &mut self,
        source: &str,
        frame_no: u64,
        prepared: Prepared,
        received: &Received<'_>,
    ) -> Result<Vec<Emitted>, PipelineError> {
        let (decoded, own_clock) = match prepared {
            Prepared::Blank => {
                self.stats.frames += 1;
                self.stats.blank_lines += 1;
                let counts = self.source_counts(source);
                counts.frames += 1;
                *counts.skipped.entry("blank").or_default() += 1;
                return Ok(Vec::new());
            }
            Prepared::Malformed(error) => (Err(error), false),
            Prepared::Frame {
                time_us,
                seq,
                own_clock,
                content,
            } => {
                if let (Some(host), Some(seq)) = (received.host, seq)
                    && self.seen_before(source, host, seq)
                {
                    self.stats.frames += 1;
                    self.stats.duplicate_frames += 1;
                    return Ok(Vec::new());
                }
                (Ok((time_us, content)), own_clock)
            }
        };
        let arrival = Arrival {
            at_us: received.arrival_us,
            own_clock,
        };
        self.process_arrived(source, frame_no, decoded, arrival)
    }

    /// Whether sequence number `seq` from `host` was processed already;
    /// if not, it becomes the source's sequence cursor.
    fn seen_before(&mut self, source: &str, host: &str, seq: u64) -> bool {
        match self.seqs.get_mut(source) {
            Some(saved) if saved.host == host && seq <= saved.seq => return true,
            Some(saved) if saved.host == host => saved.seq = seq,
            _ => {
                let cursor = SeqCursor {
                    host: host.to_owned(),
                    seq,
                };
                self.seqs.insert(source.to_owned(), cursor);
            }
        }
        false
    }

    /// The v2 sequence cursor saved for a source.
    pub fn seq_cursor(&self, source: &str) -> Option<SeqCursor> {
        self.seqs.get(source).cloned()
    }

    /// A decoded frame with its arrival: judged by the source's clock
    /// (quarantined if too far ahead), then counted against the source's
    /// own watermark. The source's cursor is its watermark, which only
    /// accepted events move.
    fn process_arrived(
        &mut self,
        source: &str,
        frame_no: u64,
        decoded: Result<(Micros, Content), FrameError>,
        arrival: Arrival,
    ) -> Result<Vec<Emitted>, PipelineError> {
        self.stats.frames += 1;
        self.source_counts(source).frames += 1;
        match decoded {
            Ok((time_us, decoded)) => {
                let fallback = self.windows.newest();
                let reference = if time_us > 0 {
                    let author = match &decoded {
                        Content::Post(judged) => Some(author_key(&judged.post.author)),
                        Content::Skipped(_) => None,
                    };
                    let tick = Tick {
                        time_us,
                        author,
                        arrival_us: arrival.at_us,
                        own_clock: arrival.own_clock,
                    };
                    let clock = per_source(&mut self.clocks, source);
                    let judgement = clock.judge(tick, fallback, &self.clock_rule);
                    let watermark = clock.watermark();
                    let counts = per_source(&mut self.stats.by_source, source);
                    if judgement == Judgement::Future {
                        self.stats.future += 1;
                        counts.future += 1;
                        tracing::debug!(source, frame_no, time_us, ?watermark, arrival = ?arrival.at_us, "event too far ahead: quarantined");
                        return Ok(Vec::new());
                    }
                    counts.newest = Some(counts.newest.map_or(time_us, |n| n.max(time_us)));
                    if let Some(w) = watermark {
                        *per_source(&mut self.cursors, source) = w;
                        self.windows.observe(w);
                    }
                    watermark.or(fallback)
                } else {
                    fallback
                };
                match decoded {
                    Content::Post(judged) => {
                        let before = self.class_counts();
                        let alerts = self.process_judged(source, *judged, reference);
                        let after = self.class_counts();
                        let counts = self.source_counts(source);
                        counts.posts += after[0] - before[0];
                        counts.reports += after[1] - before[1];
                        counts.recoveries += after[2] - before[2];
                        counts.maintenance += after[3] - before[3];
                        counts.duplicates += after[4] - before[4];
                        alerts
                    }
                    Content::Skipped(reason) => {
                        self.skip(reason);
                        *self
                            .source_counts(source)
                            .skipped
                            .entry(reason.name())
                            .or_default() += 1;
                        Ok(Vec::new())
                    }
                }
            }
            Err(error) => {
                self.note_malformed(source, frame_no, &error);
                Ok(Vec::new())
            }
        }
    }

    /// A frame the source could not even hand over (oversized, say).
    pub fn reject_frame(&mut self, source: &str, frame_no: u64, error: &FrameError) {
        self.stats.frames += 1;
        self.source_counts(source).frames += 1;
        self.note_malformed(source, frame_no, error);
    }

    /// The per-source counts of `source`, created at its first frame.
    fn source_counts(&mut self, source: &str) -> &mut SourceCounts {
        per_source(&mut self.stats.by_source, source)
    }

    /// Posts, reports, recoveries, maintenance, duplicates: to attribute
    /// one post's effect to its source.
    fn class_counts(&self) -> [u64; 5] {
        let s = &self.stats;
        [
            s.posts,
            s.reports,
            s.recoveries,
            s.maintenance,
            s.duplicates,
        ]
    }

    fn note_malformed(&mut self, source: &str, frame_no: u64, error: &FrameError) {
        *self
            .source_counts(source)
            .malformed
            .entry(error.reason())
            .or_default() += 1;
        self.stats.malformed += 1;
        if let FrameError::Unverified(reason) = error {
            *self.stats.unverified.entry(reason).or_default() += 1;
        }
        if self.stats.malformed_examples.len() < MALFORMED_EXAMPLES {
            self.stats
                .malformed_examples
                .push((format!("{source}:{frame_no}"), error.to_string()));
        }
    }

    /// The watermark buckets close on (the newest source watermark), for
    /// pacing a replay.
    pub fn newest_event_time(&self) -> Option<Micros> {
        self.windows.newest()
    }

    pub fn skip(&mut self, reason: SkipReason) {
        *self.stats.skipped.entry(reason.name()).or_default() += 1;
    }

    /// One post already accepted by `source`'s clock, judged stale against
    /// `reference` (its source's watermark).
    fn process_judged(
        &mut self,
        source: &str,
        Judged { post, verdict }: Judged,
        reference: Option<Micros>,
    ) -> Result<Vec<Emitted>, PipelineError> {
        if self.dedupe.is_duplicate(post.key, post.time_us) {
            self.stats.duplicates += 1;
            return Ok(Vec::new());
        }
        self.stats.posts += 1;
        match verdict.class {
            Class::Report => self.stats.reports += 1,
            Class::Recovery => self.stats.recoveries += 1,
            Class::Maintenance => self.stats.maintenance += 1,
            Class::None => {}
        }
        let placement = self.windows.add(&post, &verdict, reference);
        if placement != Placement::Counted && !source.is_empty() {
            let counts = per_source(&mut self.stats.by_source, source);
            match placement {
                Placement::Late => counts.late += 1,
                _ => counts.stale += 1,
            }
        }
        self.stats.late_posts = self.windows.late();
        self.stats.stale_posts = self.windows.stale();
        self.stats.discovered_rejected = self.windows.discovered_rejected();
        self.stats.discovered_pending = self.windows.discovered_pending();
        let (tracked, candidates) = self.windows.discovered_sizes();
        self.stats.peak_discovered = self.stats.peak_discovered.max(tracked);
        self.stats.peak_candidates = self.stats.peak_candidates.max(candidates);
        let closed = self.windows.advance();
        self.close(closed)
    }

    /// Makes the state durable: the end of a recording, or a shutdown.
    /// Buckets the watermark has not passed stay open and are saved as
    /// such, so the next run with the same state continues them; closing
    /// them now would turn their remaining posts into late ones.
    pub fn finish(&mut self) -> Result<Vec<Emitted>, PipelineError> {
        let closed = self.windows.advance();
        let alerts = self.close(closed)?;
        let unsaved = std::mem::take(&mut self.unsaved);
        self.save(&unsaved, &[])?;
        self.store.flush()?;
        Ok(alerts)
    }

    /// How far a named source has been processed (restored from the
    /// checkpoint at start).
    pub fn cursor(&self, source: &str) -> Option<Micros> {
        self.cursors.get(source).copied()
    }

    fn close(&mut self, closed: Vec<Bucket>) -> Result<Vec<Emitted>, PipelineError> {
        if closed.is_empty() {
            return Ok(Vec::new());
        }
        let mut alerts = Vec::new();
        for bucket in &closed {
            let first = alerts.len();
            for transition in self.detector.on_bucket(bucket) {
                alerts.push(Alert::from(transition));
            }
            if let Some(telemetry) = &self.telemetry {
                telemetry.on_bucket(bucket, &self.detector, &alerts[first..]);
            }
        }
        self.stats.peak_detector_services = self
            .stats
            .peak_detector_services
            .max(self.detector.service_count());
        self.stats.buckets_closed += closed.len() as u64;
        self.stats.alerts += alerts.len() as u64;
        self.unsaved.extend(closed);
        if alerts.is_empty() && self.unsaved.len() < self.save_every {
            return Ok(Vec::new());
        }
        let batch = std::mem::take(&mut self.unsaved);
        let seqs = self.save(&batch, &alerts)?;
        Ok(seqs
            .into_iter()
            .zip(alerts)
            .map(|(seq, alert)| Emitted { seq, alert })
            .collect())
    }

    /// The oldest event time a post can have and still be counted after a
    /// restart from this state: the oldest source watermark less the allowed
    /// lateness (see [`Windows::add`]).
    fn countable_from(&self) -> Option<Micros> {
        let max_late = self.windows.config().max_late_secs * MICROS_PER_SEC;
        let oldest = self.cursors.values().min().copied();
        oldest.map(|w| w.saturating_sub(max_late))
    }

    fn save(&mut self, closed: &[Bucket], alerts: &[Alert]) -> Result<Vec<u64>, PipelineError> {
        let baselines = self.detector.take_changed();
        let checkpoint = CheckpointRef {
            closed_through: self.windows.closed_through(),
            newest: self.windows.newest(),
            open: self.windows.open_buckets().collect(),
            detector: Some(self.detector.state()),
            cursors: &self.cursors,
            seqs: &self.seqs,
            dedupe: Some(self.dedupe.persisted(self.countable_from())),
        };
        let prune_before = self
            .windows
            .closed_through()
            .map(|t| t.saturating_sub(self.retention_us));
        Ok(self
            .store
            .save(closed, &checkpoint, prune_before, alerts, &baselines)?)
    }
}

/// A frame with the work that needs no pipeline state done: decoded by its
/// kind and, for a post, normalized and classified. [`prepare`] builds it
/// on any thread (replays prepare many frames at once on every core);
/// [`Pipeline::process_prepared`] does the rest in frame order, so the
/// result is the same as [`Pipeline::process_frame`]'s, which is the two
/// in a row.
#[derive(Debug)]
pub enum Prepared {
    /// A blank line or frame.
    Blank,
    Malformed(FrameError),
    Frame {
        time_us: Micros,
        seq: Option<u64>,
        /// The decoder set the event time to the arrival time.
        own_clock: bool,
        content: Content,
    },
}

/// What a well-formed frame holds, once prepared.
#[derive(Debug)]
pub enum Content {
    /// Boxed: a post with its verdict is much larger than a skip reason.
    Post(Box<Judged>),
    Skipped(SkipReason),
}

/// A post in the form the matcher reads, with the matcher's verdict.
#[derive(Debug)]
pub struct Judged {
    pub post: Post,
    pub verdict: Verdict,
}

/// Decodes `frame` by its kind and judges its post, if any: pure, so it
/// runs on any thread (see [`Prepared`]).
pub fn prepare(matcher: &Matcher, frame: &[u8], received: &Received<'_>) -> Prepared {
    if frame.iter().all(u8::is_ascii_whitespace) {
        return Prepared::Blank;
    }
    let origin = Origin {
        instance: received.instance,
        arrival_us: received.arrival_us,
    };
    let (decoded, own_clock) = received.kind.decode(frame, &origin);
    let frame = match decoded {
        Ok(frame) => frame,
        Err(error) => return Prepared::Malformed(error),
    };
    let content = match frame.decoded {
        Decoded::Post(raw) => {
            let post = normalize(raw);
            let verdict = matcher.classify(&post);
            Content::Post(Box::new(Judged { post, verdict }))
        }
        Decoded::Skipped(reason) => Content::Skipped(reason),
    };
    Prepared::Frame {
        time_us: frame.time_us,
        seq: frame.seq,
        own_clock,
        content,
    }
}

/// The entry of `source` in a per-source map, created at its first event.
/// Looks up by `&str` first: this runs for every event, and `entry` would
/// allocate the key each time.
fn per_source<'a, V: Default>(map: &'a mut BTreeMap<String, V>, source: &str) -> &'a mut V {
    if !map.contains_key(source) {
        map.insert(source.to_owned(), V::default());
    }
    map.get_mut(source).expect("inserted just above")
}
