//! `outagewatch replay --jetstream [URL] --since 24h`: the recent firehose
//! without having recorded it. Jetstream keeps about 36 hours; this
//! connects with a cursor in the past, reads as fast as the server sends
//! until `--until` or the live tail, and runs every frame through the same
//! pipeline call as a recording, so the same frames give the same alerts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::{mpsc, watch};

use crate::Micros;
use crate::pipeline::{Emitted, Pipeline, Received};
use crate::source::Link;
use crate::source::health::SourceHealth;
use crate::source::jetstream::{self, JetstreamOptions, JetstreamProtocol, Wire};
use crate::source::recording::writer::RecordingWriter;
use crate::source::url::SourceUrl;
use crate::source::ws::{self, WsSettings};
use crate::state::SledStore;
use crate::supervise::Supervisor;
use crate::wall::now_us as wall_now;

/// The source name frames are counted under.
pub const SOURCE: &str = "jetstream";

/// What `replay --jetstream` reads.
pub struct History {
    /// Shown masked in the summary and the errors.
    pub url: SourceUrl,
    pub since: Micros,
    pub until: Option<Micros>,
    pub record: Option<PathBuf>,
    pub wire: Wire,
    pub compress: bool,
    /// No frame for this long, once frames flowed: the live tail.
    pub tail_idle: Duration,
    pub max_frame_bytes: usize,
    /// The first wait before reconnecting (doubling from there).
    pub backoff_min: Duration,
}

/// Failed connection attempts after which a read that never connected
/// gives up: a one-shot history read against a mistyped or dead host
/// retried for minutes with a growing backoff.
pub const MAX_UNCONNECTED_ATTEMPTS: u64 = 5;

/// Why the read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// A frame at or after `--until` arrived (it was not processed).
    Until,
    /// Caught up with the live stream (or the server had nothing more).
    Tail,
    /// Interrupted (SIGINT or SIGTERM).
    Stopped,
}

impl End {
    pub fn describe(self) -> &'static str {
        match self {
            End::Until => "reached --until",
            End::Tail => "reached the live tail",
            End::Stopped => "interrupted",
        }
    }
}

/// `24h`, `90m`, `2d` (that long before `now`), an RFC 3339 time, or
/// microseconds since the epoch; in every form a time every source accepts
/// ([`crate::source::EVENT_TIMES`], 1970 to 9999), so a typo of a few
/// digits is refused here instead of asking the server for the year 50,000.
pub fn parse_time(text: &str, now: Micros) -> anyhow::Result<Micros> {
    let time = if let Ok(ago) = humantime::parse_duration(text) {
        i64::try_from(ago.as_micros())
            .ok()
            .and_then(|ago| now.checked_sub(ago))
    } else if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        Some(time.timestamp_micros())
    } else {
        Some(text.parse::<i64>().map_err(|_| {
            anyhow::anyhow!(
                "{text:?} is neither a duration (24h, 90m), an RFC 3339 time nor microseconds since the epoch"
            )
        })?)
    };
    time.filter(|t| crate::source::EVENT_TIMES.contains(t))
        .ok_or_else(|| anyhow::anyhow!("{text:?} is not a time from 1970 to 9999"))
}

/// How far past now `--since` may be: clocks differ a little.
const FUTURE_SLACK: Micros = 60_000_000;

/// A `--since` (`until` false) or `--until` a history read can ask for:
/// [`parse_time`], and not before the earliest time cursor Jetstream
/// reads as a time (2001-09-09; an earlier cursor was dropped and the live
/// tail read in silence: seconds taken for microseconds, `24` without its
/// `h`), nor, for `--since`, in the future (nothing to read). For clap:
/// a bad value is a usage error.
pub fn history_time(text: &str, until: bool) -> Result<String, String> {
    let now = wall_now();
    let time = parse_time(text, now).map_err(|e| e.to_string())?;
    let read_as = || {
        let date = chrono::DateTime::from_timestamp_micros(time)
            .map_or_else(|| "?".to_owned(), |t| t.to_rfc3339());
        format!("{text:?} reads as {date} ({time} µs since the epoch)")
    };
    let forms = "give 24h or 90m (that long ago), an RFC 3339 time \
                 (2026-07-04T14:00:00Z) or microseconds since the epoch (16 digits)";
    if time < crate::source::jetstream::protocol::TIME_CURSOR_MIN {
        return Err(format!(
            "{}, before 2001-09-09, the earliest time Jetstream reads as one: {forms}",
            read_as()
        ));
    }
    if !until && time > now + FUTURE_SLACK {
        return Err(format!("{}, in the future: {forms}", read_as()));
    }
    Ok(text.to_owned())
}

