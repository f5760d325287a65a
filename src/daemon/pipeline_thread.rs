//! The pipeline on its own thread: frames in from the sources, counts,
//! detection and state saved, alerts to the outbox, health and telemetry
//! kept up to date.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use super::DaemonError;
use super::stall::Stall;
use crate::pipeline::{Pipeline, PipelineError, Received, Stats};
use crate::source::health::SourceHealth;
use crate::source::ws::Inbound;
use crate::source::{Connection, SourceKind};
use crate::state::SledStore;
use crate::telemetry::Telemetry;
use crate::{MICROS_PER_SEC, Micros};

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
        let mut malformed = MalformedLog::new(self.sources.len());
        while let Some(mut inbound) = frames.blocking_recv() {
            let Some(n) = frame_no.get_mut(inbound.source) else {
                continue;
            };
            let n = if inbound.tick {
                self.tick(&mut pipeline, &inbound)?;
                *n
            } else {
                *n += 1;
                self.frame(&mut pipeline, &mut inbound, *n, &mut malformed)?;
                *n
            };
            // When idle, and every so often in a burst, for the status API
            // (after a tick too: a frame processed with a tick behind it
            // in the channel was never published, and the status showed
            // the counts before it for as long as the stream stayed quiet).
            if frames.is_empty() || (!inbound.tick && n.is_multiple_of(1024)) {
                self.telemetry.publish_stats(pipeline.stats());
            }
        }
        let finished = {
            let _busy = self.stall.busy();
            pipeline.finish()?
        };
        if !finished.is_empty() {
            self.notifier.notify_waiters();
        }
        self.telemetry.publish_stats(pipeline.stats());
        Ok(pipeline.stats().clone())
    }

    /// Where and when connection `inbound.source`'s frame (or tick) arrived.
    fn received<'a>(&'a self, inbound: &'a Inbound) -> (&'a str, Received<'a>) {
        let (name, kind, instance) = &self.sources[inbound.source];
        let received = Received {
            kind: *kind,
            host: Some(&inbound.host),
            instance,
            arrival_us: Some(inbound.arrival_us),
            stored_since: inbound.stored_since,
        };
        (name, received)
    }

    /// A connection's tick: time passed at its source with nothing received.
    fn tick(
        &self,
        pipeline: &mut Pipeline<SledStore>,
        inbound: &Inbound,
    ) -> Result<(), PipelineError> {
        let (name, received) = self.received(inbound);
        let produced = {
            let _busy = self.stall.busy();
            pipeline.time_passed(name, &received)?
        };
        pipeline.report_processed(&self.health[inbound.source], name);
        if !produced.is_empty() {
            self.notifier.notify_waiters();
        }
        Ok(())
    }

    /// One frame from connection `inbound.source`, its `n`th (one it
    /// could not hand over as text included: counted as malformed). A
    /// frame its connection decoded already (a Nostr note, its signature
    /// checked on the relay's task: [`Inbound::checked`]) is judged as
    /// it is: nothing is verified on this thread, which counts every
    /// source.
    pub(super) fn frame(
        &self,
        pipeline: &mut Pipeline<SledStore>,
        inbound: &mut Inbound,
        n: u64,
        malformed: &mut MalformedLog,
    ) -> Result<(), PipelineError> {
        let checked = inbound.checked.take();
        let (name, received) = self.received(inbound);
        let health = &self.health[inbound.source];
        let before = pipeline.unusable();
        let produced = {
            let _busy = self.stall.busy();
            match &inbound.rejected {
                // Unusable before it was text (not UTF-8): a malformed
                // frame of its source like any other, logged below.
                Some(error) => {
                    pipeline.reject_frame(name, n, error);
                    Vec::new()
                }
                None => match checked {
                    Some(checked) => pipeline.process_checked(name, n, checked, &received)?,
                    None => pipeline.process_frame(name, n, inbound.frame.as_bytes(), &received)?,
                },
            }
        };
        pipeline.report_frame(health, name, before);
        let stats = pipeline.stats();
        if stats.malformed > malformed.seen {
            // One frame is at most one malformed frame.
            malformed.seen = stats.malformed;
            let (reason, why) = stats
                .last_malformed
                .as_ref()
                .map_or(("unknown", ""), |(r, w)| (*r, w.as_str()));
            match malformed.on_malformed(inbound.source, health.monotonic(), reason) {
                Some(MalformedLine::Full) => {
                    tracing::warn!(source = %name, frame = n, reason, error = %why, "malformed frame skipped");
                }
                Some(MalformedLine::Summary {
                    malformed,
                    reasons,
                    source_total,
                    over_us,
                }) => {
                    let reasons = reasons
                        .iter()
                        .map(|(r, n)| format!("{r}={n}"))
                        .collect::<Vec<_>>()
                        .join(" ");
                    let over_secs = over_us / MICROS_PER_SEC;
                    tracing::warn!(source = %name, malformed, reasons = %reasons, over_secs, source_total, "malformed frames keep arriving");
                }
                None => {}
            }
        }
        // The alerts are in the outbox already, saved with the counts.
        if !produced.is_empty() {
            self.notifier.notify_waiters();
        }
        Ok(())
    }
}

