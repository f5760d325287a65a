//! What is normal for a service at this time of day.
//!
//! A service's baseline is its *share* of the firehose: reporting authors
//! per post, so the expectation swells and shrinks with the firehose itself.
//! Two kinds of estimate are kept:
//!
//! - **level**: the mean share over the last hour, minute by minute, so a
//!   steady background of complaints is learned within minutes; an open
//!   incident younger than `learn_during_incident_after_secs` teaches it
//!   nothing, so a surge does not become its own baseline;
//! - **seasonal**: authors and posts per clock hour for the last four weeks.
//!   The expectation for this hour is the *median* share of the same hour
//!   on the previous days (hour of day, once `seasonal_min_days` days are
//!   known) or the same hour of the previous weeks (hour of week, once
//!   `weekly_min_days` are known). A median shrugs off one day's outage but
//!   learns a peak that comes back every day.
//!
//! The most specific estimate with enough history wins; before
//! `level_min_minutes` of history only the prior counts. Whatever they say,
//! the expectation never falls below the prior (`prior_per_min`), so two
//! posts are never a surge, and a brand-new detector still fires on a
//! large one.

use std::cell::Cell;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{MICROS_PER_SEC, Micros};

const HOUR_US: Micros = 3_600 * MICROS_PER_SEC;
const MINUTE_US: Micros = 60 * MICROS_PER_SEC;
/// Minutes the level looks back over (not counting the minutes of a young
/// incident, which it skips; how many more are kept for that is
/// [`level_memory`]).
pub(crate) const LEVEL_MINUTES: usize = 60;
/// Hours of history kept: four weeks and a day.
const KEEP_HOURS: i64 = 29 * 24;
/// Past days the hour-of-day median looks at.
pub(crate) const DAYS_LOOKED_AT: i64 = 7;
/// Past weeks the hour-of-week median looks at.
pub(crate) const WEEKS_LOOKED_AT: i64 = 4;
const _: () = assert!(
    WEEKS_LOOKED_AT <= DAYS_LOOKED_AT,
    "the median's buffer holds days"
);

/// The detector's memory settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Memory {
    /// Minutes of the last hour with volume needed before the level is used.
    pub level_min_minutes: usize,
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

fn minute_index(t: Micros) -> i64 {
    t.div_euclid(MINUTE_US)
}

/// The firehose's own volume, shared by every service's share.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    /// Posts per minute, the last minutes seen (kept by count, see
    /// [`Volume::add`]).
    pub minutes: BTreeMap<i64, f64>,
    /// Posts per clock hour, the last four weeks.
    pub hours: BTreeMap<i64, f64>,
}

/// One service's reporting authors, in the same shape (absent = none),
/// with what the detector learned of its variance and level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reports {
    pub minutes: BTreeMap<i64, f64>,
    pub hours: BTreeMap<i64, f64>,
    /// Learned dispersion per scale ([`super::model`]).
    #[serde(default)]
    pub dispersion: super::model::Dispersion,
    /// Level correction of the seasonal profile, on the log scale.
    #[serde(default)]
    pub adjust: f64,
    /// How the distinct authors of several buckets fall short of the sum
    /// of each bucket's, per scale.
    #[serde(default)]
    pub overlap: Overlap,
    /// The seasonal shares of the last hours asked about, worked out once.
    #[serde(skip)]
    seasonal: SeasonalMemo,
}

/// The seasonal estimates of the last two clock hours asked about (a
/// window that straddles the hour asks for both), remembered: each reads
/// only earlier hours (a day or a week back), which never change once past
/// and are kept longer than it looks back, so it holds for the whole hour.
/// Working one out is a dozen tree look-ups and a sort, and the rule asks
/// at every bucket of every service (a tenth of `series`' instructions on
/// a 55-day series). Not state: it is left out of saving and of comparing
/// baselines.
#[derive(Debug, Clone, Default)]
struct SeasonalMemo(Cell<[Option<Remembered>; 2]>);

/// An hour, the memory settings it was worked out with, and its estimate.
type Remembered = (i64, Memory, Option<(f64, Basis)>);

