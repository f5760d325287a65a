//! `outagewatch series FILE.csv`: the detector on a plain series (a count
//! or a gauge), the offline twin of `run`: the same [`Detector`] and the
//! same settings (the `[detector]` section of `--config`, or the defaults,
//! adapted to a gauge by [`config_for`]), fed one bucket per bucket width.
//! `--explain` prints, per bucket fed, what the detector expected, the
//! count that would have fired and the chance probability, as CSV.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::series_csv::{self as series, Point};
use crate::alert::Alert;
use crate::detect::{Basis, Detector, DetectorConfig, Transition, TransitionKind};
use crate::window::{Bucket, ServiceCounts};

/// A gauge (a series with fractional values) is rescaled so that its
/// median positive value is this many units; see the README.
pub const GAUGE_MEDIAN_UNITS: f64 = 100.0;

/// The longest window `--window-buckets` takes: the window is kept whole
/// for every step, and a billion buckets held 17 GB before it was bounded.
pub const MAX_WINDOW_BUCKETS: i64 = 10_000;

#[derive(Debug, Args)]
pub struct SeriesArgs {
    /// CSV with a header `timestamp,value` or `timestamp,value,authors`
    /// (`-` reads stdin).
    #[arg(value_name = "FILE.csv")]
    file: PathBuf,
    /// The configuration whose `[detector]` settings to use (default: the
    /// built-in defaults).
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    /// Bucket width in seconds, 1 to a year (default: the median gap between rows).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=MAX_BUCKET_SECS))]
    bucket_secs: Option<i64>,
    /// Buckets in the detection window, 1 to 10,000 (default: the
    /// detector's window over its bucket, 6).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=MAX_WINDOW_BUCKETS))]
    window_buckets: Option<i64>,
    /// Smallest window total that may fire, at least 1 (default:
    /// `min_authors`, 5).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    min_count: Option<u64>,
    /// Print one CSV row per bucket fed to the detector (expected, upper,
    /// p_value, dispersion, basis, state, lower) instead of the alerts.
    /// The figures are the whole window's; a gauge, judged from one reading
    /// up, may fire at a shorter scale while its window sits in the band.
    #[arg(long)]
    explain: bool,
    /// What the values are: `count` (events in the bucket), `gauge` (a
    /// level: CPU %, latency, a temperature; judged by its spread alone,
    /// from one reading up) or `auto` (a gauge when any value is
    /// fractional or most rows stand off the bucket grid, as readings taken
    /// at irregular times do).
    #[arg(long, value_enum, default_value_t = Kind::Auto)]
    kind: Kind,
    /// What a bucket without a row is: `quiet` (nothing happened: value 0)
    /// or `missing` (no reading: not fed to the detector). Default: quiet
    /// for a count, missing for a gauge.
    #[arg(long, value_enum)]
    gaps: Option<Gaps>,
    /// Which departures from the normal are incidents: `both` (rises and
    /// falls: a level or a volume dropping away is news) or `up` (rises
    /// only, as the daemon judges outage reports, of which fewer is good
    /// news).
    #[arg(long, value_enum, default_value_t = Directions::Both)]
    directions: Directions,
}

/// Which ways a series may leave its band and page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Directions {
    /// Rises only: fewer reports of an outage is good news.
    Up,
    /// Rises and falls: a level or a volume dropping away is news too.
    Both,
}

/// What a series' values are; see the README ("What it assumes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Auto,
    Count,
    Gauge,
}

/// What a bucket without a row stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Gaps {
    /// Nothing happened in it: a quiet bucket, value 0 (a count exported
    /// without its zero rows).
    Quiet,
    /// Nobody measured: no bucket at all, as a sampled gauge's missing
    /// reading is not a reading of zero.
    Missing,
}

