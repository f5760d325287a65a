//! `outagewatch replay`: the whole pipeline over recordings, in event time.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::replay_chunk::{Lines, Reader, Ready, Stop, sender};
use super::replay_outputs::{Output, refuse_overlaps};
use super::replay_pace::Pacer;
use super::replay_summary::print_summary;
use crate::alert::deliver::Delivery;
use crate::config::{Config, LINES_SINK, sink_specs};
use crate::matcher::Matcher;
use crate::pipeline::{Emitted, Pipeline, PipelineConfig, SAVE_EVERY_REPLAY};
use crate::source::FrameError;
use crate::source::recording::{self, DEFAULT_MAX_LINE};
use crate::state::SledStore;
use crate::supervise::Supervisor;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Recordings to replay in order (`-` reads stdin).
    #[arg(required_unless_present = "jetstream", value_name = "FILE")]
    files: Vec<String>,
    /// Read Jetstream's recent history instead of files (it keeps about
    /// 36 h): from `--since` to `--until` or the live tail, as fast as the
    /// server sends. Without a URL: the first public host.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "", conflicts_with = "files", requires = "since", value_parser = super::SecretUrl(super::websocket_url))]
    jetstream: Option<String>,
    // The history's flags conflict with files as well as require
    // `--jetstream`: clap did not enforce `requires` next to a FILE (which
    // `--jetstream` conflicts with), so `--since 1h FILE` did nothing.
    /// With `--jetstream`: where the history starts: `24h`, `90m` (that
    /// long ago), an RFC 3339 time or microseconds since the epoch.
    #[arg(
        long,
        value_name = "TIME",
        requires = "jetstream",
        conflicts_with = "files",
        value_parser = |t: &str| super::replay_jetstream::history_time(t, false)
    )]
    since: Option<String>,
    /// With `--jetstream`: stop at the first event at or after this time
    /// (same forms as `--since`); default: the live tail.
    #[arg(
        long,
        value_name = "TIME",
        requires = "jetstream",
        conflicts_with = "files",
        value_parser = |t: &str| super::replay_jetstream::history_time(t, true)
    )]
    until: Option<String>,
    /// With `--jetstream`: also write the frames read (text, decompressed)
    /// to this recording; `.gz` or `.zst` compresses.
    #[arg(
        long,
        value_name = "FILE",
        requires = "jetstream",
        conflicts_with = "files"
    )]
    record: Option<PathBuf>,
    /// Jetstream wire for `--jetstream`: `v1` or `v2`.
    #[arg(long, value_enum, default_value_t = super::record::WireArg::V2, requires = "jetstream", conflicts_with = "files")]
    protocol: super::record::WireArg,
    /// Ask `--jetstream` for uncompressed frames.
    #[arg(long, requires = "jetstream", conflicts_with = "files")]
    no_compress: bool,
    /// With `--jetstream`: no frame for this many seconds means the server
    /// has no more history (the live tail); 0.1 to 3600.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 5.0,
        requires = "jetstream",
        conflicts_with = "files",
        value_parser = crate::numbers::parse_tail_idle
    )]
    tail_idle_secs: f64,
    /// Keep state here (and continue from it); default: a temporary directory.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    sinks: super::SinkArgs,
    // The help is the user's: 3 s is `replay_pace::MAX_PACE_SLEEP`.
    /// Replay at N times real time (0.01 to 10000) instead of as fast as
    /// possible. A gap between events sleeps at most 3 s; gaps over a
    /// minute of event time are skipped (and logged).
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

/// `config`: `--config`'s file, else the defaults (see [`super::serve`]).
pub fn run(args: ReplayArgs, matcher: Matcher, mut config: Config) -> anyhow::Result<ExitCode> {
    args.sinks.apply(&mut config);
    // Before anything is opened: the alerts file is opened by its sink,
    // the report made, at the start.
    refuse_overlaps(&args.files, &outputs(&args, &config))?;
    let runtime = super::runtime(1)?;
    let replayed = replay(&runtime, args, matcher, config);
    // A line still being written to a pipe nobody reads is not waited for:
    // the summary has said it undelivered.
    super::end_runtime(runtime);
    replayed
}

