//! Setting a failing alert aside, so that one alert a receiver keeps
//! refusing does not hold up the alerts of other incidents.
//!
//! A sink delivers in outbox order. An alert its receiver kept refusing
//! (one payload only: the others went through) held every later alert of
//! the sink, new incidents included, for up to the retry horizon (24 h by
//! default). Now, once the alert at the head has failed [`AFTER_ATTEMPTS`]
//! times over at least [`AFTER`], and an alert of another incident waits
//! behind it, the sink sets it aside ([`crate::state::outbox::SetAside`]:
//! kept whole with its retry state, in one write with the cursor's move)
//! and goes on. Both bounds: one blip (a receiver's deploy) is ridden out
//! in order as before, and a fast backoff (1 s, 2 s, 4 s) does not set an
//! alert aside within seconds; a minute is when the log used to start
//! saying it held others up. A receiver down for every payload is not one
//! refusing one alert: after setting one aside the sink sets the next
//! aside only once the receiver has taken something since, so a dead
//! receiver gets the head and one set-aside incident retried, in order,
//! not every incident scattered onto backoffs of its own.
//!
//! Later alerts of an incident with an alert set aside are set aside
//! behind it as they reach the head, untried: an incident's `resolved`
//! never overtakes its `firing`. Each such incident is retried on its own
//! schedule ([`Schedule`]), its first set-aside alert on that alert's own
//! backoff: once the receiver takes it, the next of the incident follows
//! at once. At the retry horizon it becomes a dead letter as a head alert
//! does, and the incident's next alert goes on as after any dead letter
//! (tried in its turn, with a retry state of its own).
//!
//! A dead letter re-queued (`alerts retry`) is set aside at once, untried,
//! as the first alert of its incident ([`SinkRun::take_up_requeued`]): its
//! incident's later alerts go behind it, other incidents flow, and it has
//! a retry state of its own. Tried at the head before the outbox, one its
//! receiver still refused held every alert of every other incident for a
//! whole retry horizon (several letters: one horizon after another), and
//! its retries overwrote the head alert's saved state.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::Alert;
use super::outbox::{Outbox, RetryState, SetAside};
use super::task::{SinkRun, Tried};
use crate::events::{DeliverySkipped, DeliverySuperseded, InternalEvent};
use crate::state::StoreError;

/// Failed attempts before an alert may be set aside.
pub(crate) const AFTER_ATTEMPTS: u32 = 3;
/// How long it must have been failing before it may be set aside.
pub(crate) const AFTER: Duration = Duration::from_secs(60);
/// Alerts read behind a failing one, at most, looking for another
/// incident's (those of its own would wait anyway).
const SCAN_LIMIT: usize = 1_000;

/// When each incident with set-aside alerts is tried next, by incident
/// id: one queue per incident, so one incident's backoff does not delay
/// another's. Ordered by id, so that two incidents due at once are tried
/// in the same order every run.
#[derive(Debug, Default)]
pub(crate) struct Schedule(BTreeMap<String, Instant>);

impl Schedule {
    /// Whether `incident` has alerts set aside (its later ones go behind).
    pub(crate) fn holds(&self, incident: &str) -> bool {
        self.0.contains_key(incident)
    }

    /// The incident due first, if its time has come by `now`.
    pub(crate) fn due(&self, now: Instant) -> Option<String> {
        let (incident, _) = self
            .0
            .iter()
            .filter(|(_, at)| **at <= now)
            .min_by_key(|(id, at)| (**at, *id))?;
        Some(incident.clone())
    }

    /// The next time an incident is due.
    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.0.values().min().copied()
    }

    /// `incident` is tried next at `at`.
    pub(crate) fn retry_at(&mut self, incident: &str, at: Instant) {
        self.0.insert(incident.to_owned(), at);
    }

    /// `incident` has no alert set aside any more.
    fn done(&mut self, incident: &str) {
        self.0.remove(incident);
    }
}

/// What [`SinkRun::take_up_requeued`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TakenUp {
    /// A letter was set aside, dropped or passed over: look again.
    One,
    /// None is re-queued.
    None,
    /// The store failed: the letters stay re-queued for a later turn.
    Failed,
}

/// Whether an alert of another incident than `incident` waits after
/// `seq` (read up to [`SCAN_LIMIT`] alerts).
fn another_incident_behind(outbox: &Outbox, seq: u64, incident: &str) -> bool {
    std::iter::successors(outbox.next_after(Some(seq)).ok().flatten(), |(at, _)| {
        outbox.next_after(Some(*at)).ok().flatten()
    })
    .take(SCAN_LIMIT)
    .any(|(_, alert)| alert.id != incident)
}

