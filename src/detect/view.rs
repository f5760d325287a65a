//! A service's recent window as the rule reads it: what its baseline
//! expects of each scale (the last 1, 2, … buckets), and what each scale
//! holds (reports, distinct authors with copies and one server's accounts
//! weighed down, recoveries).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use super::baseline::{self, Basis, Reports, Volume};
use super::{DetectorConfig, ServiceState};
use crate::Micros;
use crate::window::{AuthorId, ServerId, ServiceCounts};

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
    let prior_window = config.prior_window();
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

/// The recent window at every scale from `first` to `expectations.len()`
/// (scale `j`: the buckets that started at or after `now − (j − 1)`
/// buckets), each with its expectation, shortest first. One pass over the
/// buckets, newest first, each scale adding what it holds beyond the one
/// before: building each scale from scratch cost the square of the window,
/// per service and bucket (a day of 10 s buckets took 7.3 s through
/// `series` with a window of 360 buckets, and 35 s for 3,000 rows with
/// 1,000).
pub(super) fn window_views(
    state: &ServiceState,
    now: Micros,
    bucket_us: Micros,
    first: usize,
    expectations: &[(f64, Basis)],
    caps: Caps,
) -> Vec<WindowView> {
    let mut sums = Sums::new(caps);
    let mut newest_first = state.recent.iter().rev().peekable();
    let mut out = Vec::with_capacity(expectations.len().saturating_sub(first.saturating_sub(1)));
    for (i, &(expected, basis)) in expectations.iter().enumerate() {
        let since = now - i as i64 * bucket_us;
        while let Some(bucket) = newest_first.next_if(|b| b.start >= since) {
            sums.add(&bucket.counts);
        }
        if i + 1 >= first {
            out.push(sums.view(expected, basis));
        }
    }
    out
}

/// The buckets that started at or after `since`, summed: one scale (the
/// status API's whole window).
pub(super) fn window_view(
    state: &ServiceState,
    since: Micros,
    expected: f64,
    basis: Basis,
    caps: Caps,
) -> WindowView {
    let mut sums = Sums::new(caps);
    for bucket in state.recent.iter().filter(|b| b.start >= since) {
        sums.add(&bucket.counts);
    }
    sums.view(expected, basis)
}

/// How many authors one group may count for, in a window: of the
/// accounts sharing one long text, and of the accounts one server vouches
/// for (see [`crate::window::ServiceCounts::servers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Caps {
    pub per_text: u64,
    pub per_server: u64,
}

impl Caps {
    pub fn of(config: &DetectorConfig) -> Caps {
        Caps {
            per_text: config.max_authors_per_text,
            per_server: config.max_authors_per_server,
        }
    }
}

/// Buckets summed as a window counts them. Saturating: a plain series may
/// give counts near `u64::MAX`, and a sum that wrapped would read as a
/// calm window.
///
/// Accounts are capped per group in two ways ([`Caps`]), one after the
/// other: the same long text from many accounts counts as a few of them
/// ([`Capped`]); then, of the accounts still counted, those of one server
/// where accounts cost nothing to make count as a few. In that order, an
/// account the first cap leaves out holds none of a server's places: with
/// both taken at once, accounts sharing a text, past its cap, could take
/// a server's places and leave its real authors out of both.
struct Sums {
    authors: HashSet<AuthorId>,
    anonymous: u64,
    reports: u64,
    summed: u64,
    recoveries: u64,
    copies: Capped,
    /// Accounts per server, in digest order.
    servers: HashMap<ServerId, BTreeSet<AuthorId>>,
    per_server: usize,
}

impl Sums {
    fn new(caps: Caps) -> Self {
        Sums {
            authors: HashSet::new(),
            anonymous: 0,
            reports: 0,
            summed: 0,
            recoveries: 0,
            copies: Capped::new(caps.per_text),
            servers: HashMap::new(),
            per_server: usize::try_from(caps.per_server.max(1)).unwrap_or(usize::MAX),
        }
    }

    fn add(&mut self, counts: &ServiceCounts) {
        self.authors.extend(counts.authors.iter().copied());
        self.anonymous = self.anonymous.saturating_add(counts.extra_authors);
        self.reports = self.reports.saturating_add(counts.reports);
        self.summed = self.summed.saturating_add(distinct(counts));
        self.recoveries = self.recoveries.saturating_add(counts.recoveries);
        for &(text, author) in &counts.copies {
            self.copies.add(text, author);
        }
        for &(server, author) in counts.servers.iter() {
            self.servers.entry(server).or_default().insert(author);
        }
    }

