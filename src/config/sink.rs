//! `[[sinks]]` and `[alerts]`: where alerts go, and their checks.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Config;
use crate::alert::deliver::{Filter, RetryPolicy, SinkSpec, Target, Webhook};
use crate::alert::format::Format;
use crate::detect::Severity;
use crate::numbers as num;

/// One webhook sink.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Name in logs, dead letters and `alerts test --sink NAME`.
    pub name: String,
    /// The sink's name before it was renamed: its place in the outbox,
    /// retries, letters and open incidents move to `name` at the next
    /// start (once; a sink that has a place of its own keeps it).
    #[serde(default)]
    pub formerly: Option<String>,
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
            formerly: None,
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
            formerly: self.formerly.clone().filter(|f| !f.is_empty()),
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
        formerly: None,
        target: Target::Lines(config.alerts.file.clone().filter(|p| p.as_os_str() != "-")),
        filter: Filter::default(),
        retry: RetryPolicy::default(),
    };
    std::iter::once(lines)
        .chain(config.sinks.iter().map(SinkConfig::spec))
        .collect()
}

/// The name of a sink given only by its URL (`[alerts] webhooks`,
/// `--webhook`): from the URL as written, before any `${VAR}` in it is
/// filled, so it stays the same when the list is reordered, a sink is
/// added before it, or a secret in it is rotated. Its cursor, retries and
/// dead letters are kept under this name. Named by position
/// (`webhook-1`), a webhook took over another's place when the list
/// changed: one receiver was sent alerts it already had, the other never
/// got its own.
pub fn webhook_name(url_as_written: &str) -> String {
    let hash = xxhash_rust::xxh3::xxh3_64(url_as_written.as_bytes());
    format!("webhook-{:08x}", hash >> 32)
}

impl Config {
    /// Sink names, URLs, keys and headers.
    pub(super) fn check_sinks(&self, unset: &dyn Fn(&str) -> bool) -> Result<(), (String, String)> {
        let first_webhook = self.sinks.len().saturating_sub(self.webhook_sinks);
        let mut sink_names = std::collections::HashSet::from([LINES_SINK]);
        let source_names = self.source_alert_names();
        for (i, sink) in self.sinks.iter().enumerate() {
            if i >= first_webhook {
                // A URL of `[alerts] webhooks`: its name was given here.
                let key = format!("alerts.webhooks[{}]", i - first_webhook);
                if !sink_names.insert(sink.name.as_str()) {
                    let twice = self.sinks[first_webhook..i]
                        .iter()
                        .any(|s| s.name == sink.name);
                    return Err((
                        key,
                        if twice {
                            "is listed twice".to_owned()
                        } else {
                            format!(
                                "its sink is named {:?}, which a [[sinks]] entry also uses: rename that sink",
                                sink.name
                            )
                        },
                    ));
                }
                if !unset(&sink.url)
                    && let Some(why) = crate::alert::url::not_http_url(&sink.url)
                {
                    return Err((key, why));
                }
                continue;
            }
            if sink.name.is_empty() || !sink_names.insert(sink.name.as_str()) {
                return Err((
                    format!("sinks[{i}].name"),
                    format!(
                        "{:?} is empty or used twice (\"{LINES_SINK}\" is taken)",
                        sink.name
                    ),
                ));
            }
            if !unset(&sink.url)
                && let Some(why) = crate::alert::url::not_http_url(&sink.url)
            {
                return Err((format!("sinks[{i}].url"), why));
            }
            if sink.secret.as_deref().is_some_and(|s| s.trim().is_empty()) {
                return Err((
                    format!("sinks[{i}].secret"),
                    "is empty: give one, or leave the key out for unsigned requests".into(),
                ));
            }
            for (j, name) in sink.services.iter().enumerate() {
                if let Some(message) = super::services::form_error(name, &source_names) {
                    return Err((format!("sinks[{i}].services[{j}]"), message));
                }
            }
            // The cap below the first wait was raised to it in silence at
            // run time while `config check` printed the lower value.
            if sink.backoff_max_ms < sink.backoff_min_ms {
                return Err((
                    format!("sinks[{i}].backoff_max_ms"),
                    format!(
                        "{} is below backoff_min_ms ({})",
                        sink.backoff_max_ms, sink.backoff_min_ms
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
}
