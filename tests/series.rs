//! `outagewatch series`: the detector on a plain series (counts and gauges).

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

/// `outagewatch series ARGS... PATH`, which must succeed.
fn series(args: &[&str], path: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .arg("series")
        .args(args)
        .arg(path)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `outagewatch series ARGS... PATH` on a file holding `csv`, which must
/// fail: its error output.
fn refused(args: &[&str], name: &str, csv: &str) -> String {
    let (_dir, path) = csv_file(name, csv);
    let out = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .arg("series")
        .args(args)
        .arg(&path)
        .output()
        .expect("runs");
    assert!(!out.status.success(), "{csv} must be refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A file `name` holding `contents` in a new temporary directory, which
/// lives as long as the returned handle.
fn csv_file(name: &str, contents: impl AsRef<[u8]>) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, contents).expect("write");
    (dir, path)
}

/// The rows of `--explain`'s CSV, its header left out, each split into
/// its fields.
fn explain_rows(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect()
}

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
    let (_dir, path) = csv_file(
        "checkout_errors.csv",
        series_csv(3 * 24 * 60, 3000..3020, 40),
    );
    let out = series(&[], &path);
    let alerts = alerts(&out);
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
    let stderr = refused(
        &[],
        "bad.csv",
        "timestamp,value\n2026-07-01 00:00:00,1\n2026-07-01 00:01:00,lots\n",
    );
    assert!(
        stderr.contains("line 3: value \"lots\" is not a number"),
        "{stderr}"
    );
    // Times a series may not hold, refused with a message, never a panic
    // (the detector's µs arithmetic overflowed on rows 500 years apart,
    // and subtracting two signed extended years did too).
    let centuries = "timestamp,value\n1000-01-01 00:00:00,100\n1500-01-01 00:00:00,100\n2000-01-01 00:00:00,100\n";
    let extended = "timestamp,value\n+200000-01-01 00:00:00,1\n-200000-01-01 00:00:00,1\n";
    for (name, csv, want) in [
        ("centuries.csv", centuries, "line 2"),
        ("extended.csv", extended, "line 2"),
    ] {
        let stderr = refused(&[], name, csv);
        assert!(stderr.contains(want), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
    // Within 1970 to 9999 but a millennium apart: the bucket is refused.
    let millennia =
        "timestamp,value\n1970-01-01 00:00:00,1\n3000-01-01 00:00:00,1\n4000-01-01 00:00:00,1\n";
    let stderr = refused(&[], "millennia.csv", millennia);
    assert!(stderr.contains("give --bucket-secs"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn explain_prints_one_row_per_bucket_with_the_band_and_the_firing() {
    let (_dir, path) = csv_file("errors.csv", series_csv(3 * 24 * 60, 3000..3020, 40));
    let out = series(&["--explain"], &path);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("timestamp,value,count,expected,upper,p_value,dispersion,basis,state,lower")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3 * 24 * 60, "one row per bucket");
    let firing: Vec<&Vec<&str>> = rows.iter().filter(|r| r[8] == "firing").collect();
    assert_eq!(firing.len(), 1, "the surge fires once");
    let row = firing[0];
    let count: u64 = row[2].parse().expect("count");
    let upper: u64 = row[4].parse().expect("upper");
    let p: f64 = row[5].parse().expect("p");
    assert!(count >= upper, "fires at or above the band: {row:?}");
    assert!(p <= 1e-5, "{row:?}");
    // A quiet row sits inside the band.
    let quiet = &rows[2000];
    let count: u64 = quiet[2].parse().expect("count");
    let upper: u64 = quiet[4].parse().expect("upper");
    assert!(count < upper, "{quiet:?}");
    // A count of a few a minute has no lower edge: no fall of it is rare.
    assert_eq!(quiet[9], "", "{quiet:?}");
}

/// `--explain` writes numbers far from 1 in exponent notation (a reading of
/// 1e300 was 301 digits, 1e-7 was 0.0000001), and leaves `upper` empty
/// where no count would fire: a gauge before its level is known (it read
/// 18446744073709551615).
#[test]
fn explain_numbers_far_from_one_and_a_band_not_yet_drawn() {
    let (_dir, path) = csv_file(
        "extremes.csv",
        "timestamp,value\n2024-01-01 00:00:00,1e300\n2024-01-01 00:05:00,0.0000001\n2024-01-01 00:10:00,12.5\n",
    );
    let out = series(&["--explain", "--kind", "gauge"], &path);
    let text = String::from_utf8_lossy(&out.stdout);
    let rows = explain_rows(&text);
    let values: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(values, ["1e300", "1e-7", "12.5"], "{text}");
    for row in &rows {
        assert_eq!(row[7], "prior", "{row:?}");
        assert_eq!(
            row[4], "",
            "no count fires before the level is known: {row:?}"
        );
        // Nor does one: the reading of 1e300 saturates its count at the
        // largest there is, which fired against the warm-up's line of
        // that same number.
        assert_eq!(row[8], "", "{row:?}");
        let expected: f64 = row[3].parse().expect("expected");
        assert!(row[3].len() <= 12 && expected.is_finite(), "{row:?}");
    }
}

#[test]
fn a_gauge_and_an_authors_column_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A gauge around 0.5 with a tenfold spike; and the same counts with
    // authors saying one account made them all.
    let start = chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z").expect("time");
    let mut gauge = String::from("timestamp,value\n");
    let mut one_author = String::from("timestamp,value,authors\n");
    for i in 0..2000i64 {
        let t = (start + chrono::Duration::minutes(i)).to_rfc3339();
        let v = if (1500..1510).contains(&i) {
            5.0
        } else {
            0.5 + 0.01 * (i % 5) as f64
        };
        writeln!(gauge, "{t},{v}").expect("write");
        let c = if (1500..1510).contains(&i) { 40 } else { i % 2 };
        writeln!(one_author, "{t},{c},{}", u64::from(c > 0)).expect("write");
    }
    let run = |name: &str, csv: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, csv).expect("write");
        // A brand-new detector knows no level: a count whose first rows
        // already stand far above the prior fires once at its very start
        // (the cold start, as `run`).
        let (firing, stderr) = firings(&[], &path, start);
        (
            firing.into_iter().filter(|m| *m > 10).collect::<Vec<_>>(),
            stderr,
        )
    };
    let (firing, stderr) = run("gauge.csv", &gauge);
    assert_eq!(
        firing.len(),
        1,
        "the gauge's spike fires once: {firing:?} {stderr}"
    );
    assert!((1500..1512).contains(&firing[0]), "{firing:?}");
    assert!(stderr.contains("gauge scaled by"), "{stderr}");
    let (firing, stderr) = run("one_author.csv", &one_author);
    assert!(
        firing.is_empty(),
        "one author a minute never fires: {firing:?} {stderr}"
    );
}

/// A count exported without its zero rows: the missing minutes are quiet
/// buckets, one explain row each, so the window (which is time) and its
/// expectation see them as the daemon would.
#[test]
fn missing_rows_are_quiet_buckets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sparse.csv");
    let full = series_csv(600, 0..0, 0);
    // Drop every row whose value is 0 (a third of them), keeping the first
    // and the last so the span is the same.
    let mut lines: Vec<&str> = full.lines().collect();
    let last = lines.pop().expect("rows");
    let kept: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| *i <= 1 || !l.ends_with(",0"))
        .map(|(_, l)| *l)
        .chain([last])
        .collect();
    assert!(kept.len() < 500, "rows were dropped: {}", kept.len());
    std::fs::write(&path, kept.join("\n") + "\n").expect("write");
    let out = series(&["--explain", "--bucket-secs", "60"], &path);
    let text = String::from_utf8_lossy(&out.stdout);
    let rows = explain_rows(&text);
    assert_eq!(rows.len(), 600, "one row per minute, missing ones too");
    let quiet = rows.iter().filter(|r| r[1] == "0").count();
    assert!(
        quiet > 150,
        "the dropped rows come back as quiet buckets: {quiet}"
    );
    assert!(rows.iter().all(|r| r[8] != "firing"), "a steady series");
}

