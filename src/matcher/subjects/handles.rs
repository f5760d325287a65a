//! `@handles` as subjects: a catalogued account names its service; an
//! account the catalogue does not know names a discovered service when the
//! post is addressed to it and a failure phrase is about a thing ("@acme
//! your site won't load"), or when a question asks about it ("is @acme
//! down?"). Support accounts name their brand (`@AcmeHelp` → `acme`).

use super::super::decision::{AMBIGUOUS_GAP, Decision, Mention, Service};
use super::super::tables::{PhraseKind, hashtag_stem};
use super::super::text::gap;
use super::super::verdict::Rule;

/// Parts of support and brand account names that are not the brand:
/// `@AcmeHelp`, `@AskAcme`, `@Acme_Support`, `@AcmeCares`.
const HANDLE_SUFFIXES: &[&str] = &[
    "support", "supports", "help", "helps", "cares", "care", "service", "status", "team",
    "official", "hq", "app", "inc", "uk", "us", "jp",
];
const HANDLE_PREFIXES: &[&str] = &["ask", "team", "the", "get"];

/// Words that address a group in chat tools (`@everyone`, `@here`,
/// `@channel`), pasted into posts: nobody's account, and never a
/// discovered service ("discord down, can't log in @everyone" made one
/// named `everyone`, which then paged).
const GROUP_MENTIONS: &[&str] = &[
    "everyone",
    "everybody",
    "here",
    "channel",
    "all",
    "room",
    "online",
];

/// An `@handle` in the text.
pub(in super::super) struct Handle {
    /// Letters and digits of the handle, lower case.
    pub stem: String,
    pub start: usize,
    pub end: usize,
    /// Among the handles that open the post: the post is addressed to it.
    pub addressee: bool,
}

/// Handles in normalized text: `@` not preceded by a word character (so
/// not an e-mail address), then letters, digits and `_`.
pub(in super::super) fn handles_in(text: &str) -> Vec<Handle> {
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
fn handle_brand(stem: &str) -> &str {
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

impl Decision<'_> {
    /// Handles as mentions: catalogued accounts always; other accounts when
    /// the post is addressed to them and a failure phrase is about a thing
    /// ("your site", "the app") or a question asks about them ("is @acme
    /// down?").
    pub(super) fn handle_mentions(
        &mut self,
        mentions: &mut Vec<Mention>,
        anchors: &[(usize, usize)],
    ) {
        let handles = std::mem::take(&mut self.handles);
        for handle in &handles {
            let named = match self.catalogued_account(&handle.stem) {
                Some(n) => Some((Service::Known(n), "a catalogued account")),
                None => self.discovered_account(handle, anchors),
            };
            let Some((service, why)) = named else {
                continue;
            };
            let id = self.service_id(&service);
            let addressed = if handle.addressee { ", addressed" } else { "" };
            let span = (handle.start, handle.end);
            let detail = |id: &str| format!("names {id}: {why}{addressed}");
            self.naming_reason(Rule::Handle, span, id, detail);
            mentions.push(Mention {
                service,
                span: Some(span),
                addressee: handle.addressee,
            });
        }
        self.handles = handles;
    }

    /// The service whose account (or unambiguous name) the handle is, or
    /// whose brand a support account carries. An ambiguous name is an
    /// account only where the catalogue lists it among the service's
    /// `handles` (`@united` is the airline's): as a name, `@tim`, `@max`
    /// and `@claude` are people ("@tim isn't working tonight, he's off"
    /// was a report for TIM), as "Claude is out sick" names no service.
    fn catalogued_account(&self, stem: &str) -> Option<u16> {
        let account = |stem: &str| {
            self.tables.handles.get(stem).copied().or_else(|| {
                let name = self.tables.stems.get(stem)?;
                (!name.word).then_some(name.service)
            })
        };
        account(stem).or_else(|| account(handle_brand(stem)))
    }

    /// An account the catalogue does not know, named as a discovered
    /// service when the post is addressed to it about a thing, or asks
    /// about it; with why.
    fn discovered_account(
        &self,
        handle: &Handle,
        anchors: &[(usize, usize)],
    ) -> Option<(Service, &'static str)> {
        let targeted = anchors.iter().any(|&(s, _)| {
            self.hits_of(PhraseKind::Target)
                .any(|t| self.clause(t.start) == self.clause(s))
        });
        let asked = self.text.contains('?')
            && anchors
                .iter()
                .any(|&(s, e)| gap(handle.start, handle.end, s, e) <= AMBIGUOUS_GAP);
        if !((handle.addressee && targeted) || asked)
            || GROUP_MENTIONS.contains(&handle.stem.as_str())
        {
            return None;
        }
        let service = Service::discovered(hashtag_stem(handle_brand(&handle.stem)))?;
        let why = if asked {
            "an account asked about (not in the catalogue: discovered)"
        } else {
            "the account the post is addressed to (not in the catalogue: discovered)"
        };
        Some((service, why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brands_of_support_accounts() {
        let cases = [
            ("askacme", "acme"),
            ("acmehelp", "acme"),
            ("acmesupport", "acme"),
            ("teamacmecares", "acme"),
            ("acme", "acme"),
            // Too little would be left: nothing is cut.
            ("askme", "askme"),
            ("uphelp", "uphelp"),
        ];
        for (stem, brand) in cases {
            assert_eq!(handle_brand(stem), brand, "{stem}");
        }
    }

    #[test]
    fn handles_and_addressees() {
        let found = handles_in("@acme .@bob_x hi @carol, mail me@home.org");
        let got: Vec<(&str, bool)> = found
            .iter()
            .map(|h| (h.stem.as_str(), h.addressee))
            .collect();
        assert_eq!(got, [("acme", true), ("bobx", true), ("carol", false)]);
        assert_eq!((found[0].start, found[0].end), (0, 5));
    }
}
