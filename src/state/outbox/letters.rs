//! Dead letters: alerts a sink gave up on, listed (whole, or a page at a
//! time for the status API), re-queued by `alerts retry`, marked when a
//! later transition of their incident went out, and expired after the
//! retention (`[alerts] dead_letter_days`). A daemon whose receiver broke
//! for good kept every letter for ever (5,860 in 10 h under a tag flood).
//! Expiry goes by the time a letter died (`failed_at`, the sink's wall
//! clock: delivery runs on it, not on event time).

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::super::keys::{self, Kind, seq_of};
use super::super::{StoreError, codec};
use super::{Outbox, readable};

/// An alert a sink gave up on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter<A> {
    pub sink: String,
    pub seq: u64,
    pub alert: A,
    pub reason: String,
    pub attempts: u32,
    /// RFC 3339, wall clock.
    pub failed_at: String,
    /// A later transition of the same incident this sink delivered after
    /// the letter died (see [`Outbox::supersede_dead`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<Superseded>,
}

/// The later alert of an incident that a sink delivered while an earlier
/// one lay dead: a receiver that keeps incidents open (PagerDuty,
/// Opsgenie, Alertmanager) already holds a newer state than the letter's.
/// Re-sending a `firing` after its `resolved` reopened the incident there
/// (Alertmanager re-posted it for good).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Superseded {
    pub seq: u64,
    /// Its `state` (`updated`, `resolved`).
    pub state: String,
}

/// A re-queued alert, with what superseded it before it was re-queued.
#[derive(Debug, Clone, PartialEq)]
pub struct Requeued<A> {
    pub seq: u64,
    pub alert: A,
    pub superseded_by: Option<Superseded>,
}

/// A re-queued record: the whole dead letter, or (written before letters
/// were re-queued whole) the alert alone.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RequeuedRecord<A> {
    Letter(DeadLetter<A>),
    Alert(A),
}

impl<A> DeadLetter<A> {
    /// The id `alerts retry` takes: `SINK:SEQ`.
    pub fn id(&self) -> String {
        format!("{}:{}", self.sink, self.seq)
    }

    /// When it died, in µs; `None` when `failed_at` does not read (such a
    /// letter is never expired: its age is not known).
    pub fn failed_at_us(&self) -> Option<crate::Micros> {
        chrono::DateTime::parse_from_rfc3339(&self.failed_at)
            .ok()
            .map(|t| t.timestamp_micros())
    }
}

/// Reads an id as `alerts dead` prints it (`SINK:SEQ`; a sink's name may
/// hold `:`, the seq never does).
pub fn parse_letter_id(id: &str) -> Option<(&str, u64)> {
    let (sink, seq) = id.rsplit_once(':')?;
    let seq = seq.parse().ok().filter(|_| !sink.is_empty())?;
    Some((sink, seq))
}

/// What one expiry removed, per sink, and what it could not date.
#[derive(Debug, Default, PartialEq)]
pub struct Expired {
    pub by_sink: BTreeMap<String, usize>,
    /// Letters kept because their `failed_at` does not read, or the letter
    /// itself does not (listed by `alerts dead`).
    pub undated: usize,
}

impl Expired {
    pub fn total(&self) -> usize {
        self.by_sink.values().sum()
    }
}

/// One page of dead letters in key order (sink, then seq).
#[derive(Debug)]
pub struct LetterPage<A> {
    pub letters: DeadLetters<A>,
    /// The id of the last letter on the page when more follow: the
    /// `after` of the next page.
    pub next: Option<String>,
}

/// A dead letter this version cannot read (written by another version, or
/// damaged), known by its key: listed so that it is seen, never re-queued.
/// One such record had failed `alerts dead`, `alerts retry` and the outbox
/// API as a whole, and hidden every dead letter from the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadableLetter {
    pub sink: String,
    pub seq: u64,
    pub detail: String,
}

impl UnreadableLetter {
    /// `SINK:SEQ`, as [`DeadLetter::id`].
    pub fn id(&self) -> String {
        format!("{}:{}", self.sink, self.seq)
    }
}

/// Every dead letter, by sink then seq: those that read, and those that
/// do not.
#[derive(Debug)]
pub struct DeadLetters<A> {
    pub letters: Vec<DeadLetter<A>>,
    pub unreadable: Vec<UnreadableLetter>,
}

impl<A> DeadLetters<A> {
    /// How many dead letters `sink` has, readable or not.
    pub fn count_for(&self, sink: &str) -> usize {
        self.letters.iter().filter(|l| l.sink == sink).count()
            + self.unreadable.iter().filter(|l| l.sink == sink).count()
    }

    /// The letter that died first (by `failed_at`; undated ones aside).
    pub fn oldest(&self) -> Option<&DeadLetter<A>> {
        self.letters
            .iter()
            .filter_map(|l| Some((l.failed_at_us()?, l)))
            .min_by_key(|(at, _)| *at)
            .map(|(_, l)| l)
    }
}

