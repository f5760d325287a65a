//! Delivery: one task per sink, each reading the outbox from its own
//! cursor, in order, at least once.
//!
//! A sink is a JSON-lines file (or stdout) or a webhook (see [`Webhook`]:
//! `json`, `slack`, `discord`, `pagerduty`, `opsgenie` or `alertmanager`,
//! optionally signed). A failed webhook request is retried with
//! exponential backoff and jitter, honouring the receiver's rate limit (see
//! [`super::ratelimit`]), until it succeeds or the retry horizon (24 h)
//! passes; a 4xx other than 408 and 429, and a redirect not followed, are
//! final at once (see [`super::http`]). An Alertmanager sink re-posts its
//! open alerts every `repeat` so they do not expire while firing. What cannot be delivered becomes a dead
//! letter with its reason (`outagewatch alerts dead`, `alerts retry`). A
//! sink delivers in outbox order and moves on only once an alert is
//! delivered or dead, so a `resolved` never overtakes its `firing`; each
//! sink has its own task and cursor, so one sink's troubles never delay
//! another, and the backlog lives on disk, not in memory. Every request
//! carries `Idempotency-Key: ID:SEQUENCE`, the same on every retry.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::Alert;
use super::format::Format;
use super::http::{self, Answer, Failure, Outgoing};
use super::outbox::{DeadLetter, Outbox, RetryState};
use super::paging;
pub use super::ratelimit::RetryPolicy;
use super::ratelimit::backoff;
use super::sink::{AlertSink, JsonLines, SinkError};
pub use super::webhook::Webhook;
use crate::detect::{Severity, TransitionKind};
use crate::window::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("alert outbox: {0}")]
    Outbox(#[from] StoreError),
    #[error("cannot set up TLS for webhooks: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The URL is shown redacted.
    #[error("sink {sink:?}: {url} is not an http(s) URL")]
    BadUrl { sink: String, url: String },
    #[error("two sinks are named {0:?}")]
    DuplicateName(String),
}

/// Where a sink sends alerts.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// JSON lines appended to a file, or stdout (`None`).
    Lines(Option<PathBuf>),
    Webhook(Webhook),
}

/// Which alerts a sink wants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// Only these services (empty: all).
    #[serde(default)]
    pub services: Vec<String>,
    /// Only alerts at least this severe.
    #[serde(default)]
    pub min_severity: Option<Severity>,
}

impl Filter {
    pub fn accepts(&self, alert: &Alert) -> bool {
        let service = self.services.is_empty() || self.services.contains(&alert.service);
        let severity = self.min_severity.is_none_or(|min| {
            let level = match alert.severity.as_str() {
                "high" => Severity::High,
                "medium" => Severity::Medium,
                _ => Severity::Low,
            };
            level >= min
        });
        service && severity
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SinkSpec {
    pub name: String,
    pub target: Target,
    pub filter: Filter,
    pub retry: RetryPolicy,
}

/// Counters of one sink.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub delivered: AtomicU64,
    pub retries: AtomicU64,
    pub dead: AtomicU64,
    pub skipped: AtomicU64,
}

/// A snapshot of one sink, for logs and summaries.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkReport {
    pub name: String,
    pub delivered: u64,
    pub retries: u64,
    pub dead: u64,
    /// Alerts still waiting in the outbox for this sink.
    pub pending: usize,
}

struct Worker {
    name: String,
    task: JoinHandle<()>,
    cursor: watch::Receiver<u64>,
    stats: Arc<SinkStats>,
}

/// The running sinks.
pub struct Delivery {
    workers: Vec<Worker>,
    outbox: Outbox,
    notify: Arc<Notify>,
    shutdown: watch::Sender<bool>,
}

