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
//! - a status line in the log every `status_secs`.
//!
//! **Shutdown order** (on SIGINT or SIGTERM), written down once:
//! 1. the sources stop reading and close their sockets;
//! 2. the pipeline drains the frames already received, then saves the state,
//!    the cursors and the open buckets, and flushes the store;
//! 3. the sinks write the last alerts; webhook deliveries get
//!    `shutdown_grace_secs`;
//! 4. the process exits 0. A second signal exits at once (status 130).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use crate::alert::Alert;
use crate::alert::deliver::{Delivery, DeliveryError, SinkReport};
use crate::alert::outbox::{OpenSource, Outbox};
use crate::config::{Config, SourceKind, sink_specs};
use crate::detect::TransitionKind;
use crate::matcher::Matcher;
use crate::pipeline::{Pipeline, PipelineConfig, PipelineError, Stats};
use crate::source::health::{
    Condition, HealthRule, SourceHealth, assess, back_detail, proven_healthy, wall_now,
};
use crate::source::jetstream::{JetstreamOptions, JetstreamProtocol};
use crate::source::mastodon::{self, MastodonProtocol};
use crate::source::nostr::{self, NostrProtocol};
use crate::source::ws::{self, Inbound, WsSettings};
use crate::window::store::{SledStore, StoreError};

/// Frames in flight between the sources and the pipeline.
const CHANNEL_FRAMES: usize = 4096;

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
    let pipeline = Pipeline::open(Arc::new(matcher), pipeline_config, store)?;
    let live = live_sources(&config);
    let health: Vec<Arc<SourceHealth>> = live
        .iter()
        .map(|l| Arc::new(SourceHealth::new(&l.name, pipeline.cursor(&l.name))))
        .collect();
    let seq_cursors: Vec<_> = live.iter().map(|l| pipeline.seq_cursor(&l.name)).collect();
    for ((l, h), seq) in live.iter().zip(&health).zip(&seq_cursors) {
        if let Some(cursor) = h.processed() {
            let seq = seq.as_ref().map(|s| format!("seq {} on {}", s.seq, s.host));
            tracing::info!(source = %l.name, cursor, seq = seq.as_deref().unwrap_or("-"), "resuming from the saved cursor");
        }
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (frame_tx, frame_rx) = mpsc::channel::<Inbound>(CHANNEL_FRAMES);
    // The sinks start first and stop last; they read the outbox.
    let delivery = Delivery::start(sink_specs(&config), outbox.clone())?;
    let notifier = delivery.notifier();
    let grace = Duration::from_secs_f64(config.daemon.shutdown_grace_secs.max(0.0));
    let shared_stats = Arc::new(Mutex::new(Stats::default()));

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
        let shared_stats = Arc::clone(&shared_stats);
        std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || {
                let result = pipeline_loop(
                    pipeline,
                    frame_rx,
                    &names,
                    &health,
                    &notifier,
                    &shared_stats,
                );
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
                tokio::spawn(ws::run(
                    index, l.hosts, l.settings, protocol, tls, tx, h, shutdown,
                ))
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
        shutdown_rx.clone(),
    ));
    let sink_names: Vec<String> = sink_specs(&config).into_iter().map(|s| s.name).collect();
    let status = tokio::spawn(status_log(
        health.clone(),
        Arc::clone(&shared_stats),
        (outbox.clone(), sink_names),
        Duration::from_secs_f64(config.daemon.status_secs.max(0.1)),
        shutdown_rx.clone(),
    ));

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
    let _ = shutdown_tx.send(true);
    for task in source_tasks {
        let _ = task.await;
    }
    monitor.abort();
    status.abort();
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
            return Err(e.into());
        }
        Err(_) => return Err(DaemonError::Thread("the pipeline thread panicked".into())),
    };
    // 3. The sinks get the grace period to deliver what is left; the rest
    // stays in the outbox for the next start.
    let (drained, reports) = delivery.stop(grace).await;
    log_sinks(&reports, drained);
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

fn pipeline_loop(
    mut pipeline: Pipeline<SledStore>,
    mut frames: mpsc::Receiver<Inbound>,
    sources: &[(String, SourceKind, String)],
    health: &[Arc<SourceHealth>],
    notifier: &Notify,
    shared: &Mutex<Stats>,
) -> Result<Stats, PipelineError> {
    let mut frame_no = vec![0u64; sources.len()];
    let mut malformed_seen = 0u64;
    let publish = |pipeline: &Pipeline<SledStore>| {
        if let Ok(mut stats) = shared.lock() {
            stats.clone_from(pipeline.stats());
        }
    };
    while let Some(inbound) = frames.blocking_recv() {
        let Some((name, kind, instance)) = sources.get(inbound.source) else {
            continue;
        };
        frame_no[inbound.source] += 1;
        let n = frame_no[inbound.source];
        let bytes = inbound.frame.as_bytes();
        let produced = match kind {
            SourceKind::Jetstream => {
                pipeline.process_jetstream(name, Some(&inbound.host), n, bytes)?
            }
            SourceKind::Mastodon => {
                pipeline.process_decoded(name, n, mastodon::decode(bytes, instance))?
            }
            SourceKind::Nostr => {
                pipeline.process_decoded(name, n, nostr::decode(bytes, wall_now()))?
            }
        };
        let stats = pipeline.stats();
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
        if frames.is_empty() {
            publish(&pipeline);
        }
    }
    if !pipeline.finish()?.is_empty() {
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
    mut shutdown: watch::Receiver<bool>,
) {
    let started = wall_now();
    let raise = |alert: Alert| match outbox.append(&alert) {
        Ok(_) => notifier.notify_waiters(),
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
    stats: Arc<Mutex<Stats>>,
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
        let snapshot = stats.lock().map(|s| s.clone()).unwrap_or_default();
        let now = wall_now();
        let sources: Vec<String> = health
            .iter()
            .map(|h| {
                let s = h.snapshot();
                let lag = s
                    .processed
                    .map_or_else(|| "-".to_owned(), |p| format!("{}s", (now - p) / 1_000_000));
                format!(
                    "{}:{} frames={} processed={} lag={} reconnects={} oversized={} binary={} rate_dropped={}",
                    h.name,
                    if s.connected { "up" } else { "down" },
                    s.frames,
                    s.processed
                        .map_or_else(|| "-".to_owned(), |p| p.to_string()),
                    lag,
                    s.reconnects,
                    s.oversized,
                    s.binary,
                    s.rate_dropped
                )
            })
            .collect();
        tracing::info!(
            frames = snapshot.frames,
            posts = snapshot.posts,
            reports = snapshot.reports,
            alerts = snapshot.alerts,
            duplicates = snapshot.duplicates,
            malformed = snapshot.malformed,
            sources = %sources.join("; "),
            outbox = %sinks
                .iter()
                .map(|sink| format!("{sink}={}", outbox.pending_for(sink).unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(" "),
            "status"
        );
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
