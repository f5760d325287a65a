//! Installing the store `state repair` built, so that a crash at any
//! point leaves a whole store where every open looks.
//!
//! The repaired copy is built in `DIR.repairing` (deleted if found
//! unfinished), made durable, and renamed `DIR.repaired`: the commit.
//! Then the damaged store is moved aside (`DIR.damaged-<unix time>`) and
//! `DIR.repaired` renamed `DIR`. Those are two renames: a crash between
//! them left no `DIR`, and the next `run` created an empty store there and
//! started without cursors, outbox or incidents, in silence. So every open
//! first finishes an install it finds committed
//! ([`finish_interrupted`]): with no store in `DIR`, `DIR.repaired` is
//! moved in; with one, it is the damaged store (the only rename that puts
//! a store in `DIR` consumes `DIR.repaired`), which is moved aside first.
//!
//! Not Linux's atomic exchange (`renameat2` with `RENAME_EXCHANGE`): after
//! it, `DIR.repaired` would hold the damaged store, and a crash before it
//! was moved aside would leave two stores that nothing tells apart.

use std::path::{Path, PathBuf};

use super::StoreError;
use super::compact::step;

/// Where `state repair` builds the copy (unfinished while it has this name).
pub fn repairing_path(dir: &Path) -> PathBuf {
    beside(dir, "repairing")
}

/// The repaired copy, whole and durable, not installed yet.
pub fn repaired_path(dir: &Path) -> PathBuf {
    beside(dir, "repaired")
}

fn beside(dir: &Path, what: &str) -> PathBuf {
    let base = dir.file_name().unwrap_or_default().to_string_lossy();
    dir.with_file_name(format!("{base}.{what}"))
}

/// `DIR.damaged-<unix time>` beside `dir`, or `…-<unix time>-N` when an
/// earlier repair or reset took that name in the same second: an old state
/// set aside is never overwritten.
pub fn aside(dir: &Path) -> PathBuf {
    let secs = crate::wall::now_us().div_euclid(crate::MICROS_PER_SEC);
    let mut candidate = beside(dir, &format!("damaged-{secs}"));
    let mut n = 1u32;
    while candidate.exists() {
        candidate = beside(dir, &format!("damaged-{secs}-{n}"));
        n += 1;
    }
    candidate
}

/// Installs the durable repaired copy in `fresh` as the store at `dir`,
/// moving the damaged one aside: returns where. The caller holds the
/// damaged store's lock ([`super::hold_closed`]).
pub fn install(dir: &Path, fresh: &Path) -> Result<PathBuf, StoreError> {
    let repaired = repaired_path(dir);
    sync_dir(fresh)?;
    step(|| std::fs::rename(fresh, &repaired))
        .map_err(|e| error(&repaired, "commit the repaired copy", e))?;
    sync_parent(dir)?;
    let old = aside(dir);
    step(|| std::fs::rename(dir, &old))
        .map_err(|e| error(dir, "move the damaged state aside", e))?;
    step(|| std::fs::rename(&repaired, dir))
        .map_err(|e| error(dir, "move the repaired state in", e))?;
    sync_parent(dir)?;
    Ok(old)
}

/// Finishes an install of a repaired store that a crash interrupted (see
/// the module documentation); run by every open before it looks at `dir`.
/// Returns where the damaged store was moved, when this moved it.
/// Refuses a `dir` that holds files but no store: what they are is not
/// known, so neither is moved.
///
/// A `DIR` without a store beside a `DIR.repairing` that holds one is
/// refused too: an earlier version renamed that copy into `DIR`
/// uncommitted, so it may be whole (killed between its renames) or not
/// (killed while it was built, then `DIR` emptied); only the operator can
/// tell, and a start there made an empty store in silence.
pub fn finish_interrupted(dir: &Path) -> Result<Option<PathBuf>, StoreError> {
    let repaired = repaired_path(dir);
    if !repaired.join("db").is_file() {
        let repairing = repairing_path(dir);
        if repairing.join("db").is_file() && no_store(dir) {
            return Err(StoreError::RepairUnfinished {
                path: dir.to_path_buf(),
                copy: repairing,
            });
        }
        return Ok(None);
    }
    let mut moved = None;
    if dir.join("db").exists() {
        let old = aside(dir);
        step(|| std::fs::rename(dir, &old))
            .map_err(|e| error(dir, "move the damaged state aside", e))?;
        moved = Some(old);
    } else if dir.exists() {
        // Empty: made by an open that found no store (or by the user).
        std::fs::remove_dir(dir).map_err(|e| {
            error(
                dir,
                "make room for the repaired state (it holds files but no store: move them away)",
                e,
            )
        })?;
    }
    step(|| std::fs::rename(&repaired, dir))
        .map_err(|e| error(dir, "move the repaired state in", e))?;
    sync_parent(dir)?;
    tracing::warn!(
        dir = %dir.display(),
        damaged = ?moved.as_ref().map(|p| p.display().to_string()),
        "finished installing the state `state repair` built (the repair was interrupted)"
    );
    Ok(moved)
}

