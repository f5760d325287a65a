//! One service's step at a closed bucket, in the order the rule takes it:
//! the window is measured at every scale ([`Scales`]), the test is kept
//! for `series --explain`, an open incident is followed (escalated or
//! resolved) or a new one fires ([`judge`]), then the baseline learns from
//! the bucket ([`teach`]), unless an incident young at it held it.

use super::baseline::{Basis, Reports, Volume};
use super::evidence::{self, Evidence};
use super::incident::{Direction, Incident, Measure, Severity, Transition, TransitionKind};
use super::model::{nb_lower_tail, nb_tail, poisson_lower_tail, poisson_tail};
use super::view::{Caps, MAX_ADJUST, WindowView, expectations, window_views};
use super::{Detector, DetectorConfig, ServiceState, Tested, model};
use crate::{MICROS_PER_SEC, Micros};
use std::collections::VecDeque;

impl Detector {
    /// One service at the bucket starting `now`: the transition it makes,
    /// if any. Also teaches its baseline and records what `series
    /// --explain` prints.
    pub(super) fn step(&mut self, id: &str, now: Micros) -> Option<Transition> {
        let config = self.config.clone();
        // Looked up before inserting: this runs for every service at every
        // bucket, and `entry` would allocate the key each time.
        if !self.baselines.contains_key(id) {
            self.baselines.insert(id.to_owned(), Reports::default());
        }
        let baseline = self.baselines.get_mut(id)?;
        let state = self.state.services.get_mut(id)?;
        let window_us = config.window_secs * MICROS_PER_SEC;
        while state
            .recent
            .front()
            .is_some_and(|b| b.start + window_us <= now)
        {
            state.recent.pop_front();
        }
        let volume = (&self.state.volume, &self.state.recent_volume);
        let scales = Scales::measure(&config, baseline, state, volume, now)?;
        let tested = scales.tested();
        match self.tested.get_mut(id) {
            Some(last) => *last = tested,
            None => {
                self.tested.insert(id.to_owned(), tested);
            }
        }
        // The bucket is judged first and taught after, so that the bucket
        // an incident fires at is the incident's, not the background's.
        // Taught first, it entered the level whenever no later bucket of
        // its minute came during the incident (one that fired in a
        // minute's last bucket, or any bucket of a minute or longer), and a
        // single spike then hid the next outage for an hour.
        let young_before = young_incident(&config, state, now);
        let transition = judge(id, &config, state, &scales, now);
        let level = !young_before && !young_incident(&config, state, now);
        if let Some(fired) = transition
            .as_ref()
            .filter(|t| t.kind == TransitionKind::Firing)
        {
            // The scale's earlier buckets, from the onset, were taught
            // before anyone knew they were the incident's.
            let mut start = fired.incident.started_at;
            while start < now {
                baseline.skip_level(&self.state.volume, start);
                start += config.bucket_us();
            }
        }
        if teach(&config, baseline, &self.state.volume, &scales, now, level)
            && !self.changed.contains(id)
        {
            self.changed.insert(id.to_owned());
        }
        transition
    }
}

/// Whether the service has an incident younger than
/// `learn_during_incident_after_secs` at `now`: its buckets teach the
/// hourly profile only (a surge must not teach the detector that surges
/// are normal).
fn young_incident(config: &DetectorConfig, state: &ServiceState, now: Micros) -> bool {
    state.incident.as_ref().is_some_and(|incident| {
        now - incident.started_at < config.learn_during_incident_after_secs * MICROS_PER_SEC
    })
}

/// The transition the bucket makes: an open incident followed, or a new
/// one fired (after any cooldown).
fn judge(
    id: &str,
    config: &DetectorConfig,
    state: &mut ServiceState,
    scales: &Scales,
    now: Micros,
) -> Option<Transition> {
    if state.incident.is_some() {
        return follow_incident(config, state, scales, now);
    }
    if state.cooldown_until.is_some_and(|until| now < until) {
        return None;
    }
    state.cooldown_until = None;
    fire(id, config, state, scales, now)
}

/// A service's window at every scale the rule can test (the last `j`
/// buckets, `j` = 1 … the whole window), before this bucket teaches the
/// baseline.
struct Scales {
    /// Each scale with its expectation and distinct authors, shortest first.
    views: Vec<WindowView>,
    /// The whole window (the last of `views`).
    window: WindowView,
    /// The learned dispersion of each scale, as it stood before this bucket.
    dispersions: Vec<f64>,
    /// The detector has too little history for a baseline yet.
    warming_up: bool,
}

