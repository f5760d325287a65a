//! Delivery: one task per sink, each reading the outbox from its own
//! cursor, in order, at least once.
//!
//! A sink is a JSON-lines file (or stdout) or a webhook (see [`Webhook`]:
//! `json`, `slack`, `discord`, `pagerduty`, `opsgenie` or `alertmanager`,
//! optionally signed). A failed webhook request is retried with
//! exponential backoff and jitter, honouring the receiver's rate limit (see
//! [`super::ratelimit`]), until it succeeds or the retry horizon (24 h)
//! passes; a 4xx other than 408 and 429, and a redirect not followed, are
//! final at once (see [`super::http`]). An Alertmanager sink re-posts its
//! open alerts every `repeat` so they do not expire while firing, at the
//! start and while it waits out a backoff or a rate limit too. What
//! cannot be delivered becomes a dead letter with its reason (`outagewatch alerts dead`, `alerts retry`). A
//! sink delivers in outbox order and moves on only once an alert is
//! delivered, dead or set aside with its incident's later alerts (see
//! `alert::aside`), so a `resolved` never overtakes its `firing` and one
//! incident's refused alert does not hold up the others; each
//! sink has its own task and cursor, so one sink's troubles never delay
//! another, and the backlog lives on disk, not in memory. Every request
//! carries `Idempotency-Key: ID:SEQUENCE`, the same on every retry; a
//! re-post its own (see [`super::webhook::repost`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::Alert;
use super::http;
pub use super::once::send_test;
use super::outbox::Outbox;
pub use super::probe::{SinkFigures, SinkProbe, SinkReport, SinkStats};
use super::sink::{JsonLines, SinkError};
pub use super::spec::{Filter, RetryPolicy, SinkSpec, Target, Webhook};
use super::task::SinkRun;
use super::url;
use crate::state::StoreError;
use crate::supervise::Supervisor;
use crate::wall::SharedClock;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("alert outbox: {0}")]
    Outbox(#[from] StoreError),
    #[error("cannot set up TLS for webhooks: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// Why, showing at most the URL's host ([`url::not_http_url`]).
    #[error("sink {sink:?}: {why}")]
    BadUrl { sink: String, why: String },
    #[error("two sinks are named {0:?}")]
    DuplicateName(String),
}

/// How long a sink has to end after the stop signal, before it is aborted.
const STOP_WAIT: Duration = Duration::from_secs(5);

struct Worker {
    name: String,
    task: JoinHandle<()>,
    /// The sink's cursor: the last alert it is done with, if any.
    cursor: watch::Receiver<Option<u64>>,
    stats: Arc<SinkStats>,
}

/// The running sinks.
pub struct Delivery {
    workers: Vec<Worker>,
    outbox: Outbox,
    notify: Arc<Notify>,
    shutdown: watch::Sender<bool>,
    /// The first failed write of a sink on standard output.
    stdout_failed: Arc<std::sync::OnceLock<String>>,
}

