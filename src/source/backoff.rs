//! The one backoff of the program: capped, jittered exponential, so a
//! dead host or receiver is never hammered and many clients do not retry
//! in step. Every source's reconnects (connections and Mastodon's
//! streaming-host discovery alike) and every sink's retries
//! ([`crate::alert::ratelimit::backoff`], through [`Backoff::nth`]) use it.

use std::time::Duration;

use super::ws::WsSettings;

/// Waits between attempts: from `backoff_min`, doubling up to
/// `backoff_max`, each drawn uniformly between half and all of that
/// ("equal jitter"); so never shorter than half `backoff_min` nor longer
/// than `backoff_max`, and spread at the cap too. (backon's jitter added
/// up to the delay again and was cut at the cap: there every wait was the
/// cap exactly, and every sink and instance retried in step.)
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    /// Attempts since the last reset.
    attempt: u32,
}

impl Backoff {
    /// A connection's backoff, from its settings.
    pub fn new(settings: &WsSettings) -> Self {
        Backoff::between(settings.backoff_min, settings.backoff_max)
    }

    /// Waits from `min`, doubling up to `max`, jittered within each.
    pub fn between(min: Duration, max: Duration) -> Self {
        // Never a zero wait (a busy loop), and the cap never below the
        // first wait, whatever the settings say.
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        Backoff {
            min,
            max,
            attempt: 0,
        }
    }

    /// The wait before attempt number `attempt` (from 1) of a fresh
    /// backoff: for retries whose count is kept elsewhere (a sink's retry
    /// state survives a restart).
    pub fn nth(&mut self, attempt: u32) -> Duration {
        jitter(self.ceiling(attempt))
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        self.nth(self.attempt)
    }

    /// The longest a wait before attempt `attempt` can be: `min` doubled
    /// per attempt after the first, capped at `max`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let mut delay = self.min;
        for _ in 1..attempt {
            if delay >= self.max {
                break;
            }
            delay = delay.saturating_mul(2);
        }
        delay.min(self.max)
    }

    /// The longest wait: for a server that refuses this client for good.
    pub fn longest(&self) -> Duration {
        self.max
    }

    /// Starts again from the shortest wait (after a healthy session).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Uniform between half of `ceiling` and all of it.
fn jitter(ceiling: Duration) -> Duration {
    let half = ceiling / 2;
    half + (ceiling - half).mul_f64(rand::random::<f64>())
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
        for (i, d) in delays.iter().enumerate() {
            let ceiling = Duration::from_millis(100 << i.min(3));
            assert!(*d >= ceiling / 2 && *d <= ceiling, "wait {i}: {d:?}");
        }
        // At the cap the waits are spread over its second half.
        let capped = &delays[10..];
        assert!(capped.iter().any(|d| *d > Duration::from_millis(750)));
        assert!(capped.iter().any(|d| *d < Duration::from_millis(450)));
        assert_eq!(backoff.longest(), Duration::from_millis(800));
        backoff.reset();
        assert!(backoff.next_delay() < Duration::from_millis(200));
    }
}
