//! A webhook sink's settings and the request it makes for an alert in its
//! format: which URL, which body, which headers.

use std::time::Duration;

use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;

use super::format::{self, Format};
use super::http::{Failure, Outgoing};
use super::paging::{self, OpsgenieCall};
use super::ratelimit::Units;
use super::url::{origin, origin_of};
use super::{Alert, sign};
use crate::wall::Clock;

/// Where and how a webhook sink posts. Secrets (`secret`, `key`, header
/// values) never appear in its `Debug` form, logs or stored reasons.
#[derive(Clone, PartialEq)]
pub struct Webhook {
    pub url: String,
    pub format: Format,
    /// Signs every request when set (see [`sign`]).
    pub secret: Option<String>,
    /// The whole request, answer included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Extra headers (`headers = { Authorization = "${VAR}" }`).
    pub headers: Vec<(String, String)>,
    /// PagerDuty's routing key, or Opsgenie's API key.
    pub key: Option<String>,
    /// Follow same-host redirects, re-sending the whole POST.
    pub follow_redirects: bool,
    /// Alertmanager: re-post open alerts this often.
    pub repeat: Duration,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Webhook")
            .field("url", &origin_of(&self.url))
            .field("format", &self.format)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("headers", &names)
            .field("key", &self.key.as_ref().map(|_| "***"))
            .field("follow_redirects", &self.follow_redirects)
            .field("repeat", &self.repeat)
            .finish()
    }
}

impl Webhook {
    /// The whole request's timeout when a sink sets none (`timeout_secs`).
    pub const TIMEOUT: Duration = Duration::from_secs(10);
    /// Connecting's timeout when a sink sets none (`connect_timeout_secs`).
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Alertmanager's re-post period when a sink sets none (`repeat_secs`).
    pub const REPEAT: Duration = Duration::from_secs(60);

    /// How long Alertmanager should keep a firing alert without hearing
    /// from us again: four re-posts' worth.
    pub fn alertmanager_ttl(&self) -> Duration {
        self.repeat.saturating_mul(4)
    }

    /// A sink's webhook as the configuration makes one with nothing but
    /// `url` and `format` set: the defaults, no secret, key or headers.
    #[cfg(test)]
    pub(crate) fn plain(url: impl Into<String>, format: Format) -> Self {
        Webhook {
            url: url.into(),
            format,
            secret: None,
            timeout: Webhook::TIMEOUT,
            connect_timeout: Webhook::CONNECT_TIMEOUT,
            headers: Vec::new(),
            key: None,
            follow_redirects: false,
            repeat: Webhook::REPEAT,
        }
    }
}

fn permanent(reason: String) -> Failure {
    Failure::Permanent { reason }
}

fn sensitive(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), Failure> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| permanent(format!("header name {name:?} is not valid")))?;
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| permanent(format!("the value of header {name} is not valid")))?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// Appends path segments to a base URL (percent-encoding them).
fn under(base: &Url, segments: &[&str]) -> Result<Url, Failure> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|_| permanent(format!("{} cannot take a path", origin(base))))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// The Alertmanager alerts endpoint under the configured URL (the base,
/// or the endpoint itself).
fn alertmanager_url(base: &Url) -> Result<Url, Failure> {
    if base
        .path()
        .trim_end_matches('/')
        .ends_with("/api/v2/alerts")
    {
        Ok(base.clone())
    } else {
        under(base, &["api", "v2", "alerts"])
    }
}

/// The request for `alert`. For `alertmanager`, `alertmanager_alerts` are
/// the alerts to post (built by the sink, which knows what is open).
/// `clock` is the sink's wall clock: the signature's timestamp and
/// Alertmanager's `endsAt` are read from it.
pub fn request(
    hook: &Webhook,
    alert: &Alert,
    alertmanager_alerts: Option<Vec<Value>>,
    clock: &dyn Clock,
) -> Result<Outgoing, Failure> {
    let base =
        Url::parse(&hook.url).map_err(|_| permanent("the sink's URL is not a valid URL".into()))?;
    let now = clock.now_utc();
    let Formatted {
        url,
        body,
        mut headers,
    } = formatted(hook, alert, base, alertmanager_alerts, now)?;
    headers.extend(standard_headers(hook, alert, &body, now)?);
    let url = custom_headers(hook, url, &mut headers)?;
    let secrets = secrets(hook, &url, &headers);
    Ok(Outgoing {
        wait_units: Units::of(hook.format, &url),
        url,
        body,
        headers,
        timeout: hook.timeout,
        follow_redirects: hook.follow_redirects,
        secrets,
    })
}

