//! The pipeline: source frames in, alerts out, through every stage in order
//! (decode → normalize → match → window → detect → alert).
//!
//! It is synchronous and owns no task or socket: the replay command feeds it
//! lines from a file, the daemon feeds it frames from websockets, and both
//! get the same alerts for the same frames. State is written to the store
//! whenever buckets close, in one batch with the checkpoint.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::alert::Alert;
use crate::detect::{Detector, DetectorConfig};
use crate::matcher::{Class, Matcher};
use crate::normalize::normalize;
use crate::source::dedupe::Deduper;
use crate::source::jetstream::{Frame, SeqCursor};
use crate::source::{Decoded, FrameError, RawPost, SkipReason, jetstream};
use crate::window::store::{Checkpoint, Store, StoreError};
use crate::window::{Bucket, WindowConfig, Windows};
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
}

impl PipelineConfig {
    pub fn new() -> Self {
        PipelineConfig {
            window: WindowConfig::default(),
            detector: DetectorConfig::default(),
            retention_secs: DEFAULT_RETENTION_SECS,
        }
    }
}

/// Buckets are kept eight days: a week of history for time-of-day and
/// day-of-week baselines, plus a day of margin.
pub const DEFAULT_RETENTION_SECS: i64 = 8 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the saved detector state cannot be read ({0}); remove the state directory to start afresh"
    )]
    DetectorState(serde_json::Error),
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
    /// The first few malformed frames: where (source:line) and why.
    pub malformed_examples: Vec<(String, String)>,
    pub blank_lines: u64,
    /// Posts that came after their bucket closed, added to the oldest open one.
    pub late_posts: u64,
    /// Posts too far behind the newest to count; see `window`.
    pub stale_posts: u64,
    /// Reports of discovered services turned away by the bound on them.
    pub discovered_rejected: u64,
    /// Posts delivered twice (a resumed cursor's overlap, several relays), dropped.
    pub duplicates: u64,
    /// Jetstream v2 frames at or below the saved sequence number, dropped.
    pub duplicate_frames: u64,
    pub buckets_closed: u64,
    pub alerts: u64,
}

