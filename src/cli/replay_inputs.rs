//! What a replay reads, into its pipeline: Jetstream's history
//! (`--jetstream`), then each recording in order, a chunk of lines at a
//! time, with progress, `--speed` pacing and the status API kept up to
//! date. A file that cannot be read is named and the rest still read.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::replay::ReplayArgs;
use super::replay_chunk::{Lines, Reader, Ready, Stop, sender};
use super::replay_pace::Pacer;
use crate::pipeline::{Emitted, Pipeline};
use crate::source::FrameError;
use crate::source::recording;
use crate::state::SledStore;

/// The history (`--jetstream`), then every file, into the pipeline. A
/// file that cannot be read (missing, truncated, corrupt) is named and the
/// rest still replayed; what was decided so far is still delivered.
/// Returns what was read, for the summary, and the read errors.
pub(super) fn read_inputs(
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
        // Only when pacing: the newest accepted time walks every source.
        if let Some(pacer) = self.pace.as_mut()
            && let Some(now) = self.pipeline.newest_accepted()
        {
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
