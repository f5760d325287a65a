//! Detect: when is a service's report rate "well above normal"?
//!
//! After each closed bucket, for every service with recent reports or an
//! open incident, the detector compares the distinct reporting authors of
//! the recent window (`window_secs`) with what its baseline
//! ([`baseline`]) expects for that much firehose volume at this time of
//! day:
//!
//! - **fire** when the window holds at least `min_authors`, at least
//!   `fire_ratio` times the expectation, and the Poisson probability of that
//!   many or more under the expectation is below `fire_p`;
//! - **escalate** (an `updated` event) when the severity grows: by how far
//!   above (`medium_ratio`, `high_ratio`) or how long (`medium_after_secs`,
//!   `high_after_secs`) the rate stands above the baseline;
//! - **resolve** when the window stays calm (fewer authors than `calm_ratio`
//!   × expected, or fewer than half of `min_authors`) for
//!   `resolve_after_secs`, or for `resolve_after_recovery_secs` when posts
//!   saying the service is back outnumber the reports; a dip shorter than
//!   that keeps the incident open (no flapping);
//! - after a resolution, wait `cooldown_secs` before a new incident.
//!
//! Counting authors rather than posts keeps one account posting 200 times
//! from looking like 200 people, and the same long text from many accounts
//! counts as at most `max_authors_per_text`. Pure: buckets in, transitions
//! out, event time only.

pub mod baseline;
mod evidence;
mod incident;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use statrs::distribution::{DiscreteCDF, Poisson};

pub use baseline::Basis;
pub use evidence::{Evidence, PhraseCount};
pub use incident::{Incident, Measure, Severity, Transition, TransitionKind, incident_id};

use self::baseline::{Memory, Reports, Volume};
use crate::window::{Bucket, ServiceCounts};
use crate::{MICROS_PER_SEC, Micros};

/// Every setting of the rule; see the README's "How detection works".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Width of one bucket (must equal the window's).
    pub bucket_secs: i64,
    /// The recent window the rule looks at.
    pub window_secs: i64,
    /// Distinct authors needed in the window before anything fires.
    pub min_authors: u64,
    /// While the detector has less than `level_min_minutes` of history
    /// (a brand-new state), `min_authors` is multiplied by this: a busy
    /// service's ordinary background must not page at first start, a large
    /// surge still does.
    pub warmup_factor: u64,
    /// How many times the expected count the window must reach.
    pub fire_ratio: f64,
    /// Largest chance probability (Poisson tail) that still fires.
    pub fire_p: f64,
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
        }
    }
}

impl DetectorConfig {
    fn memory(&self) -> Memory {
        Memory {
            level_min_minutes: self.level_min_minutes,
            seasonal_min_days: self.seasonal_min_days,
            weekly_min_weeks: self.weekly_min_weeks,
        }
    }

    fn bucket_us(&self) -> Micros {
        self.bucket_secs.max(1) * MICROS_PER_SEC
    }

    fn per_min(&self, per_window: f64) -> f64 {
        per_window * 60.0 / self.window_secs.max(1) as f64
    }
}

/// What the detector remembers per service besides its baseline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ServiceState {
    /// The buckets of the recent window that had reports, oldest first.
    recent: VecDeque<RecentBucket>,
    incident: Option<Incident>,
    /// Since when the window has been calm during an incident.
    calm_since: Option<Micros>,
    cooldown_until: Option<Micros>,
    discovered: bool,
    /// Start of the last bucket with reports.
    last_report: Micros,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RecentBucket {
    start: Micros,
    counts: ServiceCounts,
}

/// The part of the detector saved with every checkpoint: open incidents and
/// recent windows. Baselines are saved apart, only when they change.
/// Opaque outside the detector; `state` stores it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    services: BTreeMap<String, ServiceState>,
    volume: Volume,
    recent_volume: VecDeque<(Micros, u64)>,
}

#[derive(Debug, Clone, Default)]
pub struct Detector {
    config: DetectorConfig,
    state: Snapshot,
    baselines: BTreeMap<String, Reports>,
    /// Services whose baseline changed since the last [`Detector::take_changed`].
    changed: BTreeSet<String>,
}

