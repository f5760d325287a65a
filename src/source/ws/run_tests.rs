//! How [`run`] waits between connections, against loopback servers: a
//! handshake refused for good (401, 403), one answered with `Retry-After`
//! (429, 503), a Mastodon stream refusing the token in a frame, and a
//! quiet server that answers pings.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// Connects to one URL; every text frame is data.
struct To {
    url: String,
    quiet: bool,
}

impl To {
    /// A stream that is never quiet, as Jetstream's.
    fn busy(url: String) -> To {
        To { url, quiet: false }
    }
}

impl Protocol for To {
    fn connect_url(&mut self, _host: &SourceUrl, _processed: Option<Micros>) -> SourceUrl {
        self.url.clone().into()
    }
    fn quiet(&self) -> bool {
        self.quiet
    }
}

/// A source reading `protocol`'s URL with `settings`, until `stop`.
struct Reading {
    health: Arc<SourceHealth>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    _queue: tokio::sync::mpsc::Receiver<Inbound>,
}

impl Reading {
    fn start(protocol: To, settings: WsSettings) -> Reading {
        let (frames, queue) = tokio::sync::mpsc::channel(16);
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let tls = crate::tls::client_config().expect("tls");
        let health = Arc::new(SourceHealth::new("t", None));
        let link = Link::new(0, tls, frames, Arc::clone(&health), shutdown);
        let task = tokio::spawn(run(
            vec![protocol.url.clone().into()],
            settings,
            protocol,
            link,
        ));
        Reading {
            health,
            stop,
            task,
            _queue: queue,
        }
    }

    async fn stop(self) {
        self.stop.send(true).expect("reader listens");
        self.task.await.expect("reader ends");
    }
}

/// A server answering every handshake with `answer(n)` (the `n`th
/// connection, from 0), a whole HTTP response; and when each came.
async fn answering(
    answer: impl Fn(usize) -> String + Send + 'static,
) -> (String, Arc<Mutex<Vec<Instant>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let came = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let n = {
                let mut came = came.lock().expect("lock");
                came.push(Instant::now());
                came.len() - 1
            };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(answer(n).as_bytes()).await;
        }
    });
    (url, seen)
}

/// Settings that retry within 10 to 50 ms, unless told otherwise.
fn quick() -> WsSettings {
    WsSettings {
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..WsSettings::default()
    }
}

/// A 401 or 403 to the handshake refuses this client for good, as a
/// relay's `auth-required:` does: asked again only after the longest
/// backoff, counted as a refusal, the reason kept. (It was a lost
/// connection, asked again from the shortest backoff: about 12 times in
/// this test's 1.5 s.)
#[tokio::test]
async fn a_handshake_refused_with_401_or_403_waits_the_longest_backoff() {
    for status in ["401 Unauthorized", "403 Forbidden"] {
        let body = "{\"error\":\"no\nway\"}";
        let (url, seen) = answering(move |_| {
            format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        })
        .await;
        let settings = WsSettings {
            backoff_max: Duration::from_secs(30),
            ..quick()
        };
        let reading = Reading::start(To::busy(url), settings);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let health = Arc::clone(&reading.health);
        reading.stop().await;
        assert_eq!(seen.lock().expect("lock").len(), 1, "{status}");
        assert_eq!(health.snapshot().refusals, 1, "{status}");
        let code = &status[..3];
        let why = health.last_failure().expect("a failure");
        assert!(
            why.contains(&format!("HTTP {code}")) && why.contains("no way"),
            "one line, the server's words in it: {why}"
        );
    }
}

