//! `replay --speed N`: holding a replay to N times real time.

use std::time::{Duration, Instant};

/// Longest sleep between two events at `--speed`.
pub const MAX_PACE_SLEEP: Duration = Duration::from_secs(3);
/// Event-time gaps longer than this are skipped at `--speed`.
const SKIP_GAP_US: i64 = 60 * crate::MICROS_PER_SEC;

/// Holds a replay to N times real time, measured in event time. One event
/// far ahead (a wrong clock) must not stall the replay for days: a gap
/// longer than a minute of event time is skipped, and no wait is longer
/// than `MAX_PACE_SLEEP`.
pub struct Pacer {
    speed: f64,
    /// Wall clock and event time the schedule is counted from.
    start: Option<(Instant, i64)>,
    last: i64,
}

impl Pacer {
    pub fn new(speed: f64) -> Self {
        Pacer {
            speed,
            start: None,
            last: i64::MIN,
        }
    }

    /// How long to sleep before handling an event at `event_time_us`.
    fn delay(&mut self, event_time_us: i64, now: Instant) -> Duration {
        if event_time_us <= self.last {
            return Duration::ZERO;
        }
        let gap = event_time_us.saturating_sub(self.last);
        let previous = std::mem::replace(&mut self.last, event_time_us);
        if self.start.is_none() || gap > SKIP_GAP_US {
            if self.start.is_some() {
                tracing::info!(
                    gap_secs = gap / crate::MICROS_PER_SEC,
                    from = previous,
                    to = event_time_us,
                    "--speed: skipping a gap in event time"
                );
            }
            self.start = Some((now, event_time_us));
            return Duration::ZERO;
        }
        let Some((wall, first)) = self.start else {
            return Duration::ZERO;
        };
        let due_secs = ((event_time_us - first) as f64 / 1e6) / self.speed;
        let due = Duration::try_from_secs_f64(due_secs).unwrap_or(MAX_PACE_SLEEP);
        let elapsed = now.saturating_duration_since(wall);
        let wait = due.saturating_sub(elapsed);
        if wait > MAX_PACE_SLEEP {
            // Running behind schedule by design: restart it from here.
            self.start = Some((now + MAX_PACE_SLEEP, event_time_us));
            return MAX_PACE_SLEEP;
        }
        wait
    }

    pub fn wait_for(&mut self, event_time_us: i64) {
        let wait = self.delay(event_time_us, Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_sleeps_a_bounded_time_and_skips_long_gaps() {
        let s = crate::MICROS_PER_SEC;
        let t0 = Instant::now();
        let mut pacer = Pacer::new(2.0);
        assert_eq!(pacer.delay(1000 * s, t0), Duration::ZERO, "first event");
        assert_eq!(
            pacer.delay(1010 * s, t0),
            Duration::from_secs(5).min(MAX_PACE_SLEEP)
        );
        // A far-future event (2100): skipped, not slept on for decades.
        assert_eq!(pacer.delay(4_102_444_800 * s, t0), Duration::ZERO);
        // Events before it do not wait.
        assert_eq!(pacer.delay(1011 * s, t0), Duration::ZERO);
        // 50 s ahead at speed 1000: 50 ms.
        let mut fast = Pacer::new(1000.0);
        fast.delay(0, t0);
        assert_eq!(fast.delay(50 * s, t0), Duration::from_millis(50));
        // Never more than MAX_PACE_SLEEP, even at the slowest speed.
        let mut slow = Pacer::new(crate::numbers::SPEED_MIN);
        slow.delay(0, t0);
        assert_eq!(slow.delay(59 * s, t0), MAX_PACE_SLEEP);
    }
}
