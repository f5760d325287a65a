//! Delivery: one task per sink, each reading the outbox from its own
//! cursor, in order, at least once.
//!
//! A sink is a JSON-lines file (or stdout) or a webhook (`json`, `slack` or
//! `discord` payload, optionally signed). A failed webhook request is
//! retried with exponential backoff and jitter, honouring `Retry-After`,
//! until it succeeds or the retry horizon (24 h) passes; a 4xx other than
//! 408 and 429 is final at once. What cannot be delivered becomes a dead
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

use rand::RngExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::Alert;
use super::format::{self, Format};
use super::outbox::{DeadLetter, Outbox, RetryState};
use super::sign;
use super::sink::{AlertSink, JsonLines, SinkError};
use crate::detect::Severity;
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
    #[error("sink {sink:?}: {url:?} is not an http(s) URL")]
    BadUrl { sink: String, url: String },
    #[error("two sinks are named {0:?}")]
    DuplicateName(String),
}

/// Where a sink sends alerts.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// JSON lines appended to a file, or stdout (`None`).
    Lines(Option<PathBuf>),
    Webhook {
        url: String,
        format: Format,
        /// Signs every request when set (see [`sign`]).
        secret: Option<String>,
        timeout: Duration,
    },
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

/// How long and how often to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// After this long failing, an alert becomes a dead letter.
    pub horizon: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            horizon: Duration::from_secs(24 * 3600),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
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

/// Reads the sinks' counters and outbox depth (see [`Delivery::probe`]).
#[derive(Clone)]
pub struct SinkProbe {
    sinks: Vec<(String, Arc<SinkStats>, watch::Receiver<u64>)>,
    outbox: Outbox,
}

impl SinkProbe {
    pub fn reports(&self) -> Vec<SinkReport> {
        self.sinks
            .iter()
            .map(|(name, stats, cursor)| {
                let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
                SinkReport {
                    name: name.clone(),
                    delivered: load(&stats.delivered),
                    retries: load(&stats.retries),
                    dead: load(&stats.dead),
                    pending: self.outbox.depth(name, *cursor.borrow()).unwrap_or(0),
                }
            })
            .collect()
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }
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

/// Why one attempt failed.
enum Failure {
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Permanent {
        reason: String,
    },
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
        let client = http_client()?;
        let notify = Arc::new(Notify::new());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut workers = Vec::new();
        for spec in specs {
            if let Target::Webhook { url, .. } = &spec.target {
                let ok = reqwest::Url::parse(url)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
                if !ok {
                    return Err(DeliveryError::BadUrl {
                        sink: spec.name.clone(),
                        url: url.clone(),
                    });
                }
            }
            let start = outbox.cursor(&spec.name, &names)?;
            let (cursor_tx, cursor) = watch::channel(start);
            let stats = Arc::new(SinkStats::default());
            let lines = match &spec.target {
                Target::Lines(Some(path)) => Some(JsonLines::file(path)?),
                Target::Lines(None) => Some(JsonLines::stdout()),
                Target::Webhook { .. } => None,
            };
            let run = SinkRun {
                spec: spec.clone(),
                all: names.clone(),
                outbox: outbox.clone(),
                client: client.clone(),
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
        self.probe().reports()
    }

    /// A handle that reads the sinks' counters from elsewhere (the HTTP
    /// status API and the metrics), after the sinks have stopped too.
    pub fn probe(&self) -> SinkProbe {
        SinkProbe {
            sinks: self
                .workers
                .iter()
                .map(|w| (w.name.clone(), Arc::clone(&w.stats), w.cursor.clone()))
                .collect(),
            outbox: self.outbox.clone(),
        }
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

/// Sends one test alert to a sink directly (not through the outbox) and
/// says how it went: `outagewatch alerts test`.
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
        Target::Webhook { .. } => {
            let client = http_client().map_err(|e| e.to_string())?;
            match post(&client, spec, alert).await {
                Ok(status) => Ok(format!("delivered (HTTP {status})")),
                Err(Failure::Retry { reason, .. }) => Err(format!("{reason} (would be retried)")),
                Err(Failure::Permanent { reason }) => {
                    Err(format!("{reason} (would be a dead letter)"))
                }
            }
        }
    }
}

fn http_client() -> Result<reqwest::Client, DeliveryError> {
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured((*crate::tls::client_config()?).clone())
        .user_agent(concat!("outagewatch/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// One sink's task.
struct SinkRun {
    spec: SinkSpec,
    all: Vec<String>,
    outbox: Outbox,
    client: reqwest::Client,
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
        let attempt = match &mut self.lines {
            Some(lines) => lines.send(alert).map(|_| 0).map_err(|e| Failure::Retry {
                reason: e.to_string(),
                after: None,
            }),
            None => post(&self.client, &self.spec, alert).await,
        };
        let (reason, after, permanent) = match attempt {
            Ok(_) => {
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

/// Exponential backoff with jitter, at least what `Retry-After` asked (up
/// to an hour).
fn backoff(policy: &RetryPolicy, attempts: u32, retry_after: Option<Duration>) -> Duration {
    let exp = policy
        .min_backoff
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
        .min(policy.max_backoff);
    let jitter = rand::rng().random_range(0.5..=1.0);
    let wait = exp.mul_f64(jitter).max(policy.min_backoff / 2);
    match retry_after {
        Some(asked) => wait.max(asked.min(Duration::from_secs(3600))),
        None => wait,
    }
}

/// One POST. `Ok(status)` on 2xx.
async fn post(client: &reqwest::Client, spec: &SinkSpec, alert: &Alert) -> Result<u16, Failure> {
    let Target::Webhook {
        url,
        format,
        secret,
        timeout,
    } = &spec.target
    else {
        return Err(Failure::Permanent {
            reason: "not a webhook".into(),
        });
    };
    let body = format::body(alert, *format).map_err(|e| Failure::Permanent {
        reason: format!("cannot encode the alert: {e}"),
    })?;
    let mut request = client
        .post(url)
        .timeout(*timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            "idempotency-key",
            format!("{}:{}", alert.id, alert.sequence),
        );
    if let Some(secret) = secret {
        let timestamp = chrono::Utc::now().timestamp();
        request = request
            .header(sign::TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                sign::SIGNATURE_HEADER,
                sign::signature(secret.as_bytes(), timestamp, &body),
            );
    }
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|e| Failure::Retry {
            reason: if e.is_timeout() {
                format!("timed out after {timeout:?}")
            } else {
                format!("cannot reach {url}: {e}")
            },
            after: None,
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let text: String = response
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    let reason = format!(
        "HTTP {status}{}",
        if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        }
    );
    if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
        Err(Failure::Retry {
            reason,
            after: retry_after,
        })
    } else {
        Err(Failure::Permanent { reason })
    }
}

/// `Retry-After`: seconds, or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    let secs = (when.timestamp() - chrono::Utc::now().timestamp()).max(0);
    Some(Duration::from_secs(secs as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let policy = RetryPolicy {
            horizon: Duration::from_secs(60),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        };
        for attempts in 1..12 {
            let wait = backoff(&policy, attempts, None);
            let full = Duration::from_secs(1 << (attempts - 1).min(20)).min(policy.max_backoff);
            assert!(
                wait <= full && wait >= full / 2,
                "attempt {attempts}: {wait:?}"
            );
        }
        assert_eq!(
            backoff(&policy, 1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn filters_by_service_and_severity() {
        let alert = super::format::sample_alert();
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
