//! The typed records of the store (besides buckets, which are
//! [`crate::window::Bucket`]s, and alerts, whose type the outbox is given).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Micros;
use crate::detect::Snapshot;
use crate::detect::baseline::Reports;
use crate::source::clock::SourceClock;
use crate::source::dedupe::{Deduper, Persisted};
use crate::source::jetstream::SeqCursor;
use crate::window::{Bucket, DiscoveredNames, SavedNames, SavedNamesFormat4, SavedNamesFormat6};

/// The store's format, saved under `mformat`. 1: the keyspace of
/// [`super::keys`], records in JSON; 2: records in postcard
/// ([`super::codec`]); 3: the checkpoint holds the sources' clocks and the
/// discovered names, a baseline its overlap; 4: closed buckets may be
/// packed into larger records ([`super::compact`]); 5: a discovered name's
/// candidates keep the class (report or recovery) of each held-back post;
/// 6: a large checkpoint is written in pieces ([`super::keys::checkpoint_piece`]);
/// 7: a sink may set alerts aside ([`super::keys::Kind::Aside`]), which
/// an older build would neither deliver nor keep, the discovered
/// names in the checkpoint hold the authors' budgets of admissions, and
/// buckets hold their authors as digests ([`crate::window::AuthorId`]);
/// 8: a report's author may come with the server that vouches for it
/// ([`crate::window::AddedIn8`] fields of buckets and held-back posts);
/// 9: a source's clock keeps how far behind the arrival clock it usually
/// runs ([`crate::source::delay::UsualDelay`]);
/// 10: a discovered name's held-back authors keep when they last used it
/// and the fingerprint of their copied text
/// ([`crate::window::HeldBack`]).
/// A change of key layout, encoding or a stored type's fields bumps it and
/// adds its step to [`super::migrate`].
pub const FORMAT: u32 = 10;

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
    /// Per source, its clock whole: the watermark (also in `cursors`) and
    /// the recent and quarantined times its next move depends on. Without
    /// them a resumed run moved the watermark later than the uninterrupted
    /// one and put a late post in another bucket.
    #[serde(default)]
    pub clocks: BTreeMap<String, SourceClock>,
    /// The discovered names tracked, and the candidates gathering authors:
    /// without them a resumed run needed a name's first authors again.
    #[serde(default)]
    pub discovered: SavedNames,
}

/// The checkpoint's fields as store format 2 wrote them, in order
/// (postcard records are their fields in order): what [`super::migrate`]
/// reads to rewrite it.
type Format2 = (
    Option<Micros>,
    Option<Micros>,
    Vec<Bucket>,
    Option<Snapshot>,
    BTreeMap<String, Micros>,
    BTreeMap<String, SeqCursor>,
    Option<Deduper>,
);

/// The checkpoint's fields as store formats 3 to 6 wrote them, in order,
/// the discovered names (`N`) in the layout of the format.
type Format3To6<N> = (
    Option<Micros>,
    Option<Micros>,
    Vec<Bucket>,
    Option<Snapshot>,
    BTreeMap<String, Micros>,
    BTreeMap<String, SeqCursor>,
    Option<Deduper>,
    BTreeMap<String, SourceClock>,
    N,
);

/// Formats 3 and 4: the candidates' held-back authors without the class
/// of their posts.
type Format4 = Format3To6<SavedNamesFormat4>;

/// Formats 5 and 6: the discovered names without the authors' budgets.
type Format6 = Format3To6<SavedNamesFormat6>;

/// A baseline as store format 2 wrote it: [`Reports`] without its
/// overlap.
type Format2Reports = (
    BTreeMap<i64, f64>,
    BTreeMap<i64, f64>,
    crate::detect::model::Dispersion,
    f64,
);

