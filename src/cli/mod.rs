//! The command line: parses arguments, sets up logging, runs a command.
//! This is the only place that uses `anyhow`: below it, every stage has
//! its own error type.

mod alerts;
mod check;
mod config;
mod man;
mod record;
mod replay;
mod replay_chunk;
mod replay_drain;
mod replay_inputs;
mod replay_jetstream;
mod replay_outputs;
mod replay_pace;
mod replay_summary;
mod run;
mod series;
mod series_csv;
mod serve;
mod state;

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
    /// Exit status 0 when one was, 1 when none was, 2 on an error.
    Check(check::CheckArgs),
    /// Run as a daemon on live firehoses until SIGINT or SIGTERM.
    Run(run::RunArgs),
    /// Record data frames as received (control messages are not), for
    /// `replay`: Jetstream, or every source of a configuration (`--config`).
    Record(record::RecordArgs),
    /// Run the detector on a plain series, a count or a gauge (CSV `timestamp,value`).
    Series(series::SeriesArgs),
    /// Dead letters and test alerts: `alerts dead`, `alerts retry [ID]`,
    /// `alerts test --sink NAME`.
    Alerts(alerts::AlertsArgs),
    /// Validate and print the configuration: `config check [--config FILE]`.
    Config(config::ConfigArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual pages (roff) of every command, or write one file
    /// each: `outagewatch man --dir /usr/local/share/man/man1`.
    Man(man::ManArgs),
    /// The state store: `state verify`, `state repair`, `state reset`
    /// (what to do when it reports damage), `state compact` (give back the
    /// space sled's log holds).
    State(state::StateArgs),
}

/// `println!` that returns an error instead of panicking when standard
/// output cannot be written (`> /dev/full`, a disk filled up): `state
/// verify` and `config check` panicked with exit status 101.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        anyhow::Context::context(
            writeln!(std::io::stdout(), $($arg)*),
            "cannot write to standard output",
        )?;
    }};
}
pub(crate) use outln;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    if matches!(
        cli.command,
        Command::Replay(_)
            | Command::Check(_)
            | Command::State(_)
            | Command::Man(_)
            | Command::Completions { .. }
            | Command::Config(_)
    ) {
        quiet_broken_pipe();
    }
    let failure = failure_status(&cli.command);
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            if error.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(USAGE_STATUS)
            } else {
                failure
            }
        }
    }
}

/// The exit status of a usage error: clap's own (a malformed flag), and
/// ours for a command line clap accepts but that cannot be carried out as
/// asked ([`UsageError`]).
pub(crate) const USAGE_STATUS: u8 = 2;

/// The exit status of a command that did its work but could not carry
/// everything through: `replay` with alerts left undelivered or dead,
/// `state repair` with records lost (or not known to be all kept).
/// Neither a failure (1) nor a usage error (2): the result is there and
/// usable, and a script should look at what is missing.
pub(crate) const INCOMPLETE_STATUS: u8 = 3;

/// A command line that passes clap but asks for what cannot be done: two
/// flags that contradict each other (`--until` not after `--since`), an
/// output that is one of the inputs. Exit status 2, as clap's usage
/// errors, so a script tells a mistyped command from a run that failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub String);

/// The exit status of an error a command returns. `check` exits 1 when no
/// text was a report, so an error there (patterns that do not load, a
/// line too long) is 2: a script must not take a broken setup for "not a
/// report". Every other command exits 1.
fn failure_status(command: &Command) -> ExitCode {
    match command {
        Command::Check(_) => ExitCode::from(check::ERROR_STATUS),
        _ => ExitCode::FAILURE,
    }
}

/// An error and its causes, each said once: many errors already include
/// their cause's text in their own message (`cannot open x: No such
/// file`), so a cause already in the text is not repeated.
/// The value of a `--jetstream URL` flag: a ws:// or wss:// URL with a
/// host, as in a configuration file (the empty value `replay --jetstream`
/// takes for the first public host passes). Without this check a mistyped
/// URL was retried for ever with a growing backoff.
pub(crate) fn websocket_url(value: &str) -> Result<String, String> {
    let websocket = matches!(
        crate::source::url::endpoint(value),
        Some(crate::source::url::Endpoint::Websocket)
    );
    if value.is_empty() || websocket {
        return Ok(value.to_owned());
    }
    // Masked as a configuration's URL is: `http://u:pw@h/?token=…` was
    // echoed whole.
    let shown = crate::config::shown_url(value);
    if value.starts_with("ws:") || value.starts_with("wss:") {
        Err(format!("{shown} has no host after ws:// or wss://"))
    } else {
        Err(format!("{shown} is not a ws:// or wss:// URL"))
    }
}

