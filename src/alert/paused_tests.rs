//! Delivery against in-process receivers on paused tokio time: the waits a
//! receiver asks for (`Retry-After`, a JSON `retry_after`) pass in an
//! instant and are measured on tokio's clock, and the sink reads the
//! receiver's dates on its own wall clock (a [`TokioClock`]), so these
//! tests wait for nothing in real time and come out the same every run.
//!
//! The receivers run on the test's own runtime: a request on loopback is
//! readable as soon as it is written, so tokio never auto-advances the
//! clock while a request is in flight.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::Alert;
use super::deliver::{Delivery, Filter, RetryPolicy, SinkSpec, Target, Webhook};
use super::format::Format;
use crate::Micros;
use crate::detect::TransitionKind;
use crate::wall::{Clock, SharedClock, TokioClock};

/// 2027-01-15T08:00:00Z: not the machine's date, so a sink that read the
/// system clock instead of its own would wait another time.
const T0: Micros = 1_800_000_000_000_000;

/// One scripted answer: status, headers and body.
type Scripted = (u16, Vec<(&'static str, String)>, &'static str);

/// A webhook receiver that answers from its script, then 200, and
/// remembers when (on tokio's clock) each request came and its headers.
#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<VecDeque<Scripted>>>,
    got: Arc<Mutex<Vec<(Instant, HeaderMap)>>>,
}

