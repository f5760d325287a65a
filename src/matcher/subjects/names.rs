//! Capitalised names as subjects: "Blipster is down", "the Hoyts website
//! isn't working", "Site ItaCeramica fora do ar". A name the catalogue does
//! not know is guessed from how it is written: with capitals, where a
//! subject stands, not a function word, not after an article.

use super::super::decision::{Decision, Mention, Service};
use super::super::tables::{PhraseKind, hashtag_stem};
use super::super::text::{gap, word_spans};
use super::super::verdict::Rule;

/// Predicates that people say of people too: a capitalised name before
/// them is as likely a person ("Alfred is dead") as a service.
const LIFE_PHRASES: &[&str] = &["is dead", "died", "is dying", "dead", "dead again", "down"];

/// Words between a name and its thing that belong to neither: "Meteor
/// official website", "Acme mobile site".
const BETWEEN: &[&str] = &[
    "official", "main", "new", "old", "mobile", "web", "whole", "entire",
];

/// Articles: a bare subject after one is a thing, not a name.
const ARTICLES: &[&str] = &[
    "the", "a", "an", "la", "le", "les", "il", "lo", "el", "los", "las", "der", "die", "das", "o",
    "a", "os", "as", "un", "una", "une", "ein", "eine",
];

/// Words that stand where a name could but are not one.
#[rustfmt::skip]
const NOT_NAMES: &[&str] = &[
    "i", "im", "my", "your", "yr", "ur", "the", "this", "that", "these", "those", "it", "its",
    "our", "their", "his", "her", "a", "an", "and", "or", "but", "so", "is", "are", "was", "were",
    "why", "what", "when", "where", "how", "who", "hey", "hi", "hello", "hmm", "ugh", "wow", "omg",
    "lol", "just", "now", "today", "still", "again", "also", "official", "main", "whole", "entire",
    "new", "old", "mobile", "same", "some", "any", "every", "everything", "nothing", "something",
    "someone", "anyone", "all", "no", "not", "yes", "ok", "great", "stupid", "damn", "frustrated",
    "lucky", "funny", "story", "because", "then", "there", "here", "seems", "like", "looks",
    "please", "help", "thanks", "thank", "for", "me", "you", "we", "they", "he", "she", "us",
    "web", "site", "website", "server", "servers", "page", "app", "internet", "online", "bug",
    "error", "ps", "btw", "fyi", "sorry", "well", "oh", "ah", "yeah", "yep", "nope", "apparently",
    "seriously", "currently", "le", "la", "el", "los", "las", "o", "os", "der", "die", "das", "il",
    "lo", "di", "de", "du", "des", "en", "em", "no", "na", "do", "da", "est", "ist", "se", "su",
    "mi", "tu", "mon", "ma", "problem", "problems", "issue", "issues", "trouble", "having", "am",
    "wrong", "section", "part", "pm", "tonight", "monday", "tuesday", "wednesday", "thursday",
    "friday", "saturday", "sunday", "chrome", "firefox", "safari", "edge", "windows", "mac",
    "iphone", "ipad", "android", "mein", "meine", "dein", "deine", "kein", "keine", "unser",
    "unsere", "ein", "eine", "mio", "mia",
];

/// Where a name may stand relative to a failure phrase or a thing.
#[derive(Clone, Copy)]
struct Place {
    /// Byte offset the name ends at (`leftward`) or starts at.
    at: usize,
    leftward: bool,
    /// Right before the predicate: the name would be its bare subject.
    strict: bool,
}

