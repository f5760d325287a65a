//! What a receiver says about its rate limit, and how long a sink waits.
//!
//! An answer whose `X-RateLimit-Remaining` is 0 and that says in
//! `X-RateLimit-Reset-After` when its bucket resets is waited by that
//! alone, unless the limit hit is not the bucket's (Discord's global
//! limit: `"global": true`, `X-RateLimit-Global`, `X-RateLimit-Scope:
//! global`). Otherwise the longest of these wins:
//! - `Retry-After`: seconds (decimals allowed) or an HTTP date;
//! - a JSON body's `retry_after` in seconds (Discord answers 429 with it,
//!   sometimes without the header);
//! - `X-RateLimit-Reset` (Unix seconds, or a small number of seconds to
//!   wait), when `X-RateLimit-Remaining` is 0.
//!
//! Discord before API v8 counts `Retry-After` and `retry_after` in
//! milliseconds (integers), from v8 on in seconds (`retry_after` a
//! float); `X-RateLimit-Reset-After` is seconds in every version. A
//! webhook URL as Discord hands it out (`/api/webhooks/ID/TOKEN`, no
//! version) is served by the default, older version, so a `discord` sink
//! reads the version from its URL ([`Units::of`]). Read as seconds, 3500
//! ms made the sink wait an hour (the cap) on every 429. An integer
//! `retry_after` is milliseconds there, a fraction is seconds (only v8+
//! sends one); a 429 without Discord's JSON body came from in front of it
//! (Cloudflare), whose `Retry-After` is in seconds. The reset goes first
//! because it is the same in every version; a reset trusted too soon
//! costs one more 429 (and the backoff grows), but a global limit's wait
//! is not the route's bucket's.
//!
//! After a success whose `X-RateLimit-Remaining` is 0, the sink pauses
//! until the reset before its next request. Waits are capped at an hour.
//! Every sink waits in its own task, so one receiver's limit never delays
//! another's deliveries.

use std::time::Duration;

use reqwest::Url;
use reqwest::header::HeaderMap;

use super::format::Format;
pub use crate::http_client::{MAX_WAIT, parse_retry_after};
use crate::http_client::{capped, seconds};
use crate::source::backoff::Backoff;

/// How a receiver counts the waits of `Retry-After` and of a JSON body's
/// `retry_after` (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Units {
    /// Seconds, as RFC 9110 has them (and Discord from API v8 on).
    #[default]
    Seconds,
    /// Discord before API v8: milliseconds, as integers.
    DiscordMillis,
}

/// The first Discord API version that counts its waits in seconds.
const DISCORD_SECONDS_FROM: u32 = 8;

impl Units {
    /// The units of a sink in `format` posting to `url`: a `discord` sink
    /// whose path names no version (`/api/webhooks/…`, served as v6) or
    /// one before v8 (`/api/v7/webhooks/…`) is answered in milliseconds.
    pub fn of(format: Format, url: &Url) -> Units {
        if format != Format::Discord {
            return Units::Seconds;
        }
        let mut segments = url.path_segments().into_iter().flatten();
        let version = segments
            .by_ref()
            .find(|s| *s == "api")
            .and(segments.next())
            .and_then(|s| s.strip_prefix('v'))
            .and_then(|v| v.parse::<u32>().ok());
        match version {
            Some(v) if v >= DISCORD_SECONDS_FROM => Units::Seconds,
            _ => Units::DiscordMillis,
        }
    }
}

/// How long to retry and how fast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// After this long failing, an alert becomes a dead letter.
    pub horizon: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            horizon: Duration::from_secs(24 * 3600),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether `X-RateLimit-Remaining` says the budget is used up.
fn used_up(headers: &HeaderMap) -> bool {
    header(headers, "x-ratelimit-remaining")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .is_some_and(|remaining| remaining <= 0.0)
}

/// `X-RateLimit-Reset-After` (seconds), when the budget is used up.
fn reset_after(headers: &HeaderMap) -> Option<Duration> {
    if !used_up(headers) {
        return None;
    }
    header(headers, "x-ratelimit-reset-after").and_then(seconds)
}

