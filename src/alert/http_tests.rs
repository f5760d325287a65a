//! One POST against local receivers: redirects, timeouts, dripping
//! bodies and secrets echoed back.

use super::*;

/// A redirect's `Location` of 100 KB, not followed, to another host,
/// or followed past the limit: the reason keeps the advice and at most
/// [`ANSWER_CHARS`] characters (the whole redacted URL went into it),
/// and names the `Location`'s origin, none of its path.
#[tokio::test]
async fn a_redirect_s_long_location_is_cut_in_the_reason() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let long_path = "a.b/".repeat(25_000);
    let redirect = move |uri: axum::http::Uri| {
        let path = long_path.clone();
        async move {
            let host = if uri.path().starts_with("/away") {
                "other.example".to_owned()
            } else {
                addr.to_string()
            };
            let location = format!("http://{host}/{path}");
            (
                axum::http::StatusCode::PERMANENT_REDIRECT,
                [(axum::http::header::LOCATION, location)],
            )
        }
    };
    let app = axum::Router::new().fallback(redirect);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let clock = crate::wall::system();
    let alert = format::sample_alert();
    let client = client(Duration::from_secs(5)).expect("client");
    let here = format!("http://{addr};");
    for (path, follow, says, to) in [
        ("hook", false, "redirects are not followed", here.as_str()),
        (
            "away",
            true,
            "only same-host redirects are followed",
            "http://other.example;",
        ),
    ] {
        let mut hook = hook(format!("http://{addr}/{path}"), Format::Json);
        hook.follow_redirects = follow;
        let outgoing = webhook::request(&hook, &alert, None, clock.as_ref()).expect("request");
        let failure = send(&client, &outgoing, clock.as_ref())
            .await
            .expect_err("not delivered");
        let reason = failure.reason();
        assert!(reason.chars().count() <= ANSWER_CHARS, "{reason}");
        assert!(reason.contains(says), "{reason}");
        assert!(reason.contains(to), "the Location's origin: {reason}");
        assert!(!reason.contains("a.b/"), "no path: {reason}");
    }
    server.abort();
}

/// `timeout_secs` bounds the whole request, redirects included: a
/// receiver redirecting to itself after 300 ms, under a 700 ms
/// timeout, was followed through all six hops (each had the whole
/// timeout of its own) and failed only as "more than 5 redirects".
#[tokio::test]
async fn the_timeout_covers_every_redirect_together() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let slow_redirect = move || async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        (
            axum::http::StatusCode::TEMPORARY_REDIRECT,
            [(axum::http::header::LOCATION, format!("http://{addr}/hook"))],
        )
    };
    let app = axum::Router::new().fallback(slow_redirect);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let clock = crate::wall::system();
    let alert = format::sample_alert();
    let client = client(Duration::from_secs(5)).expect("client");
    let mut hook = hook(format!("http://{addr}/hook"), Format::Json);
    hook.follow_redirects = true;
    hook.timeout = Duration::from_millis(700);
    let outgoing = webhook::request(&hook, &alert, None, clock.as_ref()).expect("request");
    let failure = send(&client, &outgoing, clock.as_ref())
        .await
        .expect_err("not delivered");
    let reason = failure.reason();
    assert!(!reason.contains("redirects;"), "{reason}");
    assert!(matches!(failure, Failure::Retry { .. }), "{reason}");
    server.abort();
}

#[test]
fn printable_drops_control_characters_and_bounds_length() {
    assert_eq!(printable(b"bad\x1b[31m request\n"), "bad[31m request");
    assert_eq!(printable(&[b'x'; 5000]).chars().count(), ANSWER_CHARS);
}

use super::super::format::{self, Format};
use super::super::webhook::{self, Webhook};

/// A webhook of `format` to `url`, with a ten-minute timeout.
fn hook(url: String, format: Format) -> Webhook {
    Webhook {
        timeout: Duration::from_secs(600),
        connect_timeout: Duration::from_secs(600),
        ..Webhook::plain(url, format)
    }
}

/// A receiver that answers `head` and the start of a body longer than
/// it says, then holds the connection: a body that never ends.
async fn dripping(head: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 8192];
            let _ = socket.read(&mut request).await;
            let answer = format!("{head}\r\ncontent-length: 1000\r\n\r\nbusy right now");
            let _ = socket.write_all(answer.as_bytes()).await;
            held.push(socket);
        }
    });
    url
}