/// What of a request must never reach a log or a dead letter, should the
/// receiver echo it: the key (PagerDuty's travels in the body), the
/// signing secret, the values of sensitive headers, and the URL's
/// credentials, query values and path (whole and each segment).
fn secrets(hook: &Webhook, url: &Url, headers: &[(HeaderName, HeaderValue)]) -> Vec<String> {
    let mut secrets: Vec<String> = [&hook.key, &hook.secret]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    for (_, value) in &hook.headers {
        secrets.push(value.clone());
        // The credential after an auth scheme (`Bearer T`, `GenieKey T`):
        // a receiver that quotes only the token leaked it.
        if let Some((_, credential)) = value.trim().split_once(' ') {
            secrets.push(credential.trim().to_owned());
        }
    }
    let sensitive = headers.iter().filter(|(_, v)| v.is_sensitive());
    secrets.extend(sensitive.filter_map(|(_, v)| v.to_str().ok().map(str::to_owned)));
    let base = Url::parse(&hook.url).ok();
    for url in std::iter::once(url).chain(base.as_ref()) {
        secrets.push(url.username().to_owned());
        secrets.extend(url.password().map(str::to_owned));
        // reqwest sends the userinfo as `Authorization: Basic` of its
        // base64, which a receiver quoting the header leaked, and a
        // percent-encoded part may be echoed decoded.
        if !url.username().is_empty() || url.password().is_some() {
            let decode = |part: &str| {
                percent_encoding::percent_decode_str(part)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let (user, password) = (
                decode(url.username()),
                decode(url.password().unwrap_or_default()),
            );
            use base64::Engine as _;
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            secrets.extend([user, password, basic]);
        }
        if let Some(query) = url.query() {
            secrets.extend(
                query
                    .split('&')
                    .filter_map(|p| p.split_once('='))
                    .map(|(_, v)| v.to_owned()),
            );
            secrets.extend(url.query_pairs().map(|(_, v)| v.into_owned()));
        }
        // A hook's secret may be any segment of its path, not only one
        // that looks like a token (see [`super::url::origin`]): a receiver's
        // error page quoting the path (`Cannot POST /hooks/catch/123456/
        // abcdef1/`) put Zapier's whole in the reason. Every segment is
        // starred, raw and decoded (short ones are not looked for, see
        // [`super::http::scrub`]), and a word like `hooks` with them.
        if url.path() != "/" {
            secrets.push(url.path().to_owned());
        }
        for segment in url.path_segments().into_iter().flatten() {
            secrets.push(segment.to_owned());
            let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            secrets.push(decoded.into_owned());
        }
    }
    secrets.retain(|s| !s.is_empty());
    secrets.sort();
    secrets.dedup();
    secrets
}

/// An Alertmanager sink's re-post of its open `alerts` (`first` the
/// first of them), with an `Idempotency-Key` of its own,
/// `ID:SEQUENCE:repost:UNIX_MS` (the first alert's, and the sink's clock
/// in milliseconds): with the key of `first`'s delivery, a receiver that
/// drops duplicates by key dropped every re-post, and Alertmanager
/// resolved the alerts at their `endsAt`.
pub fn repost(
    hook: &Webhook,
    first: &Alert,
    alerts: Vec<Value>,
    clock: &dyn Clock,
) -> Result<Outgoing, Failure> {
    let mut outgoing = request(hook, first, Some(alerts), clock)?;
    let key = repost_key(first, clock.now_utc());
    let key = HeaderValue::from_str(&key)
        .map_err(|_| permanent("the alert id cannot be a header".into()))?;
    for (name, value) in &mut outgoing.headers {
        if name.as_str() == "idempotency-key" {
            *value = key.clone();
        }
    }
    Ok(outgoing)
}

fn repost_key(first: &Alert, now: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{}:{}:repost:{}",
        first.id,
        first.sequence,
        now.timestamp_millis()
    )
}

/// What the sink's format makes of an alert: where it goes, its body,
/// and the format's own headers.
struct Formatted {
    url: Url,
    body: Vec<u8>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

fn encode(v: &Value) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec(v).map_err(|e| permanent(format!("cannot encode the alert: {e}")))
}

