//! An Alertmanager sink's re-posts of its open alerts. Its own file
//! because it runs on its own schedule, beside the delivery loop of
//! [`super::task`] rather than as part of it: Alertmanager forgets a firing
//! alert at its `endsAt`, so the re-posts go on while the loop waits out a
//! backoff or the receiver's pause.

use super::format::Format;
use super::http;
use super::paging;
use super::task::SinkRun;

impl SinkRun {
    /// When the next re-post is due (`None`: not an Alertmanager sink).
    pub(crate) fn repost_due_at(&self) -> Option<tokio::time::Instant> {
        let hook = self.hook().filter(|h| h.format == Format::Alertmanager)?;
        let now = tokio::time::Instant::now();
        Some(self.reposted.map_or(now, |at| at + hook.repeat))
    }

    /// Alertmanager forgets a firing alert at its `endsAt` unless told
    /// again: re-post every open one every `repeat` (a re-post refused is
    /// tried at the next, four of which fit before `endsAt`).
    pub(crate) async fn repost_if_due(&mut self) {
        let Some(hook) = self
            .hook()
            .filter(|h| h.format == Format::Alertmanager)
            .cloned()
        else {
            return;
        };
        if self
            .repost_due_at()
            .is_some_and(|at| at > tokio::time::Instant::now())
        {
            return;
        }
        self.reposted = Some(tokio::time::Instant::now());
        let open = match self.outbox.open_alerts(&self.spec.name) {
            Ok(open) if !open.is_empty() => open,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(sink = %self.spec.name, error = %e, "cannot read the open Alertmanager alerts");
                return;
            }
        };
        let now = self.now();
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
        let sent = super::webhook::repost(&hook, &open[0], alerts, self.clock.as_ref());
        let mut shutdown = self.shutdown.clone();
        let result = match sent {
            Ok(outgoing) => tokio::select! {
                result = http::send(client, &outgoing, self.clock.as_ref()) => result,
                _ = shutdown.changed() => return,
            },
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
