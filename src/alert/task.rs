//! One sink's task: reads the outbox from the sink's cursor, in order,
//! and delivers each alert until it is delivered, dead or set aside (see
//! [`super::aside`]), waiting out backoffs and the receiver's rate limits
//! in this task only (so no other sink waits). An Alertmanager sink also
//! re-posts its open alerts, meanwhile (see [`super::repost`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::Alert;
use super::aside::{Schedule, TakenUp};
use super::deliver::{SinkSpec, SinkStats, Target, Webhook};
use super::format::Format;
use super::http::{self, Answer, Failure, Outgoing};
use super::outbox::{DeadLetter, Outbox, RetryState, Superseded};
use super::paging;
use super::ratelimit::backoff;
use super::sink::JsonLines;
use crate::detect::TransitionKind;
use crate::events::{
    Delivered, DeliveryDead, DeliveryRetried, DeliverySkipped, DeliveryUnreadable, InternalEvent,
};
use crate::state::StoreError;
use crate::wall::SharedClock;

/// One sink's task.
pub(crate) struct SinkRun {
    pub(crate) spec: SinkSpec,
    pub(crate) outbox: Outbox,
    /// `None` for a JSON-lines sink.
    pub(crate) client: Option<reqwest::Client>,
    /// The receiver's rate limit asked for a pause before the next request.
    pub(crate) pause_until: Option<tokio::time::Instant>,
    /// When an Alertmanager sink last re-posted its open alerts; `None`
    /// before the first this run, so one goes out at the start: after a
    /// stop longer than `endsAt` allows, they had all expired (and
    /// Alertmanager resolved live outages) before the first re-post.
    pub(crate) reposted: Option<tokio::time::Instant>,
    /// A JSON-lines sink (`None` for a webhook): written on a blocking
    /// thread (see [`super::sink::write_line`]), so shared with it.
    pub(crate) lines: Option<Arc<std::sync::Mutex<JsonLines>>>,
    /// Where the first failed write of a JSON-lines sink on standard
    /// output is told (`None`: this sink does not write there). The
    /// daemon retries it as any failure (the outbox keeps the alert); a
    /// one-shot command ends at once, as on a closed pipe (see
    /// [`super::deliver::Delivery::stdout_failure`]).
    pub(crate) stdout_failed: Option<Arc<std::sync::OnceLock<String>>>,
    pub(crate) stats: Arc<SinkStats>,
    pub(crate) notify: Arc<Notify>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) cursor: watch::Sender<Option<u64>>,
    /// The wall clock of dead letters and rate limits.
    pub(crate) clock: SharedClock,
    /// The alerts failing (at the head, set aside), by seq, and since
    /// when on the monotonic clock, with what earlier runs had counted
    /// (see [`RetryState::failing_ms`]).
    pub(crate) failing: BTreeMap<u64, Failing>,
    /// The head alert (seq) waiting out its backoff, and until when: the
    /// task meanwhile retries set-aside alerts whose turn comes first.
    pub(crate) head_wait: Option<(u64, tokio::time::Instant)>,
    /// When each incident with set-aside alerts is tried next.
    pub(crate) aside: Schedule,
    /// Whether the receiver took an alert since this sink last set one
    /// aside (see [`SinkRun::may_set_aside`]).
    pub(crate) delivered_since_set_aside: bool,
    /// Set-aside alerts delivered whose record could not be dropped (the
    /// store failing): not sent again while this run lasts, as the head's
    /// cursor moves in memory when its write fails.
    pub(crate) delivered_aside: std::collections::BTreeSet<u64>,
    /// Re-queued letters that do not read, passed over this run: one
    /// whose removal failed is not read again (see
    /// [`SinkRun::take_up_requeued`]).
    pub(crate) passed_over: std::collections::BTreeSet<u64>,
}

/// How one try at an alert went.
pub(crate) enum Tried {
    /// Delivered or dead: move on.
    Done,
    /// Failed: try again at `until`, with its failures so far.
    Retry {
        state: RetryState,
        until: tokio::time::Instant,
    },
    /// Shutting down.
    Stopped,
}

