//! A language's regular expressions, checked before use: bounded in
//! compiled size, and refused when they could match every post (empty
//! text) or none (a capital letter in lower-cased text). Their own file
//! because these checks are about the regex syntax, not the catalogue.

use regex::Regex;

use crate::matcher::patterns::{Located, PatternError, RegexDef};
use crate::matcher::tables::PhraseKind;

pub(super) fn regex_kind(at: &Located<'_>, def: &RegexDef) -> Result<PhraseKind, PatternError> {
    PhraseKind::from_name(def.category.get_ref()).ok_or_else(|| {
        at.error(
            def.category.span(),
            format!(
                "unknown regex category {:?}; one of: {}",
                def.category.get_ref(),
                PhraseKind::ALL.map(PhraseKind::name).join(", ")
            ),
        )
    })
}

/// The compiled size one pattern-file regex may take (the regex crate's
/// own default is 10 MiB each); the built-in ones need a few KiB.
pub const MAX_REGEX_BYTES: usize = 256 << 10;

/// Pattern-file regexes of all languages, at most: each may take
/// [`MAX_REGEX_BYTES`], and 600 of them made start-up take 13.9 s and
/// 315 MB (the built-in files hold a few dozen: the README says how many,
/// and a test holds it to the files).
pub const MAX_REGEXES: usize = 256;

/// The compiled size of all pattern-file regexes together, at most (the
/// built-in ones fit well within it).
pub const MAX_TOTAL_REGEX_BYTES: usize = 8 << 20;

/// What the catalogue's regexes have taken so far, checked against
/// [`MAX_REGEXES`] and [`MAX_TOTAL_REGEX_BYTES`] as each is compiled.
#[derive(Default)]
pub(super) struct RegexBudget {
    count: usize,
    bytes: usize,
}

impl RegexBudget {
    /// Counts one more regex of `bytes` compiled; the one past a bound is
    /// refused with its file and line.
    fn take(&mut self, at: &Located<'_>, def: &RegexDef, bytes: usize) -> Result<(), PatternError> {
        self.count += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        if self.count > MAX_REGEXES {
            return Err(at.error(
                def.pattern.span(),
                format!("more than {MAX_REGEXES} regular expressions in the pattern files"),
            ));
        }
        if self.bytes > MAX_TOTAL_REGEX_BYTES {
            return Err(at.error(
                def.pattern.span(),
                format!(
                    "the regular expressions of the pattern files take more than {} MiB compiled, with this one",
                    MAX_TOTAL_REGEX_BYTES >> 20
                ),
            ));
        }
        Ok(())
    }
}

/// The compiled size of `pattern` (its NFA, which every engine of the
/// regex crate is built from), for the total's bound.
pub(super) fn compiled_size(pattern: &str) -> Option<usize> {
    let nfa = regex_automata::nfa::thompson::NFA::compiler()
        .configure(
            regex_automata::nfa::thompson::Config::new().nfa_size_limit(Some(MAX_REGEX_BYTES)),
        )
        .build(pattern)
        .ok()?;
    Some(nfa.memory_usage())
}

pub(super) fn compile_regex(
    at: &Located<'_>,
    def: &RegexDef,
    budget: &mut RegexBudget,
) -> Result<Regex, PatternError> {
    let pattern = def.pattern.get_ref();
    let invalid = |why: String| at.error(def.pattern.span(), why);
    // Bounded in compiled size: a few `\w{200}` entries in a 4 KB file
    // took 2 GB and 26 s to load.
    let regex = regex::RegexBuilder::new(pattern)
        .size_limit(MAX_REGEX_BYTES)
        .build()
        .map_err(|e| invalid(format!("invalid regular expression: {e}")))?;
    budget.take(at, def, compiled_size(pattern).unwrap_or(MAX_REGEX_BYTES))?;
    // One that can match no text at all (`''`, `z*`, `\b`) matches in every
    // post: a negation of that kind cancelled every report, silently.
    let parsed = regex_syntax::Parser::new()
        .parse(pattern)
        .map_err(|e| invalid(format!("invalid regular expression: {e}")))?;
    if parsed.properties().minimum_len() == Some(0) {
        return Err(invalid(format!(
            "regular expression {pattern:?} can match empty text, so it would match in every post"
        )));
    }
    // Text is lower-cased before matching: a capital letter that is not
    // case-insensitive (`Down`, `[A-Z]`) can never match, silently.
    if has_capital(&parsed) {
        return Err(invalid(format!(
            "regular expression {pattern:?} has a capital letter, but posts are lower-cased before matching: write it in lower case (or use (?i))"
        )));
    }
    Ok(regex)
}

/// Whether `hir` requires a capital letter somewhere: a literal one, or a
/// class holding a capital ASCII letter without its lower case.
fn has_capital(hir: &regex_syntax::hir::Hir) -> bool {
    use regex_syntax::hir::{Class, HirKind};
    match hir.kind() {
        HirKind::Literal(lit) => String::from_utf8_lossy(&lit.0)
            .chars()
            .any(|c| c.is_uppercase() && !c.is_lowercase()),
        HirKind::Class(Class::Unicode(class)) => ('A'..='Z').any(|c| {
            let has = |c: char| {
                class
                    .ranges()
                    .iter()
                    .any(|r| r.start() <= c && c <= r.end())
            };
            has(c) && !has(c.to_ascii_lowercase())
        }),
        HirKind::Class(Class::Bytes(class)) => (b'A'..=b'Z').any(|c| {
            let has = |c: u8| {
                class
                    .ranges()
                    .iter()
                    .any(|r| r.start() <= c && c <= r.end())
            };
            has(c) && !has(c.to_ascii_lowercase())
        }),
        HirKind::Repetition(rep) => has_capital(&rep.sub),
        HirKind::Capture(cap) => has_capital(&cap.sub),
        HirKind::Concat(subs) | HirKind::Alternation(subs) => subs.iter().any(has_capital),
        HirKind::Empty | HirKind::Look(_) => false,
    }
}
