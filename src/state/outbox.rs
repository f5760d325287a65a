//! The alert outbox in sled (its keys in [`super::keys`]): alerts are written here by the pipeline, in the
//! same atomic batch as the counts that raised them, before anyone tries to
//! deliver them. Each sink keeps its own place in it, so a dead receiver
//! never holds up another sink, and a restart resumes every sink where it
//! stopped.
//!
//! Alerts every sink with an active place is done with are removed. A sink
//! missing from a run's configuration (removed, renamed, or a `replay`
//! without `--config` on the daemon's state) is settled before the sinks
//! start: a renamed one ([`Outbox::rename`]) keeps its place under its new
//! name; any other is retired ([`Outbox::retire`]): the alerts it was owed
//! become its dead letters, listed and re-queued as any other, and it
//! holds nothing back, going on from there if configured again. They used
//! to be removed with the others' delivered alerts, in silence. Generic
//! over the alert
//! type `A`, so that `state` does not depend on `alert` (which uses it as
//! `alert::outbox::Outbox`).

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::keys::{self, Kind, seq_of};
use super::{StoreError, codec};

/// A `source:NAME` incident still open when the daemon stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenSource {
    pub source: String,
    /// Wall-clock µs of its start (with the source, its incident id).
    pub started_at: i64,
    pub detail: String,
}

/// The highest sequence number the store's records still know: the
/// newest alert, every sink's cursor, every dead or re-queued letter. A
/// new alert must be numbered past it, and sled's own id counter does not
/// say so: it lives in sled's metadata, which a compaction or a repair
/// (records copied into a fresh store) starts afresh. The fresh counter
/// then numbered new alerts at or below the sinks' cursors, and every
/// sink took them for delivered: they were never sent.
pub fn highest_known_seq(db: &sled::Db) -> Result<u64, StoreError> {
    let mut highest = match db.scan_prefix([Kind::Alert.tag()]).keys().next_back() {
        Some(key) => seq_of(&key?),
        None => 0,
    };
    for entry in db.scan_prefix([Kind::Cursor.tag()]) {
        highest = highest.max(seq_of(&entry?.1));
    }
    for kind in [Kind::Dead, Kind::Requeued] {
        for key in db.scan_prefix([kind.tag()]).keys() {
            highest = highest.max(seq_of(&key?));
        }
    }
    Ok(highest)
}

/// The alert `seq` decoded, or [`StoreError::UnreadableAlert`] naming it.
fn readable<T: DeserializeOwned>(seq: u64, value: &[u8]) -> Result<T, StoreError> {
    codec::decode_plain("outbox alert", value).map_err(|e| StoreError::UnreadableAlert {
        seq,
        detail: e.to_string(),
    })
}

/// A sink's cursor as stored: 8 big-endian bytes, 0 for `None` (nothing
/// delivered yet; no alert has sequence 0), the form it always had.
fn stored_cursor(value: &[u8]) -> Option<u64> {
    Some(seq_of(value)).filter(|&seq| seq != 0)
}

/// The mark before a retired sink's place: its cursor then follows (see
/// [`Place`]).
const RETIRED: u8 = b'R';

/// A sink's place in the outbox, as its cursor record holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A configured sink's cursor: it holds the alerts after it.
    Active(Option<u64>),
    /// A sink retired at this point ([`Outbox::retire`]): everything up to
    /// it was delivered to it or is its dead letter. It holds nothing; if
    /// it is configured again it goes on from here, so it is not sent
    /// again what its receiver already had.
    Retired(Option<u64>),
}

impl Place {
    fn of(value: &[u8]) -> Place {
        match value {
            [RETIRED, cursor @ ..] if cursor.len() == 8 => Place::Retired(stored_cursor(cursor)),
            _ => Place::Active(stored_cursor(value)),
        }
    }
}

fn retired_bytes(cursor: Option<u64>) -> Vec<u8> {
    let mut bytes = vec![RETIRED];
    bytes.extend_from_slice(&cursor_bytes(cursor));
    bytes
}

