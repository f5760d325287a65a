//! Alert sequence numbers: one writer at a time, and how far sinks may
//! read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::super::StoreError;
#[cfg(doc)]
use super::{Outbox, highest_known_seq, stored_cursor};

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
    /// a stored cursor uses for "nothing done yet" (`stored_cursor`).
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
