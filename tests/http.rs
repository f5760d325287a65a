//! The status server of a running daemon (against a loopback Jetstream
//! stand-in): every API route, the metrics parsed by a Prometheus parser,
//! a dead letter re-queued through the API while the daemon runs, `alerts
//! dead|retry` through the API and then from the store; a public bind
//! without a token refused, with a token every data route guarded.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::receiver::Receiver;
use support::{Daemon, JetstreamServer, Plan, demo_frames, jetstream_config, start_daemon};

/// Waits for the daemon to write its bound address to the state directory.
fn bound_address(state: &Path, daemon: &Daemon) -> SocketAddr {
    let file = state.join("http.addr");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Some(addr) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|a| a.trim().parse::<SocketAddr>().ok())
        {
            return addr;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no {} within 60 s; log:\n{}",
        file.display(),
        daemon.log_text()
    );
}

/// A small blocking HTTP client for the tests.
struct Client {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    fn new(addr: SocketAddr, token: Option<&str>) -> Client {
        Client {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            http: reqwest::Client::builder()
                .tls_backend_preconfigured(
                    (*outagewatch::tls::client_config().expect("tls")).clone(),
                )
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            base: format!("http://{addr}"),
            token: token.map(str::to_owned),
        }
    }

    fn send(&self, request: reqwest::RequestBuilder) -> (u16, String) {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        self.runtime.block_on(async {
            let response = request.send().await.expect("the server answers");
            let status = response.status().as_u16();
            (status, response.text().await.expect("a body"))
        })
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.send(self.http.get(format!("{}{path}", self.base)))
    }

    fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    fn post(&self, path: &str, body: serde_json::Value) -> (u16, String) {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
    }

    /// Polls `path` until it answers 200 and `done` holds, at most 60 s.
    fn wait_for(&self, path: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let start = Instant::now();
        loop {
            // Not ready yet (503) counts as "not yet".
            let (status, body) = self.get(path);
            let value: serde_json::Value =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"));
            if status == 200 && done(&value) {
                return value;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "GET {path} never satisfied the condition: {status} {value}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn outagewatch(args: &[&str], state: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .env("RUST_LOG", "warn")
        .env_remove("OUTAGEWATCH_HTTP_TOKEN")
        .env_remove("OUTAGEWATCH_CONFIG")
        .output()
        .expect("runs")
}

/// Sample value of the first series of `name` whose labels include `labels`.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(k).is_some_and(|have| have == *v))
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn a_running_daemon_serves_the_api_and_metrics_and_requeues_dead_letters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let server = JetstreamServer::start(demo_frames(), Plan::default());
    let receiver = Receiver::start();
    receiver.always(Some(400));
    let config = jetstream_config(dir.path(), &[server.url()], 30.0);
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "\n[[sinks]]\nname = \"hook\"\nurl = \"{}\"\nbackoff_min_ms = 100\nbackoff_max_ms = 200\n",
        receiver.url()
    ));
    std::fs::write(&config, text).expect("config");
    let alerts = dir.path().join("alerts.jsonl");
    let daemon = start_daemon(&config, &state, &alerts);
    let addr = bound_address(&state, &daemon);
    daemon.wait_for(
        &format!("status server listening addr={addr}"),
        Duration::from_secs(10),
    );
    let client = Client::new(addr, None);

