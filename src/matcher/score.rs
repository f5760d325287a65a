//! The score and the verdict (step 7 of `classify.rs`): outage hashtags,
//! error messages and the surviving phrases add to the score of the
//! service they are about; the best-scoring service decides between
//! report, maintenance, recovery and none.

use super::decision::{
    BOOST_CAP, BOOST_WEIGHT, Decision, ERROR_WEIGHT, HASHTAG_WEIGHT, Hit, Mention, OUTAGE_WEIGHT,
    Phrase, PhraseState, Service, WEAK_WEIGHT,
};
use super::tables::{Meaning, PhraseKind};
use super::text::{gap, to_char_spans};
use super::verdict::{Class, REPORT_THRESHOLD, Reason, Rule, Verdict};

/// How far (bytes) a thing ("site", "app") may stand from a failure phrase
/// and still be what fails.
const TARGET_GAP: usize = 40;

/// What a score is kept for: a service, or a thing that fails without a
/// name ("the site is down"), which makes a report nobody can count for a
/// service, but a report.
#[derive(Debug, Clone, PartialEq)]
enum Subject {
    Named(Service),
    Unnamed,
}

impl Subject {
    fn into_service(self) -> Option<Service> {
        match self {
            Subject::Named(service) => Some(service),
            Subject::Unnamed => None,
        }
    }
}

/// The evidence for one subject.
#[derive(Debug, Clone)]
struct Score {
    subject: Subject,
    report: f32,
    maintenance: f32,
}

/// Scores per subject, in the order the subjects were first scored.
#[derive(Default)]
struct Scores(Vec<Score>);

impl Scores {
    fn add(&mut self, subject: Subject, report: f32, maintenance: f32) {
        match self.0.iter_mut().find(|s| s.subject == subject) {
            Some(score) => {
                score.report += report;
                score.maintenance += maintenance;
            }
            None => self.0.push(Score {
                subject,
                report,
                maintenance,
            }),
        }
    }

    /// The subject with the most evidence; a named service wins a tie with
    /// the unnamed thing (and, among equals, the last scored wins).
    fn best(self) -> Option<Score> {
        self.0.into_iter().max_by(|a, b| {
            (a.report + a.maintenance)
                .total_cmp(&(b.report + b.maintenance))
                .then((a.subject != Subject::Unnamed).cmp(&(b.subject != Subject::Unnamed)))
        })
    }
}

/// A phrase's weight as (report, maintenance).
fn split_weight(phrase: &Phrase) -> (f32, f32) {
    match phrase.state {
        PhraseState::Maintenance => (0.0, phrase.weight),
        _ => (phrase.weight, 0.0),
    }
}

/// `outage` for a phrase that makes a report alone, else `weak`.
fn phrase_rule(phrase: &Phrase) -> Rule {
    if phrase.weight >= OUTAGE_WEIGHT {
        Rule::Outage
    } else {
        Rule::Weak
    }
}