/// Firing times of `series ARGS PATH`, in minutes from `start`, and what
/// it printed on stderr.
fn firings(
    args: &[&str],
    path: &Path,
    start: chrono::DateTime<chrono::FixedOffset>,
) -> (Vec<i64>, String) {
    let out = series(args, path);
    let firing = alerts(&out)
        .iter()
        .filter(|a| a["state"] == "firing")
        .map(|a| minute_of(a, start))
        .collect();
    (firing, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The alerts a `series` run printed, one JSON object a line.
fn alerts(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// Minutes from `start` to an alert's `at`.
fn minute_of(alert: &serde_json::Value, start: chrono::DateTime<chrono::FixedOffset>) -> i64 {
    let at =
        chrono::DateTime::parse_from_rfc3339(alert["at"].as_str().expect("at")).expect("rfc3339");
    (at - start).num_minutes()
}

/// A series of `rows` readings five minutes apart from 2026-07-01T00:00Z,
/// row `i` holding `value(i)`.
fn five_minutely(rows: i64, value: impl Fn(i64) -> String) -> String {
    let start = chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z").expect("time");
    let mut csv = String::from("timestamp,value\n");
    for i in 0..rows {
        let t = (start + chrono::Duration::minutes(5 * i)).to_rfc3339();
        writeln!(csv, "{t},{}", value(i)).expect("write");
    }
    csv
}

/// A latency gauge (about 45 ms, ±2 %) that doubles for two hours on its
/// seventh day: far outside its own spread, though short of the fourfold
/// rise a count of reports must make. As a gauge (its values are
/// fractional) it fires on the rise, and only there; read as a count, the
/// ratio test holds it back, as it does a busy service's ordinary swing.
#[test]
fn a_gauge_is_judged_by_its_spread_not_by_a_ratio() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latency.csv");
    let start = chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z").expect("time");
    let rise = 6 * 24 * 12 + 100..6 * 24 * 12 + 124;
    let csv = five_minutely(8 * 24 * 12, |i| {
        let noise = [0.0, 0.6, -0.4, 0.9, -0.8, 0.3, -0.5][(i % 7) as usize];
        let v = 45.0 + noise + if rise.contains(&i) { 45.0 } else { 0.0 };
        format!("{v:.1}")
    });
    std::fs::write(&path, csv).expect("write");
    // One incident, the rise: a gauge is not judged before its level is
    // known, so its first rows do not fire either.
    let (as_gauge, _) = firings(&[], &path, start);
    let onset = rise.start * 5;
    assert_eq!(as_gauge.len(), 1, "one incident, the rise: {as_gauge:?}");
    assert!(
        (onset..onset + 30).contains(&as_gauge[0]),
        "fired at minute {} for a rise at {onset}",
        as_gauge[0]
    );
    // The same readings in whole milliseconds, read as a count (a count
    // is whole numbers: `--kind count` refuses 45.6).
    let whole = dir.path().join("latency_whole.csv");
    let csv = five_minutely(8 * 24 * 12, |i| {
        let noise = [0, 1, 0, 1, -1, 0, -1][(i % 7) as usize];
        (45 + noise + if rise.contains(&i) { 45 } else { 0 }).to_string()
    });
    std::fs::write(&whole, csv).expect("write");
    let (as_count, _) = firings(&["--kind", "count"], &whole, start);
    // Only the count's cold start.
    let as_count: Vec<i64> = as_count.into_iter().filter(|m| *m > 10).collect();
    assert!(
        as_count.is_empty(),
        "a third more is no fourfold rise: {as_count:?}"
    );
}

/// A request latency (about 100 ms, ±10) with one reading of 190 on its
/// sixth day: a gauge is judged from one reading up, and that reading
/// alone is far outside the spread, so it fires at that row, though the
/// whole window it sits in (five ordinary readings and this one) stays
/// below the window's firing line (`--explain`'s `upper`, which is the
/// window's). A neighbouring ordinary day fires nothing.
#[test]
fn one_reading_far_outside_a_gauge_s_spread_fires_at_that_reading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latency.csv");
    let start = chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z").expect("time");
    let odd = 5 * 24 * 12 + 150;
    let csv = five_minutely(7 * 24 * 12, |i| {
        let noise = [0.0, 9.3, -7.1, 11.4, -10.2, 4.6, -6.8][(i % 7) as usize];
        let v = if i == odd { 190.0 } else { 100.0 + noise };
        format!("{v:.1}")
    });
    std::fs::write(&path, csv).expect("write");
    let (fired, _) = firings(&[], &path, start);
    // An alert's `at` is the end of the bucket that fired.
    assert_eq!(fired, vec![odd * 5 + 5], "one firing, at the odd reading");
    let explain = series(&["--explain"], &path);
    let text = String::from_utf8_lossy(&explain.stdout);
    let row: Vec<&str> = text
        .lines()
        .nth(1 + odd as usize)
        .expect("the odd row")
        .split(',')
        .collect();
    assert_eq!(row[8], "firing", "{row:?}");
    let (count, upper): (u64, u64) = (
        row[2].parse().expect("count"),
        row[4].parse().expect("upper"),
    );
    assert!(
        count < upper,
        "the window alone would not fire: {row:?} (window count {count}, line {upper})"
    );
}

/// A road's mean speed (about 62 km/h, ±2) that falls to a quarter for
/// two hours on its sixth day (a closure): a fall is news as a rise is, so
/// it fires once, an alert marked `direction: down` that resolves when the
/// speed is back. Told to judge rises only (`--directions up`, as the
/// daemon judges outage reports), it stays quiet.
#[test]
fn a_gauge_falling_away_fires_one_incident_marked_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("speed.csv");
    let start = chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z").expect("time");
    let fall = 5 * 24 * 12 + 96..5 * 24 * 12 + 120;
    let csv = five_minutely(7 * 24 * 12, |i| {
        let noise = [0.0, 1.4, -0.9, 2.1, -1.7, 0.6, -1.2][(i % 7) as usize];
        let v = if fall.contains(&i) { 15.0 } else { 62.0 } + noise;
        format!("{v:.1}")
    });
    std::fs::write(&path, csv).expect("write");
    let alerts = alerts(&series(&[], &path));
    let states: Vec<(&str, &str)> = alerts
        .iter()
        .map(|a| {
            (
                a["state"].as_str().unwrap_or("?"),
                a["direction"].as_str().unwrap_or("up, as it is left out"),
            )
        })
        .collect();
    assert_eq!(
        states.first(),
        Some(&("firing", "down")),
        "the fall fires first: {states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| s.0 == "firing").count(),
        1,
        "one incident: {states:?}"
    );
    assert_eq!(states.last(), Some(&("resolved", "down")), "{states:?}");
    let onset = fall.start * 5;
    let minute = minute_of(&alerts[0], start);
    assert!(
        (onset..onset + 30).contains(&minute),
        "fired at minute {minute} for a fall at {onset}"
    );
    let (rises_only, _) = firings(&["--directions", "up"], &path, start);
    assert!(rises_only.is_empty(), "a fall is no rise: {rises_only:?}");
    // `--explain`: a window wholly inside the fall stands at or below the
    // band's lower edge, and an ordinary row above it. (The row that fires
    // may be judged at a shorter scale than the whole window, which the
    // columns describe: a gauge is judged from one reading up.)
    let explain = series(&["--explain"], &path);
    let text = String::from_utf8_lossy(&explain.stdout);
    let rows = explain_rows(&text);
    let edge = |row: &[&str]| -> (u64, u64) {
        let count = row[2].parse().expect("count");
        let lower = row[9].parse().expect("a lower edge");
        (count, lower)
    };
    let firing = rows
        .iter()
        .position(|r| r[8] == "firing")
        .expect("a firing row");
    assert!(
        (fall.start as usize..fall.end as usize).contains(&firing),
        "fired at row {firing} for a fall over rows {fall:?}"
    );
    let inside = &rows[fall.start as usize + 12];
    let (count, lower) = edge(inside);
    assert!(count <= lower, "{inside:?}");
    let (count, lower) = edge(&rows[4 * 24 * 12]);
    assert!(count > lower, "{:?}", rows[4 * 24 * 12]);
}

