//! Capitalised names as subjects: "Blipster is down", "the Hoyts website
//! isn't working", "Site ItaCeramica fora do ar". A name the catalogue does
//! not know is guessed from how it is written: with capitals, where a
//! subject stands, not a function word, not after an article.

use super::super::decision::{Decision, Mention, Service};
use super::super::tables::{PhraseKind, hashtag_stem};
use super::super::text::{gap, word_spans};
use super::super::verdict::Rule;
use super::predicates::{LIFE_PHRASES, MARKET_WORDS, asks_about_a_state, live_cue, said_of_people};

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

/// Places a name is sought at in one post, at most. A post names a
/// handful of things; a 2,000-character post of "app down" repeated has
/// hundreds of places, and each one read the whole text again (1.1 s per
/// post of "접속 안됨" repeated, in a release build).
const MAX_PLACES: usize = 32;

/// Where a name may stand relative to a failure phrase or a thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
        if self.is_shouting() {
            return;
        }
        let places = self.subject_places(anchors);
        // Read once per post, not once per place or per word.
        let words = Words {
            spans: word_spans(self.text),
            capitalised: capitalised_words(self.original),
        };
        for place in places {
            let Some((start, end)) = self.capitalised_run(&words, place) else {
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
    /// and on both sides of each thing near one in its sentence; each
    /// place once, at most [`MAX_PLACES`].
    fn subject_places(&self, anchors: &[(usize, usize)]) -> Vec<Place> {
        let targets: Vec<(usize, usize)> = self
            .hits_of(PhraseKind::Target)
            .map(|t| (t.start, t.end))
            .collect();
        let mut places = Vec::new();
        for &(start, end) in anchors {
            if places.len() == MAX_PLACES {
                break;
            }
            let predicate = &self.text[start..end];
            let rest = self.rest_of_clause(end);
            // "down?" is "down" asked: "LeBron down?" is no more a
            // report than "LeBron down", unless the sentence asks about a
            // state ("is Blipster down?").
            let asked = predicate.ends_with('?');
            let supports = if LIFE_PHRASES.contains(&predicate.trim_end_matches('?')) {
                live_cue(rest)
                    || (asked
                        && asks_about_a_state(&self.text[self.clause_span(start).start..start]))
            } else {
                !said_of_people(predicate, rest)
            };
            if supports {
                add_place(&mut places, start, true, true);
            }
            let clause = self.clause(start);
            for &(t_start, t_end) in &targets {
                if self.clause(t_start) == clause && gap(t_start, t_end, start, end) <= 40 {
                    add_place(&mut places, t_start, true, false);
                    add_place(&mut places, t_end, false, false);
                }
            }
        }
        places
    }

    /// The text after byte `end` up to the end of its sentence (the
    /// sentence's closing `?` or `!` included).
    fn rest_of_clause(&self, end: usize) -> &str {
        let stop = self.clause_span(end).end;
        self.text.get(end..stop.max(end)).unwrap_or("")
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
        if name.chars().count() < 2 || MARKET_WORDS.contains(&name.as_str()) {
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
    fn capitalised_run(&self, words: &Words, place: Place) -> Option<(usize, usize)> {
        if place.leftward {
            self.run_leftward(words, place.at, place.strict)
        } else {
            self.run_rightward(words, place.at, place.strict)
        }
    }

    /// Capitalised words ending at `at`, going left; one word from
    /// [`BETWEEN`] right at `at` is stepped over ("Acme mobile site").
    fn run_leftward(&self, words: &Words, at: usize, strict: bool) -> Option<(usize, usize)> {
        let mut run: Option<(usize, usize)> = None;
        let mut edge = at;
        // The spans are in order: those ending by `at` are a prefix.
        let before = words.spans.partition_point(|&(_, e)| e <= at);
        for &(s, e) in words.spans[..before].iter().rev() {
            // A line break ends the run: a name is written on one line.
            let between = &self.text[e..edge];
            let joined = !between.contains('\n') && matches!(between.trim(), "" | "'s");
            if !joined || run.map_or(0, |(rs, re)| self.text[rs..re].split(' ').count()) >= 4 {
                break;
            }
            if run.is_none() && BETWEEN.contains(&&self.text[s..e]) {
                edge = s;
                continue;
            }
            if !self.is_name_word(words, s, e, strict) {
                break;
            }
            run = Some((s, run.map_or(e, |(_, re)| re)));
            edge = s;
        }
        run
    }

    /// Capitalised words starting at `at`, going right.
    fn run_rightward(&self, words: &Words, at: usize, strict: bool) -> Option<(usize, usize)> {
        let mut run: Option<(usize, usize)> = None;
        let mut edge = at;
        let from = words.spans.partition_point(|&(s, _)| s < at);
        for &(s, e) in &words.spans[from..] {
            let between = &self.text[edge..s];
            if !between.trim().is_empty()
                || between.contains('\n')
                || !self.is_name_word(words, s, e, strict)
            {
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
    fn is_name_word(&self, words: &Words, start: usize, end: usize, strict: bool) -> bool {
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
        words
            .capitalised
            .binary_search_by(|w| w.as_str().cmp(word))
            .is_ok()
    }

    fn follows_article(&self, start: usize) -> bool {
        let before = self.text[..start].trim_end();
        let article = before.rsplit(char::is_whitespace).next().unwrap_or("");
        ARTICLES.contains(&article)
    }
}

/// What the name rules read of a post's words, gathered once per post.
struct Words {
    /// The normalized text's words ([`word_spans`]).
    spans: Vec<(usize, usize)>,
    /// [`capitalised_words`] of the original.
    capitalised: Vec<String>,
}

/// Adds a place unless it is there already or [`MAX_PLACES`] are.
fn add_place(places: &mut Vec<Place>, at: usize, leftward: bool, strict: bool) {
    let place = Place {
        at,
        leftward,
        strict,
    };
    if places.len() < MAX_PLACES && !places.contains(&place) {
        places.push(place);
    }
}

/// The words of `original` (whole runs of letters and digits) that are
/// spelt in ASCII and written with at least one capital, lower-cased,
/// sorted and each once: the words a name can be.
fn capitalised_words(original: &str) -> Vec<String> {
    let mut words: Vec<String> = original
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.is_ascii() && w.bytes().any(|b| b.is_ascii_uppercase()))
        .map(str::to_ascii_lowercase)
        .collect();
    words.sort_unstable();
    words.dedup();
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::Matcher;
    use crate::matcher::classify::hits_of_candidate;
    use crate::normalize::normalize;
    use crate::source::RawPost;

    /// A long post of repeated phrases and things gives each place once,
    /// and no more than [`MAX_PLACES`]: the work per place (reading the
    /// words around it) does not grow with the text, and the places do not
    /// grow past the bound (they were hundreds, each reading every word).
    #[test]
    fn places_are_each_once_and_bounded() {
        let matcher = Matcher::embedded().expect("the embedded catalogue compiles");
        let cases = [
            ("app down ".repeat(222), MAX_PLACES),
            ("접속 안됨 ".repeat(333), MAX_PLACES),
            ("the app is down and the site is down".into(), 6),
            // The same thing next to two phrases is one place ("down" is
            // said of people too: no place before it).
            ("app down down".into(), 2),
        ];
        for (text, want) in cases {
            let post = normalize(RawPost::typed(text, Vec::new()));
            let hits = hits_of_candidate(&matcher.tables, &post);
            let decision = Decision::new(&matcher.tables, &post, hits, vec![], vec![], false);
            let anchors: Vec<(usize, usize)> = decision
                .hits_of(PhraseKind::Outage)
                .map(|h| (h.start, h.end))
                .collect();
            let places = decision.subject_places(&anchors);
            // The decision keeps the first MAX_HITS_PER_KIND hits of a
            // kind, so a repeated text may stop short of the bound.
            if want == MAX_PLACES {
                assert!(places.len() <= want, "{:?}: {places:?}", post.text);
            } else {
                assert_eq!(places.len(), want, "{:?}: {places:?}", post.text);
            }
            for (i, p) in places.iter().enumerate() {
                assert!(!places[..i].contains(p), "{:?}: {p:?} twice", post.text);
            }
        }
    }

    #[test]
    fn capitalised_words_of_the_original() {
        let cases: [(&str, &[&str]); 4] = [
            (
                "Is ZORBLY down? zorbly, GitHub",
                &["github", "is", "zorbly"],
            ),
            ("Störung bei Acme", &["acme"]),
            ("no capitals", &[]),
            ("x2Go and X2go", &["x2go"]),
        ];
        for (text, want) in cases {
            assert_eq!(capitalised_words(text), want, "{text:?}");
        }
    }
}
