//! Context around a failure predicate: what cancels it (a longer phrase
//! with another sense, markets, the past, a denial, the author's own
//! device), what turns it into announced maintenance, and the voice of the
//! operator or of a support reply, which cancels the whole post.

use super::classify::{Decision, Hit, OUTAGE_WEIGHT, Phrase, PhraseState, WEAK_WEIGHT};
use super::compile::{Meaning, PhraseKind};

impl Decision<'_> {
    pub(super) fn outage_phrases(&mut self) -> Vec<Phrase> {
        let mut phrases = Vec::new();
        for hit in &self.hits {
            let weight = match hit.meaning {
                Meaning::Phrase(PhraseKind::Outage, _) => OUTAGE_WEIGHT,
                Meaning::Phrase(PhraseKind::Weak, _) => WEAK_WEIGHT,
                _ => continue,
            };
            // "is down" and "down" both hit "twitter is down": keep the longest.
            let inside_longer = self.hits.iter().any(|other| {
                matches!(
                    other.meaning,
                    Meaning::Phrase(PhraseKind::Outage | PhraseKind::Weak, _)
                ) && other.start <= hit.start
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
        phrases
    }

    /// Cancelling phrases that overlap, then sentence context; an operator's
    /// notice or a support reply anywhere cancels every phrase.
    pub(super) fn apply_context(&mut self, phrases: &mut [Phrase]) {
        let notice = self.hits_of(PhraseKind::Notice).next().copied();
        if let Some(notice) = notice {
            for phrase in phrases.iter_mut() {
                phrase.state = PhraseState::Cancelled;
            }
            self.reason(
                "notice",
                &notice,
                0.0,
                "the voice of whoever runs the service or answers reports: not a report".into(),
            );
            return;
        }
        for phrase in phrases.iter_mut() {
            let Some((rule, hit, state, why)) = self.context_of(&phrase.hit) else {
                continue;
            };
            phrase.state = state;
            let matched = self.text[phrase.hit.start..phrase.hit.end].to_owned();
            self.reason(rule, &hit, 0.0, format!("{matched:?} {why}"));
        }
    }

    /// What, if anything, cancels or re-classes one outage phrase.
    fn context_of(&self, phrase: &Hit) -> Option<(&'static str, Hit, PhraseState, &'static str)> {
        let (start, end) = (phrase.start, phrase.end);
        let clause = self.clause(start);
        let in_clause = |h: &&Hit| self.clause(h.start) == clause;
        // Announced work first: "will be down for maintenance" is neither an
        // invitation ("down for") nor a failure.
        if let Some(hit) = self.hits_of(PhraseKind::Maintenance).find(in_clause) {
            return Some((
                "maintenance",
                *hit,
                PhraseState::Maintenance,
                "is announced work, not a failure",
            ));
        }
        if let Some(cancel) = self
            .hits_of(PhraseKind::Cancel)
            .find(|c| c.start < end && start < c.end)
        {
            return Some((
                "cancel",
                *cancel,
                PhraseState::Cancelled,
                "means something else here",
            ));
        }
        let now = self.hits_of(PhraseKind::Now).any(|h| in_clause(&h));
        let contexts = [
            (
                PhraseKind::Market,
                "is about markets and prices, not a service",
            ),
            (
                PhraseKind::Negation,
                "is denied: the post says it is not failing",
            ),
            (
                PhraseKind::Local,
                "is about the author's own device, not a service",
            ),
            (PhraseKind::Past, "is about the past, not now"),
        ];
        // Prices and points near a phrase about a site or an app ("paid $8
        // for wifi that can't load a website") do not make it a market.
        let about_a_thing = self.target_of(phrase).is_some();
        for (kind, why) in contexts {
            if (kind == PhraseKind::Past && now) || (kind == PhraseKind::Market && about_a_thing) {
                continue;
            }
            // A denial that begins inside the failure phrase and runs on
            // belongs to it: "isn't working for me" is a report, while
            // "isn't down" (the denial holds the phrase) is not.
            let part_of_phrase =
                |h: &Hit| kind == PhraseKind::Negation && h.start > start && h.start < end;
            if let Some(hit) = self
                .hits_of(kind)
                .find(|h| in_clause(h) && !part_of_phrase(h))
            {
                return Some((kind.name(), *hit, PhraseState::Cancelled, why));
            }
        }
        None
    }
}