/// Reads the history into the pipeline; `emit` gets the alerts as they come.
pub fn read(
    runtime: &tokio::runtime::Runtime,
    history: &History,
    pipeline: &mut Pipeline<SledStore>,
    emit: &mut dyn FnMut(Vec<Emitted>) -> anyhow::Result<()>,
) -> anyhow::Result<End> {
    let mut out = match &history.record {
        Some(path) => Some(super::record::open_output(path)?.0),
        None => None,
    };
    let mut connection = connect(runtime, history)?;
    let end_of_range = history.until.unwrap_or_else(wall_now);
    let progress = progress_bar(((end_of_range - history.since).max(1) / 1_000_000) as u64);
    let end = Reader {
        history,
        pipeline,
        emit,
        out: out.as_mut(),
        progress: &progress,
        frame_no: 0,
    }
    .pump(runtime, &mut connection)?;
    let _ = connection.stop.send(true);
    let _ = runtime.block_on(connection.task);
    progress.finish_and_clear();
    if let Some(out) = out {
        out.finish().context("cannot finish the recording")?;
    }
    // A panic closed the frame channel, which read as an interruption:
    // what was read is recorded, and the replay fails.
    if let Some(failure) = connection.supervisor.failure() {
        return Err(failure.into());
    }
    Ok(end)
}

/// The websocket task reading the history, and the ends of its channels.
struct Connection {
    frames: mpsc::Receiver<ws::Inbound>,
    stop: watch::Sender<bool>,
    health: Arc<SourceHealth>,
    task: tokio::task::JoinHandle<()>,
    supervisor: Supervisor,
}

/// Starts reading Jetstream from `--since`, without a rate limit (history
/// arrives as fast as the server sends).
fn connect(runtime: &tokio::runtime::Runtime, history: &History) -> anyhow::Result<Connection> {
    let (tx, frames) = mpsc::channel(4096);
    let (stop, stop_rx) = watch::channel(false);
    let health = Arc::new(SourceHealth::new(SOURCE, None));
    let settings = WsSettings {
        max_frames_per_sec: 0,
        max_frame_bytes: history.max_frame_bytes,
        backoff_min: history.backoff_min,
        ..WsSettings::default()
    };
    let protocol = JetstreamProtocol::new(JetstreamOptions {
        wire: history.wire,
        compress: history.compress,
        start: Some(history.since),
        quiet_dictionary: true,
        ..JetstreamOptions::default()
    });
    let tls = crate::tls::client_config()?;
    let link = Link::new(0, tls, tx, Arc::clone(&health), stop_rx);
    let supervisor = Supervisor::new();
    let _entered = runtime.enter();
    let task = supervisor.spawn(
        "jetstream history",
        ws::run(vec![history.url.clone()], settings, protocol, link),
    );
    Ok(Connection {
        frames,
        stop,
        health,
        task,
        supervisor,
    })
}

/// The error to end with once the connection has failed
/// [`MAX_UNCONNECTED_ATTEMPTS`] times without a frame ever arriving.
fn gave_up(url: &SourceUrl, health: &SourceHealth) -> Option<anyhow::Error> {
    let snapshot = health.snapshot();
    // A refusal is a reconnect too (counted in both): adding the two gave
    // up after three refused attempts.
    let failed = snapshot.reconnects;
    if snapshot.frames > 0 || failed < MAX_UNCONNECTED_ATTEMPTS {
        return None;
    }
    let last = health
        .last_failure()
        .unwrap_or_else(|| "unknown".to_owned());
    Some(anyhow::anyhow!(
        "never connected to {url} after {failed} attempts: {last}"
    ))
}

