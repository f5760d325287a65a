//! Bounds under hostile input, against the real binary: endless stdin
//! lines, absurd numbers, unreadable recordings, a flood of made-up
//! `#XyzDown` names. Memory is measured as the child's peak resident set
//! (`VmHWM` in /proc), never by timing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outagewatch"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo.jsonl.gz")
}

/// Peak resident memory of a running child, in KiB, from /proc.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Waits for the child, sampling its peak memory; returns (output, peak KiB).
fn wait_measuring(mut child: Child) -> (std::process::Output, u64) {
    let pid = child.id();
    let mut peak = 0;
    loop {
        if let Some(kib) = peak_kib(pid) {
            peak = peak.max(kib);
        }
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for the child: {e}"),
        }
    }
    (child.wait_with_output().expect("output"), peak)
}

#[test]
fn check_on_an_endless_line_stops_with_an_error_in_bounded_memory() {
    // `check </dev/zero`, bounded here to 300 MiB of zeros without a newline.
    let mut child = bin()
        .arg("check")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0usize;
        for _ in 0..300 {
            // The child stops reading: a broken pipe ends the writing.
            if stdin.write_all(&chunk).is_err() {
                break;
            }
            written += chunk.len();
        }
        written
    });
    let (output, peak) = wait_measuring(child);
    let written = writer.join().expect("writer");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("stdin line 1 is longer than 65536 bytes"),
        "names the line and the limit: {stderr}"
    );
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
    assert!(
        written < 300 << 20,
        "stopped reading instead of swallowing the stream ({written} bytes written)"
    );
}

#[test]
fn check_skips_nothing_below_the_limit_and_goes_on_after_normal_lines() {
    let mut child = bin()
        .args(["check", "--max-line-bytes", "1024"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let long = "x".repeat(5000);
    stdin
        .write_all(format!("is discord down?\n{long}\nnot read\n").as_bytes())
        .expect("write");
    drop(stdin);
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "an error, not 'no report'");
    assert_eq!(
        stdout.lines().count(),
        1,
        "the first line was checked: {stdout}"
    );
    assert!(
        stderr.contains("stdin line 2 is longer than 1024 bytes"),
        "{stderr}"
    );
}

#[test]
fn absurd_numbers_are_clean_errors_naming_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "[daemon]\nstatus_secs = inf\n",
            "2:15: `daemon.status_secs`",
        ),
        ("[daemon]\nstatus_secs = 0\n", "2:15: `daemon.status_secs`"),
        (
            "[[sinks]]\nname = \"s\"\nurl = \"https://h/x\"\ntimeout_secs = 1e300\n",
            "4:16: `sinks.timeout_secs`",
        ),
        (
            "[[sources]]\nkind = \"jetstream\"\nname = \"b\"\nurls = [\"wss://h\"]\n[sources.connection]\nbackoff_min_ms = 0\n",
            "6:18: `sources.connection.backoff_min_ms`",
        ),
        (
            "[[sources]]\nkind = \"jetstream\"\nname = \"b\"\nurls = [\"wss://h\"]\n[sources.connection]\nmax_frames_per_sec = -1\n",
            "6:22: `sources.connection.max_frames_per_sec`",
        ),
        (
            "[[sources]]\nkind = \"jetstream\"\nname = \"b\"\nurls = [\"wss://h\"]\n[sources.connection]\nmax_compressed_frame_bytes = 1e300\n",
            "6:30: `sources.connection.max_compressed_frame_bytes`",
        ),
    ];
    for (text, want) in cases {
        let path = dir.path().join("ow.toml");
        std::fs::write(&path, text).expect("write");
        let output = bin()
            .args(["run", "--config"])
            .arg(&path)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{text:?}: {stderr}");
        let want = format!("{}:{want}", path.display());
        assert!(
            stderr.contains(&want),
            "{text:?}: want {want:?} in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    for speed in ["1e-30", "inf", "0", "1e300"] {
        let output = bin()
            .args(["replay", "--speed", speed])
            .arg(demo())
            .output()
            .expect("replay");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "--speed {speed}: {stderr}");
        assert!(stderr.contains("--speed"), "{stderr}");
    }
    for idle in ["inf", "-1", "1e300"] {
        let output = bin()
            .args(["replay", "--jetstream", "ws://127.0.0.1:9", "--since", "1h"])
            .arg(format!("--tail-idle-secs={idle}"))
            .output()
            .expect("replay");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "--tail-idle-secs {idle}: {stderr}"
        );
        assert!(stderr.contains("--tail-idle-secs"), "{stderr}");
    }
    // A flag's URL or window is checked as the configuration's would be:
    // a mistyped URL was retried for ever, a billion-bucket window held
    // 17 GB.
    let series_csv = std::env::temp_dir().join(format!("ow-limits-{}.csv", std::process::id()));
    std::fs::write(&series_csv, "timestamp,value\n2026-01-01T00:00:00Z,1\n").expect("csv");
    let flagged: [(&[&str], &str); 10] = [
        (&["run", "--jetstream", "notaurl"], "--jetstream"),
        (
            &[
                "record",
                "--jetstream",
                "https://jetstream.example",
                "--out",
                "x.jsonl",
            ],
            "--jetstream",
        ),
        (
            &["replay", "--jetstream", "ftp://h", "--since", "1h"],
            "--jetstream",
        ),
        (&["series", "--window-buckets", "0"], "--window-buckets"),
        (
            &["series", "--window-buckets", "1000000000"],
            "--window-buckets",
        ),
        // A bucket width out of bounds is a usage error too (it was exit 1).
        (&["series", "--bucket-secs", "0"], "--bucket-secs"),
        (&["series", "--bucket-secs=-5"], "--bucket-secs"),
        (&["series", "--bucket-secs", "40000000"], "--bucket-secs"),
        (&["series", "--min-count", "0"], "--min-count"),
        // An empty source name (a configuration refuses one too).
        (&["record", "--name", "", "--out", "x.jsonl"], "--name"),
    ];
    for (args, flag) in flagged {
        let output = bin()
            .args(args)
            .args(if args[0] == "series" {
                vec![series_csv.as_os_str()]
            } else {
                vec![]
            })
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_file(&series_csv);
    // A history range that holds nothing, or a time no source accepts, is
    // a usage error (exit 2), refused before anything connects (the port
    // would refuse anyway).
    let ranges: [(&[&str], &str, i32); 3] = [
        (
            &["--since", "1h", "--until", "2h"],
            "is not after --since",
            2,
        ),
        (&["--since", "100000y"], "1970 to 9999", 2),
        (
            &["--since", "1h", "--until", "999999999999999999"],
            "1970 to 9999",
            2,
        ),
    ];
    for (range, says, code) in ranges {
        let output = bin()
            .args(["replay", "--jetstream", "ws://127.0.0.1:9"])
            .args(range)
            .output()
            .expect("replay");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{range:?}: {stderr}");
        assert!(stderr.contains(says), "{range:?}: {stderr}");
        assert!(!stderr.contains("connect"), "{range:?}: {stderr}");
    }
}

