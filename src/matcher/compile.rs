//! Turning a [`Catalogue`] into one Aho-Corasick automaton plus the tables
//! that say what each literal means. Validation happens here, so a bad
//! pattern fails at start with its file and line, never while matching.

use std::collections::{HashMap, HashSet};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::Regex;
use toml::Spanned;

use super::patterns::{Catalogue, Category, Located, PatternError};
use crate::normalize::normalize_text;

/// What a phrase list means; the list names in a language file.
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
        )
    }

    const ALL: [PhraseKind; 13] = [
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
    ];

    fn from_name(name: &str) -> Option<PhraseKind> {
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

#[derive(Debug, Clone)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub category: Category,
}

/// How a service's name may appear inside a hashtag.
#[derive(Debug, Clone, Copy)]
pub struct Stem {
    pub service: u16,
    pub ambiguous: bool,
}

/// The compiled matcher tables; see [`super::Matcher`].
pub struct Tables {
    pub automaton: AhoCorasick,
    /// Per automaton pattern: its meanings and whether it must stand at a
    /// word boundary on the left and on the right.
    pub literals: Vec<Literal>,
    pub services: Vec<Service>,
    pub langs: Vec<String>,
    /// Hashtag stems (names with everything but letters and digits removed).
    pub stems: HashMap<String, Stem>,
    pub hashtag_suffixes: Vec<(String, u8)>,
    pub hashtag_prefixes: Vec<(String, u8)>,
    /// Cancel phrases written as one word (`touchdown`, `meltdown`): a
    /// hashtag equal to one of them is not an outage tag.
    pub cancel_words: HashSet<String>,
    pub regexes: Vec<(Regex, PhraseKind, u8)>,
    /// Finds host names ("foo.com") for services not in the catalogue.
    pub domain: Regex,
    /// Catalogued accounts: handle stem (letters and digits) → service.
    pub handles: HashMap<String, u16>,
}

/// A host name whose first label can name a service: `status.foo.com` is
/// not matched as a whole, `foo.com` and `foo.io` are.
const DOMAIN_PATTERN: &str = r"\b([a-z0-9][a-z0-9-]{1,40})\.(?:com|net|org|io|app|dev|co|gg|tv|me|ai|fm|ly|cc|us|ca|in|nz|au|nl|pl|ru|se|ch|social|cloud|xyz|info|br|jp|de|fr|es|it|kr|uk|eu)\b";

pub struct Literal {
    pub text: String,
    pub meanings: Vec<Meaning>,
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
    fn for_edge(c: char) -> Boundary {
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

pub fn hashtag_stem(name: &str) -> String {
    normalize_text(name)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

#[derive(Default)]
struct Builder {
    index: HashMap<String, usize>,
    literals: Vec<Literal>,
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
                self.literals.push(Literal {
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
}

pub(crate) fn compile(catalogue: &Catalogue) -> Result<Tables, PatternError> {
    let mut builder = Builder::default();
    let mut services = Vec::new();
    let mut stems: HashMap<String, Stem> = HashMap::new();
    let mut alias_owner: HashMap<String, String> = HashMap::new();
    let mut handles: HashMap<String, u16> = HashMap::new();
    let at = Located {
        file: &catalogue.services_file,
        source: &catalogue.services_source,
    };
    for def in &catalogue.services {
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
        if services.iter().any(|s: &Service| s.id == *id) {
            return Err(at.error(def.id.span(), format!("service id {id:?} is defined twice")));
        }
        let n = u16::try_from(services.len())
            .map_err(|_| at.error(def.id.span(), "more than 65535 services"))?;
        if def.aliases.is_empty() && def.ambiguous.is_empty() {
            return Err(at.error(def.id.span(), format!("service {id:?} has no aliases")));
        }
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
            builder.add(&at, alias, Meaning::Alias(n))?;
        }
        for alias in &def.ambiguous {
            builder.add(&at, alias, Meaning::Ambiguous(n))?;
        }
        for word in &def.context {
            builder.add(&at, word, Meaning::Context(n))?;
        }
        for domain in &def.domains {
            builder.add(&at, domain, Meaning::Domain(n))?;
        }
        for error in &def.errors {
            builder.add(&at, error, Meaning::Error(n))?;
        }
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
                    format!("handle {stem:?} of {id:?} is already a handle of another service"),
                ));
            }
            handles.insert(stem, n);
        }
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
        services.push(Service {
            id: id.clone(),
            name: def.name.clone(),
            category: def.category,
        });
    }

