//! Several sources at once, one of them behind the others: buckets wait
//! for a server-dated source that falls behind (a Jetstream reconnecting
//! from its cursor) for up to `[window] wait_secs`, then close without it.

use std::collections::BTreeMap;

use super::test_support::*;
use super::*;

/// Frames in the order they reach the pipeline, each with its source.
type Feed = Vec<(&'static str, String)>;

/// The pipeline after `feed` (every frame from a recording without clock
/// lines), with the directory its store lives in.
fn run(feed: &[(&'static str, String)]) -> (tempfile::TempDir, Pipeline<SledStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = open(dir.path(), &PipelineConfig::new());
    for (n, (source, frame)) in feed.iter().enumerate() {
        p.process_frame(source, n as u64, frame.as_bytes(), &Received::jetstream())
            .expect("process");
    }
    p.finish().expect("finish");
    (dir, p)
}

/// One second of `source`'s ordinary chatter at `t` seconds, by five
/// accounts of its own taking turns (enough for its clock's quorum).
fn tick(source: &'static str, t: i64) -> (&'static str, String) {
    let did = format!("did:plc:{source}{}", t % 5);
    (
        source,
        post(
            &did,
            &format!("{source}{t}"),
            START + t * S,
            "lunch was good",
        ),
    )
}

/// A report of a Discord outage on `source` at `t` seconds, by an account
/// of its own.
fn report(source: &'static str, t: i64, who: usize) -> (&'static str, String) {
    let did = format!("did:plc:{source}-reporter{who}");
    let text = "is discord down? it won't load for me";
    (source, post(&did, &format!("r{t}"), START + t * S, text))
}

/// Discord reports per bucket start (seconds from `START`) with any.
fn discord_buckets(p: &Pipeline<SledStore>) -> BTreeMap<i64, u64> {
    let stored = p.store.buckets_since(i64::MIN).expect("read");
    stored
        .iter()
        .chain(p.windows.open_buckets())
        .filter_map(|b| Some(((b.start - START) / S, b.services.get("discord")?.reports)))
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// `fast` posts every second from 0 to `end`; `slow` too, with a report
/// every 60 s from 60 on, but what it posts in `gap` arrives only after
/// `fast` has reached the gap's end (a reconnect reading from its cursor).
fn lagging(end: i64, gap: std::ops::Range<i64>) -> Feed {
    let slow_second = |t: i64| {
        let mut frames = vec![tick("slow", t)];
        if t >= 60 && t % 60 == 0 {
            frames.push(report("slow", t, (t / 60) as usize));
        }
        frames
    };
    let mut feed = Feed::new();
    for t in 0..end {
        feed.push(tick("fast", t));
        if t == gap.end {
            feed.extend(gap.clone().flat_map(slow_second));
        }
        if !gap.contains(&t) {
            feed.extend(slow_second(t));
        }
    }
    feed
}

#[test]
fn buckets_wait_for_a_source_a_little_behind_and_count_its_posts_where_they_belong() {
    // Twenty-five seconds away, the report at 120 within the gap.
    let (_dir, p) = run(&lagging(400, 100..125));
    let stats = p.stats();
    assert_eq!((stats.late_posts, stats.stale_posts), (0, 0), "{stats:?}");
    let want: BTreeMap<i64, u64> = (1..400 / 60 + 1).map(|k| (k * 60, 1)).collect();
    assert_eq!(discord_buckets(&p), want);
}

/// Waiting is bounded, since every alert waits too: while `slow` is away
/// for ten minutes, buckets close on `fast` once `slow` is more than
/// `wait_secs` (30 s) behind; while it is 20 s behind, they wait for it.
#[test]
fn buckets_stop_waiting_for_a_source_further_behind_than_the_wait() {
    let closed_when_fast_reached = |gap: std::ops::Range<i64>, at: i64| {
        let feed = lagging(900, gap);
        let until = feed
            .iter()
            .position(|(source, frame)| {
                *source == "fast" && frame.contains(&format!("\"rkey\":\"fast{at}\""))
            })
            .expect("frame");
        let (_dir, p) = run(&feed[..until]);
        p.windows.closed_through().map(|t| (t - START) / S)
    };
    // Away from 30 s on: fast's watermark (596, the third newest of its
    // five authors) less the 5 s lateness closes everything before 590.
    assert_eq!(closed_when_fast_reached(30..600, 599), Some(590));
    // Away from 580 s on, 20 s before: slow's watermark (577) less the
    // lateness holds every bucket from 570.
    assert_eq!(closed_when_fast_reached(580..600, 599), Some(570));
}

/// Jetstream's `time_us` trails our arrival clock, by ten seconds here;
/// Mastodon's events are dated by that clock. Buckets closed on the
/// Mastodon watermark, and every Jetstream post came late, one bucket
/// after its own.
#[test]
fn an_own_clock_source_ahead_does_not_make_a_server_dated_one_late() {
    let arrival = |t: i64| START + t * S;
    let mut feed = Feed::new();
    for t in 10..300 {
        feed.push(tick("bluesky", t - 10));
        let acct = format!("user{}", t % 5);
        let frame = mastodon_status(&t.to_string(), &acct, arrival(t), "lunch was good");
        feed.push(("mastodon", frame));
    }
    // Every frame arrives at the second the Mastodon status is of.
    let mut at = 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = open(dir.path(), &PipelineConfig::new());
    for (n, (source, frame)) in feed.iter().enumerate() {
        let received = Received {
            kind: if *source == "mastodon" {
                crate::source::SourceKind::Mastodon
            } else {
                crate::source::SourceKind::Jetstream
            },
            instance: "social.example",
            arrival_us: Some(arrival(at)),
            ..Received::jetstream()
        };
        p.process_frame(source, n as u64, frame.as_bytes(), &received)
            .expect("process");
        if *source == "mastodon" {
            at += 1;
        }
    }
    let stats = p.stats();
    assert_eq!(stats.posts, 2 * 290, "{stats:?}");
    assert_eq!((stats.late_posts, stats.stale_posts), (0, 0), "{stats:?}");
}

/// The watermark buckets close on is saved with the checkpoint and the
/// clocks that decide it, so a run stopped while it waits for a source
/// behind, or while one it stopped waiting for catches up (the watermark
/// never moves back to it), and resumed, counts every post where the whole
/// run does.
#[test]
fn a_run_resumed_while_a_source_is_behind_counts_as_the_whole_run() {
    // (the gap, the frame cut before: its source and second)
    let cases = [
        (100..125, ("fast", 120), "waiting 20 s for slow"),
        (100..125, ("fast", 130), "after the catch-up"),
        (
            100..170,
            ("slow", 130),
            "slow catching up, no longer waited for",
        ),
    ];
    for (gap, (cut_source, cut_at), what) in cases {
        let feed = lagging(400, gap);
        let (_whole_dir, whole) = run(&feed);
        let rkey = format!("\"rkey\":\"{cut_source}{cut_at}\"");
        let cut = feed
            .iter()
            .position(|(source, frame)| *source == cut_source && frame.contains(&rkey))
            .expect("cut");
        let dir = tempfile::tempdir().expect("tempdir");
        for part in [&feed[..cut], &feed[cut..]] {
            let mut p = open(dir.path(), &PipelineConfig::new());
            for (n, (source, frame)) in part.iter().enumerate() {
                p.process_frame(source, n as u64, frame.as_bytes(), &Received::jetstream())
                    .expect("process");
            }
            p.finish().expect("finish");
        }
        let p = open(dir.path(), &PipelineConfig::new());
        assert_eq!(discord_buckets(&p), discord_buckets(&whole), "{what}");
        let posts = |p: &Pipeline<SledStore>| {
            let stored = p.store.buckets_since(i64::MIN).expect("read");
            stored
                .iter()
                .chain(p.windows.open_buckets())
                .map(|b| (b.start, b.total_posts))
                .collect::<Vec<_>>()
        };
        assert_eq!(posts(&p), posts(&whole), "{what}");
    }
}

/// Frames with their source and arrival second, Mastodon's dated by it.
type Arrived = Vec<(&'static str, String, i64)>;

/// `social` (Mastodon) posts every second of arrival from 0 to `end`;
/// `bluesky` (Jetstream) posts chatter every second and a Discord report
/// every 20 s, each dated `offset` s before the second it arrives in,
/// except that what it posts while `away` arrives all at the end of it
/// (a reconnect reading from its cursor).
fn beside_mastodon(end: i64, offset: i64, away: std::ops::Range<i64>) -> Arrived {
    let bluesky_second = |t: i64, arrival: i64| {
        let (_, chatter) = tick("bluesky", t);
        let mut frames = vec![("bluesky", chatter, arrival)];
        if t % 20 == 0 {
            let (_, report) = report("bluesky", t, t as usize);
            frames.push(("bluesky", report, arrival));
        }
        frames
    };
    let mut feed = Arrived::new();
    for t in 0..end {
        let acct = format!("user{}@host{}.net", t % 5, t % 5);
        let status = mastodon_status(&t.to_string(), &acct, START + t * S, "lunch was good");
        feed.push(("social", status, t));
        if t == away.end {
            feed.extend(away.clone().flat_map(|s| bluesky_second(s - offset, t)));
        }
        if !away.contains(&t) {
            feed.extend(bluesky_second(t - offset, t));
        }
    }
    feed
}

fn feed_arrived(p: &mut Pipeline<SledStore>, feed: &[(&'static str, String, i64)]) {
    for (n, (source, frame, arrival)) in feed.iter().enumerate() {
        let received = Received {
            kind: if *source == "social" {
                crate::source::SourceKind::Mastodon
            } else {
                crate::source::SourceKind::Jetstream
            },
            instance: "social.example",
            arrival_us: Some(START + arrival * S),
            ..Received::jetstream()
        };
        p.process_frame(source, n as u64, frame.as_bytes(), &received)
            .expect("process");
    }
}

/// A Jetstream back after five minutes away, beside a Mastodon that kept
/// going, delivers five minutes of posts in one second, their buckets
/// closed: added to the oldest open bucket as late, they put 15 Discord
/// reports in one bucket. They are history caught up, stale. A Jetstream
/// whose clock runs steadily a minute behind delivers late posts too, one
/// bucket's worth per bucket: they keep counting, at their rate. The
/// usual delay is saved with the clocks, so a catch-up right after a
/// restart is told the same way.
#[test]
fn a_catch_up_is_stale_and_a_steady_offset_keeps_counting_late() {
    let busiest = |p: &Pipeline<SledStore>| discord_buckets(p).values().copied().max();
    let bluesky = |p: &Pipeline<SledStore>| p.stats().by_source["bluesky"].clone();

    // Away from 200 to 500 s: 15 reports in the catch-up.
    let feed = beside_mastodon(700, 0, 200..500);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = open(dir.path(), &PipelineConfig::new());
    feed_arrived(&mut p, &feed);
    let counts = bluesky(&p);
    assert_eq!(busiest(&p), Some(1), "{:?}", discord_buckets(&p));
    // The posts of the catch-up dated more than the 30 s wait before
    // their arrival (270 s of chatter and 14 reports, less the second or
    // two by which the watermark usually trails): stale; the rest late.
    assert!((265..=284).contains(&counts.stale), "{counts:?}");
    assert!(counts.late <= 35, "{counts:?}");
    // The other 21 of the 35 reports counted, one a bucket.
    let counted: u64 = discord_buckets(&p).values().sum();
    assert_eq!(counted, 21, "{:?}", discord_buckets(&p));

    // Steadily a minute behind: late, never stale, one report a bucket.
    let feed = beside_mastodon(700, 60, 0..0);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = open(dir.path(), &PipelineConfig::new());
    feed_arrived(&mut p, &feed);
    let counts = bluesky(&p);
    assert_eq!(counts.stale, 0, "{counts:?}");
    assert!(counts.late > 600, "{counts:?}");
    assert_eq!(busiest(&p), Some(1), "{:?}", discord_buckets(&p));

    // Stopped at 200 s, started again at 500 s (Mastodon's statuses in
    // between never received): the catch-up after the restart is stale
    // too.
    let feed: Arrived = beside_mastodon(700, 0, 200..500)
        .into_iter()
        .filter(|(_, _, arrival)| !(200..500).contains(arrival))
        .collect();
    let restart = feed
        .iter()
        .position(|(_, _, arrival)| *arrival >= 200)
        .expect("restart");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = open(dir.path(), &PipelineConfig::new());
    feed_arrived(&mut p, &feed[..restart]);
    p.finish().expect("finish");
    drop(p);
    let mut p = open(dir.path(), &PipelineConfig::new());
    feed_arrived(&mut p, &feed[restart..]);
    let counts = bluesky(&p);
    assert_eq!(busiest(&p), Some(1), "{:?}", discord_buckets(&p));
    assert!((265..=284).contains(&counts.stale), "{counts:?}");
}