/// Falls in a count: a busy count (rides, requests: about 900 every 5
/// minutes with a daily rhythm) that falls to a fifth for three hours on
/// its eighth day fires one incident marked down, while a sparse count of
/// reports (0 to 2 a minute) falling silent for ten hours fires nothing:
/// even over a window of 12 minutes, which expects about 8.6 (more than
/// `min_authors`, so the significance tests decide), silence has a chance
/// of e^-8.6, far from rare.
#[test]
fn a_busy_count_falling_away_fires_and_a_sparse_one_falling_silent_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z").expect("time");
    let busy = dir.path().join("rides.csv");
    let fall = 7 * 288 + 120..7 * 288 + 156;
    let csv = five_minutely(9 * 288, |i| {
        let hour = (i % 288) as f64 / 12.0;
        let daily = 900.0 + 300.0 * (hour / 24.0 * std::f64::consts::TAU).sin();
        let noise = [0.0, 25.0, -18.0, 31.0, -27.0, 9.0, -14.0][(i % 7) as usize];
        let v = (daily + noise) * if fall.contains(&i) { 0.2 } else { 1.0 };
        format!("{}", v.round())
    });
    std::fs::write(&busy, csv).expect("write");
    let firing: Vec<serde_json::Value> = alerts(&series(&[], &busy))
        .into_iter()
        .filter(|a| a["state"] == "firing")
        .collect();
    let downs: Vec<&serde_json::Value> =
        firing.iter().filter(|a| a["direction"] == "down").collect();
    // Within the window (6 buckets): a count's window must fall to a
    // quarter of its expectation (`fire_ratio`), as a rise must reach 4×.
    assert_eq!(downs.len(), 1, "one fall: {firing:#?}");
    let minute = minute_of(downs[0], start);
    assert!(
        (fall.start * 5..=fall.start * 5 + 30).contains(&minute),
        "fired at minute {minute} for a fall at {}",
        fall.start * 5
    );
    let sparse = dir.path().join("reports.csv");
    std::fs::write(&sparse, series_csv(4 * 24 * 60, 3000..3600, 0)).expect("write");
    let args = ["--window-buckets", "12"];
    let downs: Vec<serde_json::Value> = alerts(&series(&args, &sparse))
        .into_iter()
        .filter(|a| a["direction"] == "down")
        .collect();
    assert!(
        downs.is_empty(),
        "a sparse count falling silent: {downs:#?}"
    );
    // The silence was tested, not passed over for want of an expectation:
    // a whole window of it (from minute 3012) expected more than 5 for its
    // first 12 minutes, before the level learned the quiet.
    let explain = series(&["--explain", "--window-buckets", "12"], &sparse);
    let text = String::from_utf8_lossy(&explain.stdout);
    let silent_expected: Vec<f64> = text
        .lines()
        .skip(1 + 3012)
        .take(12)
        .map(|l| {
            l.split(',')
                .nth(3)
                .expect("expected")
                .parse()
                .expect("number")
        })
        .collect();
    assert!(
        silent_expected.iter().all(|e| *e >= 5.0),
        "{silent_expected:?}"
    );
}

