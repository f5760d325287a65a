//! Table tests of the detector: count series in, incidents out.

use super::*;
use crate::window::{AuthorId, ServiceCounts};

const T0: Micros = 1_783_173_600 * MICROS_PER_SEC; // 2026-07-04T14:00:00Z
const B: Micros = 10 * MICROS_PER_SEC;
const DAY: i64 = 8_640; // buckets

/// Bucket `i` with `authors` distinct reporting authors for "svc", and a
/// steady firehose of 500 posts. Authors posting once are new people in
/// every bucket; authors posting `posts_each` > 1 times are the same
/// accounts throughout.
fn bucket(i: i64, authors: u64, posts_each: u64) -> Bucket {
    let mut b = Bucket {
        start: T0 + i * B,
        total_posts: 500,
        ..Bucket::default()
    };
    if authors > 0 {
        let mut names: Vec<AuthorId> = (0..authors)
            .map(|a| match posts_each {
                1 => AuthorId::of(&format!("did:{i}:{a}")),
                _ => AuthorId::of(&format!("did:repeat:{a}")),
            })
            .collect();
        names.sort();
        b.services.insert(
            "svc".into(),
            ServiceCounts {
                reports: authors * posts_each,
                authors: names,
                ..ServiceCounts::default()
            },
        );
    }
    b
}

type Row = (i64, u64, u64);

/// Runs a series and returns (bucket index of `at`, kind, severity) of
/// every transition.
fn run(detector: &mut Detector, series: &[Row]) -> Vec<(i64, TransitionKind, Severity)> {
    let mut out = Vec::new();
    for &(i, authors, each) in series {
        let b = match each {
            0 => bucket_with_recoveries(i, 3),
            _ => bucket(i, authors, each),
        };
        for t in detector.on_bucket(&b) {
            out.push(((t.at - T0) / B, t.kind, t.incident.severity));
        }
    }
    out
}

fn flat(from: i64, n: i64, authors: u64) -> Vec<Row> {
    (from..from + n).map(|i| (i, authors, 1)).collect()
}

/// About `per_min` new authors a minute, spread over the buckets.
fn surge(from: i64, n: i64, per_min: u64) -> Vec<Row> {
    (from..from + n)
        .map(|i| {
            let k = (i - from) as u64;
            (i, per_min * (k + 1) / 6 - per_min * k / 6, 1)
        })
        .collect()
}

fn cat(parts: &[Vec<Row>]) -> Vec<Row> {
    parts.concat()
}

use Severity::{High, Low, Medium};
use TransitionKind::{Firing, Resolved, Updated};

