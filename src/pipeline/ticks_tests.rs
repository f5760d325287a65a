//! Time passing at a source dated by arrival (Mastodon, Nostr): its
//! watermark moves with every arrival and tick, not only with its posts,
//! so buckets close and alerts fire however quiet the stream turns.

use super::test_support::*;
use super::*;
use crate::source::SourceKind;

/// How `kind`'s frames (or ticks) arriving at `at` seconds reach the pipeline.
fn arriving(kind: SourceKind, at: i64) -> Received<'static> {
    Received {
        kind,
        host: None,
        instance: "social.example",
        arrival_us: Some(START + at * S),
        stored_since: None,
    }
}

/// Twenty minutes of chatter on a Mastodon instance (a status every 5 s,
/// five accounts), then 15 people on 15 servers asking whether Discord is
/// down within 5 s, then nothing: the frames with their arrival second.
fn surge_then_quiet() -> Vec<(i64, String)> {
    let mut frames = Vec::new();
    for t in (0..1200).step_by(5) {
        let acct = format!("user{}@social.example", t % 25 / 5);
        let text = "lunch was good";
        frames.push((
            t,
            mastodon_status(&format!("c{t}"), &acct, START + t * S, text),
        ));
    }
    for i in 0..15 {
        let acct = format!("user@host{i}.net");
        // Each in words of their own: copies of one text count thrice.
        let text = format!("is discord down? it won't load for me ({i} tries)");
        frames.push((
            1201,
            mastodon_status(&format!("r{i}"), &acct, START + 1201 * S, &text),
        ));
    }
    frames
}

/// The frames of [`surge_then_quiet`] through a pipeline, then `ticks`
/// (arrival seconds) with nothing else; the firing alerts raised, with the
/// second each came at (`None`: by a frame).
fn run(kind: SourceKind, ticks: &[i64]) -> Vec<(Option<i64>, crate::alert::Alert)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = open(dir.path(), &PipelineConfig::new());
    let mut fired = Vec::new();
    for (n, (at, frame)) in surge_then_quiet().iter().enumerate() {
        let emitted = p
            .process_frame(
                "social",
                n as u64,
                frame.as_bytes(),
                &arriving(SourceKind::Mastodon, *at),
            )
            .expect("process");
        fired.extend(emitted.into_iter().map(|e| (None, e.alert)));
    }
    for &at in ticks {
        let emitted = p.time_passed("social", &arriving(kind, at)).expect("tick");
        fired.extend(emitted.into_iter().map(|e| (Some(at), e.alert)));
    }
    fired.retain(|(_, alert)| alert.state == crate::detect::TransitionKind::Firing);
    fired
}

#[test]
fn a_surge_followed_by_quiet_fires_as_time_passes() {
    let every_2s: Vec<i64> = (1203..1300).step_by(2).collect();
    let fired = run(SourceKind::Mastodon, &every_2s);
    let Some((Some(at), alert)) = fired.first() else {
        panic!("no alert while the stream was quiet: {fired:?}");
    };
    assert_eq!(alert.service, "discord");
    // The reports' bucket (1200–1210) closes once the watermark passes its
    // end and the 5 s lateness.
    assert!((1215..=1217).contains(at), "fired at {at} s");
    // Before, only a post moved the watermark: nothing fired until the
    // next status came, however long that took.
    assert!(run(SourceKind::Mastodon, &[]).is_empty());
}

/// Time passing says nothing of a source dated by its server (a Jetstream
/// may still deliver older events from its cursor), nor during a stored
/// range (a relay's catch-up, dated before its arrival).
#[test]
fn time_passes_only_for_live_sources_dated_by_arrival() {
    let every_2s: Vec<i64> = (1203..1300).step_by(2).collect();
    assert!(run(SourceKind::Jetstream, &every_2s).is_empty());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = open(dir.path(), &PipelineConfig::new());
    let frame = mastodon_status("1", "ann@social.example", START, "lunch was good");
    p.process_frame(
        "relay",
        0,
        frame.as_bytes(),
        &arriving(SourceKind::Mastodon, 0),
    )
    .expect("process");
    let stored = Received {
        stored_since: Some(START),
        ..arriving(SourceKind::Nostr, 600)
    };
    p.time_passed("relay", &stored).expect("tick");
    assert_eq!(p.cursor("relay"), Some(START));
    p.time_passed("relay", &arriving(SourceKind::Nostr, 600))
        .expect("tick");
    assert_eq!(p.cursor("relay"), Some(START + 600 * S));
    // A source with no clock yet has nothing to close.
    p.time_passed("unheard", &arriving(SourceKind::Mastodon, 700))
        .expect("tick");
    assert_eq!(p.cursor("unheard"), None);
}

/// A relay whose first notes are all stored ones (its catch-up before
/// `EOSE`) placed them in buckets, but its clock had no watermark, and a
/// clock without one was never moved by time passing: the buckets holding
/// its catch-up stayed open until its first live note, however long that
/// took. Once live (after `EOSE`), time passing starts its watermark at the
/// arrival, as a live note would, and those buckets close.
#[test]
fn a_relay_heard_only_in_its_catch_up_closes_its_buckets_once_live() {
    use crate::source::nostr::tests::{key, signed};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = open(dir.path(), &PipelineConfig::new());
    // Three notes the relay had stored, claimed at 1201 s, asked for from
    // 1190 s, arriving at 1205 s: placed at their claim, bucket 1200–1210.
    let stored = Received {
        stored_since: Some(START + 1190 * S),
        ..arriving(SourceKind::Nostr, 1205)
    };
    for i in 0..3 {
        let note = signed(
            &key(&format!("author{i}")),
            START / S + 1201,
            1,
            vec![vec!["t".to_owned(), "discorddown".to_owned()]],
            &format!("is discord down? ({i})"),
        );
        let frame =
            serde_json::json!(["EVENT", crate::source::nostr::protocol::SUBSCRIPTION, note]);
        p.process_frame("relay", i, frame.to_string().as_bytes(), &stored)
            .expect("process");
    }
    assert_eq!(p.stats().by_source["relay"].posts, 3, "counted");
    assert_eq!(p.cursor("relay"), None, "stored notes move no watermark");
    let closed = |p: &Pipeline<SledStore>| -> Vec<Micros> {
        let stored = p.store.buckets_since(i64::MIN).expect("read");
        stored.iter().map(|b| b.start).collect()
    };
    // Time passing while the catch-up goes on moves nothing.
    p.time_passed("relay", &stored).expect("tick");
    assert_eq!(p.cursor("relay"), None);
    // Live: ticks every 2 s from 1207 s. The bucket closes once the
    // watermark passes its end and the 5 s lateness.
    for at in (1207..=1213).step_by(2) {
        p.time_passed("relay", &arriving(SourceKind::Nostr, at))
            .expect("tick");
        assert_eq!(p.cursor("relay"), Some(START + at * S), "at {at} s");
        assert!(!closed(&p).contains(&(START + 1200 * S)), "at {at} s");
    }
    for at in (1215..=1219).step_by(2) {
        p.time_passed("relay", &arriving(SourceKind::Nostr, at))
            .expect("tick");
    }
    assert!(
        closed(&p).contains(&(START + 1200 * S)),
        "the catch-up's bucket is still open: {:?}",
        closed(&p)
    );
}