/// The sink a dead letter's key names (`tag + sink + 0 + seq`).
fn sink_of(key: &[u8]) -> String {
    let sink = key.get(1..key.len().saturating_sub(9)).unwrap_or_default();
    String::from_utf8_lossy(sink).into_owned()
}

impl<A: DeserializeOwned> DeadLetters<A> {
    /// Adds the letter stored at `key`, apart when it does not decode.
    fn push(&mut self, key: &[u8], value: &[u8]) {
        match codec::decode_plain("dead letter", value) {
            Ok(letter) => self.letters.push(letter),
            Err(error) => self.unreadable.push(UnreadableLetter {
                sink: sink_of(key),
                seq: seq_of(key),
                detail: error.to_string(),
            }),
        }
    }
}

impl<A: Serialize + DeserializeOwned> Outbox<A> {
    pub fn add_dead_letter(&self, letter: &DeadLetter<A>) -> Result<(), StoreError> {
        let value = codec::encode_plain("dead letter", letter)?;
        self.db
            .insert(keys::entry(Kind::Dead, &letter.sink, letter.seq), value)?;
        self.db.flush()?;
        Ok(())
    }

    /// Every dead letter, by sink then seq; one that does not decode is
    /// listed apart, by its key (`tag + sink + 0 + seq`).
    pub fn dead_letters(&self) -> Result<DeadLetters<A>, StoreError> {
        let mut out = DeadLetters {
            letters: Vec::new(),
            unreadable: Vec::new(),
        };
        for entry in self.db.scan_prefix([Kind::Dead.tag()]) {
            let (key, value) = entry?;
            out.push(&key, &value);
        }
        Ok(out)
    }

