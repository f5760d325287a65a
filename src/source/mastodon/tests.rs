//! Decoding statuses and events, and reading the stream's control frames.

use super::*;
use crate::text::MAX_TEXT_CHARS;

fn update(status: serde_json::Value) -> String {
    serde_json::json!({"stream": ["public"], "event": "update", "payload": status.to_string()})
        .to_string()
}

fn status() -> serde_json::Value {
    serde_json::json!({
        "id": "1", "created_at": "2026-07-04T14:17:05.123Z",
        "content": "<p>is <a href=\"https://x\">#<span>Discord</span></a> down?<br/>it won&#39;t load &amp; I&apos;m sad</p>",
        "spoiler_text": "", "language": "en", "tags": [{"name": "discord", "url": "u"}],
        "account": {"id": "9", "acct": "alice", "username": "alice"},
        "uri": "https://mastodon.example/users/alice/statuses/1",
        "url": "https://mastodon.example/@alice/1", "reblog": null, "visibility": "public"
    })
}

/// An instance's error is the instance's own words: one line, bounded,
/// with no control characters to reach a terminal.
#[test]
fn a_servers_error_is_one_line_of_visible_text() {
    let frame = serde_json::json!({"error": format!("a\nb\u{1b}[31m{}", "x".repeat(5000)), "status": "401"});
    let e = decode(frame.to_string().as_bytes(), "i", None).expect_err("an error");
    let text = e.to_string();
    assert!(text.contains("server error: a b[31mxxx"), "{text}");
    assert!(!text.contains(['\n', '\u{1b}']), "{text}");
    assert!(text.chars().count() < 1000, "{}", text.len());
}

/// A local account is named by its status's `uri` host, the name
/// other instances know it by, not by the host the stream came from;
/// a remote one keeps its `acct`; with no host anywhere the status is
/// refused (one instance's `alice` would be every instance's).
#[test]
fn a_local_account_is_named_as_other_instances_name_it() {
    let author = |acct: &str, uri: &str, instance: &str| {
        let mut status = status();
        status["account"]["acct"] = acct.into();
        status["uri"] = uri.into();
        match decode(update(status).as_bytes(), instance, None) {
            Ok((_, Decoded::Post(post))) => Ok(post.author),
            Ok((_, other)) => panic!("{acct} {uri}: {other:?}"),
            Err(e) => Err(e.to_string()),
        }
    };
    let uri = "https://mastodon.social/users/alice/statuses/1";
    for (acct, uri, instance, want) in [
        (
            "alice",
            uri,
            "streaming.mastodon.social",
            "alice@mastodon.social",
        ),
        ("alice", uri, "second.example:8443", "alice@mastodon.social"),
        ("alice", uri, "", "alice@mastodon.social"),
        (
            "alice",
            "https://Mastodon.Social:443/x",
            "i",
            "alice@mastodon.social",
        ),
        (
            "bob@town.social",
            uri,
            "streaming.mastodon.social",
            "bob@town.social",
        ),
        (
            "alice",
            "tag:mastodon.social,2026:1",
            "mastodon.social",
            "alice@mastodon.social",
        ),
        ("alice", "", "mastodon.social", "alice@mastodon.social"),
    ] {
        assert_eq!(
            author(acct, uri, instance).as_deref(),
            Ok(want),
            "{acct} {uri} {instance}"
        );
    }
    let refused = author("alice\n\u{1b}[2J", "not a url", "").expect_err("no host");
    assert!(refused.contains("no instance"), "{refused}");
    assert!(!refused.contains(['\n', '\u{1b}']), "{refused}");
}

/// A status of nearly a megabyte, through the decoder: its text is
/// the first [`MAX_TEXT_CHARS`] characters (see `html`'s bounds).
#[test]
fn a_long_status_decodes_to_its_first_characters() {
    let mut long = status();
    long["content"] = format!("<p>{}</p>", "&amp;".repeat(200_000)).into();
    let (_, decoded) = decode(update(long).as_bytes(), "i", None).expect("decodes");
    let Decoded::Post(post) = decoded else {
        panic!("a post")
    };
    assert_eq!(post.text, "&".repeat(MAX_TEXT_CHARS));
}

/// A frame's status's `content`.
fn content_of(frame: &str) -> String {
    let frame: StreamFrame = serde_json::from_str(frame).expect("frame");
    let status: Status = serde_json::from_str(&frame.payload.expect("payload")).expect("status");
    status.content
}

