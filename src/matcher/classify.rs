//! The decision: from the literal hits in one post to a [`Verdict`].
//!
//! 1. Hashtags are split into a service name and an outage affix
//!    (`#InstagramDown`, `#CaiuOZap`).
//! 2. The cue automaton looks for a literal that could make a report (a
//!    phrase of failure, recovery or maintenance, an error message).
//! 3. Posts with neither stop here: most posts, judged without a look at
//!    the catalogue's thousands of names.
//! 4. On the candidates, one Aho-Corasick pass finds every alias, phrase
//!    and context word (overlapping hits included, so `shut down` and
//!    `down` are both seen), and the regular expressions run.
//! 5. Outage phrases are cancelled by a longer phrase they sit inside
//!    (`feeling down`), by a condition, wish or habit or a negator just
//!    before them, or by market, past, negation or device-local context
//!    in the same sentence; maintenance context turns them into
//!    maintenance; phrases overlapping in part count once. After the
//!    subjects are known, a recovery of the same service cancels them
//!    (`recovered.rs`).
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
use super::tables::{Literal, Meaning, PhraseKind, Tables};
use super::verdict::Verdict;
use crate::normalize::Post;

pub(crate) fn classify(tables: &Tables, post: &Post, explain: bool) -> Verdict {
    let text = post.text.as_str();
    let (tag_mentions, tag_outages) = read_hashtags(tables, post);

    if tag_outages.is_empty() && !has_cue(tables, text) {
        let mut verdict = Verdict::none();
        if explain {
            verdict.reasons.push(decision_reason(
                "no outage phrase, error message or outage hashtag",
                0.0,
            ));
        }
        return verdict;
    }
    let mut hits = find_hits(tables, text);
    add_regex_hits(tables, text, &mut hits);
    drop_context_of_absent_languages(tables, post, &mut hits);
    hits.sort_by_key(|h| (h.start, h.end));
    Decision::new(tables, post, hits, tag_mentions, tag_outages, explain).decide()
}

/// The hits [`classify`] gives a candidate's decision, for the tests of
/// the rules that read them.
#[cfg(test)]
pub(super) fn hits_of_candidate(tables: &Tables, post: &Post) -> Vec<Hit> {
    let mut hits = find_hits(tables, &post.text);
    add_regex_hits(tables, &post.text, &mut hits);
    drop_context_of_absent_languages(tables, post, &mut hits);
    hits.sort_by_key(|h| (h.start, h.end));
    hits
}

/// Whether `text` holds a literal that can make a post a candidate
/// ([`Meaning::can_report`](super::tables::Meaning::can_report)) at its
/// boundaries: exactly when the full scan would find one, as the cue
/// automaton holds those literals and the boundaries are the same.
fn has_cue(tables: &Tables, text: &str) -> bool {
    tables.cues.find_overlapping_iter(text).any(|m| {
        let literal = tables.cue_literals[m.pattern().as_usize()] as usize;
        stands(&tables.literals[literal], text, &m)
    })
}

/// Whether a literal found at `m` stands at its boundaries in `text`.
fn stands(literal: &Literal, text: &str, m: &aho_corasick::Match) -> bool {
    literal.left.allows(text[..m.start()].chars().next_back())
        && literal.right.allows(text[m.end()..].chars().next())
}

