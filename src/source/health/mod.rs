//! The firehose's own health: is each live source delivering, and how far
//! behind real time are its events? A source that goes silent or falls
//! behind raises an alert for `source:NAME`, so an outage of the firehose
//! never looks like "all quiet".
//!
//! The counters are shared between the source task, the pipeline thread and
//! the health monitor; [`assess`] is the pure rule.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use crate::Micros;
use crate::events::ConnectionCounters;
use crate::wall::SharedClock;

mod rule;
pub use rule::{HealthOverride, HealthRule};

/// Gaps held for the next tick of the health monitor, at most.
pub const MAX_PENDING_GAPS: usize = 100;

/// Characters of a connection's failure kept, at most: our words around
/// a server's own (itself cut to [`crate::text::SERVER_TEXT_CHARS`]).
pub const MAX_FAILURE_CHARS: usize = 400;

/// Gaps waiting for the health monitor: the first [`MAX_PENDING_GAPS`]
/// each with its detail, the rest counted.
#[derive(Debug, Default)]
struct Gaps {
    listed: Vec<String>,
    unlisted: usize,
}

/// Live counters of one source.
#[derive(Debug)]
pub struct SourceHealth {
    pub name: String,
    /// The wall clock the "last frame" times are read from.
    clock: SharedClock,
    connected: AtomicBool,
    /// Moved by the connection's events (see [`crate::events`]).
    pub counters: ConnectionCounters,
    /// Losses the server admitted (a cursor past its retention), waiting
    /// to be raised as `source:NAME` gap alerts.
    gaps: Mutex<Gaps>,
    /// Why the last connection attempt failed: a one-shot read that never
    /// connects gives up with it rather than retrying for ever.
    last_failure: Mutex<Option<String>>,
    /// Wall-clock time (µs) of the last frame of any kind; 0 = none yet.
    last_frame_wall: AtomicI64,
    /// Wall-clock time (µs) of the last frame that decoded (data, not just
    /// bytes); 0 = none yet. The watchdog and the silence rule read this, so
    /// a host sending only junk or binary frames counts as silent.
    last_data_wall: AtomicI64,
    /// The same instant on the monotonic clock ([`crate::wall::Clock::monotonic_us`]);
    /// `i64::MIN` = none yet. Silence is measured on this one.
    last_data_mono: AtomicI64,
    /// Frames that decoded.
    data: AtomicU64,
    /// When this source was set up, on the monotonic clock: silent since
    /// then until its first frame that decodes.
    started_mono: Micros,
    /// Newest event time the pipeline has processed; `i64::MIN` = none.
    processed: AtomicI64,
    /// This source's own `[sources.health]` keys: the monitor, readiness
    /// and the status API judge it by these over the global `[health]`
    /// ([`SourceHealth::rule`]), so a quiet relay is not paged by a
    /// busy firehose's silence.
    own_rule: HealthOverride,
}

/// A snapshot for logs and the health rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthSnapshot {
    pub connected: bool,
    pub frames: u64,
    pub binary: u64,
    pub oversized: u64,
    pub reconnects: u64,
    pub stalls: u64,
    pub server_errors: u64,
    /// Server messages that are neither data nor errors (`EOSE`, `NOTICE`).
    pub messages: u64,
    /// Refusals for good (a relay's `CLOSED` with `auth-required:`, ...).
    pub refusals: u64,
    /// Messages for another subscription, ignored.
    pub foreign: u64,
    pub rate_dropped: u64,
    pub last_frame_wall: Option<Micros>,
    /// Frames that decoded, and when the last one did (wall clock).
    pub data: u64,
    pub last_data_wall: Option<Micros>,
    /// When the last one did, on the monotonic clock.
    pub last_data_mono: Option<Micros>,
    pub processed: Option<Micros>,
}

impl SourceHealth {
    pub fn new(name: &str, processed: Option<Micros>) -> Self {
        Self::with_clock(name, processed, crate::wall::system())
    }

