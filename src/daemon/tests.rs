//! The daemon as a whole, in process.

use super::*;
use crate::config::SourceConfig;

/// The daemon on `sources` with a state in `dir`, no status server.
fn options(dir: &std::path::Path, sources: Vec<SourceConfig>) -> DaemonOptions {
    DaemonOptions {
        config: Config {
            sources,
            ..Config::default()
        },
        matcher: Matcher::embedded().expect("built-in patterns"),
        state_dir: dir.join("state"),
        http: None,
        clock: crate::wall::system(),
    }
}

/// Two workers, as on the machines it runs on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// With every source task gone the frame channel closes and the pipeline
/// ends: that used to be a clean stop (exit 0, "stopped; state saved"),
/// which a supervisor restarting on failure left stopped for good.
#[test]
fn the_daemon_fails_when_every_source_ended_on_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No source at all (the configuration check refuses this; here it
    // stands for every source task having ended).
    let options = options(dir.path(), Vec::new());
    let ended = runtime().block_on(async {
        tokio::time::timeout(
            Duration::from_secs(60),
            run(options, std::future::pending()),
        )
        .await
    });
    match ended {
        Ok(Err(DaemonError::SourcesEnded)) => {}
        other => panic!("want SourcesEnded, got {other:?}"),
    }
    // The state was still saved and sealed as at a shutdown.
    assert!(
        crate::state::SledStore::open(&dir.path().join("state")).is_ok(),
        "the state opens again"
    );
}

/// A task's panic used to wait in its handle until the shutdown awaited
/// it: the daemon ran on without that task (no more source alerts, no
/// deliveries) and answered "ready". Now the panic stops it in order at
/// once, with the state saved and a failure exit.
#[test]
fn a_panicking_task_stops_the_daemon_in_order_with_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A source that keeps the daemon running (nothing listens on port 1 of
    // loopback: it retries with backoff).
    let nowhere = SourceConfig::jetstream("nowhere", vec!["ws://127.0.0.1:1/subscribe".into()]);
    let options = options(dir.path(), vec![nowhere]);
    let ended = runtime().block_on(async {
        let running = start(options).await.expect("starts");
        // Stands for any of the daemon's tasks: they are all spawned
        // through this supervisor.
        running
            .supervisor
            .spawn("a test task", async { panic!("on purpose") });
        tokio::time::timeout(
            Duration::from_secs(60),
            running.until(std::future::pending()),
        )
        .await
    });
    match ended {
        Ok(Err(DaemonError::TaskPanicked(failure))) => {
            assert_eq!(failure.task, "a test task");
            assert_eq!(failure.message, "on purpose");
        }
        other => panic!("want TaskPanicked, got {other:?}"),
    }
    assert!(
        crate::state::SledStore::open(&dir.path().join("state")).is_ok(),
        "the state was saved and sealed, and opens again"
    );
}

/// A `Write` into a shared buffer, for capturing the log.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}

/// The pipeline ended by a store failure, or by its thread's panic: the
/// stop logs each sink's report as a clean one does. The store failure's
/// path discarded them (no "alerts left in the outbox" line), the panic's
/// returned before it stopped the sinks or the status server.
#[test]
fn a_failed_pipeline_stops_the_sinks_and_logs_what_they_left() {
    let store_failure: PipelineEnd = Ok(Err(PipelineError::Store(StoreError::Corrupt {
        what: "test".into(),
        detail: "on purpose".into(),
    })));
    let (sender, receiver) = tokio::sync::oneshot::channel::<Result<Stats, PipelineError>>();
    drop(sender);
    let panicked: PipelineEnd = runtime().block_on(receiver);
    for (what, end) in [("store failure", store_failure), ("panic", panicked)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let nowhere = SourceConfig::jetstream("nowhere", vec!["ws://127.0.0.1:1/subscribe".into()]);
        let options = options(dir.path(), vec![nowhere]);
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let ended = {
            // The stop runs on this thread (the runtime's `block_on`).
            let _guard = tracing::subscriber::set_default(subscriber);
            runtime().block_on(async {
                let running = start(options).await.expect("starts");
                tokio::time::timeout(Duration::from_secs(60), running.shutdown(Some(end))).await
            })
        };
        assert!(matches!(ended, Ok(Err(_))), "{what}: {ended:?}");
        let text = log.text();
        assert!(text.contains("sink done"), "{what}: {text}");
    }
}