/// The detector's settings for a series of `bucket_secs` buckets: `base`
/// (the daemon's rule), with every duration counted in buckets instead of
/// seconds, so a series bucket stands for a detector bucket. The dispersion
/// and level-correction memories and the seasonal profile stay in real time:
/// they describe days, not buckets.
///
/// A gauge is judged by significance alone (`fire_ratio` 1): a ratio of
/// two values means something only where zero means none, as for a count
/// of reports; a gauge's zero is arbitrary (a temperature, a latency with
/// its fixed floor), and a real rise of a few tens of percent is already
/// far outside its learned spread. Nor is a gauge judged before the
/// detector knows its level (`warmup_factor` unreachable): the prior, 0.2
/// reports a minute, says nothing about a CPU % or a temperature, and
/// every gauge stood "far above" it at its first row. And a gauge is
/// judged at every scale from one reading up to the window, where a count
/// is judged over the whole window only (the daemon's default): a count's
/// window sums reports to rise above counting noise and above the single
/// bursts of a bursty service, while a gauge's reading is already a
/// measured level with no counting noise, so one reading far outside its
/// spread is evidence, and averaging it with normal ones dilutes it (the
/// multiple-testing correction counts every scale tried). Falls are not
/// judged here, as the daemon does not judge them: `--directions` decides.
pub fn config_for(
    base: &DetectorConfig,
    bucket_secs: i64,
    window_buckets: i64,
    min_count: u64,
    gauge: bool,
) -> DetectorConfig {
    let d = base.clone();
    let base_bucket = d.bucket_secs.max(1);
    // Saturating, and bounded so that the detector's µs arithmetic on
    // them cannot overflow (a year's buckets with a config of 1 s buckets
    // and 30-day durations made 8·10¹³ s).
    let scale = |secs: i64| {
        (secs / base_bucket)
            .saturating_mul(bucket_secs)
            .min(MAX_SCALED_SECS)
    };
    DetectorConfig {
        bucket_secs,
        window_secs: window_buckets.max(1).saturating_mul(bucket_secs),
        min_authors: min_count,
        fire_ratio: if gauge { 1.0 } else { d.fire_ratio },
        warmup_factor: if gauge { u64::MAX } else { d.warmup_factor },
        // The prior per bucket is the daemon's (0.2 a minute, in 10 s buckets).
        prior_per_min: d.prior_per_min * base_bucket as f64 / bucket_secs as f64,
        learn_during_incident_after_secs: scale(d.learn_during_incident_after_secs),
        resolve_after_secs: scale(d.resolve_after_secs),
        resolve_after_recovery_secs: scale(d.resolve_after_recovery_secs),
        cooldown_secs: scale(d.cooldown_secs),
        medium_after_secs: scale(d.medium_after_secs),
        high_after_secs: scale(d.high_after_secs),
        min_scale_secs: if gauge {
            bucket_secs
        } else {
            scale(d.min_scale_secs)
        },
        ..d
    }
}

/// Multiplier that turns a series' values into counts: 1 for counts, and
/// for a gauge the factor that puts its median positive value at
/// [`GAUGE_MEDIAN_UNITS`].
pub fn unit_scale(points: &[Point], gauge: bool) -> anyhow::Result<f64> {
    if !gauge {
        return Ok(1.0);
    }
    let mut positive: Vec<f64> = points
        .iter()
        .map(|p| p.value)
        .filter(|v| *v > 0.0)
        .collect();
    if positive.is_empty() {
        return Ok(1.0);
    }
    positive.sort_by(f64::total_cmp);
    let median = positive[positive.len() / 2];
    let unit = GAUGE_MEDIAN_UNITS / median;
    // A median of 1e-310 made the factor infinite, every bucket u64::MAX
    // and the series fire at its second row.
    anyhow::ensure!(
        unit.is_finite(),
        "the gauge's median reading, {median:e}, is too small to scale: multiply the values by a power of ten"
    );
    Ok(unit)
}

fn basis_name(basis: Basis) -> &'static str {
    match basis {
        Basis::Prior => "prior",
        Basis::Overall => "overall",
        Basis::HourOfDay => "hour_of_day",
        Basis::HourOfWeek => "hour_of_week",
    }
}