fn cursor_bytes(cursor: Option<u64>) -> [u8; 8] {
    cursor.unwrap_or(0).to_be_bytes()
}

/// How delivery of the alert at a sink's head is going.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryState {
    pub seq: u64,
    pub attempts: u32,
    /// Wall-clock milliseconds of the first failure (for people: the
    /// horizon is judged on `failing_ms`).
    pub first_failure_ms: i64,
    pub last_error: String,
    /// How long delivery has been failing, in milliseconds of the
    /// monotonic clock, summed over runs of the daemon (a wall clock
    /// stepped back kept an alert from ever dying; stepped forward, it
    /// died at its second attempt). 0 in a state saved before it existed.
    #[serde(default)]
    pub failing_ms: u64,
}

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

/// What [`Outbox::forget`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten {
    /// Alerts the sink had not had yet.
    pub pending: usize,
    /// Its dead letters.
    pub dead: usize,
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
enum RequeuedRecord<A> {
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

/// Held by every writer of the outbox (the pipeline's batches,
/// [`Outbox::append`]) from taking an alert's sequence number until its
/// record is visible. A sink reads in sequence order and never looks back,
/// so alert N made visible after N+1 was read is never delivered: the
/// health monitor's N+1, appended while the pipeline's N waited in its
/// batch, was delivered, and N was later removed with the sink's cursor
/// past it, unsent.
///
/// It also holds the last sequence number handed out, so numbers keep
/// rising past everything the records know ([`highest_known_seq`]), and
/// the highest one known to be on disk: sinks read no further
/// ([`Outbox::next_after`]). A batch is visible in sled before its flush
/// ends, and a sink that sent an alert in between, the process then
/// killed, had paged for an alert the state did not hold: the run resumed
/// before it and raised it again, or, from a source that cannot send the
/// same posts again, never resolved it.
#[derive(Debug, Clone, Default)]
pub struct Appending {
    last: Arc<Mutex<u64>>,
    durable: Arc<AtomicU64>,
}

impl Appending {
    /// Numbers start past `highest` (see [`highest_known_seq`]); the
    /// records already there are on disk.
    pub fn after(highest: u64) -> Self {
        Appending {
            last: Arc::new(Mutex::new(highest)),
            durable: Arc::new(AtomicU64::new(highest)),
        }
    }

    /// Waits for the writer before. The number is written only once taken
    /// whole, so a writer that panicked holding the lock leaves nothing
    /// half done.
    pub fn hold(&self) -> Numbering<'_> {
        Numbering(self.last.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Numbers go on past `highest` too (after records were written into
    /// the store from elsewhere: a repair).
    pub fn raise_to(&self, highest: u64) {
        let mut last = self.hold();
        *last.0 = (*last.0).max(highest);
    }

    /// The alerts up to `seq` are flushed to disk: sinks may send them.
    pub fn mark_durable(&self, seq: u64) {
        self.durable.fetch_max(seq, Ordering::AcqRel);
    }

    /// The highest sequence number known to be on disk.
    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }
}

/// The outbox's writer lock, held: the one place alert numbers come from.
pub struct Numbering<'a>(MutexGuard<'a, u64>);

impl Numbering<'_> {
    /// A new alert's sequence number: past the last one handed out and
    /// past sled's counter (which survives a restart), and never 0, which
    /// a stored cursor uses for "nothing done yet" ([`stored_cursor`]).
    pub fn next_seq(&mut self, db: &sled::Db) -> Result<u64, StoreError> {
        let counted = db.generate_id()?.saturating_add(1);
        let seq = counted.max(self.0.checked_add(1).ok_or_else(|| StoreError::Corrupt {
            what: "outbox".into(),
            detail: "its sequence numbers are exhausted".into(),
        })?);
        *self.0 = seq;
        Ok(seq)
    }
}

pub struct Outbox<A> {
    db: sled::Db,
    appending: Appending,
    alert: PhantomData<fn() -> A>,
}