/// Whether `dir` is missing or empty.
fn no_store(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none())
}

fn sync_parent(dir: &Path) -> Result<(), StoreError> {
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => sync_dir(Path::new(".")),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| error(dir, "sync the directory", e))
}

fn error(path: &Path, step: &'static str, source: std::io::Error) -> StoreError {
    StoreError::Repair {
        path: path.to_path_buf(),
        step,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::super::compact::crash;
    use super::super::store::Store;
    use super::super::{Checkpoint, SledStore};
    use super::*;

    const NO_ALERTS: &[crate::alert::Alert] = &[];

    /// A closed store at `dir` whose checkpoint says `n`.
    fn store(dir: &Path, n: i64) {
        let mut store = SledStore::open(dir).expect("open");
        let checkpoint = Checkpoint {
            closed_through: Some(n),
            ..Checkpoint::default()
        };
        store
            .save(&[], &checkpoint.as_ref(), None, NO_ALERTS, &[])
            .expect("save");
        store.flush().expect("flush");
    }

    fn closed_through(dir: &Path) -> Option<i64> {
        let store = SledStore::open(dir).expect("opens");
        store
            .checkpoint()
            .expect("reads")
            .and_then(|c| c.closed_through)
    }

    /// A repair killed before any step of its install, and between each
    /// two: the next open finds the repaired store in `DIR` (the damaged
    /// one set aside once), never an empty one. Killed between moving the
    /// damaged store aside and moving the copy in, it left no `DIR`, and
    /// the next start made an empty store there.
    #[test]
    fn a_repair_killed_while_installing_is_finished_by_the_next_open() {
        for steps in 0..4 {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path().join("state");
            let fresh = repairing_path(&dir);
            store(&dir, 1);
            store(&fresh, 2);
            crash::after(Some(steps));
            let installed = install(&dir, &fresh);
            crash::after(None);
            match steps {
                0 => {
                    // Not committed: the copy is unfinished, the store as
                    // it was.
                    assert!(installed.is_err());
                    assert_eq!(closed_through(&dir), Some(1));
                    continue;
                }
                1 | 2 => assert!(installed.is_err(), "crashed at step {steps}"),
                _ => assert!(installed.is_ok()),
            }
            if steps == 2 {
                assert!(!dir.exists(), "the window the crash left");
            }
            assert_eq!(
                closed_through(&dir),
                Some(2),
                "after a crash at step {steps}"
            );
            assert!(!repaired_path(&dir).exists());
            let set_aside: Vec<_> = std::fs::read_dir(tmp.path())
                .expect("list")
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
                .collect();
            assert_eq!(set_aside.len(), 1, "the damaged store set aside once");
            assert_eq!(closed_through(&set_aside[0].path()), Some(1));
        }
    }

    /// What an earlier version's repair left when killed between its
    /// renames: no `DIR`, its copy in `DIR.repairing`. The open refuses,
    /// naming both, instead of making an empty store.
    #[test]
    fn an_earlier_version_s_interrupted_repair_is_refused_not_emptied() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("state");
        store(&repairing_path(&dir), 2);
        for _ in 0..2 {
            let err = SledStore::open(&dir).err().expect("refused").to_string();
            assert!(
                err.contains("state.repairing") && err.contains("interrupted"),
                "{err}"
            );
            assert!(!dir.join("db").exists(), "no store made");
            // An empty `DIR` (as `reset` leaves) is no different.
            std::fs::create_dir_all(&dir).expect("mkdir");
        }
        // Moved in by hand, as the message says, it opens.
        std::fs::remove_dir(&dir).expect("rmdir");
        std::fs::rename(repairing_path(&dir), &dir).expect("move in");
        assert_eq!(closed_through(&dir), Some(2));
    }

    /// Files that are no store where the repaired one goes are left alone,
    /// and the open says why.
    #[test]
    fn a_dir_of_other_files_is_not_replaced() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("state");
        store(&repaired_path(&dir), 2);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("notes"), "mine").expect("write");
        let err = SledStore::open(&dir).err().expect("refused").to_string();
        assert!(err.contains("holds files but no store"), "{err}");
        assert!(dir.join("notes").is_file());
    }
}
