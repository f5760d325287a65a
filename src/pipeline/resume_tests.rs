//! Event time against hostile and resumed input, through the whole
//! pipeline: a post dated ahead must not make the de-duplicator forget
//! what can still be counted, and a run resumed from its checkpoint must
//! count what the uninterrupted run counts.

use std::sync::Arc;

use super::test_support::*;
use super::*;

/// Feeds `frames` whole, and again in two runs on one state directory
/// (the first cut at `cut` and finished, as a replay of two files in
/// turn): what `measure` makes of each.
fn whole_and_halves<T>(
    frames: &[String],
    cut: usize,
    measure: impl Fn(&Pipeline<SledStore>) -> T,
) -> (T, T) {
    let config = PipelineConfig::new();
    let whole = {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = open(dir.path(), &config);
        feed(&mut p, frames, &Received::jetstream());
        p.finish().expect("finish");
        measure(&p)
    };
    let halves = {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut p = open(dir.path(), &config);
            feed(&mut p, &frames[..cut], &Received::jetstream());
            p.finish().expect("finish");
        }
        let mut p = open(dir.path(), &config);
        feed(&mut p, &frames[cut..], &Received::jetstream());
        p.finish().expect("finish");
        measure(&p)
    };
    (whole, halves)
}

/// The source's clock restarted from its saved watermark without the
/// recent posts already above it: the second half moved the watermark
/// later than the whole run did, bucket 100 s closed earlier, and an
/// ordinary late report went to another bucket (nothing hostile in it).
#[test]
fn two_halves_put_every_report_in_the_same_bucket_as_the_whole() {
    let lunch = |did: &str, k: &str, t: i64| post(did, k, START + t * S, "lunch was good");
    let mut frames = Vec::new();
    for t in 100..=108 {
        frames.push(lunch(&format!("did:plc:p{}", t % 5), &format!("p{t}"), t));
    }
    frames.push(lunch("did:plc:x1", "x1", 116));
    frames.push(lunch("did:plc:x2", "x2", 116));
    let cut = frames.len();
    frames.push(lunch("did:plc:x3", "x3", 116));
    frames.push(post(
        "did:plc:x4",
        "x4",
        START + 109 * S,
        "is discord down?",
    ));
    for t in 120..=160 {
        frames.push(lunch(&format!("did:plc:p{}", t % 5), &format!("q{t}"), t));
    }
    let (whole, halves) = whole_and_halves(&frames, cut, per_bucket);
    assert!(!whole.is_empty(), "the report is counted");
    assert_eq!(halves, whole);
}

/// A discovered name's first authors were not saved: two authors of
/// #ZorblyDown before the cut and a third after it admit the name (three
/// reports) in one run, and nothing in two.
#[test]
fn a_discovered_name_is_admitted_across_a_restart() {
    let zorbly = "is #ZorblyDown for everyone? app won't load";
    let mut frames = Vec::new();
    let mut cut = 0;
    for t in 0..100i64 {
        frames.push(chatter(t, START + t * S, "lunch was good"));
        match t {
            20 | 21 | 40 => frames.push(post(&format!("did:plc:z{t}"), "z", START + t * S, zorbly)),
            38 => cut = frames.len(),
            _ => {}
        }
    }
    let (whole, halves) = whole_and_halves(&frames, cut, reports);
    assert_eq!(whole.get("zorbly"), Some(&3), "{whole:?}");
    assert_eq!(halves, whole);
}

