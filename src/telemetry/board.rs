//! The board: what the dashboard, the status API and the replay report
//! show, kept up to date from closed buckets, the detector's status and the
//! alerts raised. Pure: it is told the event time, it never asks a clock.
//!
//! Everything in it is bounded: a series of `minutes` points per service
//! for at most `max_services` services (the least recently active are
//! dropped first), at most `max_incidents` incidents (the oldest resolved
//! ones go first) with at most `max_alerts_per_incident` alerts each, and
//! at most `max_services` "closest to firing" entries.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::alert::{Alert, AlertSample, rfc3339};
use crate::detect::{PhraseCount, ServiceStatus, TransitionKind};
use crate::window::Bucket;
use crate::{MICROS_PER_SEC, Micros};

const MINUTE: Micros = 60 * MICROS_PER_SEC;

/// The longest incident chart kept, in minutes.
const MAX_CHART_MINUTES: Micros = 24 * 60;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoardLimits {
    /// Minutes of series kept per service.
    pub minutes: usize,
    pub max_services: usize,
    pub max_incidents: usize,
    pub max_alerts_per_incident: usize,
    /// An incident's chart starts this long before its onset …
    pub chart_before: Micros,
    /// … and goes on this long after its resolution.
    pub chart_after: Micros,
}

impl Default for BoardLimits {
    fn default() -> Self {
        BoardLimits {
            minutes: 180,
            max_services: 300,
            max_incidents: 200,
            max_alerts_per_incident: 50,
            chart_before: 30 * MINUTE,
            chart_after: 10 * MINUTE,
        }
    }
}

/// One minute of one service (event time).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Start of the minute, RFC 3339 in the API; µs here.
    #[serde(serialize_with = "as_rfc3339")]
    pub minute: Micros,
    /// Reports counted in the minute.
    pub reports: u64,
    /// Distinct reporting authors per minute over the detector's window
    /// (the highest of the minute's buckets).
    pub rate_per_min: f64,
    /// What the baseline expected per minute (end of the minute).
    pub expected_per_min: f64,
    /// The rate that would fire (end of the minute).
    pub fire_per_min: f64,
}

fn as_rfc3339<S: serde::Serializer>(t: &Micros, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

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
    started_us: Micros,
    #[serde(skip)]
    resolved_us: Option<Micros>,
}

/// A quiet service and the nearest it came to firing.
#[derive(Debug, Clone, Serialize)]
pub struct Closest {
    pub service: String,
    /// Highest window rate over the firing rate (1.0 would fire).
    pub ratio: f64,
    pub at: String,
    pub rate_per_min: f64,
    pub fire_per_min: f64,
    pub expected_per_min: f64,
}

#[derive(Debug, Default)]
pub struct Board {
    limits: BoardLimits,
    /// Start of the newest bucket fed.
    newest: Option<Micros>,
    /// Start of the oldest bucket fed (charts do not reach before it).
    oldest: Option<Micros>,
    series: BTreeMap<String, VecDeque<Point>>,
    /// The detector's status after the newest bucket.
    status: Vec<ServiceStatus>,
    incidents: BTreeMap<String, IncidentRecord>,
    closest: BTreeMap<String, (f64, Micros, f64, f64, f64)>,
    /// Alerts seen, by state (`firing`, `updated`, `resolved`).
    alerts_by_state: BTreeMap<&'static str, u64>,
}

impl Board {
    pub fn new(limits: BoardLimits) -> Self {
        Board {
            limits,
            ..Board::default()
        }
    }

    /// Start of the newest bucket fed (event time).
    pub fn newest(&self) -> Option<Micros> {
        self.newest
    }

