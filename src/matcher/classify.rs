//! The decision: from the literal hits in one post to a [`Verdict`].
//!
//! 1. One Aho-Corasick pass finds every alias, phrase and context word
//!    (overlapping hits included, so `shut down` and `down` are both seen).
//! 2. Hashtags are split into a service name and an outage affix
//!    (`#InstagramDown`, `#CaiuOZap`).
//! 3. Posts with nothing that could make a report stop here: most posts.
//! 4. Regular expressions run on the candidates only.
//! 5. Outage phrases are cancelled by a longer phrase they sit inside
//!    (`feeling down`), or by market, past, negation or device-local context
//!    in the same sentence; maintenance context turns them into
//!    maintenance.
//! 6. Each surviving phrase is attributed to the nearest service mention;
//!    ambiguous names (X, Steam, Teams) count only next to a phrase or with
//!    one of the service's context words.
//! 7. The best-scoring service decides: report, recovery, maintenance, none.
//!    A failure phrase with no service near it but about a thing ("the
//!    site", "your app", "サイト") is a report whose service is not named.
//!
//! Hashtags are read in `hashtags.rs`, context in `context.rs`, subjects
//! (names, handles, domains, things) in `subjects.rs`.

use super::compile::{Meaning, PhraseKind, Tables};
use super::hashtags::{TagOutage, find_tag, read_hashtags};
use super::subjects::{Handle, handles_in};
use super::verdict::{Class, REPORT_THRESHOLD, Reason, Verdict};
use crate::normalize::Post;

/// Weights of the evidence; documented in `patterns/README.md`.
pub const OUTAGE_WEIGHT: f32 = 1.0;
pub const WEAK_WEIGHT: f32 = 0.5;
pub const BOOST_WEIGHT: f32 = 0.25;
pub const BOOST_CAP: f32 = 0.5;
pub const HASHTAG_WEIGHT: f32 = 1.0;
pub const ERROR_WEIGHT: f32 = 1.5;
/// How far (bytes of normalized text) an ambiguous name may stand from a
/// phrase and still count: "x is down", "is steam down".
pub(super) const AMBIGUOUS_GAP: usize = 12;
/// How far a phrase may stand from the service it is attributed to; a
/// sentence boundary between them counts as [`CLAUSE_COST`] more bytes.
pub(super) const MAX_DISTANCE: usize = 120;
pub(super) const CLAUSE_COST: usize = 40;
/// Distance given to a service named only in a hashtag outside the text.
pub(super) const METADATA_DISTANCE: usize = 60;

/// How far (bytes) a thing ("site", "app") may stand from a failure phrase
/// and still be what fails.
const TARGET_GAP: usize = 40;

#[derive(Debug, Clone, Copy)]
pub(super) struct Hit {
    pub meaning: Meaning,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone)]
