//! Turning a [`Catalogue`] into one Aho-Corasick automaton plus the tables
//! that say what each literal means. Validation happens here, so a bad
//! pattern fails at start with its file and line, never while matching.

use std::collections::{HashMap, HashSet};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::Regex;
use toml::Spanned;

use super::patterns::{Catalogue, LanguageDef, Located, PatternError, RegexDef, ServiceDef};
use super::tables::{
    Boundary, DOMAIN_PATTERN, HashtagAffix, Literal, Meaning, PhraseKind, PhraseRegexes,
    ServiceEntry, Stem, Tables, hashtag_stem,
};
use crate::normalize::normalize_text;

#[derive(Default)]
struct Builder {
    index: HashMap<String, usize>,
    literals: Vec<Pending>,
}

/// A literal while the catalogue is read: its text and meanings grow as
/// phrases repeat; [`Builder::finish`] packs them into the [`Tables`] form.
struct Pending {
    text: String,
    meanings: Vec<Meaning>,
    left: Boundary,
    right: Boundary,
}

impl Builder {
    fn add(
        &mut self,
        at: &Located<'_>,
        raw: &Spanned<String>,
        meaning: Meaning,
    ) -> Result<(), PatternError> {
        let text = normalize_text(raw.get_ref());
        if text.is_empty() {
            return Err(at.error(raw.span(), "empty phrase"));
        }
        let slot = match self.index.get(&text) {
            Some(&slot) => slot,
            None => {
                let first = text.chars().next().unwrap_or(' ');
                let last = text.chars().next_back().unwrap_or(' ');
                self.literals.push(Pending {
                    text: text.clone(),
                    meanings: Vec::new(),
                    left: Boundary::for_edge(first),
                    right: Boundary::for_edge(last),
                });
                self.index.insert(text, self.literals.len() - 1);
                self.literals.len() - 1
            }
        };
        let meanings = &mut self.literals[slot].meanings;
        // The same scoring phrase in two languages' lists is one piece of
        // evidence, not two: keep the first language that listed it. Context
        // phrases stay per language, since they apply only to posts in (or
        // without) their language.
        let duplicate = meanings.iter().any(|m| match (m, &meaning) {
            (Meaning::Phrase(a, _), Meaning::Phrase(b, _)) if !b.is_context() => a == b,
            (a, b) => a == b,
        });
        if !duplicate {
            meanings.push(meaning);
        }
        Ok(())
    }

    /// The automaton over every literal's text, and the literals packed:
    /// their meanings in one table, nothing else kept.
    fn finish(self) -> Result<Packed, PatternError> {
        let automaton = build_automaton(self.literals.iter().map(|l| l.text.as_str()))?;
        // Indices fit in u32: the automaton above refuses more patterns
        // than aho-corasick's pattern ids (under 2^31) can number.
        let cue_literals: Vec<u32> = (0..self.literals.len() as u32)
            .filter(|&i| {
                self.literals[i as usize]
                    .meanings
                    .iter()
                    .any(|m| m.can_report())
            })
            .collect();
        let cues = build_automaton(
            cue_literals
                .iter()
                .map(|&i| self.literals[i as usize].text.as_str()),
        )?;
        let mut meanings = Vec::with_capacity(self.literals.len());
        let mut literals = Vec::with_capacity(self.literals.len());
        for pending in self.literals {
            let too_many = |what: &str| PatternError::Invalid {
                file: "patterns".into(),
                line: 0,
                column: 0,
                message: format!("{what} (phrase {:?})", pending.text),
            };
            literals.push(Literal {
                first_meaning: u32::try_from(meanings.len())
                    .map_err(|_| too_many("more than 4 billion meanings"))?,
                meanings: u16::try_from(pending.meanings.len())
                    .map_err(|_| too_many("one phrase with more than 65,535 meanings"))?,
                left: pending.left,
                right: pending.right,
            });
            meanings.extend(pending.meanings);
        }
        Ok(Packed {
            automaton,
            cues,
            cue_literals,
            literals,
            meanings,
        })
    }
}

/// What [`Builder::finish`] packs the literals into.
struct Packed {
    automaton: AhoCorasick,
    cues: AhoCorasick,
    cue_literals: Vec<u32>,
    literals: Vec<Literal>,
    meanings: Vec<Meaning>,
}

