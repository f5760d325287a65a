//! `outagewatch record`: Jetstream frames to a file, exactly as received,
//! one per line, each run of frames that arrived in the same millisecond
//! after a clock line holding that arrival time (see
//! [`crate::source::recording`]): the format `replay` reads. Reconnects resume from the last
//! recorded event minus the overlap, as the daemon does; the overlap stays
//! in the file (as received) and `replay` drops it as the daemon does.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio::sync::{mpsc, watch};

use crate::source::clock::{ClockRule, SourceClock, Tick, author_key};
use crate::source::health::SourceHealth;
use crate::source::jetstream::{
    JetstreamOptions, JetstreamProtocol, PUBLIC_HOSTS, Wire, decode_with_time,
};
use crate::source::recording::writer::{COMMIT_EVERY, RecordingWriter};
use crate::source::recording::{CLOCK_LINE_MAX, ClockLine, frame_line};
use crate::source::ws::{self, WsSettings};
use crate::source::{Decoded, Link, SourceKind};

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Jetstream URLs, tried in turn (default: the four public hosts).
    #[arg(long, value_name = "URL", value_parser = super::websocket_url)]
    jetstream: Vec<String>,
    /// Output file; `.gz` or `.zst` compresses. Appends if it exists,
    /// after cutting a torn tail a crash left (damage before the end is
    /// refused). Committed every 5 s: a new gzip member or zstd frame.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Source name written in the clock lines (replay keys cursors and
    /// per-source counts by it, as the daemon does).
    #[arg(long, value_name = "NAME", default_value = "bluesky")]
    name: String,
    /// Make a commit point at least this often, in seconds (0.1 to 3600):
    /// a crash loses at most about this much of the recording. Each one
    /// costs a compressed file about 1 % at the default.
    #[arg(long, value_name = "SECS", default_value_t = COMMIT_EVERY.as_secs_f64(),
          value_parser = crate::numbers::parse_commit_secs)]
    commit_secs: f64,
    /// Reconnect when no frame arrives for this many seconds (1 to 3600).
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
    let hosts = if args.jetstream.is_empty() {
        PUBLIC_HOSTS.iter().map(|h| (*h).to_owned()).collect()
    } else {
        args.jetstream.clone()
    };
    anyhow::ensure!(
        ClockLine::fits(&args.name, SourceKind::Jetstream, ""),
        "--name is too long: a clock line naming it would be over {CLOCK_LINE_MAX} bytes, and a replay would read it as a frame"
    );
    let name = args.out.to_string_lossy().into_owned();
    let out =
        open_output(&args.out)?.commit_every(std::time::Duration::from_secs_f64(args.commit_secs));
    let runtime = super::runtime(1)?;
    let mut recorder = Recorder {
        out,
        name: &args.name,
        last_arrival: None,
        clock: SourceClock::default(),
        health: Arc::new(SourceHealth::new("record", None)),
        frames: 0,
    };
    runtime.block_on(recorder.record(&args, hosts))?;
    let frames = recorder.frames;
    recorder
        .out
        .finish()
        .with_context(|| format!("cannot finish {name}"))?;
    eprintln!("recorded {frames} frames to {name}");
    Ok(ExitCode::SUCCESS)
}

/// Writes what one connection receives, with clock lines.
struct Recorder<'a> {
    out: RecordingWriter,
    /// The source name in the clock lines.
    name: &'a str,
    last_arrival: Option<crate::Micros>,
    /// The event-time clock reconnects resume from.
    clock: SourceClock,
    health: Arc<SourceHealth>,
    frames: u64,
}

impl Recorder<'_> {
    /// Reads `hosts` until a signal or the connection task ends, then
    /// writes the frames still queued.
    async fn record(&mut self, args: &RecordArgs, hosts: Vec<String>) -> anyhow::Result<()> {
        let settings = WsSettings {
            watchdog: std::time::Duration::from_secs_f64(args.watchdog_secs.max(0.1)),
            ..WsSettings::default()
        };
        let (tx, mut rx) = mpsc::channel(4096);
        let (stop_tx, stop_rx) = watch::channel(false);
        let tls = crate::tls::client_config()?;
        let link = Link::new(0, tls, tx, Arc::clone(&self.health), stop_rx);
        let protocol = JetstreamProtocol::new(JetstreamOptions {
            wire: args.protocol.into(),
            compress: !args.no_compress,
            ..JetstreamOptions::default()
        });
        let task = tokio::spawn(ws::run(hosts, settings, protocol, link));
        let stop = super::run::first_signal_then_arm_second();
        tokio::pin!(stop);
        // Commit points while frames pause (a reconnect, a quiet source):
        // the last frames before a pause are not left in the compressor.
        // Looked at ten times a commit period, so none waits much longer.
        let every = std::time::Duration::from_secs_f64(args.commit_secs);
        let mut commit = tokio::time::interval(every / 10);
        commit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let inbound = tokio::select! {
                _ = &mut stop => break,
                _ = commit.tick() => {
                    self.out.commit_if_due()?;
                    continue;
                }
                inbound = rx.recv() => inbound,
            };
            let Some(inbound) = inbound else { break };
            self.follow_clock(&inbound);
            self.write(&inbound)?;
            self.out.commit_if_due()?;
        }
        let _ = stop_tx.send(true);
        let _ = task.await;
        while let Ok(inbound) = rx.try_recv() {
            self.write(&inbound)?;
        }
        Ok(())
    }

    /// Moves the source's watermark with a frame that decodes, so a
    /// reconnect resumes from it, as the daemon does: one frame dated in
    /// 2100 must not become the reconnect's cursor.
    fn follow_clock(&mut self, inbound: &ws::Inbound) {
        let Ok((time_us, decoded)) = decode_with_time(inbound.frame.as_bytes()) else {
            return;
        };
        self.health.count_data();
        let Some(time_us) = time_us else {
            return;
        };
        let author = match &decoded {
            Decoded::Post(post) => Some(author_key(&post.author)),
            Decoded::Skipped(_) => None,
        };
        let tick = Tick {
            time_us,
            author,
            arrival_us: Some(inbound.arrival_us),
            own_clock: false,
        };
        self.clock.judge(tick, None, &ClockRule::default());
        if let Some(watermark) = self.clock.watermark() {
            self.health.set_processed(watermark);
        }
    }

    /// One frame as received, after a clock line when its arrival time
    /// differs from the last frame's.
    fn write(&mut self, inbound: &ws::Inbound) -> std::io::Result<()> {
        if self.last_arrival != Some(inbound.arrival_us) {
            self.last_arrival = Some(inbound.arrival_us);
            let clock = ClockLine::new(inbound.arrival_us, self.name, SourceKind::Jetstream, "");
            self.out.write_line(clock.to_line().as_bytes())?;
        }
        self.out.write_line(frame_line(&inbound.frame).as_bytes())?;
        self.frames += 1;
        Ok(())
    }
}

/// Opens a recording for appending (see [`RecordingWriter`]), saying on
/// stderr what a torn tail cost.
pub(crate) fn open_output(path: &Path) -> anyhow::Result<RecordingWriter> {
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
    Ok(out)
}
