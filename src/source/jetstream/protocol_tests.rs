//! The Jetstream protocol's cursors, redirects, refusals and frames, as
//! tables of what a server sends and what the connection asks next.

use super::*;
use crate::MICROS_PER_SEC;
use crate::source::MAX_SEQ;

/// The protocol's URL calls with the URLs as text, for these tables.
trait AsText {
    fn url(&mut self, host: &str, processed: Option<Micros>) -> String;
    fn redirect(&mut self, to: &str);
}

impl AsText for JetstreamProtocol {
    fn url(&mut self, host: &str, processed: Option<Micros>) -> String {
        self.connect_url(&host.into(), processed)
            .secret()
            .to_owned()
    }
    fn redirect(&mut self, to: &str) {
        self.redirected(&to.into());
    }
}

#[test]
fn v1_resumes_by_time_with_an_overlap() {
    let mut p = JetstreamProtocol::v1_plain();
    assert_eq!(
        p.url("wss://h/s", Some(10 * MICROS_PER_SEC)),
        "wss://h/s?wantedCollections=app.bsky.feed.post&cursor=5000000",
        "resumes five seconds before the last processed event"
    );
    assert!(p.headers().is_empty());
}

/// A v1 post frame dated `time_us`.
fn v1_post(time_us: Micros) -> String {
    format!(
        r#"{{"did":"did:plc:a","time_us":{time_us},"kind":"commit","commit":{{"rev":"r","operation":"create","collection":"app.bsky.feed.post","rkey":"k","cid":"c","record":{{"text":"hi","createdAt":"2026-07-04T14:00:00Z"}}}}}}"#
    )
}

/// The first dated event after resuming by time, against the cursor
/// asked for: a gap only past the tolerance, checked once per
/// connection, never on a live-tail connection.
#[test]
fn v1_reports_a_cursor_the_server_clamped_in_silence() {
    let processed = 1_780_000_000 * MICROS_PER_SEC;
    let asked = processed - RESUME_OVERLAP_US;
    let is_gap = |c: &Control| matches!(c, Control::DataAfterGap(_));
    // (first frames after the connection, which of them report a gap)
    let cases: Vec<(Option<Micros>, Vec<String>, Vec<bool>)> = vec![
        // The overlap comes back: nothing lost.
        (
            Some(processed),
            vec![v1_post(asked), v1_post(asked + 1)],
            vec![false, false],
        ),
        // Just within the tolerance.
        (
            Some(processed),
            vec![v1_post(asked + V1_CLAMP_TOLERANCE_US)],
            vec![false],
        ),
        // Past it: the first frame says so, the next does not again.
        (
            Some(processed),
            vec![
                v1_post(asked + V1_CLAMP_TOLERANCE_US + 1),
                v1_post(asked + 2 * V1_CLAMP_TOLERANCE_US),
            ],
            vec![true, false],
        ),
        // An undated or broken first frame waits for the first dated one.
        (
            Some(processed),
            vec![
                "{not json".into(),
                r#"{"kind":"identity"}"#.into(),
                v1_post(asked + 3_600 * MICROS_PER_SEC),
            ],
            vec![false, false, true],
        ),
        // The live tail asks for no cursor: nothing to compare.
        (
            None,
            vec![v1_post(asked + 3_600 * MICROS_PER_SEC)],
            vec![false],
        ),
    ];
    for (processed, frames, want) in cases {
        let mut p = JetstreamProtocol::v1_plain();
        p.url("wss://h/s", processed);
        let got: Vec<bool> = frames.iter().map(|f| is_gap(&p.control(f))).collect();
        assert_eq!(got, want, "{frames:?}");
    }
    // Each connection checks its own first event.
    let mut p = JetstreamProtocol::v1_plain();
    p.url("wss://h/s", Some(processed));
    let late = v1_post(asked + 2 * 3_600 * MICROS_PER_SEC);
    let Control::DataAfterGap(gap) = p.control(&late) else {
        panic!("a gap")
    };
    assert!(gap.contains("2h later"), "{gap}");
    assert!(gap.contains(&crate::wall::rfc3339(asked)), "{gap}");
    assert!(matches!(p.control(&late), Control::Data));
    p.url("wss://h/s", Some(processed));
    assert!(is_gap(&p.control(&late)), "checked again after a reconnect");
}

fn v2() -> JetstreamProtocol {
    JetstreamProtocol::new(JetstreamOptions {
        compress: false,
        ..JetstreamOptions::default()
    })
}

fn event(seq: u64) -> String {
    format!(
        r#"{{"$type":"message","payload":{{"$type":"network.bsky.jetstream.subscribeEvents#commit","seq":{seq},"did":"d","time":"2024-09-09T19:46:02.329308Z","rev":"r","operation":"delete","collection":"app.bsky.feed.post","rkey":"k"}}}}"#
    )
}

#[test]
fn v2_resumes_exactly_by_sequence_on_the_same_host_only() {
    let mut p = v2();
    let t = 1_725_911_162_000_000;
    assert!(!p.url("ws://a", None).contains("cursor"));
    assert_eq!(
        p.headers(),
        vec![("sec-websocket-protocol", "xrpc.v1.json".to_owned())]
    );
    assert_eq!(p.control(&event(41)), Control::Data);
    assert_eq!(p.control(&event(42)), Control::Data);
    assert!(
        p.url("ws://a", Some(t)).ends_with("&cursor=43"),
        "last seq + 1"
    );
    let other = p.url("ws://b", Some(t));
    assert!(
        other.ends_with(&format!("&cursor={}", t - RESUME_OVERLAP_US)),
        "another host's numbers mean nothing here: by time: {other}"
    );
    // Restored from the checkpoint.
    let mut restored = JetstreamProtocol::new(JetstreamOptions {
        compress: false,
        resume: Some(SeqCursor {
            host: "ws://a".into(),
            seq: 99,
        }),
        ..JetstreamOptions::default()
    });
    assert!(restored.url("ws://a", Some(t)).ends_with("&cursor=100"));
}

