//! Incidents: one per surge, from firing to resolved.

use serde::{Deserialize, Serialize};

use crate::Micros;
use crate::window::Sample;

/// How strong the evidence is, graded from how far the window stands above
/// what the baseline expects. Ordered: `low < medium < high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    /// `ratio` is window authors over expected authors.
    pub fn grade(ratio: f64, authors: u64, min_authors: u64) -> Severity {
        if ratio >= 50.0 && authors >= 10 * min_authors {
            Severity::High
        } else if ratio >= 15.0 && authors >= 3 * min_authors {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
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
    /// Reports counted while the incident was open (from the firing window on).
    pub total_reports: u64,
    /// The most distinct authors any window held.
    pub peak_authors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransitionKind {
    Firing,
    Resolved,
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
    pub samples: Vec<Sample>,
}

impl Incident {
    pub fn open(
        service: &str,
        started_at: Micros,
        severity: Severity,
        p_value: f64,
        discovered: bool,
        reports: u64,
        authors: u64,
    ) -> Incident {
        let stamp = chrono::DateTime::from_timestamp_micros(started_at)
            .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_else(|| started_at.to_string());
        Incident {
            id: format!("{service}-{stamp}"),
            service: service.to_owned(),
            started_at,
            severity,
            p_value,
            discovered,
            total_reports: reports,
            peak_authors: authors,
        }
    }

    /// Accounts for one more bucket while open.
    pub fn observe(&mut self, bucket_reports: u64, window_authors: u64) {
        self.total_reports += bucket_reports;
        self.peak_authors = self.peak_authors.max(window_authors);
    }

    pub fn fire(
        &self,
        at: Micros,
        rate_per_min: f64,
        baseline_per_min: f64,
        samples: Vec<Sample>,
    ) -> Transition {
        Transition {
            kind: TransitionKind::Firing,
            incident: self.clone(),
            at,
            reports: self.total_reports,
            authors: self.peak_authors,
            rate_per_min,
            baseline_per_min,
            samples,
        }
    }

    pub fn resolve(
        self,
        at: Micros,
        reports: u64,
        authors: u64,
        rate_per_min: f64,
        baseline_per_min: f64,
    ) -> Transition {
        Transition {
            kind: TransitionKind::Resolved,
            incident: self,
            at,
            reports,
            authors,
            rate_per_min,
            baseline_per_min,
            samples: Vec::new(),
        }
    }
}