    /// How many dead letters each sink has, readable or not, from their
    /// keys alone (nothing decoded: the dashboard and metrics ask often).
    pub fn dead_counts(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let mut counts = BTreeMap::new();
        for key in self.db.scan_prefix([Kind::Dead.tag()]).keys() {
            *counts.entry(sink_of(&key?)).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// The newest dead letter of `sink` that nothing superseded (what the
    /// dashboard shows as its last failure), reading back from its end.
    pub fn last_dead(&self, sink: &str) -> Result<Option<DeadLetter<A>>, StoreError> {
        // Bounded: asked on every dashboard refresh, and a sink may hold
        // thousands of letters, every one superseded.
        const READ_BACK: usize = 1_000;
        let newest = self.db.scan_prefix(keys::entries(Kind::Dead, sink)).rev();
        for entry in newest.take(READ_BACK) {
            let (_, value) = entry?;
            if let Ok(letter) = codec::decode_plain::<DeadLetter<A>>("dead letter", &value)
                && letter.superseded_by.is_none()
            {
                return Ok(Some(letter));
            }
        }
        Ok(None)
    }

    /// At most `limit` dead letters of the sinks `wanted` picks, after the
    /// letter `after` (`SINK:SEQ`; which need not exist any more), in key
    /// order; decodes only those on the page.
    pub fn dead_page(
        &self,
        after: Option<(&str, u64)>,
        limit: usize,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<LetterPage<A>, StoreError> {
        let start = match after {
            Some((sink, seq)) => Bound::Excluded(keys::entry(Kind::Dead, sink, seq)),
            None => Bound::Included(vec![Kind::Dead.tag()]),
        };
        let end = Bound::Excluded(vec![Kind::Dead.tag() + 1]);
        let mut page = DeadLetters {
            letters: Vec::new(),
            unreadable: Vec::new(),
        };
        let mut taken = 0;
        let mut last = None;
        let mut range = self.db.range::<Vec<u8>, _>((start, end.clone()));
        while let Some(entry) = range.next() {
            let (key, value) = entry?;
            let sink = sink_of(&key);
            if !wanted(&sink) {
                // Past all of that sink's letters at once (a retired sink
                // may hold thousands, read again on every page).
                let mut past = keys::entries(Kind::Dead, &sink);
                if let Some(separator) = past.last_mut() {
                    *separator += 1;
                }
                range = self
                    .db
                    .range::<Vec<u8>, _>((Bound::Included(past), end.clone()));
                continue;
            }
            if taken == limit {
                return Ok(LetterPage {
                    letters: page,
                    next: last,
                });
            }
            last = Some(format!("{sink}:{}", seq_of(&key)));
            page.push(&key, &value);
            taken += 1;
        }
        Ok(LetterPage {
            letters: page,
            next: None,
        })
    }

    /// Removes the dead letters that died before `cutoff_us` (wall-clock
    /// µs). A letter whose time or body does not read is kept and counted
    /// as undated; re-queued letters are not dead letters and stay. Each
    /// letter goes only if it is still the one read: one re-queued, dead
    /// again and written back meanwhile under the same key is newer and
    /// stays.
    pub fn expire_dead(&self, cutoff_us: crate::Micros) -> Result<Expired, StoreError> {
        let mut expired = Expired::default();
        for entry in self.db.scan_prefix([Kind::Dead.tag()]) {
            let (key, value) = entry?;
            let letter = codec::decode_plain::<DeadLetter<A>>("dead letter", &value);
            let Some(died) = letter.ok().and_then(|l| l.failed_at_us()) else {
                expired.undated += 1;
                continue;
            };
            if died >= cutoff_us {
                continue;
            }
            let swapped = self
                .db
                .compare_and_swap(&key, Some(&value), None::<&[u8]>)?;
            if swapped.is_ok() {
                *expired.by_sink.entry(sink_of(&key)).or_insert(0) += 1;
            }
        }
        if expired.total() > 0 {
            self.db.flush()?;
        }
        Ok(expired)
    }

    /// Moves dead letters back to their sink's queue: the one with `id`
    /// (`SINK:SEQ`), or all; only those of the `running` sinks when given
    /// (a running daemon's: no task would read another sink's queue).
    /// Returns how many. Unreadable letters stay where they are.
    pub fn requeue(
        &self,
        id: Option<&str>,
        running: Option<&[String]>,
    ) -> Result<usize, StoreError> {
        let mut moved = 0;
        for letter in self.dead_letters()?.letters {
            let elsewhere = running.is_some_and(|running| !running.contains(&letter.sink));
            if id.is_some_and(|id| id != letter.id()) || elsewhere {
                continue;
            }
            let value = codec::encode_plain("re-queued letter", &letter)?;
            let mut batch = sled::Batch::default();
            batch.remove(keys::entry(Kind::Dead, &letter.sink, letter.seq));
            batch.insert(keys::entry(Kind::Requeued, &letter.sink, letter.seq), value);
            self.db.apply_batch(batch)?;
            moved += 1;
        }
        self.db.flush()?;
        Ok(moved)
    }

    /// The first re-queued alert of `sink`.
    pub fn next_requeued(&self, sink: &str) -> Result<Option<Requeued<A>>, StoreError> {
        self.next_requeued_except(sink, |_| false)
    }

    /// The first re-queued alert of `sink` whose seq `skip` does not
    /// pick: a sink passes over one that does not read, and when it cannot
    /// be removed (the store failing) it must not be found again at once.
    pub fn next_requeued_except(
        &self,
        sink: &str,
        skip: impl Fn(u64) -> bool,
    ) -> Result<Option<Requeued<A>>, StoreError> {
        let prefix = keys::entries(Kind::Requeued, sink);
        let mut entries = self.db.scan_prefix(prefix);
        let (seq, value) = loop {
            let Some(entry) = entries.next() else {
                return Ok(None);
            };
            let (key, value) = entry?;
            let seq = seq_of(&key);
            if !skip(seq) {
                break (seq, value);
            }
        };
        Ok(Some(match readable(seq, &value)? {
            RequeuedRecord::Letter(letter) => Requeued {
                seq,
                alert: letter.alert,
                superseded_by: letter.superseded_by,
            },
            RequeuedRecord::Alert(alert) => Requeued {
                seq,
                alert,
                superseded_by: None,
            },
        }))
    }

    /// Marks `sink`'s dead letters older than `by` that `same_incident`
    /// picks as superseded by it (the newest such alert wins). Reads this sink's dead letters only when
    /// it has any (most deliveries: one key looked up).
    pub fn supersede_dead(
        &self,
        sink: &str,
        by: &Superseded,
        same_incident: impl Fn(&A) -> bool,
    ) -> Result<(), StoreError> {
        for entry in self.db.scan_prefix(keys::entries(Kind::Dead, sink)) {
            let (key, value) = entry?;
            // An unreadable letter is listed as such by `dead_letters`.
            let Ok(mut letter) = codec::decode_plain::<DeadLetter<A>>("dead letter", &value) else {
                continue;
            };
            let newer = letter.superseded_by.as_ref().is_none_or(|s| s.seq < by.seq);
            if letter.seq < by.seq && newer && same_incident(&letter.alert) {
                letter.superseded_by = Some(by.clone());
                self.db
                    .insert(key, codec::encode_plain("dead letter", &letter)?)?;
            }
        }
        Ok(())
    }

    /// A re-queued letter done with before it was tried: superseded, or
    /// unreadable. The sink's retry state stays: it is its head alert's
    /// (a re-queued letter is retried set aside, with a state of its own;
    /// see [`Outbox::set_aside_requeued`]).
    pub fn remove_requeued(&self, sink: &str, seq: u64) -> Result<(), StoreError> {
        self.db.remove(keys::entry(Kind::Requeued, sink, seq))?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "letters_tests.rs"]
mod tests;