impl SinkRun {
    /// Takes up the set-aside alerts of an earlier run: each incident is
    /// due at once (its backoff was not saved; one try is cheap).
    pub(crate) fn load_set_aside(&mut self) {
        match self.outbox.set_aside_alerts(&self.spec.name) {
            Ok(read) => {
                self.pass_over_set_aside(&read.unreadable);
                let now = Instant::now();
                for alert in read.alerts {
                    self.aside.retry_at(&alert.incident, now);
                }
            }
            Err(e) => {
                tracing::error!(sink = %self.spec.name, error = %e, "cannot read the set-aside alerts");
            }
        }
    }

    /// Set-aside records that do not read are passed over (counted and
    /// logged as an unreadable head alert is) and dropped: kept, they
    /// would be found again at every turn.
    fn pass_over_set_aside(&self, unreadable: &[(u64, String)]) {
        for (seq, detail) in unreadable {
            self.pass_over(*seq, detail);
            if let Err(e) = self.outbox.drop_set_aside(&self.spec.name, *seq) {
                tracing::error!(sink = %self.spec.name, error = %e, seq, "cannot drop an unreadable set-aside alert");
            }
        }
    }

    /// Whether the head alert `seq`, failing, should be set aside now: it
    /// has failed long enough (see [`AFTER`]), another incident's alert
    /// waits behind it, and the receiver took an alert since the last one
    /// was set aside (else it is down, not refusing this one).
    pub(crate) fn may_set_aside(&self, seq: u64, alert: &Alert) -> bool {
        if !self.delivered_since_set_aside {
            return false;
        }
        let Some(state) = self.outbox.retry_state(&self.spec.name).ok().flatten() else {
            return false;
        };
        let failing_for = self
            .failing
            .get(&seq)
            .map_or(Duration::from_millis(state.failing_ms), |f| f.elapsed());
        state.seq == seq
            && state.attempts >= AFTER_ATTEMPTS
            && failing_for >= AFTER
            && another_incident_behind(&self.outbox, seq, &alert.id)
    }

    /// Sets the head alert `seq` aside (with its failures so far, and when
    /// it is due again: `None` behind its incident's) and moves the
    /// cursor past it. Cannot be saved: it stays at the head, tried again
    /// after a second, and the schedule is untouched (taken as set aside,
    /// it would be set aside again untried, its failures lost).
    pub(crate) async fn set_aside(
        &mut self,
        seq: u64,
        alert: &Alert,
        (retry, due): (Option<RetryState>, Option<Instant>),
        cursor: &mut Option<u64>,
    ) {
        let record = SetAside {
            seq,
            incident: alert.id.clone(),
            alert: alert.clone(),
            retry,
        };
        if let Err(e) = self.outbox.set_aside(&self.spec.name, &record) {
            tracing::error!(sink = %self.spec.name, error = %e, seq, "cannot set an alert aside; it stays at the head");
            let _ = self
                .idle(Some(Instant::now() + Duration::from_secs(1)))
                .await;
            return;
        }
        self.head_wait = None;
        self.delivered_since_set_aside &= due.is_none();
        *cursor = Some(seq);
        let _ = self.cursor.send(*cursor);
        match due {
            Some(at) => self.aside.retry_at(&alert.id, at),
            None if !self.aside.holds(&alert.id) => self.aside.retry_at(&alert.id, Instant::now()),
            None => {}
        }
        let (Some(retry), Some(_)) = (&record.retry, due) else {
            tracing::info!(sink = %self.spec.name, alert = %alert.id, seq, state = alert.state.as_str(), "set aside behind its incident's earlier alert, to keep the incident in order");
            return;
        };
        let failing_secs = self.failing.get(&seq).map_or(0, |f| f.elapsed().as_secs());
        tracing::warn!(
            sink = %self.spec.name,
            alert = %alert.id,
            seq,
            attempts = retry.attempts,
            failing_secs,
            last_error = %retry.last_error,
            horizon_secs = self.spec.retry.horizon.as_secs(),
            "a failing alert is set aside: this sink's alerts of other incidents go on; it (and its incident's later alerts, in order) is retried apart until delivered or the retry horizon makes it a dead letter (`outagewatch alerts dead`)"
        );
    }

