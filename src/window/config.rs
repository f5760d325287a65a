//! The window's settings: bucket width, lateness, the bounds on discovered
//! names and on the evidence kept.

use serde::{Deserialize, Serialize};

use super::discovered;
use crate::{MICROS_PER_SEC, Micros};

/// The default of the detector's `max_authors_per_server`, which the
/// window applies too (to admitting discovered names).
pub const DEFAULT_MAX_AUTHORS_PER_SERVER: u64 = 2;

/// Bucket and lateness settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Width of one bucket in seconds.
    pub bucket_secs: i64,
    /// How long after a bucket's end late events are still awaited.
    pub lateness_secs: i64,
    /// Posts later than this behind their source's watermark are stale:
    /// counted, not added.
    pub max_late_secs: i64,
    /// How long buckets wait for a server-dated source behind the others
    /// (a Jetstream reconnecting from its cursor) before closing without
    /// it: alerts wait as long (see `source::clock::closing_watermark`).
    pub wait_secs: i64,
    /// Events further than this ahead of the arrival clock (live) or of the
    /// source's watermark (old recordings) are quarantined as `future`.
    pub max_future_secs: i64,
    /// Distinct authors that must reach a time before a source's watermark
    /// moves there (see `source::clock`).
    pub watermark_quorum: usize,
    /// Sample posts kept per service and bucket, as alert evidence.
    pub samples_per_bucket: usize,
    /// Discovered services tracked at once (see `discovered`).
    pub max_discovered: usize,
    /// A discovered service's score halves for each such span of quiet,
    /// so a newcomer can take its place.
    pub discovered_ttl_secs: i64,
    /// Distinct authors a new name needs within `discovered_admit_secs`
    /// before it is tracked.
    pub discovered_min_authors: usize,
    pub discovered_admit_secs: i64,
    /// New names remembered while they gather authors.
    pub max_discovered_candidates: usize,
    /// Characters of a sample post kept as alert evidence; longer texts
    /// are cut (with `…`).
    pub sample_chars: usize,
    /// Texts at least this long (characters, normalized) posted by several
    /// authors are tracked as copies, so the detector can weigh them down.
    pub copy_min_chars: usize,
    /// Authors of one server that count toward admitting a discovered
    /// name: the detector's `max_authors_per_server` (the pipeline sets it;
    /// not read from the `[window]` table).
    #[serde(skip)]
    pub max_authors_per_server: u64,
}

impl WindowConfig {
    /// The rule every source's clock judges by: the pipeline's, and
    /// `record --config`'s, whose reconnects resume from the watermark the
    /// daemon's would.
    pub fn clock_rule(&self) -> crate::source::clock::ClockRule {
        crate::source::clock::ClockRule {
            max_future_us: self.max_future_secs.max(0) * MICROS_PER_SEC,
            quorum: self.watermark_quorum.max(1),
        }
    }
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            bucket_secs: 10,
            lateness_secs: 5,
            max_late_secs: 60,
            wait_secs: 30,
            max_future_secs: crate::source::clock::DEFAULT_MAX_FUTURE_SECS,
            watermark_quorum: crate::source::clock::DEFAULT_QUORUM,
            samples_per_bucket: 5,
            max_discovered: 1000,
            discovered_ttl_secs: 900,
            discovered_min_authors: 3,
            discovered_admit_secs: 600,
            max_discovered_candidates: 10_000,
            sample_chars: 500,
            copy_min_chars: 40,
            max_authors_per_server: DEFAULT_MAX_AUTHORS_PER_SERVER,
        }
    }
}

impl WindowConfig {
    /// Bounds of every key (the README's "Limits"): `(key, why)` for the
    /// first one outside them.
    pub fn check(&self) -> Result<(), (String, String)> {
        let day = 86_400;
        // In `i128`, which holds every `usize` and `i64` as written: a
        // count cast to `i64` made 2^64 - 1 "got -1" in the error.
        let ints: [(&str, i128, i128, i128); 14] = [
            ("bucket_secs", i128::from(self.bucket_secs), 1, 3600),
            ("lateness_secs", i128::from(self.lateness_secs), 0, 3600),
            ("max_late_secs", i128::from(self.max_late_secs), 0, day),
            // Every alert waits as long as a source behind is waited for.
            ("wait_secs", i128::from(self.wait_secs), 0, 600),
            (
                "max_future_secs",
                i128::from(self.max_future_secs),
                0,
                366 * day,
            ),
            // A source's clock remembers its last `RECENT` authors: a
            // larger quorum could never agree, and no bucket would close.
            (
                "watermark_quorum",
                self.watermark_quorum as i128,
                1,
                crate::source::clock::RECENT as i128,
            ),
            (
                "samples_per_bucket",
                self.samples_per_bucket as i128,
                0,
                100,
            ),
            ("max_discovered", self.max_discovered as i128, 0, 100_000),
            (
                "discovered_ttl_secs",
                i128::from(self.discovered_ttl_secs),
                10,
                day,
            ),
            (
                "discovered_min_authors",
                self.discovered_min_authors as i128,
                1,
                1000,
            ),
            (
                "discovered_admit_secs",
                i128::from(self.discovered_admit_secs),
                10,
                day,
            ),
            (
                "max_discovered_candidates",
                self.max_discovered_candidates as i128,
                1,
                1_000_000,
            ),
            ("sample_chars", self.sample_chars as i128, 10, 100_000),
            ("copy_min_chars", self.copy_min_chars as i128, 1, 100_000),
        ];
        for (key, value, min, max) in ints {
            crate::numbers::check_int(value, min, max).map_err(|m| (key.to_owned(), m))?;
        }
        Ok(())
    }

    pub(super) fn discovered_bounds(&self) -> discovered::Bounds {
        discovered::Bounds {
            capacity: self.max_discovered,
            max_candidates: self.max_discovered_candidates,
            min_authors: self.discovered_min_authors,
            admit_us: self.discovered_admit_secs.saturating_mul(MICROS_PER_SEC),
            ttl_us: self.discovered_ttl_secs.saturating_mul(MICROS_PER_SEC),
            admissions_per_author: super::budget::ADMISSIONS_PER_AUTHOR,
            per_server: usize::try_from(self.max_authors_per_server.max(1)).unwrap_or(usize::MAX),
        }
    }
}

impl WindowConfig {
    pub fn bucket_us(&self) -> Micros {
        self.bucket_secs.max(1) * MICROS_PER_SEC
    }

    pub fn bucket_start(&self, time_us: Micros) -> Micros {
        time_us.div_euclid(self.bucket_us()) * self.bucket_us()
    }
}