impl<A> Clone for Outbox<A> {
    fn clone(&self) -> Self {
        Outbox::new(self.db.clone(), self.appending.clone())
    }
}

impl<A> Outbox<A> {
    /// The outbox of `db`, whose writers all share `appending`.
    pub fn new(db: sled::Db, appending: Appending) -> Self {
        Outbox {
            db,
            appending,
            alert: PhantomData,
        }
    }
}

impl<A: Serialize + DeserializeOwned> Outbox<A> {
    /// Appends an alert outside a pipeline batch (a source's health),
    /// durably.
    pub fn append(&self, alert: &A) -> Result<u64, StoreError> {
        let value = codec::encode_plain("alert", alert)?;
        let seq = {
            let mut numbering = self.appending.hold();
            let seq = numbering.next_seq(&self.db)?;
            self.db.insert(keys::alert(seq), value)?;
            self.db.flush()?;
            seq
        };
        self.appending.mark_durable(seq);
        Ok(seq)
    }

    /// The first alert after `after` (`None`: the first of all) that is on
    /// disk (see [`Appending`]).
    pub fn next_after(&self, after: Option<u64>) -> Result<Option<(u64, A)>, StoreError> {
        let first = after.map_or(0, |seq| seq.saturating_add(1));
        let durable = self.appending.durable();
        if first > durable {
            return Ok(None);
        }
        let (start, end) = (keys::alert(first), keys::alert(durable));
        match self.db.range(start..=end).next() {
            None => Ok(None),
            Some(entry) => {
                let (key, value) = entry?;
                let seq = seq_of(&key);
                Ok(Some((seq, readable(seq, &value)?)))
            }
        }
    }

    /// The newest alert's seq (`None` when the outbox is empty).
    pub fn last_seq(&self) -> Result<Option<u64>, StoreError> {
        let start = keys::alert(0);
        let end = keys::alert(u64::MAX);
        Ok(match self.db.range(start..=end).next_back() {
            Some(entry) => Some(seq_of(&entry?.0)),
            None => None,
        })
    }

    /// A sink's cursor; a sink never seen before starts where the slowest
    /// of the other `configured` sinks stands (so it also gets what is
    /// still undelivered), and that start is saved at once, so a restart
    /// does not take it for new again. `None`: nothing delivered yet.
    ///
    /// A sink retired and configured again goes on from where it was
    /// retired, or from the slowest sink if that is further: started at
    /// the slowest alone, it was sent again what its receiver already had.
    pub fn cursor(&self, sink: &str, configured: &[String]) -> Result<Option<u64>, StoreError> {
        let retired_at = match self.place(sink)? {
            Some(Place::Active(cursor)) => return Ok(cursor),
            Some(Place::Retired(at)) => Some(at),
            None => None,
        };
        let mut slowest: Option<Option<u64>> = None;
        for other in configured.iter().filter(|other| *other != sink) {
            if let Some(Place::Active(c)) = self.place(other)? {
                slowest = Some(slowest.map_or(c, |s| s.min(c)));
            }
        }
        let start = match retired_at {
            Some(at) => at.max(slowest.flatten()),
            None => slowest.flatten(),
        };
        self.db
            .insert(keys::named(Kind::Cursor, sink), &cursor_bytes(start))?;
        self.db.flush()?;
        Ok(start)
    }

    /// A sink's place, if it has one.
    fn place(&self, sink: &str) -> Result<Option<Place>, StoreError> {
        Ok(self
            .db
            .get(keys::named(Kind::Cursor, sink))?
            .map(|value| Place::of(&value)))
    }

