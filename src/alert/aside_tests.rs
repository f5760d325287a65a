//! Setting aside, against an in-process receiver that refuses one
//! incident's payloads only (500) and takes every other, on paused tokio
//! time: a day's retrying passes in an instant and comes out the same
//! every run.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use tokio::time::Instant;

use super::Alert;
use super::deliver::{Delivery, Filter, RetryPolicy, SinkSpec, Target, Webhook};
use super::format::Format;
use super::outbox::Outbox;
use crate::Micros;
use crate::detect::TransitionKind;
use crate::state::SledStore;
use crate::supervise::Supervisor;
use crate::wall::TokioClock;

/// 2027-01-15T08:00:00Z.
const T0: Micros = 1_800_000_000_000_000;

/// One request as the receiver saw it: incident, state, taken or not.
#[derive(Debug, Clone, PartialEq)]
struct Request {
    id: String,
    state: String,
    taken: bool,
}

/// A JSON webhook receiver that answers 500 to the incidents in `refuse`
/// (429 with `Retry-After: 30` to every request while `busy`) and 200 to
/// everything else, and keeps every request in order.
#[derive(Clone, Default)]
struct Receiver {
    refuse: Arc<Mutex<HashSet<String>>>,
    busy: Arc<Mutex<bool>>,
    got: Arc<Mutex<Vec<Request>>>,
}

async fn answer(
    State(receiver): State<Receiver>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let alert: serde_json::Value = serde_json::from_slice(&body).expect("a JSON alert");
    let text = |key: &str| alert[key].as_str().expect("a string field").to_owned();
    let id = text("id");
    let busy = *receiver.busy.lock().expect("lock");
    let taken = !busy && !receiver.refuse.lock().expect("lock").contains(&id);
    let state = text("state");
    let request = Request { id, state, taken };
    receiver.got.lock().expect("lock").push(request);
    if busy {
        (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "30")]).into_response()
    } else if taken {
        StatusCode::OK.into_response()
    } else {
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let receiver = Receiver::default();
        let app = Router::new().fallback(answer).with_state(receiver.clone());
        (receiver, super::paused_tests::serve_on_loopback(app).await)
    }

    fn refuse(&self, id: &str, refused: bool) {
        let mut refuse = self.refuse.lock().expect("lock");
        if refused {
            refuse.insert(id.to_owned());
        } else {
            refuse.remove(id);
        }
    }

    fn got(&self) -> Vec<Request> {
        self.got.lock().expect("lock").clone()
    }

    /// The (incident, state) pairs taken, in order.
    fn taken(&self) -> Vec<(String, String)> {
        let got = self.got();
        got.into_iter()
            .filter(|r| r.taken)
            .map(|r| (r.id, r.state))
            .collect()
    }

    /// Waits (on tokio's clock) until `id`'s `state` was taken; how long.
    async fn wait_taken(&self, id: &str, state: &str) -> Duration {
        let start = Instant::now();
        for _ in 0..3 * 3600 {
            if self.taken().iter().any(|(i, s)| i == id && s == state) {
                return start.elapsed();
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("{id} {state} not taken in three hours: {:?}", self.got());
    }

    /// No `resolved` of `id` was sent before its `firing` was taken.
    fn in_order(&self, id: &str) {
        let got = self.got();
        let mine: Vec<&Request> = got.iter().filter(|r| r.id == id).collect();
        let firing_taken = mine
            .iter()
            .position(|r| r.state == "firing" && r.taken)
            .unwrap_or(mine.len());
        let resolved_sent = mine
            .iter()
            .position(|r| r.state == "resolved")
            .unwrap_or(mine.len());
        assert!(
            resolved_sent >= firing_taken,
            "{id}'s resolved before its firing was taken: {mine:?}"
        );
    }
}

fn sink(url: &str, horizon: Duration) -> SinkSpec {
    SinkSpec {
        name: "hook".into(),
        formerly: None,
        target: Target::Webhook(Webhook::plain(url, Format::Json)),
        filter: Filter::default(),
        // Retried at least once a minute, so the horizon is judged
        // within a minute of passing.
        retry: RetryPolicy {
            horizon,
            max_backoff: Duration::from_secs(60),
            ..RetryPolicy::default()
        },
    }
}

fn alert(source: &str, state: TransitionKind) -> Alert {
    Alert::source_health(source, state, T0, T0, "silent".into())
}

fn start(outbox: &Outbox, url: &str, horizon: Duration) -> Delivery {
    let clock = Arc::new(TokioClock::starting_at(T0));
    Delivery::start(
        vec![sink(url, horizon)],
        outbox.clone(),
        clock,
        &Supervisor::new(),
    )
    .expect("starts")
}

/// A's firing, B's firing, A's resolved, B's resolved, in the outbox of
/// the store at `dir`; A refused by the receiver. Returns A's and B's ids.
fn two_incidents(outbox: &Outbox, receiver: &Receiver) -> (String, String) {
    let (firing, resolved) = (TransitionKind::Firing, TransitionKind::Resolved);
    let (a, b) = (alert("a", firing), alert("b", firing));
    receiver.refuse(&a.id, true);
    for alert in [&a, &b, &alert("a", resolved), &alert("b", resolved)] {
        outbox.append(alert).expect("append");
    }
    (a.id, b.id)
}

fn open(dir: &Path) -> (SledStore, Outbox) {
    let store = SledStore::open(dir).expect("store");
    let outbox = store.outbox();
    (store, outbox)
}

/// B's alerts go out within a couple of minutes while A's receiver keeps
/// refusing it; A's stay set aside, in order, while the outbox's own
/// records are all collected; once the receiver takes A, A's firing and
/// then its resolved arrive, each once.
#[tokio::test(start_paused = true)]
async fn one_incident_refused_does_not_hold_up_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, outbox) = open(dir.path());
    let (receiver, url) = Receiver::start().await;
    let (a, b) = two_incidents(&outbox, &receiver);
    let delivery = start(&outbox, &url, Duration::from_secs(24 * 3600));
    let waited = receiver.wait_taken(&b, "resolved").await;
    assert!(waited < Duration::from_secs(180), "B waited {waited:?}");
    assert_eq!(
        receiver.taken(),
        [(b.clone(), "firing".into()), (b.clone(), "resolved".into())]
    );
    let report = &delivery.reports()[0];
    assert_eq!(report.set_aside, 2, "A's firing and resolved");
    assert_eq!(
        report.oldest_pending_at,
        Some(alert("a", TransitionKind::Firing).at),
        "the oldest undelivered is A's set-aside firing"
    );
    assert_eq!(outbox.last_seq().expect("read"), None, "collected");
    receiver.in_order(&a);

    receiver.refuse(&a, false);
    receiver.wait_taken(&a, "resolved").await;
    assert!(delivery.drain(Duration::from_secs(60)).await, "drained");
    let taken = receiver.taken();
    assert_eq!(
        taken[2..],
        [(a.clone(), "firing".into()), (a.clone(), "resolved".into())]
    );
    assert_eq!(taken.len(), 4, "each once: {taken:?}");
    receiver.in_order(&a);
    let (_, reports) = delivery.stop(Duration::ZERO).await;
    assert_eq!((reports[0].set_aside, reports[0].pending), (0, 0));
    assert!(outbox.dead_letters().expect("read").letters.is_empty());
}

