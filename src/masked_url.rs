//! A URL that may hold secrets (a user and password, an `access_token`
//! in its query), and how it is shown: masked, in every log line and
//! error. At the bottom of the layers, so the connection events in
//! [`crate::events`] can take one as well as the sources that make them.

use std::fmt;
use std::sync::Arc;

use reqwest::Url;

/// A source URL as a log line or an error shows it: as written but for
/// what may be a secret, a user and password (`***@`) and the values of
/// query keys that name one (`access_token=***`; a cursor or a collection
/// stays readable). A text that does not parse shows only what comes
/// before any `?` or `#`, a user cut out as well. `record` and `run`
/// logged a Mastodon URL's `access_token` whole at every connection.
pub fn shown(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        let head = url.split(['?', '#']).next().unwrap_or_default();
        return match head.rsplit_once('@') {
            Some((_, host)) => format!("{:?}", format!("***@{host}")),
            None => format!("{head:?}"),
        };
    };
    let user = !parsed.username().is_empty() || parsed.password().is_some();
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let value = if secret_key(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    if parsed.fragment().is_some() {
        parsed.set_fragment(Some("***"));
    }
    let text = parsed.to_string();
    match (user, text.split_once("://")) {
        (true, Some((scheme, rest))) => format!("{scheme}://***@{rest}"),
        _ => text,
    }
}

/// A source URL as configured, secrets and all (a Mastodon
/// `access_token`, a user and password), shown only masked: `{}`, `{:?}`,
/// a log field or an error's message print [`shown`]'s text, and the URL
/// itself is had only by asking for it, [`SourceUrl::secret`], to connect
/// with. The reconnection lines, the start-up line and the dictionary
/// fetch's warning each logged the raw text of a URL passed as a `&str`;
/// with this type a line that names the URL masks it without anyone
/// remembering to.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceUrl(Arc<str>);

impl SourceUrl {
    /// The URL as configured, secrets included: for a connection or a
    /// request, or a comparison, never for a log line or a message.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl From<String> for SourceUrl {
    fn from(url: String) -> Self {
        SourceUrl(url.into())
    }
}

impl From<&str> for SourceUrl {
    fn from(url: &str) -> Self {
        SourceUrl(url.into())
    }
}

impl From<&Url> for SourceUrl {
    fn from(url: &Url) -> Self {
        SourceUrl(url.as_str().into())
    }
}

impl fmt::Display for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shown(&self.0))
    }
}

impl fmt::Debug for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceUrl({})", shown(&self.0))
    }
}

/// Whole, as a string: the state saves the host a Jetstream sequence
/// number came from, and only the exact URL names it again after a
/// restart. The state is not a log.
impl serde::Serialize for SourceUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SourceUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SourceUrl::from)
    }
}

/// Whether a query key names a secret (`access_token`, `api_key`,
/// `auth`, `password`, `sig`, …).
fn secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "token", "key", "secret", "auth", "pass", "sig", "session", "cred",
    ]
    .iter()
    .any(|word| key.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_url_hides_its_secrets_only() {
        let cases = [
            (
                "wss://m.example/api/v1/streaming?stream=public&access_token=QUERYSECRET123",
                "wss://m.example/api/v1/streaming?stream=public&access_token=***",
            ),
            (
                "wss://jetstream2.us-east.bsky.network/subscribe?wantedCollections=app.bsky.feed.post&cursor=1725000000000000",
                "wss://jetstream2.us-east.bsky.network/subscribe?wantedCollections=app.bsky.feed.post&cursor=1725000000000000",
            ),
            ("wss://user:pw@r.example/a", "wss://***@r.example/a"),
            ("wss://r.example/#secret", "wss://r.example/#***"),
            (
                "ws://127.0.0.1:9/x?apiKey=k&n=1",
                "ws://127.0.0.1:9/x?apiKey=***&n=1",
            ),
            (
                "wss//mastodon.example/api/v1/streaming?access_token=SeCrEt",
                "\"wss//mastodon.example/api/v1/streaming\"",
            ),
            (
                "http://user:pw@mastodon.example:abc/?access_token=x",
                "\"***@mastodon.example:abc/\"",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(shown(url), want, "{url}");
        }
    }

    /// A [`SourceUrl`] prints masked however it is printed, and is saved
    /// (serialized) and connected to whole.
    #[test]
    fn a_source_url_prints_masked_and_saves_whole() {
        let raw = "ws://u:pw@h.example:9/x?apikey=S3CR3T&cursor=5";
        let url = SourceUrl::from(raw);
        let masked = "ws://***@h.example:9/x?apikey=***&cursor=5";
        assert_eq!(url.to_string(), masked);
        assert_eq!(format!("{url:?}"), format!("SourceUrl({masked})"));
        assert_eq!(url.secret(), raw);
        let json = serde_json::to_string(&url).expect("serializes");
        assert_eq!(json, format!("{raw:?}"));
        let back: SourceUrl = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, url);
    }
}
