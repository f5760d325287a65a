//! Compaction: every record survives, packs are few and large, retention
//! still drops old history, and a crash at any step is finished or undone
//! at the next open.

use std::path::Path;

use super::*;
use crate::state::{Checkpoint, Inventory, Store};
use crate::window::{AuthorId, ServiceCounts};

/// A bucket of about 200 bytes, different for every start.
fn bucket(start: i64) -> Bucket {
    let mut b = Bucket {
        start,
        total_posts: 40 + (start as u64 % 7),
        ..Bucket::default()
    };
    for (i, service) in ["discord", "github", "instagram"].iter().enumerate() {
        b.services.insert(
            (*service).into(),
            ServiceCounts {
                reports: (start as u64 + i as u64) % 5 + 1,
                authors: vec![
                    AuthorId::of(&format!("did:plc:author{start}")),
                    AuthorId::of(&format!("did:plc:other{i}")),
                ],
                ..ServiceCounts::default()
            },
        );
    }
    b
}

const SECS: i64 = 1_000_000;

/// The outbox is generic over its alerts; any JSON stands for one here.
type Alert = serde_json::Value;

fn alert(id: &str) -> Alert {
    serde_json::json!({ "id": id, "service": "x", "state": "firing" })
}

/// A store of `n` ten-second buckets written 64 to a batch (as a replay
/// writes them), with a checkpoint, a baseline and two alerts.
fn written(dir: &Path, n: i64) -> Vec<Bucket> {
    let buckets: Vec<Bucket> = (0..n).map(|i| bucket(i * 10 * SECS)).collect();
    let mut store = SledStore::open(dir).expect("open");
    for (i, chunk) in buckets.chunks(64).enumerate() {
        let checkpoint = Checkpoint {
            closed_through: chunk.last().map(|b| b.start + 10 * SECS),
            ..Checkpoint::default()
        };
        let alerts = if i == 1 {
            vec![alert("x-1"), alert("x-2")]
        } else {
            vec![]
        };
        let baseline = crate::detect::baseline::Reports::default();
        store
            .save(
                chunk,
                &checkpoint.as_ref(),
                None,
                &alerts,
                &[("discord".into(), Some(baseline))],
            )
            .expect("save");
    }
    store.flush().expect("flush");
    buckets
}

/// Everything but the buckets, byte for byte; and the buckets, read back.
fn contents(dir: &Path) -> (Vec<(sled::IVec, sled::IVec)>, Vec<Bucket>, Inventory) {
    let store = SledStore::open(dir).expect("open");
    let others = store
        .records()
        .expect("records")
        .into_iter()
        .filter(|(key, _)| !matches!(Kind::of(key), Some(Kind::Bucket | Kind::Pack)))
        .collect();
    let buckets = store.buckets_since(i64::MIN).expect("buckets");
    let mut inventory = store.inventory().expect("inventory");
    inventory.bytes = 0;
    (others, buckets, inventory)
}

fn packs(dir: &Path) -> Vec<(sled::IVec, sled::IVec)> {
    SledStore::open(dir)
        .expect("open")
        .records()
        .expect("records")
        .into_iter()
        .filter(|(key, _)| Kind::of(key) == Some(Kind::Pack))
        .collect()
}

/// No copy, committed or not, is left in `dir` after a compaction.
fn no_copy_left_behind(dir: &Path, context: &str) {
    for name in [COMPACTING, COMPACTED, INSTALLING, REPLACED] {
        assert!(!dir.join(name).exists(), "{context}: {name} left behind");
    }
}

#[test]
fn a_compacted_store_holds_every_record_in_packs_and_less_space() {
    let dir = tempfile::tempdir().expect("tempdir");
    let buckets = written(dir.path(), 6_000);
    let before = contents(dir.path());
    assert_eq!(before.1, buckets);
    let done = compact_closed(dir.path(), When::Always)
        .expect("compact")
        .expect("a closed store is compacted");
    assert_eq!(contents(dir.path()), before, "nothing gained or lost");
    assert!(done.after < done.before, "{done:?}");
    assert!(
        done.after <= MAX_AMPLIFICATION * done.records_after,
        "{done:?}"
    );
    assert!(done.records_after < done.records_before, "{done:?}");
    let packs = packs(dir.path());
    assert!(
        (2..=MAX_PACKS).contains(&packs.len()),
        "{} packs",
        packs.len()
    );
    for (_, value) in &packs[..packs.len() - 1] {
        assert!(value.len() >= PACK_BYTES, "a pack of {} bytes", value.len());
    }
    no_copy_left_behind(dir.path(), "");
}