/// Every literal of the automaton in `text` that stands at its
/// boundaries, once per meaning.
fn find_hits(tables: &Tables, text: &str) -> Vec<Hit> {
    let mut hits = Vec::new();
    for m in tables.automaton.find_overlapping_iter(text) {
        let literal = &tables.literals[m.pattern().as_usize()];
        if !stands(literal, text, &m) {
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
    for (regex, kind, lang) in tables.regexes.matching(text) {
        for m in regex.find_iter(text) {
            hits.push(Hit {
                meaning: Meaning::Phrase(*kind, *lang),
                start: m.start(),
                end: m.end(),
            });
        }
    }
}

/// Context lists are a language's own words, and some are ordinary words
/// elsewhere: "hier" is "yesterday" in French but "here" in German
/// ("whatsapp geht hier nicht"). A context word counts when the post is
/// written in its language: it holds a failure, weak, recovery or
/// maintenance phrase of that language, or a second word of that
/// language's lists, or declares it (a word in the lists of several
/// languages counts for each). A post that declares no language keeps
/// every list, as before ("telekom aktie heute 3% down" is German with an
/// English "down"). An error
/// message is in no language, so with one every list counts ("got the
/// fail whale yesterday"); so do the things that fail ("web", "app",
/// "server" are shared across languages and are no false friends). The
/// declared language only adds: Bluesky's `langs` is often the device's
/// language and people mix languages, so scoping the lists to it let "netflix stock is down 5%" declared `pt` through as a report (the
/// shared dev set fell from 0.957/0.892 to 0.767/0.757).
fn drop_context_of_absent_languages(tables: &Tables, post: &Post, hits: &mut Vec<Hit>) {
    if post.langs.is_empty() || hits.iter().any(|h| matches!(h.meaning, Meaning::Error(_))) {
        return;
    }
    // Per language: whether the post is written in it (declared, or a
    // cue of it), the span of a first word of it and whether a word at
    // another span was seen.
    let mut written: Vec<bool> = tables
        .langs
        .iter()
        .map(|code| post.langs.contains(code))
        .collect();
    let mut first: Vec<Option<(usize, usize)>> = vec![None; tables.langs.len()];
    let mut two_words = vec![false; tables.langs.len()];
    for hit in hits.iter() {
        let Meaning::Phrase(_, lang) = hit.meaning else {
            continue;
        };
        let lang = usize::from(lang);
        if let Some(c) = written.get_mut(lang) {
            *c |= hit.meaning.can_report();
        }
        match first.get_mut(lang) {
            Some(Some(span)) if *span != (hit.start, hit.end) => two_words[lang] = true,
            Some(slot @ None) => *slot = Some((hit.start, hit.end)),
            _ => {}
        }
    }
    hits.retain(|h| match h.meaning {
        Meaning::Phrase(PhraseKind::Target, _) => true,
        Meaning::Phrase(kind, lang) if kind.is_context() => {
            let lang = usize::from(lang);
            written.get(lang).is_none_or(|c| *c) || two_words.get(lang).is_some_and(|t| *t)
        }
        _ => true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::Matcher;
    use crate::normalize::normalize_text;

    const CORPUS: [&str; 8] = [
        include_str!("../../tests/corpus/de.jsonl"),
        include_str!("../../tests/corpus/en.jsonl"),
        include_str!("../../tests/corpus/es.jsonl"),
        include_str!("../../tests/corpus/fr.jsonl"),
        include_str!("../../tests/corpus/it.jsonl"),
        include_str!("../../tests/corpus/ja.jsonl"),
        include_str!("../../tests/corpus/ko.jsonl"),
        include_str!("../../tests/corpus/pt.jsonl"),
    ];

    /// The hot path writes no reason's words and is otherwise the same
    /// verdict as `check --explain`'s, on every post of the labelled corpus.
    #[test]
    fn classify_is_explain_without_the_words() {
        let matcher = Matcher::embedded().expect("the embedded catalogue compiles");
        let mut reasons = 0;
        for line in CORPUS.iter().flat_map(|file| file.lines()) {
            let case: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let post = crate::normalize::normalize(crate::source::RawPost::typed(
                case["text"].as_str().expect("text").to_owned(),
                Vec::new(),
            ));
            let fast = matcher.classify(&post);
            let mut explained = matcher.explain(&post);
            assert!(fast.reasons.iter().all(|r| r.detail.is_empty()), "{fast:?}");
            if fast.reasons.is_empty() {
                // Not a candidate: only the explanation says why.
                assert_eq!(explained.reasons.len(), 1, "{explained:?}");
                explained.reasons.clear();
            }
            for reason in &mut explained.reasons {
                assert!(!reason.detail.is_empty(), "{reason:?}");
                reason.detail.clear();
            }
            assert_eq!(fast, explained);
            reasons += fast.reasons.len();
        }
        assert!(reasons > 1000, "the corpus gives reasons: {reasons}");
    }

    /// Context lists count whatever language the post declares: each
    /// case is judged declaring no language and each of en, pt, de, ja.
    /// A context word counts only for a language the post's cues are in,
    /// so a false friend ("hier": French "yesterday", German "here") does
    /// not cancel another language's phrase.
    #[test]
    fn context_counts_whatever_the_declared_language() {
        let matcher = Matcher::embedded().expect("the embedded catalogue compiles");
        let cases: [(&str, Option<&str>); 16] = [
            ("Netflix stock is down 5% today", None),
            ("twitter isn't down, it's your wifi", None),
            ("I was feeling down so I watched netflix", None),
            ("sit down and watch netflix", None),
            ("instagram was down yesterday", None),
            ("a ação da Netflix caiu 5%", None),
            ("o whatsapp não caiu, é a tua internet", None),
            ("twitter was down last night lol", None),
            ("got the fail whale yesterday", None),
            ("twitter will be down for maintenance at 2am", None),
            ("netflix is down", Some("netflix")),
            ("whatsapp geht hier nicht mehr seit heute", Some("whatsapp")),
            ("o whatsapp caiu", Some("whatsapp")),
            ("instagram caiu de novo? não abre aqui", Some("instagram")),
            ("インスタ落ちてる", Some("instagram")),
            ("@AcmeHelp your website won't load", Some("acme")),
        ];
        let mut failures = Vec::new();
        for (text, want) in cases {
            for lang in [None, Some("en"), Some("pt"), Some("de"), Some("ja")] {
                let post = crate::normalize::normalize(crate::source::RawPost::typed(
                    text.to_owned(),
                    lang.map(str::to_owned).into_iter().collect(),
                ));
                let verdict = matcher.classify(&post);
                let got = verdict.is_report().then(|| verdict.service.clone());
                let want = want.map(|s| Some(s.to_owned()));
                if got != want {
                    failures.push(format!(
                        "{text:?} declared {lang:?}: got {got:?}, want {want:?}"
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        // A false friend: French "hier" (yesterday) is German "here".
        let post = crate::normalize::normalize(crate::source::RawPost::typed(
            "whatsapp geht hier nicht",
            vec!["de".into()],
        ));
        assert!(matcher.classify(&post).is_report());
    }

    /// The one-pass DFA never leaves out an expression that matches, and on
    /// ASCII text (where it can always search) picks exactly those: every
    /// post of the labelled corpus, and every piece of them cut at its
    /// spaces (which moves a match against the ends of the text).
    #[test]
    fn the_regex_dfa_picks_every_expression_that_matches() {
        let matcher = Matcher::embedded().expect("the embedded catalogue compiles");
        let regexes = &matcher.tables.regexes;
        let (mut matched, mut ascii) = (0, 0);
        for line in CORPUS.iter().flat_map(|file| file.lines()) {
            let case: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let text = normalize_text(case["text"].as_str().expect("text"));
            let cuts = text.match_indices(' ').map(|(i, _)| i);
            for piece in cuts
                .flat_map(|i| [&text[..i], &text[i..]])
                .chain([text.as_str()])
            {
                let picked: Vec<&str> = regexes.matching(piece).map(|(r, ..)| r.as_str()).collect();
                let wanted: Vec<&str> = regexes
                    .all()
                    .iter()
                    .filter(|(r, ..)| r.is_match(piece))
                    .map(|(r, ..)| r.as_str())
                    .collect();
                if piece.is_ascii() {
                    assert_eq!(picked, wanted, "{piece:?}");
                    ascii += 1;
                } else {
                    let missed: Vec<_> = wanted.iter().filter(|w| !picked.contains(w)).collect();
                    assert!(missed.is_empty(), "{piece:?} misses {missed:?}");
                }
                matched += usize::from(!wanted.is_empty());
            }
        }
        assert!(
            matched > 100 && ascii > 1000,
            "the expressions are tried on texts they match ({matched}) and on ASCII ({ascii})"
        );
    }

    /// The cue automaton stops a post early exactly when the full scan
    /// would have: on every post of the labelled corpus and every prefix
    /// of it (which moves a literal against the end of the text, where the
    /// boundaries are judged differently).
    #[test]
    fn the_cue_scan_finds_a_candidate_exactly_when_the_full_scan_does() {
        let matcher = Matcher::embedded().expect("the embedded catalogue compiles");
        let tables = &matcher.tables;
        let (mut texts, mut candidates) = (0, 0);
        for line in CORPUS.iter().flat_map(|file| file.lines()) {
            let case: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let text = normalize_text(case["text"].as_str().expect("text"));
            let ends = text.char_indices().map(|(i, _)| i).skip(1);
            for end in ends.chain([text.len()]) {
                let prefix = &text[..end];
                let full = find_hits(tables, prefix)
                    .iter()
                    .any(|h| h.meaning.can_report());
                assert_eq!(has_cue(tables, prefix), full, "{prefix:?}");
                texts += 1;
                candidates += usize::from(full);
            }
        }
        assert!(
            candidates > 1000 && candidates < texts - 1000,
            "both kinds are tried: {candidates} candidates of {texts}"
        );
    }
}
