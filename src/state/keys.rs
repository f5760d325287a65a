//! The sled keyspace: every record kind, its one-byte tag and how its key
//! is built, in one table.
//!
//! A key is its kind's tag followed by the rest of the key. Tags are
//! distinct, so no key of one kind can equal a key of another, whatever
//! names follow the tag: a sink, service or source named by a user (or by
//! a hashtag in a post) stays inside its own kind. Our own single records
//! (checkpoint, generation, format) live under the `m` tag with fixed
//! names, where no user-chosen name ever goes.
//!
//! (Until format 1 the checkpoint was the bare key `checkpoint`, which the
//! cursor of a sink named `heckpoint` overwrote; see [`super::migrate`].)

use crate::Micros;

/// One kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `b` + start (8 bytes, big-endian, offset so negative times sort
    /// first) → a closed bucket.
    Bucket,
    /// `s` + service id → that service's baseline.
    Baseline,
    /// `m` + a fixed name → our single records (checkpoint, generation,
    /// format).
    Meta,
    /// `o` + seq (8 bytes, big-endian) → an alert not yet delivered.
    Alert,
    /// `c` + sink → the sink's cursor: the last seq it is done with.
    Cursor,
    /// `r` + sink → the retry state of the alert at the sink's head.
    Retry,
    /// `d` + sink + 0 + seq → a dead letter.
    Dead,
    /// `q` + sink + 0 + seq → an alert re-queued from the dead letters.
    Requeued,
    /// `x` + sink + 0 + seq → an alert the sink set aside (its receiver
    /// kept refusing it while other incidents' alerts waited behind it),
    /// whole, with its retry state (see [`super::outbox`]'s `aside`).
    Aside,
    /// `a` + sink + 0 + incident id → an alert open at an Alertmanager sink.
    OpenAlert,
    /// `h` + source → an open `source:NAME` incident.
    OpenSource,
    /// `p` + the start of its newest bucket (as [`Kind::Bucket`]'s) → a
    /// pack of consecutive closed buckets, oldest first, in one record
    /// ([`super::compact`]), in the tree [`PACKS`]: the one kind outside
    /// the main tree.
    Pack,
}

/// Every kind: the whole keyspace (tags in [`Kind::tag`]).
pub const ALL: [Kind; 12] = [
    Kind::Bucket,
    Kind::Baseline,
    Kind::Meta,
    Kind::Alert,
    Kind::Cursor,
    Kind::Retry,
    Kind::Dead,
    Kind::Requeued,
    Kind::Aside,
    Kind::OpenAlert,
    Kind::OpenSource,
    Kind::Pack,
];

impl Kind {
    pub const fn tag(self) -> u8 {
        match self {
            Kind::Bucket => b'b',
            Kind::Baseline => b's',
            Kind::Meta => b'm',
            Kind::Alert => b'o',
            Kind::Cursor => b'c',
            Kind::Retry => b'r',
            Kind::Dead => b'd',
            Kind::Requeued => b'q',
            Kind::Aside => b'x',
            Kind::OpenAlert => b'a',
            Kind::OpenSource => b'h',
            Kind::Pack => b'p',
        }
    }

    /// The kind a stored key belongs to (`None`: not ours).
    pub fn of(key: &[u8]) -> Option<Kind> {
        let tag = *key.first()?;
        ALL.into_iter().find(|k| k.tag() == tag)
    }
}

/// The sled tree of [`Kind::Pack`] records.
pub const PACKS: &str = "packs";

/// Our single records, under [`Kind::Meta`].
pub const CHECKPOINT: &[u8] = b"mcheckpoint";
pub const GENERATION: &[u8] = b"mgeneration";
pub const FORMAT: &[u8] = b"mformat";
/// The width of the buckets counted, in seconds (big-endian i64).
pub const BUCKET_SECS: &[u8] = b"mbucket_secs";

