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
use crate::pipeline::Arrival;
use crate::pipeline::{Emitted, Pipeline, PipelineConfig, SAVE_EVERY_REPLAY, Stats};
use crate::source::recording::{self, ClockLine, DEFAULT_MAX_LINE, Line, LineReader};
use crate::source::{FrameError, Wire};
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
    /// has no more history (the live tail); 0.1 to 3600.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 5.0,
        requires = "jetstream",
        value_parser = crate::numbers::parse_tail_idle
    )]
    tail_idle_secs: f64,
    /// Keep state here (and continue from it); default: a temporary directory.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    sinks: super::SinkArgs,
    /// Replay at N times real time (0.01 to 10000) instead of as fast as
    /// possible. A gap between events sleeps at most `MAX_PACE_SLEEP`; gaps
    /// over a minute of event time are skipped (and logged).
    #[arg(long, value_name = "N", value_parser = crate::numbers::parse_speed)]
    speed: Option<f64>,
    /// How long to wait at the end for webhook deliveries, in seconds (0 to 86400).
    #[arg(long, value_name = "SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    drain_timeout: u64,
    /// Longest line accepted, in bytes (1 KiB to 64 MiB); longer lines are
    /// skipped and reported.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE as u64,
          value_parser = clap::value_parser!(u64).range(1024..=64 << 20))]
    max_line_bytes: u64,
    /// Closed buckets written to the state per batch (1 to 100000). A batch
    /// that raises an alert is written at once; a replay killed between
    /// batches and run again with the same --state-dir redoes the frames
    /// after the last batch and ends with the same alerts. 1 saves like
    /// the live daemon.
    #[arg(long, value_name = "BUCKETS", default_value_t = SAVE_EVERY_REPLAY as u64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    save_every: u64,
    #[command(flatten)]
    pub watch: super::serve::ReplayWatchArgs,
}

/// Longest sleep between two events at `--speed`.
const MAX_PACE_SLEEP: Duration = Duration::from_secs(3);
/// Event-time gaps longer than this are skipped at `--speed`.
const SKIP_GAP_US: i64 = 60 * crate::MICROS_PER_SEC;

/// `config`: `--config`'s file, else the defaults (see [`super::serve`]).
pub fn run(args: ReplayArgs, matcher: Matcher, mut config: Config) -> anyhow::Result<ExitCode> {
    let max_line = usize::try_from(args.max_line_bytes).unwrap_or(DEFAULT_MAX_LINE);
    let runtime = super::runtime(1)?;
    let _enter = runtime.enter();

    let store = match &args.state_dir {
        Some(dir) => SledStore::open(dir)?,
        None => SledStore::temporary()?,
    };
    let outbox = store.outbox();
    let pipeline_config = PipelineConfig {
        window: config.window,
        detector: config.detector.clone(),
        save_every: usize::try_from(args.save_every).unwrap_or(SAVE_EVERY_REPLAY),
        ..PipelineConfig::new()
    };
    let mut pipeline = Pipeline::open(Arc::new(matcher), pipeline_config, store)?;
    let state_place = match &args.state_dir {
        Some(dir) => format!("the outbox in {}", dir.display()),
        None => {
            "a temporary state directory, removed at exit: pass --state-dir to keep them".to_owned()
        }
    };
    args.sinks.apply(&mut config);
    let delivery = Delivery::start(sink_specs(&config), outbox)?;
    let watch = super::serve::Watch::start(
        &args.watch,
        &config,
        &runtime,
        &delivery,
        &mut pipeline,
        args.state_dir.as_deref(),
    )?;
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
            max_frame_bytes: max_line,
        };
        let end = super::replay_jetstream::read(&runtime, &history, &mut pipeline, &mut emit)?;
        source_note = format!("{} ({})", history.url, end.describe());
    }
    let progress = progress_bar();
    let mut pace = args.speed.map(Pacer::new);
    // A file that cannot be read (missing, truncated, corrupt) is named and
    // the rest still replayed; what was decided so far is still delivered.
    let mut read_errors: Vec<String> = Vec::new();
    for file in &args.files {
        let reader = match recording::open(file) {
            Ok(reader) => reader,
            Err(e) => {
                read_errors.push(e.to_string());
                continue;
            }
        };
        let mut lines = LineReader::new(reader, max_line);
        let mut last_line = 0;
        // Set by the last clock line: who sent the frames that follow, when.
        let mut clock: Option<ClockLine> = None;
        loop {
            let next = match lines.next_line() {
                Ok(next) => next,
                Err(e) => {
                    read_errors.push(format!("cannot read {file} after line {last_line}: {e}"));
                    break;
                }
            };
            let Some((line_no, line)) = next else { break };
            last_line = line_no;
            let alerts = match line {
                Line::Frame(bytes) => match ClockLine::parse(bytes) {
                    Some(line) => {
                        clock = Some(line);
                        continue;
                    }
                    None => match &clock {
                        None => pipeline.process_frame(file, line_no, bytes)?,
                        Some(clock) if bytes.iter().all(u8::is_ascii_whitespace) => {
                            pipeline.process_frame_at(&clock.source, line_no, bytes, None)?
                        }
                        Some(clock) if clock.protocol == Wire::Jetstream => pipeline
                            .process_jetstream_at(
                                &clock.source,
                                None,
                                line_no,
                                bytes,
                                Some(clock.time_us),
                            )?,
                        Some(clock) => {
                            let arrival = Some(clock.time_us);
                            let (decoded, own_clock) =
                                clock.protocol.decode(bytes, &clock.instance, arrival);
                            let arrival = Arrival {
                                at_us: arrival,
                                own_clock,
                            };
                            pipeline.process_arrived(&clock.source, line_no, decoded, arrival)?
                        }
                    },
                },
                Line::Oversized(len) => {
                    let error = FrameError::Oversized {
                        len,
                        limit: max_line,
                    };
                    pipeline.reject_frame(file, line_no, &error);
                    Vec::new()
                }
            };
            emit(alerts)?;
            if line_no % 8192 == 0 {
                progress.set_position(pipeline.stats().frames);
                watch.publish(pipeline.stats());
            }
            if let (Some(pacer), Some(now)) = (pace.as_mut(), pipeline.newest_event_time()) {
                pacer.wait_for(now);
            }
        }
    }
    emit(pipeline.finish()?)?;
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    watch.finished(pipeline.stats())?;

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
    let stats = pipeline.stats().clone();
    drop(pipeline);
    if let Some(dir) = &args.state_dir {
        // Every handle on the store is closed: seal its files.
        if let Err(e) = crate::window::store::seal_closed(dir) {
            tracing::warn!(error = %e, "cannot seal the state");
        }
    }
    print_summary(&stats, &source_note, elapsed);
    watch.hold(&runtime, &args.watch);
    if !read_errors.is_empty() {
        for error in &read_errors {
            eprintln!("error: {error}");
        }
        eprintln!(
            "the replay is incomplete: {} read error(s); the alerts above cover what was read",
            read_errors.len()
        );
        return Ok(ExitCode::FAILURE);
    }
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