pub(super) struct Mention {
    pub service: Service,
    pub span: Option<(usize, usize)>,
    /// The post is addressed to this account.
    pub addressee: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Service {
    Known(u16),
    Discovered(String),
    /// A thing that fails without a name: a report nobody can count for a
    /// service, but a report.
    Unnamed,
}

pub(crate) fn classify(tables: &Tables, post: &Post, explain: bool) -> Verdict {
    let text = post.text.as_str();
    let mut hits = find_hits(tables, text);
    let (tag_mentions, tag_outages) = read_hashtags(tables, post);

    let candidate = !tag_outages.is_empty()
        || hits.iter().any(|h| {
            matches!(
                h.meaning,
                Meaning::Error(_)
                    | Meaning::Phrase(
                        PhraseKind::Outage
                            | PhraseKind::Weak
                            | PhraseKind::Recovery
                            | PhraseKind::Maintenance,
                        _
                    )
            )
        });
    if !candidate {
        let mut verdict = Verdict::none();
        if explain {
            verdict.reasons.push(decision_reason(
                "no outage phrase, error message or outage hashtag",
                0.0,
            ));
        }
        return verdict;
    }
    for (regex, kind, lang) in &tables.regexes {
        for m in regex.find_iter(text) {
            hits.push(Hit {
                meaning: Meaning::Phrase(*kind, *lang),
                start: m.start(),
                end: m.end(),
            });
        }
    }
    // Context lists are a language's own words: "hier" is "yesterday" in
    // French but "here" in German. They apply when the post declares no
    // language or declares theirs. (Outage phrases apply whatever the
    // declared language: posts mix languages and often declare wrongly.)
    if !post.langs.is_empty() {
        hits.retain(|h| match h.meaning {
            Meaning::Phrase(kind, lang) if kind.is_context() => tables
                .langs
                .get(usize::from(lang))
                .is_none_or(|code| post.langs.iter().any(|l| l == code)),
            _ => true,
        });
    }
    hits.sort_by_key(|h| (h.start, h.end));
    Decision::new(tables, post, hits, tag_mentions, tag_outages).decide()
}

fn find_hits(tables: &Tables, text: &str) -> Vec<Hit> {
    let mut hits = Vec::new();
    for m in tables.automaton.find_overlapping_iter(text) {
        let literal = &tables.literals[m.pattern().as_usize()];
        if !literal.left.allows(text[..m.start()].chars().next_back())
            || !literal.right.allows(text[m.end()..].chars().next())
        {
            continue;
        }
        for &meaning in &literal.meanings {
            hits.push(Hit {
                meaning,
                start: m.start(),
                end: m.end(),
            });
        }
    }
    hits
}

/// One outage phrase on its way to a score.
pub(super) struct Phrase {
    pub hit: Hit,
    pub weight: f32,
    pub state: PhraseState,
}

#[derive(PartialEq)]
pub(super) enum PhraseState {
    Live,
    Cancelled,
    Maintenance,
}

pub(super) struct Decision<'a> {
    pub tables: &'a Tables,
    pub text: &'a str,
    /// The text as written: capitals tell names from words.
    pub original: &'a str,
    pub hits: Vec<Hit>,
    pub clause_starts: Vec<usize>,
    pub tag_mentions: Vec<(String, Mention)>,
    pub tag_outages: Vec<TagOutage>,
    pub handles: Vec<Handle>,
    /// Links with a path: `[start, end)` in the text.
    pub links: Vec<(usize, usize)>,
    pub reasons: Vec<Reason>,
}

impl<'a> Decision<'a> {
    fn new(
        tables: &'a Tables,
        post: &'a Post,
        hits: Vec<Hit>,
        tag_mentions: Vec<(String, Mention)>,
        tag_outages: Vec<TagOutage>,
    ) -> Self {
        Decision {
            tables,
            text: &post.text,
            original: &post.original,
            clause_starts: clause_starts(&post.text),
            hits,
            tag_mentions,
            tag_outages,
            handles: handles_in(&post.text),
            links: links_in(&post.text),
            reasons: Vec::new(),
        }
    }

    pub(super) fn clause(&self, at: usize) -> usize {
        self.clause_starts.partition_point(|&s| s <= at)
    }

    fn lang(&self, lang: u8) -> Option<String> {
        self.tables.langs.get(usize::from(lang)).cloned()
    }

    pub(super) fn service_id(&self, service: &Service) -> String {
        match service {
            Service::Known(n) => self.tables.services[usize::from(*n)].id.clone(),
            Service::Discovered(name) => name.clone(),
            Service::Unnamed => "(a service not named)".to_owned(),
        }
    }

    pub(super) fn reason(&mut self, rule: &'static str, hit: &Hit, weight: f32, detail: String) {
        let lang = match hit.meaning {
            Meaning::Phrase(_, lang) => self.lang(lang),
            _ => None,
        };
        self.reasons.push(Reason {
            rule,
            matched: Some(self.text[hit.start..hit.end].to_owned()),
            at: Some([hit.start, hit.end]),
            lang,
            service: None,
            weight,
            detail,
        });
    }

