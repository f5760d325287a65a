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
//! capacity is at least the admitters of a full table). It is not
//! saved with the checkpoint (the store's format has no place for it yet):
//! a restarted daemon starts every author afresh.

use std::num::NonZeroUsize;

use lru::LruCache;

use crate::{MICROS_PER_SEC, Micros};

/// Names one author may help admit per [`BUDGET_SPAN_US`].
pub const ADMISSIONS_PER_AUTHOR: usize = 3;
/// The span of event time an author's admissions are counted over.
pub const BUDGET_SPAN_US: Micros = 3600 * MICROS_PER_SEC;

/// Per author, the event times of the admissions they counted toward.
#[derive(Debug)]
pub struct AuthorBudgets {
    per_span: usize,
    spent: LruCache<String, Vec<Micros>>,
}

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

    /// Whether `author` may still count toward admitting a name at `now`.
    pub fn allows(&self, author: &str, now: Micros) -> bool {
        self.spent
            .peek(author)
            .is_none_or(|times| recent(times, now).count() < self.per_span)
    }

    /// Records that `author` counted toward a name admitted at `now`.
    pub fn charge(&mut self, author: &str, now: Micros) {
        let times = self.spent.get_or_insert_mut(author.to_owned(), Vec::new);
        times.retain(|&t| now.saturating_sub(t) < BUDGET_SPAN_US);
        times.push(now);
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
}
