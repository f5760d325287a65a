//! The store: closed buckets, baselines and the pipeline's checkpoint in
//! sled (keys in [`super::keys`], encoding in [`super::codec`]).
//!
//! Baselines are written only when they changed, in the same batch as the
//! counts that changed it.
//!
//! Each batch of closed buckets is written together with the checkpoint
//! that accounts for them and the alerts they raised, atomically, so a
//! crash leaves either all or none: counts are never half-written or
//! counted twice, and an alert the state knows about is never lost. A
//! batch that holds alerts is flushed to disk before it returns, so an
//! alert is durable before anyone delivers it. Buckets older than the
//! retention are removed in the same batch.
//!
//! **Corruption is loud, never a silent rollback.** Every record we write
//! (buckets, checkpoint, baselines) carries a checksum ([`super::codec`]),
//! and the seal ([`super::seal`]) catches a rolled-back log and files
//! changed at rest.
//!
//! Opening verifies all of this and every record; any failure is
//! [`StoreError::Damaged`], whose message names the recovery commands
//! (`outagewatch state verify|repair|reset`); the opening is `open.rs`
//! beside this file.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::keys::{self, Kind};
use super::merged::MergeByStart;
use super::outbox::{Appending, Outbox, highest_known_seq};
use super::seal::Seal;
use super::{Checkpoint, CheckpointRef, StoreError, codec};
use crate::Micros;
use crate::detect::baseline::Reports;
use crate::window::Bucket;

mod open;
mod place;
mod verify;
pub use open::{CACHE_BYTES, Checks, is_access_denied, ours};
pub use verify::{Inventory, Salvage};

/// Persistence of closed buckets; sled in production, swappable in tests.
pub trait Store {
    /// Writes closed buckets, the checkpoint that accounts for them and the
    /// alerts they raised, in one atomic batch, dropping buckets that started
    /// before `prune_before` (`None`: nothing to prune yet). Returns the alerts' outbox sequence numbers.
    /// A record that cannot be written faithfully fails the whole batch
    /// ([`StoreError::Unwritable`]); nothing of it is written.
    fn save<A: Serialize + DeserializeOwned>(
        &mut self,
        closed: &[Bucket],
        checkpoint: &CheckpointRef<'_>,
        prune_before: Option<Micros>,
        alerts: &[A],
        baselines: &[(String, Option<Reports>)],
    ) -> Result<Vec<u64>, StoreError>;
    fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError>;
    /// Every saved baseline: (service id, baseline).
    fn baselines(&self) -> Result<Vec<(String, Reports)>, StoreError>;
    /// Closed buckets that started at or after `since`, oldest first.
    fn buckets_since(&self, since: Micros) -> Result<Vec<Bucket>, StoreError>;
    /// Makes everything saved so far durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// The width of the buckets this store was counted in (`None`: not
    /// recorded yet, a new store or one from before it was).
    fn bucket_secs(&self) -> Result<Option<i64>, StoreError>;
    /// Records the width of the buckets counted from now on; durable with
    /// the next batch.
    fn set_bucket_secs(&mut self, secs: i64) -> Result<(), StoreError>;
}

pub struct SledStore {
    db: sled::Db,
    /// Packed buckets ([`Kind::Pack`]), in a tree of their own: see
    /// [`compact`].
    packs: sled::Tree,
    /// Keeps a temporary directory alive as long as the store.
    _temp: Option<tempfile::TempDir>,
    dir: PathBuf,
    /// The directory as opened, checked before every batch.
    place: place::Place,
    /// Bumped by every batch; see the module documentation.
    generation: u64,
    /// The format as opened ([`super::FORMAT`] unless opened for repair).
    format: u32,
    /// Shared with every [`Outbox`] of this store: see [`Appending`].
    appending: Appending,
}

impl SledStore {
    /// A sled error while reading: corruption is damage, the rest is I/O.
    pub(super) fn sled_damage(&self, e: sled::Error) -> StoreError {
        match e {
            sled::Error::Corruption { .. } | sled::Error::ReportableBug(_) => StoreError::Damaged {
                path: self.dir.clone(),
                detail: format!("sled reports {e}"),
            },
            other => StoreError::Sled(other),
        }
    }