/// The `n`th (from 1) further piece of a checkpoint too large for one
/// record: [`CHECKPOINT`] + `n` in big-endian, so that the pieces sort
/// after it in order (see [`super::store`]).
pub fn checkpoint_piece(n: u32) -> Vec<u8> {
    [CHECKPOINT, &n.to_be_bytes()].concat()
}

/// Whether `key` is a further piece of the checkpoint.
pub fn is_checkpoint_piece(key: &[u8]) -> bool {
    key.len() == CHECKPOINT.len() + 4 && key.starts_with(CHECKPOINT)
}

/// Keys of format 0 (before the keyspace had one table); see
/// [`super::migrate`].
pub const OLD_CHECKPOINT: &[u8] = b"checkpoint";
pub const OLD_GENERATION: &[u8] = b"generation";

/// What format 1 changed: (format-0 key, its key now). Every other key
/// stayed as it was.
pub const FORMAT_0_MOVES: [(&[u8], &[u8]); 2] =
    [(OLD_CHECKPOINT, CHECKPOINT), (OLD_GENERATION, GENERATION)];

/// A format-0 key as format 1 spells it.
pub fn from_format_0(key: &[u8]) -> &[u8] {
    FORMAT_0_MOVES
        .iter()
        .find(|(old, _)| *old == key)
        .map_or(key, |(_, new)| new)
}

/// `kind`'s tag followed by `name`.
pub fn named(kind: Kind, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 1);
    key.push(kind.tag());
    key.extend_from_slice(name.as_bytes());
    key
}

/// The prefix of every entry of `name` in `kind` (`tag + name + 0`).
pub fn entries(kind: Kind, name: &str) -> Vec<u8> {
    let mut key = named(kind, name);
    key.push(0);
    key
}