    pub(super) fn hits_of(&self, kind: PhraseKind) -> impl Iterator<Item = &Hit> + '_ {
        self.hits
            .iter()
            .filter(move |h| matches!(h.meaning, Meaning::Phrase(k, _) if k == kind))
    }

    fn decide(mut self) -> Verdict {
        let mut phrases = self.outage_phrases();
        self.apply_context(&mut phrases);
        let mentions = self.mentions(&phrases);

        // Score per service.
        let mut scores: Vec<(Service, f32, f32)> = Vec::new(); // (service, report, maintenance)
        let mut add = |service: &Service, report: f32, maintenance: f32| match scores
            .iter_mut()
            .find(|(s, _, _)| s == service)
        {
            Some(entry) => {
                entry.1 += report;
                entry.2 += maintenance;
            }
            None => scores.push((service.clone(), report, maintenance)),
        };
        let tag_outages = std::mem::take(&mut self.tag_outages);
        for tag in &tag_outages {
            add(&tag.service, HASHTAG_WEIGHT, 0.0);
            let detail = format!(
                "outage hashtag: {} + {:?}{}",
                self.service_id(&tag.service),
                tag.affix,
                if matches!(tag.service, Service::Discovered(_)) {
                    " (service not in the catalogue: discovered)"
                } else {
                    ""
                }
            );
            let service = Some(self.service_id(&tag.service));
            self.reasons.push(Reason {
                rule: "hashtag",
                matched: Some(format!("#{}", tag.tag)),
                at: find_tag(self.text, &tag.tag).map(|(a, b)| [a, b]),
                lang: self.lang(tag.lang),
                service,
                weight: HASHTAG_WEIGHT,
                detail,
            });
        }
        let errors: Vec<Hit> = self
            .hits
            .iter()
            .filter(|h| matches!(h.meaning, Meaning::Error(_)))
            .copied()
            .collect();
        // An error screen recalled ("got the fail whale yesterday", "used
        // the term Fail Whale last night") is folklore, not a live report:
        // a past word anywhere in the post, with no "now" word, cancels it.
        let recalled = self.hits_of(PhraseKind::Past).next().copied();
        let now = self.hits_of(PhraseKind::Now).next().is_some();
        for hit in &errors {
            if let (Some(past), false) = (recalled, now) {
                let matched = self.text[hit.start..hit.end].to_owned();
                self.reason(
                    "past",
                    &past,
                    0.0,
                    format!("{matched:?} is an error screen recalled, not seen now"),
                );
                continue;
            }
            if let Meaning::Error(n) = hit.meaning {
                add(&Service::Known(n), ERROR_WEIGHT, 0.0);
                let id = self.service_id(&Service::Known(n));
                self.reason(
                    "error",
                    hit,
                    ERROR_WEIGHT,
                    format!("an error message only {id} shows"),
                );
            }
        }
        for phrase in &phrases {
            if phrase.state == PhraseState::Cancelled {
                continue;
            }
            if let Some(person) = self.person_before(&mentions, &phrase.hit) {
                self.reason(
                    "person",
                    &phrase.hit,
                    0.0,
                    format!("said of {person}, an account that is not a service here"),
                );
                continue;
            }
            let Some((mention, distance)) =
                self.nearest(&mentions, phrase.hit.start, phrase.hit.end)
            else {
                let rule = if phrase.weight >= OUTAGE_WEIGHT {
                    "outage"
                } else {
                    "weak"
                };
                // An app or program that crashes with no service named is
                // the author's own ("the app crashes on start").
                let crash = self.text[phrase.hit.start..phrase.hit.end].contains("crash");
                if let Some(target) = self.target_of(&phrase.hit).filter(|_| !crash) {
                    let (report, maintenance) = match phrase.state {
                        PhraseState::Maintenance => (0.0, phrase.weight),
                        _ => (phrase.weight, 0.0),
                    };
                    add(&Service::Unnamed, report, maintenance);
                    let thing = self.text[target.start..target.end].to_owned();
                    self.reason("target", &target, 0.0, format!("what fails: {thing:?}"));
                    self.reason(
                        rule,
                        &phrase.hit,
                        report,
                        format!("no service named near it; said of {thing:?}"),
                    );
                } else {
                    self.reason(rule, &phrase.hit, 0.0, "no service named near it".into());
                }
                continue;
            };
            let id = self.service_id(&mention.service);
            let (report, maintenance) = match phrase.state {
                PhraseState::Maintenance => (0.0, phrase.weight),
                _ => (phrase.weight, 0.0),
            };
            add(&mention.service, report, maintenance);
            let rule = if phrase.weight >= OUTAGE_WEIGHT {
                "outage"
            } else {
                "weak"
            };
            self.reason(
                rule,
                &phrase.hit,
                report,
                format!("attributed to {id} ({distance} bytes away)"),
            );
        }

        // A named service wins a tie with the unnamed thing.
        let best = scores
            .iter()
            .max_by(|a, b| {
                (a.1 + a.2)
                    .total_cmp(&(b.1 + b.2))
                    .then((a.0 != Service::Unnamed).cmp(&(b.0 != Service::Unnamed)))
            })
            .cloned();
        let boost = self.boost(best.as_ref().is_some_and(|b| b.1 > 0.0));
        match best {
            Some((service, report, _)) if report + boost >= REPORT_THRESHOLD => {
                self.verdict(Class::Report, Some(service), report + boost)
            }
            Some((service, _, maintenance)) if maintenance >= REPORT_THRESHOLD => {
                self.verdict(Class::Maintenance, Some(service), maintenance)
            }
            best => {
                if let Some(service) = self.recovery(&mentions) {
                    return self.verdict(Class::Recovery, Some(service), OUTAGE_WEIGHT);
                }
                let score = best.map_or(0.0, |b| b.1 + boost);
                self.verdict(Class::None, None, score)
            }
        }
    }

    /// A thing ("site", "app", "server") in the phrase's sentence, within
    /// [`TARGET_GAP`] bytes: what the phrase says fails when no service is
    /// named. A phrase that is itself about a server ("bad gateway") is its
    /// own target.
    pub(super) fn target_of(&self, phrase: &Hit) -> Option<Hit> {
        let clause = self.clause(phrase.start);
        self.hits_of(PhraseKind::Target)
            .filter(|t| {
                self.clause(t.start) == clause
                    && gap(t.start, t.end, phrase.start, phrase.end) <= TARGET_GAP
            })
            .min_by_key(|t| gap(t.start, t.end, phrase.start, phrase.end))
            .copied()
    }

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
            self.reason(
                "boost",
                &hit,
                BOOST_WEIGHT,
                "sounds like a live report".into(),
            );
        }
        total
    }

    fn recovery(&mut self, mentions: &[Mention]) -> Option<Service> {
        let hits: Vec<Hit> = self.hits_of(PhraseKind::Recovery).copied().collect();
        for hit in hits {
            if let Some((mention, _)) = self.nearest(mentions, hit.start, hit.end) {
                let service = mention.service.clone();
                let id = self.service_id(&service);
                self.reason("recovery", &hit, 0.0, format!("says {id} works again"));
                return Some(service);
            }
        }
        None
    }

    fn verdict(mut self, class: Class, service: Option<Service>, score: f32) -> Verdict {
        let service = service.filter(|s| *s != Service::Unnamed);
        let id = service.as_ref().map(|s| self.service_id(s));
        let detail = match (&class, &id) {
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
        };
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

fn decision_reason(detail: &str, score: f32) -> Reason {
    Reason {
        rule: "decision",
        matched: None,
        at: None,
        lang: None,
        service: None,
        weight: score,
        detail: detail.to_owned(),
    }
}

/// Reasons carry character offsets (what a person counts in the text),
/// not the byte offsets the matcher works in.
fn to_char_spans(text: &str, reasons: &mut [Reason]) {
    if text.is_ascii() {
        return;
    }
    for reason in reasons {
        if let Some([start, end]) = reason.at {
            let chars = |b: usize| text.get(..b).map_or(0, |t| t.chars().count());
            reason.at = Some([chars(start), chars(end)]);
        }
    }
}

/// Links that point somewhere (`scheme://host/path`): `[start, end)`.
fn links_in(text: &str) -> Vec<(usize, usize)> {
    let mut links = Vec::new();
    for (at, _) in text.match_indices("://") {
        let start = text[..at]
            .rfind(|c: char| !c.is_ascii_alphabetic())
            .map_or(0, |i| i + 1);
        let rest = &text[at + 3..];
        let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let url = &rest[..len];
        let has_path = url
            .split_once('/')
            .is_some_and(|(_, path)| path.chars().any(char::is_alphanumeric));
        if has_path {
            links.push((start, at + 3 + len));
        }
    }
    links
}

/// Bytes between two spans (0 when they touch or overlap).
pub(super) fn gap(a_start: usize, a_end: usize, b_start: usize, b_end: usize) -> usize {
    if a_end <= b_start {
        b_start - a_end
    } else {
        a_start.saturating_sub(b_end)
    }
}

/// Where sentences start: after `.`, `!`, `?`, `;` followed by a space, after
/// a line break, and after CJK full stops (which need no space).
fn clause_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        let ends = match c {
            '\n' | '。' | '！' | '？' => true,
            '.' | '!' | '?' | ';' => next.is_none_or(|n| n == ' '),
            _ => false,
        };
        if ends {
            starts.push(at + c.len_utf8());
        }
    }
    starts
}
