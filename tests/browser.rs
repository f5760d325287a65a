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
    browse_at(browser, url, what, "1400,1500")
}

/// [`browse`] with the window `size` ("WIDTH,HEIGHT").
fn browse_at(browser: &Path, url: &str, what: &str, size: &str) -> String {
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
            // Lets the page's fetch and rendering finish before the dump.
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--window-size={size}"))
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
    // The live document sends `alert_count`, not the alerts: the card
    // counts at least the firing one either way.
    let alerts = regex::Regex::new(r"<span>alerts <b>([1-9]\d*)</b></span>").expect("regex");
    assert!(
        alerts.is_match(inside),
        "{what}: the incident's alerts are counted:\n{inside}"
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
        !dom.contains("[object Object]"),
        "{what}: a cell printed an object:\n{dom}"
    );
    // The static page holds the empty tables: look at their rows.
    let sources = table(dom, "sources");
    let row = regex::Regex::new(
        r#"<tr><td class="">[^<]*/demo\.jsonl\.gz</td><td class="">recording</td><td class="num">[1-9]\d*</td>"#,
    )
    .expect("regex");
    assert!(
        row.is_match(sources),
        "{what}: the recording, its state and frames:\n{sources}"
    );
}

/// The inside of `<table id="ID">`.
fn table<'a>(dom: &'a str, id: &str) -> &'a str {
    let open = format!(r#"<table id="{id}">"#);
    let at = dom.find(&open).unwrap_or_else(|| panic!("no table {id}"));
    let rest = &dom[at..];
    &rest[..rest.find("</table>").unwrap_or(rest.len())]
}

/// The webhook that cannot be reached: shown in red with its state, and
/// (while the sinks run) its last error.
fn check_outbox(dom: &str, what: &str, state: &str) {
    let outbox = table(dom, "outbox");
    let row = regex::Regex::new(&format!(
        r#"<tr><td class="">webhook-[0-9a-f]{{8}}</td><td class=" down">{state}"#
    ))
    .expect("regex");
    assert!(
        row.is_match(outbox),
        "{what}: the failing webhook in red, {state:?}:\n{outbox}"
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

/// Chromium, or `None` (the test then passes, saying it skipped) when it
/// is not installed and neither `CI=true` nor
/// `OUTAGEWATCH_REQUIRE_BROWSER` asks for it.
fn browser_or_skip() -> Option<PathBuf> {
    let browser = chromium();
    if browser.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true")
                && std::env::var_os("OUTAGEWATCH_REQUIRE_BROWSER").is_none(),
            "no chromium on PATH, and CI=true or OUTAGEWATCH_REQUIRE_BROWSER is set: `apt-get install -y chromium`"
        );
        eprintln!("SKIPPED: no chromium on PATH (apt-get install -y chromium)");
    }
    browser
}

/// A replay of the demo serving its results (`--http 127.0.0.1:0
/// --serve-after`, with `extra` arguments) and the URL it serves them on.
/// A webhook nobody answers (port 9, discard, is closed here) keeps its
/// alerts undelivered, which the pages must say.
fn serve_replay(extra: &[&str]) -> (Replay, String) {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo.jsonl.gz");
    let mut child = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .arg("replay")
        .arg(&demo)
        .args([
            "--webhook",
            "http://127.0.0.1:9/hook",
            "--drain-timeout",
            "1",
        ])
        .args(["--http", "127.0.0.1:0", "--serve-after"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .env_remove("OUTAGEWATCH_HTTP_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("replay starts");
    let stderr = child.stderr.take().expect("stderr");
    let replay = Replay(child);
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
    (replay, url)
}

/// The page's own HTML and script with `snapshot` inline, as the report
/// carries its data, loaded by `browser`: its DOM.
fn browse_snapshot(browser: &Path, snapshot: &serde_json::Value) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/assets");
    let read = |name: &str| std::fs::read_to_string(assets.join(name)).expect("asset");
    // As the report writes its data: nothing in it can close the element.
    let data = serde_json::to_string(snapshot)
        .expect("json")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let page = read("index.html")
        .replace("<!--STYLE-->", &format!("<style>\n{}\n</style>", read("style.css")))
        .replace(
            "<!--SCRIPT-->",
            &format!(
                "<script type=\"application/json\" id=\"snapshot\">{data}</script>\n<script>\n{}\n</script>",
                read("app.js")
            ),
        );
    let path = dir.path().join("snapshot.html");
    std::fs::write(&path, page).expect("page");
    browse(browser, &format!("file://{}", path.display()), "--dump-dom")
}

/// A token holding `%` (not an escape) and `&`, given in the fragment:
/// the page sends all of it, as typed, and shows the data. It took the
/// token up to the `&`, and a raw `%` made the decoding throw, so the
/// token was never kept and the page said "401: open the page as
/// /#token=YOUR_TOKEN".
#[test]
fn a_token_with_percent_and_ampersand_in_the_fragment_opens_the_dashboard() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let token = "s3%cr&et=100%";
    let (replay, url) = serve_replay(&["--http-token", token]);
    let dom = browse(&browser, &format!("{url}#token={token}"), "--dump-dom");
    assert!(
        !dom.contains("401: open the page"),
        "the token was refused:\n{dom}"
    );
    check_dom(&dom, "live page with a token");
    // Percent escapes still decode: the same token written `%25`, `%26`.
    let escaped = "s3%25cr%26et%3D100%25";
    let dom = browse(&browser, &format!("{url}#token={escaped}"), "--dump-dom");
    assert!(
        !dom.contains("401: open the page"),
        "the escaped token was refused:\n{dom}"
    );
    check_dom(&dom, "live page with an escaped token");
    // Without the token: the page says how to give it.
    let dom = browse(&browser, &url, "--dump-dom");
    assert!(dom.contains("401: open the page as /#token="), "{dom}");
    drop(replay);
}

/// Where `sessionStorage` throws (storage refused, some private modes),
/// the token given in the fragment is still sent: it is kept in a variable
/// too. The page's script in a page of the test's own, with the storage
/// made to throw and `fetch` replaced by one that writes the request's
/// `Authorization` into the DOM.
#[test]
fn a_token_is_sent_even_where_session_storage_throws() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let script = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/assets/app.js"),
    )
    .expect("app.js");
    let stubs = r#"
