//! The state of one decision in progress: the post's hits, sentences,
//! handles, links and hashtags, and the reasons given so far. The rules
//! that work on it live beside it: `context.rs` (what cancels a phrase),
//! `subjects/` (what a phrase is about), `score.rs` (the verdict).

use super::hashtags::{TagMention, TagOutage};
use super::subjects::{Handle, handles_in};
use super::tables::{Meaning, PhraseKind, Tables};
use super::text::{clause_starts, links_in};
use super::verdict::{Reason, Rule};
use crate::normalize::Post;

/// Weights of the evidence; documented in `patterns/README.md`.
pub const OUTAGE_WEIGHT: f32 = 1.0;
pub const WEAK_WEIGHT: f32 = 0.5;
pub const BOOST_WEIGHT: f32 = 0.25;
pub const BOOST_CAP: f32 = 0.5;
pub const HASHTAG_WEIGHT: f32 = 1.0;
pub const ERROR_WEIGHT: f32 = 1.5;
/// How far (bytes of normalized text) an ambiguous name may stand from a
/// phrase and still count: "x is down", "is steam down".
pub(super) const AMBIGUOUS_GAP: usize = 12;
/// How far a phrase may stand from the service it is attributed to; a
/// sentence boundary between them counts as [`CLAUSE_COST`] more bytes.
pub(super) const MAX_DISTANCE: usize = 120;
pub(super) const CLAUSE_COST: usize = 40;
/// Distance given to a service named only in a hashtag outside the text.
pub(super) const METADATA_DISTANCE: usize = 60;
/// Hits of one phrase kind a decision considers, at most: the first ones in
/// the text. Every phrase is checked against the context, targets and
/// services of its sentence, so a post of 2,000 characters that repeats
/// "app down " (222 outage and 222 target hits) cost hundreds of thousands
/// of comparisons. A real post has a handful of each kind; the 65th "down"
/// in one post adds nothing the first 64 did not.
pub(super) const MAX_HITS_PER_KIND: usize = 64;
/// How many phrase kinds there are: the length of [`Decision`]'s index.
const KINDS: usize = PhraseKind::Hypothetical as usize + 1;

/// One literal or regular-expression match: what it means and where.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hit {
    pub meaning: Meaning,
    pub start: usize,
    pub end: usize,
}

/// A place where the post names a service.
#[derive(Debug, Clone)]
pub(super) struct Mention {
    pub service: Service,
    /// Where in the text; `None` for a hashtag only in the metadata.
    pub span: Option<(usize, usize)>,
    /// The post is addressed to this account.
    pub addressee: bool,
}

/// A service a post can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Service {
    /// Catalogued: its index in [`Tables::services`].
    Known(u16),
    /// Not in the catalogue: spelt as its letters and digits. Made by
    /// [`Service::discovered`], which bounds its length.
    Discovered(String),
}

/// Longest name of a discovered service, in characters: as long as a
/// domain's first label may be ([`super::tables::DOMAIN_PATTERN`]). A name is chosen by
/// whoever writes the post, and it goes into every alert (and each
/// delivery's `Idempotency-Key` header): a hashtag of 16,000 letters
/// names nothing.
pub(super) const MAX_DISCOVERED_CHARS: usize = 41;

impl Service {
    /// A name not in the catalogue, if it can be one: 2 to
    /// [`MAX_DISCOVERED_CHARS`] characters.
    pub(super) fn discovered(name: String) -> Option<Service> {
        let chars = name.chars().count();
        (2..=MAX_DISCOVERED_CHARS)
            .contains(&chars)
            .then_some(Service::Discovered(name))
    }
}

/// One outage phrase on its way to a score.
pub(super) struct Phrase {
    pub hit: Hit,
    pub weight: f32,
    pub state: PhraseState,
}

#[derive(PartialEq)]
pub(super) enum PhraseState {
    Live,
    Cancelled,
    Maintenance,
}

