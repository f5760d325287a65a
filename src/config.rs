//! The daemon's configuration file (TOML; see `outagewatch.example.toml`).
//!
//! Every table rejects unknown keys, and every error names the key (with
//! its line and column). Secrets never need to be in the file: any string
//! value may be `${VAR}`, read from the environment when the file is
//! loaded; an unset variable is an error that names it and the key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alert::deliver::{Filter, RetryPolicy, SinkSpec, Target, Webhook};
use crate::alert::format::Format;
use crate::detect::{DetectorConfig, Severity};
use crate::numbers as num;
pub use crate::source::SourceKind;
use crate::source::health::HealthRule;
use crate::source::jetstream::{JetstreamOptions, PUBLIC_HOSTS, Wire};
use crate::source::url::Endpoint;
use crate::source::ws::WsSettings;
use crate::window::WindowConfig;

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
    #[serde(default)]
    pub health: HealthRule,
    #[serde(default)]
    pub daemon: DaemonSettings,
    #[serde(default)]
    pub http: HttpConfig,
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
            health: HealthRule::default(),
            daemon: DaemonSettings::default(),
            http: HttpConfig::default(),
        }
    }
}

fn default_sources() -> Vec<SourceConfig> {
    vec![SourceConfig::jetstream(
        "bluesky",
        PUBLIC_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
    )]
}

/// One live source.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// Name in logs, cursors and `source:NAME` health alerts.
    pub name: String,
    /// Jetstream: hosts tried in turn (failover). Mastodon: the instance's
    /// streaming URL (`wss://`), or the instance itself (`https://`), whose
    /// streaming host is then discovered. Nostr: relays, all read at once.
    pub urls: Vec<String>,
    /// Mastodon: the stream to follow (`public`, `public:local`).
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Mastodon: an access token (`${MASTODON_TOKEN}`).
    pub token: Option<String>,
    /// Jetstream: `v1` (`/subscribe`) or `v2` (`subscribeEvents`, the
    /// default).
    pub protocol: Option<Wire>,
    /// Jetstream: ask for dictionary-zstd frames (default true).
    pub compress: Option<bool>,
    /// Timeouts, limits and backoff (`[sources.connection]`).
    #[serde(default)]
    pub connection: WsSettings,
}

fn default_stream() -> String {
    "public".into()
}

impl SourceConfig {
    pub fn jetstream(name: &str, urls: Vec<String>) -> Self {
        SourceConfig {
            kind: SourceKind::Jetstream,
            name: name.to_owned(),
            urls,
            stream: default_stream(),
            token: None,
            protocol: None,
            compress: None,
            connection: WsSettings::default(),
        }
    }

    /// The Jetstream wire (default v2).
    pub fn wire(&self) -> Wire {
        self.protocol.unwrap_or_default()
    }

    /// Whether Jetstream frames are compressed (default yes).
    pub fn compressed(&self) -> bool {
        self.compress.unwrap_or(true)
    }

