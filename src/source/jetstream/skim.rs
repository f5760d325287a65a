//! A cheap look at a v1 frame before parsing it: two thirds of the
//! firehose are likes, follows and reposts, which only need to be counted
//! with their event time, and a full JSON parse of each costs more than
//! everything else the replay does with it (issue 15).
//!
//! The skim finds every key by its `":` (a SIMD search for colons), reads the few it
//! needs and answers only when it can vouch for the answer: a commit to a
//! collection other than posts, whose frame is valid UTF-8 between braces,
//! with as many closing braces as opening ones, and each key
//! the full decoder requires of such a frame (`kind`,
//! `time_us`, `commit`, and the commit's `operation`, `collection` and
//! `rkey`) present exactly once, unescaped, with a plain value of the right
//! type. Anything else (a post, an identity, a second key of one of those
//! names anywhere in the frame, an escape in a key or in a value it reads,
//! white space around a value or before any colon, a v2 frame, a `cursor`)
//! returns `None`, and the full decoder parses the frame
//! and reports its faults: a truncated or mangled frame is still counted
//! as malformed.
//!
//! What the skim does not verify is the rest of a frame it vouches for:
//! a like whose record is damaged (or a frame whose only `kind` sits inside
//! the record) is counted as the like it says it is rather than as
//! malformed. Either way it is not a post, so the windows see the same
//! thing; `tests/skim.rs` checks the skim against the full decoder on real
//! and generated frames.

use memchr::memchr_iter;

use super::{Frame, POST_COLLECTION};
use crate::source::{Decoded, SkipReason};

/// The values of the keys the skim reads, each seen at most once.
#[derive(Default)]
struct Keys<'a> {
    /// `kind` is `"commit"` (any other kind is declined as it is read).
    kind: Option<()>,
    time_us: Option<i64>,
    /// `commit` is an object.
    commit: Option<()>,
    operation: Option<&'a [u8]>,
    collection: Option<&'a [u8]>,
    rkey: Option<&'a [u8]>,
}

/// The keys the skim reads or declines.
#[derive(Clone, Copy)]
enum Key {
    Kind,
    TimeUs,
    Commit,
    Operation,
    Collection,
    Rkey,
    Cursor,
    Payload,
}

impl Key {
    /// The key whose closing quote is at `quote`, if it is one of these:
    /// told by its last letter, then compared whole with the quote that
    /// opens it. Most keys of a frame (`did`, `rev`, `record`, `cid`, …)
    /// are none of them and are passed over at their last letter, without
    /// looking for where they start.
    fn ending_at(body: &[u8], quote: usize) -> Option<Key> {
        let before = &body[..quote];
        let is = |name: &[u8]| {
            before.ends_with(name)
                && before.len() > name.len()
                && before[quote - name.len() - 1] == b'"'
        };
        let key = match before.last()? {
            b'd' if is(b"kind") => Key::Kind,
            b'd' if is(b"payload") => Key::Payload,
            b's' if is(b"time_us") => Key::TimeUs,
            b't' if is(b"commit") => Key::Commit,
            b'n' if is(b"operation") => Key::Operation,
            b'n' if is(b"collection") => Key::Collection,
            b'y' if is(b"rkey") => Key::Rkey,
            b'r' if is(b"cursor") => Key::Cursor,
            _ => return None,
        };
        Some(key)
    }
}

/// The frame, if the skim can vouch that it is a well-formed v1 commit to
/// a collection other than posts (see the module's documentation).
pub fn non_post(frame: &[u8]) -> Option<Frame> {
    let body = frame.trim_ascii();
    if body.first() != Some(&b'{') || body.last() != Some(&b'}') {
        return None;
    }
    // The keys first: a post or an identity is declined as soon as its
    // collection or kind is read, before the pass over the whole frame.
    let keys = read_keys(body)?;
    keys.kind?;
    keys.commit?;
    keys.collection?;
    keys.operation?;
    keys.rkey?;
    let time_us = keys.time_us?;
    balanced_text(body).then_some(Frame {
        time_us: Some(time_us),
        seq: None,
        decoded: Decoded::Skipped(SkipReason::NotAPost),
    })
}

/// As many `{` as `}` (a frame cut just after a nested object still ends
/// in a brace), and valid UTF-8. One pass that the compiler vectorises
/// checks both for the all-ASCII frames of the firehose's likes and
/// follows; a frame with other bytes is checked by the standard library.
fn balanced_text(body: &[u8]) -> bool {
    let (mut open, mut close, mut bits) = (0u32, 0u32, 0u8);
    // Per-chunk counters stay in bytes, which vectorises; 128 bytes cannot
    // overflow them.
    for chunk in body.chunks(128) {
        let (mut o, mut c) = (0u8, 0u8);
        for &b in chunk {
            o += u8::from(b == b'{');
            c += u8::from(b == b'}');
            bits |= b;
        }
        open += u32::from(o);
        close += u32::from(c);
    }
    open == close && (bits.is_ascii() || std::str::from_utf8(body).is_ok())
}

