//! The health monitor's tests, on a paused clock.

use super::*;
use crate::alert::rfc3339;
use crate::source::health::MAX_PENDING_GAPS;
use crate::state::SledStore;
use crate::telemetry::Mode;
use crate::wall::TokioClock;

const T0: Micros = 1_800_000_000_000_000;
const SEC: Micros = crate::MICROS_PER_SEC;

fn alerts(outbox: &Outbox) -> Vec<Alert> {
    let (mut seq, mut out) = (None, Vec::new());
    while let Some((next, alert)) = outbox.next_after(seq).expect("outbox reads") {
        seq = Some(next);
        out.push(alert);
    }
    out
}

/// A monitor on a paused clock starting at `T0`, over `sources`.
fn monitor<S: HealthStore + Clone>(
    outbox: &S,
    sources: &[&str],
) -> (Monitor<S>, Vec<Arc<SourceHealth>>) {
    monitor_on(outbox, sources, Arc::new(TokioClock::starting_at(T0)))
}

/// [`monitor`] on `clock`.
fn monitor_on<S: HealthStore + Clone>(
    outbox: &S,
    sources: &[&str],
    clock: SharedClock,
) -> (Monitor<S>, Vec<Arc<SourceHealth>>) {
    let health: Vec<_> = sources
        .iter()
        .map(|name| Arc::new(SourceHealth::with_clock(name, None, Arc::clone(&clock))))
        .collect();
    let monitor = Monitor {
        health: health.clone(),
        rule: HealthRule {
            silence_secs: 60,
            lag_secs: 120,
            grace_secs: 60,
            calm_secs: None,
        },
        outbox: outbox.clone(),
        notifier: Arc::new(Notify::new()),
        telemetry: Telemetry::new(Mode::Daemon, None),
        clock,
    };
    (monitor, health)
}

/// Lets paused time run to `secs` after `start` (the monitor's ticks
/// in between all run first).
async fn until(start: tokio::time::Instant, secs: f64) {
    tokio::time::sleep_until(start + Duration::from_secs_f64(secs)).await;
}

/// A monitor running over one source, on a fresh store, from `start`.
struct Watched {
    start: tokio::time::Instant,
    outbox: Outbox,
    health: Arc<SourceHealth>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    _store: (SledStore, tempfile::TempDir),
}

/// Starts watching `source`; `prepare` runs on its health first.
fn watch_source(source: &str, prepare: impl FnOnce(&SourceHealth)) -> Watched {
    watch_through(source, prepare, |outbox| outbox)
}

/// [`watch_source`], the monitor writing through `store(outbox)`.
fn watch_through<S: HealthStore + Clone>(
    source: &str,
    prepare: impl FnOnce(&SourceHealth),
    store: impl FnOnce(Outbox) -> S,
) -> Watched {
    let start = tokio::time::Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = SledStore::open(dir.path()).expect("store");
    let outbox = sled.outbox();
    let store_ = store(outbox.clone());
    let (monitor, mut health) = monitor(&store_, &[source]);
    let health = health.remove(0);
    prepare(&health);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(monitor.run(shutdown));
    Watched {
        start,
        outbox,
        health,
        stop,
        task,
        _store: (sled, dir),
    }
}

impl Watched {
    async fn until(&self, secs: f64) {
        until(self.start, secs).await;
    }

    /// Stops the monitor and waits for it.
    async fn stop(self) -> Outbox {
        self.stop.send(true).expect("monitor listens");
        self.task.await.expect("monitor ends");
        self.outbox
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_source_fires_after_the_rule_and_resolves_when_data_returns() {
    let w = watch_source("bluesky", SourceHealth::count_data);
    let outbox = &w.outbox;

    w.until(59.5).await;
    assert!(alerts(outbox).is_empty(), "silent 59 s: nothing yet");
    w.until(60.5).await;
    let fired = alerts(outbox);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].service, "source:bluesky");
    assert_eq!(fired[0].state, TransitionKind::Firing);
    assert_eq!(fired[0].at, rfc3339(T0 + 60 * SEC));
    assert_eq!(
        fired[0].detail.as_deref(),
        Some("no usable frames from bluesky for 60 s")
    );
    assert_eq!(outbox.open_sources().expect("read").len(), 1, "saved");