/// Malformed frames a source's first few get a line each, in full.
const FULL_LINES: u64 = 3;

/// Then at most one line per this long per source: 10 a minute.
const SUMMARY_EVERY_US: Micros = 6 * MICROS_PER_SEC;

/// Which warnings malformed frames get, per source (connection), on the
/// monotonic clock. Every one is counted in the pipeline's stats whatever
/// this decides.
///
/// It was one line per thousand counted over all sources, and the first
/// ten of all sources in full: a relay sending frames with bad signatures
/// wrote 106 lines in 12 s (about 760,000 a day), each named whichever
/// source's frame reached the thousand, with the count of all of them, and
/// the flooding relay used up the full lines of every other source. Now
/// each source has its own first [`FULL_LINES`] in full, then at most one
/// line per [`SUMMARY_EVERY_US`] with its own counts since its last line.
#[derive(Debug)]
pub(super) struct MalformedLog {
    /// The pipeline's malformed count at the last frame (all sources).
    pub(super) seen: u64,
    sources: Vec<SourceLines>,
}

/// One source's malformed frames, for its lines.
#[derive(Debug, Default)]
struct SourceLines {
    total: u64,
    /// When its last line was written (monotonic µs).
    last_line_us: Option<Micros>,
    /// Since that line, by reason (a handful of fixed names).
    since: BTreeMap<&'static str, u64>,
}

/// The line a malformed frame gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum MalformedLine {
    /// This frame, in full (one of the source's first few).
    Full,
    /// The source's frames since its last line, this one included.
    Summary {
        malformed: u64,
        reasons: BTreeMap<&'static str, u64>,
        /// The source's malformed frames in all.
        source_total: u64,
        /// Since the source's last line.
        over_us: Micros,
    },
}

impl MalformedLog {
    pub(super) fn new(sources: usize) -> Self {
        MalformedLog {
            seen: 0,
            sources: (0..sources).map(|_| SourceLines::default()).collect(),
        }
    }