/// Frames from the connection into the pipeline, until one of the ends.
struct Reader<'a, 'e> {
    history: &'a History,
    pipeline: &'a mut Pipeline<SledStore>,
    emit: &'a mut (dyn FnMut(Vec<Emitted>) -> anyhow::Result<()> + 'e),
    /// `--record`: where the frames read are written too.
    out: Option<&'a mut RecordingWriter>,
    progress: &'a ProgressBar,
    frame_no: u64,
}

impl Reader<'_, '_> {
    /// Waits for each frame (or the tail's silence, or a signal) and
    /// processes it.
    fn pump(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        connection: &mut Connection,
    ) -> anyhow::Result<End> {
        let mut stop = {
            let _inside = runtime.enter();
            Box::pin(super::run::first_signal_then_arm_second())
        };
        loop {
            let next = runtime.block_on(async {
                tokio::select! {
                    inbound = connection.frames.recv() => Some(inbound),
                    _ = tokio::time::sleep(self.history.tail_idle) => None,
                    _ = &mut stop => Some(None),
                }
            });
            let inbound = match next {
                Some(Some(inbound)) => inbound,
                Some(None) => return Ok(End::Stopped),
                None => {
                    // Quiet: the tail once connected and either frames flowed
                    // or the server had none at all.
                    if connection.health.snapshot().connected {
                        return Ok(End::Tail);
                    }
                    if let Some(error) = gave_up(&self.history.url, &connection.health) {
                        return Err(error);
                    }
                    continue;
                }
            };
            if let Some(end) = self.take(&inbound, &connection.health)? {
                return Ok(end);
            }
        }
    }

    /// One frame: recorded, processed, told to the connection's health as
    /// the daemon's are (without it the no-data watchdog dropped the
    /// connection every 30 s while frames flowed, and a v1 read started
    /// over from `--since` each time), and the progress moved to its event
    /// time; `Some` when it ends the read (at `--until`, unprocessed, or
    /// at the live tail).
    fn take(
        &mut self,
        inbound: &ws::Inbound,
        health: &SourceHealth,
    ) -> anyhow::Result<Option<End>> {
        let history = self.history;
        // Rejected before it was text (not UTF-8): a malformed frame, with
        // no bytes to record or to date.
        if let Some(error) = &inbound.rejected {
            self.frame_no += 1;
            self.pipeline.reject_frame(SOURCE, self.frame_no, error);
            return Ok(None);
        }
        // A frame's own time ends the read (at `--until`, at the live
        // tail) only when the pipeline would not quarantine it as dated
        // ahead: one frame dated 2100 ended the read of a whole history.
        let time = jetstream::decode_frame(inbound.frame.as_bytes())
            .and_then(crate::source::Frame::checked)
            .ok()
            .and_then(|f| f.time_us)
            .filter(|t| self.pipeline.within_clock(SOURCE, *t, wall_now()));
        if let (Some(until), Some(time)) = (history.until, time)
            && time >= until
        {
            return Ok(Some(End::Until));
        }
        self.frame_no += 1;
        if let Some(out) = self.out.as_mut() {
            out.write_line(crate::source::recording::frame_line(&inbound.frame).as_bytes())?;
            out.commit_if_due()?;
        }
        let received = Received {
            host: Some(&inbound.host),
            ..Received::jetstream()
        };
        let frame = inbound.frame.as_bytes();
        let before = self.pipeline.unusable();
        let emitted = self
            .pipeline
            .process_frame(SOURCE, self.frame_no, frame, &received)?;
        self.pipeline.report_frame(health, SOURCE, before);
        (self.emit)(emitted)?;
        if let Some(time) = time {
            let progress = self.progress;
            progress.set_position((time.saturating_sub(history.since).max(0) / 1_000_000) as u64);
            if self.frame_no.is_multiple_of(256) {
                progress.set_message(crate::alert::rfc3339(time));
            }
            if time >= wall_now().saturating_sub(history.tail_idle.as_micros() as i64) {
                return Ok(Some(End::Tail));
            }
        }
        Ok(None)
    }
}

