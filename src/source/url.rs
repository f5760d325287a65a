//! The URL rules every source shares, written once: which URLs a source
//! may be configured with, what names a host, which redirects are
//! followed.

use reqwest::Url;

pub use crate::masked_url::{MaskedUrl, SourceUrl, shown};

/// Redirects followed, at most, for a websocket handshake or an instance
/// document.
pub const MAX_REDIRECTS: usize = 5;

/// What a configured source URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// A websocket (`ws://`, `wss://`): connected to as it is.
    Websocket,
    /// A web server (`http://`, `https://`): a Mastodon instance, whose
    /// streaming host is discovered first.
    Instance,
}

/// What `url` points at, or `None` when it is not a URL with a host and
/// one of those four schemes.
pub fn endpoint(url: &str) -> Option<Endpoint> {
    if !host_written(url) {
        return None;
    }
    let url = Url::parse(url).ok().filter(Url::has_host)?;
    match url.scheme() {
        "ws" | "wss" => Some(Endpoint::Websocket),
        "http" | "https" => Some(Endpoint::Instance),
        _ => None,
    }
}

/// Whether `url` writes a host where a person reads one: right after
/// `scheme://`. The URL standard reads `https:///T0/B0/secret` (and
/// `https:/x`, `https:x`, `https:\\x`) with its first path segment as the
/// host, so a hook URL missing its host posted to whatever that segment
/// names, and a source's was retried for ever against it. The one check of
/// it, for source and sink URLs alike.
pub fn host_written(url: &str) -> bool {
    url.split_once(':')
        .and_then(|(_, rest)| rest.strip_prefix("//"))
        .is_some_and(|authority| !authority.is_empty() && !authority.starts_with(['/', '\\']))
}

/// `host[:port]` of `url` (the URL itself when it has no host): names a
/// relay, and a Mastodon instance's local accounts when a status's `uri` has no host.
pub fn host_port(url: &str) -> String {
    host_and_port(url).unwrap_or_else(|| url.to_owned())
}

/// `host[:port]` of `url`, `None` when the URL parser reads no host: never
/// the user, the path nor the query (safe to print for a URL that holds
/// a secret in them).
pub fn host_and_port(url: &str) -> Option<String> {
    let parsed = Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_owned();
    Some(match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// `host[:port][/path]` of `url`, without a trailing `/`: names one relay
/// of a Nostr source. Two relays on one host differ by path
/// (`wss://r.example/a`, `/b`), and by `host[:port]` alone they had the
/// same name.
pub fn relay_name(url: &str) -> String {
    let path = Url::parse(url)
        .ok()
        .filter(|u| u.host_str().is_some())
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    format!("{}{path}", host_port(url))
}

/// The server a URL connects to, as what it sends is filed under: the URL
/// without its query and fragment (a cursor, a token, options), so the
/// same server reached with another cursor is the same server. A text
/// that does not parse is its own server.
pub fn server_of(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        return url.to_owned();
    };
    parsed.set_query(None);
    parsed.set_fragment(None);
    parsed.into()
}

/// Whether a redirect from `from` to `to` may be followed: the same scheme,
/// or an upgrade to its TLS form (`http`→`https`, `ws`→`wss`); never a
/// downgrade, never another scheme.
pub fn redirect_allowed(from: &Url, to: &Url) -> bool {
    matches!(
        (from.scheme(), to.scheme()),
        ("https", "https") | ("http", "http" | "https") | ("wss", "wss") | ("ws", "ws" | "wss")
    ) && to.has_host()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_by_scheme() {
        let cases = [
            (
                "wss://jetstream1.us-east.bsky.network",
                Some(Endpoint::Websocket),
            ),
            ("ws://127.0.0.1:9/x", Some(Endpoint::Websocket)),
            ("https://mastodon.social", Some(Endpoint::Instance)),
            ("http://127.0.0.1:9", Some(Endpoint::Instance)),
            ("ftp://a/x", None),
            ("file:///etc/passwd", None),
            ("wss://", None),
            // The first path segment is no host, whatever the URL
            // standard makes of it.
            ("wss:///path", None),
            ("https:///T000/B000/secret", None),
            ("https:/mastodon.social", None),
            ("https:mastodon.social", None),
            ("wss:\\\\relay.example", None),
            ("wss://user:pw@relay.example", Some(Endpoint::Websocket)),
            ("not a url", None),
            ("", None),
        ];
        for (url, want) in cases {
            assert_eq!(endpoint(url), want, "{url}");
        }
    }

    #[test]
    fn host_and_port_name_a_relay() {
        assert_eq!(host_port("wss://relay.example/path"), "relay.example");
        assert_eq!(host_port("ws://127.0.0.1:7000"), "127.0.0.1:7000");
        assert_eq!(host_port("garbage"), "garbage");
    }

    #[test]
    fn redirects_stay_on_their_scheme_or_upgrade() {
        let url = |s: &str| Url::parse(s).expect("url");
        let cases = [
            ("https://a/x", "https://b/y", true),
            ("http://a/x", "https://a/x", true),
            ("ws://a/x", "wss://a/x", true),
            ("wss://a/x", "wss://b/x", true),
            ("https://a/x", "http://a/x", false),
            ("wss://a/x", "ws://a/x", false),
            ("https://a/x", "file:///etc/passwd", false),
            ("http://a/x", "ftp://a/x", false),
            ("ws://a/x", "https://a/x", false),
        ];
        for (from, to, want) in cases {
            assert_eq!(
                redirect_allowed(&url(from), &url(to)),
                want,
                "{from} -> {to}"
            );
        }
    }
}