/// The replay itself, on `runtime`, which [`run`] ends after it.
fn replay(
    runtime: &tokio::runtime::Runtime,
    args: ReplayArgs,
    matcher: Matcher,
    config: Config,
) -> anyhow::Result<ExitCode> {
    let max_line = usize::try_from(args.max_line_bytes).unwrap_or(DEFAULT_MAX_LINE);
    let _enter = runtime.enter();
    let (mut pipeline, outbox) = open_pipeline(&args, matcher, &config)?;
    // A sink's or the status server's panic fails the replay at its end.
    let supervisor = Supervisor::new();
    let delivery = Delivery::start(
        sink_specs(&config),
        outbox,
        crate::wall::system(),
        &supervisor,
    )?;
    let mut watch = super::serve::Watch::start(
        &args.watch,
        &config,
        runtime,
        &delivery,
        &mut pipeline,
        (args.state_dir.as_deref(), &supervisor),
    )?;
    // A failed write to standard output ends the replay at once, as a
    // closed pipe does: its alerts cannot go out, and it retried for two
    // minutes (the drain) before exiting 3.
    let mut emit = |alerts: Vec<Emitted>| -> anyhow::Result<()> {
        if !alerts.is_empty() {
            delivery.notify();
        }
        match delivery.stdout_failure() {
            Some(why) => Err(anyhow::anyhow!("{why}")),
            None => Ok(()),
        }
    };
    let started = Instant::now();
    let read = read_inputs(&args, runtime, (&mut pipeline, &mut emit), &watch, max_line).and_then(
        |read| {
            emit(pipeline.finish()?)?;
            Ok(read)
        },
    );
    let (source_note, read_errors) = match read {
        Ok(read) => read,
        // Said below, after what was delivered and what was not.
        Err(_) if delivery.stdout_failure().is_some() => (
            format!(
                "{} file(s), stopped at a failed write to stdout",
                args.files.len()
            ),
            Vec::new(),
        ),
        Err(e) => return Err(e),
    };
    let elapsed = started.elapsed();
    // Its error (the report not written) comes after the summary, which
    // says what the replay did.
    let finished = watch.finished(pipeline.stats());
    let Drained {
        undelivered,
        stdout_failure,
    } = drain(runtime, delivery, &args)?;
    let stats = pipeline.stats().clone();
    let store = pipeline.into_store();
    watch.release_store();
    // The store's last handle: compacted through it, closed and sealed.
    crate::state::close_store(store).log();
    print_summary(&stats, &source_note, elapsed);
    finished?;
    if let Some(why) = stdout_failure {
        anyhow::bail!(
            "{why}: the replay stopped there; the alerts it could not write are counted above"
        );
    }
    watch.hold(runtime, &args.watch);
    if let Some(failure) = supervisor.failure() {
        anyhow::bail!(failure);
    }
    Ok(exit_code(&read_errors, undelivered))
}

/// Every file the replay writes, with what named it: `--report`, the
/// alerts file (`--alerts`, or the configuration's `[alerts] file`),
/// `--record`. `-` for alerts is standard output.
fn outputs<'a>(args: &'a ReplayArgs, config: &'a Config) -> Vec<Output<'a>> {
    let mut outputs = Vec::new();
    if let Some(report) = &args.watch.report {
        outputs.push(Output {
            named_by: "--report".into(),
            path: report,
        });
    }
    if let Some(alerts) = config
        .alerts
        .file
        .as_deref()
        .filter(|f| *f != Path::new("-"))
    {
        let named_by = match (&args.sinks.alerts, &args.watch.config) {
            (None, Some(file)) => format!("the `[alerts] file` of {}", file.display()),
            _ => "--alerts".into(),
        };
        outputs.push(Output {
            named_by,
            path: alerts,
        });
    }
    if let Some(record) = &args.record {
        outputs.push(Output {
            named_by: "--record".into(),
            path: record,
        });
    }
    outputs
}

/// The history (`--jetstream`), then every file, into the pipeline. A
/// file that cannot be read (missing, truncated, corrupt) is named and the
/// rest still replayed; what was decided so far is still delivered.
/// Returns what was read, for the summary, and the read errors.
fn read_inputs(
    args: &ReplayArgs,
    runtime: &tokio::runtime::Runtime,
    (pipeline, emit): (
        &mut Pipeline<SledStore>,
        &mut (dyn FnMut(Vec<Emitted>) -> anyhow::Result<()> + Send),
    ),
    watch: &super::serve::Watch,
    max_line: usize,
) -> anyhow::Result<(String, Vec<String>)> {
    let mut source_note = format!("{} file(s)", args.files.len());
    if let Some(url) = &args.jetstream {
        let history = history(args, url, max_line)?;
        let end = super::replay_jetstream::read(runtime, &history, pipeline, emit)?;
        source_note = format!("{} ({})", history.url, end.describe());
    }
    let mut files = Files {
        pipeline,
        emit,
        progress: progress_bar(),
        watch,
        pace: args.speed.map(Pacer::new),
        max_line,
    };
    let read_errors: Vec<String> = args
        .files
        .iter()
        .map(|file| files.replay(file))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    files.progress.finish_and_clear();
    Ok((source_note, read_errors))
}

