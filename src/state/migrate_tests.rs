//! Stores of formats 6 (buckets holding author ids) and 7 (digests, no
//! servers) migrated: the same distinct authors and the same alerts as
//! the buckets this build counts from the same posts.

use std::collections::BTreeMap;

use serde::Serialize;

use super::super::store::tests::{discovered_names, raw_db, raw_store};
use super::super::{Checks, SledStore, Store, codec, keys};
use crate::Micros;
use crate::detect::{Detector, DetectorConfig};
use crate::window::{AuthorId, Bucket, ServiceCounts};

const B: Micros = 10_000_000;
const T0: Micros = 1_783_173_600 * 1_000_000;

/// [`ServiceCounts`] as format 6 (and every format before it) wrote it:
/// authors by id.
#[derive(Serialize)]
pub(in crate::state) struct CountsFormat6 {
    reports: u64,
    authors: Vec<String>,
    recoveries: u64,
    samples: Vec<crate::window::Sample>,
    copies: Vec<(u64, String)>,
    phrases: BTreeMap<String, u64>,
    langs: BTreeMap<String, u64>,
    extra_authors: u64,
    discovered: bool,
}

/// [`Bucket`] as format 6 (and every format before it) wrote it.
#[derive(Serialize)]
pub(in crate::state) struct BucketFormat6 {
    start: Micros,
    total_posts: u64,
    services: BTreeMap<String, CountsFormat6>,
}

/// `bucket` in the layout of format 6, its authors the `ids` whose
/// digests it holds.
pub(in crate::state) fn in_format_6(bucket: &Bucket, ids: &[&str]) -> BucketFormat6 {
    let id = |digest: &AuthorId| -> String {
        let found = ids.iter().find(|id| AuthorId::of(id) == *digest);
        found.expect("an id of every digest").to_string()
    };
    let services = bucket.services.iter().map(|(name, c)| {
        let counts = CountsFormat6 {
            reports: c.reports,
            authors: c.authors.iter().map(id).collect(),
            recoveries: c.recoveries,
            samples: c.samples.clone(),
            copies: c.copies.iter().map(|(t, a)| (*t, id(a))).collect(),
            phrases: c.phrases.clone(),
            langs: c.langs.clone(),
            extra_authors: c.extra_authors,
            discovered: c.discovered,
        };
        (name.clone(), counts)
    });
    BucketFormat6 {
        start: bucket.start,
        total_posts: bucket.total_posts,
        services: services.collect(),
    }
}

/// Bucket `i`'s reporting authors and copies of "svc", by id: a calm
/// start, then a surge of new authors, some accounts sharing several long
/// texts (past the per-text cap in some, within it in others).
fn reporters(i: i64) -> (Vec<String>, Vec<(u64, String)>) {
    let new = if i < 30 { (i % 2) as u64 } else { 12 };
    let mut authors: Vec<String> = (0..new).map(|a| format!("did:plc:{i}-{a}")).collect();
    let mut copies = Vec::new();
    if i >= 30 {
        for bot in 0..8 {
            let id = format!("did:plc:bot-{bot:02}-{}", "x".repeat(200));
            for text in 0..=(bot % 3) {
                copies.push((text, id.clone()));
            }
            authors.push(id);
        }
    }
    (authors, copies)
}

/// Bucket `i` in the layout of format 6, its ids in the order given
/// (`sorted`: as a closed bucket was stored).
fn old_bucket(i: i64, sorted: bool) -> BucketFormat6 {
    let (mut authors, mut copies) = reporters(i);
    if sorted {
        authors.sort();
        copies.sort();
    }
    let counts = CountsFormat6 {
        reports: authors.len() as u64,
        authors,
        recoveries: 0,
        samples: Vec::new(),
        copies,
        phrases: BTreeMap::new(),
        langs: BTreeMap::new(),
        extra_authors: 0,
        discovered: false,
    };
    BucketFormat6 {
        start: T0 + i * B,
        total_posts: 500,
        services: [("svc".to_owned(), counts)].into(),
    }
}

/// Bucket `i` as this build counts it, open (authors in arrival order)
/// or closed.
fn new_bucket(i: i64, closed: bool) -> Bucket {
    let (authors, copies) = reporters(i);
    let mut bucket = Bucket {
        start: T0 + i * B,
        total_posts: 500,
        ..Bucket::default()
    };
    let counts = ServiceCounts {
        reports: authors.len() as u64,
        authors: authors.iter().map(|a| AuthorId::of(a)).collect(),
        copies: copies.iter().map(|(t, a)| (*t, AuthorId::of(a))).collect(),
        ..ServiceCounts::default()
    };
    bucket.services.insert("svc".into(), counts);
    if closed {
        bucket.seal();
    }
    bucket
}

