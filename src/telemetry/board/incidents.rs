//! The board's incident records: one per incident, kept up to date by
//! every alert sent for it, with the chart of its service around it, and
//! bounded in number (the oldest resolved ones go first).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Board, MAX_CHART_MINUTES, MINUTE, Point, fill};
use crate::Micros;
use crate::alert::{Alert, AlertSample};
use crate::detect::{PhraseCount, TransitionKind};

/// An incident as the dashboard shows it: its latest state, its evidence,
/// every alert sent, and the chart around it.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentRecord {
    pub id: String,
    pub service: String,
    /// `firing` (open) or `resolved`.
    pub state: TransitionKind,
    pub open: bool,
    pub severity: String,
    pub started_at: String,
    pub updated_at: String,
    pub reports: u64,
    pub peak_authors: u64,
    pub rate_per_min: f64,
    pub baseline_per_min: f64,
    pub p_value: f64,
    pub discovered: bool,
    /// Evidence of the latest alert that carried any.
    pub samples: Vec<AlertSample>,
    pub top_phrases: Vec<PhraseCount>,
    pub languages: BTreeMap<String, u64>,
    pub detail: Option<String>,
    /// Every alert sent for it, oldest first (bounded).
    pub alerts: Vec<Alert>,
    /// The service's chart from before the onset to after the resolution.
    pub series: Vec<Point>,
    #[serde(skip)]
    pub(super) started_us: Micros,
    #[serde(skip)]
    resolved_us: Option<Micros>,
}

impl IncidentRecord {
    /// The record of the incident `alert` is the first alert of.
    fn opened_by(alert: &Alert) -> Self {
        IncidentRecord {
            id: alert.id.clone(),
            service: alert.service.clone(),
            state: alert.state,
            open: true,
            severity: alert.severity.to_string(),
            started_at: alert.started_at.clone(),
            updated_at: alert.at.clone(),
            reports: 0,
            peak_authors: 0,
            rate_per_min: 0.0,
            baseline_per_min: 0.0,
            p_value: alert.p_value,
            discovered: alert.discovered,
            samples: Vec::new(),
            top_phrases: Vec::new(),
            languages: BTreeMap::new(),
            detail: None,
            alerts: Vec::new(),
            series: Vec::new(),
            started_us: parse_rfc3339(&alert.started_at),
            resolved_us: None,
        }
    }

    /// Takes in a later alert of the incident: its state and figures, its
    /// evidence if it carries any, and the alert itself while there are
    /// fewer than `max_alerts`.
    fn update(&mut self, alert: &Alert, max_alerts: usize) {
        self.state = match alert.state {
            TransitionKind::Resolved => TransitionKind::Resolved,
            _ => TransitionKind::Firing,
        };
        self.open = alert.state != TransitionKind::Resolved;
        self.severity = alert.severity.to_string();
        self.updated_at = alert.at.clone();
        self.reports = alert.reports;
        self.peak_authors = alert.peak_authors;
        self.rate_per_min = alert.rate_per_min;
        self.baseline_per_min = alert.baseline_per_min;
        if alert.detail.is_some() {
            self.detail = alert.detail.clone();
        }
        if !alert.samples.is_empty() {
            self.samples = alert.samples.clone();
            self.top_phrases = alert.top_phrases.clone();
            self.languages = alert.languages.clone();
        }
        if alert.state == TransitionKind::Resolved {
            self.resolved_us = Some(parse_rfc3339(&alert.at));
        }
        if self.alerts.len() < max_alerts {
            self.alerts.push(alert.clone());
        }
    }
}

/// An alert's RFC 3339 time in µs (0 if it does not parse: the alert was
/// made here, so it always does).
fn parse_rfc3339(t: &str) -> Micros {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| t.timestamp_micros())
        .unwrap_or(0)
}

impl Board {
    /// An alert raised outside the pipeline (a source's health), or by it.
    pub fn record_alert(&mut self, alert: &Alert) {
        let state = alert.state.as_str();
        *self.alerts_by_state.entry(state).or_default() += 1;
        self.note_incident(alert);
    }

    /// An incident an earlier run left open (a source's health, which the
    /// monitor does not raise again), shown open as the alert that opened
    /// it; not counted as an alert of this run. It was missing from the
    /// incidents, the dashboard and `outagewatch_incidents_open` until its
    /// resolution, hours later perhaps.
    pub fn restore_open(&mut self, alert: &Alert) {
        self.note_incident(alert);
    }

    fn note_incident(&mut self, alert: &Alert) {
        self.incidents
            .entry(alert.id.clone())
            .or_insert_with(|| IncidentRecord::opened_by(alert))
            .update(alert, self.limits.max_alerts_per_incident);
        if self.incidents.len() > self.limits.max_incidents {
            // The oldest resolved incident goes first, then the oldest.
            let victim = self
                .incidents
                .values()
                .filter(|r| !r.open)
                .min_by_key(|r| r.started_us)
                .or_else(|| self.incidents.values().min_by_key(|r| r.started_us))
                .map(|r| r.id.clone());
            if let Some(id) = victim {
                self.incidents.remove(&id);
            }
        }
    }

    /// Copies each recent incident's part of its service's series, so the
    /// chart stays after the series has moved on.
    pub(super) fn refresh_incident_charts(&mut self, now: Micros) {
        let oldest = self.oldest.unwrap_or(now).div_euclid(MINUTE) * MINUTE;
        for record in self.incidents.values_mut() {
            if record
                .resolved_us
                .is_some_and(|r| now > r + self.limits.chart_after)
            {
                continue;
            }
            let Some(series) = self.series.get(&record.service) else {
                continue;
            };
            let from = (record.started_us - self.limits.chart_before)
                .div_euclid(MINUTE)
                .max(oldest / MINUTE)
                * MINUTE;
            let to = record
                .resolved_us
                .map_or(now, |r| r + self.limits.chart_after);
            let to = to.min(now).div_euclid(MINUTE) * MINUTE;
            // A day at most: a long incident's chart shows its last day.
            let from = from.max(to - MAX_CHART_MINUTES * MINUTE);
            let fresh: Vec<Point> = series
                .iter()
                .filter(|p| p.minute >= from && p.minute <= to)
                .copied()
                .collect();
            // Keep what has already scrolled out of the live series, and
            // show quiet minutes as zero.
            let first_new = fresh.first().map_or(Micros::MAX, |p| p.minute);
            record.series.retain(|p| p.minute < first_new);
            record.series.extend(fresh);
            record.series = fill(record.series.iter().copied(), from, to);
        }
    }

    /// Incidents, newest first; only open ones unless `all`.
    pub fn incidents(&self, all: bool) -> Vec<&IncidentRecord> {
        let mut list: Vec<&IncidentRecord> =
            self.incidents.values().filter(|r| all || r.open).collect();
        list.sort_by(|a, b| b.started_us.cmp(&a.started_us).then(a.id.cmp(&b.id)));
        list
    }

    pub fn incident(&self, id: &str) -> Option<&IncidentRecord> {
        self.incidents.get(id)
    }
}