/// The store (`--state-dir`, else a temporary one) and the pipeline on it.
fn open_pipeline(
    args: &ReplayArgs,
    matcher: Matcher,
    config: &Config,
) -> anyhow::Result<(Pipeline<SledStore>, crate::alert::outbox::Outbox)> {
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
    let pipeline = Pipeline::open(Arc::new(matcher), pipeline_config, store)?;
    Ok((pipeline, outbox))
}

/// What `--jetstream URL --since ...` asks for.
fn history(
    args: &ReplayArgs,
    url: &str,
    max_line: usize,
) -> anyhow::Result<super::replay_jetstream::History> {
    let now = crate::wall::now_us();
    let since = args.since.as_deref().context("--jetstream needs --since")?;
    let since = super::replay_jetstream::parse_time(since, now).context("--since")?;
    let until = args
        .until
        .as_deref()
        .map(|t| super::replay_jetstream::parse_time(t, now))
        .transpose()
        .context("--until")?;
    if let Some(until) = until
        && until <= since
    {
        // Each flag alone is checked by clap (a usage error); the two
        // together only here, where relative times are read against now.
        return Err(super::UsageError(format!(
            "--until ({}) is not after --since ({}): the range holds no event",
            args.until.as_deref().unwrap_or_default(),
            args.since.as_deref().unwrap_or_default()
        ))
        .into());
    }
    Ok(super::replay_jetstream::History {
        url: if url.is_empty() {
            crate::source::jetstream::PUBLIC_HOSTS[0].into()
        } else {
            url.into()
        },
        since,
        until,
        record: args.record.clone(),
        wire: args.protocol.into(),
        compress: !args.no_compress,
        tail_idle: Duration::from_secs_f64(args.tail_idle_secs.max(0.1)),
        max_frame_bytes: max_line,
        backoff_min: crate::source::ws::WsSettings::default().backoff_min,
    })
}

/// Reads recordings into the pipeline.
struct Files<'a> {
    pipeline: &'a mut Pipeline<SledStore>,
    emit: &'a mut (dyn FnMut(Vec<Emitted>) -> anyhow::Result<()> + Send),
    progress: ProgressBar,
    watch: &'a super::serve::Watch,
    pace: Option<Pacer>,
    max_line: usize,
}

/// The source a recording's frames come from when they carry no clock
/// line (a plain Jetstream recording): the file, by its canonical path.
/// A source's clock and counts are kept by this name across a resumed
/// replay, and `./a.jsonl`, `a.jsonl` and its absolute path are one file:
/// named as typed, a replay resumed with another spelling read the file
/// as a new source and counted its last ten minutes a second time.
fn source_name(file: &str) -> String {
    std::fs::canonicalize(file).map_or_else(|_| file.to_owned(), |p| p.display().to_string())
}

