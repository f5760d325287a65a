//! The board's bounds, series and incident records.

use super::*;
use crate::detect::{Basis, TransitionKind};

fn status(service: &str, rate: f64, incident: bool) -> ServiceStatus {
    ServiceStatus {
        service: service.into(),
        reports: 1,
        authors: 1,
        rate_per_min: rate,
        expected_per_min: 0.2,
        fire_per_min: 10.0,
        p_value: 0.5,
        basis: Basis::Prior,
        last_report: 0,
        discovered: false,
        incident: incident.then(|| {
            crate::detect::Incident::open(
                service,
                0,
                crate::detect::Severity::Low,
                0.0,
                false,
                1,
                1,
                Basis::Prior,
            )
        }),
    }
}

fn bucket(start: Micros, service: &str, reports: u64) -> Bucket {
    let mut b = Bucket {
        start,
        ..Bucket::default()
    };
    b.services.insert(
        service.into(),
        crate::window::ServiceCounts {
            reports,
            ..Default::default()
        },
    );
    b
}

#[test]
fn series_are_per_minute_filled_and_bounded() {
    let mut board = Board::new(BoardLimits {
        minutes: 5,
        max_services: 2,
        ..BoardLimits::default()
    });
    let s = MICROS_PER_SEC;
    // Two buckets in minute 0, none in minute 1, one in minute 2.
    board.on_bucket(&bucket(0, "a", 2), vec![status("a", 2.0, false)], &[]);
    board.on_bucket(&bucket(10 * s, "a", 3), vec![status("a", 5.0, false)], &[]);
    board.on_bucket(&bucket(120 * s, "a", 1), vec![status("a", 1.0, false)], &[]);
    let series = board.series("a", 3).expect("a has a series");
    let reports: Vec<u64> = series.iter().map(|p| p.reports).collect();
    assert_eq!(reports, vec![5, 0, 1]);
    assert_eq!(series[0].rate_per_min, 5.0, "the minute's highest rate");
    assert_eq!(series[1].expected_per_min, 0.2, "gaps keep the expectation");
    // Ten minutes later the old points are gone (5 minutes kept).
    board.on_bucket(&bucket(720 * s, "a", 1), vec![status("a", 1.0, false)], &[]);
    assert_eq!(board.series.get("a").map(VecDeque::len), Some(1));
    // A third service pushes out the least recently active one.
    board.on_bucket(&bucket(730 * s, "b", 1), vec![status("b", 1.0, false)], &[]);
    board.on_bucket(&bucket(740 * s, "c", 1), vec![status("c", 1.0, false)], &[]);
    let names: Vec<&str> = board.series_names().collect();
    assert_eq!(names, vec!["b", "c"]);
    assert!(board.series("nope", 10).is_none());
}

#[test]
fn bound_keeps_the_recently_active_not_the_last_fed() {
    let mut board = Board::new(BoardLimits {
        max_services: 2,
        ..BoardLimits::default()
    });
    let s = MICROS_PER_SEC;
    let all = |incident_b: bool| {
        vec![
            status("a", 3.0, false),
            status("b", 0.0, incident_b),
            status("c", 0.0, false),
        ]
    };
    // Every bucket tracks all three; only "a" has reports.
    for i in 0..3 {
        board.on_bucket(&bucket(i * 60 * s, "a", 2), all(false), &[]);
    }
    let names: Vec<&str> = board.series_names().collect();
    assert!(names.contains(&"a"), "busy a kept: {names:?}");
    assert_eq!(names.len(), 2);
    let series = board.series("a", 3).expect("a has a series");
    assert_eq!(
        series.iter().map(|p| p.reports).collect::<Vec<_>>(),
        vec![2, 2, 2]
    );
    // A quiet service with an open incident keeps its chart.
    board.on_bucket(&bucket(3 * 60 * s, "a", 2), all(true), &[]);
    let names: Vec<&str> = board.series_names().collect();
    assert_eq!(names, vec!["a", "b"]);
}

#[test]
fn incidents_collect_alerts_and_keep_their_chart() {
    let mut board = Board::new(BoardLimits::default());
    let mut alert = crate::alert::format::sample_alert();
    alert.service = "a".into();
    alert.id = "a-1".into();
    alert.started_at = rfc3339(0);
    alert.at = rfc3339(30 * MICROS_PER_SEC);
    board.on_bucket(
        &bucket(0, "a", 4),
        vec![status("a", 8.0, true)],
        &[alert.clone()],
    );
    assert_eq!(board.incidents(false).len(), 1);
    let mut resolved = alert.clone();
    resolved.state = TransitionKind::Resolved;
    resolved.samples.clear();
    board.on_bucket(
        &bucket(60 * MICROS_PER_SEC, "a", 1),
        vec![status("a", 1.0, false)],
        &[resolved],
    );
    assert!(board.incidents(false).is_empty(), "resolved is not open");
    let record = board.incident("a-1").expect("kept");
    assert_eq!(record.alerts.len(), 2);
    assert!(
        !record.samples.is_empty(),
        "evidence of the firing alert kept"
    );
    assert_eq!(record.series.len(), 2, "chart covers both minutes");
    assert_eq!(board.alerts_by_state().get("resolved"), Some(&1));
    // A service that had an incident is not among the closest quiet ones.
    assert!(board.closest(10).iter().all(|c| c.service != "a"));
}
