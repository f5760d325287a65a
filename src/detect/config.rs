//! Every setting of the detector's rule, its defaults, and the quantities
//! derived from them (bucket width, the scales tested, the edge of the
//! band at which a window pages).

use serde::{Deserialize, Serialize};

use super::baseline::Memory;
use super::model;
use crate::{MICROS_PER_SEC, Micros};

/// Every setting of the rule; see the README's "How detection works".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Width of one bucket: `[window] bucket_secs` unless the file sets
    /// this key, which must then equal it.
    pub bucket_secs: i64,
    /// The recent window the rule looks at.
    pub window_secs: i64,
    /// Distinct authors needed in the window before anything fires.
    pub min_authors: u64,
    /// While the detector has less than `level_min_minutes` of history
    /// (a brand-new state), `min_authors` is multiplied by this: a busy
    /// service's ordinary background must not page at first start, a large
    /// surge still does. `u64::MAX`: nothing fires while warming up.
    pub warmup_factor: u64,
    /// How many times the expected count the window must reach.
    pub fire_ratio: f64,
    /// Largest chance probability under Poisson counting noise (times the
    /// number of scales tried) that still fires: is the count itself
    /// significant against its expectation?
    pub fire_p: f64,
    /// The veto of the service's learned variance: a window whose
    /// negative binomial tail (times the number of scales tried) is above
    /// this is ordinary for this service and does not fire, however
    /// significant under Poisson noise.
    pub ordinary_p: f64,
    /// Dispersion assumed before a service's own is learned (variance
    /// `μ + φμ²`).
    pub dispersion_initial: f64,
    /// Time constant of the learned dispersion (exponential weighting).
    pub dispersion_memory_secs: i64,
    /// The shortest part of the window tested on its own (the last
    /// `min_scale_secs`, then each bucket longer up to the whole window):
    /// shorter scales catch a sharp spike sooner but page on every burst
    /// of a bursty service; the default tests the whole window only.
    pub min_scale_secs: i64,
    /// Services firing within this many seconds of each other form one
    /// group: their alerts list each other (`related`) and one
    /// `upstream:PROVIDER` incident is raised for the group.
    pub group_window_secs: i64,
    /// Distinct services needed for an upstream incident.
    pub group_min_services: usize,
    /// Time constant of the level correction applied to the seasonal
    /// profile (absorbs a level shift within a few of these).
    pub level_adjust_secs: i64,
    /// Floor of the expectation, in reporting authors per minute: what a
    /// service with no history is assumed to have.
    pub prior_per_min: f64,
    /// Minutes of the last hour needed before the level (trimmed mean of
    /// the last hour) is used instead of the prior.
    pub level_min_minutes: usize,
    /// An incident older than this teaches the level again: a rate that
    /// lasts this long is the service's new normal.
    pub learn_during_incident_after_secs: i64,
    /// Past days with data at this hour needed before the hour-of-day
    /// median is used (of the last 7).
    pub seasonal_min_days: usize,
    /// Past weeks with data at this hour of the week needed before the
    /// hour-of-week median is used (of the last 4).
    pub weekly_min_weeks: usize,
    /// A window below `calm_ratio` × expected counts as calm.
    pub calm_ratio: f64,
    /// Calm time before an incident resolves.
    pub resolve_after_secs: i64,
    /// Calm time before it resolves when "it's back" posts outnumber reports.
    pub resolve_after_recovery_secs: i64,
    /// Quiet time after a resolution before the same service fires again.
    pub cooldown_secs: i64,
    /// Ratios of window to expectation for medium and high severity.
    pub medium_ratio: f64,
    pub high_ratio: f64,
    /// Time above the firing level after which severity is at least
    /// medium, and high.
    pub medium_after_secs: i64,
    pub high_after_secs: i64,
    /// Sample posts attached to an alert.
    pub samples: usize,
    /// Authors posting the same long text (copypasta, bot storms) count as
    /// at most this many in a window.
    pub max_authors_per_text: u64,
    /// Authors one server vouches for, on networks whose accounts cost
    /// nothing to make (a Mastodon or `did:web` domain, Nostr as a whole; see
    /// [`crate::source::Source::server_of`]), count as at most this many
    /// in a window: one hostile server's made-up accounts are one voice.
    pub max_authors_per_server: u64,
    /// Also open an incident when the window falls as far *below* its
    /// expectation as a firing window stands above it. Not a setting of
    /// the daemon (a count of outage reports falling is good news, and it
    /// is not read from the config file): `series` turns it on unless told
    /// `--directions up`, as a series from elsewhere falling away (a
    /// throughput, a speed, a request rate) is as much an anomaly as its
    /// rise.
    #[serde(skip)]
    pub drops: bool,
    /// Discovered services the detector keeps state for at once: the
    /// window's `max_discovered` (the pipeline sets it; not read from the
    /// `[detector]` table). Without it every name the window admitted kept
    /// its state for an hour, tracked or not: 33 333 of them from three
    /// accounts.
    #[serde(skip)]
    pub max_discovered: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            bucket_secs: 10,
            window_secs: 60,
            min_authors: 5,
            warmup_factor: 2,
            fire_ratio: 4.0,
            fire_p: 1e-5,
            ordinary_p: 1e-5,
            dispersion_initial: 0.1,
            dispersion_memory_secs: 2 * 86_400,
            level_adjust_secs: 7 * 86_400,
            min_scale_secs: 60,
            group_window_secs: 240,
            group_min_services: 3,
            prior_per_min: 0.2,
            level_min_minutes: 10,
            learn_during_incident_after_secs: 2 * 3600,
            seasonal_min_days: 3,
            weekly_min_weeks: 3,
            calm_ratio: 2.0,
            resolve_after_secs: 300,
            resolve_after_recovery_secs: 60,
            cooldown_secs: 600,
            medium_ratio: 15.0,
            high_ratio: 50.0,
            medium_after_secs: 600,
            high_after_secs: 1800,
            samples: 5,
            max_authors_per_text: 3,
            max_authors_per_server: crate::window::DEFAULT_MAX_AUTHORS_PER_SERVER,
            drops: false,
            max_discovered: crate::window::WindowConfig::default().max_discovered,
        }
    }
}

