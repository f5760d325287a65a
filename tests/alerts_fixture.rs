//! The alerts of the demo replay, of replays of generated streams and of a
//! live loopback run, compared byte for byte with alerts recorded from an
//! earlier version and committed under `tests/fixtures/alerts/`.
//!
//! A refactoring must not change one byte of what receivers get. When a
//! change to alerts is intended, re-record and review the diff in the
//! commit:
//!
//! ```text
//! OUTAGEWATCH_RECORD_ALERTS=1 cargo test --test alerts_fixture
//! git diff tests/fixtures/alerts/
//! ```
//!
//! Every field of an outage alert is a function of event time and the
//! input, so nothing is masked. The one thing left out is a whole kind of
//! alert: `source:NAME` alerts (`"kind":"source"`), whose times are the
//! wall clock of the live run (a source's silence is about now, not about
//! event time); the live config here sets their thresholds out of reach,
//! and any that appear anyway are dropped before comparing.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use outagewatch_synth::{DecoyBurst, Generator, Surge, SynthConfig};
use support::{JetstreamServer, Plan, Wire, demo_frames, jetstream_config_wire, newest_time};

/// Set to `1` to overwrite the fixtures with this version's alerts.
const RECORD_ENV: &str = "OUTAGEWATCH_RECORD_ALERTS";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/alerts")
        .join(format!("{name}.jsonl"))
}

/// Compares `actual` with the fixture `name` (or records it), and says
/// where they part and how to look at the whole difference.
fn check(name: &str, actual: &str, at_least: usize) {
    let count = actual.lines().count();
    assert!(
        count >= at_least,
        "{name}: {count} alerts, expected at least {at_least}: the run did not do what the fixture is about:\n{actual}"
    );
    let path = fixture(name);
    if std::env::var(RECORD_ENV).as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("fixture dir");
        std::fs::write(&path, actual).expect("write fixture");
        eprintln!("recorded {count} alerts to {}", path.display());
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; record it with {RECORD_ENV}=1 cargo test --test alerts_fixture",
            path.display()
        )
    });
    if expected == actual {
        return;
    }
    let got = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.actual.jsonl"));
    std::fs::write(&got, actual).expect("write the actual alerts");
    panic!("{}", mismatch(name, &expected, actual, &path, &got));
}

/// The first differing line of two alert streams, both sides shown.
fn mismatch(name: &str, expected: &str, actual: &str, path: &Path, got: &Path) -> String {
    let (want, have): (Vec<&str>, Vec<&str>) =
        (expected.lines().collect(), actual.lines().collect());
    let line = want
        .iter()
        .zip(&have)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(have.len()));
    let show = |lines: &[&str]| lines.get(line).copied().unwrap_or("(no line)").to_owned();
    format!(
        "{name}: the alerts differ from the recorded ones ({} recorded, {} now), first at line {}:\n\
         recorded: {}\n\
         now:      {}\n\
         whole diff: diff {} {}\n\
         if the change is intended: {RECORD_ENV}=1 cargo test --test alerts_fixture, and review the diff",
        want.len(),
        have.len(),
        line + 1,
        show(&want),
        show(&have),
        path.display(),
        got.display()
    )
}

/// `outagewatch replay FILE` (a fresh temporary state): its stdout.
fn replay(file: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .arg("replay")
        .arg(file)
        .env("RUST_LOG", "warn")
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "replay of {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("alerts are UTF-8")
}

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo.jsonl.gz")
}

