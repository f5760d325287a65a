//! The HTTP edge of delivery, written for receivers that are wrong or
//! hostile: redirects are not followed unless a sink opts in (and then
//! only on the same scheme, host and port, re-sending the whole POST);
//! an answer's body is read up to [`MAX_ANSWER_BYTES`] and the rest is
//! never read; connecting and the whole request have timeouts; and a
//! sink's URL is only ever printed or stored as its [`origin`] (scheme,
//! host, port), because webhook URLs carry credentials in their userinfo,
//! their query and any segment of their path.

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};

use super::ratelimit;
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

    /// A redirect's `Location` of 100 KB, not followed, to another host,
    /// or followed past the limit: the reason keeps the advice and at most
    /// [`ANSWER_CHARS`] characters (the whole redacted URL went into it),
    /// and names the `Location`'s origin, none of its path.
    #[tokio::test]
    async fn a_redirect_s_long_location_is_cut_in_the_reason() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let long_path = "a.b/".repeat(25_000);
        let redirect = move |uri: axum::http::Uri| {
            let path = long_path.clone();
            async move {
                let host = if uri.path().starts_with("/away") {
                    "other.example".to_owned()
                } else {
                    addr.to_string()
                };
                let location = format!("http://{host}/{path}");
                (
                    axum::http::StatusCode::PERMANENT_REDIRECT,
                    [(axum::http::header::LOCATION, location)],
                )
            }
        };
        let app = axum::Router::new().fallback(redirect);
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let clock = crate::wall::system();
        let alert = format::sample_alert();
        let client = client(Duration::from_secs(5)).expect("client");
        let here = format!("http://{addr};");
        for (path, follow, says, to) in [
            ("hook", false, "redirects are not followed", here.as_str()),
            (
                "away",
                true,
                "only same-host redirects are followed",
                "http://other.example;",
            ),
        ] {
            let mut hook = hook(format!("http://{addr}/{path}"), Format::Json);
            hook.follow_redirects = follow;
            let outgoing = webhook::request(&hook, &alert, None, clock.as_ref()).expect("request");
            let failure = send(&client, &outgoing, clock.as_ref())
                .await
                .expect_err("not delivered");
            let reason = failure.reason();
            assert!(reason.chars().count() <= ANSWER_CHARS, "{reason}");
            assert!(reason.contains(says), "{reason}");
            assert!(reason.contains(to), "the Location's origin: {reason}");
            assert!(!reason.contains("a.b/"), "no path: {reason}");
        }
        server.abort();
    }

    /// `timeout_secs` bounds the whole request, redirects included: a
    /// receiver redirecting to itself after 300 ms, under a 700 ms
    /// timeout, was followed through all six hops (each had the whole
    /// timeout of its own) and failed only as "more than 5 redirects".
    #[tokio::test]
    async fn the_timeout_covers_every_redirect_together() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let slow_redirect = move || async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, format!("http://{addr}/hook"))],
            )
        };
        let app = axum::Router::new().fallback(slow_redirect);
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let clock = crate::wall::system();
        let alert = format::sample_alert();
        let client = client(Duration::from_secs(5)).expect("client");
        let mut hook = hook(format!("http://{addr}/hook"), Format::Json);
        hook.follow_redirects = true;
        hook.timeout = Duration::from_millis(700);
        let outgoing = webhook::request(&hook, &alert, None, clock.as_ref()).expect("request");
        let failure = send(&client, &outgoing, clock.as_ref())
            .await
            .expect_err("not delivered");
        let reason = failure.reason();
        assert!(!reason.contains("redirects;"), "{reason}");
        assert!(matches!(failure, Failure::Retry { .. }), "{reason}");
        server.abort();
    }

    #[test]
    fn printable_drops_control_characters_and_bounds_length() {
        assert_eq!(printable(b"bad\x1b[31m request\n"), "bad[31m request");
        assert_eq!(printable(&[b'x'; 5000]).chars().count(), ANSWER_CHARS);
    }

    use super::super::format::{self, Format};
    use super::super::webhook::{self, Webhook};

    /// A webhook of `format` to `url`, with a ten-minute timeout.
    fn hook(url: String, format: Format) -> Webhook {
        Webhook {
            timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(600),
            ..Webhook::plain(url, format)
        }
    }

    /// A receiver that answers `head` and the start of a body longer than
    /// it says, then holds the connection: a body that never ends.
    async fn dripping(head: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 8192];
                let _ = socket.read(&mut request).await;
                let answer = format!("{head}\r\ncontent-length: 1000\r\n\r\nbusy right now");
                let _ = socket.write_all(answer.as_bytes()).await;
                held.push(socket);
            }
        });
        url
    }

    /// A 2xx whose body never ends is delivered once the body has had
    /// [`ANSWER_BODY_WAIT`], and a 503's reason is what arrived by then:
    /// both waited out the whole ten-minute request timeout.
    #[tokio::test(start_paused = true)]
    async fn a_dripping_body_does_not_hold_a_delivery_for_the_timeout() {
        let clock = crate::wall::TokioClock::starting_at(1_800_000_000_000_000);
        let alert = format::sample_alert();
        let client = client(Duration::from_secs(600)).expect("client");
        for (head, delivered) in [("HTTP/1.1 200 OK", true), ("HTTP/1.1 503 Busy", false)] {
            let url = dripping(head).await;
            let outgoing =
                webhook::request(&hook(url, Format::Json), &alert, None, &clock).expect("request");
            let start = tokio::time::Instant::now();
            let sent = send(&client, &outgoing, &clock).await;
            let took = start.elapsed();
            assert!(took < Duration::from_secs(5), "{head}: took {took:?}");
            match sent {
                Ok(answer) => assert!(delivered, "{answer:?}"),
                Err(failure) => {
                    assert!(!delivered, "{head}: {failure:?}");
                    assert!(failure.reason().contains("busy right now"), "{failure:?}");
                }
            }
        }
    }

    /// A receiver that echoes what it got (the PagerDuty routing key from
    /// the body, the headers, the URL's query) into a refusal: the reason,
    /// which is logged and stored with a dead letter, shows `***` where
    /// every secret was.
    #[tokio::test]
    async fn secrets_echoed_by_a_receiver_are_starred() {
        use axum::http::{HeaderMap, StatusCode, Uri};
        let echo = |uri: Uri, headers: HeaderMap, body: String| async move {
            let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let header = |n: &str| {
                let value = headers.get(n).and_then(|v| v.to_str().ok());
                value.unwrap_or_default().to_owned()
            };
            let echoed = format!(
                "bad request: routing_key={} auth={} custom={} signature={} uri={uri}",
                body["routing_key"].as_str().unwrap_or_default(),
                header("authorization"),
                header("x-custom"),
                header(super::super::sign::SIGNATURE_HEADER),
            );
            (StatusCode::BAD_REQUEST, echoed)
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().fallback(echo);
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let secrets = [
            "R0utingKey0123456789abcdef",
            "bearer-t0ken-value",
            "custom-value-9",
            "qu3ry-token-value",
        ];
        let mut pagerduty = hook(
            format!("http://{addr}/enqueue?token={}", secrets[3]),
            Format::Pagerduty,
        );
        pagerduty.key = Some(secrets[0].into());
        pagerduty.secret = Some("signing-secret".into());
        pagerduty.headers = vec![
            ("Authorization".into(), format!("Bearer {}", secrets[1])),
            ("X-Custom".into(), secrets[2].into()),
        ];
        let clock = crate::wall::system();
        let alert = format::sample_alert();
        let outgoing = webhook::request(&pagerduty, &alert, None, clock.as_ref()).expect("request");
        let client = client(Duration::from_secs(5)).expect("client");
        let failure = send(&client, &outgoing, clock.as_ref())
            .await
            .expect_err("refused");
        let reason = failure.reason();
        assert!(reason.starts_with("HTTP 400"), "{reason}");
        assert!(reason.contains("routing_key=*** "), "{reason}");
        assert!(reason.contains("signature=*** "), "{reason}");
        for secret in secrets {
            assert!(!reason.contains(secret), "{secret} in {reason}");
        }
        server.abort();
    }
}
