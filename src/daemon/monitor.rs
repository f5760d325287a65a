//! The health monitor: raises and resolves `source:NAME` alerts from the
//! sources' counters, once a second of the wall clock it is given.
//!
//! Open incidents are saved in the store: after a restart, one is
//! resolved once its source proves healthy (frames in this run), or at
//! once when the source is no longer configured. A gap (events the server
//! says are lost) is a loss that has happened, not a condition that
//! lasts: it fires, saying what was lost, and resolves at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::Micros;
use crate::alert::Alert;
use crate::alert::outbox::{OpenSource, Outbox};
use crate::detect::TransitionKind;
use crate::source::health::{
    Condition, HealthRule, SourceHealth, assess, back_detail, proven_healthy,
};
use crate::telemetry::Telemetry;
use crate::wall::SharedClock;

/// What the monitor reads and where its alerts go.
pub struct Monitor {
    pub health: Vec<Arc<SourceHealth>>,
    pub rule: HealthRule,
    pub outbox: Outbox,
    pub notifier: Arc<Notify>,
    pub telemetry: Arc<Telemetry>,
    pub clock: SharedClock,
}

/// An open `source:NAME` incident: when it started, whether an earlier
/// run left it open, and since when the source has been healthy again.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Open {
    since: Micros,
    earlier: bool,
    healthy_since: Option<Micros>,
}

