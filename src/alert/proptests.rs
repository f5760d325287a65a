//! Property test: arbitrary post text (and a service name a hashtag can
//! set) through every format keeps the escaping and every documented
//! length limit.

use proptest::prelude::*;
use serde_json::Value;

use super::chat::{self, DISCORD_SPECIAL};
use super::format::{self, Format};
use super::paging::{self, OpsgenieCall};
use super::{Alert, AlertKind, AlertSample};
use crate::detect::{Severity, TransitionKind};

/// Pieces hostile posts are made of, mixed with arbitrary text.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("<!channel>".to_owned()),
        Just("<!here|here>".to_owned()),
        Just("<@U024BE7LH>".to_owned()),
        Just("<https://evil.example|Discord status page>".to_owned()),
        Just("@everyone".to_owned()),
        Just("@here".to_owned()),
        Just("<@&123456>".to_owned()),
        Just("[status](https://evil.example)".to_owned()),
        Just("&amp;&lt;&".to_owned()),
        Just("\\".to_owned()),
        Just("**_~`|>#-".to_owned()),
        Just("\n> ".to_owned()),
        Just("https://x.example/?a=1".to_owned()),
        Just("インスタ落ちてる🔥".to_owned()),
        Just("\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}".to_owned()),
        Just("https:\u{200D}//x\u{202E}y\u{200B}z\u{2066}".to_owned()),
        Just(format!("a{}b", SHOWS_NOTHING.iter().collect::<String>())),
        Just("https\u{E0001}://x\u{3164}y\u{180E}z".to_owned()),
        Just("\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}".to_owned()),
        Just("\u{2764}\u{FE0F}\u{1F3F3}\u{FE0F}\u{200D}\u{1F308}".to_owned()),
        prop::sample::select(SHOWS_NOTHING).prop_map(String::from),
        Just("@every".to_owned()),
        Just("one".to_owned()),
        Just("<".to_owned()),
        "[a-z ]{0,40}".prop_map(|s| s),
        any::<String>(),
        "x{500,3000}".prop_map(|s| s),
    ];
    prop::collection::vec(piece, 0..30).prop_map(|v| v.concat())
}

fn alert() -> impl Strategy<Value = Alert> {
    (
        text(),
        prop::collection::vec((text(), text()), 0..6),
        prop::sample::select(vec![Severity::Low, Severity::Medium, Severity::High]),
        prop::sample::select(vec![
            TransitionKind::Firing,
            TransitionKind::Updated,
            TransitionKind::Resolved,
        ]),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(text()),
    )
        .prop_map(
            |(service, samples, severity, state, source, test, detail)| {
                let mut a = format::example(state, "");
                a.service = if source {
                    format!("source:{service}")
                } else {
                    service.clone()
                };
                a.id = format!("{service}-20260704T141710Z");
                a.severity = severity;
                a.kind = if source {
                    AlertKind::Source
                } else {
                    AlertKind::Outage
                };
                a.test = test;
                a.detail = detail;
                a.samples = samples
                    .into_iter()
                    .map(|(text, uri)| AlertSample { text, uri })
                    .collect();
                a
            },
        )
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| strings(i, out)),
        _ => {}
    }
}

/// Slack: no raw `<` or `>` anywhere, every `&` starts an escape.
fn slack_safe(s: &str) -> Result<(), String> {
    if s.contains('<') || s.contains('>') {
        return Err(format!("raw angle bracket in {s:?}"));
    }
    for (i, _) in s.match_indices('&') {
        let rest = &s[i..];
        if !["&amp;", "&lt;", "&gt;"]
            .iter()
            .any(|e| rest.starts_with(e))
        {
            return Err(format!("bare & in {s:?}"));
        }
    }
    Ok(())
}

/// Discord: after a line's own `> ` quote marker, every special character
/// is escaped.
fn discord_escaped(line: &str) -> Result<(), String> {
    let body = line.strip_prefix("> ").unwrap_or(line);
    let mut escaped = false;
    for c in body.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if DISCORD_SPECIAL.contains(&c) {
            return Err(format!("unescaped {c:?} in {line:?}"));
        }
    }
    Ok(())
}

/// Characters that show nothing, listed here apart from the code's
/// Unicode tables so that the check does not trust what it checks: a
/// sample of Default_Ignorable_Code_Point (the Unicode Character
/// Database's DerivedCoreProperties.txt), each range's ends included:
/// soft hyphen, grapheme joiner, Arabic letter mark, Hangul fillers,
/// Khmer inherent vowels, Mongolian selectors and vowel separator,
/// zero-width characters, bidirectional controls, invisible operators,
/// variation selectors, the byte order mark, the halfwidth filler,
/// reserved ones, shorthand format controls, musical format controls
/// and tag characters (which can spell hidden text).
const SHOWS_NOTHING: &[char] = &[
    '\u{AD}',
    '\u{34F}',
    '\u{61C}',
    '\u{115F}',
    '\u{1160}',
    '\u{17B4}',
    '\u{17B5}',
    '\u{180B}',
    '\u{180E}',
    '\u{180F}',
    '\u{200B}',
    '\u{200F}',
    '\u{202A}',
    '\u{202E}',
    '\u{2060}',
    '\u{2064}',
    '\u{2065}',
    '\u{206F}',
    '\u{3164}',
    '\u{FE00}',
    '\u{FE0F}',
    '\u{FEFF}',
    '\u{FFA0}',
    '\u{FFF0}',
    '\u{FFF8}',
    '\u{1BCA0}',
    '\u{1BCA3}',
    '\u{1D173}',
    '\u{1D17A}',
    '\u{E0000}',
    '\u{E0001}',
    '\u{E0020}',
    '\u{E0041}',
    '\u{E007F}',
    '\u{E0100}',
    '\u{E01EF}',
    '\u{E0FFF}',
];