impl SeasonalMemo {
    fn get_or(
        &self,
        hour: i64,
        memory: &Memory,
        work_out: impl FnOnce() -> Option<(f64, Basis)>,
    ) -> Option<(f64, Basis)> {
        let mut slots = self.0.get();
        if let Some((_, _, share)) = slots
            .iter()
            .flatten()
            .find(|(h, m, _)| *h == hour && m == memory)
        {
            return *share;
        }
        let share = work_out();
        // The older hour makes way (an empty slot first).
        let oldest = slots
            .iter()
            .enumerate()
            .min_by_key(|(_, slot)| slot.map_or(i64::MIN, |(h, _, _)| h))
            .map_or(0, |(i, _)| i);
        slots[oldest] = Some((hour, *memory, share));
        self.0.set(slots);
        share
    }
}

impl PartialEq for SeasonalMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The baseline learns each bucket's distinct authors, but a window counts
/// authors distinct over all its buckets: an account posting in every
/// bucket counts once in the window and once in each bucket. Summing the
/// buckets' expectations therefore overstated a window of chatty accounts
/// (one account, every bucket of a six-bucket window: 6 expected, 1
/// possible), and a real outage on top of such chatter had to outgrow a
/// line it could never reach.
///
/// So the detector learns, per scale, the ratio of the window's distinct
/// authors to the sum of its buckets' distinct authors (1 when every
/// author posts once, `1/j` when the same authors post in all `j` buckets),
/// as the ratio of two exponentially weighted means over calm buckets, and
/// scales each window's expectation by it. Anonymous counts (a plain
/// series) add the same to both sums: a series without author names is
/// never scaled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overlap {
    /// Per scale (index 0: the last bucket alone): the means of the
    /// window's distinct authors and of the sum of its buckets'.
    by_scale: Vec<[f64; 2]>,
}

impl Overlap {
    /// The ratio at `scale` (1-based buckets): 1 until learned, never
    /// below `1/scale` (a window holds at least its busiest bucket's
    /// authors) nor above 1.
    pub fn factor(&self, scale: usize) -> f64 {
        let floor = 1.0 / scale.max(1) as f64;
        match self.by_scale.get(scale.saturating_sub(1)) {
            Some(&[distinct, summed]) if summed > 0.0 => (distinct / summed).clamp(floor, 1.0),
            _ => 1.0,
        }
    }

    /// Learns one window at `scale`: `distinct` authors in it, `summed`
    /// the sum of its buckets' distinct authors; weight `alpha`. Windows
    /// without authors say nothing about how authors repeat (`false`:
    /// nothing learned).
    pub fn learn(&mut self, scale: usize, distinct: f64, summed: f64, alpha: f64) -> bool {
        if scale == 0 || !distinct.is_finite() || !summed.is_finite() || summed <= 0.0 {
            return false;
        }
        if self.by_scale.len() < scale {
            self.by_scale.resize(scale, [0.0; 2]);
        }
        let [d, s] = &mut self.by_scale[scale - 1];
        if *s == 0.0 {
            // The first window sets the ratio, instead of a weighted step
            // from nothing.
            (*d, *s) = (distinct, summed);
        } else {
            *d += alpha * (distinct - *d);
            *s += alpha * (summed - *s);
        }
        true
    }
}

fn prune(series: &mut BTreeMap<i64, f64>, oldest: i64) {
    while series.first_key_value().is_some_and(|(k, _)| *k < oldest) {
        series.pop_first();
    }
}

/// Minutes the level keeps: its hour, and the minutes a young incident
/// can skip before it teaches the level again (its minutes are left out,
/// so the hour before it must still be there at its end). Each minute kept
/// spans a bucket when buckets are longer (a 5-minute series), so the
/// skipped ones are counted in those. With a fixed three hours, a
/// `learn_during_incident_after_secs` longer than two hours (or a series)
/// let a long outage push the whole hour before it out: the level fell to
/// the prior, 0.2 a minute against a background of 6, and the incident
/// could not resolve when the outage ended.
pub fn level_memory(learn_during_incident_after_secs: i64, bucket_secs: i64) -> usize {
    let span = bucket_secs.max(60).unsigned_abs();
    let skipped = learn_during_incident_after_secs
        .max(0)
        .unsigned_abs()
        .div_ceil(span);
    LEVEL_MINUTES.saturating_add(usize::try_from(skipped).unwrap_or(usize::MAX))
}

