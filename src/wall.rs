//! The wall clock, behind a trait, for the parts that live in real time:
//! the daemon's health monitor and status log, the sources' health
//! counters and the sinks' delivery. Production reads the system clock;
//! tests pass a [`TokioClock`], which moves only with tokio's time, so a
//! test under `tokio::time::pause` runs minutes of monitoring in an
//! instant and the same way every time.
//!
//! (Event time is another thing: the stages that think get it from the
//! frames, never from a clock; see `source::clock`.)

use std::fmt::Debug;
use std::sync::Arc;

use crate::Micros;

/// Wall-clock time in µs since the Unix epoch, and a monotonic clock
/// beside it.
pub trait Clock: Send + Sync + Debug {
    fn now_us(&self) -> Micros;

    /// µs on a clock that is never set (from an arbitrary origin): for how
    /// long something lasted. The wall clock stepped back by an hour (NTP,
    /// a resumed VM) hid a source's silence for that hour, and stepped
    /// forward paged for a healthy one. The system's monotonic clock
    /// unless the clock says otherwise.
    fn monotonic_us(&self) -> Micros {
        i64::try_from(since_start().as_micros()).unwrap_or(i64::MAX)
    }

    /// The same instant as a date (the epoch if it cannot be one).
    fn now_utc(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_micros(self.now_us()).unwrap_or_default()
    }
}

/// Time on the system's monotonic clock since the process first asked:
/// the one origin every "how long" of the process is measured from.
pub fn since_start() -> std::time::Duration {
    static ORIGIN: std::sync::LazyLock<std::time::Instant> =
        std::sync::LazyLock::new(std::time::Instant::now);
    ORIGIN.elapsed()
}

/// RFC 3339 with second precision and a `Z`: the form of every time in an
/// alert, and in what `record` says of a recording. Here, at the bottom
/// layer, so that a source can say a time as an alert does.
pub fn rfc3339(time_us: Micros) -> String {
    let secs = time_us.div_euclid(crate::MICROS_PER_SEC);
    let time = chrono::DateTime::from_timestamp(secs.clamp(YEAR_0, YEAR_10000 - 1), 0);
    rfc3339_at(time.unwrap_or_default())
}

/// 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z, in seconds: RFC 3339
/// has four digits of year. A post may be dated up to the end of 9999, so
/// the bucket holding it ends in 10000, and an alert's `at` came out as
/// `+10000-01-01T00:00:00Z`, a time no receiver (nor `series`) reads.
const YEAR_0: i64 = -62_167_219_200;
const YEAR_10000: i64 = 253_402_300_800;

/// [`rfc3339`] of a date already made (a receiver's `endsAt`, a test
/// alert's time), held within the years RFC 3339 can write (see
/// [`rfc3339`]).
pub fn rfc3339_at(time: chrono::DateTime<chrono::Utc>) -> String {
    let secs = time.timestamp();
    let time = if (YEAR_0..YEAR_10000).contains(&secs) {
        time
    } else {
        chrono::DateTime::from_timestamp(secs.clamp(YEAR_0, YEAR_10000 - 1), 0).unwrap_or(time)
    };
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// RFC 3339 to the microsecond: exact, so a cursor or an event time in a
/// log line can be read back.
pub fn rfc3339_micros(time_us: Micros) -> String {
    chrono::DateTime::from_timestamp_micros(time_us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_else(|| time_us.to_string())
}

/// A duration in human units, to the second ("2m 5s"; "0s" when
/// negative). Here for the same reason as [`rfc3339`].
pub fn human_duration(micros: Micros) -> String {
    let secs = (micros / crate::MICROS_PER_SEC).max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// A clock shared by the tasks that read it.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> Micros {
        chrono::Utc::now().timestamp_micros()
    }
}

/// The system clock, read once: for the edges that have no clock passed
/// to them (the arrival of a frame, the status API's `generated_at`).
pub fn now_us() -> Micros {
    SystemClock.now_us()
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that starts at a given wall time and then follows tokio's
/// clock: paused, it stands still until the test (or tokio's auto-advance)
/// moves it.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start_us: Micros,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Starts at `start_us`, now (in tokio's time).
    pub fn starting_at(start_us: Micros) -> Self {
        TokioClock {
            start_us,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_us(&self) -> Micros {
        self.start_us.saturating_add(self.monotonic_us())
    }

    /// Tokio's time since the start: paused, it stands still too.
    fn monotonic_us(&self) -> Micros {
        i64::try_from(self.start.elapsed().as_micros()).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_moves_only_with_tokio_time() {
        let clock = TokioClock::starting_at(1_000_000);
        assert_eq!(clock.now_us(), 1_000_000);
        tokio::time::sleep(std::time::Duration::from_secs(90)).await;
        assert_eq!(clock.now_us(), 91_000_000);
    }

    /// Every time written is RFC 3339 with a four-digit year: the end of
    /// a bucket holding a post of 9999-12-31 was `+10000-01-01T00:00:00Z`.
    #[test]
    fn times_are_written_with_four_digits_of_year() {
        let cases: &[(Micros, &str)] = &[
            (0, "1970-01-01T00:00:00Z"),
            (1_783_173_600_500_000, "2026-07-04T14:00:00Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (253_402_300_799_000_000, "9999-12-31T23:59:59Z"),
            (253_402_300_800_000_000, "9999-12-31T23:59:59Z"),
            (Micros::MAX, "9999-12-31T23:59:59Z"),
            (-62_167_219_200_000_000, "0000-01-01T00:00:00Z"),
            (Micros::MIN, "0000-01-01T00:00:00Z"),
        ];
        for &(time, want) in cases {
            assert_eq!(rfc3339(time), want, "{time}");
        }
        let far = chrono::DateTime::from_timestamp(300_000_000_000, 0).expect("a date");
        assert_eq!(rfc3339_at(far), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn the_system_clock_is_after_2020() {
        assert!(SystemClock.now_us() > 1_577_836_800_000_000);
    }
}
