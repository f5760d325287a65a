//! Hashtags as evidence: `#InstagramDown` (a name plus an outage affix of
//! any language) is a report on its own; `#Instagram` names the service.
//! A name the catalogue does not know becomes a discovered service, spelt
//! as its letters and digits, so `#BlipFMDown`, `blip.fm` and `@BlipFM`
//! meet under one name.

use super::classify::{Mention, Service};
use super::compile::Tables;
use crate::normalize::Post;

/// A hashtag that says "X is down": its service and the affix that said so.
pub(super) struct TagOutage {
    pub tag: String,
    pub service: Service,
    pub affix: String,
    pub lang: u8,
}

pub(super) fn read_hashtags(
    tables: &Tables,
    post: &Post,
) -> (Vec<(String, Mention)>, Vec<TagOutage>) {
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
                        addressee: false,
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

pub(super) fn find_tag(text: &str, tag: &str) -> Option<(usize, usize)> {
    let needle = format!("#{tag}");
    text.find(&needle).map(|at| (at, at + needle.len()))
}