/// A sampled gauge with readings missing for hours at a time: a missing
/// reading is no reading, so nothing fires when the readings come back,
/// and `--explain` has a row per reading. Told the gaps are quiet (value
/// 0), the same file has quiet rows and its returns stand out.
#[test]
fn a_gauge_s_missing_rows_are_no_readings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("occupancy.csv");
    let start = chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z").expect("time");
    let mut csv = String::from("timestamp,value\n");
    let mut rows = 0;
    for i in 0..6 * 24 * 12i64 {
        // Readings drop out for 2 to 5 hours now and then, at no fixed hour.
        let hour = i / 12;
        if hour % 11 >= 8 && hour % 11 < 8 + (hour / 11) % 4 + 1 {
            continue;
        }
        let t = (start + chrono::Duration::minutes(5 * i)).to_rfc3339();
        let v = 6.5 + [0.0, 0.2, -0.1, 0.3, -0.3, 0.1][(i % 6) as usize];
        writeln!(csv, "{t},{v:.2}").expect("write");
        rows += 1;
    }
    std::fs::write(&path, csv).expect("write");
    assert!(rows < 6 * 24 * 12 - 100, "readings are missing: {rows}");
    let (fired, _) = firings(&[], &path, start);
    assert!(fired.is_empty(), "a steady gauge with gaps: {fired:?}");
    let explain = series(&["--explain"], &path);
    let text = String::from_utf8_lossy(&explain.stdout);
    assert_eq!(text.lines().count(), rows + 1, "a row per reading");
    let quiet = series(&["--explain", "--gaps", "quiet"], &path);
    let text = String::from_utf8_lossy(&quiet.stdout);
    let zeros = text
        .lines()
        .filter(|l| l.split(',').nth(1) == Some("0"))
        .count();
    assert!(
        zeros > 100,
        "--gaps quiet fills the gaps with zeros: {zeros}"
    );
}

