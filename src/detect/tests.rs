//! Table tests of the detector: count series in, incidents out.

use super::*;
use crate::window::ServiceCounts;

const T0: Micros = 1_783_173_600 * MICROS_PER_SEC;
const B: Micros = 10 * MICROS_PER_SEC;

/// Bucket `i` with `authors` distinct reporting authors for "svc", and
/// background volume. Authors posting once are new people in every bucket;
/// authors posting `posts_each` > 1 times are the same accounts throughout.
fn bucket(i: i64, authors: u64, posts_each: u64) -> Bucket {
    let mut b = Bucket {
        start: T0 + i * B,
        total_posts: 100,
        ..Bucket::default()
    };
    if authors > 0 {
        let mut names: Vec<String> = (0..authors)
            .map(|a| match posts_each {
                1 => format!("did:{i}:{a}"),
                _ => format!("did:repeat:{a}"),
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

/// Runs a series (authors per bucket) and returns (bucket index, kind) of
/// every transition.
fn run(detector: &mut Detector, series: &[(i64, u64, u64)]) -> Vec<(i64, TransitionKind)> {
    let mut out = Vec::new();
    for &(i, authors, each) in series {
        for t in detector.on_bucket(&bucket(i, authors, each)) {
            out.push(((t.at - T0) / B, t.kind));
        }
    }
    out
}

/// `n` buckets from `from` with the same count.
fn flat(from: i64, n: i64, authors: u64) -> Vec<(i64, u64, u64)> {
    (from..from + n).map(|i| (i, authors, 1)).collect()
}

/// A surge of about `per_min` new authors per minute.
fn surge(from: i64, n: i64, per_min: u64) -> Vec<(i64, u64, u64)> {
    (from..from + n)
        .map(|i| {
            (
                i,
                (per_min * (i - from + 1) as u64) / 6 - (per_min * (i - from) as u64) / 6,
                1,
            )
        })
        .collect()
}

fn cat(parts: &[Vec<(i64, u64, u64)>]) -> Vec<(i64, u64, u64)> {
    parts.concat()
}

use TransitionKind::{Firing, Resolved};

#[test]
fn detector_table() {
    struct Case {
        name: &'static str,
        series: Vec<(i64, u64, u64)>,
        expect: Vec<(i64, TransitionKind)>,
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
                flat(30, 10, 0)
                    .into_iter()
                    .map(|(i, _, _)| (i, 1, 20))
                    .collect(),
                flat(40, 60, 0),
            ]),
            expect: vec![],
        },
        Case {
            // 10 authors a minute: 6 are in the window after ~36 s.
            name: "cold start surge of 10 authors per minute fires within 60 s and resolves",
            series: cat(&[flat(0, 6, 0), surge(6, 30, 10), flat(36, 60, 0)]),
            expect: vec![(9, Firing), (70, Resolved)],
        },
        Case {
            name: "a dip of one bucket keeps one incident",
            series: cat(&[
                surge(0, 12, 30),
                flat(12, 1, 0),
                surge(13, 12, 30),
                flat(25, 60, 0),
            ]),
            expect: vec![(1, Firing), (60, Resolved)],
        },
        Case {
            name: "cooldown holds back a second surge right after",
            series: cat(&[
                surge(0, 12, 30),
                flat(12, 38, 0),
                surge(50, 6, 30),
                flat(56, 60, 0),
            ]),
            expect: vec![(1, Firing), (47, Resolved)],
        },
        Case {
            name: "after the cooldown a new surge is a new incident",
            series: cat(&[
                surge(0, 12, 30),
                flat(12, 100, 0),
                surge(112, 12, 30),
                flat(124, 60, 0),
            ]),
            expect: vec![(1, Firing), (47, Resolved), (113, Firing), (159, Resolved)],
        },
    ];
    for case in cases {
        let mut detector = Detector::new(DetectorConfig::default());
        let got = run(&mut detector, &case.series);
        assert_eq!(got, case.expect, "{}", case.name);
    }
}

#[test]
fn steadily_elevated_service_is_learned_and_then_alerts_only_when_it_jumps() {
    let mut detector = Detector::new(DetectorConfig::default());
    // A day of about 3 authors per bucket (18 a minute). A brand-new
    // detector cannot know that is normal and fires once; the level is
    // then learned and the incident resolves, with no second incident.
    let busy: Vec<_> = (0..8640).map(|i| (i, 2 + (i % 3) as u64, 1)).collect();
    let got = run(&mut detector, &busy);
    let kinds: Vec<TransitionKind> = got.iter().map(|t| t.1).collect();
    assert_eq!(kinds, vec![Firing, Resolved], "{got:?}");
    assert!(got[1].0 < 8640 - 360, "learned within the day: {got:?}");
    // Another six hours at the same level: nothing.
    let more: Vec<_> = (8640..10800).map(|i| (i, 2 + (i % 3) as u64, 1)).collect();
    assert_eq!(
        run(&mut detector, &more),
        vec![],
        "the elevated level is normal now"
    );
    let jump: Vec<_> = (10800..10812).map(|i| (i, 40, 1)).collect();
    let got = run(&mut detector, &jump);
    assert_eq!(
        got.first().map(|t| t.1),
        Some(Firing),
        "a tenfold jump fires: {got:?}"
    );
}

#[test]
fn incident_survives_a_snapshot_and_restore() {
    let mut detector = Detector::new(DetectorConfig::default());
    let fired = run(&mut detector, &surge(0, 12, 30));
    assert_eq!(fired, vec![(1, Firing)]);
    let saved = detector.snapshot();
    let mut restored = Detector::restore(DetectorConfig::default(), &saved).expect("restore");
    assert_eq!(restored.open_incidents().count(), 1);
    let rest = run(&mut restored, &flat(12, 60, 0));
    assert_eq!(rest, vec![(47, Resolved)], "resolved once, not fired again");
}

#[test]
fn severity_grows_with_the_evidence() {
    assert_eq!(Severity::grade(5.0, 6, 5), Severity::Low);
    assert_eq!(Severity::grade(20.0, 20, 5), Severity::Medium);
    assert_eq!(Severity::grade(80.0, 60, 5), Severity::High);
    assert_eq!(
        Severity::grade(80.0, 6, 5),
        Severity::Low,
        "few authors cap it"
    );
    assert!(Severity::Low < Severity::High);
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
        let authors: Vec<String> = (0..20).map(|a| format!("did:bot:{i}:{a}")).collect();
        let mut sorted = authors.clone();
        sorted.sort();
        b.services.insert(
            "svc".into(),
            ServiceCounts {
                reports: 20,
                copies: sorted.iter().map(|a| (42, a.clone())).collect(),
                authors: sorted,
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
