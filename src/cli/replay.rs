//! `outagewatch replay`: the whole pipeline over recordings, in event time.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::alert::deliver::Delivery;
use crate::config::{Config, LINES_SINK, sink_specs};
use crate::matcher::Matcher;
use crate::pipeline::{Emitted, Pipeline, PipelineConfig, Stats};
use crate::source::FrameError;
use crate::source::recording::{self, DEFAULT_MAX_LINE, Line, LineReader};
use crate::window::store::SledStore;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Recordings to replay in order (`-` reads stdin).
    #[arg(required_unless_present = "jetstream", value_name = "FILE")]
    files: Vec<String>,
    /// Read Jetstream's recent history instead of files (it keeps about
    /// 36 h): from `--since` to `--until` or the live tail, as fast as the
    /// server sends. Without a URL: the first public host.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "", conflicts_with = "files", requires = "since")]
    jetstream: Option<String>,
    /// Where the history starts: `24h`, `90m` (that long ago), an RFC 3339
    /// time or microseconds since the epoch.
    #[arg(long, value_name = "TIME", requires = "jetstream")]
    since: Option<String>,
    /// Stop at the first event at or after this time (same forms as
    /// `--since`); default: the live tail.
    #[arg(long, value_name = "TIME", requires = "jetstream")]
    until: Option<String>,
    /// Also write the frames read (text, decompressed) to this recording;
    /// `.gz` or `.zst` compresses.
    #[arg(long, value_name = "FILE", requires = "jetstream")]
    record: Option<PathBuf>,
    /// Jetstream wire for `--jetstream`: `v1` or `v2`.
    #[arg(long, value_enum, default_value_t = super::record::WireArg::V2, requires = "jetstream")]
    protocol: super::record::WireArg,
    /// Ask `--jetstream` for uncompressed frames.
    #[arg(long, requires = "jetstream")]
    no_compress: bool,
    /// With `--jetstream`: no frame for this many seconds means the server
    /// has no more history (the live tail).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 5.0,
        requires = "jetstream"
    )]
    tail_idle_secs: f64,
    /// Keep state here (and continue from it); default: a temporary directory.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    sinks: super::SinkArgs,
    /// Replay at N times real time instead of as fast as possible.
    #[arg(long, value_name = "N")]
    speed: Option<f64>,
    /// How long to wait at the end for webhook deliveries, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    drain_timeout: u64,
    /// Longest line accepted, in bytes; longer lines are skipped and reported.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE)]
    max_line_bytes: usize,
}

