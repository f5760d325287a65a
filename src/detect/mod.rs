//! Detect: when is a service's report rate "well above normal"?
//!
//! Per service the detector keeps a baseline (an exponentially weighted
//! average of distinct reporting authors per bucket, learned while no
//! incident is open, never below a prior) and the last minute of buckets.
//! After each closed bucket it asks of every active service:
//!
//! - **fire** when the distinct authors in the recent window reach
//!   `min_authors`, are at least `fire_ratio` times what the baseline
//!   expects, and would happen by chance with probability below `fire_p`
//!   under a Poisson law with the baseline's mean;
//! - **resolve** when the window has stayed calm (fewer authors than
//!   `calm_ratio` × expected, or fewer than half of `min_authors`) for
//!   `resolve_after_secs`;
//! - after a resolution, wait `cooldown_secs` before a new incident.
//!
//! Counting authors rather than posts keeps one account posting 200 times
//! from looking like 200 people. Pure: buckets in, transitions out, event
//! time only.

mod incident;

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use statrs::distribution::{DiscreteCDF, Poisson};

pub use incident::{Incident, Severity, Transition, TransitionKind};

use crate::window::{Bucket, Sample};
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
    /// How many times the expected count the window must reach.
    pub fire_ratio: f64,
    /// Largest chance probability (Poisson tail) that still fires.
    pub fire_p: f64,
    /// Floor of the baseline, in reporting authors per minute: what a
    /// service with no history is assumed to have.
    pub prior_per_min: f64,
    /// Half-life of the baseline's memory.
    pub baseline_half_life_secs: i64,
    /// A window below `calm_ratio` × expected counts as calm.
    pub calm_ratio: f64,
    /// Calm time before an incident resolves.
    pub resolve_after_secs: i64,
    /// Quiet time after a resolution before the same service fires again.
    pub cooldown_secs: i64,
    /// Sample posts attached to an alert.
    pub samples: usize,
    /// An incident older than this teaches the baseline again: a level
    /// that lasts this long is the service's new normal, not a surge.
    pub learn_during_incident_after_secs: i64,
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
            fire_ratio: 4.0,
            fire_p: 1e-5,
            prior_per_min: 0.2,
            baseline_half_life_secs: 6 * 3600,
            calm_ratio: 2.0,
            resolve_after_secs: 300,
            cooldown_secs: 600,
            samples: 5,
            learn_during_incident_after_secs: 2 * 3600,
            max_authors_per_text: 3,
        }
    }
}