impl Scales {
    /// `None` only if the window has no scale at all.
    fn measure(
        config: &DetectorConfig,
        baseline: &Reports,
        state: &ServiceState,
        (volume, recent_volume): (&Volume, &VecDeque<(Micros, u64)>),
        now: Micros,
    ) -> Option<Scales> {
        let (expectations, warming_up) = expectations(baseline, volume, recent_volume, now, config);
        let views = window_views(
            state,
            now,
            config.bucket_us(),
            1,
            &expectations,
            Caps::of(config),
        );
        let window = *views.last()?;
        let dispersions = (1..=config.scales())
            .map(|j| baseline.dispersion.at(j, config.dispersion_initial))
            .collect();
        Some(Scales {
            views,
            window,
            dispersions,
            warming_up,
        })
    }

    /// The dispersion of scale `scale` (1 = the last bucket).
    fn dispersion_of(&self, scale: usize) -> f64 {
        self.dispersions.get(scale - 1).copied().unwrap_or(0.0)
    }

    /// The dispersion of the whole window.
    fn window_dispersion(&self) -> f64 {
        self.dispersion_of(self.dispersions.len())
    }

    /// The whole window as an alert reports it.
    fn measure_window(&self, config: &DetectorConfig) -> Measure {
        let view = &self.window;
        Measure {
            reports: view.reports,
            authors: view.authors,
            rate_per_min: config.per_min(view.authors as f64),
            baseline_per_min: config.per_min(view.expected),
            basis: view.basis,
            expected: view.expected,
            dispersion: self.window_dispersion(),
        }
    }

    /// The whole window's test, kept for `series --explain`, which works
    /// out the band and the p-value from it only when asked (they cost
    /// more than the rest of the step).
    fn tested(&self) -> Tested {
        let view = &self.window;
        Tested {
            authors: view.authors,
            expected: view.expected,
            dispersion: self.window_dispersion(),
            basis: view.basis,
            warming_up: self.warming_up,
        }
    }
}

/// Teaches the baseline: the hourly profile always (its median over days
/// ignores a one-off surge); the level, the level correction and the
/// dispersion only with `level`, when no young incident held the bucket
/// ([`young_incident`]). Returns whether it changed.
fn teach(
    config: &DetectorConfig,
    baseline: &mut Reports,
    volume: &Volume,
    scales: &Scales,
    now: Micros,
    level: bool,
) -> bool {
    // The bucket's authors as a window of one bucket counts them: copies
    // of one text past the cap are a storm, not people, and would raise
    // the hour's expectation for as long as the hour is remembered.
    let this_bucket = scales.views.first().map_or(0, |v| v.authors) as f64;
    let mut changed = false;
    if this_bucket > 0.0 {
        baseline.add(volume, now, this_bucket, level);
        changed = true;
    }
    if !level {
        baseline.skip_level(volume, now);
        changed = true;
    }
    if level && learn_overlap(config, baseline, scales) {
        changed = true;
    }
    if level && scales.window.basis != Basis::Prior {
        learn_variation(config, baseline, scales);
        changed = true;
    }
    changed
}

/// How the service's authors repeat across the buckets of each scale,
/// learned over about the level's hour ([`super::baseline::Overlap`]).
/// Whether it learned anything (a window without authors teaches nothing).
fn learn_overlap(config: &DetectorConfig, baseline: &mut Reports, scales: &Scales) -> bool {
    let alpha = model::ew_alpha(config.bucket_secs as f64, OVERLAP_MEMORY_SECS);
    let mut learned = false;
    for (j, v) in scales.views.iter().enumerate() {
        learned |= baseline
            .overlap
            .learn(j + 1, v.uncapped as f64, v.summed as f64, alpha);
    }
    learned
}

/// The overlap's time constant: the level's hour (how a service's authors
/// repeat changes with who is posting, as its level does).
const OVERLAP_MEMORY_SECS: f64 = 3_600.0;

/// The dispersion of every scale tested for firing and, on a seasonal
/// basis, the level correction: a robust local level on the log scale,
/// each step winsorised at 3 standard deviations.
fn learn_variation(config: &DetectorConfig, baseline: &mut Reports, scales: &Scales) {
    let alpha = model::ew_alpha(
        config.bucket_secs as f64,
        config.dispersion_memory_secs as f64,
    );
    // Only the scales tested for firing need a dispersion.
    for (j, v) in scales
        .views
        .iter()
        .enumerate()
        .skip(config.first_scale() - 1)
    {
        baseline.dispersion.learn(
            j + 1,
            v.authors as f64,
            v.expected,
            alpha,
            config.dispersion_initial,
        );
    }
    let view = &scales.window;
    if matches!(view.basis, Basis::HourOfDay | Basis::HourOfWeek) {
        let e = view.expected;
        let sd = (scales.window_dispersion() + 1.0 / (e + 1.0)).sqrt();
        let r = ((view.authors as f64 + 1.0) / (e + 1.0)).ln();
        let r = r.clamp(-3.0 * sd, 3.0 * sd);
        let alpha = model::ew_alpha(config.bucket_secs as f64, config.level_adjust_secs as f64);
        baseline.adjust = (baseline.adjust + alpha * r).clamp(-MAX_ADJUST, MAX_ADJUST);
    }
}