#[test]
fn buckets_written_after_a_compaction_are_packed_with_the_rest_by_the_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut buckets = written(dir.path(), 3_000);
    compact_closed(dir.path(), When::Always)
        .expect("compact")
        .expect("compacted");
    let more: Vec<Bucket> = (3_000..3_100).map(|i| bucket(i * 10 * SECS)).collect();
    {
        let mut store = SledStore::open(dir.path()).expect("open");
        let no_alerts: &[Alert] = &[];
        store
            .save(&more, &Checkpoint::default().as_ref(), None, no_alerts, &[])
            .expect("save");
        buckets.extend(more);
        assert_eq!(store.buckets_since(i64::MIN).expect("read"), buckets);
        let since = buckets[1_234].start;
        assert_eq!(
            store.buckets_since(since).expect("read"),
            buckets[1_234..],
            "a read from inside a pack starts at its bucket"
        );
    }
    let packs_before = packs(dir.path()).len();
    compact_closed(dir.path(), When::Always)
        .expect("compact")
        .expect("compacted");
    assert_eq!(contents(dir.path()).1, buckets);
    let singles = SledStore::open(dir.path())
        .expect("open")
        .records()
        .expect("records")
        .into_iter()
        .filter(|(key, _)| Kind::of(key) == Some(Kind::Bucket))
        .count();
    assert_eq!(singles, 0, "every bucket is packed");
    assert!(packs(dir.path()).len() <= packs_before.max(MAX_PACKS));
}

#[test]
fn retention_drops_a_pack_once_its_newest_bucket_expires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let buckets = written(dir.path(), 6_000);
    compact_closed(dir.path(), When::Always)
        .expect("compact")
        .expect("compacted");
    let packs = packs(dir.path());
    let first_last = keys::time_of(&packs[0].0).expect("a pack's key");
    let second_last = keys::time_of(&packs[1].0).expect("a pack's key");
    let mut store = SledStore::open(dir.path()).expect("open");
    let no_alerts: &[Alert] = &[];
    // Just past the first pack's newest bucket: it goes, the second stays
    // whole although some of it is older.
    let before = first_last + 1;
    store
        .save(
            &[],
            &Checkpoint::default().as_ref(),
            Some(before),
            no_alerts,
            &[],
        )
        .expect("save");
    let kept = store.buckets_since(i64::MIN).expect("read");
    let first_kept = buckets
        .iter()
        .position(|b| b.start > first_last)
        .expect("more");
    assert_eq!(kept, buckets[first_kept..]);
    store
        .save(
            &[],
            &Checkpoint::default().as_ref(),
            Some(second_last),
            no_alerts,
            &[],
        )
        .expect("save");
    assert_eq!(
        store.buckets_since(i64::MIN).expect("read").first(),
        buckets.iter().find(|b| b.start > first_last),
        "a pack whose newest bucket is not older than the cut stays"
    );
}

#[test]
fn a_compaction_interrupted_before_its_commit_is_undone_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 1_000);
    let before = contents(dir.path());
    std::fs::create_dir_all(dir.path().join(COMPACTING).join("blobs")).expect("mkdir");
    std::fs::write(dir.path().join(COMPACTING).join("db"), b"half").expect("write");
    assert_eq!(contents(dir.path()), before);
    assert!(
        packs(dir.path()).is_empty(),
        "an unfinished copy is never installed"
    );
    no_copy_left_behind(dir.path(), "the copy half built");
}

/// A crash before every single step of an install (each a rename or a
/// removal): the next open finds one whole store, the new one, and no
/// copy or old files left behind.
#[test]
fn an_install_interrupted_at_any_step_is_finished_at_open() {
    let template = tempfile::tempdir().expect("tempdir");
    written(template.path(), 1_000);
    let before = contents(template.path());
    {
        let _lock = DirLock::acquire(template.path()).expect("lock");
        commit_copy(template.path(), When::Always)
            .expect("copy")
            .expect("committed");
    }
    let mut steps = 0;
    loop {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(template.path(), dir.path());
        let interrupted = {
            let _lock = DirLock::acquire(dir.path()).expect("lock");
            crash::after(Some(steps));
            let done = finish_interrupted_locked(dir.path());
            crash::after(None);
            done.is_err()
        };
        let context = format!("a crash before step {steps}");
        assert_eq!(contents(dir.path()), before, "{context}");
        assert!(!packs(dir.path()).is_empty(), "{context}: installed");
        no_copy_left_behind(dir.path(), &context);
        if !interrupted {
            break;
        }
        steps += 1;
    }
    // Make room, 4 or more files out, the rename, 4 or more in, the
    // emptied copy and the old files removed.
    assert!(steps >= 11, "only {steps} steps were interrupted");
}

