//! `outagewatch run`: the daemon.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::config::{Config, SourceConfig};
use crate::daemon::{self, DaemonOptions};

use super::replay_outputs::{Inputs, Output, alerts_written, patterns_read, refuse_overlaps};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (TOML); see outagewatch.example.toml. Default:
    /// $OUTAGEWATCH_CONFIG, $XDG_CONFIG_HOME/outagewatch/config.toml,
    /// /etc/outagewatch/config.toml, else Bluesky Jetstream on its public
    /// hosts with the built-in patterns.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Read this Jetstream URL instead of the configured sources
    /// (repeatable: the URLs are tried in turn).
    #[arg(long, value_name = "URL", value_parser = super::SecretUrl(super::websocket_url))]
    jetstream: Vec<String>,
    /// Keep state here (default: the config's `state_dir`, else
    /// $STATE_DIRECTORY (systemd), else the platform's state directory,
    /// ~/.local/state/outagewatch on Linux).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    sinks: super::SinkArgs,
    #[command(flatten)]
    http: super::serve::HttpArgs,
}

/// `--state-dir`, else the config's, else `$STATE_DIRECTORY` (set by
/// systemd's `StateDirectory=`; the first of a `:`-separated list), else
/// the platform's.
pub fn resolve_state_dir(flag: Option<PathBuf>, config: &Config) -> anyhow::Result<PathBuf> {
    let systemd = || {
        std::env::var("STATE_DIRECTORY")
            .ok()
            .and_then(|dirs| dirs.split(':').next().map(PathBuf::from))
            .filter(|d| !d.as_os_str().is_empty())
    };
    match flag.or_else(|| config.state_dir.clone()).or_else(systemd) {
        Some(dir) => Ok(dir),
        None => default_state_dir(),
    }
}

/// What the daemon writes never destroys what it reads: an alert's line
/// appended to the configuration made the next start fail. The state
/// directory and the alerts file (`--alerts` when `alerts_flag`, else the
/// `[alerts] file` of `config_file`) against the configuration file and
/// the patterns read; `config check` asks the same of a file.
pub fn refuse_daemon_overlaps(
    config: &Config,
    config_file: Option<&Path>,
    patterns: Option<&Path>,
    state_dir: Option<&Path>,
    alerts_flag: bool,
) -> Result<(), super::UsageError> {
    let state_dir = state_dir.map(|path| Output {
        named_by: "the state directory".into(),
        path,
    });
    refuse_overlaps(
        &Inputs {
            reader: "daemon",
            recordings: &[],
            config: config_file,
            patterns: patterns_read(patterns, config, config_file),
        },
        &[state_dir, alerts_written(config, alerts_flag, config_file)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
    )
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
    let mut config = super::config::load(args.config.as_deref())?;
    // A public address without a token stops here, before anything starts.
    let http = args.http.settings(&config.http, true)?;
    if !args.jetstream.is_empty() {
        config.sources = vec![SourceConfig::jetstream("bluesky", args.jetstream.clone())];
    }
    args.sinks.apply(&mut config);
    let state_dir = resolve_state_dir(args.state_dir, &config)?;
    refuse_daemon_overlaps(
        &config,
        args.config.as_deref(),
        patterns,
        Some(&state_dir),
        args.sinks.alerts.is_some(),
    )?;
    let matcher = super::load_matcher(patterns.or(config.patterns.as_deref()))?;
    for warning in super::config::uncatalogued_sink_services(&config, &matcher) {
        tracing::warn!("{warning}");
    }
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
        http,
        clock: crate::wall::system(),
    };
    let ran =
        runtime.block_on(async { daemon::run(options, first_signal_then_arm_second()).await });
    // A line still being written to a stdout or pipe nobody reads is not
    // waited for (the outbox still holds its alert for the next start).
    super::end_runtime(runtime);
    ran?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves at the first SIGINT, SIGTERM or SIGHUP; a second one exits at
/// once. SIGHUP too: a daemon run from a terminal or an ssh session gets it
/// when that closes, and its default action killed the process without its
/// shutdown (the sinks' cursors and queued health alerts not saved).
/// Listens from the moment it is called (inside the runtime), not from its
/// first poll: the daemon polls it only once started, and a stop sent
/// during its start-up (opening the store, the sources, the status server)
/// met the default action and killed it without its shutdown.
pub fn first_signal_then_arm_second() -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut signals = Signals::listen();
    async move {
        signals.next().await;
        tokio::spawn(async move {
            signals.next().await;
            eprintln!("second signal: exiting now");
            std::process::exit(130);
        });
    }
}

/// SIGINT, SIGTERM and SIGHUP, each handled from the moment its listener
/// exists.
struct Signals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let open = |kind: SignalKind, name: &str| {
                signal(kind)
                    .map_err(|e| tracing::warn!(error = %e, "cannot listen for {name}"))
                    .ok()
            };
            Signals {
                terminate: open(SignalKind::terminate(), "SIGTERM"),
                interrupt: open(SignalKind::interrupt(), "SIGINT"),
                hangup: open(SignalKind::hangup(), "SIGHUP"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            async fn one(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            let Signals {
                terminate,
                interrupt,
                hangup,
            } = self;
            tokio::select! {
                _ = one(terminate) => {}
                _ = one(interrupt) => {}
                _ = one(hangup) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
