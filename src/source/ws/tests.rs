//! The reader's connections: redirects and the credentials they may
//! carry, a failed preparation, a server that never reads, the byte
//! budget of frames in flight, a text frame that is not UTF-8.

use std::sync::Arc;

use super::*;

/// Which hops are followed, and whether the source's credentials may go
/// to where the chain ends.
#[test]
fn credentials_follow_a_redirect_only_within_its_origin() {
    let health = SourceHealth::new("t", None);
    /// Hops as (from, `Location`).
    type Hops<'a> = &'a [(&'a str, &'a str)];
    // (hops, followed, may send credentials)
    let cases: [(Hops, bool, bool); 7] = [
        (&[("wss://a.example/s", "/elsewhere")], true, true),
        (
            &[("wss://a.example/s", "wss://a.example:443/t")],
            true,
            true,
        ),
        (&[("wss://a.example/s", "wss://b.example/s")], true, false),
        (
            &[("ws://a.example/s", "ws://a.example:8080/s")],
            true,
            false,
        ),
        // An upgrade to TLS is followed, but it is another origin.
        (&[("ws://a.example/s", "wss://a.example/s")], true, false),
        // Away and back: the hop that left decides.
        (
            &[
                ("wss://a.example/s", "wss://b.example/s"),
                ("wss://b.example/s", "wss://a.example/s"),
            ],
            true,
            false,
        ),
        (&[("wss://a.example/s", "ws://a.example/s")], false, false),
    ];
    for (hops, followed, credentials) in cases {
        let mut redirect = Redirect::default();
        let mut last = false;
        for (from, location) in hops {
            last = redirect.follow(&(*from).into(), &(*location).into(), &health);
        }
        assert_eq!(last, followed, "{hops:?}");
        if followed {
            assert_eq!(redirect.same_origin, credentials, "{hops:?}");
        }
    }
}

/// Every text frame is data, from the one URL.
struct Plain(SourceUrl);

impl Protocol for Plain {
    fn connect_url(&mut self, _host: &SourceUrl, _processed: Option<Micros>) -> SourceUrl {
        self.0.clone()
    }
}

/// Connects to each host as given; its second preparation fails.
struct FailsSecondPreparation(usize);

impl Protocol for FailsSecondPreparation {
    fn connect_url(&mut self, host: &SourceUrl, _processed: Option<Micros>) -> SourceUrl {
        host.clone()
    }
    fn prepare<'a>(&'a mut self, _host: &'a SourceUrl) -> Prepare<'a> {
        self.0 += 1;
        let result = if self.0 == 2 {
            Err(SourceError::NoData(std::time::Duration::ZERO))
        } else {
            Ok(())
        };
        Box::pin(std::future::ready(result))
    }
}

/// A redirect is followed by the attempt right after it or not at all:
/// when that attempt's preparation fails, the next host is connected to
/// itself, not to the first host's redirect target.
#[tokio::test]
async fn a_redirect_does_not_outlive_a_failed_preparation() {
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let (first, target, second) = (
        bind().await.expect("bind"),
        bind().await.expect("bind"),
        bind().await.expect("bind"),
    );
    let url = |l: &tokio::net::TcpListener| format!("ws://{}/", l.local_addr().expect("addr"));
    let (first_url, target_url, second_url) = (url(&first), url(&target), url(&second));
    let redirecting = redirects(first, target_url.clone());
    let targeted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&targeted);
    let target_server = tokio::spawn(async move {
        while target.accept().await.is_ok() {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let (reached, mut reached_rx) = tokio::sync::mpsc::channel(1);
    let second_server = tokio::spawn(async move {
        let (stream, _) = second.accept().await.expect("accept");
        let _ws = tokio_tungstenite::accept_async(stream)
            .await
            .expect("handshake");
        let _ = reached.send(()).await;
        std::future::pending::<()>().await;
    });
    let (frames, _queue) = tokio::sync::mpsc::channel(16);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let tls = crate::tls::client_config().expect("tls");
    let link = Link::new(
        0,
        tls,
        frames,
        Arc::new(SourceHealth::new("t", None)),
        shutdown,
    );
    let settings = WsSettings {
        backoff_min: std::time::Duration::from_millis(10),
        ..WsSettings::default()
    };
    let reader = tokio::spawn(run(
        vec![first_url.into(), second_url.into()],
        settings,
        FailsSecondPreparation(0),
        link,
    ));
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), reached_rx.recv()).await;
    stop.send(true).expect("reader listens");
    let _ = reader.await;
    for server in [redirecting, target_server, second_server] {
        server.abort();
    }
    assert!(got.is_ok(), "the second host was never connected to");
    assert_eq!(
        targeted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the first host's redirect target was connected to"
    );
}

