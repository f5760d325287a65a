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
//!
//! **Corruption is loud, never a silent rollback.** sled checks its own log
//! with CRCs but treats a damaged tail as the end of the log ("detected
//! tear") and opens an older state without a word. So on top of it:
//! - every record we write (buckets, checkpoint, baselines) carries an
//!   xxh3 checksum of its bytes;
//! - every batch bumps a generation number, and each durable flush writes
//!   it to a seal file beside sled's (`outagewatch.seal`): a store that
//!   opens at an older generation than its seal was rolled back;
//! - a clean close writes the length and checksum of every file into the
//!   seal, checked before the next open: any byte changed at rest is seen.
//!
//! Opening verifies all of this and every record; any failure is
//! [`StoreError::Damaged`], whose message names the recovery commands
//! (`outagewatch state verify|repair|reset`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Bucket;
use crate::Micros;
use crate::alert::Alert;
use crate::alert::outbox::{Outbox, alert_key, next_seq};

const BUCKET_PREFIX: u8 = b'b';
const BASELINE_PREFIX: u8 = b's';
const CHECKPOINT_KEY: &[u8] = b"checkpoint";
const GENERATION_KEY: &[u8] = b"generation";
/// Our file beside sled's (see the module documentation).
pub const SEAL_FILE: &str = "outagewatch.seal";
/// Prefix of a checksummed record: tag, version, then 8 bytes of xxh3.
const RECORD_TAG: &[u8; 2] = b"#1";

/// What to do about damaged state, in every message that reports it.
pub const RECOVERY: &str = "to recover: `outagewatch state verify --state-dir DIR` shows the damage, \
`outagewatch state repair --state-dir DIR` keeps every readable record, \
`outagewatch state reset --state-dir DIR` starts afresh (both keep the old state aside)";

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
    #[error("the state in {path} is damaged: {detail}; {RECOVERY}")]
    Damaged { path: PathBuf, detail: String },
    #[error("cannot write the seal file in {path}: {source}")]
    Seal {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A record's bytes with their checksum in front.
fn seal_record(json: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 10);
    out.extend_from_slice(RECORD_TAG);
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&json).to_le_bytes());
    out.extend_from_slice(&json);
    out
}

/// A record's JSON, if its checksum holds (records from before checksums,
/// plain JSON, are taken as they are).
fn open_record(bytes: &[u8]) -> Option<&[u8]> {
    match bytes.strip_prefix(RECORD_TAG) {
        Some(rest) if rest.len() >= 8 => {
            let (sum, json) = rest.split_at(8);
            let want = u64::from_le_bytes(sum.try_into().ok()?);
            (xxhash_rust::xxh3::xxh3_64(json) == want).then_some(json)
        }
        Some(_) => None,
        None => bytes.first().is_some_and(|b| *b == b'{').then_some(bytes),
    }
}

/// The seal file (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Seal {
    /// The generation last made durable.
    pub generation: u64,
    /// After a clean close: every file's (length, xxh3), by relative path.
    #[serde(default)]
    pub files: Option<std::collections::BTreeMap<String, (u64, u64)>>,
}

impl Seal {
    fn read(dir: &Path) -> Result<Option<Seal>, StoreError> {
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
            Err(source) => Err(StoreError::Seal { path, source }),
        }
    }

    /// Written to a temporary file and renamed, so it is whole or absent.
    fn write(&self, dir: &Path) -> Result<(), StoreError> {
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
        write().map_err(|source| StoreError::Seal { path, source })
    }
}

/// Length and checksum of every file under `dir` but the seal.
fn file_sums(dir: &Path) -> std::io::Result<std::collections::BTreeMap<String, (u64, u64)>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                todo.push(path);
                continue;
            }
            let name = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            if name.starts_with(SEAL_FILE) {
                continue;
            }
            let bytes = std::fs::read(&path)?;
            out.insert(
                name,
                (bytes.len() as u64, xxhash_rust::xxh3::xxh3_64(&bytes)),
            );
        }
    }
    Ok(out)
}

/// After every handle on the store at `dir` is gone: records each file's
/// checksum in the seal, so that a byte changed at rest is found at the
/// next open. Does nothing (returns false) while sled still holds its lock.
pub fn seal_closed(dir: &Path) -> Result<bool, StoreError> {
    let db = match std::fs::File::open(dir.join("db")) {
        Ok(db) => db,
        Err(_) => return Ok(false),
    };
    // sled holds an exclusive flock on `db` while open.
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor we own, released when `db` closes.
        let locked = unsafe { libc::flock(db.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            return Ok(false);
        }
    }
    let mut seal = Seal::read(dir)?.unwrap_or_default();
    seal.files = Some(file_sums(dir).map_err(|source| StoreError::Seal {
        path: dir.to_path_buf(),
        source,
    })?);
    seal.write(dir)?;
    drop(db);
    Ok(true)
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
    dir: PathBuf,
    /// Bumped by every batch; see the module documentation.
    generation: u64,
}

/// What [`SledStore::open_with`] checks (everything, unless repairing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    All,
    /// Open whatever sled can read, to salvage it (`state repair`).
    None,
}

