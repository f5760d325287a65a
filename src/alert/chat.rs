//! Chat messages: Slack incoming webhooks and Discord webhooks.
//!
//! Slack: every text is mrkdwn-escaped (`&` `<` `>` become `&amp;` `&lt;`
//! `&gt;`), so no `<!channel>`, `<@U…>` or `<url|label>` can come out of a
//! post; we write no links at all, turn off unfurling, and mark every
//! mrkdwn text `verbatim` (Slack then links no URLs or channel names).
//! Limits (Slack's Block Kit reference): header text ≤ 150 characters,
//! section text ≤ 3,000, ≤ 10 fields of ≤ 2,000, top-level `text` ≤ 3,000
//! here.
//!
//! Discord: `allowed_mentions: {"parse": []}` so `@everyone`, `@here` and
//! `<@id>` in a post ping nobody; markdown in post text (`*_~\`|>[]()#-<`
//! and `\`) is backslash-escaped, so a post cannot make a masked link.
//! Limits (Discord's message and embed reference): content ≤ 2,000, title ≤
//! 256, description ≤ 4,096, ≤ 25 fields, field name ≤ 256 and value ≤
//! 1,024, footer ≤ 2,048, and all embed text together ≤ 6,000.
//!
//! In both, links in post text are defanged (`https[:]//…`).

use serde_json::{Value, json};

use super::Alert;
use super::format::{clip, defang, headline, summary};
use crate::detect::{Severity, TransitionKind};

/// Characters in one sample line before it is cut.
pub const SAMPLE_CHARS: usize = 280;

/// Slack's mrkdwn escaping.
pub fn slack_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The characters Discord markdown gives a meaning to.
pub const DISCORD_SPECIAL: &[char] = &[
    '\\', '*', '_', '~', '`', '|', '>', '<', '[', ']', '(', ')', '#', '-',
];

/// Discord's markdown escaping: a backslash before each special character.
pub fn discord_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if DISCORD_SPECIAL.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The samples as quoted lines: each post's text defanged, cut to
/// [`SAMPLE_CHARS`] characters, then escaped, after `quote`. Only whole
/// lines are kept within `max` characters: cutting the joined text could
/// leave a line whose quote marker is half gone, which the receiver would
/// then read as the post's own markup.
fn samples_text(alert: &Alert, quote: &str, esc: fn(&str) -> String, max: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for sample in &alert.samples {
        let line = format!("{quote}{}", esc(&clip(&defang(&sample.text), SAMPLE_CHARS)));
        let len = line.chars().count() + usize::from(!out.is_empty());
        if used + len > max {
            // A single line longer than `max` is cut as a whole line.
            if out.is_empty() {
                out = clip(&line, max);
            }
            break;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&line);
        used += len;
    }
    out
}