    /// One closed bucket, the detector's status after it, and the alerts
    /// it raised.
    pub fn on_bucket(&mut self, bucket: &Bucket, status: Vec<ServiceStatus>, alerts: &[Alert]) {
        let now = bucket.start;
        self.newest = Some(self.newest.map_or(now, |n| n.max(now)));
        self.oldest = Some(self.oldest.map_or(now, |o| o.min(now)));
        let minute = now.div_euclid(MINUTE) * MINUTE;
        for s in &status {
            let reports = bucket.services.get(&s.service).map_or(0, |c| c.reports);
            let series = self.series.entry(s.service.clone()).or_default();
            match series.back_mut() {
                Some(p) if p.minute == minute => {
                    p.reports += reports;
                    p.rate_per_min = p.rate_per_min.max(s.rate_per_min);
                    p.expected_per_min = s.expected_per_min;
                    p.fire_per_min = s.fire_per_min;
                }
                _ => series.push_back(Point {
                    minute,
                    reports,
                    rate_per_min: s.rate_per_min,
                    expected_per_min: s.expected_per_min,
                    fire_per_min: s.fire_per_min,
                }),
            }
            if s.incident.is_none() && s.fire_per_min > 0.0 {
                let ratio = s.rate_per_min / s.fire_per_min;
                let entry = self
                    .closest
                    .entry(s.service.clone())
                    .or_insert((0.0, now, 0.0, 0.0, 0.0));
                if ratio > entry.0 {
                    *entry = (
                        ratio,
                        now,
                        s.rate_per_min,
                        s.fire_per_min,
                        s.expected_per_min,
                    );
                }
            }
        }
        let oldest = minute - (self.limits.minutes as Micros - 1).max(0) * MINUTE;
        for series in self.series.values_mut() {
            while series.front().is_some_and(|p| p.minute < oldest) {
                series.pop_front();
            }
        }
        self.series.retain(|_, s| !s.is_empty());
        bound(&mut self.series, self.limits.max_services, |s| {
            s.back().map_or(0, |p| p.minute)
        });
        bound(&mut self.closest, self.limits.max_services, |c| {
            (c.0 * 1e6) as i64
        });
        self.status = status;
        for alert in alerts {
            self.record_alert(alert);
        }
        self.refresh_incident_charts(now);
    }

