//! Detect: when is a service's report rate "well above normal"?
//!
//! After each closed bucket, for every service with recent reports or an
//! open incident, the detector compares the distinct reporting authors of
//! the recent window (`window_secs`) with what its baseline
//! ([`baseline`]) expects for that much firehose volume at this time of
//! day:
//!
//! - **fire** when the window, or its last 1, 2, … buckets (a scan over
//!   scales, so a sharp spike is not diluted by a calm window), holds at
//!   least `min_authors`, at least `fire_ratio` times the expectation, and
//!   the chance of that many or more, times the number of scales tried, is
//!   at most `fire_p` under Poisson counting noise and at most
//!   `ordinary_p` under the service's learned variance model ([`model`]:
//!   negative binomial, dispersion learned per service and scale from its
//!   own residuals), which vetoes what is ordinary for a bursty service;
//! - **escalate** (an `updated` event) when the severity grows: by how far
//!   above (`medium_ratio`, `high_ratio`) or how long (`medium_after_secs`,
//!   `high_after_secs`) the rate stands above the baseline;
//! - **resolve** when the window stays calm (fewer authors than `calm_ratio`
//!   × expected, or fewer than half of `min_authors`) for
//!   `resolve_after_secs`, or for `resolve_after_recovery_secs` when posts
//!   saying the service is back outnumber the reports; a dip shorter than
//!   that keeps the incident open (no flapping);
//! - after a resolution, wait `cooldown_secs` before a new incident.
//! - with `drops` (set by `series`, never by the daemon, for which fewer
//!   reports is good news), a window as far *below* its
//!   expectation by the same lines opens an incident of direction
//!   [`Direction::Down`], graded by duration and ended at once by a rise.
//!
//! Counting authors rather than posts keeps one account posting 200 times
//! from looking like 200 people, and the same long text from many accounts
//! counts as at most `max_authors_per_text` of them (a template that 40
//! real people post during an outage still counts 3 in every window); the
//! accounts of one server where accounts cost nothing to make (a Mastodon
//! domain, Nostr) count as at most `max_authors_per_server`.
//! Pure: buckets in, transitions out, event time only.

pub mod baseline;
mod config;
mod evidence;
mod group;
mod incident;
pub mod model;
mod step;
mod view;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

pub use baseline::Basis;
pub use evidence::{Evidence, PhraseCount};
pub use group::{Providers, UPSTREAM, is_upstream};
pub use incident::{
    Direction, Incident, Measure, Severity, Transition, TransitionKind, incident_id,
};
pub use model::{nb_tail, poisson_tail};

pub use config::DetectorConfig;

use self::baseline::{Reports, Volume};
use self::view::{Caps, expectations, window_view};
use crate::window::{Bucket, ServiceCounts};
use crate::{MICROS_PER_SEC, Micros};

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
    #[serde(default)]
    groups: group::Groups,
}

#[derive(Debug, Clone, Default)]
pub struct Detector {
    config: DetectorConfig,
    state: Snapshot,
    baselines: BTreeMap<String, Reports>,
    /// Services whose baseline changed since the last [`Detector::take_changed`].
    changed: BTreeSet<String>,
    /// The last bucket's test per service, for `series --explain`.
    tested: BTreeMap<String, Tested>,
    /// Which services run on which provider (names upstream incidents).
    providers: Providers,
}

/// How the last bucket was judged for one service (the whole window).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Explained {
    /// Distinct authors (or counts) in the window.
    pub authors: u64,
    /// What the baseline expected for the window.
    pub expected: f64,
    /// The learned dispersion of the window scale.
    pub dispersion: f64,
    /// The smallest window count that would fire at this scale; `None`
    /// where none would (a gauge before its level is known).
    pub upper: Option<u64>,
    /// The largest window count that would fire as a fall, when falls are
    /// judged ([`DetectorConfig::drops`]) and some count would.
    pub lower: Option<u64>,
    /// Chance probability of the window (times the scales tried).
    pub p_value: f64,
    pub basis: Basis,
}

/// The inputs of the last bucket's whole-window test for one service,
/// from which [`Detector::explain`] works out the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tested {
    authors: u64,
    expected: f64,
    dispersion: f64,
    basis: Basis,
    /// Too little history for a baseline yet: more authors are needed to
    /// fire, and no fall is judged (see [`DetectorConfig::min_authors_now`]).
    warming_up: bool,
}

impl Tested {
    fn explained(&self, config: &DetectorConfig) -> Explained {
        let tried = config.tried();
        let window_p = nb_tail(self.expected, self.dispersion, self.authors);
        Explained {
            expected: self.expected,
            dispersion: self.dispersion,
            // The lines the firing test draws, the warm-up's included:
            // without it `upper` said a count would fire that did not.
            upper: config.min_authors_now(self.warming_up).map(|min| {
                config
                    .pages_at(self.expected, self.dispersion, tried)
                    .max(min)
                    .max((config.fire_ratio * self.expected).ceil() as u64)
            }),
            lower: (config.drops && self.basis != Basis::Prior && !self.warming_up)
                .then(|| config.falls_at(self.expected, self.dispersion, tried))
                .flatten(),
            p_value: (window_p * tried).min(1.0),
            authors: self.authors,
            basis: self.basis,
        }
    }
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
    /// The rate at which an incident would fire now (ratio, minimum and
    /// both significance tests at the whole window's scale).
    pub fire_per_min: f64,
    /// Chance probability of the window under the learned variance model
    /// (times the scales tried), as `series --explain` prints it.
    pub p_value: f64,
    pub basis: Basis,
    /// Start of the last bucket with reports (event time).
    pub last_report: Micros,
    pub discovered: bool,
    /// The open incident, if any.
    pub incident: Option<Incident>,
}

