//! The source clock's rule: quorum, quarantine, jumps, own-clock sources.

use super::*;
const S: Micros = MICROS_PER_SEC;

/// The definition, written plainly: each author at its newest time,
/// sorted newest first, the `quorum`-th.
fn quorum_by_sorting(events: &VecDeque<(u64, Micros)>, quorum: usize) -> Option<Micros> {
    let mut newest = std::collections::BTreeMap::new();
    for &(author, time) in events {
        let t = newest.entry(author).or_insert(time);
        *t = (*t).max(time);
    }
    let mut times: Vec<Micros> = newest.into_values().collect();
    times.sort_unstable_by(|a, b| b.cmp(a));
    times.get(quorum.max(1) - 1).copied()
}

proptest::proptest! {
    #[test]
    fn the_short_list_agrees_with_sorting_every_author(
        events in proptest::collection::vec((0u64..6, -5i64..40), 0..40),
        quorum in 0usize..5,
        above in proptest::option::of(-6i64..42),
    ) {
        let events: VecDeque<(u64, Micros)> = events.into_iter().collect();
        let expected = quorum_by_sorting(&events, quorum)
            .filter(|&t| above.is_none_or(|above| t > above));
        proptest::prop_assert_eq!(quorum_time(&events, quorum, above), expected);
    }
}

fn tick(t: i64, author: &str) -> Tick {
    Tick {
        time_us: t * S,
        author: Some(author_key(author)),
        arrival_us: None,
        own_clock: false,
        stored: false,
    }
}

#[test]
fn one_author_cannot_move_the_watermark() {
    let rule = ClockRule::default();
    let mut c = SourceClock::default();
    for (i, a) in ["a", "b", "c", "d", "e", "f", "g"].into_iter().enumerate() {
        assert_eq!(c.watermark(), None, "fewer than seven authors");
        assert_eq!(
            c.judge(tick(1000 + i as i64, a), None, &rule),
            Judgement::Accepted
        );
    }
    assert_eq!(
        c.watermark(),
        Some(1004 * S),
        "third newest of seven authors"
    );
    // Within the bound, accepted, but the watermark stays put.
    assert_eq!(
        c.judge(tick(1250, "liar"), None, &rule),
        Judgement::Accepted
    );
    assert_eq!(c.watermark(), Some(1005 * S));
    // Far ahead: quarantined.
    let year_2100 = 4_102_444_800;
    assert_eq!(
        c.judge(tick(year_2100, "liar"), None, &rule),
        Judgement::Future
    );
    assert_eq!(c.watermark(), Some(1005 * S));
    // The liar again, many times: still one author.
    for _ in 0..50 {
        c.judge(tick(1250, "liar"), None, &rule);
        c.judge(tick(year_2100, "liar"), None, &rule);
    }
    assert!(
        c.watermark().is_some_and(|w| w <= 1006 * S),
        "{:?}",
        c.watermark()
    );
    // Far past: accepted by the clock (the window calls it stale), no move.
    assert_eq!(c.judge(tick(10, "old"), None, &rule), Judgement::Accepted);
    assert!(c.watermark().is_some_and(|w| w >= 1005 * S));
}

