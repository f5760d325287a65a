//! `[[sources]]`: one live source each, and their checks.

use serde::{Deserialize, Serialize};

use super::Config;
use crate::source::SourceKind;
use crate::source::health::{HealthOverride, HealthRule};
use crate::source::jetstream::{JetstreamOptions, PUBLIC_HOSTS, Wire};
use crate::source::url::Endpoint;
use crate::source::ws::WsSettings;

pub(super) fn default_sources() -> Vec<SourceConfig> {
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
    /// This source's own health keys (`[sources.health]`): any of the
    /// `[health]` keys, the others taken from `[health]`, then from its
    /// kind ([`SourceConfig::health_rule`]).
    #[serde(default, skip_serializing_if = "HealthOverride::is_empty")]
    pub health: HealthOverride,
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
            health: HealthOverride::default(),
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

    /// The rule this source is judged by: each key from its own
    /// `[sources.health]`, else from `global` (`[health]`), else its
    /// kind's default ([`crate::source::Source::health_defaults`]).
    pub fn health_rule(&self, global: &HealthOverride) -> HealthRule {
        self.health
            .or(global)
            .over(&self.kind.source().health_defaults())
    }

    /// The live connections this source opens (its kind decides how many).
    pub fn connections(&self) -> Vec<crate::source::Connection> {
        let settings = self.connection.clone();
        let connection = crate::source::Connection {
            name: self.name.clone(),
            kind: self.kind,
            urls: self.urls.iter().map(|url| url.as_str().into()).collect(),
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

impl Config {
    /// Source names, URLs (by kind) and frame limits; `(key, message)` of
    /// the first fault.
    pub(super) fn check_sources(
        &self,
        unset: &dyn Fn(&str) -> bool,
    ) -> Result<(), (String, String)> {
        if self.sources.is_empty() {
            // The daemon would read nothing and, its frame channel closed at
            // once, stop.
            return Err((
                "sources".into(),
                "needs at least one source (leave the key out for Bluesky Jetstream's public hosts)"
                    .into(),
            ));
        }
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
            // A URL twice is one host read twice (a Nostr source opened two
            // connections of one name); two Nostr relays must differ in
            // host, port or path, which name their connections.
            let mut seen = std::collections::HashSet::new();
            for (j, url) in source.urls.iter().enumerate() {
                let key = match source.kind {
                    SourceKind::Nostr => crate::source::url::relay_name(url),
                    _ => url.clone(),
                };
                if !unset(url) && !seen.insert(key) {
                    return Err((
                        format!("sources[{i}].urls[{j}]"),
                        format!("{} is listed twice", shown_url(url)),
                    ));
                }
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
                        format!("{} is not a ws:// or wss:// URL", shown_url(url)),
                    ));
                }
            }
            // The cap below the first wait was raised to it in silence
            // while `config check` printed the lower value.
            let (min, max) = (source.connection.backoff_min, source.connection.backoff_max);
            if max < min {
                return Err((
                    format!("sources[{i}].connection.backoff_max_ms"),
                    format!(
                        "{} is below backoff_min_ms ({})",
                        max.as_millis(),
                        min.as_millis()
                    ),
                ));
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
}

/// A source URL as an error shows it: as written, unless it carries what
/// may be a secret (a user, a query such as `?access_token=`, a fragment),
/// then redacted.
pub(crate) fn shown_url(url: &str) -> String {
    let secret = reqwest::Url::parse(url).is_ok_and(|u| {
        !u.username().is_empty()
            || u.password().is_some()
            || u.query().is_some()
            || u.fragment().is_some()
    });
    if secret {
        crate::alert::url::redact(url)
    } else if reqwest::Url::parse(url).is_ok() {
        format!("{url:?}")
    } else {
        // Whatever follows a `?` or `#`, or comes before an `@`, may be
        // a secret in a URL that does not parse either.
        crate::source::url::shown(url)
    }
}