/// The URL, body and headers of `alert` in the hook's format.
fn formatted(
    hook: &Webhook,
    alert: &Alert,
    base: Url,
    alertmanager_alerts: Option<Vec<Value>>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Formatted, Failure> {
    let plain = |url: Url, body: Vec<u8>| Formatted {
        url,
        body,
        headers: Vec::new(),
    };
    Ok(match hook.format {
        Format::Json | Format::Slack | Format::Discord => plain(
            base,
            format::body(alert, hook.format)
                .map_err(|e| permanent(format!("cannot encode the alert: {e}")))?,
        ),
        Format::Pagerduty => plain(base, encode(&paging::pagerduty(alert, key(hook)?))?),
        Format::Opsgenie => opsgenie(hook, alert, &base)?,
        Format::Alertmanager => {
            let alerts = alertmanager_alerts.unwrap_or_else(|| {
                let ends = paging::alertmanager_ends_at(alert, hook.alertmanager_ttl(), now);
                vec![paging::alertmanager_alert(alert, &ends)]
            });
            plain(alertmanager_url(&base)?, encode(&Value::Array(alerts))?)
        }
    })
}

/// PagerDuty's routing key or Opsgenie's API key, which the format needs.
fn key(hook: &Webhook) -> Result<&str, Failure> {
    hook.key
        .as_deref()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| permanent(format!("format {} needs a key", hook.format.name())))
}

/// Opsgenie: create, or close by alias, with the key in `Authorization`.
fn opsgenie(hook: &Webhook, alert: &Alert, base: &Url) -> Result<Formatted, Failure> {
    let headers = vec![sensitive(
        "authorization",
        &format!("GenieKey {}", key(hook)?),
    )?];
    let (call, body) = paging::opsgenie(alert);
    let url = match call {
        OpsgenieCall::Create => under(base, &["v2", "alerts"])?,
        OpsgenieCall::Close { alias } => {
            let mut url = under(base, &["v2", "alerts", &alias, "close"])?;
            // Added to the configured query (a tenant, a token), as a
            // create keeps it: replaced, the close was refused.
            url.query_pairs_mut().append_pair("identifierType", "alias");
            url
        }
    };
    Ok(Formatted {
        url,
        body: encode(&body)?,
        headers,
    })
}

