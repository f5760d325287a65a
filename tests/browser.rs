//! The dashboard in a real browser: a replay of the demo serves its
//! results (`--http 127.0.0.1:0 --serve-after`) and writes the static
//! report (`--report`); headless Chromium loads both, and the test checks
//! by DOM that the Discord incident and its chart are shown, and by
//! screenshot that the page is not blank.
//!
//! Needs Chromium (Debian's `chromium`; `.ci/run` installs it). Without
//! it the test says so and passes, except when `CI=true` or
//! `OUTAGEWATCH_REQUIRE_BROWSER` is set (as `.ci/run` does), where it fails.
//! `OUTAGEWATCH_SCREENSHOTS=DIR` keeps the screenshots (the README's comes
//! from here).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn chromium() -> Option<PathBuf> {
    let names = [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ];
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Headless Chromium on `url`, with `what` (`--dump-dom` or
/// `--screenshot=FILE`); its stdout.
fn browse(browser: &Path, url: &str, what: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,1500",
            // Lets the page's fetch and rendering finish before the dump.
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(what)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium {what} {url} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The elements the test looks for, by the attributes the script sets.
fn check_dom(dom: &str, what: &str) {
    let card = regex::Regex::new(
        r#"<article class="card incident (?:open|resolved)" data-service="discord" data-id="discord-\d{8}T\d{6}Z">"#,
    )
    .expect("regex");
    let at = card
        .find(dom)
        .unwrap_or_else(|| panic!("{what}: no Discord incident card in the DOM:\n{dom}"));
    let end = dom[at.end()..]
        .find("</article>")
        .map_or(dom.len(), |e| at.end() + e);
    let inside = &dom[at.start()..end];
    assert!(
        inside.contains(r#"class="chart" role="img" data-service="discord""#),
        "{what}: no chart in the card:\n{inside}"
    );
    let bars = inside.matches(r#"<rect class="bar""#).count();
    assert!(bars >= 5, "{what}: the chart has {bars} bars:\n{inside}");
    assert!(
        inside.contains(r#"class="rate""#) && inside.contains(r#"class="band""#),
        "{what}: rate line and band"
    );
    assert!(
        inside.contains(r#"class="sev medium">medium"#),
        "{what}: severity shown"
    );
    assert!(
        inside.contains("Discord") || inside.contains("DISCORD"),
        "{what}: samples shown"
    );
    assert!(
        inside.contains(r#"<bdi class="chip">"#),
        "{what}: top phrases shown, each isolated"
    );
    // A post's text and link each in a <bdi>: a right-to-left override a
    // stranger leaves open in one cannot reverse the next.
    assert!(
        inside.contains(r#"<bdi class="text">"#) && inside.contains(r#"<bdi class="uri">"#),
        "{what}: samples isolated:\n{inside}"
    );
    assert!(
        dom.contains(r#"id="sources""#) && dom.contains("demo.jsonl.gz"),
        "{what}: source health"
    );
}

/// Distinct colours, and the share of pixels that are not the background:
/// a blank or failed page has almost none of either.
fn check_screenshot(path: &Path, what: &str) {
    let file = std::fs::File::open(path).expect("screenshot written");
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buffer = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buffer).expect("a frame");
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buffer[..info.buffer_size()]
        .chunks(channels)
        .map(|p| &p[..3.min(p.len())])
        .collect();
    let mut counts = std::collections::HashMap::new();
    for p in &pixels {
        *counts.entry(*p).or_insert(0usize) += 1;
    }
    let background = counts.values().max().copied().unwrap_or(0);
    let busy = 1.0 - background as f64 / pixels.len().max(1) as f64;
    assert!(
        info.width >= 1000 && info.height >= 1000,
        "{what}: {}x{}",
        info.width,
        info.height
    );
    assert!(counts.len() > 200, "{what}: only {} colours", counts.len());
    assert!(
        busy > 0.10,
        "{what}: {:.0} % of pixels differ from the background",
        busy * 100.0
    );
}

struct Replay(Child);

impl Drop for Replay {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

#[test]
fn the_dashboard_and_the_report_show_the_discord_incident() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true")
                && std::env::var_os("OUTAGEWATCH_REQUIRE_BROWSER").is_none(),
            "no chromium on PATH, and CI=true or OUTAGEWATCH_REQUIRE_BROWSER is set: `apt-get install -y chromium`"
        );
        eprintln!("SKIPPED: no chromium on PATH (apt-get install -y chromium)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let shots = std::env::var_os("OUTAGEWATCH_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let report = dir.path().join("report.html");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo.jsonl.gz");
    let mut child = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .arg("replay")
        .arg(&demo)
        .args(["--http", "127.0.0.1:0", "--serve-after", "--report"])
        .arg(&report)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("replay starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut replay = Replay(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("serving the results on ") {
                let url = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send(url);
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the replay serves its results");

    let dom = browse(&browser, &url, "--dump-dom");
    check_dom(&dom, "live page");
    let live_png = shots.join("dashboard.png");
    browse(
        &browser,
        &url,
        &format!("--screenshot={}", live_png.display()),
    );
    check_screenshot(&live_png, "live page");

    let report_url = format!("file://{}", report.display());
    let dom = browse(&browser, &report_url, "--dump-dom");
    check_dom(&dom, "report");
    assert!(dom.contains("replay report"), "the report says what it is");
    let report_png = shots.join("report.png");
    browse(
        &browser,
        &report_url,
        &format!("--screenshot={}", report_png.display()),
    );
    check_screenshot(&report_png, "report");

    let status = Command::new("kill")
        .args(["-TERM", &replay.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = replay.0.wait().expect("replay exits");
    assert!(exit.success(), "replay ends cleanly on SIGTERM: {exit:?}");
}
