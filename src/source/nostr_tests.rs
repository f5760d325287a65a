//! The Nostr decoder's tests, and the signed notes other tests build.

use super::protocol::SUBSCRIPTION;
use super::verify::{event_id, reject};
use super::*;
use k256::schnorr::SigningKey;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const NOW: Micros = 1_783_175_000 * MICROS_PER_SEC;

/// A key made in the test from a seed (BIP-340 keys are any non-zero
/// scalar below the group order; a sha256 of a seed is one).
pub fn key(seed: &str) -> SigningKey {
    let bytes: [u8; 32] = Sha256::digest(seed.as_bytes()).into();
    SigningKey::from_bytes(&bytes.into()).expect("a valid secret key")
}

/// A signed note as a relay sends it.
pub fn signed(
    signer: &SigningKey,
    created_at: i64,
    kind: u64,
    tags: Vec<Vec<String>>,
    content: &str,
) -> Value {
    let pubkey = hex::encode(signer.verifying_key().to_bytes());
    let id = event_id(&pubkey, created_at, kind, &tags, content);
    let sig = signer.sign_raw(&id, &[7u8; 32]).expect("sign");
    serde_json::json!({
        "id": hex::encode(id), "pubkey": pubkey, "created_at": created_at, "kind": kind,
        "tags": tags, "content": content, "sig": hex::encode(sig.to_bytes())
    })
}

pub fn frame(event: &Value) -> String {
    serde_json::json!(["EVENT", SUBSCRIPTION, event]).to_string()
}

pub fn note(kind: u64, created_at: i64) -> Value {
    let tags = vec![
        vec!["t".to_owned(), "discorddown".to_owned()],
        vec!["l".to_owned(), "en".to_owned(), "ISO-639-1".to_owned()],
        vec!["p".to_owned(), "x".to_owned()],
    ];
    signed(
        &key("alice"),
        created_at,
        kind,
        tags,
        "is discord down? \"quoted\"\n😀",
    )
}

