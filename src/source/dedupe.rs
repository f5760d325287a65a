//! Dropping events delivered twice: the overlap a resumed Jetstream cursor
//! replays on purpose, the same note from two Nostr relays, the same status
//! from two Mastodon instances.
//!
//! Events are known by a 64-bit hash of their identity ([`key_of`]): no
//! string per event is kept, and a collision among the few hundred thousand
//! keys remembered is vanishingly unlikely. Keys are remembered for
//! `horizon` of event time behind the newest watermark (the event time
//! the clock agreed on, which one post dated ahead cannot move, where the
//! newest post's own time could: it made the keys still countable be
//! forgotten, and their second delivery counted), and never more than
//! `max_keys` of them, so memory stays bounded whatever the stream. The
//! last [`PERSIST_HORIZON_SECS`] are saved with the pipeline's checkpoint,
//! so a restart recognises the overlap it asks for.
//!
//! Keys are forgotten from the front of their arrival order, so a key that
//! cannot be forgotten yet holds every key behind it. A key dated further
//! ahead of the watermark than the horizon (a post quarantined as dated
//! ahead, remembered so that a resumed run does not count it) is therefore
//! kept apart, by event time, and at most [`MAX_AHEAD_KEYS`] of them: one
//! post dated a week ahead kept every key after it for that week, until
//! `max_keys` (hundreds of thousands) forgot them by count alone.

