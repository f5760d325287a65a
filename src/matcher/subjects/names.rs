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

/// Predicates that say a person or a team is away ("Mahomes is out for
/// the season", "Power is out in Austin", "Costco is out of toilet
/// paper"): after a guessed name they are a report only when nothing
/// but a live cue follows them (see [`said_of_people`]).
const OUT_PREDICATES: &[&str] = &["is out", "are out", "out"];

/// What people add to a report of a failure happening to them now, and
/// not to news of a person: "Blipster is out for anyone else?",
/// "Blipster down for me". Not "again" or "today" after a person
/// predicate: "Embiid is down again", "Kevin is out today".
const LIVE_CUES: &[&str] = &[
    "for me",
    "for anyone",
    "for anybody",
    "for everyone",
    "for everybody",
    "for us",
    "for you",
    "anyone",
    "anybody",
    "right now",
    "rn",
    "atm",
    "everywhere",
];

/// Words right after a predicate that make it a quantity, not a failure:
/// "Chelsea are down to 10 men", "down by 12", "The Lakers are down big",
/// "Bitcoin is down bad", "Kelce went down with an injury".
const QUANTITY_WORDS: &[&str] = &["to", "by", "big", "bad", "with"];

/// Words of a score, a poll or a market, a few words after a predicate:
/// "Biden is down in the polls", "Yankees are down 3 runs", "Liverpool
/// are down at half time". A name before them is a person or a team.
const SCORE_WORDS: &[&str] = &[
    "poll", "polls", "points", "pts", "runs", "goals", "percent", "half", "halftime", "quarter",
    "inning", "innings", "lead", "seats", "votes", "lineup", "season", "injured", "injury",
    "surgery", "stock",
];

/// Units of time: "Blipster is down for 2 hours" is how long it failed,
/// not a score.
const TIME_UNITS: &[&str] = &[
    "h", "hr", "hrs", "hour", "hours", "m", "min", "mins", "minute", "minutes", "day", "days",
    "am", "pm",
];

/// Words a few words after a predicate are read, at most.
const SCORE_WINDOW: usize = 4;

/// Market and index words: `#StocksDown`, `#DowDown`, "Nasdaq is down"
/// are a market falling, and thousands say so on a bad day; a guessed
/// name that is one of them is no service.
pub(in crate::matcher) const MARKET_WORDS: &[&str] = &[
    "stocks",
    "stock",
    "dow",
    "djia",
    "nasdaq",
    "sp500",
    "spx",
    "spy",
    "market",
    "markets",
    "crypto",
    "bitcoin",
    "btc",
    "eth",
    "ethereum",
    "nikkei",
    "ftse",
    "dax",
    "sensex",
    "nifty",
    "hangseng",
    "asx",
    "tsx",
    "bonds",
    "oil",
    "gold",
    "silver",
    "dollar",
    "euro",
    "yen",
    "pound",
    "shares",
    "economy",
    "gdp",
    "wallstreet",
    "futures",
];

/// Whether a predicate after a guessed name reads as said of a person, a
/// team or a price rather than of a service, from the rest of its
/// sentence (`rest`, normalized). A name the catalogue does not know is
/// guessed from its capitals alone, so the predicate must carry it:
/// "is out" must end the sentence (a `?` may) or be followed by a live cue (people
/// and shops are "out for the season", "out of oat milk", "out in
/// Austin"); any predicate followed by a quantity ("down 5", "down to
/// 10 men", "stopped working at 65") or a score word ("in the polls",
/// "at half time") is a score. Pure: reads only its arguments.
pub(in crate::matcher) fn said_of_people(predicate: &str, rest: &str) -> bool {
    let words: Vec<&str> = rest
        .split(|c: char| !(c.is_alphanumeric() || c == '%'))
        .filter(|w| !w.is_empty())
        .collect();
    if OUT_PREDICATES.contains(&predicate) && !words.is_empty() && !live_cue(rest) {
        return true;
    }
    let number = |w: &str| w.starts_with(|c: char| c.is_ascii_digit());
    let quantity = match words.as_slice() {
        [first, ..] if QUANTITY_WORDS.contains(first) => true,
        // "down 5", "down 3%", "down 3 runs"; not "down for 2 hours".
        [first, next, ..] if number(first) => !TIME_UNITS.contains(next),
        [first] if number(first) => true,
        // "stopped working at 65"; not "at 3pm".
        ["at", n, ..] if number(n) => n.chars().all(|c| c.is_ascii_digit()),
        _ => false,
    };
    quantity
        || words
            .iter()
            .take(SCORE_WINDOW)
            .any(|w| SCORE_WORDS.contains(w))
}

/// Whether the rest of a sentence after a predicate starts with a live
/// cue ([`LIVE_CUES`]): "Blipster down for anyone else?". Not a bare
/// question mark: "LeBron down?" asks after a person as often.
fn live_cue(rest: &str) -> bool {
    let rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
    LIVE_CUES.iter().any(|cue| {
        rest.strip_prefix(cue)
            .is_some_and(|after| !after.starts_with(|c: char| c.is_alphanumeric()))
    })
}

/// Predicates said of people as often as of services, right after a name
/// that is also a given name or a word ("Claude is out sick today",
/// "Claude Monet is dead"): they do not support an ambiguous name on their
/// own (see `ambiguous_support`). Not "down": "x is down", "is steam down".
pub(in crate::matcher) const PERSON_PHRASES: &[&str] = &[
    "is dead",
    "died",
    "is dying",
    "dead",
    "dead again",
    "is out",
];

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
            let supports = if LIFE_PHRASES.contains(&predicate) {
                live_cue(rest)
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
        let clause = self.clause(end);
        let stop = self
            .clause_starts
            .get(clause)
            .copied()
            .unwrap_or(self.text.len());
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

    /// Predicates after a guessed name, both ways: said of people, teams
    /// and prices (true), or of a service failing now (false).
    #[test]
    fn said_of_people_table() {
        let cases = [
            ("is out", " for the season", true),
            ("is out", " tonight", true),
            ("is out", " of toilet paper", true),
            ("is out", " in Austin", true),
            ("is out", " again", true),
            ("is down", " in the polls", true),
            ("is down", " 5 in pennsylvania", true),
            ("are down", " 3 runs", true),
            ("are down", " 12% today", true),
            ("are down", " at half time", true),
            ("are down", " to 10 men", true),
            ("stopped working", " at 65", true),
            ("is out", "", false),
            ("is out", "?", false),
            ("is out", " for anyone else?", false),
            ("is out", " rn", false),
            ("is down", "", false),
            ("is down", " again", false),
            ("is down", " in europe", false),
            ("is down", " for 2 hours now", false),
            ("stopped working", " at 3pm", false),
            ("is down", " for me", false),
        ];
        for (predicate, rest, want) in cases {
            assert_eq!(
                said_of_people(predicate, rest),
                want,
                "{predicate:?} {rest:?}"
            );
        }
    }

    #[test]
    fn live_cues_table() {
        let cases = [
            (" for anyone else?", true),
            (" for me", true),
            (", rn", true),
            (" rnd", false),
            ("?", false),
            (" again", false),
            ("", false),
        ];
        for (rest, want) in cases {
            assert_eq!(live_cue(rest), want, "{rest:?}");
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
