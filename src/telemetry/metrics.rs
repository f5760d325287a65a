//! Prometheus metrics, encoded by `prometheus-client`.
//!
//! The program's counters live where they are counted (see the module
//! above); at each scrape, [`Metrics::render`] copies them into the
//! registry's families and encodes the registry. Counters only ever move
//! up: a total is copied by adding the difference. Gauges with a label per
//! service are rebuilt at each scrape for the `TOP_SERVICES` busiest
//! services plus `other`, so the number of series stays bounded whatever
//! the firehose names.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Telemetry;

/// Services with their own label in the per-service gauges; the rest are
/// summed under `service="other"`.
pub const TOP_SERVICES: usize = 20;

type Labels = Vec<(&'static str, String)>;
type Counters = Family<Labels, Counter>;
type Gauges = Family<Labels, Gauge>;
type FloatGauges = Family<Labels, Gauge<f64, AtomicU64>>;

fn label(key: &'static str, value: &str) -> Labels {
    vec![(key, value.to_owned())]
}

/// Adds to a counter what a total has gained since the last copy.
fn copy_total(family: &Counters, labels: &Labels, total: u64) {
    let counter = family.get_or_create(labels);
    let have = counter.get();
    if total > have {
        counter.inc_by(total - have);
    }
}

/// The same for a counter without labels.
fn copy_plain(counter: &Counter, total: u64) {
    let have = counter.get();
    if total > have {
        counter.inc_by(total - have);
    }
}

pub struct Metrics {
    /// Held while copying and encoding, so scrapes do not interleave.
    registry: Mutex<Registry>,
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
    alerts: Counters,
    source_connected: Gauges,
    source_lag: FloatGauges,
    source_reconnects: Counters,
    source_received: Counters,
    source_dropped: Counters,
    source_stalls: Counters,
    source_refused: Counters,
    service_rate: FloatGauges,
    service_expected: FloatGauges,
    services_tracked: Gauge,
    incidents_open: Gauges,
    outbox_depth: Gauges,
    deliveries: Counters,
    retries: Counters,
    dead: Counters,
    dead_stored: Gauges,
    store_size: Gauge,
    event_time: Gauge<f64, AtomicU64>,
    up: Gauge,
    process: Process,
}

#[derive(Default)]
struct Process {
    cpu: Counter<f64, AtomicU64>,
    resident: Gauge,
    virtual_memory: Gauge,
    open_fds: Gauge,
    threads: Gauge,
    start_time: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::default();
        macro_rules! family {
            ($name:expr, $help:expr) => {{
                let f = Default::default();
                r.register($name, $help, Clone::clone(&f));
                f
            }};
        }
        // Counter names get their `_total` from the encoder.
        let m = Metrics {
            frames: family!(
                "outagewatch_frames",
                "Frames (or recording lines) read, per source"
            ),
            posts: family!("outagewatch_posts", "Posts decoded, per source"),
            reports: family!(
                "outagewatch_reports",
                "Posts classified as outage reports, per source"
            ),
            recoveries: family!(
                "outagewatch_recoveries",
                "Posts saying a service works again, per source"
            ),
            maintenance: family!(
                "outagewatch_maintenance",
                "Planned-maintenance notices, per source"
            ),
            duplicates: family!(
                "outagewatch_duplicate_posts",
                "Posts delivered twice and dropped, per source"
            ),
            malformed: family!(
                "outagewatch_malformed_frames",
                "Frames that could not be used, per source and reason"
            ),
            skipped: family!(
                "outagewatch_skipped_frames",
                "Well-formed frames without a post, per source and reason"
            ),
            late: family!(
                "outagewatch_late_posts",
                "Posts added to the oldest open bucket after theirs closed"
            ),
            stale: family!(
                "outagewatch_stale_posts",
                "Posts too far behind the newest event to count"
            ),
            discovered_rejected: family!(
                "outagewatch_discovered_rejected",
                "Reports of discovered services turned away by the bound on them"
            ),
            buckets: family!(
                "outagewatch_buckets_closed",
                "Event-time buckets closed and saved"
            ),
            alerts: family!(
                "outagewatch_alerts",
                "Alerts raised, per state (firing, updated, resolved)"
            ),
            source_connected: family!(
                "outagewatch_source_connected",
                "1 while the live source's connection is up"
            ),
            source_lag: family!(
                "outagewatch_source_lag_seconds",
                "Wall-clock time minus the newest event time processed, per live source"
            ),
            source_reconnects: family!(
                "outagewatch_source_reconnects",
                "Reconnections, per live source"
            ),
            source_received: family!(
                "outagewatch_source_received_frames",
                "Data frames received on the socket, per live source"
            ),
            source_dropped: family!(
                "outagewatch_source_dropped_frames",
                "Frames dropped at the socket, per live source and reason (oversized, binary)"
            ),
            source_stalls: family!(
                "outagewatch_source_stalls",
                "Connections dropped by the data watchdog, per live source"
            ),
            source_refused: family!(
                "outagewatch_source_server_errors",
                "Handshakes refused or failed by the server, per live source"
            ),
            service_rate: family!(
                "outagewatch_service_rate_per_minute",
                "Distinct reporting authors per minute in the detector's window (top services and other)"
            ),
            service_expected: family!(
                "outagewatch_service_expected_per_minute",
                "What the baseline expects per minute (top services and other)"
            ),
            services_tracked: family!(
                "outagewatch_services_tracked",
                "Services with recent reports or an open incident"
            ),
            incidents_open: family!("outagewatch_incidents_open", "Open incidents, per severity"),
            outbox_depth: family!(
                "outagewatch_outbox_depth",
                "Alerts waiting for delivery, per sink"
            ),
            deliveries: family!(
                "outagewatch_deliveries",
                "Alerts delivered since start, per sink"
            ),
            retries: family!(
                "outagewatch_delivery_retries",
                "Delivery attempts retried since start, per sink"
            ),
            dead: family!(
                "outagewatch_dead_letters",
                "Alerts given up on since start, per sink"
            ),
            dead_stored: family!(
                "outagewatch_dead_letters_stored",
                "Dead letters in the store now, per sink"
            ),
            store_size: family!(
                "outagewatch_store_size_bytes",
                "Size of the state store on disk"
            ),
            event_time: family!(
                "outagewatch_event_time_seconds",
                "Start of the newest closed bucket (event time, Unix seconds)"
            ),
            up: family!("outagewatch_ready", "1 when /readyz answers 200"),
            process: Process::default(),
            registry: Mutex::new(Registry::default()),
        };
        r.register(
            "process_cpu_seconds",
            "User and system CPU time spent",
            m.process.cpu.clone(),
        );
        r.register(
            "process_resident_memory_bytes",
            "Resident memory size",
            m.process.resident.clone(),
        );
        r.register(
            "process_virtual_memory_bytes",
            "Virtual memory size",
            m.process.virtual_memory.clone(),
        );
        r.register(
            "process_open_fds",
            "Open file descriptors",
            m.process.open_fds.clone(),
        );
        r.register("process_threads", "OS threads", m.process.threads.clone());
        r.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch",
            m.process.start_time.clone(),
        );
        *m.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = r;
        m
    }

    /// Copies every counter into the registry and encodes it as the
    /// Prometheus text format.
    pub fn render(&self, t: &Telemetry) -> Result<String, std::fmt::Error> {
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.sync(t);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }

    fn sync(&self, t: &Telemetry) {
        let stats = t.stats();
        for (source, c) in &stats.by_source {
            let l = label("source", source);
            copy_total(&self.frames, &l, c.frames);
            copy_total(&self.posts, &l, c.posts);
            copy_total(&self.reports, &l, c.reports);
            copy_total(&self.recoveries, &l, c.recoveries);
            copy_total(&self.maintenance, &l, c.maintenance);
            copy_total(&self.duplicates, &l, c.duplicates);
            for (reason, n) in &c.malformed {
                let l = vec![("source", source.clone()), ("reason", (*reason).to_owned())];
                copy_total(&self.malformed, &l, *n);
            }
            for (reason, n) in &c.skipped {
                let l = vec![("source", source.clone()), ("reason", (*reason).to_owned())];
                copy_total(&self.skipped, &l, *n);
            }
        }
        copy_plain(&self.late, stats.late_posts);
        copy_plain(&self.stale, stats.stale_posts);
        copy_plain(&self.discovered_rejected, stats.discovered_rejected);
        copy_plain(&self.buckets, stats.buckets_closed);

        let now = crate::source::health::wall_now();
        for source in t.sources() {
            let s = source.snapshot();
            let l = label("source", &source.name);
            self.source_connected
                .get_or_create(&l)
                .set(i64::from(s.connected));
            if let Some(p) = s.processed {
                let lag = (now - p) as f64 / 1e6;
                self.source_lag.get_or_create(&l).set(lag.max(0.0));
            }
            copy_total(&self.source_reconnects, &l, s.reconnects);
            copy_total(&self.source_received, &l, s.frames);
            copy_total(&self.source_stalls, &l, s.stalls);
            copy_total(&self.source_refused, &l, s.server_errors);
            for (reason, n) in [("oversized", s.oversized), ("binary", s.binary)] {
                let l = vec![
                    ("source", source.name.clone()),
                    ("reason", reason.to_owned()),
                ];
                copy_total(&self.source_dropped, &l, n);
            }
        }

        {
            let board = t.board();
            for (state, n) in board.alerts_by_state() {
                copy_total(&self.alerts, &label("state", state), *n);
            }
            let services = board.services();
            self.services_tracked.set(services.len() as i64);
            self.service_rate.clear();
            self.service_expected.clear();
            let (mut other_rate, mut other_expected, mut others) = (0.0, 0.0, 0);
            for (i, s) in services.iter().enumerate() {
                if i < TOP_SERVICES {
                    let l = label("service", &s.service);
                    self.service_rate.get_or_create(&l).set(s.rate_per_min);
                    self.service_expected
                        .get_or_create(&l)
                        .set(s.expected_per_min);
                } else {
                    other_rate += s.rate_per_min;
                    other_expected += s.expected_per_min;
                    others += 1;
                }
            }
            if others > 0 {
                let l = label("service", "other");
                self.service_rate.get_or_create(&l).set(other_rate);
                self.service_expected.get_or_create(&l).set(other_expected);
            }
            let mut open =
                std::collections::BTreeMap::from([("low", 0), ("medium", 0), ("high", 0)]);
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
            if let Some(newest) = board.newest() {
                self.event_time.set(newest as f64 / 1e6);
            }
        }

        if let Some(probe) = t.sinks() {
            let mut dead_by_sink = std::collections::BTreeMap::new();
            if let Ok(letters) = probe.outbox().dead_letters() {
                for letter in letters {
                    *dead_by_sink.entry(letter.sink).or_insert(0i64) += 1;
                }
            }
            for report in probe.reports() {
                let l = label("sink", &report.name);
                self.outbox_depth
                    .get_or_create(&l)
                    .set(report.pending as i64);
                copy_total(&self.deliveries, &l, report.delivered);
                copy_total(&self.retries, &l, report.retries);
                copy_total(&self.dead, &l, report.dead);
                let stored = dead_by_sink.get(&report.name).copied().unwrap_or(0);
                self.dead_stored.get_or_create(&l).set(stored);
            }
            if let Ok(size) = probe.outbox().store_size() {
                self.store_size.set(size as i64);
            }
        }
        self.up.set(i64::from(t.readiness().is_ok()));
        self.process.sync();
    }
}

impl Process {
    #[cfg(target_os = "linux")]
    fn sync(&self) {
        let Ok(me) = procfs::process::Process::myself() else {
            return;
        };
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            let cpu = (stat.utime + stat.stime) as f64 / ticks.max(1.0);
            let have = self.cpu.get();
            if cpu > have {
                self.cpu.inc_by(cpu - have);
            }
            self.resident.set((stat.rss * procfs::page_size()) as i64);
            self.virtual_memory.set(stat.vsize as i64);
            self.threads.set(stat.num_threads);
            if let Ok(boot) = procfs::boot_time_secs() {
                self.start_time
                    .set(boot as f64 + stat.starttime as f64 / ticks.max(1.0));
            }
        }
        if let Ok(fds) = me.fd_count() {
            self.open_fds.set(fds as i64);
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn sync(&self) {}
}
