//! Turning a [`Catalogue`] into one Aho-Corasick automaton plus the tables
//! that say what each literal means. Validation happens here, so a bad
//! pattern fails at start with its file and line, never while matching.
//!
//! This file holds the top-level [`compile`] and the literal [`Builder`]
//! both catalogue files feed; what each file's definitions mean and how
//! they are checked is in [`services`] and [`languages`] (their regular
//! expressions, bounded and checked, in [`regexes`]).

mod languages;
mod regexes;
mod services;
mod spellings;

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::Regex;
use toml::Spanned;

use super::patterns::{Catalogue, Located, PatternError};
use super::tables::{
    Boundary, DOMAIN_PATTERN, Literal, Meaning, PhraseKind, PhraseRegexes, Tables,
};
use crate::normalize::normalize_text;
use languages::compile_languages;
use services::compile_services;

#[derive(Default)]
struct Builder {
    /// Each literal's text, and its slot in `literals`: the one copy of
    /// the text, moved out by [`Builder::finish`].
    index: HashMap<String, usize>,
    literals: Vec<Pending>,
    /// Per literal, the scoring list (outage, weak, boost, recovery,
    /// maintenance) that first listed it and where (`file:line:column`).
    scoring: HashMap<usize, (PhraseKind, String)>,
}

