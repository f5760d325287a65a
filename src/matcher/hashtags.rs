//! Hashtags as evidence: `#InstagramDown` (a name plus an outage affix of
//! any language) is a report on its own; `#Instagram` names the service.
//! A name the catalogue does not know becomes a discovered service, spelt
//! as its letters and digits, so `#BlipFMDown`, `blip.fm` and `@BlipFM`
//! meet under one name.

use super::decision::{Mention, Service};
use super::subjects::predicates::MARKET_WORDS;
use super::tables::{HashtagAffix, Tables, hashtag_stem};
use crate::normalize::{MAX_HASHTAG_CHARS, MAX_HASHTAGS, Post, hashtags_in, normalize_text};

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
        } else if let Some(outage) = outage_tag(tables, post, tag, &tag_stem) {
            outages.push(outage);
        }
    }
    (mentions, outages)
}

/// Characters a name the catalogue does not know needs in a hashtag, at
/// least: a shorter rest of a split is a piece of a word (`#issues` is not
/// `is` + `sues`, nor `#Isaac` `is` + `aac`).
const MIN_DISCOVERED_STEM: usize = 3;

/// One way to read a tag as prefix + name + suffix (either affix may be
/// missing, not both).
struct Split<'t> {
    prefix: Option<&'t HashtagAffix>,
    name: &'t str,
    suffix: Option<&'t HashtagAffix>,
}

/// Words that may follow an outage suffix in a tag: `#TwitterDownAgain`.
/// A year or a number may too (`#TwitterDown2024`, `#twitterdown2`): people
/// number a repeat outage's tag, or a tag already taken.
const TAG_TAILS: [&str; 5] = ["again", "today", "now", "rn", "still"];

/// Digits of a number after an outage suffix, at most (a year).
const MAX_TAIL_DIGITS: usize = 4;

/// A tag that is a service's name plus an outage affix, or `None`; also
/// with a tail after the suffix (a number, [`TAG_TAILS`]), when the tag
/// without it is one with a suffix (`#TwitterDown2024`, not `#Twitter2024`).
fn outage_tag(tables: &Tables, post: &Post, tag: &str, tag_stem: &str) -> Option<TagOutage> {
    if tables.cancel_words.contains(tag_stem) {
        return None;
    }
    read_outage_tag(tables, post, tag, tag_stem, false).or_else(|| {
        let bare = without_tail(tag_stem)?;
        if tables.cancel_words.contains(bare) {
            return None;
        }
        read_outage_tag(tables, post, tag, bare, true)
    })
}

/// The tag's stem without a tail ([`TAG_TAILS`], or up to
/// [`MAX_TAIL_DIGITS`] digits after a letter), if it has one.
fn without_tail(tag_stem: &str) -> Option<&str> {
    let digits = tag_stem.len()
        - tag_stem
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .len();
    let bare = if (1..=MAX_TAIL_DIGITS).contains(&digits) {
        &tag_stem[..tag_stem.len() - digits]
    } else {
        TAG_TAILS
            .iter()
            .find_map(|tail| tag_stem.strip_suffix(tail))?
    };
    bare.chars()
        .next_back()
        .is_some_and(char::is_alphabetic)
        .then_some(bare)
}

/// [`outage_tag`] for one stem. One
/// word that means something else (`#meltdown`) is not split. A
/// catalogued name wins over any other split (`#IsTwitterDown` is
/// twitter, not `istwitter`); a name the catalogue does not know must be
/// written as a word of its own next to an outage word (see
/// [`discoverable`]). With `suffixed`, only splits with a suffix count.
fn read_outage_tag(
    tables: &Tables,
    post: &Post,
    tag: &str,
    tag_stem: &str,
    suffixed: bool,
) -> Option<TagOutage> {
    let known = splits(tables, tag_stem)
        .filter(|split| !suffixed || split.suffix.is_some())
        .find_map(|split| {
            let stem = tables.stems.get(split.name)?;
            Some((split, Service::Known(stem.service)))
        });
    let (split, service) = match known {
        Some(found) => found,
        None => {
            let breaks = word_breaks(find_spelling(&post.original, tag)?);
            let split = splits(tables, tag_stem).find(|split| {
                (!suffixed || split.suffix.is_some()) && discoverable(split, tag_stem, &breaks)
            })?;
            let service = Service::discovered(split.name.to_owned())?;
            (split, service)
        }
    };
    // The suffix says "down" when there are two (`#IsTwitterDown`).
    let affix = split.suffix.or(split.prefix)?;
    Some(TagOutage {
        tag: tag.to_owned(),
        service,
        affix: affix.stem.clone(),
        lang: affix.lang,
    })
}

