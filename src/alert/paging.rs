//! Incident events for paging and alerting systems: PagerDuty Events API
//! v2, Opsgenie Alert API v2 and Alertmanager API v2. Each keeps an
//! incident open at the receiver keyed by our incident id, and is told when
//! it is resolved. Limits are the ones each API documents; every text is
//! cut by characters to fit.

use serde_json::{Map, Value, json};

use super::format::{clip, defang, headline, sample_link, summary, unmention};
use super::{Alert, AlertKind};
use crate::detect::{Severity, TransitionKind};

/// PagerDuty: `payload.summary` ≤ 1,024 characters, `dedup_key` ≤ 255.
pub const PD_SUMMARY: usize = 1024;
pub const PD_DEDUP: usize = 255;
/// Opsgenie: `message` ≤ 130, `alias` ≤ 512, `description` ≤ 15,000, ≤ 20
/// tags of ≤ 50, `entity` ≤ 512, `source` ≤ 100, `note` ≤ 25,000, `details`
/// ≤ 8,000 characters in all.
pub const OG_MESSAGE: usize = 130;
pub const OG_ALIAS: usize = 512;
pub const OG_DESCRIPTION: usize = 15_000;
pub const OG_DETAILS: usize = 8_000;
/// Alertmanager documents no limits; we keep annotations ≤ 4,096
/// characters and label values ≤ 256 so alerts stay readable.
pub const AM_ANNOTATION: usize = 4096;
pub const AM_LABEL: usize = 256;

const SAMPLE_CHARS: usize = 280;

/// Our own fields in text (a discovered service is named by a hashtag):
/// as a post's text.
fn plain(s: &str) -> String {
    post_text(s)
}

/// A post's text: one line, links defanged, no invisible controls and no
/// mentions, as the chat formats show it. These receivers are often
/// bridged to Slack or Discord, where `<!channel>`, `@everyone` and
/// `[login](https://…)` as posted would ping and link.
fn post_text(s: &str) -> String {
    unmention(&defang(s))
}

/// Our severity in PagerDuty's terms. A source's health is `error` (our
/// blind spot, not an outage); a test is `info`.
pub fn pagerduty_severity(alert: &Alert) -> &'static str {
    if alert.test {
        return "info";
    }
    if alert.kind == AlertKind::Source {
        return "error";
    }
    match alert.severity {
        Severity::High => "critical",
        Severity::Medium => "error",
        Severity::Low => "warning",
    }
}

/// Our severity as an Opsgenie priority (P1 highest).
pub fn opsgenie_priority(alert: &Alert) -> &'static str {
    if alert.test {
        return "P5";
    }
    if alert.kind == AlertKind::Source {
        return "P2";
    }
    match alert.severity {
        Severity::High => "P1",
        Severity::Medium => "P2",
        Severity::Low => "P3",
    }
}

/// The samples for `custom_details`: each post's text, and its link when
/// it is a web page ([`sample_link`], as in `links`), defanged as post
/// text is. A post's URI is its origin server's to set (a Mastodon
/// status's `url`): it went out raw, and `<!channel>`, `@everyone` or a
/// look-alike link reached a Slack or Discord bridge.
fn samples(alert: &Alert) -> Vec<Value> {
    alert
        .samples
        .iter()
        .map(|s| {
            let mut sample = json!({"text": clip(&post_text(&s.text), SAMPLE_CHARS)});
            if let Some(link) = sample_link(&s.uri) {
                sample["uri"] = json!(clip(&post_text(&link), 512));
            }
            sample
        })
        .collect()
}

