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

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use self::families::{
    DeliveryFamilies, HttpFamilies, PipelineFamilies, ServiceFamilies, SourceFamilies,
};
use super::Telemetry;

/// Services with their own label in the per-service gauges; the rest are
/// summed under `service="_other"`.
pub const TOP_SERVICES: usize = 20;

/// The label of the services outside the top: a name no service can have
/// (they are `[a-z0-9-]`). It was `other`, which `#OtherDown` makes a
/// discovered service, whose figures then merged with the bucket's.
pub const OTHER_SERVICES: &str = "_other";

type Labels = Vec<(&'static str, LabelValue)>;
type Counters = Family<Labels, Counter>;
type Gauges = Family<Labels, Gauge>;
type FloatGauges = Family<Labels, Gauge<f64, AtomicU64>>;

fn label(key: &'static str, value: &str) -> Labels {
    vec![(key, LabelValue(value.to_owned()))]
}

/// Several labels at once.
fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(key, value)| (*key, LabelValue((*value).to_owned())))
        .collect()
}

/// A label value, escaped as the text format wants (`\\`, `\"`, `\n`).
/// Values come from outside (a replayed file's name, a configured source or
/// sink name), and prometheus-client writes a `String` as it is: a file
/// named `x"} 1⏎evil_metric{a="b.jsonl` put a forged series in /metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LabelValue(String);

impl EncodeLabelValue for LabelValue {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        use std::fmt::Write;
        let mut rest = self.0.as_str();
        while let Some(at) = rest.find(['\\', '"', '\n']) {
            encoder.write_str(&rest[..at])?;
            encoder.write_str(match rest.as_bytes()[at] {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                _ => "\\n",
            })?;
            rest = &rest[at + 1..];
        }
        encoder.write_str(rest)
    }
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

/// Registers a family (or a metric without labels) under `name` and
/// returns it; its type comes from the field it is assigned to.
macro_rules! family {
    ($registry:expr, $name:expr, $help:expr) => {{
        let f = Default::default();
        $registry.register($name, $help, Clone::clone(&f));
        f
    }};
}

mod families;

/// Every family, in groups by what they describe. Registered in this
/// order, which is the order of the text format.
pub struct Metrics {
    /// Held while copying and encoding, so scrapes do not interleave.
    registry: Mutex<Registry>,
    pipeline: PipelineFamilies,
    sources: SourceFamilies,
    services: ServiceFamilies,
    delivery: DeliveryFamilies,
    http: HttpFamilies,
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
        let pipeline = PipelineFamilies::register(&mut r);
        let sources = SourceFamilies::register(&mut r);
        let services = ServiceFamilies::register(&mut r);
        let delivery = DeliveryFamilies::register(&mut r);
        let http = HttpFamilies::register(&mut r);
        let event_time = family!(
            r,
            "outagewatch_event_time_seconds",
            "Start of the newest closed bucket (event time, Unix seconds)"
        );
        let up = family!(r, "outagewatch_ready", "1 when /readyz answers 200");
        let process = Process::register(&mut r);
        Metrics {
            registry: Mutex::new(r),
            pipeline,
            sources,
            services,
            delivery,
            http,
            event_time,
            up,
            process,
        }
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

    /// Counts `n` dead letters of `sink` dropped after the retention.
    pub fn dead_letters_expired(&self, sink: &str, n: u64) {
        self.delivery
            .expired
            .get_or_create(&label("sink", sink))
            .inc_by(n);
    }

    fn sync(&self, t: &Telemetry) {
        self.pipeline.sync(&t.stats());
        self.sources.sync(&t.sources(), crate::wall::now_us());
        {
            let board = t.board();
            for (state, n) in board.alerts_by_state() {
                copy_total(&self.pipeline.alerts, &label("state", state), *n);
            }
            self.services.sync(&board);
            if let Some(newest) = board.newest() {
                self.event_time.set(newest as f64 / 1e6);
            }
        }
        if let Some(figures) = t.sink_figures() {
            self.delivery.sync(&figures);
        }
        self.http.sync(&t.http);
        self.up.set(i64::from(t.readiness().is_ok()));
        self.process.sync();
    }
}