/// Every reading of the tag as name plus affixes: both affixes first (so
/// `#IsZorblyDown` is `zorbly`, not `iszorbly`), then suffixes alone
/// (longest first), then prefixes alone.
fn splits<'t>(tables: &'t Tables, tag_stem: &'t str) -> impl Iterator<Item = Split<'t>> + 't {
    let suffixed = tables.hashtag_suffixes.iter().filter_map(move |suffix| {
        let name = tag_stem.strip_suffix(suffix.stem.as_str())?;
        Some(Split {
            prefix: None,
            name,
            suffix: Some(suffix),
        })
    });
    let prefixed = tables.hashtag_prefixes.iter().filter_map(move |prefix| {
        let name = tag_stem.strip_prefix(prefix.stem.as_str())?;
        Some(Split {
            prefix: Some(prefix),
            name,
            suffix: None,
        })
    });
    let both = prefixed.clone().flat_map(move |outer| {
        tables.hashtag_suffixes.iter().filter_map(move |suffix| {
            let name = outer.name.strip_suffix(suffix.stem.as_str())?;
            Some(Split {
                prefix: outer.prefix,
                name,
                suffix: Some(suffix),
            })
        })
    });
    both.chain(suffixed).chain(prefixed)
}

/// Whether a split may name a service the catalogue does not know. Every
/// ordinary word that ends in "down" or starts with "is" would otherwise
/// be a report for its remains (`#Markdown` → `mark`, `#Israel` →
/// `rael`), and a popular tag would become a service after a few authors.
/// So: the name is at least [`MIN_DISCOVERED_STEM`] ASCII letters or
/// digits, the affix that says it is down (the suffix if there is one)
/// is itself an outage word of its language (not `dead`, `crash` or a
/// bare `is`), the name is no market word (`#StocksDown`, `#DowDown`: a
/// market falling, see [`MARKET_WORDS`]), and the tag as written breaks into words
/// where the name meets an affix (`#ZorblyDown`, `#zorbly_down`;
/// `breaks` are the stems of the tag's beginnings that end at a break).
fn discoverable(split: &Split<'_>, tag_stem: &str, breaks: &[String]) -> bool {
    let name_ok = split.name.chars().count() >= MIN_DISCOVERED_STEM
        && split.name.chars().all(|c| c.is_ascii_alphanumeric())
        && !MARKET_WORDS.contains(&split.name);
    // With a suffix, the suffix says it (`#IsZorblyDown`); alone, a prefix.
    let affixes_ok = split
        .suffix
        .or(split.prefix)
        .is_some_and(|affix| affix.outage_word);
    let prefix_len = split.prefix.map_or(0, |prefix| prefix.stem.len());
    // A break where the split is, or just after it when the letters
    // between are a run the normalizer folded into the next part
    // (`#ToddddDown` reads `toddown`: the written break is after `todddd`).
    let broken_at = |end: usize| {
        let (Some(before), Some(after)) = (tag_stem.get(..end), tag_stem.get(end..)) else {
            return false;
        };
        let next = after.chars().next();
        breaks.iter().any(|stem| {
            stem.strip_prefix(before).is_some_and(|folded| {
                folded.is_empty() || next.is_some_and(|n| folded.chars().all(|c| c == n))
            })
        })
    };
    let prefix_ok = split.prefix.is_none() || broken_at(prefix_len);
    let suffix_ok = split.suffix.is_none() || broken_at(prefix_len + split.name.len());
    name_ok && affixes_ok && prefix_ok && suffix_ok
}

