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
//! open alerts every `repeat` so they do not expire while firing. What
//! cannot be delivered becomes a dead letter with its reason (`outagewatch alerts dead`, `alerts retry`). A
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
use super::http::{self, Failure};
use super::outbox::Outbox;
pub use super::ratelimit::RetryPolicy;
use super::sink::{AlertSink, JsonLines, SinkError};
use super::task::SinkRun;
pub use super::webhook::Webhook;
use crate::detect::Severity;
use crate::state::StoreError;
use crate::wall::{Clock, SharedClock};

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
        let severity = self.min_severity.is_none_or(|min| alert.severity >= min);
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
    /// Alerts still waiting in the outbox for this sink.
    pub pending: usize,
}

/// Reads the sinks' counters and outbox depth (see [`Delivery::probe`]).
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
    /// The sink's cursor: the last alert it is done with, if any.
    cursor: watch::Receiver<Option<u64>>,
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
    /// Starts one task per sink. `clock` is the wall clock of the retry
    /// horizon, dead letters and the receivers' rate limits
    /// ([`crate::wall::system`] outside tests).
    pub fn start(
        specs: Vec<SinkSpec>,
        outbox: Outbox,
        clock: SharedClock,
    ) -> Result<Delivery, DeliveryError> {
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
                    if !http::is_http_url(&hook.url) {
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
                clock: Arc::clone(&clock),
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
        // `None < Some(_)`: with nothing in the outbox, every cursor is
        // caught up.
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
/// `clock` is the wall clock of the request's signature and rate limits.
pub async fn send_test(
    spec: &SinkSpec,
    alert: &Alert,
    clock: &dyn Clock,
) -> Result<String, String> {
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
            let outgoing = super::webhook::request(hook, alert, None, clock)
                .map_err(|f| f.reason().to_owned())?;
            match http::send(&client, &outgoing, clock).await {
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

    /// A webhook that never answers: retried with growing waits on the
    /// sink's clock, then a dead letter once the retry horizon has passed,
    /// not before. Ten minutes of retrying run on paused tokio time.
    #[tokio::test(start_paused = true)]
    async fn a_failing_webhook_becomes_a_dead_letter_at_the_horizon() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::state::SledStore::open(dir.path()).expect("store");
        let outbox = store.outbox();
        let t0 = 1_800_000_000_000_000;
        let clock: SharedClock = Arc::new(crate::wall::TokioClock::starting_at(t0));
        let hook = Webhook {
            // Nothing listens on port 1.
            url: "http://127.0.0.1:1/hook".into(),
            format: crate::alert::format::Format::Json,
            secret: None,
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            headers: Vec::new(),
            key: None,
            follow_redirects: false,
            repeat: Duration::from_secs(60),
        };
        let spec = SinkSpec {
            name: "hook".into(),
            target: Target::Webhook(hook),
            filter: Filter::default(),
            retry: RetryPolicy {
                horizon: Duration::from_secs(600),
                min_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(60),
            },
        };
        let alert = Alert::source_health(
            "bluesky",
            crate::detect::TransitionKind::Firing,
            t0,
            t0,
            "silent".into(),
        );
        let delivery = Delivery::start(vec![spec], outbox.clone(), clock).expect("starts");
        delivery.append(&alert).expect("appended");
        let start = tokio::time::Instant::now();
        tokio::time::sleep_until(start + Duration::from_secs(9 * 60)).await;
        assert!(
            outbox.dead_letters().expect("read").is_empty(),
            "9 min: still retrying"
        );
        let retries = delivery.reports()[0].retries;
        assert!(
            retries >= 5,
            "backoff grows to a minute: {retries} retries in 9 min"
        );
        tokio::time::sleep_until(start + Duration::from_secs(12 * 60)).await;
        let dead = outbox.dead_letters().expect("read");
        assert_eq!(dead.len(), 1, "dead after the 10 min horizon");
        assert!(
            dead[0].reason.contains("still failing after"),
            "{}",
            dead[0].reason
        );
        assert!(
            dead[0].failed_at.starts_with("2027-01-15T08:"),
            "on the sink's clock: {}",
            dead[0].failed_at
        );
        let (_, reports) = delivery.stop(Duration::ZERO).await;
        assert_eq!(reports[0].dead, 1);
    }
}