/// How long an alert has been failing: `before_ms` counted by earlier
/// runs, plus the time since `since`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failing {
    since: tokio::time::Instant,
    before_ms: u64,
}

impl Failing {
    pub(crate) fn elapsed(&self) -> Duration {
        Duration::from_millis(self.before_ms).saturating_add(self.since.elapsed())
    }
}

impl SinkRun {
    /// Delivers from after `cursor` (`None`: from the first alert).
    pub(crate) async fn run(mut self, mut cursor: Option<u64>) {
        self.load_set_aside();
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            // Before anything else, so that a long backlog does not hold
            // re-posts up either.
            self.repost_if_due().await;
            // Set-aside incidents whose turn has come, then re-queued dead
            // letters (set aside at once, see [`SinkRun::take_up_requeued`]),
            // then the outbox in order.
            if let Some(incident) = self.aside.due(tokio::time::Instant::now()) {
                if !self.retry_set_aside(&incident).await {
                    return;
                }
                continue;
            }
            if self.take_up_requeued() == TakenUp::One {
                continue;
            }
            let next = match self.outbox.next_after(cursor) {
                Ok(found) => found,
                Err(e) => {
                    self.unreadable(e, &mut cursor);
                    None
                }
            };
            let Some((seq, alert)) = next else {
                if !self.idle(None).await {
                    return;
                }
                continue;
            };
            if self.aside.holds(&alert.id) {
                // Behind its incident's set-aside alert: its `resolved`
                // must not overtake its `firing`. Its failures so far, if
                // it was failing at the head, go with it.
                let retry = self
                    .outbox
                    .retry_state(&self.spec.name)
                    .ok()
                    .flatten()
                    .filter(|state| state.seq == seq);
                self.set_aside(seq, &alert, (retry, None), &mut cursor)
                    .await;
                continue;
            }
            if let Some((waiting, until)) = self.head_wait
                && waiting == seq
                && until > tokio::time::Instant::now()
            {
                if self.may_set_aside(seq, &alert) {
                    let retry = self.outbox.retry_state(&self.spec.name).ok().flatten();
                    self.set_aside(seq, &alert, (retry, Some(until)), &mut cursor)
                        .await;
                } else if !self.idle(Some(until)).await {
                    return;
                }
                continue;
            }
            self.head_wait = None;
            let done = if self.wants(&alert) {
                let prior = self.outbox.retry_state(&self.spec.name).ok().flatten();
                match self.deliver(seq, &alert, prior, false).await {
                    Tried::Done => true,
                    Tried::Retry { state, until } => {
                        if let Err(e) = self.outbox.set_retry_state(&self.spec.name, &state) {
                            tracing::warn!(sink = %self.spec.name, error = %e, "cannot save the retry state");
                        }
                        if self.may_set_aside(seq, &alert) {
                            let retry = (Some(state), Some(until));
                            self.set_aside(seq, &alert, retry, &mut cursor).await;
                        } else {
                            self.head_wait = Some((seq, until));
                        }
                        false
                    }
                    Tried::Stopped => return, // it stays at the head for the next start
                }
            } else {
                DeliverySkipped {
                    counters: &self.stats,
                }
                .emit();
                true
            };
            if !done {
                continue;
            }
            cursor = Some(seq);
            let _ = self.cursor.send(cursor);
            if let Err(e) = self.outbox.advance(&self.spec.name, seq) {
                tracing::error!(sink = %self.spec.name, error = %e, "cannot record a delivery; it may be sent again");
            }
        }
    }

    /// Waits for new alerts, at most until `until` (the head's backoff),
    /// the next set-aside retry or a second (the outbox is read again
    /// then), re-posting on schedule meanwhile: false at shutdown.
    pub(crate) async fn idle(&mut self, until: Option<tokio::time::Instant>) -> bool {
        let second = tokio::time::Instant::now() + Duration::from_secs(1);
        let until = [until, self.aside.earliest(), Some(second)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(second);
        let notify = Arc::clone(&self.notify);
        let notified = notify.notified();
        tokio::pin!(notified);
        loop {
            let repost = self.repost_due_at().filter(|at| *at < until);
            tokio::select! {
                _ = &mut notified => return true,
                _ = tokio::time::sleep_until(until) => return true,
                _ = tokio::time::sleep_until(repost.unwrap_or(until)), if repost.is_some() => {
                    self.repost_if_due().await;
                }
                _ = self.shutdown.changed() => return false,
            }
        }
    }

    /// A failed read of the outbox: an alert that cannot be read is passed
    /// over (it would stop this sink for good: a downgrade, a damaged
    /// record) and the cursor moves past it; anything else is logged and
    /// read again after the wait.
    fn unreadable(&self, error: StoreError, cursor: &mut Option<u64>) {
        let StoreError::UnreadableAlert { seq, detail } = error else {
            tracing::error!(sink = %self.spec.name, error = %error, "cannot read the outbox");
            return;
        };
        self.pass_over(seq, &detail);
        *cursor = Some(seq);
        let _ = self.cursor.send(*cursor);
        if let Err(e) = self.outbox.advance(&self.spec.name, seq) {
            tracing::error!(sink = %self.spec.name, error = %e, "cannot record passing over an unreadable alert");
        }
    }

    pub(crate) fn pass_over(&self, seq: u64, detail: &str) {
        DeliveryUnreadable {
            sink: &self.spec.name,
            counters: &self.stats,
            seq,
            detail,
        }
        .emit();
    }

    /// One try at `alert` (`seq`), whose failures so far are `prior` (if
    /// it is the alert's): delivered, dead (permanent, or failing past the
    /// retry horizon) or to be tried again. `set_aside`: it is a set-aside
    /// alert, whose dead letter replaces its record.
    pub(crate) async fn deliver(
        &mut self,
        seq: u64,
        alert: &Alert,
        prior: Option<RetryState>,
        set_aside: bool,
    ) -> Tried {
        if let Some(until) = self.pause_until.take()
            && !self.wait_until(until).await
        {
            return Tried::Stopped;
        }
        // A request in flight when the grace period ends is given up (the
        // cursor has not moved: it is sent again at the next start), so
        // that a receiver slow to answer cannot hold the shutdown for its
        // whole timeout, hop after hop.
        let mut shutdown = self.shutdown.clone();
        let attempt = tokio::select! {
            attempt = self.attempt(alert) => attempt,
            _ = shutdown.changed() => return Tried::Stopped,
        };
        let (reason, after, permanent) = match attempt {
            Ok(answer) => {
                self.failing.remove(&seq);
                self.delivered_since_set_aside = true;
                self.delivered(seq, alert, answer);
                return Tried::Done;
            }
            Err(Failure::Retry { reason, after }) => (reason, after, false),
            Err(Failure::Permanent { reason }) => (reason, None, true),
        };
        // The receiver's wait (`Retry-After`, a rate limit's reset) holds
        // the sink, not only this alert: the next incident's alert, a
        // set-aside one or a re-queued letter went to the same receiver at
        // once, into the window it had asked to be left alone in (four
        // 429s within 6 ms after `alerts retry`).
        if let Some(after) = after {
            let until = tokio::time::Instant::now() + after;
            self.pause_until = Some(self.pause_until.map_or(until, |p| p.max(until)));
        }
        let mut state = match prior {
            Some(state) if state.seq == seq => state,
            _ => RetryState {
                seq,
                attempts: 0,
                first_failure_ms: self.clock.now_us() / 1000,
                last_error: String::new(),
                failing_ms: 0,
            },
        };
        state.attempts = state.attempts.saturating_add(1);
        state.last_error = reason.clone();
        let failing = *self.failing.entry(seq).or_insert(Failing {
            since: tokio::time::Instant::now(),
            before_ms: state.failing_ms,
        });
        let failing_for = failing.elapsed();
        state.failing_ms = u64::try_from(failing_for.as_millis()).unwrap_or(u64::MAX);
        if permanent || failing_for >= self.spec.retry.horizon {
            let why = if permanent {
                reason
            } else {
                format!(
                    "{reason} (still failing after {} attempts over {failing_for:?})",
                    state.attempts
                )
            };
            if self.dead(seq, alert, why, state.attempts, set_aside) {
                self.failing.remove(&seq);
                return Tried::Done;
            }
            // The dead letter could not be stored: the alert is tried
            // again, after the longest backoff, not at once in a loop.
            let until = tokio::time::Instant::now() + self.spec.retry.max_backoff;
            return Tried::Retry { state, until };
        }
        let wait = backoff(&self.spec.retry, state.attempts, after);
        DeliveryRetried {
            sink: &self.spec.name,
            counters: &self.stats,
            alert: &alert.id,
            attempt: state.attempts,
            reason: &reason,
            retry_in: wait,
        }
        .emit();
        let until = tokio::time::Instant::now() + wait;
        Tried::Retry { state, until }
    }

    /// Waits until `until` (the receiver's pause), re-posting the open
    /// Alertmanager alerts on their schedule meanwhile: false at shutdown.
    /// Waiting in silence, an hour's `Retry-After` let every open alert
    /// reach its `endsAt`, and Alertmanager resolved outages still going
    /// on. A re-post goes out even while the receiver asked for a pause:
    /// it is one small idempotent request per `repeat`, and without it the
    /// receiver is told something false.
    async fn wait_until(&mut self, until: tokio::time::Instant) -> bool {
        loop {
            let repost = self.repost_due_at().filter(|at| *at < until);
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return true,
                _ = tokio::time::sleep_until(repost.unwrap_or(until)), if repost.is_some() => {
                    self.repost_if_due().await;
                }
                _ = self.shutdown.changed() => return false,
            }
        }
    }
}

