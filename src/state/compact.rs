//! Compaction: a closed store copied into a fresh one, its buckets packed
//! into records of [`PACK_BYTES`].
//!
//! **Why.** sled writes a log: a record written again, or removed, leaves
//! its old bytes behind until sled's flusher rewrites the segment they are
//! in, and it reclaims at most a little per flush. The live daemon writes a
//! batch every bucket and the flusher keeps up; a replay writes faster than
//! it reclaims and leaves the directory at 5–7× its records. And sled spends
//! about 390 bytes on disk on a small record, more than three times a
//! bucket's own. A fresh copy holds no dead bytes, and buckets packed into
//! large records pay that cost once per pack, not once per bucket.
//!
//! **When.** At a clean close (the end of a replay, the daemon's shutdown),
//! once every handle on the store is gone (or through the last one, which
//! the end of a replay holds: [`compact_open`]), if the directory holds more than
//! [`MAX_AMPLIFICATION`] times its records and the copy would give back at
//! least [`MIN_RECLAIM`]; or when asked (`outagewatch state compact`).
//!
//! **Crash safety.** The copy is built in `DIR/compacting` and made durable;
//! renaming it `DIR/compacted` is the commit. Installing it moves the old
//! store's files from `DIR` into `DIR/replaced` (only sled's and the seal:
//! nothing else that lives there), renames the copy `DIR/installing`, moves
//! its files into `DIR` and only then deletes `DIR/replaced`: every step a
//! rename, nothing deleted while it is the only whole store. Each step is
//! redone from where it stopped by `finish_interrupted_locked`, which
//! every open runs first, before it looks at `DIR`: before the commit the
//! old store is whole and the partial copy is deleted; after it,
//! installing goes on. The state directory's lock (`DirLock`) keeps an
//! open from starting while a compaction runs.

use std::path::Path;

use super::keys::{self, Kind};
use super::store::{SledStore, Store};
use super::{StoreError, codec};
use crate::window::Bucket;

/// The copy being built; deleted if found at open.
const COMPACTING: &str = "compacting";
/// The whole, durable copy: the commit point.
const COMPACTED: &str = "compacted";
/// The copy whose files are being moved into the state directory.
const INSTALLING: &str = "installing";
/// The old store's files, moved aside while the copy is installed and
/// deleted once it is.
const REPLACED: &str = "replaced";

/// A store is compacted at close when its directory exceeds this many
/// times the bytes of its records…
pub const MAX_AMPLIFICATION: u64 = 2;
/// …by at least this many bytes: half a segment of sled's log, which every
/// open starts afresh, so a small store is not copied for the few bytes a
/// copy would give back.
pub const MIN_RECLAIM: u64 = 256 << 10;

/// The least a pack of buckets holds. sled keeps an item larger than a
/// quarter of its segment (128 KiB by default) in a file of its own (a
/// blob); a smaller one stays in the log, where a copy superseded while
/// the store is written stays on disk until sled's flusher cleans the
/// segment.
pub const PACK_BYTES: usize = 192 * 1024;

/// The most packs a compaction writes (larger packs beyond that). sled
/// writes each insert into a node as a fragment and, at the tenth, the
/// whole node again; the fragments' blobs are deleted only once the log
/// moves past the segment that replaced them, which a store closed right
/// after the copy never does. Nine packs, alone in their tree, are each
/// written exactly once. The
/// cost: retention drops a pack once its newest bucket expires, so up to a
/// ninth of the history outlives the retention until the next compaction.
pub const MAX_PACKS: usize = 9;

/// Whether [`compact_closed`] copies a store that is already compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Only when it would give space back (see [`MAX_AMPLIFICATION`]).
    Needed,
    /// Always (`outagewatch state compact`).
    Always,
}

/// What a compaction did, for the log and `state compact`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// The directory's bytes before and after.
    pub before: u64,
    pub after: u64,
    /// Bytes of records (keys and values) before and after packing.
    pub records_before: u64,
    pub records_after: u64,
}