    w.until(100.5).await;
    assert_eq!(alerts(outbox).len(), 1, "still silent: no repeat");
    // Back, with a frame every 10 s: resolved after a silence rule's
    // worth of health (`calm_secs` unset).
    w.health.count_data();
    for second in (111..=151).step_by(10) {
        w.until(f64::from(second) - 0.4).await;
        w.health.count_data();
    }
    w.until(160.5).await;
    w.health.count_data();
    assert_eq!(alerts(outbox).len(), 1, "healthy for 59 s: not calm yet");
    w.until(161.5).await;
    let all = alerts(outbox);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1].state, TransitionKind::Resolved);
    assert_eq!(all[1].at, rfc3339(T0 + 161 * SEC));
    assert_eq!(all[1].started_at, rfc3339(T0 + 60 * SEC));
    assert!(outbox.open_sources().expect("read").is_empty(), "cleared");

    w.stop().await;
}

/// A silent source's alert says why its last connection failed, as one
/// line of bounded length: it said only "no usable frames from masto
/// for 10 s", and the reason (here the server's own words) was in the log
/// alone.
#[tokio::test(start_paused = true)]
async fn a_silent_sources_alert_says_why_its_last_connection_failed() {
    let w = watch_source("masto", |health| {
        health.set_last_failure(&format!("a\n{}", "x".repeat(10_000)));
        assert_eq!(
            health.last_failure().map(|f| f.chars().count()),
            Some(crate::source::health::MAX_FAILURE_CHARS)
        );
        health.set_last_failure("the server refused with HTTP 401: {\"error\":\"no\r\nway\"}");
    });
    w.until(60.5).await;
    let fired = alerts(&w.outbox);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(
        fired[0].detail.as_deref(),
        Some(
            "no usable frames from masto for 60 s; last connection failure: the server refused with HTTP 401: {\"error\":\"no  way\"}"
        )
    );
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn each_gap_is_an_incident_of_its_own() {
    let w = watch_source("bluesky", |health| {
        health.count_data();
        health.report_gap("cursor too old: 10 events lost".into());
        health.report_gap("cursor too old: 20 events lost".into());
    });
    w.until(1.5).await;
    let raised = alerts(&w.outbox);
    let ids: Vec<(&str, TransitionKind)> =
        raised.iter().map(|a| (a.id.as_str(), a.state)).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(
        ids[0].0, ids[1].0,
        "a gap fires and resolves as one incident"
    );
    assert_eq!(ids[2].0, ids[3].0);
    assert_ne!(ids[0].0, ids[2].0, "two gaps, two incidents");
    assert!(ids[0].0.starts_with("source:bluesky-2027"), "{ids:?}");
    w.stop().await;
}

/// A gap reported just before the stop signal is raised, not lost with
/// the monitor's memory (the next run resumes past it).
#[tokio::test(start_paused = true)]
async fn a_gap_reported_just_before_a_stop_is_raised() {
    let w = watch_source("bluesky", SourceHealth::count_data);
    w.until(0.5).await;
    assert!(alerts(&w.outbox).is_empty());
    for i in 0..MAX_PENDING_GAPS + 3 {
        w.health.report_gap(format!("gap {i}"));
    }
    let outbox = w.stop().await;
    let raised = alerts(&outbox);
    assert_eq!(
        raised.len(),
        2 * (MAX_PENDING_GAPS + 1),
        "each fires and resolves"
    );
    let last = raised.last().and_then(|a| a.detail.as_deref());
    assert_eq!(
        last,
        Some("gap: 3 more gaps were reported in the same second, not listed one by one")
    );
}

/// A quiet source, one frame every 70 s against a 60 s silence rule:
/// one incident for as long as it stays that quiet, not a page every
/// minute (it fired and resolved at each frame).
#[tokio::test(start_paused = true)]
async fn a_source_quieter_than_the_rule_is_one_incident_not_a_page_a_minute() {
    let w = watch_source("quiet", |_| {});
    for frame in 0..10 {
        w.until(0.2 + 70.0 * f64::from(frame)).await;
        w.health.count_data();
    }
    w.until(700.5).await;
    let states: Vec<TransitionKind> = alerts(&w.outbox).iter().map(|a| a.state).collect();
    assert_eq!(states, [TransitionKind::Firing], "{states:?}");
    w.stop().await;
}

/// The outbox, its appends failing while `fails` is above 0 (each
/// failure takes one off), counting every append tried.
#[derive(Clone)]
struct Flaky {
    outbox: Outbox,
    fails: Arc<std::sync::atomic::AtomicU32>,
    tried: Arc<std::sync::atomic::AtomicU32>,
}

impl Flaky {
    fn fail_next(&self, n: u32) {
        self.fails.store(n, Ordering::SeqCst);
    }
}

use std::sync::atomic::Ordering;

impl HealthStore for Flaky {
    fn append(&self, alert: &Alert) -> Result<u64, StoreError> {
        self.tried.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .fails
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(StoreError::Unwritable {
                what: "alert".into(),
                detail: "disk full (test)".into(),
            });
        }
        self.outbox.append(alert)
    }

    fn open_sources(&self) -> Result<Vec<OpenSource>, StoreError> {
        self.outbox.open_sources()
    }

    fn set_open_source(&self, open: &OpenSource) -> Result<(), StoreError> {
        self.outbox.set_open_source(open)
    }

    fn clear_open_source(&self, source: &str) -> Result<(), StoreError> {
        self.outbox.clear_open_source(source)
    }
}