    let mut langs = Vec::new();
    let mut hashtag_suffixes = Vec::new();
    let mut hashtag_prefixes = Vec::new();
    let mut cancel_words = HashSet::new();
    let mut regexes = Vec::new();
    for def in &catalogue.languages {
        let at = Located {
            file: &def.file,
            source: &def.source,
        };
        let code = def.lang.get_ref();
        if langs.contains(code) {
            return Err(at.error(
                def.lang.span(),
                format!("language {code:?} is defined twice"),
            ));
        }
        let lang = u8::try_from(langs.len())
            .map_err(|_| at.error(def.lang.span(), "more than 255 languages"))?;
        langs.push(code.clone());
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
                builder.add(&at, phrase, Meaning::Phrase(kind, lang))?;
            }
        }
        for word in &def.cancel {
            let joined = hashtag_stem(word.get_ref());
            if !joined.is_empty() {
                cancel_words.insert(joined);
            }
        }
        for (list, out) in [
            (&def.hashtag_suffixes, &mut hashtag_suffixes),
            (&def.hashtag_prefixes, &mut hashtag_prefixes),
        ] {
            for affix in list {
                let stem = hashtag_stem(affix.get_ref());
                if stem.is_empty() {
                    return Err(at.error(affix.span(), "hashtag affix has no letters or digits"));
                }
                out.push((stem, lang));
            }
        }
        for def in &def.regex {
            let kind = PhraseKind::from_name(def.category.get_ref()).ok_or_else(|| {
                at.error(
                    def.category.span(),
                    format!(
                        "unknown regex category {:?}; one of: {}",
                        def.category.get_ref(),
                        PhraseKind::ALL.map(PhraseKind::name).join(", ")
                    ),
                )
            })?;
            let regex = Regex::new(def.pattern.get_ref()).map_err(|e| {
                at.error(
                    def.pattern.span(),
                    format!("invalid regular expression: {e}"),
                )
            })?;
            regexes.push((regex, kind, lang));
        }
    }
    // Longest affixes first, so `#instagramoutage` is not read as `instagramout` + `age`.
    hashtag_suffixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.cmp(b)));
    hashtag_suffixes.dedup_by(|a, b| a.0 == b.0);
    hashtag_prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.cmp(b)));
    hashtag_prefixes.dedup_by(|a, b| a.0 == b.0);

    // The contiguous NFA, chosen by measurement on the embedded catalogue
    // (390 services, 8 languages): 1.4 MiB built in about 60 ms, where the
    // DFA took 67.5 MiB and about 280 ms to build (14 % of a short replay,
    // most of its memory) and matched no faster on posts, which are short.
    // It also has no size limit, so a larger catalogue still builds.
    let automaton = AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .build(builder.literals.iter().map(|l| l.text.as_str()))
        .map_err(|e| PatternError::Invalid {
            file: "patterns".into(),
            line: 0,
            column: 0,
            message: format!("cannot build the phrase automaton: {e}"),
        })?;
    Ok(Tables {
        automaton,
        literals: builder.literals,
        services,
        langs,
        stems,
        hashtag_suffixes,
        hashtag_prefixes,
        cancel_words,
        regexes,
        handles,
        domain: Regex::new(DOMAIN_PATTERN).map_err(|e| PatternError::Invalid {
            file: "src/matcher/compile.rs".into(),
            line: 0,
            column: 0,
            message: format!("domain pattern: {e}"),
        })?,
    })
}