    /// [`SourceHealth::new`] reading the wall clock from `clock`.
    pub fn with_clock(name: &str, processed: Option<Micros>, clock: SharedClock) -> Self {
        let started_mono = clock.monotonic_us();
        let health = SourceHealth {
            name: name.to_owned(),
            clock,
            connected: AtomicBool::new(false),
            counters: ConnectionCounters::default(),
            gaps: Mutex::new(Gaps::default()),
            last_failure: Mutex::new(None),
            last_frame_wall: AtomicI64::new(0),
            last_data_wall: AtomicI64::new(0),
            last_data_mono: AtomicI64::new(i64::MIN),
            data: AtomicU64::new(0),
            started_mono,
            processed: AtomicI64::new(i64::MIN),
            own_rule: HealthOverride::default(),
        };
        if let Some(t) = processed {
            health.set_processed(t);
        }
        health
    }

    /// This source judged by its own `[sources.health]` keys (set before
    /// it is shared).
    pub fn with_rule(mut self, own: HealthOverride) -> Self {
        self.own_rule = own;
        self
    }

    /// The rule this source is judged by: its own keys over `global` (the
    /// `[health]` table).
    pub fn rule(&self, global: &HealthRule) -> HealthRule {
        self.own_rule.over(global)
    }

    /// The wall clock's time now (µs), as this source's counters read it.
    pub fn now(&self) -> Micros {
        self.clock.now_us()
    }

    /// The monotonic clock's time now (µs), for how long anything lasted.
    pub fn monotonic(&self) -> Micros {
        self.clock.monotonic_us()
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }
    pub fn count_frame(&self) {
        self.counters.frames.fetch_add(1, Ordering::Relaxed);
        self.last_frame_wall.store(self.now(), Ordering::Relaxed);
    }
    /// Called once a frame of this source has decoded (by the pipeline, or
    /// by `record`): only this keeps the watchdog and the health rule quiet.
    pub fn count_data(&self) {
        self.data.fetch_add(1, Ordering::Relaxed);
        self.last_data_wall.store(self.now(), Ordering::Relaxed);
        self.last_data_mono
            .store(self.monotonic(), Ordering::Relaxed);
    }
    /// How long (µs) no frame that decodes has come, on the monotonic
    /// clock: since the last one, or since this source was set up. The
    /// silence the health rule judges; the status API showed the time
    /// since the last frame of any kind, on the wall clock, so a server
    /// sending only junk, or nothing at all, showed as up on the
    /// dashboard while `/readyz` and the monitor said silent.
    pub fn silent_for_us(&self) -> Micros {
        let last = self.last_data_mono().unwrap_or(self.started_mono);
        (self.monotonic() - last).max(0)
    }

    /// Monotonic µs of the last decoded frame, if any.
    pub fn last_data_mono(&self) -> Option<Micros> {
        let t = self.last_data_mono.load(Ordering::Relaxed);
        (t != i64::MIN).then_some(t)
    }
    /// Wall-clock µs of the last decoded frame, if any.
    pub fn last_data_wall(&self) -> Option<Micros> {
        let t = self.last_data_wall.load(Ordering::Relaxed);
        (t != 0).then_some(t)
    }
    /// Notes events lost for good, for a gap alert.
    pub fn report_gap(&self, detail: String) {
        if let Ok(mut gaps) = self.gaps.lock() {
            // Bounded: a server refusing in a loop must not grow memory;
            // the rest are counted, and said so in one more gap.
            if gaps.listed.len() < MAX_PENDING_GAPS {
                gaps.listed.push(detail);
            } else {
                gaps.unlisted += 1;
            }
        }
    }
    /// The gaps reported since the last call.
    pub fn take_gaps(&self) -> Vec<String> {
        let Ok(mut gaps) = self.gaps.lock() else {
            return Vec::new();
        };
        let Gaps {
            mut listed,
            unlisted,
        } = std::mem::take(&mut *gaps);
        if unlisted > 0 {
            listed.push(format!(
                "{unlisted} more gaps were reported in the same second, not listed one by one"
            ));
        }
        listed
    }
    /// Records why the last connection ended or failed, as one line of at
    /// most [`MAX_FAILURE_CHARS`]: it may quote the server (a refusal's
    /// body, a close frame's reason), and it is shown in the source's
    /// health alert and in `/api/v1/sources`.
    pub fn set_last_failure(&self, reason: &str) {
        let reason = crate::text::one_line(&crate::text::truncate_chars(reason, MAX_FAILURE_CHARS));
        // A poisoned lock only means a panic elsewhere mid-write of a string.
        let mut last = self.last_failure.lock().unwrap_or_else(|e| e.into_inner());
        *last = Some(reason.trim().to_owned());
    }