    /// Takes up the sink's first re-queued dead letter: set aside,
    /// untried, its incident due now unless it already has alerts set
    /// aside (the letter is older than they are and goes first, by seq);
    /// dropped when a later alert of its incident superseded it at a
    /// receiver that keeps incidents (see [`Outbox::supersede_dead`]).
    pub(crate) fn take_up_requeued(&mut self) -> TakenUp {
        let passed_over = &self.passed_over;
        let next = self
            .outbox
            .next_requeued_except(&self.spec.name, |seq| passed_over.contains(&seq));
        let requeued = match next {
            Ok(Some(requeued)) => requeued,
            Ok(None) => return TakenUp::None,
            Err(StoreError::UnreadableAlert { seq, detail }) => {
                // Passed over once: if it stays (its removal failed), it
                // is not read, counted and logged again in a loop that
                // never waits.
                self.pass_over(seq, &detail);
                self.passed_over.insert(seq);
                if let Err(e) = self.outbox.remove_requeued(&self.spec.name, seq) {
                    tracing::error!(sink = %self.spec.name, error = %e, seq, "cannot drop an unreadable re-queued letter; passed over until the next start");
                }
                return TakenUp::One;
            }
            Err(e) => {
                tracing::error!(sink = %self.spec.name, error = %e, "cannot read the re-queued letters");
                return TakenUp::Failed;
            }
        };
        let (seq, alert) = (requeued.seq, requeued.alert);
        if let Some(later) = requeued.superseded_by.filter(|_| self.is_stateful()) {
            DeliverySuperseded {
                sink: &self.spec.name,
                counters: &self.stats,
                alert: &alert.id,
                state: alert.state.as_str(),
                later: &later.state,
            }
            .emit();
            if let Err(e) = self.outbox.remove_requeued(&self.spec.name, seq) {
                tracing::error!(sink = %self.spec.name, error = %e, seq, "cannot drop a superseded re-queued letter");
                return TakenUp::Failed;
            }
            return TakenUp::One;
        }
        let record = SetAside {
            seq,
            incident: alert.id.clone(),
            alert,
            retry: None,
        };
        if let Err(e) = self.outbox.set_aside_requeued(&self.spec.name, &record) {
            tracing::error!(sink = %self.spec.name, error = %e, seq, "cannot set a re-queued letter aside; it stays re-queued");
            return TakenUp::Failed;
        }
        if !self.aside.holds(&record.incident) {
            self.aside.retry_at(&record.incident, Instant::now());
        }
        tracing::info!(sink = %self.spec.name, alert = %record.incident, seq, "a re-queued letter is retried apart, before its incident's later alerts");
        TakenUp::One
    }

    /// One try at `incident`'s first set-aside alert: false at shutdown.
    pub(crate) async fn retry_set_aside(&mut self, incident: &str) -> bool {
        let read = match self.outbox.set_aside_alerts(&self.spec.name) {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(sink = %self.spec.name, error = %e, "cannot read the set-aside alerts");
                self.aside
                    .retry_at(incident, Instant::now() + Duration::from_secs(1));
                return true;
            }
        };
        self.pass_over_set_aside(&read.unreadable);
        // A re-queued dead letter of the incident is older than its
        // set-aside alerts: every re-queued letter is taken up before any
        // of them is tried (it goes first, by seq).
        match self.take_up_requeued() {
            TakenUp::None => {}
            TakenUp::One => return true,
            TakenUp::Failed => {
                self.aside
                    .retry_at(incident, Instant::now() + Duration::from_secs(1));
                return true;
            }
        }
        let delivered = &self.delivered_aside;
        let Some(first) = read
            .alerts
            .into_iter()
            .find(|a| a.incident == incident && !delivered.contains(&a.seq))
        else {
            self.aside.done(incident);
            return true;
        };
        let tried = if self.wants(&first.alert) {
            self.deliver(first.seq, &first.alert, first.retry.clone(), true)
                .await
        } else {
            DeliverySkipped {
                counters: &self.stats,
            }
            .emit();
            Tried::Done
        };
        let (seq, done) = (first.seq, matches!(tried, Tried::Done));
        let saved = match tried {
            Tried::Stopped => return false,
            // The incident's next one follows at once.
            Tried::Done => self.outbox.drop_set_aside(&self.spec.name, first.seq),
            Tried::Retry { state, until } => {
                self.aside.retry_at(incident, until);
                let retry = Some(state);
                self.outbox
                    .update_set_aside(&self.spec.name, &SetAside { retry, ..first })
            }
        };
        if let Err(e) = saved {
            tracing::error!(sink = %self.spec.name, error = %e, "cannot record a set-aside alert's delivery; it may be sent again after a restart");
            if done {
                self.delivered_aside.insert(seq);
            }
        }
        true
    }
}