/// Before anything bounds a source's times (no arrival clock, no
/// other source's watermark), a majority of its first authors sets its
/// first watermark: a recording whose first three authors date their
/// posts 2100 (or 1970) no longer sets it there.
#[test]
fn a_source_s_first_authors_must_be_a_majority_to_set_its_time() {
    let rule = ClockRule::default();
    let year_2100 = 4_102_444_800;
    let cases: [(&str, &[i64], Option<i64>); 5] = [
        (
            "three liars first",
            &[year_2100, year_2100, year_2100, 1, 2, 3, 4],
            Some(2),
        ),
        (
            "one post from 1970 first",
            &[-1_000_000, 1, 2, 3, 4, 5, 6],
            Some(4),
        ),
        (
            "liars among the first",
            &[1, year_2100, 2, year_2100, 3, year_2100, 4],
            Some(2),
        ),
        (
            "a majority of liars",
            &[1, year_2100, year_2100, year_2100, year_2100, 2, 3],
            Some(year_2100),
        ),
        ("six authors", &[1, 2, 3, 4, 5, 6], None),
    ];
    for (what, times, want) in cases {
        let mut c = SourceClock::default();
        for (i, t) in times.iter().enumerate() {
            let judged = c.judge(tick(1_000_000 + t, &format!("a{i}")), None, &rule);
            assert_eq!(
                judged,
                Judgement::Accepted,
                "{what}: nothing bounds them yet"
            );
        }
        assert_eq!(c.watermark(), want.map(|t| (1_000_000 + t) * S), "{what}");
        if want == Some(2) {
            // The liars are now quarantined, and the honest go on.
            let later = c.judge(tick(1_000_000 + year_2100, "late liar"), None, &rule);
            assert_eq!(later, Judgement::Future, "{what}");
        }
    }
}

#[test]
fn the_arrival_clock_bounds_live_events() {
    let rule = ClockRule::default();
    let mut c = SourceClock::default();
    let live = |t: i64, a: &str, arrival: i64| Tick {
        arrival_us: Some(arrival * S),
        ..tick(t, a)
    };
    assert_eq!(
        c.judge(live(2000, "a", 1000), None, &rule),
        Judgement::Future
    );
    assert_eq!(
        c.judge(live(1299, "a", 1000), None, &rule),
        Judgement::Accepted
    );
    // Several authors agreeing on a time beyond our clock still lose.
    for a in ["x", "y", "z", "w"] {
        assert_eq!(c.judge(live(5000, a, 1000), None, &rule), Judgement::Future);
    }
    assert_eq!(c.watermark(), None, "fewer than three authors accepted");
}

fn non_post(t: i64) -> Tick {
    Tick {
        author: None,
        ..tick(t, "")
    }
}

#[test]
fn without_an_arrival_clock_a_quorum_jumps_a_gap() {
    let rule = ClockRule::default();
    let mut c = SourceClock::restored(Some(1000 * S));
    // Two authors and non-posts: a run long enough, but no quorum.
    assert_eq!(c.judge(tick(9000, "a"), None, &rule), Judgement::Future);
    assert_eq!(c.judge(tick(9001, "a"), None, &rule), Judgement::Future);
    assert_eq!(c.judge(tick(9002, "b"), None, &rule), Judgement::Future);
    for t in 9003..9003 + JUMP_RUN as i64 {
        assert_eq!(c.judge(non_post(t), None, &rule), Judgement::Future);
    }
    assert_eq!(c.watermark(), Some(1000 * S), "two authors are not enough");
    assert_eq!(c.judge(tick(9100, "c"), None, &rule), Judgement::Future);
    assert_eq!(c.watermark(), Some(9001 * S), "three authors agree");
    assert_eq!(c.judge(tick(9101, "d"), None, &rule), Judgement::Accepted);
}

/// The far side of a gap is a run of events all ahead; liars stand
/// among ordinary events. Three accounts dated 2100 had jumped the
/// watermark there, and every later post was stale.
#[test]
fn liars_among_ordinary_events_never_jump_the_watermark() {
    let rule = ClockRule::default();
    let year_2100 = 4_102_444_800;
    let one_short = format!("{}n", "L".repeat(JUMP_RUN - 1));
    let run_of_two_authors = format!("LL{}", "f".repeat(JUMP_RUN));
    // L: a post by a new author dated 2100; f: a non-post dated 2100;
    // n: an ordinary non-post; p: an ordinary post by a new author.
    let cases: [(&str, String, bool); 6] = [
        ("three liars in a row", "LLLn".repeat(20), false),
        ("liars in runs one short", one_short.repeat(5), false),
        ("liars between posts", "Lp".repeat(40), false),
        ("two authors ahead", run_of_two_authors, false),
        ("a whole run", "L".repeat(JUMP_RUN), true),
        (
            "a run of posts and non-posts",
            "Lf".repeat(JUMP_RUN / 2),
            true,
        ),
    ];
    for (what, events, jumps) in cases {
        let mut c = SourceClock::restored(Some(1000 * S));
        let (mut now, mut author) = (1000, 0);
        for event in events.chars() {
            author += 1;
            now += 1;
            let (t, judged) = match event {
                'L' => (tick(year_2100 + author, &format!("a{author}")), None),
                'f' => (non_post(year_2100 + author), None),
                'n' => (non_post(now), Some(Judgement::Accepted)),
                _ => (tick(now, &format!("a{author}")), Some(Judgement::Accepted)),
            };
            let got = c.judge(t, None, &rule);
            if let Some(want) = judged {
                assert_eq!(got, want, "{what}: an ordinary event");
            }
        }
        let jumped = c.watermark().is_some_and(|w| w > 2_000_000_000 * S);
        assert_eq!(jumped, jumps, "{what}: {:?}", c.watermark());
    }
}

