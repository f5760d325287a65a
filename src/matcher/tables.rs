//! The compiled matcher tables: the Aho-Corasick automata (every literal,
//! and the cues alone), what each literal means and where it may stand,
//! and the lookups (services, hashtag stems and affixes, handles, regular
//! expressions) the rules use. Built and validated in `compile.rs`.

use std::collections::{HashMap, HashSet};

use aho_corasick::AhoCorasick;
use regex::Regex;
use regex_automata::util::pool::Pool;
use regex_automata::{Input, MatchKind, PatternID, PatternSet, hybrid, nfa::thompson};

use super::patterns::Category;
use crate::normalize::normalize_text;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhraseKind {
    Outage,
    Weak,
    Boost,
    Cancel,
    Market,
    Past,
    Now,
    Negation,
    Local,
    Maintenance,
    Recovery,
    /// A thing that fails without being a named service: "the site",
    /// "your app", "the server", "サイト", "접속".
    Target,
    /// The voice of whoever runs the service, or a reply to a report:
    /// "thanks for reporting", "we're working on it", "should be fixed".
    Notice,
    /// A word that denies what follows it shortly in its sentence:
    /// "never", "not", "no longer", "ain't", "don't think". Unlike
    /// `negation` it holds no failure word: it denies the failure or
    /// recovery phrase after it ("discord never goes down", "still not
    /// back up").
    Negator,
    /// A sentence that is a condition, a wish, a habit or a how-to:
    /// "if", "i hope", "every time", "how to". It speaks of an outage
    /// that is not happening.
    Hypothetical,
}

impl PhraseKind {
    pub fn name(self) -> &'static str {
        match self {
            PhraseKind::Outage => "outage",
            PhraseKind::Weak => "weak",
            PhraseKind::Boost => "boost",
            PhraseKind::Cancel => "cancel",
            PhraseKind::Market => "market",
            PhraseKind::Past => "past",
            PhraseKind::Now => "now",
            PhraseKind::Negation => "negation",
            PhraseKind::Local => "local",
            PhraseKind::Maintenance => "maintenance",
            PhraseKind::Recovery => "recovery",
            PhraseKind::Target => "target",
            PhraseKind::Notice => "notice",
            PhraseKind::Negator => "negator",
            PhraseKind::Hypothetical => "hypothetical",
        }
    }

    /// Lists that qualify an outage phrase rather than report one.
    pub fn is_context(self) -> bool {
        matches!(
            self,
            PhraseKind::Cancel
                | PhraseKind::Market
                | PhraseKind::Past
                | PhraseKind::Now
                | PhraseKind::Negation
                | PhraseKind::Local
                | PhraseKind::Maintenance
                | PhraseKind::Target
                | PhraseKind::Notice
                | PhraseKind::Negator
                | PhraseKind::Hypothetical
        )
    }

    pub(super) const ALL: [PhraseKind; 15] = [
        PhraseKind::Outage,
        PhraseKind::Weak,
        PhraseKind::Boost,
        PhraseKind::Cancel,
        PhraseKind::Market,
        PhraseKind::Past,
        PhraseKind::Now,
        PhraseKind::Negation,
        PhraseKind::Local,
        PhraseKind::Maintenance,
        PhraseKind::Recovery,
        PhraseKind::Target,
        PhraseKind::Notice,
        PhraseKind::Negator,
        PhraseKind::Hypothetical,
    ];

    pub(super) fn from_name(name: &str) -> Option<PhraseKind> {
        PhraseKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// What one literal of the automaton stands for. A literal can mean several
/// things (a word that is an alias in one service and a phrase elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    Alias(u16),
    Ambiguous(u16),
    Context(u16),
    Domain(u16),
    Error(u16),
    Phrase(PhraseKind, u8),
}

