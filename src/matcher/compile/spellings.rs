//! A language's `spellings`: other spellings of parts of phrases
//! (`["n't", "nt"]`), every phrase of every list of the language also
//! listed with each part it holds spelt the other way. Its own file
//! because of how a phrase finds its parts: an automaton over every
//! spelling's `from` names the pairs a phrase holds, so each phrase costs
//! its own length, not one look per pair (15,000 phrases and as many pairs
//! took 25 s to start, and grew with their product).

use std::collections::BTreeSet;

use aho_corasick::AhoCorasick;

use crate::matcher::patterns::{LanguageDef, Located, PatternError};
use crate::normalize::normalize_text;

/// Spellings of one phrase, at most: a phrase holding many spelt parts
/// would otherwise have two to the power of their number.
pub(super) const MAX_SPELLINGS: usize = 16;

/// Pairs one language may declare, at most: a handful are what a language
/// needs (English has six), and every phrase is spelt against those it
/// holds, so thousands that all match one part multiplied each phrase's
/// work by their number.
pub(super) const MAX_PAIRS: usize = 256;

/// A language's spelling pairs, normalized as phrases are, in the order
/// they are written (which decides the order of a phrase's spellings).
pub(super) struct Spellings {
    pairs: Vec<(String, String)>,
    /// Finds every pair's `from` in a text, overlapping; `None` without
    /// pairs.
    froms: Option<AhoCorasick>,
}

impl Spellings {
    /// The language's `spellings`, each checked (it must change a
    /// non-empty part), at most [`MAX_PAIRS`].
    pub(super) fn read(at: &Located<'_>, def: &LanguageDef) -> Result<Spellings, PatternError> {
        let mut pairs = Vec::with_capacity(def.spellings.len().min(MAX_PAIRS));
        for [from, to] in &def.spellings {
            if pairs.len() == MAX_PAIRS {
                return Err(at.error(
                    from.span(),
                    format!("more than {MAX_PAIRS} spellings in one language"),
                ));
            }
            let (from_text, to_text) =
                (normalize_text(from.get_ref()), normalize_text(to.get_ref()));
            if from_text.is_empty() || from_text == to_text {
                return Err(at.error(
                    from.span(),
                    "a spelling must change a non-empty part of a phrase",
                ));
            }
            pairs.push((from_text, to_text));
        }
        let first = def.spellings.first().map_or(0..0, |[from, _]| from.span());
        Self::new(pairs).map_err(|e| at.error(first, format!("spellings: {e}")))
    }

    fn new(pairs: Vec<(String, String)>) -> Result<Spellings, aho_corasick::BuildError> {
        let froms = if pairs.is_empty() {
            None
        } else {
            Some(AhoCorasick::new(pairs.iter().map(|(from, _)| from))?)
        };
        Ok(Spellings { pairs, froms })
    }

    /// The pairs after `after` whose `from` `text` holds, into `held`.
    fn held_by(&self, text: &str, after: Option<usize>, held: &mut BTreeSet<usize>) {
        let Some(froms) = &self.froms else {
            return;
        };
        for found in froms.find_overlapping_iter(text) {
            let pair = found.pattern().as_usize();
            if after.is_none_or(|after| pair > after) {
                held.insert(pair);
            }
        }
    }

    /// The phrase and its other spellings: the pairs taken in order, each
    /// replacing its part in every spelling so far (so every combination),
    /// at most [`MAX_SPELLINGS`].
    pub(super) fn of(&self, phrase: &str) -> Vec<String> {
        let mut out = vec![normalize_text(phrase)];
        let mut held = BTreeSet::new();
        self.held_by(&out[0], None, &mut held);
        while let Some(pair) = held.pop_first() {
            let (from, to) = &self.pairs[pair];
            // The spellings made by this pair are not spelt by it again,
            // only by the pairs after it.
            for i in 0..out.len() {
                if out.len() == MAX_SPELLINGS {
                    return out;
                }
                if out[i].contains(from.as_str()) {
                    let twin = out[i].replace(from.as_str(), to);
                    if !twin.trim().is_empty() && !out.contains(&twin) {
                        self.held_by(&twin, Some(pair), &mut held);
                        out.push(twin);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spellings(pairs: &[(&str, &str)]) -> Spellings {
        let pairs = pairs
            .iter()
            .map(|(from, to)| ((*from).to_owned(), (*to).to_owned()))
            .collect();
        Spellings::new(pairs).expect("automaton")
    }

    #[test]
    fn spellings_table() {
        let pairs = spellings(&[("n't", "nt"), ("i'm", "im"), ("落ち", "おち")]);
        let cases: &[(&str, &[&str])] = &[
            ("is down", &["is down"]),
            ("can't log in", &["can't log in", "cant log in"]),
            ("Won't", &["won't", "wont"]),
            (
                "i'm sure it isn't",
                &[
                    "i'm sure it isn't",
                    "i'm sure it isnt",
                    "im sure it isn't",
                    "im sure it isnt",
                ],
            ),
            ("落ちた", &["落ちた", "おちた"]),
        ];
        for (phrase, want) in cases {
            assert_eq!(pairs.of(phrase), *want, "{phrase}");
        }
    }

    /// Two pairs of one part, a pair whose part only another pair's
    /// spelling makes, a pair before that one (not applied to what the
    /// later one makes), overlapping parts.
    /// Pairs (from, to), a phrase, and its spellings.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a [&'a str]);

    #[test]
    fn pairs_apply_in_order_to_what_earlier_ones_made() {
        let cases: &[Case] = &[
            // Two pairs of one part: the second spells what the first made
            // too (`you` holds a `u`).
            (
                &[("u", "you"), ("u", "ya")],
                "u ok",
                &["u ok", "you ok", "ya ok", "yoya ok"],
            ),
            (
                &[("u", "you"), ("r", "are")],
                "r u ok",
                &["r u ok", "r you ok", "are u ok", "are you ok"],
            ),
            (
                &[("log in", "log into"), ("into", "in to")],
                "can't log in",
                &["can't log in", "can't log into", "can't log in to"],
            ),
            (
                &[("into", "in to"), ("log in", "log into")],
                "can't log in",
                &["can't log in", "can't log into"],
            ),
            (&[("ab", "x"), ("bc", "y")], "abc", &["abc", "xc", "ay"]),
        ];
        for (pairs, phrase, want) in cases {
            assert_eq!(spellings(pairs).of(phrase), *want, "{pairs:?} {phrase}");
        }
    }

    #[test]
    fn a_phrase_has_at_most_max_spellings() {
        let many: Vec<(String, String)> = (b'a'..=b'z')
            .map(|c| ((c as char).to_string(), "9".to_owned()))
            .collect();
        let many = Spellings::new(many).expect("automaton");
        assert_eq!(many.of("abcdefghij").len(), MAX_SPELLINGS);
    }
}
