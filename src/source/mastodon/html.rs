//! A status's HTML as the plain text a reader sees, read only as far as
//! the text a post keeps: a status's `content` is up to a megabyte of
//! markup written by whichever server federated it.

use std::borrow::Cow;

use html5gum::{DefaultEmitter, Token, Tokenizer};

use crate::text::MAX_TEXT_CHARS;

/// Bytes of a status's HTML read, at most: [`MAX_TEXT_CHARS`] characters
/// of text with 16 bytes of tags and character references around each (a
/// status of 500 characters with links and mentions is 2 to 5 kB). The
/// tokenizer's cost grows with the bytes it reads, not the text it gives:
/// a status of a megabyte of `&amp;` (text of 180,000 characters, of which
/// 2,000 are read) took 55 ms, and ten such a second kept the pipeline
/// thread busy and a Jetstream source beside it fell 38 s behind in 42 s.
pub const MAX_HTML_BYTES: usize = 16 * MAX_TEXT_CHARS;

/// Character references (`&…`) of a status's HTML read, at most: one in
/// the text is at least one character, so this many give all the text
/// that is kept. Each costs the tokenizer a search of the entity names,
/// about a microsecond: `&notit;` 120,000 times took 100 ms, and the 4,500
/// of them within [`MAX_HTML_BYTES`] still a twentieth of that.
pub const MAX_HTML_REFERENCES: usize = MAX_TEXT_CHARS;

/// The part of `html` [`html_to_text`] reads: the first [`MAX_HTML_BYTES`]
/// (cut at a character's start), and of those what comes before the
/// reference after the first [`MAX_HTML_REFERENCES`].
fn bounded_html(html: &str) -> &str {
    let mut cut = html.len().min(MAX_HTML_BYTES);
    while !html.is_char_boundary(cut) {
        cut -= 1;
    }
    let html = &html[..cut];
    match html.match_indices('&').nth(MAX_HTML_REFERENCES) {
        Some((at, _)) => &html[..at],
        None => html,
    }
}

/// Mastodon's HTML to plain text, read by a WHATWG tokenizer (html5gum)
/// as a browser would: a line break for `<br>` and at the end of each
/// block (a paragraph, a list item, a quote, a heading), so two list items
/// do not run into one word; character references decoded; what a reader
/// never sees left out: tags and their attributes (whatever `>` they hold),
/// comments, and the content of `<script>` and `<style>`. An instance
/// sanitises its own posts, but a federated one writes what it likes.
///
/// Only what a post's text keeps is read: the first [`MAX_HTML_BYTES`] of
/// the HTML and [`MAX_HTML_REFERENCES`] of its character references, and
/// no token once [`MAX_TEXT_CHARS`] characters are out, so a status costs a
/// bounded amount whatever its size. The text is then the whole text's
/// first [`MAX_TEXT_CHARS`] characters, unless markup fills the bytes
/// before them (more than 16 bytes of it a character): what comes after
/// the bound is not read, and a tag or reference it cuts is lost, as at
/// the end of any document.
pub fn html_to_text(html: &str) -> String {
    read_html(html).0
}

