//! Recovery beside a failure: "discord is back up after being down",
//! "twitter was down but it's back now", "ya volvió whatsapp después de la
//! caída". The failure phrase is there, but the post says it is over: a
//! recovery phrase said of the same service outweighs it, unless the
//! failure is current in words of its own ("back for a minute, down
//! again"). Without this rule every such post counted as a report, as a
//! recovery was considered only when nothing reached the report threshold.
//!
//! The cues that qualify a phrase from just before it live here too, as a
//! recovery is only stated when none of them stands before it: a
//! `negator` ("still not back up", and `context.rs` uses it to deny a
//! failure: "discord never goes down") and a `hypothetical` word ("hope
//! it's back soon", "if twitter goes down").

use super::decision::{Decision, Hit, Mention, Phrase, PhraseState};
use super::tables::PhraseKind;
use super::text::{closes, gap, word_spans};
use super::verdict::Rule;

/// Words that may stand between a negator and what it denies: "never
/// goes down", "still not back up", "don't think discord is down",
/// "hasn't been down at all"; farther ("not sure but i think twitter is
/// down") the failure is stated.
const NEGATOR_WORDS: usize = 2;
/// Words that may stand between a condition, wish or habit and the phrase
/// it is about: "if twitter goes down", "every time reddit is down", "i
/// wish tiktok would go down"; farther ("if i'm watching free tv it works
/// but won't access any websites") the failure is stated.
const HYPOTHETICAL_WORDS: usize = 4;

impl Decision<'_> {
    /// A `negator` word ending at most [`NEGATOR_WORDS`] words before the
    /// phrase, in its sentence. A negator inside the phrase is the
    /// phrase's own ("not working", "não carrega").
    pub(super) fn negator_before(&self, phrase: &Hit) -> Option<Hit> {
        self.cue_before(PhraseKind::Negator, phrase, NEGATOR_WORDS, false)
    }

    /// A `hypothetical` word (a condition, a wish, a habit: "if", "i
    /// hope", "every time", "does … go down") that begins before the
    /// phrase ends, at most [`HYPOTHETICAL_WORDS`] words before it, in
    /// its sentence, and is not part of a longer `cancel` phrase ("know
    /// if", "every time i": an indirect question, the author's own
    /// repeated attempt), nor cut from it by a comma. It must come first: in "twitter is down, hope
    /// it's back soon" the hope is about the recovery, not the failure.
    pub(super) fn hypothetical_before(&self, phrase: &Hit) -> Option<Hit> {
        self.cue_before(PhraseKind::Hypothetical, phrase, HYPOTHETICAL_WORDS, true)
            .filter(|cue| {
                // A comma closes the condition: in "if i refresh, instagram
                // still won't load" the failure is the main clause.
                let closed = self
                    .text
                    .get(cue.end..phrase.start)
                    .is_some_and(|between| between.contains([',', '、', '，']));
                !closed
                    && !self.hits_of(PhraseKind::Cancel).any(|c| {
                        c.start <= cue.start
                            && cue.end <= c.end
                            && c.end - c.start > cue.end - cue.start
                    })
            })
    }

    /// The last hit of `kind` in the phrase's sentence that ends at most
    /// `words` words before the phrase begins; with `overlap`, one that
    /// begins before the phrase ends counts too ("does netflix ever go
    /// down" holds "down").
    fn cue_before(
        &self,
        kind: PhraseKind,
        phrase: &Hit,
        words: usize,
        overlap: bool,
    ) -> Option<Hit> {
        let clause = self.clause(phrase.start);
        self.hits_in_clause(kind, clause)
            .iter()
            .rev()
            .find(|n| {
                if n.end > phrase.start {
                    return overlap && n.start < phrase.end;
                }
                self.text
                    .get(n.end..phrase.start)
                    .is_some_and(|between| word_spans(between).len() <= words)
            })
            .copied()
    }

    /// Recovery phrases that say something works again: not those in a
    /// question ("when will it be back up?" asks, and is a report), nor
    /// those denied by a word just before them ("still not back up") or
    /// hoped for ("hope it's back soon").
    pub(super) fn stated_recoveries(&self) -> Vec<Hit> {
        self.hits_of(PhraseKind::Recovery)
            .filter(|h| {
                !self.in_question(h.start)
                    && self.negator_before(h).is_none()
                    && self.hypothetical_before(h).is_none()
            })
            .copied()
            .collect()
    }

    /// Whether the sentence byte `at` lies in asks a question: a `?` in
    /// what closes it ("down?", "down?!", "down?😭", "back up?\""; see
    /// [`closes`]).
    pub(super) fn in_question(&self, at: usize) -> bool {
        self.text.get(self.clause_span(at)).is_some_and(|s| {
            let body = s.trim_end_matches(|c: char| c.is_whitespace() || closes(c));
            s[body.len()..].contains('?')
        })
    }

    /// Whether a `now` word belongs to the failure phrase `phrase` and not
    /// to a recovery in its sentence: "it's back now" says when it came
    /// back, "now" there does not make "was down" current. A now word
    /// belongs to whichever of the two stands nearer (the failure phrase on
    /// a tie, or when it holds the word: "down again").
    pub(super) fn now_of(&self, phrase: &Hit, recoveries: &[Hit]) -> Option<Hit> {
        let clause = self.clause(phrase.start);
        self.hits_in_clause(PhraseKind::Now, clause)
            .iter()
            .find(|now| {
                let to_phrase = gap(now.start, now.end, phrase.start, phrase.end);
                !recoveries.iter().any(|r| {
                    self.clause(r.start) == clause
                        && gap(now.start, now.end, r.start, r.end) < to_phrase
                })
            })
            .copied()
    }

    /// Cancels each live failure phrase that a stated recovery of the same
    /// service (or, with none named, of the same unnamed thing) follows or
    /// precedes anywhere in the post, unless a `now` word of its own makes
    /// it current.
    pub(super) fn apply_recovery(&mut self, phrases: &mut [Phrase], mentions: &[Mention]) {
        let recoveries = self.stated_recoveries();
        if recoveries.is_empty() {
            return;
        }
        let subject = |d: &Self, h: &Hit| {
            d.nearest(mentions, h.start, h.end)
                .map(|(m, _)| m.service.clone())
        };
        let recovered: Vec<_> = recoveries.iter().map(|r| (*r, subject(self, r))).collect();
        for phrase in phrases.iter_mut() {
            if phrase.state != PhraseState::Live || self.now_of(&phrase.hit, &recoveries).is_some()
            {
                continue;
            }
            let of = subject(self, &phrase.hit);
            let Some((recovery, _)) = recovered.iter().find(|(_, s)| *s == of) else {
                continue;
            };
            phrase.state = PhraseState::Cancelled;
            let matched = &self.text[phrase.hit.start..phrase.hit.end];
            self.reason(Rule::Recovery, recovery, 0.0, || {
                format!("{matched:?} is over: the post says it works again")
            });
        }
    }
}