impl Decision<'_> {
    pub(super) fn decide(mut self) -> Verdict {
        let mut phrases = self.outage_phrases();
        self.apply_context(&mut phrases);
        let mentions = self.mentions(&phrases);
        self.apply_recovery(&mut phrases, &mentions);
        let mut scores = Scores::default();
        self.score_outage_hashtags(&mut scores);
        self.score_errors(&mut scores);
        for phrase in &phrases {
            if phrase.state != PhraseState::Cancelled {
                self.score_phrase(&mut scores, &mentions, phrase);
            }
        }
        let best = scores.best();
        let report = best.as_ref().map_or(0.0, |b| b.report);
        let boost = self.boost(report > WEAK_WEIGHT || (report > 0.0 && self.asks()));
        match best {
            Some(best) if best.report + boost >= REPORT_THRESHOLD => {
                let score = best.report + boost;
                self.verdict(Class::Report, best.subject.into_service(), score)
            }
            Some(best) if best.maintenance >= REPORT_THRESHOLD => {
                let service = best.subject.into_service();
                self.verdict(Class::Maintenance, service, best.maintenance)
            }
            best => {
                if let Some(service) = self.recovery(&mentions) {
                    return self.verdict(Class::Recovery, Some(service), OUTAGE_WEIGHT);
                }
                let score = best.map_or(0.0, |b| b.report + boost);
                self.verdict(Class::None, None, score)
            }
        }
    }

    /// `#InstagramDown`: a report on its own.
    fn score_outage_hashtags(&mut self, scores: &mut Scores) {
        let tag_outages = std::mem::take(&mut self.tag_outages);
        for tag in &tag_outages {
            scores.add(Subject::Named(tag.service.clone()), HASHTAG_WEIGHT, 0.0);
            let id = self.service_id(&tag.service);
            let discovered = if matches!(tag.service, Service::Discovered(_)) {
                " (service not in the catalogue: discovered)"
            } else {
                ""
            };
            let detail =
                self.words(|| format!("outage hashtag: {id} + {:?}{discovered}", tag.affix));
            self.reasons.push(Reason {
                rule: Rule::Hashtag,
                matched: Some(format!("#{}", tag.tag)),
                at: super::hashtags::find_tag(self.text, &tag.tag).map(|(a, b)| [a, b]),
                lang: self.lang(tag.lang),
                service: Some(id),
                weight: HASHTAG_WEIGHT,
                detail,
            });
        }
    }

    /// Error messages only one service shows. An error screen recalled
    /// ("got the fail whale yesterday", "used the term Fail Whale last
    /// night") is folklore, not a live report: a past word anywhere in the
    /// post, with no "now" word, cancels it.
    fn score_errors(&mut self, scores: &mut Scores) {
        let errors: Vec<Hit> = self
            .hits
            .iter()
            .filter(|h| matches!(h.meaning, Meaning::Error(_)))
            .copied()
            .collect();
        let recalled = self.hits_of(PhraseKind::Past).next().copied();
        let now = self.hits_of(PhraseKind::Now).next().is_some();
        for hit in &errors {
            if let (Some(past), false) = (recalled, now) {
                let matched = &self.text[hit.start..hit.end];
                self.reason(Rule::Past, &past, 0.0, || {
                    format!("{matched:?} is an error screen recalled, not seen now")
                });
                continue;
            }
            if let Meaning::Error(n) = hit.meaning {
                scores.add(Subject::Named(Service::Known(n)), ERROR_WEIGHT, 0.0);
                let id = self.service_id(&Service::Known(n));
                let detail = || format!("an error message only {id} shows");
                self.reason(Rule::Error, hit, ERROR_WEIGHT, detail);
            }
        }
    }

    /// One live or maintenance phrase: said of a person (nothing), of the
    /// nearest service, or of a thing with no name.
    fn score_phrase(&mut self, scores: &mut Scores, mentions: &[Mention], phrase: &Phrase) {
        if let Some(person) = self.person_before(mentions, &phrase.hit) {
            let detail = || format!("said of {person}, an account that is not a service here");
            self.reason(Rule::Person, &phrase.hit, 0.0, detail);
            return;
        }
        let addressee = self.addressee_s_thing(mentions, phrase);
        let Some((mention, distance)) =
            addressee.or_else(|| self.nearest(mentions, phrase.hit.start, phrase.hit.end))
        else {
            self.score_unattributed(scores, phrase);
            return;
        };
        let id = self.service_id(&mention.service);
        let (report, maintenance) = split_weight(phrase);
        scores.add(Subject::Named(mention.service.clone()), report, maintenance);
        let detail = || format!("attributed to {id} ({distance} bytes away)");
        self.reason(phrase_rule(phrase), &phrase.hit, report, detail);
    }

    /// The account the post is addressed to, when what the phrase says
    /// fails is "your" thing (its language's `yours` words right before
    /// its `target`): "@VirginAmerica The Flight Booking Problems section
    /// of your website seems to be broken" is the addressee's website,
    /// though a capitalised "Flight" stands nearer the phrase.
    fn addressee_s_thing<'m>(
        &self,
        mentions: &'m [Mention],
        phrase: &Phrase,
    ) -> Option<(&'m Mention, usize)> {
        let addressee = mentions.iter().find(|m| m.addressee)?;
        let Meaning::Phrase(_, lang) = phrase.hit.meaning else {
            return None;
        };
        let words = self.tables.yours.get(usize::from(lang))?;
        let target = self.target_of(&phrase.hit)?;
        let before = self.text[..target.start].trim_end();
        let yours = words.iter().any(|w| {
            before.strip_suffix(w.as_str()).is_some_and(|rest| {
                rest.chars()
                    .next_back()
                    .is_none_or(|c| !c.is_alphanumeric())
            })
        });
        yours.then_some((addressee, 0))
    }

    /// A phrase with no service near it counts for the unnamed thing it is
    /// said of, if any. A phrase holding one of its language's
    /// `own_if_unnamed` words is the author's own with no service named
    /// ("the app crashes on start").
    fn score_unattributed(&mut self, scores: &mut Scores, phrase: &Phrase) {
        let rule = phrase_rule(phrase);
        let said = &self.text[phrase.hit.start..phrase.hit.end];
        let own = match phrase.hit.meaning {
            Meaning::Phrase(_, lang) => self
                .tables
                .own_if_unnamed
                .get(usize::from(lang))
                .is_some_and(|words| words.iter().any(|w| said.contains(w.as_str()))),
            _ => false,
        };
        let Some(target) = self.target_of(&phrase.hit).filter(|_| !own) else {
            self.reason(rule, &phrase.hit, 0.0, || "no service named near it".into());
            return;
        };
        let (report, maintenance) = split_weight(phrase);
        scores.add(Subject::Unnamed, report, maintenance);
        let thing = &self.text[target.start..target.end];
        self.reason(Rule::Target, &target, 0.0, || {
            format!("what fails: {thing:?}")
        });
        let detail = || format!("no service named near it; said of {thing:?}");
        self.reason(rule, &phrase.hit, report, detail);
    }

    /// A thing ("site", "app", "server") in the phrase's sentence, within
    /// [`TARGET_GAP`] bytes: what the phrase says fails when no service is
    /// named. A phrase that is itself about a server ("bad gateway") is its
    /// own target.
    pub(super) fn target_of(&self, phrase: &Hit) -> Option<Hit> {
        let clause = self.clause(phrase.start);
        self.hits_in_clause(PhraseKind::Target, clause)
            .iter()
            .filter(|t| gap(t.start, t.end, phrase.start, phrase.end) <= TARGET_GAP)
            .min_by_key(|t| gap(t.start, t.end, phrase.start, phrase.end))
            .copied()
    }

    /// Whether a boost stands in a question ("anyone else?", "laggy for
    /// anyone?", "qqn d'autre ?"): the author asks others whether they see
    /// the failure too.
    fn asks(&self) -> bool {
        self.hits_of(PhraseKind::Boost)
            .any(|b| self.in_question(b.start))
    }

    /// Words that make a report sound live add a little, up to a cap, to
    /// a post that already has evidence: more than one weak phrase, or
    /// one that the post asks others about. Emphasis alone ("twitter is
    /// weird again wtf", "Steam crash sale!! wtf") does not make a lone
    /// weak phrase a report.
    fn boost(&mut self, has_evidence: bool) -> f32 {
        if !has_evidence {
            return 0.0;
        }
        let boosts: Vec<Hit> = self.hits_of(PhraseKind::Boost).copied().collect();
        let mut total = 0.0;
        for hit in boosts {
            if total >= BOOST_CAP {
                break;
            }
            total += BOOST_WEIGHT;
            let detail = || "sounds like a live report".into();
            self.reason(Rule::Boost, &hit, BOOST_WEIGHT, detail);
        }
        total
    }

    /// The first stated recovery phrase with a service within reach.
    fn recovery(&mut self, mentions: &[Mention]) -> Option<Service> {
        let hits = self.stated_recoveries();
        for hit in hits {
            if let Some((mention, _)) = self.nearest(mentions, hit.start, hit.end) {
                let service = mention.service.clone();
                let id = self.service_id(&service);
                self.reason(Rule::Recovery, &hit, 0.0, || {
                    format!("says {id} works again")
                });
                return Some(service);
            }
        }
        None
    }

    fn verdict(mut self, class: Class, service: Option<Service>, score: f32) -> Verdict {
        let id = service.as_ref().map(|s| self.service_id(s));
        let detail = self.words(|| match (&class, &id) {
            (Class::Report, Some(id)) => {
                format!("outage report for {id}: score {score:.2} >= {REPORT_THRESHOLD:.2}")
            }
            (Class::Maintenance, Some(id)) => format!("announced maintenance of {id}"),
            (Class::Recovery, Some(id)) => format!("{id} is reported working again"),
            (Class::Report, None) => format!(
                "outage report, service not named: score {score:.2} >= {REPORT_THRESHOLD:.2}"
            ),
            (Class::Maintenance, None) => "announced maintenance, service not named".to_owned(),
            _ => format!("not a report: score {score:.2} < {REPORT_THRESHOLD:.2} or no service"),
        });
        self.reasons.push(decision_reason(&detail, score));
        to_char_spans(self.text, &mut self.reasons);
        Verdict {
            class,
            discovered: matches!(service, Some(Service::Discovered(_))),
            service: id,
            score,
            reasons: self.reasons,
        }
    }
}

/// The last reason: what was decided, with the score.
pub(super) fn decision_reason(detail: &str, score: f32) -> Reason {
    Reason {
        rule: Rule::Decision,
        matched: None,
        at: None,
        lang: None,
        service: None,
        weight: score,
        detail: detail.to_owned(),
    }
}