/// A travel time in whole seconds read by a roadside sensor at irregular
/// times (7 to 13 minutes apart, at no fixed second; the bucket inferred
/// as about 10 minutes): whole numbers, but readings of a level, not
/// counts per bucket, as their times off the bucket grid say. Read as a
/// gauge, two readings in one bucket are averaged (their sum was a
/// "surge" of twice the level), a bucket without a reading is no reading
/// (not a quiet zero) and only the real rise, the travel time tripling for
/// two hours, fires.
#[test]
fn whole_number_readings_at_irregular_times_are_a_gauge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("travel_time.csv");
    let start = chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z").expect("time");
    let rise = 6 * 86_400 + 36_000..6 * 86_400 + 43_200;
    let mut csv = String::from("timestamp,value\n");
    let (mut second, mut onset, mut readings) = (0i64, None, 0);
    for i in 0i64.. {
        if second >= 8 * 86_400 {
            break;
        }
        let in_rise = rise.contains(&second);
        if in_rise && onset.is_none() {
            onset = Some(second / 60);
        }
        let noise = [0, 12, -9, 20, -15, 6, -4][(i % 7) as usize];
        let v = 300 + noise + if in_rise { 600 } else { 0 };
        let t = (start + chrono::Duration::seconds(second)).to_rfc3339();
        writeln!(csv, "{t},{v}").expect("write");
        readings += 1;
        second += 420 + i * 7919 % 360;
    }
    std::fs::write(&path, csv).expect("write");
    let onset = onset.expect("the rise is sampled");
    let (fired, stderr) = firings(&[], &path, start);
    assert!(stderr.contains("gauge scaled by"), "{stderr}");
    assert_eq!(fired.len(), 1, "one incident, the rise: {fired:?}");
    assert!(
        (onset..onset + 60).contains(&fired[0]),
        "fired at minute {} for a rise at {onset}",
        fired[0]
    );
    // Two readings in one bucket are one reading, their mean: fewer rows
    // than readings, and none above the highest reading.
    let explain = series(&["--explain"], &path);
    let values: Vec<f64> = String::from_utf8_lossy(&explain.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).expect("value").parse().expect("number"))
        .collect();
    assert!(
        values.len() < readings,
        "{} rows, {readings} readings",
        values.len()
    );
    assert!(
        values.iter().all(|v| (285.0..=920.0).contains(v)),
        "averaged, never summed: {:?}",
        values.iter().copied().fold(0.0, f64::max)
    );
}

