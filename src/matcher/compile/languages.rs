//! The language files compiled: each language's phrase lists as
//! literals, its hashtag affixes, cancel and own-if-unnamed words and
//! regular expressions as tables. Its own file because what a language
//! declares, and how it is checked (its code, its affixes), is apart from
//! the services.

use std::collections::HashSet;

use regex::Regex;
use toml::Spanned;

use super::Builder;
use super::regexes::{RegexBudget, compile_regex, regex_kind};
use super::spellings::Spellings;
use crate::matcher::patterns::{Catalogue, LanguageDef, Located, PatternError};
use crate::matcher::tables::{HashtagAffix, Meaning, PhraseKind, hashtag_stem};
use crate::normalize::normalize_text;

/// What the language files compile to, besides literals.
#[derive(Default)]
pub(super) struct LanguageTables {
    pub(super) langs: Vec<String>,
    pub(super) hashtag_suffixes: Vec<HashtagAffix>,
    pub(super) hashtag_prefixes: Vec<HashtagAffix>,
    pub(super) own_if_unnamed: Vec<Vec<String>>,
    pub(super) yours: Vec<Vec<String>>,
    pub(super) cancel_words: HashSet<String>,
    pub(super) regexes: Vec<(Regex, PhraseKind, u8)>,
}

pub(super) fn compile_languages(
    catalogue: &Catalogue,
    builder: &mut Builder,
) -> Result<LanguageTables, PatternError> {
    let mut out = LanguageTables::default();
    let mut budget = RegexBudget::default();
    for def in &catalogue.languages {
        let at = Located {
            file: &def.file,
            source: &def.source,
        };
        let code = def.lang.get_ref();
        // Declared post languages are lower-case primary subtags: `EN`
        // loaded and matched no post's `en`.
        if !((2..=8).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase())) {
            return Err(at.error(
                def.lang.span(),
                format!("language code {code:?} must be 2 to 8 lower-case ASCII letters (BCP 47 primary subtag, as `en`)"),
            ));
        }
        if out.langs.contains(code) {
            return Err(at.error(
                def.lang.span(),
                format!("language {code:?} is defined twice"),
            ));
        }
        let lang = u8::try_from(out.langs.len())
            .map_err(|_| at.error(def.lang.span(), "more than 255 languages"))?;
        out.langs.push(code.clone());
        add_phrase_lists(&at, def, lang, builder)?;
        for word in &def.cancel {
            let joined = hashtag_stem(word.get_ref());
            if !joined.is_empty() {
                out.cancel_words.insert(joined);
            }
        }
        add_hashtag_affixes(&at, def, lang, &mut out)?;
        out.own_if_unnamed
            .push(word_list(&at, &def.own_if_unnamed, "own_if_unnamed")?);
        out.yours.push(word_list(&at, &def.yours, "yours")?);
        for regex in &def.regex {
            let kind = regex_kind(&at, regex)?;
            out.regexes
                .push((compile_regex(&at, regex, &mut budget)?, kind, lang));
        }
    }
    // Longest affixes first, so `#instagramoutage` is not read as `instagramout` + `age`.
    for affixes in [&mut out.hashtag_suffixes, &mut out.hashtag_prefixes] {
        affixes.sort_by(|a, b| b.stem.len().cmp(&a.stem.len()).then(a.cmp(b)));
        // One affix of two languages is an outage word if it is in either.
        affixes.dedup_by(|later, kept| {
            let same = later.stem == kept.stem;
            if same {
                kept.outage_word |= later.outage_word;
            }
            same
        });
    }
    Ok(out)
}

/// A list of words, normalized; none may be empty once normalized.
fn word_list(
    at: &Located<'_>,
    words: &[Spanned<String>],
    list: &str,
) -> Result<Vec<String>, PatternError> {
    words
        .iter()
        .map(|word| {
            let text = normalize_text(word.get_ref());
            if text.is_empty() {
                return Err(at.error(word.span(), format!("{list} word is empty once normalized")));
            }
            Ok(text)
        })
        .collect()
}

/// Every phrase list of a language, as literals of its kind, each phrase
/// in each of its spellings.
fn add_phrase_lists(
    at: &Located<'_>,
    def: &LanguageDef,
    lang: u8,
    builder: &mut Builder,
) -> Result<(), PatternError> {
    let spellings = Spellings::read(at, def)?;
    let lists = [
        (&def.outage, PhraseKind::Outage),
        (&def.weak, PhraseKind::Weak),
        (&def.boost, PhraseKind::Boost),
        (&def.cancel, PhraseKind::Cancel),
        (&def.market, PhraseKind::Market),
        (&def.past, PhraseKind::Past),
        (&def.now, PhraseKind::Now),
        (&def.negation, PhraseKind::Negation),
        (&def.local, PhraseKind::Local),
        (&def.maintenance, PhraseKind::Maintenance),
        (&def.recovery, PhraseKind::Recovery),
        (&def.target, PhraseKind::Target),
        (&def.notice, PhraseKind::Notice),
        (&def.negator, PhraseKind::Negator),
        (&def.hypothetical, PhraseKind::Hypothetical),
    ];
    for (list, kind) in lists {
        for phrase in list {
            for spelt in spellings.of(phrase.get_ref()) {
                let spelt = Spanned::new(phrase.span(), spelt);
                builder.add(at, &spelt, Meaning::Phrase(kind, lang))?;
            }
        }
    }
    Ok(())
}

fn add_hashtag_affixes(
    at: &Located<'_>,
    def: &LanguageDef,
    lang: u8,
    out: &mut LanguageTables,
) -> Result<(), PatternError> {
    let outage_words: HashSet<String> = def
        .outage
        .iter()
        .map(|phrase| hashtag_stem(phrase.get_ref()))
        .collect();
    for (list, affixes) in [
        (&def.hashtag_suffixes, &mut out.hashtag_suffixes),
        (&def.hashtag_prefixes, &mut out.hashtag_prefixes),
    ] {
        for affix in list {
            let stem = hashtag_stem(affix.get_ref());
            if stem.is_empty() {
                return Err(at.error(affix.span(), "hashtag affix has no letters or digits"));
            }
            let outage_word = outage_words.contains(&stem);
            affixes.push(HashtagAffix {
                stem,
                lang,
                outage_word,
            });
        }
    }
    Ok(())
}