/// Quarantined events stay in `ahead` however old they become: one
/// liar's post dated 400 s ahead, remembered for an hour of stream,
/// must not take part in a later jump (two more authors ahead); it
/// made the jump land on its old time, an hour back, and the ordinary
/// posts that followed were quarantined as `future`.
#[test]
fn a_jump_never_moves_the_watermark_back() {
    let rule = ClockRule::default();
    let mut c = SourceClock::restored(Some(1000 * S));
    assert_eq!(c.judge(tick(1400, "liar"), None, &rule), Judgement::Future);
    for t in 1001..=5000 {
        let author = ["b", "c", "d", "e"][t as usize % 4];
        assert_eq!(c.judge(tick(t, author), None, &rule), Judgement::Accepted);
    }
    let before = c.watermark().expect("watermark");
    assert!(before >= 4990 * S, "{before}");
    assert_eq!(c.judge(tick(5400, "x"), None, &rule), Judgement::Future);
    assert_eq!(c.judge(tick(5401, "y"), None, &rule), Judgement::Future);
    assert!(
        c.watermark().is_some_and(|w| w >= before),
        "moved back from {before} to {:?}",
        c.watermark()
    );
    assert_eq!(c.judge(tick(5001, "b"), None, &rule), Judgement::Accepted);
}

/// A clock at `at` seconds: dated by a server (posts accepted by
/// their authors' quorum) or by its own arrival clock.
fn clock_at(at: i64, server_dated: bool) -> SourceClock {
    let rule = ClockRule::default();
    let mut c = SourceClock::restored(Some(at * S));
    for (i, author) in ["a", "b", "c"].into_iter().enumerate() {
        let t = Tick {
            own_clock: !server_dated,
            arrival_us: Some(at * S),
            ..tick(at - 3 + i as i64, author)
        };
        assert_eq!(c.judge(t, None, &rule), Judgement::Accepted);
    }
    assert_eq!(c.server_dated(), server_dated);
    assert_eq!(c.watermark(), Some(at * S));
    c
}

