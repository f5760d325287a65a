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

use super::compile::{Meaning, PhraseKind, Tables};
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
const AMBIGUOUS_GAP: usize = 12;
/// How far a phrase may stand from the service it is attributed to; a
/// sentence boundary between them counts as [`CLAUSE_COST`] more bytes.
const MAX_DISTANCE: usize = 120;
const CLAUSE_COST: usize = 40;
/// Distance given to a service named only in a hashtag outside the text.
const METADATA_DISTANCE: usize = 60;

#[derive(Debug, Clone, Copy)]
struct Hit {
    meaning: Meaning,
    start: usize,
    end: usize,
}

#[derive(Debug, Clone)]
struct Mention {
    service: Service,
    span: Option<(usize, usize)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Service {
    Known(u16),
    Discovered(String),
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

/// A hashtag that says "X is down": its service and the affix that said so.
struct TagOutage {
    tag: String,
    service: Service,
    affix: String,
    lang: u8,
}

fn read_hashtags(tables: &Tables, post: &Post) -> (Vec<(String, Mention)>, Vec<TagOutage>) {
    let mut mentions = Vec::new();
    let mut outages = Vec::new();
    for tag in &post.hashtags {
        let tag_stem: String = tag.chars().filter(|c| c.is_alphanumeric()).collect();
        if let Some(stem) = tables.stems.get(&tag_stem) {
            if !stem.ambiguous {
                let span = find_tag(&post.text, tag);
                mentions.push((
                    tag.clone(),
                    Mention {
                        service: Service::Known(stem.service),
                        span,
                    },
                ));
            }
            continue;
        }
        if tables.cancel_words.contains(&tag_stem) {
            continue;
        }
        let split = tables
            .hashtag_suffixes
            .iter()
            .find_map(|(affix, lang)| {
                tag_stem
                    .strip_suffix(affix.as_str())
                    .map(|rest| (rest, affix, *lang))
            })
            .or_else(|| {
                tables.hashtag_prefixes.iter().find_map(|(affix, lang)| {
                    tag_stem
                        .strip_prefix(affix.as_str())
                        .map(|rest| (rest, affix, *lang))
                })
            });
        let Some((rest, affix, lang)) = split else {
            continue;
        };
        let service = match tables.stems.get(rest) {
            Some(stem) => Service::Known(stem.service),
            // A name we do not know: discovered, if it looks like a name.
            None if rest.chars().count() >= 2
                && rest.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                Service::Discovered(rest.to_owned())
            }
            None => continue,
        };
        outages.push(TagOutage {
            tag: tag.clone(),
            service,
            affix: affix.clone(),
            lang,
        });
    }
    (mentions, outages)
}

fn find_tag(text: &str, tag: &str) -> Option<(usize, usize)> {
    let needle = format!("#{tag}");
    text.find(&needle).map(|at| (at, at + needle.len()))
}

/// One outage phrase on its way to a score.
struct Phrase {
    hit: Hit,
    weight: f32,
    state: PhraseState,
}

#[derive(PartialEq)]
enum PhraseState {
    Live,
    Cancelled,
    Maintenance,
}

struct Decision<'a> {
    tables: &'a Tables,
    text: &'a str,
    hits: Vec<Hit>,
    clause_starts: Vec<usize>,
    tag_mentions: Vec<(String, Mention)>,
    tag_outages: Vec<TagOutage>,
    reasons: Vec<Reason>,
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
            clause_starts: clause_starts(&post.text),
            hits,
            tag_mentions,
            tag_outages,
            reasons: Vec::new(),
        }
    }

    fn clause(&self, at: usize) -> usize {
        self.clause_starts.partition_point(|&s| s <= at)
    }

    fn lang(&self, lang: u8) -> Option<String> {
        self.tables.langs.get(usize::from(lang)).cloned()
    }

    fn service_id(&self, service: &Service) -> String {
        match service {
            Service::Known(n) => self.tables.services[usize::from(*n)].id.clone(),
            Service::Discovered(name) => name.clone(),
        }
    }

    fn reason(&mut self, rule: &'static str, hit: &Hit, weight: f32, detail: String) {
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

    fn hits_of(&self, kind: PhraseKind) -> impl Iterator<Item = &Hit> + '_ {
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
        for hit in &errors {
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
            let Some((mention, distance)) =
                self.nearest(&mentions, phrase.hit.start, phrase.hit.end)
            else {
                let rule = if phrase.weight >= OUTAGE_WEIGHT {
                    "outage"
                } else {
                    "weak"
                };
                self.reason(rule, &phrase.hit, 0.0, "no service named near it".into());
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

        let best = scores
            .iter()
            .max_by(|a, b| (a.1 + a.2).total_cmp(&(b.1 + b.2)))
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

    fn outage_phrases(&mut self) -> Vec<Phrase> {
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

    /// Cancelling phrases that overlap, then sentence context.
    fn apply_context(&mut self, phrases: &mut [Phrase]) {
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
        for (kind, why) in contexts {
            if kind == PhraseKind::Past && now {
                continue;
            }
            if let Some(hit) = self.hits_of(kind).find(in_clause) {
                return Some((kind.name(), *hit, PhraseState::Cancelled, why));
            }
        }
        None
    }

    /// Service mentions that count: plain aliases, domains, error strings,
    /// hashtags, and ambiguous names that have support.
    fn mentions(&mut self, phrases: &[Phrase]) -> Vec<Mention> {
        let mut mentions: Vec<Mention> = Vec::new();
        let names: Vec<Hit> = self
            .hits
            .iter()
            .filter(|h| {
                matches!(
                    h.meaning,
                    Meaning::Alias(_) | Meaning::Ambiguous(_) | Meaning::Domain(_)
                )
            })
            .copied()
            .collect();
        let anchors: Vec<(usize, usize)> = phrases
            .iter()
            .filter(|p| p.state != PhraseState::Cancelled)
            .map(|p| (p.hit.start, p.hit.end))
            .chain(self.hits_of(PhraseKind::Recovery).map(|h| (h.start, h.end)))
            .collect();
        for hit in &names {
            // "prime" inside "prime video": the longer name wins.
            let inside_longer = names.iter().any(|o| {
                o.start <= hit.start
                    && hit.end <= o.end
                    && (o.end - o.start) > (hit.end - hit.start)
            });
            if inside_longer {
                continue;
            }
            let (n, rule, ambiguous) = match hit.meaning {
                Meaning::Alias(n) => (n, "alias", false),
                Meaning::Domain(n) => (n, "domain", false),
                Meaning::Ambiguous(n) => (n, "ambiguous", true),
                _ => continue,
            };
            let id = self.service_id(&Service::Known(n));
            if ambiguous {
                // "traffic signal", "zoom in", "x marks the spot": a longer
                // phrase that gives the word its ordinary sense.
                let ordinary = self
                    .hits_of(PhraseKind::Cancel)
                    .find(|c| {
                        c.start <= hit.start
                            && hit.end <= c.end
                            && c.end - c.start > hit.end - hit.start
                    })
                    .copied();
                if let Some(cancel) = ordinary {
                    self.reason(
                        "cancel",
                        &cancel,
                        0.0,
                        format!("not {id} here: an ordinary word"),
                    );
                    continue;
                }
                let clause = self.clause(hit.start);
                let adjacent = anchors.iter().any(|&(s, e)| {
                    gap(hit.start, hit.end, s, e) <= AMBIGUOUS_GAP && self.clause(s) == clause
                });
                let context = self
                    .hits
                    .iter()
                    .find(|h| h.meaning == Meaning::Context(n))
                    .map(|h| self.text[h.start..h.end].to_owned());
                let tagged = self
                    .tag_mentions
                    .iter()
                    .any(|(_, m)| m.service == Service::Known(n));
                let support = if adjacent {
                    Some("right next to an outage phrase".to_owned())
                } else if let Some(word) = context {
                    Some(format!("context word {word:?}"))
                } else if tagged {
                    Some("also named in a hashtag".to_owned())
                } else {
                    None
                };
                match support {
                    Some(why) => self.reason(rule, hit, 0.0, format!("names {id} ({why})")),
                    None => {
                        self.reason(
                            rule,
                            hit,
                            0.0,
                            format!("could be {id}, but nothing supports it: ignored"),
                        );
                        continue;
                    }
                }
            } else {
                self.reason(rule, hit, 0.0, format!("names {id}"));
            }
            mentions.push(Mention {
                service: Service::Known(n),
                span: Some((hit.start, hit.end)),
            });
        }
        if !anchors.is_empty() {
            self.discover_domains(&mut mentions);
        }
        for hit in self
            .hits
            .iter()
            .filter(|h| matches!(h.meaning, Meaning::Error(_)))
        {
            if let Meaning::Error(n) = hit.meaning {
                mentions.push(Mention {
                    service: Service::Known(n),
                    span: Some((hit.start, hit.end)),
                });
            }
        }
        let tags = std::mem::take(&mut self.tag_mentions);
        for (tag, mention) in &tags {
            let id = self.service_id(&mention.service);
            self.reasons.push(Reason {
                rule: "hashtag",
                matched: Some(format!("#{tag}")),
                at: mention.span.map(|(a, b)| [a, b]),
                lang: None,
                service: Some(id.clone()),
                weight: 0.0,
                detail: format!("names {id}"),
            });
            mentions.push(mention.clone());
        }
        self.tag_mentions = tags;
        mentions
    }

    /// "is foo.com down?": a host name not in the catalogue names a
    /// discovered service (its first label), unless a known name covers it.
    fn discover_domains(&mut self, mentions: &mut Vec<Mention>) {
        let found: Vec<(usize, usize, String)> = self
            .tables
            .domain
            .captures_iter(self.text)
            .filter_map(|c| {
                let whole = c.get(0)?;
                let label = c.get(1)?.as_str().replace('-', "");
                Some((whole.start(), whole.end(), label))
            })
            .collect();
        for (start, end, label) in found {
            let known = mentions
                .iter()
                .any(|m| m.span.is_some_and(|(s, e)| s < end && start < e));
            if known || label.len() < 2 || label == "www" {
                continue;
            }
            let service = match self.tables.stems.get(&label) {
                Some(stem) => Service::Known(stem.service),
                None => Service::Discovered(label),
            };
            let id = self.service_id(&service);
            let detail = match service {
                Service::Discovered(_) => format!("names {id} (not in the catalogue: discovered)"),
                Service::Known(_) => format!("names {id}"),
            };
            self.reasons.push(Reason {
                rule: "domain",
                matched: Some(self.text[start..end].to_owned()),
                at: Some([start, end]),
                lang: None,
                service: Some(id),
                weight: 0.0,
                detail,
            });
            mentions.push(Mention {
                service,
                span: Some((start, end)),
            });
        }
    }

    fn nearest<'m>(
        &self,
        mentions: &'m [Mention],
        start: usize,
        end: usize,
    ) -> Option<(&'m Mention, usize)> {
        mentions
            .iter()
            .map(|m| {
                let distance = match m.span {
                    Some((s, e)) => {
                        let clauses = self.clause(s).abs_diff(self.clause(start));
                        gap(s, e, start, end) + clauses * CLAUSE_COST
                    }
                    None => METADATA_DISTANCE,
                };
                (m, distance)
            })
            .filter(|&(_, d)| d <= MAX_DISTANCE)
            .min_by_key(|&(_, d)| d)
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
        let id = service.as_ref().map(|s| self.service_id(s));
        let detail = match (&class, &id) {
            (Class::Report, Some(id)) => {
                format!("outage report for {id}: score {score:.2} >= {REPORT_THRESHOLD:.2}")
            }
            (Class::Maintenance, Some(id)) => format!("announced maintenance of {id}"),
            (Class::Recovery, Some(id)) => format!("{id} is reported working again"),
            _ => format!("not a report: score {score:.2} < {REPORT_THRESHOLD:.2} or no service"),
        };
        self.reasons.push(decision_reason(&detail, score));
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

/// Bytes between two spans (0 when they touch or overlap).
fn gap(a_start: usize, a_end: usize, b_start: usize, b_end: usize) -> usize {
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
