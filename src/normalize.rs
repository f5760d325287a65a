//! Normalize: the one form of a post that every later stage reads.
//!
//! Matching runs on text that is NFKC-normalized (so full-width `ＤＯＷＮ`,
//! ligatures and compatibility forms read as their plain letters), lower-cased
//! and with runs of white space collapsed to one space, or to one line
//! break `\n` when the run holds one (a line break ends a sentence for the
//! matcher: "twitter is down\nhad a great time yesterday" is two
//! sentences, and the second one's "yesterday" says nothing of the first).
//! More folds
//! undo what people and spammers do to words, so the phrase lists need no
//! variants:
//! - elongations: a letter repeated three or more times counts once
//!   (`downnnn`, `pleeease`, `sooo`);
//! - invisible characters: every Default_Ignorable_Code_Point (zero-width
//!   characters and joiners, variation selectors, tag characters, fillers)
//!   and every enclosing mark (`҉`) is dropped;
//! - zalgo: combining marks that NFKC could not compose into a letter
//!   (stacks of diacritics from the Latin combining blocks) are dropped;
//! - apostrophes: the characters written for `'` (the typographic `’`, the
//!   modifier letter `ʼ`, primes, the acute accent) are `'`, so "isn’t" is
//!   "isn't";
//! - small capitals: the Latin letters small capital (`ᴛᴡɪᴛᴛᴇʀ ɪs ᴅᴏᴡɴ`),
//!   which NFKC leaves alone, are their ASCII letters, in every word (a
//!   word wholly in small capitals has no Latin letter for the look-alike
//!   fold to go by);
//! - look-alikes: in a word that mixes Latin letters with letters of another
//!   script (`twіtter` with a Cyrillic `і`), each non-Latin letter whose
//!   Unicode confusable skeleton (UTS #39, the `unicode-security` crate) is
//!   one Latin letter becomes that letter. Words wholly in Cyrillic or Greek
//!   are left alone: they are real words (`твиттер`).
//!
//! Hashtags are gathered from everywhere a client may put them: the text, facets and `record.tags`.
//! Pure: no I/O, no clock.

use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory};
use icu_properties::{CodePointMapData, CodePointSetData};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};
use unicode_security::confusable_detection::skeleton;

use crate::Micros;
use crate::source::RawPost;

/// A post ready for matching.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    pub time_us: Micros,
    pub author: String,
    pub uri: String,
    /// De-duplication identity (see [`RawPost::key`]).
    pub key: Option<u64>,
    /// The text as written, kept for alert samples.
    pub original: String,
    /// The normalized text the matcher reads.
    pub text: String,
    /// Declared languages, lower-cased primary subtags (`pt-BR` → `pt`).
    pub langs: Vec<String>,
    /// Normalized hashtags without `#`, each once, in order of appearance.
    pub hashtags: Vec<String>,
}

/// Hashtags read from one post, at most: a person tags a handful, and the
/// frame's size would otherwise be the only bound (a 1 MiB note carries
/// 80,000 tags, each compared with the ones kept).
pub const MAX_HASHTAGS: usize = 64;
/// Characters of a hashtag, at most: a longer one is not read (no
/// service's name and outage word come near it; a discovered name is at
/// most 41 characters).
pub const MAX_HASHTAG_CHARS: usize = 100;
/// Bytes of a source's tag read, at most: room for [`MAX_HASHTAG_CHARS`]
/// characters of four bytes each, and for the look-alikes and elongations
/// (`downnnnn…`) that normalising shortens, many times over.
pub const MAX_RAW_HASHTAG_BYTES: usize = 16 * MAX_HASHTAG_CHARS;
/// Declared languages read from one post, at most.
pub const MAX_LANGS: usize = 8;
/// Characters of a post's text read, at most (defined in `text`, the
/// bottom layer, so a source's decoder can stop reading there too).
pub use crate::text::MAX_TEXT_CHARS;

