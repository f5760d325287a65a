//! The pattern catalogue: services and per-language phrase lists, read from
//! TOML files that people edit by hand (documented in `patterns/README.md`).
//!
//! The files in the repository's `patterns/` folder are compiled into the
//! binary, so it works with no files around; `--patterns DIR` reads another
//! folder of the same layout. Every mistake is reported with the file, the
//! line and the column, because the person fixing it has the file open.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// File name of the service catalogue inside a patterns folder.
pub const SERVICES_FILE: &str = "services.toml";
/// Folder (inside a patterns folder) holding one `<lang>.toml` per language.
pub const LANG_DIR: &str = "lang";

/// The patterns shipped in the binary: (path relative to `patterns/`, contents).
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "services.toml",
        include_str!("../../patterns/services.toml"),
    ),
    ("lang/en.toml", include_str!("../../patterns/lang/en.toml")),
    ("lang/es.toml", include_str!("../../patterns/lang/es.toml")),
    ("lang/pt.toml", include_str!("../../patterns/lang/pt.toml")),
    ("lang/fr.toml", include_str!("../../patterns/lang/fr.toml")),
    ("lang/de.toml", include_str!("../../patterns/lang/de.toml")),
    ("lang/it.toml", include_str!("../../patterns/lang/it.toml")),
    ("lang/ja.toml", include_str!("../../patterns/lang/ja.toml")),
    ("lang/ko.toml", include_str!("../../patterns/lang/ko.toml")),
    ("lang/nl.toml", include_str!("../../patterns/lang/nl.toml")),
    ("lang/ru.toml", include_str!("../../patterns/lang/ru.toml")),
];

/// A pattern file that cannot be used, located precisely.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot read {file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{dir}: no `{SERVICES_FILE}` and no `{LANG_DIR}/*.toml` files: is this a patterns folder?"
    )]
    Empty { dir: PathBuf },
    #[error(
        "{dir}: no `{LANG_DIR}/*.toml` files: without a language's phrases no post can be a report (copy `{LANG_DIR}/` from the built-in patterns)"
    )]
    NoLanguages { dir: PathBuf },
    #[error(
        "{dir}: no `{SERVICES_FILE}`: without the catalogue no catalogued service can be reported (copy `{SERVICES_FILE}` from the built-in patterns)"
    )]
    NoServices { dir: PathBuf },
}

/// Everything the matcher is built from.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    pub services: Vec<ServiceDef>,
    /// The services file and its text, for errors found after parsing.
    pub services_file: PathBuf,
    pub services_source: String,
    pub languages: Vec<LanguageDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDef {
    pub id: Spanned<String>,
    pub name: String,
    pub category: Category,
    pub aliases: Vec<Spanned<String>>,
    #[serde(default)]
    pub ambiguous: Vec<Spanned<String>>,
    #[serde(default)]
    pub context: Vec<Spanned<String>>,
    #[serde(default)]
    pub hashtags: Vec<Spanned<String>>,
    #[serde(default)]
    pub domains: Vec<Spanned<String>>,
    #[serde(default)]
    pub errors: Vec<Spanned<String>>,
    /// The service's own accounts (brand and support: `@AskAcme`,
    /// `@Acme_Support`), without `@`: a post mentioning one names the
    /// service, and a post addressed to one complains to it.
    #[serde(default)]
    pub handles: Vec<Spanned<String>>,
}

/// What kind of service: used in documentation and for filtering sinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Social,
    Messaging,
    Email,
    Cloud,
    Cdn,
    Devtools,
    Ai,
    Gaming,
    Bank,
    Payments,
    Streaming,
    Music,
    Isp,
    Mobile,
    Productivity,
    Shopping,
    Transport,
    Other,
}