use std::collections::{BTreeSet, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::{MICROS_PER_SEC, Micros};

/// Event time kept behind the newest event: enough for the same status to
/// arrive through a slower Mastodon instance or Nostr relay minutes later.
pub const DEFAULT_HORIZON_SECS: i64 = 600;
/// Event time of the keys saved with a checkpoint: a restart resumes 5 s
/// before its cursor, so the last half-minute is plenty.
pub const PERSIST_HORIZON_SECS: i64 = 30;
/// Hard bound on remembered keys (a burst far above the firehose's rate).
pub const DEFAULT_MAX_KEYS: usize = 500_000;
/// Bound on the keys dated beyond the horizon ahead of the watermark: a
/// stranger chooses how many posts to date ahead, and past this the
/// furthest ahead is forgotten first (it is the last a resumed run could
/// accept).
pub const MAX_AHEAD_KEYS: usize = 10_000;

/// The key of an event identified by `parts`: the xxh3 of each part
/// followed by 0xff (a byte no UTF-8 text holds, so parts cannot run into
/// each other). Hashed in one call over the joined bytes, which xxh3 does
/// far faster for short input than its streaming state (this runs on
/// every post); the digest is the same either way, so saved keys still
/// match (test `the_key_is_xxh3_of_the_parts_each_closed_by_0xff`).
pub fn key_of(parts: &[&str]) -> u64 {
    let len: usize = parts.iter().map(|part| part.len() + 1).sum();
    let mut stack = [0u8; 256];
    let mut heap = Vec::new();
    let joined: &mut [u8] = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    let mut at = 0;
    for part in parts {
        joined[at..at + part.len()].copy_from_slice(part.as_bytes());
        joined[at + part.len()] = 0xff;
        at += part.len() + 1;
    }
    xxhash_rust::xxh3::xxh3_64(joined)
}

/// Saved through [`Persisted`] (a whole one is `Persisted::from`), which
/// writes the keys dated ahead after the others in `order`; [`restored`](
/// Deduper::restored) sorts them apart again, so the saved layout is the
/// one it has always been.
#[derive(Debug, Clone, Deserialize)]
pub struct Deduper {
    horizon_us: Micros,
    max_keys: usize,
    /// Keys in arrival order with their event time, to forget the oldest.
    order: VecDeque<(Micros, u64)>,
    /// Keys dated more than the horizon ahead of the newest watermark, by
    /// event time (see the module's documentation).
    #[serde(skip)]
    ahead: BTreeSet<(Micros, u64)>,
    /// The keys are xxh3 digests already, but of text a stranger writes
    /// (unseeded, so keys can be chosen): the set hashes them again with a
    /// random seed (foldhash's `RandomState`, "minimally DoS-resistant" by
    /// its own account, and a few instructions for a `u64` where xxh3 took
    /// a digest's worth). Its order is never read, so runs stay identical.
    #[serde(skip)]
    keys: HashSet<u64, foldhash::fast::RandomState>,
    /// The newest watermark seen: the horizon is measured back from it.
    newest: Option<Micros>,
}

/// Equal when they remember the same keys in the same order.
impl PartialEq for Deduper {
    fn eq(&self, other: &Self) -> bool {
        self.horizon_us == other.horizon_us
            && self.max_keys == other.max_keys
            && self.order == other.order
            && self.ahead == other.ahead
            && self.newest == other.newest
    }
}

impl Default for Deduper {
    fn default() -> Self {
        Deduper::new(DEFAULT_HORIZON_SECS * MICROS_PER_SEC, DEFAULT_MAX_KEYS)
    }
}

impl Deduper {
    pub fn new(horizon_us: Micros, max_keys: usize) -> Self {
        Deduper {
            horizon_us,
            max_keys,
            order: VecDeque::new(),
            ahead: BTreeSet::new(),
            keys: HashSet::default(),
            newest: None,
        }
    }

    /// The same, remembering keys for at least `horizon_us` of event time:
    /// as long as a post can still be counted (the window's maximum
    /// lateness), a second delivery of it must still be recognised.
    pub fn covering(mut self, horizon_us: Micros) -> Self {
        self.horizon_us = self.horizon_us.max(horizon_us);
        self
    }

    /// Rebuilds the lookup set after loading from a checkpoint, and sets
    /// the keys dated ahead apart again.
    pub fn restored(mut self) -> Self {
        self.keys = self.order.iter().map(|(_, k)| *k).collect();
        if let Some(far) = self.far_ahead_from() {
            self.ahead
                .extend(self.order.iter().filter(|(t, _)| *t > far));
            self.order.retain(|(t, _)| *t <= far);
        }
        self
    }

    /// How far behind the newest watermark keys are remembered.
    pub fn horizon_us(&self) -> Micros {
        self.horizon_us
    }

    /// Whether a post of `time_us` is within the horizon, where its key is
    /// remembered (or saved with the checkpoint, for the sources a restart
    /// can count): an older one can no longer be recognised as delivered
    /// before, so it must not be counted at all.
    pub fn recognises(&self, time_us: Micros) -> bool {
        self.newest
            .is_none_or(|n| time_us >= n.saturating_sub(self.horizon_us))
    }

    /// Event times after this are dated ahead: further from the newest
    /// watermark than the horizon (`None` before there is a watermark).
    fn far_ahead_from(&self) -> Option<Micros> {
        self.newest.map(|n| n.saturating_add(self.horizon_us))
    }

    /// What the checkpoint keeps of this de-duplicator: only the keys a
    /// resumed run can meet again and still count: those at or after
    /// `countable_from` (the pipeline passes its oldest source watermark
    /// less the allowed lateness: anything older is stale anyway), and at
    /// least the last [`PERSIST_HORIZON_SECS`], which a resumed cursor's
    /// overlap needs. Small either way, where the whole horizon would not
    /// be. A view, not a copy: it is written on every save.
    pub fn persisted(&self, countable_from: Option<Micros>) -> Persisted<'_> {
        let recent = self.newest.map_or(i64::MIN, |n| {
            n.saturating_sub(PERSIST_HORIZON_SECS * MICROS_PER_SEC)
        });
        let cutoff = countable_from.map_or(recent, |from| from.min(recent));
        Persisted {
            deduper: self,
            cutoff,
        }
    }

    /// True when `key` was seen before (the event is a duplicate). `now`
    /// is the event time of the source's watermark, from which the horizon
    /// is measured (`None` before it has one: then only `max_keys`
    /// forgets).
    pub fn is_duplicate(&mut self, key: u64, time_us: Micros, now: Option<Micros>) -> bool {
        if !self.keys.insert(key) {
            return true;
        }
        if let Some(now) = now {
            self.newest = Some(self.newest.map_or(now, |n| n.max(now)));
        }
        if self.far_ahead_from().is_some_and(|far| time_us > far) {
            self.ahead.insert((time_us, key));
            if self.ahead.len() > MAX_AHEAD_KEYS
                && let Some((_, furthest)) = self.ahead.pop_last()
            {
                self.keys.remove(&furthest);
            }
        } else {
            self.order.push_back((time_us, key));
        }
        let cutoff = self
            .newest
            .map_or(Micros::MIN, |n| n.saturating_sub(self.horizon_us));
        while let Some(&(t, old)) = self.ahead.first() {
            if t >= cutoff {
                break;
            }
            self.ahead.pop_first();
            self.keys.remove(&old);
        }
        while let Some(&(t, old)) = self.order.front() {
            if t >= cutoff && self.order.len() + self.ahead.len() <= self.max_keys {
                break;
            }
            self.order.pop_front();
            self.keys.remove(&old);
        }
        false
    }
}

