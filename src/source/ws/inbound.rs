//! What a connection hands the pipeline: data frames, ticks and rejected
//! frames ([`Inbound`]), over a bounded channel and within a byte budget
//! shared by the sources ([`FrameBudget`]), so a slow pipeline slows the
//! reading instead of growing memory.

use std::sync::Arc;

use super::End;
use crate::Micros;
use crate::source::kind::Link;
use crate::source::url::SourceUrl;
use crate::source::{Checked, FrameError};

/// One data frame for the pipeline, from source number `source`, read
/// from `host` (a sequence number means something only on its host); or,
/// when `tick`, no frame: only that time passed (see [`super::Ticks`]).
#[derive(Debug)]
pub struct Inbound {
    pub source: usize,
    pub host: SourceUrl,
    /// The frame's text; empty for a tick.
    pub frame: String,
    /// No frame: the connection says that it is `arrival_us` now and
    /// nothing else came ([`super::Ticks`]).
    pub tick: bool,
    /// The frame decoded and checked on the connection's task, for a kind
    /// that does so ([`super::Protocol::check`]: a Nostr note, its
    /// signature verified there): the pipeline judges this and does not
    /// decode `frame`, which is kept for a recording.
    pub checked: Option<Checked>,
    /// A frame that arrived but cannot be handed over as text (`frame` is
    /// then empty): a text frame that is not UTF-8, which the websocket
    /// library refuses without its bytes, and on which the connection
    /// closes. Only a reconnect was counted: the pipeline now counts it
    /// as a malformed frame of its source, with why, where the operator
    /// looks for those (the `malformed` counts, metric and warnings).
    pub rejected: Option<FrameError>,
    /// When it arrived (wall clock, whole milliseconds, so a recording's
    /// clock lines hold it exactly and a replay judges it as the live run did).
    pub arrival_us: Micros,
    /// While the subscription is still sending stored events (Nostr,
    /// before `EOSE`): the start of the time range it asked for. See
    /// [`super::Protocol::stored_since`].
    pub stored_since: Option<Micros>,
    /// The frame's share of the [`FrameBudget`], given back when the
    /// frame is dropped (processed).
    pub held: tokio::sync::OwnedSemaphorePermit,
}

/// Bytes of frames in flight between the sources and the pipeline, at
/// most, by default: 64 MiB.
pub const DEFAULT_BUDGET_BYTES: usize = 64 << 20;

/// The bytes of frames the sources may have in flight to the pipeline,
/// shared by all of them. The channel is bounded by frames (4096), and
/// 4096 frames of the 1 MiB frame limit (16 MiB configurable) were
/// gigabytes held while the pipeline waited on a slow disk: a source now
/// waits for room in bytes too, and reads more slowly.
#[derive(Debug, Clone)]
pub struct FrameBudget {
    bytes: Arc<tokio::sync::Semaphore>,
    total: u32,
}

impl FrameBudget {
    pub fn new(bytes: usize) -> Self {
        let total = u32::try_from(bytes).unwrap_or(u32::MAX);
        FrameBudget {
            bytes: Arc::new(tokio::sync::Semaphore::new(total as usize)),
            total,
        }
    }

    /// Waits until a frame of `len` bytes fits (one larger than the whole
    /// budget waits for all of it); `None` only if the budget was closed,
    /// which nothing does.
    pub async fn reserve(&self, len: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let wanted = u32::try_from(len)
            .unwrap_or(u32::MAX)
            .clamp(1, self.total.max(1));
        Arc::clone(&self.bytes)
            .acquire_many_owned(wanted)
            .await
            .ok()
    }

    /// Bytes in flight now, with those set aside for a frame waiting for
    /// the rest.
    pub fn in_flight(&self) -> usize {
        (self.total as usize).saturating_sub(self.bytes.available_permits())
    }
}

/// The arrival clock: wall-clock µs rounded down to the millisecond.
pub fn arrival_now() -> Micros {
    let now = crate::wall::now_us();
    now - now.rem_euclid(1000)
}

/// What a connection hands the pipeline, stamped with its arrival
/// ([`arrival_now`]).
pub(super) enum Handed {
    /// A data frame, and the start of the stored range it belongs to, if
    /// any; decoded already for a kind that decodes on its connection.
    Frame {
        text: String,
        arrival_us: Micros,
        stored_since: Option<Micros>,
        checked: Option<Checked>,
    },
    /// Only that it is now ([`super::Ticks`]).
    Tick { arrival_us: Micros },
    /// A frame that arrived unusable before it was text ([`Inbound::rejected`]).
    Rejected {
        error: FrameError,
        arrival_us: Micros,
    },
}

/// Hands a frame or a tick to the pipeline: room in the byte budget first
/// (a slow pipeline slows the reading), then a place in the channel. A
/// tick goes the same way as the frames, so it never overtakes one that
/// arrived before it. `Some` when the connection must end (shut down, or
/// the pipeline is gone).
pub(super) async fn hand_over(link: &mut Link, host: &SourceUrl, handed: Handed) -> Option<End> {
    let (frame, tick, arrival_us, stored_since, checked, rejected) = match handed {
        Handed::Frame {
            text,
            arrival_us,
            stored_since,
            checked,
        } => (text, false, arrival_us, stored_since, checked, None),
        Handed::Tick { arrival_us } => (String::new(), true, arrival_us, None, None, None),
        Handed::Rejected { error, arrival_us } => {
            (String::new(), false, arrival_us, None, None, Some(error))
        }
    };
    let Link {
        index,
        frames,
        budget,
        shutdown,
        ..
    } = link;
    let send = async {
        let held = budget.reserve(frame.len()).await?;
        let inbound = Inbound {
            source: *index,
            host: host.clone(),
            frame,
            tick,
            checked,
            rejected,
            arrival_us,
            stored_since,
            held,
        };
        frames.send(inbound).await.ok()
    };
    tokio::select! {
        _ = shutdown.changed() => Some(End::Shutdown),
        sent = send => sent.is_none().then_some(End::PipelineGone),
    }
}
