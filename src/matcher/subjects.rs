//! Subjects: what a failure phrase is about. Catalogued names, domains,
//! hashtags and handles name a service; an account the catalogue does not
//! know names a discovered service when the post is addressed to it or asks
//! about it; a thing that fails without a name ("the site", "your app",
//! "サイト") makes a report whose service is not named.

use super::classify::{
    AMBIGUOUS_GAP, CLAUSE_COST, Decision, Hit, MAX_DISTANCE, METADATA_DISTANCE, Mention, Phrase,
    PhraseState, Service, gap,
};
use super::compile::{Meaning, PhraseKind, hashtag_stem};
use super::verdict::Reason;

/// Parts of support and brand account names that are not the brand:
/// `@AcmeHelp`, `@AskAcme`, `@Acme_Support`, `@AcmeCares`.
const HANDLE_SUFFIXES: &[&str] = &[
    "support", "supports", "help", "helps", "cares", "care", "service", "status", "team",
    "official", "hq", "app", "inc", "uk", "us", "jp",
];
const HANDLE_PREFIXES: &[&str] = &["ask", "team", "the", "get"];

/// An `@handle` in the text.
pub(super) struct Handle {
    /// Letters and digits of the handle, lower case.
    pub stem: String,
    pub start: usize,
    pub end: usize,
    /// Among the handles that open the post: the post is addressed to it.
    pub addressee: bool,
}

/// Handles in normalized text: `@` not preceded by a word character (so
/// not an e-mail address), then letters, digits and `_`.
pub(super) fn handles_in(text: &str) -> Vec<Handle> {
    let mut handles = Vec::new();
    let mut opening = true;
    let mut last_end = 0;
    for (at, _) in text.match_indices('@') {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[at + 1..];
        let len = rest
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(rest.len(), |(i, _)| i);
        if len == 0 || len > 30 {
            continue;
        }
        // Only spaces and punctuation (".@acme") since the previous
        // opening handle: still addressing.
        opening &= text[last_end..at]
            .chars()
            .all(|c| c.is_whitespace() || matches!(c, '.' | ',' | ':'));
        let end = at + 1 + len;
        handles.push(Handle {
            stem: rest[..len].replace('_', ""),
            start: at,
            end,
            addressee: opening,
        });
        last_end = end;
    }
    handles
}

/// The brand inside a support account's name: `askacme` → `acme`,
/// `acmehelp` → `acme`. Returns the stem itself when nothing is cut.
pub(super) fn handle_brand(stem: &str) -> &str {
    let mut brand = stem;
    for prefix in HANDLE_PREFIXES {
        if let Some(rest) = brand.strip_prefix(prefix)
            && rest.len() >= 3
        {
            brand = rest;
            break;
        }
    }
    for suffix in HANDLE_SUFFIXES {
        if let Some(rest) = brand.strip_suffix(suffix)
            && rest.len() >= 3
        {
            brand = rest;
            break;
        }
    }
    brand
}

/// Predicates that people say of people too: a capitalised name before
/// them is as likely a person ("Alfred is dead") as a service.
const LIFE_PHRASES: &[&str] = &["is dead", "died", "is dying", "dead", "dead again", "down"];

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

