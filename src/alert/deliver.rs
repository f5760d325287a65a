//! Delivery: an alert raised by the pipeline sits in the store's outbox
//! until every sink has it; then it is acknowledged and removed. At start,
//! alerts left in the outbox by a crash are delivered first, in order.

use std::time::Duration;

use super::Alert;
use super::sink::{AlertSink, JsonLines, SinkError};
use super::webhook::Webhooks;
use crate::pipeline::Emitted;
use crate::window::store::{Outbox, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("alert outbox: {0}")]
    Outbox(#[from] StoreError),
}

pub struct Delivery {
    lines: JsonLines,
    webhooks: Option<Webhooks>,
    outbox: Option<Outbox>,
}

impl Delivery {
    pub fn new(lines: JsonLines, webhooks: Option<Webhooks>, outbox: Option<Outbox>) -> Self {
        Delivery {
            lines,
            webhooks,
            outbox,
        }
    }

    /// Delivers what an earlier run left undelivered; returns how many.
    pub fn redeliver_pending(&mut self) -> Result<usize, DeliveryError> {
        let Some(outbox) = &self.outbox else {
            return Ok(0);
        };
        let pending = outbox.pending()?;
        if !pending.is_empty() {
            tracing::warn!(
                alerts = pending.len(),
                "delivering alerts left undelivered by an earlier run"
            );
        }
        for (seq, alert) in &pending {
            self.deliver(&Emitted {
                seq: *seq,
                alert: alert.clone(),
            })?;
        }
        Ok(pending.len())
    }

    /// Delivers one alert from the pipeline and acknowledges it.
    pub fn deliver(&mut self, emitted: &Emitted) -> Result<(), DeliveryError> {
        self.send(&emitted.alert)?;
        if let Some(outbox) = &self.outbox {
            outbox.delivered(emitted.seq)?;
        }
        Ok(())
    }

    /// Delivers an alert that is not in the outbox (a source's health).
    pub fn send(&mut self, alert: &Alert) -> Result<(), DeliveryError> {
        self.lines.send(alert)?;
        if let Some(webhooks) = &self.webhooks {
            webhooks.send(alert);
        }
        Ok(())
    }

    /// Flushes the lines and gives webhook deliveries at most `grace`.
    /// Returns the webhook counters and whether they all finished in time.
    pub async fn finish(
        mut self,
        grace: Duration,
    ) -> Result<Option<WebhookOutcome>, DeliveryError> {
        self.lines.flush()?;
        if let Some(outbox) = &self.outbox {
            outbox.flush()?;
        }
        let Some(webhooks) = self.webhooks else {
            return Ok(None);
        };
        let stats = std::sync::Arc::clone(&webhooks.stats);
        let drained = webhooks.finish(grace).await;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        Ok(Some(WebhookOutcome {
            delivered: load(&stats.delivered),
            retried: load(&stats.retried),
            failed: load(&stats.failed),
            drained,
        }))
    }
}

/// How webhook delivery went.
#[derive(Debug, Clone, Copy)]
pub struct WebhookOutcome {
    pub delivered: u64,
    pub retried: u64,
    pub failed: u64,
    /// False when the grace period cut deliveries short.
    pub drained: bool,
}
