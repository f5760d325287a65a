//! Streaming-host discovery: an instance URL (`https://`) is not where its
//! streaming API is; the instance's document (`/api/v2/instance`, else
//! `/api/v1/instance`) names it. Its own file because it is HTTP, before
//! the websocket, with its own limits (document size, redirects, no
//! downgrade), none of which the decoding of the stream needs.

use std::collections::HashMap;

use crate::source::url::{Endpoint, MAX_REDIRECTS, SourceUrl, endpoint, redirect_allowed};

/// Streaming hosts asked of the instances, when connecting to each: one
/// instance that does not answer is one failed connection, and the next
/// URL of the list is tried (all were asked first, each retried for ever,
/// so one dead instance kept every other from being read).
#[derive(Debug)]
pub struct Discovery {
    client: reqwest::Client,
    source: String,
    /// Instance URL → the streaming URL it named, until a connection
    /// there fails ([`Discovery::forget`]).
    found: HashMap<SourceUrl, SourceUrl>,
}

impl Discovery {
    /// Discovery for the source named `source` (in the log), asking
    /// through `client` (see [`discovery_client`]).
    pub fn new(client: reqwest::Client, source: String) -> Discovery {
        Discovery {
            client,
            source,
            found: HashMap::new(),
        }
    }

    /// Asks the instance at `host` for its streaming URL, unless `host` is
    /// not an instance URL or its answer is still held.
    pub async fn learn(&mut self, host: &SourceUrl) -> Result<(), DiscoveryError> {
        if endpoint(host.secret()) != Some(Endpoint::Instance) || self.found.contains_key(host) {
            return Ok(());
        }
        let url = SourceUrl::from(discover(&self.client, host.secret()).await?);
        tracing::info!(
            source = %self.source,
            instance = %host,
            streaming = %url,
            "streaming host discovered"
        );
        self.found.insert(host.clone(), url);
        Ok(())
    }

    /// Drops what the instance at `host` named, after a connection there
    /// failed: the next attempt (after the backoff, like any other) asks
    /// the instance again. An instance moves its streaming API by naming
    /// another host in its document; kept for the whole run, the old host
    /// was dialled for ever once it died (24 reconnects in 40 s, the
    /// document naming the new one all along).
    pub fn forget(&mut self, host: &SourceUrl) {
        self.found.remove(host);
    }

    /// The streaming URL the instance at `host` named, once learned.
    pub fn streaming_url(&self, host: &SourceUrl) -> Option<&SourceUrl> {
        self.found.get(host)
    }
}

/// The instance document is small; a larger answer is refused.
pub const MAX_INSTANCE_DOC_BYTES: usize = 256 * 1024;

/// Why the streaming host could not be discovered. Its URLs are
/// [`SourceUrl`]s: the message is logged at every retry, masked.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("cannot fetch {url}: {reason}")]
    Fetch { url: SourceUrl, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: SourceUrl, status: u16 },
    #[error(
        "the instance documents name no streaming host (v2 `configuration.urls.streaming`, v1 `urls.streaming_api`)"
    )]
    NoStreaming,
    #[error("the streaming URL {0} is not a ws://, wss://, http:// or https:// URL")]
    BadUrl(SourceUrl),
    #[error(
        "the instance at {instance} names an unencrypted streaming URL, {streaming}: refused, as the token would travel in clear (configure the wss:// URL yourself if that is really meant)"
    )]
    Downgrade {
        instance: SourceUrl,
        streaming: SourceUrl,
    },
}