/// A note of more tags than [`MAX_TAGS`] is malformed before they are
/// read; one at the bound is read (and checked as any other).
#[test]
fn a_note_of_too_many_tags_is_malformed() {
    let with_tags = |n: usize| {
        let mut event = note(1, 1_783_174_990);
        event["tags"] = Value::Array(vec![serde_json::json!([]); n]);
        frame(&event)
    };
    let many = decode(with_tags(MAX_TAGS + 1).as_bytes(), Some(NOW), None);
    match many {
        Err(FrameError::BadRecord(why)) => {
            assert!(why.contains("more than 2000 tags"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    let bound = decode(with_tags(MAX_TAGS).as_bytes(), Some(NOW), None);
    assert_eq!(
        bound.map(|d| d.1),
        Err(FrameError::Unverified(reject::ID_MISMATCH)),
        "read, and its id no longer matches"
    );
}

#[test]
fn only_iso_639_1_labels_declare_a_language() {
    let tag = |parts: &[&str]| parts.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
    // (tags, languages)
    let cases: [(Vec<Vec<String>>, &[&str]); 6] = [
        (vec![tag(&["l", "en", "ISO-639-1"])], &["en"]),
        (
            vec![tag(&["L", "ISO-639-1"]), tag(&["l", "pt", "iso-639-1"])],
            &["pt"],
        ),
        (
            vec![tag(&["L", "license"]), tag(&["l", "MIT", "license"])],
            &[],
        ),
        (vec![tag(&["l", "en"])], &[]),
        (vec![tag(&["t", "en", "ISO-639-1"])], &[]),
        (
            vec![
                tag(&["l", "ja", "ISO-639-1"]),
                tag(&["l", "x", "ugc"]),
                tag(&["l"]),
            ],
            &["ja"],
        ),
    ];
    for (tags, want) in cases {
        assert_eq!(languages(&tags), want, "{tags:?}");
    }
}

#[test]
fn a_signed_kind_one_note_is_a_post_at_its_arrival_time() {
    let event = note(1, 1_783_174_990);
    let (t, decoded) = decode(frame(&event).as_bytes(), Some(NOW), None).expect("decodes");
    assert_eq!(
        t,
        Some(NOW),
        "event time is the arrival time, not created_at"
    );
    let Decoded::Post(post) = decoded else {
        panic!("a post")
    };
    let id = event["id"].as_str().expect("id");
    assert_eq!(post.author, event["pubkey"].as_str().expect("pubkey"));
    assert_eq!(
        post.key,
        Some(crate::source::dedupe::key_of(&[NOTE_KEY, id]))
    );
    assert_ne!(
        post.key,
        Some(crate::source::dedupe::key_of(&[id])),
        "not the key of a Mastodon status whose uri is the note's id"
    );
    assert_eq!(post.uri, format!("nostr:{id}"));
    assert_eq!(post.text, "is discord down? \"quoted\"\n😀");
    assert_eq!(post.tags, vec!["discorddown"]);
    assert_eq!(post.langs, vec!["en"]);
}

#[test]
fn the_authors_clock_moves_nothing_but_old_claims_are_backfill() {
    // Dated a year ahead: still now.
    let ahead = note(1, 1_783_175_000 + 365 * 86_400);
    let (t, decoded) = decode(frame(&ahead).as_bytes(), Some(NOW), None).expect("decodes");
    assert_eq!(t, Some(NOW));
    assert!(matches!(decoded, Decoded::Post(_)));
    // Claiming to be older than the de-duplication horizon: backfill.
    let old = note(1, 1_783_175_000 - 601);
    assert_eq!(
        decode(frame(&old).as_bytes(), Some(NOW), None),
        Ok((Some(NOW), Decoded::Skipped(SkipReason::Backfill)))
    );
    let recent = note(1, 1_783_175_000 - 599);
    assert!(matches!(
        decode(frame(&recent).as_bytes(), Some(NOW), None),
        Ok((_, Decoded::Post(_)))
    ));
    // Stored (before `EOSE`) yet dated after its arrival: history too.
    let since = Some(NOW - 3_600 * MICROS_PER_SEC);
    assert_eq!(
        decode(frame(&ahead).as_bytes(), Some(NOW), since),
        Ok((Some(NOW), Decoded::Skipped(SkipReason::Backfill)))
    );
    let a_fast_clock = note(1, 1_783_175_000 + 299);
    assert!(matches!(
        decode(frame(&a_fast_clock).as_bytes(), Some(NOW), since),
        Ok((Some(NOW), Decoded::Post(_)))
    ));
}

#[test]
fn forged_rewritten_and_re_ided_notes_are_rejected_by_reason() {
    let good = note(1, 1_783_174_990);
    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut rewritten = good.clone();
    rewritten["content"] = "discord is down (rewritten by the relay)".into();
    cases.push((rewritten, reject::ID_MISMATCH));
    let mut redated = good.clone();
    redated["created_at"] = (1_783_174_991).into();
    cases.push((redated, reject::ID_MISMATCH));
    // Re-signed id by another key, presented under alice's pubkey.
    let mallory = signed(&key("mallory"), 1_783_174_990, 1, vec![], "discord down");
    let mut stolen = mallory.clone();
    stolen["pubkey"] = good["pubkey"].clone();
    stolen["id"] = hex::encode(event_id(
        good["pubkey"].as_str().expect("pk"),
        1_783_174_990,
        1,
        &[],
        "discord down",
    ))
    .into();
    cases.push((stolen, reject::SIG_INVALID));
    let mut zero_sig = good.clone();
    zero_sig["sig"] = "00".into();
    cases.push((zero_sig, reject::SIG_MALFORMED));
    let mut made_up = good.clone();
    made_up["id"] = "ab12".into();
    cases.push((made_up, reject::ID_MALFORMED));
    let mut upper = good.clone();
    upper["id"] = good["id"].as_str().expect("id").to_uppercase().into();
    cases.push((upper, reject::ID_MALFORMED));
    let mut bad_key = good.clone();
    bad_key["pubkey"] = "zz".repeat(32).into();
    cases.push((bad_key, reject::PUBKEY_MALFORMED));
    let mut flipped = good.clone();
    let sig = good["sig"].as_str().expect("sig");
    let last = if sig.ends_with('0') { "1" } else { "0" };
    flipped["sig"] = format!("{}{last}", &sig[..127]).into();
    cases.push((flipped, reject::SIG_INVALID));
    for (event, reason) in cases {
        assert_eq!(
            decode(frame(&event).as_bytes(), Some(NOW), None),
            Err(FrameError::Unverified(reason)),
            "{event}"
        );
    }
    assert!(decode(frame(&good).as_bytes(), Some(NOW), None).is_ok());
}

/// Every event's shape is checked before it is classified: a non-post
/// or an old note with a made-up id is malformed, not skipped (and so
/// not data for the watchdog); only a post's signature is checked.
#[test]
fn an_events_shape_is_checked_whatever_its_kind_or_age() {
    let junk: Value = serde_json::json!({
        "id": "", "pubkey": "", "created_at": 0, "kind": 7, "content": "", "sig": ""
    });
    let mut re_kinded = note(7, 1_783_174_990);
    re_kinded["kind"] = 6.into();
    let mut old_rewritten = note(1, 1_783_175_000 - 3600);
    old_rewritten["content"] = "rewritten".into();
    let mut bad_sig_reaction = note(7, 1_783_174_990);
    let sig = bad_sig_reaction["sig"].as_str().expect("sig").to_owned();
    let last = if sig.ends_with('0') { "1" } else { "0" };
    bad_sig_reaction["sig"] = format!("{}{last}", &sig[..127]).into();
    let mut no_sig = note(7, 1_783_174_990);
    no_sig["sig"] = "".into();
    // (event, outcome)
    let cases: Vec<(Value, Result<Decoded, FrameError>)> = vec![
        (junk, Err(FrameError::Unverified(reject::ID_MALFORMED))),
        (re_kinded, Err(FrameError::Unverified(reject::ID_MISMATCH))),
        (
            old_rewritten,
            Err(FrameError::Unverified(reject::ID_MISMATCH)),
        ),
        (no_sig, Err(FrameError::Unverified(reject::SIG_MALFORMED))),
        (bad_sig_reaction, Ok(Decoded::Skipped(SkipReason::NotAPost))),
        (
            note(7, 1_783_174_990),
            Ok(Decoded::Skipped(SkipReason::NotAPost)),
        ),
        (
            note(1, 1_783_175_000 - 3600),
            Ok(Decoded::Skipped(SkipReason::Backfill)),
        ),
    ];
    for (event, want) in cases {
        assert_eq!(
            decode(frame(&event).as_bytes(), Some(NOW), None).map(|d| d.1),
            want,
            "{event}"
        );
    }
}

#[test]
fn every_message_type_is_handled() {
    assert_eq!(
        decode(frame(&note(7, 1_783_174_990)).as_bytes(), Some(NOW), None).map(|d| d.1),
        Ok(Decoded::Skipped(SkipReason::NotAPost))
    );
    for frame in [
        r#"["EOSE","outagewatch"]"#,
        r#"["NOTICE","slow down"]"#,
        r#"["CLOSED","outagewatch","rate-limited"]"#,
        r#"["OK","id",true,""]"#,
        r#"["AUTH","challenge"]"#,
        r#"["COUNT","outagewatch",{"count":1}]"#,
    ] {
        assert_eq!(
            decode(frame.as_bytes(), Some(NOW), None).map(|d| d.1),
            Ok(Decoded::Skipped(SkipReason::ServerNotice)),
            "{frame}"
        );
    }
    // No relay message: malformed, never a skip (a skip of a known
    // kind is data for the source's health).
    for bad in [
        r#"["X"]"#,
        r#"["event","outagewatch",{}]"#,
        r#"["NOTICES","x"]"#,
        r#"[""]"#,
        "{}",
        "[]",
        "[1]",
        r#"["EVENT","s"]"#,
        r#"["EVENT","s",{"id":1}]"#,
        "nope",
    ] {
        assert!(decode(bad.as_bytes(), Some(NOW), None).is_err(), "{bad}");
    }
    // A correctly signed note whose time has no microsecond count is
    // malformed for its time; one dated before 1970 is history.
    let signer = key("alice");
    let far = frame(&signed(&signer, i64::MAX, 1, vec![], "is x down"));
    match decode(far.as_bytes(), Some(NOW), None) {
        Err(FrameError::BadRecord(why)) => assert!(why.contains("out of range"), "{why}"),
        other => panic!("{other:?}"),
    }
    let before = frame(&signed(&signer, -1, 1, vec![], "is x down"));
    assert_eq!(
        decode(before.as_bytes(), Some(NOW), None).map(|d| d.1),
        Ok(Decoded::Skipped(SkipReason::Backfill))
    );
}

/// A Nostr source reads every relay at once, one connection each,
/// named after the relay; one relay keeps the source's name.
#[test]
fn one_connection_per_relay() {
    let mut source = crate::config::SourceConfig::jetstream(
        "nostr",
        vec!["wss://relay.one".into(), "ws://127.0.0.1:7000/r".into()],
    );
    source.kind = super::super::SourceKind::Nostr;
    let connections = source.connections();
    let names: Vec<&str> = connections.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["nostr:relay.one", "nostr:127.0.0.1:7000/r"]);
    assert_eq!(connections[1].urls, ["ws://127.0.0.1:7000/r".into()]);
    assert_eq!(connections[1].instance(), "127.0.0.1:7000");
    source.urls.truncate(1);
    let one = source.connections();
    assert_eq!((one.len(), one[0].name.as_str()), (1, "nostr"));
    source.kind = super::super::SourceKind::Jetstream;
    source.urls.push("wss://two".into());
    assert_eq!(
        source.connections().len(),
        1,
        "Jetstream fails over instead"
    );
}

/// A stored note (before `EOSE`) is placed at its claim within the
/// range its `REQ` asked for; a live one at its arrival.
#[test]
fn a_stored_note_is_placed_at_its_claim_within_the_catch_up() {
    const S: Micros = MICROS_PER_SEC;
    let since = NOW - 570 * S;
    // (claimed, arrival, stored since, event time)
    let cases = [
        (NOW - 300 * S, Some(NOW), Some(since), NOW - 300 * S),
        (NOW - 590 * S, Some(NOW), Some(since), since),
        (NOW + 3600 * S, Some(NOW), Some(since), NOW),
        (NOW - 300 * S, Some(NOW), None, NOW),
        (NOW + 3600 * S, Some(NOW), None, NOW),
        (NOW - 300 * S, None, None, NOW - 300 * S),
        // A since after the arrival (a clock stepped back): the arrival.
        (NOW - 300 * S, Some(NOW), Some(NOW + S), NOW),
    ];
    for (claimed, arrival, stored, want) in cases {
        assert_eq!(
            event_time(claimed, arrival, stored),
            want,
            "{claimed} {arrival:?} {stored:?}"
        );
    }
    let event = note(1, (NOW - 300 * S) / S);
    let (t, decoded) = decode(frame(&event).as_bytes(), Some(NOW), Some(since)).expect("ok");
    assert_eq!(t, Some(NOW - 300 * S));
    assert!(matches!(decoded, Decoded::Post(ref p) if p.time_us == NOW - 300 * S));
    // Older than the horizon before its arrival: backfill all the same.
    let old = note(1, (NOW - 601 * S) / S);
    assert_eq!(
        decode(frame(&old).as_bytes(), Some(NOW), Some(NOW - 900 * S)).map(|d| d.1),
        Ok(Decoded::Skipped(SkipReason::Backfill))
    );
}