pub fn normalize(mut raw: RawPost) -> Post {
    // Bytes bound characters: a short text is not counted.
    if raw.text.len() > MAX_TEXT_CHARS
        && let Some((cut, _)) = raw.text.char_indices().nth(MAX_TEXT_CHARS)
    {
        raw.text.truncate(cut);
    }
    // NFKC can make a character many (U+FDFA is 18): the normalized text is
    // bounded too, or 2,000 characters read became 66 KB matched.
    let text = normalize_bounded(&raw.text, MAX_TEXT_CHARS);
    let mut hashtags: Vec<String> = Vec::new();
    let from_text = hashtags_in(&text).map(str::to_owned);
    let from_metadata = raw
        .tags
        .iter()
        // A tag far past the bound is not normalised to find out: folding a
        // source's megabyte tag cost what a megabyte of text would.
        .filter(|tag| tag.len() <= MAX_RAW_HASHTAG_BYTES)
        .map(|tag| normalize_text(tag.trim_start_matches(['#', '＃'])));
    for tag in from_text.chain(from_metadata) {
        if hashtags.len() == MAX_HASHTAGS {
            break;
        }
        if !tag.is_empty() && tag.chars().count() <= MAX_HASHTAG_CHARS {
            push_unique(&mut hashtags, tag);
        }
    }
    let mut langs = Vec::new();
    for primary in raw.langs.iter().filter_map(|tag| language_subtag(tag)) {
        if langs.len() == MAX_LANGS {
            break;
        }
        push_unique(&mut langs, primary);
    }
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

/// The primary language subtag of a declared language (`pt-BR` → `pt`),
/// lower-cased, if it is one: 2 to 8 ASCII letters (BCP 47). Anything
/// else (`"x"`, a number, a sentence, a megabyte) declares no language.
fn language_subtag(tag: &str) -> Option<String> {
    let primary = tag.split(['-', '_']).next()?;
    ((2..=8).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| primary.to_ascii_lowercase())
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// NFKC, lower case, collapsed white space, trimmed; invisible characters
/// dropped; apostrophes, elongations, zalgo marks and mixed-script
/// look-alikes folded (see the module docs).
pub fn normalize_text(text: &str) -> String {
    normalize_bounded(text, usize::MAX)
}

/// [`normalize_text`], stopped after `max_chars` characters of output (at
/// a character boundary): what a post's text becomes. The bound is on the
/// output because NFKC lengthens (`\u{FDFA}` is 18 characters), and
/// stopping there spares folding the rest.
pub fn normalize_bounded(text: &str, max_chars: usize) -> String {
    if text.is_ascii() {
        return collapsed_ascii(text, max_chars);
    }
    let mut out = String::with_capacity(text.len());
    // Before NFKC, which would split an acute accent `´` into a space and a
    // combining mark; what shows nothing goes first, so that a letter and
    // its accent on either side of it still compose.
    let chars = text
        .chars()
        .filter(|&c| !is_ignorable(c))
        .map(fold_apostrophe);
    if is_nfkc_quick(chars.clone()) == IsNormalized::Yes {
        let lower = chars.flat_map(char::to_lowercase).map(fold_small_capital);
        push_collapsed(&mut out, lower, max_chars);
    } else {
        let lower = chars
            .nfkc()
            .flat_map(char::to_lowercase)
            .map(fold_small_capital);
        push_collapsed(&mut out, lower, max_chars);
    }
    // Only letters of the scripts that pass for Latin can be folded: most
    // non-ASCII posts (accents, emoji, CJK) have none and skip the word scan.
    if out.chars().any(passes_for_latin) && has_mixed_word(&out) {
        // Letters folded to Latin can make an elongation the first pass
        // did not see ("doоown": o, Cyrillic о, o), folded here as one
        // written in Latin letters is; only shorter, so within the bound.
        let folded = fold_look_alikes(&out);
        out.clear();
        push_collapsed(&mut out, folded.chars(), max_chars);
    }
    out
}

/// Whether `c` breaks a line: a run of white space holding one becomes
/// `\n`, which ends a sentence (see the module docs).
fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// The characters pushed onto `out`, white space collapsed and elongations
/// folded, until `max_chars` characters are there.
fn push_collapsed(out: &mut String, chars: impl Iterator<Item = char>, max_chars: usize) {
    let mut pushed = 0usize;
    // Pending white space: none, a space, or a line break.
    let mut pending: Option<char> = None;
    // The last letter pushed and how many times in a row.
    let mut run: (char, u8) = ('\0', 0);
    for c in chars {
        if c.is_whitespace() || is_zalgo_mark(c) {
            if is_line_break(c) {
                pending = Some('\n');
            } else if c.is_whitespace() {
                pending.get_or_insert(' ');
            }
            continue;
        }
        if let Some(space) = pending.take()
            && !out.is_empty()
        {
            if pushed >= max_chars.saturating_sub(1) {
                break;
            }
            out.push(space);
            pushed += 1;
            run = (space, 1);
        }
        if c == run.0 {
            run.1 = run.1.saturating_add(1);
        } else {
            run = (c, 1);
        }
        // "downnnn", "pleeease": a letter written three or more times in
        // a row is an elongation and counts once; two stay ("soon", "all").
        if run.1 >= 3 && c.is_alphabetic() {
            if run.1 == 3 {
                out.pop();
                pushed -= 1;
            }
            continue;
        }
        if pushed >= max_chars {
            break;
        }
        out.push(c);
        pushed += 1;
    }
}

/// [`push_collapsed`] for ASCII text, the common case on the firehose,
/// byte by byte: NFKC is the identity on ASCII and there are no marks,
/// invisible characters or look-alikes, so only lower case, white space and
/// elongations remain. The same rules as the general path (a property test
/// compares them); this one runs on nearly every post.
fn collapsed_ascii(text: &str, max_chars: usize) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(text.len().min(max_chars));
    let mut pending: Option<u8> = None;
    let mut run: (u8, u8) = (0, 0);
    for &b in text.as_bytes() {
        if char::from(b).is_whitespace() {
            if is_line_break(char::from(b)) {
                pending = Some(b'\n');
            } else {
                pending.get_or_insert(b' ');
            }
            continue;
        }
        let b = b.to_ascii_lowercase();
        if let Some(space) = pending.take()
            && !out.is_empty()
        {
            if out.len() >= max_chars.saturating_sub(1) {
                break;
            }
            out.push(space);
            run = (space, 1);
        }
        run = if b == run.0 {
            (b, run.1.saturating_add(1))
        } else {
            (b, 1)
        };
        if run.1 >= 3 && b.is_ascii_alphabetic() {
            if run.1 == 3 {
                out.pop();
            }
            continue;
        }
        if out.len() >= max_chars {
            break;
        }
        out.push(b);
    }
    // Every byte pushed is an ASCII byte of `text`, or a space.
    String::from_utf8(out).unwrap_or_default()
}

/// The apostrophe `'` for the characters written in its place: the
/// typographic `’` that phones insert (and its opening twin `‘`), the
/// modifier letter `ʼ`, primes, the acute accent, the full-width `＇`. Each
/// is one whose UTS #39 confusable skeleton is `'` (a test checks it
/// against the `unicode-security` crate's table); the skeleton table's
/// letters (Hebrew yod, Canadian syllabics) and ASCII's backtick, a quote
/// for code, are left alone. Without it "isn’t working" matched no phrase,
/// and "isn’t down" was not a denial.
fn fold_apostrophe(c: char) -> char {
    match c {
        '\u{2018}' // ‘ left single quotation mark
        | '\u{2019}' // ’ right single quotation mark
        | '\u{201B}' // ‛ single high-reversed-9 quotation mark
        | '\u{2032}' // ′ prime
        | '\u{2035}' // ‵ reversed prime
        | '\u{00B4}' // ´ acute accent
        | '\u{1FFD}' // ´ Greek oxia
        | '\u{02B9}' // ʹ modifier letter prime
        | '\u{02BB}' // ʻ modifier letter turned comma
        | '\u{02BC}' // ʼ modifier letter apostrophe
        | '\u{02BD}' // ʽ modifier letter reversed comma
        | '\u{02CA}' // ˊ modifier letter acute accent
        | '\u{02CB}' // ˋ modifier letter grave accent
        | '\u{055A}' // ՚ Armenian apostrophe
        | '\u{A78B}' // Ꞌ Latin capital letter saltillo
        | '\u{A78C}' // ꞌ Latin small letter saltillo
        | '\u{FF07}' // ＇ full-width apostrophe
        => '\'',
        _ => c,
    }
}

/// The Latin letters small capital (`ᴛᴡɪᴛᴛᴇʀ`, the "small caps" fonts of
/// text generators) as their ASCII letters: NFKC leaves them alone, and the
/// look-alike fold only reads words that also hold an ASCII letter, so
/// `ᴛᴡɪᴛᴛᴇʀ ɪs ᴅᴏᴡɴ` matched nothing. Only the plain letters A to Z (by
/// their Unicode names, LATIN LETTER SMALL CAPITAL A…Z; there is none for
/// X), not the barred, turned or reversed ones, which are phonetic symbols.
fn fold_small_capital(c: char) -> char {
    match c {
        '\u{1D00}' => 'a',
        '\u{0299}' => 'b',
        '\u{1D04}' => 'c',
        '\u{1D05}' => 'd',
        '\u{1D07}' => 'e',
        '\u{A730}' => 'f',
        '\u{0262}' => 'g',
        '\u{029C}' => 'h',
        '\u{026A}' => 'i',
        '\u{1D0A}' => 'j',
        '\u{1D0B}' => 'k',
        '\u{029F}' => 'l',
        '\u{1D0D}' => 'm',
        '\u{0274}' => 'n',
        '\u{1D0F}' => 'o',
        '\u{1D18}' => 'p',
        '\u{A7AF}' => 'q',
        '\u{0280}' => 'r',
        '\u{A731}' => 's',
        '\u{1D1B}' => 't',
        '\u{1D1C}' => 'u',
        '\u{1D20}' => 'v',
        '\u{1D21}' => 'w',
        '\u{028F}' => 'y',
        '\u{1D22}' => 'z',
        _ => c,
    }
}

/// Combining marks left after NFKC in the blocks zalgo text is made from.
/// Marks that compose with their letter (`ã`, `ü`, Kana voicing) are gone by
/// then, composed; scripts that need free marks (Thai, Indic, Arabic,
/// Hebrew) use other blocks and are untouched.
fn is_zalgo_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}'
    )
}

