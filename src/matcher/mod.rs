//! Match: is this post an outage report, for which service, and why?
//!
//! The vocabulary lives in `patterns/` (services and per-language phrase
//! lists), compiled into two Aho-Corasick automata: a small one of the
//! literals that can make a report (failure, recovery and maintenance
//! phrases, error messages), which is all most posts ever see, and one of
//! every literal (names and context words too), run only on the few posts
//! the first one made candidates, so a post's cost barely grows with the
//! number of services. Regular expressions run only on candidates too.
//! Pure: no I/O (the catalogue is loaded before), no clock.

mod classify;
mod compile;
mod context;
mod decision;
mod hashtags;
pub mod patterns;
mod recovered;
mod score;
mod subjects;
mod tables;
mod text;
mod verdict;

pub use patterns::{Catalogue, PatternError};
pub use tables::is_unsegmented;
pub use verdict::{Class, REPORT_THRESHOLD, Reason, Rule, Verdict};

use crate::normalize::Post;

/// A compiled catalogue, ready to classify posts. Cheap to share by reference.
pub struct Matcher {
    tables: tables::Tables,
}

impl Matcher {
    /// Consumes the catalogue: its files' text is dropped before the
    /// automata are built, which is the build's peak of memory.
    pub fn new(catalogue: Catalogue) -> Result<Matcher, PatternError> {
        Ok(Matcher {
            tables: compile::compile(catalogue)?,
        })
    }

    /// The patterns compiled into the binary.
    pub fn embedded() -> Result<Matcher, PatternError> {
        Matcher::new(Catalogue::embedded()?)
    }

    /// The decision for one post, with reasons only for candidate posts;
    /// the hot path.
    pub fn classify(&self, post: &Post) -> Verdict {
        classify::classify(&self.tables, post, false)
    }

    /// The decision with every reason, including why a post is not a
    /// candidate at all; for `check --explain`.
    pub fn explain(&self, post: &Post) -> Verdict {
        classify::classify(&self.tables, post, true)
    }

    pub fn service_count(&self) -> usize {
        self.tables.services.len()
    }

    pub fn languages(&self) -> &[String] {
        &self.tables.langs
    }

    /// The catalogued services: (id, display name, category).
    pub fn services(&self) -> impl Iterator<Item = (&str, &str, patterns::Category)> {
        self.tables
            .services
            .iter()
            .map(|s| (s.id.as_str(), s.name.as_str(), s.category))
    }

    /// Whether `name` (a label, a handle, a brand as people write it) names
    /// the service `id`: the same letters and digits, or one of the
    /// service's names, hashtag stems or handles. Used to judge service
    /// accuracy against hand labels, which spell services as people do.
    pub fn is_name_of(&self, id: &str, name: &str) -> bool {
        let stem = tables::hashtag_stem(name.trim_start_matches('@'));
        if stem.is_empty() {
            return false;
        }
        if stem == tables::hashtag_stem(id) {
            return true;
        }
        self.tables.stems.get(&stem).is_some_and(|s| {
            self.tables
                .services
                .get(usize::from(s.service))
                .is_some_and(|svc| svc.id == id)
        })
    }

    /// Display name of a catalogued service.
    pub fn service_name(&self, id: &str) -> Option<&str> {
        self.tables
            .services
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.name.as_str())
    }
}