impl SinkRun {
    /// One try at delivering `alert`: a line written, or a request answered.
    async fn attempt(&mut self, alert: &Alert) -> Result<Answer, Failure> {
        match &self.lines {
            Some(lines) => {
                let written =
                    super::sink::write_line(&self.spec.name, Arc::clone(lines), alert.clone())
                        .await;
                if let (Err(reason), Some(failed)) = (&written, &self.stdout_failed) {
                    let _ = failed.set(reason.clone());
                }
                written
                    .map(|()| Answer {
                        status: 0,
                        text: String::new(),
                        pause: None,
                    })
                    .map_err(|reason| Failure::Retry {
                        reason,
                        after: None,
                    })
            }
            None => {
                let (outgoing, client) = self.prepare(alert)?;
                http::send(&client, &outgoing, self.clock.as_ref()).await
            }
        }
    }

    /// After a delivery: the receiver's pause honoured, the alert
    /// remembered (Alertmanager), the incident's older dead letters marked
    /// superseded (a receiver that keeps incidents now holds a newer
    /// state), the event counted.
    fn delivered(&mut self, seq: u64, alert: &Alert, answer: Answer) {
        if let Some(pause) = answer.pause {
            tracing::info!(sink = %self.spec.name, pause_ms = pause.as_millis() as u64, "the receiver's rate limit is used up; pausing this sink");
            self.pause_until = Some(tokio::time::Instant::now() + pause);
        }
        self.remember(alert);
        if self.is_stateful() && alert.state != TransitionKind::Firing {
            let by = Superseded {
                seq,
                state: alert.state.as_str().to_owned(),
            };
            let marked = self
                .outbox
                .supersede_dead(&self.spec.name, &by, |a| a.id == alert.id);
            if let Err(e) = marked {
                tracing::warn!(sink = %self.spec.name, error = %e, "cannot mark the incident's dead letters superseded");
            }
        }
        Delivered {
            sink: &self.spec.name,
            counters: &self.stats,
            alert: &alert.id,
            state: &alert.state,
            logged: self.lines.is_none(),
        }
        .emit();
    }