#[test]
fn a_series_spanning_too_many_buckets_is_refused_with_the_way_out() {
    let far = "timestamp,value\n2000-01-01 00:00:00,1\n2000-01-01 00:00:01,2\n2000-01-01 00:00:02,1\n2099-01-01 00:00:00,1\n";
    let stderr = refused(&[], "far.csv", far);
    assert!(
        stderr.contains("more than the 10000000 a series may have; give a wider --bucket-secs"),
        "{stderr}"
    );
    let stderr = refused(&["--bucket-secs", "40000000"], "far.csv", far);
    assert!(
        stderr.contains("--bucket-secs") && stderr.contains("not in 1..=31622400"),
        "{stderr}"
    );
    let (_dir, path) = csv_file("far.csv", far);
    let wide = series(&["--bucket-secs", "86400"], &path);
    let stderr = String::from_utf8_lossy(&wide.stderr);
    assert!(stderr.contains("bucket 86400 s given"), "{stderr}");
}

// Found in a review of `series` (each failed before its fix).

/// A `--min-count` so large that the severity's lines (3 and 10 times it)
/// overflowed panicked at a firing; 0 is refused as a usage error.
#[test]
fn a_huge_min_count_is_read_and_zero_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.csv");
    // Near the largest count (2^64 − 1), over three times the minimum;
    // ten times it overflows.
    let csv = five_minutely(40, |i| {
        if i == 30 {
            "18000000000000000000".into()
        } else {
            "0".into()
        }
    });
    std::fs::write(&path, csv).expect("write");
    let out = series(&["--min-count", "2000000000000000000"], &path);
    let fired = alerts(&out);
    assert_eq!(fired.len(), 1, "1.8e19 passes the minimum: {fired:?}");
    assert_eq!(fired[0]["severity"], "medium", "{fired:?}");
    let stderr = refused(
        &["--min-count", "0"],
        "zero.csv",
        "timestamp,value\n2026-07-01 00:00:00,1\n2026-07-01 00:05:00,1\n",
    );
    assert!(stderr.contains("--min-count"), "{stderr}");
}

/// The window the configuration sets is bounded as `--window-buckets` is
/// (a one-second bucket and a day's window is 86,400 buckets), and the
/// buckets times the window's scales are bounded together: two rows 19
/// years apart at a minute's width and a 10,000-bucket window were 14
/// hours of work.
#[test]
fn a_series_s_work_is_bounded_with_the_way_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("wide.toml");
    // The daemon's own file: its secrets (`${VAR}`) are not set where a
    // series is scored, and `series` reads only `[window]` and
    // `[detector]` of it.
    std::fs::write(
        &config,
        "[window]\nbucket_secs = 1\n[detector]\nwindow_secs = 86400\n\
         [[sources]]\nkind = \"mastodon\"\nname = \"m\"\n\
         urls = [\"wss://mastodon.example/api/v1/streaming\"]\n\
         token = \"${OUTAGEWATCH_TEST_SURELY_UNSET}\"\n",
    )
    .expect("write");
    let csv = five_minutely(300, |i| (20 + i % 20).to_string());
    let config_arg = config.to_string_lossy().into_owned();
    let stderr = refused(&["--config", &config_arg], "c300.csv", &csv);
    assert!(
        stderr.contains("the configuration's window is 86400 buckets")
            && stderr.contains("give --window-buckets"),
        "{stderr}"
    );
    let path = dir.path().join("c300.csv");
    std::fs::write(&path, &csv).expect("write");
    series(&["--config", &config_arg, "--window-buckets", "12"], &path);

    let two = "timestamp,value\n2000-01-01 00:00:00,1\n2019-01-05 00:00:00,1\n";
    let stderr = refused(
        &["--bucket-secs", "60", "--window-buckets", "10000"],
        "two.csv",
        two,
    );
    assert!(
        stderr.contains("steps, more than the 1000000000 a series may take")
            && stderr.contains("--window-buckets"),
        "{stderr}"
    );
}

/// `--kind auto` reads the rows' own grid: per-minute counts put in
/// 10-minute buckets are summed as counts, not averaged as a gauge's
/// readings because they stand off the wider grid.
#[test]
fn counts_in_wider_buckets_stay_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("min.csv");
    let start = chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z").expect("time");
    let mut csv = String::from("timestamp,value\n");
    for i in 0..24 * 60 {
        let t = start + chrono::Duration::minutes(i);
        let value = if (600..630).contains(&i) { 60 } else { 5 };
        writeln!(csv, "{},{value}", t.to_rfc3339()).expect("write");
    }
    std::fs::write(&path, csv).expect("write");
    let out = series(&["--bucket-secs", "600", "--explain"], &path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("gauge"), "{stderr}");
    let text = String::from_utf8_lossy(&out.stdout);
    let values: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(values.first(), Some(&"50"), "ten minutes of 5 summed");
    assert!(
        values.contains(&"600"),
        "ten minutes of 60 summed: {values:?}"
    );
}

