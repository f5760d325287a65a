//! Expiry and pages of dead letters.

use super::*;
use crate::state::SledStore;

const DAY: crate::Micros = 86_400 * crate::MICROS_PER_SEC;
/// 2027-01-15T08:00:00Z.
const NOW: crate::Micros = 1_800_000_000 * crate::MICROS_PER_SEC;

fn letter(sink: &str, seq: u64, died: crate::Micros) -> DeadLetter<String> {
    DeadLetter {
        sink: sink.into(),
        seq,
        alert: format!("alert {seq}"),
        reason: "HTTP 500".into(),
        attempts: 1,
        failed_at: crate::alert::rfc3339(died),
        superseded_by: None,
    }
}

fn ids(outbox: &Outbox<String>) -> Vec<String> {
    let dead = outbox.dead_letters().expect("read");
    let mut ids: Vec<String> = dead.letters.iter().map(DeadLetter::id).collect();
    ids.extend(dead.unreadable.iter().map(UnreadableLetter::id));
    ids
}

/// Older than the cutoff go, counted by sink; at the cutoff and newer
/// stay; a re-queued letter, however old, is back in its queue and
/// stays; one whose time or body does not read stays, counted.
#[test]
fn letters_older_than_the_retention_go_and_the_rest_stay() {
    let store = SledStore::temporary().expect("store");
    let outbox: Outbox<String> = store.outbox();
    let cutoff = NOW - 30 * DAY;
    for l in [
        letter("hook", 1, cutoff - 1),
        letter("hook", 2, cutoff - 20 * DAY),
        letter("pager", 3, cutoff - DAY),
        letter("hook", 4, cutoff),
        letter("pager", 5, NOW - DAY),
        letter("hook", 6, cutoff - 40 * DAY),
    ] {
        outbox.add_dead_letter(&l).expect("add");
    }
    let mut undated = letter("hook", 7, 0);
    undated.failed_at = "yesterday".into();
    outbox.add_dead_letter(&undated).expect("add");
    outbox
        .db
        .insert(keys::entry(Kind::Dead, "hook", 8), &b"not json"[..])
        .expect("raw");
    assert_eq!(outbox.requeue(Some("hook:6"), None).expect("requeue"), 1);

    let expired = outbox.expire_dead(cutoff).expect("expire");
    assert_eq!(
        expired.by_sink,
        BTreeMap::from([("hook".to_owned(), 2), ("pager".to_owned(), 1)])
    );
    assert_eq!((expired.total(), expired.undated), (3, 2));
    assert_eq!(ids(&outbox), ["hook:4", "hook:7", "pager:5", "hook:8"]);
    let requeued = outbox.next_requeued("hook").expect("read");
    assert_eq!(requeued.map(|r| r.seq), Some(6), "re-queued stays queued");

    // Again at the same time: nothing more goes.
    let again = outbox.expire_dead(cutoff).expect("expire");
    assert_eq!((again.total(), again.undated), (0, 2));
    assert_eq!(outbox.dead_counts().expect("counts")["hook"], 3);
}

#[test]
fn the_oldest_letter_is_found_by_its_time_not_its_seq() {
    let store = SledStore::temporary().expect("store");
    let outbox: Outbox<String> = store.outbox();
    for l in [
        letter("a", 1, NOW - DAY),
        letter("b", 2, NOW - 3 * DAY),
        letter("b", 3, NOW - 2 * DAY),
    ] {
        outbox.add_dead_letter(&l).expect("add");
    }
    let dead = outbox.dead_letters().expect("read");
    assert_eq!(dead.oldest().map(DeadLetter::id).as_deref(), Some("b:2"));
}

/// Pages follow key order, skip the sinks not wanted, and say where the
/// next starts; the last says none.
#[test]
fn pages_go_through_the_wanted_sinks_in_order() {
    let store = SledStore::temporary().expect("store");
    let outbox: Outbox<String> = store.outbox();
    for (sink, seq) in [("a", 1), ("a", 2), ("b", 3), ("c", 4), ("c", 5)] {
        outbox
            .add_dead_letter(&letter(sink, seq, NOW))
            .expect("add");
    }
    let wanted = |sink: &str| sink != "b";
    let page = |after| outbox.dead_page(after, 2, wanted).expect("page");
    let first = page(None);
    let listed: Vec<String> = first.letters.letters.iter().map(DeadLetter::id).collect();
    assert_eq!(
        (listed, first.next.as_deref()),
        (vec!["a:1".into(), "a:2".into()], Some("a:2"))
    );
    let second = page(Some(("a", 2)));
    let listed: Vec<String> = second.letters.letters.iter().map(DeadLetter::id).collect();
    assert_eq!(
        (listed, second.next),
        (vec!["c:4".into(), "c:5".into()], None)
    );
    assert!(page(Some(("c", 5))).letters.letters.is_empty());
}

/// An unwanted sink's letters are stepped over at once, and a wanted sink
/// whose name starts with the unwanted one's is not stepped over with it.
#[test]
fn a_page_steps_over_an_unwanted_sink_and_no_more() {
    let store = SledStore::temporary().expect("store");
    let outbox: Outbox<String> = store.outbox();
    let letters = [("b", 1), ("b", 2), ("b", 3), ("b2", 4), ("bb", 5)];
    for (sink, seq) in letters {
        outbox
            .add_dead_letter(&letter(sink, seq, NOW))
            .expect("add");
    }
    let page = outbox
        .dead_page(None, 10, |sink| sink != "b")
        .expect("page");
    let listed: Vec<String> = page.letters.letters.iter().map(DeadLetter::id).collect();
    assert_eq!(
        (listed, page.next),
        (vec!["b2:4".into(), "bb:5".into()], None)
    );
}

#[test]
fn letter_ids_read_back() {
    assert_eq!(parse_letter_id("hook:12"), Some(("hook", 12)));
    assert_eq!(parse_letter_id("a:b:3"), Some(("a:b", 3)));
    for bad in ["hook", "hook:", ":3", "hook:-1", "hook:x"] {
        assert_eq!(parse_letter_id(bad), None, "{bad}");
    }
}