impl Decision<'_> {
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

    /// Names written with capitals where a subject stands: right before a
    /// failure phrase ("Blipster is down", "GRNsight server is down"), or
    /// next to a thing that fails ("the Hoyts website isn't working",
    /// "Site ItaCeramica fora do ar"). A run of capitalised words is one
    /// name; it becomes a discovered service spelt as its letters and
    /// digits, unless a known name already stands there.
    fn named_subjects(&mut self, mentions: &mut Vec<Mention>, anchors: &[(usize, usize)]) {
        // (byte, name lies to the left, right before the predicate)
        let mut places: Vec<(usize, bool, bool)> = Vec::new();
        for &(start, end) in anchors {
            let phrase = &self.text[start..end];
            if !LIFE_PHRASES.contains(&phrase) {
                places.push((start, true, true));
            }
            let clause = self.clause(start);
            for t in self.hits_of(PhraseKind::Target) {
                if self.clause(t.start) == clause && gap(t.start, t.end, start, end) <= 40 {
                    places.push((t.start, true, false));
                    places.push((t.end, false, false));
                }
            }
        }
        let shouting = {
            let letters = self.original.chars().filter(|c| c.is_alphabetic()).count();
            let upper = self.original.chars().filter(|c| c.is_uppercase()).count();
            letters > 0 && upper * 10 > letters * 6
        };
        if shouting {
            return;
        }
        for (at, leftward, strict) in places {
            let words = self.capitalised_run(at, leftward, strict);
            let Some((start, end)) = words else { continue };
            let taken = mentions
                .iter()
                .any(|m| m.span.is_some_and(|(s, e)| s < end + 1 && start < e + 1));
            if taken || self.in_link(start) {
                continue;
            }
            let name = hashtag_stem(&self.text[start..end]);
            if name.chars().count() < 2 {
                continue;
            }
            let service = match self.tables.stems.get(&name) {
                Some(stem) if !stem.ambiguous => Service::Known(stem.service),
                Some(_) => continue,
                None => Service::Discovered(name),
            };
            let id = self.service_id(&service);
            self.reasons.push(Reason {
                rule: "name",
                matched: Some(self.text[start..end].to_owned()),
                at: Some([start, end]),
                lang: None,
                service: Some(id.clone()),
                weight: 0.0,
                detail: format!(
                    "names {id}: a capitalised name where a subject stands (discovered)"
                ),
            });
            mentions.push(Mention {
                service,
                span: Some((start, end)),
                addressee: false,
            });
        }
    }

    /// The run of capitalised words ending at (or starting at) byte `at`,
    /// skipping one space and a possessive `'s`; at most four words.
    fn capitalised_run(&self, at: usize, leftward: bool, strict: bool) -> Option<(usize, usize)> {
        let words: Vec<(usize, usize)> = word_spans(self.text);
        let mut run: Option<(usize, usize)> = None;
        if leftward {
            let mut edge = at;
            for &(s, e) in words.iter().rev().filter(|&&(_, e)| e <= at) {
                let between = &self.text[e..edge];
                let joined =
                    between.trim().is_empty() || between.trim() == "'s" || between.trim() == "’s";
                if !joined || run.map_or(0, |(rs, re)| self.text[rs..re].split(' ').count()) >= 4 {
                    break;
                }
                if run.is_none() && BETWEEN.contains(&&self.text[s..e]) {
                    edge = s;
                    continue;
                }
                if !self.is_name_word(s, e, strict) {
                    break;
                }
                run = Some((s, run.map_or(e, |(_, re)| re)));
                edge = s;
            }
        } else {
            let mut edge = at;
            for &(s, e) in words.iter().filter(|&&(s, _)| s >= at) {
                if !self.text[edge..s].trim().is_empty() || !self.is_name_word(s, e, strict) {
                    break;
                }
                run = Some((run.map_or(s, |(rs, _)| rs), e));
                edge = e;
                if self.text[run?.0..e].split(' ').count() >= 4 {
                    break;
                }
            }
        }
        run
    }

    /// A word written with a capital letter somewhere in the original
    /// (CamelCase, an initial, ALLCAPS), that is not a function word. When
    /// `strict` (the word would be the bare subject of the predicate), it
    /// must not follow an article.
    fn is_name_word(&self, start: usize, end: usize, strict: bool) -> bool {
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
        if strict {
            let before = self.text[..start].trim_end();
            let article = before.rsplit(' ').next().unwrap_or("");
            if ARTICLES.contains(&article) {
                return false;
            }
        }
        let len = word.len();
        let original = self.original;
        original
            .match_indices(|c: char| c.is_alphanumeric())
            .any(|(i, _)| {
                original.get(i..i + len).is_some_and(|w| {
                    w.eq_ignore_ascii_case(word)
                        && w.chars().any(char::is_uppercase)
                        && original[..i]
                            .chars()
                            .next_back()
                            .is_none_or(|c| !c.is_alphanumeric())
                        && original[i + len..]
                            .chars()
                            .next()
                            .is_none_or(|c| !c.is_alphanumeric())
                })
            })
    }

    /// Whether byte `at` lies inside a link with a path (`http://host/x`),
    /// which shares something rather than naming what fails.
    pub(super) fn in_link(&self, at: usize) -> bool {
        self.links.iter().any(|&(s, e)| s <= at && at < e)
    }

    /// Handles as mentions: catalogued accounts always; other accounts when
    /// the post is addressed to them and a failure phrase is about a thing
    /// ("your site", "the app") or a question asks about them ("is @acme
    /// down?").
    fn handle_mentions(&mut self, mentions: &mut Vec<Mention>, anchors: &[(usize, usize)]) {
        let handles = std::mem::take(&mut self.handles);
        let question = self.text.contains('?');
        for handle in &handles {
            let known = self
                .tables
                .handles
                .get(&handle.stem)
                .copied()
                .or_else(|| self.tables.stems.get(&handle.stem).map(|s| s.service))
                .or_else(|| {
                    let brand = handle_brand(&handle.stem);
                    self.tables
                        .handles
                        .get(brand)
                        .copied()
                        .or_else(|| self.tables.stems.get(brand).map(|s| s.service))
                });
            let span = (handle.start, handle.end);
            let (service, why) = match known {
                Some(n) => (Service::Known(n), "a catalogued account"),
                None => {
                    let clause_of = |at: usize| self.clause(at);
                    let targeted = anchors.iter().any(|&(s, _)| {
                        self.hits_of(PhraseKind::Target)
                            .any(|t| clause_of(t.start) == clause_of(s))
                    });
                    let asked = question
                        && anchors
                            .iter()
                            .any(|&(s, e)| gap(handle.start, handle.end, s, e) <= AMBIGUOUS_GAP);
                    if !((handle.addressee && targeted) || asked) {
                        continue;
                    }
                    let brand = hashtag_stem(handle_brand(&handle.stem));
                    if brand.chars().count() < 2 {
                        continue;
                    }
                    (
                        Service::Discovered(brand),
                        if asked {
                            "an account asked about (not in the catalogue: discovered)"
                        } else {
                            "the account the post is addressed to (not in the catalogue: discovered)"
                        },
                    )
                }
            };
            let id = self.service_id(&service);
            self.reasons.push(Reason {
                rule: "handle",
                matched: Some(self.text[span.0..span.1].to_owned()),
                at: Some([span.0, span.1]),
                lang: None,
                service: Some(id.clone()),
                weight: 0.0,
                detail: format!(
                    "names {id}: {why}{}",
                    if handle.addressee { ", addressed" } else { "" }
                ),
            });
            mentions.push(Mention {
                service,
                span: Some(span),
                addressee: handle.addressee,
            });
        }
        self.handles = handles;
    }

    /// Service mentions that count: plain aliases, domains, error strings,
    /// hashtags, handles, and ambiguous names that have support. Names
    /// inside a shared link (`http://host/path`) are what the link points
    /// to, not what fails, and do not count.
    pub(super) fn mentions(&mut self, phrases: &[Phrase]) -> Vec<Mention> {
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
            if inside_longer || self.in_link(hit.start) {
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
                addressee: false,
            });
        }
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
        for hit in self
            .hits
            .iter()
            .filter(|h| matches!(h.meaning, Meaning::Error(_)))
        {
            if let Meaning::Error(n) = hit.meaning {
                mentions.push(Mention {
                    service: Service::Known(n),
                    span: Some((hit.start, hit.end)),
                    addressee: false,
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
    pub(super) fn discover_domains(&mut self, mentions: &mut Vec<Mention>) {
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
                None => Service::Discovered(label),
            };
            let id = self.service_id(&service);
            let detail = match service {
                Service::Discovered(_) => format!("names {id} (not in the catalogue: discovered)"),
                Service::Known(_) | Service::Unnamed => format!("names {id}"),
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
                addressee: false,
            });
        }
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

/// Words (runs of letters and digits) in normalized text: byte spans.
fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        let word = c.is_alphanumeric();
        match (word, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}