pub struct Pipeline<S: Store> {
    matcher: Arc<Matcher>,
    windows: Windows,
    detector: Detector,
    store: S,
    retention_us: Micros,
    cursors: BTreeMap<String, Micros>,
    seqs: BTreeMap<String, SeqCursor>,
    dedupe: Deduper,
    stats: Stats,
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
            &checkpoint.detector,
            &store.baselines()?,
        )
        .map_err(PipelineError::DetectorState)?;
        Ok(Pipeline {
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
            dedupe: checkpoint.dedupe.map(Deduper::restored).unwrap_or_default(),
            stats: Stats::default(),
        })
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// One Jetstream frame (a recording's line or a websocket text frame).
    /// `source` and `frame_no` name the frame in error reports.
    pub fn process_frame(
        &mut self,
        source: &str,
        frame_no: u64,
        frame: &[u8],
    ) -> Result<Vec<Emitted>, PipelineError> {
        if frame.iter().all(u8::is_ascii_whitespace) {
            self.stats.frames += 1;
            self.stats.blank_lines += 1;
            return Ok(Vec::new());
        }
        self.process_jetstream(source, None, frame_no, frame)
    }

    /// One Jetstream frame read live from `host`: a v2 sequence number is
    /// saved with the counts (for an exact resume on that host), and a
    /// frame at or below the saved one for the same host, which the server
    /// sent again, is counted as a duplicate and not processed.
    pub fn process_jetstream(
        &mut self,
        source: &str,
        host: Option<&str>,
        frame_no: u64,
        frame: &[u8],
    ) -> Result<Vec<Emitted>, PipelineError> {
        if frame.iter().all(u8::is_ascii_whitespace) {
            self.stats.frames += 1;
            self.stats.blank_lines += 1;
            return Ok(Vec::new());
        }
        let decoded = jetstream::decode_frame(frame);
        if let (Some(host), Ok(Frame { seq: Some(seq), .. })) = (host, &decoded) {
            match self.seqs.get_mut(source) {
                Some(saved) if saved.host == host && *seq <= saved.seq => {
                    self.stats.frames += 1;
                    self.stats.duplicate_frames += 1;
                    return Ok(Vec::new());
                }
                Some(saved) if saved.host == host => saved.seq = *seq,
                _ => {
                    self.seqs.insert(
                        source.to_owned(),
                        SeqCursor {
                            host: host.to_owned(),
                            seq: *seq,
                        },
                    );
                }
            }
        }
        self.process_decoded(source, frame_no, decoded.map(|f| (f.time_us, f.decoded)))
    }

    /// The v2 sequence cursor saved for a source.
    pub fn seq_cursor(&self, source: &str) -> Option<SeqCursor> {
        self.seqs.get(source).cloned()
    }

    /// A frame already decoded by its source's decoder (Jetstream,
    /// Mastodon, Nostr): `(event time, what it held)`, or why it is unusable.
    pub fn process_decoded(
        &mut self,
        source: &str,
        frame_no: u64,
        decoded: Result<(Micros, Decoded), FrameError>,
    ) -> Result<Vec<Emitted>, PipelineError> {
        self.stats.frames += 1;
        match decoded {
            Ok((time_us, decoded)) => {
                if time_us > 0 {
                    let cursor = self.cursors.entry(source.to_owned()).or_insert(time_us);
                    *cursor = (*cursor).max(time_us);
                }
                match decoded {
                    Decoded::Post(post) => self.process_post(post),
                    Decoded::Skipped(reason) => {
                        self.skip(reason);
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
        self.note_malformed(source, frame_no, error);
    }

    fn note_malformed(&mut self, source: &str, frame_no: u64, error: &FrameError) {
        self.stats.malformed += 1;
        if self.stats.malformed_examples.len() < MALFORMED_EXAMPLES {
            self.stats
                .malformed_examples
                .push((format!("{source}:{frame_no}"), error.to_string()));
        }
    }

    /// Newest event time seen, for pacing a replay.
    pub fn newest_event_time(&self) -> Option<Micros> {
        self.windows.newest()
    }

    pub fn skip(&mut self, reason: SkipReason) {
        *self.stats.skipped.entry(reason.name()).or_default() += 1;
    }

    /// One post from any source.
    pub fn process_post(&mut self, raw: RawPost) -> Result<Vec<Emitted>, PipelineError> {
        if self.dedupe.is_duplicate(raw.key, raw.time_us) {
            self.stats.duplicates += 1;
            return Ok(Vec::new());
        }
        self.stats.posts += 1;
        let post = normalize(raw);
        let verdict = self.matcher.classify(&post);
        match verdict.class {
            Class::Report => self.stats.reports += 1,
            Class::Recovery => self.stats.recoveries += 1,
            Class::Maintenance => self.stats.maintenance += 1,
            Class::None => {}
        }
        self.windows.add(&post, &verdict);
        self.stats.late_posts = self.windows.late();
        self.stats.stale_posts = self.windows.stale();
        self.stats.discovered_rejected = self.windows.discovered_rejected();
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
        self.save(&[], &[])?;
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
            for transition in self.detector.on_bucket(bucket) {
                alerts.push(Alert::from(transition));
            }
        }
        self.stats.buckets_closed += closed.len() as u64;
        self.stats.alerts += alerts.len() as u64;
        let seqs = self.save(&closed, &alerts)?;
        Ok(seqs
            .into_iter()
            .zip(alerts)
            .map(|(seq, alert)| Emitted { seq, alert })
            .collect())
    }

    fn save(&mut self, closed: &[Bucket], alerts: &[Alert]) -> Result<Vec<u64>, PipelineError> {
        let checkpoint = Checkpoint {
            closed_through: self.windows.closed_through(),
            newest: self.windows.newest(),
            open: self.windows.open_buckets().cloned().collect(),
            detector: self.detector.snapshot(),
            cursors: self.cursors.clone(),
            seqs: self.seqs.clone(),
            dedupe: Some(self.dedupe.snapshot()),
        };
        let newest = self.windows.closed_through().unwrap_or(0);
        let baselines = self.detector.take_changed();
        Ok(self.store.save(
            closed,
            &checkpoint,
            newest.saturating_sub(self.retention_us),
            alerts,
            &baselines,
        )?)
    }
}