    // Health, readiness, the page.
    assert_eq!(client.json("/healthz")["status"], "ok");
    client.wait_for("/readyz", |v| v["ready"] == true);
    let (status, page) = client.get("/");
    assert_eq!(status, 200);
    assert!(page.contains("<title>outagewatch</title>") && page.contains("/assets/app.js"));
    // The page's data, as the running daemon serves it: the document the
    // script renders, with the fields the page relies on.
    let dashboard = client.json("/api/v1/dashboard");
    assert_eq!(dashboard["mode"], "daemon", "{dashboard}");
    assert!(
        dashboard["sources"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );
    assert!(dashboard["incident_totals"]["all"].is_u64(), "{dashboard}");
    assert!(dashboard["health"]["lag_secs"].is_i64(), "{dashboard}");
    assert_eq!(client.get("/assets/app.js").0, 200);
    assert_eq!(client.get("/assets/style.css").0, 200);
    assert_eq!(client.get("/no/such/route").0, 404);

    // The Discord incident fires, escalates and resolves over the demo.
    let incidents = client.wait_for("/api/v1/incidents?state=all", |v| {
        v["incidents"].as_array().is_some_and(|list| {
            list.iter()
                .any(|i| i["service"] == "discord" && i["alert_count"] == 3)
        })
    });
    let discord = incidents["incidents"]
        .as_array()
        .and_then(|list| list.iter().find(|i| i["service"] == "discord"))
        .expect("discord incident")
        .clone();
    let id = discord["id"].as_str().expect("an id");
    assert!(
        discord["started_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{discord}"
    );
    assert_eq!(client.get("/api/v1/incidents?state=bogus").0, 400);
    // A misspelt key is refused, not read as the default.
    for misspelt in [
        "/api/v1/incidents?sate=all",
        "/api/v1/services?actve=true",
        "/api/v1/services/discord/series?minute=5",
    ] {
        assert_eq!(client.get(misspelt).0, 400, "{misspelt}");
    }
    let open = client.json("/api/v1/incidents");
    let open = open["incidents"].as_array().expect("a list");
    assert!(
        open.iter().all(|i| i["open"] == true),
        "only open ones by default: {open:?}"
    );

    let full = client.json(&format!("/api/v1/incidents/{id}"));
    let sent: Vec<&str> = full["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["state"].as_str())
        .collect();
    assert_eq!(sent, vec!["firing", "updated", "resolved"]);
    assert!(!full["samples"].as_array().expect("samples").is_empty());
    assert!(!full["top_phrases"].as_array().expect("phrases").is_empty());
    let chart = full["series"].as_array().expect("series");
    assert!(
        chart
            .iter()
            .map(|p| p["reports"].as_u64().unwrap_or(0))
            .sum::<u64>()
            > 100,
        "{full}"
    );
    assert_eq!(client.get("/api/v1/incidents/nope-1").0, 404);

    let services = client.json("/api/v1/services");
    let listed = services["services"].as_array().expect("services");
    let d = listed
        .iter()
        .find(|s| s["service"] == "discord")
        .expect("discord tracked");
    for key in [
        "rate_per_min",
        "expected_per_min",
        "fire_per_min",
        "p_value",
    ] {
        assert!(d[key].is_number(), "{key}: {d}");
    }
    assert!(
        d["last_report"]
            .as_str()
            .is_some_and(|t| t.starts_with("2026-")),
        "{d}"
    );
    let active = client.json("/api/v1/services?active=true");
    for s in active["services"].as_array().expect("list") {
        assert!(
            s["authors"].as_u64().unwrap_or(0) > 0 || !s["incident"].is_null(),
            "active=true lists only services with reports or an incident: {s}"
        );
    }

    let series = client.json("/api/v1/services/discord/series?minutes=60");
    let points = series["points"].as_array().expect("points");
    // From the demo's first minute (14:00) to the newest bucket, which is
    // past the resolution (14:24) and at most the demo's end (14:29).
    assert!((24..=31).contains(&points.len()), "{}", points.len());
    assert!(
        points
            .iter()
            .any(|p| p["reports"].as_u64().unwrap_or(0) > 10),
        "{series}"
    );
    assert!(
        points
            .iter()
            .all(|p| p["expected_per_min"].as_f64().is_some_and(|e| e > 0.0))
    );
    assert_eq!(client.get("/api/v1/services/never-heard-of/series").0, 404);

    let sources = client.wait_for("/api/v1/sources", |v| {
        v["sources"][0]["pipeline"]["posts"].as_u64().unwrap_or(0) > 5000
    });
    let bluesky = &sources["sources"][0];
    assert_eq!(bluesky["name"], "bluesky");
    assert_eq!(bluesky["connected"], true);
    assert!(
        bluesky["pipeline"]["posts"].as_u64().unwrap_or(0) > 5000,
        "{sources}"
    );

    let dashboard = client.json("/api/v1/dashboard");
    assert!(
        dashboard["incidents"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    );

    // The receiver refuses everything: three dead letters.
    let outbox = client.wait_for("/api/v1/outbox", |v| {
        v["sinks"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "hook"))
            .is_some_and(|hook| {
                hook["dead_letters"]
                    .as_array()
                    .is_some_and(|d| d.len() == 3)
            })
    });
    let hook = outbox["sinks"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "hook"))
        .expect("hook sink");
    let letter = hook["dead_letters"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(
        hook["dead_letters"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("400"))
    );
    // A page of one: the totals stay whole, `next` leads to the second.
    assert!(outbox["next"].is_null(), "{outbox}");
    let one = client.json("/api/v1/outbox?limit=1");
    assert_eq!(one["dead_letters_total"], outbox["dead_letters_total"]);
    assert_eq!(one["dead_letters_shown"], 1, "{one}");
    assert_eq!(one["next"].as_str(), Some(letter.as_str()), "{one}");
    let second = client.json(&format!("/api/v1/outbox?limit=1&after={letter}"));
    let second_ids: Vec<&serde_json::Value> = second["sinks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["dead_letters"].as_array().into_iter().flatten())
        .map(|l| &l["id"])
        .collect();
    assert_eq!(second_ids, [&hook["dead_letters"][1]["id"]], "{second}");
    assert_eq!(client.get("/api/v1/outbox?limit=0").0, 400);

    // Metrics, parsed as Prometheus would.
    let (status, text) = client.get("/metrics");
    assert_eq!(status, 200);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("parses as Prometheus text");
    let bluesky = [("source", "bluesky")];
    assert!(sample(&scrape, "outagewatch_frames_total", &bluesky).is_some_and(|v| v > 10_000.0));
    assert!(sample(&scrape, "outagewatch_reports_total", &bluesky).is_some_and(|v| v > 100.0));
    assert!(sample(&scrape, "outagewatch_recoveries_total", &bluesky).is_some_and(|v| v > 0.0));
    assert!(
        sample(
            &scrape,
            "outagewatch_skipped_frames_total",
            &[("source", "bluesky"), ("reason", "identity")]
        )
        .is_some()
    );
    assert_eq!(
        sample(&scrape, "outagewatch_source_connected", &bluesky),
        Some(1.0)
    );
    assert!(sample(&scrape, "outagewatch_source_lag_seconds", &bluesky).is_some());
    assert!(sample(&scrape, "outagewatch_source_reconnects_total", &bluesky).is_some());
    assert_eq!(
        sample(&scrape, "outagewatch_alerts_total", &[("state", "firing")]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &scrape,
            "outagewatch_dead_letters_total",
            &[("sink", "hook")]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &scrape,
            "outagewatch_dead_letters_stored",
            &[("sink", "hook")]
        ),
        Some(3.0)
    );
    assert!(
        sample(
            &scrape,
            "outagewatch_deliveries_total",
            &[("sink", "alerts")]
        )
        .is_some_and(|v| v >= 3.0)
    );
    assert!(sample(&scrape, "outagewatch_outbox_depth", &[("sink", "hook")]).is_some());
    assert!(
        sample(
            &scrape,
            "outagewatch_incidents_open",
            &[("severity", "high")]
        )
        .is_some()
    );
    assert!(
        sample(
            &scrape,
            "outagewatch_service_rate_per_minute",
            &[("service", "discord")]
        )
        .is_some()
    );
    assert!(
        sample(
            &scrape,
            "outagewatch_service_expected_per_minute",
            &[("service", "discord")]
        )
        .is_some()
    );
    assert!(sample(&scrape, "outagewatch_store_size_bytes", &[]).is_some_and(|v| v > 0.0));
    assert_eq!(sample(&scrape, "outagewatch_ready", &[]), Some(1.0));
    assert!(sample(&scrape, "process_resident_memory_bytes", &[]).is_some_and(|v| v > 0.0));
    assert!(sample(&scrape, "process_cpu_seconds_total", &[]).is_some());

    // `alerts dead` goes through the API while the daemon holds the store.
    let dead = outagewatch(&["alerts", "dead"], &state);
    let stderr = String::from_utf8_lossy(&dead.stderr);
    assert!(dead.status.success(), "{stderr}");
    assert!(stderr.contains("from the running daemon"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&dead.stdout).lines().count(), 3);

    // Re-queue one through the API; the receiver now takes it.
    receiver.always(None);
    let (status, body) = client.post("/api/v1/outbox/retry", serde_json::json!({ "id": letter }));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"requeued\":1"), "{body}");
    let start = Instant::now();
    while receiver.delivered().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the re-queued alert was not delivered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = client.post(
        "/api/v1/outbox/retry",
        serde_json::json!({ "id": "hook:999999" }),
    );
    assert_eq!(status, 404);
    // And the rest through the command, which uses the API too.
    let retry = outagewatch(&["alerts", "retry"], &state);
    let stdout = String::from_utf8_lossy(&retry.stdout);
    assert!(
        retry.status.success() && stdout.contains("2 alert(s) re-queued in the running daemon"),
        "{stdout}{}",
        String::from_utf8_lossy(&retry.stderr)
    );
    let start = Instant::now();
    while receiver.delivered().len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "re-queued alerts not delivered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let (status, _, log) = daemon.terminate(Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert!(
        !state.join("http.addr").exists(),
        "the address file goes with the server"
    );
    // Stopped: `alerts dead` opens the store itself.
    let dead = outagewatch(&["alerts", "dead"], &state);
    let stderr = String::from_utf8_lossy(&dead.stderr);
    assert!(
        dead.status.success() && stderr.contains("0 dead letter(s)"),
        "{stderr}"
    );
    assert!(!stderr.contains("running daemon"), "{stderr}");

    // An address file left behind (a SIGKILL) or copied with the directory
    // names whatever listens there now, here the receiver, which answers
    // every request. The store is not in use, so the file is not trusted:
    // the store itself is read, and the receiver is not asked.
    let asked = receiver.delivered().len();
    let stale = receiver.url();
    let stale = stale
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host:port");
    std::fs::write(state.join("http.addr"), format!("{stale}\n")).expect("write");
    for command in [&["alerts", "dead"][..], &["alerts", "retry"][..]] {
        let out = outagewatch(command, &state);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{command:?}: {stderr}");
        assert!(
            !stdout.contains("running daemon") && !stderr.contains("running daemon"),
            "{command:?}: {stdout}{stderr}"
        );
    }
    assert_eq!(
        receiver.delivered().len(),
        asked,
        "the receiver was not asked"
    );
}

#[test]
fn a_public_address_needs_a_token_and_then_every_data_route_asks_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let server = JetstreamServer::start(demo_frames()[..200].to_vec(), Plan::default());
    let config = jetstream_config(dir.path(), &[server.url()], 30.0);
    let config = config.to_str().expect("utf8");