/// A replay lost after a saved batch and fed every frame again must count
/// what an uninterrupted replay counts. Here one post dated 400 s ahead
/// is quarantined as `future` by the uninterrupted run; the resumed run
/// judges the frames before its checkpoint against the restored (later)
/// watermark and would accept it, so its key must have been remembered
/// when it was quarantined.
#[test]
fn a_post_quarantined_as_future_is_not_counted_by_a_resumed_replay() {
    let mut frames = Vec::new();
    let mut cut = 0;
    for i in 0..600i64 {
        frames.push(chatter(i, START + i * S, "lunch was good"));
        if i == 100 {
            let ahead = START + 500 * S;
            frames.push(post("did:plc:liar", "l1", ahead, "is discord down?"));
        }
        if i == 480 {
            cut = frames.len();
        }
    }
    let config = PipelineConfig::new(); // saves at every closed bucket
    let whole = {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = open(dir.path(), &config);
        feed(&mut p, &frames, &Received::jetstream());
        p.finish().expect("finish");
        assert_eq!(p.stats().future, 1, "{:?}", p.stats());
        reports(&p)
    };
    let resumed = {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut lost = open(dir.path(), &config);
            feed(&mut lost, &frames[..cut], &Received::jetstream());
            // Dropped without `finish`, as a killed replay.
        }
        let mut p = open(dir.path(), &config);
        feed(&mut p, &frames, &Received::jetstream());
        p.finish().expect("finish");
        reports(&p)
    };
    assert_eq!(
        resumed, whole,
        "uninterrupted: {whole:?}, resumed: {resumed:?}"
    );
}

/// The de-duplication horizon is measured from the watermark, which one
/// author cannot move (from the newest post time, one post dated 290 s
/// ahead made the pipeline forget a key it must still know, with posts
/// countable for an hour).
#[test]
fn one_post_dated_ahead_does_not_let_a_post_be_counted_twice() {
    let mut config = PipelineConfig::new();
    config.window.max_late_secs = 3600;
    for with_liar in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = open(dir.path(), &config);
        let again = post("did:plc:p", "p1", START, "is discord down?");
        let mut frames = vec![again.clone()];
        for i in 1..=350 {
            frames.push(chatter(i, START + i * 10 * S, "lunch was good"));
        }
        if with_liar {
            // The watermark is at 3480 s; 3770 s is within 300 s of it.
            frames.push(post("did:plc:liar", "l", START + 3770 * S, "lunch"));
        }
        frames.push(again);
        feed(&mut p, &frames, &Received::jetstream());
        let stats = p.stats();
        assert_eq!(stats.future, 0, "{stats:?}");
        assert_eq!(stats.duplicates, 1, "with_liar={with_liar}: {stats:?}");
    }
}

/// Default settings, a recording without clock lines: before any source
/// has a watermark nothing bounds an event time, so a first post dated
/// 2100 is accepted; a horizon following the newest post time forgot
/// every key from then on as soon as it was remembered, and the same post
/// delivered twice counted twice.
#[test]
fn a_first_post_dated_2100_does_not_switch_off_de_duplication() {
    let config = PipelineConfig::new();
    let year_2100: Micros = 4_102_444_800_000_000;
    for with_liar in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = open(dir.path(), &config);
        let again = post("did:plc:p", "p1", START, "is discord down?");
        let mut frames = vec![again.clone()];
        if with_liar {
            frames.push(post("did:plc:liar", "l", year_2100, "lunch"));
        }
        for i in 0..60i64 {
            frames.push(chatter(i, START + i * S, "lunch was good"));
            if i == 25 {
                frames.push(again.clone());
            }
        }
        feed(&mut p, &frames, &Received::jetstream());
        let stats = p.stats();
        assert_eq!(stats.duplicates, 1, "with_liar={with_liar}: {stats:?}");
    }
}

/// The same with the default settings, live: a source catching up after
/// a restart an hour long (event times an hour behind arrival). One post
/// dated just within `max_future_secs` of the arrival clock must not make
/// the de-duplicator forget the keys of the catch-up: the overlap a
/// reconnect replays (cursor = watermark - 5 s) is dropped, not counted
/// twice.
#[test]
fn a_catching_up_source_still_drops_a_replayed_overlap_after_one_post_dated_ahead() {
    let config = PipelineConfig::new();
    let now = START + 3600 * S;
    let received = Received {
        arrival_us: Some(now),
        ..Received::jetstream()
    };
    for with_liar in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = open(dir.path(), &config);
        let mut frames = Vec::new();
        for i in 0..100i64 {
            frames.push(chatter(i, START + i * S, "is discord down?"));
            if with_liar && i == 95 {
                frames.push(post("did:plc:liar", "l", now + 290 * S, "lunch"));
            }
        }
        // A reconnect resumes at the watermark (97 s) less 5 s: the
        // frames from 92 s on arrive again.
        let overlap: Vec<String> = frames[frames.len() - 8 - usize::from(with_liar)..].to_vec();
        frames.extend(overlap);
        feed(&mut p, &frames, &received);
        let stats = p.stats();
        assert_eq!(stats.future, 0, "{stats:?}");
        let want = 8 + u64::from(with_liar);
        assert_eq!(stats.duplicates, want, "with_liar={with_liar}: {stats:?}");
    }
}

