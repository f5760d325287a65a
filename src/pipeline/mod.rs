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
//!
//! The parts: a frame's way in (`intake`: duplicates, the source's clock,
//! the counts), closing buckets and saving them (`close`), and the pure
//! work done before, on any thread (`prepare`, see [`Prepared`]).

mod close;
mod intake;
mod prepare;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::alert::Alert;
use crate::detect::{Detector, DetectorConfig};
use crate::matcher::Matcher;
use crate::source::clock::{ClockRule, SourceClock};
use crate::source::dedupe::Deduper;
use crate::source::health::SourceHealth;
use crate::source::jetstream::SeqCursor;
use crate::source::url::SourceUrl;
use crate::source::{Checked, SourceKind};
use crate::state::{Store, StoreError};
use crate::telemetry::Telemetry;
use crate::window::{Bucket, WindowConfig, Windows};
use crate::{MICROS_PER_SEC, Micros};

pub use self::prepare::{Content, Judged, Prepared, judge, prepare};
pub use crate::events::pipeline::{MALFORMED_EXAMPLES, SourceCounts, Stats};

/// An alert the pipeline raised, with its place in the store's outbox:
/// deliver it, then acknowledge `seq` with the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub seq: u64,
    pub alert: Alert,
}

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
    #[error(
        "the state was counted in {saved} s buckets, the configuration has bucket_secs = {configured}: \
the detector's history would mix the two. Set bucket_secs back to {saved}, or start afresh with \
`outagewatch state reset --state-dir DIR` (the old state is kept aside)"
    )]
    BucketChanged { saved: i64, configured: i64 },
    #[error(
        "a {limit}th source ({name:?}) in one run: a recording names its sources in its clock lines, and no recording `record` writes has that many; is this file a recording?"
    )]
    TooManySources { name: String, limit: usize },
}

/// Sources one run counts: a configuration names a few, a recording of one
/// a few more (a Mastodon failover list, Nostr relays). Each source keeps a
/// clock and its counts for the whole run, so a file whose clock lines
/// named a new source at every frame (16,654 on the demo) grew them
/// without bound, and no bucket closed (none reached its quorum).
pub const MAX_SOURCES: usize = 1024;

/// Where and when a frame was received, as [`Pipeline::process_frame`]
/// needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Received<'a> {
    pub kind: SourceKind,
    /// The host it was read from, live (a sequence number means something
    /// only on its host); `None` from a recording.
    pub host: Option<&'a SourceUrl>,
    /// The host that names a Mastodon instance's local accounts when a
    /// status's `uri` has no host.
    pub instance: &'a str,
    /// Wall-clock µs of arrival: live, or from a recording's clock line.
    pub arrival_us: Option<Micros>,
    /// The frame is a stored event of a subscription that asked for events
    /// since then (see [`crate::source::ws::Protocol::stored_since`]).
    pub stored_since: Option<Micros>,
}

impl Received<'_> {
    /// A Jetstream frame from a recording without clock lines (as the demo).
    pub fn jetstream() -> Self {
        Received {
            kind: SourceKind::Jetstream,
            host: None,
            instance: "",
            arrival_us: None,
            stored_since: None,
        }
    }
}

pub use crate::source::clock::Arrival;

/// Counts of the frames of no use so far, compared before and after a
/// frame ([`Pipeline::unusable`]).
pub type Unusable = (u64, u64, u64, u64);

