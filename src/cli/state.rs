//! `outagewatch state verify|repair|reset|compact`: what to do when the
//! state store reports damage (a flipped byte, a rolled-back log, a full
//! disk mid-write), and `compact` when sled's log has grown past its
//! records. No record is ever lost: `repair` and `reset` move the old
//! state aside (`DIR.damaged-<unix time>`) and say where; `compact`
//! deletes the old store's files only once its whole copy is committed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::state::{
    Census, SledStore, StoreError, When, census_at_close, close_counted, compact, compact_closed,
    hold_closed, repair, seal_closed,
};

#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Check the seal, the generation and every record; exit 1 if damaged.
    Verify(Dir),
    /// Keep every record that passes its checksum in a fresh store; the
    /// damaged one is moved aside. Exit 3 when records were lost (or what
    /// the store held is not known), 0 when every one was kept.
    Repair(Dir),
    /// Start afresh: the old state is moved aside, not deleted.
    Reset(Dir),
    /// Copy the store afresh with its buckets packed into large records,
    /// giving back the space sled's log holds (done by itself at a clean
    /// close when the directory exceeds twice its records).
    Compact(Dir),
}

#[derive(Debug, Args)]
struct Dir {
    /// The state directory (default: the one `run` uses: the config's
    /// `state_dir`, else $STATE_DIRECTORY (systemd), else the platform's).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Configuration file, for its `state_dir` (default: the search path
    /// `run` uses).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl Dir {
    /// The directory `run` would use with the same flags and environment:
    /// these commands used the platform's default only, so under systemd
    /// (`$STATE_DIRECTORY`) they checked or reset a folder the daemon never
    /// used and left its store as it was. The configuration is read only
    /// when `--state-dir` does not settle it.
    fn resolve(self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = self.state_dir {
            return Ok(dir);
        }
        let config = super::config::load_lenient(self.config.as_deref())?;
        super::run::resolve_state_dir(None, &config)
    }
}

pub fn run(args: StateArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Verify(dir) => verify(closed_state(&dir.resolve()?)?),
        Action::Repair(dir) => repair(closed_state(&dir.resolve()?)?),
        Action::Reset(dir) => reset(&dir.resolve()?),
        Action::Compact(dir) => compact(closed_state(&dir.resolve()?)?),
    }
}

/// [`existing_state`], refused while a process has it open (the daemon, a
/// replay): sled lets one process at a time open a store, so `verify`
/// called a store in use "DAMAGED", `repair` found "nothing to salvage",
/// and `reset` moved it aside under the running process, which went on
/// writing into the moved folder and left its seal in the new one.
pub(super) fn closed_state(dir: &Path) -> anyhow::Result<&Path> {
    // A repair interrupted midway may have left its store beside `dir`.
    repair::finish_interrupted(dir)?;
    existing_state(dir)?;
    anyhow::ensure!(!crate::state::in_use(dir), "{}", in_use_message(dir));
    Ok(dir)
}

fn in_use_message(dir: &Path) -> String {
    crate::state::StoreError::InUse {
        path: dir.to_path_buf(),
    }
    .to_string()
}

/// `dir` if it holds a state (sled's `db` file): the commands that open,
/// move or rewrite a state refuse anything else. Pointed at a mistyped
/// path or at `$HOME`, they created a store there and reported it "OK",
/// or moved the folder aside as "damaged".
/// A `db` that is there but no file (a folder) is not ours either, and
/// is called so, as opening it for a replay does (it was "holds no `db`");
/// nor is a `db` file without sled's `conf` or our seal beside it
/// ([`crate::state::ours`]), which every open refuses and `reset` moved
/// aside with whatever else the folder held.
pub(super) fn existing_state(dir: &Path) -> anyhow::Result<&Path> {
    not_a_file(dir)?;
    let db = dir.join("db");
    // A folder this user may not look into said "holds no `db`".
    if let Err(source) = std::fs::metadata(&db)
        && crate::state::is_access_denied(&source)
    {
        return Err(StoreError::Access {
            path: dir.to_path_buf(),
            source,
        }
        .into());
    }
    if db.exists() && !db.is_file() {
        return Err(StoreError::Foreign {
            path: dir.to_path_buf(),
        }
        .into());
    }
    anyhow::ensure!(
        db.is_file(),
        "{} is not a state directory (it holds no `db`)",
        dir.display()
    );
    crate::state::ours(dir)?;
    Ok(dir)
}