/// A live frame's sequence number drops the frames a server sends again,
/// but one stranger's number cannot blind the source: every frame after
/// one numbered near 2^63 stood below it and was dropped as a repeat, and
/// one past 2^63 could never be sent back as a cursor.
#[test]
fn one_frame_s_sequence_number_cannot_blind_a_source() {
    let numbered = |i: i64, seq: u64| {
        let mut frame: serde_json::Value =
            serde_json::from_str(&chatter(i, START + i * S, "lunch was good")).expect("JSON");
        frame["cursor"] = seq.into();
        frame.to_string()
    };
    let mut frames: Vec<String> = (1..=20).map(|i| numbered(i, i as u64)).collect();
    // Sent again (a reconnect's overlap): repeats.
    frames.extend([numbered(5, 5), numbered(6, 6)]);
    // A stranger's number far ahead, then the server's own go on.
    frames.push(numbered(21, 1 << 62));
    frames.extend((22..=30).map(|i| numbered(i, i as u64)));
    // A number no cursor can name: malformed.
    frames.push(numbered(31, u64::MAX));
    frames.push(numbered(32, 32));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = open(dir.path(), &PipelineConfig::new());
    let received = Received {
        host: Some(&"jetstream.example".into()),
        ..Received::jetstream()
    };
    feed(&mut p, &frames, &received);
    let stats = p.stats();
    assert_eq!(stats.duplicate_frames, 2, "{stats:?}");
    assert_eq!(stats.seq_restarts, 1, "{stats:?}");
    assert_eq!(stats.malformed, 1, "{stats:?}");
    assert_eq!(stats.posts, 31, "every other frame counted: {stats:?}");
}

/// A source that stopped for good (a replay's earlier file) kept its
/// clock, and with it the checkpoint held every de-duplication key of the
/// horizon instead of the last minute's, rewritten at every save.
#[test]
fn a_source_left_a_day_behind_does_not_hold_the_whole_horizon_of_keys() {
    let config = PipelineConfig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = open(dir.path(), &config);
    let day = 86_400 * S;
    let yesterday: Vec<String> = (0..200i64)
        .map(|i| chatter(i, START + i * S, "lunch"))
        .collect();
    feed(&mut p, &yesterday, &Received::jetstream());
    let today: Vec<String> = (0..700i64)
        .map(|i| chatter(1000 + i, START + day + i * S, "lunch"))
        .collect();
    feed_as(&mut p, "today", &today, &Received::jetstream());
    let newest = p.clocks["today"].watermark().expect("today's watermark");
    let max_late = config.window.max_late_secs * S;
    assert_eq!(
        p.countable_from(),
        Some(newest - max_late),
        "yesterday's source is left out"
    );
    // A slower source within the horizon still counts.
    let slower = crate::source::clock::SourceClock::restored(Some(newest - 100 * S));
    p.clocks.insert("slower".into(), slower);
    assert_eq!(p.countable_from(), Some(newest - 100 * S - max_late));
}

