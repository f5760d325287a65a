//! The pipeline on its own thread: frames in from the sources, counts,
//! detection and state saved, alerts to the outbox, health and telemetry
//! kept up to date.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use super::DaemonError;
use super::stall::{Stall, now_ms};
use crate::pipeline::{Pipeline, PipelineError, Received, Stats};
use crate::source::health::SourceHealth;
use crate::source::ws::Inbound;
use crate::source::{Connection, SourceKind};
use crate::state::SledStore;
use crate::telemetry::Telemetry;

/// The pipeline's own thread, and what it reports to.
pub(super) struct PipelineThread {
    /// Per connection: name, kind, and the instance its accounts belong to.
    sources: Vec<(String, SourceKind, String)>,
    health: Vec<Arc<SourceHealth>>,
    notifier: Arc<Notify>,
    telemetry: Arc<Telemetry>,
    pub(super) alive: Arc<AtomicBool>,
    pub(super) stall: Arc<Stall>,
}

impl PipelineThread {
    /// The thread for `connections`, its store watched with `grace` for
    /// the shutdown.
    pub(super) fn new(
        connections: &[Connection],
        health: &[Arc<SourceHealth>],
        (notifier, telemetry): (&Arc<Notify>, &Arc<Telemetry>),
        grace: Duration,
    ) -> Self {
        PipelineThread {
            sources: connections
                .iter()
                .map(|c| (c.name.clone(), c.kind, c.instance()))
                .collect(),
            health: health.to_vec(),
            notifier: Arc::clone(notifier),
            telemetry: Arc::clone(telemetry),
            alive: Arc::new(AtomicBool::new(true)),
            stall: Stall::started(grace),
        }
    }

    /// Starts the thread; it ends when every source has dropped its
    /// sender, and reports how it ended on the returned channel.
    pub(super) fn spawn(
        self,
        pipeline: Pipeline<SledStore>,
        frames: mpsc::Receiver<Inbound>,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Stats, PipelineError>>, DaemonError> {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || {
                let result = self.run(pipeline, frames);
                self.alive.store(false, Ordering::Relaxed);
                self.telemetry.set_store_open(false);
                // Every handle the thread held goes before `done` says it
                // has finished: the shutdown seals the store next.
                drop(self);
                let _ = done_tx.send(result);
            })
            .map_err(|e| DaemonError::Thread(e.to_string()))?;
        Ok(done_rx)
    }

    /// Processes frames until every source has stopped, then finishes the
    /// pipeline (saves the open buckets).
    pub(super) fn run(
        &self,
        mut pipeline: Pipeline<SledStore>,
        mut frames: mpsc::Receiver<Inbound>,
    ) -> Result<Stats, PipelineError> {
        let mut frame_no = vec![0u64; self.sources.len()];
        let mut malformed_seen = 0u64;
        while let Some(inbound) = frames.blocking_recv() {
            let Some(n) = frame_no.get_mut(inbound.source) else {
                continue;
            };
            *n += 1;
            let n = *n;
            self.frame(&mut pipeline, &inbound, n, &mut malformed_seen)?;
            // When idle, and every so often in a burst, for the status API.
            if frames.is_empty() || n.is_multiple_of(1024) {
                self.telemetry.publish_stats(pipeline.stats());
            }
        }
        self.stall.busy_since.store(now_ms(), Ordering::Relaxed);
        let finished = pipeline.finish()?;
        self.stall.busy_since.store(0, Ordering::Relaxed);
        if !finished.is_empty() {
            self.notifier.notify_waiters();
        }
        self.telemetry.publish_stats(pipeline.stats());
        Ok(pipeline.stats().clone())
    }

    /// One frame from connection `inbound.source`, its `n`th.
    pub(super) fn frame(
        &self,
        pipeline: &mut Pipeline<SledStore>,
        inbound: &Inbound,
        n: u64,
        malformed_seen: &mut u64,
    ) -> Result<(), PipelineError> {
        let (name, kind, instance) = &self.sources[inbound.source];
        let health = &self.health[inbound.source];
        let before = pipeline.unusable();
        let received = Received {
            kind: *kind,
            host: Some(&inbound.host),
            instance,
            arrival_us: Some(inbound.arrival_us),
            stored_since: inbound.stored_since,
        };
        self.stall.busy_since.store(now_ms(), Ordering::Relaxed);
        let produced = pipeline.process_frame(name, n, inbound.frame.as_bytes(), &received)?;
        self.stall.busy_since.store(0, Ordering::Relaxed);
        pipeline.report_frame(health, name, before);
        let stats = pipeline.stats();
        if stats.malformed > *malformed_seen {
            *malformed_seen = stats.malformed;
            log_malformed(name, stats);
        }
        // The alerts are in the outbox already, saved with the counts.
        if !produced.is_empty() {
            self.notifier.notify_waiters();
        }
        Ok(())
    }
}

/// The first few malformed frames in full, then one line per thousand.
fn log_malformed(source: &str, stats: &Stats) {
    let seen = stats.malformed;
    if let Some((at, why)) = stats.malformed_examples.last().filter(|_| seen <= 10) {
        tracing::warn!(source = %source, frame = %at, reason = %why, "malformed frame skipped");
    } else if seen.is_multiple_of(1000) {
        tracing::warn!(source = %source, malformed = seen, "malformed frames keep arriving");
    }
}