/// One language's phrase lists. The meaning of each list is fixed by the
/// matcher (see `patterns/README.md`); the words are the language's own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageDef {
    pub lang: Spanned<String>,
    #[serde(default)]
    pub outage: Vec<Spanned<String>>,
    #[serde(default)]
    pub weak: Vec<Spanned<String>>,
    #[serde(default)]
    pub boost: Vec<Spanned<String>>,
    #[serde(default)]
    pub cancel: Vec<Spanned<String>>,
    #[serde(default)]
    pub market: Vec<Spanned<String>>,
    #[serde(default)]
    pub past: Vec<Spanned<String>>,
    #[serde(default)]
    pub now: Vec<Spanned<String>>,
    #[serde(default)]
    pub negation: Vec<Spanned<String>>,
    #[serde(default)]
    pub local: Vec<Spanned<String>>,
    #[serde(default)]
    pub maintenance: Vec<Spanned<String>>,
    #[serde(default)]
    pub recovery: Vec<Spanned<String>>,
    #[serde(default)]
    pub target: Vec<Spanned<String>>,
    #[serde(default)]
    pub notice: Vec<Spanned<String>>,
    #[serde(default)]
    pub negator: Vec<Spanned<String>>,
    #[serde(default)]
    pub hypothetical: Vec<Spanned<String>>,
    /// Words that make a failure phrase the author's own when no service
    /// is named near it: "the app crashes on start" is the author's app.
    #[serde(default)]
    pub own_if_unnamed: Vec<Spanned<String>>,
    /// Second-person possessives ("your"): in a post addressed to an
    /// account, a `target` thing after one is that account's ("@acme the
    /// Seat Map page of your site is broken" is acme's site, however near
    /// another capitalised name stands).
    #[serde(default)]
    pub yours: Vec<Spanned<String>>,
    /// Other spellings of parts of phrases, `[from, to]`: every phrase of
    /// every list of the language holding `from` is also listed with `to`
    /// in its place (all combinations, when a phrase holds several). People
    /// drop apostrophes (`can't` → `cant`) and write verbs in kana
    /// (`落ちた` → `おちた`); one line here spares a twin of every phrase.
    #[serde(default)]
    pub spellings: Vec<[Spanned<String>; 2]>,
    #[serde(default)]
    pub hashtag_suffixes: Vec<Spanned<String>>,
    #[serde(default)]
    pub hashtag_prefixes: Vec<Spanned<String>>,
    #[serde(default)]
    pub regex: Vec<RegexDef>,
    /// Where this language was read from, for errors found after parsing.
    #[serde(skip)]
    pub file: PathBuf,
    #[serde(skip)]
    pub source: String,
}

/// A regular expression for a form no literal can express (`down 5%`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexDef {
    pub category: Spanned<String>,
    pub pattern: Spanned<String>,
}

/// A located error inside an already parsed file.
pub(crate) struct Located<'a> {
    pub file: &'a Path,
    pub source: &'a str,
}

