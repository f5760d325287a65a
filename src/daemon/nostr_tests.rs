//! Where the daemon checks a Nostr note's signature: on its relay's
//! connection task, never on the pipeline's thread, with the same counts
//! by reason and the same de-duplication as before.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::pipeline_thread::{MalformedLog, PipelineThread};
use super::*;
use crate::config::SourceConfig;
use crate::source::nostr::protocol::SUBSCRIPTION;
use crate::source::nostr::tests::{key, signed};
use crate::source::nostr::verify::{self, reject};

/// What the stand-in relay sends: a note, a forged one, a rewritten one,
/// the first note again, a reaction.
fn relay_frames(now_secs: i64) -> Vec<String> {
    let frame =
        |event: &serde_json::Value| serde_json::json!(["EVENT", SUBSCRIPTION, event]).to_string();
    let note = signed(&key("alice"), now_secs, 1, vec![], "is discord down?");
    let mut forged = signed(&key("bob"), now_secs, 1, vec![], "discord down");
    let sig = forged["sig"].as_str().expect("sig").to_owned();
    let last = if sig.ends_with('0') { "1" } else { "0" };
    forged["sig"] = format!("{}{last}", &sig[..127]).into();
    let mut rewritten = signed(&key("carol"), now_secs, 1, vec![], "discord down");
    rewritten["content"] = "discord down (rewritten by the relay)".into();
    let reaction = signed(&key("dave"), now_secs, 7, vec![], "+");
    [&note, &forged, &rewritten, &note, &reaction]
        .into_iter()
        .map(frame)
        .collect()
}

/// A relay at a loopback address sending `frames` after the `REQ`.
async fn stand_in_relay(frames: Vec<String>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        let _req = ws.next().await;
        for frame in frames {
            if ws.send(Message::text(frame)).await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await;
    });
    addr
}

/// The frames a Nostr source's connection hands the pipeline: each note
/// is checked there (on the runtime's workers), and the pipeline's thread
/// (here the test's) counts the forged and the rewritten notes by reason,
/// the repeated note as a duplicate, without checking one signature.
#[test]
fn the_pipeline_thread_checks_no_signature_and_counts_the_failures_by_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now_secs = crate::wall::now_us() / crate::MICROS_PER_SEC;
    let frames = relay_frames(now_secs);
    let sent = frames.len();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut source = SourceConfig::jetstream("n", Vec::new());
    source.kind = crate::source::SourceKind::Nostr;
    let health = Arc::new(SourceHealth::new("n", None));
    let (connections, mut inbound) = runtime.block_on(async {
        let addr = stand_in_relay(frames).await;
        source.urls = vec![format!("ws://{addr}")];
        let connections = source.connections();
        let (tx, mut rx) = mpsc::channel(16);
        let (stop, shutdown) = watch::channel(false);
        let tls = crate::tls::client_config().expect("tls");
        let link = crate::source::Link::new(0, tls, tx, Arc::clone(&health), shutdown);
        let connection = connections[0].clone();
        let task = tokio::spawn(connection.kind.source().run(connection, link));
        let mut inbound = Vec::new();
        while inbound.len() < sent {
            let next = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("handed over in time")
                .expect("a frame");
            inbound.push(next);
        }
        let _ = stop.send(true);
        let _ = task.await;
        (connections, inbound)
    });
    let config = Config {
        sources: vec![source],
        ..Config::default()
    };
    let matcher = Matcher::embedded().expect("built-in patterns");
    let (mut pipeline, _outbox, telemetry) =
        open_pipeline(&config, matcher, &dir.path().join("state")).expect("state");
    let notifier = Arc::new(Notify::new());
    let thread = PipelineThread::new(
        &connections,
        &[Arc::clone(&health)],
        (&notifier, &telemetry),
        Duration::from_secs(10),
    );
    assert!(
        inbound.iter().all(|i| i.checked.is_some()),
        "every note is handed over decoded and checked"
    );
    let mut malformed = MalformedLog::new(1);
    let checked_before = verify::verified_on_this_thread();
    for (n, inbound) in inbound.iter_mut().enumerate() {
        thread
            .frame(&mut pipeline, inbound, n as u64 + 1, &mut malformed)
            .expect("processed");
    }
    assert_eq!(
        verify::verified_on_this_thread() - checked_before,
        0,
        "no signature is checked on the pipeline's thread"
    );
    let stats = pipeline.stats();
    let by_reason = |reasons: &[(&'static str, u64)]| reasons.iter().copied().collect();
    let failures = by_reason(&[(reject::ID_MISMATCH, 1), (reject::SIG_INVALID, 1)]);
    assert_eq!(stats.unverified, failures);
    assert_eq!(stats.by_source["n"].malformed, failures);
    assert_eq!((stats.malformed, malformed.seen), (2, 2));
    assert_eq!((stats.duplicates, stats.by_source["n"].duplicates), (1, 1));
    assert_eq!(stats.by_source["n"].skipped, by_reason(&[("not_posts", 1)]));
    assert_eq!(stats.by_source["n"].frames, sent as u64);
}
