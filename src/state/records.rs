//! The typed records of the store (besides buckets, which are
//! [`crate::window::Bucket`]s, and alerts, whose type the outbox is given).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Micros;
use crate::detect::Snapshot;
use crate::source::dedupe::Deduper;
use crate::source::jetstream::SeqCursor;
use crate::window::Bucket;

/// The store's format, saved under `mformat`. 1: the keyspace of
/// [`super::keys`]. A change of key layout or encoding bumps it and adds
/// its step to [`super::migrate`].
pub const FORMAT: u32 = 1;

/// Where the pipeline stood when the last batch was written: enough to
/// continue after a restart without losing or double-counting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Start of the first bucket not yet closed.
    pub closed_through: Option<Micros>,
    /// Newest event time seen.
    #[serde(default)]
    pub newest: Option<Micros>,
    /// Buckets still open (awaiting more events), so a restart continues
    /// them instead of closing them early.
    #[serde(default)]
    pub open: Vec<Bucket>,
    /// The detector's state, so open incidents and recent windows survive
    /// (`None`: nothing saved yet, the detector starts afresh).
    pub detector: Option<Snapshot>,
    /// Per source, the newest event time fully accounted for (live sources
    /// resume from it).
    #[serde(default)]
    pub cursors: BTreeMap<String, Micros>,
    /// Per source, the newest Jetstream v2 sequence number fully accounted
    /// for, with the host that issued it (exact resume).
    #[serde(default)]
    pub seqs: BTreeMap<String, SeqCursor>,
    /// Recently seen event keys, so a resumed overlap is not counted twice.
    #[serde(default)]
    pub dedupe: Option<Deduper>,
}