/// Compacts the closed store at `dir` (see the module documentation).
/// `Ok(None)`: nothing done, because there is no store, it is in use, or
/// it is compact enough.
pub fn compact_closed(dir: &Path, when: When) -> Result<Option<Compaction>, StoreError> {
    if !dir.join("db").is_file() {
        return Ok(None);
    }
    let Some(_lock) = DirLock::try_acquire(dir)? else {
        return Ok(None);
    };
    finish_interrupted_locked(dir)?;
    let Some(compaction) = commit_copy(dir, when)? else {
        return Ok(None);
    };
    install(dir, compaction).map(Some)
}

/// Compacts the store through `store`, the last open handle on it, and
/// closes it: the copy [`compact_closed`] makes, without opening the store
/// again, which reads sled's log and verifies every record (about a
/// quarter of the close of a replay of a 1 GB recording). If another handle still
/// holds the store once this one is dropped, the copy is discarded, as
/// whatever that handle writes would be missing from it. A temporary store
/// is dropped as it is.
pub fn compact_open(store: SledStore, when: When) -> Result<Option<Compaction>, StoreError> {
    let Some(dir) = store.lasting_dir().map(Path::to_path_buf) else {
        return Ok(None);
    };
    let Some(_lock) = DirLock::try_acquire(&dir)? else {
        return Ok(None);
    };
    store.flush()?;
    let before = dir_bytes(&dir).map_err(|e| io_error(&dir, "measure the directory", e))?;
    let Some(compaction) = build_copy(store, &dir, before, when)? else {
        return Ok(None);
    };
    if super::seal::in_use(&dir) {
        let building = dir.join(COMPACTING);
        std::fs::remove_dir_all(&building)
            .map_err(|e| io_error(&building, "remove a copy of a store still in use", e))?;
        return Ok(None);
    }
    commit(&dir)?;
    install(&dir, compaction).map(Some)
}

/// The first half of a compaction, up to its commit: the copy built and
/// renamed `DIR/compacted`; the store in `DIR` still the old one. The
/// caller holds the directory's lock.
fn commit_copy(dir: &Path, when: When) -> Result<Option<Compaction>, StoreError> {
    if super::seal::in_use(dir) {
        return Ok(None);
    }
    let before = dir_bytes(dir).map_err(|e| io_error(dir, "measure the directory", e))?;
    let Some(compaction) = build_copy(SledStore::open_locked(dir)?, dir, before, when)? else {
        return Ok(None);
    };
    commit(dir)?;
    Ok(Some(compaction))
}

/// Copies `old`, the store at `dir` (`before` bytes on disk), into
/// `DIR/compacting`, made durable, and closes `old`; `None`, with nothing
/// written, when the store is compact enough for `when`.
fn build_copy(
    old: SledStore,
    dir: &Path,
    before: u64,
    when: When,
) -> Result<Option<Compaction>, StoreError> {
    let (records_before, bucket_bytes) = measure(&old)?;
    let worth_it = before > MAX_AMPLIFICATION * records_before + MIN_RECLAIM;
    if when == When::Needed && !worth_it {
        // Closed as it is: its census goes in the seal of this close.
        super::census::close_counted(old)?;
        return Ok(None);
    }
    let building = dir.join(COMPACTING);
    if building.exists() {
        std::fs::remove_dir_all(&building)
            .map_err(|e| io_error(&building, "clear an old copy", e))?;
    }
    check_room(dir, records_before)?;
    let built = (|| -> Result<u64, StoreError> {
        let records_after = {
            let mut fresh = SledStore::open(&building)?;
            let written = copy_packed(&old, &mut fresh, bucket_bytes)?;
            step(|| Ok(())).map_err(|e| io_error(&building, "write the copy", e))?;
            fresh.finish_restore()?;
            // The copy is the store from here on: its census goes in the
            // seal of this close.
            super::census::close_counted(fresh)?;
            written
        };
        // sled syncs its files, not the directories that name them.
        if building.join("blobs").is_dir() {
            sync_dir(&building.join("blobs"))?;
        }
        sync_dir(&building)?;
        Ok(records_after)
    })();
    drop(old);
    // A copy that failed (most likely the disk filled up) is removed at
    // once: left until the next open, it held the disk at 0 bytes free.
    let records_after = built.inspect_err(|e| {
        tracing::warn!(error = %e, copy = %building.display(), "the compaction's copy failed; removing it");
        if let Err(e) = std::fs::remove_dir_all(&building) {
            tracing::warn!(error = %e, copy = %building.display(), "cannot remove the failed copy; the next open removes it");
        }
    })?;
    Ok(Some(Compaction {
        before,
        after: before,
        records_before,
        records_after,
    }))
}