/// A source further behind the newest than the retention (a replay's
/// earlier file, a source gone for good) is forgotten at the next save,
/// with its sequence cursor: each kept its clock in every checkpoint for
/// ever. One within the retention keeps it.
#[test]
fn a_source_gone_longer_than_the_retention_is_forgotten() {
    let config = PipelineConfig {
        retention_secs: 3_600,
        ..PipelineConfig::new()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = open(dir.path(), &config);
    let file = |name: &str, from: Micros, n: i64| {
        (0..n)
            .map(|i| chatter(i, from + i * S, name))
            .collect::<Vec<_>>()
    };
    feed_as(
        &mut p,
        "old.jsonl",
        &file("old", START, 120),
        &Received::jetstream(),
    );
    feed_as(
        &mut p,
        "recent.jsonl",
        &file("recent", START + 7_000 * S, 120),
        &Received::jetstream(),
    );
    feed_as(
        &mut p,
        "new.jsonl",
        &file("new", START + 9_000 * S, 600),
        &Received::jetstream(),
    );
    p.finish().expect("finish");
    let sources = p.sources_with_cursors();
    assert_eq!(
        sources,
        ["new.jsonl", "recent.jsonl"],
        "old is more than an hour behind"
    );
    drop(p);
    let p = open(dir.path(), &config);
    assert_eq!(p.cursor("old.jsonl"), None, "not saved");
    assert!(p.cursor("recent.jsonl").is_some());
}

/// A replay of two files resumed after the second had gone more than the
/// de-duplication horizon past the first reads the first again: none of
/// its posts may count again. Its source's keys are not saved (it is too
/// far behind), and its own clock took the last minute as late posts, so
/// they were counted twice.
#[test]
fn a_resumed_replay_does_not_count_an_earlier_file_again() {
    let config = PipelineConfig::new();
    let first: Vec<String> = (0..120i64)
        .map(|i| chatter(i, START + i * S, "is discord down?"))
        .collect();
    let second: Vec<String> = (0..900i64)
        .map(|i| chatter(1000 + i, START + 1800 * S + i * S, "lunch was good"))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut p = open(dir.path(), &config);
        feed_as(&mut p, "a.jsonl", &first, &Received::jetstream());
        feed_as(&mut p, "b.jsonl", &second[..800], &Received::jetstream());
        // Dropped without `finish`, as a killed replay.
    }
    let mut p = open(dir.path(), &config);
    let before = reports(&p);
    assert!(before.contains_key("discord"), "{before:?}");
    feed_as(&mut p, "a.jsonl", &first, &Received::jetstream());
    assert_eq!(reports(&p), before, "the first file counted again");
    assert_eq!(p.stats().stale_posts, first.len() as u64, "{:?}", p.stats());
}

/// A store keeps the bucket width it was counted in: a run with another
/// `bucket_secs` on it is refused with the way out, where it went on in
/// silence and mixed 10 s and 60 s buckets in the detector's history.
#[test]
fn another_bucket_width_on_a_store_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ten = PipelineConfig::new();
    {
        let mut p = open(dir.path(), &ten);
        let frames: Vec<String> = (0..30)
            .map(|i| chatter(i, START + i * S, "lunch was good"))
            .collect();
        feed(&mut p, &frames, &Received::jetstream());
        p.finish().expect("finish");
    }
    let mut sixty = PipelineConfig::new();
    sixty.window.bucket_secs = 60;
    sixty.detector.bucket_secs = 60;
    let matcher = Arc::new(Matcher::embedded().expect("patterns"));
    let store = SledStore::open(dir.path()).expect("store");
    let err = Pipeline::open(matcher, sixty, store)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("counted in 10 s buckets"), "{err}");
    assert!(err.contains("bucket_secs = 60"), "{err}");
    assert!(err.contains("state reset"), "{err}");
    // The width it was counted in still opens.
    drop(open(dir.path(), &ten));
}