impl Delivery {
    /// Starts one task per sink on the current tokio runtime.
    pub fn start(specs: Vec<SinkSpec>, outbox: Outbox) -> Result<Delivery, DeliveryError> {
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(DeliveryError::DuplicateName(name.clone()));
            }
        }
        let notify = Arc::new(Notify::new());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut workers = Vec::new();
        for spec in specs {
            let client = match &spec.target {
                Target::Webhook(hook) => {
                    let ok = reqwest::Url::parse(&hook.url)
                        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
                    if !ok {
                        return Err(DeliveryError::BadUrl {
                            sink: spec.name.clone(),
                            url: http::redact(&hook.url),
                        });
                    }
                    // A client per sink: its own connections and timeouts.
                    Some(http::client(hook.connect_timeout)?)
                }
                Target::Lines(_) => None,
            };
            let start = outbox.cursor(&spec.name, &names)?;
            let (cursor_tx, cursor) = watch::channel(start);
            let stats = Arc::new(SinkStats::default());
            let lines = match &spec.target {
                Target::Lines(Some(path)) => Some(JsonLines::file(path)?),
                Target::Lines(None) => Some(JsonLines::stdout()),
                Target::Webhook(_) => None,
            };
            let run = SinkRun {
                spec: spec.clone(),
                all: names.clone(),
                outbox: outbox.clone(),
                client,
                pause_until: None,
                reposted: tokio::time::Instant::now(),
                lines,
                stats: Arc::clone(&stats),
                notify: Arc::clone(&notify),
                shutdown: shutdown_rx.clone(),
                cursor: cursor_tx,
            };
            workers.push(Worker {
                name: spec.name,
                task: tokio::spawn(run.run(start)),
                cursor,
                stats,
            });
        }
        Ok(Delivery {
            workers,
            outbox,
            notify,
            shutdown,
        })
    }

    /// New alerts are in the outbox.
    pub fn notify(&self) {
        self.notify.notify_waiters();
    }

    /// A handle to say "new alerts" from another thread.
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }

    /// Writes an alert that does not come from the pipeline (a source's
    /// health) to the outbox, so it is delivered like the others.
    pub fn append(&self, alert: &Alert) -> Result<(), DeliveryError> {
        self.outbox.append(alert)?;
        self.notify();
        Ok(())
    }

    pub fn reports(&self) -> Vec<SinkReport> {
        self.workers
            .iter()
            .map(|w| {
                let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
                SinkReport {
                    name: w.name.clone(),
                    delivered: load(&w.stats.delivered),
                    retries: load(&w.stats.retries),
                    dead: load(&w.stats.dead),
                    pending: self.outbox.depth(&w.name, *w.cursor.borrow()).unwrap_or(0),
                }
            })
            .collect()
    }

    /// Waits until every sink is done with everything in the outbox now,
    /// at most `limit`. True when it all went out (delivered or dead).
    pub async fn drain(&self, limit: Duration) -> bool {
        let Ok(target) = self.outbox.last_seq() else {
            return false;
        };
        self.notify();
        let all = async {
            for worker in &self.workers {
                let mut cursor = worker.cursor.clone();
                loop {
                    let caught_up = *cursor.borrow() >= target
                        && self
                            .outbox
                            .next_requeued(&worker.name)
                            .ok()
                            .flatten()
                            .is_none();
                    if caught_up || worker.task.is_finished() {
                        break;
                    }
                    tokio::select! {
                        changed = cursor.changed() => if changed.is_err() { break },
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        };
        tokio::time::timeout(limit, all).await.is_ok()
    }

    /// Gives deliveries at most `grace` to finish, then stops every sink.
    /// What is left stays in the outbox for the next start.
    pub async fn stop(self, grace: Duration) -> (bool, Vec<SinkReport>) {
        let drained = self.drain(grace).await;
        let reports = self.reports();
        let _ = self.shutdown.send(true);
        for worker in self.workers {
            let _ = worker.task.await;
        }
        let _ = self.outbox.flush();
        (drained, reports)
    }
}

/// Sends one alert to a sink directly (not through the outbox) and says
/// how it went, with the receiver's answer: `outagewatch alerts test`.
pub async fn send_test(spec: &SinkSpec, alert: &Alert) -> Result<String, String> {
    match &spec.target {
        Target::Lines(path) => {
            let mut lines = match path {
                Some(path) => JsonLines::file(path).map_err(|e| e.to_string())?,
                None => JsonLines::stdout(),
            };
            lines.send(alert).map_err(|e| e.to_string())?;
            Ok("written".into())
        }
        Target::Webhook(hook) => {
            let client = http::client(hook.connect_timeout).map_err(|e| e.to_string())?;
            let outgoing =
                super::webhook::request(hook, alert, None).map_err(|f| f.reason().to_owned())?;
            match http::send(&client, &outgoing, hook.timeout, hook.follow_redirects).await {
                Ok(answer) => Ok(format!(
                    "delivered (HTTP {}){}",
                    answer.status,
                    if answer.text.is_empty() {
                        String::new()
                    } else {
                        format!("; the receiver answered: {}", answer.text)
                    }
                )),
                Err(Failure::Retry { reason, .. }) => Err(format!("{reason} (would be retried)")),
                Err(Failure::Permanent { reason }) => {
                    Err(format!("{reason} (would be a dead letter)"))
                }
            }
        }
    }
}

/// One sink's task.
struct SinkRun {
    spec: SinkSpec,
    all: Vec<String>,
    outbox: Outbox,
    /// `None` for a JSON-lines sink.
    client: Option<reqwest::Client>,
    /// The receiver's rate limit asked for a pause before the next request.
    pause_until: Option<tokio::time::Instant>,
    /// When an Alertmanager sink last re-posted its open alerts.
    reposted: tokio::time::Instant,
    lines: Option<JsonLines>,
    stats: Arc<SinkStats>,
    notify: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
    cursor: watch::Sender<u64>,
}

impl SinkRun {
    async fn run(mut self, mut cursor: u64) {
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            // Re-queued dead letters first, then the outbox in order.
            let next = match self.outbox.next_requeued(&self.spec.name) {
                Ok(Some((seq, alert))) => Some((seq, alert, true)),
                Ok(None) => match self.outbox.next_after(cursor) {
                    Ok(found) => found.map(|(seq, alert)| (seq, alert, false)),
                    Err(e) => {
                        tracing::error!(sink = %self.spec.name, error = %e, "cannot read the outbox");
                        None
                    }
                },
                Err(e) => {
                    tracing::error!(sink = %self.spec.name, error = %e, "cannot read the outbox");
                    None
                }
            };
            let Some((seq, alert, requeued)) = next else {
                self.repost_if_due().await;
                let notified = self.notify.notified();
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = self.shutdown.changed() => return,
                }
                continue;
            };
            let done = if self.spec.filter.accepts(&alert) {
                match self.deliver(seq, &alert).await {
                    Some(done) => done,
                    None => return, // shutdown while waiting to retry
                }
            } else {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                true
            };
            if !done {
                continue;
            }
            let result = if requeued {
                self.outbox.remove_requeued(&self.spec.name, seq)
            } else {
                cursor = seq;
                let _ = self.cursor.send(seq);
                self.outbox.advance(&self.spec.name, seq, &self.all)
            };
            if let Err(e) = result {
                tracing::error!(sink = %self.spec.name, error = %e, "cannot record a delivery; it may be sent again");
            }
        }
    }

    /// Tries `alert` until it is delivered or dead. `Some(true)`: move on;
    /// `None`: shutting down (it stays at the head for the next start).
    async fn deliver(&mut self, seq: u64, alert: &Alert) -> Option<bool> {
        if let Some(until) = self.pause_until.take() {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = self.shutdown.changed() => return None,
            }
        }
        let attempt = match &mut self.lines {
            Some(lines) => lines
                .send(alert)
                .map(|_| Answer {
                    status: 0,
                    text: String::new(),
                    pause: None,
                })
                .map_err(|e| Failure::Retry {
                    reason: e.to_string(),
                    after: None,
                }),
            None => match self.prepare(alert) {
                Ok((outgoing, client, hook)) => {
                    http::send(&client, &outgoing, hook.timeout, hook.follow_redirects).await
                }
                Err(failure) => Err(failure),
            },
        };
        let (reason, after, permanent) = match attempt {
            Ok(answer) => {
                if let Some(pause) = answer.pause {
                    tracing::info!(sink = %self.spec.name, pause_ms = pause.as_millis() as u64, "the receiver's rate limit is used up; pausing this sink");
                    self.pause_until = Some(tokio::time::Instant::now() + pause);
                }
                self.remember(alert);
                let delivered = self.stats.delivered.fetch_add(1, Ordering::Relaxed) + 1;
                if self.lines.is_none() {
                    tracing::info!(sink = %self.spec.name, alert = %alert.id, state = ?alert.state, delivered, "alert delivered");
                }
                return Some(true);
            }
            Err(Failure::Retry { reason, after }) => (reason, after, false),
            Err(Failure::Permanent { reason }) => (reason, None, true),
        };
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut state = match self.outbox.retry_state(&self.spec.name) {
            Ok(Some(state)) if state.seq == seq => state,
            _ => RetryState {
                seq,
                attempts: 0,
                first_failure_ms: now_ms,
                last_error: String::new(),
            },
        };
        state.attempts += 1;
        state.last_error = reason.clone();
        let failing_for = Duration::from_millis((now_ms - state.first_failure_ms).max(0) as u64);
        if permanent || failing_for >= self.spec.retry.horizon {
            let why = if permanent {
                reason
            } else {
                format!(
                    "{reason} (still failing after {} attempts over {failing_for:?})",
                    state.attempts
                )
            };
            let letter = DeadLetter {
                sink: self.spec.name.clone(),
                seq,
                alert: alert.clone(),
                reason: why.clone(),
                attempts: state.attempts,
                failed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            };
            if let Err(e) = self.outbox.add_dead_letter(&letter) {
                tracing::error!(sink = %self.spec.name, error = %e, "cannot store a dead letter; retrying instead");
                return Some(false);
            }
            let dead = self.stats.dead.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(sink = %self.spec.name, alert = %alert.id, reason = %why, dead_letters = dead, "alert not deliverable: kept as a dead letter (outagewatch alerts dead)");
            return Some(true);
        }
        if let Err(e) = self.outbox.set_retry_state(&self.spec.name, &state) {
            tracing::warn!(sink = %self.spec.name, error = %e, "cannot save the retry state");
        }
        let wait = backoff(&self.spec.retry, state.attempts, after);
        let retries = self.stats.retries.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(sink = %self.spec.name, alert = %alert.id, attempt = state.attempts, reason = %reason, retry_in_ms = wait.as_millis() as u64, retries, "delivery failed; will retry");
        tokio::select! {
            _ = tokio::time::sleep(wait) => Some(false),
            _ = self.shutdown.changed() => None,
        }
    }
}

