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
use crate::store_format::AddedIn9;
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
        Judgement::Accepted
    }

    /// A post of this source, accepted by [`SourceClock::judge`], is
    /// counted for the first time: how far its arrival runs behind the
    /// watermark teaches the usual delay ([`SourceClock::caught_up`]).
    /// Only a first count teaches: a post read again (a resumed replay
    /// reads its files from the start, a server sends a frame twice)
    /// arrived long before today's watermark, and taught the clock the
    /// source ran minutes ahead, so every late post of the next minutes
    /// was taken for a catch-up and dropped.
    pub fn learn_delay(&mut self, arrival: Arrival) {
        if arrival.own_clock {
            return;
        }
        if let (Some(arrival_us), Some(watermark)) = (arrival.at_us, self.watermark) {
            self.delay.observe(arrival_us, watermark);
        }
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
    /// holds posts), whose later events may be older than our clock.
    ///
    /// A clock without a watermark yet starts one here: it exists because
    /// the source's events were judged, and those of a relay heard only
    /// in its catch-up (stored notes, before `EOSE`, which move no
    /// watermark) sit in buckets before this arrival. Left without one
    /// until a live note came, those buckets stayed open, and a surge in
    /// the catch-up was not alerted, for as long as the relay was quiet.
    /// The first live note starts it at its arrival all the same, so this
    /// only stops the wait; a restored source had a watermark already.
    ///
    /// The caller knows the source's kind and calls this only for one
    /// dated by arrival, outside a stored range ([`crate::pipeline::Pipeline::time_passed`],
    /// `record`'s follower): with no post yet, a clock alone cannot tell a
    /// server-dated source (an empty recent list) from such a one.
    pub fn time_passed(&mut self, arrival_us: Micros) {
        if !self.server_dated() {
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
#[path = "clock_tests.rs"]
mod tests;
