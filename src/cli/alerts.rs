//! `outagewatch alerts`: the outbox's dead letters, and a test alert to
//! check an integration. The state is a sled database, which one process
//! opens at a time: while the daemon runs, `dead` and `retry` go through
//! its status API (the address it wrote to `STATE_DIR/http.addr`), and the
//! daemon delivers re-queued alerts at once; when it is stopped, they open
//! the store, and re-queued alerts go out at the next start.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::alert::deliver::{Target, send_test};
use crate::alert::format::{Format, test_alert};
use crate::config::{Config, sink_specs};
use crate::detect::TransitionKind;
use crate::state::SledStore;

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
    /// Drop what the outbox keeps for a sink that is no longer configured:
    /// its dead and re-queued letters, open incidents and place. (A sink
    /// missing from a run's configuration is retired at its start: what it
    /// was owed became its dead letters.) The daemon must be stopped.
    Forget { sink: String },
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
    let config = super::config::load(args.config.as_deref())?;
    match args.command {
        AlertsCommand::Dead | AlertsCommand::Retry { .. } => {
            let dir = super::run::resolve_state_dir(args.state_dir, &config)?;
            anyhow::ensure!(dir.exists(), "no state at {}", dir.display());
            if let Some(code) = through_api(&args.command, &dir, &config)? {
                return Ok(code);
            }
            through_store(&args.command, &dir, &config)
        }
        AlertsCommand::Forget { sink } => {
            let dir = super::run::resolve_state_dir(args.state_dir, &config)?;
            forget(&dir, &sink, &config)
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
            test_sink(&config, &sink)
        }
    }
}

/// `forget`: refused for a configured sink, and while a process has the
/// store open (the daemon would write the sink's place back).
fn forget(dir: &std::path::Path, sink: &str, config: &Config) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !sink_specs(config).iter().any(|s| s.name == sink),
        "sink {sink:?} is configured: remove it from the configuration first"
    );
    let store = SledStore::open(super::state::closed_state(dir)?)
        .with_context(|| format!("cannot open the state at {}", dir.display()))?;
    let outbox: crate::alert::outbox::Outbox = store.outbox();
    anyhow::ensure!(
        outbox.holds_anything(sink)?,
        "the state holds nothing for a sink {sink:?}"
    );
    let forgotten = outbox.forget(sink)?;
    println!(
        "sink {sink} forgotten: {} alert(s) it was owed and {} dead letter(s) dropped",
        forgotten.pending, forgotten.dead
    );
    Ok(ExitCode::SUCCESS)
}