/// What an install of an earlier version left when it was stopped midway
/// (the old store's `conf` and seal deleted before its `db`): the open
/// finishes the install before it asks whether the `db` is ours.
#[test]
fn a_db_left_without_its_conf_by_an_interrupted_install_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 1_000);
    let before = contents(dir.path());
    {
        let _lock = DirLock::acquire(dir.path()).expect("lock");
        commit_copy(dir.path(), When::Always)
            .expect("copy")
            .expect("committed");
    }
    std::fs::remove_file(dir.path().join("conf")).expect("remove");
    std::fs::remove_file(dir.path().join(crate::state::SEAL_FILE)).expect("remove");
    assert_eq!(contents(dir.path()), before);
    assert!(!packs(dir.path()).is_empty(), "installed");
    no_copy_left_behind(dir.path(), "conf and seal deleted");
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn files_that_are_not_the_stores_are_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 2_000);
    std::fs::write(dir.path().join("notes.txt"), b"mine").expect("write");
    std::fs::create_dir(dir.path().join("backups")).expect("mkdir");
    compact_closed(dir.path(), When::Always)
        .expect("compact")
        .expect("compacted");
    assert_eq!(
        std::fs::read(dir.path().join("notes.txt")).expect("read"),
        b"mine"
    );
    assert!(dir.path().join("backups").is_dir());
}

#[test]
fn a_store_in_use_or_already_compact_is_left_as_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let buckets = written(dir.path(), 3_000);
    {
        let _open = SledStore::open(dir.path()).expect("open");
        assert_eq!(
            compact_closed(dir.path(), When::Always).expect("compact"),
            None,
            "an open store is never swapped under its user"
        );
    }
    assert_eq!(contents(dir.path()).1, buckets);
    compact_closed(dir.path(), When::Always)
        .expect("compact")
        .expect("compacted");
    assert_eq!(
        compact_closed(dir.path(), When::Needed).expect("compact"),
        None,
        "a compact store is not copied again"
    );
    let empty = tempfile::tempdir().expect("tempdir");
    assert_eq!(
        compact_closed(empty.path(), When::Always).expect("compact"),
        None,
        "no store, nothing to do"
    );
}

#[test]
fn a_bucket_of_its_own_wins_over_a_packed_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = bucket(0);
    let mut new = bucket(0);
    new.total_posts += 100;
    let what = "test";
    let records: Vec<(sled::IVec, sled::IVec)> = vec![
        (
            keys::pack(10 * SECS).as_slice().into(),
            codec::encode(what, &vec![old, bucket(10 * SECS)])
                .expect("encode")
                .into(),
        ),
        (
            keys::bucket(0).as_slice().into(),
            codec::encode(what, &new).expect("encode").into(),
        ),
        (
            keys::bucket(20 * SECS).as_slice().into(),
            codec::encode(what, &bucket(20 * SECS))
                .expect("encode")
                .into(),
        ),
    ];
    SledStore::open(dir.path())
        .expect("open")
        .restore_records(&records)
        .expect("write");
    let expected = vec![new, bucket(10 * SECS), bucket(20 * SECS)];
    assert_eq!(contents(dir.path()).1, expected, "read as they are");
    let before = contents(dir.path()).0;
    compact_closed(dir.path(), When::Always)
        .expect("compact")
        .expect("compacted");
    let (others, buckets, _) = contents(dir.path());
    assert_eq!(buckets, expected, "packed alike");
    assert_eq!(others, before, "every other record as it was");
    let packs = packs(dir.path());
    assert_eq!(packs.len(), 1);
    assert_eq!(packs[0].0.as_ref(), keys::pack(20 * SECS));
}

