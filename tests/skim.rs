//! The skim (`source::jetstream::skim`) against the full decoder: whenever
//! it vouches for a frame, the full parse says the same thing, on the real
//! captured frames and on generated ones; what it cannot vouch for (a cut
//! frame, invalid UTF-8, a post) is left to the full decoder.

mod support;

use outagewatch::source::jetstream::{POST_COLLECTION, parse_frame, skim_non_post};
use outagewatch::source::{Decoded, FrameError, SkipReason};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Value, json};

fn real_lines() -> Option<Vec<String>> {
    let dir = support::shared_dir()?.join("fixtures/jetstream");
    let mut lines = Vec::new();
    for file in ["expected_v1.jsonl", "golden_v1.jsonl"] {
        let text = std::fs::read_to_string(dir.join(file)).expect("fixture");
        lines.extend(text.lines().map(str::to_owned));
    }
    Some(lines)
}

/// On every real frame the skim vouches for, the full parse agrees; it
/// vouches for most non-posts and for no post.
#[test]
fn on_real_frames_the_skim_agrees_with_the_full_parse() {
    let Some(lines) = real_lines() else { return };
    let (mut vouched, mut non_posts) = (0, 0);
    for line in &lines {
        let parsed = parse_frame(line.as_bytes()).expect("real frames parse");
        if parsed.decoded == Decoded::Skipped(SkipReason::NotAPost) {
            non_posts += 1;
        }
        if let Some(skimmed) = skim_non_post(line.as_bytes()) {
            assert_eq!(skimmed, parsed, "{line}");
            vouched += 1;
        }
    }
    eprintln!("skim: vouched for {vouched} of {non_posts} real non-post frames");
    assert!(non_posts > 50, "the fixture has likes, follows, reposts");
    assert!(
        vouched * 10 >= non_posts * 9,
        "the skim should vouch for nearly every real non-post: {vouched} of {non_posts}"
    );
}

/// A frame cut anywhere (the commonest damage) is never vouched for, so the
/// full decoder counts it as malformed; likewise a byte of invalid UTF-8.
#[test]
fn cut_or_invalid_real_frames_are_left_to_the_full_decoder() {
    let Some(lines) = real_lines() else { return };
    for line in lines
        .iter()
        .filter(|l| skim_non_post(l.as_bytes()).is_some())
    {
        let bytes = line.as_bytes();
        for end in 1..bytes.len() {
            let cut = &bytes[..end];
            assert_eq!(skim_non_post(cut), None, "cut at {end}: {line}");
            assert!(parse_frame(cut).is_err(), "cut at {end} parses: {line}");
        }
        for at in [1, bytes.len() / 2, bytes.len() - 2] {
            let mut invalid = bytes.to_vec();
            invalid[at] = 0xC3;
            invalid.insert(at + 1, b'(');
            assert_eq!(skim_non_post(&invalid), None, "0xC3 at {at}: {line}");
        }
    }
}

/// Names the decoder reads, which generated records also use as keys.
const NAMES: [&str; 8] = [
    "kind",
    "time_us",
    "commit",
    "operation",
    "collection",
    "rkey",
    "cursor",
    "text",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        // Text with the characters that matter to the skim: quotes,
        // colons, backslashes, braces, control characters.
        r#"[a-z":\\{}\[\],\n\u{1}é ]{0,12}"#.prop_map(Value::from),
    ]
}

fn record() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        3 => "[a-z$]{1,8}",
        1 => proptest::sample::select(NAMES.to_vec()).prop_map(str::to_owned),
    ];
    leaf().prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A v1 commit frame with each field present or not, of the right type or
/// not, in a random order, and a record that may reuse the decoder's names.
fn frame() -> impl Strategy<Value = String> {
    let field = |good: Value| {
        prop_oneof![
            12 => Just(Some(good)),
            1 => Just(None),
            1 => leaf().prop_map(Some),
        ]
    };
    let collection = proptest::sample::select(vec![
        "app.bsky.feed.like",
        "app.bsky.graph.follow",
        POST_COLLECTION,
        "",
    ]);
    (
        field(json!("commit")),
        field(json!(1_779_719_009_132_431_i64)),
        collection.prop_flat_map(move |c| field(json!(c))),
        field(json!("create")),
        field(json!("3mmoojp7etg2g")),
        prop_oneof![3 => record().prop_map(Some), 1 => Just(None)],
        any::<u64>(),
    )
        .prop_map(|(kind, time, collection, operation, rkey, record, order)| {
            let mut commit = Map::new();
            let inner = [
                ("operation", operation),
                ("collection", collection),
                ("rkey", rkey),
                ("record", record),
            ];
            for (name, value) in rotate(inner, order) {
                commit.extend(value.map(|v| (name.to_owned(), v)));
            }
            let mut top = Map::new();
            let outer = [
                ("did", Some(json!("did:plc:a"))),
                ("kind", kind),
                ("time_us", time),
                ("commit", Some(Value::Object(commit))),
            ];
            for (name, value) in rotate(outer, order >> 8) {
                top.extend(value.map(|v| (name.to_owned(), v)));
            }
            Value::Object(top).to_string()
        })
}

fn rotate<T, const N: usize>(mut items: [T; N], by: u64) -> [T; N] {
    items.rotate_left((by % N as u64) as usize);
    items
}

/// Where a field required of a commit (at the top or in `commit`) is absent
/// at its level but appears deeper, in the record, the skim, which reads
/// keys by name, may take the record's (the documented limit).
fn missing_only_at_its_level(frame: &str, error: &FrameError) -> bool {
    let missing = match error {
        FrameError::MissingField(name) => Some(name.to_string()),
        FrameError::Json(message) => NAMES
            .iter()
            .find(|name| message.contains(&format!("missing field `{name}`")))
            .map(|name| name.to_string()),
        _ => None,
    };
    missing.is_some_and(|name| frame.contains(&format!("\"{name}\":")))
}

/// Generated frames: whenever the skim vouches, the full parse agrees (or
/// hits the documented limit). Counted, so the test cannot pass by
/// generating nothing the skim vouches for.
#[test]
fn whenever_the_skim_vouches_the_full_parse_agrees() {
    use std::cell::Cell;
    let (vouched, limit) = (Cell::new(0), Cell::new(0));
    let mut runner = TestRunner::new(ProptestConfig::with_cases(4000));
    let outcome = runner.run(&frame(), |frame| {
        let Some(skimmed) = skim_non_post(frame.as_bytes()) else {
            return Ok(());
        };
        vouched.set(vouched.get() + 1);
        match parse_frame(frame.as_bytes()) {
            Ok(parsed) => prop_assert_eq!(&skimmed, &parsed, "{}", frame),
            Err(error) => {
                prop_assert!(
                    missing_only_at_its_level(&frame, &error),
                    "skim vouched, parse says `{}`: {}",
                    error,
                    frame
                );
                limit.set(limit.get() + 1);
            }
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    eprintln!(
        "skim vouched for {} of 4000 generated frames, {} of them at the documented limit",
        vouched.get(),
        limit.get()
    );
    assert!(vouched.get() > 600, "too few vouched: {}", vouched.get());
}