/// An open incident at the bucket starting `now`: it takes the bucket's
/// reports, escalates (`updated`) when its severity grows, and resolves
/// once the window has been calm long enough. A fall ends at once, with no
/// cooldown, when the window rises past the firing line: the level came
/// back and overshot, a second event, judged on its own next. Not the
/// other way round: a spike that collapses (a burst of work, then idle) is
/// the spike calming down. Measured both ways on NAB's series: ending a
/// rise at a fall too fired more and scored lower (README, "Falls are judged
/// too").
fn follow_incident(
    config: &DetectorConfig,
    state: &mut ServiceState,
    scales: &Scales,
    now: Micros,
) -> Option<Transition> {
    let at = now + config.bucket_us();
    let view = &scales.window;
    let incident = state.incident.as_mut()?;
    let bucket_reports = state
        .recent
        .back()
        .filter(|b| b.start == now)
        .map_or(0, |b| b.counts.reports);
    incident.observe(bucket_reports, view.authors);
    let direction = incident.direction;
    let started_at = incident.started_at;
    let severity = match direction {
        Direction::Up => {
            let ratio = view.authors as f64 / view.expected.max(f64::MIN_POSITIVE);
            // "It's back" posts shorten the calm needed only once the
            // window no longer passes the firing line by itself: they are
            // counted per post, so one account repeating them outnumbered
            // 30 new reporters a minute and ended a live outage within a
            // minute, after which the cooldown let the level learn the
            // outage as normal and it never fired again.
            let passes = most_surprising(config, scales, Direction::Up).is_some();
            let recovering = view.recoveries > view.reports && view.recoveries > 0 && !passes;
            let calm = (view.authors as f64) < config.calm_ratio * view.expected
                || view.authors.saturating_mul(2) < config.min_authors
                || recovering;
            if calm {
                return resolve_when_calm_enough(config, state, scales, now, recovering);
            }
            // Graded by length only while the window still passes the
            // firing line: a tail at three times the normal, not calm yet
            // but far below the line, reached `high` after 30 minutes.
            let lasting = if passes { at - started_at } else { 0 };
            Severity::grade(config, ratio, view.authors, lasting)
        }
        Direction::Down => {
            if most_surprising(config, scales, Direction::Up).is_some() {
                return resolve(config, state, scales, at, None);
            }
            if view.authors as f64 * config.calm_ratio > view.expected {
                return resolve_when_calm_enough(config, state, scales, now, false);
            }
            // How far below has no scale like a ratio above: a drop is
            // graded by how long it lasts.
            Severity::grade(config, 1.0, view.authors, at - started_at)
        }
    };
    state.calm_since = None;
    let incident = state.incident.as_mut()?;
    if severity <= incident.severity {
        return None;
    }
    incident.severity = severity;
    let evidence = evidence::gather(state.recent.iter().map(|b| &b.counts), config.samples);
    let measure = scales.measure_window(config);
    Some(incident.transition(TransitionKind::Updated, at, &measure, evidence))
}

/// A calm window during an incident: it resolves once the calm has lasted
/// `resolve_after_secs` (`resolve_after_recovery_secs` when "it's back"
/// posts outnumber the reports), then the cooldown starts.
fn resolve_when_calm_enough(
    config: &DetectorConfig,
    state: &mut ServiceState,
    scales: &Scales,
    now: Micros,
    recovering: bool,
) -> Option<Transition> {
    let at = now + config.bucket_us();
    let since = *state.calm_since.get_or_insert(now);
    let needed = if recovering {
        config.resolve_after_recovery_secs
    } else {
        config.resolve_after_secs
    };
    if at - since < needed * MICROS_PER_SEC {
        return None;
    }
    let cooldown_until = now + config.cooldown_secs * MICROS_PER_SEC;
    resolve(config, state, scales, at, Some(cooldown_until))
}