fn sample_lines(alert: &Alert) -> String {
    alert
        .samples
        .iter()
        .map(|s| format!("> {}", clip(&post_text(&s.text), SAMPLE_CHARS)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A PagerDuty Events API v2 event: `trigger` on firing and updated (the
/// same `dedup_key` updates the open alert), `resolve` on resolved.
pub fn pagerduty(alert: &Alert, routing_key: &str) -> Value {
    let dedup_key = clip(&alert.id, PD_DEDUP);
    if alert.state == TransitionKind::Resolved {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        });
    }
    let links: Vec<Value> = alert
        .samples
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            sample_link(&s.uri)
                .map(|href| json!({"href": href, "text": format!("sample post {}", i + 1)}))
        })
        .collect();
    let summary_text = format!("{}: {}", headline(alert, &plain), summary(alert, &plain));
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "client": "outagewatch",
        "payload": {
            "summary": clip(&summary_text, PD_SUMMARY),
            "source": "outagewatch",
            "severity": pagerduty_severity(alert),
            "timestamp": alert.at,
            "component": clip(&alert.service, 255),
            "group": match alert.kind { AlertKind::Source => "sources", AlertKind::Outage => "outages" },
            "class": match alert.kind { AlertKind::Source => "source_health", AlertKind::Outage => "outage_reports" },
            "custom_details": {
                "state": alert.state.as_str(),
                "severity": alert.severity,
                "reports": alert.reports,
                "authors": alert.authors,
                "rate_per_min": alert.rate_per_min,
                "baseline_per_min": alert.baseline_per_min,
                "started_at": alert.started_at,
                "sequence": alert.sequence,
                "detail": alert.detail.as_deref().map(|d| clip(&post_text(d), 500)),
                "test": alert.test,
                "samples": samples(alert),
            },
        },
        "links": links,
    })
}

/// Which Opsgenie endpoint: `POST /v2/alerts`, or `POST
/// /v2/alerts/{alias}/close?identifierType=alias`.
#[derive(Debug, Clone, PartialEq)]
pub enum OpsgenieCall {
    Create,
    Close { alias: String },
}

/// What to send Opsgenie. Firing and updated create; resolved closes by
/// alias.
///
/// An `updated` (the detector sends one only when an incident's severity
/// rises) is a create with the same `alias` and the new `priority`:
/// Opsgenie de-duplicates it into the open alert, counts it, and, as its
/// priority is higher, raises the open alert's priority and restarts its
/// notification flow, as Opsgenie documents for a de-duplicated create of
/// higher priority
/// (<https://support.atlassian.com/opsgenie/docs/update-alert-priority-level/>).
/// A create is chosen over "Update Alert Priority" (`PUT
/// /v2/alerts/{alias}/priority`) because Opsgenie applies requests
/// asynchronously and answers a valid one 202 before it is applied: a
/// priority update that overtakes a late create of the same alias fails
/// after the 202 ("Alert does not exist"), where it cannot be retried,
/// while a create reaches the same open alert whichever way round they
/// are applied. The open alert keeps its first `message` and
/// `description`.
pub fn opsgenie(alert: &Alert) -> (OpsgenieCall, Value) {
    let alias = clip(&alert.id, OG_ALIAS);
    if alert.state == TransitionKind::Resolved {
        return (
            OpsgenieCall::Close { alias },
            json!({
                "source": "outagewatch",
                "user": "outagewatch",
                "note": clip(&summary(alert, &plain), 25_000),
            }),
        );
    }
    let mut tags = vec![
        "outagewatch".to_owned(),
        match alert.kind {
            AlertKind::Source => "source",
            AlertKind::Outage => "outage",
        }
        .to_owned(),
        format!("severity:{}", alert.severity),
    ];
    if alert.test {
        tags.push("test".into());
    }
    let mut details = Map::new();
    details.insert("service".into(), json!(clip(&alert.service, 200)));
    details.insert("state".into(), json!(alert.state.as_str()));
    details.insert("severity".into(), json!(alert.severity.as_str()));
    details.insert("reports".into(), json!(alert.reports.to_string()));
    details.insert("started_at".into(), json!(clip(&alert.started_at, 40)));
    details.insert("sequence".into(), json!(alert.sequence.to_string()));
    if let Some(detail) = &alert.detail {
        details.insert("detail".into(), json!(clip(&post_text(detail), 500)));
    }
    let description = format!(
        "{}\n\n{}\n\nincident {} · event {}",
        summary(alert, &plain),
        sample_lines(alert),
        plain(&alert.id),
        alert.sequence
    );
    (
        OpsgenieCall::Create,
        json!({
            "message": clip(&opsgenie_message(alert), OG_MESSAGE),
            "alias": alias,
            "description": clip(&description, OG_DESCRIPTION),
            "tags": tags,
            "details": details,
            "entity": clip(&alert.service, 512),
            "source": "outagewatch",
            "priority": opsgenie_priority(alert),
        }),
    )
}