impl Monitor {
    /// Runs until `shutdown` changes; the gaps reported by then are
    /// raised before it returns (they live only in memory until raised,
    /// and the next run resumes past them).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let started = self.clock.now_us();
        let mut open = self.restore(started);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => {
                    self.raise_gaps(self.clock.now_us());
                    return;
                }
            }
            let now = self.clock.now_us();
            self.raise_gaps(now);
            for (source, incident) in self.health.iter().zip(open.iter_mut()) {
                self.judge(source, incident, now, started);
            }
        }
    }

    /// Saves an alert in the outbox and wakes the sinks.
    fn raise(&self, alert: Alert) {
        match self.outbox.append(&alert) {
            Ok(_) => {
                self.telemetry.record_alert(&alert);
                self.notifier.notify_waiters();
            }
            Err(e) => {
                tracing::error!(error = %e, alert = %alert.id, "cannot store a source-health alert")
            }
        }
    }

    /// The incidents an earlier run left open, per source; those of
    /// sources no longer configured are resolved now.
    fn restore(&self, now: Micros) -> Vec<Option<Open>> {
        let mut open = vec![None; self.health.len()];
        let saved = match self.outbox.open_sources() {
            Ok(saved) => saved,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the open source incidents");
                return open;
            }
        };
        for incident in saved {
            if let Some(i) = self.health.iter().position(|h| h.name == incident.source) {
                open[i] = Some(Open {
                    since: incident.started_at,
                    earlier: true,
                    healthy_since: None,
                });
                continue;
            }
            self.raise(Alert::source_health(
                &incident.source,
                TransitionKind::Resolved,
                now,
                incident.started_at,
                format!("{} is no longer configured", incident.source),
            ));
            self.clear(&incident.source);
        }
        open
    }

    fn clear(&self, source: &str) {
        if let Err(e) = self.outbox.clear_open_source(source) {
            tracing::warn!(error = %e, "cannot clear a source incident");
        }
    }

    /// Every gap reported since the last tick fires and resolves at once,
    /// each an incident of its own. Its id names the microsecond it was
    /// raised at: incident ids name the second, and two gaps in one tick
    /// (or a gap and the source's silence) shared one, and with it every
    /// delivery's `Idempotency-Key`, which a receiver that drops repeats
    /// took for one alert.
    fn raise_gaps(&self, now: Micros) {
        for source in &self.health {
            for (i, gap) in source.take_gaps().into_iter().enumerate() {
                let at = now.saturating_add(1 + i as i64);
                for state in [TransitionKind::Firing, TransitionKind::Resolved] {
                    let detail = format!("gap: {gap}");
                    let mut alert = Alert::source_health(&source.name, state, at, at, detail);
                    alert.id = format!("{}-gap{:06}", alert.id, at.rem_euclid(1_000_000));
                    self.raise(alert);
                }
            }
        }
    }

    /// Applies the health rule to one source: fires when it turns
    /// unhealthy, resolves when it has been healthy again for `calm_secs`.
    fn judge(
        &self,
        source: &SourceHealth,
        incident: &mut Option<Open>,
        now: Micros,
        started: Micros,
    ) {
        let snapshot = source.snapshot();
        let condition = assess(&snapshot, now, started, &self.rule);
        match (&condition, incident.as_mut()) {
            (Condition::Healthy, Some(open)) => {
                if open.earlier && !proven_healthy(&snapshot, now, started, &self.rule) {
                    return;
                }
                let healthy_since = *open.healthy_since.get_or_insert(now);
                if now - healthy_since < self.rule.calm_us() {
                    return;
                }
                tracing::info!(source = %source.name, "source healthy again");
                self.raise(Alert::source_health(
                    &source.name,
                    TransitionKind::Resolved,
                    now,
                    open.since,
                    back_detail(&source.name, &snapshot, now),
                ));
                self.clear(&source.name);
                *incident = None;
            }
            (Condition::Silent { .. } | Condition::Lagging { .. }, None) => {
                let detail = condition.detail(&source.name).unwrap_or_default();
                tracing::warn!(source = %source.name, %detail, "source unhealthy");
                let saved = OpenSource {
                    source: source.name.clone(),
                    started_at: now,
                    detail: detail.clone(),
                };
                if let Err(e) = self.outbox.set_open_source(&saved) {
                    tracing::error!(error = %e, "cannot save a source incident");
                }
                let alert =
                    Alert::source_health(&source.name, TransitionKind::Firing, now, now, detail);
                self.raise(alert);
                *incident = Some(Open {
                    since: now,
                    earlier: false,
                    healthy_since: None,
                });
            }
            // Unhealthy again before it was calm long enough: the same
            // incident goes on.
            (_, Some(open)) => open.healthy_since = None,
            (Condition::Healthy, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::rfc3339;
    use crate::source::health::MAX_PENDING_GAPS;
    use crate::state::SledStore;
    use crate::telemetry::Mode;
    use crate::wall::TokioClock;

    const T0: Micros = 1_800_000_000_000_000;
    const SEC: Micros = crate::MICROS_PER_SEC;

    fn alerts(outbox: &Outbox) -> Vec<Alert> {
        let (mut seq, mut out) = (None, Vec::new());
        while let Some((next, alert)) = outbox.next_after(seq).expect("outbox reads") {
            seq = Some(next);
            out.push(alert);
        }
        out
    }

    /// A monitor on a paused clock starting at `T0`, over `sources`.
    fn monitor(outbox: &Outbox, sources: &[&str]) -> (Monitor, Vec<Arc<SourceHealth>>) {
        let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
        let health: Vec<_> = sources
            .iter()
            .map(|name| Arc::new(SourceHealth::with_clock(name, None, Arc::clone(&clock))))
            .collect();
        let monitor = Monitor {
            health: health.clone(),
            rule: HealthRule {
                silence_secs: 60,
                lag_secs: 120,
                grace_secs: 60,
                calm_secs: None,
            },
            outbox: outbox.clone(),
            notifier: Arc::new(Notify::new()),
            telemetry: Telemetry::new(Mode::Daemon, None),
            clock,
        };
        (monitor, health)
    }

    /// Lets paused time run to `secs` after `start` (the monitor's ticks
    /// in between all run first).
    async fn until(start: tokio::time::Instant, secs: f64) {
        tokio::time::sleep_until(start + Duration::from_secs_f64(secs)).await;
    }

    /// A monitor running over one source, on a fresh store, from `start`.
    struct Watched {
        start: tokio::time::Instant,
        outbox: Outbox,
        health: Arc<SourceHealth>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
        _store: (SledStore, tempfile::TempDir),
    }

    /// Starts watching `source`; `prepare` runs on its health first.
    fn watch_source(source: &str, prepare: impl FnOnce(&SourceHealth)) -> Watched {
        let start = tokio::time::Instant::now();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("store");
        let outbox = store.outbox();
        let (monitor, mut health) = monitor(&outbox, &[source]);
        let health = health.remove(0);
        prepare(&health);
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(monitor.run(shutdown));
        Watched {
            start,
            outbox,
            health,
            stop,
            task,
            _store: (store, dir),
        }
    }

    impl Watched {
        async fn until(&self, secs: f64) {
            until(self.start, secs).await;
        }

        /// Stops the monitor and waits for it.
        async fn stop(self) -> Outbox {
            self.stop.send(true).expect("monitor listens");
            self.task.await.expect("monitor ends");
            self.outbox
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_source_fires_after_the_rule_and_resolves_when_data_returns() {
        let w = watch_source("bluesky", SourceHealth::count_data);
        let outbox = &w.outbox;

        w.until(59.5).await;
        assert!(alerts(outbox).is_empty(), "silent 59 s: nothing yet");
        w.until(60.5).await;
        let fired = alerts(outbox);
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].service, "source:bluesky");
        assert_eq!(fired[0].state, TransitionKind::Firing);
        assert_eq!(fired[0].at, rfc3339(T0 + 60 * SEC));
        assert_eq!(
            fired[0].detail.as_deref(),
            Some("no usable frames from bluesky for 60 s")
        );
        assert_eq!(outbox.open_sources().expect("read").len(), 1, "saved");

        w.until(100.5).await;
        assert_eq!(alerts(outbox).len(), 1, "still silent: no repeat");
        // Back, with a frame every 10 s: resolved after a silence rule's
        // worth of health (`calm_secs` unset).
        w.health.count_data();
        for second in (111..=151).step_by(10) {
            w.until(f64::from(second) - 0.4).await;
            w.health.count_data();
        }
        w.until(160.5).await;
        w.health.count_data();
        assert_eq!(alerts(outbox).len(), 1, "healthy for 59 s: not calm yet");
        w.until(161.5).await;
        let all = alerts(outbox);
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(all[1].state, TransitionKind::Resolved);
        assert_eq!(all[1].at, rfc3339(T0 + 161 * SEC));
        assert_eq!(all[1].started_at, rfc3339(T0 + 60 * SEC));
        assert!(outbox.open_sources().expect("read").is_empty(), "cleared");

        w.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn each_gap_is_an_incident_of_its_own() {
        let w = watch_source("bluesky", |health| {
            health.count_data();
            health.report_gap("cursor too old: 10 events lost".into());
            health.report_gap("cursor too old: 20 events lost".into());
        });
        w.until(1.5).await;
        let raised = alerts(&w.outbox);
        let ids: Vec<(&str, TransitionKind)> =
            raised.iter().map(|a| (a.id.as_str(), a.state)).collect();
        assert_eq!(ids.len(), 4, "{ids:?}");
        assert_eq!(
            ids[0].0, ids[1].0,
            "a gap fires and resolves as one incident"
        );
        assert_eq!(ids[2].0, ids[3].0);
        assert_ne!(ids[0].0, ids[2].0, "two gaps, two incidents");
        assert!(ids[0].0.starts_with("source:bluesky-2027"), "{ids:?}");
        w.stop().await;
    }

    /// A gap reported just before the stop signal is raised, not lost with
    /// the monitor's memory (the next run resumes past it).
    #[tokio::test(start_paused = true)]
    async fn a_gap_reported_just_before_a_stop_is_raised() {
        let w = watch_source("bluesky", SourceHealth::count_data);
        w.until(0.5).await;
        assert!(alerts(&w.outbox).is_empty());
        for i in 0..MAX_PENDING_GAPS + 3 {
            w.health.report_gap(format!("gap {i}"));
        }
        let outbox = w.stop().await;
        let raised = alerts(&outbox);
        assert_eq!(
            raised.len(),
            2 * (MAX_PENDING_GAPS + 1),
            "each fires and resolves"
        );
        let last = raised.last().and_then(|a| a.detail.as_deref());
        assert_eq!(
            last,
            Some("gap: 3 more gaps were reported in the same second, not listed one by one")
        );
    }

    /// A quiet source, one frame every 70 s against a 60 s silence rule:
    /// one incident for as long as it stays that quiet, not a page every
    /// minute (it fired and resolved at each frame).
    #[tokio::test(start_paused = true)]
    async fn a_source_quieter_than_the_rule_is_one_incident_not_a_page_a_minute() {
        let w = watch_source("quiet", |_| {});
        for frame in 0..10 {
            w.until(0.2 + 70.0 * f64::from(frame)).await;
            w.health.count_data();
        }
        w.until(700.5).await;
        let states: Vec<TransitionKind> = alerts(&w.outbox).iter().map(|a| a.state).collect();
        assert_eq!(states, [TransitionKind::Firing], "{states:?}");
        w.stop().await;
    }
}
