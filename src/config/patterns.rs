//! A patterns folder read from disk (`--patterns DIR`, the config's
//! `patterns`): the files found, read and named at their first byte that
//! is not UTF-8, then handed to the matcher, which does no I/O of its own
//! (it also compiles the catalogue built into the binary).

use std::path::{Path, PathBuf};

use crate::matcher::patterns::{Catalogue, LANG_DIR, SERVICES_FILE};
use crate::matcher::{Matcher, PatternError};

/// The matcher of the patterns in `dir` (same layout as the repository's
/// `patterns/`).
pub fn load_matcher(dir: &Path) -> Result<Matcher, PatternError> {
    Matcher::new(read_catalogue(dir)?)
}

/// Reads `DIR/services.toml` and `DIR/lang/*.toml`.
pub fn read_catalogue(dir: &Path) -> Result<Catalogue, PatternError> {
    let mut files = Vec::new();
    let services = dir.join(SERVICES_FILE);
    // Missing, no service could ever be named: refused like a
    // missing `lang/`, not run with discovered names only.
    if !services.exists() && dir.join(LANG_DIR).is_dir() {
        return Err(PatternError::NoServices {
            dir: dir.to_path_buf(),
        });
    }
    if services.exists() {
        files.push(read(&services)?);
    }
    let lang_dir = dir.join(LANG_DIR);
    if lang_dir.is_dir() {
        let entries = std::fs::read_dir(&lang_dir).map_err(|source| PatternError::Io {
            file: lang_dir.clone(),
            source,
        })?;
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| PatternError::Io {
                file: lang_dir.clone(),
                source,
            })?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") {
                paths.push(path);
            }
        }
        paths.sort();
        for path in paths {
            files.push(read(&path)?);
        }
    }
    if files.is_empty() {
        return Err(PatternError::Empty {
            dir: dir.to_path_buf(),
        });
    }
    let catalogue = Catalogue::from_files(files.into_iter())?;
    if catalogue.languages.is_empty() {
        return Err(PatternError::NoLanguages {
            dir: dir.to_path_buf(),
        });
    }
    Ok(catalogue)
}

/// The largest pattern file read: the built-in `services.toml` is about
/// 150 KB, and a catalogue of 100 times its services about 15 MB.
const MAX_PATTERN_FILE_BYTES: u64 = 64 << 20;

fn read(path: &Path) -> Result<(PathBuf, String), PatternError> {
    let bytes = super::file::read_regular(path, MAX_PATTERN_FILE_BYTES).map_err(|source| {
        PatternError::Io {
            file: path.to_path_buf(),
            source,
        }
    })?;
    let text = String::from_utf8(bytes).map_err(|e| not_utf8(path, e.as_bytes(), &e))?;
    Ok((path.to_path_buf(), text))
}