/// A literal while the catalogue is read: its text and meanings grow as
/// phrases repeat; [`Builder::finish`] packs them into the [`Tables`] form.
struct Pending {
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
                    meanings: Vec::new(),
                    left: Boundary::for_edge(first),
                    right: Boundary::for_edge(last),
                });
                self.index.insert(text.clone(), self.literals.len() - 1);
                self.literals.len() - 1
            }
        };
        // Every phrase of every language is matched in every post, so a
        // literal in two scoring lists counted twice with two weights:
        // French `crash` (outage, 1.0) beside English `crash` (weak, 0.5)
        // made "Steam crash sale" a report of 1.5.
        if let Meaning::Phrase(kind, _) = meaning
            && !kind.is_context()
        {
            match self.scoring.get(&slot) {
                Some((first, place)) if *first != kind => {
                    return Err(at.error(
                        raw.span(),
                        format!(
                            "phrase {:?} is in `{}` here but in `{}` at {place}: a phrase is matched \
                             in every post whatever its language, so it may sit in one scoring list \
                             only (outage, weak, boost, recovery, maintenance)",
                            text,
                            kind.name(),
                            first.name()
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    self.scoring
                        .insert(slot, (kind, at.place(raw.span().start)));
                }
            }
        }
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
    /// their meanings in one table, nothing else kept. What the build no
    /// longer needs is dropped before each automaton is built, so the
    /// build's peak memory (the automaton's two forms at once) does not
    /// add to it: with a catalogue of ten times today's services that peak
    /// is the daemon's.
    fn finish(self) -> Result<Packed, PatternError> {
        let Builder {
            index,
            literals: pending,
            scoring,
        } = self;
        drop(scoring);
        let mut texts = vec![String::new(); pending.len()];
        for (text, slot) in index {
            texts[slot] = text;
        }
        let count = u32::try_from(pending.len())
            .map_err(|_| of_the_whole("more than 4 billion phrases".into()))?;
        let cue_literals: Vec<u32> = (0..count)
            .filter(|&i| pending[i as usize].meanings.iter().any(|m| m.can_report()))
            .collect();
        let mut meanings = Vec::with_capacity(pending.len());
        let mut literals = Vec::with_capacity(pending.len());
        for (pending, text) in pending.into_iter().zip(&texts) {
            let too_many = |what: &str| of_the_whole(format!("{what} (phrase {text:?})"));
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
        let cues = build_automaton(cue_literals.iter().map(|&i| texts[i as usize].as_str()))?;
        let automaton = build_automaton(texts.iter().map(String::as_str))?;
        Ok(Packed {
            automaton,
            cues,
            cue_literals,
            literals,
            meanings,
        })
    }
}

/// An error of the patterns as a whole, which no one file or line holds
/// (their sum is too large).
fn of_the_whole(message: String) -> PatternError {
    PatternError::Invalid {
        file: "patterns".into(),
        line: 0,
        column: 0,
        message,
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
/// Takes the catalogue to drop its text before the automata are built.
pub(crate) fn compile(catalogue: Catalogue) -> Result<Tables, PatternError> {
    let mut builder = Builder::default();
    let services = compile_services(&catalogue, &mut builder)?;
    let languages = compile_languages(&catalogue, &mut builder)?;
    drop(catalogue);
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
        yours: languages.yours,
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
        .map_err(|e| of_the_whole(format!("cannot build the phrase automaton: {e}")))
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
        Matcher::new(catalogue).map_err(|e| e.to_string())
    }

    /// A literal in two scoring lists (of one language or two) counted
    /// twice with two weights, as French `crash` (outage) beside English
    /// `crash` (weak) did: refused with both places. The same list in two
    /// languages, or a context list beside a scoring one, is allowed.
    #[test]
    fn a_phrase_in_two_scoring_lists_is_refused_with_both_places() {
        let compile = |en: &str, fr: &str| {
            let files = [
                (
                    PathBuf::from("p/lang/en.toml"),
                    format!("lang = \"en\"\n{en}"),
                ),
                (
                    PathBuf::from("p/lang/fr.toml"),
                    format!("lang = \"fr\"\n{fr}"),
                ),
            ];
            let catalogue = Catalogue::from_files(files.into_iter()).map_err(|e| e.to_string())?;
            Matcher::new(catalogue)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let refused = [
            (
                "weak = [\"crash\"]\n",
                "outage = [\"x\",\n  \"Crash\"]\n",
                "p/lang/fr.toml:3:3",
                "p/lang/en.toml:2:9",
            ),
            (
                "outage = [\"down\"]\nweak = [\"down\"]\n",
                "",
                "p/lang/en.toml:3:9",
                "p/lang/en.toml:2:11",
            ),
            (
                "boost = [\"wtf\"]\n",
                "recovery = [\"wtf\"]\n",
                "p/lang/fr.toml:2:13",
                "p/lang/en.toml:2:10",
            ),
            (
                "spellings = [[\"n't\", \"nt\"]]\noutage = [\"won't load\"]\n",
                "weak = [\"wont load\"]\n",
                "p/lang/fr.toml:2:9",
                "p/lang/en.toml:3:11",
            ),
        ];
        for (en, fr, at, first) in refused {
            let err = compile(en, fr).expect_err("a phrase in two scoring lists");
            assert!(err.starts_with(at), "{err}");
            assert!(err.contains(first), "{err}");
        }
        let allowed = [
            ("outage = [\"panne\"]\n", "outage = [\"panne\"]\n"),
            (
                "outage = [\"down\"]\ncancel = [\"down\"]\n",
                "past = [\"down\"]\n",
            ),
        ];
        for (en, fr) in allowed {
            compile(en, fr).expect("one scoring list, or context beside it");
        }
        Matcher::embedded().expect("the built-in lists keep each phrase in one scoring list");
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
            Matcher::new(catalogue)
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

    /// A name (alias, hashtag, handle, ambiguous name: as a stem) of two
    /// services is refused with both places, unless both declare it
    /// ambiguous; it was settled silently, first come first served.
    #[test]
    fn a_name_of_two_services_is_refused_with_both_places() {
        let two = |alpha: &str, beta: &str| {
            format!(
                "[[service]]\nid = \"alpha\"\nname = \"Alpha\"\ncategory = \"other\"\naliases = [\"alpha\"]\n{alpha}\n\n\
                 [[service]]\nid = \"beta\"\nname = \"Beta\"\ncategory = \"other\"\naliases = [\"beta\"]\n{beta}\n"
            )
        };
        for (alpha, beta, want) in [
            (
                "handles = [\"alphabeta\"]",
                "hashtags = [\"AlphaBeta\"]",
                Some(
                    "services.toml:13:13: name \"alphabeta\" of \"beta\" is already a name of \"alpha\" at p/services.toml:6:12",
                ),
            ),
            (
                "handles = [\"beta\"]",
                "",
                Some(
                    "services.toml:12:12: name \"beta\" of \"beta\" is already a name of \"alpha\" at p/services.toml:6:12",
                ),
            ),
            (
                "ambiguous = [\"gamma\"]",
                "handles = [\"gamma\"]",
                Some("services.toml:13:12: name \"gamma\" of \"beta\""),
            ),
            ("ambiguous = [\"gamma\"]", "ambiguous = [\"Gamma\"]", None),
            (
                "hashtags = [\"gamma\"]\nambiguous = [\"gamma\"]",
                "ambiguous = [\"gamma\"]",
                None,
            ),
        ] {
            let got = compile_services(&two(alpha, beta));
            match want {
                Some(want) => {
                    let err = got.err().unwrap_or_default();
                    assert!(
                        err.contains(want),
                        "{alpha} / {beta}\ngot: {err}\nwanted: {want}"
                    );
                }
                None => assert!(got.is_ok(), "{alpha} / {beta}: {:?}", got.err()),
            }
        }
    }

    /// A matcher from an English file holding `regexes` (after its two
    /// lines of phrases) and one service, or the error that refused it.
    fn with_regexes(regexes: &str) -> Result<Matcher, String> {
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
        Matcher::new(catalogue).map_err(|e| e.to_string())
    }

    /// An invalid regular expression is named with its line (the first in
    /// file order when there are several), and a valid set keeps its order.
    #[test]
    fn the_first_invalid_regular_expression_is_named_with_its_line() {
        let regex = |category: &str, pattern: &str| {
            format!("\n[[regex]]\ncategory = \"{category}\"\npattern = '{pattern}'\n")
        };
        let compile = with_regexes;
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

    /// A language's spellings are bounded in number: the first past the
    /// bound is named with its line.
    #[test]
    fn the_spellings_are_bounded_in_number() {
        use super::spellings::MAX_PAIRS;
        let spellings = |n: usize| -> String {
            let pairs: String = (0..n)
                .map(|i| format!("  [\"w{i}x\", \"w{i}y\"],\n"))
                .collect();
            format!("spellings = [\n{pairs}]\n")
        };
        assert!(with_regexes(&spellings(MAX_PAIRS)).is_ok());
        let err = with_regexes(&spellings(MAX_PAIRS + 1))
            .err()
            .unwrap_or_default();
        // After the 2 lines of phrases and `spellings = [`, one a line.
        let line = 3 + MAX_PAIRS + 1;
        assert!(
            err.contains(&format!(
                "en.toml:{line}:4: more than {MAX_PAIRS} spellings in one language"
            )),
            "{err}"
        );
    }

    /// The pattern files' regexes are bounded in number and in compiled
    /// size together: the first one past a bound is named with its line.
    #[test]
    fn the_regexes_are_bounded_in_number_and_in_total_size() {
        use super::regexes::{MAX_REGEXES, MAX_TOTAL_REGEX_BYTES};
        let compile = with_regexes;
        // Each entry is 4 lines, after the 2 lines of phrases.
        let entries = |n: usize, pattern: &dyn Fn(usize) -> String| -> String {
            (0..n)
                .map(|i| {
                    format!(
                        "[[regex]]\ncategory = \"past\"\npattern = '{}'\n\n",
                        pattern(i)
                    )
                })
                .collect()
        };
        let small = |i: usize| format!("\\b{i}h ago");
        assert!(compile(&entries(MAX_REGEXES, &small)).is_ok());
        let err = compile(&entries(MAX_REGEXES + 1, &small))
            .err()
            .unwrap_or_default();
        let line = 2 + 4 * MAX_REGEXES + 3;
        assert!(
            err.contains(&format!(
                "en.toml:{line}:11: more than {MAX_REGEXES} regular"
            )),
            "{err}"
        );
        // Large ones, each within its own bound, past the total.
        let large = |i: usize| format!("\\w{{5}}{i}");
        let each = super::regexes::compiled_size(&large(0)).unwrap_or(1);
        let past = MAX_TOTAL_REGEX_BYTES / each + 1;
        assert!(past <= MAX_REGEXES, "{each} bytes each");
        assert!(compile(&entries(past - 1, &large)).is_ok());
        let err = compile(&entries(past, &large)).err().unwrap_or_default();
        assert!(
            err.contains(&format!(
                "take more than {} MiB compiled",
                MAX_TOTAL_REGEX_BYTES >> 20
            )),
            "{err}"
        );
        let line = 2 + 4 * (past - 1) + 3;
        assert!(err.contains(&format!("en.toml:{line}:11:")), "{err}");
    }
}