// Over 60 lines on purpose: it is one table of cases (data, a few lines
// each) and a five-line loop; splitting it would only scatter the cases.
#[test]
fn detector_table() {
    struct Case {
        name: &'static str,
        series: Vec<Row>,
        expect: Vec<(i64, TransitionKind, Severity)>,
    }
    let cases = vec![
        Case {
            name: "silence",
            series: flat(0, 360, 0),
            expect: vec![],
        },
        Case {
            name: "two posts never alert",
            series: cat(&[
                flat(0, 10, 0),
                vec![(10, 1, 1), (11, 1, 1)],
                flat(12, 100, 0),
            ]),
            expect: vec![],
        },
        Case {
            name: "isolated complaints, a few an hour",
            series: (0..2160).map(|i| (i, u64::from(i % 97 == 0), 1)).collect(),
            expect: vec![],
        },
        Case {
            name: "one account posting 200 times",
            series: cat(&[
                flat(0, 30, 0),
                (30..40).map(|i| (i, 1, 20)).collect(),
                flat(40, 60, 0),
            ]),
            expect: vec![],
        },
        Case {
            // 10 authors a minute from bucket 6 (onset 14:01:00). A brand-new
            // detector (warming up) wants twice `min_authors`: 60 s.
            name: "cold start: 10 authors a minute fires within 60 s and resolves",
            series: cat(&[flat(0, 6, 0), surge(6, 30, 10), flat(36, 60, 0)]),
            expect: vec![(12, Firing, Low), (70, Resolved, Low)],
        },
        Case {
            name: "a dip of one bucket keeps one incident",
            series: cat(&[
                surge(0, 12, 30),
                flat(12, 1, 0),
                surge(13, 12, 30),
                flat(25, 60, 0),
            ]),
            expect: vec![
                (2, Firing, Low),
                (3, Updated, Medium),
                (60, Resolved, Medium),
            ],
        },
        Case {
            name: "cooldown holds back a second surge right after",
            series: cat(&[
                surge(0, 12, 30),
                flat(12, 38, 0),
                surge(50, 6, 30),
                flat(56, 60, 0),
            ]),
            expect: vec![
                (2, Firing, Low),
                (3, Updated, Medium),
                (47, Resolved, Medium),
            ],
        },
        Case {
            name: "after the cooldown a new surge is a new incident",
            series: cat(&[
                surge(0, 12, 30),
                flat(12, 100, 0),
                surge(112, 12, 30),
                flat(124, 60, 0),
            ]),
            expect: vec![
                (2, Firing, Low),
                (3, Updated, Medium),
                (47, Resolved, Medium),
                // The first surge's minutes are left out of the level
                // (its onset's too: the minute it fired in is skipped
                // whole), so the second fires as the first did.
                (113, Firing, Low),
                (115, Updated, Medium),
                (159, Resolved, Medium),
            ],
        },
        Case {
            // "It's back" posts outnumbering reports resolve after 60 s of
            // calm instead of 300 s, counted from the first window that no
            // longer passes the firing line by itself (bucket 13: the
            // window of bucket 12 still holds five buckets of the surge).
            name: "recovery posts resolve sooner",
            series: cat(&[surge(0, 12, 30), recovery(12, 12), flat(24, 60, 0)]),
            expect: vec![
                (2, Firing, Low),
                (3, Updated, Medium),
                (22, Resolved, Medium),
            ],
        },
        Case {
            name: "a surge that grows escalates, once per level",
            series: cat(&[
                surge(0, 6, 12),
                surge(6, 6, 120),
                surge(12, 12, 600),
                flat(24, 60, 0),
            ]),
            expect: vec![
                (5, Firing, Low),
                (7, Updated, Medium),
                (9, Updated, High),
                (59, Resolved, High),
            ],
        },
        Case {
            name: "a long incident escalates with time",
            series: cat(&[surge(0, 70, 12), flat(70, 60, 0)]),
            expect: vec![
                (5, Firing, Low),
                (60, Updated, Medium),
                (104, Resolved, Medium),
            ],
        },
    ];
    let mut failures = Vec::new();
    for case in cases {
        let mut detector = Detector::new(DetectorConfig::default());
        let got = run(&mut detector, &case.series);
        if got != case.expect {
            failures.push(format!(
                "{}:\n   got {got:?}\n  want {:?}",
                case.name, case.expect
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One account repeating "it's back" during an outage that still passes
/// the firing line by itself (30 new authors a minute) does not end it:
/// recovery posts are counted per post, and they used to resolve the
/// incident a minute later, after which the cooldown let the level learn
/// the outage and it never fired again.
#[test]
fn one_account_saying_it_is_back_does_not_end_a_live_outage() {
    let mut detector = Detector::new(DetectorConfig::default());
    let mut got = Vec::new();
    for i in 0..200 {
        let authors = if i >= 90 { 5 } else { 0 };
        let mut b = bucket(i, authors, 1);
        if (110..122).contains(&i) {
            b.services.get_mut("svc").expect("reports").recoveries = 7;
        }
        for t in detector.on_bucket(&b) {
            got.push(((t.at - T0) / B, t.kind));
        }
    }
    assert_eq!(got.first().map(|t| t.1), Some(Firing), "{got:?}");
    assert!(
        got.iter().all(|t| t.1 != Resolved),
        "resolved while 30 new authors a minute still reported: {got:?}"
    );
}

/// Severity by length counts only while the window still passes the
/// firing line: a surge that falls back to a tail of three times the
/// normal (not calm, far below the line) stays `low`. It reached `high`
/// after 30 minutes of the tail.
#[test]
fn a_tail_below_the_firing_line_does_not_escalate_with_time() {
    let mut detector = Detector::new(DetectorConfig::default());
    let series = cat(&[flat(0, 360, 1), flat(360, 12, 10), flat(372, 250, 3)]);
    let got = run(&mut detector, &series);
    let kinds: Vec<_> = got.iter().map(|t| (t.1, t.2)).collect();
    assert_eq!(kinds, vec![(Firing, Low)], "{got:?}");
}

/// A calm window in which "it's back" posts outnumber the last reports:
/// rows with `posts_each` 0 stand for buckets of 3 recovery posts.
fn recovery(from: i64, n: i64) -> Vec<Row> {
    (from..from + n).map(|i| (i, 0, 0)).collect()
}

#[test]
fn recovery_rows_carry_recoveries() {
    // The table's recovery case needs buckets with recovery posts: check the
    // helper below really produces them.
    let b = bucket_with_recoveries(3, 4);
    assert_eq!(b.services["svc"].recoveries, 4);
}

fn bucket_with_recoveries(i: i64, recoveries: u64) -> Bucket {
    let mut b = bucket(i, 0, 1);
    b.services.insert(
        "svc".into(),
        ServiceCounts {
            recoveries,
            ..ServiceCounts::default()
        },
    );
    b
}

#[test]
fn steadily_elevated_service_is_learned_and_then_alerts_only_when_it_jumps() {
    let mut detector = Detector::new(DetectorConfig::default());
    // A day of about 3 authors per bucket (18 a minute). A brand-new
    // detector cannot know that is normal and fires once; the level is
    // then learned and the incident resolves, with no second incident.
    let busy: Vec<Row> = (0..DAY).map(|i| (i, 2 + (i % 3) as u64, 1)).collect();
    let got = run(&mut detector, &busy);
    let kinds: Vec<TransitionKind> = got.iter().map(|t| t.1).filter(|k| *k != Updated).collect();
    assert_eq!(kinds, vec![Firing, Resolved], "{got:?}");
    let more: Vec<Row> = (DAY..DAY + 2160)
        .map(|i| (i, 2 + (i % 3) as u64, 1))
        .collect();
    assert_eq!(
        run(&mut detector, &more),
        vec![],
        "the elevated level is normal now"
    );
    let jump: Vec<Row> = (DAY + 2160..DAY + 2172).map(|i| (i, 40, 1)).collect();
    let got = run(&mut detector, &jump);
    assert_eq!(
        got.first().map(|t| t.1),
        Some(Firing),
        "a tenfold jump fires: {got:?}"
    );
}

#[test]
fn a_daily_peak_that_is_normal_stops_alerting_after_a_few_days() {
    let mut detector = Detector::new(DetectorConfig::default());
    // Every day from 14:00 to 15:00 UTC, about 4 authors per bucket (24 a
    // minute); the rest of the day a complaint every few minutes.
    let day = |d: i64| -> Vec<Row> {
        (0..DAY)
            .map(|k| {
                let i = d * DAY + k;
                let authors = if k < 360 {
                    3 + (k % 3) as u64
                } else {
                    u64::from(k % 29 == 0)
                };
                (i, authors, 1)
            })
            .collect()
    };
    let mut firings_per_day = Vec::new();
    for d in 0..6 {
        let got = run(&mut detector, &day(d));
        firings_per_day.push(got.iter().filter(|t| t.1 == Firing).count());
    }
    assert!(
        firings_per_day[0] >= 1,
        "day one cannot know the peak: {firings_per_day:?}"
    );
    assert_eq!(
        &firings_per_day[4..],
        &[0, 0],
        "after days of history the peak is normal: {firings_per_day:?}"
    );
    // The same level at 03:00, the quiet hour, is still an outage.
    let night: Vec<Row> = (6 * DAY + 4_680..6 * DAY + 4_700)
        .map(|i| (i, 4, 1))
        .collect();
    let quiet_before: Vec<Row> = (6 * DAY..6 * DAY + 4_680)
        .map(|i| (i, u64::from(i % 29 == 0), 1))
        .collect();
    run(&mut detector, &quiet_before);
    let got = run(&mut detector, &night);
    assert_eq!(
        got.first().map(|t| t.1),
        Some(Firing),
        "the peak's level at night fires: {got:?}"
    );
}

#[test]
fn incident_and_baseline_survive_a_snapshot_and_restore() {
    let mut detector = Detector::new(DetectorConfig::default());
    let fired = run(&mut detector, &surge(0, 12, 30));
    assert_eq!(fired, vec![(2, Firing, Low), (3, Updated, Medium)]);
    // Through the store, as a restart reads it.
    use crate::state::{Checkpoint, SledStore, Store};
    let mut store = SledStore::temporary().expect("store");
    let checkpoint = Checkpoint {
        detector: Some(detector.state().clone()),
        ..Checkpoint::default()
    };
    let changed = detector.take_changed();
    assert!(!changed.is_empty(), "the baseline changed and is saved");
    let no_alerts: &[crate::alert::Alert] = &[];
    store
        .save(&[], &checkpoint.as_ref(), None, no_alerts, &changed)
        .expect("save");
    let saved = store.checkpoint().expect("read").expect("saved");
    let baselines = store.baselines().expect("baselines");
    assert_eq!(baselines.len(), changed.len());
    let mut restored = Detector::restore(DetectorConfig::default(), saved.detector, baselines);
    assert_eq!(restored.open_incidents().count(), 1);
    let rest = run(&mut restored, &flat(12, 60, 0));
    let mut original = detector;
    assert_eq!(
        rest,
        run(&mut original, &flat(12, 60, 0)),
        "restored behaves as the original"
    );
    assert_eq!(
        rest,
        vec![(47, Resolved, Medium)],
        "resolved once, not fired again"
    );
}

#[test]
fn severity_grows_with_height_and_length() {
    let c = DetectorConfig::default();
    let minute = 60 * MICROS_PER_SEC;
    assert_eq!(Severity::grade(&c, 5.0, 6, 0), Low);
    assert_eq!(Severity::grade(&c, 20.0, 20, 0), Medium);
    assert_eq!(Severity::grade(&c, 80.0, 60, 0), High);
    assert_eq!(
        Severity::grade(&c, 80.0, 6, 0),
        Low,
        "few authors cap the height"
    );
    assert_eq!(
        Severity::grade(&c, 5.0, 6, 11 * minute),
        Medium,
        "ten minutes on"
    );
    assert_eq!(
        Severity::grade(&c, 5.0, 6, 31 * minute),
        High,
        "half an hour on"
    );
}

#[test]
fn poisson_tail_matches_known_values() {
    assert!((poisson_tail(1.0, 1) - (1.0 - (-1.0f64).exp())).abs() < 1e-12);
    // e^-0.2 · Σ_{k≥6} 0.2^k / k! ≈ 7.49e-8
    assert!((poisson_tail(0.2, 6) - 7.49e-8).abs() < 1e-10);
    assert_eq!(poisson_tail(3.0, 0), 1.0);
}

#[test]
fn copypasta_from_many_accounts_counts_as_a_few() {
    let mut detector = Detector::new(DetectorConfig::default());
    let mut transitions = Vec::new();
    for i in 0..12 {
        let mut b = bucket(i, 0, 1);
        let mut authors: Vec<AuthorId> = (0..20)
            .map(|a| AuthorId::of(&format!("did:bot:{i}:{a}")))
            .collect();
        authors.sort();
        b.services.insert(
            "svc".into(),
            ServiceCounts {
                reports: 20,
                copies: authors.iter().map(|&a| (42, a)).collect(),
                authors,
                ..ServiceCounts::default()
            },
        );
        transitions.extend(detector.on_bucket(&b));
    }
    assert!(
        transitions.is_empty(),
        "240 accounts posting one long text: {transitions:?}"
    );
}

#[test]
fn a_series_without_names_counts_its_values() {
    let mut detector = Detector::new(DetectorConfig::default());
    let mut fired = Vec::new();
    for i in 0..20 {
        let mut b = Bucket {
            start: T0 + i * B,
            total_posts: 0,
            ..Bucket::default()
        };
        let value = if i >= 10 { 30 } else { 0 };
        if value > 0 {
            b.services.insert(
                "series".into(),
                ServiceCounts {
                    reports: value,
                    extra_authors: value,
                    ..ServiceCounts::default()
                },
            );
        }
        fired.extend(
            detector
                .on_bucket(&b)
                .into_iter()
                .map(|t| ((t.at - T0) / B, t.kind)),
        );
    }
    assert_eq!(fired.first(), Some(&(11, Firing)));
}

#[test]
fn a_baseline_and_snapshot_are_saved_faithfully_even_when_not_finite() {
    // Before, the detector serialised its own state: a failure became a
    // `null` snapshot ("start afresh") or a deleted baseline, and a
    // non-finite number a `null` the next start could not read. The store
    // now encodes the typed state exactly: what is saved is what a restart
    // reads, bit for bit, whatever the numbers.
    use crate::state::{Checkpoint, SledStore, Store};
    let no_alerts: &[crate::alert::Alert] = &[];
    let mut store = SledStore::temporary().expect("store");
    let mut detector = Detector::new(DetectorConfig::default());
    run(&mut detector, &surge(0, 12, 30));
    let mut changed = detector.take_changed();
    if let Some((_, Some(reports))) = changed.first_mut() {
        reports.minutes.insert(0, f64::NAN);
    }
    detector.state.volume.minutes.insert(0, f64::INFINITY);
    let checkpoint = Checkpoint {
        detector: Some(detector.state().clone()),
        ..Checkpoint::default()
    };
    store
        .save(&[], &checkpoint.as_ref(), None, no_alerts, &changed)
        .expect("save");
    let saved = store.checkpoint().expect("read").expect("saved");
    let volume = |cp: &Checkpoint| cp.detector.as_ref().map(|d| d.volume.minutes.clone());
    assert_eq!(volume(&saved), volume(&checkpoint), "infinity kept");
    let kept = store.baselines().expect("baselines");
    assert_eq!(kept.len(), changed.len(), "no baseline deleted");
    let first = changed
        .first()
        .and_then(|(id, r)| Some((id.clone(), r.clone()?)));
    let (id, reports) = first.expect("a changed baseline");
    let back = kept
        .iter()
        .find(|(k, _)| *k == id)
        .expect("saved")
        .1
        .clone();
    assert!(back.minutes[&0].is_nan(), "NaN kept, not null");
    assert_eq!(back.minutes.len(), reports.minutes.len());
}

/// A bucket missing from the stream (no post at all in it) inside the
/// window: the window's expectation still counts every bucket it holds.
/// (It used to pair the n-th newest bucket with the n-th slot, so the
/// buckets older than a gap fell out of the expectation but not out of the
/// count: two fifths of the normal expected of a window holding five.)
#[test]
fn a_missing_bucket_leaves_the_rest_of_the_window_expected() {
    let mut detector = Detector::new(DetectorConfig::default());
    let history = 720; // two hours of a new author a bucket
    for i in 0..history + 3 {
        detector.on_bucket(&bucket(i, 1, 1));
    }
    let full = detector.explain("svc").expect("tested").expected;
    // Bucket `history + 3` never comes: the next window holds the three
    // before it and the two after it.
    for i in [history + 4, history + 5] {
        assert!(detector.on_bucket(&bucket(i, 1, 1)).is_empty());
    }
    let explained = detector.explain("svc").expect("tested");
    assert_eq!(explained.authors, 5, "five buckets of one author");
    assert_eq!(
        explained.basis,
        Basis::Overall,
        "a learned level, not the prior"
    );
    let ratio = explained.expected / full;
    assert!(
        (0.75..0.92).contains(&ratio),
        "five of six buckets expected: {} of {full} ({ratio:.2})",
        explained.expected
    );
}

// Found in a review of the detector (each failed before its fix).

/// An incident younger than `learn_during_incident_after_secs` must teach
/// the level nothing: after an hour-long outage the level (and so the
/// expectation and the calm line) should be what it was before, and the
/// incident should resolve a few minutes after the surge ends.
#[test]
fn a_young_incident_does_not_teach_the_level_zeros() {
    let mut detector = Detector::new(DetectorConfig::default());
    // Two hours of one new author a bucket (6 a minute): learned, no alert.
    let history = 720;
    let got = run(&mut detector, &flat(0, history, 1));
    assert_eq!(got, vec![], "steady background");
    let before = detector.explain("svc").expect("tested").expected;
    // An hour of 60 authors a minute: one incident.
    let got = run(&mut detector, &flat(history, 360, 10));
    assert_eq!(got.first().map(|t| t.1), Some(Firing), "{got:?}");
    let during = detector.explain("svc").expect("tested");
    // Back to the background: calm (6 < 2 × 6) should resolve within ~6
    // minutes; follow it for up to 2 hours.
    let end = history + 360;
    let got = run(&mut detector, &flat(end, 720, 1));
    let resolved = got.iter().find(|t| t.1 == Resolved).map(|t| t.0 - end);
    assert!(
        during.expected > 0.5 * before && resolved.is_some_and(|k| k <= 40),
        "at the end of the outage the expectation is {} ({:?}), before it {before}: \
         the incident's minutes taught the level zeros; resolved {resolved:?} \
         buckets after the surge ended",
        during.expected,
        during.basis,
    );
}

/// The bucket an incident fires at is the incident's, wherever it falls in
/// its minute: a single spike was taught to the level when it fired in the
/// last bucket of its minute (no later bucket of the minute came during
/// the incident to skip it), raised the expectation fifty-fold for an hour
/// and hid the outage that followed, while the same spike ten seconds
/// earlier did not.
#[test]
fn a_spike_teaches_the_level_nothing_wherever_it_falls_in_its_minute() {
    for second in 0..6 {
        let mut detector = Detector::new(DetectorConfig::default());
        let spike = 360 + second;
        let series = cat(&[
            flat(0, spike, 0),
            vec![(spike, 600, 1)],
            flat(spike + 1, 540 - spike - 1, 0),
            flat(540, 3, 8),
        ]);
        let got = run(&mut detector, &series);
        let firings: Vec<i64> = got.iter().filter(|t| t.1 == Firing).map(|t| t.0).collect();
        assert_eq!(
            firings.len(),
            2,
            "spike in the minute's bucket {second}: the spike and the later outage fire; {got:?}"
        );
        assert!(firings[1] > 540, "{got:?}");
    }
}

/// Three services of one provider fire together and recover quickly: one
/// upstream incident, fired once and resolved once, not re-raised while
/// their firings are still within the group window.
#[test]
fn an_upstream_incident_is_raised_once_per_group() {
    let mut detector = Detector::new(DetectorConfig::default());
    let services = ["coinbase", "roblox", "venmo"];
    let mut upstream = Vec::new();
    for i in 0..40 {
        let mut b = Bucket {
            start: T0 + i * B,
            total_posts: 500,
            ..Bucket::default()
        };
        for s in services {
            let counts = if i == 0 {
                let mut authors: Vec<AuthorId> = (0..30)
                    .map(|a| AuthorId::of(&format!("did:{s}:{a}")))
                    .collect();
                authors.sort();
                ServiceCounts {
                    reports: 30,
                    authors,
                    ..ServiceCounts::default()
                }
            } else {
                // "It's back" posts.
                ServiceCounts {
                    recoveries: 100,
                    ..ServiceCounts::default()
                }
            };
            b.services.insert(s.into(), counts);
        }
        for t in detector.on_bucket(&b) {
            if t.incident.service.starts_with("upstream:") {
                upstream.push(((t.at - T0) / B, t.kind, t.incident.id.clone()));
            }
        }
    }
    let firings = upstream.iter().filter(|t| t.1 == Firing).count();
    assert_eq!(firings, 1, "upstream transitions: {upstream:?}");
}

/// New reporting authors of `service` in bucket `i` (names unique to it).
fn reporters(i: i64, service: &str, n: u64) -> ServiceCounts {
    let mut authors: Vec<AuthorId> = (0..n)
        .map(|a| AuthorId::of(&format!("did:{service}:{i}:{a}")))
        .collect();
    authors.sort();
    ServiceCounts {
        reports: n,
        authors,
        ..ServiceCounts::default()
    }
}

/// A provider's outage whose group stays open (one of its services keeps
/// reporting) must not swallow a second provider's outage an hour later:
/// the second group raises its own upstream incident, and the first,
/// which has not grown since its own window, ends then. (It took in every
/// later firing, so the second outage raised no upstream incident.)
#[test]
fn a_later_provider_outage_is_not_swallowed_by_a_lingering_group() {
    let mut detector = Detector::new(DetectorConfig::default());
    let mut upstream = Vec::new();
    for i in 0..560 {
        let mut b = Bucket {
            start: T0 + i * B,
            total_posts: 500,
            ..Bucket::default()
        };
        let mut add = |service: &str, n: u64| {
            b.services.insert(service.into(), reporters(i, service, n));
        };
        if (100..106).contains(&i) {
            add("roblox", 5);
            add("venmo", 5);
        }
        if i >= 100 {
            add("discord", 5);
        }
        if (500..506).contains(&i) {
            add("gmail", 5);
            add("youtube", 5);
            add("slack", 5);
        }
        for t in detector.on_bucket(&b) {
            if t.incident.service.starts_with("upstream:") {
                upstream.push((t.kind, t.incident.service.clone(), t.related.clone()));
            }
        }
    }
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let aws = "upstream:aws".to_string();
    let google = "upstream:googlecloud".to_string();
    assert_eq!(
        upstream,
        vec![
            (Firing, aws.clone(), names(&["discord", "roblox", "venmo"])),
            (Resolved, aws, names(&["discord", "roblox", "venmo"])),
            (
                Firing,
                google.clone(),
                names(&["gmail", "slack", "youtube"])
            ),
            (Resolved, google, names(&["gmail", "slack", "youtube"])),
        ],
    );
}

fn one_bucket_authors(counts: ServiceCounts) -> u64 {
    let mut detector = Detector::new(DetectorConfig::default());
    let mut b = bucket(0, 0, 1);
    b.services.insert("svc".into(), counts);
    detector.on_bucket(&b);
    detector.explain("svc").expect("tested").authors
}

/// The same accounts posting a second long text must not count as fewer
/// than one text alone (at most `max_authors_per_text`, but not less).
#[test]
fn accounts_posting_several_copied_texts_still_count_a_few() {
    let names = |n: usize| -> Vec<AuthorId> {
        let mut v: Vec<AuthorId> = (0..n)
            .map(|a| AuthorId::of(&format!("did:bot:{a:03}")))
            .collect();
        v.sort();
        v
    };
    let storm = |accounts: usize, texts: u64| -> ServiceCounts {
        let authors = names(accounts);
        ServiceCounts {
            reports: accounts as u64 * texts,
            copies: (0..texts)
                .flat_map(|f| authors.iter().map(move |&a| (f, a)))
                .collect(),
            authors,
            ..ServiceCounts::default()
        }
    };
    assert_eq!(one_bucket_authors(storm(4, 1)), 3, "one text: 3");
    let two = one_bucket_authors(storm(4, 2));
    let ten = one_bucket_authors(storm(100, 10));
    assert!(
        two >= 3 && ten >= 3,
        "4 accounts × 2 texts count {two}, 100 accounts × 10 texts count {ten}: \
         fewer than one text alone"
    );
}

/// Huge counts from a plain series (a value of 1e19 saturates to near
/// u64::MAX when read) must not wrap around to a handful of authors.
#[test]
fn huge_counts_do_not_wrap_around() {
    let mut detector = Detector::new(DetectorConfig::default());
    let huge = 1u64 << 63;
    for i in 0..12 {
        let mut b = Bucket {
            start: T0 + i * B,
            total_posts: 0,
            ..Bucket::default()
        };
        if i >= 10 {
            b.services.insert(
                "series".into(),
                ServiceCounts {
                    reports: huge,
                    extra_authors: huge,
                    ..ServiceCounts::default()
                },
            );
        }
        detector.on_bucket(&b);
    }
    let explained = detector.explain("series").expect("tested");
    assert!(
        explained.authors >= huge,
        "two buckets of 2^63 authors: window counts {}",
        explained.authors
    );
}

/// Four accounts reporting in every bucket are four authors in any window,
/// not twenty-four: the expectation must say so, or an outage on top of
/// them (48 new authors a minute: 52 in the window, thirteen times its
/// four) has to outgrow four times twenty-four, which it never does.
#[test]
fn accounts_reporting_in_every_bucket_do_not_hide_an_outage() {
    let regulars = 4;
    let with_newcomers = |i: i64, newcomers: u64| {
        let mut b = bucket(i, regulars, 2);
        if let Some(counts) = b.services.get_mut("svc") {
            for n in 0..newcomers {
                counts
                    .authors
                    .push(AuthorId::of(&format!("did:new:{i}:{n}")));
            }
            counts.authors.sort();
            counts.reports += newcomers;
        }
        b
    };
    let mut detector = Detector::new(DetectorConfig::default());
    let history = 720; // two hours
    for i in 0..history {
        assert!(
            detector.on_bucket(&with_newcomers(i, 0)).is_empty(),
            "bucket {i}"
        );
    }
    let calm = detector.explain("svc").expect("tested");
    assert_eq!(calm.authors, regulars);
    assert_eq!(calm.basis, Basis::Overall);
    assert!(
        (3.5..5.0).contains(&calm.expected),
        "the window's four, not the buckets' twenty-four: {}",
        calm.expected
    );
    let fired = (history..history + 12)
        .flat_map(|i| detector.on_bucket(&with_newcomers(i, 8)))
        .any(|t| t.kind == TransitionKind::Firing);
    assert!(fired, "{:?}", detector.explain("svc"));
}

/// An hour of copypasta (twenty accounts a bucket sharing one long text)
/// must teach the baseline the few accounts a window counts of it, not
/// the twenty: the hour after, the expectation had risen twentyfold and
/// an outage then had to outgrow the storm.
#[test]
fn a_copypasta_hour_does_not_teach_the_baseline_its_accounts() {
    let storm = |i: i64| {
        let mut b = bucket(i, 1, 1);
        if let Some(counts) = b.services.get_mut("svc") {
            let bots: Vec<AuthorId> = (0..20)
                .map(|a| AuthorId::of(&format!("did:bot:{i}:{a}")))
                .collect();
            counts.copies = bots.iter().map(|&a| (42, a)).collect();
            counts.authors.extend(bots);
            counts.authors.sort();
            counts.reports += 20;
        }
        b
    };
    let mut detector = Detector::new(DetectorConfig::default());
    let history = 720; // two hours of a new author a bucket
    for i in 0..history {
        detector.on_bucket(&bucket(i, 1, 1));
    }
    let before = detector.explain("svc").expect("tested").expected;
    for i in history..history + 360 {
        assert!(detector.on_bucket(&storm(i)).is_empty(), "bucket {i}");
    }
    detector.on_bucket(&bucket(history + 360, 1, 1));
    let after = detector.explain("svc").expect("tested").expected;
    // Each bucket counts its author and the cap's three copies: four.
    let cap = DetectorConfig::default().max_authors_per_text as f64;
    assert!(
        after / before <= 1.0 + cap + 0.5,
        "expected {before:.2} before the storm, {after:.2} after"
    );
}

/// A gauge's settings as `series` makes them: judged by significance
/// alone, never before its level is known, and, with `drops`, both ways.
fn gauge_config(drops: bool) -> DetectorConfig {
    DetectorConfig {
        fire_ratio: 1.0,
        warmup_factor: u64::MAX,
        drops,
        ..DetectorConfig::default()
    }
}

/// Runs a gauge (one value per bucket, `i` from 0) and returns (bucket
/// index of `at`, kind, direction, severity) of every transition.
fn run_gauge(
    detector: &mut Detector,
    values: &[u64],
) -> Vec<(i64, TransitionKind, Direction, Severity)> {
    let mut out = Vec::new();
    for (i, &value) in values.iter().enumerate() {
        let mut b = Bucket {
            start: T0 + i as i64 * B,
            ..Bucket::default()
        };
        if value > 0 {
            b.services.insert(
                "gauge".into(),
                ServiceCounts {
                    reports: value,
                    extra_authors: value,
                    ..ServiceCounts::default()
                },
            );
        }
        for t in detector.on_bucket(&b) {
            out.push((
                (t.at - T0) / B,
                t.kind,
                t.incident.direction,
                t.incident.severity,
            ));
        }
    }
    out
}

// Over 60 lines on purpose: one table of cases and a short loop.
#[test]
fn a_gauge_falling_away_is_an_incident_only_when_drops_are_judged() {
    use Direction::{Down, Up};
    // Two hours at 100 ± 4, then whatever the case does from bucket 720.
    let level = |i: usize| 96 + (i % 5) as u64 * 2;
    let series = |after: &dyn Fn(usize) -> u64| -> Vec<u64> {
        (0..1_000)
            .map(|i| if i < 720 { level(i) } else { after(i) })
            .collect()
    };
    struct Case {
        name: &'static str,
        values: Vec<u64>,
        drops: bool,
        /// Kinds, directions and severities in order; the first must come
        /// within a window (6 buckets) of bucket 720.
        expect: Vec<(TransitionKind, Direction, Severity)>,
        /// The third transition follows the second in the next bucket: no
        /// cooldown after a fall a rise ended.
        back_to_back: bool,
    }
    let cases = [
        Case {
            name: "a steady gauge stays quiet",
            values: series(&level),
            drops: true,
            expect: vec![],
            back_to_back: false,
        },
        Case {
            name: "a dip by a tenth is ordinary",
            values: series(&|i| level(i) * 9 / 10),
            drops: true,
            expect: vec![],
            back_to_back: false,
        },
        Case {
            name: "falls to a tenth for 40 buckets, then comes back",
            values: series(&|i| if i < 760 { 10 } else { level(i) }),
            drops: true,
            expect: vec![(Firing, Down, Low), (Resolved, Down, Low)],
            back_to_back: false,
        },
        Case {
            // Medium after 600 s (60 buckets), high after 1800 s (180).
            name: "falls to nothing and stays down: escalates with time",
            values: series(&|_| 0),
            drops: true,
            expect: vec![
                (Firing, Down, Low),
                (Updated, Down, Medium),
                (Updated, Down, High),
            ],
            back_to_back: false,
        },
        Case {
            name: "the same fall is no incident when drops are not judged",
            values: series(&|i| if i < 760 { 10 } else { level(i) }),
            drops: false,
            expect: vec![],
            back_to_back: false,
        },
        Case {
            name: "a rise during a fall ends it at once and fires on its own",
            values: series(&|i| match i {
                ..740 => 10,
                740..760 => 500,
                _ => level(i),
            }),
            drops: true,
            expect: vec![
                (Firing, Down, Low),
                (Resolved, Down, Low),
                (Firing, Up, Low),
                (Resolved, Up, Low),
            ],
            back_to_back: true,
        },
        Case {
            name: "a collapse after a spike is the spike calming down",
            values: series(&|i| match i {
                ..740 => 500,
                740..780 => 0,
                _ => level(i),
            }),
            drops: true,
            expect: vec![(Firing, Up, Low), (Resolved, Up, Low)],
            back_to_back: false,
        },
    ];
    for case in cases {
        let mut detector = Detector::new(gauge_config(case.drops));
        let got = run_gauge(&mut detector, &case.values);
        let seen: Vec<_> = got.iter().map(|t| (t.1, t.2, t.3)).collect();
        assert_eq!(seen, case.expect, "{}: {got:?}", case.name);
        if let Some(first) = got.first() {
            assert!(
                (721..=727).contains(&first.0),
                "{}: fired at bucket {}, the change began at 720",
                case.name,
                first.0
            );
        }
        if case.back_to_back {
            assert_eq!(got[2].0, got[1].0 + 1, "{}: {got:?}", case.name);
        }
    }
}

/// A discovered name forgotten after an hour of quiet takes its last
/// explanation along: every made-up name ever admitted stayed in memory.
#[test]
fn a_forgotten_discovered_service_leaves_nothing_behind() {
    let mut detector = Detector::new(DetectorConfig::default());
    let mut first = bucket(0, 0, 1);
    first.services.insert(
        "zorbly".into(),
        ServiceCounts {
            reports: 1,
            authors: vec![AuthorId::of("did:plc:a")],
            discovered: true,
            ..ServiceCounts::default()
        },
    );
    detector.on_bucket(&first);
    assert!(
        detector.explain("zorbly").is_some(),
        "judged while reported"
    );
    for i in 1..=2 * 360 {
        detector.on_bucket(&bucket(i, 0, 1));
    }
    assert_eq!(detector.service_count(), 0, "forgotten after an hour");
    assert!(detector.explain("zorbly").is_none(), "its explanation too");
}

/// The same with a learning delay longer than the level's kept minutes
/// (`learn_during_incident_after_secs` is allowed up to 30 days): an
/// outage longer than those minutes must still be judged against the
/// level from before it, and resolve when it ends.
#[test]
fn a_long_learning_delay_keeps_the_level_from_before_the_incident() {
    let config = DetectorConfig {
        learn_during_incident_after_secs: 12 * 3600,
        ..DetectorConfig::default()
    };
    let mut detector = Detector::new(config);
    let history = 720;
    let got = run(&mut detector, &flat(0, history, 1));
    assert_eq!(got, vec![], "steady background");
    let before = detector.explain("svc").expect("tested").expected;
    // Four hours of 60 authors a minute: one incident.
    let outage = 4 * 360;
    let got = run(&mut detector, &flat(history, outage, 10));
    assert_eq!(got.first().map(|t| t.1), Some(Firing), "{got:?}");
    let during = detector.explain("svc").expect("tested");
    let end = history + outage;
    let got = run(&mut detector, &flat(end, 720, 1));
    let resolved = got.iter().find(|t| t.1 == Resolved).map(|t| t.0 - end);
    assert!(
        during.expected > 0.5 * before && resolved.is_some_and(|k| k <= 40),
        "at the end of the outage the expectation is {} ({:?}), before it {before}; \
         resolved {resolved:?} buckets after the surge ended",
        during.expected,
        during.basis,
    );
}

/// Bucket `i` with, besides "svc", one discovered name per entry of
/// `names`, each with `authors` new authors.
fn with_discovered(i: i64, names: &[String], authors: u64) -> Bucket {
    let mut b = bucket(i, 0, 1);
    for name in names {
        b.services.insert(
            name.clone(),
            ServiceCounts {
                reports: authors,
                authors: (0..authors)
                    .map(|a| AuthorId::of(&format!("did:{name}:{i}:{a}")))
                    .collect(),
                discovered: true,
                ..ServiceCounts::default()
            },
        );
    }
    b
}

/// The detector holds no more discovered names than the window tracks:
/// each name the window admitted (and later let go) kept its state and
/// baseline for an hour, 33 333 of them from three accounts.
#[test]
fn discovered_services_are_bounded_by_the_windows_cap() {
    let config = DetectorConfig {
        max_discovered: 3,
        ..DetectorConfig::default()
    };
    let mut detector = Detector::new(config);
    for i in 0..200 {
        detector.on_bucket(&with_discovered(i, &[format!("junk{i}")], 3));
        assert!(detector.service_count() <= 3, "bucket {i}");
    }
    // The most recently reported stay; the forgotten leave no baseline.
    let kept: Vec<&String> = detector.state.services.keys().collect();
    assert_eq!(kept, ["junk197", "junk198", "junk199"]);
    assert!(detector.baselines.keys().all(|id| kept.contains(&id)));
    assert!(detector.explain("junk0").is_none());
}

/// A discovered name with an open incident is not dropped to make room:
/// its alert resolves as any other's.
#[test]
fn a_discovered_incident_outlives_the_cap() {
    let config = DetectorConfig {
        max_discovered: 2,
        ..DetectorConfig::default()
    };
    let mut detector = Detector::new(config);
    let outage = ["outage".to_owned()];
    let mut kinds = Vec::new();
    for i in 0..12 {
        for t in detector.on_bucket(&with_discovered(i, &outage, 30)) {
            if t.kind != Updated {
                kinds.push(t.kind);
            }
        }
    }
    assert_eq!(kinds, [Firing], "the outage fires");
    for i in 12..200 {
        let names = [format!("junk{i}a"), format!("junk{i}b")];
        for t in detector.on_bucket(&with_discovered(i, &names, 3)) {
            if t.incident.service == "outage" && t.kind != Updated {
                kinds.push(t.kind);
            }
        }
    }
    assert_eq!(kinds, [Firing, Resolved], "and resolves amid junk");
    assert!(detector.service_count() <= 3);
}

/// An upstream incident's figures are its members' firings summed (the
/// firings of the bucket that formed the group), reports included: it
/// said 0 reports beside 40 authors. Its alert leaves out what belongs to
/// one series' model: the basis, the dispersion and the scale.
#[test]
fn an_upstream_incident_counts_what_its_members_fired_with() {
    let mut detector = Detector::new(DetectorConfig::default());
    let mut formed = None;
    for i in 0..130 {
        let mut b = Bucket {
            start: T0 + i * B,
            total_posts: 500,
            ..Bucket::default()
        };
        if (100..106).contains(&i) {
            for service in ["roblox", "venmo", "coinbase"] {
                b.services.insert(service.into(), reporters(i, service, 6));
            }
        }
        let transitions = detector.on_bucket(&b);
        if transitions
            .iter()
            .any(|t| t.kind == Firing && t.incident.service.starts_with("upstream:"))
        {
            formed = Some(transitions);
        }
    }
    let transitions = formed.expect("an upstream incident");
    let (group, members): (Vec<&Transition>, Vec<&Transition>) = transitions
        .iter()
        .filter(|t| t.kind == Firing)
        .partition(|t| t.incident.service.starts_with("upstream:"));
    let group = group[0];
    assert!(!members.is_empty());
    let sum = |f: fn(&Transition) -> f64| members.iter().map(|t| f(t)).sum::<f64>();
    assert_eq!(
        group.reports,
        members.iter().map(|t| t.reports).sum::<u64>()
    );
    assert!(
        group.reports >= group.authors && group.authors > 0,
        "{group:?}"
    );
    assert_eq!(
        group.authors,
        members.iter().map(|t| t.authors).sum::<u64>()
    );
    assert_eq!(group.expected, sum(|t| t.expected));
    assert_eq!(group.rate_per_min, sum(|t| t.rate_per_min));
    assert!(group.rate_per_min > 0.0);

    let alert = serde_json::to_value(crate::alert::Alert::from(group.clone())).expect("json");
    assert_eq!(alert["reports"], group.reports, "{alert}");
    for absent in ["basis", "dispersion", "scale_secs"] {
        assert!(alert.get(absent).is_none(), "{absent} in {alert}");
    }
    let member = serde_json::to_value(crate::alert::Alert::from(members[0].clone())).expect("json");
    for present in ["basis", "dispersion", "scale_secs", "expected"] {
        assert!(
            member.get(present).is_some(),
            "{present} missing in {member}"
        );
    }
}

/// The first firing transition of a series of buckets of `bucket_secs`,
/// `authors[i]` new authors in bucket `i`.
fn first_firing(config: DetectorConfig, authors: &[u64]) -> Option<Transition> {
    let bucket_us = config.bucket_secs * MICROS_PER_SEC;
    let mut detector = Detector::new(config);
    for (i, &n) in authors.iter().enumerate() {
        let mut b = bucket(i as i64, n, 1);
        b.start = T0 + i as i64 * bucket_us;
        let fired = detector
            .on_bucket(&b)
            .into_iter()
            .find(|t| t.kind == Firing);
        if fired.is_some() {
            return fired;
        }
    }
    None
}

/// A scale shorter than the window that fires gives its rates over its
/// own span: 8 authors in 10 s are 48 a minute against the prior's 0.2
/// (they were given over the whole minute: 8 and 0.033).
#[test]
fn a_short_scale_s_rates_are_per_minute_of_its_span() {
    let config = DetectorConfig {
        min_scale_secs: 10,
        ..DetectorConfig::default()
    };
    let prior = config.prior_per_min;
    let mut authors = vec![0; 150];
    authors.push(8);
    let t = first_firing(config, &authors).expect("fires");
    assert_eq!(t.incident.scale_secs, 10);
    assert_eq!(t.basis, Basis::Prior);
    assert!((t.rate_per_min - 48.0).abs() < 1e-9, "{}", t.rate_per_min);
    assert!(
        (t.baseline_per_min - prior).abs() < 1e-9,
        "{}",
        t.baseline_per_min
    );
}

/// A window shorter than a bucket is one bucket (the README's limits),
/// and its prior and rates are that bucket's: with 300 s buckets the
/// prior floor was worked out over 60 s, a fifth of what it is, and 6
/// authors in 5 minutes (1.2 a minute against 0.2) paged.
#[test]
fn a_window_shorter_than_a_bucket_is_judged_as_the_bucket() {
    let config = DetectorConfig {
        bucket_secs: 300,
        window_secs: 60,
        ..DetectorConfig::default()
    };
    let prior = config.prior_per_min;
    let quiet = vec![0; 24];
    let six = [quiet.clone(), vec![6]].concat();
    assert!(
        first_firing(config.clone(), &six).is_none(),
        "6 in 5 minutes"
    );
    let twelve = [quiet, vec![12]].concat();
    let t = first_firing(config, &twelve).expect("12 in 5 minutes fire");
    assert_eq!(t.incident.scale_secs, 300);
    assert!((t.rate_per_min - 2.4).abs() < 1e-9, "{}", t.rate_per_min);
    assert!(
        (t.baseline_per_min - prior).abs() < 1e-9,
        "{}",
        t.baseline_per_min
    );
}
