//! How many discovered names each author has lately helped admit.
//!
//! A name is admitted by `min_authors` distinct authors, and the cap on
//! tracked names bounds how many are tracked at once, but not how many the
//! same few accounts admit one after another: three accounts taking turns
//! on a new `#T<n>xDown` every three posts admitted nine names a second.
//! So an author counts toward admitting at most
//! [`ADMISSIONS_PER_AUTHOR`] names per [`BUDGET_SPAN_US`] of event time;
//! past that their posts of new names are turned away (their posts of
//! tracked names still count). A real person is among the first few
//! authors of a new name a few times a day at most; a genuine outage has
//! many more authors than the few it needs, so it is admitted by others.
//!
//! The record is itself bounded: at most `capacity` authors, the least
//! recently charged forgotten first (forgotten, an author starts afresh:
//! pushing one out takes `capacity` other authors' admissions, so the
//! capacity is at least the admitters of a full table). It is saved with
//! the checkpoint ([`SavedBudgets`], authors by digest, [`AuthorId`]): a
//! restarted run that gave every author a fresh allowance admitted, under
//! a flood of tags, names the uninterrupted run turned away.

use std::num::NonZeroUsize;

use lru::LruCache;

use super::author::AuthorId;
use crate::{MICROS_PER_SEC, Micros};

/// Names one author may help admit per [`BUDGET_SPAN_US`].
pub const ADMISSIONS_PER_AUTHOR: usize = 3;
/// The span of event time an author's admissions are counted over.
pub const BUDGET_SPAN_US: Micros = 3600 * MICROS_PER_SEC;

/// Per author, the event times of the admissions they counted toward.
#[derive(Debug)]
pub struct AuthorBudgets {
    per_span: usize,
    spent: LruCache<AuthorId, Vec<Micros>>,
}

/// The record as the checkpoint holds it: authors least recently charged
/// first (the order a restore puts them back in, so the same one is
/// forgotten next), each with the times of their admissions. Bounded as
/// the record is; about 40 bytes an author.
pub type SavedBudgets = Vec<(AuthorId, Vec<Micros>)>;

impl AuthorBudgets {
    /// At most `capacity` authors remembered, each allowed `per_span`
    /// admissions per [`BUDGET_SPAN_US`].
    pub fn new(capacity: usize, per_span: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        AuthorBudgets {
            per_span,
            spent: LruCache::new(capacity),
        }
    }

    /// Continues from a checkpoint's record (see [`SavedBudgets`]); a
    /// capacity lowered since forgets the least recently charged.
    pub fn restored(capacity: usize, per_span: usize, saved: SavedBudgets) -> Self {
        let mut budgets = AuthorBudgets::new(capacity, per_span);
        for (author, times) in saved {
            budgets.spent.put(author, times);
        }
        budgets
    }

    /// Whether `author` may still count toward admitting a name at `now`.
    pub fn allows(&self, author: &str, now: Micros) -> bool {
        self.spent
            .peek(&AuthorId::of(author))
            .is_none_or(|times| recent(times, now).count() < self.per_span)
    }

    /// Records that `author` counted toward a name admitted at `now`.
    pub fn charge(&mut self, author: &str, now: Micros) {
        let times = self.spent.get_or_insert_mut(AuthorId::of(author), Vec::new);
        times.retain(|&t| now.saturating_sub(t) < BUDGET_SPAN_US);
        times.push(now);
    }

    /// The record in the shape of [`SavedBudgets`], without copying it.
    pub fn saved(&self) -> impl Iterator<Item = (&AuthorId, &Vec<Micros>)> {
        self.spent.iter().rev()
    }

    /// Authors remembered now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.spent.len()
    }
}

/// The admissions of `times` that still count at `now`.
fn recent(times: &[Micros], now: Micros) -> impl Iterator<Item = &Micros> {
    times
        .iter()
        .filter(move |&&t| now.saturating_sub(t) < BUDGET_SPAN_US)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_author_admits_a_few_names_per_span() {
        let mut budgets = AuthorBudgets::new(10, 3);
        for at in [0, 1, 2] {
            assert!(budgets.allows("a", at));
            budgets.charge("a", at);
        }
        assert!(!budgets.allows("a", 3), "three spent within the span");
        assert!(budgets.allows("b", 3), "another author is not charged");
        assert!(!budgets.allows("a", BUDGET_SPAN_US - 1));
        assert!(budgets.allows("a", BUDGET_SPAN_US), "the first one lapsed");
        budgets.charge("a", BUDGET_SPAN_US);
        assert!(!budgets.allows("a", BUDGET_SPAN_US));
    }

    #[test]
    fn the_record_is_bounded() {
        let mut budgets = AuthorBudgets::new(4, 1);
        for i in 0..1000 {
            budgets.charge(&format!("u{i}"), i);
        }
        assert_eq!(budgets.len(), 4);
        assert!(!budgets.allows("u999", 1000));
        assert!(budgets.allows("u0", 1000), "forgotten: afresh");
    }

    /// Saved and restored, the record allows what the original allows and
    /// forgets the same author next.
    #[test]
    fn a_restored_record_goes_on_as_the_original() {
        let mut original = AuthorBudgets::new(3, 2);
        for (author, at) in [("a", 0), ("b", 1), ("a", 2), ("c", 3), ("b", 4)] {
            original.charge(author, at);
        }
        let saved: SavedBudgets = original
            .saved()
            .map(|(author, times)| (*author, times.clone()))
            .collect();
        let bytes = postcard::to_allocvec(&saved).expect("encode");
        let mut restored =
            AuthorBudgets::restored(3, 2, postcard::from_bytes(&bytes).expect("decode"));
        for budgets in [&mut original, &mut restored] {
            assert!(!budgets.allows("a", 5), "a spent two");
            assert!(budgets.allows("c", 5));
            // A fourth author pushes out the least recently charged: a.
            budgets.charge("d", 5);
            assert!(budgets.allows("a", 6), "a forgotten");
            assert!(!budgets.allows("b", 6), "b remembered");
        }
    }
}
