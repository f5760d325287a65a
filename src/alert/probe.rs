//! A sink's numbers from outside its task: delivered, retried, dead and
//! still pending, for the logs, the status API and the metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use super::outbox::Outbox;

/// Counters of one sink, moved by its delivery events (see
/// [`crate::events`]).
pub type SinkStats = crate::events::SinkCounters;

/// A snapshot of one sink, for logs and summaries.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkReport {
    pub name: String,
    pub delivered: u64,
    pub retries: u64,
    pub dead: u64,
    /// Alerts still waiting in the outbox for this sink.
    pub pending: usize,
}

/// Reads the sinks' counters and outbox depth (see [`Delivery::probe`]).
#[derive(Clone)]
pub struct SinkProbe {
    sinks: Vec<(String, Arc<SinkStats>, watch::Receiver<Option<u64>>)>,
    outbox: Outbox,
}

impl SinkProbe {
    pub fn reports(&self) -> Vec<SinkReport> {
        self.sinks
            .iter()
            .map(|(name, stats, cursor)| {
                let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
                SinkReport {
                    name: name.clone(),
                    delivered: load(&stats.delivered),
                    retries: load(&stats.retries),
                    dead: load(&stats.dead),
                    pending: self.outbox.depth(name, *cursor.borrow()).unwrap_or(0),
                }
            })
            .collect()
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}

impl SinkProbe {
    /// A probe of these sinks: each name with its counters and the
    /// receiving end of its cursor.
    pub(crate) fn new(
        sinks: Vec<(String, Arc<SinkStats>, watch::Receiver<Option<u64>>)>,
        outbox: Outbox,
    ) -> Self {
        SinkProbe { sinks, outbox }
    }
}