/// Whether some word mixes ASCII letters with other letters: the only
/// texts [`fold_look_alikes`] changes, checked without allocating.
fn has_mixed_word(text: &str) -> bool {
    split_words(text).any(|(word, is_word)| {
        is_word
            && word.chars().any(|c| c.is_ascii_alphabetic())
            && word.chars().any(|c| c.is_alphabetic() && !c.is_ascii())
    })
}

/// In words that mix Latin letters with other letters, replaces each
/// non-Latin letter whose confusable skeleton is a single ASCII letter.
fn fold_look_alikes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (word, is_word) in split_words(text) {
        if !is_word {
            out.push_str(word);
            continue;
        }
        let latin = word.chars().any(|c| c.is_ascii_alphabetic());
        let other = word.chars().any(|c| c.is_alphabetic() && !c.is_ascii());
        if !(latin && other) {
            out.push_str(word);
            continue;
        }
        for c in word.chars() {
            out.push(if c.is_ascii() {
                c
            } else {
                latin_look_alike(c).unwrap_or(c)
            });
        }
    }
    out
}

/// Letters of the scripts whose letters pass for Latin ones (Greek,
/// Cyrillic, Armenian, Cherokee, Lisu, phonetic and Latin-extended letters);
/// Kana, Hangul and Han glued to a Latin word are words, not disguises.
fn passes_for_latin(c: char) -> bool {
    matches!(c,
        '\u{0100}'..='\u{02AF}'
        | '\u{0370}'..='\u{058F}'
        | '\u{13A0}'..='\u{13FF}'
        | '\u{1D00}'..='\u{1DBF}'
        | '\u{A4D0}'..='\u{A4FF}'
    )
}