/// A Slack incoming-webhook message: `text` for notifications, `blocks`
/// for the message itself.
pub fn slack(alert: &Alert) -> Value {
    let esc = |s: &str| slack_escape(s);
    let title = headline(alert, &esc);
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": clip(&title, 150), "emoji": true}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "verbatim": true, "text": clip(&summary(alert, &esc), 3000)}, "fields": [
            {"type": "mrkdwn", "verbatim": true, "text": format!("*Service*\n{}", clip(&esc(&clip(&alert.service, 200)), 1900))},
            {"type": "mrkdwn", "verbatim": true, "text": format!("*Severity*\n{}", alert.severity)},
            {"type": "mrkdwn", "verbatim": true, "text": format!("*State*\n{}", alert.state)},
            {"type": "mrkdwn", "verbatim": true, "text": format!("*Started*\n{}", esc(&clip(&alert.started_at, 40)))},
        ]}),
    ];
    if !alert.samples.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "verbatim": true, "text": samples_text(alert, "&gt; ", slack_escape, 3000)}}));
    }
    blocks.push(json!({"type": "context", "elements": [
        {"type": "mrkdwn", "verbatim": true, "text": clip(&format!("{}incident {} · event {}", if alert.test { "TEST · " } else { "" }, esc(&clip(&alert.id, 300)), alert.sequence), 3000)}
    ]}));
    json!({
        "text": clip(&title, 3000),
        "blocks": blocks,
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// A Discord webhook message: `content` plus one embed, pinging no one.
pub fn discord(alert: &Alert) -> Value {
    let esc = |s: &str| discord_escape(s);
    let color = match alert.state {
        TransitionKind::Resolved => 0x2e_b8_86,
        _ => match alert.severity {
            Severity::High => 0xd7_26_3d,
            Severity::Medium => 0xf2_a5_41,
            Severity::Low => 0xf7_dc_6f,
        },
    };
    let title = headline(alert, &esc);
    let mut fields = vec![
        json!({"name": "Severity", "value": alert.severity.as_str(), "inline": true}),
        json!({"name": "State", "value": alert.state.as_str(), "inline": true}),
        json!({"name": "Reports", "value": alert.reports.to_string(), "inline": true}),
    ];
    if !alert.samples.is_empty() {
        // The quote marker is ours; each line's text is escaped.
        fields.push(json!({"name": "What people say", "value": samples_text(alert, "> ", discord_escape, 1024), "inline": false}));
    }
    // Title 256 + description 3,000 + fields ≤ 1,100 + footer 200 stays
    // under the 6,000 characters Discord allows in all of an embed.
    json!({
        "content": clip(&title, 2000),
        "allowed_mentions": {"parse": []},
        "embeds": [{
            "title": clip(&title, 256),
            "description": clip(&summary(alert, &esc), 3000),
            "color": color,
            "timestamp": alert.at,
            "fields": fields,
            "footer": {"text": clip(&format!("outagewatch{} · incident {} · event {}", if alert.test { " TEST" } else { "" }, alert.id, alert.sequence), 200)},
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::format::example;

    fn alert(state: TransitionKind, sample: &str) -> Alert {
        example(state, sample)
    }

    fn chars(v: &Value) -> usize {
        v.as_str().map_or(usize::MAX, |s| s.chars().count())
    }

    /// Alerts whose every post-derived text grows under escaping (`&` is
    /// five characters in Slack, `*` and `<` two in Discord), with five
    /// samples of 280 characters, a long service, id and detail, in every
    /// state, of both kinds. Samples of `x` never came near a limit, so a
    /// limit counted before escaping, or over one sample only, passed.
    fn expanding() -> Vec<Alert> {
        let special = |n: usize| "&*<".repeat(n);
        let mut out = Vec::new();
        for state in [
            TransitionKind::Firing,
            TransitionKind::Updated,
            TransitionKind::Resolved,
        ] {
            let mut outage = alert(state, "");
            outage.service = special(100);
            outage.id = format!("{}-20260704T141710Z", special(200));
            let uri = outage.samples[0].uri.clone();
            outage.samples = (0..5)
                .map(|i| crate::alert::AlertSample {
                    text: format!("{i}{}", special(200)),
                    uri: uri.clone(),
                })
                .collect();
            let mut source = Alert::source_health(&special(100), state, 0, 0, special(300));
            source.samples = outage.samples.clone();
            out.extend([outage, source]);
        }
        out
    }

    #[test]
    fn slack_message_has_the_fields_slack_accepts() {
        for alert in expanding() {
            let v = slack(&alert);
            assert!(chars(&v["text"]) <= 3000);
            let blocks = v["blocks"].as_array().expect("blocks");
            assert!(!blocks.is_empty() && blocks.len() <= 50);
            assert_eq!(blocks[0]["type"], "header");
            assert_eq!(blocks[0]["text"]["type"], "plain_text");
            assert!(chars(&blocks[0]["text"]["text"]) <= 150);
            for block in blocks {
                let kind = block["type"].as_str().expect("type");
                assert!(["header", "section", "context"].contains(&kind), "{kind}");
                if kind == "section" {
                    assert_eq!(block["text"]["type"], "mrkdwn");
                    assert!(chars(&block["text"]["text"]) <= 3000);
                }
                let fields = block["fields"].as_array().map_or(&[][..], Vec::as_slice);
                assert!(fields.len() <= 10);
                for field in fields {
                    assert!(chars(&field["text"]) <= 2000, "{field}");
                }
                let elements = block["elements"].as_array().map_or(&[][..], Vec::as_slice);
                for element in elements {
                    assert!(chars(&element["text"]) <= 3000, "{element}");
                }
            }
            let samples = blocks[2]["text"]["text"].as_str().expect("samples");
            assert!(samples.lines().count() >= 2, "the samples were cut to one");
            assert_eq!(v["unfurl_links"], false);
            assert_eq!(blocks[1]["text"]["verbatim"], true);
        }
    }

    #[test]
    fn slack_escapes_what_a_post_says() {
        let v = slack(&alert(
            TransitionKind::Firing,
            "<!channel> see <https://evil.example|Discord status page> & more",
        ));
        let samples = v["blocks"][2]["text"]["text"].as_str().expect("samples");
        assert_eq!(
            samples,
            "&gt; &lt;!channel&gt; see &lt;https[:]//evil.example|Discord status page&gt; &amp; more"
        );
    }

    #[test]
    fn discord_pings_nobody_and_escapes_markdown() {
        let v = discord(&alert(
            TransitionKind::Firing,
            "@everyone [Discord status](https://evil.example) **down**",
        ));
        assert_eq!(v["allowed_mentions"]["parse"], json!([]));
        let field = v["embeds"][0]["fields"][3]["value"]
            .as_str()
            .expect("samples");
        assert_eq!(
            field,
            "> @everyone \\[Discord status\\]\\(https\\[:\\]//evil.example\\) \\*\\*down\\*\\*"
        );
    }

    #[test]
    fn samples_that_overflow_keep_whole_quoted_lines() {
        // Three lines of 510 characters once escaped: cutting the joined
        // text at Discord's 1,024 would leave the third line's `>` alone.
        let mut a = alert(TransitionKind::Firing, &"*".repeat(254));
        a.samples = vec![a.samples[0].clone(); 3];
        let d = discord(&a);
        let field = d["embeds"][0]["fields"][3]["value"]
            .as_str()
            .expect("samples");
        assert_eq!(field.lines().count(), 2);
        assert!(field.chars().count() <= 1024);
        assert!(field.lines().all(|l| l.starts_with("> \\*")));
        // Slack's marker is an entity: no line may start with a cut one.
        let s = slack(&a);
        let text = s["blocks"][2]["text"]["text"].as_str().expect("samples");
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().all(|l| l.starts_with("&gt; *")));
    }

    #[test]
    fn discord_message_has_the_fields_discord_accepts() {
        for alert in expanding() {
            let v = discord(&alert);
            assert!(chars(&v["content"]) <= 2000);
            let e = &v["embeds"][0];
            assert!(chars(&e["title"]) <= 256);
            assert!(chars(&e["description"]) <= 4096);
            assert!(e["color"].as_u64().is_some_and(|c| c <= 0xff_ff_ff));
            let fields = e["fields"].as_array().expect("fields");
            assert!(fields.len() <= 25);
            for f in fields {
                assert!(chars(&f["name"]) <= 256 && chars(&f["value"]) <= 1024);
            }
            assert!(chars(&e["footer"]["text"]) <= 2048);
            let in_all = chars(&e["title"])
                + chars(&e["description"])
                + chars(&e["footer"]["text"])
                + fields
                    .iter()
                    .map(|f| chars(&f["name"]) + chars(&f["value"]))
                    .sum::<usize>();
            assert!(in_all <= 6000, "{in_all} characters in the embed");
            let samples = fields[3]["value"].as_str().expect("samples");
            assert!(samples.lines().count() >= 2, "the samples were cut to one");
        }
    }
}
