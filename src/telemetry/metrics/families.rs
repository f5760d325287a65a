//! The metric families in groups, by what they describe; each group
//! registers its families and copies its part of the program's counters
//! into them at a scrape.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Counters, FloatGauges, Gauges, TOP_SERVICES, copy_plain, copy_total, label, labels};
use crate::Micros;
use crate::alert::deliver::SinkFigures;
use crate::events::http::HttpCounters;
use crate::events::pipeline::Stats;
use crate::source::health::SourceHealth;
use crate::telemetry::Board;

/// What the pipeline counted, per source (from [`Stats`](crate::events::pipeline::Stats)).
pub(super) struct PipelineFamilies {
    frames: Counters,
    posts: Counters,
    reports: Counters,
    recoveries: Counters,
    maintenance: Counters,
    duplicates: Counters,
    malformed: Counters,
    skipped: Counters,
    late: Counter,
    stale: Counter,
    discovered_rejected: Counter,
    buckets: Counter,
    pub(super) alerts: Counters,
}

/// Each live connection (from its [`SourceHealth`](crate::source::health::SourceHealth)).
pub(super) struct SourceFamilies {
    connected: Gauges,
    lag: FloatGauges,
    reconnects: Counters,
    received: Counters,
    dropped: Counters,
    stalls: Counters,
    refused: Counters,
    messages: Counters,
}

/// The detector's view of the services (from the board).
pub(super) struct ServiceFamilies {
    rate: FloatGauges,
    expected: FloatGauges,
    tracked: Gauge,
    incidents_open: Gauges,
}

/// The sinks and the outbox (from the sinks' probe).
pub(super) struct DeliveryFamilies {
    outbox_depth: Gauges,
    set_aside: Gauges,
    deliveries: Counters,
    retries: Counters,
    dead: Counters,
    dead_stored: Gauges,
    /// Bumped when letters expire ([`super::Metrics::dead_letters_expired`]),
    /// not copied at a scrape: the outbox keeps no count of them.
    pub(super) expired: Counters,
    store_size: Gauge,
}

// Counter names get their `_total` from the encoder.
impl PipelineFamilies {
    // Over 60 lines only as formatted: one declaration per family.
    pub(super) fn register(r: &mut Registry) -> Self {
        PipelineFamilies {
            frames: family!(
                r,
                "outagewatch_frames",
                "Frames (or recording lines) read, per source"
            ),
            posts: family!(r, "outagewatch_posts", "Posts decoded, per source"),
            reports: family!(
                r,
                "outagewatch_reports",
                "Posts classified as outage reports, per source"
            ),
            recoveries: family!(
                r,
                "outagewatch_recoveries",
                "Posts saying a service works again, per source"
            ),
            maintenance: family!(
                r,
                "outagewatch_maintenance",
                "Planned-maintenance notices, per source"
            ),
            duplicates: family!(
                r,
                "outagewatch_duplicate_posts",
                "Posts delivered twice and dropped, per source"
            ),
            malformed: family!(
                r,
                "outagewatch_malformed_frames",
                "Frames that could not be used, per source and reason"
            ),
            skipped: family!(
                r,
                "outagewatch_skipped_frames",
                "Well-formed frames without a post, per source and reason"
            ),
            late: family!(
                r,
                "outagewatch_late_posts",
                "Posts added to the oldest open bucket after theirs closed"
            ),
            stale: family!(
                r,
                "outagewatch_stale_posts",
                "Posts too far behind the newest event to count"
            ),
            discovered_rejected: family!(
                r,
                "outagewatch_discovered_rejected",
                "Reports of discovered services turned away by the bound on them"
            ),
            buckets: family!(
                r,
                "outagewatch_buckets_closed",
                "Event-time buckets closed and saved"
            ),
            alerts: family!(
                r,
                "outagewatch_alerts",
                "Alerts raised, per state (firing, updated, resolved)"
            ),
        }
    }

