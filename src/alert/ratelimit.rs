//! What a receiver says about its rate limit, and how long a sink waits.
//!
//! An answer whose `X-RateLimit-Remaining` is 0 and that says in
//! `X-RateLimit-Reset-After` when its bucket resets is waited by that
//! alone. Otherwise the longest of these wins:
//! - `Retry-After`: seconds (decimals allowed) or an HTTP date;
//! - a JSON body's `retry_after` in seconds (Discord answers 429 with it,
//!   sometimes without the header);
//! - `X-RateLimit-Reset` (Unix seconds, or a small number of seconds to
//!   wait), when `X-RateLimit-Remaining` is 0.
//!
//! Why `X-RateLimit-Reset-After` goes first: Discord documents it in
//! seconds (with decimals) in every API version, while `Retry-After` and
//! the body's `retry_after` were milliseconds before API v8, and a
//! webhook URL as Discord hands it out (`/api/webhooks/ID/TOKEN`, no
//! version) is served by the default, older version. Its 6457 ms read as
//! 6457 s, capped at an hour: the sink stalled an hour on every 429. A
//! reset trusted too soon costs one more 429 (and the backoff grows).
//!
//! After a success whose `X-RateLimit-Remaining` is 0, the sink pauses
//! until the reset before its next request. Waits are capped at an hour.
//! Every sink waits in its own task, so one receiver's limit never delays
//! another's deliveries.

use std::time::Duration;

use reqwest::header::HeaderMap;

pub use crate::http_client::{MAX_WAIT, parse_retry_after};
use crate::http_client::{capped, seconds};
use crate::source::backoff::Backoff;

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