/// Stopped while A is set aside, the daemon started again on the same
/// directory still delivers A (firing, then resolved), and sends B
/// nothing twice.
#[tokio::test(start_paused = true)]
async fn a_restart_resumes_the_set_aside_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (receiver, url) = Receiver::start().await;
    let (a, b) = {
        let (store, outbox) = open(dir.path());
        let ids = two_incidents(&outbox, &receiver);
        let delivery = start(&outbox, &url, Duration::from_secs(24 * 3600));
        receiver.wait_taken(&ids.1, "resolved").await;
        let (_, reports) = delivery.stop(Duration::ZERO).await;
        assert_eq!(reports[0].set_aside, 2);
        drop(outbox);
        drop(store);
        ids
    };
    let (_store, outbox) = open(dir.path());
    assert_eq!(outbox.set_aside_count("hook"), 2, "kept on disk");
    let failed_before = outbox.set_aside_alerts("hook").expect("read").alerts[0]
        .retry
        .clone()
        .expect("A's firing keeps its failures");
    assert!(failed_before.attempts >= super::aside::AFTER_ATTEMPTS);
    receiver.refuse(&a, false);
    let delivery = start(&outbox, &url, Duration::from_secs(24 * 3600));
    receiver.wait_taken(&a, "resolved").await;
    assert!(delivery.drain(Duration::from_secs(60)).await, "drained");
    let _ = delivery.stop(Duration::ZERO).await;
    let taken = receiver.taken();
    let expected = [
        (&b, "firing"),
        (&b, "resolved"),
        (&a, "firing"),
        (&a, "resolved"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(id, state)| ((*id).clone(), (*state).to_owned()))
        .collect();
    assert_eq!(taken, expected, "each once, A's in order");
    receiver.in_order(&a);
}