    /// An alert raised outside the pipeline (a source's health), or by it.
    pub fn record_alert(&mut self, alert: &Alert) {
        let state = match alert.state {
            TransitionKind::Firing => "firing",
            TransitionKind::Updated => "updated",
            TransitionKind::Resolved => "resolved",
        };
        *self.alerts_by_state.entry(state).or_default() += 1;
        let parse = |t: &str| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| t.timestamp_micros())
                .unwrap_or(0)
        };
        let record = self
            .incidents
            .entry(alert.id.clone())
            .or_insert_with(|| IncidentRecord {
                id: alert.id.clone(),
                service: alert.service.clone(),
                state: alert.state,
                open: true,
                severity: alert.severity.clone(),
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
                started_us: parse(&alert.started_at),
                resolved_us: None,
            });
        record.state = match alert.state {
            TransitionKind::Resolved => TransitionKind::Resolved,
            _ => TransitionKind::Firing,
        };
        record.open = alert.state != TransitionKind::Resolved;
        record.severity = alert.severity.clone();
        record.updated_at = alert.at.clone();
        record.reports = alert.reports;
        record.peak_authors = alert.peak_authors;
        record.rate_per_min = alert.rate_per_min;
        record.baseline_per_min = alert.baseline_per_min;
        if alert.detail.is_some() {
            record.detail = alert.detail.clone();
        }
        if !alert.samples.is_empty() {
            record.samples = alert.samples.clone();
            record.top_phrases = alert.top_phrases.clone();
            record.languages = alert.languages.clone();
        }
        if alert.state == TransitionKind::Resolved {
            record.resolved_us = Some(parse(&alert.at));
        }
        if record.alerts.len() < self.limits.max_alerts_per_incident {
            record.alerts.push(alert.clone());
        }
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
    fn refresh_incident_charts(&mut self, now: Micros) {
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

    /// The detector's status of every tracked service, busiest first.
    pub fn services(&self) -> Vec<&ServiceStatus> {
        let mut list: Vec<&ServiceStatus> = self.status.iter().collect();
        list.sort_by(|a, b| {
            b.rate_per_min
                .total_cmp(&a.rate_per_min)
                .then(b.last_report.cmp(&a.last_report))
                .then(a.service.cmp(&b.service))
        });
        list
    }

    /// The last `minutes` minutes of a service, one point per minute up to
    /// the newest bucket, not before the first bucket seen (minutes without
    /// data are zero with the nearest known expectation); `None` for a
    /// service never seen.
    pub fn series(&self, service: &str, minutes: usize) -> Option<Vec<Point>> {
        let series = self.series.get(service)?;
        let newest = self.newest?;
        let last = newest.div_euclid(MINUTE) * MINUTE;
        let minutes = minutes.clamp(1, self.limits.minutes);
        let oldest = self.oldest.unwrap_or(newest).div_euclid(MINUTE) * MINUTE;
        let first = (last - (minutes as Micros - 1) * MINUTE).max(oldest);
        Some(fill(series.iter().copied(), first, last))
    }

    /// Names of the services with a series.
    pub fn series_names(&self) -> impl Iterator<Item = &str> {
        self.series.keys().map(String::as_str)
    }

    /// Quiet services nearest to firing, nearest first (at most `n`),
    /// leaving out those that had an incident.
    pub fn closest(&self, n: usize) -> Vec<Closest> {
        let mut list: Vec<Closest> = self
            .closest
            .iter()
            .filter(|(service, _)| !self.incidents.values().any(|r| &r.service == *service))
            .map(|(service, &(ratio, at, rate, fire, expected))| Closest {
                service: service.clone(),
                ratio: (ratio * 1000.0).round() / 1000.0,
                at: rfc3339(at),
                rate_per_min: rate,
                fire_per_min: fire,
                expected_per_min: expected,
            })
            .collect();
        list.sort_by(|a, b| b.ratio.total_cmp(&a.ratio).then(a.service.cmp(&b.service)));
        list.truncate(n);
        list
    }

    pub fn alerts_by_state(&self) -> &BTreeMap<&'static str, u64> {
        &self.alerts_by_state
    }
}

/// Points for every minute from `first` to `last`: the known ones, and
/// zero reports with the previous expectation in between.
fn fill(points: impl Iterator<Item = Point>, first: Micros, last: Micros) -> Vec<Point> {
    let known: BTreeMap<Micros, Point> = points.map(|p| (p.minute, p)).collect();
    let mut carry = known
        .range(..first)
        .next_back()
        .map(|(_, p)| *p)
        .or_else(|| known.values().next().copied());
    let mut out = Vec::new();
    let mut minute = first;
    while minute <= last {
        let point = match known.get(&minute) {
            Some(p) => *p,
            None => Point {
                minute,
                reports: 0,
                rate_per_min: 0.0,
                expected_per_min: carry.map_or(0.0, |c| c.expected_per_min),
                fire_per_min: carry.map_or(0.0, |c| c.fire_per_min),
            },
        };
        carry = Some(point);
        out.push(point);
        minute += MINUTE;
    }
    out
}

