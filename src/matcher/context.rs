//! Context around a failure predicate: what cancels it (a longer phrase
//! with another sense, markets, the past, a denial, the author's own
//! device), what turns it into announced maintenance, and the voice of the
//! operator or of a support reply, which cancels the whole post.

use super::decision::{Decision, Hit, OUTAGE_WEIGHT, Phrase, PhraseState, WEAK_WEIGHT};
use super::tables::{Meaning, PhraseKind};
use super::text::gap;
use super::verdict::Rule;

/// Context in a phrase's sentence that cancels a failure phrase, the rule
/// it is given and what it says about the phrase.
const SENTENCE_CONTEXTS: [(PhraseKind, Rule, &str); 4] = [
    (
        PhraseKind::Market,
        Rule::Market,
        "is about markets and prices, not a service",
    ),
    (
        PhraseKind::Negation,
        Rule::Negation,
        "is denied: the post says it is not failing",
    ),
    (
        PhraseKind::Local,
        Rule::Local,
        "is about the author's own device, not a service",
    ),
    (PhraseKind::Past, Rule::Past, "is about the past, not now"),
];

/// What context does to one phrase, and why.
struct Finding {
    rule: Rule,
    /// The context that decided it.
    hit: Hit,
    state: PhraseState,
    why: &'static str,
}

impl Decision<'_> {
    /// Outage and weak phrases, each with its weight; "is down" and "down"
    /// both hit "twitter is down": only the longest counts. Phrases that
    /// overlap in part are one statement too (see [`merge_overlapping`]).
    pub(super) fn outage_phrases(&mut self) -> Vec<Phrase> {
        let mut phrases = Vec::new();
        let outage = self.hits_of(PhraseKind::Outage);
        let candidates: Vec<Hit> = outage
            .chain(self.hits_of(PhraseKind::Weak))
            .copied()
            .collect();
        for hit in &self.hits {
            let weight = match hit.meaning {
                Meaning::Phrase(PhraseKind::Outage, _) => OUTAGE_WEIGHT,
                Meaning::Phrase(PhraseKind::Weak, _) => WEAK_WEIGHT,
                _ => continue,
            };
            let inside_longer = candidates.iter().any(|other| {
                other.start <= hit.start
                    && hit.end <= other.end
                    && (other.end - other.start) > (hit.end - hit.start)
            });
            if !inside_longer {
                phrases.push(Phrase {
                    hit: *hit,
                    weight,
                    state: PhraseState::Live,
                });
            }
        }
        merge_overlapping(phrases)
    }

    /// Cancelling phrases that overlap, then sentence context; an operator's
    /// notice or a support reply anywhere cancels every phrase.
    pub(super) fn apply_context(&mut self, phrases: &mut [Phrase]) {
        let notice = self.hits_of(PhraseKind::Notice).next().copied();
        if let Some(notice) = notice {
            for phrase in phrases.iter_mut() {
                phrase.state = PhraseState::Cancelled;
            }
            self.reason(Rule::Notice, &notice, 0.0, || {
                "the voice of whoever runs the service or answers reports: not a report".into()
            });
            return;
        }
        for phrase in phrases.iter_mut() {
            let Some(found) = self.context_of(&phrase.hit) else {
                continue;
            };
            phrase.state = found.state;
            let matched = &self.text[phrase.hit.start..phrase.hit.end];
            let detail = || format!("{matched:?} {}", found.why);
            self.reason(found.rule, &found.hit, 0.0, detail);
        }
    }

    /// What, if anything, cancels or re-classes one outage phrase. Announced
    /// work first: "will be down for maintenance" is neither an invitation
    /// ("down for") nor a failure.
    fn context_of(&self, phrase: &Hit) -> Option<Finding> {
        self.maintenance_of(phrase)
            .or_else(|| self.cancel_of(phrase))
            .or_else(|| self.sentence_context_of(phrase))
    }

    /// Maintenance words in the phrase's sentence.
    fn maintenance_of(&self, phrase: &Hit) -> Option<Finding> {
        let clause = self.clause(phrase.start);
        let hit = self
            .hits_in_clause(PhraseKind::Maintenance, clause)
            .first()?;
        Some(Finding {
            rule: Rule::Maintenance,
            hit: *hit,
            state: PhraseState::Maintenance,
            why: "is announced work, not a failure",
        })
    }

    /// A cancel phrase overlapping the phrase ("feeling down").
    fn cancel_of(&self, phrase: &Hit) -> Option<Finding> {
        let (start, end) = (phrase.start, phrase.end);
        // A cancel inside a longer failure phrase is that phrase's own
        // words: "down with anyone" holds "down with" ("coming down with a
        // cold") and is still a question about an outage.
        let within = |c: &Hit| start <= c.start && c.end <= end && c.end - c.start < end - start;
        let cancel = self
            .hits_of(PhraseKind::Cancel)
            .find(|c| c.start < end && start < c.end && !within(c))?;
        Some(Finding {
            rule: Rule::Cancel,
            hit: *cancel,
            state: PhraseState::Cancelled,
            why: "means something else here",
        })
    }

    /// A condition, wish or habit just before the phrase, a negator just
    /// before it ("discord never goes down", "I don't think discord is
    /// down"; one inside the phrase is its own: "not working"), or market,
    /// denial, device-local or past context in the phrase's sentence. A "now" word there outweighs the past, unless it is a
    /// recovery's ("was down but it's back now"); prices and points
    /// further from the phrase than a site or an app it is about ("paid $8
    /// for wifi that can't load a website") do not make it a market, while
    /// nearer ones do ("Netflix shares are down 5% after earnings, says
    /// the website": any site or app in the sentence had spared it).
    fn sentence_context_of(&self, phrase: &Hit) -> Option<Finding> {
        let (start, end) = (phrase.start, phrase.end);
        let clause = self.clause(start);
        let now = self.now_of(phrase, &self.stated_recoveries()).is_some();
        let distance = |h: &Hit| gap(h.start, h.end, start, end);
        let thing_at = self.target_of(phrase).map(|t| distance(&t));
        if let Some(hit) = self.hypothetical_before(phrase) {
            return Some(Finding {
                rule: Rule::Hypothetical,
                hit,
                state: PhraseState::Cancelled,
                why: "is a condition, a wish, a habit or a how-to: not failing now",
            });
        }
        // A question keeps its negator: "isn't twitter down?" asks.
        if let Some(hit) = self
            .negator_before(phrase)
            .filter(|_| !self.in_question(start))
        {
            return Some(Finding {
                rule: Rule::Negation,
                hit,
                state: PhraseState::Cancelled,
                why: "is denied: a negator stands just before it",
            });
        }
        for (kind, rule, why) in SENTENCE_CONTEXTS {
            if kind == PhraseKind::Past && now {
                continue;
            }
            // A denial that begins inside the failure phrase and runs on
            // belongs to it: "isn't working for me" is a report, while
            // "isn't down" (the denial holds the phrase) is not.
            let part_of_phrase =
                |h: &Hit| kind == PhraseKind::Negation && h.start > start && h.start < end;
            let beyond_the_thing = |h: &Hit| {
                kind == PhraseKind::Market && thing_at.is_some_and(|at| distance(h) >= at)
            };
            if let Some(hit) = self
                .hits_in_clause(kind, clause)
                .iter()
                .find(|h| !part_of_phrase(h) && !beyond_the_thing(h))
            {
                return Some(Finding {
                    rule,
                    hit: *hit,
                    state: PhraseState::Cancelled,
                    why,
                });
            }
        }
        None
    }
}