    /// Why the last connection ended or failed, if one did.
    pub fn last_failure(&self) -> Option<String> {
        self.last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn frames(&self) -> u64 {
        self.counters.frames.load(Ordering::Relaxed)
    }

    /// Called by the pipeline after each frame of this source.
    pub fn set_processed(&self, time_us: Micros) {
        self.processed.fetch_max(time_us, Ordering::Relaxed);
    }

    pub fn processed(&self) -> Option<Micros> {
        let t = self.processed.load(Ordering::Relaxed);
        (t != i64::MIN).then_some(t)
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        let last = self.last_frame_wall.load(Ordering::Relaxed);
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HealthSnapshot {
            data: self.data.load(Ordering::Relaxed),
            last_data_wall: self.last_data_wall(),
            last_data_mono: self.last_data_mono(),
            connected: self.connected.load(Ordering::Relaxed),
            frames: self.frames(),
            binary: load(&c.binary),
            oversized: load(&c.oversized),
            reconnects: load(&c.reconnects),
            stalls: load(&c.stalls),
            server_errors: load(&c.server_errors),
            messages: load(&c.messages),
            refusals: load(&c.refusals),
            foreign: load(&c.foreign),
            rate_dropped: load(&c.rate_dropped),
            last_frame_wall: (last != 0).then_some(last),
            processed: self.processed(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Healthy,
    Silent { secs: i64 },
    Lagging { secs: i64 },
}

/// A span for people: seconds up to ten minutes, then minutes, then hours.
pub fn span(secs: i64) -> String {
    match secs {
        s if s < 600 => format!("{s} s"),
        s if s < 3 * 3600 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

impl Condition {
    /// What is wrong with `source`, as an alert's `detail` says it: "no
    /// frames from bluesky for 120 s", "bluesky is lagging 14 min behind".
    pub fn detail(&self, source: &str) -> Option<String> {
        match self {
            Condition::Healthy => None,
            Condition::Silent { secs } => Some(format!(
                "no usable frames from {source} for {}",
                span(*secs)
            )),
            Condition::Lagging { secs } => {
                Some(format!("{source} is lagging {} behind", span(*secs)))
            }
        }
    }
}

/// The `detail` of a resolution: the source is back, and how it stands.
pub fn back_detail(source: &str, snapshot: &HealthSnapshot, now: Micros) -> String {
    match snapshot.processed {
        Some(t) => format!(
            "{source} is back: frames arriving, newest event {} old",
            span(((now - t) / crate::MICROS_PER_SEC).max(0))
        ),
        None => format!("{source} is back: frames arriving"),
    }
}

/// When the health rule is applied: the wall clock, against which a
/// source's events (dated by wall clocks) lag, and the monotonic clock,
/// on which silence and the start-up grace last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub wall: Micros,
    pub mono: Micros,
}

impl Now {
    pub fn of(clock: &dyn crate::wall::Clock) -> Now {
        Now {
            wall: clock.now_us(),
            mono: clock.monotonic_us(),
        }
    }
}

/// A source healthy enough to resolve an incident left open by an
/// earlier run: it delivered data (frames that decode) in this run and the rule says healthy
/// (the start-up grace alone is not enough).
pub fn proven_healthy(
    snapshot: &HealthSnapshot,
    now: Now,
    started_mono: Micros,
    rule: &HealthRule,
) -> bool {
    snapshot.last_data_mono.is_some()
        && assess(
            snapshot,
            now,
            started_mono - rule.grace_secs * crate::MICROS_PER_SEC,
            rule,
        ) == Condition::Healthy
}

/// The health rule, pure: silence and the grace after `started_mono` on
/// the monotonic clock, lag on the wall clock.
pub fn assess(
    snapshot: &HealthSnapshot,
    now: Now,
    started_mono: Micros,
    rule: &HealthRule,
) -> Condition {
    let second = crate::MICROS_PER_SEC;
    if now.mono - started_mono < rule.grace_secs * second {
        return Condition::Healthy;
    }
    let last = snapshot.last_data_mono.unwrap_or(started_mono);
    let silent = (now.mono - last) / second;
    if silent >= rule.silence_secs {
        return Condition::Silent { secs: silent };
    }
    if let Some(processed) = snapshot.processed {
        let lag = (now.wall - processed).max(0) / second;
        if lag >= rule.lag_secs {
            return Condition::Lagging { secs: lag };
        }
    }
    Condition::Healthy
}

#[cfg(test)]
mod tests;