    /// Every sink with an active cursor in the store (not retired),
    /// configured now or not, with its cursor.
    pub fn sinks_with_cursors(&self) -> Result<Vec<(String, Option<u64>)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.db.scan_prefix([Kind::Cursor.tag()]) {
            let (key, value) = entry?;
            if let Place::Active(cursor) = Place::of(&value) {
                let name = String::from_utf8_lossy(key.get(1..).unwrap_or_default()).into_owned();
                out.push((name, cursor));
            }
        }
        Ok(out)
    }

    /// Every sink the outbox owes something: a cursor in it, or re-queued
    /// letters (which a sink without a cursor, re-queued while it was not
    /// configured, still waits for). Sorted, each once.
    pub fn sinks_owed(&self) -> Result<Vec<String>, StoreError> {
        let mut sinks: Vec<String> = self
            .sinks_with_cursors()?
            .into_iter()
            .map(|(sink, _)| sink)
            .collect();
        for key in self.db.scan_prefix([Kind::Requeued.tag()]).keys() {
            let key = key?;
            let name = key.get(1..key.len().saturating_sub(9)).unwrap_or_default();
            sinks.push(String::from_utf8_lossy(name).into_owned());
        }
        sinks.sort();
        sinks.dedup();
        Ok(sinks)
    }

    /// The slowest of the stored cursors: `None` when no sink has one,
    /// `Some(None)` when one has delivered nothing yet.
    fn slowest_cursor(&self) -> Result<Option<Option<u64>>, StoreError> {
        Ok(self
            .sinks_with_cursors()?
            .into_iter()
            .map(|(_, cursor)| cursor)
            .min())
    }

    /// Marks everything up to `seq` done for `sink`, forgets its retry
    /// state, and removes alerts every sink is done with.
    pub fn advance(&self, sink: &str, seq: u64) -> Result<(), StoreError> {
        self.db
            .insert(keys::named(Kind::Cursor, sink), &cursor_bytes(Some(seq)))?;
        self.db.remove(keys::named(Kind::Retry, sink))?;
        self.prune()
    }

    /// Removes the alerts every sink with a cursor is done with.
    fn prune(&self) -> Result<(), StoreError> {
        if let Some(Some(slowest)) = self.slowest_cursor()? {
            let mut batch = sled::Batch::default();
            for entry in self.db.range(keys::alert(0)..=keys::alert(slowest)) {
                batch.remove(entry?.0);
            }
            self.db.apply_batch(batch)?;
        }
        Ok(())
    }

    /// Settles a sink that is no longer configured: the alerts it was owed
    /// (after its cursor, and re-queued) become its dead letters with
    /// `reason` (a re-queued letter goes back whole, what superseded it
    /// included), then its place is marked retired at the newest alert
    /// (it holds nothing any more; see [`Place::Retired`]) and the alerts
    /// only it was waiting for are removed. Returns how many letters it
    /// got. Its open alerts stay.
    pub fn retire(&self, sink: &str, reason: &str, failed_at: &str) -> Result<usize, StoreError> {
        let last = self.last_seq()?;
        let cursor = match self.place(sink)? {
            Some(Place::Active(cursor)) => cursor,
            Some(Place::Retired(_)) | None => last,
        };
        let mut batch = sled::Batch::default();
        let mut letters = 0;
        let letter = |seq: u64, alert: A| DeadLetter {
            sink: sink.to_owned(),
            seq,
            alert,
            reason: reason.to_owned(),
            attempts: 0,
            failed_at: failed_at.to_owned(),
            superseded_by: None,
        };
        let owed = self
            .db
            .range(keys::alert(cursor.map_or(0, |c| c.saturating_add(1)))..=keys::alert(u64::MAX));
        for entry in owed {
            let (key, value) = entry?;
            let seq = seq_of(&key);
            // An alert that does not read stays in the outbox for the
            // others; this sink would have passed over it too.
            let Ok(alert) = readable::<A>(seq, &value) else {
                continue;
            };
            let value = codec::encode_plain("dead letter", &letter(seq, alert))?;
            batch.insert(keys::entry(Kind::Dead, sink, seq), value);
            letters += 1;
        }
        for entry in self.db.scan_prefix(keys::entries(Kind::Requeued, sink)) {
            let (key, value) = entry?;
            let seq = seq_of(&key);
            if let Ok(requeued) = readable::<RequeuedRecord<A>>(seq, &value) {
                let dead = match requeued {
                    RequeuedRecord::Letter(letter) => letter,
                    RequeuedRecord::Alert(alert) => letter(seq, alert),
                };
                let value = codec::encode_plain("dead letter", &dead)?;
                batch.insert(keys::entry(Kind::Dead, sink, seq), value);
                batch.remove(key);
                letters += 1;
            }
        }
        batch.insert(
            keys::named(Kind::Cursor, sink),
            retired_bytes(last.max(cursor)),
        );
        batch.remove(keys::named(Kind::Retry, sink));
        self.db.apply_batch(batch)?;
        self.prune()?;
        self.db.flush()?;
        Ok(letters)
    }

    /// Moves everything the outbox keeps for sink `from` to sink `to`:
    /// its place, retry state, re-queued and dead letters and open alerts
    /// (a sink renamed in the configuration, which names its old name).
    /// Refused (false) when `to` has anything in the outbox already (it
    /// would be overwritten); false too when `from` has nothing.
    pub fn rename(&self, from: &str, to: &str) -> Result<bool, StoreError> {
        if from == to || self.holds_anything(to)? || !self.holds_anything(from)? {
            return Ok(false);
        }
        let mut batch = sled::Batch::default();
        for kind in [Kind::Cursor, Kind::Retry] {
            if let Some(value) = self.db.get(keys::named(kind, from))? {
                batch.insert(keys::named(kind, to), value);
                batch.remove(keys::named(kind, from));
            }
        }
        for kind in [Kind::Requeued, Kind::Dead, Kind::OpenAlert] {
            let old = keys::entries(kind, from);
            for entry in self.db.scan_prefix(&old) {
                let (key, mut value) = entry?;
                let mut moved = keys::entries(kind, to);
                moved.extend_from_slice(key.get(old.len()..).unwrap_or_default());
                if kind == Kind::Dead
                    && let Ok(mut letter) =
                        codec::decode_plain::<DeadLetter<A>>("dead letter", &value)
                {
                    letter.sink = to.to_owned();
                    value = codec::encode_plain("dead letter", &letter)?.into();
                }
                batch.insert(moved, value);
                batch.remove(key);
            }
        }
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(true)
    }

    /// Whether the outbox keeps anything for `sink`: a place, a retry
    /// state, letters or open incidents.
    pub fn holds_anything(&self, sink: &str) -> Result<bool, StoreError> {
        let has = |kind: Kind| {
            self.db
                .scan_prefix(keys::entries(kind, sink))
                .next()
                .is_some()
        };
        Ok(self.db.contains_key(keys::named(Kind::Cursor, sink))?
            || self.db.contains_key(keys::named(Kind::Retry, sink))?
            || [Kind::Requeued, Kind::Dead, Kind::OpenAlert]
                .into_iter()
                .any(has))
    }

    /// Forgets a sink that is gone for good: its cursor, retry state,
    /// re-queued and dead letters and open alerts, then removes the alerts
    /// only it was still waiting for. Returns how many alerts it had not
    /// had and how many dead letters it held.
    pub fn forget(&self, sink: &str) -> Result<Forgotten, StoreError> {
        let pending = self.pending_for(sink)?;
        let mut batch = sled::Batch::default();
        batch.remove(keys::named(Kind::Cursor, sink));
        batch.remove(keys::named(Kind::Retry, sink));
        let mut dead = 0;
        for kind in [Kind::Requeued, Kind::Dead, Kind::OpenAlert] {
            for key in self.db.scan_prefix(keys::entries(kind, sink)).keys() {
                dead += usize::from(kind == Kind::Dead);
                batch.remove(key?);
            }
        }
        self.db.apply_batch(batch)?;
        self.prune()?;
        self.db.flush()?;
        Ok(Forgotten { pending, dead })
    }

    pub fn retry_state(&self, sink: &str) -> Result<Option<RetryState>, StoreError> {
        match self.db.get(keys::named(Kind::Retry, sink))? {
            None => Ok(None),
            Some(value) => Ok(Some(codec::decode_plain("retry state", &value)?)),
        }
    }

    pub fn set_retry_state(&self, sink: &str, state: &RetryState) -> Result<(), StoreError> {
        let value = codec::encode_plain("retry state", state)?;
        self.db.insert(keys::named(Kind::Retry, sink), value)?;
        Ok(())
    }

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

    /// Alerts `sink` still has to deliver: after its cursor (`None`: all),
    /// plus re-queued.
    pub fn depth(&self, sink: &str, cursor: Option<u64>) -> Result<usize, StoreError> {
        let prefix = keys::entries(Kind::Requeued, sink);
        let requeued = self.db.scan_prefix(prefix).count();
        let pending = self
            .db
            .range(keys::alert(cursor.map_or(0, |c| c.saturating_add(1)))..=keys::alert(u64::MAX))
            .count();
        Ok(pending + requeued)
    }

    /// Alerts `sink` still has to deliver, from its saved cursor; a sink
    /// without one (it has no place) only its re-queued letters.
    pub fn pending_for(&self, sink: &str) -> Result<usize, StoreError> {
        match self.place(sink)? {
            Some(Place::Active(cursor)) => self.depth(sink, cursor),
            Some(Place::Retired(_)) | None => Ok(self
                .db
                .scan_prefix(keys::entries(Kind::Requeued, sink))
                .count()),
        }
    }

    /// Alerts open at a webhook sink, by incident id (Alertmanager's are
    /// re-posted).
    pub fn open_alerts(&self, sink: &str) -> Result<Vec<A>, StoreError> {
        let prefix = keys::entries(Kind::OpenAlert, sink);
        let mut out = Vec::new();
        for entry in self.db.scan_prefix(prefix) {
            let (_, value) = entry?;
            out.push(codec::decode_plain("open alert", &value)?);
        }
        Ok(out)
    }

    /// Records `alert` as open at `sink` under its incident `id`
    /// (replacing the incident's last).
    pub fn set_open_alert(&self, sink: &str, id: &str, alert: &A) -> Result<(), StoreError> {
        let mut key = keys::entries(Kind::OpenAlert, sink);
        key.extend_from_slice(id.as_bytes());
        let value = codec::encode_plain("open alert", alert)?;
        self.db.insert(key, value)?;
        Ok(())
    }

    /// Whether incident `id` is open at `sink` (recorded by
    /// [`Outbox::set_open_alert`]).
    pub fn is_open(&self, sink: &str, id: &str) -> Result<bool, StoreError> {
        let mut key = keys::entries(Kind::OpenAlert, sink);
        key.extend_from_slice(id.as_bytes());
        Ok(self.db.contains_key(key)?)
    }

    pub fn remove_open_alert(&self, sink: &str, id: &str) -> Result<(), StoreError> {
        let mut key = keys::entries(Kind::OpenAlert, sink);
        key.extend_from_slice(id.as_bytes());
        self.db.remove(key)?;
        Ok(())
    }

    /// `source:NAME` incidents left open by the last run.
    pub fn open_sources(&self) -> Result<Vec<OpenSource>, StoreError> {
        let mut out = Vec::new();
        for entry in self.db.scan_prefix([Kind::OpenSource.tag()]) {
            let (_, value) = entry?;
            out.push(codec::decode_plain("open source incident", &value)?);
        }
        Ok(out)
    }

    pub fn set_open_source(&self, open: &OpenSource) -> Result<(), StoreError> {
        let value = codec::encode_plain("open source incident", open)?;
        self.db
            .insert(keys::named(Kind::OpenSource, &open.source), value)?;
        self.db.flush()?;
        Ok(())
    }

    pub fn clear_open_source(&self, source: &str) -> Result<(), StoreError> {
        self.db.remove(keys::named(Kind::OpenSource, source))?;
        self.db.flush()?;
        Ok(())
    }

    /// The whole store's size on disk, in bytes (for the metrics).
    pub fn store_size(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}
