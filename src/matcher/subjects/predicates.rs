//! What the predicate after a guessed name says of its subject: a name the
//! catalogue does not know is guessed from its capitals alone ("Blipster
//! is down"), so the predicate must carry it, and people, teams, shops and
//! prices are "out for the season", "down 3 runs", "out of oat milk",
//! "down in the polls" (see [`said_of_people`]).

/// Predicates that people say of people too: a capitalised name before
/// them is as likely a person ("Alfred is dead") as a service.
pub(super) const LIFE_PHRASES: &[&str] =
    &["is dead", "died", "is dying", "dead", "dead again", "down"];

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
pub(super) fn live_cue(rest: &str) -> bool {
    let rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
    LIVE_CUES.iter().any(|cue| {
        rest.strip_prefix(cue)
            .is_some_and(|after| !after.starts_with(|c: char| c.is_alphanumeric()))
    })
}

/// Whether a sentence that reached a predicate with `before` opens as a
/// question about a state ("is Blipster down?", "are the Zorbex servers
/// down?"): asked so of a name, "down" is asked of a service, where
/// "LeBron down?" asks after a person as often.
pub(super) fn asks_about_a_state(before: &str) -> bool {
    let first = before
        .trim_start_matches(|c: char| !c.is_alphanumeric())
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .next()
        .unwrap_or_default();
    STATE_QUESTIONS.contains(&first)
}

/// Words that open a question about a state.
const STATE_QUESTIONS: &[&str] = &["is", "are", "isn't", "isnt", "aren't", "arent"];

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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The words of a sentence before a name asked "down?" about.
    #[test]
    fn asks_about_a_state_table() {
        let cases = [
            ("is ", true),
            ("  is the ", true),
            ("are the ", true),
            ("isn't ", true),
            ("", false),
            ("lol ", false),
            ("this ", false),
            ("island ", false),
            ("why is ", false),
        ];
        for (before, want) in cases {
            assert_eq!(asks_about_a_state(before), want, "{before:?}");
        }
    }
}
