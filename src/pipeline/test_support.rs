//! What the pipeline's tests share: Jetstream frames written by hand, a
//! pipeline on a temporary store, and what it counted where.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
pub(super) use crate::state::SledStore;

pub(super) const START: Micros = 1_783_173_600_000_000;
pub(super) const S: Micros = MICROS_PER_SEC;

pub(super) fn post(did: &str, rkey: &str, time_us: Micros, text: &str) -> String {
    serde_json::json!({
        "did": did, "time_us": time_us, "kind": "commit",
        "commit": {"rev": "r", "operation": "create", "collection": "app.bsky.feed.post",
                   "rkey": rkey, "record": {"text": text, "langs": ["en"]}}
    })
    .to_string()
}

/// A Mastodon `update` frame: status `id` by `acct` (`user@host`, its
/// server), created at `time_us` (the pipeline dates it by its arrival).
pub(super) fn mastodon_status(id: &str, acct: &str, time_us: Micros, text: &str) -> String {
    let host = acct
        .split_once('@')
        .map_or("social.example", |(_, host)| host);
    let status = serde_json::json!({
        "id": id, "created_at": crate::wall::rfc3339(time_us),
        "content": format!("<p>{text}</p>"), "spoiler_text": "", "language": "en",
        "tags": [], "visibility": "public",
        "account": {"id": id, "acct": acct, "username": "u"},
        "uri": format!("https://{host}/users/u/statuses/{id}"),
        "url": null, "reblog": null
    });
    serde_json::json!({"stream": ["public"], "event": "update", "payload": status.to_string()})
        .to_string()
}

/// Post `i` of ordinary chatter from five accounts taking turns.
pub(super) fn chatter(i: i64, time_us: Micros, text: &str) -> String {
    post(
        &format!("did:plc:{}", i % 5),
        &format!("k{i}"),
        time_us,
        text,
    )
}

pub(super) fn open(dir: &std::path::Path, config: &PipelineConfig) -> Pipeline<SledStore> {
    let matcher = Arc::new(Matcher::embedded().expect("patterns"));
    let store = SledStore::open(dir).expect("store");
    Pipeline::open(matcher, config.clone(), store).expect("pipeline")
}

pub(super) fn feed(p: &mut Pipeline<SledStore>, frames: &[String], received: &Received<'_>) {
    feed_as(p, "test", frames, received);
}

/// `frames` as the source `source`, numbered from 0.
pub(super) fn feed_as(
    p: &mut Pipeline<SledStore>,
    source: &str,
    frames: &[String],
    received: &Received<'_>,
) {
    for (n, frame) in frames.iter().enumerate() {
        p.process_frame(source, n as u64, frame.as_bytes(), received)
            .expect("process");
    }
}

/// Reports per bucket start and service, closed (stored) or still open.
pub(super) fn per_bucket(p: &Pipeline<SledStore>) -> BTreeMap<(Micros, String), u64> {
    let mut out = BTreeMap::new();
    let stored = p.store.buckets_since(i64::MIN).expect("read");
    for b in stored.iter().chain(p.windows.open_buckets()) {
        for (service, counts) in &b.services {
            *out.entry((b.start, service.clone())).or_default() += counts.reports;
        }
    }
    out
}

/// Reports per service in every bucket, closed (stored) or still open.
pub(super) fn reports(p: &Pipeline<SledStore>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for ((_, service), n) in per_bucket(p) {
        *out.entry(service).or_default() += n;
    }
    out
}

/// Every alert in the store's outbox, in order.
pub(super) fn alerts(p: &Pipeline<SledStore>) -> Vec<crate::alert::Alert> {
    let outbox = p.store.outbox::<crate::alert::Alert>();
    let mut out = Vec::new();
    let mut after = None;
    while let Some((seq, alert)) = outbox.next_after(after).expect("outbox") {
        out.push(alert);
        after = Some(seq);
    }
    out
}