#[test]
fn replay_with_unreadable_files_still_delivers_and_summarises() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = std::fs::read(demo()).expect("demo");
    let truncated = dir.path().join("truncated.jsonl.gz");
    std::fs::write(&truncated, &whole[..whole.len() * 2 / 3]).expect("write");
    let missing = dir.path().join("missing.jsonl");
    let output = bin()
        .arg("replay")
        .arg(demo())
        .arg(&missing)
        .arg(&truncated)
        .output()
        .expect("replay");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let states: Vec<String> = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("alert JSON");
            format!(
                "{}/{}",
                v["service"].as_str().unwrap_or("?"),
                v["state"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert!(
        states.starts_with(&[
            "discord/firing".to_owned(),
            "discord/updated".to_owned(),
            "discord/resolved".to_owned()
        ]),
        "the demo's alerts were delivered before the errors ended the run: {states:?}"
    );
    assert!(stderr.contains("replayed "), "summary printed: {stderr}");
    assert!(
        stderr.contains(&format!("cannot open {}", missing.display())),
        "the missing file is named: {stderr}"
    );
    assert!(
        stderr.contains(&format!("cannot read {}", truncated.display())),
        "the truncated file is named: {stderr}"
    );
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "the cause is said once: {stderr}"
    );
    let replayed: u64 = stderr
        .split("replayed ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("event count");
    assert!(
        replayed > 16_654,
        "the truncated file was read up to the damage: {replayed}"
    );
}

/// A Jetstream post frame.
fn frame(time_us: i64, author: &str, text: &str) -> String {
    serde_json::json!({
        "did": author,
        "time_us": time_us,
        "kind": "commit",
        "commit": {
            "rev": "r", "operation": "create", "collection": "app.bsky.feed.post",
            "rkey": format!("k{time_us}"), "cid": "c",
            "record": {"$type": "app.bsky.feed.post", "text": text, "langs": ["en"],
                       "createdAt": "2026-07-04T14:00:00Z"}
        }
    })
    .to_string()
}

/// `n` posts, each a made-up `#XyzDown` from its own author, spread over
/// `span_secs` of event time.
fn junk_recording(path: &Path, n: u64, span_secs: i64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let start = 1_783_173_600_000_000i64;
    let step = span_secs * 1_000_000 / n as i64;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..n {
        // xorshift: a fresh random name per post.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let name: String = (0..8)
            .map(|k| (b'a' + ((seed >> (k * 5)) % 26) as u8) as char)
            .collect();
        let text = format!("#{}{}Down again", name[..1].to_uppercase(), &name[1..]);
        writeln!(
            out,
            "{}",
            frame(start + i as i64 * step, &format!("did:plc:junk{i}"), &text)
        )
        .expect("write");
    }
}

fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).expect("read_dir").flatten() {
        let meta = entry.metadata().expect("metadata");
        total += if meta.is_dir() {
            dir_size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// Replays `file` into a fresh state; returns (peak KiB, state bytes, summary).
fn replay_measured(file: &Path, state: &Path) -> (u64, u64, String) {
    let child = bin()
        .arg("replay")
        .arg(file)
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (output, peak) = wait_measuring(child);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    (peak, dir_size(state), stderr)
}

fn summary_number(summary: &str, before: &str) -> u64 {
    summary
        .split(before)
        .next()
        .and_then(|s| s.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number before {before:?} in {summary}"))
}

#[test]
fn junk_tags_over_a_day_cost_what_they_cost_over_ten_minutes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 100_000;
    let short = dir.path().join("ten-minutes.jsonl");
    let long = dir.path().join("25-hours.jsonl");
    junk_recording(&short, n, 600);
    junk_recording(&long, n, 25 * 3600);
    let (peak_short, state_short, sum_short) = replay_measured(&short, &dir.path().join("s1"));
    let (peak_long, state_long, sum_long) = replay_measured(&long, &dir.path().join("s2"));
    eprintln!(
        "junk tags: 10 min: peak RSS {peak_short} KiB, state {state_short} B; \
         25 h: peak RSS {peak_long} KiB, state {state_long} B"
    );
    for summary in [&sum_short, &sum_long] {
        assert_eq!(summary_number(summary, "detector services"), 0, "{summary}");
        assert_eq!(summary_number(summary, "tracked,"), 0, "{summary}");
        assert!(
            summary_number(summary, "candidates,") <= 10_000,
            "{summary}"
        );
        assert!(summary.contains(&format!("reports {n}")), "{summary}");
    }
    // Flat: the day-long flood costs at most a little more than the burst
    // (more buckets closed, hence a larger store of bucket totals).
    assert!(
        peak_long < peak_short * 3 / 2 + 20 * 1024,
        "peak RSS {peak_long} KiB over 25 h vs {peak_short} KiB over 10 min"
    );
    assert!(peak_long < 256 * 1024, "peak RSS {peak_long} KiB");
    assert!(
        state_long < 64 << 20,
        "state {state_long} B over 25 h (10 min: {state_short} B)"
    );
}

#[test]
fn a_real_discovered_outage_still_fires_amid_junk_tags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mixed.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let start = 1_783_173_600_000_000i64;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for second in 0..900i64 {
        // Two junk tags a second, each from its own account.
        for k in 0..2 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let name: String = (0..7)
                .map(|i| (b'a' + ((seed >> (i * 5)) % 26) as u8) as char)
                .collect();
            let t = start + second * 1_000_000 + k * 400_000;
            writeln!(
                out,
                "{}",
                frame(
                    t,
                    &format!("did:plc:j{second}x{k}"),
                    &format!("#{name}Down")
                )
            )
            .expect("write");
        }
        // From minute 10: forty people in two minutes say #ZorblyDown,
        // each in their own words (one long text from many accounts is a
        // copy, counted as three of them).
        if (600..720).contains(&second) && second % 3 == 0 {
            let t = start + second * 1_000_000 + 700_000;
            writeln!(
                out,
                "{}",
                frame(
                    t,
                    &format!("did:plc:user{second}"),
                    &format!("is #ZorblyDown for everyone? app won't load (try {second})")
                )
            )
            .expect("write");
        }
    }
    drop(out);
    let output = bin().arg("replay").arg(&path).output().expect("replay");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let alerts: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert JSON"))
        .collect();
    let services: Vec<&str> = alerts
        .iter()
        .filter_map(|a| a["service"].as_str())
        .collect();
    assert!(
        alerts
            .iter()
            .any(|a| a["service"] == "zorbly" && a["state"] == "firing" && a["discovered"] == true),
        "the discovered outage fires: {services:?}\n{stderr}"
    );
    assert!(
        services.iter().all(|s| *s == "zorbly"),
        "no junk name alerts: {services:?}"
    );
}