Object.defineProperty(window, "sessionStorage", {
  configurable: true,
  get: function () { throw new DOMException("storage refused", "SecurityError"); }
});
window.fetch = function (url, options) {
  var auth = (options && options.headers && options.headers.Authorization) || "none";
  document.body.setAttribute("data-auth", auth);
  return new Promise(function () {});
};"#;
    let page = format!(
        "<!doctype html><html><body><p id=\"problem\"></p><span id=\"ready\"></span>\n<script>{stubs}</script>\n<script>\n{script}\n</script></body></html>"
    );
    let path = dir.path().join("storage-refused.html");
    std::fs::write(&path, page).expect("page");
    let url = format!("file://{}#token=s3cret", path.display());
    let dom = browse(&browser, &url, "--dump-dom");
    assert!(
        dom.contains(r#"data-auth="Bearer s3cret""#),
        "the token was not sent:\n{dom}"
    );
}

/// Each source's `last_failure` (why its last connection ended or failed)
/// is shown in the sources table: the API had it, the page did not. It may
/// quote the server, so it is text: markup in it shows literally, and no
/// element is made of it. The page's own HTML and script with a snapshot
/// of two live sources inline, as the report carries its data.
#[test]
fn a_source_s_last_failure_is_shown_as_text() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let failure = r#"the server refused with HTTP 401: <b>no</b> & <img src=x onerror="document.title='pwned'">"#;
    let snapshot = serde_json::json!({
        "mode": "daemon",
        "version": "test",
        "generated_at": "2026-07-04T10:00:00Z",
        "ready": false,
        "ready_reason": "no source is connected (masto)",
        "health": { "silence_secs": 60, "lag_secs": 120 },
        "incidents": [],
        "services": [],
        "closest": [],
        "sources": [
            { "name": "masto", "kind": "live", "connected": false, "reconnects": 3, "stalls": 0,
              "last_failure": failure, "pipeline": { "frames": 0 } },
            { "name": "bluesky", "kind": "live", "connected": true, "silent_seconds": 1.0,
              "reconnects": 0, "stalls": 0, "last_failure": null, "pipeline": { "frames": 5 } }
        ],
        "outbox": { "sinks": [] },
        "stats": {}
    });
    let dom = browse_snapshot(&browser, &snapshot);
    let sources = table(&dom, "sources");
    assert!(
        sources.contains("<th class=\"\">last failure</th>"),
        "a column for it:\n{sources}"
    );
    // The markup as text, in the source's row, in red while it is down.
    let shown = r#"<td class=" down error">the server refused with HTTP 401: &lt;b&gt;no&lt;/b&gt; &amp; &lt;img src=x onerror="document.title='pwned'"&gt;</td>"#;
    let row = sources
        .split("<tr>")
        .find(|row| row.starts_with(r#"<td class="">masto</td>"#))
        .unwrap_or_else(|| panic!("no row for masto:\n{sources}"));
    assert!(row.contains(shown), "the failure, literally:\n{row}");
    assert!(
        !sources.contains("<b>") && !sources.contains("<img"),
        "no element made of it:\n{sources}"
    );
    assert!(!dom.contains("<title>pwned"), "nothing ran:\n{dom}");
    // A source with no failure: a dash.
    let fine = sources
        .split("<tr>")
        .find(|row| row.starts_with(r#"<td class="">bluesky</td>"#))
        .unwrap_or_else(|| panic!("no row for bluesky:\n{sources}"));
    assert!(fine.ends_with("<td class=\"\">-</td></tr>"), "{fine}");
}

/// Stopped sinks (after a replay, or a daemon's drain) are judged by the
/// dead letters the store holds, not by this run's counter: a sink whose
/// letters died in an earlier run showed "stopped" with nothing
/// undelivered and no last error. The API gives the store's count and
/// newest letter (see `src/http/api.rs`); `dead_letter_count` is `null`
/// only when the store could not be counted, and then the run's count
/// stands in.
#[test]
fn a_stopped_sink_shows_the_dead_letters_of_the_store() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let sink =
        |name: &str, depth: u64, dead: u64, count: serde_json::Value, last: serde_json::Value| {
            serde_json::json!({
                "name": name, "stopped": true, "depth": depth, "set_aside": 0,
                "delivered": 0, "retries": 0, "dead": dead, "dead_letter_count": count,
                "last_dead_letter": last, "failing": null, "oldest_pending_at": null
            })
        };
    let last =
        serde_json::json!({ "failed_at": "2026-07-03T09:00:00Z", "reason": "HTTP 410: gone" });
    let snapshot = serde_json::json!({
        "mode": "replay", "version": "test", "generated_at": "2026-07-04T10:00:00Z",
        "ready": true, "health": { "silence_secs": 60, "lag_secs": 120 },
        "incidents": [], "services": [], "closest": [], "sources": [],
        "outbox": { "sinks": [
            // Its letters died in an earlier run: none this run.
            sink("earlier", 0, 0, 3.into(), last),
            // Waiting alerts and a letter of the store.
            sink("waiting", 2, 0, 1.into(), serde_json::Value::Null),
            // Nothing left.
            sink("done", 0, 0, 0.into(), serde_json::Value::Null),
            // The store could not be counted as it stopped.
            sink("uncounted", 0, 1, serde_json::Value::Null, serde_json::Value::Null),
        ] },
        "stats": {}
    });
    let dom = browse_snapshot(&browser, &snapshot);
    let outbox = table(&dom, "outbox");
    let row = |name: &str| {
        outbox
            .split("<tr>")
            .find(|row| row.starts_with(&format!(r#"<td class="">{name}</td>"#)))
            .unwrap_or_else(|| panic!("no row for {name}:\n{outbox}"))
    };
    let earlier = row("earlier");
    assert!(
        earlier.contains(r#"<td class=" down">stopped, 3 undelivered</td>"#),
        "the store's letters count: {earlier}"
    );
    assert!(
        earlier.ends_with(r#"<td class=" down error">HTTP 410: gone</td></tr>"#),
        "the newest letter's reason: {earlier}"
    );
    let waiting = row("waiting");
    assert!(
        waiting.contains(r#"<td class=" down">stopped, 3 undelivered</td>"#),
        "waiting and dead: {waiting}"
    );
    let done = row("done");
    assert!(done.contains(r#"<td class="">stopped</td>"#), "{done}");
    let uncounted = row("uncounted");
    assert!(
        uncounted.contains(r#"<td class=" down">stopped, 1 undelivered</td>"#),
        "{uncounted}"
    );
}

#[test]
fn the_dashboard_and_the_report_show_the_discord_incident() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let shots = std::env::var_os("OUTAGEWATCH_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let report = dir.path().join("report.html");
    let report_arg = report.to_str().expect("utf8 path");
    let (mut replay, url) = serve_replay(&["--report", report_arg]);

    let dom = browse(&browser, &url, "--dump-dom");
    check_dom(&dom, "live page");
    // The sinks have stopped after the run: still listed, not "none".
    check_outbox(&dom, "live page", "stopped, [1-9]\\d* undelivered");
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
    check_outbox(&dom, "report", "(failing|dead-lettering)");
    assert!(dom.contains("replay report"), "the report says what it is");

    // On a phone: the report with a probe that writes the page's width
    // and the window's into the DOM, asked for at 390 px (headless
    // Chromium may give a little more; under 520 px either way, the
    // cards' old minimum). The layout was 1031 px wide.
    let page = std::fs::read_to_string(&report).expect("report");
    let probe = r#"<script>addEventListener("load", function () { document.body.setAttribute("data-widths", document.documentElement.scrollWidth + " " + window.innerWidth); });</script></body>"#;
    let narrow = dir.path().join("narrow.html");
    std::fs::write(&narrow, page.replace("</body>", probe)).expect("narrow page");
    let dom = browse_at(
        &browser,
        &format!("file://{}", narrow.display()),
        "--dump-dom",
        "390,1500",
    );
    let widths: Vec<u32> = regex::Regex::new(r#"data-widths="(\d+) (\d+)""#)
        .expect("regex")
        .captures(&dom)
        .map(|c| {
            [&c[1], &c[2]]
                .iter()
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .unwrap_or_else(|| panic!("no widths measured:\n{dom}"));
    let (page_width, window) = (widths[0], widths[1]);
    assert!(window < 520, "the window is {window} px wide");
    assert!(
        page_width <= window,
        "the page is {page_width} px wide in a {window} px window"
    );
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
    // 3: alerts left undelivered (the webhook nobody answers), said at
    // the end as on the page; anything else is a failure of the run.
    assert_eq!(
        exit.code(),
        Some(3),
        "replay ends on SIGTERM, saying alerts are undelivered: {exit:?}"
    );
}
