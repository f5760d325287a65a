//! The daemon's configuration file (TOML; see `outagewatch.example.toml`).
//!
//! Every table rejects unknown keys, and every error names the key (with
//! its line and column). Secrets never need to be in the file: any string
//! value may be `${VAR}`, read from the environment when the file is
//! loaded; an unset variable is an error that names it and the key.
//!
//! One file per section: `source` (`[[sources]]`), `sink`
//! (`[[sinks]]` and `[alerts]`), `bounds` (the checks that span
//! several keys), `text` (where a key is in the file, `${VAR}`); this
//! file holds the whole, its small tables and how it is read. Components
//! whose settings need no conversion are read straight into their own
//! types (`[sources.connection]` is [`WsSettings`], `[health]` and
//! `[sources.health]` are [`HealthOverride`], `[window]` and `[detector]`
//! their configs).

mod bounds;
pub mod file;
pub mod patterns;
mod services;
mod sink;
mod source;
mod text;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::detect::DetectorConfig;
use crate::numbers as num;
pub use crate::source::SourceKind;
use crate::source::health::{HealthOverride, HealthRule};
#[cfg(doc)]
use crate::source::ws::WsSettings;
use crate::window::WindowConfig;
pub use sink::{LINES_SINK, SinkConfig, sink_specs, webhook_name};
pub use source::SourceConfig;
use source::default_sources;
pub(crate) use source::shown_url;
use text::{expand, header_at, key_at, line_column, locate};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: `{key}`: {message}")]
    Value {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where state is kept; default: the platform's state directory.
    pub state_dir: Option<PathBuf>,
    /// A patterns folder to use instead of the built-in patterns.
    pub patterns: Option<PathBuf>,
    /// The live sources; default: Bluesky Jetstream on its public hosts.
    #[serde(default = "default_sources")]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// Webhook sinks, each with its format, filter and secret.
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    #[serde(default)]
    pub window: WindowConfig,
    #[serde(default)]
    pub detector: DetectorConfig,
    /// The `[health]` keys set, over every source's kind defaults (see
    /// [`SourceConfig::health_rule`]); only these are printed.
    #[serde(default, skip_serializing_if = "HealthOverride::is_empty")]
    pub health: HealthOverride,
    #[serde(default)]
    pub daemon: DaemonSettings,
    #[serde(default)]
    pub http: HttpConfig,
    /// How many of `sinks`, at its end, came from `[alerts] webhooks`: an
    /// error in one of them names the webhook, not a `[[sinks]]` entry the
    /// file does not have.
    #[serde(skip)]
    pub(crate) webhook_sinks: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: None,
            patterns: None,
            sources: default_sources(),
            alerts: AlertsConfig::default(),
            sinks: Vec::new(),
            window: WindowConfig::default(),
            detector: DetectorConfig::default(),
            health: HealthOverride::default(),
            daemon: DaemonSettings::default(),
            http: HttpConfig::default(),
            webhook_sinks: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Append alert JSON lines to this file; `-` is stdout.
    pub file: Option<PathBuf>,
    /// POST every alert as JSON to these URLs.
    #[serde(default)]
    pub webhooks: Vec<String>,
    /// Dead letters older than this many days (since they died) are
    /// dropped by the running daemon; 0 keeps them for ever. A broken
    /// receiver otherwise filled the store without end.
    #[serde(
        default = "default_dead_letter_days",
        deserialize_with = "num::int::<_, u32, 0, 3650>"
    )]
    pub dead_letter_days: u32,
}

/// [`AlertsConfig::dead_letter_days`] when the key is left out.
pub const DEAD_LETTER_DAYS: u32 = 30;

fn default_dead_letter_days() -> u32 {
    DEAD_LETTER_DAYS
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            file: None,
            webhooks: Vec::new(),
            dead_letter_days: DEAD_LETTER_DAYS,
        }
    }
}

impl AlertsConfig {
    /// How long dead letters are kept, in µs; `None`: for ever.
    pub fn dead_letter_retention_us(&self) -> Option<crate::Micros> {
        (self.dead_letter_days > 0)
            .then(|| crate::Micros::from(self.dead_letter_days) * 86_400 * crate::MICROS_PER_SEC)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSettings {
    /// A status line in the log this often (0.1 s to 1 day).
    #[serde(deserialize_with = "num::float::<_, 100, 86_400_000>")]
    pub status_secs: f64,
    /// At shutdown, how long in-flight webhook deliveries may take (0 to 1 h).
    #[serde(deserialize_with = "num::float::<_, 0, 3_600_000>")]
    pub shutdown_grace_secs: f64,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            status_secs: 60.0,
            shutdown_grace_secs: 10.0,
        }
    }
}