impl SinkRun {
    fn hook(&self) -> Option<&Webhook> {
        match &self.spec.target {
            Target::Webhook(hook) => Some(hook),
            Target::Lines(_) => None,
        }
    }

    /// The request for `alert` in the sink's format, and how to send it.
    fn prepare(&self, alert: &Alert) -> Result<(Outgoing, reqwest::Client, Webhook), Failure> {
        let (Some(hook), Some(client)) = (self.hook(), &self.client) else {
            return Err(Failure::Permanent {
                reason: "not a webhook".into(),
            });
        };
        let alerts =
            (hook.format == Format::Alertmanager).then(|| self.alertmanager_alerts(hook, alert));
        let outgoing = super::webhook::request(hook, alert, alerts)?;
        Ok((outgoing, client.clone(), hook.clone()))
    }

    /// What an Alertmanager sink posts for `alert`: the alert, and the
    /// incident's previous alert ended when its labels (its severity)
    /// changed, so the old one does not linger until it expires.
    fn alertmanager_alerts(&self, hook: &Webhook, alert: &Alert) -> Vec<serde_json::Value> {
        let now = chrono::Utc::now();
        let mut out = vec![paging::alertmanager_alert(
            alert,
            &paging::alertmanager_ends_at(alert, hook.alertmanager_ttl(), now),
        )];
        let previous = self
            .outbox
            .open_alerts(&self.spec.name)
            .unwrap_or_default()
            .into_iter()
            .find(|a| a.id == alert.id && a.severity != alert.severity);
        if let Some(previous) = previous {
            let ended = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            out.push(paging::alertmanager_alert(&previous, &ended));
        }
        out
    }