    /// Keeps `alert` as a dead letter with `why` (a set-aside one in place
    /// of its record, in one write): true to move on, false to retry when
    /// the dead letter cannot be stored.
    fn dead(&self, seq: u64, alert: &Alert, why: String, attempts: u32, set_aside: bool) -> bool {
        let letter = DeadLetter {
            sink: self.spec.name.clone(),
            seq,
            alert: alert.clone(),
            reason: why.clone(),
            attempts,
            failed_at: self
                .now()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            superseded_by: None,
        };
        let stored = if set_aside {
            self.outbox.set_aside_dead(&self.spec.name, &letter)
        } else {
            self.outbox.add_dead_letter(&letter)
        };
        if let Err(e) = stored {
            tracing::error!(sink = %self.spec.name, error = %e, "cannot store a dead letter; retrying instead");
            return false;
        }
        if alert.state == TransitionKind::Resolved {
            // Stop re-posting it: left alone, Alertmanager lets it
            // expire at its `endsAt`.
            if let Err(e) = self.outbox.remove_open_alert(&self.spec.name, &alert.id) {
                tracing::error!(sink = %self.spec.name, error = %e, alert = %alert.id, "cannot forget a resolved alert's firing: it may be re-posted as firing until the store takes the change");
            }
        }
        DeliveryDead {
            sink: &self.spec.name,
            counters: &self.stats,
            alert: &alert.id,
            reason: &why,
        }
        .emit();
        true
    }