/// `--explain`'s `upper` is the count that would fire, warm-up included:
/// while the detector warms up it needs more authors, and rows at and
/// above the printed `upper` did not fire.
#[test]
fn explain_s_upper_includes_the_warm_up() {
    let (_dir, path) = csv_file(
        "warm.csv",
        "timestamp,value\n2026-07-01 00:00:00,0\n2026-07-01 00:01:00,0\n2026-07-01 00:02:00,0\n2026-07-01 00:03:00,2\n2026-07-01 00:04:00,2\n2026-07-01 00:05:00,2\n2026-07-01 00:06:00,2\n2026-07-01 00:07:00,2\n2026-07-01 00:08:00,2\n2026-07-01 00:09:00,2\n",
    );
    let out = series(&["--explain"], &path);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut checked = 0;
    for line in text.lines().skip(1) {
        let row: Vec<&str> = line.split(',').collect();
        if row[4].is_empty() {
            // No report in the window yet: nothing tested.
            continue;
        }
        let count: u64 = row[2].parse().expect("count");
        let upper: u64 = row[4].parse().expect("upper");
        let fired = matches!(row[8], "firing" | "open");
        assert!(
            fired || count < upper,
            "a row at or above `upper` that does not fire: {line}"
        );
        checked += 1;
    }
    assert_eq!(checked, 7, "{text}");
    assert!(text.contains("firing"), "the rise fires in the end: {text}");
}

/// What a series' values may be, each refused with the row or the time it
/// stands at, and bounded: a count is a whole number below 2^64 (`--kind
/// count` rounded 0.4 to nothing in silence, and 1.5e308 was read as
/// u64::MAX reports), authors are at most the value they are behind (500
/// beside a value of 0 fired `high`), a gauge's readings are scaled
/// without overflow either way (1.5e308 averaged to infinity, a median of
/// 1e-310 made the factor infinite and fired at the second row), and a
/// line is at most 4096 bytes (a file without line breaks grew without
/// bound). A field is echoed at most 64 characters long.
#[test]
fn a_series_values_are_checked_and_bounded() {
    let two = |a: &str, b: &str| {
        format!("timestamp,value\n2026-07-01 00:00:00,{a}\n2026-07-01 00:01:00,{b}\n")
    };
    let long_value = "7".repeat(100_000);
    let cases: Vec<(&str, &[&str], String, &str)> = vec![
        (
            "fraction",
            &["--kind", "count"],
            two("0.4", "1"),
            "the value at 2026-07-01T00:00:00Z, 0.4, is not a whole number",
        ),
        (
            "too large",
            &["--kind", "count"],
            two("1", "1.5e308"),
            "1.5e308, is 2^64 or more",
        ),
        (
            "authors",
            &[],
            "timestamp,value,authors\n2026-07-01 00:00:00,0,500\n2026-07-01 00:01:00,1,1\n".into(),
            "line 2: authors 500 is more than the value 0",
        ),
        (
            // Compared as whole numbers: as floats these two are equal.
            "authors past 2^53",
            &[],
            "timestamp,value,authors\n2026-07-01 00:00:00,9007199254740992,9007199254740993\n2026-07-01 00:01:00,1,1\n".into(),
            "line 2: authors 9007199254740993 is more than the value 9007199254740992",
        ),
        (
            "tiny gauge",
            &["--kind", "gauge"],
            two("1e-310", "1e-310"),
            "median reading, 1e-310, is too small to scale",
        ),
        (
            "as written",
            &[],
            two("1", "1e400"),
            "line 3: value 1e400 is not a count",
        ),
        (
            "long line",
            &[],
            two("1", &long_value),
            "line 3: a row longer than 4096 bytes",
        ),
        (
            // Short lines inside one quoted field are one row: it was
            // read whole, however many lines it ran to.
            "quoted lines",
            &[],
            format!(
                "timestamp,value\n2026-07-01 00:00:00,\"{}",
                format!("{}\n", "1".repeat(1000)).repeat(200)
            ),
            "line 6: a row longer than 4096 bytes",
        ),
        (
            // A quote past a field's start is no quoted field: the row
            // at fault is named, not one far after it where the bound
            // had counted up to a later quote.
            "stray quote",
            &[],
            format!(
                "timestamp,value\n2026-07-01 00:00:00,5\"\n{}",
                (0..400)
                    .map(|i| format!("2026-07-01 {:02}:{:02}:00,3\n", 1 + i / 60, i % 60))
                    .collect::<String>()
            ),
            r#"line 2: value "5\"" is not a number"#,
        ),
    ];
    for (what, args, csv, want) in cases {
        let stderr = refused(args, "values.csv", &csv);
        assert!(stderr.contains(want), "{what}: {stderr}");
        assert!(
            stderr.len() < 1000,
            "{what}: {} bytes of error",
            stderr.len()
        );
    }
    let stderr = refused(
        &[],
        "bad.csv",
        &format!(
            "timestamp,value\n2026-07-01 00:00:00,{}x\n",
            "9".repeat(2000)
        ),
    );
    assert!(
        stderr.contains("(2001 bytes)") && stderr.len() < 1000,
        "{stderr}"
    );
    // A gauge's authors column is not read, so not checked against its
    // readings either (0.5 beside 1 author was refused).
    let (_dir, path) = csv_file(
        "level.csv",
        "timestamp,value,authors\n2026-07-01 00:00:00,0.5,1\n2026-07-01 00:01:00,0.6,3\n",
    );
    series(&["--kind", "gauge"], &path);
}