/// sled's segment: the least a fresh store writes beyond its records.
const SEGMENT_BYTES: u64 = 512 << 10;

/// Refuses to start a copy of `records` bytes that the disk has no room
/// for: about the records again (packing only shrinks the buckets) and a
/// segment of sled's log. On a nearly full disk the copy failed with
/// ENOSPC halfway, after taking the last free bytes.
fn check_room(dir: &Path, records: u64) -> Result<(), StoreError> {
    let need = records.saturating_add(2 * SEGMENT_BYTES);
    let free = free_bytes(dir).map_err(|e| io_error(dir, "measure the free space", e))?;
    if free < need {
        return Err(io_error(
            dir,
            "find room for the copy",
            std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "{free} bytes free, the copy needs about {need}; the store is left as it is"
                ),
            ),
        ));
    }
    Ok(())
}

/// Bytes free to an unprivileged writer on the file system of `dir`.
#[cfg(unix)]
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    #[cfg(test)]
    if let Some(free) = room::free() {
        return Ok(free);
    }
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `stat` a buffer of the
    // struct `statvfs` fills; it is read only when the call succeeds.
    let stat = unsafe {
        if libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        stat.assume_init()
    };
    #[allow(clippy::useless_conversion)]
    let (blocks, size) = (u64::from(stat.f_bavail), u64::from(stat.f_frsize));
    Ok(blocks.saturating_mul(size))
}

/// Elsewhere the copy is tried, and removed if it fails.
#[cfg(not(unix))]
fn free_bytes(_dir: &Path) -> std::io::Result<u64> {
    Ok(u64::MAX)
}

/// The free space the tests pretend a disk has.
#[cfg(test)]
pub(super) mod room {
    use std::cell::Cell;

    thread_local! {
        static FREE: Cell<Option<u64>> = const { Cell::new(None) };
    }

    /// `Some`: [`super::free_bytes`] says this; `None`: the disk's own.
    pub fn pretend(free: Option<u64>) {
        FREE.with(|f| f.set(free));
    }

    pub(super) fn free() -> Option<u64> {
        FREE.with(Cell::get)
    }
}

/// The commit: the durable copy renamed `DIR/compacted`.
fn commit(dir: &Path) -> Result<(), StoreError> {
    std::fs::rename(dir.join(COMPACTING), dir.join(COMPACTED))
        .map_err(|e| io_error(dir, "commit the copy", e))?;
    sync_dir(dir)
}

/// After the commit: the copy moved into `dir`, and the directory measured.
fn install(dir: &Path, mut compaction: Compaction) -> Result<Compaction, StoreError> {
    finish_interrupted_locked(dir)?;
    compaction.after = dir_bytes(dir).map_err(|e| io_error(dir, "measure the directory", e))?;
    Ok(compaction)
}

/// Bytes of every record (keys and values), and of the buckets' values
/// alone (which size the packs): one pass, nothing decoded.
fn measure(store: &SledStore) -> Result<(u64, u64), StoreError> {
    let (mut all, mut buckets) = (0, 0);
    for entry in store.every_record() {
        let (key, value) = entry?;
        all += (key.len() + value.len()) as u64;
        if matches!(Kind::of(&key), Some(Kind::Bucket | Kind::Pack)) {
            buckets += value.len() as u64;
        }
    }
    Ok((all, buckets))
}

