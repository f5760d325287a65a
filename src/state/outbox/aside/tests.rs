//! Set-aside records against a real sled store: written with the cursor,
//! kept through garbage collection, known to numbering, and settled with
//! the sink (retired, renamed, forgotten).

use serde_json::{Value, json};

use super::super::super::keys::{self, Kind};
use super::super::super::{FORMAT, SledStore};
use super::super::{Outbox, RetryState, SetAside, highest_known_seq};

fn alert(id: &str, state: &str) -> Value {
    json!({ "id": id, "state": state })
}

fn failed(seq: u64, attempts: u32) -> RetryState {
    RetryState {
        seq,
        attempts,
        first_failure_ms: 1_000,
        last_error: "HTTP 500".into(),
        failing_ms: 61_000,
    }
}

/// A store with one sink `s` and three alerts: A firing (1), B firing
/// (2), A resolved (3); A's firing set aside after 3 failures.
fn a_set_aside(dir: &std::path::Path) -> (SledStore, Outbox<Value>) {
    let store = SledStore::open(dir).expect("store");
    let outbox: Outbox<Value> = store.outbox();
    let sinks = ["s".to_owned()];
    assert_eq!(outbox.cursor("s", &sinks).expect("cursor"), None);
    for (id, state) in [("A", "firing"), ("B", "firing"), ("A", "resolved")] {
        outbox.append(&alert(id, state)).expect("append");
    }
    outbox.set_retry_state("s", &failed(1, 3)).expect("retry");
    let aside = SetAside {
        seq: 1,
        incident: "A".into(),
        alert: alert("A", "firing"),
        retry: Some(failed(1, 3)),
    };
    outbox.set_aside("s", &aside).expect("set aside");
    (store, outbox)
}

#[test]
fn setting_aside_moves_the_cursor_and_takes_the_retry_state_along() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, outbox) = a_set_aside(dir.path());
    assert_eq!(
        outbox.sinks_with_cursors().expect("cursors"),
        vec![("s".to_owned(), Some(1))]
    );
    assert_eq!(outbox.retry_state("s").expect("retry"), None);
    let aside = outbox.set_aside_alerts("s").expect("read").alerts;
    assert_eq!(aside.len(), 1);
    assert_eq!(
        (aside[0].seq, aside[0].retry.clone()),
        (1, Some(failed(1, 3)))
    );
    assert_eq!(outbox.set_aside_count("s"), 1);
    // B and A's resolution wait at the head; A's firing is still owed.
    assert_eq!(outbox.pending_for("s").expect("pending"), 3);
}

/// Garbage collection removes the outbox record every cursor is past,
/// and the alert lives on in its set-aside record; numbering still counts
/// its seq when nothing else holds it.
#[test]
fn garbage_collection_and_numbering_keep_a_set_aside_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, outbox) = a_set_aside(dir.path());
    assert_eq!(
        outbox.next_after(None).expect("read").map(|(seq, _)| seq),
        Some(2),
        "alert 1's outbox record is collected"
    );
    outbox.advance("s", 3).expect("advance");
    assert_eq!(outbox.last_seq().expect("read"), None, "all collected");
    let aside = outbox.set_aside_alerts("s").expect("read").alerts;
    assert_eq!(aside[0].alert, alert("A", "firing"));
    // Only the set-aside record knows a seq: the cursor gone, the alerts
    // collected, numbering must still go past it.
    let set_aside_seq = 9;
    let mut later = aside[0].clone();
    later.seq = set_aside_seq;
    outbox.update_set_aside("s", &later).expect("write");
    outbox
        .db
        .remove(keys::named(Kind::Cursor, "s"))
        .expect("rm");
    assert_eq!(highest_known_seq(&outbox.db).expect("seq"), set_aside_seq);
    drop(store);
}

#[test]
fn a_retired_sink_s_set_aside_alerts_become_dead_letters_with_their_attempts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, outbox) = a_set_aside(dir.path());
    let letters = outbox
        .retire("s", "gone", "2027-01-15T08:00:00Z")
        .expect("retire");
    assert_eq!(letters, 3, "A's firing (set aside), B, A's resolution");
    let dead = outbox.dead_letters().expect("dead").letters;
    let seqs: Vec<(u64, u32)> = dead.iter().map(|d| (d.seq, d.attempts)).collect();
    assert_eq!(seqs, [(1, 3), (2, 0), (3, 0)]);
    assert_eq!(outbox.set_aside_count("s"), 0);
}

#[test]
fn a_renamed_sink_takes_its_set_aside_alerts_and_a_forgotten_one_drops_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, outbox) = a_set_aside(dir.path());
    assert!(outbox.rename("s", "t").expect("rename"));
    assert_eq!(outbox.set_aside_count("s"), 0);
    assert_eq!(outbox.set_aside_alerts("t").expect("read").alerts.len(), 1);
    let forgotten = outbox.forget("t").expect("forget");
    assert_eq!(forgotten.pending, 3, "the set-aside alert counted as owed");
    assert_eq!(outbox.set_aside_count("t"), 0);
    assert!(!outbox.holds_anything("t").expect("holds"));
}