/// Phrases whose spans overlap in part, literal or regex, are one
/// statement said once: "keeps kicking me out" holds the weak "keeps
/// kicking me" and "kicking me out", which together made 1.0, a report.
/// Each run of overlapping phrases becomes one phrase over the run's whole
/// span with the weight (and meaning) of its heaviest, the first among
/// equals: a name is read right before the run and a thing right after it,
/// as before ("Blipster is down again", "it is down again, … server?").
/// `phrases` are in text order.
fn merge_overlapping(phrases: Vec<Phrase>) -> Vec<Phrase> {
    let mut merged: Vec<Phrase> = Vec::with_capacity(phrases.len());
    let mut run_end = 0;
    for phrase in phrases {
        let overlaps = !merged.is_empty() && phrase.hit.start < run_end;
        run_end = if overlaps {
            run_end.max(phrase.hit.end)
        } else {
            phrase.hit.end
        };
        match merged.last_mut() {
            Some(kept) if overlaps => {
                if phrase.weight > kept.weight {
                    kept.weight = phrase.weight;
                    kept.hit.meaning = phrase.hit.meaning;
                }
                kept.hit.end = kept.hit.end.max(phrase.hit.end);
            }
            _ => merged.push(phrase),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::tables::Meaning;

    fn phrase(start: usize, end: usize, weight: f32) -> Phrase {
        Phrase {
            hit: Hit {
                meaning: Meaning::Phrase(PhraseKind::Weak, 0),
                start,
                end,
            },
            weight,
            state: PhraseState::Live,
        }
    }

    /// Each run of phrases overlapping in part is one phrase over the run
    /// with its heaviest weight; phrases apart, or touching without
    /// overlap, all stay.
    #[test]
    fn overlapping_phrases_keep_their_heaviest() {
        let spans = |phrases: Vec<Phrase>| -> Vec<(usize, usize, f32)> {
            merge_overlapping(phrases)
                .iter()
                .map(|p| (p.hit.start, p.hit.end, p.weight))
                .collect()
        };
        // Spans and weights after the merge.
        type Merged = Vec<(usize, usize, f32)>;
        let cases: Vec<(Vec<Phrase>, Merged)> = vec![
            (
                vec![phrase(7, 23, 0.5), phrase(13, 27, 0.5)],
                vec![(7, 27, 0.5)],
            ),
            (
                vec![phrase(0, 10, 0.5), phrase(5, 20, 1.0)],
                vec![(0, 20, 1.0)],
            ),
            (
                vec![phrase(0, 10, 1.0), phrase(5, 20, 0.5)],
                vec![(0, 20, 1.0)],
            ),
            (
                vec![phrase(0, 4, 0.5), phrase(2, 12, 0.5)],
                vec![(0, 12, 0.5)],
            ),
            (
                vec![phrase(0, 5, 0.5), phrase(4, 9, 0.5), phrase(8, 30, 1.0)],
                vec![(0, 30, 1.0)],
            ),
            (
                vec![phrase(0, 5, 0.5), phrase(5, 9, 0.5), phrase(20, 30, 1.0)],
                vec![(0, 5, 0.5), (5, 9, 0.5), (20, 30, 1.0)],
            ),
            (vec![], vec![]),
        ];
        for (phrases, want) in cases {
            assert_eq!(spans(phrases), want);
        }
    }
}