/// [`html_to_text`], with the number of tokens read (for tests: the
/// tokenizer stops).
fn read_html(html: &str) -> (String, usize) {
    /// Elements whose end is a line break on the page.
    const BLOCKS: [&[u8]; 14] = [
        b"p",
        b"div",
        b"li",
        b"ul",
        b"ol",
        b"blockquote",
        b"pre",
        b"h1",
        b"h2",
        b"h3",
        b"h4",
        b"h5",
        b"h6",
        b"tr",
    ];
    let html = bounded_html(html);
    let mut emitter = DefaultEmitter::default();
    // Script, style, title and textarea content is raw text, as in a
    // browser: a `<p>` inside it starts no paragraph.
    emitter.naively_switch_states(true);
    let mut out = String::with_capacity(html.len().min(4 * MAX_TEXT_CHARS));
    let (mut chars, mut tokens) = (0usize, 0usize);
    let mut unseen = 0usize;
    for Ok(token) in Tokenizer::new_with_emitter(html, emitter) {
        tokens += 1;
        let text = match token {
            Token::StartTag(tag) => match &**tag.name {
                b"br" => Cow::Borrowed("\n"),
                b"script" | b"style" if !tag.self_closing => {
                    unseen += 1;
                    continue;
                }
                // A block's start breaks the line too: HTML lets a `</li>`
                // or `</p>` be left out (`<li>discord<li>down`), and a
                // tokenizer sees only the tags that were written.
                name if BLOCKS.contains(&name) && !out.is_empty() && !out.ends_with('\n') => {
                    Cow::Borrowed("\n")
                }
                _ => continue,
            },
            Token::EndTag(tag) => match &**tag.name {
                b"script" | b"style" => {
                    unseen = unseen.saturating_sub(1);
                    continue;
                }
                name if BLOCKS.contains(&name) && !out.ends_with('\n') => Cow::Borrowed("\n"),
                _ => continue,
            },
            Token::String(text) if unseen == 0 => {
                Cow::Owned(String::from_utf8_lossy(&text).into_owned())
            }
            _ => continue,
        };
        out.push_str(&text);
        chars += text.chars().count();
        if chars >= MAX_TEXT_CHARS {
            break;
        }
    }
    if let Some((end, _)) = out.char_indices().nth(MAX_TEXT_CHARS) {
        out.truncate(end);
    }
    out.truncate(out.trim_end().len());
    (out, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text a reader sees: one case per way HTML can hide, join or
    /// smuggle words.
    #[test]
    fn html_is_read_as_a_browser_shows_it() {
        // (HTML, text)
        let cases = [
            (
                "<p>is discord down?</p><p>still</p>",
                "is discord down?\nstill",
            ),
            ("line<br>break<br/>twice", "line\nbreak\ntwice"),
            ("<ul><li>discord</li><li>down</li></ul>", "discord\ndown"),
            ("<blockquote>quoted</blockquote>reply", "quoted\nreply"),
            (
                "a &amp; b &#39;c&#39; &lt;d&gt; &eacute; &#x1F600;",
                "a & b 'c' <d> é 😀",
            ),
            ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),
            ("<script>discord is down</script>hello", "hello"),
            ("<style>p{}</style><p>hi</p>", "hi"),
            ("<script><p>not a paragraph</p></script>shown", "shown"),
            (r#"<a title="x>is discord down">link</a>"#, "link"),
            ("<!-- discord down -->ok", "ok"),
            (
                r#"<p><a href="https://x.example/a"><span class="invisible">https://</span><span>x.example/a</span></a> is down</p>"#,
                "https://x.example/a is down",
            ),
            ("<p>unclosed <b>bold", "unclosed bold"),
            // End tags HTML lets an author leave out.
            ("<ul><li>discord<li>down</ul>", "discord\ndown"),
            ("discord<p>down", "discord\ndown"),
            ("<div><p>discord</p></div><div>down</div>", "discord\ndown"),
            ("", ""),
        ];
        for (html, text) in cases {
            assert_eq!(html_to_text(html), text, "{html:?}");
        }
    }

    /// The HTML of a long status is read only as far as its text is kept
    /// ([`MAX_TEXT_CHARS`] characters, from at most [`MAX_HTML_BYTES`]):
    /// the tokenizer stops, whatever the status's size, and the text is
    /// the whole text's beginning. A megabyte of `&amp;` was tokenized to
    /// the end for 2,000 characters of it (55 ms a status).
    #[test]
    fn a_long_status_is_read_only_as_far_as_its_text_is_kept() {
        let paragraphs: String = (0..10_000).map(|i| format!("<p>word{i}</p>")).collect();
        let words: String = (0..10_000).map(|i| format!("word{i}\n")).collect();
        let first = |text: &str| text.chars().take(MAX_TEXT_CHARS).collect::<String>();
        // (HTML, text, most tokens read)
        let cases = [
            // Three tokens a paragraph, 6 or more characters out of each.
            (paragraphs, first(&words), 1_100),
            ("&amp;".repeat(180_000), "&".repeat(MAX_TEXT_CHARS), 1),
            // `&not` is a reference without its `;` (as browsers read it),
            // an error token each: the bound on references stops it.
            (
                "&notit;".repeat(120_000),
                "\u{ac}it;".repeat(MAX_TEXT_CHARS / 4),
                MAX_HTML_REFERENCES + 1,
            ),
            ("é".repeat(500_000), "é".repeat(MAX_TEXT_CHARS), 1),
            // The byte bound falls inside a character.
            (
                format!("a{}", "😀".repeat(100_000)),
                format!("a{}", "😀".repeat(MAX_TEXT_CHARS - 1)),
                1,
            ),
            // Markup alone: the bound on bytes stops it; text past it is
            // not read.
            (
                format!("{}discord is down", "<b></b>".repeat(200_000)),
                String::new(),
                MAX_HTML_BYTES / 3,
            ),
        ];
        for (html, text, most_tokens) in cases {
            let bounded = bounded_html(&html);
            assert!(bounded.len() <= MAX_HTML_BYTES);
            assert!(bounded.matches('&').count() <= MAX_HTML_REFERENCES);
            let (read, tokens) = read_html(&html);
            let start: String = html.chars().take(20).collect();
            assert_eq!(read, text, "{start}…");
            assert!(tokens <= most_tokens, "{tokens} tokens: {start}…");
        }
    }
}
