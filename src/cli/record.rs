//! `outagewatch record`: data frames to a file, exactly as received, one
//! per line (the session acts on control messages, a relay's `EOSE` or
//! `NOTICE`, a v2 `#info`, and hands on data only), each run of frames from one connection that arrived in the same
//! millisecond after a clock line naming that arrival time, the
//! connection's source and kind (see [`crate::source::recording`]): the
//! format `replay` reads. One Jetstream source from the flags, or every
//! source of a configuration, connected as the daemon connects them.
//! Reconnects resume from each connection's watermark as the daemon's do,
//! and so does the first connection of a run appending to a recording,
//! from the watermark of the file's last frames (see
//! [`crate::source::recording::resume`]); an overlap stays in the file (as
//! received) and `replay` drops it as the daemon does.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio::sync::{mpsc, watch};

use crate::config::SourceConfig;
use crate::daemon::CHANNEL_FRAMES;
use crate::source::clock::ClockRule;
use crate::source::jetstream::{PUBLIC_HOSTS, Wire};
use crate::source::recording::follow::{ClockLines, Followed, Sender};
use crate::source::recording::recover::Tail;
use crate::source::recording::resume;
use crate::source::recording::writer::{COMMIT_EVERY, RecordingWriter};
use crate::source::recording::{CLOCK_LINE_MAX, frame_line};
use crate::source::ws::{self, DEFAULT_BUDGET_BYTES, FrameBudget};
use crate::source::{Connection, Links};
use crate::supervise::Supervisor;

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Record every source of this configuration file (TOML), connected
    /// as `run` connects them: Jetstream, Mastodon instances, Nostr relays
    /// (`${VAR}` resolved from the environment, as for `run`). Without it,
    /// one Jetstream source from the flags below.
    #[arg(long, value_name = "FILE",
          conflicts_with_all = ["jetstream", "name", "protocol", "no_compress", "watchdog_secs"])]
    config: Option<PathBuf>,
    /// Jetstream URLs, tried in turn (default: the four public hosts).
    #[arg(long, value_name = "URL", value_parser = super::SecretUrl(super::websocket_url))]
    jetstream: Vec<String>,
    /// Output file; `.gz` or `.zst` compresses. Appends if it exists,
    /// after cutting a torn tail a crash left (damage before the end is
    /// refused), each source resuming where the file stops. Committed
    /// every 5 s: a new gzip member or zstd frame.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Source name written in the clock lines (replay keys cursors and
    /// per-source counts by it, as the daemon does).
    #[arg(long, value_name = "NAME", default_value = "bluesky", value_parser = source_name)]
    name: String,
    /// Make a commit point at least this often, in seconds (0.1 to 3600):
    /// a crash loses at most about this much of the recording. Each one
    /// costs a compressed file about 1 % at the default.
    #[arg(long, value_name = "SECS", default_value_t = COMMIT_EVERY.as_secs_f64(),
          value_parser = crate::numbers::parse_commit_secs)]
    commit_secs: f64,
    /// Reconnect when no frame arrives for this many seconds (1 to 3600;
    /// with a configuration, each source's `watchdog_secs`).
    #[arg(long, value_name = "SECS", default_value_t = 30.0,
          value_parser = crate::numbers::parse_watchdog)]
    watchdog_secs: f64,
    /// Jetstream wire: `v1` (`/subscribe`) or `v2` (`subscribeEvents`).
    /// Either way the file holds text frames (decompressed).
    #[arg(long, value_enum, default_value_t = WireArg::V2)]
    protocol: WireArg,
    /// Ask for uncompressed frames (default: dictionary-zstd).
    #[arg(long)]
    no_compress: bool,
}

/// `--protocol` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum WireArg {
    V1,
    V2,
}

impl From<WireArg> for Wire {
    fn from(w: WireArg) -> Wire {
        match w {
            WireArg::V1 => Wire::V1,
            WireArg::V2 => Wire::V2,
        }
    }
}

pub fn run(args: RecordArgs) -> anyhow::Result<ExitCode> {
    let (sources, rule) = sources(&args)?;
    // The daemon's way from sources to connections, and nothing else.
    let connections: Vec<Connection> = sources.iter().flat_map(SourceConfig::connections).collect();
    let mut followed: Vec<Followed> = connections.iter().map(Followed::new).collect();
    if let Some(long) = followed.iter().find(|f| !f.fits()) {
        let what = match args.config {
            Some(_) => format!("the source name {:?}", long.name),
            None => "--name".to_owned(),
        };
        anyhow::bail!(
            "{what} is too long: a clock line naming it would be over {CLOCK_LINE_MAX} bytes, and a replay would read it as a frame"
        );
    }
    let name = args.out.to_string_lossy().into_owned();
    let (out, tail) = open_output(&args.out)?;
    let out = out.commit_every(std::time::Duration::from_secs_f64(args.commit_secs));
    // Each source resumes where the file stops, not at the live tail.
    if tail.kept > 0 {
        let restored = resume::restore(&args.out, out.format(), &tail, &mut followed, &rule)
            .with_context(|| format!("cannot resume {name}"))?;
        for line in restored.report(&name, &followed, &rule) {
            eprintln!("{line}");
        }
    }
    let runtime = super::runtime(1)?;
    let mut recorder = Recorder {
        out,
        followed,
        lines: ClockLines::default(),
        rule,
        frames: 0,
    };
    let recorded = runtime.block_on(recorder.record(connections, args.commit_secs));
    let frames = recorder.frames;
    // The file and how far it got: a full disk said only "No space left
    // on device".
    recorded.with_context(|| format!("cannot record to {name} (stopped after {frames} frames)"))?;
    recorder
        .out
        .finish()
        .with_context(|| format!("cannot finish {name}"))?;
    eprintln!("recorded {frames} frames to {name}");
    Ok(ExitCode::SUCCESS)
}

