//! A sink's URL: whether delivery may post to it, and how it is shown.
//! Webhook URLs carry credentials in their userinfo, their query and any
//! segment of their path, so outside the request itself a URL is only
//! ever its [`origin`] (scheme, host, port) or [`redact`]ed. Apart from
//! the request and its answer ([`super::http`]): the configuration and
//! the command line check and print URLs with these too.

use reqwest::Url;

/// Whether a sink may post to `url`: it parses, is http(s), and names a
/// host. The one check of a sink's URL (the configuration's and
/// delivery's).
pub fn is_http_url(url: &str) -> bool {
    crate::source::url::host_written(url)
        && Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// Why `value` is not a URL a sink may post to, showing only its host
/// (`missing http:// or https://? (host "hooks.example.com")`), or `None`
/// when it is one. The one message of a bad sink URL: the `--webhook`
/// flag's, the configuration's and delivery's.
pub fn not_http_url(value: &str) -> Option<String> {
    if is_http_url(value) {
        return None;
    }
    let host_of = |url: &str| crate::source::url::host_and_port(url).unwrap_or_default();
    // What comes before a `://` is echoed by no message: without a scheme
    // of its own (`hooks.example.com/T0/secret?next=https://…`) it is the
    // path and query, the secret part.
    let scheme = value
        .split_once("://")
        .map(|(scheme, _)| scheme)
        .filter(|s| {
            s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        });
    if scheme.is_none() {
        return Some(format!(
            "missing http:// or https://? (host {:?})",
            host_of(&format!("http://{value}"))
        ));
    }
    let host = if crate::source::url::host_written(value) {
        host_of(value)
    } else {
        String::new()
    };
    Some(if host.is_empty() {
        "the URL has no host".into()
    } else {
        format!("the URL's scheme is not http:// or https:// (host {host:?})")
    })
}

/// Where a sink posts, as its logs, failure reasons and dead letters show
/// it: scheme, host and port (`https://hooks.example.com`), never the
/// path or query. A hook's secret may be any segment of its path: a
/// guess at which segments look like tokens left a Zapier hook's
/// `/hooks/catch/123456/abcdef1/` whole, and Slack's `T…/B…` beside the
/// starred one. A URL that names no host shows as `<no host>`.
pub fn origin(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        (None, _) => "<no host>".into(),
    }
}

/// [`origin`] of a URL as written; `<not a valid URL>` when it does not
/// parse.
pub fn origin_of(url: &str) -> String {
    Url::parse(url).map_or_else(|_| "<not a valid URL>".into(), |u| origin(&u))
}

/// A path segment that looks like a token (Slack's and Discord's webhook
/// URLs carry theirs in the path): 20+ characters of `[A-Za-z0-9_-]`, or
/// 12+ mixing letters and digits.
pub(crate) fn token_like(segment: &str) -> bool {
    let word = segment
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let letters = segment.chars().any(|c| c.is_ascii_alphabetic());
    let digits = segment.chars().any(|c| c.is_ascii_digit());
    word && (segment.len() >= 20 || segment.len() >= 12 && letters && digits)
}

/// A URL safe to print: userinfo, query values, fragment and token-like
/// path segments become `***`. What does not parse is not shown at all.
pub fn redact(url: &str) -> String {
    let Ok(parsed) = Url::parse(url) else {
        return "<not a valid URL>".into();
    };
    redact_url(&parsed)
}

pub fn redact_url(url: &Url) -> String {
    let mut out = format!("{}://", url.scheme());
    if !url.username().is_empty() || url.password().is_some() {
        out.push_str("***@");
    }
    out.push_str(url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    let path: Vec<&str> = url
        .path()
        .split('/')
        .map(|s| if token_like(s) { "***" } else { s })
        .collect();
    out.push_str(&path.join("/"));
    if url.query().is_some() {
        let pairs: Vec<String> = url
            .query_pairs()
            .map(|(k, _)| {
                let k: String = k
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || "_-.".contains(*c))
                    .take(40)
                    .collect();
                format!("{k}=***")
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_credentials_and_tokens() {
        let cases = [
            (
                "https://user:pass@hooks.example.com/hook?token=abc&x=1",
                "https://***@hooks.example.com/hook?token=***&x=***",
            ),
            (
                "https://hooks.slack.com/services/T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "https://hooks.slack.com/services/T0000000/B0000000/***",
            ),
            (
                "https://discord.com/api/webhooks/1234567890123/abcDEF_ghi-jklMNOpqrSTUvwxYZ0123456789",
                "https://discord.com/api/webhooks/1234567890123/***",
            ),
            ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"),
            ("http://[::1]:9/a#frag", "http://[::1]:9/a"),
            ("not a url with s3cret", "<not a valid URL>"),
        ];
        for (url, want) in cases {
            assert_eq!(redact(url), want, "{url}");
        }
    }

    /// A sink's URL shows as scheme, host and port: never a path segment,
    /// token-like or not, nor the query or the user.
    #[test]
    fn a_sink_url_shows_only_its_origin() {
        let cases = [
            (
                "https://hooks.zapier.com/hooks/catch/123456/abcdef1/",
                "https://hooks.zapier.com",
            ),
            (
                "https://u:pw@hooks.slack.com/services/T000/B000/XXXX?token=abc",
                "https://hooks.slack.com",
            ),
            (
                "http://127.0.0.1:9/T000/B000/XXXXSECRET",
                "http://127.0.0.1:9",
            ),
            ("http://[::1]:8080/a#frag", "http://[::1]:8080"),
            ("https://h.example:443/x", "https://h.example"),
            ("not a url with s3cret", "<not a valid URL>"),
        ];
        for (url, want) in cases {
            assert_eq!(origin_of(url), want, "{url}");
        }
    }
}
