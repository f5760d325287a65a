//! The waits a receiver's answers ask for, and the backoff around them.

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
            retry_after(&h, body, Units::Seconds, now()),
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

/// Discord's answers, by the sink's units (its URL's API version), and
/// the wait read from them.
fn discord_cases() -> Vec<(Units, HeaderMap, &'static [u8], Option<Duration>)> {
    let s = Duration::from_secs_f64;
    let (old, new) = (Units::DiscordMillis, Units::Seconds);
    vec![
        // Before v8: `Retry-After` and the body in milliseconds, the
        // bucket's reset in seconds, which goes first.
        (
            old,
            headers(&[
                ("retry-after", "6457"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset-after", "7"),
            ]),
            br#"{"retry_after": 6457, "global": false}"#,
            Some(s(7.0)),
        ),
        // The body alone, in milliseconds: it was read as 3500 s.
        (
            old,
            HeaderMap::new(),
            br#"{"message": "You are being rate limited.", "retry_after": 3500, "global": false}"#,
            Some(s(3.5)),
        ),
        // With its `Retry-After`, in milliseconds too.
        (
            old,
            headers(&[("retry-after", "3500")]),
            br#"{"retry_after": 3500}"#,
            Some(s(3.5)),
        ),
        // A global limit: the route's bucket resets sooner than the wait
        // asked, which is not the bucket's.
        (
            old,
            headers(&[
                ("x-ratelimit-global", "true"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset-after", "0.2"),
            ]),
            br#"{"retry_after": 2500, "global": true}"#,
            Some(s(2.5)),
        ),
        (
            new,
            headers(&[
                ("x-ratelimit-scope", "global"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset-after", "0.2"),
            ]),
            br#"{"retry_after": 2.5, "global": true}"#,
            Some(s(2.5)),
        ),
        // A fraction is v8's seconds, whatever the URL says.
        (
            old,
            HeaderMap::new(),
            br#"{"retry_after": 1.5}"#,
            Some(s(1.5)),
        ),
        // No Discord body: a 429 from in front of it (Cloudflare), whose
        // `Retry-After` is in seconds.
        (
            old,
            headers(&[("retry-after", "30")]),
            b"<html>",
            Some(s(30.0)),
        ),
        // From v8 on: all in seconds, an integer too.
        (
            new,
            HeaderMap::new(),
            br#"{"retry_after": 2}"#,
            Some(s(2.0)),
        ),
        (
            new,
            headers(&[
                ("retry-after", "65"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset-after", "64.57"),
            ]),
            br#"{"retry_after": 64.57, "global": false}"#,
            Some(s(64.57)),
        ),
        // Still capped at an hour.
        (
            old,
            HeaderMap::new(),
            br#"{"retry_after": 86400000}"#,
            Some(MAX_WAIT),
        ),
        (old, HeaderMap::new(), br#"{"retry_after": -5}"#, None),
    ]
}

#[test]
fn discord_waits_by_api_version() {
    for (units, h, body, want) in discord_cases() {
        assert_eq!(
            retry_after(&h, body, units, now()),
            want,
            "{units:?} {h:?} {}",
            String::from_utf8_lossy(body)
        );
    }
}

/// A `discord` sink's API version is in its URL's path; none (as Discord
/// hands webhook URLs out) is the old default. Other formats count in
/// seconds.
#[test]
fn a_discord_sink_s_units_come_from_its_url() {
    let cases = [
        (
            "https://discord.com/api/webhooks/1/tok",
            Units::DiscordMillis,
        ),
        (
            "https://discord.com/api/v6/webhooks/1/tok",
            Units::DiscordMillis,
        ),
        (
            "https://discord.com/api/v7/webhooks/1/tok",
            Units::DiscordMillis,
        ),
        ("https://discord.com/api/v8/webhooks/1/tok", Units::Seconds),
        (
            "https://discordapp.com/api/v10/webhooks/1/tok",
            Units::Seconds,
        ),
        ("http://127.0.0.1:9/hook", Units::DiscordMillis),
    ];
    for (url, want) in cases {
        let url = Url::parse(url).expect("url");
        assert_eq!(Units::of(Format::Discord, &url), want, "{url}");
    }
    let url = Url::parse("https://discord.com/api/webhooks/1/tok").expect("url");
    assert_eq!(Units::of(Format::Slack, &url), Units::Seconds);
    assert_eq!(Units::of(Format::Json, &url), Units::Seconds);
}