impl Located<'_> {
    /// `file:line:column` of a byte offset, for a message naming a second
    /// place.
    pub fn place(&self, offset: usize) -> String {
        let (line, column) = line_column(self.source, offset);
        format!("{}:{line}:{column}", self.file.display())
    }

    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> PatternError {
        let (line, column) = line_column(self.source, span.start);
        PatternError::Invalid {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

impl Catalogue {
    /// The catalogue compiled into the binary.
    pub fn embedded() -> Result<Catalogue, PatternError> {
        let files = EMBEDDED
            .iter()
            .map(|(name, text)| (Path::new("patterns").join(name), (*text).to_owned()));
        Catalogue::from_files(files)
    }

    /// The catalogue in these files (path, text): `services.toml` at the
    /// top, every other one a language. Reading them is the caller's (the
    /// matcher does no I/O): [`crate::config::patterns`].
    pub fn from_files(
        files: impl Iterator<Item = (PathBuf, String)>,
    ) -> Result<Catalogue, PatternError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Services {
            service: Vec<ServiceDef>,
        }
        let mut catalogue = Catalogue::default();
        for (file, source) in files {
            // Only the top-level services.toml is the catalogue: a
            // `lang/services.toml` replaced it, silently.
            let in_lang_dir = file
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|d| d == LANG_DIR);
            let is_services = !in_lang_dir && file.file_name().is_some_and(|n| n == SERVICES_FILE);
            let parse_error = |e: toml::de::Error| {
                Located {
                    file: &file,
                    source: &source,
                }
                .error(e.span().unwrap_or(0..0), e.message().trim().to_owned())
            };
            if is_services {
                let parsed: Services = toml::from_str(&source).map_err(parse_error)?;
                catalogue.services = parsed.service;
                catalogue.services_file = file;
                catalogue.services_source = source;
            } else {
                let mut lang: LanguageDef = toml::from_str(&source).map_err(parse_error)?;
                lang.file = file;
                lang.source = source;
                catalogue.languages.push(lang);
            }
        }
        Ok(catalogue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbé = [\n  \"x\" ]";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, text.find('x').expect("x")), (3, 4));
    }

    #[test]
    fn embedded_list_matches_the_patterns_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("patterns");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir.join(LANG_DIR))
            .expect("patterns/lang exists")
            .filter_map(|e| e.ok())
            .map(|e| format!("lang/{}", e.file_name().to_string_lossy()))
            .filter(|name| name.ends_with(".toml"))
            .collect();
        on_disk.push(SERVICES_FILE.to_owned());
        on_disk.sort();
        let mut embedded: Vec<String> = EMBEDDED.iter().map(|(n, _)| (*n).to_owned()).collect();
        embedded.sort();
        assert_eq!(
            embedded, on_disk,
            "every file in patterns/ must be listed in EMBEDDED"
        );
    }

    /// README's Limits say how many regexes the built-in files hold (it
    /// said 42 while they held 45): a `[[regex]]` added or removed
    /// without the README fails here.
    #[test]
    fn the_readme_says_how_many_regexes_the_built_in_files_hold() {
        let catalogue = Catalogue::embedded().expect("the built-in patterns");
        let held: usize = catalogue.languages.iter().map(|l| l.regex.len()).sum();
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let said = "the built-in files hold ";
        let at = readme.find(said).expect("README says how many regexes") + said.len();
        let number: String = readme[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        assert_eq!(
            number.parse::<usize>().ok(),
            Some(held),
            "README: {said}{number}"
        );
    }

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let files = [(
            PathBuf::from("p/lang/xx.toml"),
            "lang = \"xx\"\noutage = [\"down\",\n  oops]\n".to_owned(),
        )];
        let err = Catalogue::from_files(files.into_iter()).expect_err("must fail");
        let text = err.to_string();
        assert!(text.starts_with("p/lang/xx.toml:3:3:"), "{text}");
    }

    /// Only the top-level services.toml is the catalogue: one in `lang/`
    /// is read as a language file (and refused), not as the catalogue.
    #[test]
    fn only_the_top_level_services_file_is_the_catalogue() {
        let files = [
            (
                PathBuf::from("p/services.toml"),
                "[[service]]\nid = \"a\"\nname = \"A\"\ncategory = \"social\"\naliases = [\"x\"]\n"
                    .to_owned(),
            ),
            (
                PathBuf::from("p/lang/services.toml"),
                "[[service]]\nid = \"b\"\nname = \"B\"\ncategory = \"social\"\naliases = [\"x\"]\n"
                    .to_owned(),
            ),
        ];
        let error = Catalogue::from_files(files.into_iter()).expect_err("not a language file");
        assert!(
            error.to_string().starts_with("p/lang/services.toml:"),
            "{error}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let files = [(
            PathBuf::from("p/lang/xx.toml"),
            "lang = \"xx\"\noutages = [\"down\"]\n".to_owned(),
        )];
        let err = Catalogue::from_files(files.into_iter()).expect_err("must fail");
        let text = err.to_string();
        assert!(
            text.contains("xx.toml:2:1") && text.contains("outages"),
            "{text}"
        );
    }
}