/// A store that refuses appends for a while: the alerts raised meanwhile
/// are stored once each, in order, when it takes them again (they were
/// logged and dropped, while the incident was marked open or closed).
#[tokio::test(start_paused = true)]
async fn alerts_the_store_refused_are_stored_once_in_order_when_it_recovers() {
    let flaky = std::cell::RefCell::new(None);
    let w = watch_through(
        "bluesky",
        |health| {
            health.count_data();
            health.report_gap("gap one".into());
            health.report_gap("gap two".into());
        },
        |outbox| {
            let store = Flaky {
                outbox,
                fails: Arc::new(3.into()),
                tried: Arc::default(),
            };
            *flaky.borrow_mut() = Some(store.clone());
            store
        },
    );
    let flaky = flaky.into_inner().expect("store made");
    // The gaps at the first tick (0 s) and the two retries fail.
    w.until(2.5).await;
    assert!(alerts(&w.outbox).is_empty(), "refused so far");
    w.until(3.5).await;
    let gaps: Vec<(String, TransitionKind, Option<String>)> = alerts(&w.outbox)
        .into_iter()
        .map(|a| (a.id, a.state, a.detail))
        .collect();
    assert_eq!(gaps.len(), 4, "{gaps:?}");
    let (firing, resolved) = (TransitionKind::Firing, TransitionKind::Resolved);
    let states: Vec<_> = gaps.iter().map(|g| g.1).collect();
    assert_eq!(states, [firing, resolved, firing, resolved]);
    let details: Vec<_> = gaps.iter().map(|g| g.2.as_deref()).collect();
    let one = Some("gap: gap one");
    let two = Some("gap: gap two");
    assert_eq!(details, [one, one, two, two]);
    assert_eq!(
        flaky.tried.load(Ordering::SeqCst),
        3 + 4,
        "a tick stops at the first refusal"
    );

    // Silent from 0 s: the firing at 60 s is refused twice.
    w.until(59.5).await;
    flaky.fail_next(2);
    w.until(61.5).await;
    assert_eq!(alerts(&w.outbox).len(), 4, "refused twice so far");
    w.until(62.5).await;
    let all = alerts(&w.outbox);
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(all[4].service, "source:bluesky");
    assert_eq!(all[4].state, TransitionKind::Firing);
    assert_eq!(
        all[4].at,
        rfc3339(T0 + 60 * SEC),
        "raised when it was judged"
    );
    w.until(100.5).await;
    assert_eq!(alerts(&w.outbox).len(), 5, "stored once");
    w.stop().await;
}

/// A paused clock whose wall reading can be set back or forward (NTP, a
/// resumed VM) while its monotonic reading goes on.
#[derive(Debug)]
struct Stepped {
    inner: TokioClock,
    step: std::sync::atomic::AtomicI64,
}