fn latin_look_alike(c: char) -> Option<char> {
    if !passes_for_latin(c) {
        return None;
    }
    let mut buf = [0u8; 4];
    let mut folded = skeleton(c.encode_utf8(&mut buf));
    let first = folded.next()?;
    (folded.next().is_none() && first.is_ascii_alphabetic()).then(|| first.to_ascii_lowercase())
}

/// Pieces of `text` in order, each flagged as a word (letters, digits, `_`)
/// or not.
fn split_words(text: &str) -> impl Iterator<Item = (&str, bool)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let is_word = first.is_alphanumeric() || first == '_';
        let end = rest
            .char_indices()
            .find(|&(_, c)| (c.is_alphanumeric() || c == '_') != is_word)
            .map_or(rest.len(), |(i, _)| i);
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some((piece, is_word))
    })
}

/// Characters that show nothing for matching, dropped from the text the
/// matcher reads: every Default_Ignorable_Code_Point (zero-width
/// characters, joiners, bidirectional controls, variation selectors `\u{FE0F}`,
/// tag characters `\u{E0041}`, Hangul fillers, the Mongolian vowel separator)
/// and every enclosing mark (General_Category Me: `҉`, the keycap `⃣`), by
/// the Unicode Character Database's tables as ICU4X ships them. Put inside
/// a word ("d\u{FE0F}own") they split it into pieces no phrase matches.
pub fn is_ignorable(c: char) -> bool {
    is_invisible(c)
        || c >= '\u{AD}'
            && CodePointMapData::<GeneralCategory>::new().get(c) == GeneralCategory::EnclosingMark
}