/// Whether `c` hides in text: a control but a line break, or one of
/// [`SHOWS_NOTHING`] but our own zero-width spaces and the joiners
/// (which stay between two characters beyond ASCII).
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n')
        || SHOWS_NOTHING.contains(&c) && !matches!(c, '\u{200B}'..='\u{200D}')
}

/// Post text in the plain formats (PagerDuty, Opsgenie, Alertmanager),
/// often bridged to chat: no mention, no link, nothing invisible but the
/// joiners and our own zero-width spaces, no control but line breaks
/// between quoted lines.
fn plain_safe(s: &str) -> Result<(), String> {
    for bad in ["<!", "<@", "@everyone", "@here", "://"] {
        ensure(!s.contains(bad), &format!("{bad} in {s:?}"))?;
    }
    // No Slack syntax at all (`<mailto:…|label>`, `<#C…>`): every `<`
    // is broken (or ends the text, cut short).
    ensure(
        s.match_indices('<').all(|(i, _)| {
            let rest = &s[i + 1..];
            rest.starts_with(['\u{200B}', '…']) || rest.is_empty()
        }),
        &format!("an unbroken `<` in {s:?}"),
    )?;
    ensure(
        !s.chars().any(hidden),
        &format!("a hidden character in {s:?}"),
    )
}

/// A chat format's quoted samples: nothing hidden in them either.
fn samples_visible(samples: &str) -> Result<(), String> {
    ensure(
        !samples.chars().any(hidden),
        &format!("a hidden character in {samples:?}"),
    )
}

fn ensure(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what.to_owned()) }
}

/// Every format's rules, one function per format.
fn check(alert: &Alert) -> Result<(), String> {
    check_slack(alert)?;
    check_discord(alert)?;
    check_pagerduty(alert)?;
    check_opsgenie(alert)?;
    check_alertmanager(alert)?;
    check_json(alert)
}

