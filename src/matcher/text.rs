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

/// Where sentences start: after a line break or a CJK full stop (which
/// needs no space), and after `.`, `!`, `?` or `;` with what may close a
/// sentence after it (more of them, closing quotes and brackets, emoji:
/// "down?!", "down?😭", "down?\"") when a space or the end follows; or,
/// after `!` and `?`, a character of a script written without spaces:
/// Japanese `！？` are `!?` once normalized, and "落ちてる!昨日は" was one
/// sentence, its "yesterday" cancelling the report before it.
pub(super) fn clause_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let end = match c {
            '\n' | '。' => at + c.len_utf8(),
            '.' | '!' | '?' | ';' => {
                let mut end = at + c.len_utf8();
                while let Some(&(next_at, next)) = chars.peek().filter(|&&(_, n)| closes(n)) {
                    end = next_at + next.len_utf8();
                    chars.next();
                }
                let next = chars.peek().map(|&(_, n)| n);
                let spaced = next.is_none_or(|n| n == ' ');
                let unspaced = matches!(c, '!' | '?') && next.is_some_and(written_without_spaces);
                if !(spaced || unspaced) {
                    continue;
                }
                end
            }
            _ => continue,
        };
        starts.push(end);
    }
    starts
}

/// What may follow a sentence's last mark and still belong to its end:
/// more marks, closing quotes and brackets, emoji and their joiners.
pub(super) fn closes(c: char) -> bool {
    matches!(
        c,
        '.' | '!'
            | '?'
            | ';'
            | '…'
            | '"'
            | '\''
            | '”'
            | '’'
            | '»'
            | ')'
            | ']'
            | '}'
            | '\u{200d}'
            | '\u{fe0f}'
    ) || (u32::from(c) >= 0x2190 && !c.is_alphanumeric() && !c.is_whitespace())
}

/// Han, hiragana and katakana: scripts whose sentences no space divides.
fn written_without_spaces(c: char) -> bool {
    matches!(
        c,
        '\u{3040}'..='\u{30ff}' | '\u{3400}'..='\u{4dbf}' | '\u{4e00}'..='\u{9fff}' | '\u{f900}'..='\u{faff}'
    )
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
        let cases: [(&str, Vec<usize>); 12] = [
            ("is it down. yes", vec![11]),
            ("v1.2 is out", vec![]),
            ("twitter.com is down", vec![]),
            ("down!\nagain", vec![6]),
            ("落ちた。まじ", vec![12]),
            ("why? ", vec![4]),
            ("down?! yes", vec![6]),
            ("down... yes", vec![7]),
            ("down?😭 yes", vec![9]),
            ("is it down?\") yes", vec![13]),
            // `！` normalized: no space follows it in Japanese.
            ("落ちた!まじ", vec![10]),
            ("down?ok", vec![]),
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
