//! Source-health alerts the store has not taken yet. The monitor marks an
//! incident open or closed when it judges it, whether or not its alert was
//! stored; an alert the store refused (a full disk, say) was logged and
//! dropped, never retried, and a source that stayed silent gave the
//! pipeline nothing else to write, so the daemon ran on without it. Now
//! such an alert waits here, in order, and is tried again at every tick
//! before any newer one.

use std::collections::VecDeque;

use crate::alert::Alert;
use crate::state::StoreError;

/// Alerts waiting, at most. A gap tick of one source raises at most
/// `2 * (MAX_PENDING_GAPS + 1)` (202) and a judged source one, so this is
/// many minutes of a refusing store; past it the oldest go first (an
/// orphan `resolved` is harmless to a receiver, an orphan `firing` pages
/// for good, and the oldest are the firings).
pub const MAX_UNRAISED: usize = 4_096;

/// A refusal is logged at its first try, then once every this many tries
/// (one a second: a store refusing for an hour logs 60 lines, not 3,600);
/// so is a drop from a full queue.
const LOG_EVERY: u64 = 60;

/// The alerts not stored yet, oldest first, with the counts of what went
/// wrong.
#[derive(Debug, Default)]
pub struct Unraised {
    queue: VecDeque<Alert>,
    /// Refused appends since the last one that worked.
    refusals: u64,
    /// Refused appends since start.
    refused: u64,
    /// Alerts dropped since start because the queue was full.
    dropped: u64,
}

impl Unraised {
    /// Queues `alert` behind those waiting; a full queue drops its oldest
    /// (logged, counted).
    pub fn push(&mut self, alert: Alert) {
        if self.queue.len() >= MAX_UNRAISED
            && let Some(old) = self.queue.pop_front()
        {
            self.dropped += 1;
            if self.dropped % LOG_EVERY == 1 {
                tracing::error!(
                    alert = %old.id,
                    state = old.state.as_str(),
                    waiting = self.queue.len(),
                    dropped = self.dropped,
                    "the store has refused source-health alerts for long; dropping the oldest waiting"
                );
            }
        }
        self.queue.push_back(alert);
    }

    /// Stores the waiting alerts in order with `append` until it refuses
    /// one (that one and those behind it wait for the next call); `stored`
    /// is called with each one stored. An alert leaves the queue only once
    /// appended.
    pub fn store(
        &mut self,
        mut append: impl FnMut(&Alert) -> Result<u64, StoreError>,
        mut stored: impl FnMut(&Alert),
    ) {
        while let Some(alert) = self.queue.front() {
            if let Err(e) = append(alert) {
                self.refusals += 1;
                self.refused += 1;
                if self.refusals % LOG_EVERY == 1 {
                    tracing::error!(
                        error = %e,
                        alert = %alert.id,
                        waiting = self.queue.len(),
                        tries = self.refusals,
                        refused = self.refused,
                        "cannot store a source-health alert; retrying every second"
                    );
                }
                return;
            }
            if self.refusals > 0 {
                tracing::info!(
                    alert = %alert.id,
                    tries = self.refusals + 1,
                    waiting = self.queue.len() - 1,
                    "stored a source-health alert the store had refused"
                );
                self.refusals = 0;
            }
            stored(alert);
            self.queue.pop_front();
        }
    }

    /// At a stop: the alerts still waiting are lost (logged).
    pub fn report_lost(&self) {
        if !self.queue.is_empty() {
            tracing::error!(
                lost = self.queue.len(),
                refused = self.refused,
                dropped = self.dropped,
                "stopping with source-health alerts the store refused; they are lost"
            );
        }
    }

    /// Alerts waiting.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Refused appends and alerts dropped, since start.
    #[cfg(test)]
    pub fn counts(&self) -> (u64, u64) {
        (self.refused, self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::TransitionKind;

    fn alert(i: usize) -> Alert {
        let at = 1_800_000_000_000_000 + i as i64 * crate::MICROS_PER_SEC;
        Alert::source_health("s", TransitionKind::Firing, at, at, format!("{i}"))
    }

    fn refused() -> StoreError {
        StoreError::Unwritable {
            what: "alert".into(),
            detail: "test".into(),
        }
    }

    /// Calls to `store` with the store refusing the first `refuse` appends:
    /// every alert stored once, in order, whatever the refusals.
    #[test]
    fn refused_alerts_are_stored_once_in_order() {
        for (alerts, refuse, calls) in [(1, 0, 1), (1, 1, 2), (3, 2, 3), (3, 5, 6), (5, 1, 2)] {
            let mut unraised = Unraised::default();
            let (mut left, mut out) = (refuse, Vec::new());
            for i in 0..alerts {
                unraised.push(alert(i));
            }
            for _ in 0..calls {
                let append = |a: &Alert| match left {
                    0 => {
                        out.push(a.id.clone());
                        Ok(1)
                    }
                    _ => {
                        left -= 1;
                        Err(refused())
                    }
                };
                unraised.store(append, |_| {});
            }
            let want: Vec<String> = (0..alerts).map(|i| alert(i).id).collect();
            assert_eq!(out, want, "{alerts} alerts, {refuse} refusals");
            assert!(unraised.is_empty());
            assert_eq!(unraised.counts(), (refuse as u64, 0));
        }
    }

    /// A queue at its bound drops its oldest, counted.
    #[test]
    fn a_full_queue_drops_its_oldest() {
        let mut unraised = Unraised::default();
        for i in 0..MAX_UNRAISED + 2 {
            unraised.push(alert(i));
        }
        assert_eq!(unraised.len(), MAX_UNRAISED);
        assert_eq!(unraised.counts(), (0, 2));
        let mut first = None;
        unraised.store(
            |a| {
                first.get_or_insert_with(|| a.id.clone());
                Ok(1)
            },
            |_| {},
        );
        assert_eq!(first, Some(alert(2).id));
    }
}