impl Process {
    fn register(r: &mut Registry) -> Self {
        let p = Process::default();
        r.register(
            "process_cpu_seconds",
            "User and system CPU time spent",
            p.cpu.clone(),
        );
        r.register(
            "process_resident_memory_bytes",
            "Resident memory size",
            p.resident.clone(),
        );
        r.register(
            "process_virtual_memory_bytes",
            "Virtual memory size",
            p.virtual_memory.clone(),
        );
        r.register(
            "process_open_fds",
            "Open file descriptors",
            p.open_fds.clone(),
        );
        r.register("process_threads", "OS threads", p.threads.clone());
        r.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch",
            p.start_time.clone(),
        );
        p
    }

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

#[cfg(test)]
mod readme_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::pipeline::{SourceCounts, Stats};
    use crate::telemetry::Mode;

    /// A name from outside cannot end its label and start a series of its
    /// own: quotes, backslashes and line breaks are escaped.
    #[test]
    fn hostile_label_values_stay_inside_their_label() {
        let names = [
            "x\"} 1\nevil_metric{a=\"b.jsonl",
            "back\\slash\\\"} 2",
            "cr\r\nevil_metric 3",
            "plain.jsonl",
        ];
        let telemetry = Telemetry::new(Mode::Replay, None);
        let mut stats = Stats::default();
        for name in names {
            let counts = SourceCounts {
                frames: 7,
                ..SourceCounts::default()
            };
            stats.by_source.insert(name.to_owned(), counts);
        }
        telemetry.publish_stats(&stats);
        let text = telemetry.metrics.render(&telemetry).expect("renders");
        for line in text.lines() {
            assert!(
                !line.starts_with("evil_metric"),
                "forged line: {line}\n{text}"
            );
        }
        for want in [
            r#"outagewatch_frames_total{source="x\"} 1\nevil_metric{a=\"b.jsonl"} 7"#,
            r#"outagewatch_frames_total{source="back\\slash\\\"} 2"} 7"#,
            "outagewatch_frames_total{source=\"cr\r\\nevil_metric 3\"} 7",
            r#"outagewatch_frames_total{source="plain.jsonl"} 7"#,
        ] {
            assert!(text.contains(want), "no {want}\n{text}");
        }
        let frames = text
            .lines()
            .filter(|l| l.starts_with("outagewatch_frames_total{"))
            .count();
        assert_eq!(frames, names.len(), "one series each\n{text}");
    }

    /// A service named `other` keeps its own series, apart from the sum
    /// of the services outside the top.
    #[test]
    fn a_service_named_other_is_not_the_bucket_for_the_rest() {
        let telemetry = Telemetry::new(Mode::Daemon, None);
        let status = |name: &str, rate: f64| crate::detect::ServiceStatus {
            service: name.into(),
            reports: 1,
            authors: 1,
            rate_per_min: rate,
            expected_per_min: 0.0,
            fire_per_min: 10.0,
            p_value: 0.5,
            basis: crate::detect::Basis::Prior,
            last_report: 0,
            discovered: true,
            incident: None,
        };
        // `other` the busiest; two services past the top, at 1 each.
        let mut statuses = vec![status("other", 50.0)];
        for i in 0..TOP_SERVICES + 1 {
            statuses.push(status(&format!("svc-{i:02}"), 30.0 - i as f64));
        }
        let last = TOP_SERVICES + 1;
        statuses.last_mut().expect("one").rate_per_min = 1.0;
        statuses[last - 1].rate_per_min = 1.0;
        telemetry
            .board()
            .on_bucket(&crate::window::Bucket::default(), statuses, &[]);
        let text = telemetry.metrics.render(&telemetry).expect("renders");
        let gauge = |service: &str| {
            let prefix = format!("outagewatch_service_rate_per_minute{{service=\"{service}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
                .unwrap_or_else(|| panic!("no {prefix}\n{text}"))
        };
        assert_eq!(gauge("other"), "50.0");
        assert_eq!(gauge(OTHER_SERVICES), "2.0");
    }
}
