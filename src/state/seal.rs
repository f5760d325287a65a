//! The seal file beside sled's (`outagewatch.seal`): sled checks its own
//! log with CRCs but treats a damaged tail as the end of the log ("detected
//! tear") and opens an older state without a word. So on top of it:
//! - every batch bumps a generation number, and each durable flush writes
//!   it to the seal: a store that opens at an older generation than its
//!   seal was rolled back;
//! - a clean close writes the length and checksum of every file into the
//!   seal, checked before the next open: any byte changed at rest is seen.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::StoreError;

/// Our file beside sled's (see the module documentation).
pub const SEAL_FILE: &str = "outagewatch.seal";

/// The seal file (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Seal {
    /// The generation last made durable.
    pub generation: u64,
    /// After a clean close: every file's (length, xxh3), by relative path.
    #[serde(default)]
    pub files: Option<std::collections::BTreeMap<String, (u64, u64)>>,
    /// After a clean close: the records it held, per kind (see
    /// [`super::census`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub census: Option<super::census::Census>,
}

impl Seal {
    pub(super) fn read(dir: &Path) -> Result<Option<Seal>, StoreError> {
        let path = dir.join(SEAL_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Damaged {
                        path: dir.to_path_buf(),
                        detail: format!("{SEAL_FILE} is unreadable ({e})"),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            // Not a failure to write it: "cannot write the seal file" was
            // said of one this user may not read.
            Err(source) => Err(unreadable(dir, SEAL_FILE, source)),
        }
    }

    /// Written to a temporary file and renamed, so it is whole or absent.
    pub(super) fn write(&self, dir: &Path) -> Result<(), StoreError> {
        let path = dir.join(SEAL_FILE);
        let temp = dir.join(format!("{SEAL_FILE}.tmp"));
        let bytes = serde_json::to_vec(self).map_err(|e| StoreError::Seal {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temp)?;
            std::io::Write::write_all(&mut file, &bytes)?;
            file.sync_all()?;
            std::fs::rename(&temp, &path)
        };
        write().map_err(|source| denied_or(dir, source, |source| StoreError::Seal { path, source }))
    }
}

/// A file of the store at `dir` that cannot be read: this user's rights
/// ([`StoreError::Access`], not known to be damaged) or the store's.
pub(super) fn unreadable(dir: &Path, what: &str, source: std::io::Error) -> StoreError {
    denied_or(dir, source, |source| StoreError::Damaged {
        path: dir.to_path_buf(),
        detail: format!("cannot read {what} ({source})"),
    })
}

/// [`StoreError::Access`] when `source` is this user's rights, else `other`.
fn denied_or(
    dir: &Path,
    source: std::io::Error,
    other: impl FnOnce(std::io::Error) -> StoreError,
) -> StoreError {
    if super::is_access_denied(&source) {
        StoreError::Access {
            path: dir.to_path_buf(),
            source,
        }
    } else {
        other(source)
    }
}

/// Whether the entry `name` of a state directory (its first component) is
/// one of sled's: its log `db`, `conf`, `blobs/` and `snap.*`. Only those
/// are summed in the seal: what else lives beside them comes and goes on
/// its own (the status server's `http.addr`, removed when it stops, after
/// the seal was written; a compaction's leftovers, which the next open
/// finishes), and summing it made a store that had closed cleanly
/// "damaged" at its next open.
pub(super) fn is_sled_entry(name: &str) -> bool {
    matches!(name, "db" | "conf" | "blobs") || name.starts_with("snap.")
}

/// Whether a path relative to a state directory lies in one of sled's
/// entries ([`is_sled_entry`]).
pub(super) fn is_sled_file(relative: &Path) -> bool {
    relative
        .components()
        .next()
        .is_some_and(|first| is_sled_entry(&first.as_os_str().to_string_lossy()))
}

/// Length and checksum of each of sled's files under `dir`.
pub(super) fn file_sums(
    dir: &Path,
) -> std::io::Result<std::collections::BTreeMap<String, (u64, u64)>> {
    let mut out = std::collections::BTreeMap::new();
    walk_files(dir, &mut |path, _| {
        let relative = path.strip_prefix(dir).unwrap_or(path);
        if is_sled_file(relative) {
            let name = relative.to_string_lossy().into_owned();
            let bytes = std::fs::read(path)?;
            out.insert(
                name,
                (bytes.len() as u64, xxhash_rust::xxh3::xxh3_64(&bytes)),
            );
        }
        Ok(())
    })?;
    Ok(out)
}

/// Calls `each` with every file under `dir`, subdirectories included.
pub(super) fn walk_files(
    dir: &Path,
    each: &mut dyn FnMut(&Path, &std::fs::Metadata) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                todo.push(path);
            } else {
                each(&path, &entry.metadata()?)?;
            }
        }
    }
    Ok(())
}

/// After every handle on the store at `dir` is gone: records each file's
/// checksum in the seal, so that a byte changed at rest is found at the
/// next open. Does nothing (returns false) while sled still holds its lock
/// (`LINGER` after the last handle is gone: another process has it).
pub fn seal_closed(dir: &Path) -> Result<bool, StoreError> {
    let Some(_db) = lock_db_when_closed(dir).map_err(|e| unreadable(dir, "its db", e))? else {
        return Ok(false);
    };
    let mut seal = Seal::read(dir)?.unwrap_or_default();
    seal.files = Some(file_sums(dir).map_err(|source| StoreError::Seal {
        path: dir.to_path_buf(),
        source,
    })?);
    seal.write(dir).map(|()| true)
}

/// Whether a process (this one included) has the store at `dir` open. A
/// `db` this user may not open is not known to be: the open that follows
/// says why it fails (it was called "in use by another process").
pub fn in_use(dir: &Path) -> bool {
    dir.join("db").is_file() && matches!(lock_db_when_closed(dir), Ok(None))
}

/// sled's lock on the closed store at `dir`, held until the file returned
/// is dropped, so that no process opens the store meanwhile (`state reset`
/// and `repair` move it aside under it; sled's own open waits for it).
/// `None` while a process has the store open, or there is none; an error
/// when its `db` cannot be opened.
pub fn hold_closed(dir: &Path) -> Result<Option<std::fs::File>, StoreError> {
    lock_db_when_closed(dir).map_err(|e| unreadable(dir, "its db", e))
}

/// How long sled's lock may outlive the last handle on a store: it is
/// released when sled's last background write finishes, a moment after
/// the handle is dropped.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// [`lock_db`], waiting up to [`LINGER`] for a store just closed.
fn lock_db_when_closed(dir: &Path) -> std::io::Result<Option<std::fs::File>> {
    let deadline = std::time::Instant::now() + LINGER;
    loop {
        if let Some(db) = lock_db(dir)? {
            return Ok(Some(db));
        }
        if !dir.join("db").is_file() || std::time::Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// sled's own lock (an exclusive flock on `db`, which it holds while the
/// store is open), taken for as long as the file returned is open; `None`
/// when there is no `db` or sled holds it; an error when `db` cannot be
/// opened or locked for another reason (this user's rights).
fn lock_db(dir: &Path) -> std::io::Result<Option<std::fs::File>> {
    let db = match std::fs::File::open(dir.join("db")) {
        Ok(db) => db,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match db.try_lock() {
        Ok(()) => Ok(Some(db)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}
