//! Cutting text to a length, for every layer: a post's text for an alert
//! sample, a server's message for a log line. Both are written by someone
//! else and may be a megabyte long, and a server's message may hold line
//! breaks that would start a forged line in a text log.

/// Characters of a post's text read, at most (the rest is not matched, nor
/// kept for samples): more than a Bluesky post (300 graphemes) or a
/// Mastodon status (500 by default) holds, and an outage report is a
/// line. Parts of the matcher cost the square of a text's words, and a
/// frame may be a megabyte: one Nostr note of 128 kB ("is down" 16,000
/// times) held the pipeline for 39 s. `normalize` cuts every post's text
/// here; a decoder that has to work for its text (a Mastodon status's
/// HTML) stops here.
pub const MAX_TEXT_CHARS: usize = 2_000;

/// Characters of a server's own message (a relay's `NOTICE`, an
/// instance's `error`) kept for a log line or a count's reason.
pub const SERVER_TEXT_CHARS: usize = 200;

/// `text` cut to at most `max` characters (the last one `…` when cut).
pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((at, _)) if text[at..].chars().nth(1).is_some() => {
            let mut cut = text[..at].to_owned();
            cut.push('…');
            cut
        }
        _ => text.to_owned(),
    }
}

/// A server's own message as a log line or a reason may hold it: one line
/// ([`one_line`]), cut to [`SERVER_TEXT_CHARS`]. A relay's `NOTICE`
/// holding `"\n2026-… ERROR …"` printed a log line of the relay's making.
pub fn server_text(text: &str) -> String {
    truncate_chars(one_line(text).trim(), SERVER_TEXT_CHARS)
}

/// `text` as one line of visible characters: line breaks (LF, CR, NEL,
/// U+2028, U+2029) and tabs become spaces; other control characters and
/// the invisible marks that reorder the text around them (bidirectional
/// embeddings, overrides and isolates) are dropped.
pub fn one_line(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' | '\u{85}' | '\u{2028}' | '\u{2029}' => Some(' '),
            '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}' => None,
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// `value` as text cut like [`truncate_chars`], never holding more than
/// `max` characters of it: an error message can quote a sender's whole
/// value (serde's ``invalid type: string "…"``), and a frame may be a
/// megabyte.
pub fn display_chars(value: &dyn std::fmt::Display, max: usize) -> String {
    /// Keeps `max` characters and notes whether more came.
    struct Bounded {
        out: String,
        left: usize,
        cut: bool,
    }
    impl std::fmt::Write for Bounded {
        fn write_str(&mut self, text: &str) -> std::fmt::Result {
            for c in text.chars() {
                if self.left == 0 {
                    self.cut = true;
                    // Stops the formatting: nothing more is wanted.
                    return Err(std::fmt::Error);
                }
                self.out.push(c);
                self.left -= 1;
            }
            Ok(())
        }
    }
    let mut bounded = Bounded {
        out: String::new(),
        left: max,
        cut: false,
    };
    // An error here is only the cut (or a Display that failed: what it
    // wrote is kept).
    let _ = std::fmt::write(&mut bounded, format_args!("{value}"));
    if bounded.cut {
        bounded.out.pop();
        bounded.out.push('…');
    }
    bounded.out
}

/// `word` as one word a POSIX shell reads back as it is: unchanged when
/// it holds only characters no shell treats specially, else in single
/// quotes (a quote inside written `'\''`). For commands a message tells
/// the user to run, so a path with a space or a `$` can be pasted.
pub fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./+:,=@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same cut as [`truncate_chars`], by characters, whatever the
    /// bytes of each.
    #[test]
    fn a_display_is_cut_as_its_text_would_be() {
        let long = "é".repeat(300_000);
        for text in [
            "",
            "short",
            "exactly10!",
            "eleven char",
            "ééééééééééé",
            "日本語のテキストがここに",
            "😀😀😀😀😀😀😀😀😀😀😀😀",
            long.as_str(),
        ] {
            for max in [1, 2, 10, 11, 200] {
                let got = display_chars(&format_args!("{text}"), max);
                assert_eq!(got, truncate_chars(text, max), "{max} {text:.20}");
                assert!(got.chars().count() <= max.max(1));
            }
        }
    }

    /// Nothing a server writes can break a log line or reorder what
    /// follows it.
    #[test]
    fn a_servers_text_is_one_visible_line() {
        // (text, as a log line holds it)
        let cases = [
            ("plain notice", "plain notice"),
            (
                "hello\n2026-12-02T06:00:00Z ERROR forged",
                "hello 2026-12-02T06:00:00Z ERROR forged",
            ),
            ("a\r\nb", "a  b"),
            ("tab\there", "tab here"),
            ("line\u{2028}sep\u{2029}para\u{85}nel", "line sep para nel"),
            ("bell\u{7}esc\u{1b}[31mred del\u{7f}", "bellesc[31mred del"),
            ("c1\u{9b}31m", "c131m"),
            ("\u{202e}desrever\u{202c} rtl", "desrever rtl"),
            ("\u{2066}iso\u{2069} \u{200f}mark\u{200e}", "iso mark"),
            ("  \n padded \n  ", "padded"),
            ("日本語 ok, émoji 😀", "日本語 ok, émoji 😀"),
        ];
        for (text, want) in cases {
            assert_eq!(server_text(text), want, "{text:?}");
        }
        let long = format!("{}\n{}", "x".repeat(150), "y".repeat(150));
        let cut = server_text(&long);
        assert_eq!(cut.chars().count(), SERVER_TEXT_CHARS);
        assert!(!cut.contains('\n') && cut.ends_with('…'));
    }

    #[test]
    fn text_is_cut_by_characters() {
        // (text, max, cut)
        let cases = [
            ("short", 10, "short"),
            ("exactly10!", 10, "exactly10!"),
            ("ééééééééééé", 10, "ééééééééé…"),
            ("", 3, ""),
            ("abc", 1, "…"),
            ("日本語のテキスト", 4, "日本語…"),
        ];
        for (text, max, cut) in cases {
            assert_eq!(truncate_chars(text, max), cut, "{text:?} to {max}");
        }
    }

    #[test]
    fn shell_words_read_back_as_they_were() {
        for (word, quoted) in [
            ("/var/lib/outagewatch", "/var/lib/outagewatch"),
            ("dmg", "dmg"),
            ("my state", "'my state'"),
            ("$HOME/x", "'$HOME/x'"),
            ("it's", r"'it'\''s'"),
            ("", "''"),
        ] {
            assert_eq!(shell_word(word), quoted);
        }
    }
}
