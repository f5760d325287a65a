//! Telemetry: what a running daemon (or replay) knows about itself, in one
//! place, for the HTTP status API, the dashboard, the replay report and the
//! Prometheus metrics.
//!
//! The parts of the program keep their own counters where they already
//! are — the pipeline's [`Stats`] (per source too), each source's
//! [`SourceHealth`], each sink's counters behind a [`SinkProbe`] — and hand
//! this hub a handle on them. The hub adds the [`Board`] (series,
//! incidents, detector status) fed by the pipeline at every closed bucket.
//! Nothing here is on the hot path but a mutex per closed bucket and per
//! published stats snapshot.
//!
//! **Adding a counter** (for example posts from the future, dropped Nostr
//! notes, redirects followed): count it where it happens, in the existing
//! struct that travels here ([`Stats`] or [`SourceCounts`] for the
//! pipeline; for a connection or a sink, a named event in
//! [`crate::events`] that logs and counts itself in the connection's or
//! sink's counters),
//! then declare its metric in its group in `metrics/families.rs` (one
//! field, one line in the group's `register` and one in its `sync`). The
//! README's metrics table lists every name.

pub mod board;
pub mod metrics;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::Micros;
use crate::alert::Alert;
use crate::alert::deliver::{SinkFigures, SinkProbe};
use crate::detect::Detector;
use crate::events::http::HttpCounters;
use crate::events::pipeline::{SourceCounts, Stats};
use crate::source::health::{Condition, HealthRule, Now, SourceHealth, assess};
use crate::window::Bucket;

pub use board::{Board, BoardLimits};

/// Whether this process is the daemon or a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Daemon,
    Replay,
}

/// The shared hub; cheap to share as `Arc<Telemetry>`.
pub struct Telemetry {
    pub mode: Mode,
    /// Wall-clock start (µs).
    pub started: Micros,
    stats: Mutex<Stats>,
    board: Mutex<Board>,
    sources: Mutex<Vec<Arc<SourceHealth>>>,
    sinks: Mutex<Option<SinkProbe>>,
    /// The sinks' last figures, kept when they stop: after a replay the
    /// page showed "none" (as if no sink were configured) while alerts
    /// were still undelivered, and `/metrics` lost every delivery metric.
    stopped_sinks: Mutex<Option<SinkFigures>>,
    /// The `[health]` rule, so the page can say when a source is silent or
    /// the event clock is behind (the default until the daemon sets it).
    health: Mutex<HealthRule>,
    /// When the health monitor started, on the monotonic clock: readiness
    /// applies the monitor's rule from the same start (and so the same
    /// start-up grace), so the two never disagree about a silent source.
    /// `None` until the monitor runs (a replay has none).
    health_started: Mutex<Option<Micros>>,
    /// True while the store is open and the pipeline runs.
    store_open: AtomicBool,
    /// Replay: true while frames are being read; false once it has ended.
    replaying: AtomicBool,
    pub state_dir: Option<PathBuf>,
    pub metrics: metrics::Metrics,
    /// The status server's refused connections and timeouts.
    pub http: HttpCounters,
}

impl Telemetry {
    pub fn new(mode: Mode, state_dir: Option<PathBuf>) -> Arc<Self> {
        Arc::new(Telemetry {
            mode,
            started: crate::wall::now_us(),
            stats: Mutex::new(Stats::default()),
            board: Mutex::new(Board::new(BoardLimits::default())),
            sources: Mutex::new(Vec::new()),
            sinks: Mutex::new(None),
            stopped_sinks: Mutex::new(None),
            health: Mutex::new(HealthRule::default()),
            health_started: Mutex::new(None),
            store_open: AtomicBool::new(false),
            replaying: AtomicBool::new(false),
            state_dir,
            metrics: metrics::Metrics::new(),
            http: HttpCounters::default(),
        })
    }