/// Every key of the frame, found by its closing `":`; `None` as soon as
/// one the skim reads is escaped, repeated or has an unexpected value.
fn read_keys(body: &[u8]) -> Option<Keys<'_>> {
    let mut keys = Keys::default();
    let mut first_key = true;
    // A key the skim would not see as one: written with an escape
    // (`"collectio\u006e"`, read by JSON as `collection`), or with white
    // space before its colon. Either way a key of the same name deeper in
    // the frame (inside the record, which its author writes) would be
    // taken for it, and a post counted as a like; so both decline. Most
    // frames hold no backslash at all, and then no key needs looking at.
    let escapes = memchr::memchr(b'\\', body).is_some();
    let key_ends = memchr_iter(b':', body).filter_map(|colon| colon.checked_sub(1));
    for quote in key_ends {
        match body[quote] {
            b'"' => {}
            b' ' | b'\t' | b'\n' | b'\r' => return None,
            _ => continue,
        }
        if escapes && escaped_key(body, quote) {
            return None;
        }
        // An escaped quote followed by a colon is text inside a string
        // (or damage): the skim cannot tell which, so it declines.
        if quote == 0 || body[quote - 1] == b'\\' {
            return None;
        }
        // The first key's opening quote is the first quote of the frame;
        // every later key has a quote before it (the last key's).
        if first_key {
            memchr::memchr(b'"', &body[..quote])?;
            first_key = false;
        }
        let Some(key) = Key::ending_at(body, quote) else {
            continue;
        };
        let value = &body[quote + 2..];
        match key {
            Key::Kind => match string(value)? {
                b"commit" => once(&mut keys.kind, ())?,
                _ => return None,
            },
            Key::TimeUs => once(&mut keys.time_us, integer(value)?)?,
            Key::Commit if value.first() == Some(&b'{') => once(&mut keys.commit, ())?,
            Key::Operation => once(&mut keys.operation, string(value)?)?,
            Key::Collection => match string(value)? {
                b"" => return None,
                posts if posts == POST_COLLECTION.as_bytes() => return None,
                other => once(&mut keys.collection, other)?,
            },
            Key::Rkey => once(&mut keys.rkey, string(value)?)?,
            // A `commit` that is not an object, a v1 frame from
            // a v2 server (its `cursor` is a sequence number the skim does
            // not read) or a v2 frame: the full decoder's.
            Key::Commit | Key::Cursor | Key::Payload => return None,
        }
    }
    Some(keys)
}

/// Whether the key closed by the quote at `quote` holds a backslash: the
/// bytes back to the quote before it (a key is short; for text that only
/// looks like one, the answer errs towards declining).
fn escaped_key(body: &[u8], quote: usize) -> bool {
    let before = &body[..quote];
    let start = memchr::memrchr(b'"', before).map_or(0, |open| open + 1);
    // The quote found may itself be escaped: then the key runs further
    // back, and holds a backslash anyway.
    start > 0 && body[start - 1] == b'\\' || memchr::memchr(b'\\', &before[start..]).is_some()
}

/// Stores the first value of a key; a second occurrence declines the frame.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

/// A string value right after its key's colon: no escape, no control
/// character (which JSON forbids in strings).
fn string(value: &[u8]) -> Option<&[u8]> {
    let rest = value.strip_prefix(b"\"")?;
    // One pass: the string ends at its first quote, unless an escape or a
    // control character comes first.
    let end = rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    (rest[end] == b'"').then_some(&rest[..end])
}

