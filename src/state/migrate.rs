//! The steps of [`super::migrate`] that rewrite a checkpoint written in
//! pieces (format 6 on), which take the store's piece layout to read and
//! write it.

use super::records::Checkpoint;
use super::store::{checkpoint_bytes, put_checkpoint};
use super::{StoreError, codec};

/// 5 or 6 → 7: the checkpoint's discovered names gain the authors' budgets
/// of admissions, empty (every author afresh, as a restart of format 6
/// started them). A checkpoint that does not read is left for the first
/// read to report, with the way to recover.
pub(super) fn checkpoint_from_format_6(
    db: &sled::Db,
    batch: &mut sled::Batch,
) -> Result<(), StoreError> {
    if let Some(bytes) = checkpoint_bytes(db)?
        && let Some(codec::Body::Postcard(body)) = codec::open(&bytes)
        && let Ok(checkpoint) = Checkpoint::from_format_6(body)
    {
        put_checkpoint(
            db,
            batch,
            &codec::encode("checkpoint", &checkpoint.as_ref())?,
        )?;
    }
    Ok(())
}