/// A receiver that never takes A: A's set-aside firing becomes a dead
/// letter at the retry horizon, as a head alert does; A's resolved then
/// goes on as after any dead letter (tried, refused, dead at its own
/// horizon), never sent before the firing died; B is delivered meanwhile.
#[tokio::test(start_paused = true)]
async fn set_aside_alerts_become_dead_letters_at_the_horizon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, outbox) = open(dir.path());
    let (receiver, url) = Receiver::start().await;
    let (a, b) = two_incidents(&outbox, &receiver);
    let horizon = Duration::from_secs(600);
    let delivery = start(&outbox, &url, horizon);
    receiver.wait_taken(&b, "resolved").await;
    assert!(outbox.dead_letters().expect("read").letters.is_empty());
    tokio::time::sleep(Duration::from_secs(12 * 60)).await;
    let dead = outbox.dead_letters().expect("read").letters;
    let dead_states: Vec<&str> = dead.iter().map(|d| d.alert.state.as_str()).collect();
    assert_eq!(dead_states, ["firing"], "the firing at its horizon");
    assert!(dead[0].reason.contains("still failing after"), "{dead:?}");
    let got = receiver.got();
    let resolved_first = got
        .iter()
        .position(|r| r.id == a && r.state == "resolved")
        .expect("the resolved is tried once the firing is dead");
    let firing_last = got
        .iter()
        .rposition(|r| r.id == a && r.state == "firing")
        .expect("the firing was tried");
    assert!(firing_last < resolved_first, "{got:?}");
    tokio::time::sleep(Duration::from_secs(12 * 60)).await;
    let dead = outbox.dead_letters().expect("read").letters;
    let dead: Vec<(&str, &str)> = dead
        .iter()
        .map(|d| (d.alert.id.as_str(), d.alert.state.as_str()))
        .collect();
    assert_eq!(dead, [(a.as_str(), "firing"), (a.as_str(), "resolved")]);
    let (_, reports) = delivery.stop(Duration::ZERO).await;
    assert_eq!((reports[0].set_aside, reports[0].dead), (0, 2));
    assert_eq!(receiver.taken().len(), 2, "B's two");
}

/// One incident alone, refused: nothing waits behind it, so it is not
/// set aside; its resolved stays behind it at the head.
#[tokio::test(start_paused = true)]
async fn a_failing_alert_with_nothing_else_waiting_stays_at_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, outbox) = open(dir.path());
    let (receiver, url) = Receiver::start().await;
    let a = alert("a", TransitionKind::Firing);
    receiver.refuse(&a.id, true);
    outbox.append(&a).expect("append");
    let resolved = alert("a", TransitionKind::Resolved);
    outbox.append(&resolved).expect("append");
    let delivery = start(&outbox, &url, Duration::from_secs(24 * 3600));
    tokio::time::sleep(Duration::from_secs(600)).await;
    let reports = delivery.reports();
    assert_eq!((reports[0].set_aside, reports[0].pending), (0, 2));
    assert!(reports[0].retries >= 5, "{reports:?}");
    receiver.refuse(&a.id, false);
    receiver.wait_taken(&a.id, "resolved").await;
    receiver.in_order(&a.id);
    let _ = delivery.stop(Duration::ZERO).await;
}

/// A receiver down for every payload: the first alert is set aside (the
/// sink cannot tell yet), the next stays at the head, retried in order,
/// instead of every incident set aside onto a backoff of its own; once
/// the receiver is back, all arrive, each once.
#[tokio::test(start_paused = true)]
async fn a_receiver_down_for_everything_gets_one_alert_set_aside_at_most() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, outbox) = open(dir.path());
    let (receiver, url) = Receiver::start().await;
    let (a, b) = two_incidents(&outbox, &receiver);
    let c = alert("c", TransitionKind::Firing);
    outbox.append(&c).expect("append");
    for id in [&b, &c.id] {
        receiver.refuse(id, true);
    }
    let delivery = start(&outbox, &url, Duration::from_secs(24 * 3600));
    tokio::time::sleep(Duration::from_secs(1800)).await;
    let reports = delivery.reports();
    assert_eq!(reports[0].set_aside, 1, "A's firing only: {reports:?}");
    assert_eq!(reports[0].pending, 5);
    for id in [&a, &b, &c.id] {
        receiver.refuse(id, false);
    }
    receiver.wait_taken(&c.id, "firing").await;
    receiver.wait_taken(&a, "resolved").await;
    assert!(delivery.drain(Duration::from_secs(60)).await, "drained");
    assert_eq!(
        receiver.taken().len(),
        5,
        "each once: {:?}",
        receiver.taken()
    );
    receiver.in_order(&a);
    receiver.in_order(&b);
    let _ = delivery.stop(Duration::ZERO).await;
}