impl Files<'_> {
    /// Replays one file; `Ok(Some(error))` when it could not be read to
    /// its end (what was read counts). Frames are prepared a chunk at a
    /// time on every core (see [`super::replay_chunk`]).
    fn replay(&mut self, file: &str) -> anyhow::Result<Option<String>> {
        let reader = match recording::open(file) {
            Ok(reader) => reader,
            Err(e) => return Ok(Some(e.to_string())),
        };
        let matcher = Arc::clone(self.pipeline.matcher());
        let source = source_name(file);
        let before = Usable::of(self.pipeline.stats());
        let reading = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Reader::new(reader, self.max_line)
                .prepare_all(&matcher, &source, |lines| self.process(&source, lines))
        }));
        // A panic while reading or preparing is a defect: reported as an
        // error with the file's name, after what was decided so far.
        let Ok(stop) = reading else {
            anyhow::bail!("reading and preparing {file} panicked");
        };
        Ok(match stop? {
            Stop::Failed(error) => Some(error),
            Stop::End | Stop::Full => Usable::of(self.pipeline.stats())
                .since(before)
                .none_usable(file),
        })
    }

    /// A chunk's prepared frames through the pipeline, in line order;
    /// `file` is the file's source name ([`source_name`]).
    fn process(&mut self, file: &str, ready: Lines) -> anyhow::Result<()> {
        for (line_no, ready) in ready {
            let alerts = match ready {
                Ready::Frame { clock, prepared } => {
                    let (source, received) = sender(file, clock.as_deref());
                    self.pipeline
                        .process_prepared(source, line_no, prepared, &received)?
                }
                Ready::Oversized(len) => {
                    let limit = self.max_line;
                    let error = FrameError::Oversized { len, limit };
                    self.pipeline.reject_frame(file, line_no, &error);
                    Vec::new()
                }
                Ready::Clock(clock) => {
                    let (source, received) = sender(file, Some(&clock));
                    self.pipeline.time_passed(source, &received)?
                }
            };
            (self.emit)(alerts)?;
            self.tick(line_no);
        }
        Ok(())
    }

    /// Progress, the status API, and `--speed` pacing after a line.
    fn tick(&mut self, line_no: u64) {
        if line_no.is_multiple_of(8192) {
            self.progress.set_position(self.pipeline.stats().frames);
            self.watch.publish(self.pipeline.stats());
        }
        if let (Some(pacer), Some(now)) = (self.pace.as_mut(), self.pipeline.newest_event_time()) {
            pacer.wait_for(now);
        }
    }
}

/// Lines read and how many were malformed or blank: a file none of whose
/// lines is a frame (a binary, a README, another program's JSON) is not a
/// recording, and replaying it "cleanly" with exit 0 told a script that
/// nothing was wrong.
#[derive(Clone, Copy)]
struct Usable {
    lines: u64,
    malformed: u64,
    blank: u64,
}

impl Usable {
    fn of(stats: &crate::events::pipeline::Stats) -> Self {
        Usable {
            lines: stats.frames,
            malformed: stats.malformed,
            blank: stats.blank_lines,
        }
    }

    fn since(self, before: Usable) -> Self {
        Usable {
            lines: self.lines.saturating_sub(before.lines),
            malformed: self.malformed.saturating_sub(before.malformed),
            blank: self.blank.saturating_sub(before.blank),
        }
    }

    /// The error for `file` when it had malformed lines and nothing else
    /// but blank ones. An empty file is no error (a recording just begun).
    fn none_usable(self, file: &str) -> Option<String> {
        (self.malformed > 0 && self.malformed.saturating_add(self.blank) >= self.lines).then(|| {
            format!(
                "{file}: none of its {} lines is a frame ({} malformed; the first are listed above \
                 under \"malformed\"): is it a recording?",
                self.lines, self.malformed
            )
        })
    }
}

/// How the sinks ended.
struct Drained {
    /// Something was left undelivered or dead.
    undelivered: bool,
    /// A sink could not write to standard output (why): the drain did not
    /// wait for it.
    stdout_failure: Option<String>,
}

/// Lets the sinks deliver what is left (up to `--drain-timeout`, unless
/// standard output failed), reports each.
fn drain(
    runtime: &tokio::runtime::Runtime,
    delivery: Delivery,
    args: &ReplayArgs,
) -> anyhow::Result<Drained> {
    let (drained, reports, stdout_failure) = runtime.block_on(async {
        let drained = delivery
            .drain(Duration::from_secs(args.drain_timeout))
            .await;
        let stdout_failure = delivery.stdout_failure().map(str::to_owned);
        let (_, reports) = delivery.stop(Duration::ZERO).await;
        (drained, reports, stdout_failure)
    });
    let state_place = match &args.state_dir {
        Some(dir) => format!("the outbox in {}", dir.display()),
        None => {
            "a temporary state directory, removed at exit: pass --state-dir to keep them".to_owned()
        }
    };
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
    if !drained && stdout_failure.is_none() {
        eprintln!(
            "drain timeout ({} s) reached before every alert was delivered",
            args.drain_timeout
        );
    }
    Ok(Drained {
        undelivered,
        stdout_failure,
    })
}

/// 1 when a file could not be read (each named), 3 when alerts were left
/// undelivered, else 0.
fn exit_code(read_errors: &[String], undelivered: bool) -> ExitCode {
    if !read_errors.is_empty() {
        for error in read_errors {
            eprintln!("error: {error}");
        }
        eprintln!(
            "the replay is incomplete: {} read error(s); the alerts above cover what was read",
            read_errors.len()
        );
        return ExitCode::FAILURE;
    }
    if undelivered {
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
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