#[test]
fn demo_replay_alerts_are_the_recorded_ones() {
    check("demo", &replay(&demo()), 3);
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Ninety minutes: a Discord outage with recovery posts, a long, steep
/// Instagram outage (escalates to high), stock-market decoys.
fn two_outages() -> SynthConfig {
    SynthConfig {
        seed: 7,
        duration_secs: 90 * 60,
        posts_per_sec: 3.0,
        others_per_post: 1.0,
        complaints_per_hour: 40.0,
        surges: vec![
            Surge {
                names: strings(&["discord", "Discord"]),
                start_secs: 20 * 60,
                duration_secs: 5 * 60,
                peak_per_min: 40.0,
                recovery_per_min: 6.0,
                ramp: 0.3,
            },
            Surge {
                names: strings(&["instagram", "insta", "Instagram"]),
                start_secs: 50 * 60,
                duration_secs: 25 * 60,
                peak_per_min: 150.0,
                recovery_per_min: 2.0,
                ramp: 0.1,
            },
        ],
        decoy_bursts: vec![DecoyBurst {
            texts: strings(&["the Dow is down 800 points", "markets are down bad today"]),
            start_secs: 35 * 60,
            duration_secs: 5 * 60,
            per_min: 40.0,
        }],
        ..SynthConfig::default()
    }
}

/// An hour: a name outside the catalogue (discovered from `#ZorbexDown`)
/// overlapping a Steam outage, and an isolated-complaint background.
fn discovered_and_overlap() -> SynthConfig {
    SynthConfig {
        seed: 11,
        duration_secs: 60 * 60,
        posts_per_sec: 2.0,
        others_per_post: 1.0,
        complaints_per_hour: 60.0,
        surges: vec![
            Surge {
                names: strings(&["Zorbex"]),
                start_secs: 15 * 60,
                duration_secs: 10 * 60,
                peak_per_min: 30.0,
                recovery_per_min: 0.0,
                ramp: 0.0,
            },
            Surge {
                names: strings(&["steam", "Steam"]),
                start_secs: 20 * 60,
                duration_secs: 8 * 60,
                peak_per_min: 25.0,
                recovery_per_min: 3.0,
                ramp: 0.5,
            },
        ],
        ..SynthConfig::default()
    }
}

fn generated(name: &str, config: SynthConfig, at_least: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(format!("{name}.jsonl"));
    let mut text = String::new();
    Generator::new(config).run(|frame| {
        text.push_str(&frame);
        text.push('\n');
    });
    std::fs::write(&file, text).expect("write the stream");
    check(name, &replay(&file), at_least);
}

#[test]
fn generated_stream_alerts_are_the_recorded_ones() {
    generated("synth-two-outages", two_outages(), 4);
    generated("synth-discovered-and-overlap", discovered_and_overlap(), 2);
}

/// The daemon reading the demo from a loopback Jetstream server must raise
/// exactly the demo replay's recorded alerts.
#[test]
fn live_loopback_alerts_are_the_demo_replays_recorded_ones() {
    let frames = demo_frames();
    let newest = newest_time(&frames);
    let dir = tempfile::tempdir().expect("tempdir");
    let server = JetstreamServer::start(frames, Plan::default());
    let config = jetstream_config_wire(dir.path(), &[server.url()], 1.0, Wire::V2_ZSTD);
    let (state, alerts) = (dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let daemon = support::start_daemon(&config, &state, &alerts);
    daemon.wait_for_newest(newest, Duration::from_secs(120));
    let (status, _, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit {status:?}\n{log}");
    let text = std::fs::read_to_string(&alerts).expect("the alerts file");
    let outage: String = text
        .lines()
        .filter(|l| !l.contains("\"kind\":\"source\""))
        .map(|l| format!("{l}\n"))
        .collect();
    // Never recorded on its own: live must equal the demo replay's fixture
    // (while recording, the replay that is being recorded).
    let expected = if std::env::var(RECORD_ENV).as_deref() == Ok("1") {
        replay(&demo())
    } else {
        std::fs::read_to_string(fixture("demo")).expect("the demo fixture")
    };
    assert!(
        outage == expected,
        "{}",
        mismatch(
            "live",
            &expected,
            &outage,
            &fixture("demo"),
            Path::new("(the live run's alerts.jsonl)")
        )
    );
}
