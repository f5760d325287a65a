//! End-to-end: the real binary replaying recordings.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outagewatch"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo.jsonl.gz")
}

fn run(cmd: &mut Command) -> Output {
    let output = cmd.output().expect("binary runs");
    assert!(
        output.status.success(),
        "exit {:?}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn alerts(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each alert line is JSON"))
        .collect()
}

#[test]
fn demo_fires_the_discord_outage_and_nothing_else() {
    let out = run(bin().arg("replay").arg(demo()));
    let alerts = alerts(&out.stdout);
    let summary: Vec<(String, String)> = alerts
        .iter()
        .map(|a| {
            (
                a["service"].as_str().unwrap_or("?").to_owned(),
                a["state"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("discord".to_owned(), "firing".to_owned()),
            ("discord".to_owned(), "updated".to_owned()),
            ("discord".to_owned(), "resolved".to_owned())
        ],
        "one incident: it fires, escalates as the surge grows, resolves: {alerts:#?}"
    );
    let firing = &alerts[0];
    for later in &alerts[1..] {
        assert_eq!(firing["id"], later["id"], "one incident, one id");
    }
    assert_eq!(alerts[1]["severity"], "medium");
    let sequence: Vec<u64> = alerts
        .iter()
        .filter_map(|a| a["sequence"].as_u64())
        .collect();
    assert_eq!(sequence, vec![1, 2, 3]);
    // The surge starts at 14:17:00 in event time; it must fire within a minute.
    let at = firing["at"].as_str().expect("at");
    assert!(
        at.as_bytes() < b"2026-07-04T14:18:00Z".as_slice()
            && at.as_bytes() > b"2026-07-04T14:17:00Z".as_slice(),
        "fired at {at}"
    );
    let samples = firing["samples"].as_array().expect("samples");
    assert!(!samples.is_empty() && samples.len() <= 5);
    for sample in samples {
        let text = sample["text"].as_str().expect("text").to_lowercase();
        assert!(text.contains("discord"), "sample about discord: {text}");
        assert!(
            sample["uri"]
                .as_str()
                .expect("uri")
                .starts_with("at://did:plc:")
        );
    }
    for key in [
        "id",
        "service",
        "state",
        "at",
        "started_at",
        "severity",
        "reports",
        "authors",
        "rate_per_min",
        "baseline_per_min",
        "samples",
    ] {
        assert!(firing.get(key).is_some(), "alert schema field {key}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("replayed 16654 events"), "{stderr}");
    assert!(stderr.contains("malformed: 0"), "{stderr}");
}

#[test]
fn replay_is_byte_identical_run_after_run() {
    let first = run(bin().arg("replay").arg(demo()));
    let second = run(bin().arg("replay").arg(demo()));
    assert!(!first.stdout.is_empty());
    assert_eq!(first.stdout, second.stdout);
}

#[test]
fn malformed_lines_are_counted_named_and_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.jsonl");
    let mut file = std::fs::File::create(&path).expect("create");
    let good = r#"{"did":"did:plc:a","time_us":1783173600000000,"kind":"commit","commit":{"rev":"r","operation":"create","collection":"app.bsky.feed.post","rkey":"k","record":{"text":"hello"}}}"#;
    writeln!(file, "{good}").expect("write");
    writeln!(file, "{{\"did\":\"truncated").expect("write");
    file.write_all(b"{\"text\":\"caf\xc3\x28\"}\n")
        .expect("write");
    writeln!(file, r#"{{"did":"d","time_us":1783173600000001,"kind":"commit","commit":{{"operation":"create","collection":"app.bsky.feed.post","rkey":"k2","record":{{"langs":["en"]}}}}}}"#).expect("write");
    let huge = format!("{{\"did\":\"{}\"}}", "x".repeat(3 * 1024 * 1024));
    writeln!(file, "{huge}").expect("write");
    writeln!(
        file,
        "{}",
        good.replace("\"rkey\":\"k\"", "\"rkey\":\"k3\"")
    )
    .expect("write");
    writeln!(file, "{good}").expect("write");
    drop(file);
    let out = run(bin().arg("replay").arg(&path));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = path.display().to_string();
    assert!(stderr.contains("replayed 7 events"), "{stderr}");
    assert!(
        stderr.contains("duplicate posts dropped: 1"),
        "the repeated line: {stderr}"
    );
    assert!(
        stderr.contains("posts 2 "),
        "both good posts processed: {stderr}"
    );
    assert!(stderr.contains("malformed: 4"), "{stderr}");
    assert!(stderr.contains(&format!("{name}:2: bad JSON")), "{stderr}");
    assert!(
        stderr.contains(&format!("{name}:3: invalid UTF-8")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{name}:4: post record has no `text`")),
        "{stderr}"
    );
    let oversized = format!("{name}:5: frame of {} bytes exceeds the limit", huge.len());
    assert!(stderr.contains(&oversized), "{stderr}");
}

#[test]
fn unreadable_input_is_a_clear_error() {
    let out = bin()
        .args(["replay", "/nonexistent/file.jsonl"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open /nonexistent/file.jsonl"),
        "{stderr}"
    );
}

#[test]
fn stdin_and_alerts_file_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alerts_path = dir.path().join("alerts.jsonl");
    let mut child = bin()
        .args(["replay", "-", "--alerts"])
        .arg(&alerts_path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let demo = std::fs::read(demo()).expect("demo");
    let mut stdin = child.stdin.take().expect("stdin");
    std::thread::spawn(move || stdin.write_all(&demo));
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "alerts went to the file");
    let written = std::fs::read(&alerts_path).expect("alerts file");
    assert_eq!(alerts(&written).len(), 3);
}

#[test]
fn a_restart_with_the_same_state_continues_where_it_stopped() {
    // Split the demo in two recordings at a line in the middle of the surge,
    // replay them one after the other with one state directory, and expect
    // exactly the alerts of one uninterrupted replay.
    let text = {
        let mut s = String::new();
        let file = std::fs::File::open(demo()).expect("demo");
        std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(file), &mut s)
            .expect("gunzip");
        s
    };
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines.len() * 19 / 30;
    let dir = tempfile::tempdir().expect("tempdir");
    let first = dir.path().join("first.jsonl");
    let second = dir.path().join("second.jsonl");
    std::fs::write(&first, lines[..cut].join("\n")).expect("write");
    std::fs::write(&second, lines[cut..].join("\n")).expect("write");
    let state = dir.path().join("state");

    let whole = run(bin().arg("replay").arg(demo()));
    let a = run(bin()
        .arg("replay")
        .arg(&first)
        .arg("--state-dir")
        .arg(&state));
    let b = run(bin()
        .arg("replay")
        .arg(&second)
        .arg("--state-dir")
        .arg(&state));
    let mut resumed = alerts(&a.stdout);
    resumed.extend(alerts(&b.stdout));
    assert_eq!(resumed, alerts(&whole.stdout));
}

#[test]
fn the_committed_demo_is_what_its_generator_makes() {
    let mut text = String::new();
    let file = std::fs::File::open(demo()).expect("demo");
    std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(file), &mut text)
        .expect("gunzip");
    let mut generated = String::new();
    outagewatch::synth::Generator::new(outagewatch::synth::demo_config()).run(|frame| {
        generated.push_str(&frame);
        generated.push('\n');
    });
    assert!(
        text == generated,
        "data/demo.jsonl.gz differs from `cargo run --example make_demo`; regenerate it"
    );
}

#[test]
fn check_reads_stdin_and_reports_a_line_that_is_not_utf8() {
    let mut child = bin()
        .arg("check")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"is twitter down?\ncaf\xc3\x28 instagram not loading\nthe Dow is down\n")
        .expect("write");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let results = alerts(&out.stdout);
    let reports: Vec<bool> = results
        .iter()
        .map(|r| r["report"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(
        reports,
        vec![true, true, false],
        "every line answered, in order"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stdin line 2: invalid UTF-8"), "{stderr}");
}