/// The value of a `--webhook URL` flag: an http:// or https:// URL with a
/// host. Checked here, not when the sink is built, so the mistake is a
/// usage error naming the flag the user typed rather than a sink they
/// never named. Only the host is ever echoed: a webhook's path and query
/// often carry its secret (Slack, Discord, `?token=`).
pub(crate) fn http_url(value: &str) -> Result<String, String> {
    match crate::alert::url::not_http_url(value) {
        None => Ok(value.to_owned()),
        Some(why) => Err(why),
    }
}

/// The value parser of a URL flag that may hold a secret (`--webhook` with
/// [`http_url`], `--jetstream` with [`websocket_url`]): a rejected value
/// is reported only as the check describes it. clap's own message quotes
/// it whole (`invalid value 'hooks.example.com/T0/B0/secret'`), which
/// would print the secret a webhook's path or a source URL's user or
/// query holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SecretUrl(pub fn(&str) -> Result<String, String>);

impl clap::builder::TypedValueParser for SecretUrl {
    type Value = String;

    fn parse_ref(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        let flag = arg.map_or_else(|| "the URL".to_owned(), ToString::to_string);
        let fail = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for '{flag}': {why}\n"),
            )
            .with_cmd(command)
        };
        let value = value
            .to_str()
            .ok_or_else(|| fail("not valid UTF-8".to_owned()))?;
        (self.0)(value).map_err(fail)
    }
}

/// The value of `--http ADDR`: a socket address (`127.0.0.1:9464`,
/// `[::1]:0`). Checked by clap so a typo is a usage error (exit 2) like
/// every other malformed flag, not a failure after the run has started.
pub(crate) fn listen_addr(value: &str) -> Result<String, String> {
    value
        .parse::<std::net::SocketAddr>()
        .map(|_| value.to_owned())
        .map_err(|_| format!("{value:?} is not an IP:PORT address (e.g. 127.0.0.1:9464)"))
}

pub fn error_chain(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// `replay | head -n1`, `check | head`, `state verify | head -1`: when the reader of stdout goes
/// away, end at once and quietly, as `cat` does, rather than retry the
/// write. The Rust runtime ignores SIGPIPE; the one-shot commands restore
/// the default. The daemon keeps ignoring it (its alerts stay in the
/// outbox).
fn quiet_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: called once at start, before any thread is spawned; resetting
    // a signal's disposition to its default has no other effect.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay(args) => {
            let config = match &args.watch.config {
                Some(path) => crate::config::Config::load(path)?,
                None => crate::config::Config::default(),
            };
            let matcher = load_matcher(cli.patterns.as_deref().or(config.patterns.as_deref()))?;
            for warning in config::uncatalogued_sink_services(&config, &matcher) {
                tracing::warn!("{warning}");
            }
            replay::run(args, matcher, config, cli.patterns.as_deref())
        }
        Command::Check(args) => check::run(args, &load_matcher(cli.patterns.as_deref())?),
        Command::Run(args) => run::run(args, cli.patterns.as_deref()),
        Command::Record(args) => record::run(args),
        Command::Series(args) => series::run(args),
        Command::Alerts(args) => alerts::run(args),
        Command::Config(args) => config::run(args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            // Into memory first: `generate` panics when it cannot write.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "outagewatch", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)
                .and_then(|()| std::io::Write::flush(&mut std::io::stdout()))
                .context("cannot write the completions to standard output")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man(args) => man::run(args),
        Command::State(args) => state::run(args),
    }
}

/// The environment variable that carries `--webhook-secret` unseen.
const WEBHOOK_SECRET_ENV: &str = "OUTAGEWATCH_WEBHOOK_SECRET";

/// Where alerts go, for the commands that raise them (`run`, `replay`).
#[derive(Debug, clap::Args)]
pub(crate) struct SinkArgs {
    /// Append alerts to this file instead of stdout (`-` is stdout).
    #[arg(long, value_name = "FILE")]
    alerts: Option<PathBuf>,
    /// POST each alert as JSON to this URL (repeatable; http:// or https://).
    #[arg(long, value_name = "URL", value_parser = SecretUrl(http_url))]
    webhook: Vec<String>,
    /// Sign `--webhook` requests with this secret (HMAC-SHA256); better,
    /// set OUTAGEWATCH_WEBHOOK_SECRET (a secret on the command line is
    /// visible in `ps`). Requires `--webhook`: alone it would sign nothing.
    // Not clap's `env`: clap counts a value from the environment as given,
    // so `requires` would turn an exported variable into a usage error on
    // every run with only configured sinks. The variable is read in
    // `apply`, and only the flag itself needs a `--webhook`.
    #[arg(long, value_name = "SECRET", requires = "webhook")]
    webhook_secret: Option<String>,
}

