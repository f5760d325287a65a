//! What `state verify` and `state repair` read of a store: every record
//! checked for its kind's layout and checksum ([`SledStore::inventory`]),
//! and what can be kept of a damaged one ([`SledStore::salvage_of`]).
//! Every open runs the inventory too (see [`SledStore::open_with`]).

use serde::de::DeserializeOwned;

use super::SledStore;
use crate::Micros;
use crate::state::keys::{self, Kind};
use crate::state::records::{readable, well_formed};
use crate::state::{StoreError, codec};

/// Counts of a verified store, for `state verify`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub buckets: u64,
    pub baselines: u64,
    pub other: u64,
    pub generation: u64,
    /// Bytes of every record's key and value: the live data, against
    /// which the directory's size on disk is judged (issue 15).
    pub bytes: u64,
}

/// What `state repair` keeps of a store ([`SledStore::salvage_of`]).
#[derive(Debug, Clone, Default)]
pub struct Salvage {
    pub records: Vec<(sled::IVec, sled::IVec)>,
    /// Every record dropped: its name and why.
    pub dropped: Vec<String>,
    /// Records rebuilt from the others (or that could not be), said so.
    pub rebuilt: Vec<String>,
}

impl SledStore {
    /// Reads every record, checking our checksums and that each reads as
    /// its kind (the outbox's as well-formed JSON: one of another
    /// version's layout is passed over at run, as it always was): the
    /// verification done at every open. See [`Self::inventory_of`].
    pub fn inventory(&self) -> Result<Inventory, StoreError> {
        self.inventory_with::<serde::de::IgnoredAny>(false)
    }

    /// [`Self::inventory`] with the outbox's records read as their types,
    /// its alerts as `A` (`state verify` passes the daemon's alert type,
    /// which `state` does not know).
    pub fn inventory_of<A: DeserializeOwned>(&self) -> Result<Inventory, StoreError> {
        self.inventory_with::<A>(true)
    }

    /// Every record kind is checked for its layout, not only those with a
    /// checksum: a meta record of the wrong length, a truncated alert or a
    /// checkpoint piece without its first passed, and the next run refused
    /// to start, passed the alert over, or started afresh.
    fn inventory_with<A: DeserializeOwned>(&self, typed: bool) -> Result<Inventory, StoreError> {
        let mut inventory = Inventory {
            generation: self.generation,
            ..Inventory::default()
        };
        let has_checkpoint = self
            .db
            .contains_key(keys::CHECKPOINT)
            .map_err(|e| self.sled_damage(e))?;
        for entry in self.every_record() {
            let (key, value) = entry.map_err(|e| self.sled_damage(e))?;
            inventory.bytes += (key.len() + value.len()) as u64;
            let damaged = |detail: String| StoreError::Damaged {
                path: self.dir.clone(),
                detail,
            };
            if keys::is_checkpoint_piece(&key) {
                if has_checkpoint {
                    // Checked with the whole checkpoint, at its first piece.
                    continue;
                }
                return Err(damaged(format!(
                    "record {} does not read (a piece of the checkpoint without its first piece: the checkpoint is lost)",
                    keys::describe(&key)
                )));
            }
            let value = if key.as_ref() == keys::CHECKPOINT {
                self.checkpoint_bytes()?.unwrap_or_default().into()
            } else {
                value
            };
            record_damage::<A>(&key, &value, self.format, typed)
                .map_err(|e| damaged(format!("record {} {e}", keys::describe(&key))))?;
            match Kind::of(&key) {
                Some(Kind::Bucket) if key.len() == 9 => inventory.buckets += 1,
                Some(Kind::Pack) => inventory.buckets += self.pack(&key, &value)?.len() as u64,
                Some(Kind::Baseline) => inventory.baselines += 1,
                _ if key.as_ref() == keys::CHECKPOINT => {}
                _ => inventory.other += 1,
            }
        }
        Ok(inventory)
    }

    /// [`Self::salvage_of`] with the outbox's alerts read as well-formed
    /// JSON: the records kept, and how many were dropped.
    pub fn salvage(&self) -> (Vec<(sled::IVec, sled::IVec)>, u64) {
        let salvage = self.salvage_of::<serde_json::Value>();
        let lost = salvage.dropped.len() as u64;
        (salvage.records, lost)
    }

