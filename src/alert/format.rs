//! What a sink sends: the alert schema as is (`json`), or a message for a
//! chat service's incoming webhook (`slack`, `discord`), within the limits
//! those services document (Slack: header text ≤ 150 characters, section
//! text ≤ 3,000, ≤ 10 fields; Discord: content ≤ 2,000, embed title ≤ 256,
//! description ≤ 4,096, ≤ 25 fields, field value ≤ 1,024).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Alert;
use crate::detect::TransitionKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Slack,
    Discord,
}

/// The request body for `alert` in `format`.
pub fn body(alert: &Alert, format: Format) -> Result<Vec<u8>, serde_json::Error> {
    match format {
        Format::Json => serde_json::to_vec(alert),
        Format::Slack => serde_json::to_vec(&slack(alert)),
        Format::Discord => serde_json::to_vec(&discord(alert)),
    }
}

fn headline(alert: &Alert) -> String {
    let what = match alert.state {
        TransitionKind::Firing => "may be down",
        TransitionKind::Updated => "outage reports are growing",
        TransitionKind::Resolved => "reports are back to normal",
    };
    format!("{}: {what} ({})", alert.service, alert.severity)
}

fn summary(alert: &Alert) -> String {
    match alert.state {
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
    }
}

/// At most `max` characters, cut on a character boundary with an ellipsis.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn samples_text(alert: &Alert, max: usize) -> String {
    let lines: Vec<String> = alert
        .samples
        .iter()
        .map(|s| format!("> {}", clip(&s.text.replace('\n', " "), 280)))
        .collect();
    clip(&lines.join("\n"), max)
}

/// A Slack incoming-webhook message: `text` for notifications, `blocks`
/// for the message itself.
pub fn slack(alert: &Alert) -> Value {
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": clip(&headline(alert), 150), "emoji": true}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&summary(alert), 3000)}, "fields": [
            {"type": "mrkdwn", "text": format!("*Service*\n{}", clip(&alert.service, 1900))},
            {"type": "mrkdwn", "text": format!("*Severity*\n{}", alert.severity)},
            {"type": "mrkdwn", "text": format!("*State*\n{}", state_name(alert.state))},
            {"type": "mrkdwn", "text": format!("*Started*\n{}", alert.started_at)},
        ]}),
    ];
    if !alert.samples.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": samples_text(alert, 3000)}}));
    }
    blocks.push(json!({"type": "context", "elements": [
        {"type": "mrkdwn", "text": clip(&format!("incident {} · event {}", alert.id, alert.sequence), 3000)}
    ]}));
    json!({"text": clip(&headline(alert), 3000), "blocks": blocks})
}

/// A Discord webhook message: `content` plus one embed.
pub fn discord(alert: &Alert) -> Value {
    let color = match alert.state {
        TransitionKind::Resolved => 0x2e_b8_86,
        _ => match alert.severity.as_str() {
            "high" => 0xd7_26_3d,
            "medium" => 0xf2_a5_41,
            _ => 0xf7_dc_6f,
        },
    };
    let mut fields = vec![
        json!({"name": "Severity", "value": alert.severity, "inline": true}),
        json!({"name": "State", "value": state_name(alert.state), "inline": true}),
        json!({"name": "Reports", "value": alert.reports.to_string(), "inline": true}),
    ];
    if !alert.samples.is_empty() {
        fields.push(
            json!({"name": "What people say", "value": samples_text(alert, 1024), "inline": false}),
        );
    }
    json!({
        "content": clip(&headline(alert), 2000),
        "embeds": [{
            "title": clip(&headline(alert), 256),
            "description": clip(&summary(alert), 4096),
            "color": color,
            "timestamp": alert.at,
            "fields": fields,
            "footer": {"text": clip(&format!("outagewatch · incident {} · event {}", alert.id, alert.sequence), 2048)},
        }],
    })
}

fn state_name(state: TransitionKind) -> &'static str {
    match state {
        TransitionKind::Firing => "firing",
        TransitionKind::Updated => "updated",
        TransitionKind::Resolved => "resolved",
    }
}

/// An alert for `outagewatch alerts test` and for tests.
pub fn sample_alert() -> Alert {
    example(TransitionKind::Firing, "is discord down?")
}

fn example(state: TransitionKind, sample: &str) -> Alert {
    Alert {
        id: "test-20260704T141710Z".into(),
        service: "discord".into(),
        state,
        at: "2026-07-04T14:17:40Z".into(),
        started_at: "2026-07-04T14:17:10Z".into(),
        severity: "medium".into(),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(state: TransitionKind, sample: &str) -> Alert {
        example(state, sample)
    }

    fn chars(v: &Value) -> usize {
        v.as_str().map_or(usize::MAX, |s| s.chars().count())
    }

    #[test]
    fn slack_message_has_the_fields_slack_accepts() {
        let long = "x".repeat(10_000);
        let v = slack(&alert(TransitionKind::Firing, &long));
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
                if let Some(fields) = block["fields"].as_array() {
                    assert!(fields.len() <= 10);
                    for f in fields {
                        assert_eq!(f["type"], "mrkdwn");
                        assert!(chars(&f["text"]) <= 2000);
                    }
                }
            }
            if kind == "context" {
                let elements = block["elements"].as_array().expect("elements");
                assert!(!elements.is_empty() && elements.len() <= 10);
            }
        }
        assert!(v["text"].as_str().expect("text").contains("discord"));
    }

    #[test]
    fn discord_message_has_the_fields_discord_accepts() {
        let long = "y".repeat(10_000);
        for state in [
            TransitionKind::Firing,
            TransitionKind::Updated,
            TransitionKind::Resolved,
        ] {
            let v = discord(&alert(state, &long));
            assert!(chars(&v["content"]) <= 2000);
            let embeds = v["embeds"].as_array().expect("embeds");
            assert_eq!(embeds.len(), 1);
            let e = &embeds[0];
            assert!(chars(&e["title"]) <= 256);
            assert!(chars(&e["description"]) <= 4096);
            assert!(e["color"].as_u64().is_some_and(|c| c <= 0xff_ff_ff));
            assert!(
                chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().expect("ts")).is_ok()
            );
            let fields = e["fields"].as_array().expect("fields");
            assert!(fields.len() <= 25);
            for f in fields {
                assert!(
                    chars(&f["name"]) <= 256 && chars(&f["value"]) <= 1024,
                    "{f}"
                );
                assert!(f["inline"].is_boolean());
            }
            assert!(chars(&e["footer"]["text"]) <= 2048);
        }
    }

    #[test]
    fn json_is_the_alert_schema() {
        let a = alert(TransitionKind::Resolved, "ok");
        let back: Alert =
            serde_json::from_slice(&body(&a, Format::Json).expect("json")).expect("parses");
        assert_eq!(back, a);
    }
}
