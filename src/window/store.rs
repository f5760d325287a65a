//! The window store: closed buckets and the pipeline's checkpoint in sled.
//!
//! Layout (all keys sort by event time):
//! - `b` + start (8 bytes, big-endian) → one closed [`Bucket`] as JSON;
//! - `checkpoint` → the [`Checkpoint`] as JSON;
//! - `o` + sequence number (8 bytes, big-endian) → an alert not yet
//!   delivered (the outbox);
//! - `s` + service id → that service's baseline (written only when it
//!   changed, in the same batch as the counts that changed it).
//!
//! Each batch of closed buckets is written together with the checkpoint
//! that accounts for them and the alerts they raised, atomically, so a
//! crash leaves either all or none: counts are never half-written or
//! counted twice, and an alert the state knows about is never lost. A
//! batch that holds alerts is flushed to disk before it returns, so an
//! alert is durable before anyone delivers it. Buckets older than the
//! retention are removed in the same batch.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Bucket;
use crate::Micros;
use crate::alert::Alert;
use crate::alert::outbox::{Outbox, alert_key, next_seq};

const BUCKET_PREFIX: u8 = b'b';
const BASELINE_PREFIX: u8 = b's';
const CHECKPOINT_KEY: &[u8] = b"checkpoint";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state store at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    #[error("state store holds an unreadable {what}: {source}")]
    Corrupt {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Where the pipeline stood when the last batch was written: enough to
/// continue after a restart without losing or double-counting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Start of the first bucket not yet closed.
    pub closed_through: Option<Micros>,
    /// Newest event time seen.
    #[serde(default)]
    pub newest: Option<Micros>,
    /// Buckets still open (awaiting more events), so a restart continues
    /// them instead of closing them early.
    #[serde(default)]
    pub open: Vec<Bucket>,
    /// The detector's state, so open incidents and baselines survive.
    pub detector: serde_json::Value,
    /// Per source, the newest event time fully accounted for (live sources
    /// resume from it).
    #[serde(default)]
    pub cursors: std::collections::BTreeMap<String, Micros>,
    /// Per source, the newest Jetstream v2 sequence number fully accounted
    /// for, with the host that issued it (exact resume).
    #[serde(default)]
    pub seqs: std::collections::BTreeMap<String, crate::source::jetstream::SeqCursor>,
    /// Recently seen event keys, so a resumed overlap is not counted twice.
    #[serde(default)]
    pub dedupe: Option<crate::source::dedupe::Deduper>,
}

/// Persistence of closed buckets; sled in production, swappable in tests.
pub trait Store {
    /// Writes closed buckets, the checkpoint that accounts for them and the
    /// alerts they raised, in one atomic batch, dropping buckets that started
    /// before `prune_before`. Returns the alerts' outbox sequence numbers.
    fn save(
        &mut self,
        closed: &[Bucket],
        checkpoint: &Checkpoint,
        prune_before: Micros,
        alerts: &[Alert],
        baselines: &[(String, Option<serde_json::Value>)],
    ) -> Result<Vec<u64>, StoreError>;
    fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError>;
    /// Every saved baseline: (service id, baseline).
    fn baselines(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError>;
    /// Closed buckets that started at or after `since`, oldest first.
    fn buckets_since(&self, since: Micros) -> Result<Vec<Bucket>, StoreError>;
    /// Makes everything saved so far durable.
    fn flush(&self) -> Result<(), StoreError>;
}

pub struct SledStore {
    db: sled::Db,
    /// Keeps a temporary directory alive as long as the store.
    _temp: Option<tempfile::TempDir>,
}

impl SledStore {
    /// Opens (or creates) the store at `path`. sled locks its directory;
    /// a process that just closed it (or died) may hold the lock a moment
    /// longer, so a held lock is retried for up to five seconds before it is
    /// reported (most likely another outagewatch uses the directory).
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        let mut attempts = 0;
        loop {
            let opened = sled::Config::new()
                .path(path)
                .flush_every_ms(Some(1000))
                .open();
            match opened {
                Ok(db) => return Ok(SledStore { db, _temp: None }),
                Err(sled::Error::Io(e)) if is_lock_held(&e) && attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
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
        let mut store = SledStore::open(temp.path())?;
        store._temp = Some(temp);
        Ok(store)
    }
}

/// sled reports a held lock as an error wrapping `WouldBlock`.
fn is_lock_held(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<std::io::Error>())
            .is_some_and(|inner| inner.kind() == std::io::ErrorKind::WouldBlock)
        || e.to_string().contains("could not acquire lock")
}

fn bucket_key(start: Micros) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = BUCKET_PREFIX;
    // Offset so negative times still sort before positive ones.
    key[1..].copy_from_slice(&((start as u64) ^ (1 << 63)).to_be_bytes());
    key
}

impl SledStore {
    /// A handle on the alert outbox, for the tasks that deliver alerts.
    pub fn outbox(&self) -> Outbox {
        Outbox::new(self.db.clone())
    }
}