impl Meaning {
    /// Whether a hit of this meaning can make a post a candidate: an error
    /// message or a phrase of failure, recovery or maintenance. Every other
    /// meaning (a service's name, a context word) only qualifies one.
    pub fn can_report(self) -> bool {
        matches!(
            self,
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
}

/// A catalogued service as the catalogue describes it (what a post names
/// is a `decision::Service`).
#[derive(Debug, Clone)]
pub struct ServiceEntry {
    pub id: String,
    pub name: String,
    pub category: Category,
}

/// How a service's name may appear inside a hashtag.
#[derive(Debug, Clone, Copy)]
pub struct Stem {
    pub service: u16,
    pub ambiguous: bool,
    /// A service of the catalogue declares the name `ambiguous` (an
    /// ordinary word, a person, a place), though this one may claim it
    /// for hashtags (`#MaxDown`): as a handle it is not the service's
    /// account unless listed among its `handles`.
    pub word: bool,
}

/// The compiled matcher tables; see [`super::Matcher`].
pub struct Tables {
    pub automaton: AhoCorasick,
    /// The literals that can make a post a candidate ([`Meaning::can_report`])
    /// in an automaton of their own, and each one's index in
    /// [`Tables::literals`] (for its boundaries). Most posts hold none of
    /// them and are judged by this small automaton alone, so their cost
    /// does not grow with the catalogue's names.
    pub cues: AhoCorasick,
    pub cue_literals: Vec<u32>,
    /// Per automaton pattern: its meanings and whether it must stand at a
    /// word boundary on the left and on the right.
    pub literals: Vec<Literal>,
    /// The literals' meanings, each literal's in a row.
    pub meanings: Vec<Meaning>,
    pub services: Vec<ServiceEntry>,
    pub langs: Vec<String>,
    /// Hashtag stems (names with everything but letters and digits removed).
    pub stems: HashMap<String, Stem>,
    /// Hashtag affixes, longest first.
    pub hashtag_suffixes: Vec<HashtagAffix>,
    pub hashtag_prefixes: Vec<HashtagAffix>,
    /// Per language (by its index in `langs`): the `own_if_unnamed` words,
    /// normalized.
    pub own_if_unnamed: Vec<Vec<String>>,
    /// Per language: the `yours` words (second-person possessives),
    /// normalized.
    pub yours: Vec<Vec<String>>,
    /// Cancel phrases written as one word (`touchdown`, `meltdown`): a
    /// hashtag equal to one of them is not an outage tag.
    pub cancel_words: HashSet<String>,
    pub regexes: PhraseRegexes,
    /// Finds host names ("foo.com") for services not in the catalogue.
    pub domain: Regex,
    /// Catalogued accounts: handle stem (letters and digits) → service.
    pub handles: HashMap<String, u16>,
}

/// The phrases written as regular expressions, each with its kind and
/// language, and all of them in one lazy DFA. A candidate post can match
/// few of them: one pass of the DFA tells which, and only those run (each
/// in turn on every candidate cost more than the automaton's own scan).
/// The DFA runs forward only and keeps no captures: `regex::RegexSet`,
/// which answers the same, peaked 8 MiB higher with a 10× catalogue (63
/// of the 64 MiB budget) and ran 20 % more instructions. On a text it
/// cannot search (a Unicode word boundary next to a non-ASCII byte), or
/// for expressions it cannot build, every expression runs, as before.
pub struct PhraseRegexes {
    any: Option<(hybrid::dfa::DFA, Pool<hybrid::dfa::Cache, CacheFn>)>,
    each: Vec<(Regex, PhraseKind, u8)>,
}

type CacheFn = Box<
    dyn Fn() -> hybrid::dfa::Cache
        + Send
        + Sync
        + std::panic::RefUnwindSafe
        + std::panic::UnwindSafe,
>;

/// The compiled size of all a catalogue's regexes as one automaton, at
/// most (the built-in ones need well under a MiB).
const MAX_COMBINED_NFA_BYTES: usize = 16 << 20;

impl PhraseRegexes {
    pub fn new(each: Vec<(Regex, PhraseKind, u8)>) -> PhraseRegexes {
        let any = hybrid::dfa::DFA::builder()
            // Bounded: past it the regexes are run one by one (below).
            .thompson(
                thompson::Config::new()
                    .which_captures(thompson::WhichCaptures::None)
                    .nfa_size_limit(Some(MAX_COMBINED_NFA_BYTES)),
            )
            .configure(
                hybrid::dfa::DFA::config()
                    .match_kind(MatchKind::All)
                    .unicode_word_boundary(true),
            )
            .build_many(
                &each
                    .iter()
                    .map(|(regex, _, _)| regex.as_str())
                    .collect::<Vec<_>>(),
            )
            .ok()
            .map(|dfa| {
                let for_caches = dfa.clone();
                let caches = Pool::new(Box::new(move || for_caches.create_cache()) as CacheFn);
                (dfa, caches)
            });
        PhraseRegexes { any, each }
    }

    /// Every expression, in catalogue order.
    #[cfg(test)]
    pub fn all(&self) -> &[(Regex, PhraseKind, u8)] {
        &self.each
    }

    /// The expressions that can match somewhere in `text`, in catalogue
    /// order: those that do, or all of them where the DFA cannot tell.
    pub fn matching<'a>(
        &'a self,
        text: &str,
    ) -> impl Iterator<Item = &'a (Regex, PhraseKind, u8)> + use<'a> {
        let mut which = PatternSet::new(self.each.len());
        let searched = self.any.as_ref().map(|(dfa, caches)| {
            dfa.try_which_overlapping_matches(&mut caches.get(), &Input::new(text), &mut which)
        });
        let all = !matches!(searched, Some(Ok(())));
        self.each
            .iter()
            .enumerate()
            .filter(move |(i, _)| all || PatternID::new(*i).is_ok_and(|id| which.contains(id)))
            .map(|(_, each)| each)
    }
}

/// A host name whose first label can name a service: `status.foo.com` is
/// not matched as a whole, `foo.com` and `foo.io` are.
pub(super) const DOMAIN_PATTERN: &str = r"\b([a-z0-9][a-z0-9-]{1,40})\.(?:com|net|org|io|app|dev|co|gg|tv|me|ai|fm|ly|cc|us|ca|in|nz|au|nl|pl|ru|se|ch|social|cloud|xyz|info|br|jp|de|fr|es|it|kr|uk|eu)\b";

/// A literal of the automaton as the classifier reads it: where its
/// meanings are in [`Tables::meanings`] and where it may stand. Its text
/// lives in the automaton only: a `String` and a `Vec` per literal cost
/// about 8 MiB more at 10× today's catalogue (75,000 literals).
#[derive(Debug, Clone, Copy)]
pub struct Literal {
    pub first_meaning: u32,
    pub meanings: u16,
    pub left: Boundary,
    pub right: Boundary,
}

/// What must stand next to a literal for it to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// Anything (punctuation, Kanji, Hangul: scripts without word breaks).
    None,
    /// Not a letter or digit of a spaced script: "down" not in "download".
    Word,
    /// Not Katakana: Katakana words run together, so インスタ must not
    /// match inside インスタンス ("instance").
    Katakana,
}

