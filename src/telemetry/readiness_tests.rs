//! Readiness against the health monitor's verdict, on a paused clock: a
//! connected source that sends nothing is not ready once the monitor
//! would call it silent, and is again at its next usable frame.

use std::sync::Arc;

use super::*;
use crate::wall::{SharedClock, TokioClock};

const T0: Micros = 1_800_000_000_000_000;

fn daemon(clock: &SharedClock, names: &[&str]) -> (Arc<Telemetry>, Vec<Arc<SourceHealth>>) {
    let telemetry = Telemetry::new(Mode::Daemon, None);
    let sources: Vec<_> = names
        .iter()
        .map(|name| Arc::new(SourceHealth::with_clock(name, None, Arc::clone(clock))))
        .collect();
    telemetry.set_sources(sources.clone());
    telemetry.set_health(HealthRule {
        silence_secs: 60,
        lag_secs: 120,
        grace_secs: 90,
        calm_secs: None,
    });
    telemetry.set_store_open(true);
    (telemetry, sources)
}

async fn advance(secs: u64) {
    tokio::time::advance(std::time::Duration::from_secs(secs)).await;
}

#[tokio::test(start_paused = true)]
async fn a_connected_source_that_sends_nothing_is_not_ready_once_the_monitor_calls_it_silent() {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let (telemetry, sources) = daemon(&clock, &["bluesky"]);
    let bluesky = &sources[0];
    let err = telemetry.readiness().expect_err("not connected");
    assert_eq!(err, "no source is connected (bluesky)");
    bluesky.set_connected(true);
    assert_eq!(telemetry.readiness(), Ok(()), "before the monitor runs");
    telemetry.set_health_started(clock.monotonic_us());
    // Silent past the rule (60 s), but within the monitor's start-up
    // grace (90 s, from its start): no verdict yet, as for the monitor.
    advance(89).await;
    assert_eq!(telemetry.readiness(), Ok(()), "within the grace");
    advance(1).await;
    let err = telemetry.readiness().expect_err("silent while connected");
    assert_eq!(
        err,
        "no source is delivering: no usable frames from bluesky for 90 s"
    );
    bluesky.count_data();
    assert_eq!(telemetry.readiness(), Ok(()), "frames again");
    advance(59).await;
    assert_eq!(telemetry.readiness(), Ok(()));
    advance(1).await;
    assert!(telemetry.readiness().is_err(), "silent for 60 s again");
    // Lagging is delivering all the same: the lag alert says it.
    bluesky.set_processed(T0 - 3_600 * crate::MICROS_PER_SEC);
    bluesky.count_data();
    assert_eq!(telemetry.readiness(), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn one_delivering_source_is_enough_and_the_others_are_named() {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let (telemetry, sources) = daemon(&clock, &["bluesky", "mastodon", "nostr"]);
    telemetry.set_health_started(clock.monotonic_us());
    sources[0].set_connected(true);
    sources[1].set_connected(true);
    advance(120).await;
    let err = telemetry.readiness().expect_err("both silent");
    assert_eq!(
        err,
        "no source is delivering: no usable frames from bluesky for 120 s; no usable frames from mastodon for 120 s; nostr is not connected"
    );
    sources[1].count_data();
    assert_eq!(telemetry.readiness(), Ok(()));
}

#[test]
fn a_replay_is_ready_while_its_store_is_open() {
    let telemetry = Telemetry::new(Mode::Replay, None);
    assert!(telemetry.readiness().is_err());
    telemetry.set_store_open(true);
    assert_eq!(telemetry.readiness(), Ok(()));
}

/// Readiness applies each source's own rule, as the monitor does: a quiet
/// relay given `silence_secs = 600` is still delivering at 120 s, when
/// the global rule (60 s) would call it silent.
#[tokio::test(start_paused = true)]
async fn a_quiet_source_is_judged_by_its_own_silence() {
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let (telemetry, _) = daemon(&clock, &[]);
    let own = crate::source::health::HealthOverride {
        silence_secs: Some(600),
        ..Default::default()
    };
    let quiet =
        Arc::new(SourceHealth::with_clock("quiet", None, Arc::clone(&clock)).with_rule(own));
    telemetry.set_sources(vec![Arc::clone(&quiet)]);
    telemetry.set_health_started(clock.monotonic_us());
    quiet.set_connected(true);
    advance(120).await;
    assert_eq!(telemetry.readiness(), Ok(()), "within its own 600 s");
    advance(480).await;
    let err = telemetry.readiness().expect_err("silent past its own rule");
    assert_eq!(
        err,
        "no source is delivering: no usable frames from quiet for 10 min"
    );
}