/// A's firing dies set aside while its resolved waits set aside behind
/// it; the firing is re-queued (`alerts retry`) and the daemon started
/// again with the receiver taking A: the firing goes first. (The set-aside
/// resolved was tried before the re-queued letter, and a receiver that
/// keeps incidents open reopened A for good.)
#[tokio::test(start_paused = true)]
async fn a_requeued_firing_goes_before_its_incident_s_set_aside_resolved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (receiver, url) = Receiver::start().await;
    let horizon = Duration::from_secs(600);
    let a = {
        let (store, outbox) = open(dir.path());
        let (a, b) = two_incidents(&outbox, &receiver);
        let delivery = start(&outbox, &url, horizon);
        receiver.wait_taken(&b, "resolved").await;
        tokio::time::sleep(Duration::from_secs(12 * 60)).await;
        let (_, reports) = delivery.stop(Duration::ZERO).await;
        assert_eq!(
            (reports[0].dead, reports[0].set_aside),
            (1, 1),
            "{reports:?}"
        );
        assert_eq!(outbox.requeue(None, None).expect("requeue"), 1);
        drop(outbox);
        drop(store);
        a
    };
    let (_store, outbox) = open(dir.path());
    receiver.refuse(&a, false);
    let delivery = start(&outbox, &url, horizon);
    receiver.wait_taken(&a, "resolved").await;
    let _ = delivery.stop(Duration::ZERO).await;
    let taken: Vec<String> = receiver
        .taken()
        .into_iter()
        .filter(|(id, _)| *id == a)
        .map(|(_, state)| state)
        .collect();
    assert_eq!(taken, ["firing", "resolved"], "{:?}", receiver.got());
}

/// A's firing dies at the horizon (nothing else waited behind it), is
/// re-queued while the receiver still refuses it, and B (another
/// incident) comes: B goes out within minutes. The re-queued letter was
/// retried at the head, before the outbox, for a whole horizon, and B
/// waited all that time.
#[tokio::test(start_paused = true)]
async fn a_requeued_letter_still_refused_does_not_hold_up_another_incident() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, outbox) = open(dir.path());
    let (receiver, url) = Receiver::start().await;
    let a = alert("a", TransitionKind::Firing);
    receiver.refuse(&a.id, true);
    let delivery = start(&outbox, &url, Duration::from_secs(3600));
    delivery.append(&a).expect("append");
    tokio::time::sleep(Duration::from_secs(3600 + 5 * 60)).await;
    assert_eq!(delivery.reports()[0].dead, 1, "A died at its horizon");
    assert_eq!(outbox.requeue(None, None).expect("requeue"), 1);
    delivery.notify();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let b = alert("b", TransitionKind::Firing);
    delivery.append(&b).expect("append");
    let waited = receiver.wait_taken(&b.id, "firing").await;
    assert!(waited < Duration::from_secs(180), "B waited {waited:?}");
    receiver.refuse(&a.id, false);
    receiver.wait_taken(&a.id, "firing").await;
    assert!(delivery.drain(Duration::from_secs(60)).await, "drained");
    let taken = receiver.taken();
    assert_eq!(taken.len(), 2, "each once: {taken:?}");
    let _ = delivery.stop(Duration::ZERO).await;
}