/// A non-negative integer right after its key's colon, ended by `,` or `}`
/// (no fraction, exponent, sign, leading zero or whitespace, which the
/// full decoder judges).
fn integer(value: &[u8]) -> Option<i64> {
    // Digits only, read in the same pass that finds their end, so a
    // checked fold is all of `i64::from_str` needed here.
    let mut n = 0i64;
    let mut digits = 0;
    while let Some(&digit) = value.get(digits).filter(|b| b.is_ascii_digit()) {
        n = n.checked_mul(10)?.checked_add(i64::from(digit - b'0'))?;
        digits += 1;
    }
    let leading_zero = digits > 1 && value[0] == b'0';
    if digits == 0 || leading_zero || !matches!(value.get(digits), Some(b',' | b'}')) {
        return None;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIKE: &str = r#"{"did":"did:plc:a","time_us":1779719009132431,"kind":"commit","commit":{"rev":"r","operation":"create","collection":"app.bsky.feed.like","rkey":"k","record":{"$type":"app.bsky.feed.like","subject":{"cid":"c","uri":"at://x"}},"cid":"c"}}"#;

    fn skim(frame: &str) -> Option<Frame> {
        non_post(frame.as_bytes())
    }

    #[test]
    fn a_like_is_vouched_for_with_its_time() {
        let frame = skim(LIKE).expect("a plain like");
        assert_eq!(frame.time_us, Some(1_779_719_009_132_431));
        assert_eq!(frame.seq, None);
        assert_eq!(frame.decoded, Decoded::Skipped(SkipReason::NotAPost));
        assert!(
            skim(&format!("  {LIKE}\r\n")).is_some(),
            "surrounding blanks"
        );
        let escaped_value = LIKE.replace(r#""uri":"at://x""#, r#""uri":"at://x\u0041""#);
        assert!(skim(&escaped_value).is_some(), "an escape in a value");
    }

    /// Every change here leaves the frame to the full decoder.
    #[test]
    fn anything_the_skim_cannot_vouch_for_is_declined() {
        let declined = [
            // a post, an identity, an account
            LIKE.replace("app.bsky.feed.like", POST_COLLECTION),
            LIKE.replace(r#""kind":"commit""#, r#""kind":"identity""#),
            // damage the skim can see
            LIKE[..LIKE.len() - 1].to_owned(),
            LIKE.replace(r#""kind":"commit","#, ""),
            LIKE.replace(r#""time_us":1779719009132431,"#, ""),
            LIKE.replace(r#""rkey":"k","#, ""),
            LIKE.replace(r#""operation":"create","#, ""),
            LIKE.replace(r#","commit":{"#, r#","commit":5,"x":{"#),
            LIKE.replace("1779719009132431", "-1"),
            LIKE.replace("1779719009132431", ""),
            LIKE.replace("1779719009132431", "1.5e15"),
            LIKE.replace("1779719009132431", "01779719009132431"),
            LIKE.replace("1779719009132431", "99999999999999999999"),
            LIKE.replace(r#""collection":"app.bsky.feed.like""#, r#""collection":"""#),
            LIKE.replace(r#""collection":"app"#, r#""collection": "app"#),
            LIKE.replace("app.bsky.feed.like\"", "app.bsky.feed.like\\u0000\""),
            LIKE.replace("app.bsky.feed.like\"", "app.bsky.feed.like\n\""),
            // keys the skim would have to place
            LIKE.replace(r#""cid":"c"}"#, r#""cid":"c","kind":"commit"}"#),
            LIKE.replace(r#""uri":"at://x""#, r#""collection":"x""#),
            LIKE.replace(r#""did":"did:plc:a","#, r#""cursor":7,"#),
            LIKE.replace(r#""did":"did:plc:a","#, r#""payload":{},"#),
            LIKE.replace(r#""uri":"at://x""#, r#""uri":"a\":b""#),
            // the first key without its opening quote
            LIKE.replacen(r#"{"did""#, r#"{did""#, 1),
            // a key the skim would not see, with one of its name deeper
            // in the frame: a post written as a like
            LIKE.replace(
                r#""collection":"app.bsky.feed.like""#,
                r#""collection" :"app.bsky.feed.post""#,
            )
            .replace(r#""uri":"at://x""#, r#""collection":"app.bsky.feed.like""#),
            LIKE.replace(
                r#""collection":"app.bsky.feed.like""#,
                r#""collection"	:"app.bsky.feed.post""#,
            )
            .replace(r#""uri":"at://x""#, r#""collection":"app.bsky.feed.like""#),
            LIKE.replace(
                r#""collection":"app.bsky.feed.like""#,
                r#""collectio\u006e":"app.bsky.feed.post""#,
            )
            .replace(r#""uri":"at://x""#, r#""collection":"app.bsky.feed.like""#),
            LIKE.replace(
                r#""time_us":1779719009132431"#,
                r#""time_us" :1779719009132431"#,
            )
            .replace(r#""uri":"at://x""#, r#""time_us":5"#),
        ];
        for frame in declined {
            assert_eq!(skim(&frame), None, "{frame}");
        }
        let mut invalid = LIKE.as_bytes().to_vec();
        invalid[20] = 0xff;
        assert_eq!(non_post(&invalid), None, "invalid UTF-8");
    }
}