    /// The sink's wall clock, as a time.
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now_utc()
    }

    /// The filter picks which incidents a sink takes; one it has taken
    /// (open there) gets every later transition, whatever the filter says
    /// now. A filter changed during an incident dropped its `resolved`,
    /// and PagerDuty, Opsgenie and Alertmanager held it open for good
    /// (Alertmanager: re-posted as firing two days later).
    pub(crate) fn wants(&self, alert: &Alert) -> bool {
        if self.spec.filter.accepts(alert) {
            return true;
        }
        alert.state != TransitionKind::Firing
            && self
                .outbox
                .is_open(&self.spec.name, &alert.id)
                .unwrap_or_else(|e| {
                    tracing::warn!(sink = %self.spec.name, error = %e, "cannot read the open incidents; the filter alone decides");
                    false
                })
    }

    /// A receiver that keeps incidents open until told they are resolved.
    pub(crate) fn is_stateful(&self) -> bool {
        self.hook().is_some_and(|h| h.format.is_stateful())
    }

    pub(crate) fn hook(&self) -> Option<&Webhook> {
        match &self.spec.target {
            Target::Webhook(hook) => Some(hook),
            Target::Lines(_) => None,
        }
    }

    /// The request for `alert` in the sink's format, and how to send it.
    fn prepare(&self, alert: &Alert) -> Result<(Outgoing, reqwest::Client), Failure> {
        let (Some(hook), Some(client)) = (self.hook(), &self.client) else {
            return Err(Failure::Permanent {
                reason: "not a webhook".into(),
            });
        };
        let alerts =
            (hook.format == Format::Alertmanager).then(|| self.alertmanager_alerts(hook, alert));
        let outgoing = super::webhook::request(hook, alert, alerts, self.clock.as_ref())?;
        Ok((outgoing, client.clone()))
    }

    /// What an Alertmanager sink posts for `alert`: the alert, and the
    /// incident's previous alert ended when its labels (its severity)
    /// changed, so the old one does not linger until it expires.
    fn alertmanager_alerts(&self, hook: &Webhook, alert: &Alert) -> Vec<serde_json::Value> {
        let previous = self
            .outbox
            .open_alerts(&self.spec.name)
            .unwrap_or_default()
            .into_iter()
            .find(|a| a.id == alert.id);
        paging::alertmanager_batch(
            alert,
            previous.as_ref(),
            hook.alertmanager_ttl(),
            self.now(),
        )
    }

    /// After a delivery: a webhook sink keeps the incidents open at its
    /// receiver (Alertmanager re-posts them; every sink gets their later
    /// transitions, see [`SinkRun::wants`]) and forgets resolved ones.
    fn remember(&self, alert: &Alert) {
        if self.hook().is_none() {
            return;
        }
        let result = match alert.state {
            TransitionKind::Resolved => self.outbox.remove_open_alert(&self.spec.name, &alert.id),
            _ => self
                .outbox
                .set_open_alert(&self.spec.name, &alert.id, alert),
        };
        if let Err(e) = result {
            tracing::warn!(sink = %self.spec.name, error = %e, "cannot save the incidents open at the receiver");
        }
    }
}