pub(super) struct Decision<'a> {
    pub tables: &'a Tables,
    pub text: &'a str,
    /// The text as written: capitals tell names from words.
    pub original: &'a str,
    pub hits: Vec<Hit>,
    /// The phrase hits of each kind (indexed by `PhraseKind as usize`), in
    /// text order, at most [`MAX_HITS_PER_KIND`] each: built once, so no
    /// rule rescans every hit of the post for one kind.
    by_kind: [Vec<Hit>; KINDS],
    pub clause_starts: Vec<usize>,
    pub tag_mentions: Vec<TagMention>,
    pub tag_outages: Vec<TagOutage>,
    pub handles: Vec<Handle>,
    /// Links with a path: `[start, end)` in the text.
    pub links: Vec<(usize, usize)>,
    pub reasons: Vec<Reason>,
    /// Whether the reasons' words are wanted (`check`), or only what the
    /// pipeline reads of them: rule, phrase, weight, language.
    pub explain: bool,
}

impl<'a> Decision<'a> {
    pub(super) fn new(
        tables: &'a Tables,
        post: &'a Post,
        mut hits: Vec<Hit>,
        tag_mentions: Vec<TagMention>,
        tag_outages: Vec<TagOutage>,
        explain: bool,
    ) -> Self {
        // Sorted already by `classify`; `hits_in_clause` relies on it.
        hits.sort_by_key(|h| (h.start, h.end));
        let mut by_kind: [Vec<Hit>; KINDS] = Default::default();
        hits.retain(|hit| match hit.meaning {
            Meaning::Phrase(kind, _) => {
                let of_kind = &mut by_kind[kind as usize];
                let keep = of_kind.len() < MAX_HITS_PER_KIND;
                if keep {
                    of_kind.push(*hit);
                }
                keep
            }
            _ => true,
        });
        Decision {
            by_kind,
            tables,
            text: &post.text,
            original: &post.original,
            clause_starts: clause_starts(&post.text),
            hits,
            tag_mentions,
            tag_outages,
            handles: handles_in(&post.text),
            links: links_in(&post.text),
            reasons: Vec::new(),
            explain,
        }
    }

    /// A reason's words, written only when someone will read them:
    /// formatting them for every candidate post cost 7 % of the
    /// classifier's instructions.
    pub(super) fn words(&self, detail: impl FnOnce() -> String) -> String {
        if self.explain {
            detail()
        } else {
            String::new()
        }
    }

    /// The sentence byte `at` lies in (0 for the first).
    pub(super) fn clause(&self, at: usize) -> usize {
        self.clause_starts.partition_point(|&s| s <= at)
    }

    /// The byte range of the sentence byte `at` lies in.
    pub(super) fn clause_span(&self, at: usize) -> std::ops::Range<usize> {
        let clause = self.clause(at);
        let from = match clause {
            0 => 0,
            c => self.clause_starts.get(c - 1).copied().unwrap_or(0),
        };
        let end = self
            .clause_starts
            .get(clause)
            .copied()
            .unwrap_or(self.text.len());
        from..end
    }

    pub(super) fn lang(&self, lang: u8) -> Option<String> {
        self.tables.langs.get(usize::from(lang)).cloned()
    }

    /// The id a verdict and its reasons give the service.
    pub(super) fn service_id(&self, service: &Service) -> String {
        match service {
            Service::Known(n) => self.tables.services[usize::from(*n)].id.clone(),
            Service::Discovered(name) => name.clone(),
        }
    }

    /// Gives a reason for a step taken on `hit`, with its text, span and
    /// the language of its phrase list.
    pub(super) fn reason(
        &mut self,
        rule: Rule,
        hit: &Hit,
        weight: f32,
        detail: impl FnOnce() -> String,
    ) {
        let detail = self.words(detail);
        let lang = match hit.meaning {
            Meaning::Phrase(_, lang) => self.lang(lang),
            _ => None,
        };
        self.reasons.push(Reason {
            rule,
            matched: Some(self.text[hit.start..hit.end].to_owned()),
            at: Some([hit.start, hit.end]),
            lang,
            service: None,
            weight,
            detail,
        });
    }

    /// Gives a reason for naming the service `id` at `[start, end)`; its
    /// words are given the id.
    pub(super) fn naming_reason(
        &mut self,
        rule: Rule,
        span: (usize, usize),
        id: String,
        detail: impl FnOnce(&str) -> String,
    ) {
        let detail = self.words(|| detail(&id));
        self.reasons.push(Reason {
            rule,
            matched: Some(self.text[span.0..span.1].to_owned()),
            at: Some([span.0, span.1]),
            lang: None,
            service: Some(id),
            weight: 0.0,
            detail,
        });
    }

