//! The checks that span several keys or tables: the bucket width both
//! stages share, the listen address, and the detector's and window's
//! numbers (the README's "Limits").

use super::Config;
use crate::detect::DetectorConfig;
use crate::detect::baseline::{DAYS_LOOKED_AT, LEVEL_MINUTES, WEEKS_LOOKED_AT};
use crate::numbers as num;

impl Config {
    /// The bucket width both stages share, the listen address, `fire_p`.
    pub(super) fn check_shared(&self) -> Result<(), (String, String)> {
        if self.window.bucket_secs <= 0 {
            return Err((
                "window.bucket_secs".into(),
                format!(
                    "must be a positive number of seconds, got {}",
                    self.window.bucket_secs
                ),
            ));
        }
        if 60 % self.window.bucket_secs != 0 && self.window.bucket_secs % 60 != 0 {
            return Err((
                "window.bucket_secs".into(),
                format!(
                    "must divide or be divided by 60, got {}",
                    self.window.bucket_secs
                ),
            ));
        }
        if self.detector.bucket_secs != self.window.bucket_secs {
            return Err((
                "detector.bucket_secs".into(),
                format!(
                    "{} differs from window.bucket_secs ({}): both stages count in one width \
                     (leave this key out to follow [window])",
                    self.detector.bucket_secs, self.window.bucket_secs
                ),
            ));
        }
        // A window is whole buckets: one between two was read as the
        // shorter in silence (65 s of 10 s buckets judged 60 s). One
        // shorter than a bucket is that bucket (the default 60 s beside
        // hour-long buckets), as the README says.
        let (window, bucket) = (self.detector.window_secs, self.window.bucket_secs);
        if window > bucket && window % bucket != 0 {
            return Err((
                "detector.window_secs".into(),
                format!(
                    "{window} is not a whole number of buckets of window.bucket_secs ({bucket} s): \
                     a window holds whole buckets (try {})",
                    window / bucket * bucket
                ),
            ));
        }
        // An empty path named no directory ("error:  is not a state
        // directory" from `state verify`).
        if self
            .state_dir
            .as_ref()
            .is_some_and(|dir| dir.as_os_str().is_empty())
        {
            return Err((
                "state_dir".into(),
                "is empty (leave the key out for the platform's state directory)".into(),
            ));
        }
        // Accepted, it failed only at `run`: "cannot open alert file :".
        if self
            .alerts
            .file
            .as_ref()
            .is_some_and(|file| file.as_os_str().is_empty())
        {
            return Err((
                "alerts.file".into(),
                "is empty (leave the key out to write no alert file)".into(),
            ));
        }
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err((
                "http.listen".into(),
                format!(
                    "{:?} is not an address like 127.0.0.1:9464",
                    self.http.listen
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.detector.fire_p) {
            return Err(("detector.fire_p".into(), "must be between 0 and 1".into()));
        }
        if !(0.0..=1.0).contains(&self.detector.ordinary_p) {
            return Err((
                "detector.ordinary_p".into(),
                "must be between 0 and 1".into(),
            ));
        }
        Ok(())
    }

    /// Bounds of the detector's and window's numbers (the README's
    /// "Limits"): finite, positive where a zero would divide or loop.
    pub(super) fn check_numbers(&self) -> Result<(), (String, String)> {
        for (key, value, min, max) in detector_floats(&self.detector) {
            num::check_f64(value, min, max).map_err(|m| (format!("detector.{key}"), m))?;
        }
        for (key, value, min, max) in detector_ints(&self.detector) {
            num::check_int(value, min, max).map_err(|m| (format!("detector.{key}"), m))?;
        }
        self.window
            .check()
            .map_err(|(key, m)| (format!("window.{key}"), m))?;
        Ok(())
    }
}

/// `[detector]`'s float keys: value, least and most allowed.
fn detector_floats(d: &DetectorConfig) -> [(&'static str, f64, f64, f64); 6] {
    [
        ("fire_ratio", d.fire_ratio, 1.0, 1000.0),
        ("prior_per_min", d.prior_per_min, 0.001, 1000.0),
        ("calm_ratio", d.calm_ratio, 0.0, 1000.0),
        ("medium_ratio", d.medium_ratio, 1.0, 1e6),
        ("high_ratio", d.high_ratio, 1.0, 1e6),
        ("dispersion_initial", d.dispersion_initial, 0.0, 100.0),
    ]
}

/// `[detector]`'s whole-number keys (seconds, a count): value, least and
/// most allowed.
fn detector_ints(d: &DetectorConfig) -> [(&'static str, i64, i64, i64); 20] {
    const DAY: i64 = 86_400;
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let services = i64::try_from(d.group_min_services).unwrap_or(i64::MAX);
    let samples = i64::try_from(d.samples).unwrap_or(i64::MAX);
    let incident = d.learn_during_incident_after_secs;
    [
        // 0 would fire on a single post; a million authors in a window is
        // more than any outage has drawn, so nothing would ever fire.
        ("min_authors", count(d.min_authors), 1, 10_000),
        // 0 read as 1; beyond 100 a first start could not page at all.
        ("warmup_factor", count(d.warmup_factor), 1, 100),
        // 0 would count every long text as no author.
        (
            "max_authors_per_text",
            count(d.max_authors_per_text),
            1,
            10_000,
        ),
        // 0 would count no Mastodon or Nostr author at all; 10 000 lifts
        // the cap in effect.
        (
            "max_authors_per_server",
            count(d.max_authors_per_server),
            1,
            10_000,
        ),
        // Every sample goes into every sink's payload, each up to
        // `[window] sample_chars`.
        ("samples", samples, 0, 20),
        ("window_secs", d.window_secs, 10, DAY),
        ("resolve_after_secs", d.resolve_after_secs, 0, 7 * DAY),
        (
            "resolve_after_recovery_secs",
            d.resolve_after_recovery_secs,
            0,
            7 * DAY,
        ),
        ("cooldown_secs", d.cooldown_secs, 0, 7 * DAY),
        ("medium_after_secs", d.medium_after_secs, 0, 30 * DAY),
        ("high_after_secs", d.high_after_secs, 0, 30 * DAY),
        (
            "dispersion_memory_secs",
            d.dispersion_memory_secs,
            1,
            365 * DAY,
        ),
        ("level_adjust_secs", d.level_adjust_secs, 1, 365 * DAY),
        ("min_scale_secs", d.min_scale_secs, 0, DAY),
        ("group_window_secs", d.group_window_secs, 0, DAY),
        ("group_min_services", services, 2, 10_000),
        // The level keeps a minute of memory for each minute of it.
        ("learn_during_incident_after_secs", incident, 0, DAY),
        // History each estimate needs, of the history it looks at: more
        // would turn that estimate off without a word.
        (
            "level_min_minutes",
            count(d.level_min_minutes as u64),
            1,
            LEVEL_MINUTES as i64,
        ),
        (
            "seasonal_min_days",
            count(d.seasonal_min_days as u64),
            1,
            DAYS_LOOKED_AT,
        ),
        (
            "weekly_min_weeks",
            count(d.weekly_min_weeks as u64),
            1,
            WEEKS_LOOKED_AT,
        ),
    ]
}
