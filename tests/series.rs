//! `outagewatch series`: the detector on a plain count series.

use std::fmt::Write as _;
use std::process::Command;

fn series_csv(minutes: i64, surge: std::ops::Range<i64>, surge_value: u64) -> String {
    let start = chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z").expect("time");
    let mut csv = String::from("timestamp,value\n");
    for i in 0..minutes {
        let t = start + chrono::Duration::minutes(i);
        // A steady background: 0, 1 or 2 a minute.
        let background = [0, 1, 0, 2, 1, 0, 1][(i % 7) as usize];
        let value = if surge.contains(&i) {
            surge_value
        } else {
            background
        };
        let stamp = if i % 2 == 0 {
            t.format("%Y-%m-%d %H:%M:%S").to_string()
        } else {
            t.to_rfc3339()
        };
        writeln!(csv, "{stamp},{value}").expect("write");
    }
    csv
}

#[test]
fn a_surge_in_a_count_series_is_one_incident_named_after_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("checkout_errors.csv");
    std::fs::write(&path, series_csv(3 * 24 * 60, 3000..3020, 40)).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .arg("series")
        .arg(&path)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let states: Vec<&str> = alerts.iter().filter_map(|a| a["state"].as_str()).collect();
    assert_eq!(states.first(), Some(&"firing"), "{alerts:#?}");
    assert_eq!(states.last(), Some(&"resolved"));
    assert_eq!(
        states.iter().filter(|s| **s == "firing").count(),
        1,
        "one incident, the surge: {alerts:#?}"
    );
    assert!(alerts.iter().all(|a| a["service"] == "checkout_errors"));
    // The surge starts at minute 3000: 2026-07-03T02:00:00Z.
    let at = alerts[0]["at"].as_str().expect("at");
    assert!(
        ("2026-07-03T02:00:00Z".."2026-07-03T02:02:00Z").contains(&at),
        "fired at {at}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bucket 60 s inferred"), "{stderr}");
}

#[test]
fn a_bad_series_names_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.csv");
    std::fs::write(
        &path,
        "timestamp,value\n2026-07-01 00:00:00,1\n2026-07-01 00:01:00,lots\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .arg("series")
        .arg(&path)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 3: value \"lots\" is not a number"),
        "{stderr}"
    );
}