/// Slack: mrkdwn escaped, no `<!` mentions, Block Kit's lengths.
fn check_slack(alert: &Alert) -> Result<(), String> {
    let s = chat::slack(alert);
    let mut all = Vec::new();
    strings(&s, &mut all);
    for text in &all {
        slack_safe(text)?;
        ensure(!text.contains("<!"), "<! in Slack")?;
    }
    ensure(chars(&s["text"]) <= 3000, "slack text")?;
    if !alert.samples.is_empty() {
        samples_visible(s["blocks"][2]["text"]["text"].as_str().ok_or("samples")?)?;
    }
    for block in s["blocks"].as_array().ok_or("blocks")? {
        match block["type"].as_str() {
            Some("header") => ensure(chars(&block["text"]["text"]) <= 150, "header")?,
            Some("section") => {
                ensure(chars(&block["text"]["text"]) <= 3000, "section")?;
                for f in block["fields"].as_array().into_iter().flatten() {
                    ensure(chars(&f["text"]) <= 2000, "field")?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Discord: no mentions, embed limits, samples and masked links escaped.
fn check_discord(alert: &Alert) -> Result<(), String> {
    let d = chat::discord(alert);
    ensure(
        d["allowed_mentions"]["parse"] == serde_json::json!([]),
        "allowed_mentions",
    )?;
    let e = &d["embeds"][0];
    ensure(chars(&d["content"]) <= 2000, "content")?;
    ensure(chars(&e["title"]) <= 256, "title")?;
    ensure(chars(&e["description"]) <= 4096, "description")?;
    let fields = e["fields"].as_array().ok_or("fields")?;
    ensure(fields.len() <= 25, "fields")?;
    let mut total = chars(&e["title"]) + chars(&e["description"]) + chars(&e["footer"]["text"]);
    for f in fields {
        ensure(
            chars(&f["name"]) <= 256 && chars(&f["value"]) <= 1024,
            "field",
        )?;
        total += chars(&f["name"]) + chars(&f["value"]);
    }
    ensure(total <= 6000, "embed total")?;
    if !alert.samples.is_empty() {
        let samples = fields[3]["value"].as_str().ok_or("samples")?;
        samples.lines().try_for_each(discord_escaped)?;
        samples_visible(samples)?;
    }
    // Markdown is rendered everywhere but in the footer (plain text).
    let mut all = Vec::new();
    strings(&d["content"], &mut all);
    strings(&e["title"], &mut all);
    strings(&e["description"], &mut all);
    strings(&e["fields"], &mut all);
    for text in &all {
        let unescaped = text
            .match_indices("](")
            .any(|(i, _)| !text[..i].ends_with('\\'));
        ensure(!unescaped, "masked link")?;
    }
    Ok(())
}

/// PagerDuty: Events v2 lengths, a known severity, http(s) links.
fn check_pagerduty(alert: &Alert) -> Result<(), String> {
    let p = paging::pagerduty(alert, "key");
    ensure(chars(&p["dedup_key"]) <= paging::PD_DEDUP, "dedup_key")?;
    if alert.state != TransitionKind::Resolved {
        ensure(
            chars(&p["payload"]["summary"]) <= paging::PD_SUMMARY,
            "summary",
        )?;
        ensure(
            ["critical", "error", "warning", "info"]
                .contains(&p["payload"]["severity"].as_str().unwrap_or("")),
            "severity",
        )?;
        let details = &p["payload"]["custom_details"];
        for sample in details["samples"].as_array().ok_or("samples")? {
            plain_safe(sample["text"].as_str().unwrap_or(""))?;
            plain_safe(sample["uri"].as_str().unwrap_or(""))?;
        }
        plain_safe(details["detail"].as_str().unwrap_or(""))?;
        plain_safe(p["payload"]["summary"].as_str().unwrap_or(""))?;
        for link in p["links"].as_array().ok_or("links")? {
            let href = link["href"].as_str().unwrap_or("");
            ensure(
                href.starts_with("https://") || href.starts_with("http://"),
                "link",
            )?;
        }
    }
    Ok(())
}

/// Opsgenie: the create call's lengths.
fn check_opsgenie(alert: &Alert) -> Result<(), String> {
    let (call, o) = paging::opsgenie(alert);
    if call == OpsgenieCall::Create {
        ensure(chars(&o["message"]) <= paging::OG_MESSAGE, "message")?;
        ensure(chars(&o["alias"]) <= paging::OG_ALIAS, "alias")?;
        plain_safe(o["description"].as_str().unwrap_or(""))?;
        plain_safe(o["message"].as_str().unwrap_or(""))?;
        plain_safe(o["details"]["detail"].as_str().unwrap_or(""))?;
        ensure(
            chars(&o["description"]) <= paging::OG_DESCRIPTION,
            "og description",
        )?;
        ensure(
            chars(&o["entity"]) <= 512 && chars(&o["source"]) <= 100,
            "entity",
        )?;
        let tags = o["tags"].as_array().ok_or("tags")?;
        ensure(
            tags.len() <= 20 && tags.iter().all(|t| chars(t) <= 50),
            "tags",
        )?;
        let details: usize = o["details"]
            .as_object()
            .ok_or("details")?
            .iter()
            .map(|(k, v)| k.chars().count() + chars(v))
            .sum();
        ensure(details <= paging::OG_DETAILS, "details")?;
    }
    Ok(())
}

/// Alertmanager: the labels it needs, label and annotation lengths.
fn check_alertmanager(alert: &Alert) -> Result<(), String> {
    let a = paging::alertmanager_alert(alert, "2026-07-04T15:00:00Z");
    for label in ["alertname", "service", "severity"] {
        ensure(a["labels"][label].is_string(), label)?;
    }
    for (_, v) in a["labels"].as_object().ok_or("labels")? {
        ensure(chars(v) <= paging::AM_LABEL, "label")?;
    }
    for (_, v) in a["annotations"].as_object().ok_or("annotations")? {
        ensure(chars(v) <= paging::AM_ANNOTATION, "annotation")?;
        plain_safe(v.as_str().unwrap_or(""))?;
    }
    Ok(())
}

/// JSON: the schema, as is (it round-trips).
fn check_json(alert: &Alert) -> Result<(), String> {
    let back: Alert =
        serde_json::from_slice(&format::body(alert, Format::Json).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    ensure(&back == alert, "json round trip")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn every_format_escapes_and_keeps_its_limits(alert in alert()) {
        if let Err(problem) = check(&alert) {
            prop_assert!(false, "{}", problem);
        }
    }
}

#[test]
fn the_checks_catch_what_they_look_for() {
    assert!(slack_safe("&lt;!channel&gt; &amp;").is_ok());
    assert!(slack_safe("<!channel>").is_err());
    assert!(slack_safe("a & b").is_err());
    assert!(discord_escaped("> \\[x\\]\\(y\\)").is_ok());
    assert!(discord_escaped("> [x](y)").is_err());
    assert!(
        plain_safe("> @\u{200B}everyone <\u{200B}!channel> https[:]//x \u{1F468}\u{200D}\u{1F469}")
            .is_ok()
    );
    for bad in [
        "@everyone",
        "<!channel>",
        "<@U1>",
        "[a](https://x)",
        "a\u{202E}b",
        "a\rb",
        "a\u{3164}b",
        "a\u{E0041}b",
        "\u{2764}\u{FE0F}",
    ] {
        assert!(plain_safe(bad).is_err(), "{bad:?}");
    }
}