    /// The live connections this source opens (its kind decides how many).
    pub fn connections(&self) -> Vec<crate::source::Connection> {
        let settings = self.connection.clone();
        let connection = crate::source::Connection {
            name: self.name.clone(),
            kind: self.kind,
            urls: self.urls.clone(),
            stream: self.stream.clone(),
            token: self.token.clone(),
            jetstream: JetstreamOptions {
                wire: self.wire(),
                compress: self.compressed(),
                fetch_timeout: settings.connect_timeout,
                ..JetstreamOptions::default()
            },
            settings,
        };
        self.kind.source().connections(connection)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Append alert JSON lines to this file; `-` is stdout.
    pub file: Option<PathBuf>,
    /// POST every alert as JSON to these URLs.
    #[serde(default)]
    pub webhooks: Vec<String>,
}

/// One webhook sink.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Name in logs, dead letters and `alerts test --sink NAME`.
    pub name: String,
    /// Where to POST (`${VAR}` allowed); `pagerduty` and `opsgenie` have
    /// defaults (their public APIs), `alertmanager` takes the base URL.
    #[serde(default)]
    pub url: String,
    /// `json` (the alert schema), `slack`, `discord`, `pagerduty`,
    /// `opsgenie` or `alertmanager`.
    #[serde(default)]
    pub format: Format,
    /// Signs requests with HMAC-SHA256 when set (`${VAR}` allowed).
    pub secret: Option<String>,
    /// Extra request headers, values `${VAR}`-expanded and never logged.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// `pagerduty`: the integration's routing key (`${VAR}` allowed).
    pub routing_key: Option<String>,
    /// `opsgenie`: the API integration's key (`${VAR}` allowed).
    pub api_key: Option<String>,
    /// Follow same-host redirects (re-sending the whole POST); off: a
    /// redirect is a delivery failure.
    #[serde(default)]
    pub follow_redirects: bool,
    /// 0.1 s to 1 h.
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "num::float::<_, 100, 3_600_000>"
    )]
    pub connect_timeout_secs: f64,
    /// `alertmanager`: re-post open alerts this often (1 s to 1 day).
    #[serde(
        default = "default_repeat",
        deserialize_with = "num::float::<_, 1_000, 86_400_000>"
    )]
    pub repeat_secs: f64,
    /// Only these services (default: all).
    #[serde(default)]
    pub services: Vec<String>,
    /// Only alerts at least this severe: `low`, `medium`, `high`.
    pub min_severity: Option<Severity>,
    /// 0.1 s to 5 min.
    #[serde(
        default = "default_timeout",
        deserialize_with = "num::float::<_, 100, 300_000>"
    )]
    pub timeout_secs: f64,
    /// After this long failing, an alert becomes a dead letter (0 to 30 days).
    #[serde(
        default = "default_horizon",
        deserialize_with = "num::float::<_, 0, 720_000>"
    )]
    pub retry_horizon_hours: f64,
    /// 100 ms to 10 min.
    #[serde(
        default = "default_backoff_min",
        deserialize_with = "num::int::<_, u64, 100, 600_000>"
    )]
    pub backoff_min_ms: u64,
    /// 100 ms to 1 day.
    #[serde(
        default = "default_backoff_max",
        deserialize_with = "num::int::<_, u64, 100, 86_400_000>"
    )]
    pub backoff_max_ms: u64,
}

// A sink's defaults are the delivery's own (one place each).
fn default_timeout() -> f64 {
    Webhook::TIMEOUT.as_secs_f64()
}
fn default_connect_timeout() -> f64 {
    Webhook::CONNECT_TIMEOUT.as_secs_f64()
}
fn default_repeat() -> f64 {
    Webhook::REPEAT.as_secs_f64()
}
fn default_horizon() -> f64 {
    RetryPolicy::default().horizon.as_secs_f64() / 3600.0
}
fn default_backoff_min() -> u64 {
    millis(RetryPolicy::default().min_backoff)
}
fn default_backoff_max() -> u64 {
    millis(RetryPolicy::default().max_backoff)
}
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl SinkConfig {
    /// A `json` webhook with the defaults (`--webhook URL`).
    pub fn json(name: &str, url: &str, secret: Option<String>) -> Self {
        SinkConfig {
            name: name.to_owned(),
            url: url.to_owned(),
            format: Format::Json,
            secret,
            headers: Default::default(),
            routing_key: None,
            api_key: None,
            follow_redirects: false,
            connect_timeout_secs: default_connect_timeout(),
            repeat_secs: default_repeat(),
            services: Vec::new(),
            min_severity: None,
            timeout_secs: default_timeout(),
            retry_horizon_hours: default_horizon(),
            backoff_min_ms: default_backoff_min(),
            backoff_max_ms: default_backoff_max(),
        }
    }

    pub fn spec(&self) -> SinkSpec {
        SinkSpec {
            name: self.name.clone(),
            target: Target::Webhook(Webhook {
                url: self.url.clone(),
                format: self.format,
                secret: self.secret.clone().filter(|s| !s.is_empty()),
                timeout: Duration::from_secs_f64(self.timeout_secs.clamp(0.1, 3600.0)),
                connect_timeout: Duration::from_secs_f64(
                    self.connect_timeout_secs.clamp(0.1, 3600.0),
                ),
                headers: self
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                key: match self.format {
                    Format::Pagerduty => self.routing_key.clone(),
                    Format::Opsgenie => self.api_key.clone(),
                    _ => None,
                },
                follow_redirects: self.follow_redirects,
                repeat: Duration::from_secs_f64(self.repeat_secs.clamp(1.0, 86_400.0)),
            }),
            filter: Filter {
                services: self.services.clone(),
                min_severity: self.min_severity,
            },
            retry: RetryPolicy {
                horizon: Duration::from_secs_f64(self.retry_horizon_hours.max(0.0) * 3600.0),
                min_backoff: Duration::from_millis(self.backoff_min_ms.max(1)),
                max_backoff: Duration::from_millis(
                    self.backoff_max_ms.max(self.backoff_min_ms.max(1)),
                ),
            },
        }
    }
}