impl DetectorConfig {
    pub(super) fn memory(&self) -> Memory {
        Memory {
            level_min_minutes: self.level_min_minutes,
            seasonal_min_days: self.seasonal_min_days,
            weekly_min_weeks: self.weekly_min_weeks,
        }
    }

    pub(super) fn bucket_us(&self) -> Micros {
        self.bucket_secs.max(1) * MICROS_PER_SEC
    }

    /// Buckets in the window: the scales `1..=scales` the rule can test.
    pub(super) fn scales(&self) -> usize {
        (self.window_secs * MICROS_PER_SEC / self.bucket_us()).max(1) as usize
    }

    /// The shortest scale tested for firing (`min_scale_secs`, rounded up
    /// to whole buckets).
    pub(super) fn first_scale(&self) -> usize {
        let bucket_us = self.bucket_us();
        ((self.min_scale_secs * MICROS_PER_SEC + bucket_us - 1) / bucket_us)
            .clamp(1, self.scales() as i64) as usize
    }

    /// Scales tested for firing: every p-value is multiplied by their
    /// number (Bonferroni).
    pub(super) fn tried(&self) -> f64 {
        (self.scales() + 1 - self.first_scale()) as f64
    }

    /// The time the window judges: its buckets, whole (`window_secs`, or
    /// one bucket when that is shorter: 60 s of 300 s buckets is 300 s,
    /// and the prior and the rates worked out over 60 s made the prior's
    /// floor a fifth of what it is and every rate five times too high).
    pub(super) fn window_span_secs(&self) -> f64 {
        (self.scales() as i64 * self.bucket_secs).max(1) as f64
    }

    /// The prior's expectation over the whole window.
    pub(super) fn prior_window(&self) -> f64 {
        self.prior_per_min * self.window_span_secs() / 60.0
    }

    /// A count over the whole window, per minute.
    pub(super) fn per_min(&self, per_window: f64) -> f64 {
        per_window * 60.0 / self.window_span_secs()
    }

    /// A count over the last `scale_secs` of the window, per minute: a
    /// short scale that fires is its own span (8 authors in 10 s are 48 a
    /// minute, not 8).
    pub(super) fn per_min_over(count: f64, scale_secs: i64) -> f64 {
        count * 60.0 / scale_secs.max(1) as f64
    }

    /// The smallest count that passes both significance tests against
    /// `expected` (Poisson at `fire_p`, the learned negative binomial at
    /// `ordinary_p`, each over `tried` scales): the edge of the band.
    pub(super) fn pages_at(&self, expected: f64, dispersion: f64, tried: f64) -> u64 {
        model::nb_upper(expected, 0.0, self.fire_p / tried).max(model::nb_upper(
            expected,
            dispersion,
            self.ordinary_p / tried,
        ))
    }

    /// The largest count that fires as a fall against `expected` (by the
    /// same lines as [`DetectorConfig::pages_at`], below `expected /
    /// fire_ratio`, and only where `min_authors` were expected): the lower
    /// edge of the band, `None` where no count does.
    pub(super) fn falls_at(&self, expected: f64, dispersion: f64, tried: f64) -> Option<u64> {
        if expected < self.min_authors as f64 {
            return None;
        }
        // The largest count strictly below `expected / fire_ratio`.
        let by_ratio =
            ((expected / self.fire_ratio.max(f64::MIN_POSITIVE)).ceil() as u64).checked_sub(1)?;
        let poisson = model::nb_lower(expected, 0.0, self.fire_p / tried)?;
        let learned = model::nb_lower(expected, dispersion, self.ordinary_p / tried)?;
        Some(poisson.min(learned).min(by_ratio))
    }

    /// The `min_authors` in force: multiplied by `warmup_factor` while the
    /// detector is still warming up (see [`DetectorConfig::warmup_factor`]);
    /// `None`, nothing fires, while it warms up with a factor of
    /// `u64::MAX` (how `series` holds a gauge until its level is known: a
    /// line of `u64::MAX` was reached by a reading that saturated a count).
    pub(super) fn min_authors_now(&self, warming_up: bool) -> Option<u64> {
        match (warming_up, self.warmup_factor) {
            (false, _) => Some(self.min_authors),
            (true, u64::MAX) => None,
            (true, factor) => Some(self.min_authors.saturating_mul(factor.max(1))),
        }
    }
}