impl Snapshot {
    /// The recent window's counts in the stored form of closed buckets
    /// (see [`crate::window::Bucket::seal`]): for a snapshot whose authors
    /// were read by id and digested, so no longer in order.
    pub fn seal(&mut self) {
        for service in self.services.values_mut() {
            for bucket in &mut service.recent {
                bucket.counts.seal();
            }
        }
    }
}

impl Detector {
    pub fn new(config: DetectorConfig) -> Self {
        Detector {
            config,
            providers: Providers::embedded(),
            ..Detector::default()
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Saved state for the checkpoint (without the baselines). Typed: the
    /// store encodes it, and a failure to is the store's error.
    pub fn state(&self) -> &Snapshot {
        &self.state
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
            tested: BTreeMap::new(),
            providers: Providers::embedded(),
        }
    }

    /// How the last bucket was judged for `service`, if it was.
    pub fn explain(&self, service: &str) -> Option<Explained> {
        let tested = self.tested.get(service)?;
        Some(tested.explained(&self.config))
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
        let scales = config.scales();
        let tried = config.tried();
        self.state
            .services
            .iter()
            .map(|(id, state)| {
                let baseline = self.baselines.get(id).unwrap_or(&empty);
                let (expectations, warming_up) = expectations(
                    baseline,
                    &self.state.volume,
                    &self.state.recent_volume,
                    now,
                    config,
                );
                let (expected, basis) = expectations
                    .last()
                    .copied()
                    .unwrap_or((config.prior_window(), Basis::Prior));
                let since = now - (scales as i64 - 1) * config.bucket_us();
                let view = window_view(state, since, expected, basis, Caps::of(config));
                let dispersion = baseline.dispersion.at(scales, config.dispersion_initial);
                // The daemon's warm-up factor is at most 100: never `None`.
                let min_authors = config.min_authors_now(warming_up).unwrap_or(u64::MAX);
                let fire_at = config
                    .pages_at(expected, dispersion, tried)
                    .max(min_authors)
                    .max((config.fire_ratio * expected).ceil() as u64);
                ServiceStatus {
                    service: id.clone(),
                    reports: view.reports,
                    authors: view.authors,
                    rate_per_min: config.per_min(view.authors as f64),
                    expected_per_min: config.per_min(expected),
                    fire_per_min: config.per_min(fire_at as f64),
                    p_value: (nb_tail(expected, dispersion, view.authors) * tried).min(1.0),
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
        let keep = baseline::level_memory(
            self.config.learn_during_incident_after_secs,
            self.config.bucket_secs,
        );
        self.state.volume.add(bucket.start, volume as f64, keep);
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
        let services = &self.state.services;
        let upstream = self.state.groups.on_transitions(
            &mut transitions,
            bucket.start + self.config.bucket_us(),
            self.config.group_window_secs,
            self.config.group_min_services,
            &self.providers,
            |id| services.get(id).is_some_and(|s| s.incident.is_some()),
        );
        transitions.extend(upstream);
        self.forget_quiet(bucket.start);
        transitions
    }

    /// Drops services with nothing left to remember: no incident, no recent
    /// reports, no cooldown, and (for catalogued services) no report for
    /// four weeks, or (for discovered ones, created when their first
    /// admitted bucket arrives) for an hour: a quiet made-up name must not
    /// cost a detector run per bucket for long. Then bounds the discovered
    /// ones ([`Detector::bound_discovered`]).
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
        forgotten.extend(self.bound_discovered(now));
        for id in forgotten {
            // Its last explanation goes too: kept, every made-up name the
            // detector ever admitted stayed in memory for good.
            self.tested.remove(&id);
            self.baselines.remove(&id);
            self.changed.insert(id);
        }
    }

    /// Keeps at most `max_discovered` discovered services, as the window
    /// tracks at most that many at once: past it, those without an open
    /// incident go, outside a cooldown first, then the longest unreported
    /// (ties by name). One with an open incident stays until it resolves,
    /// so no alert is left firing for ever. Returns the ids dropped.
    fn bound_discovered(&mut self, now: Micros) -> Vec<String> {
        let total = self
            .state
            .services
            .values()
            .filter(|s| s.discovered)
            .count();
        let excess = total.saturating_sub(self.config.max_discovered);
        if excess == 0 {
            return Vec::new();
        }
        let mut droppable: Vec<(bool, Micros, &String)> = self
            .state
            .services
            .iter()
            .filter(|(_, s)| s.discovered && s.incident.is_none())
            .map(|(id, s)| (s.cooldown_until.is_some_and(|t| t > now), s.last_report, id))
            .collect();
        droppable.sort_unstable();
        let dropped: Vec<String> = droppable
            .into_iter()
            .take(excess)
            .map(|(_, _, id)| id.clone())
            .collect();
        for id in &dropped {
            self.state.services.remove(id);
        }
        dropped
    }
}

#[cfg(test)]
mod tests;
