//! Property tests (proptest): whatever arrives, the decoders, normalize,
//! the matcher, the config loader and the alert formats never panic, and
//! what they return holds together. The `cargo fuzz` targets in `fuzz/`
//! push the decoders further where a nightly toolchain is available.

use std::path::Path;
use std::sync::OnceLock;

use outagewatch::alert::format::{Format, body, sample_alert};
use outagewatch::config::Config;
use outagewatch::matcher::Matcher;
use outagewatch::normalize::normalize;
use outagewatch::source::{Decoded, FrameError, RawPost, jetstream, mastodon, nostr};
use proptest::prelude::*;

fn matcher() -> &'static Matcher {
    static MATCHER: OnceLock<Matcher> = OnceLock::new();
    MATCHER.get_or_init(|| Matcher::embedded().expect("built-in patterns"))
}

/// Any decode result is a post, a classified skip or a classified error;
/// a post's text is bounded by the frame it came from.
fn coherent(frame: &[u8], result: Result<(Option<i64>, Decoded), FrameError>) {
    match result {
        Ok((_, Decoded::Post(post))) => {
            assert!(post.text.len() <= frame.len(), "text longer than its frame");
        }
        Ok((_, Decoded::Skipped(reason))) => assert!(!reason.name().is_empty()),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// JSON-shaped frames with hostile values where a decoder looks.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        ".{0,40}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("app.bsky.feed.post")),
        Just(serde_json::Value::from("commit")),
        Just(serde_json::Value::from("create")),
        Just(serde_json::Value::from("update")),
        Just(serde_json::Value::from("EVENT")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("kind".to_owned()),
                    Just("time_us".to_owned()),
                    Just("did".to_owned()),
                    Just("commit".to_owned()),
                    Just("record".to_owned()),
                    Just("text".to_owned()),
                    Just("collection".to_owned()),
                    Just("operation".to_owned()),
                    Just("langs".to_owned()),
                    Just("facets".to_owned()),
                    Just("event".to_owned()),
                    Just("payload".to_owned()),
                    Just("content".to_owned()),
                    Just("created_at".to_owned()),
                    Just("pubkey".to_owned()),
                    Just("tags".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..8,
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic_on_bytes(frame in prop::collection::vec(any::<u8>(), 0..512)) {
        coherent(&frame, jetstream::decode_with_time(&frame));
        coherent(&frame, mastodon::decode(&frame, "example.social", None));
        coherent(&frame, nostr::decode(&frame, Some(1_783_173_600_000_000), None));
    }

    #[test]
    fn decoders_never_panic_on_json(value in json_value()) {
        let frame = value.to_string().into_bytes();
        coherent(&frame, jetstream::decode_with_time(&frame));
        coherent(&frame, mastodon::decode(&frame, "example.social", None));
        coherent(&frame, nostr::decode(&frame, Some(1_783_173_600_000_000), None));
        // The same value as a Mastodon `update` payload and a Nostr EVENT.
        let wrapped = serde_json::json!({"event": "update", "payload": value.to_string()}).to_string();
        coherent(wrapped.as_bytes(), mastodon::decode(wrapped.as_bytes(), "x", None));
        let event = serde_json::json!(["EVENT", "sub", value]).to_string();
        coherent(event.as_bytes(), nostr::decode(event.as_bytes(), Some(0), None));
    }

    #[test]
    fn matching_any_unicode_never_panics_and_spans_are_in_bounds(
        text in "\\PC{0,200}",
        langs in prop::collection::vec("[a-z]{2}", 0..3),
    ) {
        let post = normalize(RawPost {
            time_us: 0,
            author: "a".into(),
            uri: String::new(),
            key: None,
            text,
            langs,
            tags: Vec::new(),
        });
        let verdict = matcher().explain(&post);
        // Spans count characters (what a person counts), and the text at
        // them is the text the reason says it matched.
        let chars: Vec<char> = post.text.chars().collect();
        for reason in &verdict.reasons {
            if let Some([start, end]) = reason.at {
                prop_assert!(start <= end && end <= chars.len(), "{reason:?} in {:?}", post.text);
                let at: String = chars[start..end].iter().collect();
                prop_assert_eq!(Some(at), reason.matched.clone(), "{:?} in {:?}", reason, post.text);
            }
        }
        prop_assert!(verdict.score.is_finite());
        let fast = matcher().classify(&post);
        prop_assert_eq!(fast.class, verdict.class, "classify and explain agree");
    }

    #[test]
    fn the_config_loader_never_panics(text in "(\\PC|\n){0,300}") {
        let _ = Config::parse(Path::new("fuzz.toml"), &text);
    }

    #[test]
    fn config_numbers_are_checked_or_accepted_never_a_panic(
        table in prop::sample::select(vec![
            ("daemon", "status_secs"), ("daemon", "shutdown_grace_secs"),
            ("window", "bucket_secs"), ("window", "max_discovered"), ("window", "sample_chars"),
            ("detector", "fire_ratio"), ("detector", "window_secs"), ("health", "silence_secs"),
        ]),
        value in prop_oneof![
            any::<f64>().prop_map(|f| format!("{f:?}")),
            any::<i64>().prop_map(|i| i.to_string()),
            Just("inf".to_owned()), Just("-inf".to_owned()), Just("nan".to_owned()),
            Just("1e300".to_owned()),
        ],
    ) {
        let text = format!("[{}]\n{} = {}\n", table.0, table.1, value);
        if let Err(e) = Config::parse(Path::new("ow.toml"), &text) {
            let message = e.to_string();
            prop_assert!(message.starts_with("ow.toml:"), "{message}");
            prop_assert!(message.contains(table.1), "names the key: {message}");
        }
    }

    #[test]
    fn every_alert_format_is_valid_json(
        service in "\\PC{0,80}",
        sample in "(\\PC|\n){0,600}",
        reports in any::<u64>(),
        rate in any::<f64>(),
    ) {
        let mut alert = sample_alert();
        alert.service = service;
        alert.samples[0].text = sample;
        alert.reports = reports;
        alert.rate_per_min = rate;
        for format in [Format::Json, Format::Slack, Format::Discord] {
            match body(&alert, format) {
                Ok(bytes) => {
                    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&bytes);
                    prop_assert!(parsed.is_ok(), "{format:?} is not JSON");
                }
                // Only a number JSON cannot hold may refuse, with an error.
                Err(e) => prop_assert!(!rate.is_finite(), "{format:?}: {e}"),
            }
        }
    }
}
