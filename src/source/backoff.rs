//! The one backoff of the program: capped, jittered exponential, so a
//! dead host or receiver is never hammered and many clients do not retry
//! in step. Every source's reconnects (connections and Mastodon's
//! streaming-host discovery alike) and every sink's retries
//! ([`crate::alert::ratelimit::backoff`], through [`Backoff::nth`]) use it.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use super::ws::WsSettings;

/// Waits between attempts: from `backoff_min`, doubling up to
/// `backoff_max`, with jitter; never shorter than half `backoff_min` nor
/// longer than `backoff_max`.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// A connection's backoff, from its settings.
    pub fn new(settings: &WsSettings) -> Self {
        Backoff::between(settings.backoff_min, settings.backoff_max)
    }

    /// Waits from `min`, doubling up to `max`; each wait is jittered up to
    /// twice itself, then capped at `max`.
    pub fn between(min: Duration, max: Duration) -> Self {
        // Never a zero wait (a busy loop), and the cap never below the
        // first wait, whatever the settings say.
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        let builder = ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Backoff {
            delays: builder.build(),
            builder,
            min,
            max,
        }
    }

    /// The wait before attempt number `attempt` (from 1) of a fresh
    /// backoff: for retries whose count is kept elsewhere (a sink's retry
    /// state survives a restart).
    pub fn nth(&mut self, attempt: u32) -> Duration {
        self.reset();
        // The waits stop growing once capped: at most 64 doublings matter.
        for _ in 1..attempt.min(64) {
            self.next_delay();
        }
        self.next_delay()
    }

    /// The wait before the next attempt, never over the cap: the jitter
    /// (up to the delay again) took waits to 69.7 s against a 60 s
    /// `backoff_max_ms`.
    pub fn next_delay(&mut self) -> Duration {
        self.delays
            .next()
            .unwrap_or(self.max)
            .min(self.max)
            .max(self.min / 2)
    }

    /// The longest wait: for a server that refuses this client for good.
    pub fn longest(&self) -> Duration {
        self.max
    }

    /// Starts again from the shortest wait (after a healthy session).
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let settings = WsSettings {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(800),
            ..WsSettings::default()
        };
        let mut backoff = Backoff::new(&settings);
        let delays: Vec<Duration> = (0..200).map(|_| backoff.next_delay()).collect();
        for d in &delays {
            assert!(*d >= Duration::from_millis(50), "{d:?}");
            // Jitter adds up to the delay itself, but never past the cap.
            assert!(*d <= Duration::from_millis(800), "{d:?}");
        }
        assert_eq!(delays[7], Duration::from_millis(800), "{delays:?}");
        assert_eq!(backoff.longest(), Duration::from_millis(800));
        backoff.reset();
        assert!(backoff.next_delay() < Duration::from_millis(200));
    }
}