/// Where one service stands (see [`Detector::status`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceStatus {
    pub service: String,
    /// Reports and distinct authors in the recent window.
    pub reports: u64,
    pub authors: u64,
    /// Distinct reporting authors per minute in the window.
    pub rate_per_min: f64,
    /// What the baseline expects per minute now.
    pub expected_per_min: f64,
    /// The rate at which an incident would fire now (ratio and minimum).
    pub fire_per_min: f64,
    /// Chance probability of the window under the expectation.
    pub p_value: f64,
    pub basis: Basis,
    /// Start of the last bucket with reports (event time).
    pub last_report: Micros,
    pub discovered: bool,
    /// The open incident, if any.
    pub incident: Option<Incident>,
}

/// The recent window of one service, summed.
struct WindowView {
    reports: u64,
    authors: u64,
    recoveries: u64,
    expected: f64,
    basis: Basis,
}

impl Detector {
    pub fn new(config: DetectorConfig) -> Self {
        Detector {
            config,
            ..Detector::default()
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Saved state for the checkpoint (without the baselines). Typed: the
    /// store encodes it, and a failure to is the store's error.
    pub fn snapshot(&self) -> Snapshot {
        self.state.clone()
    }

    /// Baselines changed since the last call: (service, its baseline, or
    /// `None` when it was forgotten). Saved with the same batch.
    pub fn take_changed(&mut self) -> Vec<(String, Option<Reports>)> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .map(|id| {
                let value = self.baselines.get(&id).cloned();
                (id, value)
            })
            .collect()
    }

    /// Continues from a checkpoint's snapshot (`None`: start afresh) and
    /// the saved baselines.
    pub fn restore(
        config: DetectorConfig,
        state: Option<Snapshot>,
        baselines: Vec<(String, Reports)>,
    ) -> Self {
        Detector {
            config,
            state: state.unwrap_or_default(),
            baselines: baselines.into_iter().collect(),
            changed: BTreeSet::new(),
        }
    }

    /// Services the detector keeps state for (each costs a step per bucket).
    pub fn service_count(&self) -> usize {
        self.state.services.len()
    }

    /// Incidents open right now.
    pub fn open_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.state
            .services
            .values()
            .filter_map(|s| s.incident.as_ref())
    }

    /// Where every tracked service stands at `now` (the start of the bucket
    /// just fed): its window, the expectation and the level that would fire.
    /// For the status API and the dashboard; changes nothing.
    pub fn status(&self, now: Micros) -> Vec<ServiceStatus> {
        let config = &self.config;
        let empty = Reports::default();
        self.state
            .services
            .iter()
            .map(|(id, state)| {
                let baseline = self.baselines.get(id).unwrap_or(&empty);
                let (expected, basis, warming_up) = expectation(
                    baseline,
                    &self.state.volume,
                    &self.state.recent_volume,
                    now,
                    config,
                );
                let view = window_view(state, expected, basis, config.max_authors_per_text);
                let min_authors = if warming_up {
                    config.min_authors * config.warmup_factor.max(1)
                } else {
                    config.min_authors
                };
                ServiceStatus {
                    service: id.clone(),
                    reports: view.reports,
                    authors: view.authors,
                    rate_per_min: config.per_min(view.authors as f64),
                    expected_per_min: config.per_min(expected),
                    fire_per_min: config
                        .per_min((min_authors as f64).max(config.fire_ratio * expected)),
                    p_value: poisson_tail(expected, view.authors),
                    basis,
                    last_report: state.last_report,
                    discovered: state.discovered,
                    incident: state.incident.clone(),
                }
            })
            .collect()
    }

    /// Feeds one closed bucket; returns the incidents that fired, escalated
    /// or resolved.
    pub fn on_bucket(&mut self, bucket: &Bucket) -> Vec<Transition> {
        let window_us = self.config.window_secs * MICROS_PER_SEC;
        // Series without a volume count one unit per bucket: the share is
        // then simply reports per bucket.
        let volume = bucket.total_posts.max(1);
        self.state.volume.add(bucket.start, volume as f64);
        self.state.recent_volume.push_back((bucket.start, volume));
        while self
            .state
            .recent_volume
            .front()
            .is_some_and(|(t, _)| t + window_us <= bucket.start)
        {
            self.state.recent_volume.pop_front();
        }
        for (id, counts) in &bucket.services {
            let state = self.state.services.entry(id.clone()).or_default();
            state.discovered = counts.discovered;
            state.last_report = bucket.start;
            state.recent.push_back(RecentBucket {
                start: bucket.start,
                counts: counts.clone(),
            });
        }
        let ids: Vec<String> = self.state.services.keys().cloned().collect();
        let mut transitions = Vec::new();
        for id in ids {
            if let Some(t) = self.step(&id, bucket.start) {
                transitions.push(t);
            }
        }
        self.forget_quiet(bucket.start);
        transitions
    }

