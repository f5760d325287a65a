//! Closing buckets: each goes through the detector (and telemetry), and
//! closed buckets are saved in batches with the checkpoint, at once when
//! they raise an alert (see the module docs above).

use super::{Emitted, Pipeline, PipelineError};
use crate::alert::Alert;
use crate::source::clock::SourceClock;
use crate::state::{CheckpointRef, NamesRef, Store};
use crate::window::Bucket;
use crate::{MICROS_PER_SEC, Micros};

impl<S: Store> Pipeline<S> {
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

    pub(super) fn close(&mut self, closed: Vec<Bucket>) -> Result<Vec<Emitted>, PipelineError> {
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
    /// lateness (see [`Windows::add`](crate::window::Windows::add)).
    ///
    /// Sources further behind the newest than the de-duplication horizon
    /// are left out: the keys their posts would meet are forgotten anyway.
    /// A source that stopped for good (a replay's earlier file, a source
    /// renamed) kept its clock, and with it every save wrote the whole
    /// horizon of keys instead of the last minute (37.8 KB against 4.5 KB
    /// a checkpoint after two replayed days).
    pub(super) fn countable_from(&self) -> Option<Micros> {
        let max_late = self.windows.config().max_late_secs * MICROS_PER_SEC;
        let watermarks = || self.clocks.values().filter_map(SourceClock::watermark);
        let recent_from = watermarks().max()?.saturating_sub(self.dedupe.horizon_us());
        let oldest = watermarks().filter(|&w| w >= recent_from).min();
        oldest.map(|w| w.saturating_sub(max_late))
    }

    /// Forgets the clock (and sequence cursor) of every source further
    /// behind the newest than the retention: one that stopped for good
    /// (each replayed file is a source, by its path) kept its clock for
    /// ever, about 700 bytes of every checkpoint each. One back after that
    /// long starts as a new source: what it would have read is older than
    /// any count kept.
    fn forget_stopped_sources(&mut self) {
        let Some(newest) = self
            .clocks
            .values()
            .filter_map(SourceClock::watermark)
            .max()
        else {
            return;
        };
        let kept_from = newest.saturating_sub(self.retention_us);
        self.clocks
            .retain(|_, clock| clock.watermark().is_none_or(|w| w >= kept_from));
        let clocks = &self.clocks;
        self.seqs.retain(|source, _| clocks.contains_key(source));
    }

    fn save(&mut self, closed: &[Bucket], alerts: &[Alert]) -> Result<Vec<u64>, PipelineError> {
        self.forget_stopped_sources();
        let baselines = self.detector.take_changed();
        let cursors = self.cursors();
        let checkpoint = CheckpointRef {
            closed_through: self.windows.closed_through(),
            newest: self.windows.newest(),
            open: self.windows.open_buckets().collect(),
            detector: Some(self.detector.state()),
            cursors: &cursors,
            seqs: &self.seqs,
            dedupe: Some(self.dedupe.persisted(self.countable_from())),
            clocks: &self.clocks,
            discovered: NamesRef::Live(self.windows.discovered()),
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
