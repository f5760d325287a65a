//! How far a server-dated source (Jetstream, whose `time_us` is its
//! server's clock) usually runs behind our arrival clock, to tell a
//! source *catching up* from one *steadily behind*.
//!
//! Both deliver posts whose buckets have closed, when the source is more
//! than `wait_secs` behind the others. A steady offset (a server clock a
//! minute slow) delivers one bucket's worth per bucket, and its posts are
//! added to the oldest open bucket as late, which keeps its rate. A
//! catch-up (a Jetstream back after minutes away, or read from its cursor
//! after a restart, beside a Mastodon that kept going) delivers minutes
//! of posts in a second: added the same way, they made one bucket hold
//! minutes of reports, and paged. The two differ in the delay of each
//! post behind its arrival: steady for the offset, far beyond the usual
//! for the catch-up ([`UsualDelay::exceeded`]).
//!
//! The usual delay is measured against the source's watermark, which a
//! quorum of authors moves, so no single post's claimed time (one dated
//! ahead, one dated back) sets it.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::Micros;

/// A period of arrival over which the least delay is kept.
const PERIOD_US: Micros = 10 * crate::MICROS_PER_SEC;

/// How many periods are remembered: about five minutes of arrival while
/// posts flow. A lasting change (a server clock stepped) is learned once
/// they have passed; an absence of any length keeps the delay from
/// before it, which is the one a catch-up is measured against.
const PERIODS: usize = 32;

/// The least delay of the source's watermark behind its arrival, per
/// period of arrival: saved with the source's clock, so a catch-up right
/// after a restart is told apart as it is mid-run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsualDelay {
    periods: VecDeque<(Micros, Micros)>,
}

impl UsualDelay {
    /// The source's watermark stood at `watermark` when a post arrived at
    /// `arrival_us`. An arrival in a period before the newest one held
    /// teaches nothing: the arrival clock does not go back, so it is a
    /// frame read again (a resumed replay reads its files from the start),
    /// whose delay behind today's watermark is not how far the source runs
    /// behind; the wall clock stepped back is learned once it passes the
    /// newest period again.
    pub fn observe(&mut self, arrival_us: Micros, watermark: Micros) {
        let delay = arrival_us.saturating_sub(watermark);
        let period = arrival_us.div_euclid(PERIOD_US);
        match self.periods.back_mut() {
            Some((last, _)) if period < *last => {}
            Some((last, least)) if *last == period => *least = (*least).min(delay),
            _ => {
                // `while`: a restored list may hold more (a damaged
                // checkpoint).
                while self.periods.len() >= PERIODS {
                    self.periods.pop_front();
                }
                self.periods.push_back((period, delay));
            }
        }
    }

    /// The least delay remembered: how far behind the source runs when it
    /// is current (`None` before its first post with an arrival).
    pub fn usual(&self) -> Option<Micros> {
        self.periods.iter().map(|&(_, least)| least).min()
    }

    /// Whether a post dated `time_us` that arrived at `arrival_us` is more
    /// than `margin_us` later than the source usually runs: part of a
    /// catch-up. Never before the usual delay is known.
    pub fn exceeded(&self, arrival_us: Micros, time_us: Micros, margin_us: Micros) -> bool {
        self.usual().is_some_and(|usual| {
            arrival_us.saturating_sub(time_us) > usual.saturating_add(margin_us)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = crate::MICROS_PER_SEC;

    /// A case: its name, `observe`s of (arrival s, watermark s), a post of
    /// (arrival s, time s), and whether it exceeds the usual delay by more
    /// than 30 s.
    type Case = (&'static str, &'static [(i64, i64)], (i64, i64), bool);

    #[test]
    fn a_catch_up_exceeds_the_usual_delay_and_a_steady_offset_does_not() {
        let cases: [Case; 10] = [
            ("nothing known yet", &[], (1_000, 0), false),
            (
                "current source, current post",
                &[(100, 99), (110, 109)],
                (120, 119),
                false,
            ),
            (
                "current source, post from 5 min ago",
                &[(100, 99), (110, 109)],
                (420, 120),
                true,
            ),
            ("within the margin", &[(100, 99)], (200, 170), false),
            ("just past the margin", &[(100, 99)], (200, 168), true),
            (
                "a minute slow, steadily",
                &[(100, 40), (110, 50), (120, 60)],
                (130, 70),
                false,
            ),
            (
                "a minute slow, catching up 5 min",
                &[(100, 40), (110, 50)],
                (420, 110),
                true,
            ),
            // The least delay counts: one period of a stall does not
            // make the stall usual.
            (
                "after one slow period",
                &[(100, 99), (110, 9)],
                (120, 60),
                true,
            ),
            // A server clock ahead of ours: the usual delay is negative.
            (
                "a server 20 s ahead",
                &[(100, 120), (110, 130)],
                (120, 139),
                false,
            ),
            // An older arrival against a later watermark: a frame read
            // again, which does not make the source seem a minute ahead.
            (
                "a frame of an earlier period read again",
                &[(100, 99), (110, 109), (40, 109)],
                (120, 100),
                false,
            ),
        ];
        for (name, seen, (arrival, time), want) in cases {
            let mut delay = UsualDelay::default();
            for &(a, w) in seen {
                delay.observe(a * S, w * S);
            }
            assert_eq!(
                delay.exceeded(arrival * S, time * S, 30 * S),
                want,
                "{name}"
            );
        }
    }

    /// Only the last `PERIODS` periods are remembered, one entry each: a
    /// lasting change of offset is learned once they have passed, and
    /// many posts in one period keep one entry, its least delay.
    #[test]
    fn the_memory_is_a_bounded_number_of_periods() {
        let mut delay = UsualDelay::default();
        for n in 0..100 {
            delay.observe(n * S, n * S - S);
        }
        assert_eq!(delay.periods.len(), 10);
        assert_eq!(delay.usual(), Some(S));
        // Then the server's clock steps back two minutes, for good.
        let step = 120 * S;
        let start = 100 * S;
        let mut exceeded_at = Vec::new();
        for n in 0..(PERIODS as i64 + 2) {
            let arrival = start + n * PERIOD_US;
            if delay.exceeded(arrival, arrival - step, 30 * S) {
                exceeded_at.push(n);
            }
            delay.observe(arrival, arrival - step);
        }
        assert_eq!(delay.periods.len(), PERIODS);
        assert_eq!(delay.usual(), Some(step));
        // Until the older periods have left (after `PERIODS` new ones),
        // the new offset is taken for a catch-up.
        assert_eq!(exceeded_at, (0..PERIODS as i64).collect::<Vec<_>>());
    }
}
