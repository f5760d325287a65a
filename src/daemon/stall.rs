//! The store's stall watch: the one thing no task can interrupt is a
//! blocking store call, so a thread of its own exits the daemon when one
//! takes too long.

use std::sync::Arc;
use std::time::Duration;

use super::SHUTDOWN_LIMIT;

/// Longest the pipeline may spend on one frame (in practice: a write to
/// the store) before the store is taken to be stuck (a full or vanished
/// disk: sled can block forever in a flush) and the daemon exits 1.
pub(super) const STORE_STALL: Duration = Duration::from_secs(15);

/// Watches the one thing no task can interrupt: a blocking store call.
/// Runs on its own thread, so it works even when every runtime worker is
/// blocked in the store too.
#[derive(Default)]
pub(super) struct Stall {
    /// [`now_ms`] when the pipeline began the current frame; 0 when idle.
    pub(super) busy_since: std::sync::atomic::AtomicU64,
    /// [`now_ms`] when the shutdown began; 0 before.
    pub(super) stopping_since: std::sync::atomic::AtomicU64,
}

/// Milliseconds on the monotonic clock since the process first asked, plus
/// one (0 is the atomics' "not started": an atomic cannot hold an
/// `Option`). Not the wall clock: a step of it (NTP, a resumed VM) read
/// as a store stuck for minutes and exited the daemon, or, stepped back,
/// hid a stuck store for as long.
pub(super) fn now_ms() -> u64 {
    u64::try_from(crate::wall::since_start().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// A store call in progress, watched until it is dropped: however the call
/// ends (an error returned with `?`, a panic), the watch stops with it. Set
/// and cleared by hand, an error left it set, and 15 s into the orderly
/// shutdown that followed the watch exited the daemon as "the state store
/// has not answered", cutting the sinks' grace short.
pub(super) struct Busy<'a>(&'a Stall);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0
            .busy_since
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Stall {
    /// Watches a store call from now until the guard is dropped.
    pub(super) fn busy(&self) -> Busy<'_> {
        self.busy_since
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
        Busy(self)
    }

    /// A new watch, already watching.
    pub(super) fn started(grace: Duration) -> Arc<Self> {
        let stall = Arc::new(Stall::default());
        Arc::clone(&stall).watch(grace);
        stall
    }

    /// Watches on its own thread for as long as anyone holds the watch
    /// (the daemon's run): a daemon run inside a longer process (a test)
    /// must not have the process exited under it afterwards.
    pub(super) fn watch(self: Arc<Self>, grace: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let watched = Arc::downgrade(&self);
        drop(self);
        let spawned = std::thread::Builder::new()
            .name("store-watchdog".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(250));
                    let Some(this) = watched.upgrade() else {
                        return;
                    };
                    let now = now_ms();
                    let busy = this.busy_since.load(Relaxed);
                    if busy != 0 && now.saturating_sub(busy) > STORE_STALL.as_millis() as u64 {
                        tracing::error!(
                            secs = STORE_STALL.as_secs(),
                            "the state store has not answered for {} s (disk full? read-only? vanished?): exiting 1; \
                             the state holds everything up to the last completed batch",
                            STORE_STALL.as_secs()
                        );
                        eprintln!("error: the state store is stuck (disk full?); exiting");
                        std::process::exit(1);
                    }
                    let stopping = this.stopping_since.load(Relaxed);
                    let limit = (grace + SHUTDOWN_LIMIT).as_millis() as u64;
                    if stopping != 0 && now.saturating_sub(stopping) > limit {
                        tracing::error!("the shutdown did not finish in time (the store is stuck?): exiting 1");
                        eprintln!("error: the shutdown is stuck; exiting");
                        std::process::exit(1);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the store watchdog");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::*;

    /// A store call that fails the way the pipeline's do: with `?`.
    fn failing_call(stall: &Stall) -> Result<(), &'static str> {
        let _busy = stall.busy();
        assert_ne!(stall.busy_since.load(Relaxed), 0, "watched while it runs");
        Err("No space left on device")?;
        Ok(())
    }

    #[test]
    fn a_store_call_is_watched_until_it_ends_however_it_ends() {
        let stall = Stall::default();
        assert_eq!(failing_call(&stall), Err("No space left on device"));
        assert_eq!(stall.busy_since.load(Relaxed), 0, "an error ends the watch");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _busy = stall.busy();
            panic!("a bug in the store call");
        }));
        assert!(panicked.is_err());
        assert_eq!(stall.busy_since.load(Relaxed), 0, "a panic ends the watch");
    }
}
