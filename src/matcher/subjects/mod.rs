//! Subjects: what a failure phrase is about. Catalogued names, domains,
//! hashtags and handles name a service; an account the catalogue does not
//! know names a discovered service when the post is addressed to it or asks
//! about it (`handles.rs`); a capitalised name where a subject stands names
//! one too (`names.rs`); a thing that fails without a name ("the site",
//! "your app", "サイト") makes a report whose service is not named
//! (`score.rs`).

mod handles;
pub(super) mod names;
pub(super) mod predicates;

pub(super) use handles::{Handle, handles_in};

use super::decision::{
    AMBIGUOUS_GAP, CLAUSE_COST, Decision, Hit, MAX_DISTANCE, METADATA_DISTANCE, Mention, Phrase,
    PhraseState, Service,
};
use super::hashtags::TagMention;
use super::tables::{Meaning, PhraseKind};
use super::text::gap;
use super::verdict::{Reason, Rule};

impl Decision<'_> {
    /// Service mentions that count: plain aliases, domains, error strings,
    /// hashtags, handles, and ambiguous names that have support. Names
    /// inside a shared link (`http://host/path`) are what the link points
    /// to, not what fails, and do not count.
    pub(super) fn mentions(&mut self, phrases: &[Phrase]) -> Vec<Mention> {
        let mut mentions: Vec<Mention> = Vec::new();
        let anchors = self.anchors(phrases);
        self.catalogued_names(&mut mentions, &anchors);
        if !anchors.is_empty() {
            self.discover_domains(&mut mentions);
        }
        self.handle_mentions(&mut mentions, &anchors);
        // A name we do not know is guessed only when no name we know is
        // there: German capitalises every noun, and "the Slack outage on
        // Friday" must not become a service called "friday".
        let known = mentions
            .iter()
            .any(|m| matches!(m.service, Service::Known(_)));
        if !anchors.is_empty() && !known {
            self.named_subjects(&mut mentions, &anchors);
        }
        self.error_mentions(&mut mentions);
        self.hashtag_mentions(&mut mentions);
        mentions
    }

    /// What subjects are sought next to: the phrases context left standing,
    /// and recovery phrases.
    fn anchors(&self, phrases: &[Phrase]) -> Vec<(usize, usize)> {
        phrases
            .iter()
            .filter(|p| p.state != PhraseState::Cancelled)
            .map(|p| (p.hit.start, p.hit.end))
            .chain(self.hits_of(PhraseKind::Recovery).map(|h| (h.start, h.end)))
            .collect()
    }

    /// Aliases, domains and ambiguous names from the catalogue. "prime"
    /// inside "prime video": the longer name wins.
    fn catalogued_names(&mut self, mentions: &mut Vec<Mention>, anchors: &[(usize, usize)]) {
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
        for hit in &names {
            let inside_longer = names.iter().any(|o| {
                o.start <= hit.start
                    && hit.end <= o.end
                    && (o.end - o.start) > (hit.end - hit.start)
            });
            if inside_longer || self.in_link(hit.start) {
                continue;
            }
            let (n, rule) = match hit.meaning {
                Meaning::Alias(n) => (n, Rule::Alias),
                Meaning::Domain(n) => (n, Rule::Domain),
                Meaning::Ambiguous(n) => (n, Rule::Ambiguous),
                _ => continue,
            };
            let id = self.service_id(&Service::Known(n));
            let counts = match rule {
                Rule::Ambiguous => self.ambiguous_counts(hit, n, &id, anchors),
                _ => {
                    self.reason(rule, hit, 0.0, || format!("names {id}"));
                    true
                }
            };
            if !counts {
                continue;
            }
            mentions.push(Mention {
                service: Service::Known(n),
                span: Some((hit.start, hit.end)),
                addressee: false,
            });
        }
    }

    /// Whether an ambiguous name (X, Steam, Teams) names service `n` here,
    /// with the reason either way.
    fn ambiguous_counts(
        &mut self,
        hit: &Hit,
        n: u16,
        id: &str,
        anchors: &[(usize, usize)],
    ) -> bool {
        // "traffic signal", "zoom in", "x marks the spot": a longer phrase
        // that gives the word its ordinary sense.
        let ordinary = self
            .hits_of(PhraseKind::Cancel)
            .find(|c| {
                c.start <= hit.start && hit.end <= c.end && c.end - c.start > hit.end - hit.start
            })
            .copied();
        if let Some(cancel) = ordinary {
            let detail = || format!("not {id} here: an ordinary word");
            self.reason(Rule::Cancel, &cancel, 0.0, detail);
            return false;
        }
        match self.ambiguous_support(hit, n, anchors) {
            Some(why) => {
                self.reason(Rule::Ambiguous, hit, 0.0, || format!("names {id} ({why})"));
                true
            }
            None => {
                let detail = || format!("could be {id}, but nothing supports it: ignored");
                self.reason(Rule::Ambiguous, hit, 0.0, detail);
                false
            }
        }
    }

    /// What lets an ambiguous name count: an outage phrase right next to it
    /// in its sentence (not one people say of people: "Claude is out sick"),
    /// one of the service's context words, or a hashtag naming the service.
    fn ambiguous_support(&self, hit: &Hit, n: u16, anchors: &[(usize, usize)]) -> Option<String> {
        let clause = self.clause(hit.start);
        let owned = self
            .text
            .get(..hit.start)
            .and_then(|before| before.split_whitespace().next_back())
            .is_some_and(|w| DETERMINERS.contains(&w));
        let adjacent = !owned
            && anchors.iter().any(|&(s, e)| {
                gap(hit.start, hit.end, s, e) <= AMBIGUOUS_GAP
                    && self.clause(s) == clause
                    && !predicates::PERSON_PHRASES.contains(&&self.text[s..e])
            });
        if adjacent {
            return Some("right next to an outage phrase".to_owned());
        }
        let context = self.hits.iter().find(|h| h.meaning == Meaning::Context(n));
        if let Some(word) = context.map(|h| &self.text[h.start..h.end]) {
            return Some(format!("context word {word:?}"));
        }
        let tagged = self
            .tag_mentions
            .iter()
            .any(|t| t.mention.service == Service::Known(n));
        tagged.then(|| "also named in a hashtag".to_owned())
    }

    /// An error message names the one service that shows it.
    fn error_mentions(&self, mentions: &mut Vec<Mention>) {
        for hit in &self.hits {
            if let Meaning::Error(n) = hit.meaning {
                mentions.push(Mention {
                    service: Service::Known(n),
                    span: Some((hit.start, hit.end)),
                    addressee: false,
                });
            }
        }
    }

    /// Hashtags that name a catalogued service (`#Instagram`).
    fn hashtag_mentions(&mut self, mentions: &mut Vec<Mention>) {
        let tags = std::mem::take(&mut self.tag_mentions);
        for TagMention { tag, mention } in &tags {
            let id = self.service_id(&mention.service);
            let detail = self.words(|| format!("names {id}"));
            self.reasons.push(Reason {
                rule: Rule::Hashtag,
                matched: Some(format!("#{tag}")),
                at: mention.span.map(|(a, b)| [a, b]),
                lang: None,
                service: Some(id.clone()),
                weight: 0.0,
                detail,
            });
            mentions.push(mention.clone());
        }
        self.tag_mentions = tags;
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
            if known || label.len() < 2 || label == "www" || self.in_link(start) {
                continue;
            }
            let service = match self.tables.stems.get(&label) {
                Some(stem) => Service::Known(stem.service),
                None => match Service::discovered(label) {
                    Some(service) => service,
                    None => continue,
                },
            };
            let id = self.service_id(&service);
            let detail = |id: &str| match service {
                Service::Discovered(_) => format!("names {id} (not in the catalogue: discovered)"),
                Service::Known(_) => format!("names {id}"),
            };
            self.naming_reason(Rule::Domain, (start, end), id, detail);
            mentions.push(Mention {
                service,
                span: Some((start, end)),
                addressee: false,
            });
        }
    }

    /// A handle standing right before a failure phrase that is not a
    /// service here: "@friend isn't working tonight" is about a person.
    pub(super) fn person_before(&self, mentions: &[Mention], phrase: &Hit) -> Option<String> {
        let handle = self
            .handles
            .iter()
            .find(|h| h.end <= phrase.start && self.text[h.end..phrase.start].trim().is_empty())?;
        let is_mention = mentions
            .iter()
            .any(|m| m.span == Some((handle.start, handle.end)));
        (!is_mention).then(|| self.text[handle.start..handle.end].to_owned())
    }

    /// The nearest mention within reach of a phrase. The account a post
    /// is addressed to reaches every phrase of it ("@acme ... your site
    /// won't load"), as if it stood a sentence away.
    pub(super) fn nearest<'m>(
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
                        let d = gap(s, e, start, end) + clauses * CLAUSE_COST;
                        if m.addressee {
                            d.min(METADATA_DISTANCE)
                        } else {
                            d
                        }
                    }
                    None => METADATA_DISTANCE,
                };
                (m, distance)
            })
            .filter(|&(_, d)| d <= MAX_DISTANCE)
            .min_by_key(|&(_, d)| d)
    }
}

/// Words that make what follows them one thing among many, or someone
/// else's: "the switch is broken in my kitchen", "this meta is dead", "his
/// ring is broken". After one, an ambiguous name right next to an outage
/// phrase is the ordinary word; a context word or a hashtag can still name
/// the service ("the line app is down"). Not "my", "our" or "your": people
/// report their own apps so ("my outlook is not loading", "my threads
/// won't load").
const DETERMINERS: &[&str] = &[
    "the", "this", "that", "these", "those", "a", "an", "his", "her", "their",
];
