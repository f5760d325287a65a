//! What a sink sends: the alert schema as is (`json`), a chat message
//! (`slack`, `discord`, see [`super::chat`]) or an incident event for a
//! paging or alerting system (`pagerduty`, `opsgenie`, `alertmanager`, see
//! [`super::paging`]).
//!
//! Everything a post's author wrote (sample texts, and the service name,
//! which a `#FooDown` hashtag can set) is escaped for the receiver's markup
//! and cut by characters to the receiver's documented limits, so a post can
//! neither ping a channel nor plant a link nor make a receiver reject the
//! message. The wording here is shared by every human-readable format, so a
//! source's health alert and a test alert read the same everywhere.

use serde::{Deserialize, Serialize};

use super::{Alert, AlertKind};
use crate::detect::{Severity, TransitionKind};
use crate::normalize::is_invisible;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The alert schema as is.
    #[default]
    Json,
    Slack,
    Discord,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// Opsgenie Alert API v2.
    Opsgenie,
    /// Alertmanager API v2 (`POST /api/v2/alerts`).
    Alertmanager,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Slack => "slack",
            Format::Discord => "discord",
            Format::Pagerduty => "pagerduty",
            Format::Opsgenie => "opsgenie",
            Format::Alertmanager => "alertmanager",
        }
    }

    /// The URL used when a sink names none.
    pub fn default_url(self) -> Option<&'static str> {
        match self {
            Format::Pagerduty => Some("https://events.pagerduty.com/v2/enqueue"),
            Format::Opsgenie => Some("https://api.opsgenie.com"),
            _ => None,
        }
    }

    /// Formats that keep an incident open at the receiver until told it is
    /// resolved (a test sends its resolution right after).
    pub fn is_stateful(self) -> bool {
        matches!(
            self,
            Format::Pagerduty | Format::Opsgenie | Format::Alertmanager
        )
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_ascii_lowercase())).map_err(|_| {
            format!(
                "unknown format {s:?}: json, slack, discord, pagerduty, opsgenie or alertmanager"
            )
        })
    }
}

/// The body for `alert` in the formats whose request is one JSON document
/// posted to the sink's URL (`json`, `slack`, `discord`).
pub fn body(alert: &Alert, format: Format) -> Result<Vec<u8>, serde_json::Error> {
    match format {
        Format::Slack => serde_json::to_vec(&super::chat::slack(alert)),
        Format::Discord => serde_json::to_vec(&super::chat::discord(alert)),
        _ => serde_json::to_vec(alert),
    }
}

/// One line that says what happened; `esc` escapes text from posts.
pub fn headline(alert: &Alert, esc: &dyn Fn(&str) -> String) -> String {
    let test = if alert.test { "[TEST] " } else { "" };
    let service = esc(&clip(&alert.service, 100));
    match (alert.kind, alert.source_name()) {
        (AlertKind::Source, Some(name)) => {
            let name = esc(&clip(name, 100));
            match alert.state {
                TransitionKind::Resolved => format!("{test}source {name} is back"),
                _ => format!(
                    "{test}source {name}: {}",
                    esc(&clip(
                        &defang(alert.detail.as_deref().unwrap_or("unhealthy")),
                        200
                    ))
                ),
            }
        }
        _ => {
            let what = match alert.state {
                TransitionKind::Firing => "may be down",
                TransitionKind::Updated => "outage reports are growing",
                TransitionKind::Resolved => "reports are back to normal",
            };
            format!("{test}{service}: {what} ({})", alert.severity)
        }
    }
}

/// A few sentences with the figures (or, for a source, what is wrong).
pub fn summary(alert: &Alert, esc: &dyn Fn(&str) -> String) -> String {
    if alert.test {
        return format!(
            "This is a test sent by `outagewatch alerts test` at {}; nothing is down.",
            alert.at
        );
    }
    // A source's detail may quote its server: one line, no link, as a post.
    let detail = alert.detail.as_deref().map(|d| esc(&clip(&defang(d), 500)));
    match alert.kind {
        AlertKind::Source => match alert.state {
            TransitionKind::Resolved => format!(
                "{}. The incident started at {}; outage alerts raised while it lasted may be late.",
                detail.as_deref().unwrap_or("back"),
                alert.started_at
            ),
            _ => format!(
                "{} (since {}). Outage alerts may be missing or late while this lasts.",
                detail.as_deref().unwrap_or("unhealthy"),
                alert.started_at
            ),
        },
        AlertKind::Outage => match alert.state {
            TransitionKind::Resolved => format!(
                "Resolved at {} after starting at {}: {} reports in all, at most {} authors a minute.",
                alert.at, alert.started_at, alert.reports, alert.peak_authors
            ),
            _ => format!(
                "{} people reported problems in the last minute ({:.1} a minute against {:.2} expected); {} reports since {}.",
                alert.authors,
                alert.rate_per_min,
                alert.baseline_per_min,
                alert.reports,
                alert.started_at
            ),
        },
    }
}