/// The `X-RateLimit-*` wait, when the budget is used up.
fn exhausted_wait(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    if !used_up(headers) {
        return None;
    }
    if let Some(wait) = reset_after(headers) {
        return Some(wait);
    }
    let reset: f64 = header(headers, "x-ratelimit-reset")?.trim().parse().ok()?;
    let now = now.timestamp_millis() as f64 / 1000.0;
    // Some receivers send a delay rather than a time: a small number is one.
    let wait = if reset > 1_000_000_000.0 {
        reset - now
    } else {
        reset
    };
    capped(wait)
}

/// What a JSON answer says of its rate limit (Discord's 429 body).
#[derive(Default)]
struct LimitBody {
    retry_after: Option<serde_json::Number>,
    global: bool,
}

impl LimitBody {
    fn read(body: &[u8]) -> LimitBody {
        let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) else {
            return LimitBody::default();
        };
        LimitBody {
            retry_after: match fields.get("retry_after") {
                Some(serde_json::Value::Number(n)) => Some(n.clone()),
                _ => None,
            },
            global: fields.get("global") == Some(&serde_json::Value::Bool(true)),
        }
    }
}

/// Whether the limit hit is not the route's bucket (Discord's global
/// limit), whose reset then says nothing of the wait.
fn not_the_bucket(headers: &HeaderMap, body: &LimitBody) -> bool {
    let says = |name: &str, value: &str| {
        header(headers, name).is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
    };
    body.global || says("x-ratelimit-global", "true") || says("x-ratelimit-scope", "global")
}

/// How long a failed request's receiver asked us to wait, from its
/// headers and (bounded) body, counted in `units`: the bucket's reset
/// when it says so (see the module's doc), else the longest of what it
/// said.
pub fn retry_after(
    headers: &HeaderMap,
    body: &[u8],
    units: Units,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let body = LimitBody::read(body);
    if !not_the_bucket(headers, &body)
        && let Some(wait) = reset_after(headers)
    {
        return Some(wait);
    }
    // Milliseconds only in Discord's own answer (its JSON body) and only
    // as an integer: a fraction is v8's seconds.
    let millis = units == Units::DiscordMillis
        && body
            .retry_after
            .as_ref()
            .is_some_and(|n| n.is_u64() || n.is_i64());
    let from_header = header(headers, "retry-after").and_then(|v| {
        if millis {
            v.trim()
                .parse::<f64>()
                .ok()
                .and_then(|ms| capped(ms / 1000.0))
        } else {
            parse_retry_after(v, now)
        }
    });
    let from_body = body
        .retry_after
        .and_then(|n| n.as_f64())
        .and_then(|n| capped(if millis { n / 1000.0 } else { n }));
    [from_header, from_body, exhausted_wait(headers, now)]
        .into_iter()
        .flatten()
        .max()
}

/// After a 2xx: a pause before the next request when the budget is used up.
pub fn pause_after_success(
    headers: &HeaderMap,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    exhausted_wait(headers, now).filter(|w| !w.is_zero())
}

/// Exponential backoff with jitter, at least what the receiver asked:
/// the wait before attempt `attempts` is drawn between half and all of
/// `min_backoff` doubled per attempt (capped at `max_backoff`), so at the
/// cap it reaches `max_backoff` and retries from many sinks spread out.
/// (It was built on half the bounds with the jitter cut at the cap: every
/// wait there was exactly half of `max_backoff`.)
pub fn backoff(policy: &RetryPolicy, attempts: u32, asked: Option<Duration>) -> Duration {
    let wait = Backoff::between(policy.min_backoff, policy.max_backoff).nth(attempts);
    match asked {
        Some(asked) => wait.max(asked.min(MAX_WAIT)),
        None => wait,
    }
}

#[cfg(test)]
#[path = "ratelimit_tests.rs"]
mod tests;
