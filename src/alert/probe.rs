//! A sink's numbers from outside its task: delivered, retried, dead and
//! still pending, for the logs, the status API and the metrics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use super::outbox::Outbox;

/// Counters of one sink, moved by its delivery events (see
/// [`crate::events`]).
pub type SinkStats = crate::events::SinkCounters;

/// A snapshot of one sink, for logs and summaries.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkReport {
    pub name: String,
    pub delivered: u64,
    pub retries: u64,
    pub dead: u64,
    /// Alerts still waiting in the outbox for this sink (set aside
    /// included).
    pub pending: usize,
    /// Of those, the alerts set aside: refused while other incidents'
    /// alerts waited, retried apart (see `alert::aside`).
    pub set_aside: usize,
    /// The alert being retried now, if delivery is failing: an on-call
    /// engineer needs the receiver's answer, not only a growing count.
    pub failing: Option<Failing>,
    /// Event time of the oldest alert still waiting (RFC 3339): how far
    /// behind this sink is.
    pub oldest_pending_at: Option<String>,
}

/// Every sink's report with what the store holds for them, at one moment:
/// what the metrics copy at a scrape, and what is kept when the sinks stop
/// (their probe holds the store, which is then closed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkFigures {
    pub reports: Vec<SinkReport>,
    /// Dead letters in the store, per sink; `None` when the store could
    /// not be counted (an empty map would say "none" where it is not
    /// known). Kept when the sinks stop, so the API still reports each
    /// sink's dead letters once the store is closed.
    pub dead_stored: Option<BTreeMap<String, usize>>,
    /// Each sink's newest dead letter that nothing superseded, read only
    /// when the sinks stop ([`SinkProbe::stopped_figures`]; a scrape has no
    /// use for it): once the store is closed, the API and the dashboard
    /// show it from here. A sink without one (or whose letters could not
    /// be read) is absent.
    pub last_dead: BTreeMap<String, LastDead>,
    /// The store's size on disk, when it could be read.
    pub store_size: Option<u64>,
}

/// A sink's newest dead letter, as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LastDead {
    /// RFC 3339, wall clock.
    pub failed_at: String,
    pub reason: String,
}

/// A sink whose current alert has failed at least once.
#[derive(Debug, Clone, PartialEq)]
pub struct Failing {
    pub attempts: u32,
    /// Wall-clock milliseconds of the first failure.
    pub since_ms: i64,
    /// The last failure's reason, as the delivery code stored it (already
    /// printable and bounded there).
    pub last_error: String,
}

/// Reads the sinks' counters and outbox depth (see [`super::deliver::Delivery::probe`]).
#[derive(Clone)]
pub struct SinkProbe {
    sinks: Vec<(String, Arc<SinkStats>, watch::Receiver<Option<u64>>)>,
    outbox: Outbox,
}

impl SinkProbe {
    pub fn reports(&self) -> Vec<SinkReport> {
        self.sinks
            .iter()
            .map(|(name, stats, cursor)| {
                let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
                let cursor = *cursor.borrow();
                let pending = self.outbox.depth(name, cursor).unwrap_or(0);
                let set_aside = self.outbox.set_aside_count(name);
                // Only the retry record and the first waiting alert are
                // read: two lookups, cheap enough for every poll.
                let failing = self
                    .outbox
                    .retry_state(name)
                    .ok()
                    .flatten()
                    .map(|r| Failing {
                        attempts: r.attempts,
                        since_ms: r.first_failure_ms,
                        last_error: r.last_error,
                    });
                // A set-aside alert is older than the head (its seq is
                // below the cursor).
                let oldest_pending_at = match (pending, set_aside) {
                    (0, _) => None,
                    (_, 0) => self
                        .outbox
                        .next_after(cursor)
                        .ok()
                        .flatten()
                        .map(|(_, alert)| alert.at),
                    _ => self
                        .outbox
                        .first_set_aside(name)
                        .ok()
                        .flatten()
                        .map(|aside| aside.alert.at),
                };
                SinkReport {
                    name: name.clone(),
                    delivered: load(&stats.delivered),
                    retries: load(&stats.retries),
                    dead: load(&stats.dead),
                    pending,
                    set_aside,
                    failing,
                    oldest_pending_at,
                }
            })
            .collect()
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The reports, the dead letters stored and the store's size now.
    pub fn figures(&self) -> SinkFigures {
        SinkFigures {
            reports: self.reports(),
            dead_stored: self.outbox.dead_counts().ok(),
            last_dead: BTreeMap::new(),
            store_size: self.outbox.store_size().ok(),
        }
    }

    /// [`SinkProbe::figures`] with each sink's newest dead letter, as the
    /// sinks stop and the store is about to close: a stopped sink showed
    /// `last_dead_letter: null`, whatever the store held.
    pub fn stopped_figures(&self) -> SinkFigures {
        let mut figures = self.figures();
        let has_letters = |name: &str| {
            figures
                .dead_stored
                .as_ref()
                .is_none_or(|counts| counts.get(name).is_some_and(|n| *n > 0))
        };
        let last_dead = self
            .sinks
            .iter()
            .filter(|(name, ..)| has_letters(name))
            .filter_map(|(name, ..)| {
                let letter = self.outbox.last_dead(name).ok().flatten()?;
                let last = LastDead {
                    failed_at: letter.failed_at,
                    reason: letter.reason,
                };
                Some((name.clone(), last))
            })
            .collect();
        figures.last_dead = last_dead;
        figures
    }
}

impl SinkProbe {
    /// A probe of these sinks: each name with its counters and the
    /// receiving end of its cursor.
    pub(crate) fn new(
        sinks: Vec<(String, Arc<SinkStats>, watch::Receiver<Option<u64>>)>,
        outbox: Outbox,
    ) -> Self {
        SinkProbe { sinks, outbox }
    }
}
