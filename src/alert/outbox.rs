//! The alert outbox in sled: alerts are written here by the pipeline, in the
//! same atomic batch as the counts that raised them, before anyone tries to
//! deliver them. Each sink keeps its own place in it, so a dead receiver
//! never holds up another sink, and a restart resumes every sink where it
//! stopped.
//!
//! Keys:
//! - `o` + seq (8 bytes, big-endian) → an alert (JSON), in the order raised;
//! - `c` + sink → the sink's cursor: the last seq it is done with;
//! - `r` + sink → the retry state of the alert at the sink's head;
//! - `d` + sink + 0 + seq → a dead letter (the alert and why it failed);
//! - `q` + sink + 0 + seq → an alert re-queued from the dead letters;
//! - `a` + sink + 0 + incident id → an alert open at an Alertmanager sink
//!   (re-posted while firing);
//! - `h` + source → an open `source:NAME` incident (its start and detail),
//!   so a restart can resolve it.
//!
//! Alerts every sink is done with are removed.

use serde::{Deserialize, Serialize};

use super::Alert;
use crate::window::store::StoreError;

const ALERT: u8 = b'o';
const CURSOR: u8 = b'c';
const RETRY: u8 = b'r';
const DEAD: u8 = b'd';
const REQUEUED: u8 = b'q';
const OPEN: u8 = b'a';
const SOURCE: u8 = b'h';

/// A `source:NAME` incident still open when the daemon stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenSource {
    pub source: String,
    /// Wall-clock µs of its start (with the source, its incident id).
    pub started_at: i64,
    pub detail: String,
}

/// A new alert's sequence number: increasing, and never 0, since a cursor
/// of 0 means "nothing done yet".
pub fn next_seq(db: &sled::Db) -> Result<u64, sled::Error> {
    Ok(db.generate_id()? + 1)
}

/// The key of alert `seq`.
pub fn alert_key(seq: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = ALERT;
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn sink_key(prefix: u8, sink: &str) -> Vec<u8> {
    let mut key = vec![prefix];
    key.extend_from_slice(sink.as_bytes());
    key
}

fn entry_key(prefix: u8, sink: &str, seq: u64) -> Vec<u8> {
    let mut key = sink_key(prefix, sink);
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn seq_of(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    if key.len() >= 8 {
        bytes.copy_from_slice(&key[key.len() - 8..]);
    }
    u64::from_be_bytes(bytes)
}

/// How delivery of the alert at a sink's head is going.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryState {
    pub seq: u64,
    pub attempts: u32,
    /// Wall-clock milliseconds of the first failure.
    pub first_failure_ms: i64,
    pub last_error: String,
}

/// An alert a sink gave up on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub sink: String,
    pub seq: u64,
    pub alert: Alert,
    pub reason: String,
    pub attempts: u32,
    /// RFC 3339, wall clock.
    pub failed_at: String,
}

impl DeadLetter {
    /// The id `alerts retry` takes: `SINK:SEQ`.
    pub fn id(&self) -> String {
        format!("{}:{}", self.sink, self.seq)
    }
}

#[derive(Clone)]
pub struct Outbox {
    db: sled::Db,
}

fn corrupt(what: &str) -> impl FnOnce(serde_json::Error) -> StoreError + '_ {
    move |source| StoreError::Corrupt {
        what: what.to_owned(),
        source,
    }
}

impl Outbox {
    pub fn new(db: sled::Db) -> Self {
        Outbox { db }
    }

    /// Appends an alert outside a pipeline batch (a source's health),
    /// durably.
    pub fn append(&self, alert: &Alert) -> Result<u64, StoreError> {
        let seq = next_seq(&self.db)?;
        let value = serde_json::to_vec(alert).map_err(corrupt("alert"))?;
        self.db.insert(alert_key(seq), value)?;
        self.db.flush()?;
        Ok(seq)
    }

