//! Real Jetstream v1 frames captured from production (../shared/fixtures):
//! every line must decode, and the per-kind counts must equal the manifest's;
//! the same events on the v2 wire, compressed, decode to the same posts.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use outagewatch::source::jetstream::compression::{Dictionary, Inflater};
use outagewatch::source::jetstream::{decode, decode_frame};
use outagewatch::source::{Decoded, SkipReason};

fn fixtures() -> Option<PathBuf> {
    support::shared_dir().map(|dir| dir.join("fixtures/jetstream"))
}

/// Every real frame, on the v1 plain wire and on the v2 wire compressed
/// with the shipped v1 dictionary and decompressed by the bounded
/// inflater, decodes to the same event: same time, same post or skip.
#[test]
fn the_real_frames_decode_alike_on_v1_plain_and_v2_compressed() {
    let Some(dir) = fixtures() else { return };
    let text = std::fs::read_to_string(dir.join("expected_v1.jsonl")).expect("fixture");
    let dictionary = Dictionary::v1();
    let mut compressor =
        zstd::bulk::Compressor::with_dictionary(3, &dictionary.bytes).expect("compressor");
    let mut inflater = Inflater::new(&dictionary).expect("inflater");
    let (mut plain_bytes, mut compressed_bytes, mut posts) = (0usize, 0usize, 0usize);
    for (n, line) in text.lines().enumerate() {
        let seq = 31_527_015_322 + n as u64;
        let v2 = support::v1_to_v2(line, seq);
        let wire = compressor.compress(v2.as_bytes()).expect("compress");
        plain_bytes += line.len();
        compressed_bytes += compressor
            .compress(line.as_bytes())
            .expect("compress")
            .len();
        let back = inflater
            .inflate(&wire, 512 << 10, 1 << 20)
            .expect("inflates");
        assert_eq!(back, v2, "line {}", n + 1);
        let one = decode_frame(line.as_bytes()).expect("v1 decodes");
        let two = decode_frame(back.as_bytes()).expect("v2 decodes");
        assert_eq!(one.time_us, two.time_us, "line {}", n + 1);
        assert_eq!(one.decoded, two.decoded, "line {}", n + 1);
        assert_eq!(two.seq, Some(seq));
        posts += usize::from(matches!(two.decoded, Decoded::Post(_)));
    }
    assert_eq!(posts, 17, "the capture's post creates");
    let ratio = compressed_bytes as f64 / plain_bytes as f64;
    eprintln!("v1 dictionary: {compressed_bytes} of {plain_bytes} bytes ({ratio:.3})");
    assert!(ratio < 0.5, "the dictionary fits the real frames: {ratio}");
}

#[test]
fn expected_v1_decodes_with_the_manifest_counts() {
    let Some(dir) = fixtures() else { return };
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).expect("manifest"),
    )
    .expect("manifest JSON");
    let text = std::fs::read_to_string(dir.join("expected_v1.jsonl")).expect("fixture");
    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    let mut posts = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let raw: serde_json::Value = serde_json::from_str(line).expect("fixture line is JSON");
        match raw["kind"].as_str() {
            Some("commit") => {
                *by_kind
                    .entry(match raw["commit"]["operation"].as_str() {
                        Some("create") => "creates",
                        Some("update") => "updates",
                        Some("delete") => "deletes",
                        _ => "other",
                    })
                    .or_default() += 1
            }
            Some("identity") => *by_kind.entry("identity").or_default() += 1,
            Some("account") => *by_kind.entry("account").or_default() += 1,
            _ => *by_kind.entry("other").or_default() += 1,
        }
        let decoded = decode(line.as_bytes()).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
        let is_post_create = raw["commit"]["collection"] == "app.bsky.feed.post"
            && raw["commit"]["operation"] == "create";
        match decoded {
            Decoded::Post(post) => {
                assert!(is_post_create, "line {} decoded as a post", n + 1);
                assert_eq!(
                    post.text,
                    raw["commit"]["record"]["text"].as_str().expect("text")
                );
                assert_eq!(post.time_us, raw["time_us"].as_i64().expect("time_us"));
                assert!(post.uri.starts_with("at://did:plc:"), "{}", post.uri);
                posts.push(post);
            }
            Decoded::Skipped(reason) => {
                assert!(!is_post_create, "line {}: post create skipped", n + 1);
                let expected = match (
                    raw["kind"].as_str(),
                    raw["commit"]["collection"].as_str(),
                    raw["commit"]["operation"].as_str(),
                ) {
                    (Some("identity"), _, _) => SkipReason::Identity,
                    (Some("account"), _, _) => SkipReason::Account,
                    (_, Some("app.bsky.feed.post"), Some("update")) => SkipReason::PostUpdate,
                    (_, Some("app.bsky.feed.post"), _) => SkipReason::PostDelete,
                    _ => SkipReason::OtherCollection,
                };
                assert_eq!(reason, expected, "line {}", n + 1);
            }
        }
    }
    let total: u64 = by_kind.values().sum();
    assert_eq!(total, manifest["v1_events"].as_u64().expect("v1_events"));
    for key in ["creates", "updates", "deletes", "identity", "account"] {
        assert_eq!(
            by_kind.get(key).copied().unwrap_or(0),
            manifest[key].as_u64().expect(key),
            "{key}"
        );
    }
    assert!(!posts.is_empty());
    assert!(
        posts.iter().any(|p| !p.langs.is_empty()),
        "langs carried through"
    );
}

#[test]
fn golden_v1_covers_every_kind_without_errors() {
    let Some(dir) = fixtures() else { return };
    let text = std::fs::read_to_string(dir.join("golden_v1.jsonl")).expect("fixture");
    let mut skipped = BTreeMap::new();
    let mut posts = 0;
    for (n, line) in text.lines().enumerate() {
        match decode(line.as_bytes()).unwrap_or_else(|e| panic!("golden line {}: {e}", n + 1)) {
            Decoded::Post(_) => posts += 1,
            Decoded::Skipped(reason) => *skipped.entry(reason).or_insert(0) += 1,
        }
    }
    assert_eq!(posts, 1, "one post with a reply");
    assert_eq!(skipped.get(&SkipReason::Identity), Some(&1));
    assert_eq!(skipped.get(&SkipReason::Account), Some(&1));
    assert_eq!(skipped.get(&SkipReason::OtherCollection), Some(&7));
}

#[test]
fn replaying_the_capture_reports_every_frame() {
    let Some(dir) = fixtures() else { return };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_outagewatch"))
        .arg("replay")
        .arg(dir.join("expected_v1.jsonl"))
        .output()
        .expect("runs");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("replayed 152 events"), "{stderr}");
    assert!(stderr.contains("posts 17 "), "{stderr}");
    assert!(stderr.contains("malformed: 0"), "{stderr}");
}
