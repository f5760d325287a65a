//! What `replay` writes never destroys what it reads: an output that is
//! one of the recordings, the configuration file, in the patterns folder
//! (or another output) is a usage error, exit 2, naming both, with nothing
//! touched; `--report` replaces a file whole.
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
        &["c.toml's `[alerts] file` same.jsonl"],
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

/// A copy of the repository's patterns folder at `dir/pats`, and every
/// file in it with its text, to see that nothing was touched.
fn patterns_copy(dir: &Path) -> (PathBuf, Vec<(PathBuf, String)>) {
    let pats = dir.join("pats");
    std::fs::create_dir_all(pats.join("lang")).expect("mkdir");
    let mut files = Vec::new();
    for name in ["services.toml", "lang/en.toml"] {
        let text = std::fs::read_to_string(root().join("patterns").join(name)).expect("read");
        std::fs::write(pats.join(name), &text).expect("write");
        files.push((pats.join(name), text));
    }
    (pats, files)
}

/// The configuration and the patterns are inputs too: `--config c.toml
/// --report c.toml` replaced the configuration with the report, and an
/// output put in the patterns folder (or over one of its files) was
/// written there; each is now a usage error naming both, with the
/// recording, the configuration and the patterns as they were.
#[test]
fn the_configuration_and_the_patterns_are_not_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (same, lines) = recording(dir.path());
    let d = dir.path();
    let config = "[detector]\n";
    std::fs::write(d.join("c.toml"), config).expect("config");
    let config_kept = || {
        assert_eq!(
            std::fs::read_to_string(d.join("c.toml")).expect("config"),
            config,
            "the configuration is as it was"
        );
    };
    for (flag, named) in [
        ("--report", "c.toml"),
        ("--alerts", "./c.toml"),
        ("--state-dir", "c.toml"),
    ] {
        let out = outagewatch(
            &["replay", "--config", "c.toml", flag, named, "same.jsonl"],
            d,
        );
        refused(
            &out,
            &[&format!("{flag} {named}"), "configuration file c.toml"],
            &same,
            &lines,
        );
        config_kept();
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("c.toml", d.join("link.toml")).expect("symlink");
        let out = outagewatch(
            &[
                "replay",
                "--config",
                "link.toml",
                "--report",
                "c.toml",
                "same.jsonl",
            ],
            d,
        );
        refused(&out, &["--report c.toml", "link.toml"], &same, &lines);
        config_kept();
    }

    let (pats, files) = patterns_copy(d);
    let patterns_kept = || {
        for (file, text) in &files {
            assert_eq!(
                &std::fs::read_to_string(file).expect("pattern file"),
                text,
                "{} is as it was",
                file.display()
            );
        }
        let mut names: Vec<String> = std::fs::read_dir(&pats)
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["lang", "services.toml"], "nothing added");
    };
    // A file of the folder, under its name or inside it by any path.
    for (flag, named) in [
        ("--report", "pats/services.toml"),
        ("--alerts", "pats/lang/en.toml"),
        ("--report", "pats/report.html"),
        ("--alerts", "pats/new/alerts.jsonl"),
        ("--state-dir", "pats"),
        ("--state-dir", "pats/state"),
    ] {
        let out = outagewatch(
            &["replay", "--patterns", "pats", flag, named, "same.jsonl"],
            d,
        );
        refused(
            &out,
            &[&format!("{flag} {named}"), "patterns"],
            &same,
            &lines,
        );
        assert!(
            text(&out.stderr).contains("--patterns"),
            "names the flag: {}",
            text(&out.stderr)
        );
        patterns_kept();
    }
    // A hard link elsewhere to one of its files is that file.
    #[cfg(unix)]
    {
        std::fs::hard_link(pats.join("lang/en.toml"), d.join("hard.toml")).expect("hard link");
        let out = outagewatch(
            &[
                "replay",
                "--patterns",
                "pats",
                "--report",
                "hard.toml",
                "same.jsonl",
            ],
            d,
        );
        refused(
            &out,
            &["--report hard.toml", "patterns file"],
            &same,
            &lines,
        );
        patterns_kept();
    }
    // Named by the configuration's `patterns`: said so.
    std::fs::write(d.join("p.toml"), "patterns = \"pats\"\n").expect("config");
    let out = outagewatch(
        &[
            "replay",
            "--config",
            "p.toml",
            "--report",
            "pats/r.html",
            "same.jsonl",
        ],
        d,
    );
    refused(
        &out,
        &["--report pats/r.html", "`patterns` of p.toml"],
        &same,
        &lines,
    );
    patterns_kept();

    // Beside them, all is well: the same flags with outputs elsewhere.
    let out = outagewatch(
        &[
            "replay",
            "--config",
            "c.toml",
            "--patterns",
            "pats",
            "--report",
            "r.html",
            "--alerts",
            "a.jsonl",
            "--state-dir",
            "st",
            "same.jsonl",
        ],
        d,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(d.join("r.html").is_file() && d.join("st/db").is_file());
    config_kept();
    patterns_kept();
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

/// The daemon is held to the same rule before it starts: its alerts file
/// or its state directory is not the configuration file nor in the
/// patterns folder (`run --config c.toml --alerts c.toml` started, and the
/// first alert's line would have been appended to the configuration,
/// which the next start could not read).
#[test]
fn the_daemon_s_outputs_are_not_its_configuration_or_patterns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let config = "[[sources]]\nkind = \"jetstream\"\nname = \"b\"\nurls = [\"ws://127.0.0.1:9/subscribe\"]\n";
    std::fs::write(d.join("c.toml"), config).expect("config");
    let (_pats, files) = patterns_copy(d);
    for (args, says) in [
        (
            &["--alerts", "c.toml", "--state-dir", "st"][..],
            "--alerts c.toml is the configuration file c.toml (--config), which this daemon reads",
        ),
        (
            &["--state-dir", "c.toml"][..],
            "the state directory c.toml is the configuration file c.toml (--config)",
        ),
        (
            &["--patterns", "pats", "--state-dir", "pats/st"][..],
            "the state directory pats/st is inside the patterns folder pats (--patterns)",
        ),
    ] {
        // Bounded: a daemon that is not refused runs until stopped.
        let out = Command::new("timeout")
            .args(["-s", "TERM", "20", env!("CARGO_BIN_EXE_outagewatch")])
            .args(["run", "--config", "c.toml"])
            .args(args)
            .current_dir(d)
            .env("RUST_LOG", "warn")
            .env_remove("OUTAGEWATCH_CONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("runs");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(
            std::fs::read_to_string(d.join("c.toml")).expect("config"),
            config,
            "{args:?}: the configuration is as it was"
        );
    }
    for (file, text) in &files {
        assert_eq!(&std::fs::read_to_string(file).expect("pattern file"), text);
    }
    assert!(!d.join("pats/st").exists(), "no store made in the patterns");
}
