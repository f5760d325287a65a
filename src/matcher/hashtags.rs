//! Hashtags as evidence: `#InstagramDown` (a name plus an outage affix of
//! any language) is a report on its own; `#Instagram` names the service.
//! A name the catalogue does not know becomes a discovered service, spelt
//! as its letters and digits, so `#BlipFMDown`, `blip.fm` and `@BlipFM`
//! meet under one name.

use super::decision::{Mention, Service};
use super::tables::Tables;
use crate::normalize::Post;

/// A hashtag that names a catalogued service: `#Instagram`.
pub(super) struct TagMention {
    /// The tag as written, without `#`.
    pub tag: String,
    pub mention: Mention,
}

/// A hashtag that says "X is down": its service and the affix that said so.
pub(super) struct TagOutage {
    pub tag: String,
    pub service: Service,
    pub affix: String,
    pub lang: u8,
}

/// The post's hashtags: those that name a service (`#Instagram`), with
/// their tag, and those that say one is down (`#InstagramDown`).
pub(super) fn read_hashtags(tables: &Tables, post: &Post) -> (Vec<TagMention>, Vec<TagOutage>) {
    let mut mentions = Vec::new();
    let mut outages = Vec::new();
    for tag in &post.hashtags {
        let tag_stem: String = tag.chars().filter(|c| c.is_alphanumeric()).collect();
        if let Some(stem) = tables.stems.get(&tag_stem) {
            // A name alone; an ambiguous one (`#Steam`) names nothing.
            if !stem.ambiguous {
                let mention = Mention {
                    service: Service::Known(stem.service),
                    span: find_tag(&post.text, tag),
                    addressee: false,
                };
                mentions.push(TagMention {
                    tag: tag.clone(),
                    mention,
                });
            }
        } else if let Some(outage) = outage_tag(tables, tag, &tag_stem) {
            outages.push(outage);
        }
    }
    (mentions, outages)
}

/// A tag that is a service's name plus an outage affix, or `None`. One
/// word that means something else (`#meltdown`) is not split.
fn outage_tag(tables: &Tables, tag: &str, tag_stem: &str) -> Option<TagOutage> {
    if tables.cancel_words.contains(tag_stem) {
        return None;
    }
    let (rest, affix, lang) = split_affix(tables, tag_stem)?;
    let service = match tables.stems.get(rest) {
        Some(stem) => Service::Known(stem.service),
        // A name we do not know: discovered, if it looks like a name.
        None if rest.chars().all(|c| c.is_ascii_alphanumeric()) => {
            Service::discovered(rest.to_owned())?
        }
        None => return None,
    };
    Some(TagOutage {
        tag: tag.to_owned(),
        service,
        affix: affix.to_owned(),
        lang,
    })
}

/// The tag split into (name, affix, language of the affix): the longest
/// suffix that fits first, then the longest prefix.
fn split_affix<'t>(tables: &'t Tables, tag_stem: &'t str) -> Option<(&'t str, &'t str, u8)> {
    let suffixed = tables.hashtag_suffixes.iter().find_map(|(affix, lang)| {
        tag_stem
            .strip_suffix(affix.as_str())
            .map(|rest| (rest, affix.as_str(), *lang))
    });
    suffixed.or_else(|| {
        tables.hashtag_prefixes.iter().find_map(|(affix, lang)| {
            tag_stem
                .strip_prefix(affix.as_str())
                .map(|rest| (rest, affix.as_str(), *lang))
        })
    })
}

/// Where `#tag` stands in the text, if it does (hashtags can come from
/// metadata only).
pub(super) fn find_tag(text: &str, tag: &str) -> Option<(usize, usize)> {
    let needle = format!("#{tag}");
    text.find(&needle).map(|at| (at, at + needle.len()))
}
