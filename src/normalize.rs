//! Normalize: the one form of a post that every later stage reads.
//!
//! Matching runs on text that is NFKC-normalized (so full-width `ＤＯＷＮ`,
//! ligatures and compatibility forms read as their plain letters), lower-cased
//! and with runs of white space collapsed to one space. Hashtags are gathered
//! from everywhere a client may put them: the text, facets and `record.tags`.
//! Pure: no I/O, no clock.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

use crate::Micros;
use crate::source::RawPost;

/// A post ready for matching.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    pub time_us: Micros,
    pub author: String,
    pub uri: String,
    /// De-duplication identity (see [`RawPost::key`]).
    pub key: u64,
    /// The text as written, kept for alert samples.
    pub original: String,
    /// The normalized text the matcher reads.
    pub text: String,
    /// Declared languages, lower-cased primary subtags (`pt-BR` → `pt`).
    pub langs: Vec<String>,
    /// Normalized hashtags without `#`, each once, in order of appearance.
    pub hashtags: Vec<String>,
}

pub fn normalize(raw: RawPost) -> Post {
    let text = normalize_text(&raw.text);
    let mut hashtags: Vec<String> = Vec::new();
    for tag in hashtags_in(&text) {
        push_unique(&mut hashtags, tag.to_owned());
    }
    for tag in &raw.tags {
        let tag = normalize_text(tag.trim_start_matches(['#', '＃']));
        if !tag.is_empty() {
            push_unique(&mut hashtags, tag);
        }
    }
    let langs = raw
        .langs
        .iter()
        .filter_map(|tag| tag.split(['-', '_']).next())
        .filter(|primary| !primary.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    Post {
        time_us: raw.time_us,
        author: raw.author,
        uri: raw.uri,
        key: raw.key,
        original: raw.text,
        text,
        langs,
        hashtags,
    }
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// NFKC, lower case, collapsed white space, trimmed.
pub fn normalize_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    if text.is_ascii() {
        // The common case on the firehose: NFKC is the identity on ASCII.
        push_collapsed(&mut out, text.chars().map(|c| c.to_ascii_lowercase()));
    } else if is_nfkc_quick(text.chars()) == IsNormalized::Yes {
        push_collapsed(&mut out, text.chars().flat_map(char::to_lowercase));
    } else {
        push_collapsed(&mut out, text.nfkc().flat_map(char::to_lowercase));
    }
    out
}

fn push_collapsed(out: &mut String, chars: impl Iterator<Item = char>) {
    let mut pending_space = false;
    for c in chars {
        if c.is_whitespace() || is_invisible(c) {
            pending_space |= c.is_whitespace();
            continue;
        }
        if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        out.push(c);
    }
}

/// Zero-width characters that people (and spam) put inside words; they would
/// otherwise split "down" into two tokens no phrase matches.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
    )
}

/// Hashtags in normalized text: `#` followed by letters, digits or `_`
/// (any script, so `#インスタ落ちた` and `#카톡먹통` count).
pub fn hashtags_in(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices('#').filter_map(move |(at, _)| {
        let rest = &text[at + 1..];
        let end = rest
            .char_indices()
            .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
            .map_or(rest.len(), |(i, _)| i);
        let before_ok = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        (end > 0 && before_ok).then(|| &rest[..end])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_normalization_table() {
        let cases = [
            ("Is Twitter DOWN?", "is twitter down?"),
            ("  lots \t of\n\nspace  ", "lots of space"),
            ("ＤＯＷＮ　ｎｏｗ", "down now"),
            ("ｲﾝｽﾀ落ちてる", "インスタ落ちてる"),
            ("ﬁle ﬂow", "file flow"),
            ("Störung bei WhatsApp", "störung bei whatsapp"),
            ("NÃO CARREGA", "não carrega"),
            ("do\u{200B}wn", "down"),
            ("카톡 안돼", "카톡 안돼"),
            ("", ""),
            ("①②", "12"),
            ("Ｘ ＩＳ ＤＯＷＮ", "x is down"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_text(input), want, "{input:?}");
        }
    }

    #[test]
    fn hashtags_table() {
        let cases: [(&str, &[&str]); 7] = [
            ("#twitterdown is real", &["twitterdown"]),
            ("a #b_c #d-e", &["b_c", "d"]),
            ("no#tag here", &[]),
            ("#インスタ落ちた #카톡먹통", &["インスタ落ちた", "카톡먹통"]),
            ("# alone", &[]),
            ("(#paren)", &["paren"]),
            ("##double", &["double"]),
        ];
        for (input, want) in cases {
            let got: Vec<&str> = hashtags_in(input).collect();
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn post_gathers_hashtags_from_text_facets_and_tags_once() {
        let post = normalize(RawPost {
            time_us: 5,
            author: "did:plc:a".into(),
            uri: "at://did:plc:a/app.bsky.feed.post/k".into(),
            key: 0,
            text: "Is #TwitterDown  for everyone?".into(),
            langs: vec!["pt-BR".into(), "EN".into()],
            tags: vec!["TwitterDown".into(), "#Outage".into(), "".into()],
        });
        assert_eq!(post.text, "is #twitterdown for everyone?");
        assert_eq!(post.original, "Is #TwitterDown  for everyone?");
        assert_eq!(post.hashtags, vec!["twitterdown", "outage"]);
        assert_eq!(post.langs, vec!["pt", "en"]);
    }
}
