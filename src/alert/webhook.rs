//! Webhook delivery: POSTs each alert as JSON to every configured URL.
//!
//! Delivery runs on its own task, fed by a channel, so a slow receiver never
//! slows the pipeline. Each request has a timeout and is retried a few
//! times with exponential backoff; what still fails is logged and counted.
//! (Durable, restart-proof delivery is the outbox's job.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Alert;

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub urls: Vec<String>,
    pub timeout: Duration,
    /// Attempts per alert and URL, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubles each time.
    pub backoff: Duration,
}

impl WebhookConfig {
    pub fn new(urls: Vec<String>) -> Self {
        WebhookConfig {
            urls,
            timeout: Duration::from_secs(10),
            attempts: 4,
            backoff: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("cannot set up TLS for webhooks: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("webhook URL {url:?} is not a valid http(s) URL")]
    BadUrl { url: String },
}

/// Counters shared with whoever reports the run's summary.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
}

/// The sending side of the delivery task.
pub struct Webhooks {
    tx: mpsc::UnboundedSender<Alert>,
    task: JoinHandle<()>,
    pub stats: Arc<WebhookStats>,
}

impl Webhooks {
    /// Starts the delivery task on the current tokio runtime.
    pub fn start(config: WebhookConfig) -> Result<Webhooks, WebhookError> {
        for url in &config.urls {
            let ok = reqwest::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok {
                return Err(WebhookError::BadUrl { url: url.clone() });
            }
        }
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured((*crate::tls::client_config()?).clone())
            .timeout(config.timeout)
            .user_agent(concat!("outagewatch/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(WebhookStats::default());
        let task = tokio::spawn(deliver_all(client, config, rx, Arc::clone(&stats)));
        Ok(Webhooks { tx, task, stats })
    }

    /// Queues an alert; never blocks.
    pub fn send(&self, alert: &Alert) {
        if self.tx.send(alert.clone()).is_err() {
            tracing::error!(id = %alert.id, "webhook task has stopped; alert not queued");
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stops taking alerts and waits (at most `limit`) for the queue to drain.
    /// Returns false when the limit cut delivery short.
    pub async fn finish(self, limit: Duration) -> bool {
        drop(self.tx);
        let mut task = self.task;
        match tokio::time::timeout(limit, &mut task).await {
            Ok(_) => true,
            Err(_) => {
                task.abort();
                false
            }
        }
    }
}

async fn deliver_all(
    client: reqwest::Client,
    config: WebhookConfig,
    mut rx: mpsc::UnboundedReceiver<Alert>,
    stats: Arc<WebhookStats>,
) {
    while let Some(alert) = rx.recv().await {
        let body = match serde_json::to_vec(&alert) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(id = %alert.id, error = %e, "cannot encode alert");
                stats.failed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        for url in &config.urls {
            deliver_one(&client, &config, url, &alert.id, &body, &stats).await;
        }
    }
}

async fn deliver_one(
    client: &reqwest::Client,
    config: &WebhookConfig,
    url: &str,
    id: &str,
    body: &[u8],
    stats: &WebhookStats,
) {
    let mut wait = config.backoff;
    for attempt in 1..=config.attempts.max(1) {
        let result = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await;
        let problem = match result {
            Ok(response) if response.status().is_success() => {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(response) => format!("HTTP {}", response.status()),
            Err(e) => e.to_string(),
        };
        if attempt == config.attempts.max(1) {
            tracing::error!(%url, alert = %id, attempts = attempt, error = %problem, "webhook delivery failed");
            stats.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        tracing::warn!(%url, alert = %id, attempt, error = %problem, retry_in_ms = wait.as_millis() as u64, "webhook delivery failed; retrying");
        stats.retried.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}
