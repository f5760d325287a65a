//! Sinks that leave the configuration: retired (what they were owed
//! becomes their dead letters), renamed (`formerly`), or forgotten for
//! good (`alerts forget`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::super::keys::{self, Kind, seq_of};
use super::super::{StoreError, codec};
use super::letters::RequeuedRecord;
use super::{DeadLetter, Outbox, Place, SetAside, readable, retired_bytes};

/// What [`Outbox::forget`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten {
    /// Alerts the sink had not had yet.
    pub pending: usize,
    /// Its dead letters.
    pub dead: usize,
}

impl<A: Serialize + DeserializeOwned> Outbox<A> {
    /// Settles a sink that is no longer configured: the alerts it was owed
    /// (after its cursor, re-queued and set aside) become its dead letters with
    /// `reason` (a re-queued letter goes back whole, what superseded it
    /// included), then its place is marked retired at the newest alert
    /// (it holds nothing any more; see `Place::Retired`) and the alerts
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
        for entry in self.db.scan_prefix(keys::entries(Kind::Aside, sink)) {
            let (key, value) = entry?;
            let seq = seq_of(&key);
            // One that does not read stays, counted by the sink's report
            // and moved by a rename, rather than dropped unseen.
            if let Ok(aside) = readable::<SetAside<A>>(seq, &value) {
                let attempts = aside.retry.map_or(0, |r| r.attempts);
                let dead = DeadLetter {
                    attempts,
                    ..letter(seq, aside.alert)
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
    /// its place, retry state, re-queued, set-aside and dead letters and open alerts
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
        for kind in [Kind::Requeued, Kind::Aside, Kind::Dead, Kind::OpenAlert] {
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
    /// state, letters (set aside too) or open incidents.
    pub fn holds_anything(&self, sink: &str) -> Result<bool, StoreError> {
        let has = |kind: Kind| {
            self.db
                .scan_prefix(keys::entries(kind, sink))
                .next()
                .is_some()
        };
        Ok(self.db.contains_key(keys::named(Kind::Cursor, sink))?
            || self.db.contains_key(keys::named(Kind::Retry, sink))?
            || [Kind::Requeued, Kind::Aside, Kind::Dead, Kind::OpenAlert]
                .into_iter()
                .any(has))
    }

    /// Forgets a sink that is gone for good: its cursor, retry state,
    /// re-queued, set-aside and dead letters and open alerts, then removes
    /// the alerts only it was still waiting for. Returns how many alerts it
    /// had not had (set aside included) and how many dead letters it held.
    pub fn forget(&self, sink: &str) -> Result<Forgotten, StoreError> {
        let pending = self.pending_for(sink)?;
        let mut batch = sled::Batch::default();
        batch.remove(keys::named(Kind::Cursor, sink));
        batch.remove(keys::named(Kind::Retry, sink));
        let mut dead = 0;
        for kind in [Kind::Requeued, Kind::Aside, Kind::Dead, Kind::OpenAlert] {
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
}
