//! Event time one event cannot move: a watermark per source.
//!
//! Every source has its own watermark, the event time up to which it is
//! known to have delivered. Windows close on the newest source watermark,
//! held back for a server-dated source up to `[window] wait_secs` behind it
//! ([`closing_watermark`]), so what a source a little behind delivers
//! counts in its own buckets; posts are judged stale against their own
//! source's watermark only, and a live source resumes from its watermark,
//! so one source running late, fast or wrong never makes another source's
//! posts stale.
//!
//! **The rule.** An event is *future*, quarantined and counted, when it is
//! more than `max_future_secs` ahead of
//! - the arrival clock, when the frame's arrival time is known (live, and
//!   replaying recordings that carry arrival times): our own clock is the
//!   reference, and the watermark never runs ahead of it;
//! - otherwise the source's watermark (or, before it has one, the newest
//!   watermark of any source): replaying an old recording.
//!
//! An accepted event does not move the watermark by itself. The watermark is
//! the `quorum`-th largest event time among the distinct authors of the
//! source's last [`RECENT`] accepted posts: at least `quorum` different
//! authors must have reached a time before the watermark does, and it never
//! moves back. One author (or `quorum - 1` colluding ones) posting from a
//! wrong clock changes nothing. Sources whose event time *is* the arrival
//! clock (Mastodon and Nostr, whose own timestamps authors set) move the
//! watermark with every event.
//!
//! Without an arrival clock a stream may legitimately jump ahead (two
//! recordings hours apart): when the last [`JUMP_RUN`] events were all
//! beyond the bound, with no event in between, and `quorum` distinct
//! authors among them agree on a time, the watermark jumps there. The
//! quarantined events that led to the jump stay counted as future (at
//! least [`JUMP_RUN`] events per gap). The unbroken run is what tells a
//! gap from liars: three accounts posting dated 2100 in the middle of a
//! stream (any `replay --jetstream` reads strangers' timestamps) had
//! jumped the watermark to 2100, and every post after them was stale.
//!
//! Pure: no clock is read here; the arrival time comes with the frame.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::delay::UsualDelay;
use crate::window::AddedIn9;
use crate::{MICROS_PER_SEC, Micros};

/// Accepted posts remembered per source for the quorum.
pub const RECENT: usize = 32;
/// Quarantined events remembered per source for a jump.
pub const AHEAD: usize = 32;
/// Events in a row, all beyond the bound, before the watermark may jump:
/// a firehose sends hundreds a second, so no outsider's posts stand this
/// many together, while the far side of a real gap is nothing else.
pub const JUMP_RUN: usize = 16;
/// The author of a quarantined event that has none (a non-post): it
/// lengthens the run but never counts towards the quorum.
const NO_AUTHOR: u64 = 0;

/// How far ahead an event may be, and how many authors move the watermark.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockRule {
    pub max_future_us: Micros,
    pub quorum: usize,
}

impl Default for ClockRule {
    fn default() -> Self {
        ClockRule {
            max_future_us: DEFAULT_MAX_FUTURE_SECS * MICROS_PER_SEC,
            quorum: DEFAULT_QUORUM,
        }
    }
}

pub const DEFAULT_MAX_FUTURE_SECS: i64 = 300;
pub const DEFAULT_QUORUM: usize = 3;

/// What the clock made of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    Accepted,
    /// Too far ahead: quarantined, counted, never added or used as a cursor.
    Future,
}

/// One event as the clock sees it.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    pub time_us: Micros,
    /// A hash of the author ([`author_key`]); `None` when unknown, as for
    /// non-posts: such events are judged but never move the watermark.
    pub author: Option<u64>,
    /// When the frame arrived (wall clock µs), if known.
    pub arrival_us: Option<Micros>,
    /// The event time is the arrival clock (Mastodon, Nostr).
    pub own_clock: bool,
    /// Stored history an own-clock source was asked for (a Nostr relay's
    /// notes before `EOSE`): dated by its author's claim within the gap it
    /// fills, so it never moves the watermark.
    pub stored: bool,
}

/// When and how a frame arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Arrival {
    /// Wall-clock µs of arrival: live, or from a recording's clock line.
    pub at_us: Option<Micros>,
    /// The decoder set the event time to the arrival time (Mastodon, Nostr).
    pub own_clock: bool,
    /// Stored history asked for (see [`Tick::stored`]).
    pub stored: bool,
}

impl Arrival {
    /// The tick of an event dated `time_us` by `author` (its
    /// [`author_key`]; `None` for a non-post) that arrived so: the one way
    /// the pipeline and `record` (whose reconnects resume from the same
    /// watermark) put an event to a source's clock.
    pub fn tick(self, time_us: Micros, author: Option<u64>) -> Tick {
        Tick {
            time_us,
            author,
            arrival_us: self.at_us,
            own_clock: self.own_clock,
            stored: self.stored,
        }
    }
}

