//! The daemon: live sources in, alerts out, until a signal.
//!
//! What runs:
//! - one task per live connection ([`crate::source::ws::run`]), sending
//!   data frames over a bounded channel (a Nostr relay's task decodes its
//!   notes and checks their signatures first);
//! - the pipeline on its own thread: decode, count, detect, save state
//!   (the same [`Pipeline`] the replay command uses);
//! - the health monitor: `source:NAME` alerts when a source is silent or
//!   lagging;
//! - the sink task: alert lines to a file or stdout, and webhooks;
//! - a status line in the log every `status_secs`;
//! - dead letters past `[alerts] dead_letter_days` dropped at the start
//!   and every hour (`expiry`);
//! - the status server ([`crate::http`]): API, metrics, dashboard;
//! - systemd notifications when run as a `Type=notify` service: `READY=1`
//!   once the server listens and the sources are started, `WATCHDOG=1`
//!   every half `WatchdogSec` while the pipeline thread is alive,
//!   `STOPPING=1` at shutdown.
//!
//! **Start order**: the store opens, the sinks start (they read the
//! outbox), the status server binds (a bind error stops the start before
//! any source connects), the pipeline thread and the sources start, then
//! systemd is told `READY=1`.
//!
//! **Shutdown order** (on SIGINT, SIGTERM or SIGHUP), written down once:
//! 1. systemd is told `STOPPING=1`; the sources stop reading and close
//!    their sockets; then the side tasks (health monitor, status log,
//!    dead letter expiry, systemd watchdog) end on the same signal, each aborted if it has
//!    not within 2 s (the monitor raises the gaps still pending first);
//! 2. the pipeline drains the frames already received, then saves the state,
//!    the cursors and the open buckets, and flushes the store (from here
//!    `/readyz` answers 503);
//! 3. the sinks write the last alerts; webhook deliveries get
//!    `shutdown_grace_secs`;
//! 4. the status server stops last, so the drain can be watched; requests
//!    in flight get 2 s;
//! 5. with every handle on the store gone, it is compacted if sled's log has
//!    grown past twice its records, and sealed (`crate::state::close`);
//! 6. the process exits 0. A second signal exits at once (status 130).
//!
//! The store's stall watch (a thread, `stall`) runs beside all of this
//! from the start and ends when the run lets go of it; from step 1 on it
//! exits the process if the shutdown itself is stuck past its limit.
//!
//! The same steps follow when every source task ended on its own (the
//! frame channel closed) or when any task panicked (a source, a sink, the
//! health monitor, the status log or server, the watchdog; see
//! [`crate::supervise`]), but the exit is then a failure
//! ([`DaemonError::SourcesEnded`], [`DaemonError::TaskPanicked`]), for a
//! supervisor to restart it from the saved state. When the pipeline ended
//! with a store error, steps 3 and 4 run but not 5: a store that just
//! failed a write is neither compacted nor sealed, and the next start's
//! checks see it as it is.

mod expiry;
mod monitor;
mod pipeline_thread;
mod resume;
mod stall;
mod status;
mod systemd;
mod unraised;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use crate::alert::deliver::{Delivery, DeliveryError};
use crate::alert::outbox::Outbox;
use crate::config::{Config, sink_specs};
use crate::http::{HttpError, HttpSettings};
use crate::matcher::Matcher;
use crate::pipeline::{Pipeline, PipelineConfig, PipelineError, Stats};
use crate::source::Connection;
use crate::source::health::{HealthOverride, SourceHealth};
use crate::source::ws::{DEFAULT_BUDGET_BYTES, FrameBudget, Inbound};
use crate::state::{SledStore, StoreError};
use crate::supervise::{Supervisor, TaskFailure};
use crate::telemetry::{Mode, Telemetry};
use crate::wall::SharedClock;
pub use crate::wall::human_duration;
use monitor::Monitor;
use pipeline_thread::PipelineThread;
use resume::source_health;
use stall::{Stall, now_ms};
use status::{log_sinks, status_log};
use systemd::{systemd_notify, systemd_ready};

/// Frames in flight between the sources and the pipeline.
pub const CHANNEL_FRAMES: usize = 4096;

/// Longest a shutdown may take beyond the sinks' grace before the daemon
/// exits 1 anyway.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("the pipeline thread failed: {0}")]
    Thread(String),
    /// Every source task ended without being asked to: nothing is read any
    /// more. The state is saved and the sinks drained as at a shutdown,
    /// but the exit is a failure, so that a supervisor restarts it.
    #[error("every source stopped without being asked to (see the errors above); state saved")]
    SourcesEnded,
    #[error(transparent)]
    Http(#[from] HttpError),
    /// A task panicked (a bug): the daemon stopped in order rather than
    /// run on without it, and exits with a failure to be restarted.
    #[error("{0}; stopped in order, state saved")]
    TaskPanicked(TaskFailure),
}