/// Validates the catalogue and compiles it: every alias, phrase and
/// context word into one automaton, the rest into lookup tables.
pub(crate) fn compile(catalogue: &Catalogue) -> Result<Tables, PatternError> {
    let mut builder = Builder::default();
    let services = compile_services(catalogue, &mut builder)?;
    let languages = compile_languages(catalogue, &mut builder)?;
    let Packed {
        automaton,
        cues,
        cue_literals,
        literals,
        meanings,
    } = builder.finish()?;
    Ok(Tables {
        automaton,
        cues,
        cue_literals,
        literals,
        meanings,
        services: services.services,
        langs: languages.langs,
        stems: services.stems,
        hashtag_suffixes: languages.hashtag_suffixes,
        hashtag_prefixes: languages.hashtag_prefixes,
        own_if_unnamed: languages.own_if_unnamed,
        cancel_words: languages.cancel_words,
        regexes: PhraseRegexes::new(languages.regexes),
        handles: services.handles,
        domain: Regex::new(DOMAIN_PATTERN).map_err(|e| PatternError::Invalid {
            file: "src/matcher/compile.rs".into(),
            line: 0,
            column: 0,
            message: format!("domain pattern: {e}"),
        })?,
    })
}

/// What the services file compiles to, besides literals.
#[derive(Default)]
struct ServiceTables {
    services: Vec<ServiceEntry>,
    stems: HashMap<String, Stem>,
    handles: HashMap<String, u16>,
}

fn compile_services(
    catalogue: &Catalogue,
    builder: &mut Builder,
) -> Result<ServiceTables, PatternError> {
    let at = Located {
        file: &catalogue.services_file,
        source: &catalogue.services_source,
    };
    let mut out = ServiceTables::default();
    let mut alias_owner: HashMap<String, String> = HashMap::new();
    // The ids so far, for the duplicate check: a search of the list was
    // quadratic, a third of building a catalogue of 39,000 services.
    let mut ids: HashSet<&str> = HashSet::with_capacity(catalogue.services.len());
    for def in &catalogue.services {
        let n = check_service(&at, def, &out.services, &mut ids)?;
        add_service_literals(&at, def, n, &mut alias_owner, builder)?;
        add_handles(&at, def, n, &mut out.handles)?;
        add_stems(def, n, &mut out.stems);
        out.services.push(ServiceEntry {
            id: def.id.get_ref().clone(),
            name: def.name.clone(),
            category: def.category,
        });
    }
    Ok(out)
}

/// A valid, new service id (not in `ids`, where it is added) with at least
/// one name: its index.
fn check_service<'a>(
    at: &Located<'_>,
    def: &'a ServiceDef,
    services: &[ServiceEntry],
    ids: &mut HashSet<&'a str>,
) -> Result<u16, PatternError> {
    let id = def.id.get_ref();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(at.error(
            def.id.span(),
            format!("service id {id:?} must be lowercase letters and digits only"),
        ));
    }
    if !ids.insert(id) {
        return Err(at.error(def.id.span(), format!("service id {id:?} is defined twice")));
    }
    let n = u16::try_from(services.len())
        .map_err(|_| at.error(def.id.span(), "more than 65535 services"))?;
    if def.aliases.is_empty() && def.ambiguous.is_empty() {
        return Err(at.error(def.id.span(), format!("service {id:?} has no aliases")));
    }
    Ok(n)
}

/// The service's aliases, ambiguous names, context words, domains and
/// error messages as literals. An alias points to one service only.
fn add_service_literals(
    at: &Located<'_>,
    def: &ServiceDef,
    n: u16,
    alias_owner: &mut HashMap<String, String>,
    builder: &mut Builder,
) -> Result<(), PatternError> {
    let id = def.id.get_ref();
    for alias in &def.aliases {
        let key = normalize_text(alias.get_ref());
        // Two spellings that normalize alike ("twittter" folds to
        // "twitter") are one alias of the same service.
        if let Some(owner) = alias_owner.insert(key.clone(), id.clone())
            && owner != *id
        {
            return Err(at.error(
                alias.span(),
                format!(
                    "alias {key:?} of {id:?} is already an alias of {owner:?}; \
                     a name must point to one service (make it `ambiguous` in both)"
                ),
            ));
        }
        builder.add(at, alias, Meaning::Alias(n))?;
    }
    let lists = [
        (&def.ambiguous, Meaning::Ambiguous(n)),
        (&def.context, Meaning::Context(n)),
        (&def.domains, Meaning::Domain(n)),
        (&def.errors, Meaning::Error(n)),
    ];
    for (list, meaning) in lists {
        for literal in list {
            builder.add(at, literal, meaning)?;
        }
    }
    Ok(())
}