/// The streaming base URL an instance document names: v2
/// `configuration.urls.streaming`, or v1 `urls.streaming_api`.
pub fn streaming_from_document(document: &serde_json::Value) -> Option<String> {
    document
        .pointer("/configuration/urls/streaming")
        .or_else(|| document.pointer("/urls/streaming_api"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}

/// The websocket URL of the streaming API at `base` (`https://` becomes
/// `wss://`; `/api/v1/streaming` is added unless there).
pub fn streaming_endpoint(base: &str) -> Result<String, DiscoveryError> {
    let bad = || DiscoveryError::BadUrl(base.into());
    let mut url = reqwest::Url::parse(base).map_err(|_| bad())?;
    let scheme = match url.scheme() {
        "https" | "wss" => "wss",
        "http" | "ws" => "ws",
        _ => return Err(bad()),
    };
    url.set_scheme(scheme).map_err(|_| bad())?;
    if !url.path().ends_with("/api/v1/streaming") {
        let path = format!("{}/api/v1/streaming", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(url.to_string())
}

/// The websocket URL of the streaming host an instance's document names,
/// refused when the instance was reached over TLS and the streaming host
/// would not be: a document cannot downgrade the connection.
pub fn discovered_endpoint(instance: &str, streaming: &str) -> Result<String, DiscoveryError> {
    let endpoint = streaming_endpoint(streaming)?;
    let tls =
        |url: &str| reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "https" | "wss"));
    if tls(instance) && !tls(&endpoint) {
        return Err(DiscoveryError::Downgrade {
            instance: instance.into(),
            streaming: streaming.into(),
        });
    }
    Ok(endpoint)
}

/// An HTTP client for instance documents: bounded redirects, same scheme
/// or an upgrade to https only.
pub fn discovery_client(tls: &rustls::ClientConfig) -> Result<reqwest::Client, reqwest::Error> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let allowed = attempt
            .previous()
            .last()
            .is_some_and(|from| redirect_allowed(from, attempt.url()));
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if !allowed {
            attempt.error("redirect to another scheme (or a downgrade) refused")
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls.clone())
        .redirect(policy)
        .timeout(std::time::Duration::from_secs(15))
        .user_agent(concat!("outagewatch/", env!("CARGO_PKG_VERSION")))
        .build()
}

async fn fetch_document(
    client: &reqwest::Client,
    url: &str,
) -> Result<serde_json::Value, DiscoveryError> {
    // The error names the URL with its secrets masked, once: it is the
    // source's last failure, shown in its alert and `/api/v1/sources`.
    let fetch = |reason: String| DiscoveryError::Fetch {
        url: url.into(),
        reason,
    };
    // The transport's message without its copy of the URL, which is
    // shown masked already and would show the query whole.
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| fetch(format!("{:#}", e.without_url())))?;
    if !response.status().is_success() {
        return Err(DiscoveryError::Status {
            url: url.into(),
            status: response.status().as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| fetch(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > MAX_INSTANCE_DOC_BYTES {
            return Err(fetch(format!("larger than {MAX_INSTANCE_DOC_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| fetch(format!("not JSON: {e}")))
}

/// Asks the instance at `instance` (an `https://` URL) for its streaming
/// host: `GET /api/v2/instance`, else `GET /api/v1/instance`. Returns the
/// websocket URL to connect to.
pub async fn discover(client: &reqwest::Client, instance: &str) -> Result<String, DiscoveryError> {
    let base = instance.trim_end_matches('/');
    let mut last = DiscoveryError::NoStreaming;
    for path in ["/api/v2/instance", "/api/v1/instance"] {
        match fetch_document(client, &format!("{base}{path}")).await {
            Ok(document) => {
                if let Some(streaming) = streaming_from_document(&document) {
                    return discovered_endpoint(instance, &streaming);
                }
                last = DiscoveryError::NoStreaming;
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_host_from_v2_and_v1_instance_documents() {
        let v2 = serde_json::json!({"domain": "m.example",
            "configuration": {"urls": {"streaming": "wss://streaming.m.example"}}});
        let v1 = serde_json::json!({"uri": "m.example",
            "urls": {"streaming_api": "wss://m.example"}});
        assert_eq!(
            streaming_from_document(&v2).as_deref(),
            Some("wss://streaming.m.example")
        );
        assert_eq!(
            streaming_from_document(&v1).as_deref(),
            Some("wss://m.example")
        );
        assert_eq!(
            streaming_from_document(&serde_json::json!({"urls": {}})),
            None
        );
        let cases = [
            (
                "wss://streaming.m.example",
                "wss://streaming.m.example/api/v1/streaming",
            ),
            ("https://m.example/", "wss://m.example/api/v1/streaming"),
            ("http://127.0.0.1:9", "ws://127.0.0.1:9/api/v1/streaming"),
            (
                "wss://m.example/api/v1/streaming",
                "wss://m.example/api/v1/streaming",
            ),
        ];
        for (base, want) in cases {
            assert_eq!(streaming_endpoint(base).expect(base), want);
        }
        assert!(streaming_endpoint("ftp://m.example").is_err());
        assert!(streaming_endpoint("not a url").is_err());
    }

    #[test]
    fn an_instance_reached_over_tls_cannot_name_a_clear_streaming_host() {
        // (instance, streaming URL its document names, endpoint or refused)
        let cases = [
            (
                "https://m.example",
                "wss://streaming.m.example",
                Some("wss://streaming.m.example/api/v1/streaming"),
            ),
            (
                "HTTPS://m.example",
                "https://streaming.m.example",
                Some("wss://streaming.m.example/api/v1/streaming"),
            ),
            ("https://m.example", "ws://streaming.m.example", None),
            ("https://m.example", "http://m.example", None),
            (
                "http://127.0.0.1:9",
                "ws://127.0.0.1:9",
                Some("ws://127.0.0.1:9/api/v1/streaming"),
            ),
            (
                "http://127.0.0.1:9",
                "wss://m.example",
                Some("wss://m.example/api/v1/streaming"),
            ),
        ];
        for (instance, streaming, want) in cases {
            match (discovered_endpoint(instance, streaming), want) {
                (Ok(endpoint), Some(want)) => assert_eq!(endpoint, want, "{instance} {streaming}"),
                (Err(DiscoveryError::Downgrade { .. }), None) => {}
                (got, want) => panic!("{instance} {streaming}: {got:?}, want {want:?}"),
            }
        }
    }
}