/// A loopback port nothing listens on: bound, then let go.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Sources whose connections fail log their URLs masked, at every level:
/// the reconnection lines (warn), the wait before the next host (info),
/// the Jetstream dictionary fetch (warn), a Mastodon instance's discovery,
/// and the start-up line naming the saved sequence cursor's host. Each
/// printed the configured URL whole, a Mastodon `access_token` at every
/// retry.
#[test]
fn failing_sources_never_log_their_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = closed_port();
    let mastodon = SourceConfig {
        kind: crate::source::SourceKind::Mastodon,
        ..SourceConfig::jetstream(
            "fedi",
            vec![
                format!("wss://127.0.0.1:{port}/api/v1/streaming?access_token=TOPSECRET"),
                format!("http://admin:INSTANCEPW@127.0.0.1:{port}/?access_token=INSTANCETOKEN"),
            ],
        )
    };
    let jetstream_url =
        format!("ws://user:USERPW@127.0.0.1:{port}/x?apikey=APIKEYVALUE&password=PASSWORDVALUE");
    let jetstream = SourceConfig::jetstream("bluesky", vec![jetstream_url.clone()]);
    let options = options(dir.path(), vec![mastodon, jetstream]);
    // A saved sequence cursor from that host, as a run before left it: the
    // start-up line names it.
    {
        let matcher = Matcher::embedded().expect("built-in patterns");
        let (mut pipeline, _, _) =
            open_pipeline(&options.config, matcher, &options.state_dir).expect("state");
        let time = crate::wall::rfc3339_micros(crate::wall::now_us() - 60_000_000);
        let host = crate::source::url::SourceUrl::from(jetstream_url);
        let received = crate::pipeline::Received {
            host: Some(&host),
            arrival_us: Some(crate::wall::now_us()),
            ..crate::pipeline::Received::jetstream()
        };
        // Five authors: a source's clock moves on the word of several.
        for (n, seq) in (400..=404).enumerate() {
            let frame = format!(
                r#"{{"$type":"message","payload":{{"$type":"network.bsky.jetstream.subscribeEvents#commit","seq":{seq},"did":"did:plc:a{seq}","time":"{time}","rev":"r","operation":"create","collection":"app.bsky.feed.post","rkey":"k","cid":"c","record":{{"text":"lunch was good","langs":["en"]}}}}}}"#
            );
            pipeline
                .process_frame("bluesky", n as u64, frame.as_bytes(), &received)
                .expect("frame");
        }
        pipeline.finish().expect("saved");
    }
    let log = Captured::default();
    let writer = log.clone();
    let logging = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish(),
    );
    // The sources log from the runtime's threads: each logs here for its
    // whole life, as this thread does for the test's.
    let on_start = logging.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&on_start)))
        .build()
        .expect("runtime");
    {
        let _guard = tracing::dispatcher::set_default(&logging);
        runtime.block_on(async {
            let running = start(options).await.expect("starts");
            // A few failed attempts each (the first backoff is about 0.5 s).
            tokio::time::sleep(Duration::from_secs(3)).await;
            let stopped = tokio::time::timeout(Duration::from_secs(60), running.shutdown(None));
            assert!(matches!(stopped.await, Ok(Ok(_))), "stops cleanly");
        });
    }
    let text = log.text();
    for line in [
        "resuming from the saved cursor",
        "connection lost; reconnecting",
        "waiting before reconnecting",
        "cannot fetch the Jetstream dictionary",
        "cannot discover the streaming host",
    ] {
        assert!(text.contains(line), "no {line:?} line: {text}");
    }
    assert!(text.contains("seq 404 on ws://***@127.0.0.1"), "{text}");
    for secret in [
        "TOPSECRET",
        "INSTANCEPW",
        "INSTANCETOKEN",
        "USERPW",
        "APIKEYVALUE",
        "PASSWORDVALUE",
        "user:",
        "admin:",
    ] {
        assert!(!text.contains(secret), "{secret} in the log: {text}");
    }
}

/// A server sending a text frame that is not UTF-8 at every connection:
/// each is a malformed frame of its source (reason `invalid_utf8`, saying
/// why), where the operator reads those (the source's pipeline counts,
/// the examples, the metric), besides the reconnect it causes. It was a
/// reconnect only.
#[test]
fn a_text_frame_that_is_not_utf8_is_counted_as_its_source_s_malformed_frame() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = runtime();
    let (telemetry, reconnects) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    let _ = ws.get_mut().write_all(&[0x81, 0x02, 0xff, 0xfe]).await;
                    std::future::pending::<()>().await;
                });
            }
        });
        let mut masto = SourceConfig {
            kind: crate::source::SourceKind::Mastodon,
            ..SourceConfig::jetstream("m", vec![format!("ws://{addr}/api/v1/streaming")])
        };
        masto.connection.backoff_min = Duration::from_millis(50);
        masto.connection.backoff_max = Duration::from_millis(100);
        let running = start(options(dir.path(), vec![masto]))
            .await
            .expect("starts");
        let telemetry = Arc::clone(&running.telemetry);
        let malformed = || {
            let counts = telemetry.source_counts("m");
            counts.malformed.get("invalid_utf8").copied().unwrap_or(0)
        };
        for _ in 0..200 {
            if malformed() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let reconnects = telemetry.sources()[0].snapshot().reconnects;
        running.until(std::future::ready(())).await.expect("stops");
        (telemetry, reconnects)
    });
    let counts = telemetry.source_counts("m");
    assert!(
        counts.malformed.get("invalid_utf8").copied().unwrap_or(0) >= 2,
        "{counts:?}"
    );
    // Judged by its kind's default, neither table setting a key.
    let rule = telemetry.sources()[0].rule(&telemetry.health());
    assert_eq!(rule, crate::source::health::HealthRule::quiet_stream());
    assert!(reconnects >= 1, "the connection still fails each time");
    let stats = telemetry.stats();
    let (at, why) = stats.malformed_examples.first().expect("an example");
    assert_eq!(at, "m:1");
    assert!(why.starts_with("invalid UTF-8 in a text frame ("), "{why}");
}