    pub(super) fn sync(&self, stats: &Stats) {
        for (source, c) in &stats.by_source {
            let l = label("source", source);
            copy_total(&self.frames, &l, c.frames);
            copy_total(&self.posts, &l, c.posts);
            copy_total(&self.reports, &l, c.reports);
            copy_total(&self.recoveries, &l, c.recoveries);
            copy_total(&self.maintenance, &l, c.maintenance);
            copy_total(&self.duplicates, &l, c.duplicates);
            for (reason, n) in &c.malformed {
                let l = labels(&[("source", source), ("reason", reason)]);
                copy_total(&self.malformed, &l, *n);
            }
            for (reason, n) in &c.skipped {
                let l = labels(&[("source", source), ("reason", reason)]);
                copy_total(&self.skipped, &l, *n);
            }
        }
        copy_plain(&self.late, stats.late_posts);
        copy_plain(&self.stale, stats.stale_posts);
        copy_plain(&self.discovered_rejected, stats.discovered_rejected);
        copy_plain(&self.buckets, stats.buckets_closed);
    }
}

impl SourceFamilies {
    pub(super) fn register(r: &mut Registry) -> Self {
        SourceFamilies {
            connected: family!(
                r,
                "outagewatch_source_connected",
                "1 while the live source's connection is up"
            ),
            lag: family!(
                r,
                "outagewatch_source_lag_seconds",
                "Wall-clock time minus the newest event time processed, per live source"
            ),
            reconnects: family!(
                r,
                "outagewatch_source_reconnects",
                "Reconnections, per live source"
            ),
            received: family!(
                r,
                "outagewatch_source_received_frames",
                "Data frames received on the socket, per live source"
            ),
            dropped: family!(
                r,
                "outagewatch_source_dropped_frames",
                "Frames dropped at the socket, per live source and reason (oversized, binary)"
            ),
            stalls: family!(
                r,
                "outagewatch_source_stalls",
                "Connections dropped by the data watchdog, per live source"
            ),
            messages: family!(
                r,
                "outagewatch_source_server_messages",
                "Server messages that are neither data nor errors (EOSE, NOTICE, OK, AUTH, #info), per live source"
            ),
            refused: family!(
                r,
                "outagewatch_source_server_errors",
                "Handshakes refused or failed by the server, per live source"
            ),
        }
    }

    /// `now`: the wall clock, for the lag.
    pub(super) fn sync(&self, sources: &[Arc<SourceHealth>], now: Micros) {
        for source in sources {
            let s = source.snapshot();
            let l = label("source", &source.name);
            self.connected.get_or_create(&l).set(i64::from(s.connected));
            if let Some(p) = s.processed {
                let lag = (now - p) as f64 / 1e6;
                self.lag.get_or_create(&l).set(lag.max(0.0));
            }
            copy_total(&self.reconnects, &l, s.reconnects);
            copy_total(&self.received, &l, s.frames);
            copy_total(&self.stalls, &l, s.stalls);
            copy_total(&self.messages, &l, s.messages);
            copy_total(&self.refused, &l, s.server_errors);
            for (reason, n) in [
                ("oversized", s.oversized),
                ("binary", s.binary),
                ("other_subscription", s.foreign),
            ] {
                let l = labels(&[("source", &source.name), ("reason", reason)]);
                copy_total(&self.dropped, &l, n);
            }
        }
    }
}

impl ServiceFamilies {
    pub(super) fn register(r: &mut Registry) -> Self {
        ServiceFamilies {
            rate: family!(
                r,
                "outagewatch_service_rate_per_minute",
                "Distinct reporting authors per minute in the detector's window (top services and other)"
            ),
            expected: family!(
                r,
                "outagewatch_service_expected_per_minute",
                "What the baseline expects per minute (top services and other)"
            ),
            tracked: family!(
                r,
                "outagewatch_services_tracked",
                "Services with recent reports or an open incident"
            ),
            incidents_open: family!(
                r,
                "outagewatch_incidents_open",
                "Open incidents, per severity"
            ),
        }
    }

