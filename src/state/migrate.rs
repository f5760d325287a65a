//! The steps of [`super::migrate`] that rewrite records whose layout
//! changed: the checkpoint (which may be written in pieces, format 6 on,
//! so these take the store's piece layout to read and write it) and the
//! closed buckets, single and packed.

use super::StoreError;
use super::codec::{self, Body};
use super::keys::{self, Kind};
use super::records::Checkpoint;
use super::store::{checkpoint_bytes, put_checkpoint};
use crate::window::{Bucket, reading_format};

/// Any format → 10: the checkpoint read in the layout of `found` and
/// written anew. What each format lacked starts afresh, as a restart of
/// that format started it: the sources' clocks and the discovered names
/// (format 2), the class of a held-back post (a report: 3 and 4), the
/// authors' budgets of admissions (5 and 6), the servers that vouch for
/// authors (none known: 7 and before), a source's usual delay behind the
/// arrival clock (8 and before: learned again from the next posts), a
/// discovered name's held-back authors' last use and copied text (9 and
/// before: none; such an author stays until the candidate's first use is
/// `admit_secs` old, and their text is not capped). Authors it held by id (open
/// buckets, the detector's recent window) are held by digest. A
/// checkpoint that does not read is left for the first read to report,
/// with the way to recover.
pub(super) fn checkpoint(
    db: &sled::Db,
    found: u32,
    batch: &mut sled::Batch,
) -> Result<(), StoreError> {
    let bytes = match found {
        0 => db.get(keys::OLD_CHECKPOINT)?.map(|bytes| bytes.to_vec()),
        _ => checkpoint_bytes(db)?,
    };
    let Some(body) = bytes.as_deref().and_then(codec::open) else {
        return Ok(());
    };
    let read = reading_format(found, || match (found, body) {
        (2, Body::Postcard(body)) => Checkpoint::from_format_2(body).ok(),
        (3 | 4, Body::Postcard(body)) => Checkpoint::from_format_4(body).ok(),
        (5 | 6, Body::Postcard(body)) => Checkpoint::from_format_6(body).ok(),
        // JSON, as formats 0 and 1 wrote it (fields added since default),
        // or postcard of format 7 or 8 (fields added since read as empty).
        (_, body) => codec::decode::<Checkpoint>("checkpoint", body).ok(),
    });
    let Some(mut checkpoint) = read else {
        return Ok(());
    };
    if let Some(detector) = checkpoint.detector.as_mut() {
        detector.seal();
    }
    put_checkpoint(
        db,
        batch,
        &codec::encode("checkpoint", &checkpoint.as_ref())?,
    )
}

/// 7 or before → 8: closed buckets, single ones in `db` and packs in
/// `packs`, read in the layout of `found` and rewritten: authors (and the
/// authors of copied texts) as digests (format 7), sorted as a bucket
/// closing now sorts them, and the authors' servers (format 8; none known
/// before). A record that does not read is left for the first read to
/// report.
pub(super) fn buckets(
    db: &sled::Db,
    found: u32,
    packs: &sled::Tree,
    batch: &mut sled::Batch,
    packed: &mut sled::Batch,
) -> Result<(), StoreError> {
    for entry in db.scan_prefix([Kind::Bucket.tag()]) {
        let (key, bytes) = entry?;
        if key.len() != keys::bucket(0).len() {
            continue;
        }
        if let Some(mut bucket) = read_old::<Bucket>(found, &bytes) {
            bucket.seal();
            batch.insert(key, codec::encode("bucket", &bucket)?);
        }
    }
    for entry in packs.iter() {
        let (key, bytes) = entry?;
        if let Some(mut buckets) = read_old::<Vec<Bucket>>(found, &bytes) {
            buckets.iter_mut().for_each(Bucket::seal);
            packed.insert(key, codec::encode("pack", &buckets)?);
        }
    }
    Ok(())
}

/// A record of format `found`, read in its layout.
fn read_old<T: serde::de::DeserializeOwned>(found: u32, bytes: &[u8]) -> Option<T> {
    let body = codec::open(bytes)?;
    reading_format(found, || codec::decode("old record", body)).ok()
}

#[cfg(test)]
#[path = "migrate_tests.rs"]
pub(super) mod tests;