/// Counts of a verified store, for `state verify`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub buckets: u64,
    pub baselines: u64,
    pub other: u64,
    pub generation: u64,
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
        let damaged = |detail: String| StoreError::Damaged {
            path: path.to_path_buf(),
            detail,
        };
        let seal = match checks {
            Checks::All => Seal::read(path)?,
            Checks::None => None,
        };
        if let Some(files) = seal.as_ref().and_then(|s| s.files.as_ref()) {
            let now =
                file_sums(path).map_err(|e| damaged(format!("cannot read its files ({e})")))?;
            for (name, (len, sum)) in files {
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
        }
        let mut store = Self::open_sled(path)?;
        store.generation = store.read_generation()?;
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
            }
            .write(path)?;
        }
        Ok(store)
    }

    fn read_generation(&self) -> Result<u64, StoreError> {
        let value = self
            .db
            .get(GENERATION_KEY)
            .map_err(|e| self.sled_damage(e))?;
        Ok(value
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// A sled error while reading: corruption is damage, the rest is I/O.
    fn sled_damage(&self, e: sled::Error) -> StoreError {
        match e {
            sled::Error::Corruption { .. } | sled::Error::ReportableBug(_) => StoreError::Damaged {
                path: self.dir.clone(),
                detail: format!("sled reports {e}"),
            },
            other => StoreError::Sled(other),
        }
    }

    /// Reads every record, checking our checksums: the full verification.
    pub fn inventory(&self) -> Result<Inventory, StoreError> {
        let mut inventory = Inventory {
            generation: self.generation,
            ..Inventory::default()
        };
        for entry in self.db.iter() {
            let (key, value) = entry.map_err(|e| self.sled_damage(e))?;
            let ours = match key.first() {
                Some(&BUCKET_PREFIX) if key.len() == 9 => {
                    inventory.buckets += 1;
                    true
                }
                Some(&BASELINE_PREFIX) => {
                    inventory.baselines += 1;
                    true
                }
                _ if key.as_ref() == CHECKPOINT_KEY => true,
                _ => {
                    inventory.other += 1;
                    false
                }
            };
            if ours && open_record(&value).is_none() {
                return Err(StoreError::Damaged {
                    path: self.dir.clone(),
                    detail: format!(
                        "record {} fails its checksum",
                        String::from_utf8_lossy(&key).escape_debug()
                    ),
                });
            }
        }
        Ok(inventory)
    }

    /// Every record that passes its checksum (ours) or has none (the
    /// outbox's), and the number that failed: what `state repair` keeps.
    pub fn salvage(&self) -> (Vec<(sled::IVec, sled::IVec)>, u64) {
        let mut kept = Vec::new();
        let mut lost = 0;
        for entry in self.db.iter() {
            let Ok((key, value)) = entry else {
                lost += 1;
                continue;
            };
            let ours = matches!(key.first(), Some(&BUCKET_PREFIX) | Some(&BASELINE_PREFIX))
                || key.as_ref() == CHECKPOINT_KEY;
            if ours && open_record(&value).is_none() {
                lost += 1;
                continue;
            }
            kept.push((key, value));
        }
        (kept, lost)
    }

    /// Writes salvaged records into this (fresh) store and flushes it.
    pub fn restore_records(
        &mut self,
        records: &[(sled::IVec, sled::IVec)],
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (key, value) in records {
            batch.insert(key, value);
        }
        self.db.apply_batch(batch)?;
        self.generation = self.read_generation()?;
        self.flush()
    }

    fn open_sled(path: &Path) -> Result<SledStore, StoreError> {
        let mut attempts = 0;
        loop {
            let opened = sled::Config::new()
                .path(path)
                .flush_every_ms(Some(1000))
                .open();
            match opened {
                Ok(db) => {
                    return Ok(SledStore {
                        db,
                        _temp: None,
                        dir: path.to_path_buf(),
                        generation: 0,
                    });
                }
                Err(sled::Error::Io(e)) if is_lock_held(&e) && attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
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
        let mut store = SledStore::open_sled(temp.path())?;
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
                    batch.insert(key, seal_record(bytes));
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
            batch.insert(&bucket_key(bucket.start), seal_record(value));
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
        batch.insert(CHECKPOINT_KEY, seal_record(value));
        let generation = self.generation + 1;
        batch.insert(GENERATION_KEY, &generation.to_be_bytes());
        self.db.apply_batch(batch)?;
        self.generation = generation;
        if !alerts.is_empty() {
            self.flush()?;
        }
        Ok(seqs)
    }

    fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        match self.db.get(CHECKPOINT_KEY)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(self.checked(&bytes, "checkpoint")?)
                .map(Some)
                .map_err(|source| StoreError::Corrupt {
                    what: "checkpoint".into(),
                    source,
                }),
        }
    }

    fn baselines(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.db.scan_prefix([BASELINE_PREFIX]) {
            let (key, value) = entry?;
            let id = String::from_utf8_lossy(&key[1..]).into_owned();
            let json = self.checked(&value, &format!("baseline of {id}"))?;
            let baseline = serde_json::from_slice(json).map_err(|source| StoreError::Corrupt {
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
            let json = self.checked(&value, &format!("bucket {key:?}"))?;
            let bucket = serde_json::from_slice(json).map_err(|source| StoreError::Corrupt {
                what: format!("bucket {key:?}"),
                source,
            })?;
            out.push(bucket);
        }
        Ok(out)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        if self._temp.is_none() {
            Seal {
                generation: self.generation,
                files: None,
            }
            .write(&self.dir)?;
        }
        Ok(())
    }
}

impl SledStore {
    /// A record's JSON, or damage naming it.
    fn checked<'a>(&self, bytes: &'a [u8], what: &str) -> Result<&'a [u8], StoreError> {
        open_record(bytes).ok_or_else(|| StoreError::Damaged {
            path: self.dir.clone(),
            detail: format!("{what} fails its checksum"),
        })
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