pub fn run(args: SeriesArgs) -> anyhow::Result<ExitCode> {
    let (points, gap_us) = read_points(&args.file)?;
    let inferred = series::bucket_secs_of(gap_us);
    let base = match &args.config {
        Some(path) => crate::config::Config::load_lenient(path)?.detector,
        None => DetectorConfig::default(),
    };
    let bucket_secs = match args.bucket_secs {
        // In bounds: clap checked it (a usage error, exit 2).
        Some(b) => b,
        None if inferred <= MAX_BUCKET_SECS => inferred,
        None => anyhow::bail!(
            "{}: the rows are {inferred} s apart (the median gap), more than the year a bucket may be; give --bucket-secs",
            args.file.display()
        ),
    };
    let span = buckets_spanned(&points, bucket_secs);
    anyhow::ensure!(
        span <= MAX_BUCKETS,
        "{}: the rows span {span} buckets of {bucket_secs} s (gaps are quiet buckets), more than the {MAX_BUCKETS} a series may have; give a wider --bucket-secs",
        args.file.display()
    );
    let window_buckets = match args.window_buckets {
        // In bounds: clap checked it.
        Some(w) => w,
        None => {
            let w = base.window_secs / base.bucket_secs.max(1);
            // A configuration may set `bucket_secs = 1` and a day's window:
            // 86,400 buckets, past the flag's bound, took 43 s for 300 rows.
            anyhow::ensure!(
                w <= MAX_WINDOW_BUCKETS,
                "the configuration's window is {w} buckets (`window_secs` over `bucket_secs`), more than the {MAX_WINDOW_BUCKETS} a series may have; give --window-buckets"
            );
            w
        }
    };
    // Every bucket measures every scale of the window: the two bounds
    // above together allowed 10^11 steps, hours of work for two rows.
    let steps = span.saturating_mul(window_buckets.unsigned_abs());
    anyhow::ensure!(
        steps <= MAX_STEPS,
        "{}: {span} buckets of {bucket_secs} s, each measured at {window_buckets} scales, are {steps} steps, more than the {MAX_STEPS} a series may take (about a minute's work); give a wider --bucket-secs or fewer --window-buckets",
        args.file.display()
    );
    let min_count = args.min_count.unwrap_or(base.min_authors);
    let service = args
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| s != "-")
        .unwrap_or_else(|| "series".to_owned());
    let gauge = match args.kind {
        // The rows' own grid, not the bucket given: per-minute counts in
        // 10-minute buckets are off the latter's grid, and were averaged
        // as a gauge's readings instead of summed.
        Kind::Auto => !series::all_counts(&points) || !series::on_grid(&points, gap_us),
        Kind::Count => false,
        Kind::Gauge => true,
    };
    let gaps = args
        .gaps
        .unwrap_or(if gauge { Gaps::Missing } else { Gaps::Quiet });
    if !gauge {
        series::check_counts(&points).with_context(|| args.file.display().to_string())?;
    }
    let unit = unit_scale(&points, gauge).with_context(|| args.file.display().to_string())?;
    let mut config = config_for(&base, bucket_secs, window_buckets, min_count, gauge);
    config.drops = args.directions == Directions::Both;
    let mut detector = Detector::new(config);
    let alerts = feed(
        &mut detector,
        &points,
        &service,
        Scale {
            unit,
            bucket_secs,
            gaps,
            gauge,
        },
        args.explain,
    )?;
    eprintln!(
        "{} points, bucket {bucket_secs} s {}, {}{alerts} incidents for {service:?}",
        points.len(),
        if args.bucket_secs.is_some() {
            "given"
        } else {
            "inferred"
        },
        if gauge {
            format!("gauge scaled by {unit:.4e}, ")
        } else {
            String::new()
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// Widest bucket `--bucket-secs` takes: a year.
const MAX_BUCKET_SECS: i64 = 366 * 86_400;
/// The longest duration a series' settings are scaled to: a thousand
/// years, far below what the detector's µs arithmetic can hold.
const MAX_SCALED_SECS: i64 = 1000 * 366 * 86_400;

/// Most buckets a series may span: every bucket from the first row to the
/// last is fed to the detector (gaps are quiet buckets), so two rows years
/// apart at a narrow width would otherwise run for hours.
const MAX_BUCKETS: u64 = 10_000_000;

/// Buckets times the window's scales, at most: the detector's work.
const MAX_STEPS: u64 = 1_000_000_000;

/// Buckets of `bucket_secs` from the first row to the last (the rows are
/// sorted).
fn buckets_spanned(points: &[Point], bucket_secs: i64) -> u64 {
    match (points.first(), points.last()) {
        (Some(first), Some(last)) => {
            let span = last.time_us.saturating_sub(first.time_us);
            (span / bucket_secs.saturating_mul(crate::MICROS_PER_SEC).max(1)).unsigned_abs() + 1
        }
        _ => 0,
    }
}

/// The rows of `file` (`-`: stdin) and the bucket width they imply.
fn read_points(file: &std::path::Path) -> anyhow::Result<(Vec<Point>, crate::Micros)> {
    let name = file.display().to_string();
    let input: Box<dyn std::io::Read> = if name == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("cannot open {name}"))?)
    };
    series::parse(input).with_context(|| name.clone())
}

/// Feeds the series to the detector, bucket by bucket ([`buckets`]), printing each
/// alert as a JSON line, or with `explain` one CSV row per bucket. Returns
/// the number of incidents that fired.
fn feed(
    detector: &mut Detector,
    points: &[Point],
    service: &str,
    scale: Scale,
    explain: bool,
) -> anyhow::Result<usize> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if explain {
        writeln!(
            out,
            "timestamp,value,count,expected,upper,p_value,dispersion,basis,state,lower"
        )?;
    }
    let mut alerts = 0;
    for (bucket, value) in buckets(points, service, scale) {
        let transitions = detector.on_bucket(&bucket);
        alerts += transitions
            .iter()
            .filter(|t| t.kind == TransitionKind::Firing)
            .count();
        if explain {
            explain_row(&mut out, detector, service, (&bucket, value), &transitions)?;
        } else {
            for transition in transitions {
                serde_json::to_writer(&mut out, &Alert::from(transition))?;
                writeln!(out)?;
            }
        }
    }
    out.flush()?;
    Ok(alerts)
}