/// Answers every request on `listener` with a redirect to `location`.
fn redirects(listener: tokio::net::TcpListener, location: String) -> tokio::task::JoinHandle<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let answer =
                format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\ncontent-length: 0\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    })
}

/// What a redirect's target sends is handed over as read from the target
/// (its URL without the query the redirect gave it), not from the host
/// that redirected: a sequence number means something only on the
/// server that issued it, and filed under the redirecting host, a second
/// target's lower numbers were dropped as repeats of the first's.
#[tokio::test]
async fn a_redirect_target_s_frames_are_handed_over_as_its_own() {
    use futures_util::SinkExt;
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let (first, target) = (bind().await.expect("bind"), bind().await.expect("bind"));
    let first_url = format!("ws://{}/subscribe", first.local_addr().expect("addr"));
    let target_server = format!("ws://{}/subscribe", target.local_addr().expect("addr"));
    let redirecting = redirects(first, format!("{target_server}?cursor=5#x"));
    let target_task = tokio::spawn(async move {
        let (stream, _) = target.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(stream)
            .await
            .expect("handshake");
        let _ = ws
            .send(tokio_tungstenite::tungstenite::Message::text("{}"))
            .await;
        std::future::pending::<()>().await;
    });
    let (frames, mut queue) = tokio::sync::mpsc::channel(16);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let tls = crate::tls::client_config().expect("tls");
    let health = Arc::new(SourceHealth::new("t", None));
    let link = Link::new(0, tls, frames, health, shutdown);
    let first_url = SourceUrl::from(first_url);
    let reader = tokio::spawn(run(
        vec![first_url.clone()],
        WsSettings::default(),
        Plain(first_url.clone()),
        link,
    ));
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), queue.recv()).await;
    stop.send(true).expect("reader listens");
    let _ = reader.await;
    redirecting.abort();
    target_task.abort();
    let inbound = got.expect("a frame within 10 s").expect("a frame");
    assert_eq!(inbound.frame, "{}");
    assert_eq!(inbound.host.secret(), target_server);
}

/// A server that sends pings and never reads: the pongs queued for it
/// are bounded, our own ping gives up, and the shutdown signal is
/// heard. A write without a bound waited for ever, and with it the
/// watchdog and the shutdown.
#[tokio::test]
async fn a_server_that_never_reads_cannot_hold_the_source() {
    use std::time::Duration;
    // Long enough for the socket's buffers to fill and a ping to be due.
    let ended =
        stopped_beside_a_server_that_never_reads(Duration::from_secs(2), Duration::from_secs(5))
            .await;
    assert!(
        ended.is_some_and(|after| after < Duration::from_secs(5)),
        "the source never heard the shutdown: {ended:?}"
    );
}

/// The shutdown is heard while a ping waits on a server that never reads:
/// the ping's send waited out its whole limit (`ping_secs`, up to an
/// hour), and the daemon's shutdown with it, past its grace, until the
/// stall watchdog exited 1 without draining the pipeline.
#[tokio::test]
async fn a_ping_waiting_on_a_server_that_never_reads_does_not_hold_the_shutdown() {
    use std::time::Duration;
    // The ping due at 6 s waits on full buffers when the stop comes.
    let ended =
        stopped_beside_a_server_that_never_reads(Duration::from_secs(6), Duration::from_secs(7))
            .await;
    assert!(
        ended.is_some_and(|after| after < Duration::from_secs(2)),
        "the shutdown waited for the ping: {ended:?}"
    );
}

/// Reads from a server that floods pings and never reads, pinging every
/// `ping_every`; signals the shutdown after `stop_after`; how long the
/// source took to end after the signal (`None`: not within 10 s).
async fn stopped_beside_a_server_that_never_reads(
    ping_every: std::time::Duration,
    stop_after: std::time::Duration,
) -> Option<std::time::Duration> {
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = SourceUrl::from(format!("ws://{}/", listener.local_addr().expect("addr")));
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(stream)
            .await
            .expect("handshake");
        // Unmasked ping frames of 125 bytes, written straight to the
        // socket; nothing is ever read back.
        let mut ping = vec![0x89u8, 125];
        ping.extend([b'p'; 125]);
        let burst = ping.repeat(1000);
        loop {
            if ws.get_mut().write_all(&burst).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let (frames, _queue) = tokio::sync::mpsc::channel(16);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let tls = crate::tls::client_config().expect("tls");
    let health = Arc::new(SourceHealth::new("t", None));
    let link = Link::new(0, tls, frames, health, shutdown);
    let settings = WsSettings {
        ping_every,
        watchdog: Duration::from_secs(60),
        ..WsSettings::default()
    };
    let reader = tokio::spawn(run(vec![url.clone()], settings, Plain(url), link));
    tokio::time::sleep(stop_after).await;
    stop.send(true).expect("reader listens");
    let stopped = tokio::time::Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), reader).await;
    server.abort();
    ended.ok().map(|_| stopped.elapsed())
}