    /// Every record, as stored (for a verified store: see [`Self::open`]).
    pub fn records(&self) -> Result<Vec<(sled::IVec, sled::IVec)>, StoreError> {
        self.every_record()
            .map(|entry| entry.map_err(|e| self.sled_damage(e)))
            .collect()
    }

    /// The records of both trees: the main one, then the packs.
    pub(super) fn every_record(
        &self,
    ) -> impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + use<> {
        self.db.iter().chain(self.packs.iter())
    }

    /// The closed buckets that started at or after `since`, oldest first,
    /// from the packs and the single records alike ([`super::merged`]),
    /// read as they are needed.
    pub(super) fn buckets_from(
        &self,
        since: Micros,
    ) -> impl Iterator<Item = Result<Bucket, StoreError>> + '_ {
        let packed = self
            .packs
            .range(keys::pack(since)..=keys::pack(i64::MAX))
            .flat_map(move |entry| {
                let buckets = entry
                    .map_err(|e| self.sled_damage(e))
                    .and_then(|(key, value)| self.pack(&key, &value));
                match buckets {
                    Ok(buckets) => buckets.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                }
            })
            .filter(move |bucket| bucket.as_ref().map_or(true, |b| b.start >= since));
        let singles = self
            .db
            .range(keys::bucket(since)..=keys::bucket(i64::MAX))
            .map(move |entry| {
                let (key, value) = entry.map_err(|e| self.sled_damage(e))?;
                let what = format!("bucket {key:?}");
                self.decode(&value, &what)
            });
        MergeByStart::new(packed, singles)
    }

    /// Writes salvaged (or compacted) records into this fresh store, each
    /// in its tree, and flushes it. Not atomic across the two trees: a
    /// fresh store is used only once this returns.
    pub fn restore_records(
        &mut self,
        records: &[(sled::IVec, sled::IVec)],
    ) -> Result<(), StoreError> {
        self.write_records(records.iter().cloned())?;
        self.finish_restore()
    }

    /// Writes records into this fresh store, each in its tree, in one
    /// batch per tree, without flushing (see [`Self::finish_restore`]).
    pub(super) fn write_records(
        &mut self,
        records: impl IntoIterator<Item = (sled::IVec, sled::IVec)>,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let mut packs = sled::Batch::default();
        for (key, value) in records {
            match Kind::of(&key) {
                Some(Kind::Pack) => packs.insert(key, value),
                _ => batch.insert(key, value),
            }
        }
        self.db.apply_batch(batch)?;
        self.packs.apply_batch(packs)?;
        Ok(())
    }

    /// After [`Self::write_records`]: takes up the generation written and
    /// makes everything durable.
    pub(super) fn finish_restore(&mut self) -> Result<(), StoreError> {
        self.generation = self.read_generation(false)?;
        let highest = highest_known_seq(&self.db)?;
        self.appending.raise_to(highest);
        self.flush()?;
        self.appending.mark_durable(highest);
        Ok(())
    }

    /// The store's directory, unless it is a temporary one (removed with
    /// the store, so never compacted or sealed).
    pub(super) fn lasting_dir(&self) -> Option<&Path> {
        self._temp.is_none().then_some(self.dir.as_path())
    }
}

impl SledStore {
    /// A handle on the alert outbox, for the tasks that deliver alerts.
    pub fn outbox<A>(&self) -> Outbox<A> {
        Outbox::new(self.db.clone(), self.appending.clone())
    }
}