/// Not a check: what a status costs to decode, by its HTML. Run with
/// `cargo test --lib mastodon::tests::time_costly_statuses -- --ignored --nocapture`
/// (timings are printed, never asserted).
#[test]
#[ignore]
fn time_costly_statuses() {
    let contents = [
        ("plain", "discord is down ".repeat(62_000)),
        ("&amp; x180k", "&amp;".repeat(180_000)),
        ("&notit; x120k", "&notit;".repeat(120_000)),
        ("<p>x</p> x100k", "<p>x</p>".repeat(100_000)),
        (
            "ordinary",
            status()["content"].as_str().unwrap_or("").to_owned(),
        ),
    ];
    for (name, content) in contents {
        let mut s = status();
        s["content"] = content.into();
        let frame = update(s);
        let runs = 20;
        let start = std::time::Instant::now();
        for _ in 0..runs {
            let _ = std::hint::black_box(decode(frame.as_bytes(), "i", None));
        }
        let per = start.elapsed() / runs;
        let content = content_of(&frame);
        let start = std::time::Instant::now();
        for _ in 0..runs {
            let _ = std::hint::black_box(html_to_text(&content));
        }
        let html = start.elapsed() / runs;
        println!(
            "{name}: {} bytes, {per:?} a frame, of which the HTML {html:?}",
            frame.len()
        );
    }
}

#[test]
fn update_is_a_post_with_plain_text() {
    let (t, decoded) =
        decode(update(status()).as_bytes(), "mastodon.example", None).expect("decodes");
    assert_eq!(t, Some(1_783_174_625_123_000), "no arrival: the claim");
    let arrival = 1_783_174_700_000_000;
    let (t, _) = decode(
        update(status()).as_bytes(),
        "mastodon.example",
        Some(arrival),
    )
    .expect("decodes");
    assert_eq!(t, Some(arrival), "event time is the arrival time");
    let Decoded::Post(post) = decoded else {
        panic!("a post")
    };
    assert_eq!(post.text, "is #Discord down?\nit won't load & I'm sad");
    assert_eq!(post.author, "alice@mastodon.example");
    assert_eq!(
        post.key,
        Some(crate::source::dedupe::key_of(&[
            "https://mastodon.example/users/alice/statuses/1"
        ]))
    );
    assert_eq!(post.uri, "https://mastodon.example/@alice/1");
    assert_eq!(post.langs, vec!["en"]);
    assert_eq!(post.tags, vec!["discord"]);
}