/// Every request's headers: the content type, the idempotency key (the
/// same on every retry), and the signature when the sink has a secret.
fn standard_headers(
    hook: &Webhook,
    alert: &Alert,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(HeaderName, HeaderValue)>, Failure> {
    let mut headers = vec![(
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    let idempotency = HeaderValue::from_str(&format!("{}:{}", alert.id, alert.sequence))
        .map_err(|_| permanent("the alert id cannot be a header".into()))?;
    headers.push((HeaderName::from_static("idempotency-key"), idempotency));
    if let Some(secret) = &hook.secret {
        let timestamp = now.timestamp();
        headers.push((
            HeaderName::from_static(sign::TIMESTAMP_HEADER),
            HeaderValue::from(timestamp),
        ));
        headers.push(sensitive(
            sign::SIGNATURE_HEADER,
            &sign::signature(secret.as_bytes(), timestamp, body),
        )?);
    }
    Ok(headers)
}

/// The sink's own headers, appended; the URL without its userinfo when
/// they set `Authorization`.
fn custom_headers(
    hook: &Webhook,
    mut url: Url,
    headers: &mut Vec<(HeaderName, HeaderValue)>,
) -> Result<Url, Failure> {
    for (name, value) in &hook.headers {
        if name.eq_ignore_ascii_case("authorization") {
            // An explicit Authorization wins over the URL's userinfo
            // (which reqwest would send as Basic auth).
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        let header = sensitive(name, value)?;
        // A configured header replaces a built-in one of its name (a
        // `Content-Type` of their own): both were sent, and a strict
        // receiver refused every alert with a final 400.
        headers.retain(|(built_in, _)| *built_in != header.0);
        headers.push(header);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wall::TokioClock;

    fn header(out: &Outgoing, name: &str) -> String {
        let value = out.headers.iter().find(|(n, _)| n.as_str() == name);
        let value = value.map(|(_, v)| v.to_str().expect("text").to_owned());
        value.unwrap_or_else(|| panic!("no {name} header"))
    }

    /// The signature's timestamp and Alertmanager's `endsAt` are read on
    /// the sink's clock (here 2027-01-15T08:00:00Z), not the system's.
    #[tokio::test(start_paused = true)]
    async fn request_times_come_from_the_sinks_clock() {
        let clock = TokioClock::starting_at(1_800_000_000_000_000);
        let alert = format::sample_alert();
        let hook = Webhook {
            secret: Some("s3cret".into()),
            ..Webhook::plain("https://hooks.example.com/in", Format::Json)
        };
        let signed = request(&hook, &alert, None, &clock).expect("request");
        let timestamp = header(&signed, sign::TIMESTAMP_HEADER);
        assert_eq!(timestamp, "1800000000");
        let signature = header(&signed, sign::SIGNATURE_HEADER);
        assert!(sign::verify(
            b"s3cret",
            &timestamp,
            &signed.body,
            &signature
        ));
        let manager = Webhook {
            format: Format::Alertmanager,
            secret: None,
            ..hook
        };
        let posted = request(&manager, &alert, None, &clock).expect("request");
        let body: Value = serde_json::from_slice(&posted.body).expect("json");
        let ends =
            paging::alertmanager_ends_at(&alert, manager.alertmanager_ttl(), clock.now_utc());
        assert!(ends.starts_with("2027-01-15T08:04:00"), "{ends}");
        assert_eq!(body[0]["endsAt"], Value::String(ends));
    }

    /// A re-post's key is not the key its first alert was delivered
    /// with (a receiver dropping duplicates by key dropped every re-post),
    /// and changes from one re-post to the next.
    #[tokio::test(start_paused = true)]
    async fn a_repost_has_a_key_of_its_own() {
        let clock = TokioClock::starting_at(1_800_000_000_000_000);
        let alert = format::sample_alert();
        let hook = Webhook::plain("https://am.example.com", Format::Alertmanager);
        let delivered = header(
            &request(&hook, &alert, None, &clock).expect("request"),
            "idempotency-key",
        );
        let first = header(
            &repost(&hook, &alert, Vec::new(), &clock).expect("repost"),
            "idempotency-key",
        );
        tokio::time::advance(std::time::Duration::from_secs(60)).await;
        let second = header(
            &repost(&hook, &alert, Vec::new(), &clock).expect("repost"),
            "idempotency-key",
        );
        assert_ne!(first, delivered);
        assert_ne!(first, second);
        assert!(
            first.starts_with(&format!("{delivered}:repost:")),
            "{first}"
        );
    }

    /// Found by review: what a receiver may echo of our credentials is
    /// starred, the Basic header's base64 and a bearer token alone
    /// included; a configured header replaces a built-in one of its name;
    /// an Opsgenie close keeps the configured query.
    #[tokio::test(start_paused = true)]
    async fn credentials_headers_and_queries_as_configured() {
        use base64::Engine as _;
        let clock = TokioClock::starting_at(1_800_000_000_000_000);
        let alert = format::sample_alert();
        let basic = Webhook::plain("http://hookuser:pa%73s@h.example/in", Format::Json);
        let sent = request(&basic, &alert, None, &clock).expect("request");
        let encoded = base64::engine::general_purpose::STANDARD.encode("hookuser:pass");
        for secret in [encoded.as_str(), "pass", "hookuser"] {
            assert!(sent.secrets.iter().any(|s| s == secret), "{secret}");
        }
        let custom = Webhook {
            headers: vec![
                ("Authorization".into(), "Bearer t0kenSecretValue42".into()),
                (
                    "Content-Type".into(),
                    "application/json; charset=utf-8".into(),
                ),
            ],
            ..Webhook::plain("https://h.example/in", Format::Json)
        };
        let sent = request(&custom, &alert, None, &clock).expect("request");
        assert!(sent.secrets.iter().any(|s| s == "t0kenSecretValue42"));
        let types: Vec<_> = sent
            .headers
            .iter()
            .filter(|(n, _)| n.as_str() == "content-type")
            .map(|(_, v)| v.to_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(types, ["application/json; charset=utf-8"]);
        let opsgenie = Webhook {
            key: Some("k".into()),
            ..Webhook::plain("https://og.example/og?tenant=acme", Format::Opsgenie)
        };
        let mut resolved = alert.clone();
        resolved.state = crate::detect::TransitionKind::Resolved;
        let close = request(&opsgenie, &resolved, None, &clock).expect("request");
        assert_eq!(
            close.url.query(),
            Some("tenant=acme&identifierType=alias"),
            "{}",
            close.url
        );
    }
}
