//! Dropping events delivered twice: the overlap a resumed Jetstream cursor
//! replays on purpose, the same note from two Nostr relays, the same status
//! from two Mastodon instances.
//!
//! Keys are remembered for `horizon` of event time behind the newest event,
//! and never more than `max_keys` of them, so memory stays bounded whatever
//! the stream. The state is saved with the pipeline's checkpoint, so a
//! restart recognises the overlap it asks for.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{MICROS_PER_SEC, Micros};

/// Event time kept behind the newest event: enough for the same status to
/// arrive through a slower Mastodon instance or Nostr relay minutes later.
pub const DEFAULT_HORIZON_SECS: i64 = 600;
/// Event time of the keys saved with a checkpoint: a restart resumes 5 s
/// before its cursor, so the last half-minute is plenty.
pub const PERSIST_HORIZON_SECS: i64 = 30;
/// Hard bound on remembered keys (a burst far above the firehose's rate).
pub const DEFAULT_MAX_KEYS: usize = 200_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deduper {
    horizon_us: Micros,
    max_keys: usize,
    /// Keys by event time, to forget the oldest first.
    by_time: BTreeMap<Micros, Vec<String>>,
    #[serde(skip)]
    keys: HashSet<String>,
    newest: Option<Micros>,
    /// Duplicates dropped so far.
    #[serde(default)]
    dropped: u64,
}

/// Equal when they remember the same keys at the same times.
impl PartialEq for Deduper {
    fn eq(&self, other: &Self) -> bool {
        self.horizon_us == other.horizon_us
            && self.max_keys == other.max_keys
            && self.by_time == other.by_time
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
            by_time: BTreeMap::new(),
            keys: HashSet::new(),
            newest: None,
            dropped: 0,
        }
    }

    /// Rebuilds the lookup set after loading from a checkpoint.
    pub fn restored(mut self) -> Self {
        self.keys = self.by_time.values().flatten().cloned().collect();
        self
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// A copy with only the keys of the last [`PERSIST_HORIZON_SECS`], for
    /// the checkpoint: small, and all a resumed cursor's overlap needs.
    pub fn snapshot(&self) -> Deduper {
        let cutoff = self
            .newest
            .map_or(i64::MIN, |n| n - PERSIST_HORIZON_SECS * MICROS_PER_SEC);
        Deduper {
            horizon_us: self.horizon_us,
            max_keys: self.max_keys,
            by_time: self
                .by_time
                .range(cutoff..)
                .map(|(t, keys)| (*t, keys.clone()))
                .collect(),
            keys: HashSet::new(),
            newest: self.newest,
            dropped: self.dropped,
        }
    }

    /// True when `key` was seen before (the event is a duplicate). An empty
    /// key is never a duplicate.
    pub fn is_duplicate(&mut self, key: &str, time_us: Micros) -> bool {
        if key.is_empty() {
            return false;
        }
        if self.keys.contains(key) {
            self.dropped += 1;
            return true;
        }
        self.keys.insert(key.to_owned());
        self.by_time
            .entry(time_us)
            .or_default()
            .push(key.to_owned());
        let newest = self.newest.map_or(time_us, |n| n.max(time_us));
        self.newest = Some(newest);
        let cutoff = newest - self.horizon_us;
        while let Some(entry) = self.by_time.first_entry() {
            if *entry.key() >= cutoff && self.keys.len() <= self.max_keys {
                break;
            }
            for old in entry.remove() {
                self.keys.remove(&old);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_within_the_horizon_are_dropped() {
        let mut d = Deduper::new(10, 100);
        assert!(!d.is_duplicate("a", 0));
        assert!(d.is_duplicate("a", 5));
        assert!(!d.is_duplicate("", 5));
        assert!(!d.is_duplicate("", 5), "empty keys are never duplicates");
        assert!(!d.is_duplicate("b", 20), "a is forgotten now");
        assert!(!d.is_duplicate("a", 21));
        assert_eq!(d.dropped(), 1);
    }

    #[test]
    fn memory_is_bounded_by_max_keys() {
        let mut d = Deduper::new(1_000_000, 3);
        for (i, key) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            assert!(!d.is_duplicate(key, i as Micros));
        }
        assert!(d.keys.len() <= 3);
        assert!(!d.is_duplicate("a", 9), "the oldest were forgotten");
    }

    #[test]
    fn survives_a_checkpoint() {
        let mut d = Deduper::default();
        assert!(!d.is_duplicate("did/app.bsky.feed.post/k/r", 1_000));
        let saved = serde_json::to_string(&d).expect("serialize");
        let mut back: Deduper = serde_json::from_str::<Deduper>(&saved)
            .expect("load")
            .restored();
        assert!(back.is_duplicate("did/app.bsky.feed.post/k/r", 1_500));
    }
}