/// A gauge's alerts do not depend on its unit: the same readings in
/// units of 10^308 (near the largest a float holds) fire exactly where
/// they do at 1, and two readings in one bucket are averaged without
/// overflow (their sum, 1.8e308, is none).
#[test]
fn a_gauge_fires_alike_whatever_its_unit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z").expect("time");
    let mut firings_by_unit = Vec::new();
    for exponent in [0, 308] {
        let path = dir.path().join(format!("level_{exponent}.csv"));
        let mut csv = five_minutely(4 * 24 * 12, |i| {
            let noise = [0.0, 0.004, -0.002, 0.005, -0.004, 0.002, -0.005][(i % 7) as usize];
            let v = 0.9 + noise + if (900..910).contains(&i) { 0.85 } else { 0.0 };
            format!("{v}e{exponent}")
        });
        // A second, ordinary reading 10 s into a bucket of the last day,
        // averaged with the first.
        writeln!(csv, "2026-07-04T12:00:10+00:00,0.9e{exponent}").expect("write");
        std::fs::write(&path, csv).expect("write");
        firings_by_unit.push(firings(&["--kind", "gauge"], &path, start).0);
    }
    assert!(!firings_by_unit[0].is_empty(), "the rise fires");
    assert_eq!(firings_by_unit[0], firings_by_unit[1]);
}

/// Whole-number counts every 250 ms stand on their own grid and are
/// summed per second: judged on a grid of whole seconds they stood three
/// quarters off it and were averaged as a gauge's readings.
#[test]
fn counts_finer_than_a_second_are_summed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fine.csv");
    let start = chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z").expect("time");
    let mut csv = String::from("timestamp,value\n");
    for i in 0..400 {
        let t = start + chrono::Duration::milliseconds(250 * i);
        writeln!(
            csv,
            "{},{}",
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            2 + i % 2
        )
        .expect("write");
    }
    std::fs::write(&path, csv).expect("write");
    let out = series(&["--explain"], &path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bucket 1 s inferred") && !stderr.contains("gauge"),
        "{stderr}"
    );
    let explain = String::from_utf8_lossy(&out.stdout);
    let mut rows = explain.lines();
    let header: Vec<&str> = rows.next().expect("header").split(',').collect();
    let value = header
        .iter()
        .position(|c| *c == "value")
        .expect("a value column");
    let first: Vec<&str> = rows.next().expect("a row").split(',').collect();
    // 2 + 3 + 2 + 3 in the first second.
    assert_eq!(first[value], "10", "{explain:.300}");
}

/// A file's line ends as the CSV reader takes them: `\n`, `\r\n` and the
/// lone `\r` of a classic Mac export give the same incidents. With a lone
/// `\r` the row bound saw one row, and a file past 4 KiB was refused as
/// "line 1: a row longer than 4096 bytes".
#[test]
fn every_line_end_the_csv_reader_takes_gives_the_same_incidents() {
    let csv = five_minutely(300, |i| {
        if (200..206).contains(&i) { "40" } else { "2" }.into()
    });
    assert!(csv.len() > 4096, "past the row bound: {} bytes", csv.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut outputs = Vec::new();
    for (name, end) in [("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")] {
        // One file name (alerts are named after it), a folder each.
        std::fs::create_dir(dir.path().join(name)).expect("mkdir");
        let path = dir.path().join(name).join("s.csv");
        std::fs::write(&path, csv.replace('\n', end)).expect("write");
        let out = series(&[], &path);
        outputs.push((name, String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    assert!(outputs[0].1.contains("firing"), "{}", outputs[0].1);
    for (name, stdout) in &outputs[1..] {
        assert_eq!(stdout, &outputs[0].1, "{name}");
    }
}
