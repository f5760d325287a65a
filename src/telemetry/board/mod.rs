//! The board: what the dashboard, the status API and the replay report
//! show, kept up to date from closed buckets, the detector's status and the
//! alerts raised. Pure: it is told the event time, it never asks a clock.
//!
//! Everything in it is bounded: a series of `minutes` points per service
//! for at most `max_services` services (the least recently active, by
//! their last minute with reports, are dropped first; one with an open
//! incident is kept, equals go by name), at most `max_incidents` incidents (the oldest resolved
//! ones go first) with at most `max_alerts_per_incident` alerts each, and
//! at most `max_services` "closest to firing" entries.

mod incidents;

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

pub use self::incidents::IncidentRecord;

use crate::alert::{Alert, rfc3339};
use crate::detect::ServiceStatus;
use crate::numbers::round3;
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
    #[serde(serialize_with = "crate::numbers::serialize_round3")]
    pub rate_per_min: f64,
    /// What the baseline expected per minute (end of the minute).
    #[serde(serialize_with = "crate::numbers::serialize_round3")]
    pub expected_per_min: f64,
    /// The rate that would fire (end of the minute).
    #[serde(serialize_with = "crate::numbers::serialize_round3")]
    pub fire_per_min: f64,
}

fn as_rfc3339<S: serde::Serializer>(t: &Micros, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
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
        // Every tracked service gets a point each minute, reports or not,
        // so the newest point says nothing about activity: rank by the
        // last minute with reports instead, and keep a service with an
        // open incident whatever its reports (its chart is on show).
        // (Ranked only when over the cap: a bucket of a replay is closed
        // in microseconds.)
        if self.series.len() > self.limits.max_services {
            let open: std::collections::BTreeSet<&str> = status
                .iter()
                .filter(|s| s.incident.is_some())
                .map(|s| s.service.as_str())
                .collect();
            bound_by_key(&mut self.series, self.limits.max_services, |name, s| {
                if open.contains(name) {
                    Micros::MAX
                } else {
                    last_active(s)
                }
            });
        }
        bound(&mut self.closest, self.limits.max_services, |c| {
            (c.0 * 1e6) as i64
        });
        self.status = status;
        for alert in alerts {
            self.record_alert(alert);
        }
        self.refresh_incident_charts(now);
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
                ratio: round3(ratio),
                at: rfc3339(at),
                rate_per_min: round3(rate),
                fire_per_min: round3(fire),
                expected_per_min: round3(expected),
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

/// The last minute of a series with reports, `Micros::MIN` for a series
/// without any (never active within the minutes kept).
fn last_active(series: &VecDeque<Point>) -> Micros {
    series
        .iter()
        .rev()
        .find(|p| p.reports > 0)
        .map_or(Micros::MIN, |p| p.minute)
}

/// Keeps at most `max` entries, dropping those with the lowest `rank`.
fn bound<V>(map: &mut BTreeMap<String, V>, max: usize, rank: impl Fn(&V) -> i64) {
    bound_by_key(map, max, |_, v| rank(v));
}

/// Keeps at most `max` entries, dropping those with the lowest `rank` (of
/// the key and the value); equal ranks go by name, so the outcome does
/// not depend on the map's history.
fn bound_by_key<V>(map: &mut BTreeMap<String, V>, max: usize, rank: impl Fn(&str, &V) -> i64) {
    if map.len() <= max {
        return;
    }
    let mut ranked: Vec<(i64, String)> = map.iter().map(|(k, v)| (rank(k, v), k.clone())).collect();
    ranked.sort();
    for (_, key) in ranked.into_iter().take(map.len() - max) {
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests;