    /// The first alert after `seq`.
    pub fn next_after(&self, seq: u64) -> Result<Option<(u64, Alert)>, StoreError> {
        let start = alert_key(seq.saturating_add(1));
        let end = alert_key(u64::MAX);
        match self.db.range(start..=end).next() {
            None => Ok(None),
            Some(entry) => {
                let (key, value) = entry?;
                let alert = serde_json::from_slice(&value).map_err(corrupt("outbox alert"))?;
                Ok(Some((seq_of(&key), alert)))
            }
        }
    }

    /// The newest alert's seq (0 when the outbox is empty).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        let start = alert_key(0);
        let end = alert_key(u64::MAX);
        Ok(match self.db.range(start..=end).next_back() {
            Some(entry) => seq_of(&entry?.0),
            None => 0,
        })
    }

    /// A sink's cursor; a sink never seen before starts where the slowest
    /// known sink stands (so it also gets what is still undelivered), and
    /// that start is saved at once, so a restart does not take it for new
    /// again.
    pub fn cursor(&self, sink: &str, known_sinks: &[String]) -> Result<u64, StoreError> {
        if let Some(value) = self.db.get(sink_key(CURSOR, sink))? {
            return Ok(seq_of(&value));
        }
        let mut slowest: Option<u64> = None;
        for other in known_sinks {
            if let Some(value) = self.db.get(sink_key(CURSOR, other))? {
                let c = seq_of(&value);
                slowest = Some(slowest.map_or(c, |s: u64| s.min(c)));
            }
        }
        let start = slowest.unwrap_or(0);
        self.db
            .insert(sink_key(CURSOR, sink), &start.to_be_bytes())?;
        self.db.flush()?;
        Ok(start)
    }

    /// Marks everything up to `seq` done for `sink`, forgets its retry
    /// state, and removes alerts every sink is done with.
    pub fn advance(&self, sink: &str, seq: u64, all_sinks: &[String]) -> Result<(), StoreError> {
        self.db.insert(sink_key(CURSOR, sink), &seq.to_be_bytes())?;
        self.db.remove(sink_key(RETRY, sink))?;
        let mut slowest = u64::MAX;
        for other in all_sinks {
            let c = match self.db.get(sink_key(CURSOR, other))? {
                Some(value) => seq_of(&value),
                None => 0,
            };
            slowest = slowest.min(c);
        }
        if slowest != u64::MAX && slowest > 0 {
            let mut batch = sled::Batch::default();
            for entry in self.db.range(alert_key(0)..=alert_key(slowest)) {
                batch.remove(entry?.0);
            }
            self.db.apply_batch(batch)?;
        }
        Ok(())
    }

    pub fn retry_state(&self, sink: &str) -> Result<Option<RetryState>, StoreError> {
        match self.db.get(sink_key(RETRY, sink))? {
            None => Ok(None),
            Some(value) => Ok(Some(
                serde_json::from_slice(&value).map_err(corrupt("retry state"))?,
            )),
        }
    }

    pub fn set_retry_state(&self, sink: &str, state: &RetryState) -> Result<(), StoreError> {
        let value = serde_json::to_vec(state).map_err(corrupt("retry state"))?;
        self.db.insert(sink_key(RETRY, sink), value)?;
        Ok(())
    }

    pub fn add_dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let value = serde_json::to_vec(letter).map_err(corrupt("dead letter"))?;
        self.db
            .insert(entry_key(DEAD, &letter.sink, letter.seq), value)?;
        self.db.flush()?;
        Ok(())
    }

    /// Every dead letter, by sink then seq.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let mut out = Vec::new();
        for entry in self.db.scan_prefix([DEAD]) {
            let (_, value) = entry?;
            out.push(serde_json::from_slice(&value).map_err(corrupt("dead letter"))?);
        }
        Ok(out)
    }

    /// Moves dead letters back to their sink's queue: the one with `id`
    /// (`SINK:SEQ`), or all. Returns how many.
    pub fn requeue(&self, id: Option<&str>) -> Result<usize, StoreError> {
        let mut moved = 0;
        for letter in self.dead_letters()? {
            if id.is_some_and(|id| id != letter.id()) {
                continue;
            }
            let value = serde_json::to_vec(&letter.alert).map_err(corrupt("alert"))?;
            let mut batch = sled::Batch::default();
            batch.remove(entry_key(DEAD, &letter.sink, letter.seq));
            batch.insert(entry_key(REQUEUED, &letter.sink, letter.seq), value);
            self.db.apply_batch(batch)?;
            moved += 1;
        }
        self.db.flush()?;
        Ok(moved)
    }

    /// The first re-queued alert of `sink`.
    pub fn next_requeued(&self, sink: &str) -> Result<Option<(u64, Alert)>, StoreError> {
        let mut prefix = sink_key(REQUEUED, sink);
        prefix.push(0);
        match self.db.scan_prefix(prefix).next() {
            None => Ok(None),
            Some(entry) => {
                let (key, value) = entry?;
                let alert = serde_json::from_slice(&value).map_err(corrupt("re-queued alert"))?;
                Ok(Some((seq_of(&key), alert)))
            }
        }
    }

    pub fn remove_requeued(&self, sink: &str, seq: u64) -> Result<(), StoreError> {
        self.db.remove(entry_key(REQUEUED, sink, seq))?;
        Ok(())
    }

    /// Alerts `sink` still has to deliver: after its cursor, plus re-queued.
    pub fn depth(&self, sink: &str, cursor: u64) -> Result<usize, StoreError> {
        let mut prefix = sink_key(REQUEUED, sink);
        prefix.push(0);
        let requeued = self.db.scan_prefix(prefix).count();
        let pending = self
            .db
            .range(alert_key(cursor.saturating_add(1))..=alert_key(u64::MAX))
            .count();
        Ok(pending + requeued)
    }

    /// Alerts `sink` still has to deliver, from its saved cursor.
    pub fn pending_for(&self, sink: &str) -> Result<usize, StoreError> {
        let cursor = match self.db.get(sink_key(CURSOR, sink))? {
            Some(value) => seq_of(&value),
            None => 0,
        };
        self.depth(sink, cursor)
    }

    /// Alerts open at an Alertmanager sink, by incident id.
    pub fn open_alerts(&self, sink: &str) -> Result<Vec<Alert>, StoreError> {
        let mut prefix = sink_key(OPEN, sink);
        prefix.push(0);
        let mut out = Vec::new();
        for entry in self.db.scan_prefix(prefix) {
            let (_, value) = entry?;
            out.push(serde_json::from_slice(&value).map_err(corrupt("open alert"))?);
        }
        Ok(out)
    }

    /// Records `alert` as open at `sink` (replacing its incident's last).
    pub fn set_open_alert(&self, sink: &str, alert: &Alert) -> Result<(), StoreError> {
        let mut key = sink_key(OPEN, sink);
        key.push(0);
        key.extend_from_slice(alert.id.as_bytes());
        let value = serde_json::to_vec(alert).map_err(corrupt("open alert"))?;
        self.db.insert(key, value)?;
        Ok(())
    }

    pub fn remove_open_alert(&self, sink: &str, id: &str) -> Result<(), StoreError> {
        let mut key = sink_key(OPEN, sink);
        key.push(0);
        key.extend_from_slice(id.as_bytes());
        self.db.remove(key)?;
        Ok(())
    }

    /// `source:NAME` incidents left open by the last run.
    pub fn open_sources(&self) -> Result<Vec<OpenSource>, StoreError> {
        let mut out = Vec::new();
        for entry in self.db.scan_prefix([SOURCE]) {
            let (_, value) = entry?;
            out.push(serde_json::from_slice(&value).map_err(corrupt("open source incident"))?);
        }
        Ok(out)
    }

    pub fn set_open_source(&self, open: &OpenSource) -> Result<(), StoreError> {
        let value = serde_json::to_vec(open).map_err(corrupt("open source incident"))?;
        self.db.insert(sink_key(SOURCE, &open.source), value)?;
        self.db.flush()?;
        Ok(())
    }

    pub fn clear_open_source(&self, source: &str) -> Result<(), StoreError> {
        self.db.remove(sink_key(SOURCE, source))?;
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