/// The `--explain` row of one bucket: the detector's test of the window,
/// and the state (the transition it made, or `open` during an incident).
fn explain_row(
    out: &mut impl Write,
    detector: &Detector,
    service: &str,
    (bucket, value): (&Bucket, f64),
    transitions: &[Transition],
) -> anyhow::Result<()> {
    let state = transitions.first().map_or_else(
        || {
            if detector.open_incidents().next().is_some() {
                "open"
            } else {
                ""
            }
        },
        |t| t.kind.as_str(),
    );
    match detector.explain(service) {
        Some(e) => writeln!(
            out,
            "{},{},{},{},{},{:.3e},{:.4},{},{state},{}",
            crate::alert::rfc3339(bucket.start),
            Number(value, None),
            e.authors,
            Number(e.expected, Some(3)),
            e.upper.map_or_else(String::new, |k| k.to_string()),
            e.p_value,
            e.dispersion,
            basis_name(e.basis),
            e.lower.map_or_else(String::new, |k| k.to_string())
        )?,
        None => writeln!(
            out,
            "{},{},0,,,,,,{state},",
            crate::alert::rfc3339(bucket.start),
            Number(value, None)
        )?,
    }
    Ok(())
}

/// A number for `--explain`'s CSV: as a decimal where that is short, in
/// exponent notation far from 1 (a value of 1e300 printed as 301 digits,
/// 1e-7 as 0.0000001), with `decimals` digits after the point either way.
struct Number(f64, Option<usize>);

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Number(x, decimals) = *self;
        let plain = x == 0.0 || (1e-4..1e15).contains(&x.abs());
        match (plain, decimals) {
            (true, None) => write!(f, "{x}"),
            (true, Some(d)) => write!(f, "{x:.d$}"),
            (false, None) => write!(f, "{x:e}"),
            (false, Some(d)) => write!(f, "{x:.d$e}"),
        }
    }
}

/// How the rows become buckets.
#[derive(Debug, Clone, Copy)]
struct Scale {
    /// Multiplier from a value to units ([`unit_scale`]).
    unit: f64,
    bucket_secs: i64,
    gaps: Gaps,
    /// Rows sharing a bucket are averaged, not summed: two readings of
    /// 60 km/h in five minutes are a speed of 60, not 120.
    gauge: bool,
}

/// The series' buckets in time order, with the rows' raw value. Rows that
/// fall in the same bucket (with `--bucket-secs` wider than the rows'
/// spacing, or readings taken at irregular times) are summed for a count
/// and averaged for a gauge. With [`Gaps::Quiet`] every bucket from the
/// first row to the last is there, one without a row a quiet one (value
/// 0), as a count exported without its zero rows means and as the daemon's
/// window, which is time, sees it; with [`Gaps::Missing`] only buckets with
/// a row are (the detector's window then expects only the buckets it
/// holds). `bucket_secs` is at least 1 (given or inferred).
fn buckets<'a>(
    points: &'a [Point],
    service: &'a str,
    scale: Scale,
) -> impl Iterator<Item = (Bucket, f64)> + 'a {
    let Scale {
        unit,
        bucket_secs,
        gaps,
        gauge,
    } = scale;
    let bucket_us = bucket_secs * crate::MICROS_PER_SEC;
    let first = points.first().map_or(0, |p| p.time_us);
    let mut i = 0;
    // The start of the next bucket to emit: a row further on leaves quiet
    // buckets before it.
    let mut next_start = first;
    std::iter::from_fn(move || {
        let p = points.get(i)?;
        let start = first + (p.time_us - first).div_euclid(bucket_us) * bucket_us;
        if start > next_start && gaps == Gaps::Quiet {
            let quiet = Bucket {
                start: next_start,
                ..Bucket::default()
            };
            next_start += bucket_us;
            return Some((quiet, 0.0));
        }
        next_start = start + bucket_us;
        let (mut value, mut authors, mut raw, mut rows) = (0u64, 0u64, 0.0, 0u32);
        while let Some(q) = points.get(i).filter(|q| q.time_us < start + bucket_us) {
            rows = rows.saturating_add(1);
            if gauge {
                // A running mean: two readings of 1.5e308 summed to
                // infinity before they were averaged.
                raw += (q.value - raw) / f64::from(rows);
            } else {
                raw += q.value;
                let v = (q.value * unit).round() as u64;
                value = value.saturating_add(v);
                authors = authors.saturating_add(q.authors.unwrap_or(v));
            }
            i += 1;
        }
        if gauge {
            value = (raw * unit).round() as u64;
            authors = value;
        }
        let mut bucket = Bucket {
            start,
            ..Bucket::default()
        };
        if value > 0 || authors > 0 {
            bucket.services.insert(
                service.to_owned(),
                ServiceCounts {
                    reports: value,
                    extra_authors: authors,
                    ..ServiceCounts::default()
                },
            );
        }
        Some((bucket, raw))
    })
}