/// A 2xx whose body never ends is delivered once the body has had
/// [`ANSWER_BODY_WAIT`], and a 503's reason is what arrived by then:
/// both waited out the whole ten-minute request timeout.
#[tokio::test(start_paused = true)]
async fn a_dripping_body_does_not_hold_a_delivery_for_the_timeout() {
    let clock = crate::wall::TokioClock::starting_at(1_800_000_000_000_000);
    let alert = format::sample_alert();
    let client = client(Duration::from_secs(600)).expect("client");
    for (head, delivered) in [("HTTP/1.1 200 OK", true), ("HTTP/1.1 503 Busy", false)] {
        let url = dripping(head).await;
        let outgoing =
            webhook::request(&hook(url, Format::Json), &alert, None, &clock).expect("request");
        let start = tokio::time::Instant::now();
        let sent = send(&client, &outgoing, &clock).await;
        let took = start.elapsed();
        assert!(took < Duration::from_secs(5), "{head}: took {took:?}");
        match sent {
            Ok(answer) => assert!(delivered, "{answer:?}"),
            Err(failure) => {
                assert!(!delivered, "{head}: {failure:?}");
                assert!(failure.reason().contains("busy right now"), "{failure:?}");
            }
        }
    }
}

/// A receiver that echoes what it got (the PagerDuty routing key from
/// the body, the headers, the URL's query) into a refusal: the reason,
/// which is logged and stored with a dead letter, shows `***` where
/// every secret was.
#[tokio::test]
async fn secrets_echoed_by_a_receiver_are_starred() {
    use axum::http::{HeaderMap, StatusCode, Uri};
    let echo = |uri: Uri, headers: HeaderMap, body: String| async move {
        let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let header = |n: &str| {
            let value = headers.get(n).and_then(|v| v.to_str().ok());
            value.unwrap_or_default().to_owned()
        };
        let echoed = format!(
            "bad request: routing_key={} auth={} custom={} signature={} uri={uri}",
            body["routing_key"].as_str().unwrap_or_default(),
            header("authorization"),
            header("x-custom"),
            header(super::super::sign::SIGNATURE_HEADER),
        );
        (StatusCode::BAD_REQUEST, echoed)
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().fallback(echo);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let secrets = [
        "R0utingKey0123456789abcdef",
        "bearer-t0ken-value",
        "custom-value-9",
        "qu3ry-token-value",
    ];
    let mut pagerduty = hook(
        format!("http://{addr}/enqueue?token={}", secrets[3]),
        Format::Pagerduty,
    );
    pagerduty.key = Some(secrets[0].into());
    pagerduty.secret = Some("signing-secret".into());
    pagerduty.headers = vec![
        ("Authorization".into(), format!("Bearer {}", secrets[1])),
        ("X-Custom".into(), secrets[2].into()),
    ];
    let clock = crate::wall::system();
    let alert = format::sample_alert();
    let outgoing = webhook::request(&pagerduty, &alert, None, clock.as_ref()).expect("request");
    let client = client(Duration::from_secs(5)).expect("client");
    let failure = send(&client, &outgoing, clock.as_ref())
        .await
        .expect_err("refused");
    let reason = failure.reason();
    assert!(reason.starts_with("HTTP 400"), "{reason}");
    assert!(reason.contains("routing_key=*** "), "{reason}");
    assert!(reason.contains("signature=*** "), "{reason}");
    for secret in secrets {
        assert!(!reason.contains(secret), "{secret} in {reason}");
    }
    // A hook's secret may be any segment of its path, token-like or not
    // (Zapier's `/hooks/catch/123456/abcdef1/`, Slack's `T…/B…`), and an
    // error page that quotes the path (`Cannot POST /hooks/…`) put it in
    // the reason, the log and the dead letter.
    let paths: [(&str, &[&str]); 3] = [
        ("/hooks/catch/987123/zq7pkx1/", &["987123", "zq7pkx1"]),
        (
            "/services/T0ABC12/B0XYZ34/abcdefghijklmnopqrstuvwx",
            &["T0ABC12", "B0XYZ34", "abcdefghijklmnopqrstuvwx"],
        ),
        // Echoed decoded: `%7E` as `~`.
        ("/hook/s%7Ecret", &["s~cret", "s%7Ecret"]),
    ];
    for (path, hidden) in paths {
        let hook = hook(format!("http://{addr}{path}"), Format::Json);
        let outgoing = webhook::request(&hook, &alert, None, clock.as_ref()).expect("request");
        let failure = send(&client, &outgoing, clock.as_ref())
            .await
            .expect_err("refused");
        let reason = failure.reason();
        assert!(reason.starts_with("HTTP 400"), "{reason}");
        for secret in hidden {
            assert!(!reason.contains(secret), "{secret} in {reason}");
        }
    }
    server.abort();
}