/// A frame that decoded is data for its source's health (the connection's
/// no-data watchdog) and moves the processed cursor; a malformed one is
/// neither. `replay --jetstream` did not tell its connection, whose
/// watchdog then dropped it every 30 s while frames flowed.
#[test]
fn a_decoded_frame_is_data_for_its_source_s_health_and_moves_its_cursor() {
    let config = PipelineConfig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = open(dir.path(), &config);
    let health = crate::source::health::SourceHealth::new("jetstream", None);
    let mut feed_one = |frame: &str, n: u64| {
        let before = p.unusable();
        p.process_frame("jetstream", n, frame.as_bytes(), &Received::jetstream())
            .expect("process");
        p.report_frame(&health, "jetstream", before);
    };
    // Seven authors: enough to set a first watermark with nothing to
    // bound it (a majority of them).
    for i in 0..7 {
        let frame = post(
            &format!("did:plc:{i}"),
            &format!("r{i}"),
            START + i * S,
            "lunch",
        );
        feed_one(&frame, i as u64);
    }
    feed_one("{not json", 7);
    let seen = health.snapshot();
    assert_eq!(seen.data, 7, "{seen:?}");
    assert!(seen.processed.is_some_and(|t| t >= START), "{seen:?}");
}

/// A frame whose event is quarantined as dated ahead of its arrival is no
/// data either: a source whose every event was (a clock here or at the
/// server more than `max_future_secs` off) formed no watermark, yet
/// counted as delivering, and its silence was never alerted.
#[test]
fn a_frame_dated_ahead_of_its_arrival_is_no_data_for_its_source_s_health() {
    let config = PipelineConfig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = open(dir.path(), &config);
    let health = crate::source::health::SourceHealth::new("jetstream", None);
    let hour_ahead = 3_600 * S;
    for i in 0..20 {
        let arrival = START + i * S;
        let received = Received {
            arrival_us: Some(arrival),
            ..Received::jetstream()
        };
        let before = p.unusable();
        let frame = chatter(i, arrival + hour_ahead, "lunch");
        p.process_frame("jetstream", i as u64, frame.as_bytes(), &received)
            .expect("process");
        p.report_frame(&health, "jetstream", before);
    }
    let seen = health.snapshot();
    assert_eq!(seen.data, 0, "{seen:?}");
    assert_eq!(seen.processed, None, "{seen:?}");
    assert_eq!(p.stats().future, 20);
}