/// `dead` or `retry` on the store itself, when no daemon holds it.
fn through_store(
    command: &AlertsCommand,
    dir: &std::path::Path,
    config: &Config,
) -> anyhow::Result<ExitCode> {
    let store = SledStore::open(super::state::closed_state(dir)?).with_context(|| {
        format!(
            "cannot open the state at {} (is the daemon running?)",
            dir.display()
        )
    })?;
    let outbox: crate::alert::outbox::Outbox = store.outbox();
    if let AlertsCommand::Retry { id } = command {
        let configured: Vec<String> = sink_specs(config).into_iter().map(|s| s.name).collect();
        let dead = outbox.dead_letters()?;
        let moved = outbox.requeue(id.as_deref(), None)?;
        let mut absent: Vec<&str> = dead
            .letters
            .iter()
            .filter(|l| id.as_ref().is_none_or(|id| *id == l.id()))
            .map(|l| l.sink.as_str())
            .filter(|sink| !configured.iter().any(|c| c == sink))
            .collect();
        absent.dedup();
        if let Some(id) = id {
            if let Some(letter) = dead.unreadable.iter().find(|l| l.id() == *id) {
                anyhow::bail!(
                    "dead letter {id} cannot be read ({}), so it cannot be re-queued",
                    letter.detail
                );
            }
            anyhow::ensure!(
                moved > 0,
                "no dead letter {id}; `outagewatch alerts dead` lists them"
            );
        } else if !dead.unreadable.is_empty() {
            eprintln!(
                "{} dead letter(s) cannot be read and stay (`outagewatch alerts dead` lists them)",
                dead.unreadable.len()
            );
        }
        println!("{moved} alert(s) re-queued; they are delivered at the next run");
        if !absent.is_empty() {
            eprintln!(
                "re-queued for sinks this configuration does not have: {} (they go out with a run that has the sink, given by `--config` or `--webhook`; a run without it makes them dead letters again)",
                absent.join(", ")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let dead = outbox.dead_letters()?;
    let letters = &dead.letters;
    for letter in letters {
        let superseded = match &letter.superseded_by {
            Some(later) => format!(
                "  [superseded by its {} (seq {}): not sent again to a receiver that keeps incidents]",
                later.state, later.seq
            ),
            None => String::new(),
        };
        println!(
            "{}  {}  {} ({})  {} attempt(s), last {}: {}{superseded}",
            letter.id(),
            letter.alert.id,
            letter.alert.service,
            letter.alert.state.as_str(),
            letter.attempts,
            letter.failed_at,
            letter.reason
        );
    }
    for letter in &dead.unreadable {
        println!("{}  unreadable: {}", letter.id(), letter.detail);
    }
    eprintln!("{}", dead_summary(&dead, config));
    Ok(ExitCode::SUCCESS)
}

/// Sends a test alert (and, for formats that keep incidents open, its
/// resolution) through the sink named `sink`.
fn test_sink(config: &Config, sink: &str) -> anyhow::Result<ExitCode> {
    let specs = sink_specs(config);
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    // The last of that name: `--webhook URL` adds a sink after the
    // configured ones, and testing a new URL under a configured sink's name
    // posted to the old one.
    let spec = specs
        .iter()
        .rev()
        .find(|s| s.name == sink)
        .with_context(|| format!("no sink {sink:?}; configured: {}", names.join(", ")))?;
    let stateful = matches!(&spec.target, Target::Webhook(h) if h.format.is_stateful());
    let mut states = vec![TransitionKind::Firing];
    if stateful {
        states.push(TransitionKind::Resolved);
    }
    let now = crate::wall::Clock::now_utc(&crate::wall::SystemClock);
    let nonce: u32 = rand::random();
    let runtime = super::runtime(1)?;
    for state in states {
        let alert = test_alert(state, now, nonce);
        let what = match state {
            TransitionKind::Resolved => "test resolution",
            _ => "test alert",
        };
        match runtime.block_on(send_test(spec, &alert, &crate::wall::SystemClock)) {
            Ok(outcome) => eprintln!("sink {sink}: {what} {} {outcome}", alert.id),
            Err(problem) => {
                eprintln!("sink {sink}: {what} {} failed: {problem}", alert.id);
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `dead` or `retry` through a running daemon's status API. `None` when no
/// process has the store open, or no daemon answers at the address in
/// `STATE_DIR/http.addr` (then the store is opened instead). The file
/// alone is not trusted: left behind by a daemon killed with SIGKILL, or
/// copied with the directory, it named whatever listened there since, and
/// `retry` re-queued another daemon's dead letters.
fn through_api(
    command: &AlertsCommand,
    state_dir: &std::path::Path,
    config: &Config,
) -> anyhow::Result<Option<ExitCode>> {
    if !crate::state::in_use(state_dir) {
        return Ok(None);
    }
    let Ok(addr) = std::fs::read_to_string(state_dir.join(crate::http::ADDRESS_FILE)) else {
        return Ok(None);
    };
    let Ok(addr) = addr.trim().parse::<std::net::SocketAddr>() else {
        return Ok(None);
    };
    let token = crate::http::pick_token(
        std::env::var("OUTAGEWATCH_HTTP_TOKEN").ok(),
        config.http.token.clone(),
    )
    .filter(|t| !t.is_empty());
    let runtime = super::runtime(1)?;
    let Some(body) = runtime.block_on(ask_daemon(command, addr, token.clone(), None))? else {
        return Ok(None);
    };
    if let AlertsCommand::Retry { .. } = command {
        println!(
            "{} alert(s) re-queued in the running daemon (at {addr}); it delivers them now",
            body["requeued"]
        );
        return Ok(Some(ExitCode::SUCCESS));
    }
    // The API serves a page at a time: every page is asked for, so the
    // list is whole (it printed the first page's 100 of 5,860 as if they
    // were all).
    let mut body = body;
    let mut count = 0;
    let mut oldest: Option<(chrono::DateTime<chrono::FixedOffset>, String)> = None;
    loop {
        for sink in body["sinks"].as_array().into_iter().flatten() {
            for letter in sink["dead_letters"].as_array().into_iter().flatten() {
                count += 1;
                let text = |key: &str| letter[key].as_str().unwrap_or("?").to_owned();
                if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&text("failed_at"))
                    && oldest.as_ref().is_none_or(|(o, _)| at < *o)
                {
                    oldest = Some((at, text("failed_at")));
                }
                println!(
                    "{}  {}  {} ({})  {} attempt(s), last {}: {}",
                    text("id"),
                    text("alert_id"),
                    text("service"),
                    text("state"),
                    letter["attempts"],
                    text("failed_at"),
                    text("reason")
                );
            }
        }
        let Some(after) = body["next"].as_str().map(str::to_owned) else {
            break;
        };
        let next = AlertsCommand::Dead;
        let page = runtime.block_on(ask_daemon(&next, addr, token.clone(), Some(&after)))?;
        let Some(page) = page else {
            anyhow::bail!("the daemon at {addr} stopped answering after {count} dead letter(s)");
        };
        body = page;
    }
    let total = body["dead_letters_total"].as_u64().unwrap_or(count);
    let shown = if total == count {
        format!("{count} dead letter(s)")
    } else {
        // Letters died or were re-queued while the pages were read.
        format!("{count} of {total} dead letter(s)")
    };
    let oldest = oldest.map_or(String::new(), |(at, text)| {
        format!(", the oldest died {text} ({} ago)", age(at.to_utc()))
    });
    eprintln!("{shown}{oldest} (from the running daemon at {addr})");
    Ok(Some(ExitCode::SUCCESS))
}

/// How long ago `at` was, in whole days or hours, for `dead`'s summary.
fn age(at: chrono::DateTime<chrono::Utc>) -> String {
    let hours = (chrono::Utc::now() - at).num_hours().max(0);
    match hours {
        0..48 => format!("{hours} h"),
        _ => format!("{} days", hours / 24),
    }
}

/// `dead`'s last line: how many, and how old the oldest is against the
/// retention (which the running daemon applies, not this command).
fn dead_summary(
    dead: &crate::state::outbox::DeadLetters<crate::alert::Alert>,
    config: &Config,
) -> String {
    let total = dead.letters.len() + dead.unreadable.len();
    let mut line = format!("{total} dead letter(s)");
    if !dead.unreadable.is_empty() {
        line.push_str(&format!(
            ", {} of them unreadable (written by another version, or damaged)",
            dead.unreadable.len()
        ));
    }
    if let Some(oldest) = dead.oldest() {
        let at = oldest
            .failed_at_us()
            .and_then(chrono::DateTime::from_timestamp_micros)
            .map_or_else(String::new, |at| format!(" ({} ago)", age(at)));
        line.push_str(&format!("; the oldest died {}{at}", oldest.failed_at));
    }
    match config.alerts.dead_letter_days {
        0 => line.push_str("; kept for ever (dead_letter_days = 0)"),
        days => line.push_str(&format!(
            "; the daemon drops those older than {days} days (dead_letter_days)"
        )),
    }
    line
}

/// The daemon's answer to `retry` (a POST) or `dead` (the outbox's page
/// after the letter `after`, at most the API's largest), as JSON; `None`
/// when nobody listens at `addr` (the daemon has stopped).
async fn ask_daemon(
    command: &AlertsCommand,
    addr: std::net::SocketAddr,
    token: Option<String>,
    after: Option<&str>,
) -> anyhow::Result<Option<serde_json::Value>> {
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured((*crate::tls::client_config()?).clone())
        .timeout(std::time::Duration::from_secs(10))
        .no_proxy()
        .build()
        .context("cannot make an HTTP client")?;
    let request = match command {
        AlertsCommand::Retry { id } => client
            .post(format!("http://{addr}/api/v1/outbox/retry"))
            // Every letter is `{}`: the API refuses `{"id":null}`, which
            // may be a client's bug rather than a wish to re-queue them all.
            .json(&match id {
                Some(id) => serde_json::json!({ "id": id }),
                None => serde_json::json!({}),
            }),
        _ => {
            let mut url = reqwest::Url::parse(&format!("http://{addr}/api/v1/outbox"))
                .context("cannot make the outbox's URL")?;
            let limit = crate::http::api::MAX_LETTERS_PER_PAGE.to_string();
            url.query_pairs_mut().append_pair("limit", &limit);
            if let Some(after) = after {
                url.query_pairs_mut().append_pair("after", after);
            }
            client.get(url)
        }
    };
    let request = match &token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) if e.is_connect() => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("the daemon at {addr} did not answer: {e}")),
    };
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("the daemon at {addr} answered HTTP {status} without JSON"))?;
    if !status.is_success() {
        anyhow::bail!(
            "the daemon at {addr} answered HTTP {status}: {}",
            body["error"].as_str().unwrap_or("no reason given")
        );
    }
    Ok(Some(body))
}