/// The name of the JSON-lines sink (`[alerts] file`, stdout by default).
pub const LINES_SINK: &str = "alerts";

/// Every sink: the JSON lines, `[alerts] webhooks` and `[[sinks]]`.
pub fn sink_specs(config: &Config) -> Vec<SinkSpec> {
    let lines = SinkSpec {
        name: LINES_SINK.to_owned(),
        target: Target::Lines(config.alerts.file.clone().filter(|p| p.as_os_str() != "-")),
        filter: Filter::default(),
        retry: RetryPolicy::default(),
    };
    std::iter::once(lines)
        .chain(config.sinks.iter().map(SinkConfig::spec))
        .collect()
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

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
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
            let mut message = e.message().trim().to_owned();
            // A bad value's span is the value: name its key too.
            let named = |k: &String| {
                let last = k.rsplit('.').next().unwrap_or(k);
                message.contains(&format!("`{last}`"))
            };
            if let Some(key) = key_at(text, offset).filter(|k| !named(k)) {
                message = format!("`{key}`: {message}");
            }
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        })?;
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
        for (i, source) in self.sources.iter_mut().enumerate() {
            for (j, url) in source.urls.iter_mut().enumerate() {
                expand(format!("sources[{i}].urls[{j}]"), url)?;
            }
            if let Some(token) = source.token.as_mut() {
                expand(format!("sources[{i}].token"), token)?;
            }
        }
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
                expand(format!("sinks[{i}].secret"), secret)?;
            }
            for (name, value) in sink.headers.iter_mut() {
                expand(format!("sinks[{i}].headers.{name}"), value)?;
            }
            if let Some(key) = sink.routing_key.as_mut() {
                expand(format!("sinks[{i}].routing_key"), key)?;
            }
            if let Some(key) = sink.api_key.as_mut() {
                expand(format!("sinks[{i}].api_key"), key)?;
            }
        }
        if let Some(token) = self.http.token.as_mut() {
            expand("http.token".into(), token)?;
        }
        // `[alerts] webhooks` are plain JSON sinks.
        let webhooks = std::mem::take(&mut self.alerts.webhooks);
        for (i, url) in webhooks.into_iter().enumerate() {
            let name = format!("webhook-{}", i + 1);
            self.sinks.push(SinkConfig::json(&name, &url, None));
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
        self.check_sources(&unset).map_err(bad)?;
        self.check_sinks(&unset).map_err(bad)?;
        self.check_shared().map_err(bad)?;
        self.check_numbers().map_err(bad)
    }

    /// Source names, URLs (by kind) and frame limits; `(key, message)` of
    /// the first fault.
    fn check_sources(&self, unset: &dyn Fn(&str) -> bool) -> Result<(), (String, String)> {
        let mut names = std::collections::HashSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            if source.name.is_empty() || !names.insert(source.name.as_str()) {
                return Err((
                    format!("sources[{i}].name"),
                    format!("{:?} is empty or used twice", source.name),
                ));
            }
            if source.urls.is_empty() {
                return Err((
                    format!("sources[{i}].urls"),
                    "needs at least one URL".into(),
                ));
            }
            for (j, url) in source.urls.iter().enumerate() {
                // Mastodon also takes an instance's https:// URL, whose
                // streaming host is discovered.
                let instance = source.kind == SourceKind::Mastodon;
                let ok = unset(url)
                    || match crate::source::url::endpoint(url) {
                        Some(Endpoint::Websocket) => true,
                        Some(Endpoint::Instance) => instance,
                        None => false,
                    };
                if !ok {
                    return Err((
                        format!("sources[{i}].urls[{j}]"),
                        format!("{url:?} is not a ws:// or wss:// URL"),
                    ));
                }
            }
            if source.kind != SourceKind::Jetstream {
                for (key, set) in [
                    ("protocol", source.protocol.is_some()),
                    ("compress", source.compress.is_some()),
                ] {
                    if set {
                        return Err((
                            format!("sources[{i}].{key}"),
                            "only Jetstream sources take it".into(),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Sink names, URLs, keys and headers.
    fn check_sinks(&self, unset: &dyn Fn(&str) -> bool) -> Result<(), (String, String)> {
        let mut sink_names = std::collections::HashSet::from([LINES_SINK]);
        for (i, sink) in self.sinks.iter().enumerate() {
            if sink.name.is_empty() || !sink_names.insert(sink.name.as_str()) {
                return Err((
                    format!("sinks[{i}].name"),
                    format!(
                        "{:?} is empty or used twice (\"{LINES_SINK}\" is taken)",
                        sink.name
                    ),
                ));
            }
            if !unset(&sink.url) && !crate::alert::http::is_http_url(&sink.url) {
                return Err((
                    format!("sinks[{i}].url"),
                    format!(
                        "{} is not an http(s) URL",
                        crate::alert::http::redact(&sink.url)
                    ),
                ));
            }
            let (key_name, key) = match sink.format {
                Format::Pagerduty => ("routing_key", &sink.routing_key),
                Format::Opsgenie => ("api_key", &sink.api_key),
                _ => ("", &None),
            };
            if !key_name.is_empty() && key.as_deref().is_none_or(str::is_empty) {
                return Err((
                    format!("sinks[{i}].{key_name}"),
                    format!("format {} needs it", sink.format.name()),
                ));
            }
            for (name, value) in &sink.headers {
                let ok = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
                    && reqwest::header::HeaderValue::from_str(value).is_ok();
                if !ok {
                    // The value may be a secret: not shown.
                    return Err((
                        format!("sinks[{i}].headers.{name}"),
                        "is not a valid header name and value".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The bucket width both stages share, the listen address, `fire_p`.
    fn check_shared(&self) -> Result<(), (String, String)> {
        if self.window.bucket_secs <= 0
            || 60 % self.window.bucket_secs != 0 && self.window.bucket_secs % 60 != 0
        {
            return Err((
                "window.bucket_secs".into(),
                format!("{} does not divide a minute", self.window.bucket_secs),
            ));
        }
        if self.detector.bucket_secs != self.window.bucket_secs {
            return Err((
                "detector.bucket_secs".into(),
                format!(
                    "must equal window.bucket_secs ({})",
                    self.window.bucket_secs
                ),
            ));
        }
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err((
                "http.listen".into(),
                format!(
                    "{:?} is not an address like 127.0.0.1:9464",
                    self.http.listen
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.detector.fire_p) {
            return Err(("detector.fire_p".into(), "must be between 0 and 1".into()));
        }
        if !(0.0..=1.0).contains(&self.detector.ordinary_p) {
            return Err((
                "detector.ordinary_p".into(),
                "must be between 0 and 1".into(),
            ));
        }
        Ok(())
    }

    /// Bounds of the detector's and window's numbers (the README's
    /// "Limits"): finite, positive where a zero would divide or loop.
    fn check_numbers(&self) -> Result<(), (String, String)> {
        let d = &self.detector;
        let floats = [
            ("fire_ratio", d.fire_ratio, 1.0, 1000.0),
            ("prior_per_min", d.prior_per_min, 0.001, 1000.0),
            ("calm_ratio", d.calm_ratio, 0.0, 1000.0),
            ("medium_ratio", d.medium_ratio, 1.0, 1e6),
            ("high_ratio", d.high_ratio, 1.0, 1e6),
            ("dispersion_initial", d.dispersion_initial, 0.0, 100.0),
        ];
        for (key, value, min, max) in floats {
            num::check_f64(value, min, max).map_err(|m| (format!("detector.{key}"), m))?;
        }
        let day = 86_400;
        let ints = [
            ("detector.window_secs", d.window_secs, 10, day),
            (
                "detector.resolve_after_secs",
                d.resolve_after_secs,
                0,
                7 * day,
            ),
            (
                "detector.resolve_after_recovery_secs",
                d.resolve_after_recovery_secs,
                0,
                7 * day,
            ),
            ("detector.cooldown_secs", d.cooldown_secs, 0, 7 * day),
            (
                "detector.medium_after_secs",
                d.medium_after_secs,
                0,
                30 * day,
            ),
            ("detector.high_after_secs", d.high_after_secs, 0, 30 * day),
            (
                "detector.dispersion_memory_secs",
                d.dispersion_memory_secs,
                1,
                365 * day,
            ),
            (
                "detector.level_adjust_secs",
                d.level_adjust_secs,
                1,
                365 * day,
            ),
            ("detector.min_scale_secs", d.min_scale_secs, 0, day),
            ("detector.group_window_secs", d.group_window_secs, 0, day),
            (
                "detector.group_min_services",
                i64::try_from(d.group_min_services).unwrap_or(i64::MAX),
                2,
                10_000,
            ),
            (
                "detector.learn_during_incident_after_secs",
                d.learn_during_incident_after_secs,
                0,
                30 * day,
            ),
        ];
        for (key, value, min, max) in ints {
            num::check_int(value, min, max).map_err(|m| (key.to_owned(), m))?;
        }
        self.window
            .check()
            .map_err(|(key, m)| (format!("window.{key}"), m))?;
        Ok(())
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    (
        before.matches('\n').count() + 1,
        before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
    )
}

/// The dotted key (`daemon.status_secs`) whose `key = value` line holds
/// `offset`, from the nearest table header above it.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset.min(text.len()))?;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let key = line.split_once('=')?.0.trim();
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return None;
    }
    let table = before[..start].lines().rev().find_map(|l| {
        let l = l.trim();
        l.starts_with('[')
            .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
    });
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_owned(),
    })
}

/// Byte offset of the `key = ` line of a dotted key (`detector.fire_p`,
/// `sources[1].urls`: indexes pick the n-th `[[sources]]`).
fn locate(text: &str, dotted: &str) -> Option<usize> {
    let (table, field) = match dotted.rsplit_once('.') {
        Some((table, field)) => (table, field),
        None => ("", dotted),
    };
    let field = field.split('[').next()?;
    // `sources[1].connection` → header `sources.connection`, 2nd occurrence
    // of `[[sources]]` before it.
    let header: String = table
        .split('.')
        .map(|part| part.split('[').next().unwrap_or(part))
        .collect::<Vec<_>>()
        .join(".");
    let index: usize = table
        .split_once('[')
        .and_then(|(_, rest)| rest.split(']').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let array_root = table.split_once('[').map(|(root, _)| root);
    let mut current = String::new();
    let mut seen_root = 0usize;
    let mut offset = 0usize;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            current = trimmed
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned();
            if Some(current.as_str()) == array_root && trimmed.starts_with("[[") {
                seen_root += 1;
            }
        } else if current == header
            && (array_root.is_none() || seen_root == index + 1)
            && trimmed
                .split_once('=')
                .is_some_and(|(k, _)| k.trim() == field)
        {
            return Some(offset + (line.len() - line.trim_start().len()));
        }
        offset += line.len();
    }
    None
}

/// Expands `${NAME}` references; `$$` is a literal `$`.
fn expand(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in {value:?}"))?;
            let name = &body[..end];
            let resolved =
                lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&resolved);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("ow.toml"), text)
    }

    #[test]
    fn empty_file_means_the_defaults() {
        let config = parse("").expect("empty config");
        assert_eq!(config, Config::default());
        assert_eq!(config.sources[0].urls.len(), 4);
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("outagewatch.example.toml");
        let text = std::fs::read_to_string(&path).expect("example exists");
        let mut config: Config = toml::from_str(&text).expect("example parses");
        config
            .expand_env(&path, &|name| {
                Some(match name.ends_with("_URL") {
                    true => "https://hooks.example.com/x".into(),
                    false => "secret".into(),
                })
            })
            .expect("expands");
        config.check(&path, false).expect("checks");
        assert!(config.sources.len() >= 3, "shows every kind of source");
        assert!(config.sinks.len() >= 2, "shows sinks");
        for format in [
            Format::Json,
            Format::Slack,
            Format::Pagerduty,
            Format::Opsgenie,
            Format::Alertmanager,
        ] {
            assert!(
                config.sinks.iter().any(|s| s.format == format),
                "shows {format:?}"
            );
        }
    }

    #[test]
    fn sink_keys_are_checked_without_showing_secrets() {
        let cases = [
            (
                "[[sinks]]\nname = \"pd\"\nformat = \"pagerduty\"",
                "`sinks[0].routing_key`: format pagerduty needs it",
            ),
            (
                "[[sinks]]\nname = \"og\"\nformat = \"opsgenie\"",
                "`sinks[0].api_key`: format opsgenie needs it",
            ),
            (
                "[[sinks]]\nname = \"h\"\nurl = \"ftp://u:hunter2@x/?t=s3cr3t\"",
                "`sinks[0].url`: ftp://***@x/?t=*** is not an http(s) URL",
            ),
            (
                "[[sinks]]\nname = \"h\"\nurl = \"https://x/\"\nheaders = { \"Bad Name\" = \"hunter2\" }",
                "`sinks[0].headers.Bad Name`: is not a valid header name and value",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(want), "{err}");
            assert!(!err.contains("hunter2") && !err.contains("s3cr3t"), "{err}");
        }
        let ok = parse("[[sinks]]\nname = \"pd\"\nformat = \"pagerduty\"\nrouting_key = \"k\"")
            .expect("pagerduty sink");
        assert_eq!(ok.sinks[0].url, "https://events.pagerduty.com/v2/enqueue");
        let spec = ok.sinks[0].spec();
        assert!(!format!("{spec:?}").contains("\"k\""), "{spec:?}");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("sorces = []", "ow.toml:1:1: unknown field `sorces`"),
            (
                "[detector]\nmin_author = 3",
                "ow.toml:2:1: unknown field `min_author`",
            ),
            ("[detector]\nmin_authors = \"five\"", "ow.toml:2:15"),
            (
                "[[sources]]\nkind = \"jetstream\"\nname = \"a\"\nurls = [\"http://x\"]",
                "`sources[0].urls[0]`: \"http://x\" is not a ws:// or wss:// URL",
            ),
            (
                "[[sources]]\nkind = \"mastodon\"\nname = \"m\"\nurls = [\"wss://m/api/v1/streaming\"]\ntoken = \"${OW_TEST_UNSET_VAR}\"",
                "`sources[0].token`: environment variable OW_TEST_UNSET_VAR is not set",
            ),
            (
                "[[sources]]\nkind = \"irc\"\nname = \"a\"\nurls = []",
                "unknown variant `irc`",
            ),
            (
                "[[sources]]\nkind = \"jetstream\"\nname = \"a\"\nurls = [\"wss://h\"]\nprotocol = \"v3\"",
                "unknown variant `v3`, expected `v1` or `v2`",
            ),
            (
                "[[sources]]\nkind = \"nostr\"\nname = \"n\"\nurls = [\"wss://r\"]\ncompress = true",
                "`sources[0].compress`: only Jetstream sources take it",
            ),
            (
                "[window]\nbucket_secs = 7",
                "ow.toml:2:1: `window.bucket_secs`: 7 does not divide a minute",
            ),
            // Numbers out of their bounds: clean errors with file, line
            // and key, never a panic.
            (
                "[daemon]\nstatus_secs = inf",
                "ow.toml:2:15: `daemon.status_secs`: must be a finite number, got inf",
            ),
            (
                "[daemon]\nstatus_secs = 0",
                "ow.toml:2:15: `daemon.status_secs`: must be from 0.1 to 86400, got 0",
            ),
            (
                "[daemon]\nshutdown_grace_secs = 1e300",
                "`daemon.shutdown_grace_secs`: must be from 0 to 3600",
            ),
            (
                "[[sources]]\nkind = \"jetstream\"\nname = \"a\"\nurls = [\"wss://x\"]\n[sources.connection]\nwatchdog_secs = nan",
                "ow.toml:6:17: `sources.connection.watchdog_secs`: must be a finite number",
            ),
            (
                "[[sources]]\nkind = \"jetstream\"\nname = \"a\"\nurls = [\"wss://x\"]\n[sources.connection]\nbackoff_min_ms = 0",
                "`sources.connection.backoff_min_ms`: must be from 50 to 600000, got 0",
            ),
            (
                "[[sinks]]\nname = \"s\"\nurl = \"https://h/x\"\ntimeout_secs = -inf",
                "ow.toml:4:16: `sinks.timeout_secs`: must be a finite number",
            ),
            (
                "[detector]\nfire_ratio = inf",
                "ow.toml:2:1: `detector.fire_ratio`: must be a finite number, got inf",
            ),
            (
                "[detector]\nwindow_secs = 0",
                "ow.toml:2:1: `detector.window_secs`: must be from 10 to 86400",
            ),
            (
                "[window]\nmax_discovered = 100000000",
                "ow.toml:2:1: `window.max_discovered`: must be from 0 to 100000",
            ),
            ("[health]\nsilence_secs = 1e300", "ow.toml:2:16"),
        ];
        for (text, want) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text:?}: got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn env_expansion() {
        let lookup = |name: &str| (name == "TOKEN").then(|| "s3cret".to_owned());
        assert_eq!(
            expand("Bearer ${TOKEN}", &lookup),
            Ok("Bearer s3cret".into())
        );
        assert_eq!(
            expand("cost $$5 and $x", &lookup),
            Ok("cost $5 and $x".into())
        );
        assert!(expand("${MISSING}", &lookup).is_err());
        assert!(expand("${TOKEN", &lookup).is_err());
    }
}