/// A 429 or 503 with `Retry-After` (seconds, or an HTTP date) holds the
/// host as long as asked, however short the backoff; one asking for a
/// day is held an hour. (Each was asked again at the backoff, 10 to
/// 50 ms here: a rate-limiting instance asking for an hour was asked
/// about 1,440 times a day.)
#[tokio::test]
async fn a_429_or_503_with_retry_after_is_asked_again_only_when_it_said() {
    // An HTTP date 3 s after the answer: 2 to 3 s, in whole seconds.
    let in_3_secs =
        || httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3));
    /// A status, and the `Retry-After` it comes with.
    type Answer = (&'static str, fn() -> String);
    let retry_afters: [Answer; 2] = [
        ("429 Too Many Requests", || "2".to_owned()),
        ("503 Service Unavailable", in_3_secs),
    ];
    for (status, retry_after) in retry_afters {
        let (url, seen) = answering(move |_| {
            format!(
                "HTTP/1.1 {status}\r\nretry-after: {}\r\ncontent-length: 4\r\n\r\nbusy",
                retry_after()
            )
        })
        .await;
        let reading = Reading::start(To::busy(url), quick());
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(
            seen.lock().expect("lock").len(),
            1,
            "{status}: asked too soon"
        );
        for _ in 0..100 {
            if seen.lock().expect("lock").len() > 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        reading.stop().await;
        let seen = seen.lock().expect("lock");
        assert!(seen.len() > 1, "{status}: never asked again");
        let waited = seen[1] - seen[0];
        assert!(
            waited >= Duration::from_millis(1_500),
            "{status}: {waited:?}"
        );
    }
    // A day asked for is an hour waited.
    let (url, _seen) = answering(|_| {
        "HTTP/1.1 429 Too Many Requests\r\nretry-after: 86400\r\ncontent-length: 0\r\n\r\n".into()
    })
    .await;
    let reading = Reading::start(To::busy(url), quick());
    let health = Arc::clone(&reading.health);
    for _ in 0..100 {
        if health.last_failure().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reading.stop().await;
    let why = health.last_failure().expect("a failure");
    assert_eq!(
        why,
        "the server refused with HTTP 429 (asked to retry after 60 min)"
    );
}

/// A quiet server (Mastodon, Nostr) that answers every ping and sends no
/// data is dropped by the quiet-data watchdog (20 watchdog periods, 1 s
/// here) again and again; each time it had answered for longer than
/// `healthy_after`, so each reconnect comes after the shortest backoff.
/// (Only frames reset the backoff: the waits grew, 0.1, 0.2, 0.4, 0.8,
/// 1.6 s, to the cap, and a Mastodon stream lost what was posted
/// meanwhile.)
#[tokio::test]
async fn a_quiet_connection_that_answers_pings_starts_the_backoff_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    /// When a connection came, and when it ended.
    type Came = (Instant, Option<Instant>);
    let seen: Arc<Mutex<Vec<Came>>> = Arc::default();
    let log = Arc::clone(&seen);
    let server = tokio::spawn(async move {
        use futures_util::StreamExt;
        while let Ok((stream, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let n = {
                    let mut log = log.lock().expect("lock");
                    log.push((Instant::now(), None));
                    log.len() - 1
                };
                // Reading answers the pings; nothing else is sent.
                while let Some(Ok(_)) = ws.next().await {}
                log.lock().expect("lock")[n].1 = Some(Instant::now());
            });
        }
    });
    let settings = WsSettings {
        watchdog: Duration::from_millis(50),
        ping_every: Duration::from_millis(50),
        healthy_after: Duration::from_millis(300),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_secs(30),
        ..WsSettings::default()
    };
    let protocol = To { url, quiet: true };
    let reading = Reading::start(protocol, settings);
    for _ in 0..300 {
        if seen.lock().expect("lock").len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reading.stop().await;
    server.abort();
    let seen = seen.lock().expect("lock");
    assert!(seen.len() >= 6, "{} connections", seen.len());
    for (i, pair) in seen.windows(2).take(5).enumerate() {
        let ended = pair[0].1.expect("ended before the next");
        let waited = pair[1].0 - ended;
        assert!(
            waited < Duration::from_millis(400),
            "wait {} was {waited:?}: the backoff grew",
            i + 1
        );
    }
}

/// A Mastodon stream that says in a frame that the token is refused
/// (`{"error":"Invalid access token","status":401}`, or 403) is refused
/// for good, as a 401 or 403 to the handshake is: counted as a refusal,
/// not a server error, and asked again only after the longest backoff.
/// (It was a server error: the stream went on, and each time the server
/// closed it was asked again from the shortest backoff.)
#[tokio::test]
async fn a_mastodon_error_frame_with_401_or_403_is_a_refusal() {
    use crate::source::mastodon::MastodonProtocol;
    use futures_util::SinkExt;
    for code in [401, 403] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!(
            "ws://{}/api/v1/streaming",
            listener.local_addr().expect("addr")
        );
        let seen = Arc::new(Mutex::new(0usize));
        let came = Arc::clone(&seen);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                *came.lock().expect("lock") += 1;
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    let error = format!(r#"{{"error":"Invalid access token","status":{code}}}"#);
                    let message = tokio_tungstenite::tungstenite::Message::text(error);
                    if ws.send(message).await.is_ok() {
                        // As Mastodon does: the stream is closed after it.
                        let _ = ws.close(None).await;
                    }
                });
            }
        });
        let (frames, _queue) = tokio::sync::mpsc::channel(16);
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let tls = crate::tls::client_config().expect("tls");
        let health = Arc::new(SourceHealth::new("m", None));
        let link = Link::new(0, tls, frames, Arc::clone(&health), shutdown);
        let protocol = MastodonProtocol {
            stream: "public".into(),
            token: Some("t0k".into()),
            discovery: None,
        };
        let settings = WsSettings {
            backoff_max: Duration::from_secs(30),
            ..quick()
        };
        let task = tokio::spawn(run(vec![url.into()], settings, protocol, link));
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        stop.send(true).expect("reader listens");
        task.await.expect("reader ends");
        server.abort();
        let snapshot = health.snapshot();
        assert_eq!(
            *seen.lock().expect("lock"),
            1,
            "{code}: asked again too soon"
        );
        assert_eq!(snapshot.refusals, 1, "{code}: {snapshot:?}");
        assert_eq!(snapshot.server_errors, 0, "{code}: {snapshot:?}");
        // A refusal is a reconnect too (after the longest wait).
        assert_eq!(snapshot.reconnects, 1, "{code}: {snapshot:?}");
        assert_eq!(
            health.last_failure().as_deref(),
            Some(
                format!(
                    "the server refused in the stream with status {code}: Invalid access token"
                )
                .as_str()
            )
        );
    }
}