/// What the daemon needs besides its configuration.
pub struct DaemonOptions {
    pub config: Config,
    pub matcher: Matcher,
    pub state_dir: PathBuf,
    /// The status server; `None` with `--no-http`.
    pub http: Option<HttpSettings>,
    /// The wall clock of the health monitor, the status log and the
    /// sources' counters ([`crate::wall::system`] outside tests).
    pub clock: SharedClock,
}

/// Runs until `stop` resolves, then shuts down in the documented order.
pub async fn run(
    options: DaemonOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Stats, DaemonError> {
    start(options).await?.until(stop).await
}

/// How the pipeline thread ended.
type PipelineEnd = Result<Result<Stats, PipelineError>, tokio::sync::oneshot::error::RecvError>;

/// Everything started, in the order it stops.
struct Running {
    shutdown: watch::Sender<bool>,
    /// Every task's panic, seen when it happens.
    supervisor: Supervisor,
    sources: Vec<tokio::task::JoinHandle<()>>,
    /// Health monitor, status log and systemd watchdog.
    helpers: Vec<tokio::task::JoinHandle<()>>,
    done: tokio::sync::oneshot::Receiver<Result<Stats, PipelineError>>,
    delivery: Delivery,
    server: Option<crate::http::Server>,
    outbox: Outbox,
    /// Holds the sinks' probe, and with it a handle on the store.
    telemetry: Arc<Telemetry>,
    stall: Arc<Stall>,
    grace: Duration,
    state_dir: PathBuf,
}

/// Starts everything in the documented order.
async fn start(options: DaemonOptions) -> Result<Running, DaemonError> {
    let DaemonOptions {
        config,
        matcher,
        state_dir,
        http,
        clock,
    } = options;
    // Before anything that needs an ordered stop is started: a failure
    // after the pipeline thread's start dropped the outputs unstopped.
    let tls = crate::tls::client_config()?;
    let (pipeline, outbox, telemetry) = open_pipeline(&config, matcher, &state_dir)?;
    // Each connection with the whole rule its source is judged by (its
    // own keys, `[health]`'s, its kind's defaults; a Nostr source's relays
    // share it).
    let (connections, rules): (Vec<Connection>, Vec<HealthOverride>) = config
        .sources
        .iter()
        .flat_map(|source| {
            let rule = HealthOverride::from(source.health_rule(&config.health));
            source.connections().into_iter().map(move |c| (c, rule))
        })
        .unzip();
    let (health, resume) = source_health(&pipeline, (&connections, &rules), &clock);
    telemetry.set_sources(health.clone());
    telemetry.set_health(config.global_health());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let supervisor = Supervisor::new();
    let (delivery, server) = start_outputs(
        &config,
        (&outbox, &telemetry, &supervisor),
        (&clock, http.as_ref(), &state_dir),
    )
    .await?;
    let notifier = delivery.notifier();
    let grace = Duration::from_secs_f64(config.daemon.shutdown_grace_secs.max(0.0));
    let (frames, frame_rx) = mpsc::channel::<Inbound>(CHANNEL_FRAMES);
    let thread = PipelineThread::new(&connections, &health, (&notifier, &telemetry), grace);
    let (pipeline_alive, stall) = (Arc::clone(&thread.alive), Arc::clone(&thread.stall));
    let done = thread.spawn(pipeline, frame_rx)?;
    let links = crate::source::Links {
        tls,
        frames,
        budget: FrameBudget::new(DEFAULT_BUDGET_BYTES),
        shutdown: shutdown_rx.clone(),
        state_dir: Some(state_dir.clone()),
        supervisor: supervisor.clone(),
    };
    let sources = links.spawn(connections, &health, resume);
    let helpers = Helpers {
        health,
        outbox: outbox.clone(),
        notifier,
        telemetry: Arc::clone(&telemetry),
        clock,
        shutdown: shutdown_rx,
        supervisor: supervisor.clone(),
    }
    .spawn(&config, pipeline_alive);
    Ok(Running {
        shutdown,
        supervisor,
        sources,
        helpers,
        done,
        delivery,
        server,
        outbox,
        telemetry: Arc::clone(&telemetry),
        stall,
        grace,
        state_dir,
    })
}

/// The sinks (they start first and stop last; they read the outbox), then
/// the status server. A server that cannot bind stops the sinks again.
async fn start_outputs(
    config: &Config,
    (outbox, telemetry, supervisor): (&Outbox, &Arc<Telemetry>, &Supervisor),
    (clock, http, state_dir): (&SharedClock, Option<&HttpSettings>, &Path),
) -> Result<(Delivery, Option<crate::http::Server>), DaemonError> {
    let delivery = Delivery::start(
        sink_specs(config),
        outbox.clone(),
        Arc::clone(clock),
        supervisor,
    )?;
    telemetry.set_sinks(delivery.probe());
    telemetry.set_store_open(true);
    let notifier = delivery.notifier();
    match start_server(http, telemetry, &notifier, (state_dir, supervisor)).await {
        Ok(server) => Ok((delivery, server)),
        Err(e) => {
            let _ = delivery.stop(Duration::ZERO).await;
            Err(e.into())
        }
    }
}

/// What the tasks beside the pipeline share: the health monitor, the
/// status log and the systemd watchdog.
struct Helpers {
    health: Vec<Arc<SourceHealth>>,
    outbox: Outbox,
    notifier: Arc<Notify>,
    telemetry: Arc<Telemetry>,
    clock: SharedClock,
    shutdown: watch::Receiver<bool>,
    supervisor: Supervisor,
}

impl Helpers {
    fn spawn(
        self,
        config: &Config,
        pipeline_alive: Arc<AtomicBool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let monitor = Monitor {
            health: self.health.clone(),
            rule: config.global_health(),
            outbox: self.outbox.clone(),
            notifier: self.notifier,
            telemetry: Arc::clone(&self.telemetry),
            clock: Arc::clone(&self.clock),
        };
        let supervisor = &self.supervisor;
        let monitor = supervisor.spawn("health monitor", monitor.run(self.shutdown.clone()));
        let expiry = config.alerts.dead_letter_retention_us().map(|retention| {
            supervisor.spawn(
                "dead letter expiry",
                expiry::expire_dead_letters(
                    self.outbox.clone(),
                    retention,
                    (Arc::clone(&self.clock), Arc::clone(&self.telemetry)),
                    self.shutdown.clone(),
                ),
            )
        });
        let sink_names: Vec<String> = sink_specs(config).into_iter().map(|s| s.name).collect();
        let status = supervisor.spawn(
            "status log",
            status_log(
                self.health,
                (self.telemetry, self.clock),
                (self.outbox, sink_names),
                Duration::from_secs_f64(config.daemon.status_secs.max(0.1)),
                self.shutdown.clone(),
            ),
        );
        [monitor, status]
            .into_iter()
            .chain(expiry)
            .chain(systemd_ready(pipeline_alive, self.shutdown, supervisor))
            .collect()
    }
}

/// Opens the store and the pipeline on it, with the daemon's telemetry.
fn open_pipeline(
    config: &Config,
    matcher: Matcher,
    state_dir: &Path,
) -> Result<(Pipeline<SledStore>, Outbox, Arc<Telemetry>), DaemonError> {
    // The open creates the directory, and says what a file in its place is.
    let store = SledStore::open(state_dir)?;
    let pipeline_config = PipelineConfig {
        window: config.window,
        detector: config.detector.clone(),
        ..PipelineConfig::new()
    };
    let outbox = store.outbox();
    let mut pipeline = Pipeline::open(Arc::new(matcher), pipeline_config, store)?;
    let telemetry = Telemetry::new(Mode::Daemon, Some(state_dir.to_path_buf()));
    pipeline.set_telemetry(Arc::clone(&telemetry));
    Ok((pipeline, outbox, telemetry))
}

/// The status server, unless `--no-http`; a bind error stops the start.
async fn start_server(
    http: Option<&HttpSettings>,
    telemetry: &Arc<Telemetry>,
    notifier: &Arc<Notify>,
    (state_dir, supervisor): (&Path, &Supervisor),
) -> Result<Option<crate::http::Server>, HttpError> {
    let Some(settings) = http else {
        return Ok(None);
    };
    let server = crate::http::Server::start(
        settings,
        Arc::clone(telemetry),
        Some(Arc::clone(notifier)),
        Some(state_dir),
        supervisor,
    )
    .await?;
    Ok(Some(server))
}

impl Running {
    /// Runs until told to stop, or until something stops on its own: the
    /// pipeline (the store cannot be written, or every source task ended
    /// and closed the frame channel) or a panicking task. Those two are
    /// failures; every way out goes through the same shutdown.
    async fn until(
        mut self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<Stats, DaemonError> {
        let supervisor = self.supervisor.clone();
        tokio::pin!(stop);
        let (early, signalled) = tokio::select! {
            _ = &mut stop => {
                tracing::info!("shutting down: stopping the sources");
                (None, true)
            }
            result = &mut self.done => (Some(result), false),
            _ = supervisor.failed() => (None, false),
        };
        let shutdown = self.shutdown(early);
        tokio::pin!(shutdown);
        // A shutdown that began on its own still hears a signal (the
        // caller's `stop` arms the second signal's exit at the first):
        // the signal future dropped, a SIGTERM was ignored until the
        // shutdown's own limit.
        let mut signalled = signalled;
        loop {
            tokio::select! {
                result = &mut shutdown => return result,
                _ = &mut stop, if !signalled => {
                    signalled = true;
                    tracing::info!("signal received while stopping; stopping goes on");
                }
            }
        }
    }

    /// Stops everything in the documented order; `early` is how the
    /// pipeline ended if it ended before the stop signal.
    async fn shutdown(mut self, early: Option<PipelineEnd>) -> Result<Stats, DaemonError> {
        // 1. Stop the sources.
        systemd_notify(&[sd_notify::NotifyState::Stopping]);
        self.stall.stopping_since.store(now_ms(), Ordering::Relaxed);
        let _ = self.shutdown.send(true);
        // A source's panic was reported when it happened (supervisor).
        // Each ends at the signal; one held by a peer past that is
        // aborted, so the pipeline still drains and saves.
        join_or_abort(std::mem::take(&mut self.sources), "source").await;
        // Their handles on the store go with them (see the seal below).
        // Each watches the stop signal and ends by itself (the monitor
        // raising the gaps still pending).
        join_or_abort(std::mem::take(&mut self.helpers), "helper task").await;
        // 2. The pipeline drains what was received and saves the state.
        let unasked = early.is_some();
        let result = match early {
            Some(result) => result,
            None => {
                tracing::info!("draining the pipeline and saving state");
                (&mut self.done).await
            }
        };
        let stats = match result {
            Ok(Ok(stats)) => stats,
            // Steps 3 and 4 as at a clean stop: the sinks' reports were
            // discarded on a store failure (no "alerts left in the outbox"
            // line), and a panic of the pipeline thread returned with the
            // sinks and the status server still running.
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the pipeline stopped");
                stop_outputs(self.delivery, self.server, self.grace).await;
                return Err(e.into());
            }
            Err(_) => {
                tracing::error!("the pipeline thread panicked");
                stop_outputs(self.delivery, self.server, self.grace).await;
                return Err(DaemonError::Thread("the pipeline thread panicked".into()));
            }
        };
        let supervisor = self.supervisor.clone();
        self.finish(&stats).await;
        // A panic, even one during the shutdown, makes the exit a failure.
        if let Some(failure) = supervisor.failure() {
            return Err(DaemonError::TaskPanicked(failure));
        }
        if unasked {
            tracing::error!("every source stopped without being asked to");
            return Err(DaemonError::SourcesEnded);
        }
        Ok(stats)
    }

    /// Steps 3 to 5: the sinks, the status server, the store compacted and sealed.
    async fn finish(self, stats: &Stats) {
        // 3. and 4.
        stop_outputs(self.delivery, self.server, self.grace).await;
        // 5. Every handle on the store is closed now (the telemetry's,
        // through the sinks' probe, too).
        self.telemetry.clear_sinks();
        drop(self.outbox);
        // Copying and sealing read and write files, and may wait for sled's
        // lock: off the async threads.
        let dir = self.state_dir.clone();
        match tokio::task::spawn_blocking(move || crate::state::close(&dir)).await {
            Ok(closed) => closed.log(),
            Err(e) => tracing::warn!(error = %e, "closing the state failed"),
        }
        tracing::info!(
            frames = stats.frames,
            posts = stats.posts,
            reports = stats.reports,
            alerts = stats.alerts,
            duplicates = stats.duplicates,
            malformed = stats.malformed,
            "stopped; state saved"
        );
    }
}

/// Steps 3 and 4 of a stop, at a clean one and a failed one alike: the
/// sinks get the grace period to deliver what is left (the rest stays in
/// the outbox for the next start, each sink's count logged), then the
/// status server stops: it may hold the outbox for its API.
async fn stop_outputs(delivery: Delivery, server: Option<crate::http::Server>, grace: Duration) {
    let (drained, reports) = delivery.stop(grace).await;
    log_sinks(&reports, drained);
    if let Some(server) = server {
        server.stop().await;
    }
}

/// How long the tasks of one step of the shutdown have, together, to end
/// by themselves once signalled.
const STOP_WITHIN: Duration = Duration::from_secs(2);

/// Waits for `tasks` to end, aborting those still running after
/// [`STOP_WITHIN`]: one held by a peer (a server that stopped reading,
/// a store call) must not hold the steps after it, the pipeline's drain
/// and save among them.
async fn join_or_abort(tasks: Vec<tokio::task::JoinHandle<()>>, what: &str) {
    let deadline = tokio::time::Instant::now() + STOP_WITHIN;
    for mut task in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            tracing::warn!("a {what} did not stop within {STOP_WITHIN:?} of the signal; aborted");
            task.abort();
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod nostr_tests;
#[cfg(test)]
mod tests;
