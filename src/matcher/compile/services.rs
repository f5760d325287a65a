//! The services file compiled: each service's names, context words,
//! domains and error messages as literals, its accounts and hashtag stems
//! as tables. Its own file because its checks (ids, one owner per alias
//! and per account) are about services only.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use super::Builder;
use crate::matcher::patterns::{Catalogue, Located, PatternError, ServiceDef};
use crate::matcher::tables::{Meaning, ServiceEntry, Stem, hashtag_stem};
use crate::normalize::normalize_text;
use toml::Spanned;

/// What the services file compiles to, besides literals.
#[derive(Default)]
pub(super) struct ServiceTables {
    pub(super) services: Vec<ServiceEntry>,
    pub(super) stems: HashMap<String, Stem>,
    pub(super) handles: HashMap<String, u16>,
}

pub(super) fn compile_services(
    catalogue: &Catalogue,
    builder: &mut Builder,
) -> Result<ServiceTables, PatternError> {
    let at = Located {
        file: &catalogue.services_file,
        source: &catalogue.services_source,
    };
    let mut out = ServiceTables::default();
    let mut alias_owner: HashMap<String, String> = HashMap::new();
    // The ids so far, for the duplicate check: a search of the list was
    // quadratic, a third of building a catalogue of 39,000 services.
    let mut ids: HashSet<&str> = HashSet::with_capacity(catalogue.services.len());
    // Each service's names declared ambiguous, as stems; and where each
    // stem was first claimed.
    let ambiguous: Vec<HashSet<String>> = catalogue
        .services
        .iter()
        .map(|def| {
            def.ambiguous
                .iter()
                .map(|name| hashtag_stem(name.get_ref()))
                .collect()
        })
        .collect();
    let mut stem_at: HashMap<String, Range<usize>> = HashMap::new();
    for def in &catalogue.services {
        let n = check_service(&at, def, &out.services, &mut ids)?;
        add_service_literals(&at, def, n, &mut alias_owner, builder)?;
        add_handles(&at, def, n, &mut out.handles)?;
        let claims = StemClaims {
            ambiguous: &ambiguous,
            services: &out.services,
            at: &mut stem_at,
        };
        add_stems(&at, def, n, &mut out.stems, claims)?;
        out.services.push(ServiceEntry {
            id: def.id.get_ref().clone(),
            name: def.name.clone(),
            category: def.category,
        });
    }
    add_plural_aliases(&at, catalogue, &alias_owner, builder)?;
    Ok(out)
}

/// Letters an alias needs for its plural twin, at least: shorter ones
/// (`grok`, `okta`) plus `s` are other words too often.
const MIN_PLURAL_ALIAS: usize = 5;

/// Every alias of one plain word (ASCII letters, at least
/// [`MIN_PLURAL_ALIAS`], not ending in `s`) with an `s` after it names the
/// service too: people write the possessive without its apostrophe
/// ("discords down", "twitters not loading"), and an alias stands only at a
/// word boundary, so those named nothing. Not for ambiguous names (`x` +
/// `s` is a size), nor where the twin is another service's name.
fn add_plural_aliases(
    at: &Located<'_>,
    catalogue: &Catalogue,
    alias_owner: &HashMap<String, String>,
    builder: &mut Builder,
) -> Result<(), PatternError> {
    let ambiguous: HashSet<String> = catalogue
        .services
        .iter()
        .flat_map(|def| &def.ambiguous)
        .map(|name| normalize_text(name.get_ref()))
        .collect();
    for (n, def) in catalogue.services.iter().enumerate() {
        // Every index fits: `check_service` refused more services.
        let Ok(n) = u16::try_from(n) else { break };
        for alias in &def.aliases {
            let key = normalize_text(alias.get_ref());
            let plain = key.len() >= MIN_PLURAL_ALIAS
                && key.bytes().all(|b| b.is_ascii_lowercase())
                && !key.ends_with('s');
            let twin = format!("{key}s");
            if plain && !alias_owner.contains_key(&twin) && !ambiguous.contains(&twin) {
                builder.add(at, &Spanned::new(alias.span(), twin), Meaning::Alias(n))?;
            }
        }
    }
    Ok(())
}

/// A valid, new service id (not in `ids`, where it is added) with at least
/// one name: its index.
fn check_service<'a>(
    at: &Located<'_>,
    def: &'a ServiceDef,
    services: &[ServiceEntry],
    ids: &mut HashSet<&'a str>,
) -> Result<u16, PatternError> {
    let id = def.id.get_ref();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(at.error(
            def.id.span(),
            format!("service id {id:?} must be lowercase letters and digits only"),
        ));
    }
    if !ids.insert(id) {
        return Err(at.error(def.id.span(), format!("service id {id:?} is defined twice")));
    }
    let n = u16::try_from(services.len())
        .map_err(|_| at.error(def.id.span(), "more than 65535 services"))?;
    if def.aliases.is_empty() && def.ambiguous.is_empty() {
        return Err(at.error(def.id.span(), format!("service {id:?} has no aliases")));
    }
    Ok(n)
}