impl Volume {
    /// Adds one bucket's posts, keeping the last `keep` minutes (and one
    /// more, the minute being filled) for the level.
    pub fn add(&mut self, bucket_start: Micros, posts: f64, keep: usize) {
        let (minute, hour) = (minute_index(bucket_start), hour_index(bucket_start));
        *self.minutes.entry(minute).or_default() += posts;
        *self.hours.entry(hour).or_default() += posts;
        // The minutes are kept by count, not by the clock: a stream that
        // feeds every bucket keeps the same minutes either way, while a
        // series with missing readings (a sampled gauge) keeps the level it
        // had across a gap instead of forgetting it.
        while self.minutes.len() > keep.saturating_add(1) {
            self.minutes.pop_first();
        }
        prune(&mut self.hours, hour - KEEP_HOURS);
    }

    /// The oldest minute kept: a service's minutes before it can no longer
    /// be read.
    fn oldest_minute(&self) -> i64 {
        self.minutes.first_key_value().map_or(i64::MIN, |(m, _)| *m)
    }
}

impl Reports {
    /// Teaches one bucket's distinct authors: to the hourly profile always,
    /// to the level only when `level` (not during a young incident).
    pub fn add(&mut self, volume: &Volume, bucket_start: Micros, authors: f64, level: bool) {
        let (minute, hour) = (minute_index(bucket_start), hour_index(bucket_start));
        if level {
            *self.minutes.entry(minute).or_default() += authors;
        }
        *self.hours.entry(hour).or_default() += authors;
        prune(&mut self.minutes, volume.oldest_minute());
        prune(&mut self.hours, hour - KEEP_HOURS);
    }

    /// Keeps the minute of `bucket_start` out of the level (a young
    /// incident's): a minute without an entry reads as one without
    /// reports, so an hour-long outage taught the level zeros, and its
    /// incident then stayed open long after the outage, the calm line
    /// having sunk below the ordinary background. NaN marks the minute;
    /// whatever is added to it later stays NaN.
    pub fn skip_level(&mut self, volume: &Volume, bucket_start: Micros) {
        self.minutes.insert(minute_index(bucket_start), f64::NAN);
        prune(&mut self.minutes, volume.oldest_minute());
    }

    /// The level: the mean of the last hour's per-minute shares (complete
    /// minutes only). A trimmed mean would be more robust, but with the
    /// low counts of most services it trims the signal away; surges are kept
    /// out by not teaching the level during an incident instead.
    fn level(&self, volume: &Volume, now: Micros, needed: usize) -> Option<f64> {
        let current = minute_index(now);
        // The last `LEVEL_MINUTES` minutes with volume that were not
        // skipped, newest first: minutes the detector saw, so a gap in the
        // readings is stepped over rather than read as an hour without
        // reports. The service's minutes are walked alongside the
        // volume's (both are ordered) instead of looked up one by one:
        // this runs for every service at every bucket, and the look-ups
        // were 5 % of a replay's CPU.
        let mut authors_of = self.minutes.range(..current).rev().peekable();
        let mut shares = [0.0; LEVEL_MINUTES];
        let (mut counted, mut count) = (0, 0);
        for (&m, &posts) in volume.minutes.range(..current).rev() {
            if counted == LEVEL_MINUTES {
                break;
            }
            while authors_of.next_if(|(a, _)| **a > m).is_some() {}
            let authors = authors_of
                .next_if(|(a, _)| **a == m)
                .map_or(0.0, |(_, a)| *a);
            if authors.is_nan() {
                continue;
            }
            counted += 1;
            if posts > 0.0 {
                shares[count] = authors / posts;
                count += 1;
            }
        }
        if count < needed.max(1) {
            return None;
        }
        // Summed oldest first, as the minutes came.
        Some(shares[..count].iter().rev().sum::<f64>() / count as f64)
    }

