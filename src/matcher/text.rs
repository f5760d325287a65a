//! Geometry of the normalized text, shared by every rule: sentences,
//! words, links, the distance between two spans, and the conversion of
//! byte spans (what the matcher works in) to character spans (what a
//! person counts). All spans are `[start, end)` byte offsets.

use super::verdict::Reason;

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
pub(super) fn clause_starts(text: &str) -> Vec<usize> {
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

/// Links that point somewhere (`scheme://host/path`): `[start, end)`.
pub(super) fn links_in(text: &str) -> Vec<(usize, usize)> {
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

/// Words (runs of letters and digits) in normalized text: byte spans.
pub(super) fn word_spans(text: &str) -> Vec<(usize, usize)> {
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

/// Reasons carry character offsets (what a person counts in the text),
/// not the byte offsets the matcher works in.
pub(super) fn to_char_spans(text: &str, reasons: &mut [Reason]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_between_spans() {
        let cases = [
            ((0, 3), (5, 9), 2),
            ((5, 9), (0, 3), 2),
            ((0, 3), (3, 6), 0),
            ((0, 5), (2, 8), 0),
            ((2, 4), (0, 9), 0),
        ];
        for ((a, b), (c, d), want) in cases {
            assert_eq!(gap(a, b, c, d), want, "{a}..{b} to {c}..{d}");
        }
    }

    #[test]
    fn sentences_words_and_links() {
        let cases: [(&str, Vec<usize>); 5] = [
            ("is it down. yes", vec![11]),
            ("v1.2 is out", vec![]),
            ("down!\nagain", vec![6]),
            ("落ちた。まじ", vec![12]),
            ("why? ", vec![4]),
        ];
        for (text, want) in cases {
            assert_eq!(clause_starts(text), want, "{text:?}");
        }
        assert_eq!(
            word_spans("is x-down, ok"),
            vec![(0, 2), (3, 4), (5, 9), (11, 13)]
        );
        assert_eq!(
            links_in("see https://a.com/x and http://b.com/ now"),
            vec![(4, 19)]
        );
    }
}
