//! `outagewatch run`: the daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::config::{Config, SourceConfig};
use crate::daemon::{self, DaemonOptions};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (TOML); see outagewatch.example.toml. Without it:
    /// Bluesky Jetstream on its public hosts, built-in patterns.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Read this Jetstream URL instead of the configured sources
    /// (repeatable: the URLs are tried in turn).
    #[arg(long, value_name = "URL")]
    jetstream: Vec<String>,
    /// Keep state here (default: the config's `state_dir`, else the
    /// platform's state directory, ~/.local/state/outagewatch on Linux).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    sinks: super::SinkArgs,
}

/// `--state-dir`, else the config's, else the platform's.
pub fn resolve_state_dir(flag: Option<PathBuf>, config: &Config) -> anyhow::Result<PathBuf> {
    match flag.or_else(|| config.state_dir.clone()) {
        Some(dir) => Ok(dir),
        None => default_state_dir(),
    }
}

/// The platform's state directory for outagewatch.
pub fn default_state_dir() -> anyhow::Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "outagewatch").context(
        "cannot find a home directory for the default state directory; pass --state-dir",
    )?;
    Ok(dirs
        .state_dir()
        .unwrap_or_else(|| dirs.data_local_dir())
        .to_path_buf())
}

pub fn run(args: RunArgs, patterns: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if !args.jetstream.is_empty() {
        config.sources = vec![SourceConfig::jetstream("bluesky", args.jetstream.clone())];
    }
    args.sinks.apply(&mut config);
    let state_dir = resolve_state_dir(args.state_dir, &config)?;
    let matcher = super::load_matcher(patterns.or(config.patterns.as_deref()))?;
    tracing::info!(
        state_dir = %state_dir.display(),
        sources = config.sources.len(),
        services = matcher.service_count(),
        "starting"
    );
    let runtime = super::runtime(2)?;
    let options = DaemonOptions {
        config,
        matcher,
        state_dir,
    };
    runtime.block_on(async { daemon::run(options, first_signal_then_arm_second()).await })?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves at the first SIGINT or SIGTERM; a second one exits at once.
pub async fn first_signal_then_arm_second() {
    signal().await;
    tokio::spawn(async {
        signal().await;
        eprintln!("second signal: exiting now");
        std::process::exit(130);
    });
}

async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the daemon");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