impl Delivery {
    /// Starts one task per sink on the current tokio runtime. `clock` is
    /// the wall clock of the retry horizon, dead letters and the
    /// receivers' rate limits ([`crate::wall::system`] outside tests).
    /// Each task's panic goes to `supervisor`.
    pub fn start(
        specs: Vec<SinkSpec>,
        outbox: Outbox,
        clock: SharedClock,
        supervisor: &Supervisor,
    ) -> Result<Delivery, DeliveryError> {
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(DeliveryError::DuplicateName(name.clone()));
            }
        }
        let now = crate::wall::rfc3339(clock.now_us());
        settle_absent_sinks(&outbox, &specs, &now)?;
        let shared = Shared {
            names,
            outbox: outbox.clone(),
            notify: Arc::new(Notify::new()),
            shutdown: watch::channel(false),
            clock,
            supervisor: supervisor.clone(),
            stdout_failed: Arc::default(),
        };
        // Every sink's start is read (and a new one's saved) before any
        // task runs: a new sink starts at the slowest of the others, and a
        // task already delivering moved that mark, so a new sink beside
        // another new one skipped the alert the first had just sent.
        let starts = specs
            .iter()
            .map(|spec| outbox.cursor(&spec.name, &shared.names))
            .collect::<Result<Vec<_>, _>>()?;
        let workers = specs
            .into_iter()
            .zip(starts)
            .map(|(spec, start)| shared.spawn(spec, start))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Delivery {
            workers,
            outbox,
            notify: shared.notify,
            shutdown: shared.shutdown.0,
            stdout_failed: shared.stdout_failed,
        })
    }

    /// Why a sink could not write to standard output, once one has failed
    /// to (`cannot write alert to stdout: No space left on device (os
    /// error 28)`). A one-shot command ends on it at once, as on a closed
    /// pipe: `replay > /dev/full` retried for two minutes, then exited 3.
    pub fn stdout_failure(&self) -> Option<&str> {
        self.stdout_failed.get().map(String::as_str)
    }

    /// New alerts are in the outbox.
    pub fn notify(&self) {
        self.notify.notify_waiters();
    }

    /// A handle to say "new alerts" from another thread.
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }

    /// Writes an alert that does not come from the pipeline (a source's
    /// health) to the outbox, so it is delivered like the others.
    pub fn append(&self, alert: &Alert) -> Result<(), DeliveryError> {
        self.outbox.append(alert)?;
        self.notify();
        Ok(())
    }

    pub fn reports(&self) -> Vec<SinkReport> {
        self.probe().reports()
    }

    /// A handle that reads the sinks' counters from elsewhere (the HTTP
    /// status API and the metrics), after the sinks have stopped too.
    pub fn probe(&self) -> SinkProbe {
        SinkProbe::new(
            self.workers
                .iter()
                .map(|w| (w.name.clone(), Arc::clone(&w.stats), w.cursor.clone()))
                .collect(),
            self.outbox.clone(),
        )
    }

    /// Waits until every sink is done with everything in the outbox now,
    /// at most `limit`. True when it all went out (delivered or dead).
    pub async fn drain(&self, limit: Duration) -> bool {
        let Ok(target) = self.outbox.last_seq() else {
            return false;
        };
        // `None < Some(_)`: with nothing in the outbox, every cursor is
        // caught up.
        self.notify();
        let all = async {
            for worker in &self.workers {
                let mut cursor = worker.cursor.clone();
                loop {
                    let caught_up = *cursor.borrow() >= target
                        && self.outbox.set_aside_count(&worker.name) == 0
                        && self
                            .outbox
                            .next_requeued(&worker.name)
                            .ok()
                            .flatten()
                            .is_none();
                    if caught_up || worker.task.is_finished() {
                        break;
                    }
                    // Nothing more goes out there; a one-shot command ends.
                    if self.stdout_failed.get().is_some() {
                        return false;
                    }
                    tokio::select! {
                        changed = cursor.changed() => if changed.is_err() { break },
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
            true
        };
        matches!(tokio::time::timeout(limit, all).await, Ok(true))
    }

    /// Gives deliveries at most `grace` to finish, then stops every sink.
    /// What is left stays in the outbox for the next start.
    pub async fn stop(self, grace: Duration) -> (bool, Vec<SinkReport>) {
        let drained = self.drain(grace).await;
        let reports = self.reports();
        let _ = self.shutdown.send(true);
        for mut worker in self.workers {
            // A sink ends at the signal, even mid-request; one that does
            // not (a write to a stalled stdout) is aborted after a moment.
            if tokio::time::timeout(STOP_WAIT, &mut worker.task)
                .await
                .is_err()
            {
                tracing::warn!(sink = %worker.name, "the sink did not stop in time; aborted");
                worker.task.abort();
            }
        }
        // The sinks' last cursors and dropped letters: not on disk, they are
        // sent again at the next start (never lost), which is worth saying.
        if let Err(error) = self.outbox.flush() {
            tracing::error!(%error, "the outbox could not be saved at the stop: alerts delivered since the last save will be sent again at the next start");
        }
        (drained, reports)
    }
}

/// The outbox's sinks against this run's: a renamed sink (its spec names
/// its former name, and it has nothing of its own yet) takes over what
/// the old name had; any other sink with an active place but no spec
/// (removed, renamed without saying so, or left out of a `replay` without
/// `--config`) is retired: the alerts it was owed become its dead letters,
/// said here with the count, and it holds nothing back any more; if it
/// is configured again it goes on from where it was retired. Before, they
/// were removed with the other sinks' delivered alerts, in silence; and a
/// sink kept waiting for would hold every later alert in the outbox.
/// Returns the sinks retired, with how many letters each got.
pub fn settle_absent_sinks(
    outbox: &Outbox,
    specs: &[SinkSpec],
    now: &str,
) -> Result<Vec<(String, usize)>, DeliveryError> {
    for spec in specs {
        let Some(old) = spec.formerly.as_deref() else {
            continue;
        };
        if specs.iter().any(|s| s.name == old) || !outbox.holds_anything(old)? {
            continue;
        }
        if outbox.rename(old, &spec.name)? {
            tracing::info!(sink = %spec.name, formerly = %old, "the sink's place in the outbox, retries and letters carried over from its former name");
        } else {
            tracing::warn!(sink = %spec.name, formerly = %old, "not carried over from the former name: this sink has a place of its own already (it ran under this name); the former name's letters stay under it");
        }
    }
    let mut retired = Vec::new();
    for sink in outbox.sinks_owed()? {
        if specs.iter().any(|s| s.name == sink) {
            continue;
        }
        let letters = outbox.retire(&sink, NOT_CONFIGURED, now)?;
        if letters > 0 {
            tracing::warn!(
                sink = %sink,
                letters,
                "a sink that is not configured was owed alerts: they are its dead letters now (`outagewatch alerts dead` lists them; `alerts retry` sends them once it is configured again under this name)"
            );
        } else {
            tracing::info!(sink = %sink, "a sink no longer configured is retired: it holds no alerts back, and goes on from here if configured again");
        }
        retired.push((sink, letters));
    }
    Ok(retired)
}

/// The reason of the dead letters [`settle_absent_sinks`] makes.
pub const NOT_CONFIGURED: &str =
    "its sink was not configured when the daemon (or a replay) started";

/// What every sink's task shares, while starting them.
struct Shared {
    /// Every configured sink's name (a new one starts at the slowest).
    names: Vec<String>,
    outbox: Outbox,
    notify: Arc<Notify>,
    shutdown: (watch::Sender<bool>, watch::Receiver<bool>),
    clock: SharedClock,
    supervisor: Supervisor,
    stdout_failed: Arc<std::sync::OnceLock<String>>,
}

impl Shared {
    /// Starts the task of one sink, from `start` (its cursor).
    fn spawn(&self, spec: SinkSpec, start: Option<u64>) -> Result<Worker, DeliveryError> {
        let (client, lines) = match &spec.target {
            Target::Webhook(hook) => {
                if let Some(why) = url::not_http_url(&hook.url) {
                    return Err(DeliveryError::BadUrl {
                        sink: spec.name.clone(),
                        why,
                    });
                }
                // A client per sink: its own connections and timeouts.
                (Some(http::client(hook.connect_timeout)?), None)
            }
            Target::Lines(Some(path)) => (None, Some(JsonLines::file(path)?)),
            Target::Lines(None) => (None, Some(JsonLines::stdout())),
        };
        let stdout_failed = lines
            .as_ref()
            .filter(|lines| lines.is_stdout())
            .map(|_| Arc::clone(&self.stdout_failed));
        let (cursor_tx, cursor) = watch::channel(start);
        let stats = Arc::new(SinkStats::default());
        let name = spec.name.clone();
        let run = SinkRun {
            spec,
            outbox: self.outbox.clone(),
            client,
            pause_until: None,
            reposted: None,
            lines: lines.map(|lines| Arc::new(std::sync::Mutex::new(lines))),
            stdout_failed,
            stats: Arc::clone(&stats),
            notify: Arc::clone(&self.notify),
            shutdown: self.shutdown.1.clone(),
            cursor: cursor_tx,
            clock: Arc::clone(&self.clock),
            failing: Default::default(),
            head_wait: None,
            aside: Default::default(),
            delivered_since_set_aside: true,
            delivered_aside: Default::default(),
            passed_over: Default::default(),
        };
        let task = self
            .supervisor
            .spawn(format!("sink {name}"), run.run(start));
        Ok(Worker {
            name,
            task,
            cursor,
            stats,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Alert;

    /// The sinks delivering from `outbox` on the system clock.
    fn start(sinks: Vec<SinkSpec>, outbox: &Outbox) -> Delivery {
        Delivery::start(
            sinks,
            outbox.clone(),
            crate::wall::system(),
            &Supervisor::new(),
        )
        .expect("starts")
    }

    /// A JSON webhook sink to a port nothing listens on (port 1), retried
    /// for ten minutes.
    fn unreachable_sink() -> SinkSpec {
        sink_to("http://127.0.0.1:1/hook", Duration::from_secs(2))
    }

    /// A JSON webhook sink to `url`, each request timed out after `timeout`.
    fn sink_to(url: &str, timeout: Duration) -> SinkSpec {
        let hook = Webhook {
            timeout,
            connect_timeout: Duration::from_secs(1),
            ..Webhook::plain(url, crate::alert::format::Format::Json)
        };
        SinkSpec {
            name: "hook".into(),
            formerly: None,
            target: Target::Webhook(hook),
            filter: Filter::default(),
            retry: RetryPolicy {
                horizon: Duration::from_secs(600),
                min_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(60),
            },
        }
    }

    /// A webhook that never answers: retried with growing waits on the
    /// sink's clock, then a dead letter once the retry horizon has passed,
    /// not before. Ten minutes of retrying run on paused tokio time.
    #[tokio::test(start_paused = true)]
    async fn a_failing_webhook_becomes_a_dead_letter_at_the_horizon() {
        let clock: SharedClock = Arc::new(crate::wall::TokioClock::starting_at(T0));
        dies_at_the_horizon(clock).await;
    }

    /// The same with a wall clock that does not move (as one stepped back
    /// by NTP reads for a while): the horizon is time spent failing, on
    /// the monotonic clock. Judged on the wall clock, the alert never
    /// died, and every alert behind it waited.
    #[tokio::test(start_paused = true)]
    async fn the_retry_horizon_does_not_wait_on_the_wall_clock() {
        #[derive(Debug)]
        struct Stopped;
        impl crate::wall::Clock for Stopped {
            fn now_us(&self) -> crate::Micros {
                T0
            }
        }
        dies_at_the_horizon(Arc::new(Stopped)).await;
    }

    /// 2027-01-15T08:00:00Z.
    const T0: crate::Micros = 1_800_000_000_000_000;

    async fn dies_at_the_horizon(clock: SharedClock) {
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = crate::state::SledStore::open(dir.path())
            .expect("store")
            .outbox();
        let t0 = T0;
        let delivery = Delivery::start(
            vec![unreachable_sink()],
            outbox.clone(),
            clock,
            &Supervisor::new(),
        )
        .expect("starts");
        let firing = crate::detect::TransitionKind::Firing;
        let alert = Alert::source_health("bluesky", firing, t0, t0, "silent".into());
        delivery.append(&alert).expect("appended");
        let start = tokio::time::Instant::now();
        tokio::time::sleep_until(start + Duration::from_secs(9 * 60)).await;
        let dead = outbox.dead_letters().expect("read").letters;
        assert!(dead.is_empty(), "9 min: still retrying");
        let retries = delivery.reports()[0].retries;
        assert!(
            retries >= 5,
            "backoff grows to a minute: {retries} in 9 min"
        );
        tokio::time::sleep_until(start + Duration::from_secs(12 * 60)).await;
        let dead = outbox.dead_letters().expect("read").letters;
        assert_eq!(dead.len(), 1, "dead after the 10 min horizon");
        let (reason, failed_at) = (&dead[0].reason, &dead[0].failed_at);
        assert!(reason.contains("still failing after"), "{reason}");
        assert!(
            failed_at.starts_with("2027-01-15T08:"),
            "on the sink's clock: {failed_at}"
        );
        let (_, reports) = delivery.stop(Duration::ZERO).await;
        assert_eq!(reports[0].dead, 1);
    }

    /// A receiver that takes the request and never answers: when the grace
    /// period ends the request is given up (the alert stays in the outbox
    /// for the next start), instead of the shutdown waiting out the
    /// request's ten-minute timeout.
    #[tokio::test]
    async fn a_receiver_that_never_answers_does_not_hold_the_shutdown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let (accepted_tx, accepted) = tokio::sync::oneshot::channel();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            let mut accepted_tx = Some(accepted_tx);
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
                if let Some(tx) = accepted_tx.take() {
                    let _ = tx.send(());
                }
            }
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = crate::state::SledStore::open(dir.path())
            .expect("store")
            .outbox();
        let sink = sink_to(&url, Duration::from_secs(600));
        let delivery = start(vec![sink], &outbox);
        let firing = crate::detect::TransitionKind::Firing;
        let alert = Alert::source_health("bluesky", firing, 0, 0, "silent".into());
        delivery.append(&alert).expect("appended");
        // Stopped only once the request is in flight: stopped before the
        // sink connected, the test would pass with nothing to give up.
        tokio::time::timeout(Duration::from_secs(30), accepted)
            .await
            .expect("the sink connects")
            .expect("the listener runs");
        let stopped = tokio::time::timeout(
            Duration::from_secs(30),
            delivery.stop(Duration::from_millis(300)),
        )
        .await;
        let (drained, reports) = stopped.expect("stopped at the grace, not the request's timeout");
        assert!(!drained);
        assert_eq!(reports[0].delivered, 0);
        let kept = outbox.next_after(None).expect("read");
        assert_eq!(
            kept.map(|(_, a)| a.id),
            Some(alert.id),
            "kept for the next start"
        );
        silent.abort();
    }

    /// An outbox alert this version cannot read (a newer version wrote
    /// it, say) is passed over and counted, and the alerts after it go
    /// out: the sink used to stop at it for good, retrying every second.
    #[tokio::test]
    async fn an_alert_that_cannot_be_read_is_passed_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::state::SledStore::open(&dir.path().join("state")).expect("store");
        let outbox: crate::alert::outbox::Outbox = store.outbox();
        let raw: crate::state::outbox::Outbox<serde_json::Value> = store.outbox();
        let firing = crate::detect::TransitionKind::Firing;
        let before = Alert::source_health("a", firing, 0, 0, "silent".into());
        let after = Alert::source_health("b", firing, 0, 0, "silent".into());
        outbox.append(&before).expect("append");
        let newer = serde_json::json!({"id": "c", "state": "from a newer version"});
        raw.append(&newer).expect("append");
        outbox.append(&after).expect("append");
        let lines = dir.path().join("alerts.jsonl");
        let sink = SinkSpec {
            name: "lines".into(),
            formerly: None,
            target: Target::Lines(Some(lines.clone())),
            filter: Filter::default(),
            retry: RetryPolicy::default(),
        };
        let delivery = start(vec![sink], &outbox);
        assert!(delivery.drain(Duration::from_secs(30)).await, "drained");
        let (_, reports) = delivery.stop(Duration::ZERO).await;
        assert_eq!((reports[0].delivered, reports[0].dead), (2, 1));
        let written = std::fs::read_to_string(&lines).expect("lines");
        let ids: Vec<String> = written
            .lines()
            .map(|l| serde_json::from_str::<Alert>(l).expect("an alert").id)
            .collect();
        assert_eq!(ids, [before.id, after.id]);
    }

    /// A JSON-lines sink on a pipe nobody reads holds up that sink only:
    /// its write blocked one of the runtime's workers (the only one here),
    /// and every other sink, source and timer with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_pipe_nobody_reads_holds_up_its_own_sink_only() {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("alerts.fifo");
        let path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).expect("path");
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
        // The reader opens and never reads (non-blocking, so the open
        // does not wait for a writer); the pipe fills at 64 KiB.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .expect("reader");
        let store = crate::state::SledStore::open(&dir.path().join("state")).expect("store");
        let outbox: crate::alert::outbox::Outbox = store.outbox();
        let firing = crate::detect::TransitionKind::Firing;
        let detail = "x".repeat(1_000);
        let count = 200;
        for i in 0..count {
            let alert = Alert::source_health(&format!("s{i}"), firing, 0, 0, detail.clone());
            outbox.append(&alert).expect("append");
        }
        let file = dir.path().join("alerts.jsonl");
        let sink = |name: &str, path: &std::path::Path| SinkSpec {
            name: name.into(),
            formerly: None,
            target: Target::Lines(Some(path.to_path_buf())),
            filter: Filter::default(),
            retry: RetryPolicy::default(),
        };
        let sinks = vec![sink("stuck", &fifo), sink("file", &file)];
        let delivery = start(sinks, &outbox);
        // The test's own thread is not one of the runtime's workers: it
        // waits without them.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let lines = loop {
            let lines = std::fs::read_to_string(&file).map_or(0, |t| t.lines().count());
            if lines == count || std::time::Instant::now() > deadline {
                break lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(lines, count, "the other sink wrote every alert");
        let (_, reports) = delivery.stop(Duration::ZERO).await;
        assert!(reports[0].delivered < 200, "the pipe's sink was held up");
        // The blocked write ends (EPIPE) once the reader is gone, so the
        // runtime can stop.
        drop(reader);
    }
}