/// The message of an Opsgenie alert. Opsgenie keeps the message of the
/// alert's first create (a later one under its alias only counts and
/// raises the priority), so an outage's names neither its state nor its
/// severity: the escalated alert read "discord: may be down (low)" at P1.
/// The priority shows the severity, the description the figures.
fn opsgenie_message(alert: &Alert) -> String {
    match alert.kind {
        AlertKind::Outage => {
            let test = if alert.test { "[TEST] " } else { "" };
            format!(
                "{test}{}: outage reported",
                plain(&clip(&alert.service, 100))
            )
        }
        AlertKind::Source => headline(alert, &plain),
    }
}

/// Alertmanager's `alertname` label for an alert.
pub fn alertname(alert: &Alert) -> &'static str {
    match alert.kind {
        AlertKind::Source => "OutageSourceUnhealthy",
        AlertKind::Outage => "OutageReported",
    }
}

/// `endsAt`: for a resolved alert its event time; while firing, `ttl`
/// from now (wall clock, as Alertmanager compares it with its own), so the
/// alert expires by itself if we stop re-posting it.
pub fn alertmanager_ends_at(
    alert: &Alert,
    ttl: std::time::Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    match alert.state {
        TransitionKind::Resolved => alert.at.clone(),
        _ => {
            let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(5));
            crate::wall::rfc3339_at(now + ttl)
        }
    }
}

/// One Alertmanager alert. Labels identify it (`alertname`, `service`,
/// `severity`, `incident`); `ends_at` is when Alertmanager should consider
/// it over unless re-posted (firing) or when it ended (resolved).
pub fn alertmanager_alert(alert: &Alert, ends_at: &str) -> Value {
    let mut labels = Map::new();
    labels.insert("alertname".into(), json!(alertname(alert)));
    labels.insert("service".into(), json!(clip(&alert.service, AM_LABEL)));
    labels.insert("severity".into(), json!(alert.severity.as_str()));
    labels.insert("incident".into(), json!(clip(&alert.id, AM_LABEL)));
    if alert.test {
        labels.insert("test".into(), json!("true"));
    }
    let mut annotations = Map::new();
    annotations.insert(
        "summary".into(),
        json!(clip(&headline(alert, &plain), AM_ANNOTATION)),
    );
    annotations.insert(
        "description".into(),
        json!(clip(&summary(alert, &plain), AM_ANNOTATION)),
    );
    if !alert.samples.is_empty() {
        annotations.insert(
            "samples".into(),
            json!(clip(&sample_lines(alert), AM_ANNOTATION)),
        );
    }
    if let Some(detail) = &alert.detail {
        annotations.insert(
            "detail".into(),
            json!(clip(&post_text(detail), AM_ANNOTATION)),
        );
    }
    json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": alert.started_at,
        "endsAt": ends_at,
    })
}