/// Closes the open incident at `at` and starts the cooldown, if any.
fn resolve(
    config: &DetectorConfig,
    state: &mut ServiceState,
    scales: &Scales,
    at: Micros,
    cooldown_until: Option<Micros>,
) -> Option<Transition> {
    let mut incident = state.incident.take()?;
    state.calm_since = None;
    state.cooldown_until = cooldown_until;
    let measure = scales.measure_window(config);
    let evidence = Evidence::default();
    Some(incident.transition(TransitionKind::Resolved, at, &measure, evidence))
}

/// Opens an incident when some scale passes every test, at the most
/// surprising such scale; its onset is the first bucket of that scale.
fn fire(
    id: &str,
    config: &DetectorConfig,
    state: &mut ServiceState,
    scales: &Scales,
    now: Micros,
) -> Option<Transition> {
    let (direction, (p, j)) = [Direction::Up, Direction::Down]
        .into_iter()
        .find_map(|d| most_surprising(config, scales, d).map(|found| (d, found)))?;
    let at = now + config.bucket_us();
    let fired = &scales.views[j];
    let scale_start = now - j as i64 * config.bucket_us();
    let (onset, ratio) = match direction {
        // The first bucket of the scale that had reports.
        Direction::Up => (
            state
                .recent
                .iter()
                .find(|b| b.start >= scale_start)
                .map_or(now, |b| b.start),
            fired.authors as f64 / fired.expected.max(f64::MIN_POSITIVE),
        ),
        // A drop's buckets may hold nothing at all.
        Direction::Down => (scale_start, 1.0),
    };
    let severity = Severity::grade(config, ratio, fired.authors, at - onset);
    let evidence = evidence::gather(state.recent.iter().map(|b| &b.counts), config.samples);
    let mut incident = Incident::open(
        id,
        onset,
        severity,
        p,
        state.discovered,
        fired.reports,
        fired.authors,
        fired.basis,
    );
    incident.expected = fired.expected;
    incident.dispersion = scales.dispersion_of(j + 1);
    incident.scale_secs = (j as i64 + 1) * config.bucket_secs;
    incident.direction = direction;
    let fired_measure = Measure {
        reports: fired.reports,
        authors: fired.authors,
        rate_per_min: DetectorConfig::per_min_over(fired.authors as f64, incident.scale_secs),
        baseline_per_min: DetectorConfig::per_min_over(fired.expected, incident.scale_secs),
        basis: fired.basis,
        expected: fired.expected,
        dispersion: incident.dispersion,
    };
    let transition = incident.transition(TransitionKind::Firing, at, &fired_measure, evidence);
    state.incident = Some(incident);
    state.calm_since = None;
    Some(transition)
}

/// The scale (index into [`Scales::views`]) that passes every test with
/// the smallest chance probability, and that probability. A rise needs
/// enough authors (more while warming up), `fire_ratio` times the
/// expectation, and significance under both Poisson noise and the learned
/// variance. A fall ([`DetectorConfig::drops`]) is judged by the same
/// lines the other way (`fire_ratio` times fewer, the lower tails), and
/// only where `min_authors` were expected, never against the prior or
/// while warming up: falling below a level the detector has not learned
/// is no news.
fn most_surprising(
    config: &DetectorConfig,
    scales: &Scales,
    direction: Direction,
) -> Option<(f64, usize)> {
    if direction == Direction::Down && (!config.drops || scales.warming_up) {
        return None;
    }
    let min_authors = config.min_authors_now(scales.warming_up);
    let tried = config.tried();
    let first_scale = config.first_scale();
    let mut best: Option<(f64, usize)> = None;
    for (j, v) in scales.views.iter().enumerate().skip(first_scale - 1) {
        let (n, e) = (v.authors, v.expected);
        let far = match direction {
            Direction::Up => {
                min_authors.is_some_and(|min| n >= min) && n as f64 >= config.fire_ratio * e
            }
            Direction::Down => {
                v.basis != Basis::Prior
                    && e >= config.min_authors as f64
                    && (n as f64) * config.fire_ratio < e
            }
        };
        if !far {
            continue;
        }
        let dispersion = scales.dispersion_of(j + 1);
        let (poisson, learned) = match direction {
            Direction::Up => (poisson_tail(e, n), nb_tail(e, dispersion, n)),
            Direction::Down => (poisson_lower_tail(e, n), nb_lower_tail(e, dispersion, n)),
        };
        let significant = poisson * tried <= config.fire_p;
        let p = (learned * tried).min(1.0);
        if significant && p <= config.ordinary_p && best.is_none_or(|(q, _)| p < q) {
            best = Some((p, j));
        }
    }
    debug_assert!(best.is_none_or(|(_, j)| j + 1 >= first_scale));
    best
}