impl Serialize for Deduper {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Persisted::from(self).serialize(serializer)
    }
}

/// A [`Deduper`] as the checkpoint keeps it ([`Deduper::persisted`]):
/// serialises exactly as a `Deduper` holding only the keys at or after
/// `cutoff`, so it reads back as one.
#[derive(Debug, Clone, Copy)]
pub struct Persisted<'a> {
    deduper: &'a Deduper,
    cutoff: Micros,
}

impl<'a> From<&'a Deduper> for Persisted<'a> {
    /// Everything the de-duplicator holds.
    fn from(deduper: &'a Deduper) -> Self {
        Persisted {
            deduper,
            cutoff: Micros::MIN,
        }
    }
}

impl Serialize for Persisted<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let d = self.deduper;
        let mut out = serializer.serialize_struct("Deduper", 4)?;
        out.serialize_field("horizon_us", &d.horizon_us)?;
        out.serialize_field("max_keys", &d.max_keys)?;
        out.serialize_field("order", &Kept(*self))?;
        out.skip_field("keys")?;
        out.serialize_field("newest", &d.newest)?;
        out.end()
    }
}

/// The keys a [`Persisted`] keeps, as a sequence of known length (a
/// compact format writes the length first).
struct Kept<'a>(Persisted<'a>);

