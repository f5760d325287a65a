//! Opening a store: sled's directory lock (a held one retried), a `db`
//! that is not ours refused, and the seal, the generation and every record
//! checked before the store is used; or a damaged one opened as it is, to
//! salvage. Apart from reading and writing the records, which assume a
//! store this has opened.

use std::path::Path;

use super::{SledStore, place};
use crate::state::StoreError;
use crate::state::compact::{self, DirLock};
use crate::state::keys;
use crate::state::outbox::{Appending, highest_known_seq};
use crate::state::seal::{Seal, file_sums, unreadable};

/// sled's page cache. Its default is 1 GiB, which a long replay grows
/// toward (every bucket written passes through it) although the store's
/// live records are a few MB (0.9 MB after the 1 GB replay of "Speed"):
/// the daemon's memory would be the cache's, not its data's. 64 MiB holds
/// every record of such a store many times over.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// What [`SledStore::open_with`] checks (everything, unless repairing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    All,
    /// Open whatever sled can read, to salvage it (`state repair`).
    None,
}

impl SledStore {
    /// Opens (or creates) the store at `path`. sled locks its directory;
    /// a process that just closed it (or died) may hold the lock a moment
    /// longer, so a held lock is retried for up to five seconds before it is
    /// reported (most likely another outagewatch uses the directory).
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        Self::open_with(path, Checks::All)
    }

    /// Opens the store, checking (with [`Checks::All`]) the seal, the
    /// generation and every record; see the module documentation.
    pub fn open_with(path: &Path, checks: Checks) -> Result<SledStore, StoreError> {
        // Before the lock, which creates `DIR`: a repair interrupted
        // between its renames leaves none, and an empty store was made
        // there.
        crate::state::repair::finish_interrupted(path)?;
        let _lock = DirLock::acquire(path)?;
        // First: an install interrupted midway leaves `DIR` without the
        // files that [`ours`] looks for, the whole store being elsewhere.
        compact::finish_interrupted_locked(path)?;
        ours(path)?;
        Self::open_verified(path, checks)
    }

    /// Opens a damaged store to salvage what it holds ([`Checks::None`]).
    /// When sled refuses its own settings file (`conf`, a few lines and a
    /// checksum) the log itself may be whole: `conf` is set aside as
    /// `conf.unreadable` and sled writes it afresh from the settings this
    /// build always opens with (it gave up before, "nothing to salvage",
    /// on a store whose every record was intact). Returns what was done,
    /// to be said.
    pub fn open_to_salvage(path: &Path) -> Result<(SledStore, Option<String>), StoreError> {
        let conf = path.join(SLED_CONF);
        match Self::open_with(path, Checks::None) {
            // sled calls a damaged `conf` corrupted, or "unsupported" when
            // its bytes are not UTF-8 (as of a sled before 0.29).
            Err(refused @ (StoreError::Damaged { .. } | StoreError::Open { .. }))
                if conf.is_file() =>
            {
                let aside = path.join(UNREADABLE_CONF);
                let failed = |e: std::io::Error| StoreError::Open {
                    path: path.to_path_buf(),
                    source: sled::Error::Io(e),
                };
                std::fs::rename(&conf, &aside).map_err(failed)?;
                match Self::open_with(path, Checks::None) {
                    Ok(store) => Ok((
                        store,
                        Some(format!(
                            "sled's settings file `{SLED_CONF}` did not read: it is kept as `{UNREADABLE_CONF}` with the old state, and the log was read with the settings outagewatch always writes"
                        )),
                    )),
                    Err(_) => {
                        // Not the settings, then: as it was, with sled's
                        // first answer.
                        std::fs::rename(&aside, &conf).map_err(failed)?;
                        Err(refused)
                    }
                }
            }
            other => other.map(|store| (store, None)),
        }
    }

    /// [`Self::open`] for a caller that holds the directory's lock.
    pub(in crate::state) fn open_locked(path: &Path) -> Result<SledStore, StoreError> {
        ours(path)?;
        Self::open_verified(path, Checks::All)
    }

    fn open_verified(path: &Path, checks: Checks) -> Result<SledStore, StoreError> {
        let damaged = |detail: String| StoreError::Damaged {
            path: path.to_path_buf(),
            detail,
        };
        let seal = match checks {
            Checks::All => Seal::read(path)?,
            Checks::None => None,
        };
        if let Some(seal) = &seal {
            check_files(path, seal)?;
        }
        let mut store = Self::open_sled(path, checks == Checks::All)?;
        store.generation = store.read_generation(checks == Checks::None)?;
        if checks == Checks::All {
            if let Some(seal) = &seal
                && store.generation < seal.generation
            {
                return Err(damaged(format!(
                    "it was rolled back: generation {} was made durable, the store holds {} (sled dropped a damaged tail of its log)",
                    seal.generation, store.generation
                )));
            }
            store.inventory()?;
            // In use from now on: the file checksums no longer hold.
            Seal {
                generation: store.generation,
                files: None,
                census: None,
            }
            .write(path)?;
        }
        Ok(store)
    }

    /// The generation record (0: none yet). One of the wrong length is
    /// damage, unless `lenient` (opened to salvage, which drops it and
    /// says so): it was read as 0 without a word, and the rollback check
    /// then compared the seal against nothing.
    pub(super) fn read_generation(&self, lenient: bool) -> Result<u64, StoreError> {
        let Some(value) = self
            .db
            .get(keys::GENERATION)
            .map_err(|e| self.sled_damage(e))?
        else {
            return Ok(0);
        };
        match <[u8; 8]>::try_from(value.as_ref()) {
            Ok(bytes) => Ok(u64::from_be_bytes(bytes)),
            Err(_) if lenient => Ok(0),
            Err(_) => Err(StoreError::Damaged {
                path: self.dir.clone(),
                detail: format!(
                    "record {} does not read (its generation has {} bytes, not 8)",
                    keys::describe(keys::GENERATION),
                    value.len()
                ),
            }),
        }
    }

    /// Opens sled at `path`; `migrate` brings an old store to the current
    /// format (else it is left as it is, for `state repair` to read).
    fn open_sled(path: &Path, migrate: bool) -> Result<SledStore, StoreError> {
        if path.exists() && !path.is_dir() {
            return Err(StoreError::NotADirectory {
                path: path.to_path_buf(),
            });
        }
        let mut attempts = 0;
        loop {
            let opened = sled::Config::new()
                .path(path)
                .cache_capacity(CACHE_BYTES)
                .flush_every_ms(Some(1000))
                .open();
            match opened {
                Ok(db) => {
                    if migrate {
                        crate::state::migrate(&db, path)?;
                    }
                    let format = match crate::state::format(&db, path) {
                        // Opened to salvage: a format record of the wrong
                        // length is dropped (and said so), the records read
                        // as this build's; refused here, the store could
                        // only be reset.
                        Err(StoreError::Damaged { .. }) if !migrate => crate::state::FORMAT,
                        other => other?,
                    };
                    return Ok(SledStore {
                        format,
                        packs: db.open_tree(keys::PACKS)?,
                        appending: Appending::after(highest_known_seq(&db)?),
                        db,
                        _temp: None,
                        dir: path.to_path_buf(),
                        place: place::Place::of(path),
                        generation: 0,
                    });
                }
                Err(sled::Error::Io(e)) if is_lock_held(&e) => {
                    if attempts >= 100 {
                        return Err(StoreError::InUse {
                            path: path.to_path_buf(),
                        });
                    }
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(sled::Error::Io(source)) if is_access_denied(&source) => {
                    return Err(StoreError::Access {
                        path: path.to_path_buf(),
                        source,
                    });
                }
                Err(e @ (sled::Error::Corruption { .. } | sled::Error::ReportableBug(_))) => {
                    return Err(StoreError::Damaged {
                        path: path.to_path_buf(),
                        detail: format!("sled cannot open it: {e}"),
                    });
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        path: path.to_path_buf(),
                        source,
                    });
                }
            }
        }
    }

    /// A store in a fresh temporary directory, removed when dropped.
    pub fn temporary() -> Result<SledStore, StoreError> {
        let temp = tempfile::tempdir().map_err(|e| StoreError::Open {
            path: std::env::temp_dir(),
            source: sled::Error::Io(e),
        })?;
        let mut store = SledStore::open_sled(temp.path(), true)?;
        store._temp = Some(temp);
        Ok(store)
    }
}

