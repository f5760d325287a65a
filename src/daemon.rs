//! The daemon: live sources in, alerts out, until a signal.
//!
//! What runs:
//! - one task per live connection ([`crate::source::ws::run`]), sending
//!   data frames over a bounded channel;
//! - the pipeline on its own thread: decode, count, detect, save state
//!   (the same [`Pipeline`] the replay command uses);
//! - the health monitor: `source:NAME` alerts when a source is silent or
//!   lagging;
//! - the sink task: alert lines to a file or stdout, and webhooks;
//! - a status line in the log every `status_secs`;
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
//! **Shutdown order** (on SIGINT or SIGTERM), written down once:
//! 1. systemd is told `STOPPING=1`; the sources stop reading and close
//!    their sockets;
//! 2. the pipeline drains the frames already received, then saves the state,
//!    the cursors and the open buckets, and flushes the store (from here
//!    `/readyz` answers 503);
//! 3. the sinks write the last alerts; webhook deliveries get
//!    `shutdown_grace_secs`;
//! 4. the status server stops last, so the drain can be watched; requests
//!    in flight get 2 s;
//! 5. the process exits 0. A second signal exits at once (status 130).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use crate::alert::Alert;
use crate::alert::deliver::{Delivery, DeliveryError, SinkReport};
use crate::alert::outbox::{OpenSource, Outbox};
use crate::config::{Config, SourceKind, sink_specs};
use crate::detect::TransitionKind;
use crate::http::{HttpError, HttpSettings};
use crate::matcher::Matcher;
use crate::pipeline::Arrival;
use crate::pipeline::{Pipeline, PipelineConfig, PipelineError, Stats};
use crate::source::Wire;
use crate::source::health::{
    Condition, HealthRule, SourceHealth, assess, back_detail, proven_healthy, wall_now,
};
use crate::source::jetstream::{JetstreamOptions, JetstreamProtocol};
use crate::source::mastodon::{self, MastodonProtocol};
use crate::source::nostr::NostrProtocol;
use crate::source::ws::{self, Inbound, WsSettings};
use crate::telemetry::{Mode, Telemetry};
use crate::window::store::{SledStore, StoreError};

/// Frames in flight between the sources and the pipeline.
const CHANNEL_FRAMES: usize = 4096;

/// Longest the pipeline may spend on one frame (in practice: a write to
/// the store) before the store is taken to be stuck (a full or vanished
/// disk: sled can block forever in a flush) and the daemon exits 1.
const STORE_STALL: Duration = Duration::from_secs(15);
/// Longest a shutdown may take beyond the sinks' grace before the daemon
/// exits 1 anyway.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(20);