impl Serialize for Kept<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let Persisted { deduper, cutoff } = self.0;
        let kept = || {
            deduper
                .order
                .iter()
                .chain(&deduper.ahead)
                .filter(move |(t, _)| *t >= cutoff)
        };
        let mut seq = serializer.serialize_seq(Some(kept().count()))?;
        for entry in kept() {
            seq.serialize_element(entry)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a checkpoint gives back.
    fn round_trip(persisted: Persisted<'_>) -> Deduper {
        let bytes = postcard::to_stdvec(&persisted).expect("serialize");
        postcard::from_bytes::<Deduper>(&bytes)
            .expect("load")
            .restored()
    }

    #[test]
    fn a_whole_deduper_reads_back_equal() {
        let mut d = Deduper::new(50, 1000);
        for i in 0..20 {
            d.is_duplicate(key_of(&[&i.to_string()]), (i * 7) % 30, Some((i * 7) % 30));
        }
        // Two keys dated far ahead (quarantined posts) go along.
        d.is_duplicate(key_of(&["ahead"]), 10_000, None);
        d.is_duplicate(key_of(&["further"]), 20_000, None);
        assert_eq!(d.ahead.len(), 2);
        assert_eq!(round_trip(Persisted::from(&d)), d);
        // The saved layout is the one checkpoints have always had: the
        // keys dated ahead travel in `order`, after the others.
        let json: serde_json::Value = serde_json::to_value(&d).expect("JSON");
        let fields: Vec<&str> = json
            .as_object()
            .expect("a struct")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, ["horizon_us", "max_keys", "newest", "order"]);
        assert_eq!(json["order"].as_array().map(Vec::len), Some(22));
    }

    /// One key dated a week ahead, at the front of the arrival order,
    /// held every key behind it until `max_keys` forgot them by count.
    #[test]
    fn a_key_dated_far_ahead_does_not_hold_the_keys_behind_it() {
        let mut d = Deduper::new(10, 1_000_000);
        assert!(!d.is_duplicate(key_of(&["first"]), 0, Some(0)));
        let ahead = key_of(&["a week ahead"]);
        assert!(!d.is_duplicate(ahead, 7 * 24 * 3600 * MICROS_PER_SEC, None));
        for t in 1..=1000 {
            assert!(!d.is_duplicate(key_of(&[&t.to_string()]), t, Some(t)));
        }
        assert!(d.keys.len() <= 12, "{} keys remembered", d.keys.len());
        assert!(
            !d.is_duplicate(key_of(&["5"]), 1001, Some(1001)),
            "forgotten by age"
        );
        assert!(d.is_duplicate(ahead, 1002, Some(1002)), "still known");
    }

    #[test]
    fn keys_dated_ahead_are_bounded_furthest_first() {
        let mut d = Deduper::new(10, 1_000_000);
        assert!(!d.is_duplicate(key_of(&["now"]), 0, Some(0)));
        let n = MAX_AHEAD_KEYS as i64 + 5;
        for t in 0..n {
            let key = key_of(&["ahead", &t.to_string()]);
            assert!(!d.is_duplicate(key, 1_000 + t, None));
        }
        assert_eq!(d.ahead.len(), MAX_AHEAD_KEYS);
        assert_eq!(d.keys.len(), MAX_AHEAD_KEYS + 1);
        let nearest = key_of(&["ahead", "0"]);
        assert!(d.is_duplicate(nearest, 1_000, None), "the nearest is kept");
        let furthest = key_of(&["ahead", &(n - 1).to_string()]);
        assert!(!d.is_duplicate(furthest, 1_000, None), "the furthest went");
    }

    #[test]
    fn duplicates_within_the_horizon_are_dropped() {
        let (a, b) = (key_of(&["a"]), key_of(&["b"]));
        let mut d = Deduper::new(10, 100);
        assert!(!d.is_duplicate(a, 0, Some(0)));
        assert!(d.is_duplicate(a, 5, Some(5)));
        assert!(!d.is_duplicate(b, 20, Some(20)), "a is forgotten now");
        assert!(!d.is_duplicate(a, 21, Some(21)));
    }

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(key_of(&["did:plc:a", "k"]), key_of(&["did:plc:a", "k"]));
        assert_ne!(key_of(&["did:plc:a", "k"]), key_of(&["did:plc:ak", ""]));
        assert_ne!(key_of(&[]), 0);
    }

    #[test]
    fn the_key_is_xxh3_of_the_parts_each_closed_by_0xff() {
        let long = "x".repeat(300);
        let cases: [&[&str]; 5] = [
            &[],
            &["at://did:plc:abc/app.bsky.feed.post/3k"],
            &["did:plc:a", "app.bsky.feed.post", "3kabc", "rev"],
            &[&long, "k"],
            &["", "", "ü"],
        ];
        for parts in cases {
            let mut streamed = xxhash_rust::xxh3::Xxh3::new();
            for part in parts {
                streamed.update(part.as_bytes());
                streamed.update(&[0xff]);
            }
            assert_eq!(key_of(parts), streamed.digest(), "{parts:?}");
        }
    }

    #[test]
    fn memory_is_bounded_by_max_keys() {
        let mut d = Deduper::new(1_000_000, 3);
        for (i, key) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            assert!(!d.is_duplicate(key_of(&[key]), i as Micros, Some(i as Micros)));
        }
        assert!(d.keys.len() <= 3);
        assert!(
            !d.is_duplicate(key_of(&["a"]), 9, Some(9)),
            "the oldest were forgotten"
        );
    }

    #[test]
    fn survives_a_checkpoint_which_keeps_only_recent_keys() {
        let mut d = Deduper::default();
        let (old, recent) = (key_of(&["old"]), key_of(&["recent"]));
        assert!(!d.is_duplicate(old, 0, Some(0)));
        assert!(!d.is_duplicate(recent, 100 * MICROS_PER_SEC, Some(100 * MICROS_PER_SEC)));
        let mut back = round_trip(d.persisted(None));
        assert!(back.is_duplicate(recent, 101 * MICROS_PER_SEC, Some(101 * MICROS_PER_SEC)));
        assert!(
            !back.is_duplicate(old, 101 * MICROS_PER_SEC, Some(101 * MICROS_PER_SEC)),
            "older than the persisted horizon"
        );
    }

    #[test]
    fn a_checkpoint_keeps_every_key_that_could_still_be_counted() {
        let mut d = Deduper::default();
        let keys: Vec<u64> = (0..5).map(|i| key_of(&[&i.to_string()])).collect();
        for (i, key) in keys.iter().enumerate() {
            assert!(!d.is_duplicate(
                *key,
                i as i64 * 20 * MICROS_PER_SEC,
                Some(i as i64 * 20 * MICROS_PER_SEC)
            ));
        }
        // Newest at 80 s: the persist horizon alone keeps 50 s on; a run
        // that may still count posts from 30 s on keeps those too.
        let snapshot = |from| round_trip(d.persisted(from));
        let mut short = snapshot(None);
        let mut long = snapshot(Some(30 * MICROS_PER_SEC));
        let kept = |d: &mut Deduper| {
            keys.iter()
                .filter(|k| d.is_duplicate(**k, 80 * MICROS_PER_SEC, Some(80 * MICROS_PER_SEC)))
                .count()
        };
        assert_eq!(kept(&mut short), 2, "60 s and 80 s");
        assert_eq!(kept(&mut long), 3, "40 s, 60 s and 80 s");
    }
}