impl Boundary {
    pub(super) fn for_edge(c: char) -> Boundary {
        if is_word_char(c) {
            Boundary::Word
        } else if is_katakana(c) {
            Boundary::Katakana
        } else {
            Boundary::None
        }
    }

    /// Whether `neighbour` (None at the text's edge) lets the literal stand.
    pub fn allows(self, neighbour: Option<char>) -> bool {
        match (self, neighbour) {
            (_, None) | (Boundary::None, _) => true,
            (Boundary::Word, Some(c)) => !is_word_char(c),
            (Boundary::Katakana, Some(c)) => !is_katakana(c),
        }
    }
}

fn is_katakana(c: char) -> bool {
    matches!(c, '\u{30A0}'..='\u{30FF}' | '\u{FF66}'..='\u{FF9F}')
}

/// Scripts written without spaces between words (or with particles glued to
/// nouns, as Korean): a literal in them matches anywhere.
pub fn is_unsegmented(c: char) -> bool {
    matches!(c,
        '\u{1100}'..='\u{11FF}'   // Hangul Jamo
        | '\u{3040}'..='\u{30FF}' // Hiragana, Katakana
        | '\u{3130}'..='\u{318F}' // Hangul compatibility Jamo
        | '\u{3400}'..='\u{4DBF}' // CJK extension A
        | '\u{4E00}'..='\u{9FFF}' // CJK unified ideographs
        | '\u{AC00}'..='\u{D7AF}' // Hangul syllables
        | '\u{F900}'..='\u{FAFF}' // CJK compatibility ideographs
        | '\u{FF66}'..='\u{FF9F}' // half-width Katakana
        | '\u{0E00}'..='\u{0E7F}' // Thai
    )
}

/// A character that belongs to a word in a space-separated script.
pub fn is_word_char(c: char) -> bool {
    (c.is_alphanumeric() || c == '_') && !is_unsegmented(c)
}

/// An outage affix of hashtags (`down` in `#TwitterDown`).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HashtagAffix {
    /// Its hashtag stem (letters and digits).
    pub stem: String,
    pub lang: u8,
    /// Whether it is also an outage phrase of its language (`down`, not
    /// `dead` or `is`): only such an affix makes a name the catalogue does
    /// not know into a service, since `#TheWalkingDead` and `#Israel` are
    /// no reports.
    pub outage_word: bool,
}

pub fn hashtag_stem(name: &str) -> String {
    normalize_text(name)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

impl Tables {
    /// What `literal` means (at least one thing).
    pub fn meanings_of(&self, literal: &Literal) -> &[Meaning] {
        let first = literal.first_meaning as usize;
        &self.meanings[first..first + usize::from(literal.meanings)]
    }
}