/// The service's accounts, by stem; one account belongs to one service.
fn add_handles(
    at: &Located<'_>,
    def: &ServiceDef,
    n: u16,
    handles: &mut HashMap<String, u16>,
) -> Result<(), PatternError> {
    for handle in &def.handles {
        let stem = hashtag_stem(handle.get_ref().trim_start_matches('@'));
        if stem.is_empty() {
            return Err(at.error(handle.span(), "handle has no letters or digits"));
        }
        if let Some(&owner) = handles.get(&stem)
            && owner != n
        {
            return Err(at.error(
                handle.span(),
                format!(
                    "handle {stem:?} of {:?} is already a handle of another service",
                    def.id.get_ref()
                ),
            ));
        }
        handles.insert(stem, n);
    }
    Ok(())
}

/// How the service's names may stand in a hashtag; the first service to
/// claim a stem keeps it.
fn add_stems(def: &ServiceDef, n: u16, stems: &mut HashMap<String, Stem>) {
    let stem_sources = def
        .aliases
        .iter()
        .chain(&def.hashtags)
        .chain(&def.handles)
        .map(|s| (s, false))
        .chain(def.ambiguous.iter().map(|s| (s, true)));
    for (name, ambiguous) in stem_sources {
        let stem = hashtag_stem(name.get_ref());
        if !stem.is_empty() {
            stems.entry(stem).or_insert(Stem {
                service: n,
                ambiguous,
            });
        }
    }
}

/// What the language files compile to, besides literals.
#[derive(Default)]
struct LanguageTables {
    langs: Vec<String>,
    hashtag_suffixes: Vec<HashtagAffix>,
    hashtag_prefixes: Vec<HashtagAffix>,
    own_if_unnamed: Vec<Vec<String>>,
    cancel_words: HashSet<String>,
    regexes: Vec<(Regex, PhraseKind, u8)>,
}