    /// A malformed frame from `source` (its index) at `now_us` on the
    /// monotonic clock: the line it gets, if any.
    pub(super) fn on_malformed(
        &mut self,
        source: usize,
        now_us: Micros,
        reason: &'static str,
    ) -> Option<MalformedLine> {
        let lines = self.sources.get_mut(source)?;
        lines.total += 1;
        *lines.since.entry(reason).or_default() += 1;
        let line = if lines.total <= FULL_LINES {
            MalformedLine::Full
        } else {
            let over_us = lines
                .last_line_us
                .map_or(Micros::MAX, |last| now_us.saturating_sub(last));
            if over_us < SUMMARY_EVERY_US {
                return None;
            }
            MalformedLine::Summary {
                malformed: lines.since.values().sum(),
                reasons: std::mem::take(&mut lines.since),
                source_total: lines.total,
                over_us,
            }
        };
        lines.since.clear();
        lines.last_line_us = Some(now_us);
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Micros = 1_000;

    /// Each source has its own first lines in full and its own summaries,
    /// at most one per 6 s, with its own counts: a flood from one relay
    /// neither names nor silences another.
    #[test]
    fn malformed_lines_are_per_source_and_rate_limited() {
        let mut log = MalformedLog::new(2);
        // (source, time in ms, reason, the line wanted)
        let summary = |malformed, reasons: &[(&'static str, u64)], source_total, over_ms| {
            Some(MalformedLine::Summary {
                malformed,
                reasons: reasons.iter().copied().collect(),
                source_total,
                over_us: over_ms * MS,
            })
        };
        let cases = [
            (0, 0, "unverified", Some(MalformedLine::Full)),
            (0, 1, "unverified", Some(MalformedLine::Full)),
            (0, 2, "unverified", Some(MalformedLine::Full)),
            (0, 3, "unverified", None),
            (0, 4, "bad_json", None),
            // The other source's first ones are its own, in full.
            (1, 5, "bad_json", Some(MalformedLine::Full)),
            (0, 6_001, "unverified", None),
            (
                0,
                6_002,
                "unverified",
                summary(4, &[("bad_json", 1), ("unverified", 3)], 7, 6_000),
            ),
            (1, 6_003, "bad_json", Some(MalformedLine::Full)),
            (1, 6_004, "bad_json", Some(MalformedLine::Full)),
            (1, 6_005, "bad_json", None),
            (0, 6_006, "unverified", None),
            (1, 6_007, "bad_json", None),
            (
                0,
                12_002,
                "unverified",
                summary(2, &[("unverified", 2)], 9, 6_000),
            ),
            (
                1,
                20_000,
                "bad_time",
                summary(3, &[("bad_json", 2), ("bad_time", 1)], 6, 13_996),
            ),
        ];
        for (n, (source, at_ms, reason, want)) in cases.into_iter().enumerate() {
            let got = log.on_malformed(source, at_ms * MS, reason);
            assert_eq!(got, want, "{n}: source {source} at {at_ms} ms");
        }
    }

    /// The reviewer's flood: one relay's bad signatures at 10,000 a second
    /// for two minutes beside another's trickle. The flood gets its three
    /// lines in full and then one a 6 s, whose counts add up to its own.
    #[test]
    fn a_flood_from_one_source_gets_ten_lines_a_minute() {
        let mut log = MalformedLog::new(2);
        let mut lines = [Vec::new(), Vec::new()];
        let mut counted = [0u64; 2];
        for i in 0..1_200_000i64 {
            let at = i * 100;
            let source = usize::from(i % 100_000 == 7);
            if let Some(line) = log.on_malformed(source, at, "unverified") {
                lines[source].push((at, line));
            }
            counted[source] += 1;
        }
        let full = |ls: &[(Micros, MalformedLine)]| {
            ls.iter().filter(|(_, l)| *l == MalformedLine::Full).count()
        };
        assert_eq!((full(&lines[0]), full(&lines[1])), (3, 3));
        let summed = |ls: &[(Micros, MalformedLine)]| {
            ls.iter()
                .map(|(_, l)| match l {
                    MalformedLine::Full => 1,
                    MalformedLine::Summary { malformed, .. } => *malformed,
                })
                .sum::<u64>()
        };
        // Every frame of the trickle is in its lines: one each 10 s.
        assert_eq!(summed(&lines[1]), counted[1]);
        assert!(summed(&lines[0]) <= counted[0]);
        assert!(counted[0] - summed(&lines[0]) < 60_000, "at most 6 s left");
        let second_minute = lines[0]
            .iter()
            .filter(|(at, _)| at / (60 * MICROS_PER_SEC) == 1)
            .count();
        assert_eq!(second_minute, 10);
        assert!(lines[0].len() <= 3 + 20, "{}", lines[0].len());
    }
}
