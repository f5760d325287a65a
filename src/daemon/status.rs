//! What the daemon says in its log: the periodic status line, the sinks
//! at shutdown, and the time formats they use.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::alert::deliver::SinkReport;
use crate::alert::outbox::Outbox;
use crate::source::health::SourceHealth;
use crate::telemetry::Telemetry;
use crate::wall::SharedClock;
use crate::wall::{human_duration, rfc3339_micros};

pub(super) async fn status_log(
    health: Vec<Arc<SourceHealth>>,
    (telemetry, clock): (Arc<Telemetry>, SharedClock),
    (outbox, sinks): (Outbox, Vec<String>),
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let snapshot = telemetry.stats();
        let now = clock.now_us();
        tracing::info!(
            frames = snapshot.frames,
            posts = snapshot.posts,
            reports = snapshot.reports,
            alerts = snapshot.alerts,
            duplicates = snapshot.duplicates,
            malformed = snapshot.malformed,
            late = snapshot.late_posts,
            stale = snapshot.stale_posts,
            future = snapshot.future,
            event_time = %telemetry.board().newest().map_or_else(|| "-".to_owned(), rfc3339_micros),
            uptime = %human_duration(now - telemetry.started),
            outbox = %sinks
                .iter()
                .map(|sink| format!("{sink}={}", outbox.pending_for(sink).unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(" "),
            "status"
        );
        for h in &health {
            let s = h.snapshot();
            let times = snapshot.by_source.get(&h.name).cloned().unwrap_or_default();
            // The watermark never runs ahead of the arrival clock by more
            // than max_future_secs; lag reads 0 then, never negative.
            tracing::info!(
                source = %h.name,
                connected = s.connected,
                frames = s.frames,
                data = s.data,
                processed = %s.processed.map_or_else(|| "-".to_owned(), rfc3339_micros),
                newest = %times.newest.map_or_else(|| "-".to_owned(), rfc3339_micros),
                late = times.late,
                stale = times.stale,
                future = times.future,
                lag = %s.processed.map_or_else(|| "-".to_owned(), |p| human_duration(now - p)),
                reconnects = s.reconnects,
                oversized = s.oversized,
                binary = s.binary,
                rate_dropped = s.rate_dropped,
                "source status"
            );
        }
    }
}

pub(super) fn log_sinks(reports: &[SinkReport], drained: bool) {
    for report in reports {
        if report.pending > 0 {
            tracing::warn!(sink = %report.name, delivered = report.delivered, retries = report.retries, dead = report.dead, undelivered = report.pending, "alerts left in the outbox for the next start");
        } else {
            tracing::info!(sink = %report.name, delivered = report.delivered, retries = report.retries, dead = report.dead, "sink done");
        }
    }
    if !drained {
        tracing::warn!("the shutdown grace period ended before every alert was delivered");
    }
}
