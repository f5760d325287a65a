//! Which file a path names: its device and inode, so that two spellings
//! of one file (`a.jsonl`, `./a.jsonl`, a symbolic or hard link to it) are
//! told to be one, as no comparison of the strings could. The state store
//! checks that its directory is still the one it opened; `replay` refuses
//! to write an output into the recording it reads.

use std::path::Path;

/// The device and inode of what `path` names (links followed); `None`
/// where the platform has no such pair.
#[cfg(unix)]
pub fn identity(path: &Path) -> std::io::Result<Option<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok(Some((meta.dev(), meta.ino())))
}

/// Elsewhere only whether it is there.
#[cfg(not(unix))]
pub fn identity(path: &Path) -> std::io::Result<Option<(u64, u64)>> {
    std::fs::metadata(path).map(|_| None)
}

/// Whether `a` and `b` name one file. Two that exist are compared by
/// device and inode (elsewhere than Unix by canonical path, which misses
/// hard links); two that do not exist yet (two outputs) by their folder's
/// canonical path and their name.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (identity(a), identity(b)) {
        (Ok(Some(a)), Ok(Some(b))) => a == b,
        (Ok(None), Ok(None)) => match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        },
        (Err(_), Err(_)) => matches!((to_be(a), to_be(b)), (Some(a), Some(b)) if a == b),
        _ => false,
    }
}

/// Where a file not made yet will be: its folder's canonical path and its
/// name.
fn to_be(path: &Path) -> Option<std::path::PathBuf> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    Some(std::fs::canonicalize(dir).ok()?.join(path.file_name()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_under_any_name_and_no_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.jsonl");
        std::fs::write(&file, "{}\n").expect("write");
        let dotted = dir.path().join(".").join("a.jsonl");
        assert!(same_file(&file, &dotted));
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&file, &link).expect("symlink");
            assert!(same_file(&file, &link));
            let hard = dir.path().join("hard");
            std::fs::hard_link(&file, &hard).expect("hard link");
            assert!(same_file(&file, &hard));
        }
        let other = dir.path().join("b.jsonl");
        std::fs::write(&other, "{}\n").expect("write");
        assert!(!same_file(&file, &other));
        // A path that names nothing yet is not an existing file…
        let missing = dir.path().join("missing");
        assert!(!same_file(&file, &missing));
        // …but is the file another spelling of it will make.
        assert!(same_file(&missing, &dir.path().join(".").join("missing")));
        assert!(!same_file(&missing, &dir.path().join("other")));
    }
}