/// The tag as written in the post's original text, if it is there (a tag
/// from metadata alone has no spelling, so no word breaks).
fn find_spelling<'p>(original: &'p str, tag: &str) -> Option<&'p str> {
    hashtags_in(original)
        .take(MAX_HASHTAGS)
        .find(|written| written.len() <= MAX_HASHTAG_BYTES && normalize_text(written) == tag)
}

/// Bytes of a written hashtag compared with a tag, at most (a character
/// is at most 4 bytes).
const MAX_HASHTAG_BYTES: usize = 4 * MAX_HASHTAG_CHARS;

/// The hashtag stems of a written tag's beginnings that end at a word
/// break: before `_`, where lower case turns upper (`Zorbly|Down`),
/// before the last capital of a capital run followed by lower case
/// (`BlipFM|Down`), and where ASCII meets another script (`Zorbly|落ちた`). Stems, so they compare with the normalized tag's.
fn word_breaks(written: &str) -> Vec<String> {
    let chars: Vec<(usize, char)> = written.char_indices().collect();
    let mut breaks = Vec::new();
    for (i, &(at, c)) in chars.iter().enumerate().skip(1) {
        let prev = chars[i - 1].1;
        let next = chars.get(i + 1).map(|&(_, next)| next);
        let case_turn = c.is_uppercase()
            && (prev.is_lowercase()
                || prev.is_numeric()
                || (prev.is_uppercase() && next.is_some_and(char::is_lowercase)));
        // Latin next to a script without case: `#Zorbly落ちた`.
        let script_turn = prev.is_ascii_alphanumeric() != c.is_ascii_alphanumeric()
            && prev.is_alphanumeric()
            && c.is_alphanumeric();
        if c == '_' || case_turn || script_turn {
            breaks.push(hashtag_stem(&written[..at]));
        }
    }
    breaks
}

/// Where `#tag` stands in the text, if it does (hashtags can come from
/// metadata only).
pub(super) fn find_tag(text: &str, tag: &str) -> Option<(usize, usize)> {
    let needle = format!("#{tag}");
    text.find(&needle).map(|at| (at, at + needle.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Word breaks of tags as written, as the stems before each break.
    #[test]
    fn word_breaks_table() {
        let cases: &[(&str, &[&str])] = &[
            ("ZorblyDown", &["zorbly"]),
            ("zorbly_down", &["zorbly"]),
            ("BlipFMDown", &["blip", "blipfm"]),
            ("IsTwitterDown", &["is", "istwitter"]),
            ("Web3appDown", &["web3app"]),
            ("Web3Down", &["web3"]),
            ("Israel", &[]),
            ("blipfmdown", &[]),
            ("Markdown", &[]),
            ("TWITTERDOWN", &[]),
            ("インスタ落ちた", &[]),
            ("Zorbly落ちた", &["zorbly"]),
            ("zorbly먹통", &["zorbly"]),
            ("D", &[]),
            ("", &[]),
        ];
        for (written, want) in cases {
            assert_eq!(word_breaks(written), *want, "{written}");
        }
    }

    /// A number or a tail word after the tag is read off; what is left
    /// must end in a letter (`#2024` alone, `#x2` + a digit run too long,
    /// are not).
    #[test]
    fn tails_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("twitterdown2024", Some("twitterdown")),
            ("twitterdown2", Some("twitterdown")),
            ("twitterdownagain", Some("twitterdown")),
            ("instagramdownrn", Some("instagramdown")),
            ("twitterdown", None),
            ("twitterdown12345", None),
            ("2024", None),
            ("again", None),
            ("web3", Some("web")),
        ];
        for (stem, want) in cases {
            assert_eq!(without_tail(stem), *want, "{stem}");
        }
    }

    #[test]
    fn spelling_is_found_in_the_original_text() {
        assert_eq!(
            find_spelling("ugh #ZorblyDown again", "zorblydown"),
            Some("ZorblyDown")
        );
        assert_eq!(find_spelling("ugh #Zorbly", "zorblydown"), None);
        assert_eq!(find_spelling("no tags", "zorblydown"), None);
    }
}