/// A baseline of store format 2 (postcard, without the overlap of
/// authors across buckets: it is learned afresh, within the hour).
pub fn reports_from_format_2(body: &[u8]) -> Result<Reports, postcard::Error> {
    let (minutes, hours, dispersion, adjust): Format2Reports = postcard::from_bytes(body)?;
    let mut reports = Reports::default();
    (reports.minutes, reports.hours) = (minutes, hours);
    (reports.dispersion, reports.adjust) = (dispersion, adjust);
    Ok(reports)
}

/// A [`Checkpoint`] to be written, borrowing what it holds: the store
/// writes one at every save, and copying the detector's state and the
/// de-duplication keys only to encode them cost more than encoding them.
/// Serialises exactly as the `Checkpoint` it reads back as (field for
/// field, in the same order: a test in `store` holds the two together).
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointRef<'a> {
    pub closed_through: Option<Micros>,
    pub newest: Option<Micros>,
    pub open: Vec<&'a Bucket>,
    pub detector: Option<&'a Snapshot>,
    pub cursors: &'a BTreeMap<String, Micros>,
    pub seqs: &'a BTreeMap<String, SeqCursor>,
    pub dedupe: Option<Persisted<'a>>,
    pub clocks: &'a BTreeMap<String, SourceClock>,
    pub discovered: NamesRef<'a>,
}

/// The discovered names to write: the windows' tables as they run, or a
/// checkpoint's saved copy (both serialise as [`SavedNames`]).
#[derive(Debug, Clone, Copy)]
pub enum NamesRef<'a> {
    Live(&'a DiscoveredNames),
    Saved(&'a SavedNames),
}

impl Serialize for NamesRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            NamesRef::Live(names) => names.serialize(serializer),
            NamesRef::Saved(names) => names.serialize(serializer),
        }
    }
}

impl Checkpoint {
    /// This checkpoint, to be written.
    pub fn as_ref(&self) -> CheckpointRef<'_> {
        CheckpointRef {
            closed_through: self.closed_through,
            newest: self.newest,
            open: self.open.iter().collect(),
            detector: self.detector.as_ref(),
            cursors: &self.cursors,
            seqs: &self.seqs,
            dedupe: self.dedupe.as_ref().map(Persisted::from),
            clocks: &self.clocks,
            discovered: NamesRef::Saved(&self.discovered),
        }
    }

    /// A checkpoint of store format 5 or 6 (see `Format6`): the authors'
    /// budgets start afresh, as those builds started them.
    pub fn from_format_6(body: &[u8]) -> Result<Checkpoint, postcard::Error> {
        postcard::from_bytes::<Format6>(body).map(Checkpoint::from_format_3_to_6)
    }

    /// A checkpoint of store format 3 or 4 (see `Format4`): a held-back
    /// post is read as a report, as those builds counted it.
    pub fn from_format_4(body: &[u8]) -> Result<Checkpoint, postcard::Error> {
        postcard::from_bytes::<Format4>(body).map(Checkpoint::from_format_3_to_6)
    }

    /// The fields of formats 3 to 6, the discovered names brought to this
    /// format's layout.
    fn from_format_3_to_6<N: Into<SavedNames>>(fields: Format3To6<N>) -> Checkpoint {
        let (closed_through, newest, open, detector, cursors, seqs, dedupe, clocks, discovered) =
            fields;
        Checkpoint {
            closed_through,
            newest,
            open,
            detector,
            cursors,
            seqs,
            dedupe,
            clocks,
            discovered: discovered.into(),
        }
    }

    /// A checkpoint of store format 2 (postcard, without clocks and
    /// discovered names: those start afresh, as they did then).
    pub fn from_format_2(body: &[u8]) -> Result<Checkpoint, postcard::Error> {
        let (closed_through, newest, open, detector, cursors, seqs, dedupe): Format2 =
            postcard::from_bytes(body)?;
        Ok(Checkpoint {
            closed_through,
            newest,
            open,
            detector,
            cursors,
            seqs,
            dedupe,
            ..Checkpoint::default()
        })
    }
}

