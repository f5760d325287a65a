//! `outagewatch alerts`: the outbox's dead letters, and a test alert to
//! check an integration. The state is a sled database, which one process
//! opens at a time: run `dead` and `retry` while the daemon is stopped; it
//! delivers re-queued alerts when it starts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::alert::deliver::{Target, send_test};
use crate::alert::format::{Format, test_alert};
use crate::config::{Config, sink_specs};
use crate::detect::TransitionKind;
use crate::window::store::SledStore;

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    command: AlertsCommand,
    /// Configuration file (for `state_dir` and the sinks).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// State directory (default: the config's, else the platform's).
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// List the alerts a sink gave up on, with the reason.
    Dead,
    /// Put dead letters back in their sink's queue: one (`SINK:SEQ`, as
    /// `dead` shows), or all.
    Retry { id: Option<String> },
    /// Send a test alert to a sink now, to check an integration: marked as
    /// a test (`"test": true`, "[TEST]" in titles), with a fresh id and
    /// idempotency key, in the sink's format; prints the receiver's answer.
    /// Formats that keep incidents open (pagerduty, opsgenie,
    /// alertmanager) get its resolution right after.
    Test {
        /// The sink's name (`alerts` is the JSON-lines sink).
        #[arg(long)]
        sink: String,
        /// A webhook URL to test instead of a configured sink.
        #[arg(long, value_name = "URL")]
        webhook: Option<String>,
        /// The format for `--webhook` (default json): json, slack,
        /// discord, pagerduty, opsgenie or alertmanager.
        #[arg(long, value_name = "FORMAT", requires = "webhook")]
        format: Option<Format>,
        /// PagerDuty routing key or Opsgenie API key for `--webhook`.
        #[arg(long, env = "OUTAGEWATCH_WEBHOOK_KEY", hide_env_values = true)]
        webhook_key: Option<String>,
        /// Secret for `--webhook`.
        #[arg(long, env = "OUTAGEWATCH_WEBHOOK_SECRET", hide_env_values = true)]
        webhook_secret: Option<String>,
    },
}

pub fn run(args: AlertsArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    match args.command {
        AlertsCommand::Dead | AlertsCommand::Retry { .. } => {
            let dir = super::run::resolve_state_dir(args.state_dir, &config)?;
            anyhow::ensure!(dir.exists(), "no state at {}", dir.display());
            let store = SledStore::open(&dir).with_context(|| {
                format!(
                    "cannot open the state at {} (is the daemon running?)",
                    dir.display()
                )
            })?;
            let outbox = store.outbox();
            if let AlertsCommand::Retry { id } = args.command {
                let moved = outbox.requeue(id.as_deref())?;
                if let Some(id) = id {
                    anyhow::ensure!(
                        moved > 0,
                        "no dead letter {id}; `outagewatch alerts dead` lists them"
                    );
                }
                println!("{moved} alert(s) re-queued; they are delivered at the next run");
                return Ok(ExitCode::SUCCESS);
            }
            let letters = outbox.dead_letters()?;
            for letter in &letters {
                println!(
                    "{}  {}  {} ({})  {} attempt(s), last {}: {}",
                    letter.id(),
                    letter.alert.id,
                    letter.alert.service,
                    serde_json::to_value(letter.alert.state)?
                        .as_str()
                        .unwrap_or("?"),
                    letter.attempts,
                    letter.failed_at,
                    letter.reason
                );
            }
            eprintln!("{} dead letter(s)", letters.len());
            Ok(ExitCode::SUCCESS)
        }
        AlertsCommand::Test {
            sink,
            webhook,
            format,
            webhook_key,
            webhook_secret,
        } => {
            let mut config = config;
            if let Some(url) = webhook {
                let mut added = crate::config::SinkConfig::json(&sink, &url, webhook_secret);
                added.format = format.unwrap_or_default();
                added.routing_key = webhook_key.clone();
                added.api_key = webhook_key;
                config.sinks.push(added);
            }
            let specs = sink_specs(&config);
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            let spec = specs
                .iter()
                .find(|s| s.name == sink)
                .with_context(|| format!("no sink {sink:?}; configured: {}", names.join(", ")))?;
            let stateful = matches!(&spec.target, Target::Webhook(h) if h.format.is_stateful());
            let mut states = vec![TransitionKind::Firing];
            if stateful {
                states.push(TransitionKind::Resolved);
            }
            let now = chrono::Utc::now();
            let nonce: u32 = rand::random();
            let runtime = super::runtime(1)?;
            for state in states {
                let alert = test_alert(state, now, nonce);
                let what = match state {
                    TransitionKind::Resolved => "test resolution",
                    _ => "test alert",
                };
                match runtime.block_on(send_test(spec, &alert)) {
                    Ok(outcome) => eprintln!("sink {sink}: {what} {} {outcome}", alert.id),
                    Err(problem) => {
                        eprintln!("sink {sink}: {what} {} failed: {problem}", alert.id);
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
