//! A URL that may hold secrets (a user and password, an `access_token`
//! in its query), and how it is shown: masked, in every log line and
//! error, and in the state ([`MaskedUrl`]). At the bottom of the layers,
//! so the connection events in [`crate::events`] can take one as well as
//! the sources that make them.

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
/// remembering to. It is not serialized: what a record keeps of it is its
/// [`MaskedUrl`] (the state's Jetstream cursor held the URL whole).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceUrl {
    url: Arc<str>,
    /// Made once with the URL: every log line prints it, and the pipeline
    /// compares it at every numbered frame.
    masked: MaskedUrl,
}

impl SourceUrl {
    /// The URL as configured, secrets included: for a connection or a
    /// request, or a comparison, never for a log line or a message.
    pub fn secret(&self) -> &str {
        &self.url
    }

    /// The URL as shown, which is what names its host in a saved record.
    pub fn masked(&self) -> &MaskedUrl {
        &self.masked
    }
}

impl From<String> for SourceUrl {
    fn from(url: String) -> Self {
        SourceUrl::from(url.as_str())
    }
}

impl From<&str> for SourceUrl {
    fn from(url: &str) -> Self {
        SourceUrl {
            url: url.into(),
            masked: MaskedUrl::of(url),
        }
    }
}

impl From<&Url> for SourceUrl {
    fn from(url: &Url) -> Self {
        SourceUrl::from(url.as_str())
    }
}

impl fmt::Display for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.masked, f)
    }
}

impl fmt::Debug for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceUrl({})", self.masked)
    }
}

/// A source URL as [`shown`], secrets masked: what the state keeps to
/// name the host a Jetstream sequence number came from. The state saved
/// the URL whole (a user and password, a `token=` in the query), and a
/// state directory is copied, attached to bug reports and read with
/// `strings`. A sequence number belongs to the server, not to the
/// credentials it was read with, so two URLs that differ only in their
/// secrets name one host here.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MaskedUrl(Arc<str>);

impl MaskedUrl {
    /// `url` masked ([`shown`]).
    pub fn of(url: &str) -> Self {
        MaskedUrl(shown(url).into())
    }

    /// A text read back from the state: masked again, so that a store
    /// written before masking (the URL whole, secrets and all) names its
    /// host as a new one does, and is rid of the secrets at its next save.
    /// Masking is the same again on a masked URL; a quoted text that is
    /// not a URL is one [`shown`] made already (of a text that was not a
    /// URL either), and is kept as it is, as quoting again would change it.
    fn read_back(text: &str) -> Self {
        if text.starts_with('"') && Url::parse(text).is_err() {
            MaskedUrl(text.into())
        } else {
            MaskedUrl::of(text)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for MaskedUrl {
    fn from(url: &str) -> Self {
        MaskedUrl::of(url)
    }
}

impl fmt::Display for MaskedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MaskedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MaskedUrl({})", self.0)
    }
}

/// As a string, the shape the whole URL was saved in: the store's format
/// is unchanged, and a store written before reads back masked.
impl serde::Serialize for MaskedUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for MaskedUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|text| MaskedUrl::read_back(&text))
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

    /// A [`SourceUrl`] prints masked however it is printed, and is
    /// connected to whole; what a record saves of it is masked.
    #[test]
    fn a_source_url_prints_masked_and_saves_masked() {
        let raw = "ws://u:pw@h.example:9/x?apikey=S3CR3T&cursor=5";
        let url = SourceUrl::from(raw);
        let masked = "ws://***@h.example:9/x?apikey=***&cursor=5";
        assert_eq!(url.to_string(), masked);
        assert_eq!(format!("{url:?}"), format!("SourceUrl({masked})"));
        assert_eq!(url.secret(), raw);
        let json = serde_json::to_string(url.masked()).expect("serializes");
        assert_eq!(json, format!("{masked:?}"));
        let back: MaskedUrl = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(&back, url.masked());
    }

    /// A host saved whole (before masking) reads back as the masked URL
    /// of the same host, and masking again changes nothing: a restart on
    /// an older store still resumes by the host's sequence number.
    #[test]
    fn a_url_saved_whole_reads_back_masked() {
        let cases = [
            "wss://user:pass@jet.example/subscribe?token=abc&wantedCollections=app.bsky.feed.post",
            "wss://jet.example/subscribe?wantedCollections=app.bsky.feed.post",
            "ws://127.0.0.1:9/x?apiKey=k&n=1#frag",
            "ws://a",
            "",
            "wss//mastodon.example/api/v1/streaming?access_token=SeCrEt",
        ];
        for raw in cases {
            let url = SourceUrl::from(raw);
            let saved: MaskedUrl = serde_json::from_str(&format!("{raw:?}")).expect("reads");
            assert_eq!(&saved, url.masked(), "{raw}");
            let again: MaskedUrl =
                serde_json::from_str(&serde_json::to_string(&saved).expect("writes"))
                    .expect("reads");
            assert_eq!(again, saved, "{raw}");
            for secret in ["pass", "abc", "SeCrEt", "frag"] {
                assert!(!saved.as_str().contains(secret), "{raw}: {saved:?}");
            }
        }
    }
}