/// Holds a replay to N times real time, measured in event time. One event
/// far ahead (a wrong clock) must not stall the replay for days: a gap
/// longer than a minute of event time is skipped, and no wait is longer
/// than `MAX_PACE_SLEEP`.
struct Pacer {
    speed: f64,
    /// Wall clock and event time the schedule is counted from.
    start: Option<(Instant, i64)>,
    last: i64,
}

impl Pacer {
    fn new(speed: f64) -> Self {
        Pacer {
            speed,
            start: None,
            last: i64::MIN,
        }
    }

    /// How long to sleep before handling an event at `event_time_us`.
    fn delay(&mut self, event_time_us: i64, now: Instant) -> Duration {
        if event_time_us <= self.last {
            return Duration::ZERO;
        }
        let gap = event_time_us.saturating_sub(self.last);
        let previous = std::mem::replace(&mut self.last, event_time_us);
        if self.start.is_none() || gap > SKIP_GAP_US {
            if self.start.is_some() {
                tracing::info!(
                    gap_secs = gap / crate::MICROS_PER_SEC,
                    from = previous,
                    to = event_time_us,
                    "--speed: skipping a gap in event time"
                );
            }
            self.start = Some((now, event_time_us));
            return Duration::ZERO;
        }
        let Some((wall, first)) = self.start else {
            return Duration::ZERO;
        };
        let due_secs = ((event_time_us - first) as f64 / 1e6) / self.speed;
        let due = Duration::try_from_secs_f64(due_secs).unwrap_or(MAX_PACE_SLEEP);
        let elapsed = now.saturating_duration_since(wall);
        let wait = due.saturating_sub(elapsed);
        if wait > MAX_PACE_SLEEP {
            // Running behind schedule by design: restart it from here.
            self.start = Some((now + MAX_PACE_SLEEP, event_time_us));
            return MAX_PACE_SLEEP;
        }
        wait
    }

    fn wait_for(&mut self, event_time_us: i64) {
        let wait = self.delay(event_time_us, Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
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
    eprintln!(
        "  discovered names: peak {} tracked, {} candidates, {} detector services; {} reports held back (too few authors)",
        stats.peak_discovered,
        stats.peak_candidates,
        stats.peak_detector_services,
        stats.discovered_pending
    );
    if stats.blank_lines > 0 {
        eprintln!("  blank lines: {}", stats.blank_lines);
    }
    if stats.future > 0 {
        eprintln!(
            "  future (quarantined, too far ahead of the clock): {}",
            stats.future
        );
    }
    for (source, counts) in &stats.by_source {
        eprintln!(
            "  source {source}: late {} | stale {} | future {}",
            counts.late, counts.stale, counts.future
        );
    }
    eprintln!("  malformed: {}", stats.malformed);
    let unverified: Vec<String> = stats
        .unverified
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if !unverified.is_empty() {
        eprintln!(
            "    of which failed verification: {}",
            unverified.join(", ")
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_sleeps_a_bounded_time_and_skips_long_gaps() {
        let s = crate::MICROS_PER_SEC;
        let t0 = Instant::now();
        let mut pacer = Pacer::new(2.0);
        assert_eq!(pacer.delay(1000 * s, t0), Duration::ZERO, "first event");
        assert_eq!(
            pacer.delay(1010 * s, t0),
            Duration::from_secs(5).min(MAX_PACE_SLEEP)
        );
        // A far-future event (2100): skipped, not slept on for decades.
        assert_eq!(pacer.delay(4_102_444_800 * s, t0), Duration::ZERO);
        // Events before it do not wait.
        assert_eq!(pacer.delay(1011 * s, t0), Duration::ZERO);
        // 50 s ahead at speed 1000: 50 ms.
        let mut fast = Pacer::new(1000.0);
        fast.delay(0, t0);
        assert_eq!(fast.delay(50 * s, t0), Duration::from_millis(50));
        // Never more than MAX_PACE_SLEEP, even at the slowest speed.
        let mut slow = Pacer::new(crate::numbers::SPEED_MIN);
        slow.delay(0, t0);
        assert_eq!(slow.delay(59 * s, t0), MAX_PACE_SLEEP);
    }
}
