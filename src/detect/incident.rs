//! Incidents: one per surge, from firing through escalations to resolved.

use serde::{Deserialize, Serialize};

use super::DetectorConfig;
use super::baseline::Basis;
use super::evidence::Evidence;
use crate::{MICROS_PER_SEC, Micros};

/// How strong the evidence is: how far above the baseline the window
/// stands, and for how long. Ordered: `low < medium < high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    /// `ratio` is window authors over expected authors; `lasting` how long
    /// the incident has been open, given only while its window still
    /// passes the firing line (0 otherwise).
    pub fn grade(config: &DetectorConfig, ratio: f64, authors: u64, lasting: Micros) -> Severity {
        let by_height = if ratio >= config.high_ratio
            && authors >= config.min_authors.saturating_mul(10)
        {
            Severity::High
        } else if ratio >= config.medium_ratio && authors >= config.min_authors.saturating_mul(3) {
            Severity::Medium
        } else {
            Severity::Low
        };
        let by_length = if lasting >= config.high_after_secs * MICROS_PER_SEC {
            Severity::High
        } else if lasting >= config.medium_after_secs * MICROS_PER_SEC {
            Severity::Medium
        } else {
            Severity::Low
        };
        by_height.max(by_length)
    }

    /// The name used in alerts, config and metrics (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way the window left its band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Far above the expectation: people report a service down, a
    /// gauge spikes.
    #[default]
    Up,
    /// Far below it: a level or a volume falls away (only with
    /// [`DetectorConfig::drops`]).
    Down,
}

impl Direction {
    pub fn is_up(&self) -> bool {
        *self == Direction::Up
    }
}

/// An incident's stable id: what it is about and when it started,
/// `NAME-YYYYMMDDTHHMMSSZ`.
pub fn incident_id(name: &str, started_at: Micros) -> String {
    let stamp = chrono::DateTime::from_timestamp_micros(started_at)
        .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|| started_at.to_string());
    format!("{name}-{stamp}")
}

/// An open incident, as kept in the detector's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id: the service and the start of the surge.
    pub id: String,
    pub service: String,
    /// Start of the first bucket of the window that fired: the surge's onset.
    pub started_at: Micros,
    pub severity: Severity,
    /// Chance probability of the window that fired.
    pub p_value: f64,
    pub discovered: bool,
    /// Which baseline the firing window was measured against.
    pub basis: Basis,
    /// Reports counted while the incident was open (from the firing window on).
    pub total_reports: u64,
    /// The most distinct authors any window held.
    pub peak_authors: u64,
    /// State changes sent so far (the firing one included).
    #[serde(default)]
    pub events: u32,
    /// What the baseline expected for the scale that fired.
    #[serde(default)]
    pub expected: f64,
    /// The learned dispersion of that scale (variance `μ + φμ²`).
    #[serde(default)]
    pub dispersion: f64,
    /// The scale that fired: the last this many seconds of the window.
    #[serde(default)]
    pub scale_secs: i64,
    /// Up for every incident of the daemon, which is the only one that
    /// saves its state: not stored, so the saved layout stays as it was.
    #[serde(skip)]
    pub direction: Direction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransitionKind {
    Firing,
    /// The incident goes on with a higher severity.
    Updated,
    Resolved,
}

impl TransitionKind {
    /// The name used in alerts (`state`), messages and metrics (as serde
    /// writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Firing => "firing",
            TransitionKind::Updated => "updated",
            TransitionKind::Resolved => "resolved",
        }
    }
}

impl std::fmt::Display for TransitionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The recent window at a state change, as reported in the alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measure {
    /// Reports and distinct authors in the recent window.
    pub reports: u64,
    pub authors: u64,
    pub rate_per_min: f64,
    pub baseline_per_min: f64,
    /// Which baseline the window was measured against.
    pub basis: Basis,
    /// Expected count of the window, and its learned dispersion.
    pub expected: f64,
    pub dispersion: f64,
}

/// A change of an incident's state: what becomes an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub kind: TransitionKind,
    pub incident: Incident,
    /// Event time of the change (end of the bucket that caused it).
    pub at: Micros,
    /// Reports and distinct authors in the recent window at the change.
    pub reports: u64,
    pub authors: u64,
    pub rate_per_min: f64,
    pub baseline_per_min: f64,
    /// Which baseline the window was measured against at this change.
    pub basis: Basis,
    /// Expected count of the window and its dispersion at this change.
    pub expected: f64,
    pub dispersion: f64,
    pub evidence: Evidence,
    /// Other services that fired within `group_window_secs` (for an
    /// `upstream:…` incident: every service of the group).
    pub related: Vec<String>,
}

impl Incident {
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        service: &str,
        started_at: Micros,
        severity: Severity,
        p_value: f64,
        discovered: bool,
        reports: u64,
        authors: u64,
        basis: Basis,
    ) -> Incident {
        Incident {
            id: incident_id(service, started_at),
            service: service.to_owned(),
            started_at,
            severity,
            p_value,
            discovered,
            basis,
            total_reports: reports,
            peak_authors: authors,
            events: 0,
            expected: 0.0,
            dispersion: 0.0,
            scale_secs: 0,
            direction: Direction::Up,
        }
    }

    /// Accounts for one more bucket while open.
    pub fn observe(&mut self, bucket_reports: u64, window_authors: u64) {
        self.total_reports = self.total_reports.saturating_add(bucket_reports);
        self.peak_authors = self.peak_authors.max(window_authors);
    }

    /// A state change of this incident, numbered in its sequence.
    pub fn transition(
        &mut self,
        kind: TransitionKind,
        at: Micros,
        measure: &Measure,
        evidence: Evidence,
    ) -> Transition {
        self.events += 1;
        Transition {
            kind,
            incident: self.clone(),
            at,
            reports: measure.reports,
            authors: measure.authors,
            rate_per_min: measure.rate_per_min,
            baseline_per_min: measure.baseline_per_min,
            basis: measure.basis,
            expected: measure.expected,
            dispersion: measure.dispersion,
            evidence,
            related: Vec::new(),
        }
    }
}
