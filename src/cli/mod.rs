//! The command line: parses arguments, sets up logging, runs a command.
//! This is the only place that uses `anyhow`: below it, every stage has
//! its own error type.

mod alerts;
mod check;
mod record;
mod replay;
mod replay_jetstream;
mod run;
mod series;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::matcher::Matcher;

#[derive(Debug, Parser)]
#[command(
    name = "outagewatch",
    version,
    about = "Watches public social-post firehoses and alerts when chatter says a service is going down"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Read patterns from this folder instead of the ones built in
    /// (same layout as the repository's `patterns/`).
    #[arg(long, global = true, value_name = "DIR")]
    patterns: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole pipeline over recorded Jetstream frames (JSON Lines;
    /// plain, .gz or .zst; `-` for stdin), or over Jetstream's recent
    /// history (`--jetstream --since 24h`), and print alerts as JSON lines.
    Replay(replay::ReplayArgs),
    /// Tell whether texts are outage reports: one JSON object per text.
    Check(check::CheckArgs),
    /// Run as a daemon on live firehoses until SIGINT or SIGTERM.
    Run(run::RunArgs),
    /// Record Jetstream frames exactly as received, for `replay`.
    Record(record::RecordArgs),
    /// Run the detector on a plain count series (CSV `timestamp,value`).
    Series(series::SeriesArgs),
    /// Dead letters and test alerts: `alerts dead`, `alerts retry [ID]`,
    /// `alerts test --sink NAME`.
    Alerts(alerts::AlertsArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay(args) => replay::run(args, load_matcher(cli.patterns.as_deref())?),
        Command::Check(args) => check::run(args, &load_matcher(cli.patterns.as_deref())?),
        Command::Run(args) => run::run(args, cli.patterns.as_deref()),
        Command::Record(args) => record::run(args),
        Command::Series(args) => series::run(args),
        Command::Alerts(args) => alerts::run(args),
    }
}

/// Where alerts go, for the commands that raise them (`run`, `replay`).
#[derive(Debug, clap::Args)]
pub(crate) struct SinkArgs {
    /// Append alerts to this file instead of stdout (`-` is stdout).
    #[arg(long, value_name = "FILE")]
    alerts: Option<PathBuf>,
    /// POST each alert as JSON to this URL (repeatable).
    #[arg(long, value_name = "URL")]
    webhook: Vec<String>,
    /// Sign `--webhook` requests with this secret (HMAC-SHA256).
    #[arg(
        long,
        value_name = "SECRET",
        env = "OUTAGEWATCH_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    webhook_secret: Option<String>,
}

impl SinkArgs {
    /// Adds these sinks to a configuration: the file replaces the
    /// configured one, the webhooks are added (`webhook-1`, `webhook-2`, …).
    pub(crate) fn apply(&self, config: &mut crate::config::Config) {
        if let Some(alerts) = &self.alerts {
            config.alerts.file = Some(alerts.clone());
        }
        let first = config.sinks.len();
        for (i, url) in self.webhook.iter().enumerate() {
            config.sinks.push(crate::config::SinkConfig::json(
                &format!("webhook-{}", first + i + 1),
                url,
                self.webhook_secret.clone(),
            ));
        }
    }
}

/// The async runtime for a command: `workers` threads besides the caller.
pub(crate) fn runtime(workers: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(crate) fn load_matcher(dir: Option<&std::path::Path>) -> anyhow::Result<Matcher> {
    match dir {
        Some(dir) => Matcher::from_dir(dir)
            .with_context(|| format!("cannot load patterns from {}", dir.display())),
        None => Matcher::embedded().context("the built-in patterns are invalid"),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
