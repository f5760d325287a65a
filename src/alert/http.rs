//! The HTTP edge of delivery, written for receivers that are wrong or
//! hostile: redirects are not followed unless a sink opts in (and then
//! only on the same scheme, host and port, re-sending the whole POST);
//! an answer's body is read up to [`MAX_ANSWER_BYTES`] and the rest is
//! never read; connecting and the whole request have timeouts; and a URL
//! is only ever printed or stored through [`redact`], because webhook URLs
//! carry credentials (userinfo, query tokens, token path segments).

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};

use super::ratelimit;
use crate::wall::Clock;

/// How much of an answer's body is read: enough for an error message or a
/// rate limit's `retry_after`, never a flood.
pub const MAX_ANSWER_BYTES: usize = 4096;
/// Characters of an answer kept in reasons and output.
pub const ANSWER_CHARS: usize = 300;
/// Redirects followed at most, when following is on.
pub const MAX_REDIRECTS: usize = 5;

/// One request to make: where, what, and extra headers (values of
/// secrets are marked sensitive and never printed), with the sink's
/// timeout and redirect rule.
#[derive(Clone)]
pub struct Outgoing {
    pub url: Url,
    pub body: Vec<u8>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The whole request, answer included.
    pub timeout: Duration,
    /// Follow same-origin redirects, re-sending the whole POST.
    pub follow_redirects: bool,
}

/// How one request went, when the receiver answered 2xx.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    /// The start of the body, printable (control characters dropped).
    pub text: String,
    /// Wait this long before the next request (the receiver's rate limit
    /// says its budget is used up).
    pub pause: Option<Duration>,
}

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Permanent {
        reason: String,
    },
}

impl Failure {
    pub fn reason(&self) -> &str {
        match self {
            Failure::Retry { reason, .. } | Failure::Permanent { reason } => reason,
        }
    }
}

/// A client that follows no redirects itself (we decide, see [`send`]).
pub fn client(connect_timeout: Duration) -> Result<reqwest::Client, super::deliver::DeliveryError> {
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured((*crate::tls::client_config()?).clone())
        .user_agent(concat!("outagewatch/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .build()?)
}

/// Whether a sink may post to `url`: it parses, is http(s), and names a
/// host. The one check of a sink's URL (the configuration's and
/// delivery's).
pub fn is_http_url(url: &str) -> bool {
    Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// A path segment that looks like a token (Slack's and Discord's webhook
/// URLs carry theirs in the path): 20+ characters of `[A-Za-z0-9_-]`, or
/// 12+ mixing letters and digits.
fn token_like(segment: &str) -> bool {
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

/// Printable text: one line ([`crate::text::one_line`]), at most
/// [`ANSWER_CHARS`] characters.
pub fn printable(bytes: &[u8]) -> String {
    let text = crate::text::one_line(&String::from_utf8_lossy(bytes));
    super::format::clip(text.trim(), ANSWER_CHARS)
}

/// One POST, following redirects only if the sink says so and only on
/// the same origin. `Ok` on 2xx; anything else is a [`Failure`] whose
/// reason names the status, the start of the answer, and for a redirect
/// its (redacted) `Location`. `clock` is the sink's wall clock, against
/// which the receiver's rate-limit times (`Retry-After` dates,
/// `X-RateLimit-Reset`) are read.
pub async fn send(
    client: &reqwest::Client,
    outgoing: &Outgoing,
    clock: &dyn Clock,
) -> Result<Answer, Failure> {
    let mut url = outgoing.url.clone();
    for _hop in 0..=MAX_REDIRECTS {
        let response = post(client, outgoing, &url).await?;
        if response.status().is_redirection() {
            url = redirect_target(&response, &url, outgoing.follow_redirects)?;
            continue;
        }
        return answer(response, clock).await;
    }
    Err(Failure::Permanent {
        reason: format!("more than {MAX_REDIRECTS} redirects; not delivered"),
    })
}

/// The request itself, to `url`: unreachable and timed out are retried.
async fn post(
    client: &reqwest::Client,
    outgoing: &Outgoing,
    url: &Url,
) -> Result<reqwest::Response, Failure> {
    let mut request = client
        .post(url.clone())
        .timeout(outgoing.timeout)
        .body(outgoing.body.clone());
    for (name, value) in &outgoing.headers {
        request = request.header(name, value.clone());
    }
    request.send().await.map_err(|e| Failure::Retry {
        reason: format!(
            "cannot reach {}: {}",
            redact_url(url),
            describe_chain(e, outgoing.timeout)
        ),
        after: None,
    })
}

/// Where a redirect from `url` leads, if it may be followed: only when
/// `follow` is on and only to the same scheme, host and port. A redirect
/// not followed is final.
fn redirect_target(response: &reqwest::Response, url: &Url, follow: bool) -> Result<Url, Failure> {
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| url.join(v).ok());
    let Some(next) = location else {
        return Err(Failure::Permanent {
            reason: format!("HTTP {status} redirect without a usable Location; not delivered"),
        });
    };
    let same_origin = next.origin() == url.origin();
    if !follow {
        return Err(Failure::Permanent {
            reason: format!(
                "HTTP {status} redirect to {}; redirects are not followed (set follow_redirects = true for same-host redirects), not delivered",
                redact_url(&next)
            ),
        });
    }
    if !same_origin {
        return Err(Failure::Permanent {
            reason: format!(
                "HTTP {status} redirect to another host, {}; only same-host redirects are followed, not delivered",
                redact_url(&next)
            ),
        });
    }
    Ok(next)
}

/// A final answer: its bounded body read, 2xx an [`Answer`] (with the
/// pause its rate limit asks), anything else a [`Failure`].
async fn answer(mut response: reqwest::Response, clock: &dyn Clock) -> Result<Answer, Failure> {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = crate::http_client::read_bounded(&mut response, MAX_ANSWER_BYTES).await;
    drop(response);
    let text = printable(&bytes);
    let now = clock.now_utc();
    if status.is_success() {
        return Ok(Answer {
            status: status.as_u16(),
            text,
            pause: ratelimit::pause_after_success(&headers, now),
        });
    }
    Err(classify(status, &headers, &bytes, text, now))
}

/// An error from reqwest with its causes, without the URL it would print.
fn describe_chain(error: reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("timed out after {timeout:?}");
    }
    let error = error.without_url();
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    super::format::clip(&text, 300)
}

/// A non-2xx answer: 408, 429 and 5xx are retried (after what the
/// receiver asked, see [`ratelimit::retry_after`]); other 4xx are final.
fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    text: String,
    now: chrono::DateTime<chrono::Utc>,
) -> Failure {
    let reason = if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    };
    if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
        Failure::Retry {
            reason,
            after: ratelimit::retry_after(headers, body, now),
        }
    } else {
        Failure::Permanent { reason }
    }
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

    #[test]
    fn printable_drops_control_characters_and_bounds_length() {
        assert_eq!(printable(b"bad\x1b[31m request\n"), "bad[31m request");
        assert_eq!(printable(&[b'x'; 5000]).chars().count(), ANSWER_CHARS);
    }
}