async fn answer(State(receiver): State<Receiver>, headers: HeaderMap) -> Response {
    receiver
        .got
        .lock()
        .expect("lock")
        .push((Instant::now(), headers));
    let next = receiver.script.lock().expect("lock").pop_front();
    let (status, headers, body) = next.unwrap_or((200, Vec::new(), ""));
    let status = StatusCode::from_u16(status).expect("status");
    let mut response = (status, body).into_response();
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

/// Serves `app` on a free loopback port, on the current runtime: the
/// URL of its `/hook` (the alert tests' receivers).
pub(super) async fn serve_on_loopback(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

impl Receiver {
    /// Serves on a loopback port, on the current runtime; returns the URL.
    async fn start(script: Vec<Scripted>) -> (Receiver, String) {
        let receiver = Receiver {
            script: Arc::new(Mutex::new(script.into())),
            got: Arc::default(),
        };
        let app = Router::new().fallback(answer).with_state(receiver.clone());
        (receiver, serve_on_loopback(app).await)
    }

    fn times(&self) -> Vec<Instant> {
        let got = self.got.lock().expect("lock");
        got.iter().map(|(at, _)| *at).collect()
    }

    fn keys(&self) -> Vec<String> {
        let got = self.got.lock().expect("lock");
        got.iter()
            .filter_map(|(_, h)| h.get("idempotency-key")?.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// Waits (on tokio's clock, so at once) until `n` requests came.
    async fn wait_for(&self, n: usize) {
        for _ in 0..7200 {
            if self.times().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("{} requests in two hours, not {n}", self.times().len());
    }
}

/// A JSON webhook sink to `url`; timeouts far beyond the waits tested.
fn sink(name: &str, url: String) -> SinkSpec {
    let hook = Webhook {
        timeout: Duration::from_secs(600),
        connect_timeout: Duration::from_secs(600),
        ..Webhook::plain(url, Format::Json)
    };
    SinkSpec {
        name: name.into(),
        formerly: None,
        target: Target::Webhook(hook),
        filter: Filter::default(),
        retry: RetryPolicy::default(),
    }
}

fn alert(source: &str) -> Alert {
    let firing = TransitionKind::Firing;
    Alert::source_health(source, firing, T0, T0, "silent".into())
}

/// Delivery of `sinks` from a fresh outbox, on a wall clock at [`T0`]
/// that moves with tokio's time.
fn start(sinks: Vec<SinkSpec>) -> (Delivery, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = crate::state::SledStore::open(dir.path())
        .expect("store")
        .outbox();
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let delivery = Delivery::start(sinks, outbox, clock, &crate::supervise::Supervisor::new())
        .expect("starts");
    (delivery, dir)
}

/// A 503 whose `Retry-After` is a date 90 s ahead on the sink's clock:
/// the retry comes 90 s later (tokio time), with the same idempotency
/// key. (Read on the system clock, that date would be weeks away or
/// past: a wait of the one-hour cap, or of the backoff's second.)
#[tokio::test(start_paused = true)]
async fn a_retry_after_date_is_read_on_the_sinks_clock() {
    let ahead = TokioClock::starting_at(T0).now_utc() + chrono::Duration::seconds(90);
    let date = ahead.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let script = vec![(503, vec![("retry-after", date)], "busy")];
    let (receiver, url) = Receiver::start(script).await;
    let (delivery, _dir) = start(vec![sink("hook", url)]);
    delivery.append(&alert("bluesky")).expect("appended");
    receiver.wait_for(2).await;
    let times = receiver.times();
    let waited = times[1] - times[0];
    assert!(
        waited >= Duration::from_secs(89) && waited < Duration::from_secs(95),
        "waited {waited:?} for a date 90 s ahead"
    );
    let keys = receiver.keys();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1], "one key for every try of an alert");
    let (_, reports) = delivery.stop(Duration::from_secs(5)).await;
    assert_eq!((reports[0].delivered, reports[0].retries), (1, 1));
}

/// Discord's way of rate limiting, a 429 with the wait only in the JSON
/// body: that sink waits the 3.5 s asked, while another sink delivers
/// everything meanwhile.
#[tokio::test(start_paused = true)]
async fn one_sinks_rate_limit_never_delays_another() {
    let body = r#"{"message": "You are being rate limited.", "retry_after": 3.5, "global": false}"#;
    let (limited, limited_url) = Receiver::start(vec![(429, Vec::new(), body)]).await;
    let (free, free_url) = Receiver::start(Vec::new()).await;
    let sinks = vec![sink("limited", limited_url), sink("free", free_url)];
    let (delivery, _dir) = start(sinks);
    for source in ["a", "b", "c"] {
        delivery.append(&alert(source)).expect("appended");
    }
    limited.wait_for(4).await;
    free.wait_for(3).await;
    let tries = limited.times();
    assert_eq!(tries.len(), 4, "one 429, then three deliveries");
    let waited = tries[1] - tries[0];
    assert!(
        waited >= Duration::from_millis(3500) && waited < Duration::from_secs(5),
        "waited {waited:?} of the 3.5 s asked"
    );
    let other = free.times();
    assert_eq!(other.len(), 3);
    assert!(other[2] < tries[1], "the other sink delivered meanwhile");
    let (drained, _) = delivery.stop(Duration::from_secs(5)).await;
    assert!(drained);
}

/// A 429 as Discord answers an unversioned webhook URL (API before v8):
/// `Retry-After` and the body's `retry_after` in milliseconds, the
/// bucket's reset in seconds. The sink retries after the 7 s of the
/// reset; it read 6457 s, capped at an hour.
#[tokio::test(start_paused = true)]
async fn a_discord_429_in_milliseconds_waits_the_bucket_s_reset() {
    let headers = vec![
        ("retry-after", "6457".to_owned()),
        ("x-ratelimit-remaining", "0".to_owned()),
        ("x-ratelimit-reset-after", "7".to_owned()),
    ];
    let body =
        r#"{"message": "You are being rate limited.", "retry_after": 6457, "global": false}"#;
    let (receiver, url) = Receiver::start(vec![(429, headers, body)]).await;
    let (delivery, _dir) = start(vec![sink("hook", url)]);
    delivery.append(&alert("discord")).expect("appended");
    receiver.wait_for(2).await;
    let times = receiver.times();
    let waited = times[1] - times[0];
    assert!(
        waited >= Duration::from_secs(7) && waited <= Duration::from_secs(10),
        "waited {waited:?}"
    );
    delivery.stop(Duration::ZERO).await;
}

/// An Alertmanager sink to `url`, re-posting every [`Webhook::REPEAT`].
fn alertmanager(url: String) -> SinkSpec {
    let mut spec = sink("am", url);
    if let Target::Webhook(hook) = &mut spec.target {
        hook.format = Format::Alertmanager;
    }
    spec
}

/// The times of the re-posts a receiver got, and every key it got.
fn reposts(receiver: &Receiver) -> (Vec<Instant>, Vec<String>) {
    let got = receiver.got.lock().expect("lock");
    let key = |h: &HeaderMap| {
        let value = h.get("idempotency-key").and_then(|v| v.to_str().ok());
        value.unwrap_or_default().to_owned()
    };
    let times = got
        .iter()
        .filter(|(_, h)| key(h).contains(":repost:"))
        .map(|(at, _)| *at)
        .collect();
    (times, got.iter().map(|(_, h)| key(h)).collect())
}

/// Alert `a` is delivered, then the sink waits an hour before `b` (the
/// receiver's `script` says why): the open alert is re-posted every
/// minute meanwhile, each re-post with a key of its own. Waiting in
/// silence, it passed its `endsAt` (four minutes) and Alertmanager
/// resolved an outage still going on; and a re-post carrying `a`'s
/// delivered key was dropped by a receiver that drops duplicates.
async fn reposts_go_on_while_the_sink_waits(script: Vec<Scripted>) {
    let (receiver, url) = Receiver::start(script).await;
    let (delivery, _dir) = start(vec![alertmanager(url)]);
    let start = Instant::now();
    delivery.append(&alert("a")).expect("appended");
    receiver.wait_for(1).await;
    delivery.append(&alert("b")).expect("appended");
    tokio::time::sleep_until(start + Duration::from_secs(10 * 60 + 30)).await;
    let (times, keys) = reposts(&receiver);
    assert!(
        times.len() >= 9,
        "{} re-posts in 10 min: {keys:?}",
        times.len()
    );
    let mut last = start;
    for at in &times {
        assert!(
            *at - last <= Duration::from_secs(61),
            "a gap of {:?}",
            *at - last
        );
        last = *at;
    }
    let delivered = &keys[0];
    let repost_keys: Vec<&String> = keys.iter().filter(|k| k.contains(":repost:")).collect();
    assert!(repost_keys.iter().all(|k| *k != delivered));
    let distinct: std::collections::HashSet<&&String> = repost_keys.iter().collect();
    assert_eq!(distinct.len(), repost_keys.len(), "one key per re-post");
    assert!(delivery.reports()[0].delivered == 1, "b still waits");
    delivery.stop(Duration::ZERO).await;
}

#[tokio::test(start_paused = true)]
async fn reposts_go_on_through_a_rate_limit_pause() {
    let used_up = vec![
        ("x-ratelimit-remaining", "0".to_owned()),
        ("x-ratelimit-reset-after", "3600".to_owned()),
    ];
    reposts_go_on_while_the_sink_waits(vec![(200, used_up, "")]).await;
}

#[tokio::test(start_paused = true)]
async fn reposts_go_on_through_a_retry_wait() {
    let later = vec![("retry-after", "3600".to_owned())];
    reposts_go_on_while_the_sink_waits(vec![(200, Vec::new(), ""), (429, later, "slow down")])
        .await;
}

/// A sink that starts with open alerts re-posts them at once: after a
/// stop of more than three periods they were past their `endsAt` before
/// the first re-post, a period after the start.
#[tokio::test(start_paused = true)]
async fn open_alerts_are_reposted_at_the_start() {
    let (receiver, url) = Receiver::start(Vec::new()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = crate::state::SledStore::open(dir.path())
        .expect("store")
        .outbox();
    let open = alert("a");
    outbox.set_open_alert("am", &open.id, &open).expect("saved");
    let clock: SharedClock = Arc::new(TokioClock::starting_at(T0));
    let supervisor = crate::supervise::Supervisor::new();
    let start = Instant::now();
    let delivery =
        Delivery::start(vec![alertmanager(url)], outbox, clock, &supervisor).expect("starts");
    receiver.wait_for(1).await;
    let (times, _) = reposts(&receiver);
    assert_eq!(times.len(), 1);
    assert!(
        times[0] - start < Duration::from_secs(1),
        "{:?}",
        times[0] - start
    );
    delivery.stop(Duration::ZERO).await;
}