    /// A poisoned lock only means a panic elsewhere; the data is still the
    /// best there is.
    fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn board(&self) -> MutexGuard<'_, Board> {
        Self::lock(&self.board)
    }

    pub fn stats(&self) -> Stats {
        Self::lock(&self.stats).clone()
    }

    pub fn publish_stats(&self, stats: &Stats) {
        Self::lock(&self.stats).clone_from(stats);
    }

    pub fn set_sources(&self, sources: Vec<Arc<SourceHealth>>) {
        *Self::lock(&self.sources) = sources;
    }

    pub fn sources(&self) -> Vec<Arc<SourceHealth>> {
        Self::lock(&self.sources).clone()
    }

    pub fn set_sinks(&self, probe: SinkProbe) {
        *Self::lock(&self.sinks) = Some(probe);
    }

    /// Forgets the sinks (their probe holds the outbox) once they have
    /// stopped, so the store can be closed and sealed; their last figures
    /// stay, to be shown as stopped.
    pub fn clear_sinks(&self) {
        let probe = Self::lock(&self.sinks).take();
        if let Some(probe) = probe {
            *Self::lock(&self.stopped_sinks) = Some(probe.stopped_figures());
        }
    }

    /// The figures of sinks that have stopped (see
    /// [`Telemetry::clear_sinks`]): their reports and the dead letters
    /// the store held as they stopped (how many, and the newest); none
    /// while they run.
    pub fn stopped_sinks(&self) -> SinkFigures {
        Self::lock(&self.stopped_sinks).clone().unwrap_or_default()
    }

    /// The sinks' figures: now while they run, else as they stopped.
    pub fn sink_figures(&self) -> Option<SinkFigures> {
        match self.sinks() {
            Some(probe) => Some(probe.figures()),
            None => Self::lock(&self.stopped_sinks).clone(),
        }
    }

    pub fn set_health(&self, rule: HealthRule) {
        *Self::lock(&self.health) = rule;
    }

    pub fn health(&self) -> HealthRule {
        *Self::lock(&self.health)
    }

    /// Called by the health monitor as it starts, with its start on the
    /// monotonic clock (see [`Telemetry::readiness`]).
    pub fn set_health_started(&self, started_mono: Micros) {
        *Self::lock(&self.health_started) = Some(started_mono);
    }

    pub fn sinks(&self) -> Option<SinkProbe> {
        Self::lock(&self.sinks).clone()
    }

    pub fn set_store_open(&self, open: bool) {
        self.store_open.store(open, Ordering::Relaxed);
    }

    pub fn store_open(&self) -> bool {
        self.store_open.load(Ordering::Relaxed)
    }

    pub fn set_replaying(&self, running: bool) {
        self.replaying.store(running, Ordering::Relaxed);
    }

    pub fn replaying(&self) -> bool {
        self.replaying.load(Ordering::Relaxed)
    }

    /// Called by the pipeline after each closed bucket.
    pub fn on_bucket(&self, bucket: &Bucket, detector: &Detector, alerts: &[Alert]) {
        let status = detector.status(bucket.start);
        self.board().on_bucket(bucket, status, alerts);
    }

    /// An alert raised outside the pipeline (a source's health).
    pub fn record_alert(&self, alert: &Alert) {
        self.board().record_alert(alert);
    }

    /// Whether the process is ready to serve its purpose, and if not, why:
    /// the store is open, and (daemon) a live source is connected and
    /// delivering, or (replay) the replay has started.
    ///
    /// "Delivering" is the health monitor's own verdict ([`assess`], with
    /// the source's own rule and the monitor's start): a server that accepts the websocket and
    /// then sends nothing keeps the source connected (each watchdog
    /// reconnect succeeds), and `/readyz` said ready for as long as the
    /// monitor's `source:NAME` alert said "no usable frames". A lagging
    /// source still counts: it delivers, and catching up is work done
    /// (the lag alert says it). Before the monitor starts, connected is
    /// enough, as in its start-up grace.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.store_open() {
            return Err("the state store is not open".into());
        }
        if self.mode == Mode::Replay {
            return Ok(());
        }
        let sources = self.sources();
        let global = self.health();
        let started = *Self::lock(&self.health_started);
        let mut why = Vec::new();
        let mut connected = false;
        for source in &sources {
            let snapshot = source.snapshot();
            if !snapshot.connected {
                why.push(format!("{} is not connected", source.name));
                continue;
            }
            connected = true;
            let Some(started) = started else {
                return Ok(());
            };
            let now = Now {
                wall: source.now(),
                mono: source.monotonic(),
            };
            match assess(&snapshot, now, started, &source.rule(&global)) {
                silent @ Condition::Silent { .. } => {
                    why.extend(silent.detail(&source.name));
                }
                Condition::Healthy | Condition::Lagging { .. } => return Ok(()),
            }
        }
        if connected {
            Err(format!("no source is delivering: {}", why.join("; ")))
        } else {
            let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
            Err(format!("no source is connected ({})", names.join(", ")))
        }
    }

    /// Per-source pipeline counts, for the sources API.
    pub fn source_counts(&self, name: &str) -> SourceCounts {
        Self::lock(&self.stats)
            .by_source
            .get(name)
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[path = "readiness_tests.rs"]
mod readiness_tests;