impl crate::wall::Clock for Stepped {
    fn now_us(&self) -> Micros {
        self.inner.now_us() + self.step.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn monotonic_us(&self) -> Micros {
        self.inner.monotonic_us()
    }
}

/// A source delivering every `every` s until `stall_at`, its wall clock
/// stepped by `step` at `step_at`: the `source:` firings, in seconds of
/// monotonic time.
async fn firings_with_a_step(every: f64, stall_at: f64, step_at: f64, step: Micros) -> Vec<f64> {
    let start = tokio::time::Instant::now();
    let clock = Arc::new(Stepped {
        inner: TokioClock::starting_at(T0),
        step: std::sync::atomic::AtomicI64::new(0),
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = SledStore::open(dir.path()).expect("store");
    let outbox: Outbox = sled.outbox();
    let shared: SharedClock = clock.clone();
    let (monitor, health) = monitor_on(&outbox, &["bluesky"], shared);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(monitor.run(shutdown));
    let mut firings = Vec::new();
    let mut t = 0.0;
    while t < 400.0 {
        t += 1.0;
        until(start, t).await;
        if t < stall_at && (t % every) == 0.0 {
            health[0].count_data();
        }
        if t == step_at {
            clock.step.store(step, std::sync::atomic::Ordering::Relaxed);
        }
        let fired = alerts(&outbox)
            .iter()
            .filter(|a| a.state == TransitionKind::Firing)
            .count();
        if fired > firings.len() {
            firings.push(t);
        }
    }
    stop.send(true).expect("monitor listens");
    task.await.expect("monitor ends");
    firings
}

/// The silence rule lasts on the monotonic clock: a wall clock set back
/// an hour hid a stall for that hour (first alert at 3,660 s instead of
/// about 190 s), and one set forward an hour paged at once for a source
/// that delivers every 30 s against a rule of 60.
#[tokio::test(start_paused = true)]
async fn a_stepped_wall_clock_neither_hides_a_stall_nor_pages_for_a_healthy_source() {
    let hour = 3_600 * SEC;
    let back = firings_with_a_step(1.0, 130.0, 120.0, -hour).await;
    assert!(
        back.len() == 1 && (189.0..=192.0).contains(&back[0]),
        "stalled at 130 s, the wall clock set back at 120 s: {back:?}"
    );
    let forward = firings_with_a_step(30.0, f64::INFINITY, 125.0, hour).await;
    assert_eq!(
        forward,
        Vec::<f64>::new(),
        "a healthy source, the clock set forward"
    );
}

/// Each source is judged by its own rule: a quiet relay given
/// `silence_secs = 600` in its `[sources.health]` is not paged at 70 s,
/// while a source on the global rule (60 s) is; the quiet one is paged
/// at its own 600 s.
#[tokio::test(start_paused = true)]
async fn a_quiet_source_with_its_own_silence_is_not_paged_by_the_global_one() {
    let start = tokio::time::Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = SledStore::open(dir.path()).expect("store");
    let outbox = sled.outbox();
    let (mut monitor, _) = monitor(&outbox, &[]);
    let quiet_rule = crate::source::health::HealthOverride {
        silence_secs: Some(600),
        ..Default::default()
    };
    let busy = SourceHealth::with_clock("bluesky", None, Arc::clone(&monitor.clock));
    let quiet =
        SourceHealth::with_clock("quiet", None, Arc::clone(&monitor.clock)).with_rule(quiet_rule);
    assert_eq!(quiet.rule(&monitor.rule).silence_secs, 600);
    for source in [busy, quiet] {
        source.count_data();
        monitor.health.push(Arc::new(source));
    }
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(monitor.run(shutdown));

    until(start, 70.5).await;
    let fired: Vec<String> = alerts(&outbox).into_iter().map(|a| a.service).collect();
    assert_eq!(
        fired,
        ["source:bluesky"],
        "at 70 s only the global rule's source"
    );

    until(start, 599.5).await;
    assert_eq!(alerts(&outbox).len(), 1, "quiet for 599 s: within its rule");
    until(start, 600.5).await;
    let all = alerts(&outbox);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1].service, "source:quiet");
    assert_eq!(
        all[1].detail.as_deref(),
        Some("no usable frames from quiet for 10 min")
    );
    stop.send(true).expect("monitor listens");
    task.await.expect("monitor ends");
}

/// An incident an earlier run left open shows open on the board (the
/// incidents, the dashboard, `outagewatch_incidents_open`) from the start,
/// not raised again and not counted as an alert of this run: it was
/// missing from them until its resolution.
#[tokio::test(start_paused = true)]
async fn an_incident_left_open_shows_on_the_board_at_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = SledStore::open(dir.path()).expect("store");
    let outbox = sled.outbox();
    let opened = OpenSource {
        source: "bluesky".into(),
        started_at: T0 - 100 * SEC,
        detail: "no usable frames from bluesky for 60 s".into(),
    };
    outbox.set_open_source(&opened).expect("saved");
    let (monitor, _health) = monitor(&outbox, &["bluesky"]);
    let telemetry = monitor.telemetry.clone();
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(monitor.run(shutdown));
    tokio::time::sleep(Duration::from_secs(1)).await;
    {
        let board = telemetry.board();
        let open: Vec<(&str, &str)> = board
            .incidents(false)
            .iter()
            .map(|r| (r.id.as_str(), r.service.as_str()))
            .collect();
        let id = Alert::source_health(
            "bluesky",
            TransitionKind::Firing,
            T0,
            T0 - 100 * SEC,
            String::new(),
        )
        .id;
        assert_eq!(open, [(id.as_str(), "source:bluesky")]);
        assert!(board.alerts_by_state().is_empty(), "no alert of this run");
    }
    assert!(alerts(&outbox).is_empty(), "not raised again");
    stop.send(true).expect("monitor listens");
    task.await.expect("monitor ends");
}
