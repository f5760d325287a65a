//! The NAB scores of issue 13, checked as `scripts/nab-score.sh` reports
//! them: the script runs `outagewatch series` (this build) over every file
//! of the shared Numenta Anomaly Benchmark copy (`../shared/nab`) and scores
//! the firing alerts with its `score.py`. Each real category must stay at
//! or above its floor in the standard profile, and no real file may be
//! refused.
//!
//! The floors: 30 for every real category but realTweets (issue 13's
//! target, met); for realTweets the score reached so far, 66.0, as a floor
//! against regressions: the target there, 80, is not met (README,
//! "Scores on labelled data"). Skipped with a message when the shared
//! folder or `python3` is missing; a failure when `CI=true` (`.ci/run`
//! installs `python3` when missing).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

mod support;

/// (category, lowest standard score accepted).
const FLOORS: [(&str, f64); 5] = [
    ("realTweets", 66.0),
    ("realAWSCloudwatch", 30.0),
    ("realAdExchange", 30.0),
    ("realKnownCause", 30.0),
    ("realTraffic", 30.0),
];

/// The standard-profile score per category from `score.py`'s summary lines
/// (`NAB realTweets: standard 66.3  reward_low_FP_rate …`).
fn standard_scores(report: &str) -> HashMap<String, f64> {
    report
        .lines()
        .filter_map(|line| {
            let (category, rest) = line.strip_prefix("NAB ")?.split_once(": ")?;
            let mut words = rest.split_whitespace();
            (words.next()? == "standard").then_some(())?;
            Some((category.to_owned(), words.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn the_summary_lines_are_read_per_category() {
    let report = "realTweets/Twitter_volume_AAPL.csv raw 1.871 detections 27 windows 4\n\
                  NAB realTweets: standard 66.3  reward_low_FP_rate 54.6  reward_low_FN_rate 71.3\n\
                  NAB artificialNoAnomaly: \n\
                  NAB realTraffic: standard -4.5  reward_low_FP_rate 37.5\n\
                  NAB all: standard 42.5  reward_low_FP_rate 31.3";
    let scores = standard_scores(report);
    assert_eq!(scores.get("realTweets"), Some(&66.3));
    assert_eq!(scores.get("realTraffic"), Some(&-4.5));
    assert_eq!(scores.get("all"), Some(&42.5));
    assert!(!scores.contains_key("artificialNoAnomaly"));
    assert_eq!(scores.len(), 3);
}

#[test]
fn every_real_nab_category_stays_at_or_above_its_floor() {
    let Some(shared) = support::shared_dir() else {
        return;
    };
    let nab = shared.join("nab");
    assert!(
        nab.join("score.py").is_file(),
        "no NAB copy with score.py in {}",
        nab.display()
    );
    if Command::new("python3").arg("--version").output().is_err() {
        let message = "python3 is missing: NAB's score.py cannot run";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: {message}"
        );
        eprintln!("SKIPPED: {message}");
        return;
    }
    let out = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/nab-score.sh");
    let run = Command::new("bash")
        .arg(&script)
        .arg(out.path())
        .env("OUTAGEWATCH_BIN", env!("CARGO_BIN_EXE_outagewatch"))
        .env("OUTAGEWATCH_SHARED", &shared)
        .output()
        .expect("runs scripts/nab-score.sh");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "nab-score.sh failed: {stderr}\n{stdout}"
    );
    // `series` refuses negative values by design, which only artificial
    // files hold; a refused real file would score as no detection.
    let refused: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("series refused real"))
        .collect();
    assert!(refused.is_empty(), "series refused real files: {refused:?}");
    println!("{stdout}");
    let scores = standard_scores(&stdout);
    let mut below = Vec::new();
    for (category, floor) in FLOORS {
        let score = scores
            .get(category)
            .unwrap_or_else(|| panic!("no standard score for {category} in:\n{stdout}"));
        if *score < floor {
            below.push(format!("{category} {score} (floor {floor})"));
        }
    }
    assert!(below.is_empty(), "below the floor: {}", below.join(", "));
}