/// Every Default_Ignorable_Code_Point (by the same ICU4X table): what an
/// alert's text drops (`alert::format::defang`), save the joiners between
/// two characters beyond ASCII. It dropped a short list (zero-width
/// characters, bidirectional controls, the soft hyphen), and the rest went
/// into chat messages: Hangul fillers that show as blank names, the
/// Mongolian vowel separator, the grapheme joiner, and tag characters,
/// which spell text no one sees. Variation selectors go too (they too
/// can carry hidden bytes): an emoji shows in its default style.
pub fn is_invisible(c: char) -> bool {
    // The first of them is the soft hyphen, U+00AD: ASCII and most of
    // Latin-1 skip the lookup.
    c >= '\u{AD}' && CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
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

    proptest::proptest! {
        /// The ASCII fast path and the general path agree on ASCII text.
        #[test]
        fn the_ascii_path_folds_like_the_general_one(text in "[ -~\t\n\r\x0b\x0c]{0,60}") {
            let mut general = String::new();
            push_collapsed(&mut general, text.chars().map(|c| c.to_ascii_lowercase()), usize::MAX);
            proptest::prop_assert_eq!(collapsed_ascii(&text, usize::MAX), general);
        }

        /// Nothing the matcher reads is a character that shows nothing.
        #[test]
        fn no_ignorable_character_is_left(text in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::char::any(),
                proptest::sample::select(vec![
                    '\u{FE0F}', '\u{E0041}', '\u{0489}', '\u{180E}', '\u{115F}', '\u{200D}',
                    '\u{3164}', '\u{FFA0}', '\u{20E3}', 'a', ' ',
                ]),
            ],
            0..24,
        )) {
            let text: String = text.into_iter().collect();
            let out = normalize_text(&text);
            proptest::prop_assert!(!out.chars().any(is_ignorable), "{:?} -> {:?}", text, out);
        }

        #[test]
        fn elongated_ascii_folds_like_the_general_path(text in "([aAnN ]{1,4}|[xo!]{3,6}){0,12}") {
            let mut general = String::new();
            push_collapsed(&mut general, text.chars().map(|c| c.to_ascii_lowercase()), usize::MAX);
            proptest::prop_assert_eq!(collapsed_ascii(&text, usize::MAX), general);
        }
    }

    #[test]
    fn text_normalization_table() {
        let cases = [
            ("Is Twitter DOWN?", "is twitter down?"),
            // A run of white space is one space, or one line break when it
            // holds one (a line break ends a sentence).
            ("  lots \t of\n\nspace  ", "lots of\nspace"),
            ("Twitter is down \r\n had fun", "twitter is down\nhad fun"),
            ("a\u{2028}b\u{0B}c \u{3000}d", "a\nb\nc d"),
            ("\n\nx\n\n", "x"),
            ("ｄｏｗｎ\u{3000}\nｎｏｗ", "down\nnow"),
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
            // Elongations count once; doubles stay.
            ("why is your website downnnnn", "why is your website down"),
            ("pleeease", "please"),
            ("SOOOO DOWN", "so down"),
            ("soon all good", "soon all good"),
            ("error 5000", "error 5000"),
            // Zalgo: stacked marks go, composed accents stay.
            ("d\u{0336}o\u{0336}w\u{0336}n\u{0336}", "down"),
            (
                "t\u{0301}\u{0302}\u{0303}\u{0304}witter i\u{035C}s down",
                "twitter is down",
            ),
            ("não carrega", "não carrega"),
            ("na\u{0303}o", "não"),
            ("ダウン", "ダウン"),
            // Small capitals are their ASCII letters, in any word.
            ("ᴛᴡɪᴛᴛᴇʀ ɪs ᴅᴏᴡɴ", "twitter is down"),
            ("twitter is ᴅᴏᴡɴ", "twitter is down"),
            ("ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘꞯʀꜱᴛᴜᴠᴡxʏᴢ", "abcdefghijklmnopqrstuvwxyz"),
            // Not the phonetic letters beside them (turned, reversed, barred).
            ("ᴚᴎᴃ", "ᴚᴎᴃ"),
            // Look-alike letters inside Latin words fold to Latin.
            ("tw\u{0456}tter \u{0456}s d\u{043E}wn", "twitter is down"),
            // Bidirectional controls show nothing and split no word.
            ("tw\u{200E}itter d\u{202E}own\u{2069}", "twitter down"),
            ("\u{0456}nstagr\u{0430}m", "instagram"),
            ("disc\u{03BF}rd", "discord"),
            ("\u{0440}aypal d\u{043E}wn", "paypal down"),
            // An elongation the look-alikes make (o, Cyrillic о, o) is
            // folded as one written in Latin letters.
            ("twitter is do\u{043E}own", "twitter is down"),
            ("d\u{043E}\u{043E}\u{043E}wn", "down"),
            // Words wholly in another script are real words: left alone.
            ("твиттер не работает", "твиттер не работает"),
            ("το twitter έπεσε", "το twitter έπεσε"),
            // Kana, Hangul and Han glued to a Latin word are left alone.
            ("twitter落ちた", "twitter落ちた"),
            ("wifi안돼", "wifi안돼"),
            ("discordエラー", "discordエラー"),
            // Apostrophes as phones and keyboards write them are `'`.
            ("Netflix isn’t working", "netflix isn't working"),
            ("I can’t log in", "i can't log in"),
            ("won‘t load", "won't load"),
            ("isnʼt down", "isn't down"),
            ("don′t", "don't"),
            ("isn´t", "isn't"),
            ("ＤＯＮ＇Ｔ", "don't"),
            ("c’est down", "c'est down"),
            ("geht’s nicht", "geht's nicht"),
            ("‘quoted’", "'quoted'"),
            // Letters the confusable table also maps to `'` stay letters.
            ("שלום", "שלום"),
            // Default_Ignorable_Code_Point and enclosing marks show nothing.
            ("twitter is d\u{FE0F}own", "twitter is down"),
            ("twi\u{FE0E}tter is down", "twitter is down"),
            ("twitter is do\u{E0041}wn", "twitter is down"),
            ("twitter is do\u{0489}w\u{0489}n", "twitter is down"),
            ("twitter is d\u{180E}own", "twitter is down"),
            ("twitter is d\u{115F}own", "twitter is down"),
            ("d\u{3164}o\u{FFA0}wn", "down"),
            ("do\u{034F}wn\u{2063}", "down"),
            ("d\u{200D}o\u{200C}wn \u{E0001}\u{E007F}", "down"),
            ("down\u{20DD} \u{A670}now", "down now"),
            ("\u{1D173}do\u{1BCA0}wn", "down"),
            // A letter and its accent either side of one still compose.
            ("na\u{200B}\u{0303}o", "não"),
            // What NFKC does not drop stays: emoji, keycap digits.
            ("1\u{FE0F}\u{20E3} ❤\u{FE0F}", "1 ❤"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_text(input), want, "{input:?}");
        }
    }

    /// Every character folded to `'` is one UTS #39 holds confusable with
    /// it, and the typographic quotes are among them.
    #[test]
    fn apostrophes_are_confusables_of_the_apostrophe() {
        let folded: Vec<char> = (0..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|&c| c != '\'' && fold_apostrophe(c) == '\'')
            .collect();
        for c in &folded {
            let skeleton: String = skeleton(&c.to_string()).collect();
            assert_eq!(skeleton, "'", "U+{:04X}", u32::from(*c));
        }
        for c in ['’', '‘', 'ʼ', '＇'] {
            assert!(folded.contains(&c), "{c}");
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
            key: None,
            text: "Is #TwitterDown  for everyone?".into(),
            langs: vec!["pt-BR".into(), "EN".into()],
            tags: vec!["TwitterDown".into(), "#Outage".into(), "".into()],
        });
        assert_eq!(post.text, "is #twitterdown for everyone?");
        assert_eq!(post.original, "Is #TwitterDown  for everyone?");
        assert_eq!(post.hashtags, vec!["twitterdown", "outage"]);
        assert_eq!(post.langs, vec!["pt", "en"]);
    }

    fn post_with(text: &str, tags: Vec<String>, langs: Vec<String>) -> Post {
        normalize(RawPost {
            time_us: 5,
            author: "did:plc:a".into(),
            uri: String::new(),
            key: None,
            text: text.into(),
            langs,
            tags,
        })
    }

    /// The normalized text is bounded too: NFKC makes one U+FDFA 18
    /// characters, so 2,000 of them were 66 KB for the matcher. Cut at a
    /// character, without a trailing space.
    #[test]
    fn the_normalized_text_is_bounded() {
        let post = |text: String| normalize(RawPost::typed(text, Vec::new()));
        let long = "\u{FDFA}".repeat(MAX_TEXT_CHARS);
        let read = post(long);
        assert_eq!(read.text.chars().count(), MAX_TEXT_CHARS);
        // Three-byte letters that NFKC lengthens, then a cut at a space.
        let ligatures = "ｱ\u{3300} ".repeat(MAX_TEXT_CHARS / 3);
        let read = post(ligatures);
        assert!(read.text.chars().count() <= MAX_TEXT_CHARS);
        assert!(
            !read.text.ends_with(' '),
            "{:?}",
            &read.text[read.text.len() - 8..]
        );
        assert_eq!(normalize_bounded("ab  cd", 3), "ab");
        assert_eq!(normalize_bounded("ab  cd", 4), "ab c");
        assert_eq!(normalize_bounded("ａｂ\n\nｃｄ", 4), "ab\nc");
        assert_eq!(normalize_bounded("ａｂ\n\nｃｄ", 3), "ab");
        assert_eq!(normalize_bounded("downnnnn x", 5), "down");
        assert_eq!(normalize_bounded("ｄｏｗｎｎｎｎ ｘ", 5), "down");
    }

    /// A post's text is read up to `MAX_TEXT_CHARS` characters.
    #[test]
    fn a_post_s_text_is_read_up_to_a_bound() {
        let post = |text: String| normalize(RawPost::typed(text, Vec::new()));
        // Two-byte letters that no folding merges ("üa üa …").
        let text = |chars: usize| "üa ".chars().cycle().take(chars).collect::<String>();
        let long = text(MAX_TEXT_CHARS + 10);
        let read = post(long.clone());
        assert_eq!(read.original, text(MAX_TEXT_CHARS));
        assert!(
            read.text.chars().count() <= MAX_TEXT_CHARS,
            "{}",
            read.text.len()
        );
        assert!(read.text.chars().count() > MAX_TEXT_CHARS - 10);
        let fits = text(MAX_TEXT_CHARS);
        assert_eq!(
            post(fits.clone()).original,
            fits,
            "2,000 characters stay whole"
        );
    }

    /// A stranger chooses how many tags and languages a post declares and
    /// how long they are: the first few are read, the rest are not.
    #[test]
    fn hashtags_and_languages_are_bounded() {
        // 80,000 distinct tags (a 1 MiB note's worth): the first 64 are
        // read, in order, after the text's own.
        let many: Vec<String> = (0..80_000).map(|i| format!("t{i}")).collect();
        let post = post_with("#first is down", many, vec![]);
        assert_eq!(post.hashtags.len(), MAX_HASHTAGS);
        assert_eq!(post.hashtags[0], "first");
        assert_eq!(post.hashtags[1], "t0");
        assert_eq!(
            post.hashtags[MAX_HASHTAGS - 1],
            format!("t{}", MAX_HASHTAGS - 2)
        );
        // Repeats take no place.
        let repeated = vec!["same".to_owned(); 1000];
        let post = post_with("", [repeated, vec!["other".into()]].concat(), vec![]);
        assert_eq!(post.hashtags, ["same", "other"]);
        // Length: 100 characters are read, 101 are not (from the text too).
        // (Alternating letters: a run of one letter folds to one.)
        let fits = "éa".repeat(MAX_HASHTAG_CHARS / 2);
        let too_long = format!("{fits}b");
        let post = post_with(
            &format!("#{too_long} x"),
            vec![too_long.clone(), fits.clone()],
            vec![],
        );
        assert_eq!(post.hashtags, [fits]);
        // A source's tag past MAX_RAW_HASHTAG_BYTES is not normalised to
        // find out whether it folds short: a run of one letter at the
        // bound folds and is read, a run a byte past it is not.
        let within = format!("down{}", "n".repeat(MAX_RAW_HASHTAG_BYTES - 4));
        let past = format!("up{}", "p".repeat(MAX_RAW_HASHTAG_BYTES - 1));
        assert!(normalize_text(&past).chars().count() <= MAX_HASHTAG_CHARS);
        let post = post_with("", vec![past, within.clone()], vec![]);
        assert_eq!(post.hashtags, [normalize_text(&within)]);

        // (declared, read)
        let cases: [(&[&str], &[&str]); 6] = [
            (&["pt-BR", "EN", "en_US"], &["pt", "en"]),
            (&["und", "zh-Hant", "fil"], &["und", "zh", "fil"]),
            // Not a language subtag: too short, too long, not letters.
            (&["x", "123", "e1", "abcdefghi", "ε-λ", ""], &[]),
            (&["is twitter down?"], &[]),
            (
                &["aa", "ab", "ac", "ad", "ae", "af", "ag", "ah", "ai", "aj"],
                &["aa", "ab", "ac", "ad", "ae", "af", "ag", "ah"],
            ),
            (&["en", "en", "en", "fr"], &["en", "fr"]),
        ];
        for (declared, read) in cases {
            let langs = declared.iter().map(|l| (*l).to_owned()).collect();
            assert_eq!(post_with("", vec![], langs).langs, read, "{declared:?}");
        }
        let huge = vec!["e".repeat(1 << 20)];
        assert!(post_with("", vec![], huge).langs.is_empty());
    }
}
