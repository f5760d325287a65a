//! Alerts a sink set aside: the one at its head that its receiver kept
//! refusing while another incident's alerts waited behind it, and that
//! incident's later alerts (order within an incident is kept). The sink's
//! cursor moves past them, so the other incidents flow; each set-aside
//! alert is retried on its incident's own schedule until it is delivered
//! or dead.
//!
//! A record holds the alert whole, with its retry state, as a dead letter
//! does: the outbox's garbage collection removes what every cursor is
//! past, which a set-aside alert is, and it must not be lost with it. It
//! is written in one batch with the cursor's advance and the head's retry
//! state cleared, so a crash leaves the alert either at the head or set
//! aside, never neither and never both.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::super::keys::{self, Kind, seq_of};
use super::super::{StoreError, codec};
use super::{DeadLetter, Outbox, RetryState, cursor_bytes};

/// One set-aside alert of a sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetAside<A> {
    pub seq: u64,
    /// Its incident: the sink retries incidents apart, each in order.
    pub incident: String,
    pub alert: A,
    /// Its failures so far (`None`: set aside behind an earlier alert of
    /// its incident, not tried yet).
    pub retry: Option<RetryState>,
}

/// A sink's set-aside records as read ([`Outbox::set_aside_alerts`]).
#[derive(Debug)]
pub struct SetAsideRead<A> {
    /// The records that read, by seq.
    pub alerts: Vec<SetAside<A>>,
    /// (seq, why) of those that do not.
    pub unreadable: Vec<(u64, String)>,
}

impl<A: Serialize + DeserializeOwned> Outbox<A> {
    /// Sets alert `seq` (the sink's head) aside and moves the sink's
    /// cursor to it, in one batch that also clears the head's retry state
    /// (it goes with the record). Then removes what every sink is done
    /// with: the record keeps the alert.
    pub fn set_aside(&self, sink: &str, aside: &SetAside<A>) -> Result<(), StoreError> {
        let value = codec::encode_plain("set-aside alert", aside)?;
        let mut batch = sled::Batch::default();
        batch.insert(keys::entry(Kind::Aside, sink, aside.seq), value);
        batch.insert(
            keys::named(Kind::Cursor, sink),
            &cursor_bytes(Some(aside.seq)),
        );
        batch.remove(keys::named(Kind::Retry, sink));
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        self.prune()
    }

    /// Every alert `sink` has set aside, by seq, and apart the records
    /// that do not read (a downgrade, a damaged record), for the sink to
    /// pass over ([`Outbox::drop_set_aside`]). One such record failed the
    /// whole read, and every other set-aside alert of the sink was never
    /// tried again.
    pub fn set_aside_alerts(&self, sink: &str) -> Result<SetAsideRead<A>, StoreError> {
        let mut read = SetAsideRead {
            alerts: Vec::new(),
            unreadable: Vec::new(),
        };
        for entry in self.db.scan_prefix(keys::entries(Kind::Aside, sink)) {
            let (key, value) = entry?;
            let seq = seq_of(&key);
            match codec::decode_plain("set-aside alert", &value) {
                Ok(aside) => read.alerts.push(aside),
                Err(e) => read.unreadable.push((seq, e.to_string())),
            }
        }
        Ok(read)
    }

    /// The oldest set-aside alert of `sink` that reads, decoding no more
    /// than it must (the dashboard asks on every refresh).
    pub fn first_set_aside(&self, sink: &str) -> Result<Option<SetAside<A>>, StoreError> {
        for entry in self.db.scan_prefix(keys::entries(Kind::Aside, sink)) {
            let (_, value) = entry?;
            if let Ok(aside) = codec::decode_plain("set-aside alert", &value) {
                return Ok(Some(aside));
            }
        }
        Ok(None)
    }

    /// Sets `sink`'s re-queued letter `aside.seq` aside (untried: a new
    /// retry state of its own), in one batch that removes it from the
    /// re-queued ones. Tried at the head, before the outbox, a letter its
    /// receiver still refused held every other incident up for a whole
    /// retry horizon, and it took over the sink's one retry state, the
    /// head alert's.
    pub fn set_aside_requeued(&self, sink: &str, aside: &SetAside<A>) -> Result<(), StoreError> {
        let value = codec::encode_plain("set-aside alert", aside)?;
        let mut batch = sled::Batch::default();
        batch.remove(keys::entry(Kind::Requeued, sink, aside.seq));
        batch.insert(keys::entry(Kind::Aside, sink, aside.seq), value);
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// How many alerts `sink` has set aside (read or not).
    pub fn set_aside_count(&self, sink: &str) -> usize {
        self.db
            .scan_prefix(keys::entries(Kind::Aside, sink))
            .count()
    }

    /// Saves a set-aside alert's new retry state.
    pub fn update_set_aside(&self, sink: &str, aside: &SetAside<A>) -> Result<(), StoreError> {
        let key = keys::entry(Kind::Aside, sink, aside.seq);
        let value = codec::encode_plain("set-aside alert", aside)?;
        self.db.insert(key, value)?;
        self.db.flush()?;
        Ok(())
    }

    /// A set-aside alert done with: delivered, skipped by the filter, or
    /// unreadable (passed over, as an unreadable head alert is).
    pub fn drop_set_aside(&self, sink: &str, seq: u64) -> Result<(), StoreError> {
        self.db.remove(keys::entry(Kind::Aside, sink, seq))?;
        self.db.flush()?;
        Ok(())
    }

    /// A set-aside alert given up on: it becomes `letter`, in one batch.
    pub fn set_aside_dead(&self, sink: &str, letter: &DeadLetter<A>) -> Result<(), StoreError> {
        let value = codec::encode_plain("dead letter", letter)?;
        let mut batch = sled::Batch::default();
        batch.remove(keys::entry(Kind::Aside, sink, letter.seq));
        batch.insert(keys::entry(Kind::Dead, sink, letter.seq), value);
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