    let refused = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .args([
            "run",
            "--config",
            config,
            "--http",
            "0.0.0.0:0",
            "--state-dir",
        ])
        .arg(&state)
        .env_remove("OUTAGEWATCH_HTTP_TOKEN")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not a loopback address")
            && stderr.contains("--http-token")
            && stderr.contains("OUTAGEWATCH_HTTP_TOKEN"),
        "{stderr}"
    );
    assert!(!state.exists(), "refused before anything was created");

    let daemon = Daemon::start_with_env(
        &[
            "run",
            "--config",
            config,
            "--http",
            "0.0.0.0:0",
            "--state-dir",
            state.to_str().expect("utf8"),
        ],
        &[("OUTAGEWATCH_HTTP_TOKEN", "s3cret-token")],
    );
    let bound = bound_address(&state, &daemon);
    let addr = SocketAddr::from(([127, 0, 0, 1], bound.port()));
    let anonymous = Client::new(addr, None);
    let wrong = Client::new(addr, Some("guess"));
    let right = Client::new(addr, Some("s3cret-token"));
    assert_eq!(anonymous.get("/healthz").0, 200, "health needs no token");
    assert_eq!(anonymous.get("/").0, 200, "the page holds no data");
    for path in [
        "/readyz",
        "/metrics",
        "/api/v1/incidents",
        "/api/v1/incidents/x",
        "/api/v1/services",
        "/api/v1/services/discord/series",
        "/api/v1/sources",
        "/api/v1/outbox",
        "/api/v1/dashboard",
    ] {
        let (status, body) = anonymous.get(path);
        assert_eq!(status, 401, "{path} without a token: {body}");
        assert_eq!(wrong.get(path).0, 401, "{path} with a wrong token");
    }
    assert_eq!(
        anonymous
            .post("/api/v1/outbox/retry", serde_json::json!({}))
            .0,
        401
    );
    assert_eq!(right.get("/api/v1/sources").0, 200);
    assert_eq!(right.get("/metrics").0, 200);
    let (status, _, log) = daemon.terminate(Duration::from_secs(30));
    assert!(status.success(), "{log}");
}