/// Each event the stream documents, well formed, is skipped by its
/// reason (and, being an event of the stream, is data for the source's
/// health); the same events malformed, and unknown events, are
/// malformed frames.
#[test]
fn every_event_type_is_handled() {
    let edit = serde_json::json!({
        "stream": ["public"], "event": "status.update", "payload": status().to_string()
    })
    .to_string();
    let frames = [
        (
            r#"{"stream":["public"],"event":"delete","payload":"1"}"#,
            SkipReason::PostDelete,
        ),
        (
            r#"{"stream":["public"],"event":"delete","payload":"113580542345678901"}"#,
            SkipReason::PostDelete,
        ),
        (
            r#"{"stream":["public"],"event":"delete","payload":"01HQ3C5GZPKV1B8Z7YJ3R8N0QX"}"#,
            SkipReason::PostDelete,
        ),
        (edit.as_str(), SkipReason::PostUpdate),
    ];
    for (frame, reason) in frames {
        let decoded = decode(frame.as_bytes(), "i", None).map(|d| d.1);
        assert_eq!(decoded, Ok(Decoded::Skipped(reason)), "{frame}");
        assert!(reason.shows_life(), "{frame}");
    }
    // A notice about the token's user, never on a public stream: not
    // the stream's life (an instance sending only this looked healthy
    // for ever).
    let notice = r#"{"stream":["public"],"event":"filters_changed"}"#;
    let decoded = decode(notice.as_bytes(), "i", None).map(|d| d.1);
    assert_eq!(decoded, Ok(Decoded::Skipped(SkipReason::ServerNotice)));
    assert!(!SkipReason::ServerNotice.shows_life());
    let long_id = format!(
        r#"{{"event":"delete","payload":"{}"}}"#,
        "1".repeat(MAX_STATUS_ID_BYTES + 1)
    );
    // (frame, reason of the fault)
    let malformed = [
        (r#"{"event":"delete"}"#, "missing_field"),
        (r#"{"event":"delete","payload":""}"#, "bad_record"),
        (r#"{"event":"delete","payload":"{}"}"#, "bad_record"),
        (r#"{"event":"delete","payload":"1 2"}"#, "bad_record"),
        (long_id.as_str(), "bad_record"),
        (r#"{"event":"delete","payload":1}"#, "bad_json"),
        (r#"{"event":"status.update"}"#, "missing_field"),
        (r#"{"event":"status.update","payload":"{}"}"#, "bad_record"),
        (r#"{"event":"status.update","payload":"1"}"#, "bad_record"),
        (r#"{"event":"announcement","payload":"{}"}"#, "bad_record"),
        (r#"{"event":"X"}"#, "bad_record"),
        (r#"{"event":""}"#, "bad_record"),
        (r#"{"stream":["public"]}"#, "missing_field"),
    ];
    for (frame, reason) in malformed {
        assert_eq!(
            decode(frame.as_bytes(), "i", None).map_err(|e| e.reason()),
            Err(reason),
            "{frame}"
        );
    }
    let mut boosted = status();
    boosted["reblog"] = serde_json::json!({"id": "2"});
    assert_eq!(
        decode(update(boosted).as_bytes(), "i", None).map(|d| d.1),
        Ok(Decoded::Skipped(SkipReason::NotAPost))
    );
    let bad = [
        r#"{"error":"Invalid access token","status":401}"#,
        r#"{"event":"update","payload":"not json"}"#,
        r#"{"event":"update"}"#,
        "garbage",
    ];
    for frame in bad {
        assert!(decode(frame.as_bytes(), "i", None).is_err(), "{frame}");
    }
}

#[test]
fn claims_far_ahead_change_nothing_and_old_claims_are_backfill() {
    let claimed = 1_783_174_625_123_000;
    let mut ahead = status();
    ahead["created_at"] = "2100-01-01T00:00:00Z".into();
    let (t, decoded) = decode(update(ahead).as_bytes(), "i", Some(claimed)).expect("decodes");
    assert_eq!(t, Some(claimed));
    assert!(matches!(decoded, Decoded::Post(_)));
    let arrival = claimed + BACKFILL_HORIZON_US + 1;
    assert_eq!(
        decode(update(status()).as_bytes(), "i", Some(arrival)),
        Ok((Some(arrival), Decoded::Skipped(SkipReason::Backfill)))
    );
}

#[test]
fn control_frames_and_connection() {
    let mut protocol = MastodonProtocol {
        stream: "public".into(),
        token: Some("t0k".into()),
        discovery: None,
    };
    assert_eq!(
        protocol
            .connect_url(&"wss://streaming.example/api/v1/streaming".into(), None)
            .secret(),
        "wss://streaming.example/api/v1/streaming?stream=public"
    );
    assert_eq!(
        protocol.headers(),
        vec![("authorization", "Bearer t0k".to_owned())]
    );
    // A token refused or a stream forbidden, in the stream: refused for
    // good, as a 401 or 403 to the handshake is.
    let statuses = [
        ("401", 401),
        ("\"401\"", 401),
        ("\" 401 \"", 401),
        ("403", 403),
    ];
    for (status, code) in statuses {
        let frame = format!(r#"{{"error":"Invalid access token","status":{status}}}"#);
        assert_eq!(
            protocol.control(&frame),
            Control::Refused(format!(
                "the server refused in the stream with status {code}: Invalid access token"
            )),
            "{frame}"
        );
    }
    // Any other status is an error the stream goes on after.
    for code in [400, 404, 429, 500] {
        let frame = format!(r#"{{"error":"Something","status":{code}}}"#);
        assert_eq!(
            protocol.control(&frame),
            Control::ServerError(format!("Something (status {code})")),
            "{frame}"
        );
    }
    for status in ["\"soon\"", "-1", "{}", "null"] {
        let frame = format!(r#"{{"error":"Rate limited","status":{status}}}"#);
        assert_eq!(
            protocol.control(&frame),
            Control::ServerError("Rate limited".into()),
            "{frame}"
        );
    }
    assert_eq!(protocol.control(&update(status())), Control::Data);
}