    /// Every record that passes its checksum (ours) and reads as its kind,
    /// or has its kind's layout (see [`crate::state::records::well_formed`], the
    /// outbox's alerts read as `A`): what `state repair` keeps, with what
    /// it drops and rebuilds. A dropped bucket width is rebuilt from the
    /// buckets' starts when they tell it: dropped alone, the next run took
    /// the configured width for the store's.
    /// Keys of a format-0 store come out as the current format spells them.
    pub fn salvage_of<A: DeserializeOwned>(&self) -> Salvage {
        let mut salvage = Salvage::default();
        let checkpoint_whole = self.checkpoint_bytes().ok().flatten().is_some_and(|bytes| {
            codec::open(&bytes)
                .is_some_and(|body| readable(keys::CHECKPOINT, body, self.format).is_ok())
        });
        let mut starts = Vec::new();
        let (mut width_dropped, mut checkpoint_dropped) = (false, false);
        for entry in self.every_record() {
            let Ok((mut key, value)) = entry else {
                salvage.dropped.push("a record sled cannot read".to_owned());
                continue;
            };
            if self.format == 0 {
                key = keys::from_format_0(&key).into();
            }
            // A format-0 checkpoint is one record under another key.
            let in_pieces = self.format > 0
                && (key.as_ref() == keys::CHECKPOINT || keys::is_checkpoint_piece(&key));
            let damage = if in_pieces {
                (!checkpoint_whole).then(|| {
                    "is part of a checkpoint that does not read whole (missing, damaged or orphaned pieces)".to_owned()
                })
            } else {
                record_damage::<A>(&key, &value, self.format, true).err()
            };
            if let Some(why) = damage {
                width_dropped |= key.as_ref() == keys::BUCKET_SECS;
                checkpoint_dropped |= in_pieces || key.as_ref() == keys::CHECKPOINT;
                salvage
                    .dropped
                    .push(format!("{} {why}", keys::describe(&key)));
                continue;
            }
            if matches!(Kind::of(&key), Some(Kind::Bucket | Kind::Pack)) {
                starts.extend(keys::time_of(&key));
            }
            salvage.records.push((key, value));
        }
        if checkpoint_dropped {
            // What losing it means, said once (not with every piece).
            salvage.rebuilt.push(
                "the checkpoint is not kept: the next run starts without the sources' cursors, \
the de-duplication keys and the detector's state (a replay counts its files again, and may send \
their alerts again)"
                    .to_owned(),
            );
        }
        if width_dropped {
            match width_from_starts(&starts) {
                Some(secs) => {
                    salvage
                        .records
                        .push((keys::BUCKET_SECS.into(), secs.to_be_bytes().as_slice().into()));
                    salvage.rebuilt.push(format!(
                        "{} rebuilt as {secs} s from the starts of the buckets kept",
                        keys::describe(keys::BUCKET_SECS)
                    ));
                }
                None => salvage.rebuilt.push(format!(
                    "{} not rebuilt (too few buckets to tell it): the next run records the configured width",
                    keys::describe(keys::BUCKET_SECS)
                )),
            }
        }
        salvage
    }
}

/// What is wrong with a record (not a checkpoint piece: those are read
/// whole at the first), as "fails its checksum" or "does not read (why)";
/// `Ok` when it is sound.
fn record_damage<A: DeserializeOwned>(
    key: &[u8],
    value: &[u8],
    format: u32,
    typed: bool,
) -> Result<(), String> {
    if checksummed(key) {
        let body = codec::open(value).ok_or_else(|| "fails its checksum".to_owned())?;
        readable(key, body, format).map_err(|e| format!("does not read ({e})"))
    } else {
        well_formed::<A>(key, value, typed).map_err(|e| format!("does not read ({e})"))
    }
}

/// The bucket width that the buckets' starts (µs) tell: the greatest
/// common divisor of their distances, in whole seconds (`None`: fewer
/// than two buckets, or no whole second).
fn width_from_starts(starts: &[Micros]) -> Option<i64> {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let first = *starts.first()?;
    let step = starts.iter().map(|s| s.abs_diff(first)).fold(0, gcd);
    let micros = u64::try_from(crate::MICROS_PER_SEC).ok()?;
    (step > 0 && step % micros == 0)
        .then(|| i64::try_from(step / micros).ok())
        .flatten()
}

/// Records we write with a checksum (the outbox's are plain JSON).
fn checksummed(key: &[u8]) -> bool {
    matches!(
        Kind::of(key),
        Some(Kind::Bucket | Kind::Pack | Kind::Baseline)
    ) || key == keys::CHECKPOINT
}
