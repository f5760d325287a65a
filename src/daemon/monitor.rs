//! The health monitor: raises and resolves `source:NAME` alerts from the
//! sources' counters, once a second of the wall clock it is given.
//!
//! Open incidents are saved in the store: after a restart, one is
//! resolved once its source proves healthy (frames in this run), or at
//! once when the source is no longer configured. A gap (events the server
//! says are lost) is a loss that has happened, not a condition that
//! lasts: it fires, saying what was lost, and resolves at once.
//!
//! An alert the store refuses waits in [`Unraised`] and is tried again at
//! every tick, before newer ones.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::unraised::Unraised;
use crate::Micros;
use crate::alert::Alert;
use crate::alert::outbox::{OpenSource, Outbox};
use crate::detect::TransitionKind;
use crate::source::health::{
    Condition, HealthRule, Now, SourceHealth, assess, back_detail, proven_healthy,
};
use crate::state::StoreError;
use crate::telemetry::Telemetry;
use crate::wall::SharedClock;

/// Where the monitor keeps its alerts and its open incidents: the outbox
/// (a trait so that a test can make the store's writes fail).
pub trait HealthStore: Send + Sync + 'static {
    fn append(&self, alert: &Alert) -> Result<u64, StoreError>;
    fn open_sources(&self) -> Result<Vec<OpenSource>, StoreError>;
    fn set_open_source(&self, open: &OpenSource) -> Result<(), StoreError>;
    fn clear_open_source(&self, source: &str) -> Result<(), StoreError>;
}

impl HealthStore for Outbox {
    fn append(&self, alert: &Alert) -> Result<u64, StoreError> {
        Outbox::append(self, alert)
    }

    fn open_sources(&self) -> Result<Vec<OpenSource>, StoreError> {
        Outbox::open_sources(self)
    }

    fn set_open_source(&self, open: &OpenSource) -> Result<(), StoreError> {
        Outbox::set_open_source(self, open)
    }

    fn clear_open_source(&self, source: &str) -> Result<(), StoreError> {
        Outbox::clear_open_source(self, source)
    }
}

/// What the monitor reads and where its alerts go.
pub struct Monitor<S: HealthStore = Outbox> {
    pub health: Vec<Arc<SourceHealth>>,
    /// The global `[health]` rule; each source is judged by its own keys
    /// over it ([`SourceHealth::rule`]).
    pub rule: HealthRule,
    pub outbox: S,
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
    /// Since when it has been healthy again, on the monotonic clock.
    healthy_since: Option<Micros>,
}

impl<S: HealthStore> Monitor<S> {
    /// Runs until `shutdown` changes; the gaps reported by then are
    /// raised before it returns (they live only in memory until raised,
    /// and the next run resumes past them).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let started = Now::of(self.clock.as_ref());
        // Readiness judges silence by this same start (and grace).
        self.telemetry.set_health_started(started.mono);
        let mut unraised = Unraised::default();
        let mut open = self.restore(started.wall, &mut unraised);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => {
                    self.raise_gaps(self.clock.now_us(), &mut unraised);
                    self.store(&mut unraised);
                    unraised.report_lost();
                    return;
                }
            }
            let now = Now::of(self.clock.as_ref());
            self.raise_gaps(now.wall, &mut unraised);
            for (source, incident) in self.health.iter().zip(open.iter_mut()) {
                self.judge(source, incident, now, started.mono, &mut unraised);
            }
            // Once a tick: those refused earlier first, then this tick's.
            self.store(&mut unraised);
        }
    }

    /// Saves the alerts waiting in the outbox, in order, until the store
    /// refuses one (tried again at the next tick), and wakes the sinks.
    fn store(&self, unraised: &mut Unraised) {
        unraised.store(
            |alert| self.outbox.append(alert),
            |alert| {
                self.telemetry.record_alert(alert);
                self.notifier.notify_waiters();
            },
        );
    }

    /// The incidents an earlier run left open, per source; those of
    /// sources no longer configured are resolved now.
    fn restore(&self, now: Micros, unraised: &mut Unraised) -> Vec<Option<Open>> {
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
                let opened = Alert::source_health(
                    &incident.source,
                    TransitionKind::Firing,
                    incident.started_at,
                    incident.started_at,
                    incident.detail.clone(),
                );
                self.telemetry.board().restore_open(&opened);
                continue;
            }
            unraised.push(Alert::source_health(
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
    fn raise_gaps(&self, now: Micros, unraised: &mut Unraised) {
        for source in &self.health {
            for (i, gap) in source.take_gaps().into_iter().enumerate() {
                let at = now.saturating_add(1 + i as i64);
                for state in [TransitionKind::Firing, TransitionKind::Resolved] {
                    let detail = format!("gap: {gap}");
                    let mut alert = Alert::source_health(&source.name, state, at, at, detail);
                    alert.id = format!("{}-gap{:06}", alert.id, at.rem_euclid(1_000_000));
                    unraised.push(alert);
                }
            }
        }
    }

    /// Applies the source's own health rule to it: fires when it turns
    /// unhealthy, resolves when it has been healthy again for `calm_secs`.
    /// `started_mono`: the monitor's start on the monotonic clock; the
    /// alerts are dated by the wall clock.
    fn judge(
        &self,
        source: &SourceHealth,
        incident: &mut Option<Open>,
        at: Now,
        started_mono: Micros,
        unraised: &mut Unraised,
    ) {
        let snapshot = source.snapshot();
        let rule = source.rule(&self.rule);
        let condition = assess(&snapshot, at, started_mono, &rule);
        let now = at.wall;
        match (&condition, incident.as_mut()) {
            (Condition::Healthy, Some(open)) => {
                if open.earlier && !proven_healthy(&snapshot, at, started_mono, &rule) {
                    return;
                }
                // Calm for long enough, on the monotonic clock.
                let healthy_since = *open.healthy_since.get_or_insert(at.mono);
                if at.mono - healthy_since < rule.calm_us() {
                    return;
                }
                tracing::info!(source = %source.name, "source healthy again");
                unraised.push(Alert::source_health(
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
                let detail = unhealthy_detail(&condition, source);
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
                unraised.push(alert);
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

/// What is wrong with `source`, as its alert's `detail` says it; for a
/// silent one, with why its last connection failed when one did. "no
/// usable frames from masto for 10 s" alone left the reason (an HTTP 401,
/// a host that does not answer) to be dug out of the log.
fn unhealthy_detail(condition: &Condition, source: &SourceHealth) -> String {
    let detail = condition.detail(&source.name).unwrap_or_default();
    match (condition, source.last_failure()) {
        (Condition::Silent { .. }, Some(why)) => {
            format!("{detail}; last connection failure: {why}")
        }
        _ => detail,
    }
}

#[cfg(test)]
#[path = "monitor_tests.rs"]
mod tests;
