//! State: everything outagewatch keeps in sled, in one place.
//!
//! - [`keys`]: the keyspace, one table of record kinds and their tags, so
//!   no user-chosen name (a sink, a service, a source) can reach another
//!   kind's records or our checkpoint;
//! - [`codec`]: how a record becomes bytes and back (compact binary with a
//!   checksum; the outbox's alerts as JSON). A record that cannot be
//!   written faithfully is an error, never `null` or a deletion;
//! - [`records`]: the typed records: the [`Checkpoint`] (with the
//!   detector's snapshot, the cursors and the de-duplication keys), and
//!   the store's format version;
//! - [`store`]: closed buckets, baselines and the checkpoint, written in
//!   one atomic batch per bucket close, with corruption made loud
//!   ([`seal`]);
//! - [`outbox`]: alerts waiting for delivery, each sink's place in them,
//!   retries, dead letters;
//! - [`repair`]: the store `state repair` built, installed so that a
//!   crash midway never leaves the state directory without a store;
//! - [`compact`]: a closed store copied afresh, its buckets packed into
//!   large records, when sled's log has grown well past its records.
//! - [`census`]: the records of each kind a store held at its last clean
//!   close, sealed, so `state repair` can say what a damaged one lost.
//!
//! Dependencies point one way: `state` knows the records of `window`
//! (buckets), `detect` (its snapshot and baselines) and `source` (cursors,
//! de-duplication keys); it is generic over the alert type, so `alert`
//! (whose delivery reads the outbox) depends on `state` and not the other
//! way round. The pure stages never touch it.
//!
//! **Old stores**: a store written before the keyspace had one table
//! (format 0) is migrated when opened, in one atomic batch (see
//! [`migrate`]); a store of a newer format than this build knows is
//! refused with an error naming `outagewatch state reset`.

pub mod census;
pub mod codec;
pub mod compact;
pub mod keys;
mod merged;
mod migrate;
pub mod outbox;
pub mod records;
pub mod repair;
pub mod seal;
pub mod store;

use std::path::PathBuf;

pub use census::{Census, census_at_close, close_counted};
pub use compact::{Compaction, When, compact_closed, compact_open};
pub use records::{Checkpoint, CheckpointRef, FORMAT, NamesRef};
pub use seal::{SEAL_FILE, hold_closed, in_use, seal_closed};
pub use store::{Checks, Inventory, Salvage, SledStore, Store, is_access_denied, ours};

/// What to do about damaged state in `dir`, in every message that reports
/// it: the commands with the directory in them, ready to paste (it said
/// `--state-dir DIR`, and the user had to know what DIR was).
pub fn recovery(dir: &std::path::Path) -> String {
    let dir = crate::text::shell_word(&dir.display().to_string());
    format!(
        "to recover: `outagewatch state verify --state-dir {dir}` shows the damage, \
`outagewatch state repair --state-dir {dir}` keeps every readable record, \
`outagewatch state reset --state-dir {dir}` starts afresh (both keep the old state aside)"
    )
}