/// How long a failed request's receiver asked us to wait, from its
/// headers and (bounded) body: the bucket's reset when it says so (see
/// the module's doc), else the longest of what it said.
pub fn retry_after(
    headers: &HeaderMap,
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    if let Some(wait) = reset_after(headers) {
        return Some(wait);
    }
    let from_header = header(headers, "retry-after").and_then(|v| parse_retry_after(v, now));
    let from_body = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("retry_after").and_then(serde_json::Value::as_f64))
        .and_then(capped);
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
mod tests {
    use super::*;

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_783_174_000, 0).expect("time")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn backoff_grows_caps_and_honours_what_was_asked() {
        let policy = RetryPolicy {
            horizon: Duration::from_secs(60),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        };
        // Many draws per attempt: the jitter stays within half to all of
        // the exponential delay.
        for attempts in (1..12).flat_map(|a| std::iter::repeat_n(a, 200)) {
            let wait = backoff(&policy, attempts, None);
            let full = Duration::from_secs(1 << (attempts - 1).min(20)).min(policy.max_backoff);
            assert!(
                wait <= full && wait >= full / 2,
                "attempt {attempts}: {wait:?}"
            );
        }
        assert_eq!(
            backoff(&policy, 1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            backoff(&policy, 1, Some(Duration::from_secs(86_400))),
            MAX_WAIT
        );
    }

    /// The default policy's waits, attempt by attempt: between half and
    /// all of 1 s doubled, up to 5 minutes; at the cap spread over 150 s
    /// to 300 s, reaching near 300 s (before, exactly 150 s every time).
    #[test]
    fn backoff_bounds_table() {
        let s = Duration::from_secs;
        let table = [
            (1, s(1)),
            (2, s(2)),
            (3, s(4)),
            (8, s(128)),
            (9, s(256)),
            (10, s(300)),
            (30, s(300)),
            (u32::MAX, s(300)),
        ];
        let policy = RetryPolicy::default();
        for (attempts, ceiling) in table {
            let waits: Vec<Duration> = (0..500).map(|_| backoff(&policy, attempts, None)).collect();
            for wait in &waits {
                assert!(
                    *wait >= ceiling / 2 && *wait <= ceiling,
                    "attempt {attempts}: {wait:?} not in [{:?}, {ceiling:?}]",
                    ceiling / 2
                );
            }
            let longest = waits.iter().max().copied().unwrap_or_default();
            let shortest = waits.iter().min().copied().unwrap_or_default();
            assert!(longest >= ceiling.mul_f64(0.95), "attempt {attempts}");
            assert!(shortest <= ceiling.mul_f64(0.55), "attempt {attempts}");
        }
    }

    /// Headers and body of a failed request, and the wait they ask for.
    fn retry_after_cases() -> Vec<(HeaderMap, &'static [u8], Option<Duration>)> {
        let s = Duration::from_secs_f64;
        vec![
            (headers(&[("retry-after", "120")]), b"", Some(s(120.0))),
            (headers(&[("retry-after", "1.5")]), b"", Some(s(1.5))),
            (
                headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
                b"",
                Some(Duration::ZERO),
            ),
            (headers(&[("retry-after", "soon")]), b"", None),
            // Too large for a float: the longest wait, not none.
            (headers(&[("retry-after", "1e400")]), b"", Some(MAX_WAIT)),
            (headers(&[("retry-after", "inf")]), b"", Some(MAX_WAIT)),
            (
                headers(&[("retry-after", "99999999999999999999999")]),
                b"",
                Some(MAX_WAIT),
            ),
            (headers(&[("retry-after", "NaN")]), b"", None),
            (headers(&[("retry-after", "-1")]), b"", None),
            (headers(&[("retry-after", "-inf")]), b"", None),
            // The three HTTP-date forms (RFC 9110 5.6.7), two minutes on.
            (
                headers(&[("retry-after", "Sat, 04 Jul 2026 14:08:40 GMT")]),
                b"",
                Some(s(120.0)),
            ),
            (
                headers(&[("retry-after", "Saturday, 04-Jul-26 14:08:40 GMT")]),
                b"",
                Some(s(120.0)),
            ),
            (
                headers(&[("retry-after", "Sat Jul  4 14:08:40 2026")]),
                b"",
                Some(s(120.0)),
            ),
            // RFC 2822 with a zone, as before; a date far on is capped.
            (
                headers(&[("retry-after", "Sat, 04 Jul 2026 16:08:40 +0200")]),
                b"",
                Some(s(120.0)),
            ),
            (
                headers(&[("retry-after", "Saturday, 04-Jul-26 20:06:40 GMT")]),
                b"",
                Some(MAX_WAIT),
            ),
            (
                headers(&[("retry-after", "Sat, 32 Jul 2026 14:08:40 GMT")]),
                b"",
                None,
            ),
            (
                headers(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset-after", "1e400"),
                ]),
                b"",
                Some(MAX_WAIT),
            ),
            (
                headers(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1e400"),
                ]),
                b"",
                Some(MAX_WAIT),
            ),
            // Discord: the body only.
            (
                HeaderMap::new(),
                br#"{"message":"You are being rate limited.","retry_after":4.5,"global":false}"#,
                Some(s(4.5)),
            ),
            // Header and body: the longer.
            (
                headers(&[("retry-after", "2")]),
                br#"{"retry_after": 4.5}"#,
                Some(s(4.5)),
            ),
            (HeaderMap::new(), br#"{"retry_after": -3}"#, None),
            (HeaderMap::new(), b"not json", None),
            (
                headers(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset-after", "3.25"),
                ]),
                b"",
                Some(s(3.25)),
            ),
            (
                headers(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1783174010"),
                ]),
                b"",
                Some(s(10.0)),
            ),
            (
                headers(&[
                    ("x-ratelimit-remaining", "4"),
                    ("x-ratelimit-reset-after", "3"),
                ]),
                b"",
                None,
            ),
            // Discord before API v8 (an unversioned webhook URL):
            // `Retry-After` and the body in milliseconds, the bucket's
            // reset in seconds. It was read as 6457 s, capped at an hour.
            (
                headers(&[
                    ("retry-after", "6457"),
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset-after", "7"),
                ]),
                br#"{"retry_after": 6457, "global": false}"#,
                Some(s(7.0)),
            ),
            // Discord from v8 on: all in seconds, the reset goes first.
            (
                headers(&[
                    ("retry-after", "65"),
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset-after", "64.57"),
                ]),
                br#"{"retry_after": 64.57, "global": false}"#,
                Some(s(64.57)),
            ),
            // Budget left (another limit was hit): the reset says nothing
            // of it, and the longest of the others stands.
            (
                headers(&[
                    ("retry-after", "30"),
                    ("x-ratelimit-remaining", "3"),
                    ("x-ratelimit-reset-after", "7"),
                ]),
                b"",
                Some(s(30.0)),
            ),
        ]
    }

    #[test]
    fn rate_limit_table() {
        let s = Duration::from_secs_f64;
        for (h, body, want) in retry_after_cases() {
            assert_eq!(
                retry_after(&h, body, now()),
                want,
                "{h:?} {}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            pause_after_success(
                &headers(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset-after", "2")
                ]),
                now()
            ),
            Some(s(2.0))
        );
        assert_eq!(
            pause_after_success(&headers(&[("x-ratelimit-remaining", "3")]), now()),
            None
        );
    }
}
