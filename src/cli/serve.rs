//! The status-server flags shared by `run` and `replay`, and what `replay`
//! adds for watching a run: `--report`, `--serve-after`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use super::replay_outputs::ReportFile;
use crate::alert::deliver::Delivery;
use crate::config::{Config, HttpConfig};
use crate::http::{HttpSettings, Server};
use crate::pipeline::{Pipeline, Stats};
use crate::state::Store;
use crate::supervise::Supervisor;
use crate::telemetry::{Mode, Telemetry};

#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Serve the status API, metrics and dashboard on ADDR (`run`: default
    /// `[http] listen`, 127.0.0.1:9464; `replay`: off unless given). Port 0
    /// picks a free port; the bound address is logged and written to
    /// `STATE_DIR/http.addr`.
    #[arg(long, value_name = "ADDR", conflicts_with = "no_http", value_parser = super::listen_addr)]
    http: Option<String>,
    /// Do not start the status server.
    #[arg(long)]
    no_http: bool,
    /// Bearer token for the status server (required to listen on a
    /// non-loopback address); overrides `[http] token` unless empty (an
    /// empty value, e.g. systemd's `Environment=OUTAGEWATCH_HTTP_TOKEN=`,
    /// is unset, so the configured token still guards the API).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "OUTAGEWATCH_HTTP_TOKEN",
        hide_env_values = true
    )]
    http_token: Option<String>,
}

impl HttpArgs {
    /// The server's settings, or `None` when it is off. `default_on`: serve
    /// at the configured address without `--http` (`run`), or only when
    /// asked (`replay`).
    pub fn settings(
        &self,
        config: &HttpConfig,
        default_on: bool,
    ) -> anyhow::Result<Option<HttpSettings>> {
        if self.no_http {
            return Ok(None);
        }
        let listen = match &self.http {
            Some(addr) => addr.clone(),
            None if default_on && config.enabled => config.listen.clone(),
            None => return Ok(None),
        };
        let token = crate::http::pick_token(self.http_token.clone(), config.token.clone());
        Ok(Some(HttpSettings::new(&listen, token)?))
    }
}

#[derive(Debug, Args)]
pub struct ReplayWatchArgs {
    /// Use this configuration's `patterns`, `[detector]`, `[window]`,
    /// `[alerts]`, `[[sinks]]` and `[http]` (no search path: a replay only
    /// reads a file it is given).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub http: HttpArgs,
    /// After the run, write a self-contained HTML page with every incident
    /// (chart, evidence, alerts) and the quiet services nearest to firing.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// With `--http`: keep serving after the run until SIGINT or SIGTERM,
    /// so the dashboard can be looked at.
    #[arg(long, requires = "http")]
    pub serve_after: bool,
}

/// The status server and report of one replay (both optional).
pub struct Watch {
    telemetry: Option<Arc<Telemetry>>,
    server: Option<Server>,
    report: Option<ReportFile>,
}

impl Watch {
    /// Starts the server if `--http` was given, and hooks the pipeline up
    /// if anything (server or report) will show what it saw.
    pub fn start<S: Store>(
        args: &ReplayWatchArgs,
        config: &Config,
        runtime: &tokio::runtime::Runtime,
        delivery: &Delivery,
        pipeline: &mut Pipeline<S>,
        (state_dir, supervisor): (Option<&Path>, &Supervisor),
    ) -> anyhow::Result<Watch> {
        let settings = args.http.settings(&config.http, false)?;
        // Made now, not after a replay of hours: a report that cannot be
        // written is said before anything is read.
        let report = args.report.as_deref().map(ReportFile::create).transpose()?;
        if settings.is_none() && report.is_none() {
            return Ok(Watch {
                telemetry: None,
                server: None,
                report: None,
            });
        }
        let telemetry = Telemetry::new(Mode::Replay, state_dir.map(Path::to_path_buf));
        pipeline.set_telemetry(Arc::clone(&telemetry));
        telemetry.set_sinks(delivery.probe());
        telemetry.set_store_open(true);
        telemetry.set_replaying(true);
        let server = match settings {
            Some(settings) => Some(runtime.block_on(Server::start(
                &settings,
                Arc::clone(&telemetry),
                Some(delivery.notifier()),
                state_dir,
                supervisor,
            ))?),
            None => None,
        };
        Ok(Watch {
            telemetry: Some(telemetry),
            server,
            report,
        })
    }

    /// Makes the run's counts so far visible.
    pub fn publish(&self, stats: &Stats) {
        if let Some(t) = &self.telemetry {
            t.publish_stats(stats);
        }
    }

    /// The run is over: final counts, and the report if asked for.
    pub fn finished(&mut self, stats: &Stats) -> anyhow::Result<()> {
        let Some(telemetry) = &self.telemetry else {
            return Ok(());
        };
        telemetry.publish_stats(stats);
        telemetry.set_replaying(false);
        if let Some(report) = self.report.take() {
            let path = report.path().to_path_buf();
            report.finish(&crate::http::dashboard::report_page(telemetry))?;
            eprintln!("report written to {}", path.display());
        }
        Ok(())
    }

    /// Lets go of the store: the sinks' probe holds the outbox, and a store
    /// still held can be neither compacted nor sealed. The dashboard shows
    /// no sinks from here on (they have stopped).
    pub fn release_store(&self) {
        if let Some(telemetry) = &self.telemetry {
            telemetry.clear_sinks();
        }
    }

    /// With `--serve-after`, serves until SIGINT or SIGTERM; then stops
    /// the server.
    pub fn hold(self, runtime: &tokio::runtime::Runtime, args: &ReplayWatchArgs) {
        let Some(server) = self.server else { return };
        runtime.block_on(async {
            if args.serve_after {
                eprintln!(
                    "serving the results on http://{}/ until SIGINT or SIGTERM",
                    server.addr
                );
                super::run::first_signal_then_arm_second().await;
            }
            server.stop().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty `--http-token`/`OUTAGEWATCH_HTTP_TOKEN` leaves the
    /// configured token in force.
    #[test]
    fn an_empty_token_flag_keeps_the_configured_token() {
        let args = HttpArgs {
            http: Some("127.0.0.1:0".into()),
            no_http: false,
            http_token: Some(String::new()),
        };
        let config = HttpConfig {
            token: Some("conf".into()),
            ..HttpConfig::default()
        };
        let settings = args.settings(&config, true).expect("valid").expect("on");
        assert_eq!(settings.token.as_deref(), Some("conf"));
    }
}