impl Store for SledStore {
    fn save<A: Serialize + DeserializeOwned>(
        &mut self,
        closed: &[Bucket],
        checkpoint: &CheckpointRef<'_>,
        prune_before: Option<Micros>,
        alerts: &[A],
        baselines: &[(String, Option<Reports>)],
    ) -> Result<Vec<u64>, StoreError> {
        self.place.check()?;
        let mut batch = sled::Batch::default();
        for (id, baseline) in baselines {
            let key = keys::named(Kind::Baseline, id);
            match baseline {
                Some(value) => {
                    batch.insert(key, codec::encode(&format!("baseline of {id}"), value)?)
                }
                None => batch.remove(key),
            }
        }
        let mut encoded = Vec::with_capacity(alerts.len());
        for alert in alerts {
            encoded.push(codec::encode_plain("alert", alert)?);
        }
        for bucket in closed {
            batch.insert(
                &keys::bucket(bucket.start),
                codec::encode("bucket", bucket)?,
            );
        }
        self.put_checkpoint(&mut batch, &codec::encode("checkpoint", checkpoint)?)?;
        // Every record is encoded: from here on only sled can fail. The
        // alerts' sequence numbers are taken and made visible (the batch
        // applied) with no other writer in between.
        let mut numbering = (!alerts.is_empty()).then(|| self.appending.hold());
        let mut seqs = Vec::with_capacity(alerts.len());
        for value in encoded {
            let Some(numbering) = numbering.as_mut() else {
                break;
            };
            let seq = numbering.next_seq(&self.db)?;
            batch.insert(&keys::alert(seq), value);
            seqs.push(seq);
        }
        if let Some(before) = prune_before {
            for old in self.db.range(keys::bucket(i64::MIN)..keys::bucket(before)) {
                batch.remove(old?.0);
            }
        }
        let generation = self.generation + 1;
        batch.insert(keys::GENERATION, &generation.to_be_bytes());
        self.db.apply_batch(batch)?;
        self.generation = generation;
        if let Some(before) = prune_before {
            // A pack goes once its newest bucket is older: the one that
            // straddles `before` stays, and reads skip its older buckets.
            // Outside the batch (another tree): a crash before this leaves
            // the pack for the next save to remove.
            let old = self
                .packs
                .range(keys::pack(i64::MIN)..keys::pack(before))
                .keys()
                .collect::<Result<Vec<_>, _>>()?;
            if !old.is_empty() {
                let mut packs = sled::Batch::default();
                old.into_iter().for_each(|key| packs.remove(key));
                self.packs.apply_batch(packs)?;
            }
        }
        if let Some(&last) = seqs.last() {
            self.flush()?;
            // Only now may a sink send them (see [`Appending`]).
            self.appending.mark_durable(last);
        }
        Ok(seqs)
    }

    fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        match self.checkpoint_bytes()? {
            None => Ok(None),
            Some(bytes) => self.decode(&bytes, "checkpoint").map(Some),
        }
    }

    fn baselines(&self) -> Result<Vec<(String, Reports)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.db.scan_prefix([Kind::Baseline.tag()]) {
            let (key, value) = entry?;
            let id = String::from_utf8_lossy(&key[1..]).into_owned();
            let what = format!("baseline of {id}");
            out.push((id, self.decode(&value, &what)?));
        }
        Ok(out)
    }

    fn buckets_since(&self, since: Micros) -> Result<Vec<Bucket>, StoreError> {
        self.buckets_from(since).collect()
    }

    fn bucket_secs(&self) -> Result<Option<i64>, StoreError> {
        let Some(bytes) = self.db.get(keys::BUCKET_SECS)? else {
            return Ok(None);
        };
        <[u8; 8]>::try_from(bytes.as_ref())
            .map(|b| Some(i64::from_be_bytes(b)))
            .map_err(|_| StoreError::Damaged {
                path: self.dir.clone(),
                detail: format!("its bucket width record has {} bytes, not 8", bytes.len()),
            })
    }

    fn set_bucket_secs(&mut self, secs: i64) -> Result<(), StoreError> {
        self.db.insert(keys::BUCKET_SECS, &secs.to_be_bytes())?;
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        if self._temp.is_none() {
            Seal {
                generation: self.generation,
                files: None,
                census: None,
            }
            .write(&self.dir)?;
        }
        Ok(())
    }
}

/// The most bytes of the checkpoint in one record. sled keeps a value
/// larger than a quarter of its 512 KiB segment in a file of its own (a
/// blob) and, while the store is open, never deleted the superseded ones:
/// a checkpoint of 0.75 MB written at every bucket left 169 MB of them
/// after 3 minutes. Pieces stay in sled's log, whose cleaner reclaims them,
/// and a leaf of sled's tree (up to 16 of them, then it splits) stays
/// below a blob's size too.
pub(super) const CHECKPOINT_PIECE: usize = 4 * 1024;