#[test]
fn a_closed_stdout_ends_replay_quietly_instead_of_retrying() {
    // `replay | head -n1`: read one alert, then close the pipe.
    let mut child = bin()
        .arg("replay")
        .arg(demo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).expect("one line");
    drop(stdout);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        // The old behaviour retried the write until the 120 s drain timeout.
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still retrying a closed pipe"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(first.contains("\"service\":\"discord\""), "{first}");
    assert!(!status.success(), "ended by the broken pipe: {status}");
    assert!(
        !stderr.contains("will retry"),
        "no retries logged: {stderr}"
    );
}

/// `replay > /dev/full`: a failed write to standard output ends the
/// replay at once, as a closed pipe does, naming stdout and the OS error,
/// with exit status 1 and the alerts it could not write counted. It
/// retried for the whole drain (two minutes), then exited 3.
#[test]
fn a_full_stdout_ends_replay_at_once_saying_what_was_not_written() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        eprintln!("skipped: no /dev/full on this system");
        return;
    };
    let started = std::time::Instant::now();
    let out = bin()
        .arg("replay")
        .arg(demo())
        .stdout(full)
        .output()
        .expect("runs");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(took < Duration::from_secs(60), "took {took:?}: {stderr}");
    assert!(
        stderr.contains("error: cannot write alert to stdout: No space left on device"),
        "{stderr}"
    );
    assert!(
        stderr.contains("undelivered, kept in a temporary state directory"),
        "what was not written is said: {stderr}"
    );
    assert!(!stderr.contains("drain timeout"), "{stderr}");
}