    /// After a delivery: an Alertmanager sink keeps firing alerts to
    /// re-post and forgets resolved ones.
    fn remember(&self, alert: &Alert) {
        if self.hook().is_none_or(|h| h.format != Format::Alertmanager) {
            return;
        }
        let result = match alert.state {
            TransitionKind::Resolved => self.outbox.remove_open_alert(&self.spec.name, &alert.id),
            _ => self.outbox.set_open_alert(&self.spec.name, alert),
        };
        if let Err(e) = result {
            tracing::warn!(sink = %self.spec.name, error = %e, "cannot save the open Alertmanager alerts");
        }
    }

    /// Alertmanager forgets a firing alert at its `endsAt` unless told
    /// again: re-post every open one every `repeat`.
    async fn repost_if_due(&mut self) {
        let Some(hook) = self
            .hook()
            .filter(|h| h.format == Format::Alertmanager)
            .cloned()
        else {
            return;
        };
        if self.reposted.elapsed() < hook.repeat {
            return;
        }
        self.reposted = tokio::time::Instant::now();
        let open = match self.outbox.open_alerts(&self.spec.name) {
            Ok(open) if !open.is_empty() => open,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(sink = %self.spec.name, error = %e, "cannot read the open Alertmanager alerts");
                return;
            }
        };
        let now = chrono::Utc::now();
        let alerts: Vec<serde_json::Value> = open
            .iter()
            .map(|a| {
                paging::alertmanager_alert(
                    a,
                    &paging::alertmanager_ends_at(a, hook.alertmanager_ttl(), now),
                )
            })
            .collect();
        let Some(client) = &self.client else { return };
        let sent = super::webhook::request(&hook, &open[0], Some(alerts));
        let result = match sent {
            Ok(outgoing) => {
                http::send(client, &outgoing, hook.timeout, hook.follow_redirects).await
            }
            Err(f) => Err(f),
        };
        match result {
            Ok(_) => {
                tracing::debug!(sink = %self.spec.name, open = open.len(), "re-posted the open alerts")
            }
            Err(f) => {
                tracing::warn!(sink = %self.spec.name, open = open.len(), reason = %f.reason(), "cannot re-post the open alerts; trying again later")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_service_and_severity() {
        let alert = crate::alert::format::sample_alert();
        let all = Filter::default();
        assert!(all.accepts(&alert));
        let other = Filter {
            services: vec!["github".into()],
            min_severity: None,
        };
        assert!(!other.accepts(&alert));
        let high = Filter {
            services: vec![],
            min_severity: Some(Severity::High),
        };
        assert!(!high.accepts(&alert), "a medium alert");
        let medium = Filter {
            services: vec!["discord".into()],
            min_severity: Some(Severity::Medium),
        };
        assert!(medium.accepts(&alert));
    }
}
