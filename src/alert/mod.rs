//! Alert: the public alert schema and the sinks that deliver it.
//!
//! One JSON object per incident state change. The fields documented in the
//! README are a contract: more may be added, none removed or renamed.

mod aside;
pub mod chat;
pub mod deliver;
pub mod format;
pub mod http;
mod once;
pub mod outbox;
pub mod paging;
mod pipe;
mod probe;
pub mod ratelimit;
mod repost;
pub mod sign;
pub mod sink;
mod spec;
mod task;
pub mod url;
pub mod webhook;

use serde::{Deserialize, Serialize};

use crate::Micros;
use crate::detect::{Direction, Severity, Transition, TransitionKind};
use crate::numbers::round3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable incident id: the same in the firing and the resolved event.
    pub id: String,
    pub service: String,
    pub state: TransitionKind,
    /// RFC 3339 UTC event time of this change.
    pub at: String,
    pub started_at: String,
    pub severity: Severity,
    /// Reports in the incident so far.
    pub reports: u64,
    /// Distinct authors in the recent window (at firing: the window that fired;
    /// at resolution: the calm window).
    pub authors: u64,
    /// Distinct reporting authors per minute in the recent window.
    pub rate_per_min: f64,
    /// What the baseline expects per minute at this time.
    pub baseline_per_min: f64,
    pub samples: Vec<AlertSample>,
    /// The most distinct authors any window of the incident held.
    pub peak_authors: u64,
    /// Chance probability of the window that fired (negative binomial tail
    /// under the learned dispersion, times the scales tried).
    pub p_value: f64,
    /// True when the service is not in the catalogue (named by `#FooDown`).
    #[serde(default)]
    pub discovered: bool,
    /// The outage phrases people used most in the window, with counts.
    #[serde(default)]
    pub top_phrases: Vec<crate::detect::PhraseCount>,
    /// Reports per language in the window.
    #[serde(default)]
    pub languages: std::collections::BTreeMap<String, u64>,
    /// Which baseline the rate was measured against: `prior`, `overall`,
    /// `hour_of_day` or `hour_of_week`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<crate::detect::Basis>,
    /// This event's number in its incident (1 = firing); with `id`, unique.
    #[serde(default)]
    pub sequence: u32,
    /// For `source:NAME` alerts: what is wrong with the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `outage` (people report a service down) or `source` (a firehose of
    /// ours is silent or lagging), so a receiver can route them apart.
    #[serde(default)]
    pub kind: AlertKind,
    /// Sent by `outagewatch alerts test`: nothing is down.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
    /// The detector's explanation (`expected`, `dispersion`, …), flattened
    /// into the alert's top level.
    #[serde(flatten, default)]
    pub model: AlertModel,
}

/// The detector's explanation of an alert; absent for `source:NAME` alerts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertModel {
    /// Distinct authors the baseline expected in the window (at firing: the
    /// scale that fired, `scale_secs` long).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<f64>,
    /// Learned dispersion φ of that window (variance `expected + φ·expected²`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispersion: Option<f64>,
    /// How much of the recent window fired: its last this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_secs: Option<i64>,
    /// Other services that fired within a few minutes of this one (for an
    /// `upstream:PROVIDER` incident: every service of the group).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<String>,
    /// `down` when a series fell far below its expectation (`series` only);
    /// absent for every rise, which is what the daemon's alerts are.
    #[serde(default, skip_serializing_if = "Direction::is_up")]
    pub direction: Direction,
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// A watched service: people report it down.
    #[default]
    Outage,
    /// One of our own sources (`service` is `source:NAME`).
    Source,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSample {
    pub text: String,
    pub uri: String,
}

pub use crate::wall::rfc3339;

impl From<Transition> for Alert {
    fn from(t: Transition) -> Alert {
        let incident = t.incident;
        // A group's figures are its members' sums: no one series' model.
        let group = crate::detect::is_upstream(&incident.service);
        Alert {
            id: incident.id,
            service: incident.service,
            state: t.kind,
            at: rfc3339(t.at),
            started_at: rfc3339(incident.started_at),
            severity: incident.severity,
            reports: incident.total_reports.max(t.reports),
            authors: t.authors,
            rate_per_min: round3(t.rate_per_min),
            baseline_per_min: round3(t.baseline_per_min),
            samples: t
                .evidence
                .samples
                .into_iter()
                .map(|s| AlertSample {
                    text: s.text,
                    uri: s.uri,
                })
                .collect(),
            peak_authors: incident.peak_authors,
            p_value: incident.p_value,
            discovered: incident.discovered,
            top_phrases: t.evidence.top_phrases,
            languages: t.evidence.languages,
            basis: (!group).then_some(t.basis),
            sequence: incident.events,
            detail: None,
            kind: AlertKind::Outage,
            test: false,
            model: AlertModel {
                expected: Some(round3(t.expected)),
                dispersion: (!group).then_some(round3(t.dispersion)),
                scale_secs: (incident.scale_secs > 0).then_some(incident.scale_secs),
                related: t.related,
                direction: incident.direction,
            },
        }
    }
}

impl Alert {
    /// A live source's own incident: silent or lagging (`service` is
    /// `source:NAME`; times are wall clock, as the firehose's health is
    /// about now, not about event time).
    pub fn source_health(
        source: &str,
        state: TransitionKind,
        at: Micros,
        started_at: Micros,
        detail: String,
    ) -> Alert {
        Alert {
            id: crate::detect::incident_id(&format!("source:{source}"), started_at),
            service: format!("source:{source}"),
            state,
            at: rfc3339(at),
            started_at: rfc3339(started_at),
            severity: Severity::High,
            reports: 0,
            authors: 0,
            rate_per_min: 0.0,
            baseline_per_min: 0.0,
            samples: Vec::new(),
            peak_authors: 0,
            p_value: 0.0,
            discovered: false,
            top_phrases: Vec::new(),
            languages: Default::default(),
            basis: None,
            sequence: match state {
                TransitionKind::Firing => 1,
                _ => 2,
            },
            detail: Some(detail),
            model: AlertModel::default(),
            kind: AlertKind::Source,
            test: false,
        }
    }

    /// The source's name, for a `source:NAME` alert.
    pub fn source_name(&self) -> Option<&str> {
        match self.kind {
            AlertKind::Source => Some(
                self.service
                    .strip_prefix("source:")
                    .unwrap_or(&self.service),
            ),
            AlertKind::Outage => None,
        }
    }
}

#[cfg(test)]
mod aside_tests;
#[cfg(test)]
mod paused_tests;
#[cfg(test)]
mod proptests;