/// The service's aliases, ambiguous names, context words, domains and
/// error messages as literals. An alias points to one service only.
fn add_service_literals(
    at: &Located<'_>,
    def: &ServiceDef,
    n: u16,
    alias_owner: &mut HashMap<String, String>,
    builder: &mut Builder,
) -> Result<(), PatternError> {
    let id = def.id.get_ref();
    for alias in &def.aliases {
        let key = normalize_text(alias.get_ref());
        // Two spellings that normalize alike ("twittter" folds to
        // "twitter") are one alias of the same service.
        if let Some(owner) = alias_owner.insert(key.clone(), id.clone())
            && owner != *id
        {
            return Err(at.error(
                alias.span(),
                format!(
                    "alias {key:?} of {id:?} is already an alias of {owner:?}; \
                     a name must point to one service (make it `ambiguous` in both)"
                ),
            ));
        }
        builder.add(at, alias, Meaning::Alias(n))?;
    }
    let lists = [
        (&def.ambiguous, Meaning::Ambiguous(n)),
        (&def.context, Meaning::Context(n)),
        (&def.domains, Meaning::Domain(n)),
        (&def.errors, Meaning::Error(n)),
    ];
    for (list, meaning) in lists {
        for literal in list {
            builder.add(at, literal, meaning)?;
        }
    }
    Ok(())
}

/// The service's accounts, by stem; one account belongs to one service.
fn add_handles(
    at: &Located<'_>,
    def: &ServiceDef,
    n: u16,
    handles: &mut HashMap<String, u16>,
) -> Result<(), PatternError> {
    for handle in &def.handles {
        let stem = hashtag_stem(handle.get_ref().trim_start_matches('@'));
        if stem.is_empty() {
            return Err(at.error(handle.span(), "handle has no letters or digits"));
        }
        if let Some(&owner) = handles.get(&stem)
            && owner != n
        {
            return Err(at.error(
                handle.span(),
                format!(
                    "handle {stem:?} of {:?} is already a handle of another service",
                    def.id.get_ref()
                ),
            ));
        }
        handles.insert(stem, n);
    }
    Ok(())
}

/// What [`add_stems`] checks a claim against.
struct StemClaims<'a> {
    /// Per service, the stems of its names declared ambiguous.
    ambiguous: &'a [HashSet<String>],
    /// The services compiled so far (their ids, for the error).
    services: &'a [ServiceEntry],
    /// Where each stem was first claimed.
    at: &'a mut HashMap<String, Range<usize>>,
}

/// How the service's names may stand in a hashtag (and name it as a
/// label or a handle does). A stem points to one service: a second
/// service's claim is refused with both places (it was settled silently,
/// first come first served: `@YouTubeTV`, a handle of `youtube`, made
/// `#YouTubeTVDown` a report for YouTube, not YouTube TV), unless both
/// services declare the name `ambiguous` (`yahoo`: Yahoo Mail and Yahoo
/// Japan), when the first listed keeps it for hashtags.
fn add_stems(
    at: &Located<'_>,
    def: &ServiceDef,
    n: u16,
    stems: &mut HashMap<String, Stem>,
    claims: StemClaims<'_>,
) -> Result<(), PatternError> {
    let stem_sources = def
        .aliases
        .iter()
        .chain(&def.hashtags)
        .chain(&def.handles)
        .map(|s| (s, false))
        .chain(def.ambiguous.iter().map(|s| (s, true)));
    for (name, ambiguous) in stem_sources {
        let stem = hashtag_stem(name.get_ref().trim_start_matches('@'));
        if stem.is_empty() {
            continue;
        }
        let Some(first) = stems.get_mut(&stem) else {
            stems.insert(
                stem.clone(),
                Stem {
                    service: n,
                    ambiguous,
                    word: ambiguous,
                },
            );
            claims.at.insert(stem, name.span());
            continue;
        };
        first.word |= ambiguous;
        if first.service == n {
            continue;
        }
        let declared = |service: u16| {
            claims
                .ambiguous
                .get(usize::from(service))
                .is_some_and(|names| names.contains(&stem))
        };
        if declared(first.service) && declared(n) {
            continue;
        }
        let owner = claims
            .services
            .get(usize::from(first.service))
            .map_or("another service", |s| s.id.as_str());
        let first_at = claims
            .at
            .get(&stem)
            .map_or_else(String::new, |span| format!(" at {}", at.place(span.start)));
        return Err(at.error(
            name.span(),
            format!(
                "name {stem:?} of {:?} is already a name of {owner:?}{first_at}; \
                 a name must point to one service (or be `ambiguous` in both)",
                def.id.get_ref()
            ),
        ));
    }
    Ok(())
}