impl SledStore {
    /// Adds the encoded checkpoint to `batch`: its first
    /// [`CHECKPOINT_PIECE`] bytes under [`keys::CHECKPOINT`], the rest in
    /// pieces after it ([`keys::checkpoint_piece`]), pieces the last one
    /// left beyond these removed, all in the one batch. A piece that holds
    /// these bytes already is not written again.
    fn put_checkpoint(&self, batch: &mut sled::Batch, encoded: &[u8]) -> Result<(), StoreError> {
        put_checkpoint(&self.db, batch, encoded)
    }

    /// The encoded checkpoint, its pieces put together (`None`: none
    /// saved yet). Its checksum covers the whole, so a piece lost or out
    /// of date fails it.
    fn checkpoint_bytes(&self) -> Result<Option<Vec<u8>>, StoreError> {
        checkpoint_bytes(&self.db).map_err(|e| self.sled_damage(e))
    }

    /// The buckets of a pack.
    fn pack(&self, key: &[u8], value: &[u8]) -> Result<Vec<Bucket>, StoreError> {
        let what = format!("pack of buckets to {:?}", keys::time_of(key));
        self.decode(value, &what)
    }

    /// A record decoded as `T`, or damage naming it and this store's
    /// directory: [`codec`] knows no directory and calls it corrupt, and
    /// its message could only say "the state directory".
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8], what: &str) -> Result<T, StoreError> {
        codec::decode(what, self.checked(bytes, what)?).map_err(|e| match e {
            StoreError::Corrupt { what, detail } => StoreError::Damaged {
                path: self.dir.clone(),
                detail: format!("its {what} does not read ({detail})"),
            },
            other => other,
        })
    }

    /// A record's body, or damage naming it.
    fn checked<'a>(&self, bytes: &'a [u8], what: &str) -> Result<codec::Body<'a>, StoreError> {
        codec::open(bytes).ok_or_else(|| StoreError::Damaged {
            path: self.dir.clone(),
            detail: format!("{what} fails its checksum"),
        })
    }
}

/// [`SledStore::put_checkpoint`] on `db` (also what [`super::migrate`]
/// rewrites a checkpoint with).
pub(super) fn put_checkpoint(
    db: &sled::Tree,
    batch: &mut sled::Batch,
    encoded: &[u8],
) -> Result<(), StoreError> {
    let mut pieces = 0u32;
    for (n, piece) in encoded.chunks(CHECKPOINT_PIECE).enumerate() {
        let key = match u32::try_from(n) {
            Ok(0) => keys::CHECKPOINT.to_vec(),
            Ok(n) => keys::checkpoint_piece(n),
            Err(_) => {
                return Err(StoreError::Unwritable {
                    what: "checkpoint".into(),
                    detail: format!("{} bytes is too large", encoded.len()),
                });
            }
        };
        pieces = pieces.saturating_add(1);
        if db.get(&key)?.is_none_or(|old| old != piece) {
            batch.insert(key, piece);
        }
    }
    let beyond = keys::checkpoint_piece(pieces.max(1));
    let end = keys::checkpoint_piece(u32::MAX);
    for old in db.range(beyond..=end).keys() {
        batch.remove(old?);
    }
    Ok(())
}

/// [`SledStore::checkpoint_bytes`] on `db` (also what [`super::migrate`]
/// reads a checkpoint with).
pub(super) fn checkpoint_bytes(db: &sled::Tree) -> sled::Result<Option<Vec<u8>>> {
    let Some(first) = db.get(keys::CHECKPOINT)? else {
        return Ok(None);
    };
    let mut bytes = first.to_vec();
    let rest = keys::checkpoint_piece(1)..=keys::checkpoint_piece(u32::MAX);
    for piece in db.range(rest).values() {
        bytes.extend_from_slice(&piece?);
    }
    Ok(Some(bytes))
}

#[cfg(test)]
#[path = "store_tests.rs"]
pub(super) mod tests;