/// At most `max` characters, cut on a character boundary with an
/// ellipsis. A cut never leaves half an escape behind: a trailing
/// `&ent` without its `;` or a lone trailing backslash is dropped too.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = out.rfind('&')
        && !out[amp..].contains(';')
        && out[amp + 1..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '#')
    {
        out.truncate(amp);
    }
    let backslashes = out.chars().rev().take_while(|&c| c == '\\').count();
    if backslashes % 2 == 1 {
        out.pop();
    }
    if max > 0 {
        out.push('…');
    }
    out
}

/// A post's text on one line, links defanged (`https[:]//…`) so no chat
/// client turns them into links or previews: links in our messages come
/// only from our own fields. Every line break and control character is a
/// space, and what shows nothing is dropped: every
/// Default_Ignorable_Code_Point ([`is_invisible`]: zero-width characters
/// and bidirectional controls, which could hide a link from the defanging
/// or show text other than what it is; fillers, variation selectors and
/// tag characters, which can carry text no one sees).
///
/// Zero-width joiners and non-joiners stay between two letters or symbols
/// beyond ASCII, where they shape what is shown (👨‍👩‍👧 is one family, not
/// three faces; Persian and Indic words need them); next to ASCII, as in
/// `https:\u{200D}//`, they only hide things, and go. What a joiner follows
/// is looked for past an emoji presentation selector (U+FE0F), which UTS
/// #51 puts before the joiner in sequences such as 🏳️‍🌈 and 🕵️‍♀️: the
/// selector goes, the joiner stays.
pub fn defang(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let shown = |c: Option<&char>| {
        c.is_some_and(|&c| {
            !c.is_ascii() && !c.is_control() && !c.is_whitespace() && !is_invisible(c)
        })
    };
    let joined = |i: usize| chars[..i].iter().rev().find(|&&c| c != '\u{FE0F}');
    let line: String = chars
        .iter()
        .enumerate()
        .filter(|&(i, &c)| {
            !is_invisible(c)
                || matches!(c, '\u{200C}' | '\u{200D}')
                    && shown(joined(i))
                    && shown(chars.get(i + 1))
        })
        .map(|(_, &c)| match c {
            '\u{2028}' | '\u{2029}' => ' ',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    line.replace("://", "[:]//")
}

/// Mentions and links made harmless for a receiver that passes text on
/// to Slack or Discord (PagerDuty, Opsgenie and Alertmanager are often
/// bridged there): a zero-width space after every `<` (Slack's
/// `<!channel>`, `<@U…>`, `<#C…>`, and its `<mailto:…|label>` and
/// `<tel:…|label>` links, which hold no `://` to defang; only `<!` and
/// `<@` were broken) and after the `@` of `@everyone` and `@here`, so no
/// such syntax is recognised and the text reads the same.
pub fn unmention(text: &str) -> String {
    text.replace('<', "<\u{200B}")
        .replace("@everyone", "@\u{200B}everyone")
        .replace("@here", "@\u{200B}here")
}

/// A sample's link as a web page, when it is one: Bluesky's `at://` URIs
/// become bsky.app links; other http(s) URIs stay; anything else is none.
pub fn sample_link(uri: &str) -> Option<String> {
    if let Some(rest) = uri.strip_prefix("at://") {
        let mut parts = rest.split('/');
        let (did, collection, rkey) = (parts.next()?, parts.next()?, parts.next()?);
        if collection != "app.bsky.feed.post" || parts.next().is_some() {
            return None;
        }
        let url =
            reqwest::Url::parse(&format!("https://bsky.app/profile/{did}/post/{rkey}")).ok()?;
        return Some(url.to_string());
    }
    let url = reqwest::Url::parse(uri).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.has_host() && url.as_str().len() <= 2048)
        .then(|| url.to_string())
}

/// An alert for tests.
pub fn sample_alert() -> Alert {
    example(TransitionKind::Firing, "is discord down?")
}

/// A realistic alert in `state` with one sample of text `sample`.
pub fn example(state: TransitionKind, sample: &str) -> Alert {
    Alert {
        id: "discord-20260704T141710Z".into(),
        service: "discord".into(),
        state,
        at: "2026-07-04T14:17:40Z".into(),
        started_at: "2026-07-04T14:17:10Z".into(),
        severity: Severity::Medium,
        reports: 19,
        authors: 19,
        rate_per_min: 19.0,
        baseline_per_min: 0.35,
        samples: vec![super::AlertSample {
            text: sample.into(),
            uri: "at://did:plc:a/app.bsky.feed.post/k".into(),
        }],
        peak_authors: 19,
        p_value: 1e-9,
        discovered: false,
        top_phrases: Vec::new(),
        languages: Default::default(),
        basis: None,
        sequence: 2,
        detail: None,
        model: Default::default(),
        kind: AlertKind::Outage,
        test: false,
    }
}

/// `outagewatch alerts test`: a clearly marked test alert dated now, with
/// a fresh id (so a fresh idempotency key) on every call.
pub fn test_alert(state: TransitionKind, now: chrono::DateTime<chrono::Utc>, nonce: u32) -> Alert {
    let stamp = now.format("%Y%m%dT%H%M%SZ");
    let at = crate::wall::rfc3339_at(now);
    Alert {
        id: format!("outagewatch-test-{stamp}-{nonce:08x}"),
        service: "outagewatch-test".into(),
        state,
        at: at.clone(),
        started_at: at,
        severity: Severity::Low,
        reports: 0,
        authors: 0,
        rate_per_min: 0.0,
        baseline_per_min: 0.0,
        samples: vec![super::AlertSample {
            text: "This is a test post text: nothing is down.".into(),
            uri: "https://example.com/outagewatch-test".into(),
        }],
        peak_authors: 0,
        p_value: 1.0,
        discovered: false,
        top_phrases: Vec::new(),
        languages: Default::default(),
        basis: None,
        sequence: match state {
            TransitionKind::Firing => 1,
            _ => 2,
        },
        detail: Some("test alert from `outagewatch alerts test`".into()),
        kind: AlertKind::Outage,
        test: true,
        model: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_the_alert_schema() {
        let a = example(TransitionKind::Resolved, "ok");
        let back: Alert =
            serde_json::from_slice(&body(&a, Format::Json).expect("json")).expect("parses");
        assert_eq!(back, a);
        let v: serde_json::Value =
            serde_json::from_slice(&body(&a, Format::Json).expect("json")).expect("parses");
        assert_eq!(v["kind"], "outage");
        assert!(v.get("test").is_none(), "only test alerts say test");
    }

    /// What a stranger's text cannot do in a chat line: break it, hide a
    /// link from the defanging, or show other text than it holds.
    #[test]
    fn defang_leaves_one_line_of_visible_text_with_no_link() {
        // (post text, what the line holds)
        let cases = [
            ("see https://x.example now", "see https[:]//x.example now"),
            ("two\nlines\r\nhere", "two lines  here"),
            ("para\u{2028}> fake\u{2029}x", "para > fake x"),
            (
                "nul\0esc\u{1b}[31mtab\tvt\u{b}ff\u{c}nel\u{85}",
                "nul esc [31mtab vt ff nel ",
            ),
            ("https:\u{200B}//x.example", "https[:]//x.example"),
            ("https:/\u{2060}/x.example", "https[:]//x.example"),
            ("\u{202E}moc.elpmaxe//:sptth", "moc.elpmaxe//:sptth"),
            ("a\u{2066}b\u{2069}c\u{200F}d\u{FEFF}e", "abcde"),
            ("インスタ落ちてる 😀", "インスタ落ちてる 😀"),
            // Joiners stay where they join: a family, a Persian word.
            (
                "down again \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}",
                "down again \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}",
            ),
            (
                "\u{645}\u{6CC}\u{200C}\u{62E}\u{648}\u{627}\u{647}\u{645}",
                "\u{645}\u{6CC}\u{200C}\u{62E}\u{648}\u{627}\u{647}\u{645}",
            ),
            (
                "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F466}\u{200D}\u{1F466}",
                "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F466}\u{200D}\u{1F466}",
            ),
            // …and go where they only hide or split.
            ("https:\u{200D}//x.example", "https[:]//x.example"),
            ("do\u{200C}wn", "down"),
            ("\u{200D}\u{1F468}", "\u{1F468}"),
            ("\u{1F468}\u{200D}", "\u{1F468}"),
            ("\u{1F468}\u{200D} \u{1F469}", "\u{1F468} \u{1F469}"),
            ("\u{1F468}\u{200D}\u{202E}\u{1F469}", "\u{1F468}\u{1F469}"),
            // Every other Default_Ignorable goes: Hangul fillers (a name
            // that shows blank), the Mongolian vowel separator, the
            // grapheme joiner, and tag characters spelling hidden text.
            ("\u{3164}\u{FFA0}\u{115F}\u{1160}down", "down"),
            ("https:\u{180E}//x\u{34F}.example", "https[:]//x.example"),
            ("ok\u{E0001}\u{E0069}\u{E0067}\u{E006E}\u{E007F}", "ok"),
            ("\u{2764}\u{FE0F} d\u{FE00}own", "\u{2764} down"),
            // A joiner after an emoji's presentation selector still joins.
            (
                "\u{1F3F3}\u{FE0F}\u{200D}\u{1F308}",
                "\u{1F3F3}\u{200D}\u{1F308}",
            ),
            (
                "\u{1F575}\u{FE0F}\u{200D}\u{2640}\u{FE0F}",
                "\u{1F575}\u{200D}\u{2640}",
            ),
            ("x\u{FE0F}\u{200D}\u{1F308}", "x\u{1F308}"),
        ];
        for (text, line) in cases {
            assert_eq!(defang(text), line, "{text:?}");
        }
    }

    #[test]
    fn clip_counts_characters_and_never_leaves_half_an_escape() {
        let cases = [
            ("short", 10, "short"),
            ("ééééé", 3, "éé…"),
            ("ab&amp;cd", 6, "ab…"),
            ("ab&amp;cd", 8, "ab&amp;…"),
            ("ab\\*cd", 4, "ab…"),
            ("ab\\\\cd", 5, "ab\\\\…"),
            ("日本語のテキスト", 4, "日本語…"),
        ];
        for (text, max, want) in cases {
            let got = clip(text, max);
            assert_eq!(got, want, "{text:?} to {max}");
            assert!(got.chars().count() <= max);
        }
    }

    #[test]
    fn sample_links_are_web_pages_or_nothing() {
        let cases = [
            (
                "at://did:plc:abc/app.bsky.feed.post/3k",
                Some("https://bsky.app/profile/did:plc:abc/post/3k"),
            ),
            ("at://did:plc:abc/app.bsky.feed.like/3k", None),
            (
                "https://mastodon.social/@a/1",
                Some("https://mastodon.social/@a/1"),
            ),
            ("javascript:alert(1)", None),
            ("nostr:note1xyz", None),
            ("", None),
        ];
        for (uri, want) in cases {
            assert_eq!(sample_link(uri).as_deref(), want, "{uri}");
        }
    }

    #[test]
    fn health_and_test_alerts_say_what_happened() {
        let firing = Alert::source_health(
            "bluesky",
            TransitionKind::Firing,
            1_783_174_000_000_000,
            1_783_174_000_000_000,
            "no frames from bluesky for 120 s".into(),
        );
        let plain = |s: &str| s.to_owned();
        assert_eq!(
            headline(&firing, &plain),
            "source bluesky: no frames from bluesky for 120 s"
        );
        let text = summary(&firing, &plain);
        assert!(text.contains("no frames from bluesky for 120 s"), "{text}");
        assert!(!text.contains("people reported"), "{text}");
        let mut resolved = firing.clone();
        resolved.state = TransitionKind::Resolved;
        resolved.detail = Some("bluesky is back: frames arriving".into());
        assert_eq!(headline(&resolved, &plain), "source bluesky is back");
        assert!(!summary(&resolved, &plain).contains("reports"));
        // A detail quoting the server is one line with no link, as a post.
        let mut quoting = firing.clone();
        quoting.detail = Some("events lost (see https://evil.example/login\nnow)".into());
        for text in [headline(&quoting, &plain), summary(&quoting, &plain)] {
            assert!(text.contains("https[:]//evil.example/login now"), "{text}");
        }

        let now = chrono::DateTime::from_timestamp(1_783_174_000, 0).expect("time");
        let test = test_alert(TransitionKind::Firing, now, 7);
        assert!(headline(&test, &plain).starts_with("[TEST] "));
        assert!(summary(&test, &plain).contains("nothing is down"));
        assert_ne!(test.id, test_alert(TransitionKind::Firing, now, 8).id);
    }
}