#[test]
fn a_secret_on_the_command_line_is_warned_about() {
    let missing = "/nonexistent/recording.jsonl";
    let on_line = bin()
        .args([
            "replay",
            "--webhook-secret",
            "s3cret",
            "--webhook",
            "http://127.0.0.1:1/",
            missing,
        ])
        .env_remove("OUTAGEWATCH_WEBHOOK_SECRET")
        .output()
        .expect("replay");
    let err = String::from_utf8_lossy(&on_line.stderr);
    assert!(err.contains("visible to other users"), "{err}");
    assert!(err.contains("OUTAGEWATCH_WEBHOOK_SECRET"), "{err}");
    assert!(
        !err.contains("s3cret"),
        "the secret itself is not printed: {err}"
    );
    let from_env = bin()
        .args(["replay", missing])
        .env("OUTAGEWATCH_WEBHOOK_SECRET", "s3cret")
        .output()
        .expect("replay");
    let err = String::from_utf8_lossy(&from_env.stderr);
    assert!(!err.contains("visible to other users"), "{err}");
}

/// Event times no post can have (before 1970, at the ends of `i64`) are
/// malformed frames, counted and named with their line; the frames around
/// them are counted as usual. Before, the de-duplication horizon and the
/// bucket arithmetic overflowed on them (a panic in a debug build).
#[test]
fn event_times_out_of_range_are_malformed_frames_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("hostile.jsonl");
    let good = 1_783_170_000_000_000;
    let lines = [
        frame(i64::MIN, "did:plc:a", "is discord down"),
        frame(good, "did:plc:b", "is discord down"),
        frame(-1, "did:plc:c", "is discord down"),
        frame(i64::MAX, "did:plc:d", "is discord down"),
        frame(good + 1, "did:plc:e", "is discord down"),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").expect("write");
    let (_, _, summary) = replay_measured(&file, &dir.path().join("state"));
    assert_eq!(summary_number(&summary, "| recoveries"), 2, "{summary}");
    for line in [1, 3, 4] {
        let at = format!("hostile.jsonl:{line}: bad event time");
        assert!(summary.contains(&at), "{at} in {summary}");
    }
    assert!(summary.contains("malformed: 3"), "{summary}");
}
