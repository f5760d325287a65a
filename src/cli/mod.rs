//! The command line: parses arguments, sets up logging, runs a command.
//! This is the only place that uses `anyhow`: below it, every stage has
//! its own error type.

mod alerts;
mod check;
mod record;
mod replay;
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
    /// plain, .gz or .zst; `-` for stdin) and print alerts as JSON lines.
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
