//! Dead letters: alerts a sink gave up on, listed, re-queued by `alerts
//! retry` and marked when a later transition of their incident went out.

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
            match codec::decode_plain("dead letter", &value) {
                Ok(letter) => out.letters.push(letter),
                Err(error) => {
                    let sink = key.get(1..key.len().saturating_sub(9)).unwrap_or_default();
                    out.unreadable.push(UnreadableLetter {
                        sink: String::from_utf8_lossy(sink).into_owned(),
                        seq: seq_of(&key),
                        detail: error.to_string(),
                    });
                }
            }
        }
        Ok(out)
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
        let prefix = keys::entries(Kind::Requeued, sink);
        let Some(entry) = self.db.scan_prefix(prefix).next() else {
            return Ok(None);
        };
        let (key, value) = entry?;
        let seq = seq_of(&key);
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

    /// A re-queued alert done with (delivered, or dead again), with the
    /// sink's retry state, which was this alert's: kept, a second `alerts
    /// retry` of the same letter went on from its first failure and gave
    /// it one attempt.
    pub fn remove_requeued(&self, sink: &str, seq: u64) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.remove(keys::entry(Kind::Requeued, sink, seq));
        batch.remove(keys::named(Kind::Retry, sink));
        self.db.apply_batch(batch)?;
        Ok(())
    }
}