/// A server sending forty frames of 100 kB to a pipeline that reads
/// none: the frames in flight stay within the byte budget (2 of them
/// in 250 kB), where the channel alone would hold all forty.
#[tokio::test]
async fn frames_in_flight_stay_within_the_byte_budget() {
    use futures_util::SinkExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = SourceUrl::from(format!("ws://{}/", listener.local_addr().expect("addr")));
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(stream)
            .await
            .expect("handshake");
        let frame = "x".repeat(100_000);
        for _ in 0..40 {
            let message = tokio_tungstenite::tungstenite::Message::text(frame.clone());
            if ws.send(message).await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await;
    });
    let (frames, mut queue) = tokio::sync::mpsc::channel(4096);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let tls = crate::tls::client_config().expect("tls");
    let health = Arc::new(SourceHealth::new("t", None));
    let mut link = Link::new(0, tls, frames, health, shutdown);
    link.budget = FrameBudget::new(250_000);
    let budget = link.budget.clone();
    let reader = tokio::spawn(run(
        vec![url.clone()],
        WsSettings::default(),
        Plain(url),
        link,
    ));
    // Wait until the budget is full (or give up after 10 s).
    for _ in 0..200 {
        if queue.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(queue.len(), 2, "two frames of 100 kB in a 250 kB budget");
    // The third frame waits with the last 50 kB set aside for it.
    assert_eq!(budget.in_flight(), 250_000);
    // Reading one frees its share: one more comes in.
    let first = queue.recv().await.expect("a frame");
    assert_eq!(first.frame.len(), 100_000);
    drop(first);
    for _ in 0..200 {
        if queue.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(queue.len(), 2);
    stop.send(true).expect("reader listens");
    reader.await.expect("reader ends");
    server.abort();
}

/// A text frame that is not UTF-8 (here `0xff 0xfe`) fails the
/// connection, as RFC 6455 requires (a close with code 1007, then a
/// reconnect), and is no longer only a reconnect: the frame is counted as
/// received and handed to the pipeline as a malformed frame, with why.
#[tokio::test]
async fn a_text_frame_that_is_not_utf8_is_a_malformed_frame_and_fails_the_connection() {
    use futures_util::StreamExt;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = SourceUrl::from(format!("ws://{}/", listener.local_addr().expect("addr")));
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(stream)
            .await
            .expect("handshake");
        // FIN and text, unmasked (server to client), two bytes of payload
        // that are no UTF-8: written straight to the socket, as the
        // library would refuse to send them.
        ws.get_mut()
            .write_all(&[0x81, 0x02, 0xff, 0xfe])
            .await
            .expect("write");
        // What the client answered before it went.
        let mut close = None;
        while let Some(Ok(message)) = ws.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(frame) = message {
                close = frame.map(|f| f.code);
                break;
            }
        }
        let _ = closed_tx.send(close);
        std::future::pending::<()>().await;
    });
    let (frames, mut queue) = tokio::sync::mpsc::channel(16);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let tls = crate::tls::client_config().expect("tls");
    let health = Arc::new(SourceHealth::new("t", None));
    let link = Link::new(0, tls, frames, Arc::clone(&health), shutdown);
    let reader = tokio::spawn(run(
        vec![url.clone()],
        WsSettings::default(),
        Plain(url),
        link,
    ));
    let inbound = tokio::time::timeout(Duration::from_secs(10), queue.recv())
        .await
        .expect("handed over in time")
        .expect("a frame");
    assert!(!inbound.tick);
    assert!(inbound.frame.is_empty(), "{:?}", inbound.frame);
    let error = inbound.rejected.clone().expect("rejected");
    assert_eq!(error.reason(), "invalid_utf8");
    assert!(
        error
            .to_string()
            .starts_with("invalid UTF-8 in a text frame ("),
        "{error}"
    );
    let close = tokio::time::timeout(Duration::from_secs(10), closed_rx)
        .await
        .expect("closed in time")
        .expect("server saw it");
    assert_eq!(close, Some(CloseCode::Invalid), "close code 1007");
    // The session ended as lost (a reconnect), saying why.
    for _ in 0..100 {
        if health.snapshot().reconnects > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let snapshot = health.snapshot();
    assert_eq!(snapshot.reconnects, 1, "{snapshot:?}");
    assert_eq!(snapshot.frames, 1, "counted as received");
    assert_eq!(health.last_failure(), Some(error.to_string()));
    stop.send(true).expect("reader listens");
    let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    server.abort();
}
