//! The Jetstream URLs and the HTTP client: which URL a connection asks for
//! on either wire (the host's own path and query kept, the keys this code
//! sets replaced) and the client the dictionary is fetched with. Its own
//! file because it is plain URL work, apart from the connection's state
//! (cursors, dictionary, refusals) in [`super::protocol`].

use super::{POST_COLLECTION, V1_PATH, V2_PATH};
use crate::source::SourceError;

pub(super) fn http_client() -> Result<reqwest::Client, SourceError> {
    let tls = crate::tls::client_config()?;
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .user_agent(concat!("outagewatch/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// `host` on `path` (unless it names a path of its own other than the
/// other wire's), with its query minus the keys this code sets.
fn endpoint(host: &str, path: &str, other_path: &str, drop: &[&str]) -> Option<reqwest::Url> {
    let mut url = reqwest::Url::parse(host).ok()?;
    if matches!(url.path(), "" | "/") || url.path() == other_path {
        url.set_path(path);
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !drop.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    if !kept.is_empty() {
        url.query_pairs_mut().extend_pairs(kept);
    }
    Some(url)
}

/// A redirect target's server, as its sequence numbers are filed under
/// (the URL without its query), and the cursor its query asks for.
pub(super) fn redirect_target(to: &str) -> (String, Option<i64>) {
    let cursor = reqwest::Url::parse(to).ok().and_then(|url| {
        url.query_pairs()
            .find(|(k, _)| k == "cursor")
            .and_then(|(_, v)| v.parse().ok())
    });
    (crate::source::url::server_of(to), cursor)
}

/// The v1 subscription URL: `wantedCollections` (unless the host names its
/// own), the cursor and compression.
pub fn v1_url(host: &str, cursor: Option<i64>, compress: bool) -> String {
    let Some(mut url) = endpoint(host, V1_PATH, V2_PATH, &["cursor", "compress"]) else {
        return host.to_owned();
    };
    let wants = url.query_pairs().any(|(k, _)| k == "wantedCollections");
    {
        let mut query = url.query_pairs_mut();
        if !wants {
            query.append_pair("wantedCollections", POST_COLLECTION);
        }
        if let Some(cursor) = cursor {
            query.append_pair("cursor", &cursor.to_string());
        }
        if compress {
            query.append_pair("compress", "true");
        }
    }
    url.to_string()
}

/// The v2 subscription URL: posts only (`kinds=commit&collections=…`,
/// unless the host names its own), the cursor and the dictionary.
pub fn v2_url(host: &str, cursor: Option<i64>, dictionary: Option<u32>) -> String {
    let Some(mut url) = endpoint(host, V2_PATH, V1_PATH, &["cursor", "zstdDictionary"]) else {
        return host.to_owned();
    };
    let has = |key: &str| url.query_pairs().any(|(k, _)| k == key);
    let (kinds, collections) = (has("kinds"), has("collections"));
    {
        let mut query = url.query_pairs_mut();
        if !kinds {
            query.append_pair("kinds", "commit");
        }
        if !collections {
            query.append_pair("collections", POST_COLLECTION);
        }
        if let Some(cursor) = cursor {
            query.append_pair("cursor", &cursor.to_string());
        }
        if let Some(id) = dictionary {
            query.append_pair("zstdDictionary", &id.to_string());
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_for_both_wires() {
        let cases = [
            (
                v1_url("wss://h/subscribe", None, false),
                "wss://h/subscribe?wantedCollections=app.bsky.feed.post",
            ),
            (
                v1_url("wss://h/subscribe", Some(1_700_000_000_000_000), true),
                "wss://h/subscribe?wantedCollections=app.bsky.feed.post&cursor=1700000000000000&compress=true",
            ),
            (
                v1_url(
                    "ws://127.0.0.1:9/subscribe?cursor=5&wantedCollections=app.bsky.feed.*",
                    Some(7),
                    false,
                ),
                "ws://127.0.0.1:9/subscribe?wantedCollections=app.bsky.feed.*&cursor=7",
            ),
            (
                v2_url("wss://h/subscribe", None, None),
                "wss://h/xrpc/network.bsky.jetstream.subscribeEvents?kinds=commit&collections=app.bsky.feed.post",
            ),
            (
                v2_url("wss://h", Some(42), Some(1_612_007_021)),
                "wss://h/xrpc/network.bsky.jetstream.subscribeEvents?kinds=commit&collections=app.bsky.feed.post&cursor=42&zstdDictionary=1612007021",
            ),
            (
                v1_url(
                    "wss://h/xrpc/network.bsky.jetstream.subscribeEvents",
                    None,
                    false,
                ),
                "wss://h/subscribe?wantedCollections=app.bsky.feed.post",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }
}