impl Store for SledStore {
    fn save(
        &mut self,
        closed: &[Bucket],
        checkpoint: &Checkpoint,
        prune_before: Micros,
        alerts: &[Alert],
        baselines: &[(String, Option<serde_json::Value>)],
    ) -> Result<Vec<u64>, StoreError> {
        let mut batch = sled::Batch::default();
        for (id, baseline) in baselines {
            let mut key = vec![BASELINE_PREFIX];
            key.extend_from_slice(id.as_bytes());
            match baseline {
                Some(value) => {
                    let bytes =
                        serde_json::to_vec(value).map_err(|source| StoreError::Corrupt {
                            what: format!("baseline of {id}"),
                            source,
                        })?;
                    batch.insert(key, bytes);
                }
                None => batch.remove(key),
            }
        }
        let mut seqs = Vec::with_capacity(alerts.len());
        for alert in alerts {
            let seq = next_seq(&self.db)?;
            let value = serde_json::to_vec(alert).map_err(|source| StoreError::Corrupt {
                what: "alert".into(),
                source,
            })?;
            batch.insert(&alert_key(seq), value);
            seqs.push(seq);
        }
        for bucket in closed {
            let value = serde_json::to_vec(bucket).map_err(|source| StoreError::Corrupt {
                what: "bucket".into(),
                source,
            })?;
            batch.insert(&bucket_key(bucket.start), value);
        }
        for old in self
            .db
            .range(bucket_key(i64::MIN)..bucket_key(prune_before))
        {
            let (key, _) = old?;
            batch.remove(key);
        }
        let value = serde_json::to_vec(checkpoint).map_err(|source| StoreError::Corrupt {
            what: "checkpoint".into(),
            source,
        })?;
        batch.insert(CHECKPOINT_KEY, value);
        self.db.apply_batch(batch)?;
        if !alerts.is_empty() {
            self.db.flush()?;
        }
        Ok(seqs)
    }

    fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        match self.db.get(CHECKPOINT_KEY)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| StoreError::Corrupt {
                        what: "checkpoint".into(),
                        source,
                    })
            }
        }
    }

    fn baselines(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.db.scan_prefix([BASELINE_PREFIX]) {
            let (key, value) = entry?;
            let id = String::from_utf8_lossy(&key[1..]).into_owned();
            let baseline =
                serde_json::from_slice(&value).map_err(|source| StoreError::Corrupt {
                    what: format!("baseline of {id}"),
                    source,
                })?;
            out.push((id, baseline));
        }
        Ok(out)
    }

    fn buckets_since(&self, since: Micros) -> Result<Vec<Bucket>, StoreError> {
        let mut out = Vec::new();
        for entry in self.db.range(bucket_key(since)..=bucket_key(i64::MAX)) {
            let (key, value) = entry?;
            let bucket = serde_json::from_slice(&value).map_err(|source| StoreError::Corrupt {
                what: format!("bucket {key:?}"),
                source,
            })?;
            out.push(bucket);
        }
        Ok(out)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::ServiceCounts;

    fn bucket(start: Micros, reports: u64) -> Bucket {
        let mut b = Bucket {
            start,
            total_posts: reports + 3,
            ..Bucket::default()
        };
        b.services.insert(
            "discord".into(),
            ServiceCounts {
                reports,
                authors: vec!["a".into()],
                ..ServiceCounts::default()
            },
        );
        b
    }

    #[test]
    fn survives_reopening_with_the_same_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let checkpoint = Checkpoint {
            closed_through: Some(30),
            detector: serde_json::json!({"k": 1}),
            ..Checkpoint::default()
        };
        {
            let mut store = SledStore::open(dir.path()).expect("open");
            store
                .save(
                    &[bucket(-10, 1), bucket(0, 2), bucket(10, 3)],
                    &checkpoint,
                    i64::MIN,
                    &[],
                    &[],
                )
                .expect("save");
            store.flush().expect("flush");
        }
        let store = SledStore::open(dir.path()).expect("reopen");
        assert_eq!(store.checkpoint().expect("read"), Some(checkpoint));
        let all = store.buckets_since(i64::MIN).expect("read");
        assert_eq!(all, vec![bucket(-10, 1), bucket(0, 2), bucket(10, 3)]);
        assert_eq!(store.buckets_since(5).expect("read"), vec![bucket(10, 3)]);
    }

    #[test]
    fn alerts_are_saved_in_the_outbox_with_the_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let alert: Alert = serde_json::from_value(serde_json::json!({
            "id": "x-1", "service": "x", "state": "firing", "at": "a", "started_at": "s",
            "severity": "low", "reports": 1, "authors": 1, "rate_per_min": 1.0,
            "baseline_per_min": 0.2, "samples": [], "peak_authors": 1, "p_value": 0.1
        }))
        .expect("alert");
        let seqs = {
            let mut store = SledStore::open(dir.path()).expect("open");
            store
                .save(
                    &[],
                    &Checkpoint::default(),
                    i64::MIN,
                    &[alert.clone(), alert.clone()],
                    &[],
                )
                .expect("save")
        };
        // Reopened as after a crash: both alerts are there, in order.
        let store = SledStore::open(dir.path()).expect("reopen");
        let outbox = store.outbox();
        assert_eq!(
            outbox.next_after(0).expect("read"),
            Some((seqs[0], alert.clone()))
        );
        assert_eq!(
            outbox.next_after(seqs[0]).expect("read"),
            Some((seqs[1], alert))
        );
        assert!(seqs[0] < seqs[1], "sequence numbers keep the order");
    }

    #[test]
    fn retention_prunes_old_buckets_in_the_same_batch() {
        let mut store = SledStore::temporary().expect("temp store");
        let cp = Checkpoint::default();
        store
            .save(&[bucket(0, 1), bucket(10, 1)], &cp, i64::MIN, &[], &[])
            .expect("save");
        store
            .save(&[bucket(20, 1)], &cp, 10, &[], &[])
            .expect("save");
        let starts: Vec<Micros> = store
            .buckets_since(i64::MIN)
            .expect("read")
            .iter()
            .map(|b| b.start)
            .collect();
        assert_eq!(starts, vec![10, 20]);
    }
}