    /// Reporting authors per post expected for a bucket at `at` (its
    /// hour of day and week), judged at `now` (the level is the last hour
    /// before `now`), and which estimate said so; `None` while there is too
    /// little history.
    pub fn share(
        &self,
        volume: &Volume,
        at: Micros,
        now: Micros,
        memory: &Memory,
    ) -> Option<(f64, Basis)> {
        let hour = hour_index(at);
        let seasonal = self
            .seasonal
            .get_or(hour, memory, || self.seasonal_share(volume, hour, memory));
        if seasonal.is_some() {
            return seasonal;
        }
        self.level(volume, now, memory.level_min_minutes)
            .map(|share| (share, Basis::Overall))
    }

    /// The median share of `hour` on the same hour of past weeks, else of
    /// past days, when enough of them are known.
    fn seasonal_share(&self, volume: &Volume, hour: i64, memory: &Memory) -> Option<(f64, Basis)> {
        let median_of = |step: i64, count: i64, needed: usize| -> Option<f64> {
            // On the stack: this runs for every service at every bucket.
            let mut found = [0.0; DAYS_LOOKED_AT as usize];
            let mut len = 0;
            for k in 1..=count.min(DAYS_LOOKED_AT) {
                let h = hour - k * step;
                if let Some(&posts) = volume.hours.get(&h)
                    && posts > 0.0
                {
                    found[len] = self.hours.get(&h).copied().unwrap_or(0.0) / posts;
                    len += 1;
                }
            }
            let shares = &mut found[..len];
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
        median_of(168, WEEKS_LOOKED_AT, memory.weekly_min_weeks)
            .map(|share| (share, Basis::HourOfWeek))
            .or_else(|| {
                median_of(24, DAYS_LOOKED_AT, memory.seasonal_min_days)
                    .map(|share| (share, Basis::HourOfDay))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The minutes the daemon's defaults keep (two hours of learning delay).
    const KEEP: usize = 3 * LEVEL_MINUTES;

    #[test]
    fn the_level_keeps_its_hour_and_the_minutes_an_incident_can_skip() {
        // (learning delay, bucket width, minutes kept)
        let cases = [
            (2 * 3600, 10, KEEP),
            (0, 10, LEVEL_MINUTES),
            (90, 10, LEVEL_MINUTES + 2),
            (86_400, 10, LEVEL_MINUTES + 1440),
            // A 5-minute series: each kept minute is a bucket.
            (60 * 3600, 300, LEVEL_MINUTES + 720),
            (-5, 10, LEVEL_MINUTES),
            (i64::MAX, 1, LEVEL_MINUTES + (i64::MAX / 60 + 1) as usize),
        ];
        for (delay, bucket, kept) in cases {
            assert_eq!(
                level_memory(delay, bucket),
                kept,
                "{delay} s, {bucket} s buckets"
            );
        }
    }

    #[test]
    fn the_seasonal_share_is_the_median_of_past_days() {
        let memory = Memory {
            level_min_minutes: 10,
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
            volume.add(t, 1000.0, KEEP);
            reports.add(&volume, t, authors, true);
        }
        let (share, basis) = reports
            .share(&volume, now, now, &memory)
            .expect("enough days");
        assert_eq!(basis, Basis::HourOfDay);
        assert_eq!(share, 0.011, "the median: the outage day does not count");
    }

    /// The level is the last hour of minutes the detector saw: a gap
    /// without any volume (a sampled gauge's missing readings) is stepped
    /// over, a young incident's minutes are skipped, and minutes seen but
    /// without reports count as zero.
    #[test]
    fn the_level_reads_the_last_hour_the_detector_saw() {
        let memory = Memory {
            level_min_minutes: 10,
            seasonal_min_days: 3,
            weekly_min_weeks: 3,
        };
        // (minutes fed: (minute, authors per 100 posts, skipped), minute
        // judged, the level or None)
        type Case = (&'static [(i64, i64, f64, bool)], i64, Option<f64>);
        let cases: [Case; 6] = [
            // An hour of 2 per 100 posts, judged at once and after a gap of
            // four hours with no volume at all.
            (&[(0, 60, 2.0, false)], 60, Some(0.02)),
            (&[(0, 60, 2.0, false)], 300, Some(0.02)),
            // Before and after the gap: the last 60 minutes seen.
            (
                &[(0, 60, 2.0, false), (300, 330, 6.0, false)],
                330,
                Some(0.04),
            ),
            // Seen without reports: zeros, over the whole hour.
            (&[(0, 30, 0.0, false), (30, 60, 4.0, false)], 60, Some(0.02)),
            // A young incident's minutes are skipped: the hour reaches back
            // past them.
            (&[(0, 60, 2.0, false), (60, 90, 50.0, true)], 90, Some(0.02)),
            // Too few minutes seen.
            (&[(0, 5, 2.0, false)], 5, None),
        ];
        for (fed, judged, want) in cases {
            let (mut volume, mut reports) = (Volume::default(), Reports::default());
            for &(from, to, authors, skipped) in fed {
                for minute in from..to {
                    let t = minute * MINUTE_US;
                    volume.add(t, 100.0, KEEP);
                    if skipped {
                        reports.skip_level(&volume, t);
                    } else if authors > 0.0 {
                        reports.add(&volume, t, authors, true);
                    }
                }
            }
            let got = reports.level(&volume, judged * MINUTE_US, memory.level_min_minutes);
            match (got, want) {
                (Some(g), Some(w)) => {
                    assert!((g - w).abs() < 1e-12, "{fed:?} at {judged}: {g}, want {w}")
                }
                (g, w) => assert_eq!(g, w, "{fed:?} at {judged}"),
            }
        }
    }

    /// The remembered seasonal share is the one worked out afresh, however
    /// the hours asked about alternate (a window straddling the hour asks
    /// for two) and whatever the memory settings.
    #[test]
    fn the_remembered_seasonal_share_is_the_fresh_one() {
        let (mut volume, mut reports) = (Volume::default(), Reports::default());
        // Three weeks of hours, each with its own share.
        for hour in 0..21 * 24 {
            let t = hour * HOUR_US;
            volume.add(t, 1000.0, KEEP);
            reports.add(&volume, t, ((hour * 7919) % 13) as f64, true);
        }
        let daily = Memory {
            level_min_minutes: 10,
            seasonal_min_days: 3,
            // More weeks than three weeks of history hold: by day.
            weekly_min_weeks: 4,
        };
        let weekly = Memory {
            weekly_min_weeks: 2,
            ..daily
        };
        let now = 21 * 24 * HOUR_US;
        let asked = [0, -1, 0, 0, -1, -2, 0, -1, 5, -3, 0];
        for (i, &back) in asked.iter().enumerate() {
            let memory = if i % 3 == 0 { weekly } else { daily };
            let at = now + back * HOUR_US;
            let remembered = reports.share(&volume, at, now, &memory);
            let mut fresh = reports.clone();
            fresh.seasonal = SeasonalMemo::default();
            let want = fresh.share(&volume, at, now, &memory);
            assert!(want.is_some(), "three weeks are enough history");
            assert_eq!(remembered, want, "hour {back} asked {i}th");
        }
    }

    /// The overlap's ratio: 1 until learned and for authors who post once,
    /// `1/j` for the same authors in all `j` buckets, never outside those.
    #[test]
    fn the_overlap_is_the_ratio_of_distinct_to_summed_authors() {
        // (scale, windows learned as (distinct, summed), factor)
        type Case = (usize, &'static [(f64, f64)], f64);
        let cases: [Case; 7] = [
            (6, &[], 1.0),
            (6, &[(0.0, 0.0)], 1.0),
            (6, &[(12.0, 12.0)], 1.0),
            (6, &[(4.0, 24.0)], 1.0 / 6.0),
            (3, &[(1.0, 30.0)], 1.0 / 3.0),
            (6, &[(5.0, 10.0), (5.0, 10.0)], 0.5),
            (2, &[(f64::NAN, 4.0), (3.0, 4.0)], 0.75),
        ];
        for (scale, windows, want) in cases {
            let mut overlap = Overlap::default();
            for &(distinct, summed) in windows {
                overlap.learn(scale, distinct, summed, 0.1);
            }
            let got = overlap.factor(scale);
            assert!(
                (got - want).abs() < 1e-12,
                "{windows:?} at {scale}: {got}, want {want}"
            );
        }
    }
}
