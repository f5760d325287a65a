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