/// The watermark of one source, with the recent and quarantined times
/// that decide its next move, and how far behind the arrival clock it
/// usually runs: all are saved with the checkpoint, so a resumed run
/// moves the watermark, and tells a catch-up, where the uninterrupted
/// one does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceClock {
    watermark: Option<Micros>,
    recent: VecDeque<(u64, Micros)>,
    ahead: VecDeque<(u64, Micros)>,
    #[serde(default)]
    delay: AddedIn9<UsualDelay>,
}

impl SourceClock {
    /// Continues from a saved watermark alone (the source's cursor, from a
    /// checkpoint written before clocks were saved whole).
    pub fn restored(watermark: Option<Micros>) -> Self {
        SourceClock {
            watermark,
            ..SourceClock::default()
        }
    }

    pub fn watermark(&self) -> Option<Micros> {
        self.watermark
    }

    /// Whether its events are dated by a server's clock (Jetstream's
    /// `time_us`): only such a source can fall behind and then deliver
    /// what it missed, so only such a source is waited for. Its accepted
    /// posts are what the recent list holds; an own-clock source (Mastodon,
    /// Nostr), dated by our arrival clock, never fills it.
    pub fn server_dated(&self) -> bool {
        !self.recent.is_empty()
    }

    /// Judges one event; `fallback` is the newest watermark of any source,
    /// the reference while this one has none.
    pub fn judge(&mut self, tick: Tick, fallback: Option<Micros>, rule: &ClockRule) -> Judgement {
        let bound = match tick.arrival_us {
            Some(arrival) => Some(arrival.saturating_add(rule.max_future_us)),
            None => self
                .watermark
                .or(fallback)
                .map(|w| w.saturating_add(rule.max_future_us)),
        };
        if bound.is_some_and(|bound| tick.time_us > bound) {
            if tick.arrival_us.is_none() {
                self.note_ahead(tick.author.unwrap_or(NO_AUTHOR), tick.time_us, rule);
            }
            return Judgement::Future;
        }
        // An event within the bound breaks any run towards a jump.
        self.ahead.clear();
        let Some(author) = tick.author else {
            return Judgement::Accepted;
        };
        if tick.own_clock {
            // A relay's stored notes come in any order (newest first, as
            // NIP-01 suggests, or led by one dated ahead and clamped to its
            // arrival): the first of them raised the watermark to now, and
            // the rest of the catch-up, more than `max_late_secs` behind
            // it, was stale. Live notes move it once the catch-up ends.
            if !tick.stored {
                self.raise(tick.time_us);
            }
            return Judgement::Accepted;
        }
        // `while`: a restored clock may hold more (a damaged checkpoint).
        while self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((author, tick.time_us));
        if self.watermark.is_none() {
            self.first_watermark(bound, rule);
        } else if let Some(agreed) = quorum_time(&self.recent, rule.quorum, self.watermark) {
            self.raise(agreed);
        }
        if let (Some(arrival), Some(watermark)) = (tick.arrival_us, self.watermark) {
            self.delay.observe(arrival, watermark);
        }
        Judgement::Accepted
    }

    /// Whether an accepted post dated `time_us`, of a source so dated,
    /// arrived as part of a catch-up: more than `margin_us` later than the
    /// source usually runs behind the arrival clock. A stored note (a
    /// relay's catch-up, dated by its author within the gap it fills) is
    /// measured against its arrival, the time of an own-clock source; a
    /// live own-clock event is dated by its arrival and never is one.
    /// Without an arrival (a recording without clock lines) nothing is.
    pub fn caught_up(&self, arrival: Arrival, time_us: Micros, margin_us: Micros) -> bool {
        let Some(arrival_us) = arrival.at_us else {
            return false;
        };
        if arrival.own_clock {
            return arrival.stored && arrival_us.saturating_sub(time_us) > margin_us;
        }
        self.delay.exceeded(arrival_us, time_us, margin_us)
    }

    /// The first watermark. With a bound (the arrival clock, another
    /// source's watermark) the usual quorum. Without one, nothing has
    /// judged the times so far, so a majority decides: the median of the
    /// first `2 × quorum + 1` distinct authors; and the times it makes
    /// future leave the recent list, as they would have been quarantined
    /// had the watermark been there. By the usual quorum alone, the first
    /// three authors of a recording dated 2100 set the watermark there,
    /// and every post after them was stale (0 alerts on the demo).
    fn first_watermark(&mut self, bound: Option<Micros>, rule: &ClockRule) {
        if bound.is_some() {
            if let Some(agreed) = quorum_time(&self.recent, rule.quorum, None) {
                self.raise(agreed);
            }
            return;
        }
        // The median of `2 × quorum + 1` authors; or, once the recent list
        // is full with fewer (a small stream), of the authors it holds.
        let authors = distinct_authors(&self.recent);
        let full = self.recent.len() >= RECENT;
        if authors < rule.quorum.max(1) || (authors < 2 * rule.quorum + 1 && !full) {
            return;
        }
        let Some(median) = quorum_time(&self.recent, authors.div_ceil(2).max(1), None) else {
            return;
        };
        let bound = median.saturating_add(rule.max_future_us);
        self.recent.retain(|&(_, time)| time <= bound);
        // Among what is left, the usual quorum (never below the median).
        if let Some(agreed) = quorum_time(&self.recent, rule.quorum, None) {
            self.raise(agreed);
        }
    }

