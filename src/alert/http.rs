//! The HTTP edge of delivery, written for receivers that are wrong or
//! hostile: redirects are not followed unless a sink opts in (and then
//! only on the same scheme, host and port, re-sending the whole POST);
//! an answer's body is read up to [`MAX_ANSWER_BYTES`] and the rest is
//! never read; connecting and the whole request have timeouts; and a
//! sink's URL is only ever printed or stored as its [`origin`] (scheme,
//! host, port), because webhook URLs carry credentials in their userinfo,
//! their query and any segment of their path (those rules are
//! [`super::url`]'s).

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};

use super::ratelimit;
use super::url::origin;
use crate::wall::Clock;

/// How much of an answer's body is read: enough for an error message or a
/// rate limit's `retry_after`, never a flood.
pub const MAX_ANSWER_BYTES: usize = 4096;
/// Characters of an answer kept in reasons and output.
pub const ANSWER_CHARS: usize = 300;
/// How long an answer's body is read once its status is known: a 2xx is
/// delivered whatever its body does after, and a failure's reason is
/// what arrived by then. A receiver dripping its body made every delivery
/// take the whole `timeout_secs`.
pub const ANSWER_BODY_WAIT: Duration = Duration::from_secs(2);
/// Secrets shorter than this are not looked for in answers (every `1` of
/// an answer would be starred for a header value `1`).
pub const MIN_SECRET_CHARS: usize = 4;
/// Characters of a redacted URL kept in a reason: a redirect's `Location`
/// is the receiver's to make as long as it likes (400 KB went whole into a
/// dead letter's reason, the log and `/api/v1/outbox`).
pub const URL_CHARS: usize = 120;
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
    /// What the sink sends that must never be logged or stored (keys,
    /// the signing secret, header values, tokens of the URL): starred in
    /// the answer's text, which a receiver may have echoed them into.
    pub secrets: Vec<String>,
    /// How the receiver counts the waits it asks for (Discord before API
    /// v8 in milliseconds).
    pub wait_units: ratelimit::Units,
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

/// A URL's [`origin`] cut to [`URL_CHARS`], for a failure's reason (a
/// redirect's `Location` is the receiver's to make, host included).
fn shown(url: &Url) -> String {
    super::format::clip(&origin(url), URL_CHARS)
}

/// Printable text: one line ([`crate::text::one_line`]), at most
/// [`ANSWER_CHARS`] characters.
pub fn printable(bytes: &[u8]) -> String {
    let text = crate::text::one_line(&String::from_utf8_lossy(bytes));
    super::format::clip(text.trim(), ANSWER_CHARS)
}

/// `text` with every one of `secrets` (of at least [`MIN_SECRET_CHARS`])
/// replaced by `***`, the longest first.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut secrets: Vec<&String> = secrets
        .iter()
        .filter(|s| s.chars().count() >= MIN_SECRET_CHARS)
        .collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut text = text.to_owned();
    for secret in secrets {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "***");
        }
    }
    text
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
    // One deadline for every hop: each hop had a timeout of its own, so a
    // receiver redirecting slowly held a sink for six times `timeout_secs`.
    let deadline = tokio::time::Instant::now() + outgoing.timeout;
    for _hop in 0..=MAX_REDIRECTS {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(Failure::Retry {
                reason: format!(
                    "no answer within {:?} (redirects included) from {}",
                    outgoing.timeout,
                    shown(&url)
                ),
                after: None,
            });
        }
        let response = post(client, outgoing, &url, left).await?;
        if response.status().is_redirection() {
            url = redirect_target(&response, &url, outgoing.follow_redirects)?;
            continue;
        }
        return answer(response, clock, outgoing).await;
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
    timeout: Duration,
) -> Result<reqwest::Response, Failure> {
    let mut request = client
        .post(url.clone())
        .timeout(timeout)
        .body(outgoing.body.clone());
    for (name, value) in &outgoing.headers {
        request = request.header(name, value.clone());
    }
    request.send().await.map_err(|e| Failure::Retry {
        reason: format!(
            "cannot reach {}: {}",
            shown(url),
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
                shown(&next)
            ),
        });
    }
    if !same_origin {
        return Err(Failure::Permanent {
            reason: format!(
                "HTTP {status} redirect to another host, {}; only same-host redirects are followed, not delivered",
                shown(&next)
            ),
        });
    }
    Ok(next)
}

/// A final answer: its bounded body read for at most
/// [`ANSWER_BODY_WAIT`], 2xx an [`Answer`] (with the pause its rate limit
/// asks), anything else a [`Failure`]; the sink's secrets starred in its
/// text.
async fn answer(
    mut response: reqwest::Response,
    clock: &dyn Clock,
    outgoing: &Outgoing,
) -> Result<Answer, Failure> {
    let status = response.status();
    let headers = response.headers().clone();
    let (bytes, whole) =
        crate::http_client::read_bounded_for(&mut response, MAX_ANSWER_BYTES, ANSWER_BODY_WAIT)
            .await;
    drop(response);
    if !whole {
        tracing::debug!(
            status = status.as_u16(),
            read = bytes.len(),
            "the answer's body did not arrive in time; taken as it is"
        );
    }
    let text = printable(scrub(&String::from_utf8_lossy(&bytes), &outgoing.secrets).as_bytes());
    let now = clock.now_utc();
    if status.is_success() {
        return Ok(Answer {
            status: status.as_u16(),
            text,
            pause: ratelimit::pause_after_success(&headers, now),
        });
    }
    let asked = || ratelimit::retry_after(&headers, &bytes, outgoing.wait_units, now);
    Err(classify(status, asked, text))
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
/// receiver `asked`, see [`ratelimit::retry_after`]); other 4xx are final.
fn classify(status: StatusCode, asked: impl FnOnce() -> Option<Duration>, text: String) -> Failure {
    let reason = if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    };
    if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
        Failure::Retry {
            reason,
            after: asked(),
        }
    } else {
        Failure::Permanent { reason }
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