fn alerts(buckets: &[Bucket]) -> Vec<crate::detect::Transition> {
    let mut detector = Detector::new(DetectorConfig::default());
    buckets.iter().flat_map(|b| detector.on_bucket(b)).collect()
}

/// A store in `dir` as format `format` wrote it: `checkpoint`, buckets
/// 0–19 as one pack, 20–39 single (each in that format's layout, by
/// `old_layout`), every record read as it is by a store opened to
/// salvage, not migrated.
fn old_store<O: Serialize>(
    dir: &std::path::Path,
    format: u32,
    checkpoint: &impl Serialize,
    old_layout: impl Fn(i64) -> O,
) {
    let pack: Vec<O> = (0..20).map(&old_layout).collect();
    let mut records = vec![
        (keys::FORMAT.to_vec(), format.to_be_bytes().to_vec()),
        (
            keys::CHECKPOINT.to_vec(),
            codec::encode("checkpoint", checkpoint).expect("encode"),
        ),
    ];
    records.extend((20..40).map(|i| {
        let key = keys::bucket(T0 + i * B).to_vec();
        (
            key,
            codec::encode("bucket", &old_layout(i)).expect("encode"),
        )
    }));
    raw_store(dir, records);
    {
        let db = raw_db(dir);
        let packs = db.open_tree(keys::PACKS).expect("packs");
        let key = keys::pack(T0 + 19 * B);
        packs
            .insert(key, codec::encode("pack", &pack).expect("encode"))
            .expect("insert");
        db.flush().expect("flush");
    }
    let old = SledStore::open_with(dir, Checks::None).expect("open to salvage");
    let (kept, lost) = old.salvage();
    assert_eq!(
        (kept.len(), lost),
        (23, 0),
        "format {format}'s records read"
    );
}