pub fn run(args: ReplayArgs, matcher: Matcher) -> anyhow::Result<ExitCode> {
    if let Some(speed) = args.speed {
        anyhow::ensure!(
            speed.is_finite() && speed > 0.0,
            "--speed must be a positive number, got {speed}"
        );
    }
    let runtime = super::runtime(1)?;
    let _enter = runtime.enter();

    let store = match &args.state_dir {
        Some(dir) => SledStore::open(dir)?,
        None => SledStore::temporary()?,
    };
    let outbox = store.outbox();
    let mut pipeline = Pipeline::open(Arc::new(matcher), PipelineConfig::new(), store)?;
    let state_place = match &args.state_dir {
        Some(dir) => format!("the outbox in {}", dir.display()),
        None => {
            "a temporary state directory, removed at exit: pass --state-dir to keep them".to_owned()
        }
    };
    let mut config = Config::default();
    args.sinks.apply(&mut config);
    let delivery = Delivery::start(sink_specs(&config), outbox)?;
    let mut emit = |alerts: Vec<Emitted>| -> anyhow::Result<()> {
        if !alerts.is_empty() {
            delivery.notify();
        }
        Ok(())
    };

    let started = Instant::now();
    let mut source_note = format!("{} file(s)", args.files.len());
    if let Some(url) = &args.jetstream {
        let now = crate::source::health::wall_now();
        let since = args.since.as_deref().context("--jetstream needs --since")?;
        let history = super::replay_jetstream::History {
            url: if url.is_empty() {
                crate::source::jetstream::PUBLIC_HOSTS[0].to_owned()
            } else {
                url.clone()
            },
            since: super::replay_jetstream::parse_time(since, now).context("--since")?,
            until: args
                .until
                .as_deref()
                .map(|t| super::replay_jetstream::parse_time(t, now))
                .transpose()
                .context("--until")?,
            record: args.record.clone(),
            wire: args.protocol.into(),
            compress: !args.no_compress,
            tail_idle: Duration::from_secs_f64(args.tail_idle_secs.max(0.1)),
            max_frame_bytes: args.max_line_bytes,
        };
        let end = super::replay_jetstream::read(&runtime, &history, &mut pipeline, &mut emit)?;
        source_note = format!("{} ({})", history.url, end.describe());
    }
    let progress = progress_bar();
    let mut pace = args.speed.map(Pacer::new);
    for file in &args.files {
        let reader = recording::open(file)?;
        let mut lines = LineReader::new(reader, args.max_line_bytes);
        loop {
            let next = lines
                .next_line()
                .with_context(|| format!("cannot read {file}"))?;
            let Some((line_no, line)) = next else { break };
            let alerts = match line {
                Line::Frame(bytes) => pipeline.process_frame(file, line_no, bytes)?,
                Line::Oversized(len) => {
                    let error = FrameError::Oversized {
                        len,
                        limit: args.max_line_bytes,
                    };
                    pipeline.reject_frame(file, line_no, &error);
                    Vec::new()
                }
            };
            emit(alerts)?;
            if line_no % 8192 == 0 {
                progress.set_position(pipeline.stats().frames);
            }
            if let (Some(pacer), Some(now)) = (pace.as_mut(), pipeline.newest_event_time()) {
                pacer.wait_for(now);
            }
        }
    }
    emit(pipeline.finish()?)?;
    let elapsed = started.elapsed();
    progress.finish_and_clear();

    let (drained, reports) = runtime.block_on(async {
        let drained = delivery
            .drain(Duration::from_secs(args.drain_timeout))
            .await;
        let (_, reports) = delivery.stop(Duration::ZERO).await;
        (drained, reports)
    });
    let mut undelivered = false;
    for report in reports
        .iter()
        .filter(|r| r.name != LINES_SINK || r.pending > 0)
    {
        eprintln!(
            "sink {}: {} delivered, {} retries, {} dead letters{}",
            report.name,
            report.delivered,
            report.retries,
            report.dead,
            if report.pending > 0 {
                format!(", {} undelivered, kept in {state_place}", report.pending)
            } else {
                String::new()
            }
        );
        undelivered |= report.pending > 0 || report.dead > 0;
    }
    if !drained {
        eprintln!(
            "drain timeout ({} s) reached before every alert was delivered",
            args.drain_timeout
        );
    }
    print_summary(pipeline.stats(), &source_note, elapsed);
    if undelivered {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {human_pos} events ({per_sec}) {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Holds a replay to N times real time, measured in event time.
struct Pacer {
    speed: f64,
    start: Option<(Instant, i64)>,
}

impl Pacer {
    fn new(speed: f64) -> Self {
        Pacer { speed, start: None }
    }

    fn wait_for(&mut self, event_time_us: i64) {
        let (wall, first) = *self.start.get_or_insert((Instant::now(), event_time_us));
        let due =
            Duration::from_secs_f64(((event_time_us - first).max(0) as f64 / 1e6) / self.speed);
        let elapsed = wall.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

fn print_summary(stats: &Stats, source: &str, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "replayed {} events from {} in {:.2} s ({:.0} events/s)",
        stats.frames,
        source,
        secs,
        stats.frames as f64 / secs
    );
    eprintln!(
        "  posts {} | reports {} | recoveries {} | maintenance {} | late {} | stale {}",
        stats.posts,
        stats.reports,
        stats.recoveries,
        stats.maintenance,
        stats.late_posts,
        stats.stale_posts
    );
    let skipped: Vec<String> = stats
        .skipped
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if !skipped.is_empty() {
        eprintln!("  skipped (not posts): {}", skipped.join(", "));
    }
    if stats.duplicates > 0 {
        eprintln!("  duplicate posts dropped: {}", stats.duplicates);
    }
    if stats.duplicate_frames > 0 {
        eprintln!(
            "  frames the server sent again (at or below the last sequence number), dropped: {}",
            stats.duplicate_frames
        );
    }
    if stats.discovered_rejected > 0 {
        eprintln!(
            "  reports of discovered services turned away (too many new names at once): {}",
            stats.discovered_rejected
        );
    }
    if stats.blank_lines > 0 {
        eprintln!("  blank lines: {}", stats.blank_lines);
    }
    eprintln!("  malformed: {}", stats.malformed);
    for (at, why) in &stats.malformed_examples {
        eprintln!("    {at}: {why}");
    }
    if stats.malformed > stats.malformed_examples.len() as u64 {
        eprintln!(
            "    ... and {} more",
            stats.malformed - stats.malformed_examples.len() as u64
        );
    }
    eprintln!("  alerts: {}", stats.alerts);
}
