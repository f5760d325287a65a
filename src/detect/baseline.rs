//! What is normal for a service at this time of day.
//!
//! A service's baseline is its *share* of the firehose: reporting authors
//! per post, so the expectation swells and shrinks with the firehose itself.
//! Two kinds of estimate are kept:
//!
//! - **overall**: an exponentially decayed sum over the last hours
//!   (half-life `level_half_life_secs`), learned from every bucket but each
//!   bucket capped at `fire_ratio` times what was expected, so a surge barely
//!   moves the level it is measured against;
//! - **seasonal**: authors and posts per clock hour for the last four weeks.
//!   The expectation for this hour is the *median* share of the same hour
//!   on the previous days (hour of day, once `seasonal_min_days` days are
//!   known) or the same hour of the previous weeks (hour of week, once
//!   `weekly_min_days` are known). A median shrugs off one day's outage but
//!   learns a peak that comes back every day.
//!
//! The most specific estimate with enough history wins; before
//! `level_min_secs` of history only the prior counts. Whatever they say,
//! the expectation never falls below the prior (`prior_per_min`), so two
//! posts are never a surge, and a brand-new detector still fires on a
//! large one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{MICROS_PER_SEC, Micros};

const HOUR_US: Micros = 3_600 * MICROS_PER_SEC;
/// Hours of history kept: four weeks and a day.
const KEEP_HOURS: i64 = 29 * 24;
const DAYS_LOOKED_AT: i64 = 7;
const WEEKS_LOOKED_AT: i64 = 4;

/// A sum that halves every `half_life`, updated lazily.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Decayed {
    pub value: f64,
    pub at: Micros,
}

impl Decayed {
    pub fn get(&self, now: Micros, half_life_us: Micros) -> f64 {
        if self.value == 0.0 {
            return 0.0;
        }
        let elapsed = (now - self.at).max(0) as f64;
        self.value * 0.5f64.powf(elapsed / half_life_us.max(1) as f64)
    }

    pub fn add(&mut self, now: Micros, amount: f64, half_life_us: Micros) {
        self.value = self.get(now, half_life_us) + amount;
        self.at = now;
    }
}

/// The detector's memory settings, in event time.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub level_us: Micros,
    pub level_min_us: Micros,
    pub seasonal_min_days: usize,
    pub weekly_min_weeks: usize,
}

/// Which estimate an expectation came from, shown in alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    Prior,
    Overall,
    HourOfDay,
    HourOfWeek,
}

/// Clock hours since the epoch.
pub fn hour_index(t: Micros) -> i64 {
    t.div_euclid(HOUR_US)
}

/// The firehose's own volume, shared by every service's share.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Volume {
    pub first_bucket: Option<Micros>,
    pub overall: Decayed,
    /// Posts per clock hour.
    pub hours: BTreeMap<i64, f64>,
}

/// One service's reports, in the same shape.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reports {
    pub overall: Decayed,
    /// Reporting authors per clock hour (hours without any are absent).
    pub hours: BTreeMap<i64, f64>,
}

fn prune(hours: &mut BTreeMap<i64, f64>, now: Micros) {
    let oldest = hour_index(now) - KEEP_HOURS;
    while hours.first_key_value().is_some_and(|(h, _)| *h < oldest) {
        hours.pop_first();
    }
}

impl Volume {
    pub fn add(&mut self, bucket_start: Micros, posts: f64, memory: &Memory) {
        self.first_bucket.get_or_insert(bucket_start);
        self.overall.add(bucket_start, posts, memory.level_us);
        *self.hours.entry(hour_index(bucket_start)).or_default() += posts;
        prune(&mut self.hours, bucket_start);
    }

    fn history(&self, now: Micros) -> Micros {
        self.first_bucket.map_or(0, |first| now - first)
    }
}

impl Reports {
    /// Teaches one bucket: `seen` distinct authors go into the hourly
    /// profile as they are, `capped` into the overall level.
    pub fn add(&mut self, bucket_start: Micros, seen: f64, capped: f64, memory: &Memory) {
        if capped > 0.0 {
            self.overall.add(bucket_start, capped, memory.level_us);
        }
        if seen > 0.0 {
            *self.hours.entry(hour_index(bucket_start)).or_default() += seen;
            prune(&mut self.hours, bucket_start);
        }
    }

    /// Reporting authors per post expected at `now`, and which estimate
    /// said so; `None` while there is too little history.
    pub fn share(&self, volume: &Volume, now: Micros, memory: &Memory) -> Option<(f64, Basis)> {
        let hour = hour_index(now);
        let median_of = |step: i64, count: i64, needed: usize| -> Option<f64> {
            let mut shares: Vec<f64> = (1..=count)
                .filter_map(|k| {
                    let h = hour - k * step;
                    let posts = *volume.hours.get(&h)?;
                    (posts > 0.0).then(|| self.hours.get(&h).copied().unwrap_or(0.0) / posts)
                })
                .collect();
            if shares.len() < needed.max(1) {
                return None;
            }
            shares.sort_by(f64::total_cmp);
            let mid = shares.len() / 2;
            Some(if shares.len() % 2 == 1 {
                shares[mid]
            } else {
                (shares[mid - 1] + shares[mid]) / 2.0
            })
        };
        if let Some(share) = median_of(168, WEEKS_LOOKED_AT, memory.weekly_min_weeks) {
            return Some((share, Basis::HourOfWeek));
        }
        if let Some(share) = median_of(24, DAYS_LOOKED_AT, memory.seasonal_min_days) {
            return Some((share, Basis::HourOfDay));
        }
        if volume.history(now) < memory.level_min_us {
            return None;
        }
        let posts = volume.overall.get(now, memory.level_us);
        (posts > 0.0).then(|| {
            (
                self.overall.get(now, memory.level_us) / posts,
                Basis::Overall,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_halves_per_half_life() {
        let mut d = Decayed::default();
        d.add(0, 8.0, 10);
        assert_eq!(d.get(10, 10), 4.0);
        assert_eq!(d.get(30, 10), 1.0);
        d.add(10, 1.0, 10);
        assert_eq!(d.get(10, 10), 5.0);
    }

    #[test]
    fn the_seasonal_share_is_the_median_of_past_days() {
        let memory = Memory {
            level_us: 6 * HOUR_US,
            level_min_us: HOUR_US,
            seasonal_min_days: 3,
            weekly_min_weeks: 3,
        };
        let mut volume = Volume::default();
        let mut reports = Reports::default();
        let now = 100 * 24 * HOUR_US + 14 * HOUR_US;
        // The 14:00 hour of the last 5 days: 1000 posts, and 10, 12, 500
        // (an outage), 11, 0 reporting authors.
        for (k, authors) in [(1, 10.0), (2, 12.0), (3, 500.0), (4, 11.0), (5, 0.0)] {
            let t = now - k * 24 * HOUR_US;
            volume.add(t, 1000.0, &memory);
            reports.add(t, authors, 0.0, &memory);
        }
        let (share, basis) = reports.share(&volume, now, &memory).expect("enough days");
        assert_eq!(basis, Basis::HourOfDay);
        assert_eq!(share, 0.011, "the median: the outage day does not count");
    }
}
