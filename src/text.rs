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

#[cfg(test)]
mod tests {
    use super::*;

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
