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
    let every = Duration::from_micros(usec / 2);
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