/// What the detector remembers per service.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ServiceState {
    /// Expected distinct reporting authors per bucket, learned.
    baseline: f64,
    /// Start of the last bucket folded into the baseline.
    baseline_at: Option<Micros>,
    /// The buckets of the recent window that had reports, oldest first.
    recent: VecDeque<RecentBucket>,
    incident: Option<Incident>,
    /// Since when the window has been calm during an incident.
    calm_since: Option<Micros>,
    cooldown_until: Option<Micros>,
    discovered: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RecentBucket {
    start: Micros,
    reports: u64,
    authors: Vec<String>,
    recoveries: u64,
    samples: Vec<Sample>,
    #[serde(default)]
    copies: Vec<(u64, String)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Detector {
    config: DetectorConfig,
    services: BTreeMap<String, ServiceState>,
}

/// The recent window of one service, summed.
struct WindowView {
    reports: u64,
    authors: u64,
    recoveries: u64,
    expected: f64,
}

impl Detector {
    pub fn new(config: DetectorConfig) -> Self {
        Detector {
            config,
            services: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Saved state, for the store's checkpoint.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::to_value(&self.services).unwrap_or(serde_json::Value::Null)
    }

    /// Continues from a checkpoint; a missing or unreadable state starts afresh.
    pub fn restore(
        config: DetectorConfig,
        state: &serde_json::Value,
    ) -> Result<Self, serde_json::Error> {
        let services = if state.is_null() {
            BTreeMap::new()
        } else {
            serde_json::from_value(state.clone())?
        };
        Ok(Detector { config, services })
    }

    /// Incidents open right now.
    pub fn open_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.services.values().filter_map(|s| s.incident.as_ref())
    }

    fn bucket_us(&self) -> Micros {
        self.config.bucket_secs.max(1) * MICROS_PER_SEC
    }

    fn window_buckets(&self) -> f64 {
        (self.config.window_secs as f64 / self.config.bucket_secs.max(1) as f64).max(1.0)
    }

    fn prior_per_bucket(&self) -> f64 {
        self.config.prior_per_min * self.config.bucket_secs as f64 / 60.0
    }

    /// Feeds one closed bucket; returns the incidents that fired or resolved.
    pub fn on_bucket(&mut self, bucket: &Bucket) -> Vec<Transition> {
        for (id, counts) in &bucket.services {
            let state = self.services.entry(id.clone()).or_default();
            state.discovered = counts.discovered;
            state.recent.push_back(RecentBucket {
                start: bucket.start,
                reports: counts.reports,
                authors: counts.authors.clone(),
                recoveries: counts.recoveries,
                samples: counts.samples.clone(),
                copies: counts.copies.clone(),
            });
        }
        let ids: Vec<String> = self.services.keys().cloned().collect();
        let mut transitions = Vec::new();
        for id in ids {
            if let Some(t) = self.step(&id, bucket.start) {
                transitions.push(t);
            }
        }
        // Forget services with nothing left to remember.
        let prior = self.prior_per_bucket();
        self.services.retain(|_, s| {
            s.incident.is_some()
                || !s.recent.is_empty()
                || s.baseline > prior * 1.01
                || s.cooldown_until.is_some()
        });
        transitions
    }

    fn step(&mut self, id: &str, now: Micros) -> Option<Transition> {
        let bucket_us = self.bucket_us();
        let window_us = self.config.window_secs * MICROS_PER_SEC;
        let alpha = 1.0
            - 0.5f64.powf(
                1.0 / (self.config.baseline_half_life_secs as f64
                    / self.config.bucket_secs.max(1) as f64)
                    .max(1.0),
            );
        let prior = self.prior_per_bucket();
        let window_buckets = self.window_buckets();
        let config = self.config.clone();
        let state = self.services.get_mut(id)?;
        while state
            .recent
            .front()
            .is_some_and(|b| b.start + window_us <= now)
        {
            state.recent.pop_front();
        }
        // Fold this bucket into the baseline, unless a young incident is
        // open (a surge must not teach the detector that surges are normal).
        let this_bucket = state
            .recent
            .back()
            .filter(|b| b.start == now)
            .map_or(0, |b| b.authors.len() as u64) as f64;
        let learning = state.incident.as_ref().is_none_or(|incident| {
            now - incident.started_at >= config.learn_during_incident_after_secs * MICROS_PER_SEC
        });
        if learning {
            let elapsed = state
                .baseline_at
                .map_or(1, |at| ((now - at) / bucket_us).max(1));
            // Buckets without reports since the last update count as zeros.
            let decay = (1.0 - alpha).powi(i32::try_from(elapsed - 1).unwrap_or(i32::MAX));
            let capped = this_bucket.min(state.baseline.max(prior) * config.fire_ratio);
            state.baseline = state.baseline * decay * (1.0 - alpha) + alpha * capped;
        }
        state.baseline_at = Some(now);
        let view = window_view(state, prior, window_buckets, config.max_authors_per_text);

        if let Some(incident) = state.incident.as_mut() {
            let bucket_reports = state
                .recent
                .back()
                .filter(|b| b.start == now)
                .map_or(0, |b| b.reports);
            incident.observe(bucket_reports, view.authors);
            let calm = (view.authors as f64) < config.calm_ratio * view.expected
                || view.authors * 2 < config.min_authors
                || (view.recoveries > view.reports && view.reports > 0);
            if !calm {
                state.calm_since = None;
                return None;
            }
            let since = *state.calm_since.get_or_insert(now);
            if now + bucket_us - since < config.resolve_after_secs * MICROS_PER_SEC {
                return None;
            }
            let incident = state.incident.take()?;
            state.calm_since = None;
            state.cooldown_until = Some(now + config.cooldown_secs * MICROS_PER_SEC);
            return Some(incident.resolve(
                now + bucket_us,
                view.reports,
                view.authors,
                view.rate_per_min(&config),
                view.expected_per_min(&config),
            ));
        }
        if state.cooldown_until.is_some_and(|until| now < until) {
            return None;
        }
        state.cooldown_until = None;
        if view.authors < config.min_authors
            || (view.authors as f64) < config.fire_ratio * view.expected
        {
            return None;
        }
        let p = poisson_tail(view.expected, view.authors);
        if p > config.fire_p {
            return None;
        }
        let ratio = view.authors as f64 / view.expected.max(f64::MIN_POSITIVE);
        let severity = Severity::grade(ratio, view.authors, config.min_authors);
        let samples = pick_samples(state, config.samples);
        let onset = state.recent.front().map_or(now, |b| b.start);
        let incident = Incident::open(
            id,
            onset,
            severity,
            p,
            state.discovered,
            view.reports,
            view.authors,
        );
        let transition = incident.fire(
            now + bucket_us,
            view.rate_per_min(&config),
            view.expected_per_min(&config),
            samples,
        );
        state.incident = Some(incident);
        state.calm_since = None;
        Some(transition)
    }
}

impl WindowView {
    fn rate_per_min(&self, config: &DetectorConfig) -> f64 {
        self.authors as f64 * 60.0 / config.window_secs.max(1) as f64
    }

    fn expected_per_min(&self, config: &DetectorConfig) -> f64 {
        self.expected * 60.0 / config.window_secs.max(1) as f64
    }
}

fn window_view(
    state: &ServiceState,
    prior: f64,
    window_buckets: f64,
    max_per_text: u64,
) -> WindowView {
    let mut authors: Vec<&str> = state
        .recent
        .iter()
        .flat_map(|b| b.authors.iter().map(String::as_str))
        .collect();
    authors.sort_unstable();
    authors.dedup();
    // The same long text from many accounts counts as a few of them.
    let mut copies: Vec<(u64, &str)> = state
        .recent
        .iter()
        .flat_map(|b| b.copies.iter().map(|(f, a)| (*f, a.as_str())))
        .collect();
    copies.sort_unstable();
    copies.dedup();
    let mut excess = 0u64;
    for group in copies.chunk_by(|a, b| a.0 == b.0) {
        excess += (group.len() as u64).saturating_sub(max_per_text.max(1));
    }
    WindowView {
        reports: state.recent.iter().map(|b| b.reports).sum(),
        authors: (authors.len() as u64).saturating_sub(excess),
        recoveries: state.recent.iter().map(|b| b.recoveries).sum(),
        expected: state.baseline.max(prior) * window_buckets,
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

/// Evidence for an alert: the highest-scoring reports of the window, one
/// per author and per text, newest last.
fn pick_samples(state: &ServiceState, keep: usize) -> Vec<Sample> {
    let mut all: Vec<&Sample> = state.recent.iter().flat_map(|b| b.samples.iter()).collect();
    all.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.time_us.cmp(&b.time_us))
            .then(a.uri.cmp(&b.uri))
    });
    let mut picked: Vec<Sample> = Vec::new();
    for sample in all {
        if picked.len() >= keep {
            break;
        }
        let key = sample.text.to_lowercase();
        if picked
            .iter()
            .any(|p| p.author == sample.author || p.text.to_lowercase() == key)
        {
            continue;
        }
        picked.push(sample.clone());
    }
    picked.sort_by_key(|s| s.time_us);
    picked
}

#[cfg(test)]
mod tests;