/// A bar over the requested time range, positioned at the event time read.
fn progress_bar(range_secs: u64) -> ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(range_secs);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {percent}% event time {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_durations_ago_rfc3339_or_micros() {
        let now = 1_800_000_000_000_000;
        assert_eq!(parse_time("24h", now).ok(), Some(now - 86_400_000_000));
        assert_eq!(parse_time("90m", now).ok(), Some(now - 5_400_000_000));
        assert_eq!(
            parse_time("2026-07-04T14:17:10Z", now).ok(),
            Some(1_783_174_630_000_000)
        );
        assert_eq!(
            parse_time("1783174630000000", now).ok(),
            Some(1_783_174_630_000_000)
        );
        let err = parse_time("yesterday-ish", now).expect_err("rejected");
        assert!(err.to_string().contains("neither a duration"), "{err}");
        // Seconds for microseconds, a forgotten unit, the future.
        for (bad, says) in [
            ("1700000000", "before 2001-09-09"),
            ("24", "before 2001-09-09"),
            ("2100-01-01T00:00:00Z", "in the future"),
        ] {
            let err = history_time(bad, false).expect_err(bad);
            assert!(
                err.contains(says) && err.contains("reads as"),
                "{bad}: {err}"
            );
        }
        assert!(history_time("2100-01-01T00:00:00Z", true).is_ok());
        assert!(history_time("1700000000000000", false).is_ok());
        assert!(history_time("24h", false).is_ok());
        for out_of_range in [
            "100000y",
            "-5",
            "178317463000000000000",
            "10000-01-01T00:00:00Z",
        ] {
            let err = parse_time(out_of_range, now).expect_err(out_of_range);
            assert!(
                err.to_string().contains("1970 to 9999") || err.to_string().contains("neither"),
                "{out_of_range}: {err}"
            );
        }
    }

    /// A history read against a host that refuses every connection gives
    /// up after [`MAX_UNCONNECTED_ATTEMPTS`], naming the URL and the last
    /// error, instead of retrying with a growing backoff for ever.
    #[test]
    fn a_host_never_reached_is_given_up_on() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let url = format!("ws://127.0.0.1:{port}/");
        let history = History {
            url: url.as_str().into(),
            since: wall_now() - 3_600_000_000,
            until: None,
            record: None,
            wire: Wire::V2,
            compress: true,
            tail_idle: Duration::from_millis(50),
            max_frame_bytes: 1 << 20,
            backoff_min: Duration::from_millis(50),
        };
        let runtime = super::super::runtime(1).expect("runtime");
        let connection = connect(&runtime, &history).expect("connect");
        let started = std::time::Instant::now();
        let error = loop {
            if let Some(error) = gave_up(&history.url, &connection.health) {
                break error;
            }
            // A guard against retrying for ever, not a speed test (the five
            // attempts take under a second of backoff).
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "still retrying"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = connection.stop.send(true);
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("never connected to {url} after 5 attempts: ")),
            "{text}"
        );
        assert!(text.len() > format!("never connected to {url} after 5 attempts: ").len());
    }

    /// Each refused attempt counts once towards giving up: a refusal is
    /// counted as a reconnect and as a refusal, and adding both gave up
    /// after three attempts.
    #[test]
    fn a_refused_attempt_counts_once_towards_giving_up() {
        use crate::events::{InternalEvent, SourceRefused};
        let url: SourceUrl = "ws://127.0.0.1:9/".into();
        let health = SourceHealth::new("jetstream", None);
        for attempt in 1..=MAX_UNCONNECTED_ATTEMPTS {
            assert!(
                gave_up(&url, &health).is_none(),
                "gave up before attempt {attempt}"
            );
            health.set_last_failure("HTTP 403 Forbidden");
            SourceRefused {
                source: "jetstream",
                counters: &health.counters,
                url: &url,
                reason: "HTTP 403 Forbidden",
                in_a_row: attempt,
            }
            .emit();
        }
        let error = gave_up(&url, &health).expect("gave up after the last attempt");
        assert!(
            error.to_string().contains(&format!(
                "after {MAX_UNCONNECTED_ATTEMPTS} attempts: HTTP 403"
            )),
            "{error}"
        );
    }
}