/// Where the first byte that is not UTF-8 is: its line and its byte in
/// the line, both from 1 (`read_to_string` said only "stream did not
/// contain valid UTF-8", with no place to look).
fn not_utf8(path: &Path, bytes: &[u8], error: &std::string::FromUtf8Error) -> PatternError {
    let at = error.utf8_error().valid_up_to();
    let before = &bytes[..at.min(bytes.len())];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    PatternError::Invalid {
        file: path.to_path_buf(),
        line: before.iter().filter(|&&b| b == b'\n').count() + 1,
        column: at - line_start + 1,
        message: format!(
            "byte 0x{:02x} is not UTF-8 (column counted in bytes)",
            bytes.get(at).copied().unwrap_or(0)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_languages_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let patterns = Path::new(env!("CARGO_MANIFEST_DIR")).join("patterns");
        std::fs::copy(patterns.join(SERVICES_FILE), dir.path().join(SERVICES_FILE)).expect("copy");
        let error = read_catalogue(dir.path()).expect_err("no languages");
        assert!(matches!(error, PatternError::NoLanguages { .. }), "{error}");
        assert!(error.to_string().contains("no `lang/*.toml`"), "{error}");
        // An empty lang folder is the same mistake.
        std::fs::create_dir(dir.path().join(LANG_DIR)).expect("mkdir");
        let error = read_catalogue(dir.path()).expect_err("no languages");
        assert!(matches!(error, PatternError::NoLanguages { .. }), "{error}");
        // One language is enough.
        std::fs::copy(
            patterns.join(LANG_DIR).join("en.toml"),
            dir.path().join(LANG_DIR).join("en.toml"),
        )
        .expect("copy");
        let catalogue = read_catalogue(dir.path()).expect("loads");
        assert_eq!(catalogue.languages.len(), 1);
    }

    #[test]
    fn a_folder_without_services_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let patterns = Path::new(env!("CARGO_MANIFEST_DIR")).join("patterns");
        std::fs::create_dir(dir.path().join(LANG_DIR)).expect("mkdir");
        std::fs::copy(
            patterns.join(LANG_DIR).join("en.toml"),
            dir.path().join(LANG_DIR).join("en.toml"),
        )
        .expect("copy");
        let error = read_catalogue(dir.path()).expect_err("no services");
        assert!(matches!(error, PatternError::NoServices { .. }), "{error}");
        assert!(error.to_string().contains("no `services.toml`"), "{error}");
    }

    /// A pattern file that is not UTF-8 is refused with the line and byte
    /// of its first bad byte.
    #[test]
    fn invalid_utf8_names_line_and_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("xx.toml");
        for (bytes, want) in [
            (&b"lang = \"xx\"\noutage = [\"d\xffown\"]\n"[..], ":2:13:"),
            (&b"\xc3"[..], ":1:1:"),
            (&b"a\nb\n\ncd\x80"[..], ":4:3:"),
        ] {
            std::fs::write(&path, bytes).expect("write");
            let error = read(&path).expect_err("not UTF-8");
            let text = error.to_string();
            assert!(text.contains(want) && text.contains("not UTF-8"), "{text}");
        }
    }

    /// Copies `patterns/` into `dir`, with `edit` applied to `lang/en.toml`.
    fn patterns_copy(dir: &Path, edit: impl Fn(&str) -> String) {
        let patterns = Path::new(env!("CARGO_MANIFEST_DIR")).join("patterns");
        std::fs::create_dir(dir.join(LANG_DIR)).expect("mkdir");
        std::fs::copy(patterns.join(SERVICES_FILE), dir.join(SERVICES_FILE)).expect("copy");
        let en = std::fs::read_to_string(patterns.join(LANG_DIR).join("en.toml")).expect("en");
        std::fs::write(dir.join(LANG_DIR).join("en.toml"), edit(&en)).expect("write");
    }

    /// "Crash" said of an unnamed app is the author's own because the
    /// language file says so (`own_if_unnamed`), not because the code
    /// knows an English word: without the list, the same post is a report
    /// of an unnamed service.
    #[test]
    fn an_unnamed_crash_is_the_authors_own_by_the_language_file() {
        let report = |dir: &Path| {
            let matcher = load_matcher(dir).expect("loads");
            let post = crate::normalize::normalize(crate::source::RawPost::typed(
                "the website keeps crashing".to_owned(),
                Vec::<String>::new(),
            ));
            matcher.classify(&post).is_report()
        };
        let with = tempfile::tempdir().expect("tempdir");
        patterns_copy(with.path(), |en| en.to_owned());
        assert!(!report(with.path()), "own_if_unnamed = [\"crash\"]");
        let without = tempfile::tempdir().expect("tempdir");
        patterns_copy(without.path(), |en| {
            en.lines()
                .filter(|l| !l.starts_with("own_if_unnamed"))
                .collect::<Vec<_>>()
                .join("\n")
        });
        assert!(report(without.path()), "no own_if_unnamed list");
    }
}