    /// Time passed at a source dated by arrival (Mastodon, Nostr): it is
    /// `arrival_us` now, and nothing the source sends later can be dated
    /// before, so the watermark moves there whether or not a post came
    /// (a delete, a quiet spell: see [`crate::source::ws::Ticks`]). Never
    /// moves the clock of a source dated by its server (its recent list
    /// holds posts), whose later events may be older than our clock, nor
    /// one without a watermark yet (nothing live dated by it so far, so
    /// no bucket of its own to close).
    pub fn time_passed(&mut self, arrival_us: Micros) {
        if self.watermark.is_some() && !self.server_dated() {
            self.raise(arrival_us);
        }
    }

    fn raise(&mut self, to: Micros) {
        self.watermark = Some(self.watermark.map_or(to, |w| w.max(to)));
    }

    /// Remembers a quarantined event; jumps when a quorum agrees.
    fn note_ahead(&mut self, author: u64, time_us: Micros, rule: &ClockRule) {
        while self.ahead.len() >= AHEAD {
            self.ahead.pop_front();
        }
        self.ahead.push_back((author, time_us));
        if self.ahead.len() < JUMP_RUN {
            return;
        }
        // Only what is still ahead of the watermark counts (a restored
        // run may be older than it), so the watermark never moves back.
        let authored = self.ahead.iter().filter(|(a, _)| *a != NO_AUTHOR);
        if let Some(agreed) = quorum_time(authored, rule.quorum, self.watermark) {
            tracing::info!(
                from = ?self.watermark,
                to = agreed,
                "event time jumped ahead: {} authors agree",
                rule.quorum
            );
            self.raise(agreed);
            self.ahead.clear();
            self.recent.clear();
        }
    }
}

/// The watermark buckets close on: the newest source watermark, held back
/// to the slowest server-dated source no more than `wait_us` behind it.
///
/// A source behind the others (a Jetstream reconnecting and reading from
/// its cursor while Mastodon kept going) would otherwise find its buckets
/// closed and its minutes of posts pushed into the oldest open bucket, a
/// surge nobody made. Waiting has a bound, since alerts wait too: a source
/// further behind than `wait_us` (stopped, a replayed file that ended,
/// one lagging for minutes) no longer holds the others. Own-clock sources
/// never hold: their events are dated on arrival, so none can come from
/// before their watermark.
pub fn closing_watermark<'a>(
    clocks: impl Iterator<Item = &'a SourceClock> + Clone,
    wait_us: Micros,
) -> Option<Micros> {
    let newest = clocks.clone().filter_map(SourceClock::watermark).max()?;
    let waited_from = newest.saturating_sub(wait_us);
    let slowest = clocks
        .filter(|clock| clock.server_dated())
        .filter_map(SourceClock::watermark)
        .filter(|&w| w >= waited_from)
        .min();
    Some(slowest.unwrap_or(newest))
}

/// The `quorum`-th largest time among distinct authors (each author at its
/// newest time), if there are that many authors and it is later than
/// `above` (the watermark, which never moves back, so nothing at or before
/// it can move it).
///
/// Runs on every accepted post, so it keeps only the `quorum` newest
/// distinct authors seen so far instead of sorting the window: an author
/// that drops out of that short list has `quorum` others newer than it and
/// can only come back with a newer time, which is then compared afresh.
fn quorum_time<'a>(
    events: impl IntoIterator<Item = &'a (u64, Micros)>,
    quorum: usize,
    above: Option<Micros>,
) -> Option<Micros> {
    let quorum = quorum.max(1);
    // (author, newest time), newest first; `quorum` is small (default 3).
    let mut top: Vec<(u64, Micros)> = Vec::with_capacity(quorum + 1);
    for &(author, time) in events {
        if above.is_some_and(|above| time <= above) {
            continue;
        }
        if let Some(at) = top.iter().position(|&(a, _)| a == author) {
            if top[at].1 >= time {
                continue;
            }
            top.remove(at);
        } else if top.len() == quorum && top[quorum - 1].1 >= time {
            continue;
        }
        let at = top.partition_point(|&(_, t)| t >= time);
        top.insert(at, (author, time));
        top.truncate(quorum);
    }
    (top.len() == quorum).then(|| top[quorum - 1].1)
}

/// How many distinct authors `events` holds (at most [`RECENT`]).
fn distinct_authors(events: &VecDeque<(u64, Micros)>) -> usize {
    let mut seen: Vec<u64> = events.iter().map(|&(author, _)| author).collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

/// The author hash a [`Tick`] carries.
pub fn author_key(author: &str) -> u64 {
    // Never [`NO_AUTHOR`].
    xxhash_rust::xxh3::xxh3_64(author.as_bytes()).max(NO_AUTHOR + 1)
}

#[cfg(test)]
mod tests {
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
}
