//! `outagewatch series FILE.csv`: the detector on a plain count series.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::series_csv as series;
use crate::alert::Alert;
use crate::detect::{Detector, DetectorConfig};
use crate::window::{Bucket, ServiceCounts};

#[derive(Debug, Args)]
pub struct SeriesArgs {
    /// CSV with a header `timestamp,value` (`-` reads stdin).
    #[arg(value_name = "FILE.csv")]
    file: PathBuf,
    /// Buckets in the detection window.
    #[arg(long, default_value_t = 6)]
    window_buckets: i64,
    /// Smallest window total that may fire.
    #[arg(long, default_value_t = 5)]
    min_count: u64,
}

/// The detector's settings for a series of `bucket_secs` buckets: the
/// daemon's rule, with every duration counted in buckets instead of seconds.
pub fn config_for(bucket_secs: i64, window_buckets: i64, min_count: u64) -> DetectorConfig {
    let d = DetectorConfig::default();
    let scale = |secs: i64| secs / d.bucket_secs * bucket_secs;
    DetectorConfig {
        bucket_secs,
        window_secs: window_buckets.max(1) * bucket_secs,
        min_authors: min_count,
        // The prior per bucket is the daemon's (0.2 a minute, in 10 s buckets).
        prior_per_min: d.prior_per_min * d.bucket_secs as f64 / bucket_secs as f64,
        learn_during_incident_after_secs: scale(d.learn_during_incident_after_secs),
        resolve_after_secs: scale(d.resolve_after_secs),
        resolve_after_recovery_secs: scale(d.resolve_after_recovery_secs),
        cooldown_secs: scale(d.cooldown_secs),
        medium_after_secs: scale(d.medium_after_secs),
        high_after_secs: scale(d.high_after_secs),
        ..d
    }
}

pub fn run(args: SeriesArgs) -> anyhow::Result<ExitCode> {
    let name = args.file.display().to_string();
    let input: Box<dyn std::io::Read> = if name == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(&args.file).with_context(|| format!("cannot open {name}"))?)
    };
    let (points, bucket_secs) = series::parse(input).with_context(|| name.clone())?;
    let service = args
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| s != "-")
        .unwrap_or_else(|| "series".to_owned());
    let mut detector = Detector::new(config_for(bucket_secs, args.window_buckets, args.min_count));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut alerts = 0;
    for point in &points {
        let mut bucket = Bucket {
            start: point.time_us,
            ..Bucket::default()
        };
        if point.value > 0 {
            bucket.services.insert(
                service.clone(),
                ServiceCounts {
                    reports: point.value,
                    extra_authors: point.value,
                    ..ServiceCounts::default()
                },
            );
        }
        for transition in detector.on_bucket(&bucket) {
            serde_json::to_writer(&mut out, &Alert::from(transition))?;
            writeln!(out)?;
            alerts += 1;
        }
    }
    eprintln!(
        "{} points, bucket {} s inferred, {alerts} alerts for {service:?}",
        points.len(),
        bucket_secs
    );
    Ok(ExitCode::SUCCESS)
}