/// Writes `old`'s records into `fresh`: every record but the buckets as
/// it is, then every closed bucket, oldest first, packed with its
/// neighbours into at most [`MAX_PACKS`] records of at least
/// [`PACK_BYTES`] each (but the newest), written as each fills: a pack is
/// all a copy holds in memory besides one batch of other records. Returns
/// the bytes written.
fn copy_packed(
    old: &SledStore,
    fresh: &mut SledStore,
    bucket_bytes: u64,
) -> Result<u64, StoreError> {
    const BATCH: usize = 1024;
    let mut written = 0;
    let mut others = Vec::with_capacity(BATCH);
    for entry in old.every_record() {
        let (key, value) = entry?;
        if matches!(Kind::of(&key), Some(Kind::Bucket | Kind::Pack)) {
            continue;
        }
        written += (key.len() + value.len()) as u64;
        others.push((key, value));
        if others.len() == BATCH {
            fresh.write_records(others.drain(..))?;
        }
    }
    fresh.write_records(others)?;
    let target = usize::try_from(bucket_bytes.div_ceil(MAX_PACKS as u64))
        .unwrap_or(usize::MAX)
        .max(PACK_BYTES);
    let mut pack: Vec<Bucket> = Vec::new();
    let mut bytes = 0;
    let mut seal = |pack: &mut Vec<Bucket>| -> Result<u64, StoreError> {
        let Some(last) = pack.last().map(|b| b.start) else {
            return Ok(0);
        };
        let key = keys::pack(last);
        let value = codec::encode(&format!("pack of buckets to {last}"), &*pack)?;
        pack.clear();
        let len = (key.len() + value.len()) as u64;
        fresh.write_records([(key.as_slice().into(), value.into())])?;
        Ok(len)
    };
    for bucket in old.buckets_from(i64::MIN) {
        let bucket = bucket?;
        bytes += codec::encoded_len(&bucket)?;
        pack.push(bucket);
        if bytes >= target {
            written += seal(&mut pack)?;
            bytes = 0;
        }
    }
    written += seal(&mut pack)?;
    Ok(written)
}

/// Completes or undoes a compaction that a crash interrupted (see the
/// module documentation). The caller holds the directory's lock.
///
/// Installing is a sequence of renames, each one atomic, so that at every
/// step one store is whole and the directories present say which: with
/// `compacted/` present, the old store's files in `DIR` are moved into
/// `replaced/` (its `db` first, so `DIR` never holds a `db` without the
/// `conf` and seal that vouch for it); `compacted/` renamed `installing/`
/// then says none is left, and the copy's files are moved in (its `db`
/// last); `replaced/` is deleted only once the new store is whole in
/// `DIR`. A crash before that leaves the new store whole in `installing/`
/// or `DIR`, never neither.
pub(super) fn finish_interrupted_locked(dir: &Path) -> Result<(), StoreError> {
    let compacted = dir.join(COMPACTED);
    let installing = dir.join(INSTALLING);
    let replaced = dir.join(REPLACED);
    if compacted.is_dir() {
        if !replaced.is_dir() {
            step(|| std::fs::create_dir(&replaced))
                .map_err(|e| io_error(&replaced, "make room for the old store", e))?;
        }
        for name in store_files(dir, false)? {
            let (from, to) = (dir.join(&name), replaced.join(&name));
            // Left by an earlier install that a crash interrupted: old too.
            if to.is_dir() {
                step(|| std::fs::remove_dir_all(&to))
            } else {
                Ok(())
            }
            .and_then(|()| step(|| std::fs::rename(&from, &to)))
            .map_err(|e| io_error(&from, "move the old store aside", e))?;
        }
        sync_dir(&replaced)?;
        sync_dir(dir)?;
        step(|| std::fs::rename(&compacted, &installing))
            .map_err(|e| io_error(dir, "start installing the copy", e))?;
        sync_dir(dir)?;
    }
    if installing.is_dir() {
        for name in store_files(&installing, true)?.into_iter().rev() {
            let from = installing.join(&name);
            step(|| std::fs::rename(&from, dir.join(&name)))
                .map_err(|e| io_error(&from, "install", e))?;
        }
        sync_dir(dir)?;
        step(|| std::fs::remove_dir(&installing))
            .map_err(|e| io_error(&installing, "remove the emptied copy", e))?;
        sync_dir(dir)?;
    }
    for leftover in [replaced, dir.join(COMPACTING)] {
        if leftover.exists() {
            step(|| std::fs::remove_dir_all(&leftover))
                .map_err(|e| io_error(&leftover, "remove an old or unfinished copy", e))?;
        }
    }
    Ok(())
}

