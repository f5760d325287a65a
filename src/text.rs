//! Cutting text to a length, for every layer: a post's text for an alert
//! sample, a server's message for a log line. Both are written by someone
//! else and may be a megabyte long.

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
}