    /// Accounts still counted after the copies' cap that are past their
    /// server's cap in every server they came through (a Mastodon account
    /// is of one server; the rule holds for any). Only servers over the
    /// cap are walked: this runs for every scale of the window.
    fn past_their_servers(&self) -> u64 {
        let over = |a: &&BTreeSet<AuthorId>| a.len() > self.per_server;
        if !self.servers.values().any(|a| over(&a)) {
            return 0;
        }
        let mut within: HashSet<AuthorId> = HashSet::new();
        let mut past: HashSet<AuthorId> = HashSet::new();
        for accounts in self.servers.values().filter(over) {
            let counted = accounts.iter().filter(|a| !self.copies.is_excess(a));
            for (place, &author) in counted.enumerate() {
                if place < self.per_server {
                    within.insert(author);
                } else {
                    past.insert(author);
                }
            }
        }
        // Within a server under the cap, an account counts.
        let under: Vec<&BTreeSet<AuthorId>> = self.servers.values().filter(|a| !over(a)).collect();
        past.iter()
            .filter(|a| !within.contains(a) && !under.iter().any(|u| u.contains(a)))
            .count() as u64
    }

    fn view(&self, expected: f64, basis: Basis) -> WindowView {
        let uncapped = (self.authors.len() as u64).saturating_add(self.anonymous);
        let excess = self.copies.excess.saturating_add(self.past_their_servers());
        WindowView {
            reports: self.reports,
            uncapped,
            summed: self.summed,
            authors: uncapped.saturating_sub(excess),
            recoveries: self.recoveries,
            expected,
            basis,
        }
    }
}

/// Accounts in groups (one long text's), each group counting its first
/// `cap` accounts in the order of their digests (the same in every run,
/// as the ids' order was). An account past the cap in every group it is
/// in is excess; one within it in some group still counts (a sum of each
/// group's excess took the same accounts off once per group, down to
/// none). So accounts in groups count for at most `cap` per group. Kept
/// as buckets are added, for every scale of the window in one pass.
struct Capped {
    /// Accounts per group, in digest order.
    groups: HashMap<u64, BTreeSet<AuthorId>>,
    /// Per account: in how many groups it is within the cap, and past it.
    standing: HashMap<AuthorId, (u64, u64)>,
    /// Accounts past the cap in every group they are in.
    excess: u64,
    cap: usize,
}

impl Capped {
    fn new(cap: u64) -> Self {
        Capped {
            groups: HashMap::new(),
            standing: HashMap::new(),
            excess: 0,
            cap: usize::try_from(cap.max(1)).unwrap_or(usize::MAX),
        }
    }

    fn add(&mut self, group: u64, author: AuthorId) {
        let accounts = self.groups.entry(group).or_default();
        if !accounts.insert(author) {
            return;
        }
        // The first account past the cap, now that `author` is in (none
        // without walking the group while it is within the cap).
        let first_past = if accounts.len() > self.cap {
            accounts.iter().nth(self.cap).copied()
        } else {
            None
        };
        match first_past {
            None => self.stand(author, (1, 0), (0, 0)),
            Some(first_past) if author < first_past => {
                // `author` took a place within the cap from `first_past`.
                self.stand(author, (1, 0), (0, 0));
                self.stand(first_past, (0, 1), (1, 0));
            }
            Some(_) => self.stand(author, (0, 1), (0, 0)),
        }
    }

    /// Adds `plus` to an account's (within, past) counts and takes `minus`
    /// off, keeping the number of accounts past the cap everywhere.
    fn stand(&mut self, author: AuthorId, plus: (u64, u64), minus: (u64, u64)) {
        let counts = self.standing.entry(author).or_default();
        let excess_before = is_excess(*counts);
        counts.0 = (counts.0 + plus.0).saturating_sub(minus.0);
        counts.1 = (counts.1 + plus.1).saturating_sub(minus.1);
        match (excess_before, is_excess(*counts)) {
            (false, true) => self.excess += 1,
            (true, false) => self.excess -= 1,
            _ => {}
        }
    }

    fn is_excess(&self, author: &AuthorId) -> bool {
        self.standing.get(author).is_some_and(|&c| is_excess(c))
    }
}

/// Whether an account's (within, past) counts leave it out.
fn is_excess((within, past): (u64, u64)) -> bool {
    within == 0 && past > 0
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