#[test]
fn a_store_compacted_through_its_open_handle_is_the_closed_compaction_s_equal() {
    let through_handle = tempfile::tempdir().expect("tempdir");
    let reopened = tempfile::tempdir().expect("tempdir");
    let buckets = written(through_handle.path(), 6_000);
    written(reopened.path(), 6_000);
    let before = contents(through_handle.path());
    let store = SledStore::open(through_handle.path()).expect("open");
    let done = compact_open(store, When::Needed)
        .expect("compact")
        .expect("a replay's store is worth compacting");
    compact_closed(reopened.path(), When::Needed)
        .expect("compact")
        .expect("compacted");
    let after = contents(through_handle.path());
    assert_eq!(after, before, "nothing gained or lost");
    assert_eq!(after.1, buckets);
    assert_eq!(
        packs(through_handle.path()),
        packs(reopened.path()),
        "the same packs either way"
    );
    assert!(done.after < done.before, "{done:?}");
    no_copy_left_behind(through_handle.path(), "");
}

#[test]
fn a_copy_through_a_handle_that_is_not_the_last_is_discarded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let buckets = written(dir.path(), 3_000);
    let store = SledStore::open(dir.path()).expect("open");
    let outbox = store.outbox::<Alert>();
    assert_eq!(
        compact_open(store, When::Always).expect("compact"),
        None,
        "the outbox still holds the store"
    );
    assert!(!dir.path().join(COMPACTING).exists(), "the copy is removed");
    drop(outbox);
    assert_eq!(contents(dir.path()).1, buckets);
    assert!(packs(dir.path()).is_empty(), "the store is as it was");

    let temporary = SledStore::temporary().expect("temporary");
    assert_eq!(
        compact_open(temporary, When::Always).expect("compact"),
        None,
        "a temporary store is dropped, not copied"
    );
}

/// sled's id counter is its own metadata, not a record: a compacted copy
/// starts it afresh. New alerts were then numbered at or below the
/// sinks' cursors, which took them for delivered; they were never sent.
#[test]
fn alerts_written_after_a_compaction_are_numbered_past_every_cursor() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 200);
    let delivered = {
        let store = SledStore::open(dir.path()).expect("open");
        let outbox: crate::state::outbox::Outbox<Alert> = store.outbox();
        // Many alerts since the store began, all delivered.
        for _ in 0..50 {
            let seq = outbox.append(&alert("y")).expect("append");
            outbox.advance("hook", seq).expect("advance");
        }
        let last = outbox
            .cursor("hook", &["hook".to_owned()])
            .expect("cursor")
            .expect("some");
        store.flush().expect("flush");
        last
    };
    compact_closed(dir.path(), When::Always)
        .expect("compact")
        .expect("compacted");
    let mut store = SledStore::open(dir.path()).expect("open");
    let seqs = store
        .save(
            &[],
            &Checkpoint::default().as_ref(),
            None,
            &[alert("after")],
            &[],
        )
        .expect("save");
    assert!(
        seqs[0] > delivered,
        "alert {} at or below cursor {delivered}",
        seqs[0]
    );
    let outbox: crate::state::outbox::Outbox<Alert> = store.outbox();
    let next = outbox.append(&alert("health")).expect("append");
    assert!(next > seqs[0], "{next} after {}", seqs[0]);
    assert_eq!(
        outbox
            .next_after(Some(delivered))
            .expect("read")
            .map(|(seq, _)| seq),
        Some(seqs[0]),
        "the sink reads it"
    );
}

/// A copy that fails while it is written (as on a full disk) is removed
/// at once: it was left in `compacting/` until the next open, the disk
/// at 0 bytes free meanwhile. The store is as it was.
#[test]
fn a_copy_that_fails_is_removed_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 200);
    let before = contents(dir.path());
    crash::after(Some(0));
    let compacted = compact_closed(dir.path(), When::Always);
    crash::after(None);
    let err = compacted.expect_err("the copy failed").to_string();
    assert!(err.contains("write the copy"), "{err}");
    assert!(
        !dir.path().join(COMPACTING).exists(),
        "the failed copy is gone"
    );
    assert_eq!(contents(dir.path()), before);
}

/// A disk without room for the copy: no copy is started, and the error
/// says how much is free and needed (logged at a close, printed by
/// `state compact`).
#[test]
fn no_copy_is_started_without_room_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    written(dir.path(), 200);
    let before = contents(dir.path());
    room::pretend(Some(100_000));
    let compacted = compact_closed(dir.path(), When::Always);
    room::pretend(None);
    let err = compacted.expect_err("no room").to_string();
    assert!(
        err.contains("find room for the copy") && err.contains("100000 bytes free"),
        "{err}"
    );
    assert!(!dir.path().join(COMPACTING).exists());
    assert_eq!(contents(dir.path()), before);
    // With room, it goes ahead.
    assert!(
        compact_closed(dir.path(), When::Always)
            .expect("compacts")
            .is_some()
    );
}