/// The status server (`[http]`): API, metrics, dashboard.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve at all (`--no-http` turns it off too).
    pub enabled: bool,
    /// Address to listen on; a non-loopback one needs `token`.
    pub listen: String,
    /// Bearer token every route but `/healthz` and the page itself require
    /// (`${VAR}` allowed; `OUTAGEWATCH_HTTP_TOKEN` overrides it).
    pub token: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: crate::http::DEFAULT_LISTEN.to_owned(),
            token: None,
        }
    }
}

/// The largest configuration file read: a few KiB in practice, so this is
/// only a bound on a wrong path (a log, a device).
const MAX_CONFIG_BYTES: u64 = 4 << 20;

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::parse(path, &Config::read_text(path)?)
    }

    /// A configuration file's text, refused with the place of its first
    /// byte that is not UTF-8.
    pub fn read_text(path: &Path) -> Result<String, ConfigError> {
        let bytes =
            file::read_bounded(path, MAX_CONFIG_BYTES).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        // std's own message ("stream did not contain valid UTF-8") names
        // no place: a config edited in a Latin-1 editor left users to
        // search for the one accented byte.
        String::from_utf8(bytes).map_err(|e| {
            let good = e.as_bytes().get(..e.utf8_error().valid_up_to());
            let good = String::from_utf8_lossy(good.unwrap_or_default());
            let (line, column) = line_column(&good, good.len());
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message: "not UTF-8 text (a file saved in another encoding?): TOML must be UTF-8"
                    .into(),
            }
        })
    }

    /// [`Config::load`] for a command that reads only what no `${VAR}`
    /// reaches (`[detector]`, `state_dir`): a variable that is not set
    /// leaves its value as written, unchecked, as `config check` reads it.
    /// `series --config` and `state verify --config` refused the daemon's
    /// own file off the server, where its secrets are not set (and a
    /// refused `state verify` exits as a damaged store does).
    pub fn load_lenient(path: &Path) -> Result<Config, ConfigError> {
        let unset_as_written =
            |name: &str| Some(std::env::var(name).unwrap_or_else(|_| format!("${{{name}}}")));
        Config::parse_with(path, &Config::read_text(path)?, &unset_as_written, true)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::parse_with(path, text, &|name| std::env::var(name).ok(), false)
    }

    /// [`Config::parse`] with the environment given: `lenient` leaves the
    /// values that hold an unset variable unchecked (for `config check`,
    /// which reports the unset variables instead).
    pub fn parse_with(
        path: &Path,
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
        lenient: bool,
    ) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start).min(text.len());
            let (line, column) = line_column(text, offset);
            let mut message = without_quoted_strings(e.message().trim());
            // A bad value's span is the value: name its key too.
            let named = |k: &String| {
                let last = k.rsplit('.').next().unwrap_or(k);
                message.contains(&format!("`{last}`"))
            };
            if let Some(key) = key_at(text, offset).filter(|k| !named(k)) {
                message = format!("`{key}`: {message}");
            } else if let Some((table, false)) = header_at(text, offset) {
                message = format!("`{table}`: {message}");
                // `[sources.connection]` alone: a sub-table of a list's
                // entry, with no entry to belong to.
                if message.ends_with("expected a sequence") {
                    message.push_str(&format!(
                        " (`{table}` is a list of `[[{table}]]` entries: a `[{table}.…]` table \
                         belongs under the `[[{table}]]` entry above it, and this file has none)"
                    ));
                }
            }
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        })?;
        // `[detector] bucket_secs` follows `[window] bucket_secs` unless the
        // file gives it: a user setting the window's width must not have to
        // set a second key to the same value (a different one is refused).
        if !given(text, "detector", "bucket_secs") {
            config.detector.bucket_secs = config.window.bucket_secs;
        }
        config.expand_env(path, lookup)?;
        config.check(path, lenient).map_err(|e| match e {
            // Checks that span several keys run after parsing: find the
            // key's line in the text.
            ConfigError::Value { path, key, message } => match locate(text, &key) {
                Some(offset) => {
                    let (line, column) = line_column(text, offset);
                    ConfigError::Invalid {
                        path,
                        line,
                        column,
                        message: format!("`{key}`: {message}"),
                    }
                }
                None => ConfigError::Value { path, key, message },
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Replaces `${VAR}` in every string value that may hold a secret or
    /// an address.
    pub fn expand_env(
        &mut self,
        path: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let expand = |key: String, value: &mut String| -> Result<(), ConfigError> {
            *value = expand(value, lookup).map_err(|message| ConfigError::Value {
                path: path.to_path_buf(),
                key,
                message,
            })?;
            Ok(())
        };
        let expand_secret = |key: String, value: &mut String| -> Result<(), ConfigError> {
            *value = text::expand_secret(value, lookup).map_err(|message| ConfigError::Value {
                path: path.to_path_buf(),
                key,
                message,
            })?;
            Ok(())
        };
        for (i, source) in self.sources.iter_mut().enumerate() {
            for (j, url) in source.urls.iter_mut().enumerate() {
                expand(format!("sources[{i}].urls[{j}]"), url)?;
            }
            if let Some(token) = source.token.as_mut() {
                expand_secret(format!("sources[{i}].token"), token)?;
            }
        }
        let webhook_names: Vec<String> = self
            .alerts
            .webhooks
            .iter()
            .map(|u| webhook_name(u))
            .collect();
        for (i, url) in self.alerts.webhooks.iter_mut().enumerate() {
            expand(format!("alerts.webhooks[{i}]"), url)?;
        }
        for (i, sink) in self.sinks.iter_mut().enumerate() {
            if sink.url.is_empty()
                && let Some(url) = sink.format.default_url()
            {
                sink.url = url.to_owned();
            }
            expand(format!("sinks[{i}].url"), &mut sink.url)?;
            if let Some(secret) = sink.secret.as_mut() {
                expand_secret(format!("sinks[{i}].secret"), secret)?;
            }
            for (name, value) in sink.headers.iter_mut() {
                expand_secret(format!("sinks[{i}].headers.{name}"), value)?;
            }
            if let Some(key) = sink.routing_key.as_mut() {
                expand_secret(format!("sinks[{i}].routing_key"), key)?;
            }
            if let Some(key) = sink.api_key.as_mut() {
                expand_secret(format!("sinks[{i}].api_key"), key)?;
            }
        }
        if let Some(token) = self.http.token.as_mut() {
            expand_secret("http.token".into(), token)?;
        }
        // `[alerts] webhooks` are plain JSON sinks.
        let webhooks = std::mem::take(&mut self.alerts.webhooks);
        self.webhook_sinks = webhooks.len();
        for (i, (name, url)) in webhook_names.iter().zip(webhooks).enumerate() {
            // Named by position before: a state from then carries over.
            let mut sink = SinkConfig::json(name, &url, None);
            sink.formerly = Some(format!("webhook-{}", i + 1));
            self.sinks.push(sink);
        }
        Ok(())
    }

    fn check(&self, path: &Path, lenient: bool) -> Result<(), ConfigError> {
        // In lenient mode a value still holding `${VAR}` is not judged.
        let unset = |value: &str| lenient && value.contains("${");
        let bad = |(key, message): (String, String)| ConfigError::Value {
            path: path.to_path_buf(),
            key,
            message,
        };
        self.check_paths().map_err(bad)?;
        self.check_sources(&unset).map_err(bad)?;
        self.check_sinks(&unset).map_err(bad)?;
        self.check_shared().map_err(bad)?;
        self.check_numbers().map_err(bad)
    }
}

impl Config {
    /// `[health]` over the firehose's defaults ([`HealthRule::firehose`]):
    /// the rule of a source of the default kind that sets no key of its
    /// own, shown as the dashboard's top-level `health`. Each source is
    /// judged by its own [`SourceConfig::health_rule`].
    pub fn global_health(&self) -> HealthRule {
        self.health.over(&HealthRule::firehose())
    }

    /// The configuration with each source's `[sources.health]` holding the
    /// whole rule it is judged by (its own keys, `[health]`'s, its kind's
    /// defaults), as `config check` prints it: `[health]` shows only the
    /// keys it sets, which no longer say alone what a source gets.
    pub fn with_health_resolved(mut self) -> Config {
        for source in &mut self.sources {
            source.health = HealthOverride::from(source.health_rule(&self.health));
        }
        self
    }

    /// `${VAR}` is expanded in URLs and secrets only: in a path it was
    /// taken literally (`state_dir = "${HOME}/x"` made a folder named
    /// `${HOME}`), so it is refused.
    fn check_paths(&self) -> Result<(), (String, String)> {
        let paths = [
            ("state_dir", &self.state_dir),
            ("patterns", &self.patterns),
            ("alerts.file", &self.alerts.file),
        ];
        for (key, path) in paths {
            if let Some(path) = path
                && path.to_string_lossy().contains("${")
            {
                return Err((
                    key.to_owned(),
                    format!(
                        "{} holds `${{`: `${{VAR}}` is expanded only in URLs, secrets, keys, \
                         tokens and header values; write the path out",
                        path.display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Whether the file sets `key` in `[table]` (the text already parsed
/// once, so a parse error here means no).
fn given(text: &str, table: &str, key: &str) -> bool {
    text.parse::<toml::Table>().is_ok_and(|file| {
        file.get(table)
            .and_then(toml::Value::as_table)
            .is_some_and(|t| t.contains_key(key))
    })
}

/// A TOML parser's message without the strings it quotes: "invalid type:
/// string \"https://hooks.slack.com/services/T0/B0/…\", expected a
/// sequence" showed a webhook's token (or a header's) in the error, which
/// `run` writes to the journal. The line and column still point at it.
fn without_quoted_strings(message: &str) -> String {
    static QUOTED: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r#"string "(?:[^"\\]|\\.)*""#).ok());
    match QUOTED.as_ref() {
        Some(quoted) => quoted.replace_all(message, "a string").into_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
#[path = "health_tests.rs"]
mod health_tests;