/// Under systemd (`Type=notify`): READY=1 once serving, WATCHDOG=1 at half
/// the watchdog interval, STOPPING=1 at SIGTERM; read from a datagram
/// socket standing in for systemd's.
#[cfg(unix)]
#[test]
fn systemd_is_told_ready_fed_and_told_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let server = JetstreamServer::start(demo_frames()[..200].to_vec(), Plan::default());
    let config = jetstream_config(dir.path(), &[server.url()], 30.0);
    let daemon = Daemon::start_with_env(
        &[
            "run",
            "--config",
            config.to_str().expect("utf8"),
            "--state-dir",
            state.to_str().expect("utf8"),
        ],
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().expect("utf8")),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut seen = String::new();
    let mut buf = [0u8; 512];
    let start = Instant::now();
    while !(seen.contains("READY=1") && seen.matches("WATCHDOG=1").count() >= 2) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "notifications so far: {seen:?}; log:\n{}",
            daemon.log_text()
        );
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
    }
    // Ready only once the status server has its address.
    assert!(state.join("http.addr").exists());
    let (status, _, log) = daemon.terminate(Duration::from_secs(30));
    assert!(status.success(), "{log}");
    let mut rest = String::new();
    while let Ok(n) = socket.recv(&mut buf) {
        rest.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(rest.contains("STOPPING=1"), "after SIGTERM: {rest:?}");
}

/// `replay --report` to a file that cannot be written fails at once,
/// before any alert is delivered: it used to replay everything first.
#[test]
fn a_report_that_cannot_be_written_is_refused_before_the_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo.jsonl.gz");
    let report = dir.path().join("no-such-dir/report.html");
    let alerts = dir.path().join("alerts.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .arg("replay")
        .arg(&demo)
        .arg("--alerts")
        .arg(&alerts)
        .arg("--report")
        .arg(&report)
        .env("RUST_LOG", "warn")
        .output()
        .expect("replay runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot write the report to") && stderr.contains("no-such-dir"),
        "{stderr}"
    );
    let written = std::fs::read_to_string(&alerts).unwrap_or_default();
    assert!(written.is_empty(), "alerts delivered first:\n{written}");
}
