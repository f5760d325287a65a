//! How many records of each kind a store held when it was last closed
//! cleanly, kept in its seal ([`super::seal`]), so that `state repair`
//! can say what a damaged store lost.
//!
//! sled treats a damaged stretch of its log as the end of it: what comes
//! after is gone before any record can be read, so a repair that counted
//! only the records it read and dropped said "dropped 0 damaged ones"
//! while every bucket had gone (found by review: 179 buckets before, 0
//! after). Against the census, the loss is counted per kind.
//!
//! The census is written at a clean close, after the last write, by
//! whoever holds the last handle ([`super::compact`]'s closing copy, and
//! `state verify` and `repair`), and is good only with the files' sums
//! of the same close: every open and every durable write rewrites the
//! seal without either ([`census_at_close`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::keys::{self, Kind};
use super::seal::Seal;
use super::{SledStore, StoreError, codec};
use crate::window::Bucket;

/// Records of a store, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Census {
    /// Records per kind, by the kind's tag (`"b"`, `"p"`, …; `"?"` for a
    /// key of no kind): tags never change, so a census stays readable.
    pub records: BTreeMap<String, u64>,
    /// Closed buckets, single or in packs.
    pub buckets: u64,
}

impl Census {
    /// The census of `records` (keys and values as stored).
    pub fn of<'a>(records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Census {
        let mut census = Census::default();
        for (key, value) in records {
            census.add(key, value);
        }
        census
    }

    fn add(&mut self, key: &[u8], value: &[u8]) {
        let kind = Kind::of(key);
        let tag = kind.map_or_else(|| "?".to_owned(), |k| char::from(k.tag()).to_string());
        *self.records.entry(tag).or_default() += 1;
        self.buckets += match kind {
            Some(Kind::Bucket) => 1,
            // A pack that does not read holds no bucket that can be kept.
            Some(Kind::Pack) => codec::open(value)
                .and_then(|body| codec::decode::<Vec<Bucket>>("pack", body).ok())
                .map_or(0, |buckets| buckets.len() as u64),
            _ => 0,
        };
    }

    /// What `before` held that this census does not, in words, one entry
    /// per kind that lost records: `179 of 179 buckets (9 of 9 packs)`.
    pub fn lost_from(&self, before: &Census) -> Vec<String> {
        let count = |census: &Census, kind: Option<Kind>| {
            let tag = kind.map_or_else(|| "?".to_owned(), |k| char::from(k.tag()).to_string());
            census.records.get(&tag).copied().unwrap_or(0)
        };
        let mut lost = Vec::new();
        if self.buckets < before.buckets {
            let packs = (
                count(before, Some(Kind::Pack)),
                count(self, Some(Kind::Pack)),
            );
            let in_packs = if packs.1 < packs.0 {
                format!(" ({} of {} packs)", packs.0 - packs.1, packs.0)
            } else {
                String::new()
            };
            lost.push(format!(
                "{} of {} buckets{in_packs}",
                before.buckets - self.buckets,
                before.buckets
            ));
        }
        let others = keys::ALL
            .into_iter()
            .filter(|k| !matches!(k, Kind::Bucket | Kind::Pack))
            .map(Some)
            .chain([None]);
        for kind in others {
            let (was, is) = (count(before, kind), count(self, kind));
            if is < was {
                lost.push(format!("{} of {was} {}", was - is, noun(kind)));
            }
        }
        lost
    }
}

/// A kind's records, in words.
fn noun(kind: Option<Kind>) -> &'static str {
    match kind {
        Some(Kind::Bucket | Kind::Pack) => "buckets",
        Some(Kind::Baseline) => "baselines",
        Some(Kind::Meta) => {
            "records of our own (checkpoint and its pieces, generation, format, bucket width)"
        }
        Some(Kind::Alert) => "outbox alerts",
        Some(Kind::Cursor) => "sinks' cursors",
        Some(Kind::Retry) => "retry states",
        Some(Kind::Dead) => "dead letters",
        Some(Kind::Requeued) => "re-queued letters",
        Some(Kind::Aside) => "set-aside alerts",
        Some(Kind::OpenAlert) => "alerts open at an Alertmanager",
        Some(Kind::OpenSource) => "open source incidents",
        None => "records of no kind",
    }
}

impl SledStore {
    /// This store's [`Census`]: one pass over every record.
    pub fn census(&self) -> Result<Census, StoreError> {
        let mut census = Census::default();
        for entry in self.every_record() {
            let (key, value) = entry.map_err(|e| self.sled_damage(e))?;
            census.add(&key, &value);
        }
        Ok(census)
    }
}

/// Closes `store`, the last handle on its directory, and records its
/// census in the seal, for the [`super::seal_closed`] that follows. A
/// temporary store is only dropped.
pub fn close_counted(store: SledStore) -> Result<(), StoreError> {
    let census = store.census()?;
    let Some(dir) = store.lasting_dir().map(Path::to_path_buf) else {
        return Ok(());
    };
    drop(store);
    record(&dir, census)
}

/// Writes `census` into the seal at `dir`, the rest kept.
pub(super) fn record(dir: &Path, census: Census) -> Result<(), StoreError> {
    let mut seal = Seal::read(dir)?.unwrap_or_default();
    seal.census = Some(census);
    seal.write(dir)
}

/// The census of the store at `dir` at its last clean close: `None` when
/// it was not closed cleanly since it was last opened (its seal has no
/// file sums), or by a version that kept none.
pub fn census_at_close(dir: &Path) -> Result<Option<Census>, StoreError> {
    Ok(Seal::read(dir)?.and_then(|seal| seal.files.and(seal.census)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn census(records: &[(&[u8], &[u8])]) -> Census {
        Census::of(records.iter().copied())
    }

    #[test]
    fn losses_are_counted_per_kind_and_buckets_in_packs() {
        let bucket = |start| Bucket {
            start,
            ..Bucket::default()
        };
        let pack = codec::encode("pack", &vec![bucket(10), bucket(20), bucket(30)]).expect("pack");
        let single = codec::encode("bucket", &bucket(40)).expect("bucket");
        let (p, b) = (keys::pack(30), keys::bucket(40));
        let alert = keys::alert(7);
        let before = census(&[
            (&p, &pack),
            (&b, &single),
            (keys::CHECKPOINT, b"x"),
            (&alert, b"{}"),
            (b"zzz", b""),
        ]);
        assert_eq!(before.buckets, 4);
        assert!(before.lost_from(&before).is_empty(), "nothing lost");
        let after = census(&[(&b, &single), (keys::CHECKPOINT, b"x")]);
        assert_eq!(
            after.lost_from(&before),
            [
                "3 of 4 buckets (1 of 1 packs)",
                "1 of 1 outbox alerts",
                "1 of 1 records of no kind"
            ]
        );
        // A record rebuilt by the repair is no loss, nor a gain to report.
        let more = census(&[(&p, &pack), (&b, &single), (keys::BUCKET_SECS, b"x")]);
        assert!(more.lost_from(&census(&[(&b, &single)])).is_empty());
    }
}