/// Watches the one thing no task can interrupt: a blocking store call.
/// Runs on its own thread, so it works even when every runtime worker is
/// blocked in the store too.
#[derive(Default)]
struct Stall {
    /// Wall-clock ms when the pipeline began the current frame; 0 when idle.
    busy_since: std::sync::atomic::AtomicU64,
    /// Wall-clock ms when the shutdown began; 0 before.
    stopping_since: std::sync::atomic::AtomicU64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Stall {
    fn watch(self: Arc<Self>, grace: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let spawned = std::thread::Builder::new()
            .name("store-watchdog".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(250));
                    let now = now_ms();
                    let busy = self.busy_since.load(Relaxed);
                    if busy != 0 && now.saturating_sub(busy) > STORE_STALL.as_millis() as u64 {
                        tracing::error!(
                            secs = STORE_STALL.as_secs(),
                            "the state store has not answered for {} s (disk full? read-only? vanished?): exiting 1; \
                             the state holds everything up to the last completed batch",
                            STORE_STALL.as_secs()
                        );
                        eprintln!("error: the state store is stuck (disk full?); exiting");
                        std::process::exit(1);
                    }
                    let stopping = self.stopping_since.load(Relaxed);
                    let limit = (grace + SHUTDOWN_LIMIT).as_millis() as u64;
                    if stopping != 0 && now.saturating_sub(stopping) > limit {
                        tracing::error!("the shutdown did not finish in time (the store is stuck?): exiting 1");
                        eprintln!("error: the shutdown is stuck; exiting");
                        std::process::exit(1);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the store watchdog");
        }
    }
}

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
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// One live connection (a Nostr source with three relays is three).
struct Live {
    name: String,
    kind: SourceKind,
    hosts: Vec<String>,
    settings: WsSettings,
    token: Option<String>,
    stream: String,
    /// Mastodon: the instance's host, to make local account names unique.
    instance: String,
    /// Jetstream: the wire and compression.
    jetstream: JetstreamOptions,
}

fn live_sources(config: &Config) -> Vec<Live> {
    let mut out = Vec::new();
    for source in &config.sources {
        // host[:port]: names each relay, and each Mastodon instance's accounts.
        let host_of = |url: &str| {
            reqwest::Url::parse(url)
                .ok()
                .and_then(|u| {
                    let host = u.host_str()?.to_owned();
                    Some(match u.port() {
                        Some(port) => format!("{host}:{port}"),
                        None => host,
                    })
                })
                .unwrap_or_else(|| url.to_owned())
        };
        let base = |name: String, hosts: Vec<String>| Live {
            instance: hosts.first().map(|h| host_of(h)).unwrap_or_default(),
            name,
            kind: source.kind,
            hosts,
            settings: source.connection.settings(),
            token: source.token.clone(),
            stream: source.stream.clone(),
            jetstream: JetstreamOptions {
                wire: source.wire(),
                compress: source.compressed(),
                fetch_timeout: source.connection.settings().connect_timeout,
                ..JetstreamOptions::default()
            },
        };
        match source.kind {
            SourceKind::Jetstream | SourceKind::Mastodon => {
                out.push(base(source.name.clone(), source.urls.clone()))
            }
            SourceKind::Nostr if source.urls.len() == 1 => {
                out.push(base(source.name.clone(), source.urls.clone()))
            }
            SourceKind::Nostr => {
                for url in &source.urls {
                    out.push(base(
                        format!("{}:{}", source.name, host_of(url)),
                        vec![url.clone()],
                    ));
                }
            }
        }
    }
    out
}

/// What the daemon needs besides its configuration.
pub struct DaemonOptions {
    pub config: Config,
    pub matcher: Matcher,
    pub state_dir: PathBuf,
    /// The status server; `None` with `--no-http`.
    pub http: Option<HttpSettings>,
}

/// Runs until `stop` resolves, then shuts down in the documented order.
pub async fn run(
    options: DaemonOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Stats, DaemonError> {
    let DaemonOptions {
        config,
        matcher,
        state_dir,
        http,
    } = options;
    std::fs::create_dir_all(&state_dir).map_err(|e| StoreError::Open {
        path: state_dir.clone(),
        source: sled::Error::Io(e),
    })?;
    let store = SledStore::open(&state_dir)?;
    let pipeline_config = PipelineConfig {
        window: config.window,
        detector: config.detector.clone(),
        ..PipelineConfig::new()
    };
    let outbox = store.outbox();
    let mut pipeline = Pipeline::open(Arc::new(matcher), pipeline_config, store)?;
    let telemetry = Telemetry::new(Mode::Daemon, Some(state_dir.clone()));
    pipeline.set_telemetry(Arc::clone(&telemetry));
    let live = live_sources(&config);
    let health: Vec<Arc<SourceHealth>> = live
        .iter()
        .map(|l| Arc::new(SourceHealth::new(&l.name, pipeline.cursor(&l.name))))
        .collect();
    telemetry.set_sources(health.clone());
    let seq_cursors: Vec<_> = live.iter().map(|l| pipeline.seq_cursor(&l.name)).collect();
    for ((l, h), seq) in live.iter().zip(&health).zip(&seq_cursors) {
        if let Some(cursor) = h.processed() {
            let seq = seq.as_ref().map(|s| format!("seq {} on {}", s.seq, s.host));
            tracing::info!(source = %l.name, cursor = %precise_time(cursor), seq = seq.as_deref().unwrap_or("-"), "resuming from the saved cursor");
        }
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (frame_tx, frame_rx) = mpsc::channel::<Inbound>(CHANNEL_FRAMES);
    // The sinks start first and stop last; they read the outbox.
    let delivery = Delivery::start(sink_specs(&config), outbox.clone())?;
    let notifier = delivery.notifier();
    telemetry.set_sinks(delivery.probe());
    telemetry.set_store_open(true);
    let grace = Duration::from_secs_f64(config.daemon.shutdown_grace_secs.max(0.0));
    let server = match &http {
        Some(settings) => match crate::http::Server::start(
            settings,
            Arc::clone(&telemetry),
            Some(Arc::clone(&notifier)),
            Some(&state_dir),
        )
        .await
        {
            Ok(server) => Some(server),
            Err(e) => {
                let _ = delivery.stop(Duration::ZERO).await;
                return Err(e.into());
            }
        },
        None => None,
    };
    let pipeline_alive = Arc::new(AtomicBool::new(true));
    let stall = Arc::new(Stall::default());
    Arc::clone(&stall).watch(grace);

    // The pipeline thread ends when every source has dropped its sender,
    // and reports how it ended on `done`.
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    {
        let names: Vec<(String, SourceKind, String)> = live
            .iter()
            .map(|l| (l.name.clone(), l.kind, l.instance.clone()))
            .collect();
        let health = health.clone();
        let notifier = Arc::clone(&notifier);
        let telemetry = Arc::clone(&telemetry);
        let alive = Arc::clone(&pipeline_alive);
        let stall = Arc::clone(&stall);
        std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || {
                let result = pipeline_loop(
                    pipeline, frame_rx, &names, &health, &notifier, &telemetry, &stall,
                );
                alive.store(false, Ordering::Relaxed);
                telemetry.set_store_open(false);
                let _ = done_tx.send(result);
            })
            .map_err(|e| DaemonError::Thread(e.to_string()))?;
    }

    let tls = crate::tls::client_config()?;
    let mut source_tasks = Vec::new();
    for (index, (l, h)) in live.into_iter().zip(&health).enumerate() {
        let (tx, shutdown, h, tls) = (
            frame_tx.clone(),
            shutdown_rx.clone(),
            Arc::clone(h),
            Arc::clone(&tls),
        );
        let task = match l.kind {
            SourceKind::Jetstream => {
                let protocol = JetstreamProtocol::new(JetstreamOptions {
                    state_dir: Some(state_dir.clone()),
                    resume: seq_cursors[index].clone(),
                    ..l.jetstream
                });
                tokio::spawn(ws::run(
                    index, l.hosts, l.settings, protocol, tls, tx, h, shutdown,
                ))
            }
            SourceKind::Mastodon => {
                let protocol = MastodonProtocol {
                    stream: l.stream,
                    token: l.token,
                };
                // An instance URL (https://) is asked for its streaming host first.
                let mut shutdown = shutdown;
                tokio::spawn(async move {
                    let Some(hosts) =
                        mastodon::resolve_hosts(l.hosts, &tls, &l.settings, &l.name, &mut shutdown)
                            .await
                    else {
                        return;
                    };
                    ws::run(index, hosts, l.settings, protocol, tls, tx, h, shutdown).await
                })
            }
            SourceKind::Nostr => tokio::spawn(ws::run(
                index,
                l.hosts,
                l.settings,
                NostrProtocol,
                tls,
                tx,
                h,
                shutdown,
            )),
        };
        source_tasks.push(task);
    }
    drop(frame_tx);

    let monitor = tokio::spawn(health_monitor(
        health.clone(),
        config.health.rule(),
        outbox.clone(),
        Arc::clone(&notifier),
        Arc::clone(&telemetry),
        shutdown_rx.clone(),
    ));
    let sink_names: Vec<String> = sink_specs(&config).into_iter().map(|s| s.name).collect();
    let status = tokio::spawn(status_log(
        health.clone(),
        Arc::clone(&telemetry),
        (outbox.clone(), sink_names),
        Duration::from_secs_f64(config.daemon.status_secs.max(0.1)),
        shutdown_rx.clone(),
    ));
    let watchdog = systemd_ready(Arc::clone(&pipeline_alive), shutdown_rx.clone());

    // Run until told to stop, or until the pipeline stops on its own (only
    // a failure does that: the store cannot be written).
    let early = tokio::select! {
        _ = stop => {
            tracing::info!("shutting down: stopping the sources");
            None
        }
        result = &mut done_rx => Some(result),
    };
    // 1. Stop the sources.
    systemd_notify(&[sd_notify::NotifyState::Stopping]);
    stall
        .stopping_since
        .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
    let _ = shutdown_tx.send(true);
    for task in source_tasks {
        let _ = task.await;
    }
    monitor.abort();
    status.abort();
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    // Their handles on the store go with them (see the seal below).
    let _ = monitor.await;
    let _ = status.await;
    // 2. The pipeline drains what was received and saves the state.
    let result = match early {
        Some(result) => result,
        None => {
            tracing::info!("draining the pipeline and saving state");
            done_rx.await
        }
    };
    let stats = match result {
        Ok(Ok(stats)) => stats,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "the pipeline stopped");
            let _ = delivery.stop(grace).await;
            if let Some(server) = server {
                server.stop().await;
            }
            return Err(e.into());
        }
        Err(_) => return Err(DaemonError::Thread("the pipeline thread panicked".into())),
    };
    // 3. The sinks get the grace period to deliver what is left; the rest
    // stays in the outbox for the next start.
    let (drained, reports) = delivery.stop(grace).await;
    log_sinks(&reports, drained);
    // 4. The status server goes next: it may hold the outbox for its API.
    if let Some(server) = server {
        server.stop().await;
    }
    // Every handle on the store is closed now: seal its files, so damage
    // at rest is found at the next start.
    drop(outbox);
    match crate::window::store::seal_closed(&state_dir) {
        Ok(true) => {}
        Ok(false) => tracing::warn!("the store was still in use at exit; its files are not sealed"),
        Err(e) => tracing::warn!(error = %e, "cannot seal the state"),
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
    Ok(stats)
}

/// The wire format a configured source speaks.
pub fn wire(kind: SourceKind) -> Wire {
    match kind {
        SourceKind::Jetstream => Wire::Jetstream,
        SourceKind::Mastodon => Wire::Mastodon,
        SourceKind::Nostr => Wire::Nostr,
    }
}

fn pipeline_loop(
    mut pipeline: Pipeline<SledStore>,
    mut frames: mpsc::Receiver<Inbound>,
    sources: &[(String, SourceKind, String)],
    health: &[Arc<SourceHealth>],
    notifier: &Notify,
    telemetry: &Telemetry,
    stall: &Stall,
) -> Result<Stats, PipelineError> {
    use std::sync::atomic::Ordering::Relaxed;
    let mut frame_no = vec![0u64; sources.len()];
    let mut malformed_seen = 0u64;
    let publish = |pipeline: &Pipeline<SledStore>| telemetry.publish_stats(pipeline.stats());
    while let Some(inbound) = frames.blocking_recv() {
        let Some((name, kind, instance)) = sources.get(inbound.source) else {
            continue;
        };
        frame_no[inbound.source] += 1;
        let n = frame_no[inbound.source];
        let bytes = inbound.frame.as_bytes();
        let malformed_before = pipeline.stats().malformed;
        let arrival = Some(inbound.arrival_us);
        stall.busy_since.store(now_ms(), Relaxed);
        let produced = match kind {
            SourceKind::Jetstream => {
                pipeline.process_jetstream_at(name, Some(&inbound.host), n, bytes, arrival)?
            }
            SourceKind::Mastodon | SourceKind::Nostr => {
                let (decoded, own_clock) = wire(*kind).decode(bytes, instance, arrival);
                let arrival = Arrival {
                    at_us: arrival,
                    own_clock,
                };
                pipeline.process_arrived(name, n, decoded, arrival)?
            }
        };
        stall.busy_since.store(0, Relaxed);
        let stats = pipeline.stats();
        if stats.malformed == malformed_before {
            // It decoded: data, for the watchdog and the silence rule.
            health[inbound.source].count_data();
        }
        if stats.malformed > malformed_seen {
            malformed_seen = stats.malformed;
            // The first few in full, then one line per thousand.
            if let Some((at, why)) = stats
                .malformed_examples
                .last()
                .filter(|_| malformed_seen <= 10)
            {
                tracing::warn!(source = %name, frame = %at, reason = %why, "malformed frame skipped");
            } else if malformed_seen.is_multiple_of(1000) {
                tracing::warn!(source = %name, malformed = malformed_seen, "malformed frames keep arriving");
            }
        }
        if let Some(cursor) = pipeline.cursor(name) {
            health[inbound.source].set_processed(cursor);
        }
        // The alerts are in the outbox already, saved with the counts.
        if !produced.is_empty() {
            notifier.notify_waiters();
        }
        // When idle, and every so often in a burst, for the status API.
        if frames.is_empty() || n.is_multiple_of(1024) {
            publish(&pipeline);
        }
    }
    stall.busy_since.store(now_ms(), Relaxed);
    let finished = pipeline.finish()?;
    stall.busy_since.store(0, Relaxed);
    if !finished.is_empty() {
        notifier.notify_waiters();
    }
    publish(&pipeline);
    Ok(pipeline.stats().clone())
}

/// Raises and resolves `source:NAME` alerts from the sources' counters.
/// Open incidents are saved in the store: after a restart, one is
/// resolved once its source proves healthy (frames in this run), or at
/// once when the source is no longer configured.
async fn health_monitor(
    health: Vec<Arc<SourceHealth>>,
    rule: HealthRule,
    outbox: Outbox,
    notifier: Arc<Notify>,
    telemetry: Arc<Telemetry>,
    mut shutdown: watch::Receiver<bool>,
) {
    let started = wall_now();
    let raise = |alert: Alert| match outbox.append(&alert) {
        Ok(_) => {
            telemetry.record_alert(&alert);
            notifier.notify_waiters()
        }
        Err(e) => {
            tracing::error!(error = %e, alert = %alert.id, "cannot store a source-health alert")
        }
    };
    // (start, left open by an earlier run) per source.
    let mut open: Vec<Option<(i64, bool)>> = vec![None; health.len()];
    match outbox.open_sources() {
        Ok(saved) => {
            for incident in saved {
                match health.iter().position(|h| h.name == incident.source) {
                    Some(i) => open[i] = Some((incident.started_at, true)),
                    None => {
                        raise(Alert::source_health(
                            &incident.source,
                            TransitionKind::Resolved,
                            started,
                            incident.started_at,
                            format!("{} is no longer configured", incident.source),
                        ));
                        if let Err(e) = outbox.clear_open_source(&incident.source) {
                            tracing::warn!(error = %e, "cannot clear a source incident");
                        }
                    }
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot read the open source incidents"),
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = wall_now();
        // A gap is a loss that has happened, not a condition that lasts:
        // it fires (saying what was lost) and resolves at once.
        for source in &health {
            for (i, gap) in source.take_gaps().into_iter().enumerate() {
                let at = now + 1 + i as i64;
                for state in [TransitionKind::Firing, TransitionKind::Resolved] {
                    raise(Alert::source_health(
                        &source.name,
                        state,
                        at,
                        at,
                        format!("gap: {gap}"),
                    ));
                }
            }
        }
        for (source, incident) in health.iter().zip(open.iter_mut()) {
            let snapshot = source.snapshot();
            let condition = assess(&snapshot, now, started, &rule);
            match (&condition, *incident) {
                (Condition::Healthy, Some((since, earlier))) => {
                    if earlier && !proven_healthy(&snapshot, now, started, &rule) {
                        continue;
                    }
                    tracing::info!(source = %source.name, "source healthy again");
                    raise(Alert::source_health(
                        &source.name,
                        TransitionKind::Resolved,
                        now,
                        since,
                        back_detail(&source.name, &snapshot, now),
                    ));
                    if let Err(e) = outbox.clear_open_source(&source.name) {
                        tracing::warn!(error = %e, "cannot clear a source incident");
                    }
                    *incident = None;
                }
                (Condition::Silent { .. } | Condition::Lagging { .. }, None) => {
                    let detail = condition.detail(&source.name).unwrap_or_default();
                    tracing::warn!(source = %source.name, %detail, "source unhealthy");
                    let saved = OpenSource {
                        source: source.name.clone(),
                        started_at: now,
                        detail: detail.clone(),
                    };
                    if let Err(e) = outbox.set_open_source(&saved) {
                        tracing::error!(error = %e, "cannot save a source incident");
                    }
                    raise(Alert::source_health(
                        &source.name,
                        TransitionKind::Firing,
                        now,
                        now,
                        detail,
                    ));
                    *incident = Some((now, false));
                }
                _ => {}
            }
        }
    }
}

async fn status_log(
    health: Vec<Arc<SourceHealth>>,
    telemetry: Arc<Telemetry>,
    (outbox, sinks): (Outbox, Vec<String>),
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let snapshot = telemetry.stats();
        let now = wall_now();
        tracing::info!(
            frames = snapshot.frames,
            posts = snapshot.posts,
            reports = snapshot.reports,
            alerts = snapshot.alerts,
            duplicates = snapshot.duplicates,
            malformed = snapshot.malformed,
            late = snapshot.late_posts,
            stale = snapshot.stale_posts,
            future = snapshot.future,
            event_time = %telemetry.board().newest().map_or_else(|| "-".to_owned(), precise_time),
            uptime = %human_duration(now - telemetry.started),
            outbox = %sinks
                .iter()
                .map(|sink| format!("{sink}={}", outbox.pending_for(sink).unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(" "),
            "status"
        );
        for h in &health {
            let s = h.snapshot();
            let times = snapshot.by_source.get(&h.name).cloned().unwrap_or_default();
            // The watermark never runs ahead of the arrival clock by more
            // than max_future_secs; lag reads 0 then, never negative.
            tracing::info!(
                source = %h.name,
                connected = s.connected,
                frames = s.frames,
                data = s.data,
                processed = %s.processed.map_or_else(|| "-".to_owned(), precise_time),
                newest = %times.newest.map_or_else(|| "-".to_owned(), precise_time),
                late = times.late,
                stale = times.stale,
                future = times.future,
                lag = %s.processed.map_or_else(|| "-".to_owned(), |p| human_duration(now - p)),
                reconnects = s.reconnects,
                oversized = s.oversized,
                binary = s.binary,
                rate_dropped = s.rate_dropped,
                "source status"
            );
        }
    }
}

/// RFC 3339 to the microsecond: exact, so a cursor can be read back.
pub fn precise_time(time_us: crate::Micros) -> String {
    chrono::DateTime::from_timestamp_micros(time_us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_else(|| time_us.to_string())
}

/// A duration in human units, to the second ("2m 5s"; "0s" when negative).
pub fn human_duration(micros: crate::Micros) -> String {
    let secs = (micros / crate::MICROS_PER_SEC).max(0) as u64;
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// Tells systemd the daemon is ready, and keeps its watchdog fed while the
/// pipeline thread is alive. Does nothing outside systemd.
fn systemd_ready(
    pipeline_alive: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    systemd_notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("watching"),
    ]);
    let usec = watchdog_usec()?;
    let every = Duration::from_micros(usec / 2);
    tracing::info!(every = %humantime::format_duration(every), "feeding the systemd watchdog");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            if !pipeline_alive.load(Ordering::Relaxed) {
                tracing::error!("the pipeline thread has stopped; no longer feeding the watchdog");
                return;
            }
            systemd_notify(&[sd_notify::NotifyState::Watchdog]);
        }
    }))
}

/// The watchdog interval systemd asks for: `WATCHDOG_USEC`, unless
/// `WATCHDOG_PID` names another process. (As `sd_watchdog_enabled(3)`:
/// an unset `WATCHDOG_PID` means this process; the `sd-notify` crate
/// insists on it being set.)
fn watchdog_usec() -> Option<u64> {
    std::env::var_os("NOTIFY_SOCKET")?;
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    let for_us = std::env::var("WATCHDOG_PID").ok().is_none_or(|pid| {
        pid.parse::<u32>()
            .is_ok_and(|pid| pid == std::process::id())
    });
    (usec > 0 && for_us).then_some(usec)
}

fn systemd_notify(states: &[sd_notify::NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

fn log_sinks(reports: &[SinkReport], drained: bool) {
    for report in reports {
        if report.pending > 0 {
            tracing::warn!(sink = %report.name, delivered = report.delivered, retries = report.retries, dead = report.dead, undelivered = report.pending, "alerts left in the outbox for the next start");
        } else {
            tracing::info!(sink = %report.name, delivered = report.delivered, retries = report.retries, dead = report.dead, "sink done");
        }
    }
    if !drained {
        tracing::warn!("the shutdown grace period ended before every alert was delivered");
    }
}