impl Decision<'_> {
    /// Names written with capitals where a subject stands: right before a
    /// failure phrase ("Blipster is down", "GRNsight server is down"), or
    /// next to a thing that fails ("the Hoyts website isn't working",
    /// "Site ItaCeramica fora do ar"). A run of capitalised words is one
    /// name; it becomes a discovered service spelt as its letters and
    /// digits, unless a known name already stands there.
    pub(super) fn named_subjects(
        &mut self,
        mentions: &mut Vec<Mention>,
        anchors: &[(usize, usize)],
    ) {
        let places = self.subject_places(anchors);
        if self.is_shouting() {
            return;
        }
        for place in places {
            let Some((start, end)) = self.capitalised_run(place) else {
                continue;
            };
            let Some(service) = self.name_at(mentions, start, end) else {
                continue;
            };
            let id = self.service_id(&service);
            let detail = |id: &str| {
                format!("names {id}: a capitalised name where a subject stands (discovered)")
            };
            self.naming_reason(Rule::Name, (start, end), id, detail);
            mentions.push(Mention {
                service,
                span: Some((start, end)),
                addressee: false,
            });
        }
    }

    /// Right before each failure phrase (unless it is said of people too),
    /// and on both sides of each thing near one in its sentence.
    fn subject_places(&self, anchors: &[(usize, usize)]) -> Vec<Place> {
        let mut places = Vec::new();
        for &(start, end) in anchors {
            if !LIFE_PHRASES.contains(&&self.text[start..end]) {
                places.push(Place {
                    at: start,
                    leftward: true,
                    strict: true,
                });
            }
            let clause = self.clause(start);
            for t in self.hits_of(PhraseKind::Target) {
                if self.clause(t.start) == clause && gap(t.start, t.end, start, end) <= 40 {
                    let side = |at, leftward| Place {
                        at,
                        leftward,
                        strict: false,
                    };
                    places.push(side(t.start, true));
                    places.push(side(t.end, false));
                }
            }
        }
        places
    }

    /// A post written mostly in capitals shows no names by its capitals.
    fn is_shouting(&self) -> bool {
        let letters = self.original.chars().filter(|c| c.is_alphabetic()).count();
        let upper = self.original.chars().filter(|c| c.is_uppercase()).count();
        letters > 0 && upper * 10 > letters * 6
    }

    /// The service a capitalised run names, unless a mention already
    /// stands there (or touches it), it lies in a link, it is too short,
    /// or it is an ambiguous catalogued name.
    fn name_at(&self, mentions: &[Mention], start: usize, end: usize) -> Option<Service> {
        let taken = mentions
            .iter()
            .any(|m| m.span.is_some_and(|(s, e)| s < end + 1 && start < e + 1));
        if taken || self.in_link(start) {
            return None;
        }
        let name = hashtag_stem(&self.text[start..end]);
        if name.chars().count() < 2 {
            return None;
        }
        match self.tables.stems.get(&name) {
            Some(stem) if !stem.ambiguous => Some(Service::Known(stem.service)),
            Some(_) => None,
            None => Service::discovered(name),
        }
    }

    /// The run of capitalised words ending at (or starting at) the place,
    /// skipping one space and a possessive `'s`; at most four words.
    fn capitalised_run(&self, place: Place) -> Option<(usize, usize)> {
        let words = word_spans(self.text);
        if place.leftward {
            self.run_leftward(&words, place.at, place.strict)
        } else {
            self.run_rightward(&words, place.at, place.strict)
        }
    }

    /// Capitalised words ending at `at`, going left; one word from
    /// [`BETWEEN`] right at `at` is stepped over ("Acme mobile site").
    fn run_leftward(
        &self,
        words: &[(usize, usize)],
        at: usize,
        strict: bool,
    ) -> Option<(usize, usize)> {
        let mut run: Option<(usize, usize)> = None;
        let mut edge = at;
        for &(s, e) in words.iter().rev().filter(|&&(_, e)| e <= at) {
            let between = self.text[e..edge].trim();
            let joined = between.is_empty() || between == "'s" || between == "’s";
            if !joined || run.map_or(0, |(rs, re)| self.text[rs..re].split(' ').count()) >= 4 {
                break;
            }
            if run.is_none() && BETWEEN.contains(&&self.text[s..e]) {
                edge = s;
                continue;
            }
            if !self.is_name_word(s, e, strict) {
                break;
            }
            run = Some((s, run.map_or(e, |(_, re)| re)));
            edge = s;
        }
        run
    }

    /// Capitalised words starting at `at`, going right.
    fn run_rightward(
        &self,
        words: &[(usize, usize)],
        at: usize,
        strict: bool,
    ) -> Option<(usize, usize)> {
        let mut run: Option<(usize, usize)> = None;
        let mut edge = at;
        for &(s, e) in words.iter().filter(|&&(s, _)| s >= at) {
            if !self.text[edge..s].trim().is_empty() || !self.is_name_word(s, e, strict) {
                break;
            }
            run = Some((run.map_or(s, |(rs, _)| rs), e));
            edge = e;
            if self.text[run?.0..e].split(' ').count() >= 4 {
                break;
            }
        }
        run
    }

    /// A word written with a capital letter somewhere in the original
    /// (CamelCase, an initial, ALLCAPS), that is not a function word. When
    /// `strict` (the word would be the bare subject of the predicate), it
    /// must not follow an article.
    fn is_name_word(&self, start: usize, end: usize, strict: bool) -> bool {
        let word = &self.text[start..end];
        // Names are spelt in ASCII letters and digits (as discovered
        // hashtags are); a word tagged `#` or `@` is read as a hashtag or
        // a handle elsewhere.
        if NOT_NAMES.contains(&word)
            || !word.chars().all(|c| c.is_ascii_alphanumeric())
            || word.chars().all(|c| c.is_ascii_digit())
            || self.text[..start].ends_with(['#', '@'])
        {
            return false;
        }
        // "La Juve non va", "the Dow is down": a bare subject with an
        // article before it is a thing or a team, not a service's name.
        if strict && self.follows_article(start) {
            return false;
        }
        self.written_capitalised(word)
    }

    fn follows_article(&self, start: usize) -> bool {
        let before = self.text[..start].trim_end();
        let article = before.rsplit(' ').next().unwrap_or("");
        ARTICLES.contains(&article)
    }

    /// Whether `word` stands as a whole word in the original text with at
    /// least one capital letter.
    fn written_capitalised(&self, word: &str) -> bool {
        let len = word.len();
        let original = self.original;
        original
            .match_indices(|c: char| c.is_alphanumeric())
            .any(|(i, _)| {
                original.get(i..i + len).is_some_and(|w| {
                    w.eq_ignore_ascii_case(word)
                        && w.chars().any(char::is_uppercase)
                        && original[..i]
                            .chars()
                            .next_back()
                            .is_none_or(|c| !c.is_alphanumeric())
                        && original[i + len..]
                            .chars()
                            .next()
                            .is_none_or(|c| !c.is_alphanumeric())
                })
            })
    }
}
