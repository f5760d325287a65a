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
//! to be removed with the others' delivered alerts, in silence. An alert
//! a sink set aside (see [`SetAside`]) is kept in its own record, which
//! removal does not touch. Generic
//! over the alert
//! type `A`, so that `state` does not depend on `alert` (which uses it as
//! `alert::outbox::Outbox`).

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::keys::{self, Kind, seq_of};
use super::{StoreError, codec};

mod aside;
mod letters;
mod numbering;
mod settle;

pub use aside::{SetAside, SetAsideRead};
pub use letters::{
    DeadLetter, DeadLetters, Expired, LetterPage, Requeued, Superseded, UnreadableLetter,
    parse_letter_id,
};
pub use numbering::{Appending, Numbering};
pub use settle::Forgotten;

/// A `source:NAME` incident still open when the daemon stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenSource {
    pub source: String,
    /// Wall-clock µs of its start (with the source, its incident id).
    pub started_at: i64,
    pub detail: String,
}

/// The highest sequence number the store's records still know: the
/// newest alert, every sink's cursor, every dead, re-queued or set-aside
/// letter (a set-aside alert's outbox record may be gone already). A
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
    for kind in [Kind::Dead, Kind::Requeued, Kind::Aside] {
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

    /// Alerts `sink` still has to deliver: after its cursor (`None`: all),
    /// plus re-queued and set aside.
    pub fn depth(&self, sink: &str, cursor: Option<u64>) -> Result<usize, StoreError> {
        let prefix = keys::entries(Kind::Requeued, sink);
        let requeued = self.db.scan_prefix(prefix).count() + self.set_aside_count(sink);
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

/// Whether an outbox record (of `kind`, at `key`) has its kind's layout
/// and decodes as its type (`typed`, `A` being the alert's), or at least
/// as JSON: `state verify` and `repair` checked only our checksummed
/// records, so a truncated alert or a cursor of the wrong length passed
/// both, and the run then passed the alert over unsent or sent a sink
/// everything again. Every open checks the JSON only: a record of another
/// version's layout is passed over at run, listed, as it always was (see
/// [`StoreError::UnreadableAlert`], [`UnreadableLetter`]); `state verify`
/// and `repair` read each as its type. The error says what is wrong; `Ok`
/// for kinds that are not the outbox's.
pub(in crate::state) fn record_layout<A: DeserializeOwned>(
    kind: Kind,
    key: &[u8],
    value: &[u8],
    typed: bool,
) -> Result<(), String> {
    /// `tag + name + 0 + seq`: at least one byte of tag, the 0, 8 of seq.
    fn entry_key(key: &[u8]) -> Result<(), String> {
        match key.len().checked_sub(9).and_then(|at| key.get(at)) {
            Some(0) if key.len() >= 10 => Ok(()),
            _ => Err("its key is not a sink's name, a 0 and a sequence number".into()),
        }
    }
    let decodes = |what: &str, typed_read: fn(&[u8]) -> Result<(), StoreError>| {
        let read = if typed {
            typed_read(value)
        } else {
            codec::decode_plain::<serde::de::IgnoredAny>(what, value).map(drop)
        };
        read.map_err(|e| match e {
            StoreError::Corrupt { detail, .. } => format!("it is no {what} ({detail})"),
            other => other.to_string(),
        })
    };
    fn read<T: DeserializeOwned>(value: &[u8]) -> Result<(), StoreError> {
        codec::decode_plain::<T>("record", value).map(drop)
    }
    match kind {
        Kind::Alert if key.len() != 9 => Err(format!(
            "its key has {} bytes, not a tag and 8 of sequence number",
            key.len()
        )),
        Kind::Alert => decodes("alert", read::<A>),
        Kind::Cursor => match value {
            [_, _, _, _, _, _, _, _] | [RETIRED, _, _, _, _, _, _, _, _] => Ok(()),
            _ => Err(format!(
                "a sink's cursor has {} bytes, not 8 (or a retired mark and 8)",
                value.len()
            )),
        },
        Kind::Retry => decodes("retry state", read::<RetryState>),
        Kind::Dead => entry_key(key).and_then(|()| decodes("dead letter", read::<DeadLetter<A>>)),
        Kind::Requeued => entry_key(key)
            .and_then(|()| decodes("re-queued alert", read::<letters::RequeuedRecord<A>>)),
        Kind::Aside => {
            entry_key(key).and_then(|()| decodes("set-aside alert", read::<SetAside<A>>))
        }
        Kind::OpenAlert => decodes("open alert", read::<A>),
        Kind::OpenSource => decodes("open source incident", read::<OpenSource>),
        Kind::Bucket | Kind::Baseline | Kind::Meta | Kind::Pack => Ok(()),
    }
}