/// The names of sled's files (`conf`, `db`, `blobs/`, `snap.*`) and our
/// seal in `dir` (with `all`, every other name too): what a store is made
/// of, and all that installing a copy replaces. `db` comes first and
/// `conf` and the seal last (moved in, the reverse), so that a crash
/// between moves never leaves a `db` without them (which an open would
/// refuse as not ours).
fn store_files(dir: &Path, all: bool) -> Result<Vec<std::ffi::OsString>, StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, "list the directory", e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, "list the directory", e))?;
        let name = entry.file_name();
        let text = name.to_string_lossy();
        let rank = match text.as_ref() {
            "db" => 0,
            "conf" => 2,
            other if other.starts_with(super::SEAL_FILE) => 3,
            other if all || super::seal::is_sled_entry(other) => 1,
            _ => continue,
        };
        names.push((rank, name));
    }
    names.sort();
    Ok(names.into_iter().map(|(_, name)| name).collect())
}

/// One step of an install (a compaction's, or a repair's: [`super::repair`]): in tests, a crash may be simulated before it
/// ([`crash`]).
pub(super) fn step(op: impl FnOnce() -> std::io::Result<()>) -> std::io::Result<()> {
    #[cfg(test)]
    if crash::now() {
        return Err(std::io::Error::other("simulated crash"));
    }
    op()
}

/// Simulated crashes for the tests: the install stops before its `n`th
/// step, as a process killed there would.
#[cfg(test)]
pub(super) mod crash {
    use std::cell::Cell;

    thread_local! {
        static STEPS_LEFT: Cell<Option<usize>> = const { Cell::new(None) };
    }

    /// Lets `n` steps run, then fails every one after.
    pub fn after(n: Option<usize>) {
        STEPS_LEFT.with(|left| left.set(n));
    }

    pub(super) fn now() -> bool {
        STEPS_LEFT.with(|left| match left.get() {
            Some(0) => true,
            Some(n) => {
                left.set(Some(n - 1));
                false
            }
            None => false,
        })
    }
}

/// Bytes of every file under `dir`: what `du -b` counts, less directories.
pub fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    super::seal::walk_files(dir, &mut |_, meta| {
        total += meta.len();
        Ok(())
    })?;
    Ok(total)
}

/// Makes the renames and removals in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, "sync the directory", e))
}

fn io_error(path: &Path, step: &'static str, source: std::io::Error) -> StoreError {
    StoreError::Compact {
        path: path.to_path_buf(),
        step,
        source,
    }
}

/// An exclusive lock on the state directory itself (sled locks only its
/// `db` file, which a compaction replaces), held while a store is opened
/// and while it is compacted. Released when dropped.
pub(super) struct DirLock {
    _held: std::fs::File,
}

impl DirLock {
    /// Waits for the lock, creating the directory if need be.
    pub(super) fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let file = Self::open(dir)?;
        file.lock()
            .map_err(|e| io_error(dir, "lock the state directory", e))?;
        Ok(DirLock { _held: file })
    }

    /// `None` when another process (or handle) holds it.
    fn try_acquire(dir: &Path) -> Result<Option<DirLock>, StoreError> {
        let file = Self::open(dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(DirLock { _held: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(io_error(dir, "lock the state directory", e))
            }
        }
    }

    fn open(dir: &Path) -> Result<std::fs::File, StoreError> {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::File::open(dir))
            .map_err(|e| match e {
                // Said as what they are: a file given as the directory
                // said "cannot compact the state: … File exists", and a
                // folder of another user's "cannot compact" too.
                _ if dir.exists() && !dir.is_dir() => StoreError::NotADirectory {
                    path: dir.to_path_buf(),
                },
                source if !dir.exists() => StoreError::CannotCreate {
                    path: dir.to_path_buf(),
                    source,
                },
                source if super::is_access_denied(&source) => StoreError::Access {
                    path: dir.to_path_buf(),
                    source,
                },
                e => io_error(dir, "open the state directory", e),
            })
    }
}

#[cfg(test)]
#[path = "compact_tests.rs"]
mod tests;
