//! The daemon as a whole, in process.

use super::*;

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