/// A failing head alert keeps its failures while a re-queued letter of
/// another incident goes out: the letter's delivery dropped the sink's
/// one retry state, which was the head's, and the head started again
/// from its first attempt (a restart then forgot how long it had been
/// failing).
#[tokio::test(start_paused = true)]
async fn a_requeued_letter_leaves_the_head_s_retry_state_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, outbox) = open(dir.path());
    let (receiver, url) = Receiver::start().await;
    let a = alert("a", TransitionKind::Firing);
    let c = alert("c", TransitionKind::Firing);
    receiver.refuse(&a.id, true);
    receiver.refuse(&c.id, true);
    let delivery = start(&outbox, &url, Duration::from_secs(600));
    delivery.append(&a).expect("append");
    tokio::time::sleep(Duration::from_secs(12 * 60)).await;
    assert_eq!(delivery.reports()[0].dead, 1, "A died at its horizon");
    receiver.refuse(&a.id, false);
    delivery.append(&c).expect("append");
    tokio::time::sleep(Duration::from_secs(5 * 60)).await;
    let before = outbox.retry_state("hook").expect("read").expect("C's");
    assert!(before.attempts >= 3, "{before:?}");
    assert_eq!(outbox.requeue(None, None).expect("requeue"), 1);
    delivery.notify();
    receiver.wait_taken(&a.id, "firing").await;
    // C is tried again (backoffs are a minute at most), before its horizon.
    tokio::time::sleep(Duration::from_secs(2 * 60)).await;
    let after = outbox.retry_state("hook").expect("read").expect("C's");
    assert_eq!(after.seq, before.seq);
    assert!(
        after.attempts > before.attempts,
        "{before:?} then {after:?}"
    );
    let _ = delivery.stop(Duration::ZERO).await;
}

/// A re-queued letter that does not read and stays after the sink drops
/// it (here its key is damaged, so the removal finds nothing; a failing
/// store leaves it the same way) is passed over once: the sink found it
/// again at once, in a loop that never waited, holding a runtime worker
/// and counting a dead letter at every pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn an_unreadable_requeued_letter_that_stays_is_passed_over_once() {
    use crate::state::keys::{self, Kind};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = SledStore::open(&dir.path().join("state")).expect("store");
    let mut key = keys::entries(Kind::Requeued, "lines");
    key.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 7]);
    let record = (key.into(), b"not a letter".as_slice().into());
    store.restore_records(&[record]).expect("written");
    let outbox: Outbox = store.outbox();
    let sink = SinkSpec {
        name: "lines".into(),
        formerly: None,
        target: Target::Lines(Some(dir.path().join("alerts.jsonl"))),
        filter: Filter::default(),
        retry: RetryPolicy::default(),
    };
    let clock = Arc::new(TokioClock::starting_at(T0));
    let delivery =
        Delivery::start(vec![sink], outbox.clone(), clock, &Supervisor::new()).expect("starts");
    // The test's own thread is not the runtime's worker: it waits even
    // while the sink spins.
    std::thread::sleep(Duration::from_millis(500));
    let dead = delivery.reports()[0].dead;
    let _ = delivery.stop(Duration::ZERO).await;
    assert_eq!(dead, 1, "passed over once");
}

/// A receiver's pause holds the whole sink, not only the alert it
/// refused: a 429 with `Retry-After: 30` set that alert aside, and the
/// next incident's alert went to the same receiver at once (four within
/// 6 ms after `alerts retry`), into the window it had asked to be left
/// alone in.
#[tokio::test(start_paused = true)]
async fn a_refusal_s_retry_after_pauses_the_whole_sink() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, outbox) = open(dir.path());
    let (receiver, url) = Receiver::start().await;
    let alerts: Vec<Alert> = ["a", "b", "c"]
        .map(|source| alert(source, TransitionKind::Firing))
        .to_vec();
    // Dead letters first (refused past a horizon of an hour), then
    // re-queued, as `alerts retry` does: each due at once.
    for alert in &alerts {
        receiver.refuse(&alert.id, true);
    }
    let delivery = start(&outbox, &url, Duration::from_secs(3600));
    for alert in &alerts {
        delivery.append(alert).expect("append");
    }
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    assert_eq!(delivery.reports()[0].dead, 3, "each died at its horizon");
    for alert in &alerts {
        receiver.refuse(&alert.id, false);
    }
    *receiver.busy.lock().expect("lock") = true;
    let before = receiver.got().len();
    assert_eq!(outbox.requeue(None, None).expect("requeue"), 3);
    delivery.notify();
    tokio::time::sleep(Duration::from_secs(29)).await;
    let sent = &receiver.got()[before..];
    assert_eq!(sent.len(), 1, "one request inside the pause: {sent:?}");
    *receiver.busy.lock().expect("lock") = false;
    for alert in &alerts {
        receiver.wait_taken(&alert.id, "firing").await;
    }
    assert!(delivery.drain(Duration::from_secs(60)).await, "drained");
    let _ = delivery.stop(Duration::ZERO).await;
}