fn verify(dir: &Path) -> anyhow::Result<ExitCode> {
    // The outbox's alerts are read as the daemon reads them.
    let counted = SledStore::open(dir).and_then(|store| {
        let inventory = store.inventory_of::<crate::alert::Alert>()?;
        // Its open rewrote the seal: the census is written again for the
        // seal of this close.
        close_counted(store)?;
        Ok(inventory)
    });
    match counted {
        Ok(inventory) => {
            let _ = seal_closed(dir);
            super::outln!(
                "{}: OK, generation {}: {} buckets, {} baselines, {} other records; {} bytes of records",
                dir.display(),
                inventory.generation,
                inventory.buckets,
                inventory.baselines,
                inventory.other,
                inventory.bytes
            );
            // What sled's log holds beyond the records: when it is more than
            // twice (and 256 KiB), the next clean close or `state compact`
            // gives it back. Opening the store, as this did, starts a fresh
            // 512 KiB segment of the log, so a small store is mostly that.
            if let Ok(on_disk) = compact::dir_bytes(dir) {
                super::outln!(
                    "{}: {on_disk} bytes on disk, {:.2}× the records (sled starts a 512 KiB segment of its log at every open)",
                    dir.display(),
                    on_disk as f64 / inventory.bytes.max(1) as f64
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        // Not a store at all, or not this user's to open: no damage to
        // report, an error.
        Err(e @ (StoreError::Foreign { .. } | StoreError::Access { .. })) => Err(e.into()),
        Err(e) => {
            eprintln!("{}: DAMAGED: {e}", dir.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn repair(dir: &Path) -> anyhow::Result<ExitCode> {
    // Read before anything opens it: an open rewrites the seal.
    let held = census_at_close(dir).ok().flatten();
    let (salvage, settings) = {
        let (old, settings) = SledStore::open_to_salvage(dir).map_err(|e| match e {
            // Not ours, in use or not this user's: resetting it is no
            // answer either.
            e @ (StoreError::Foreign { .. }
            | StoreError::InUse { .. }
            | StoreError::Access { .. }) => anyhow::Error::from(e),
            e => anyhow::Error::from(e).context(
                "sled cannot open it at all: nothing to salvage; use `outagewatch state reset`",
            ),
        })?;
        (old.salvage_of::<crate::alert::Alert>(), settings)
    };
    let (records, lost) = (&salvage.records, salvage.dropped.len());
    // Only ever an unfinished copy: a finished one is renamed at once.
    let fresh = repair::repairing_path(dir);
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh)
            .with_context(|| format!("cannot clear {}", fresh.display()))?;
    }
    std::fs::create_dir_all(&fresh)
        .with_context(|| format!("cannot create {}", fresh.display()))?;
    {
        let mut store = SledStore::open(&fresh)?;
        store.restore_records(records)?;
        close_counted(store)?;
    }
    let _ = seal_closed(&fresh);
    // Held across the moves, so no process opens the old store meanwhile.
    let _closed = hold_closed(dir)?.with_context(|| in_use_message(dir))?;
    // A crash midway is finished by the next open (see `state::repair`).
    let old = repair::install(dir, &fresh)?;
    // Each record dropped or rebuilt is named: a count alone hid that an
    // alert or the checkpoint was among them.
    for dropped in &salvage.dropped {
        super::outln!("{}: dropped {dropped}", dir.display());
    }
    for rebuilt in salvage.rebuilt.iter().chain(&settings) {
        super::outln!("{}: {rebuilt}", dir.display());
    }
    let (unread, loss) = unread(dir, held.as_ref(), records, lost)?;
    super::outln!(
        "{}: repaired: kept {} records, dropped {lost} damaged ones{unread}; the old state is in {}",
        dir.display(),
        records.len(),
        old.display()
    );
    Ok(match loss {
        Loss::Nothing => ExitCode::SUCCESS,
        // It exited 0 either way: a script could not tell a lossless repair
        // from one that threw away every bucket.
        Loss::Records | Loss::Unknown => ExitCode::from(super::INCOMPLETE_STATUS),
    })
}

/// What a repair lost, against what the store held at its last clean
/// close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loss {
    /// Every record kept: none dropped, the count at the last clean close
    /// met kind by kind.
    Nothing,
    /// Records dropped as damaged, or fewer of a kind than were held.
    Records,
    /// Not known: no count was kept (not closed cleanly since its last
    /// open), so records sled could not read would not show; 0 would
    /// claim a lossless repair that nothing supports.
    Unknown,
}

/// What the store held at its last clean close (`held`) and the repair
/// did not keep, said per kind; returns the end of the summary line and
/// the [`Loss`], `dropped` (records read and found damaged) counting as
/// one. The records sled discards with a damaged stretch of its log are
/// never read, so never named as dropped: a repair that lost every bucket
/// that way said "dropped 0 damaged ones".
fn unread(
    dir: &Path,
    held: Option<&Census>,
    kept: &[(sled::IVec, sled::IVec)],
    dropped: usize,
) -> anyhow::Result<(String, Loss)> {
    let Some(held) = held else {
        super::outln!(
            "{}: what it held is not known (no count is kept unless it was closed cleanly): \
             records sled could not read at all are not counted",
            dir.display()
        );
        let loss = if dropped > 0 {
            Loss::Records
        } else {
            Loss::Unknown
        };
        return Ok((
            ", not counting any that sled could not read".to_owned(),
            loss,
        ));
    };
    let kept = Census::of(kept.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
    let lost = kept.lost_from(held);
    if lost.is_empty() {
        let loss = if dropped > 0 {
            Loss::Records
        } else {
            Loss::Nothing
        };
        return Ok((String::new(), loss));
    }
    super::outln!(
        "{}: lost, against what it held at its last clean close: {}",
        dir.display(),
        lost.join(", ")
    );
    let total = |c: &Census| c.records.values().sum::<u64>();
    let unread = total(held)
        .saturating_sub(total(&kept))
        .saturating_sub(dropped as u64);
    let said = if unread > 0 {
        format!(", and lost {unread} more record(s) that sled could not read (by kind above)")
    } else {
        String::new()
    };
    Ok((said, Loss::Records))
}

/// A file given as the state directory is called a file, by every state
/// command: `verify` said "holds no `db`", and `reset` "nothing to reset"
/// with success.
fn not_a_file(dir: &Path) -> Result<(), StoreError> {
    if dir.exists() && !dir.is_dir() {
        return Err(StoreError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    Ok(())
}

fn reset(dir: &Path) -> anyhow::Result<ExitCode> {
    not_a_file(dir)?;
    // The copy of a repair whose install was interrupted: the next open
    // would install it (or refuse, beside an empty `DIR`), undoing the
    // reset. Set aside with the old state.
    for copy in [repair::repaired_path(dir), repair::repairing_path(dir)] {
        if copy.exists() {
            let unused = repair::aside(dir);
            std::fs::rename(&copy, &unused)
                .with_context(|| format!("cannot move {} aside", copy.display()))?;
            super::outln!(
                "{}: the copy an interrupted `state repair` left is set aside in {}",
                dir.display(),
                unused.display()
            );
        }
    }
    let empty = std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none());
    if empty {
        super::outln!("{}: nothing to reset", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    existing_state(dir)?;
    // Held across the move, so no process opens the store meanwhile.
    let closed = hold_closed(dir)?.with_context(|| in_use_message(dir))?;
    let old = repair::aside(dir);
    std::fs::rename(dir, &old).with_context(|| format!("cannot move {} aside", dir.display()))?;
    drop(closed);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    super::outln!(
        "{}: reset; the old state is in {} (delete it when you no longer need it)",
        dir.display(),
        old.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn compact(dir: &Path) -> anyhow::Result<ExitCode> {
    let compaction = compact_closed(dir, When::Always)?;
    seal_closed(dir)?;
    match compaction {
        Some(c) => {
            super::outln!(
                "{}: compacted: {} bytes on disk before, {} after; {} bytes of records before, {} after packing",
                dir.display(),
                c.before,
                c.after,
                c.records_before,
                c.records_after
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!(
                "{}: not compacted: another process has it open",
                dir.display()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
