//! Dead letters expire: the daemon drops those older than `[alerts]
//! dead_letter_days` at its start and every hour after, by the time they
//! died on the wall clock (delivery's clock; event time plays no part, so
//! a replay's alerts are untouched). A broken receiver kept them for ever:
//! 5,860 letters in 10 h under a tag flood, all served by
//! `/api/v1/outbox`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::Micros;
use crate::alert::outbox::Outbox;
use crate::telemetry::Telemetry;
use crate::wall::SharedClock;

/// How often the letters are looked at: expiry is a matter of days, and
/// each look reads every letter.
pub(super) const EXPIRY_EVERY: Duration = Duration::from_secs(3600);

/// Drops the letters that died more than `retention_us` ago, at once and
/// every [`EXPIRY_EVERY`], until `shutdown`.
pub(super) async fn expire_dead_letters(
    outbox: Outbox,
    retention_us: Micros,
    (clock, telemetry): (SharedClock, Arc<Telemetry>),
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(EXPIRY_EVERY);
    let mut undated_told = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let cutoff = clock.now_us().saturating_sub(retention_us);
        let outbox = outbox.clone();
        let expired = match tokio::task::spawn_blocking(move || outbox.expire_dead(cutoff)).await {
            Ok(Ok(expired)) => expired,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot expire dead letters; tried again in an hour");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the dead letter expiry failed; tried again in an hour");
                continue;
            }
        };
        for (sink, n) in &expired.by_sink {
            telemetry.metrics.dead_letters_expired(sink, *n as u64);
        }
        if expired.total() > 0 {
            let sinks: Vec<String> = expired
                .by_sink
                .iter()
                .map(|(sink, n)| format!("{sink}={n}"))
                .collect();
            tracing::info!(
                event = "dead_letters_expired",
                expired = expired.total(),
                sinks = %sinks.join(" "),
                retention_days = retention_us / (86_400 * crate::MICROS_PER_SEC),
                "dead letters older than the retention dropped"
            );
        }
        if expired.undated > 0 && expired.undated != undated_told {
            tracing::warn!(
                undated = expired.undated,
                "dead letters whose time or body cannot be read are kept past the retention (`outagewatch alerts dead` lists them)"
            );
        }
        undated_told = expired.undated;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::format::test_alert;
    use crate::alert::outbox::DeadLetter;
    use crate::detect::TransitionKind;
    use crate::state::SledStore;
    use crate::telemetry::Mode;
    use crate::wall::TokioClock;

    const DAY: Micros = 86_400 * crate::MICROS_PER_SEC;
    /// 2027-01-15T08:00:00Z.
    const T0: Micros = 1_800_000_000 * crate::MICROS_PER_SEC;

    fn letter(sink: &str, seq: u64, died: Micros) -> DeadLetter {
        DeadLetter {
            sink: sink.into(),
            seq,
            alert: test_alert(TransitionKind::Firing, chrono::Utc::now(), 1),
            reason: "HTTP 500".into(),
            attempts: 3,
            failed_at: crate::alert::rfc3339(died),
            superseded_by: None,
        }
    }

    fn ids(outbox: &Outbox) -> Vec<String> {
        let dead = outbox.dead_letters().expect("read");
        dead.letters.iter().map(|l| l.id()).collect()
    }

    /// At start the letters past 30 days go, the younger stay; an hour of
    /// the daemon's clock later the one that crossed the line goes too,
    /// and the metric counts each by sink.
    #[tokio::test(start_paused = true)]
    async fn letters_expire_at_start_and_every_hour_after() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SledStore::open(dir.path()).expect("store");
        let outbox: Outbox = store.outbox();
        let start = tokio::time::Instant::now();
        for l in [
            letter("hook", 1, T0 - 40 * DAY),
            letter("pager", 2, T0 - 31 * DAY),
            letter("hook", 3, T0 - 30 * DAY + 1800 * crate::MICROS_PER_SEC),
            letter("hook", 4, T0 - DAY),
        ] {
            outbox.add_dead_letter(&l).expect("add");
        }
        let telemetry = Telemetry::new(Mode::Daemon, None);
        let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(expire_dead_letters(
            outbox.clone(),
            30 * DAY,
            (clock, Arc::clone(&telemetry)),
            shutdown,
        ));
        tokio::time::sleep_until(start + Duration::from_secs(60)).await;
        assert_eq!(ids(&outbox), ["hook:3", "hook:4"]);
        tokio::time::sleep_until(start + EXPIRY_EVERY + Duration::from_secs(60)).await;
        assert_eq!(ids(&outbox), ["hook:4"]);
        stop.send(true).expect("stop");
        task.await.expect("task ends");
        let text = telemetry.metrics.render(&telemetry).expect("render");
        assert!(
            text.contains("outagewatch_dead_letters_expired_total{sink=\"hook\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("outagewatch_dead_letters_expired_total{sink=\"pager\"} 1"),
            "{text}"
        );
    }
}