/// One entry of `name` in `kind`: `tag + name + 0 + seq`.
pub fn entry(kind: Kind, name: &str, seq: u64) -> Vec<u8> {
    let mut key = entries(kind, name);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The key of alert `seq` in the outbox.
pub fn alert(seq: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = Kind::Alert.tag();
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The key of the bucket starting at `start`.
pub fn bucket(start: Micros) -> [u8; 9] {
    timed(Kind::Bucket, start)
}

/// The key of the pack whose newest bucket starts at `last`.
pub fn pack(last: Micros) -> [u8; 9] {
    timed(Kind::Pack, last)
}

/// The time in a [`bucket`] or [`pack`] key (`None`: not 9 bytes).
pub fn time_of(key: &[u8]) -> Option<Micros> {
    let bytes = <[u8; 8]>::try_from(key.get(1..)?).ok()?;
    Some((u64::from_be_bytes(bytes) ^ (1 << 63)) as Micros)
}

/// A stored key as damage reports name it: its bytes as text (escaped),
/// and for a key that holds a number, what it is in words, so that an
/// outbox alert's key (a tag and 8 bytes) can be told apart.
pub fn describe(key: &[u8]) -> String {
    let text = String::from_utf8_lossy(key).escape_debug().to_string();
    let words = match Kind::of(key) {
        Some(Kind::Alert) if key.len() == 9 => format!("outbox alert {}", seq_of(key)),
        Some(Kind::Bucket) => time_of(key).map_or(String::new(), |at| format!("bucket at {at} µs")),
        Some(Kind::Pack) => time_of(key).map_or(String::new(), |at| format!("pack to {at} µs")),
        Some(kind @ (Kind::Dead | Kind::Requeued | Kind::Aside)) if key.len() >= 10 => {
            let sink = String::from_utf8_lossy(&key[1..key.len() - 9])
                .escape_debug()
                .to_string();
            format!("{kind:?} letter {sink}:{}", seq_of(key))
        }
        _ if is_checkpoint_piece(key) => <[u8; 4]>::try_from(&key[CHECKPOINT.len()..])
            .map_or(String::new(), |n| {
                format!("checkpoint piece {}", u32::from_be_bytes(n))
            }),
        _ => String::new(),
    };
    if words.is_empty() {
        text
    } else {
        format!("{text} ({words})")
    }
}

/// `kind`'s tag followed by `at`, offset so negative times still sort
/// before positive ones.
fn timed(kind: Kind, at: Micros) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = kind.tag();
    key[1..].copy_from_slice(&((at as u64) ^ (1 << 63)).to_be_bytes());
    key
}

/// The sequence number at the end of an outbox key or in a cursor value.
pub fn seq_of(bytes: &[u8]) -> u64 {
    let mut out = [0u8; 8];
    if bytes.len() >= 8 {
        out.copy_from_slice(&bytes[bytes.len() - 8..]);
    }
    u64::from_be_bytes(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names a user (or a post's hashtag) could choose, including ones
    /// built to complete another kind's key.
    const HOSTILE: &[&str] = &[
        "",
        "heckpoint",
        "checkpoint",
        "eneration",
        "generation",
        "format",
        "mcheckpoint",
        "b",
        "\0",
        "sink\0\0\0\0\0\0\0\0\x01",
        "discord",
        "source:bluesky",
        "インスタ",
    ];

    /// The kinds whose keys hold a name.
    fn named_kinds() -> impl Iterator<Item = Kind> {
        ALL.into_iter()
            .filter(|k| !matches!(k, Kind::Bucket | Kind::Pack | Kind::Meta | Kind::Alert))
    }

    #[test]
    fn every_kind_has_its_own_tag() {
        for (i, kind) in ALL.iter().enumerate() {
            assert_eq!(Kind::of(&[kind.tag()]), Some(*kind));
            for other in &ALL[i + 1..] {
                assert_ne!(
                    kind.tag(),
                    other.tag(),
                    "{kind:?} and {other:?} share a tag"
                );
            }
        }
    }

    #[test]
    fn no_user_chosen_name_reaches_another_kind_or_our_own_records() {
        let meta = [CHECKPOINT, GENERATION, FORMAT, BUCKET_SECS];
        for name in HOSTILE {
            for kind in named_kinds() {
                let keys = [named(kind, name), entry(kind, name, 7)];
                for key in &keys {
                    assert_eq!(Kind::of(key), Some(kind), "{kind:?} {name:?}");
                    assert!(
                        !meta.contains(&key.as_slice()),
                        "{kind:?} {name:?} is {key:?}"
                    );
                    assert_ne!(key.as_slice(), alert(seq_of(key)).as_slice());
                    assert_ne!(key.as_slice(), bucket(seq_of(key) as i64).as_slice());
                    assert_ne!(key.as_slice(), pack(seq_of(key) as i64).as_slice());
                }
            }
        }
        for key in meta {
            assert_eq!(Kind::of(key), Some(Kind::Meta));
        }
        assert_eq!(Kind::of(&alert(3)), Some(Kind::Alert));
        assert_eq!(Kind::of(&bucket(-3)), Some(Kind::Bucket));
        assert_eq!(Kind::of(&pack(-3)), Some(Kind::Pack));
    }

    #[test]
    fn buckets_sort_by_time_and_alerts_by_seq() {
        assert!(bucket(-10) < bucket(0) && bucket(0) < bucket(10));
        assert!(alert(1) < alert(2) && alert(255) < alert(256));
        assert_eq!(seq_of(&alert(42)), 42);
        assert_eq!(seq_of(&entry(Kind::Dead, "x", 9)), 9);
    }

    #[test]
    fn timed_keys_sort_by_time_and_read_it_back() {
        let times = [
            i64::MIN,
            -3_600_000_000,
            -1,
            0,
            1,
            1_700_000_123_456_789,
            i64::MAX,
        ];
        for pair in times.windows(2) {
            assert!(bucket(pair[0]) < bucket(pair[1]));
            assert!(pack(pair[0]) < pack(pair[1]));
        }
        for at in times {
            assert_eq!(time_of(&bucket(at)), Some(at));
            assert_eq!(time_of(&pack(at)), Some(at));
        }
        assert_eq!(time_of(b"p"), None);
        assert_eq!(time_of(&[b'p'; 10]), None);
    }
}