    /// The phrase hits of one kind, in text order.
    pub(super) fn hits_of(&self, kind: PhraseKind) -> std::slice::Iter<'_, Hit> {
        self.kind_hits(kind).iter()
    }

    fn kind_hits(&self, kind: PhraseKind) -> &[Hit] {
        &self.by_kind[kind as usize]
    }

    /// The phrase hits of one kind that begin in sentence `clause` (see
    /// [`Decision::clause`]), in text order: found by binary search, as
    /// the hits are sorted by where they begin.
    pub(super) fn hits_in_clause(&self, kind: PhraseKind, clause: usize) -> &[Hit] {
        let hits = self.kind_hits(kind);
        let from = match clause {
            0 => 0,
            c => self.clause_starts.get(c - 1).copied().unwrap_or(usize::MAX),
        };
        let to = self
            .clause_starts
            .get(clause)
            .copied()
            .unwrap_or(usize::MAX);
        let first = hits.partition_point(|h| h.start < from);
        let last = hits.partition_point(|h| h.start < to);
        &hits[first..last.max(first)]
    }

    /// Whether byte `at` lies inside a link with a path (`http://host/x`),
    /// which shares something rather than naming what fails.
    pub(super) fn in_link(&self, at: usize) -> bool {
        self.links.iter().any(|&(s, e)| s <= at && at < e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::Matcher;
    use crate::matcher::classify::hits_of_candidate;
    use crate::normalize::normalize;
    use crate::source::RawPost;

    fn post(text: String) -> crate::normalize::Post {
        normalize(RawPost::typed(text, Vec::new()))
    }

    /// Every phrase is checked against the hits of its sentence, so the
    /// hits a decision holds bound its work: a post that repeats a cue to
    /// 2,000 characters (222 "app down", 333 "접속"/"안됨") holds at most
    /// [`MAX_HITS_PER_KIND`] of a kind, the first ones; and the hits of a
    /// sentence found by binary search are those a scan finds.
    #[test]
    fn hits_per_kind_are_bounded_and_found_by_sentence() {
        let matcher = Matcher::embedded().expect("the embedded catalogue compiles");
        let cases = [
            (
                "app down ".repeat(222),
                Some((PhraseKind::Target, MAX_HITS_PER_KIND)),
            ),
            (
                "접속 안됨 ".repeat(333),
                Some((PhraseKind::Target, MAX_HITS_PER_KIND)),
            ),
            (
                "github is down. twitter isn't down! the site was down yesterday; \
                 scheduled maintenance: app down. stocks are down 5%"
                    .repeat(20),
                None,
            ),
            (
                "the app is down and the site is down. now it works".into(),
                None,
            ),
            ("twitter is down".into(), None),
            (String::new(), None),
        ];
        for (text, full) in cases {
            let post = post(text);
            let all = hits_of_candidate(&matcher.tables, &post);
            let decision =
                Decision::new(&matcher.tables, &post, all.clone(), vec![], vec![], false);
            for kind in PhraseKind::ALL {
                let of_kind: Vec<Hit> = all
                    .iter()
                    .filter(|h| matches!(h.meaning, Meaning::Phrase(k, _) if k == kind))
                    .copied()
                    .collect();
                let kept: Vec<(usize, usize)> =
                    decision.hits_of(kind).map(|h| (h.start, h.end)).collect();
                let first: Vec<(usize, usize)> = of_kind
                    .iter()
                    .take(MAX_HITS_PER_KIND)
                    .map(|h| (h.start, h.end))
                    .collect();
                assert_eq!(kept, first, "{kind:?} in {:?}", post.text);
                for clause in 0..=decision.clause_starts.len() + 1 {
                    let scanned: Vec<(usize, usize)> = decision
                        .hits_of(kind)
                        .filter(|h| decision.clause(h.start) == clause)
                        .map(|h| (h.start, h.end))
                        .collect();
                    let found: Vec<(usize, usize)> = decision
                        .hits_in_clause(kind, clause)
                        .iter()
                        .map(|h| (h.start, h.end))
                        .collect();
                    assert_eq!(
                        found, scanned,
                        "{kind:?} clause {clause} of {:?}",
                        post.text
                    );
                }
            }
            if let Some((kind, want)) = full {
                assert_eq!(decision.hits_of(kind).count(), want, "{:?}", post.text);
            }
            for kind in PhraseKind::ALL {
                assert!(decision.hits_of(kind).count() <= MAX_HITS_PER_KIND);
            }
        }
    }
}