#[test]
fn a_set_aside_alert_that_dies_leaves_its_record_for_a_dead_letter_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, outbox) = a_set_aside(dir.path());
    let letter = super::super::DeadLetter {
        sink: "s".into(),
        seq: 1,
        alert: alert("A", "firing"),
        reason: "horizon".into(),
        attempts: 9,
        failed_at: "2027-01-15T08:00:00Z".into(),
        superseded_by: None,
    };
    outbox.set_aside_dead("s", &letter).expect("dead");
    assert_eq!(outbox.set_aside_count("s"), 0);
    assert_eq!(outbox.dead_letters().expect("dead").letters, vec![letter]);
}

/// A format-6 store (before set-aside records) opens as it is, marked
/// with this format from then on, so a format-6 build refuses it.
#[test]
fn a_format_6_store_opens_and_is_marked_with_the_set_aside_format() {
    const { assert!(FORMAT >= 7, "set-aside records need a format of their own") };
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = sled::open(dir.path()).expect("sled");
        db.insert(keys::FORMAT, &6u32.to_be_bytes())
            .expect("insert");
        db.insert(
            keys::alert(4),
            serde_json::to_vec(&alert("A", "firing")).expect("json"),
        )
        .expect("insert");
        db.flush().expect("flush");
    }
    let store = SledStore::open(dir.path()).expect("a format-6 store opens");
    let outbox: Outbox<Value> = store.outbox();
    let format = outbox.db.get(keys::FORMAT).expect("get").expect("format");
    assert_eq!(format.as_ref(), &FORMAT.to_be_bytes());
    assert_eq!(
        outbox.next_after(None).expect("read").map(|(seq, _)| seq),
        Some(4),
        "its alert is still there"
    );
}

/// A set-aside record that does not read is listed apart, by seq: the
/// others still read (one bad record failed the whole read, and every
/// other set-aside alert of the sink was never tried again).
#[test]
fn an_unreadable_set_aside_record_is_listed_apart_from_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, outbox) = a_set_aside(dir.path());
    outbox
        .db
        .insert(keys::entry(Kind::Aside, "s", 99), &b"not a record"[..])
        .expect("insert");
    let read = outbox.set_aside_alerts("s").expect("read");
    let seqs: Vec<u64> = read.alerts.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, [1]);
    let bad: Vec<u64> = read.unreadable.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(bad, [99]);
    assert!(!read.unreadable[0].1.is_empty(), "says why");
}

/// A re-queued dead letter set aside goes before its incident's set-aside
/// alerts (by seq, untried); another incident's stays re-queued, and the
/// sink's retry state (its head alert's) is left alone.
#[test]
fn a_requeued_letter_set_aside_goes_before_its_incident_s_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, outbox) = a_set_aside(dir.path());
    // A's firing (1) dies; B's (2) dies too; both are re-queued.
    let aside = outbox.set_aside_alerts("s").expect("read").alerts;
    let letter = |seq: u64, alert: Value| super::super::DeadLetter {
        sink: "s".into(),
        seq,
        alert,
        reason: "still failing".into(),
        attempts: 9,
        failed_at: "2027-01-15T08:00:00Z".into(),
        superseded_by: None,
    };
    outbox
        .set_aside_dead("s", &letter(1, aside[0].alert.clone()))
        .expect("dead");
    let b = letter(2, alert("B", "firing"));
    let value = crate::state::codec::encode_plain("dead letter", &b).expect("encode");
    outbox
        .db
        .insert(keys::entry(Kind::Dead, "s", 2), value)
        .expect("insert");
    // A's resolved (3) is set aside behind its firing.
    let resolved = SetAside {
        seq: 3,
        incident: "A".into(),
        alert: alert("A", "resolved"),
        retry: None,
    };
    outbox.set_aside("s", &resolved).expect("set aside");
    assert_eq!(outbox.requeue(None, None).expect("requeue"), 2);
    let head = failed(4, 5);
    outbox.set_retry_state("s", &head).expect("retry state");
    let incident_of = |a: &Value| a["id"].as_str().unwrap_or_default().to_owned();
    let first = outbox.next_requeued("s").expect("read").expect("A's");
    assert_eq!(first.seq, 1);
    let record = SetAside {
        seq: first.seq,
        incident: incident_of(&first.alert),
        alert: first.alert,
        retry: None,
    };
    outbox.set_aside_requeued("s", &record).expect("set aside");
    let aside: Vec<(u64, String, Value)> = outbox
        .set_aside_alerts("s")
        .expect("read")
        .alerts
        .into_iter()
        .map(|a| (a.seq, a.incident, a.alert["state"].clone()))
        .collect();
    assert_eq!(
        aside,
        [
            (1, "A".to_owned(), json!("firing")),
            (3, "A".to_owned(), json!("resolved"))
        ],
        "A's firing first, then its resolved"
    );
    let left = outbox.next_requeued("s").expect("read").expect("B's");
    assert_eq!((left.seq, incident_of(&left.alert)), (2, "B".to_owned()));
    assert_eq!(outbox.retry_state("s").expect("read"), Some(head));
}