/// Buckets 0–19 packed, 20–39 single, 40 open in the checkpoint (written
/// in format 6's layout, detector aside): after the migration every one
/// reads as this build counts it, and the alerts are the same.
#[test]
fn a_format_6_store_with_author_ids_is_migrated_to_digests() {
    let names = crate::window::SavedNames::default();
    let checkpoint = (
        Some(T0 + 40 * B),
        Some(T0 + 40 * B + 1),
        vec![old_bucket(40, false)],
        None::<crate::detect::Snapshot>,
        BTreeMap::<String, Micros>::new(),
        BTreeMap::<String, crate::source::jetstream::SeqCursor>::new(),
        None::<crate::source::dedupe::Deduper>,
        BTreeMap::<String, crate::source::clock::SourceClock>::new(),
        names.as_format_6(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    old_store(dir.path(), 6, &checkpoint, |i| old_bucket(i, true));

    let store = SledStore::open(dir.path()).expect("migrated");
    assert_eq!(store.inventory().expect("verified").buckets, 40);
    let closed = store.buckets_since(0).expect("read");
    let want: Vec<Bucket> = (0..40).map(|i| new_bucket(i, true)).collect();
    assert_eq!(closed, want);
    for (i, bucket) in closed.iter().enumerate() {
        let ids = reporters(i as i64).0;
        assert_eq!(
            bucket.services["svc"].authors.len(),
            ids.len(),
            "bucket {i}"
        );
    }
    let checkpoint = store.checkpoint().expect("read").expect("checkpoint");
    assert_eq!(checkpoint.open, vec![new_bucket(40, false)]);
    assert_eq!(checkpoint.newest, Some(T0 + 40 * B + 1));

    let fired = alerts(&closed);
    assert!(!fired.is_empty(), "the surge fires");
    assert_eq!(fired, alerts(&want));
}

/// [`ServiceCounts`] as format 7 wrote it: authors by digest, no servers.
#[derive(Serialize)]
struct CountsFormat7 {
    reports: u64,
    authors: Vec<AuthorId>,
    recoveries: u64,
    samples: Vec<crate::window::Sample>,
    copies: Vec<(u64, AuthorId)>,
    phrases: BTreeMap<String, u64>,
    langs: BTreeMap<String, u64>,
    extra_authors: u64,
    discovered: bool,
}

/// [`Bucket`] as format 7 wrote it.
#[derive(Serialize)]
struct BucketFormat7 {
    start: Micros,
    total_posts: u64,
    services: BTreeMap<String, CountsFormat7>,
}

/// `bucket` in the layout of format 7 (it must hold no servers).
fn in_format_7(bucket: &Bucket) -> BucketFormat7 {
    let services = bucket.services.iter().map(|(name, c)| {
        assert!(c.servers.is_empty(), "format 7 had no servers");
        let counts = CountsFormat7 {
            reports: c.reports,
            authors: c.authors.clone(),
            recoveries: c.recoveries,
            samples: c.samples.clone(),
            copies: c.copies.clone(),
            phrases: c.phrases.clone(),
            langs: c.langs.clone(),
            extra_authors: c.extra_authors,
            discovered: c.discovered,
        };
        (name.clone(), counts)
    });
    BucketFormat7 {
        start: bucket.start,
        total_posts: bucket.total_posts,
        services: services.collect(),
    }
}

/// Buckets 0–19 packed, 20–39 single, 40 open in the checkpoint, and a
/// discovered name's candidate with a held-back post, in format 7's
/// layout (no field for servers): read as this build's own they fail.
/// After the migration every one reads as this build counts it (no
/// server known), and the alerts are the same.
#[test]
fn a_format_7_store_is_migrated_with_no_servers_known() {
    let names = discovered_names();
    let checkpoint = (
        Some(T0 + 40 * B),
        Some(T0 + 40 * B + 1),
        vec![in_format_7(&new_bucket(40, false))],
        None::<crate::detect::Snapshot>,
        BTreeMap::<String, Micros>::new(),
        BTreeMap::<String, crate::source::jetstream::SeqCursor>::new(),
        None::<crate::source::dedupe::Deduper>,
        BTreeMap::<String, crate::source::clock::SourceClock>::new(),
        names.as_format_7(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    old_store(dir.path(), 7, &checkpoint, |i| {
        in_format_7(&new_bucket(i, true))
    });

    let store = SledStore::open(dir.path()).expect("migrated");
    assert_eq!(store.inventory().expect("verified").buckets, 40);
    let closed = store.buckets_since(0).expect("read");
    let want: Vec<Bucket> = (0..40).map(|i| new_bucket(i, true)).collect();
    assert_eq!(closed, want);
    let checkpoint = store.checkpoint().expect("read").expect("checkpoint");
    assert_eq!(checkpoint.open, vec![new_bucket(40, false)]);
    assert_eq!(checkpoint.newest, Some(T0 + 40 * B + 1));
    // The candidate's held-back post, its server not known then.
    assert_ne!(names, names.clone().without_servers(), "it had one");
    assert_eq!(
        checkpoint.discovered,
        names.clone().without_servers().without_last_uses()
    );
    let fired = alerts(&closed);
    assert!(!fired.is_empty(), "the surge fires");
    assert_eq!(fired, alerts(&want));
    drop(store);

    // Written in format 8 now: read as this build's own, with no mode.
    let db = raw_db(dir.path());
    let bytes = db
        .get(keys::bucket(T0 + 25 * B))
        .expect("get")
        .expect("bucket");
    let body = codec::open(&bytes).expect("checksum");
    let read: Bucket = codec::decode("bucket", body).expect("format 8");
    assert_eq!(read, new_bucket(25, true));
}

/// A format-9 store: its discovered name's held-back authors have no last
/// use nor copied text (format 10 added both). Migrated, it reads with
/// neither known, and the buckets and alerts are as they were.
#[test]
fn a_format_9_store_is_migrated_with_no_last_uses_known() {
    let names = discovered_names();
    let checkpoint = (
        Some(T0 + 40 * B),
        Some(T0 + 40 * B + 1),
        vec![new_bucket(40, false)],
        None::<crate::detect::Snapshot>,
        BTreeMap::<String, Micros>::new(),
        BTreeMap::<String, crate::source::jetstream::SeqCursor>::new(),
        None::<crate::source::dedupe::Deduper>,
        BTreeMap::<String, crate::source::clock::SourceClock>::new(),
        names.as_format_9(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    old_store(dir.path(), 9, &checkpoint, |i| new_bucket(i, true));
    let store = SledStore::open(dir.path()).expect("migrated");
    let closed = store.buckets_since(0).expect("read");
    let want: Vec<Bucket> = (0..40).map(|i| new_bucket(i, true)).collect();
    assert_eq!(closed, want);
    let checkpoint = store.checkpoint().expect("read").expect("checkpoint");
    assert_eq!(checkpoint.open, vec![new_bucket(40, false)]);
    assert_ne!(names, names.clone().without_last_uses(), "it had them");
    assert_eq!(checkpoint.discovered, names.clone().without_last_uses());
    assert_eq!(alerts(&closed), alerts(&want));
}
