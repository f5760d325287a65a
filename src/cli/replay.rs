//! `outagewatch replay`: the whole pipeline over recordings, in event time.
//! Its flags and the run from start to end are here; what it reads is in
//! [`super::replay_inputs`], what it writes (and must not read) in
//! [`super::replay_outputs`], and how it ends (the drain, the exit
//! status) in [`super::replay_drain`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;

use super::replay_drain::{Drained, drain, exit_code};
use super::replay_inputs::read_inputs;
use super::replay_outputs::{inputs, outputs, refuse_overlaps};
use super::replay_summary::print_summary;
use crate::alert::deliver::Delivery;
use crate::config::{Config, sink_specs};
use crate::matcher::Matcher;
use crate::pipeline::{Emitted, Pipeline, PipelineConfig, SAVE_EVERY_REPLAY};
use crate::source::recording::DEFAULT_MAX_LINE;
use crate::state::SledStore;
use crate::supervise::Supervisor;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Recordings to replay in order (`-` reads stdin).
    #[arg(required_unless_present = "jetstream", value_name = "FILE")]
    pub(super) files: Vec<String>,
    /// Read Jetstream's recent history instead of files (it keeps about
    /// 36 h): from `--since` to `--until` or the live tail, as fast as the
    /// server sends. Without a URL: the first public host.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "", conflicts_with = "files", requires = "since", value_parser = super::SecretUrl(super::websocket_url))]
    pub(super) jetstream: Option<String>,
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
    pub(super) since: Option<String>,
    /// With `--jetstream`: stop at the first event at or after this time
    /// (same forms as `--since`); default: the live tail.
    #[arg(
        long,
        value_name = "TIME",
        requires = "jetstream",
        conflicts_with = "files",
        value_parser = |t: &str| super::replay_jetstream::history_time(t, true)
    )]
    pub(super) until: Option<String>,
    /// With `--jetstream`: also write the frames read (text, decompressed)
    /// to this recording; `.gz` or `.zst` compresses.
    #[arg(
        long,
        value_name = "FILE",
        requires = "jetstream",
        conflicts_with = "files"
    )]
    pub(super) record: Option<PathBuf>,
    /// Jetstream wire for `--jetstream`: `v1` or `v2`.
    #[arg(long, value_enum, default_value_t = super::record::WireArg::V2, requires = "jetstream", conflicts_with = "files")]
    pub(super) protocol: super::record::WireArg,
    /// Ask `--jetstream` for uncompressed frames.
    #[arg(long, requires = "jetstream", conflicts_with = "files")]
    pub(super) no_compress: bool,
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
    pub(super) tail_idle_secs: f64,
    /// Keep state here (and continue from it); default: a temporary directory.
    #[arg(long, value_name = "DIR")]
    pub(super) state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(super) sinks: super::SinkArgs,
    // The help is the user's: 3 s is `replay_pace::MAX_PACE_SLEEP`.
    /// Replay at N times real time (0.01 to 10000) instead of as fast as
    /// possible. A gap between events sleeps at most 3 s; gaps over a
    /// minute of event time are skipped (and logged).
    #[arg(long, value_name = "N", value_parser = crate::numbers::parse_speed)]
    pub(super) speed: Option<f64>,
    /// How long to wait at the end for webhook deliveries, in seconds (0 to 86400).
    #[arg(long, value_name = "SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub(super) drain_timeout: u64,
    /// Longest line accepted, in bytes (1 KiB to 64 MiB); longer lines are
    /// skipped and reported.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_LINE as u64,
          value_parser = clap::value_parser!(u64).range(1024..=64 << 20))]
    pub(super) max_line_bytes: u64,
    /// Closed buckets written to the state per batch (1 to 100000). A batch
    /// that raises an alert is written at once; a replay killed between
    /// batches and run again with the same --state-dir redoes the frames
    /// after the last batch and ends with the same alerts. 1 saves like
    /// the live daemon.
    #[arg(long, value_name = "BUCKETS", default_value_t = SAVE_EVERY_REPLAY as u64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(super) save_every: u64,
    #[command(flatten)]
    pub watch: super::serve::ReplayWatchArgs,
}

/// `config`: `--config`'s file, else the defaults (see [`super::serve`]);
/// `patterns`: the `--patterns` flag, which `matcher` was loaded from if
/// given (else from the configuration's `patterns`, or the built-in ones).
pub fn run(
    args: ReplayArgs,
    matcher: Matcher,
    mut config: Config,
    patterns: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    args.sinks.apply(&mut config);
    // Before anything is opened: the alerts file is opened by its sink,
    // the report made, at the start.
    refuse_overlaps(&inputs(&args, &config, patterns), &outputs(&args, &config))?;
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