/// What to post for `alert` when `previous` is the incident's alert last
/// posted: the alert, and the previous one ended now when its labels (its
/// severity) differ, so it does not linger until it expires.
pub fn alertmanager_batch(
    alert: &Alert,
    previous: Option<&Alert>,
    ttl: std::time::Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Value> {
    let mut out = vec![alertmanager_alert(
        alert,
        &alertmanager_ends_at(alert, ttl, now),
    )];
    if let Some(previous) = previous.filter(|p| p.severity != alert.severity) {
        let ended = crate::wall::rfc3339_at(now);
        out.push(alertmanager_alert(previous, &ended));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::format::example;

    /// A post as PagerDuty, Opsgenie and Alertmanager carry it: as the chat
    /// formats show it, so a bridge to Slack or Discord pings nobody and
    /// links nothing; a family emoji keeps its joiners.
    #[test]
    fn the_plain_formats_carry_no_mention_link_or_hidden_control() {
        let post = "<!channel> <@U024BE7LH> @everyone @here [login](https://evil.example) \u{202E}nwod\u{2066} \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        let shown = "<\u{200B}!channel> <\u{200B}@U024BE7LH> @\u{200B}everyone @\u{200B}here [login](https[:]//evil.example) nwod \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        let alert = example(TransitionKind::Firing, post);
        let pd = pagerduty(&alert, "key");
        assert_eq!(pd["payload"]["custom_details"]["samples"][0]["text"], shown);
        let (_, og) = opsgenie(&alert);
        let description = og["description"].as_str().expect("description");
        assert!(description.contains(&format!("> {shown}")), "{description}");
        let am = alertmanager_alert(&alert, "2026-07-04T15:00:00Z");
        assert_eq!(am["annotations"]["samples"], format!("> {shown}"));
    }

    /// A sample's URI in PagerDuty's `custom_details` is its web link,
    /// defanged, or absent when it is not one: it went out as the post's
    /// server set it.
    #[test]
    fn pagerduty_sample_uris_are_checked_links_defanged() {
        let mut alert = example(TransitionKind::Firing, "down?");
        let sample = alert.samples[0].clone();
        let uris = [
            "at://did:plc:a/app.bsky.feed.post/k",
            "https://evil.example/@everyone/<!channel>",
            "<!channel> @here",
            "javascript:alert(1)",
        ];
        alert.samples = uris
            .iter()
            .map(|uri| crate::alert::AlertSample {
                uri: (*uri).into(),
                ..sample.clone()
            })
            .collect();
        let pd = pagerduty(&alert, "key");
        let samples = &pd["payload"]["custom_details"]["samples"];
        assert_eq!(
            samples[0]["uri"],
            "https[:]//bsky.app/profile/did:plc:a/post/k"
        );
        assert_eq!(
            samples[1]["uri"],
            "https[:]//evil.example/@\u{200B}everyone/%3C!channel%3E"
        );
        for i in [2, 3] {
            assert!(samples[i].get("uri").is_none(), "{}", samples[i]);
            assert_eq!(samples[i]["text"], "down?");
        }
    }

    #[test]
    fn pagerduty_triggers_then_resolves_with_one_dedup_key() {
        let firing = example(TransitionKind::Firing, "is discord down?");
        let v = pagerduty(&firing, "R0UTING");
        assert_eq!(v["event_action"], "trigger");
        assert_eq!(v["dedup_key"], firing.id);
        assert_eq!(v["payload"]["severity"], "error");
        assert_eq!(v["payload"]["source"], "outagewatch");
        assert_eq!(
            v["links"][0]["href"],
            "https://bsky.app/profile/did:plc:a/post/k"
        );
        let mut resolved = firing.clone();
        resolved.state = TransitionKind::Resolved;
        let r = pagerduty(&resolved, "R0UTING");
        assert_eq!(r["event_action"], "resolve");
        assert_eq!(r["dedup_key"], v["dedup_key"]);
        let mut high = firing;
        high.severity = Severity::High;
        assert_eq!(pagerduty(&high, "k")["payload"]["severity"], "critical");
    }

    #[test]
    fn opsgenie_creates_then_closes_by_alias() {
        let mut firing = example(TransitionKind::Firing, "is discord down?");
        firing.service = "s".repeat(400);
        let (call, v) = opsgenie(&firing);
        assert_eq!(call, OpsgenieCall::Create);
        assert!(v["message"].as_str().expect("message").chars().count() <= OG_MESSAGE);
        assert_eq!(v["alias"], firing.id);
        assert_eq!(v["priority"], "P2");
        let mut resolved = firing.clone();
        resolved.state = TransitionKind::Resolved;
        let (call, body) = opsgenie(&resolved);
        assert_eq!(
            call,
            OpsgenieCall::Close {
                alias: firing.id.clone()
            }
        );
        assert_eq!(body["source"], "outagewatch");
    }

    /// Every state × severity × kind: which Opsgenie call and what it
    /// carries. An escalation (`updated`) is a create with the incident's
    /// alias and the new, higher priority, which Opsgenie de-duplicates
    /// into the open alert and raises it to; resolved closes by alias
    /// whatever the severity.
    #[test]
    fn opsgenie_calls_by_state_severity_and_kind() {
        use TransitionKind::{Firing, Resolved, Updated};
        let outage = |severity| (AlertKind::Outage, severity, false);
        let cases = [
            (outage(Severity::Low), "P3", "severity:low"),
            (outage(Severity::Medium), "P2", "severity:medium"),
            (outage(Severity::High), "P1", "severity:high"),
            (
                (AlertKind::Source, Severity::High, false),
                "P2",
                "severity:high",
            ),
            (
                (AlertKind::Source, Severity::Low, false),
                "P2",
                "severity:low",
            ),
            ((AlertKind::Outage, Severity::High, true), "P5", "test"),
        ];
        for ((kind, severity, test), priority, tag) in cases {
            for state in [Firing, Updated, Resolved] {
                let mut alert = example(state, "is discord down?");
                (alert.kind, alert.severity, alert.test) = (kind, severity, test);
                let what = format!("{state:?} {kind:?} {severity:?} test={test}");
                let (call, body) = opsgenie(&alert);
                if state == Resolved {
                    let alias = alert.id.clone();
                    assert_eq!(call, OpsgenieCall::Close { alias }, "{what}");
                    assert!(body.get("priority").is_none(), "{what}");
                    assert_eq!(body["source"], "outagewatch", "{what}");
                    assert!(body["note"].as_str().is_some_and(|n| !n.is_empty()));
                    continue;
                }
                assert_eq!(call, OpsgenieCall::Create, "{what}");
                assert_eq!(body["alias"], alert.id, "{what}");
                assert_eq!(body["priority"], priority, "{what}");
                let tags = body["tags"].as_array().expect("tags");
                assert!(tags.contains(&json!(tag)), "{what}: {tags:?}");
                assert_eq!(body["details"]["state"], state.as_str(), "{what}");
            }
        }
    }

    /// An escalation low → medium → high reaches Opsgenie as three creates
    /// of one alias with priorities P3, P2, P1: each higher than the last,
    /// so each raises the open alert (a de-duplicated create never lowers
    /// it).
    #[test]
    fn an_escalating_incident_raises_its_opsgenie_priority_under_one_alias() {
        let mut alert = example(TransitionKind::Firing, "down?");
        let mut sent = Vec::new();
        for (state, severity) in [
            (TransitionKind::Firing, Severity::Low),
            (TransitionKind::Updated, Severity::Medium),
            (TransitionKind::Updated, Severity::High),
        ] {
            (alert.state, alert.severity) = (state, severity);
            let (call, body) = opsgenie(&alert);
            assert_eq!(call, OpsgenieCall::Create);
            sent.push((
                body["alias"].clone(),
                body["priority"].clone(),
                body["message"].clone(),
            ));
        }
        let alias = json!(alert.id);
        // Opsgenie keeps the first create's message: it must not say
        // "low" once the alert is P1.
        let message = json!(format!("{}: outage reported", alert.service));
        assert_eq!(
            sent,
            [
                (alias.clone(), json!("P3"), message.clone()),
                (alias.clone(), json!("P2"), message.clone()),
                (alias, json!("P1"), message),
            ]
        );
    }

    #[test]
    fn alertmanager_ends_an_alert_whose_severity_changed() {
        let now = chrono::DateTime::from_timestamp(1_783_174_000, 0).expect("time");
        let ttl = std::time::Duration::from_secs(240);
        let firing = example(TransitionKind::Firing, "down?");
        let mut updated = firing.clone();
        updated.state = TransitionKind::Updated;
        updated.severity = Severity::High;
        let batch = alertmanager_batch(&updated, Some(&firing), ttl, now);
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0]["labels"]["severity"], "high");
        assert_eq!(batch[0]["endsAt"], "2026-07-04T14:10:40Z");
        assert_eq!(batch[1]["labels"]["severity"], "medium");
        assert_eq!(batch[1]["endsAt"], "2026-07-04T14:06:40Z", "ended now");
        // Same severity: one alert; resolved: ends at its own time.
        assert_eq!(
            alertmanager_batch(&firing, Some(&firing), ttl, now).len(),
            1
        );
        let mut resolved = updated.clone();
        resolved.state = TransitionKind::Resolved;
        let batch = alertmanager_batch(&resolved, Some(&updated), ttl, now);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0]["endsAt"], resolved.at);
    }

    #[test]
    fn alertmanager_alert_has_the_labels_and_times() {
        let firing = example(TransitionKind::Firing, "is discord down?");
        let v = alertmanager_alert(&firing, "2026-07-04T15:00:00Z");
        assert_eq!(v["labels"]["alertname"], "OutageReported");
        assert_eq!(v["labels"]["service"], "discord");
        assert_eq!(v["labels"]["severity"], "medium");
        assert_eq!(v["startsAt"], firing.started_at);
        assert_eq!(v["endsAt"], "2026-07-04T15:00:00Z");
        assert!(
            v["annotations"]["samples"]
                .as_str()
                .expect("samples")
                .contains("is discord down?")
        );
    }
}
