//! What `replay` writes never destroys what it reads: an output that is
//! one of the recordings (or another output) is a usage error, exit 2,
//! naming both, with nothing touched; `--report` replaces a file whole.
//! And `--until` not after `--since` is a usage error like a bad `--since`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn outagewatch(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .env_remove("OUTAGEWATCH_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The demo's first 2000 frames as a plain recording in `dir`.
fn recording(dir: &Path) -> (PathBuf, String) {
    let file = std::fs::File::open(root().join("data/demo.jsonl.gz")).expect("demo");
    let mut all = String::new();
    std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(file), &mut all)
        .expect("gunzip");
    let lines: String = all.lines().take(2000).map(|l| format!("{l}\n")).collect();
    let path = dir.join("same.jsonl");
    std::fs::write(&path, &lines).expect("write");
    (path, lines)
}

/// Asserts a usage error naming `names`, and the recording unchanged.
fn refused(out: &Output, names: &[&str], recording: &Path, lines: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for name in names {
        assert!(stderr.contains(name), "names {name}: {stderr}");
    }
    assert!(out.stdout.is_empty(), "nothing replayed");
    assert_eq!(
        std::fs::read_to_string(recording).expect("read"),
        lines,
        "the recording is as it was"
    );
}

#[test]
fn an_output_that_is_an_input_is_refused_and_the_input_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (same, lines) = recording(dir.path());
    let d = dir.path();
    // Emptied by `--report` before it was read, and appended to by
    // `--alerts`; under any name: as typed, `./`, a link.
    let out = outagewatch(&["replay", "--report", "same.jsonl", "same.jsonl"], d);
    refused(
        &out,
        &["--report same.jsonl", "recording same.jsonl"],
        &same,
        &lines,
    );
    let out = outagewatch(&["replay", "--alerts", "./same.jsonl", "same.jsonl"], d);
    refused(
        &out,
        &["--alerts ./same.jsonl", "recording same.jsonl"],
        &same,
        &lines,
    );
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("same.jsonl", d.join("link.jsonl")).expect("symlink");
        let out = outagewatch(&["replay", "--alerts", "link.jsonl", "same.jsonl"], d);
        refused(&out, &["--alerts link.jsonl"], &same, &lines);
    }
    // The configuration's alerts file is one of replay's outputs too.
    std::fs::write(d.join("c.toml"), "[alerts]\nfile = \"same.jsonl\"\n").expect("config");
    let out = outagewatch(&["replay", "--config", "c.toml", "same.jsonl"], d);
    refused(
        &out,
        &["`[alerts] file` of c.toml", "same.jsonl"],
        &same,
        &lines,
    );
    // Standard input is the file the shell opened for it.
    let out = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .args(["replay", "--alerts", "same.jsonl", "-"])
        .current_dir(d)
        .stdin(std::fs::File::open(&same).expect("open"))
        .output()
        .expect("runs");
    refused(
        &out,
        &["--alerts same.jsonl", "standard input"],
        &same,
        &lines,
    );
    // Two outputs in one file: the report's rename would replace the alerts.
    let out = outagewatch(
        &[
            "replay",
            "--report",
            "r.html",
            "--alerts",
            "./r.html",
            "same.jsonl",
        ],
        d,
    );
    refused(
        &out,
        &["--report r.html", "--alerts ./r.html"],
        &same,
        &lines,
    );
    assert!(!d.join("r.html").exists());
}

/// The report is written beside its place and renamed: an earlier report
/// is replaced whole, no temporary file is left, and one that cannot be
/// written is said before anything is read.
#[test]
fn the_report_replaces_a_file_whole_and_leaves_nothing_beside_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, _) = recording(dir.path());
    let d = dir.path();
    std::fs::write(d.join("r.html"), "an earlier report").expect("write");
    let out = outagewatch(&["replay", "--report", "r.html", "same.jsonl"], d);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = std::fs::read_to_string(d.join("r.html")).expect("report");
    assert!(
        page.starts_with("<!doctype html") || page.starts_with("<!DOCTYPE html"),
        "{}",
        &page[..40.min(page.len())]
    );
    let names: Vec<String> = std::fs::read_dir(d)
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "no temporary file left: {names:?}"
    );
    // A replay stopped midway leaves the earlier report as it was (it
    // was emptied at the start).
    std::fs::write(d.join("r.html"), "an earlier report").expect("write");
    let mut slow = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .args(["replay", "--speed", "1", "--report", "r.html", "same.jsonl"])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Long past the start (the matcher loaded, the report made), long
    // before the end: the recording spans minutes of event time.
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert!(slow.try_wait().expect("status").is_none(), "still running");
    slow.kill().expect("kill");
    slow.wait().expect("wait");
    assert_eq!(
        std::fs::read_to_string(d.join("r.html")).expect("report"),
        "an earlier report"
    );
    let out = outagewatch(
        &["replay", "--report", "no-such-dir/r.html", "same.jsonl"],
        d,
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot write the report to no-such-dir/r.html"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("replayed"),
        "before anything was read: {stderr}"
    );
}

/// Each of `--since` and `--until` alone is checked by clap (exit 2); the
/// two together are too, without connecting anywhere.
#[test]
fn until_not_after_since_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = outagewatch(
        &[
            "replay",
            "--jetstream",
            "ws://127.0.0.1:1",
            "--since",
            "1h",
            "--until",
            "2h",
        ],
        dir.path(),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--until (2h) is not after --since (1h)"),
        "{stderr}"
    );
}