    /// Drops services with nothing left to remember: no incident, no recent
    /// reports, no cooldown, and (for catalogued services) no report for
    /// four weeks, or (for discovered ones, created when their first
    /// admitted bucket arrives) for an hour: a quiet made-up name must not
    /// cost a detector run per bucket for long.
    fn forget_quiet(&mut self, now: Micros) {
        let mut forgotten = Vec::new();
        self.state.services.retain(|id, s| {
            // The hourly profile reaches four weeks back.
            let keep_for = if s.discovered { 3600 } else { 29 * 86_400 } * MICROS_PER_SEC;
            let keep = s.incident.is_some()
                || !s.recent.is_empty()
                || s.cooldown_until.is_some_and(|t| t > now)
                || now - s.last_report < keep_for;
            if !keep {
                forgotten.push(id.clone());
            }
            keep
        });
        for id in forgotten {
            self.baselines.remove(&id);
            self.changed.insert(id);
        }
    }

    fn step(&mut self, id: &str, now: Micros) -> Option<Transition> {
        let config = self.config.clone();
        let bucket_us = config.bucket_us();
        let window_us = config.window_secs * MICROS_PER_SEC;
        let baseline = self.baselines.entry(id.to_owned()).or_default();
        let state = self.state.services.get_mut(id)?;
        while state
            .recent
            .front()
            .is_some_and(|b| b.start + window_us <= now)
        {
            state.recent.pop_front();
        }

        let (expected, basis, warming_up) = expectation(
            baseline,
            &self.state.volume,
            &self.state.recent_volume,
            now,
            &config,
        );
        let view = window_view(state, expected, basis, config.max_authors_per_text);
        let measure = Measure {
            reports: view.reports,
            authors: view.authors,
            rate_per_min: config.per_min(view.authors as f64),
            baseline_per_min: config.per_min(view.expected),
            basis: view.basis,
        };

        // Teach the baseline: the hourly profile always (its median over
        // days ignores a one-off surge), the level unless a young incident
        // is open (a surge must not teach the detector that surges are
        // normal). Quiet buckets need no write: absent minutes count as 0.
        let this_bucket = state
            .recent
            .back()
            .filter(|b| b.start == now)
            .map_or(0, |b| distinct(&b.counts)) as f64;
        if this_bucket > 0.0 {
            let level = state.incident.as_ref().is_none_or(|incident| {
                now - incident.started_at
                    >= config.learn_during_incident_after_secs * MICROS_PER_SEC
            });
            baseline.add(now, this_bucket, level);
            self.changed.insert(id.to_owned());
        }

        let at = now + bucket_us;
        if let Some(incident) = state.incident.as_mut() {
            let bucket_reports = state
                .recent
                .back()
                .filter(|b| b.start == now)
                .map_or(0, |b| b.counts.reports);
            incident.observe(bucket_reports, view.authors);
            let ratio = view.authors as f64 / view.expected.max(f64::MIN_POSITIVE);
            let recovering = view.recoveries > view.reports && view.recoveries > 0;
            let calm = (view.authors as f64) < config.calm_ratio * view.expected
                || view.authors * 2 < config.min_authors
                || recovering;
            if !calm {
                state.calm_since = None;
                let severity =
                    Severity::grade(&config, ratio, view.authors, at - incident.started_at);
                if severity > incident.severity {
                    incident.severity = severity;
                    let evidence =
                        evidence::gather(state.recent.iter().map(|b| &b.counts), config.samples);
                    let incident = state.incident.as_mut()?;
                    return Some(incident.transition(
                        TransitionKind::Updated,
                        at,
                        &measure,
                        evidence,
                    ));
                }
                return None;
            }
            let since = *state.calm_since.get_or_insert(now);
            let needed = if recovering {
                config.resolve_after_recovery_secs
            } else {
                config.resolve_after_secs
            };
            if at - since < needed * MICROS_PER_SEC {
                return None;
            }
            let mut incident = state.incident.take()?;
            state.calm_since = None;
            state.cooldown_until = Some(now + config.cooldown_secs * MICROS_PER_SEC);
            let evidence = Evidence::default();
            return Some(incident.transition(TransitionKind::Resolved, at, &measure, evidence));
        }
        if state.cooldown_until.is_some_and(|until| now < until) {
            return None;
        }
        state.cooldown_until = None;
        let min_authors = if warming_up {
            config.min_authors * config.warmup_factor.max(1)
        } else {
            config.min_authors
        };
        if view.authors < min_authors || (view.authors as f64) < config.fire_ratio * view.expected {
            return None;
        }
        let p = poisson_tail(view.expected, view.authors);
        if p > config.fire_p {
            return None;
        }
        let ratio = view.authors as f64 / view.expected.max(f64::MIN_POSITIVE);
        let onset = state.recent.front().map_or(now, |b| b.start);
        let severity = Severity::grade(&config, ratio, view.authors, at - onset);
        let evidence = evidence::gather(state.recent.iter().map(|b| &b.counts), config.samples);
        let mut incident = Incident::open(
            id,
            onset,
            severity,
            p,
            state.discovered,
            view.reports,
            view.authors,
            view.basis,
        );
        let transition = incident.transition(TransitionKind::Firing, at, &measure, evidence);
        state.incident = Some(incident);
        state.calm_since = None;
        Some(transition)
    }
}

