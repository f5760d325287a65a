//! The health rule's verdicts ([`assess`], [`proven_healthy`]) and details.

use super::*;
const S: Micros = crate::MICROS_PER_SEC;

#[test]
fn health_rule_table() {
    let rule = HealthRule::default();
    let started = 1_000 * S;
    let snap = |last: Option<i64>, processed: Option<i64>| HealthSnapshot {
        last_data_wall: last.map(|t| t * S),
        last_data_mono: last.map(|t| t * S),
        processed: processed.map(|t| t * S),
        ..HealthSnapshot::default()
    };
    let cases = [
        (snap(None, None), 1_030, Condition::Healthy),
        (snap(None, None), 1_070, Condition::Silent { secs: 70 }),
        (snap(Some(1_065), Some(1_064)), 1_070, Condition::Healthy),
        (
            snap(Some(1_200), Some(1_050)),
            1_201,
            Condition::Lagging { secs: 151 },
        ),
        (
            snap(Some(1_100), Some(1_100)),
            1_200,
            Condition::Silent { secs: 100 },
        ),
        // Frames arrive but none decodes: silent all the same.
        (
            HealthSnapshot {
                last_frame_wall: Some(1_199 * S),
                frames: 500,
                ..snap(None, None)
            },
            1_200,
            Condition::Silent { secs: 200 },
        ),
        // A watermark ahead of the clock is not a negative lag.
        (snap(Some(1_199), Some(5_000)), 1_200, Condition::Healthy),
    ];
    for (snapshot, now, want) in cases {
        let now = Now {
            wall: now * S,
            mono: now * S,
        };
        assert_eq!(
            assess(&snapshot, now, started, &rule),
            want,
            "{snapshot:?} at {now:?}"
        );
    }
}

/// Silence and the grace last on the monotonic clock: a wall clock
/// set back an hour hid a silence for that hour, and one set forward
/// an hour paged for a source that had delivered a second before.
#[test]
fn a_stepped_wall_clock_neither_hides_nor_invents_a_silence() {
    let rule = HealthRule::default();
    let started = 1_000 * S;
    let hour = 3_600 * S;
    // Data last at 1,100 s (monotonic); the wall clock agreed then.
    let snapshot = HealthSnapshot {
        last_data_wall: Some(1_100 * S),
        last_data_mono: Some(1_100 * S),
        processed: Some(1_100 * S),
        ..HealthSnapshot::default()
    };
    // (monotonic now, wall clock's step, want)
    let cases = [
        (1_101, -hour, Condition::Healthy),
        (1_101, hour, Condition::Lagging { secs: 3_601 }),
        (1_200, -hour, Condition::Silent { secs: 100 }),
        (1_200, 0, Condition::Silent { secs: 100 }),
        (1_150, hour, Condition::Lagging { secs: 3_650 }),
    ];
    for (mono, step, want) in cases {
        let now = Now {
            wall: mono * S + step,
            mono: mono * S,
        };
        assert_eq!(assess(&snapshot, now, started, &rule), want, "{now:?}");
    }
    // Nor does a wall clock set back make the start-up grace last.
    let quiet = HealthSnapshot::default();
    let now = Now {
        wall: started - hour + 70 * S,
        mono: started + 70 * S,
    };
    assert_eq!(
        assess(&quiet, now, started, &rule),
        Condition::Silent { secs: 70 }
    );
}

#[test]
fn details_say_what_happened() {
    let cases = [
        (
            Condition::Silent { secs: 120 },
            "no usable frames from bluesky for 120 s",
        ),
        (
            Condition::Lagging { secs: 840 },
            "bluesky is lagging 14 min behind",
        ),
        (
            Condition::Silent {
                secs: 4 * 3600 + 120,
            },
            "no usable frames from bluesky for 4 h 2 min",
        ),
    ];
    for (condition, want) in cases {
        assert_eq!(condition.detail("bluesky").as_deref(), Some(want));
    }
    assert_eq!(Condition::Healthy.detail("bluesky"), None);
}

#[test]
fn an_old_incident_resolves_only_on_frames_seen_in_this_run() {
    let at = |t: Micros| Now { wall: t, mono: t };
    let rule = HealthRule::default();
    let started = 1_000 * S;
    let quiet = HealthSnapshot::default();
    assert!(
        !proven_healthy(&quiet, at(started + S), started, &rule),
        "grace is not health"
    );
    let junk_only = HealthSnapshot {
        last_frame_wall: Some(started + S),
        processed: Some(started),
        ..HealthSnapshot::default()
    };
    assert!(
        !proven_healthy(&junk_only, at(started + 2 * S), started, &rule),
        "bytes that never decode are not health"
    );
    let flowing = HealthSnapshot {
        last_data_wall: Some(started + S),
        last_data_mono: Some(started + S),
        ..junk_only
    };
    assert!(proven_healthy(
        &flowing,
        at(started + 2 * S),
        started,
        &rule
    ));
    assert!(
        !proven_healthy(&flowing, at(started + 200 * S), started, &rule),
        "silent again"
    );
}