/// The files of a cleanly closed store against the sums in its seal:
/// what differs, if anything.
fn check_files(path: &Path, seal: &Seal) -> Result<(), StoreError> {
    let Some(files) = &seal.files else {
        return Ok(());
    };
    let now = file_sums(path).map_err(|e| unreadable(path, "its files", e))?;
    let damaged = |detail: String| StoreError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    // A seal written before only sled's files were summed may name others.
    let sled = |name: &&String| crate::state::seal::is_sled_file(Path::new(name.as_str()));
    for (name, (len, sum)) in files.iter().filter(|(name, _)| sled(name)) {
        match now.get(name) {
            None => return Err(damaged(format!("file {name} is missing"))),
            Some((l, s)) if (l, s) != (len, sum) => {
                return Err(damaged(format!(
                    "file {name} changed since the clean shutdown ({len} bytes then, {l} now; checksum differs)"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// sled's configuration file, which it writes beside `db` when it creates
/// a store.
const SLED_CONF: &str = "conf";

/// Where [`SledStore::open_to_salvage`] keeps a `conf` sled refused.
const UNREADABLE_CONF: &str = "conf.unreadable";

/// Refuses a directory whose `db` file is not a store of ours: sled
/// replaces a `db` it cannot read with a fresh log, so a stray `db` (3000
/// random bytes, or `hello`) was overwritten without a word and then
/// verified "OK, generation 0". A store sled made has its `conf` beside
/// `db`, one we opened has our seal; a directory without `db` (new, empty
/// or missing) gets a new store. `state reset` asks too, before it moves
/// a directory aside: it moved a folder of other files whose `db` was
/// someone else's.
pub fn ours(path: &Path) -> Result<(), StoreError> {
    // `conf.unreadable` is ours too: a salvage set sled's `conf` aside.
    let foreign = path.join("db").exists()
        && !path.join(SLED_CONF).is_file()
        && !path.join(UNREADABLE_CONF).is_file()
        && !path.join(crate::state::SEAL_FILE).is_file();
    if foreign {
        return Err(StoreError::Foreign {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Whether an open failed on the user's rights, not on the store.
pub fn is_access_denied(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
}

/// sled reports a held lock as an error wrapping `WouldBlock`.
fn is_lock_held(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<std::io::Error>())
            .is_some_and(|inner| inner.kind() == std::io::ErrorKind::WouldBlock)
        || e.to_string().contains("could not acquire lock")
}