/// [`recovery`] where the directory is not known (a record read through
/// the outbox, which knows only sled's handle).
pub const RECOVERY_HERE: &str = "to recover: `outagewatch state verify` with the --state-dir \
(or --config) of this run shows the damage, `state repair` keeps every readable record, \
`state reset` starts afresh (both keep the old state aside)";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state store at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    /// The files are there but this user may not open them: nothing is
    /// wrong with the store, and resetting or repairing it is no answer
    /// (it was called damaged, with `state reset` advised).
    #[error(
        "cannot open the state store at {path}: {source}; the store is not known to be damaged: run as the user that owns it (the daemon's), or give this user read and write access to the directory and its files",
        path = path.display()
    )]
    Access {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state directory {path} is a file, not a directory: give --state-dir a directory (it is created if missing)", path = path.display())]
    NotADirectory { path: PathBuf },
    /// A new state directory this user may not make (it was told "the
    /// store is not known to be damaged" of a store that does not exist).
    #[error(
        "cannot create the state directory {path}: {source}; give this user write access where it goes, or another --state-dir",
        path = path.display()
    )]
    CannotCreate {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// sled lets one process open a store: another has it (waited 5 s).
    #[error(
        "the state in {path} is in use by another process (`outagewatch run`, or a replay with --state-dir): stop it, or use another --state-dir",
        path = path.display()
    )]
    InUse { path: PathBuf },
    #[error("state store holds an unreadable {what}: {detail}; {RECOVERY_HERE}")]
    Corrupt { what: String, detail: String },
    /// One outbox alert that does not decode (written by a newer version,
    /// or damaged): named by its sequence number, so a sink can pass it
    /// over instead of stopping at it for good.
    #[error("outbox alert {seq} cannot be read: {detail}")]
    UnreadableAlert { seq: u64, detail: String },
    #[error("cannot save the {what}: {detail}; it was not written (nor anything of its batch)")]
    Unwritable { what: String, detail: String },
    #[error("the state in {path} is damaged: {detail}; {recovery}", recovery = recovery(path))]
    Damaged { path: PathBuf, detail: String },
    /// The directory the store was opened in is gone (see
    /// `store::place`): nothing more is saved where a restart would find it.
    #[error(
        "the state directory {path} was removed or replaced while this ran ({detail}): nothing more can be saved where the next start would find it; stopping. Restore the directory, or start again to begin from what is in it",
        path = path.display()
    )]
    Vanished { path: PathBuf, detail: String },
    #[error(
        "the state in {path} has format {found}, newer than this build reads ({FORMAT}): run the newer outagewatch, \
or `outagewatch state reset --state-dir {path}` to start afresh (the old state is kept aside)",
        path = path.display()
    )]
    NewerFormat { path: PathBuf, found: u32 },
    #[error(
        "{path} holds a `db` that is not an outagewatch state (neither sled's `conf` nor `{SEAL_FILE}` is beside it); \
it is left as it is: choose another state directory, or move that `db` away",
        path = path.display()
    )]
    Foreign { path: PathBuf },
    #[error("cannot compact the state in {path}: cannot {step}: {source}")]
    Compact {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// An install of a repaired store ([`repair`]) that cannot go on.
    #[error(
        "cannot install the repaired state at {path}: cannot {step}: {source}; the repaired copy is kept in its `.repaired` folder beside it",
        path = path.display()
    )]
    Repair {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A state directory without a store beside the copy of a repair an
    /// earlier version was interrupted in ([`repair::finish_interrupted`]).
    #[error(
        "{path} holds no state, but {copy} beside it does: a `state repair` was interrupted. \
If the damaged state was already moved aside (a `.damaged-<unix time>` folder beside it), move {copy} to {path}; \
else move {copy} away and run `outagewatch state repair` on the state aside. Nothing was changed",
        path = path.display(),
        copy = copy.display()
    )]
    RepairUnfinished { path: PathBuf, copy: PathBuf },
    #[error("cannot write the seal file in {path}: {source}")]
    Seal {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What [`close`] did.
#[derive(Debug)]
pub struct Closed {
    /// The compaction done, if any ([`compact`]).
    pub compaction: Result<Option<Compaction>, StoreError>,
    /// `Ok(false)`: the store was still in use, so not sealed.
    pub sealed: Result<bool, StoreError>,
}

/// After every handle on the store at `dir` is gone: compacts it if
/// sled's log has grown well past its records, then records its files'
/// checksums in the seal, so damage at rest is found at the next open. A
/// failed compaction leaves the store whole (see [`compact`]) and is
/// reported with the rest; the store is sealed either way.
pub fn close(dir: &std::path::Path) -> Closed {
    let compaction = compact_closed(dir, When::Needed);
    Closed {
        compaction,
        sealed: seal_closed(dir),
    }
}

/// [`close`] for the one who holds the last open handle on the store (the
/// end of a replay): compacted through it ([`compact_open`]), then closed
/// and sealed. A temporary store is only dropped.
pub fn close_store(store: SledStore) -> Closed {
    let Some(dir) = store.lasting_dir().map(std::path::Path::to_path_buf) else {
        return Closed {
            compaction: Ok(None),
            sealed: Ok(true),
        };
    };
    let compaction = compact_open(store, When::Needed);
    Closed {
        compaction,
        sealed: seal_closed(&dir),
    }
}

impl Closed {
    /// Logs what was done and what failed.
    pub fn log(&self) {
        match &self.compaction {
            Ok(Some(c)) => tracing::info!(
                before = c.before,
                after = c.after,
                records = c.records_after,
                "compacted the state"
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot compact the state; it is left as it was"),
        }
        match &self.sealed {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("the store was still in use at exit; its files are not sealed")
            }
            Err(e) => tracing::warn!(error = %e, "cannot seal the state"),
        }
    }
}

/// The store's format: 0 for a store from before formats (or a new,
/// empty one), an error for one newer than this build reads.
pub fn format(db: &sled::Db, path: &std::path::Path) -> Result<u32, StoreError> {
    let Some(bytes) = db.get(keys::FORMAT)? else {
        return Ok(0);
    };
    let found = <[u8; 4]>::try_from(bytes.as_ref())
        .map(u32::from_be_bytes)
        .map_err(|_| StoreError::Damaged {
            path: path.to_path_buf(),
            detail: format!("its format record has {} bytes, not 4", bytes.len()),
        })?;
    if found > FORMAT {
        return Err(StoreError::NewerFormat {
            path: path.to_path_buf(),
            found,
        });
    }
    Ok(found)
}

/// Brings an older store to [`FORMAT`], atomically; refuses a newer one.
/// - 0 → 1: the checkpoint and generation were kept under the bare keys
///   `checkpoint` and `generation`; they move under the `m` tag
///   ([`keys::FORMAT_0_MOVES`]). A format-0 store whose checkpoint a sink
///   named `heckpoint` had overwritten fails its checksum at the next
///   verification, as it did before.
/// - 1 → 2: records are written in postcard from now on; the JSON records
///   already there stay readable ([`codec`] tells them apart by their tag)
///   and are replaced as they are written again, so nothing is rewritten.
/// - 2 → 3: the checkpoint gains the sources' clocks and the discovered
///   names, a baseline the overlap of authors across buckets; postcard
///   baselines are rewritten with the overlap empty (what a restart of
///   format 2 started from). A record that does not read is left for the
///   first read to report, with the way to recover.
/// - 3 → 4: closed buckets may be packed into larger records
///   ([`keys::Kind::Pack`], written by [`compact`]), which a build of
///   format 3 would not read; nothing is rewritten.
/// - 4 → 5: a discovered name's candidates keep the class of each
///   held-back post; those held back so far read as reports (as format 4
///   counted them).
/// - 5 → 6: a large checkpoint is written in pieces, which a build of
///   format 5 would not read; nothing is rewritten.
/// - 6 → 7: a sink may set a failing alert aside
///   ([`keys::Kind::Aside`]): a build of format 6 would take the sink's
///   cursor, already past it, for done, and its garbage collection would
///   drop the alert unsent (nothing to rewrite for it); the checkpoint's
///   discovered names gain the authors' budgets of admissions (none
///   spent); and buckets hold their authors as digests
///   ([`crate::window::AuthorId`]), not ids of up to 2 KiB: every
///   closed bucket, single or packed, and the checkpoint (its open
///   buckets, the detector's recent window) are rewritten
///   (`migrate::buckets`, `migrate::checkpoint`).
/// - 7 → 8: a report's author may come with the server that vouches for
///   it (a Mastodon account's domain; Nostr as a whole), kept in buckets and
///   in the discovered names' held-back posts; every bucket and the
///   checkpoint are rewritten as for 6 → 7, with no server known.
/// - 8 → 9: a source's clock keeps its usual delay behind the arrival
///   clock; the checkpoint is rewritten, the delay learned afresh.
/// - 9 → 10: a discovered name's held-back authors keep when they last
///   used it and their copied text's fingerprint; the checkpoint is
///   rewritten with neither known.
///
/// The checkpoint of any older format is read in its layout and written
/// anew by `migrate::checkpoint`; the packs with the rest, in one
/// transaction over both trees.
pub fn migrate(db: &sled::Db, path: &std::path::Path) -> Result<(), StoreError> {
    use sled::Transactional;
    let found = format(db, path)?;
    if found == FORMAT {
        return Ok(());
    }
    let mut batch = sled::Batch::default();
    let mut packed = sled::Batch::default();
    if found == 0 {
        for (old, new) in keys::FORMAT_0_MOVES {
            if let Some(value) = db.get(old)? {
                batch.remove(old);
                batch.insert(new, value);
            }
        }
    }
    migrate::checkpoint(db, found, &mut batch)?;
    let packs = db.open_tree(keys::PACKS)?;
    migrate::buckets(db, found, &packs, &mut batch, &mut packed)?;
    if found == 2 {
        for entry in db.scan_prefix([keys::Kind::Baseline.tag()]) {
            let (key, bytes) = entry?;
            if let Some(codec::Body::Postcard(body)) = codec::open(&bytes)
                && let Ok(reports) = records::reports_from_format_2(body)
            {
                batch.insert(key, codec::encode("baseline", &reports)?);
            }
        }
    }
    batch.insert(keys::FORMAT, &FORMAT.to_be_bytes());
    // One transaction over both trees: the packs are rewritten with the
    // rest, or nothing is.
    let applied: sled::transaction::TransactionResult<()> =
        (&**db, &packs).transaction(|(main, packs)| {
            main.apply_batch(&batch)?;
            packs.apply_batch(&packed)?;
            Ok(())
        });
    applied.map_err(|e| match e {
        sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
        sled::transaction::TransactionError::Abort(()) => StoreError::Unwritable {
            what: "migrated store".into(),
            detail: "the transaction was aborted".into(),
        },
    })?;
    db.flush()?;
    Ok(())
}