/// The expectation of a service's window at `now`, in distinct authors,
/// before the current bucket teaches the baseline: each bucket of the
/// window at its own hour's share (a window straddling the end of a daily
/// peak expects the peak's tail), never below the prior. Also says which
/// baseline answered and whether the detector is still warming up.
fn expectation(
    baseline: &Reports,
    volume: &Volume,
    recent_volume: &VecDeque<(Micros, u64)>,
    now: Micros,
    config: &DetectorConfig,
) -> (f64, Basis, bool) {
    let memory = config.memory();
    let prior_window = config.prior_per_min * config.window_secs as f64 / 60.0;
    let warming_up = baseline.share(volume, now, now, &memory).is_none();
    let mut shares: Vec<(i64, Option<(f64, Basis)>)> = Vec::new();
    let mut from_baseline = 0.0;
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
        if let Some((share, b)) = share {
            from_baseline += share * posts as f64;
            basis = b;
        }
    }
    if from_baseline > prior_window {
        (from_baseline, basis, warming_up)
    } else {
        (prior_window, Basis::Prior, warming_up)
    }
}

/// Distinct reporting authors of one bucket (named ones and anonymous
/// counts from a plain series).
fn distinct(counts: &ServiceCounts) -> u64 {
    counts.authors.len() as u64 + counts.extra_authors
}

fn window_view(state: &ServiceState, expected: f64, basis: Basis, max_per_text: u64) -> WindowView {
    let mut authors: Vec<&str> = state
        .recent
        .iter()
        .flat_map(|b| b.counts.authors.iter().map(String::as_str))
        .collect();
    authors.sort_unstable();
    authors.dedup();
    let anonymous: u64 = state.recent.iter().map(|b| b.counts.extra_authors).sum();
    // The same long text from many accounts counts as a few of them.
    let mut copies: Vec<(u64, &str)> = state
        .recent
        .iter()
        .flat_map(|b| b.counts.copies.iter().map(|(f, a)| (*f, a.as_str())))
        .collect();
    copies.sort_unstable();
    copies.dedup();
    let mut excess = 0u64;
    for group in copies.chunk_by(|a, b| a.0 == b.0) {
        excess += (group.len() as u64).saturating_sub(max_per_text.max(1));
    }
    WindowView {
        reports: state.recent.iter().map(|b| b.counts.reports).sum(),
        authors: (authors.len() as u64 + anonymous).saturating_sub(excess),
        recoveries: state.recent.iter().map(|b| b.counts.recoveries).sum(),
        expected,
        basis,
    }
}

/// P(X ≥ k) for X ~ Poisson(λ).
pub fn poisson_tail(lambda: f64, k: u64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    match Poisson::new(lambda.max(1e-9)) {
        Ok(dist) => dist.sf(k - 1),
        Err(_) => 1.0,
    }
}

#[cfg(test)]
mod tests;
