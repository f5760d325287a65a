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
