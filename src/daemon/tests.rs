//! The daemon as a whole, in process.

use super::*;

/// With every source task gone the frame channel closes and the pipeline
/// ends: that used to be a clean stop (exit 0, "stopped; state saved"),
/// which a supervisor restarting on failure left stopped for good.
#[test]
fn the_daemon_fails_when_every_source_ended_on_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = DaemonOptions {
        // No source at all (the configuration check refuses this; here
        // it stands for every source task having ended).
        config: Config {
            sources: Vec::new(),
            ..Config::default()
        },
        matcher: Matcher::embedded().expect("built-in patterns"),
        state_dir: dir.path().join("state"),
        http: None,
        clock: crate::wall::system(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ended = runtime.block_on(async {
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
    let options = DaemonOptions {
        // A source that keeps the daemon running (nothing listens on port
        // 1 of loopback: it retries with backoff).
        config: Config {
            sources: vec![SourceConfig::jetstream(
                "nowhere",
                vec!["ws://127.0.0.1:1/subscribe".into()],
            )],
            ..Config::default()
        },
        matcher: Matcher::embedded().expect("built-in patterns"),
        state_dir: dir.path().join("state"),
        http: None,
        clock: crate::wall::system(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ended = runtime.block_on(async {
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