/// What a redirect's target sends is filed under the target: its
/// numbers are never sent back to the host that redirected, and a
/// refusal of the target's cursor names the cursor its URL asked for.
#[test]
fn a_redirect_target_s_numbers_are_its_own() {
    let t = 1_725_911_162_000_000;
    let mut p = v2();
    p.url("ws://a", None);
    p.control(&event(41));
    p.redirect("ws://b/subscribe?kinds=commit&cursor=42");
    p.control(&event(7));
    let back = p.url("ws://a", Some(t));
    assert!(
        back.ends_with(&format!("&cursor={}", t - RESUME_OVERLAP_US)),
        "the target's seq 7 went back to the host that redirected: {back}"
    );
    p.redirect("ws://b/subscribe?cursor=500");
    let r = p.rejected(
        400,
        br#"{"error":"CursorTooOld","message":"cursor 500 is below the retention floor 900"}"#,
    );
    let gap = r.gap.expect("a gap");
    assert!(gap.contains("400 events (seq 500 to 899)"), "{gap}");
    // The floor is the target's: the configured host resumes by time.
    let again = p.url("ws://a", Some(t));
    assert!(
        again.ends_with(&format!("&cursor={}", t - RESUME_OVERLAP_US)),
        "{again}"
    );
}

/// A sequence number the server would read as a time is never sent
/// back: the connection resumes by time instead.
#[test]
fn a_seq_in_the_times_range_is_never_sent_back() {
    let t = 1_725_911_162_000_000;
    for last in [TIME_CURSOR_MIN as u64 - 1, MAX_SEQ] {
        let mut p = v2();
        p.url("ws://a", None);
        p.control(&event(41));
        p.control(&event(last));
        let url = p.url("ws://a", Some(t));
        assert!(
            url.ends_with(&format!("&cursor={}", t - RESUME_OVERLAP_US)),
            "{last}: {url}"
        );
    }
    let mut p = v2();
    p.url("ws://a", None);
    p.control(&event(TIME_CURSOR_MIN as u64 - 2));
    let url = p.url("ws://a", Some(t));
    assert!(
        url.ends_with(&format!("&cursor={}", TIME_CURSOR_MIN - 1)),
        "{url}"
    );
}

#[test]
fn cursor_too_old_resumes_from_the_floor_and_reports_the_gap() {
    let mut p = JetstreamProtocol::new(JetstreamOptions {
        compress: false,
        resume: Some(SeqCursor {
            host: "ws://a".into(),
            seq: 999,
        }),
        ..JetstreamOptions::default()
    });
    assert!(p.url("ws://a", None).ends_with("cursor=1000"));
    let r = p.rejected(
        400,
        br#"{"error":"CursorTooOld","message":"cursor 1000 is below the retention floor 1500"}"#,
    );
    let gap = r.gap.expect("a gap");
    assert!(
        gap.contains("500 events (seq 1000 to 1499) were lost"),
        "{gap}"
    );
    assert!(p.url("ws://a", None).ends_with("cursor=1500"));
    // Once frames flow, the usual cursor takes over.
    p.control(&event(1600));
    assert!(p.url("ws://a", None).ends_with("cursor=1601"));
    // No floor named: live tail, an unknown loss.
    let r = p.rejected(400, br#"{"error":"CursorTooOld","message":"too old"}"#);
    assert!(r.gap.expect("gap").contains("unknown number"));
    assert!(!p.url("ws://a", None).contains("cursor"));
    let r = p.rejected(503, b"<html>busy</html>");
    assert_eq!(r.gap, None);
    assert!(r.reason.contains("503"));
}

#[test]
fn server_frames_are_classified() {
    let mut p = v2();
    assert!(matches!(
        p.control(r#"{"$type":"error","error":"ConsumerTooSlow","message":"reading too slowly"}"#),
        Control::Reconnect(r) if r.contains("ConsumerTooSlow")
    ));
    assert!(matches!(
        p.control(r#"{"$type":"message","payload":{"$type":"network.bsky.jetstream.subscribeEvents#info","name":"OutdatedCursor","message":"resumed from seq 5"}}"#),
        Control::Gap(g) if g.contains("resumed from seq 5")
    ));
    let mut v1 = JetstreamProtocol::v1_plain();
    assert_eq!(v1.control(r#"{"$type":"error"}"#), Control::Data);
}

#[test]
fn binary_frames_need_a_dictionary_and_stay_within_limits() {
    let mut p = JetstreamProtocol::new(JetstreamOptions {
        wire: Wire::V1,
        compress: true,
        ..JetstreamOptions::default()
    });
    let settings = WsSettings::default();
    assert!(matches!(
        p.binary(b"xyz", &settings),
        BinaryFrame::Unusable(_)
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(p.prepare(&"ws://h/subscribe".into()))
        .expect("nothing to fetch");
    let url = p.url("ws://h/subscribe", None);
    assert!(url.ends_with("&compress=true"), "{url}");
    let text = r#"{"did":"d","time_us":1,"kind":"account"}"#;
    let frame = zstd::bulk::Compressor::with_dictionary(3, compression::V1_DICTIONARY)
        .expect("compressor")
        .compress(text.as_bytes())
        .expect("compress");
    assert_eq!(p.binary(&frame, &settings), BinaryFrame::Text(text.into()));
    let tight = WsSettings {
        max_frame_bytes: 10,
        ..WsSettings::default()
    };
    assert!(matches!(
        p.binary(&frame, &tight),
        BinaryFrame::Oversized(_)
    ));
}