fn compile_languages(
    catalogue: &Catalogue,
    builder: &mut Builder,
) -> Result<LanguageTables, PatternError> {
    let mut out = LanguageTables::default();
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
        let mut own = Vec::with_capacity(def.own_if_unnamed.len());
        for word in &def.own_if_unnamed {
            let text = normalize_text(word.get_ref());
            if text.is_empty() {
                return Err(at.error(word.span(), "own_if_unnamed word is empty once normalized"));
            }
            own.push(text);
        }
        out.own_if_unnamed.push(own);
        for regex in &def.regex {
            let kind = regex_kind(&at, regex)?;
            out.regexes.push((compile_regex(&at, regex)?, kind, lang));
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

/// Every phrase list of a language, as literals of its kind.
fn add_phrase_lists(
    at: &Located<'_>,
    def: &LanguageDef,
    lang: u8,
    builder: &mut Builder,
) -> Result<(), PatternError> {
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
    ];
    for (list, kind) in lists {
        for phrase in list {
            builder.add(at, phrase, Meaning::Phrase(kind, lang))?;
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

fn regex_kind(at: &Located<'_>, def: &RegexDef) -> Result<PhraseKind, PatternError> {
    PhraseKind::from_name(def.category.get_ref()).ok_or_else(|| {
        at.error(
            def.category.span(),
            format!(
                "unknown regex category {:?}; one of: {}",
                def.category.get_ref(),
                PhraseKind::ALL.map(PhraseKind::name).join(", ")
            ),
        )
    })
}

/// The compiled size one pattern-file regex may take (the regex crate's
/// own default is 10 MiB each); the built-in ones need a few KiB.
pub const MAX_REGEX_BYTES: usize = 256 << 10;

fn compile_regex(at: &Located<'_>, def: &RegexDef) -> Result<Regex, PatternError> {
    let pattern = def.pattern.get_ref();
    let invalid = |why: String| at.error(def.pattern.span(), why);
    // Bounded in compiled size: a few `\w{200}` entries in a 4 KB file
    // took 2 GB and 26 s to load.
    let regex = regex::RegexBuilder::new(pattern)
        .size_limit(MAX_REGEX_BYTES)
        .build()
        .map_err(|e| invalid(format!("invalid regular expression: {e}")))?;
    // One that can match no text at all (`''`, `z*`, `\b`) matches in every
    // post: a negation of that kind cancelled every report, silently.
    let parsed = regex_syntax::Parser::new()
        .parse(pattern)
        .map_err(|e| invalid(format!("invalid regular expression: {e}")))?;
    if parsed.properties().minimum_len() == Some(0) {
        return Err(invalid(format!(
            "regular expression {pattern:?} can match empty text, so it would match in every post"
        )));
    }
    // Text is lower-cased before matching: a capital letter that is not
    // case-insensitive (`Down`, `[A-Z]`) can never match, silently.
    if has_capital(&parsed) {
        return Err(invalid(format!(
            "regular expression {pattern:?} has a capital letter, but posts are lower-cased before matching: write it in lower case (or use (?i))"
        )));
    }
    Ok(regex)
}

/// Whether `hir` requires a capital letter somewhere: a literal one, or a
/// class holding a capital ASCII letter without its lower case.
fn has_capital(hir: &regex_syntax::hir::Hir) -> bool {
    use regex_syntax::hir::{Class, HirKind};
    match hir.kind() {
        HirKind::Literal(lit) => String::from_utf8_lossy(&lit.0)
            .chars()
            .any(|c| c.is_uppercase() && !c.is_lowercase()),
        HirKind::Class(Class::Unicode(class)) => ('A'..='Z').any(|c| {
            let has = |c: char| {
                class
                    .ranges()
                    .iter()
                    .any(|r| r.start() <= c && c <= r.end())
            };
            has(c) && !has(c.to_ascii_lowercase())
        }),
        HirKind::Class(Class::Bytes(class)) => (b'A'..=b'Z').any(|c| {
            let has = |c: u8| {
                class
                    .ranges()
                    .iter()
                    .any(|r| r.start() <= c && c <= r.end())
            };
            has(c) && !has(c.to_ascii_lowercase())
        }),
        HirKind::Repetition(rep) => has_capital(&rep.sub),
        HirKind::Capture(cap) => has_capital(&cap.sub),
        HirKind::Concat(subs) | HirKind::Alternation(subs) => subs.iter().any(has_capital),
        HirKind::Empty | HirKind::Look(_) => false,
    }
}

/// The contiguous NFA, chosen by measurement on the embedded catalogue
/// (390 services, 8 languages): 1.4 MiB built in about 60 ms, where the
/// DFA took 67.5 MiB and about 280 ms to build (14 % of a short replay,
/// most of its memory) and matched no faster on posts, which are short.
/// It also has no size limit, so a larger catalogue still builds.
fn build_automaton<'a>(
    literals: impl IntoIterator<Item = &'a str>,
) -> Result<AhoCorasick, PatternError> {
    AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .build(literals)
        .map_err(|e| PatternError::Invalid {
            file: "patterns".into(),
            line: 0,
            column: 0,
            message: format!("cannot build the phrase automaton: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::Matcher;
    use super::super::patterns::Catalogue;

    /// A catalogue of one English phrase and the services given, compiled.
    fn compile_services(services: &str) -> Result<Matcher, String> {
        let files = [
            (
                PathBuf::from("p/lang/en.toml"),
                "lang = \"en\"\noutage = [\"is down\"]\n".to_owned(),
            ),
            (PathBuf::from("p/services.toml"), services.to_owned()),
        ];
        let catalogue = Catalogue::from_files(files.into_iter()).map_err(|e| e.to_string())?;
        Matcher::new(&catalogue).map_err(|e| e.to_string())
    }

    /// A language code must be what a post declares (2 to 8 lower-case
    /// ASCII letters); a regex with a capital letter that is not
    /// case-insensitive can never match lower-cased text. Both are named
    /// with their place.
    #[test]
    fn bad_language_codes_and_capital_regexes_are_named_with_their_line() {
        let compile = |lang: &str| {
            let files = [(PathBuf::from("p/lang/xx.toml"), lang.to_owned())];
            let catalogue = Catalogue::from_files(files.into_iter()).map_err(|e| e.to_string())?;
            Matcher::new(&catalogue)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let regex = |pattern: &str| {
            format!(
                "lang = \"en\"\noutage = [\"x\"]\n[[regex]]\ncategory = \"market\"\npattern = '{pattern}'\n"
            )
        };
        for (file, want) in [
            (
                "lang = \"EN\"\noutage = [\"x\"]\n".to_owned(),
                Some("p/lang/xx.toml:1:8: language code \"EN\""),
            ),
            (
                "lang = \"e\"\noutage = [\"x\"]\n".to_owned(),
                Some(":1:8: language code"),
            ),
            ("lang = \"en-us\"\n".to_owned(), Some(":1:8: language code")),
            (
                "lang = \"abcdefghi\"\n".to_owned(),
                Some(":1:8: language code"),
            ),
            ("lang = \"pt\"\n".to_owned(), None),
            ("lang = \"fil\"\n".to_owned(), None),
            (
                regex("Down \\d+%"),
                Some(":5:11: regular expression \"Down \\\\d+%\" has a capital"),
            ),
            (regex("[A-Z]+ down"), Some(":5:11:")),
            (regex("down (?:by|to) Q[1-4]"), Some(":5:11:")),
            (regex("(?i)Down \\d+%"), None),
            (regex("down \\d+%"), None),
            (regex("[a-zA-Z]+ down"), None),
            (regex("\\bdown\\b \\D"), None),
        ] {
            let got = compile(&file);
            match want {
                Some(want) => assert!(
                    got.as_ref().is_err_and(|e| e.contains(want)),
                    "{file}\ngot {got:?}\nwanted {want}"
                ),
                None => assert!(got.is_ok(), "{file}\ngot {got:?}"),
            }
        }
    }

    #[test]
    fn a_bad_service_definition_is_named_with_its_line() {
        let one = "[[service]]\nid = \"alpha\"\nname = \"Alpha\"\ncategory = \"other\"\naliases = [\"alpha\"]\n";
        let cases = [
            (
                format!(
                    "{one}\n[[service]]\nid = \"alpha\"\nname = \"Again\"\ncategory = \"other\"\naliases = [\"again\"]\n"
                ),
                "services.toml:8:6: service id \"alpha\" is defined twice",
            ),
            (
                one.replace("\"alpha\"\nname", "\"Alpha-1\"\nname"),
                "service id \"Alpha-1\" must be lowercase letters and digits only",
            ),
            (
                one.replace("aliases = [\"alpha\"]\n", "aliases = []\n"),
                "service \"alpha\" has no aliases",
            ),
        ];
        for (services, expected) in cases {
            let err = compile_services(&services).err().unwrap_or_default();
            assert!(
                err.contains(expected),
                "{services}\ngot: {err}\nwanted: {expected}"
            );
        }
        let two = format!(
            "{one}\n[[service]]\nid = \"beta\"\nname = \"Beta\"\ncategory = \"other\"\naliases = [\"beta\"]\n"
        );
        let matcher = compile_services(&two).expect("two distinct services compile");
        assert_eq!(matcher.service_count(), 2);
    }

    /// An invalid regular expression is named with its line (the first in
    /// file order when there are several), and a valid set keeps its order.
    #[test]
    fn the_first_invalid_regular_expression_is_named_with_its_line() {
        let regex = |category: &str, pattern: &str| {
            format!("\n[[regex]]\ncategory = \"{category}\"\npattern = '{pattern}'\n")
        };
        let compile = |regexes: &str| {
            let files = [
                (
                    PathBuf::from("p/lang/en.toml"),
                    format!("lang = \"en\"\noutage = [\"is down\"]\n{regexes}"),
                ),
                (
                    PathBuf::from("p/services.toml"),
                    "[[service]]\nid = \"alpha\"\nname = \"Alpha\"\ncategory = \"other\"\naliases = [\"alpha\"]\n".to_owned(),
                ),
            ];
            let catalogue = Catalogue::from_files(files.into_iter()).map_err(|e| e.to_string())?;
            Matcher::new(&catalogue).map_err(|e| e.to_string())
        };
        let valid: String = (0..20)
            .map(|n| regex("past", &format!("\\b{n}h ago")))
            .collect();
        let two_bad = format!(
            "{valid}{}{valid}{}{valid}",
            regex("past", "(unclosed"),
            regex("market", "[z-a]")
        );
        let err = compile(&two_bad).err().unwrap_or_default();
        assert!(
            err.contains("en.toml:86:11: invalid regular expression") && err.contains("unclosed"),
            "{err}"
        );
        let matcher = compile(&valid).expect("valid expressions compile");
        let kept: Vec<&str> = matcher
            .tables
            .regexes
            .all()
            .iter()
            .map(|(r, _, _)| r.as_str())
            .collect();
        let wanted: Vec<String> = (0..20).map(|n| format!("\\b{n}h ago")).collect();
        assert_eq!(kept, wanted, "in file order");
        // One that can match empty text would match in every post.
        for empty in ["", "z*", "\\b", "(?:)|x"] {
            let err = compile(&regex("negation", empty)).err().unwrap_or_default();
            assert!(err.contains("can match empty text"), "{empty:?}: {err}");
        }
        // One whose compiled size is past the bound is refused with its line.
        let err = compile(&regex("past", "\\w{200}N"))
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("en.toml:6:11: invalid regular expression"),
            "{err}"
        );
        assert!(err.contains("size limit"), "{err}");
    }
}
