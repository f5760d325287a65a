//! A service's recent window as the rule reads it: what its baseline
//! expects of each scale (the last 1, 2, … buckets), and what each scale
//! holds (reports, distinct authors with copies weighed down, recoveries).

use std::collections::VecDeque;

use super::baseline::{self, Basis, Reports, Volume};
use super::{DetectorConfig, ServiceState};
use crate::Micros;
use crate::window::ServiceCounts;

/// The recent window of one service (or its last few buckets), summed.
#[derive(Debug, Clone, Copy)]
pub(super) struct WindowView {
    pub reports: u64,
    pub authors: u64,
    /// Distinct authors before copies are capped, and the sum of each
    /// bucket's (what they would be if nobody posted in two buckets): how
    /// authors repeat across buckets is learned from the two. Copies stay
    /// out of it: a copypasta hour would teach a ratio that outlives it.
    pub uncapped: u64,
    pub summed: u64,
    pub recoveries: u64,
    pub expected: f64,
    pub basis: Basis,
}

/// The level correction never exceeds a factor of e^3 (20×) either way.
pub(super) const MAX_ADJUST: f64 = 3.0;

/// The expectation of each scale of a service's window at `now` (the last
/// 1, 2, … buckets), in distinct authors, before the current bucket teaches
/// the baseline: each bucket at its own hour's share (a window straddling
/// the end of a daily peak expects the peak's tail), corrected by the
/// learned level shift when the share is seasonal, scaled by how the
/// service's authors repeat across buckets ([`baseline::Overlap`]), never
/// below the prior's part of the window. Also says whether the detector is
/// still warming up.
pub(super) fn expectations(
    baseline: &Reports,
    volume: &Volume,
    recent_volume: &VecDeque<(Micros, u64)>,
    now: Micros,
    config: &DetectorConfig,
) -> (Vec<(f64, Basis)>, bool) {
    let memory = config.memory();
    let bucket_us = config.bucket_us();
    let scales = config.scales();
    let prior_window = config.prior_per_min * config.window_secs as f64 / 60.0;
    // A bucket's share depends on its hour only: the current hour's,
    // worked out here to tell warming up, serves the buckets of this hour.
    let current = baseline.share(volume, now, now, &memory);
    let warming_up = current.is_none();
    let adjust = baseline.adjust.clamp(-MAX_ADJUST, MAX_ADJUST).exp();
    let mut shares: Vec<(i64, Option<(f64, Basis)>)> = vec![(baseline::hour_index(now), current)];
    let mut per_bucket: Vec<(Micros, f64)> = Vec::with_capacity(recent_volume.len());
    let mut basis = Basis::Prior;
    for &(start, posts) in recent_volume {
        let hour = baseline::hour_index(start);
        let share = match shares.iter().find(|(h, _)| *h == hour) {
            Some((_, share)) => *share,
            None => {
                let share = baseline.share(volume, start, now, &memory);
                shares.push((hour, share));
                share
            }
        };
        let expected = match share {
            Some((share, b)) => {
                basis = b;
                let seasonal = matches!(b, Basis::HourOfDay | Basis::HourOfWeek);
                share * posts as f64 * if seasonal { adjust } else { 1.0 }
            }
            None => 0.0,
        };
        per_bucket.push((start, expected));
    }
    let mut out = Vec::with_capacity(scales);
    // Newest first: scale `j` adds every bucket that started in its slot.
    // A bucket missing from the stream (no post at all in it) leaves its
    // slot empty; it must not shift older buckets into younger slots, which
    // would leave them out of the window's expectation while their authors
    // stay in its count.
    let mut newest_first = per_bucket.iter().rev().peekable();
    let mut sum = 0.0;
    for j in 1..=scales {
        let since = now - (j as i64 - 1) * bucket_us;
        while let Some((_, e)) = newest_first.next_if(|(start, _)| *start >= since) {
            sum += e;
        }
        let prior = prior_window * j as f64 / scales as f64;
        let expected = sum * baseline.overlap.factor(j);
        out.push(if expected > prior {
            (expected, basis)
        } else {
            (prior, Basis::Prior)
        });
    }
    (out, warming_up)
}

/// Distinct reporting authors of one bucket (named ones and anonymous
/// counts from a plain series).
pub(super) fn distinct(counts: &ServiceCounts) -> u64 {
    counts.authors.len() as u64 + counts.extra_authors
}

/// The buckets of the recent window that started at or after `since`,
/// summed.
pub(super) fn window_view(
    state: &ServiceState,
    since: Micros,
    expected: f64,
    basis: Basis,
    max_per_text: u64,
) -> WindowView {
    let buckets = || state.recent.iter().filter(move |b| b.start >= since);
    let mut authors: Vec<&str> = buckets()
        .flat_map(|b| b.counts.authors.iter().map(String::as_str))
        .collect();
    authors.sort_unstable();
    authors.dedup();
    // Saturating: a plain series may give counts near `u64::MAX`, and a
    // sum that wrapped would read as a calm window.
    let total = |count: fn(&ServiceCounts) -> u64| {
        buckets().fold(0u64, |sum, b| sum.saturating_add(count(&b.counts)))
    };
    let anonymous = total(|c| c.extra_authors);
    // The same long text from many accounts counts as a few of them: the
    // first `max_per_text` of its accounts in id order. An account past
    // that in every text it shared is not counted; one within it in some
    // text still is (a sum of each text's excess took the same accounts
    // off once per text, down to none).
    let mut copies: Vec<(u64, &str)> = buckets()
        .flat_map(|b| b.counts.copies.iter().map(|(f, a)| (*f, a.as_str())))
        .collect();
    copies.sort_unstable();
    copies.dedup();
    let cap = usize::try_from(max_per_text.max(1)).unwrap_or(usize::MAX);
    let (mut within, mut past): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for group in copies.chunk_by(|a, b| a.0 == b.0) {
        for (i, (_, author)) in group.iter().enumerate() {
            if i < cap {
                within.push(author);
            } else {
                past.push(author);
            }
        }
    }
    within.sort_unstable();
    within.dedup();
    past.sort_unstable();
    past.dedup();
    let excess = past
        .iter()
        .filter(|a| within.binary_search(a).is_err())
        .count() as u64;
    let uncapped = (authors.len() as u64).saturating_add(anonymous);
    WindowView {
        reports: total(|c| c.reports),
        uncapped,
        summed: total(distinct),
        authors: uncapped.saturating_sub(excess),
        recoveries: total(|c| c.recoveries),
        expected,
        basis,
    }
}