/// The sources to record and the rule their clocks judge by: the
/// configuration's (`${VAR}` resolved as for `run`), else one Jetstream
/// source from the flags.
fn sources(args: &RecordArgs) -> anyhow::Result<(Vec<SourceConfig>, ClockRule)> {
    if let Some(path) = &args.config {
        let config = super::config::load(Some(path))?;
        return Ok((config.sources, config.window.clock_rule()));
    }
    let hosts = if args.jetstream.is_empty() {
        PUBLIC_HOSTS.iter().map(|h| (*h).to_owned()).collect()
    } else {
        args.jetstream.clone()
    };
    let mut source = SourceConfig::jetstream(&args.name, hosts);
    source.protocol = Some(args.protocol.into());
    source.compress = Some(!args.no_compress);
    source.connection.watchdog = std::time::Duration::from_secs_f64(args.watchdog_secs.max(0.1));
    Ok((vec![source], ClockRule::default()))
}

/// Writes what the connections receive, with clock lines.
struct Recorder {
    out: RecordingWriter,
    /// Per connection, by its number.
    followed: Vec<Followed>,
    lines: ClockLines,
    rule: ClockRule,
    frames: u64,
}

impl Recorder {
    /// Reads `connections`, each run by its kind as the daemon runs it,
    /// until a signal or every connection's task ends, then writes the
    /// frames still queued.
    async fn record(
        &mut self,
        connections: Vec<Connection>,
        commit_secs: f64,
    ) -> anyhow::Result<()> {
        let (tx, mut rx) = mpsc::channel(CHANNEL_FRAMES);
        let (stop_tx, stop_rx) = watch::channel(false);
        let health: Vec<_> = self
            .followed
            .iter()
            .map(|f| Arc::clone(&f.health))
            .collect();
        let resume = vec![None; connections.len()];
        // The frame channel closes when the last task ends.
        let supervisor = Supervisor::new();
        let tasks = Links {
            tls: crate::tls::client_config()?,
            frames: tx,
            budget: FrameBudget::new(DEFAULT_BUDGET_BYTES),
            shutdown: stop_rx,
            state_dir: None,
            supervisor: supervisor.clone(),
        }
        .spawn(connections, &health, resume);
        let stop = super::run::first_signal_then_arm_second();
        tokio::pin!(stop);
        // Commit points while frames pause (a reconnect, a quiet source):
        // the last frames before a pause are not left in the compressor.
        // Looked at ten times a commit period, so none waits much longer.
        let every = std::time::Duration::from_secs_f64(commit_secs);
        let mut commit = tokio::time::interval(every / 10);
        commit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let inbound = tokio::select! {
                _ = &mut stop => break,
                _ = supervisor.failed() => break,
                _ = commit.tick() => {
                    self.out.commit_if_due()?;
                    continue;
                }
                inbound = rx.recv() => inbound,
            };
            let Some(inbound) = inbound else { break };
            // A frame rejected before it was text (not UTF-8) has no bytes
            // to record, and moves no time (as in the daemon); its
            // connection closed, and the reconnect is logged.
            if inbound.rejected.is_some() {
                continue;
            }
            if let Some(followed) = self.followed.get_mut(inbound.source) {
                match inbound.tick {
                    true => followed.time_passed(Sender::of(&inbound)),
                    false => match &inbound.checked {
                        Some(checked) => {
                            followed.follow_checked(checked, Sender::of(&inbound), &self.rule)
                        }
                        None => followed.follow(
                            inbound.frame.as_bytes(),
                            Sender::of(&inbound),
                            &self.rule,
                        ),
                    },
                }
            }
            self.write(&inbound)?;
            self.out.commit_if_due()?;
        }
        let _ = stop_tx.send(true);
        for task in tasks {
            let _ = task.await;
        }
        while let Ok(inbound) = rx.try_recv() {
            self.write(&inbound)?;
        }
        // What was received is written; the exit is still a failure.
        match supervisor.failure() {
            Some(failure) => Err(failure.into()),
            None => Ok(()),
        }
    }

    /// One frame as received, after a clock line when it came from another
    /// connection, at another time or of another stored range than the
    /// last frame; a tick is that clock line alone (a replay moves the
    /// source's watermark there, as the daemon did).
    fn write(&mut self, inbound: &ws::Inbound) -> std::io::Result<()> {
        if inbound.rejected.is_some() {
            return Ok(());
        }
        if let Some(clock) = self.lines.before(Sender::of(inbound), &self.followed) {
            self.out.write_line(clock.to_line().as_bytes())?;
        }
        if inbound.tick {
            return Ok(());
        }
        self.out.write_line(frame_line(&inbound.frame).as_bytes())?;
        self.frames += 1;
        Ok(())
    }
}

/// Opens a recording for appending (see [`RecordingWriter`]), saying on
/// stderr what a torn tail cost; with what the check found.
pub(crate) fn open_output(path: &Path) -> anyhow::Result<(RecordingWriter, Tail)> {
    let (out, tail) = RecordingWriter::open(path)?;
    if tail.cut > 0 {
        eprintln!(
            "{}: cut a torn tail of {} bytes (a run that did not stop cleanly); appending after the last complete {} at byte {}",
            path.display(),
            tail.cut,
            out.format().unit(),
            tail.kept
        );
    }
    Ok((out, tail))
}

/// A `--name`: not empty (a configuration refuses an empty source name;
/// here it was taken, and the summary read "source :").
fn source_name(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err("a source needs a name".into());
    }
    Ok(value.to_owned())
}
