//! The decision: from the literal hits in one post to a [`Verdict`].
//!
//! 1. One Aho-Corasick pass finds every alias, phrase and context word
//!    (overlapping hits included, so `shut down` and `down` are both seen).
//! 2. Hashtags are split into a service name and an outage affix
//!    (`#InstagramDown`, `#CaiuOZap`).
//! 3. Posts with nothing that could make a report stop here: most posts.
//! 4. Regular expressions run on the candidates only.
//! 5. Outage phrases are cancelled by a longer phrase they sit inside
//!    (`feeling down`), or by market, past, negation or device-local context
//!    in the same sentence; maintenance context turns them into
//!    maintenance.
//! 6. Each surviving phrase is attributed to the nearest service mention;
//!    ambiguous names (X, Steam, Teams) count only next to a phrase or with
//!    one of the service's context words.
//! 7. The best-scoring service decides: report, recovery, maintenance, none.
//!    A failure phrase with no service near it but about a thing ("the
//!    site", "your app", "サイト") is a report whose service is not named.
//!
//! Steps 1–4 are here; the decision's state is in `decision.rs`, hashtags
//! in `hashtags.rs`, context (step 5) in `context.rs`, subjects (names,
//! handles, domains, things; step 6) in `subjects/`, the score and the
//! verdict (step 7) in `score.rs`.

use super::decision::{Decision, Hit};
use super::hashtags::read_hashtags;
use super::score::decision_reason;
use super::tables::{Meaning, PhraseKind, Tables};
use super::verdict::Verdict;
use crate::normalize::Post;

pub(crate) fn classify(tables: &Tables, post: &Post, explain: bool) -> Verdict {
    let text = post.text.as_str();
    let mut hits = find_hits(tables, text);
    let (tag_mentions, tag_outages) = read_hashtags(tables, post);

    if tag_outages.is_empty() && !hits.iter().any(could_report) {
        let mut verdict = Verdict::none();
        if explain {
            verdict.reasons.push(decision_reason(
                "no outage phrase, error message or outage hashtag",
                0.0,
            ));
        }
        return verdict;
    }
    add_regex_hits(tables, text, &mut hits);
    drop_foreign_context(tables, post, &mut hits);
    hits.sort_by_key(|h| (h.start, h.end));
    Decision::new(tables, post, hits, tag_mentions, tag_outages).decide()
}

/// A hit that can make a post a candidate: an error message or a phrase
/// of failure, recovery or maintenance.
fn could_report(hit: &Hit) -> bool {
    matches!(
        hit.meaning,
        Meaning::Error(_)
            | Meaning::Phrase(
                PhraseKind::Outage
                    | PhraseKind::Weak
                    | PhraseKind::Recovery
                    | PhraseKind::Maintenance,
                _
            )
    )
}

/// Every literal of the automaton in `text` that stands at its
/// boundaries, once per meaning.
fn find_hits(tables: &Tables, text: &str) -> Vec<Hit> {
    let mut hits = Vec::new();
    for m in tables.automaton.find_overlapping_iter(text) {
        let literal = &tables.literals[m.pattern().as_usize()];
        if !literal.left.allows(text[..m.start()].chars().next_back())
            || !literal.right.allows(text[m.end()..].chars().next())
        {
            continue;
        }
        for &meaning in tables.meanings_of(literal) {
            hits.push(Hit {
                meaning,
                start: m.start(),
                end: m.end(),
            });
        }
    }
    hits
}

/// The phrases written as regular expressions; run on candidates only.
fn add_regex_hits(tables: &Tables, text: &str, hits: &mut Vec<Hit>) {
    for (regex, kind, lang) in &tables.regexes {
        for m in regex.find_iter(text) {
            hits.push(Hit {
                meaning: Meaning::Phrase(*kind, *lang),
                start: m.start(),
                end: m.end(),
            });
        }
    }
}

/// Context lists are a language's own words: "hier" is "yesterday" in
/// French but "here" in German. They apply when the post declares no
/// language or declares theirs. (Outage phrases apply whatever the
/// declared language: posts mix languages and often declare wrongly.)
fn drop_foreign_context(tables: &Tables, post: &Post, hits: &mut Vec<Hit>) {
    if post.langs.is_empty() {
        return;
    }
    hits.retain(|h| match h.meaning {
        Meaning::Phrase(kind, lang) if kind.is_context() => tables
            .langs
            .get(usize::from(lang))
            .is_none_or(|code| post.langs.iter().any(|l| l == code)),
        _ => true,
    });
}