/// Whether a record whose checksum holds reads as its kind in a store of
/// `format` (a format-2 store not yet migrated holds the older layouts):
/// `state verify` and `repair` checked checksums only, so a record of the
/// wrong layout passed both and the next start stopped at it.
/// The error says what does not read.
pub fn readable(key: &[u8], body: super::codec::Body<'_>, format: u32) -> Result<(), String> {
    use super::codec::{Body, decode};
    use super::keys::{self, Kind};
    let what = String::from_utf8_lossy(key).escape_debug().to_string();
    let corrupt = |e: postcard::Error| super::StoreError::Corrupt {
        what: what.clone(),
        detail: e.to_string(),
    };
    let read = || match (Kind::of(key), body) {
        (Some(Kind::Bucket), _) => decode::<Bucket>(&what, body).map(drop),
        (Some(Kind::Pack), _) => decode::<Vec<Bucket>>(&what, body).map(drop),
        (Some(Kind::Baseline), Body::Postcard(bytes)) if format == 2 => {
            reports_from_format_2(bytes).map(drop).map_err(corrupt)
        }
        (Some(Kind::Baseline), _) => decode::<Reports>(&what, body).map(drop),
        (_, Body::Postcard(bytes)) if key == keys::CHECKPOINT && format == 2 => {
            Checkpoint::from_format_2(bytes).map(drop).map_err(corrupt)
        }
        (_, Body::Postcard(bytes)) if key == keys::CHECKPOINT && matches!(format, 3 | 4) => {
            Checkpoint::from_format_4(bytes).map(drop).map_err(corrupt)
        }
        (_, Body::Postcard(bytes)) if key == keys::CHECKPOINT && matches!(format, 5 | 6) => {
            Checkpoint::from_format_6(bytes).map(drop).map_err(corrupt)
        }
        _ if key == keys::CHECKPOINT => decode::<Checkpoint>(&what, body).map(drop),
        _ => Ok(()),
    };
    // Older formats' records in their own layout (authors by id, fields
    // added since).
    let read = crate::window::reading_format(format, read);
    read.map_err(|e| match e {
        super::StoreError::Corrupt { detail, .. } => detail,
        other => other.to_string(),
    })
}

/// Whether a record we write without a checksum (our single records but
/// the checkpoint, and the outbox's, `A` being the alert type) has its
/// kind's layout; see [`readable`] for the others. Our single records have
/// fixed lengths: a bucket width of 3 bytes passed `state verify` and
/// `repair` alike, and every start after stopped at it. With `typed` the
/// outbox's records are read as their types, else as JSON (see
/// `outbox::record_layout`). The error says what is wrong.
pub fn well_formed<A: serde::de::DeserializeOwned>(
    key: &[u8],
    value: &[u8],
    typed: bool,
) -> Result<(), String> {
    use super::keys::{self, Kind};
    let fixed = |what: &str, len: usize| {
        if value.len() == len {
            Ok(())
        } else {
            Err(format!("its {what} has {} bytes, not {len}", value.len()))
        }
    };
    match Kind::of(key) {
        Some(Kind::Meta) if key == keys::GENERATION => fixed("generation", 8),
        Some(Kind::Meta) if key == keys::FORMAT => fixed("format", 4),
        Some(Kind::Meta) if key == keys::BUCKET_SECS => {
            fixed("bucket width", 8)?;
            let secs = value.try_into().map_or(0, i64::from_be_bytes);
            if secs > 0 {
                Ok(())
            } else {
                Err(format!("its bucket width is {secs} s"))
            }
        }
        Some(Kind::Meta) if key == keys::CHECKPOINT || keys::is_checkpoint_piece(key) => Ok(()),
        Some(Kind::Meta) => Err("it is none of the single records this build knows".into()),
        Some(kind) => super::outbox::record_layout::<A>(kind, key, value, typed),
        None => Ok(()),
    }
}