impl SinkArgs {
    /// Adds these sinks to a configuration: the file replaces the
    /// configured one, the webhooks are added, each named by its URL
    /// ([`crate::config::webhook_name`]: `webhook-` and 8 hex digits).
    pub(crate) fn apply(&self, config: &mut crate::config::Config) {
        // A secret in the arguments is visible to every user in `ps`.
        if self.webhook_secret.is_some() {
            tracing::warn!(
                "--webhook-secret on the command line is visible to other users (ps, /proc); \
                 set {WEBHOOK_SECRET_ENV} instead"
            );
        }
        if let Some(alerts) = &self.alerts {
            config.alerts.file = Some(alerts.clone());
        }
        // An empty variable is unset, as clap's `env` treated it.
        let secret = self.webhook_secret.clone().or_else(|| {
            std::env::var(WEBHOOK_SECRET_ENV)
                .ok()
                .filter(|s| !s.is_empty())
        });
        let first = config.sinks.len();
        for (i, url) in self.webhook.iter().enumerate() {
            let mut sink = crate::config::SinkConfig::json(
                &crate::config::webhook_name(url),
                url,
                secret.clone(),
            );
            // Named by position before: a state from then carries over.
            sink.formerly = Some(format!("webhook-{}", first + i + 1));
            config.sinks.push(sink);
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

/// Ends a command's runtime without waiting for its blocking threads for
/// long: a line still being written to a pipe or FIFO whose reader
/// stopped reading is on one, which no stop can interrupt (its alert
/// stays in the outbox). Dropped, the runtime waits for it for ever: a
/// `replay` said its drain timeout and what was undelivered, then stayed
/// alive for as long as the reader held the pipe.
pub(crate) fn end_runtime(runtime: tokio::runtime::Runtime) {
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
}

pub(crate) fn load_matcher(dir: Option<&std::path::Path>) -> anyhow::Result<Matcher> {
    match dir {
        Some(dir) => crate::config::patterns::load_matcher(dir)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The long help of a command and of each of its subcommands, with
    /// the command line that prints it.
    fn helps(command: &mut clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        out.push((path.to_owned(), command.render_long_help().to_string()));
        for sub in command.get_subcommands_mut() {
            let path = format!("{path} {}", sub.get_name());
            helps(sub, &path, out);
        }
    }

    fn all_helps() -> Vec<(String, String)> {
        let mut command = Cli::command();
        command.build();
        let mut out = Vec::new();
        helps(&mut command, "outagewatch", &mut out);
        out
    }

    /// clap prints the doc comments of the argument structs as help: they
    /// are written for users, with no rustdoc links (`[`Type::field`]`)
    /// nor the names of constants (`MAX_PACE_SLEEP`) in place of values.
    #[test]
    fn help_has_no_code_names() {
        let constant = regex::Regex::new(r"`[A-Z][A-Z0-9]*_[A-Z0-9_]*`").expect("regex");
        let helps = all_helps();
        assert!(helps.len() > 15, "every subcommand: {}", helps.len());
        for (path, help) in &helps {
            assert!(!help.contains("[`"), "{path} --help: {help}");
            assert!(!help.contains("crate::"), "{path} --help: {help}");
            assert!(!constant.is_match(help), "{path} --help: {help}");
        }
    }

    /// A `[table]` the help names is one the configuration file has
    /// (`patterns` is a top-level key, not a table).
    #[test]
    fn help_names_only_real_config_tables() {
        let config = toml::Table::try_from(crate::config::Config::default()).expect("table");
        let tables: Vec<&String> = config
            .iter()
            .filter(|(_, v)| v.is_table() || v.is_array())
            .map(|(k, _)| k)
            .collect();
        let named = regex::Regex::new(r"`\[\[?([a-z_]+)[.\]]").expect("regex");
        let mut seen = 0;
        for (path, help) in all_helps() {
            for found in named.captures_iter(&help) {
                let table = &found[1];
                assert!(
                    tables.iter().any(|t| *t == table),
                    "{path} --help names [{table}], not a table of {tables:?}"
                );
                seen += 1;
            }
        }
        assert!(seen > 5, "the help names tables: {seen}");
    }

    /// `replay --speed` says how long a gap sleeps at most, in seconds.
    #[test]
    fn replay_help_says_the_longest_pace_sleep() {
        let help = all_helps()
            .into_iter()
            .find(|(path, _)| path == "outagewatch replay")
            .expect("replay")
            .1;
        let secs = replay_pace::MAX_PACE_SLEEP.as_secs();
        assert!(help.contains(&format!("sleeps at most {secs} s")), "{help}");
    }

    /// Parses a command line as the binary would, giving clap's error.
    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("outagewatch").chain(args.iter().copied()))
    }

    /// A malformed `--webhook` is a usage error (exit 2) naming the flag;
    /// only its host is echoed, never the path or query (they may hold the
    /// webhook's secret).
    #[test]
    fn bad_webhook_is_a_usage_error_showing_only_the_host() {
        for (value, says) in [
            (
                "hooks.example.com/x/SeCrEt?token=abc",
                "missing http:// or https://? (host \"hooks.example.com\")",
            ),
            (
                "u:pw@hooks.example.com:8080/SeCrEt",
                "(host \"hooks.example.com:8080\")",
            ),
            (
                "ftp://hooks.example.com/SeCrEt?token=abc",
                "scheme is not http:// or https:// (host \"hooks.example.com\")",
            ),
            // A `://` further on is no scheme: what is before it was echoed.
            (
                "hooks.example.com/x/SeCrEt?next=https://pw.example/abc",
                "missing http:// or https://? (host \"hooks.example.com\")",
            ),
            ("https://?token=abc", "has no host"),
            // The URL standard takes the first path segment for the host.
            ("https:///T000/B000/SeCrEt", "has no host"),
        ] {
            let error = parse(&["replay", "--webhook", value, "f.jsonl"]).expect_err(value);
            assert_eq!(error.exit_code(), 2, "{value}");
            let text = error.to_string();
            assert!(text.contains("--webhook"), "{value}: {text}");
            assert!(text.contains(says), "{value}: {text}");
            assert!(
                !text.contains("SeCrEt") && !text.contains("abc") && !text.contains("pw"),
                "{value}: {text}"
            );
        }
        for command in ["replay", "run"] {
            assert!(
                parse(
                    &[
                        command,
                        "--webhook",
                        "https://hooks.example.com/x",
                        "f.jsonl"
                    ][..if command == "run" { 3 } else { 4 }]
                )
                .is_ok()
            );
        }
    }

    /// A `--jetstream` URL that is not a websocket's is a usage error that
    /// shows it masked, as a configuration's: its user and query values
    /// were echoed whole.
    #[test]
    fn bad_jetstream_url_is_shown_masked() {
        let value = "https://u:pw@h.example/s?apikey=SeCrEt";
        for command in [
            &["run", "--jetstream", value][..],
            &["record", "--out", "o.jsonl", "--jetstream", value],
        ] {
            let text = parse(command).expect_err(value).to_string();
            assert!(text.contains("is not a ws:// or wss:// URL"), "{text}");
            assert!(text.contains("h.example"), "{text}");
            assert!(!text.contains("SeCrEt") && !text.contains("pw@"), "{text}");
        }
        // A websocket URL without its host says so (it said "is not a
        // ws:// URL"), and `wss:///path` is refused (it was retried for
        // ever against the host `path`).
        for value in ["ws://", "wss:///path"] {
            let text = parse(&["run", "--jetstream", value])
                .expect_err(value)
                .to_string();
            assert!(text.contains("has no host"), "{value}: {text}");
        }
    }

    /// `--http` takes IP:PORT; anything else is a usage error naming it.
    #[test]
    fn bad_http_address_is_a_usage_error() {
        let error = parse(&["replay", "--http", "nonsense", "f.jsonl"]).expect_err("nonsense");
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("--http"), "{error}");
        assert!(parse(&["replay", "--http", "127.0.0.1:0", "f.jsonl"]).is_ok());
        assert!(parse(&["run", "--http", "[::1]:9464"]).is_ok());
    }

    /// `--webhook-secret` alone signs nothing: a usage error, not silence.
    #[test]
    fn webhook_secret_requires_a_webhook() {
        let error = parse(&["replay", "--webhook-secret", "s", "f.jsonl"]).expect_err("alone");
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("--webhook"), "{error}");
        assert!(
            parse(&[
                "replay",
                "--webhook-secret",
                "s",
                "--webhook",
                "http://127.0.0.1:1/",
                "f.jsonl"
            ])
            .is_ok()
        );
    }
}