#[test]
fn buckets_close_on_the_slowest_server_dated_source_within_the_wait() {
    const SERVER: bool = true;
    const OWN: bool = false;
    let wait = 60 * S;
    /// Clocks at seconds, each server-dated or not.
    type Clocks = &'static [(i64, bool)];
    // (the clocks; the closing watermark)
    let cases: &[(Clocks, Option<i64>, &str)] = &[
        (&[], None, "no source"),
        (&[(1000, SERVER)], Some(1000), "one source: its own"),
        (
            &[(1000, SERVER), (970, SERVER)],
            Some(970),
            "waits for the slower",
        ),
        (
            &[(1000, SERVER), (940, SERVER)],
            Some(940),
            "the wait's very edge",
        ),
        (
            &[(1000, SERVER), (939, SERVER)],
            Some(1000),
            "too far behind: not waited for",
        ),
        (
            &[(1000, OWN), (990, SERVER)],
            Some(990),
            "an own-clock source ahead waits for the server's",
        ),
        (
            &[(1000, SERVER), (900, OWN)],
            Some(1000),
            "an own-clock source never holds",
        ),
        (
            &[(1000, OWN), (995, OWN)],
            Some(1000),
            "own clocks only: the newest",
        ),
        (
            &[(1000, SERVER), (939, SERVER), (950, SERVER), (980, OWN)],
            Some(950),
            "the slowest of those within the wait",
        ),
    ];
    for (clocks, want, what) in cases {
        let clocks: Vec<SourceClock> = clocks
            .iter()
            .map(|&(at, server)| clock_at(at, server))
            .collect();
        assert_eq!(
            closing_watermark(clocks.iter(), wait),
            want.map(|w| w * S),
            "{what}"
        );
    }
    let unset = [SourceClock::default(), clock_at(500, SERVER)];
    assert_eq!(
        closing_watermark(unset.iter(), wait),
        Some(500 * S),
        "a source without a watermark yet holds nothing"
    );
}

#[test]
fn own_clock_sources_follow_arrival_and_a_fallback_bounds_a_new_source() {
    let rule = ClockRule::default();
    let mut c = SourceClock::default();
    let t = Tick {
        own_clock: true,
        arrival_us: Some(500 * S),
        ..tick(500, "a")
    };
    assert_eq!(c.judge(t, None, &rule), Judgement::Accepted);
    assert_eq!(c.watermark(), Some(500 * S));
    // A relay's stored notes, newest first or led by one clamped to its
    // arrival, leave the watermark where the live notes put it.
    for (claim, arrival) in [(900, 900), (700, 900), (520, 900)] {
        let stored = Tick {
            own_clock: true,
            stored: true,
            arrival_us: Some(arrival * S),
            ..tick(claim, "b")
        };
        assert_eq!(c.judge(stored, None, &rule), Judgement::Accepted);
        assert_eq!(c.watermark(), Some(500 * S), "stored {claim}");
    }
    let live = Tick {
        own_clock: true,
        arrival_us: Some(901 * S),
        ..tick(901, "c")
    };
    c.judge(live, None, &rule);
    assert_eq!(c.watermark(), Some(901 * S), "live notes move it");
    let mut fresh = SourceClock::default();
    assert_eq!(
        fresh.judge(tick(100_000, "a"), Some(1000 * S), &rule),
        Judgement::Future,
        "judged against the other sources until it has a watermark"
    );
    let non_post = Tick {
        author: None,
        ..tick(1001, "")
    };
    assert_eq!(
        fresh.judge(non_post, Some(1000 * S), &rule),
        Judgement::Accepted
    );
    assert_eq!(fresh.watermark(), None, "non-posts never move it");
}

#[test]
fn jittered_clocks_are_accepted_and_the_watermark_follows_without_running_ahead() {
    let rule = ClockRule::default();
    let mut c = SourceClock::default();
    let mut newest = i64::MIN;
    let mut last_watermark = None;
    for i in 0..2_000i64 {
        // Server times nearly increasing: ±5 s of jitter around 10 posts/s.
        let jitter = (i * 7_919) % 10_000_001 - 5_000_000;
        let t = 1_000 * S + i * S / 10 + jitter;
        let author = format!("did:{}", i % 97);
        let tick = Tick {
            time_us: t,
            author: Some(author_key(&author)),
            arrival_us: None,
            own_clock: false,
            stored: false,
        };
        assert_eq!(c.judge(tick, None, &rule), Judgement::Accepted, "post {i}");
        newest = newest.max(t);
        let w = c.watermark();
        assert!(w >= last_watermark, "never moves back");
        assert!(w.is_none_or(|w| w <= newest), "never ahead of the posts");
        last_watermark = w;
    }
    let true_now = 1_000 * S + 1_999 * S / 10;
    assert!(
        c.watermark().is_some_and(|w| w >= true_now - 10 * S),
        "keeps up: {:?}",
        c.watermark()
    );
}