    /// The per-service gauges rebuilt for the `TOP_SERVICES` busiest
    /// services plus [`super::OTHER_SERVICES`], and the open incidents per
    /// severity.
    pub(super) fn sync(&self, board: &Board) {
        let services = board.services();
        self.tracked.set(services.len() as i64);
        self.rate.clear();
        self.expected.clear();
        let (mut other_rate, mut other_expected, mut others) = (0.0, 0.0, 0);
        for (i, s) in services.iter().enumerate() {
            if i < TOP_SERVICES {
                let l = label("service", &s.service);
                self.rate.get_or_create(&l).set(s.rate_per_min);
                self.expected.get_or_create(&l).set(s.expected_per_min);
            } else {
                other_rate += s.rate_per_min;
                other_expected += s.expected_per_min;
                others += 1;
            }
        }
        if others > 0 {
            let l = label("service", super::OTHER_SERVICES);
            self.rate.get_or_create(&l).set(other_rate);
            self.expected.get_or_create(&l).set(other_expected);
        }
        let mut open = BTreeMap::from([("low", 0), ("medium", 0), ("high", 0)]);
        for record in board.incidents(false) {
            if let Some(n) = open.get_mut(record.severity.as_str()) {
                *n += 1;
            }
        }
        for (severity, n) in open {
            self.incidents_open
                .get_or_create(&label("severity", severity))
                .set(n);
        }
    }
}

impl DeliveryFamilies {
    pub(super) fn register(r: &mut Registry) -> Self {
        DeliveryFamilies {
            outbox_depth: family!(
                r,
                "outagewatch_outbox_depth",
                "Alerts waiting for delivery, per sink"
            ),
            set_aside: family!(
                r,
                "outagewatch_alerts_set_aside",
                "Alerts set aside (refused while other incidents' alerts went on), per sink"
            ),
            deliveries: family!(
                r,
                "outagewatch_deliveries",
                "Alerts delivered since start, per sink"
            ),
            retries: family!(
                r,
                "outagewatch_delivery_retries",
                "Delivery attempts retried since start, per sink"
            ),
            dead: family!(
                r,
                "outagewatch_dead_letters",
                "Alerts given up on since start, per sink"
            ),
            dead_stored: family!(
                r,
                "outagewatch_dead_letters_stored",
                "Dead letters in the store now, per sink"
            ),
            expired: family!(
                r,
                "outagewatch_dead_letters_expired",
                "Dead letters dropped after [alerts] dead_letter_days since start, per sink"
            ),
            store_size: family!(
                r,
                "outagewatch_store_size_bytes",
                "Size of the state store on disk"
            ),
        }
    }

    /// Copies the sinks' figures: live, or their last ones once they have
    /// stopped (after a replay, with `--serve-after`), so the page still
    /// says what was left undelivered.
    pub(super) fn sync(&self, figures: &SinkFigures) {
        for report in &figures.reports {
            let l = label("sink", &report.name);
            self.outbox_depth
                .get_or_create(&l)
                .set(report.pending as i64);
            self.set_aside
                .get_or_create(&l)
                .set(report.set_aside as i64);
            copy_total(&self.deliveries, &l, report.delivered);
            copy_total(&self.retries, &l, report.retries);
            copy_total(&self.dead, &l, report.dead);
            let stored = figures
                .dead_stored
                .as_ref()
                .and_then(|counts| counts.get(&report.name))
                .copied()
                .unwrap_or(0);
            self.dead_stored
                .get_or_create(&l)
                .set(i64::try_from(stored).unwrap_or(i64::MAX));
        }
        if let Some(size) = figures.store_size {
            self.store_size.set(size as i64);
        }
    }
}

/// The status server's own guards (from [`HttpCounters`]).
pub(super) struct HttpFamilies {
    refused: Counter,
    timeouts: Counters,
}

impl HttpFamilies {
    pub(super) fn register(r: &mut Registry) -> Self {
        HttpFamilies {
            refused: family!(
                r,
                "outagewatch_http_connections_refused",
                "Status-server connections closed at once because too many were open"
            ),
            timeouts: family!(
                r,
                "outagewatch_http_timeouts",
                "Status-server requests cut off, per kind (headers: head not read in time, connection closed; request: answered 503)"
            ),
        }
    }

    pub(super) fn sync(&self, c: &HttpCounters) {
        use std::sync::atomic::Ordering::Relaxed;
        copy_plain(&self.refused, c.refused.load(Relaxed));
        for (kind, n) in [
            ("headers", &c.header_timeouts),
            ("request", &c.request_timeouts),
        ] {
            copy_total(&self.timeouts, &label("kind", kind), n.load(Relaxed));
        }
    }
}