pub struct Pipeline<S: Store> {
    matcher: Arc<Matcher>,
    windows: Windows,
    detector: Detector,
    store: S,
    retention_us: Micros,
    /// Each source's clock; its watermark is the source's cursor.
    clocks: BTreeMap<String, SourceClock>,
    clock_rule: ClockRule,
    /// How far behind the newest source a server-dated one may fall and
    /// still hold buckets open (`[window] wait_secs`; see
    /// [`closing_watermark`](crate::source::clock::closing_watermark)).
    wait_us: Micros,
    /// The newest watermark of any source: the reference of a source that
    /// has none yet, and the event time a paced replay keeps to.
    newest: Option<Micros>,
    seqs: BTreeMap<String, SeqCursor>,
    dedupe: Deduper,
    stats: Stats,
    save_every: usize,
    /// Closed buckets not written to the store yet (see the module docs).
    unsaved: Vec<Bucket>,
    /// Told about every closed bucket, for the status API and dashboard.
    telemetry: Option<Arc<Telemetry>>,
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
        // A store keeps the width it was counted in: a different one was
        // accepted in silence, and 10 s and 60 s buckets mixed in the
        // detector's history.
        let mut store = store;
        match store.bucket_secs()? {
            Some(saved) if saved != config.window.bucket_secs => {
                return Err(PipelineError::BucketChanged {
                    saved,
                    configured: config.window.bucket_secs,
                });
            }
            Some(_) => {}
            None => store.set_bucket_secs(config.window.bucket_secs)?,
        }
        let checkpoint = store.checkpoint()?.unwrap_or_default();
        // The detector holds as many discovered names as the window tracks.
        let detector = Detector::restore(
            DetectorConfig {
                max_discovered: config.window.max_discovered,
                ..config.detector.clone()
            },
            checkpoint.detector,
            store.baselines()?,
        );
        let max_late_us = config.window.max_late_secs.saturating_mul(MICROS_PER_SEC);
        let clock_rule = config.window.clock_rule();
        // A checkpoint from before clocks were saved has the watermarks.
        let mut clocks: BTreeMap<String, SourceClock> = checkpoint
            .cursors
            .iter()
            .map(|(name, &w)| (name.clone(), SourceClock::restored(Some(w))))
            .collect();
        clocks.extend(checkpoint.clocks);
        let newest = clocks
            .values()
            .filter_map(SourceClock::watermark)
            .max()
            .or(checkpoint.newest);
        Ok(Pipeline {
            clocks,
            clock_rule,
            wait_us: config.window.wait_secs.saturating_mul(MICROS_PER_SEC),
            newest,
            matcher,
            windows: Windows::resume(
                WindowConfig {
                    max_authors_per_server: config.detector.max_authors_per_server,
                    ..config.window
                },
                checkpoint.closed_through,
                checkpoint.newest,
                checkpoint.open,
                checkpoint.discovered,
            ),
            detector,
            store,
            retention_us: config.retention_secs * MICROS_PER_SEC,
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
    pub fn set_telemetry(&mut self, telemetry: Arc<Telemetry>) {
        self.telemetry = Some(telemetry);
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The matcher, for preparing frames elsewhere (see [`prepare()`]).
    pub fn matcher(&self) -> &Arc<Matcher> {
        &self.matcher
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Ends the pipeline and hands back its store (after [`Self::finish`]),
    /// for a close that reads the store through its open handle
    /// ([`crate::state::close_store`]).
    pub fn into_store(self) -> S {
        self.store
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

    /// [`Pipeline::process_frame`] for a frame its connection decoded and
    /// checked already ([`Checked`]: a Nostr note whose signature was
    /// verified on its relay's task): it is judged and counted here,
    /// never decoded or verified.
    pub fn process_checked(
        &mut self,
        source: &str,
        frame_no: u64,
        checked: Checked,
        received: &Received<'_>,
    ) -> Result<Vec<Emitted>, PipelineError> {
        let prepared = judge(&self.matcher, checked);
        self.process_prepared(source, frame_no, prepared, received)
    }

    /// The v2 sequence cursor saved for a source.
    pub fn seq_cursor(&self, source: &str) -> Option<SeqCursor> {
        self.seqs.get(source).cloned()
    }

    /// The newest watermark of any source.
    pub fn newest_event_time(&self) -> Option<Micros> {
        self.newest
    }

    /// The newest event time any source's clock accepted, for pacing a
    /// replay: a watermark moves only once `watermark_quorum` authors
    /// agree, so a recording of one or two authors was never paced. An
    /// event dated ahead within the clock's bound moves it too; the pacer
    /// skips a gap of more than a minute and sleeps at most 3 s for one.
    pub fn newest_accepted(&self) -> Option<Micros> {
        self.stats
            .by_source
            .values()
            .filter_map(|counts| counts.newest)
            .max()
            .max(self.newest)
    }

    /// Whether an event of `source` at `time_us` is within its clock's
    /// bound on event times, `max_future_secs` past its watermark (else
    /// the newest) and past `now` (the wall clock, for a live read): one
    /// frame dated ahead cannot then decide when a read ends.
    pub fn within_clock(&self, source: &str, time_us: Micros, now: Micros) -> bool {
        let ahead =
            |reference: Micros| time_us <= reference.saturating_add(self.clock_rule.max_future_us);
        ahead(now)
            && self
                .cursor(source)
                .or_else(|| self.newest_event_time())
                .is_none_or(ahead)
    }

    /// Every source with a saved cursor (a watermark), configured in this
    /// run or not.
    pub fn sources_with_cursors(&self) -> Vec<&str> {
        self.clocks
            .iter()
            .filter(|(_, clock)| clock.watermark().is_some())
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// How far a named source has been processed (restored from the
    /// checkpoint at start).
    pub fn cursor(&self, source: &str) -> Option<Micros> {
        self.clocks.get(source)?.watermark()
    }

    /// The frames that were of no use so far (malformed, blank, with an
    /// event quarantined as dated ahead, or skipped as showing nothing of
    /// the stream: a server's notice, a kind this version does not know):
    /// taken before a frame, for [`Self::report_frame`].
    pub fn unusable(&self) -> Unusable {
        (
            self.stats.malformed,
            self.stats.blank_lines,
            self.stats.future,
            self.stats.lifeless,
        )
    }

    /// Tells a live source's health what the frame just processed means:
    /// data, if it was of use (`unusable` did not move since `before`), for
    /// the connection's no-data watchdog and the silence rule; and how far
    /// the source is processed, where a reconnection resumes. A frame whose
    /// event is quarantined as dated ahead is no data: a source whose every
    /// event was (a clock more than `max_future_secs` slow, here or at the
    /// server) never formed a watermark, and counted as healthy and
    /// delivering, with no alert, for ever. So is a frame skipped as
    /// showing nothing of the stream ([`crate::source::SkipReason::shows_life`]):
    /// a relay or an instance sending only junk that decoded to a skip
    /// looked healthy for ever too.
    pub fn report_frame(&self, health: &SourceHealth, source: &str, before: Unusable) {
        if self.unusable() == before {
            health.count_data();
        }
        self.report_processed(health, source);
    }

    /// Tells `source`'s health how far it is processed (its watermark).
    pub fn report_processed(&self, health: &SourceHealth, source: &str) {
        if let Some(cursor) = self.cursor(source) {
            health.set_processed(cursor);
        }
    }

    /// Every source's cursor: its clock's watermark, once it has one (a
    /// watermark only moves forward, so this is where the source was
    /// processed to). Kept in the clocks alone: a second map of the same
    /// times cost two more look-ups of the source's name per frame.
    fn cursors(&self) -> BTreeMap<String, Micros> {
        self.clocks
            .iter()
            .filter_map(|(name, clock)| Some((name.clone(), clock.watermark()?)))
            .collect()
    }
}

#[cfg(test)]
mod resume_tests;
#[cfg(test)]
mod seq_host_tests;
#[cfg(test)]
mod sources_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod ticks_tests;
