//! systemd's `Type=notify` protocol: `READY=1`, the watchdog, `STOPPING=1`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::supervise::Supervisor;

/// Tells systemd the daemon is ready, and keeps its watchdog fed while the
/// pipeline thread is alive. Does nothing outside systemd.
pub(super) fn systemd_ready(
    pipeline_alive: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
    supervisor: &Supervisor,
) -> Option<tokio::task::JoinHandle<()>> {
    systemd_notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("watching"),
    ]);
    let usec = watchdog_usec()?;
    let every = feed_interval(usec);
    if every > Duration::from_micros(usec / 2) {
        tracing::warn!(
            watchdog_usec = usec,
            every = %humantime::format_duration(every),
            "WATCHDOG_USEC is shorter than the watchdog can be fed; feeding as often as it can"
        );
    }
    tracing::info!(every = %humantime::format_duration(every), "feeding the systemd watchdog");
    Some(supervisor.spawn("systemd watchdog", async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            if !pipeline_alive.load(Ordering::Relaxed) {
                tracing::error!("the pipeline thread has stopped; no longer feeding the watchdog");
                return;
            }
            systemd_notify(&[sd_notify::NotifyState::Watchdog]);
        }
    }))
}

/// How often to feed a watchdog of `usec`: half of it, as systemd asks,
/// but never more often than every millisecond (`WATCHDOG_USEC=1` made a
/// zero interval, and tokio's `interval` panics on zero: the daemon died
/// at start).
fn feed_interval(usec: u64) -> Duration {
    Duration::from_micros(usec / 2).max(Duration::from_millis(1))
}

/// The watchdog interval systemd asks for: `WATCHDOG_USEC`, unless
/// `WATCHDOG_PID` names another process. (As `sd_watchdog_enabled(3)`:
/// an unset `WATCHDOG_PID` means this process; the `sd-notify` crate
/// insists on it being set.)
fn watchdog_usec() -> Option<u64> {
    std::env::var_os("NOTIFY_SOCKET")?;
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    let for_us = std::env::var("WATCHDOG_PID").ok().is_none_or(|pid| {
        pid.parse::<u32>()
            .is_ok_and(|pid| pid == std::process::id())
    });
    (usec > 0 && for_us).then_some(usec)
}

pub(super) fn systemd_notify(states: &[sd_notify::NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_interval_is_half_the_watchdog_and_never_zero() {
        let cases = [
            (1, Duration::from_millis(1)),
            (2, Duration::from_millis(1)),
            (1_999, Duration::from_millis(1)),
            (3_000, Duration::from_micros(1_500)),
            (30_000_000, Duration::from_secs(15)),
        ];
        for (usec, want) in cases {
            assert_eq!(feed_interval(usec), want, "WATCHDOG_USEC={usec}");
        }
    }
}