/// Keeps at most `max` entries, dropping those with the lowest `rank`.
fn bound<V>(map: &mut BTreeMap<String, V>, max: usize, rank: impl Fn(&V) -> i64) {
    if map.len() <= max {
        return;
    }
    let mut ranked: Vec<(i64, String)> = map.iter().map(|(k, v)| (rank(v), k.clone())).collect();
    ranked.sort();
    for (_, key) in ranked.into_iter().take(map.len() - max) {
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Basis;

    fn status(service: &str, rate: f64, incident: bool) -> ServiceStatus {
        ServiceStatus {
            service: service.into(),
            reports: 1,
            authors: 1,
            rate_per_min: rate,
            expected_per_min: 0.2,
            fire_per_min: 10.0,
            p_value: 0.5,
            basis: Basis::Prior,
            last_report: 0,
            discovered: false,
            incident: incident.then(|| {
                crate::detect::Incident::open(
                    service,
                    0,
                    crate::detect::Severity::Low,
                    0.0,
                    false,
                    1,
                    1,
                    Basis::Prior,
                )
            }),
        }
    }

    fn bucket(start: Micros, service: &str, reports: u64) -> Bucket {
        let mut b = Bucket {
            start,
            ..Bucket::default()
        };
        b.services.insert(
            service.into(),
            crate::window::ServiceCounts {
                reports,
                ..Default::default()
            },
        );
        b
    }

    #[test]
    fn series_are_per_minute_filled_and_bounded() {
        let mut board = Board::new(BoardLimits {
            minutes: 5,
            max_services: 2,
            ..BoardLimits::default()
        });
        let s = MICROS_PER_SEC;
        // Two buckets in minute 0, none in minute 1, one in minute 2.
        board.on_bucket(&bucket(0, "a", 2), vec![status("a", 2.0, false)], &[]);
        board.on_bucket(&bucket(10 * s, "a", 3), vec![status("a", 5.0, false)], &[]);
        board.on_bucket(&bucket(120 * s, "a", 1), vec![status("a", 1.0, false)], &[]);
        let series = board.series("a", 3).expect("a has a series");
        let reports: Vec<u64> = series.iter().map(|p| p.reports).collect();
        assert_eq!(reports, vec![5, 0, 1]);
        assert_eq!(series[0].rate_per_min, 5.0, "the minute's highest rate");
        assert_eq!(series[1].expected_per_min, 0.2, "gaps keep the expectation");
        // Ten minutes later the old points are gone (5 minutes kept).
        board.on_bucket(&bucket(720 * s, "a", 1), vec![status("a", 1.0, false)], &[]);
        assert_eq!(board.series.get("a").map(VecDeque::len), Some(1));
        // A third service pushes out the least recently active one.
        board.on_bucket(&bucket(730 * s, "b", 1), vec![status("b", 1.0, false)], &[]);
        board.on_bucket(&bucket(740 * s, "c", 1), vec![status("c", 1.0, false)], &[]);
        let names: Vec<&str> = board.series_names().collect();
        assert_eq!(names, vec!["b", "c"]);
        assert!(board.series("nope", 10).is_none());
    }

    #[test]
    fn incidents_collect_alerts_and_keep_their_chart() {
        let mut board = Board::new(BoardLimits::default());
        let mut alert = crate::alert::format::sample_alert();
        alert.service = "a".into();
        alert.id = "a-1".into();
        alert.started_at = rfc3339(0);
        alert.at = rfc3339(30 * MICROS_PER_SEC);
        board.on_bucket(
            &bucket(0, "a", 4),
            vec![status("a", 8.0, true)],
            &[alert.clone()],
        );
        assert_eq!(board.incidents(false).len(), 1);
        let mut resolved = alert.clone();
        resolved.state = TransitionKind::Resolved;
        resolved.samples.clear();
        board.on_bucket(
            &bucket(60 * MICROS_PER_SEC, "a", 1),
            vec![status("a", 1.0, false)],
            &[resolved],
        );
        assert!(board.incidents(false).is_empty(), "resolved is not open");
        let record = board.incident("a-1").expect("kept");
        assert_eq!(record.alerts.len(), 2);
        assert!(
            !record.samples.is_empty(),
            "evidence of the firing alert kept"
        );
        assert_eq!(record.series.len(), 2, "chart covers both minutes");
        assert_eq!(board.alerts_by_state().get("resolved"), Some(&1));
        // A service that had an incident is not among the closest quiet ones.
        assert!(board.closest(10).iter().all(|c| c.service != "a"));
    }
}