/// Only a frame that carries something of its source's stream is data for
/// its health: a post, or an event of the stream that is no post (a
/// deletion, another kind's verified event, an identity change). A frame
/// that decodes to no event is not: a relay's unknown message, an
/// instance's malformed or unknown event, a server's notice, a kind this
/// version does not know. A relay sending `["X"]` and an instance sending
/// `{"event":"delete"}` once a second looked healthy for ever, with no
/// alert and no reconnect.
#[test]
fn only_frames_of_the_stream_are_data_for_a_source_s_health() {
    use crate::source::nostr::tests::{key, signed};
    let jetstream = Received {
        arrival_us: Some(START),
        ..Received::jetstream()
    };
    let nostr = Received {
        kind: SourceKind::Nostr,
        instance: "relay.example",
        ..jetstream
    };
    let mastodon = Received {
        kind: SourceKind::Mastodon,
        instance: "m.example",
        ..jetstream
    };
    let reaction = signed(&key("alice"), START / S, 7, vec![], "+");
    let reaction = serde_json::json!(["EVENT", "outagewatch", reaction]).to_string();
    let identity = serde_json::json!({
        "did": "did:plc:a", "time_us": START, "kind": "identity", "identity": {"did": "did:plc:a"}
    })
    .to_string();
    let new_kind =
        serde_json::json!({"did": "did:plc:a", "time_us": START, "kind": "sync"}).to_string();
    // (frame, how it arrived, data)
    let cases: Vec<(String, &Received<'_>, bool)> = vec![
        (chatter(0, START, "lunch"), &jetstream, true),
        (identity, &jetstream, true),
        (new_kind, &jetstream, false),
        (r#"{"$type":"whatever"}"#.into(), &jetstream, false),
        (reaction, &nostr, true),
        (r#"["NOTICE","x"]"#.into(), &nostr, false),
        (r#"["X"]"#.into(), &nostr, false),
        (r#"["X","outagewatch",{}]"#.into(), &nostr, false),
        (
            r#"{"event":"delete","payload":"109372843234791815"}"#.into(),
            &mastodon,
            true,
        ),
        (r#"{"event":"filters_changed"}"#.into(), &mastodon, false),
        (r#"{"event":"delete"}"#.into(), &mastodon, false),
        (
            r#"{"event":"delete","payload":"{}"}"#.into(),
            &mastodon,
            false,
        ),
        (
            r#"{"event":"status.update","payload":"{}"}"#.into(),
            &mastodon,
            false,
        ),
        (r#"{"event":"X","payload":"1"}"#.into(), &mastodon, false),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = open(dir.path(), &PipelineConfig::new());
    for (n, (frame, received, data)) in cases.into_iter().enumerate() {
        let health = crate::source::health::SourceHealth::new("s", None);
        let before = p.unusable();
        p.process_frame("s", n as u64, frame.as_bytes(), received)
            .expect("process");
        p.report_frame(&health, "s", before);
        assert_eq!(health.snapshot().data, u64::from(data), "{frame}");
    }
}

/// A flood of new tags from twelve accounts: each may help admit three
/// names an hour, so the uninterrupted run admits twelve names and turns
/// the rest away. The authors' budgets were not saved: a replay killed
/// after the sixth name and run again gave every account a fresh
/// allowance, and admitted names the whole run refused. (Twelve reports
/// of a new name in 12 s raise no alert here: the alerts are compared
/// all the same, both empty.)
#[test]
fn a_resumed_replay_keeps_the_authors_budgets_under_a_tag_flood() {
    let mut frames = Vec::new();
    let mut cut = 0;
    let mut t = 0;
    for n in 0..24 {
        for a in 0..12 {
            let text = format!("is #Flood{n}Down for everyone? app won't load");
            frames.push(post(
                &format!("did:plc:f{a}"),
                &format!("f{n}-{a}"),
                START + t * S,
                &text,
            ));
            t += 1;
        }
        for _ in 0..20 {
            frames.push(chatter(t, START + t * S, "lunch was good"));
            t += 1;
        }
        if n == 6 {
            cut = frames.len();
        }
    }
    for _ in 0..200 {
        frames.push(chatter(t, START + t * S, "lunch was good"));
        t += 1;
    }
    let config = PipelineConfig::new(); // saves at every closed bucket
    let run = |dir: &std::path::Path| {
        let mut p = open(dir, &config);
        feed(&mut p, &frames, &Received::jetstream());
        p.finish().expect("finish");
        let names: Vec<String> = reports(&p)
            .into_keys()
            .filter(|s| s.starts_with("flood"))
            .collect();
        (names, alerts(&p), p.stats().discovered_rejected)
    };
    let whole_dir = tempfile::tempdir().expect("tempdir");
    let (whole_names, whole_alerts, rejected) = run(whole_dir.path());
    assert_eq!(whole_names.len(), 12, "{whole_names:?}");
    assert!(rejected > 0, "the budget turned names away");
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut killed = open(dir.path(), &config);
        feed(&mut killed, &frames[..cut], &Received::jetstream());
        // Dropped without `finish`, as a killed replay.
    }
    let (names, resumed_alerts, _) = run(dir.path());
    assert_eq!(names, whole_names);
    assert_eq!(resumed_alerts, whole_alerts);
}

/// One run counts at most [`super::MAX_SOURCES`] sources: the next is a
/// clear error, not a clock and counts more (a file whose clock lines
/// named a new source at every frame grew them without bound).
#[test]
fn a_run_refuses_a_source_past_its_limit() {
    let config = PipelineConfig::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = open(dir.path(), &config);
    let frame = chatter(0, START, "lunch");
    for n in 0..super::MAX_SOURCES {
        p.process_frame(
            &format!("s{n}"),
            0,
            frame.as_bytes(),
            &Received::jetstream(),
        )
        .expect("within the limit");
    }
    // A known source goes on.
    p.process_frame("s0", 1, frame.as_bytes(), &Received::jetstream())
        .expect("a known source");
    let err = p
        .process_frame("one more", 0, frame.as_bytes(), &Received::jetstream())
        .expect_err("past the limit")
        .to_string();
    assert!(err.contains("1025th source (\"one more\")"), "{err}");
}
