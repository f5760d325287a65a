//! Which file a path names: its device and inode, so that two spellings
//! of one file (`a.jsonl`, `./a.jsonl`, a symbolic or hard link to it) are
//! told to be one, as no comparison of the strings could. The state store
//! checks that its directory is still the one it opened; `replay` refuses
//! to write an output into the recording, the configuration or the
//! patterns folder it reads.

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

/// Whether `path` is `dir` or lies inside it, at any depth, once links
/// are followed: a path that does not exist yet is placed by its nearest
/// existing ancestor (`dir/new/x.html` is inside `dir`), so `dir/./x`,
/// `link-to-dir/x` and `dir/sub/../x` are all inside. `false` when `dir`
/// cannot be resolved.
pub fn within(path: &Path, dir: &Path) -> bool {
    let (Ok(dir), Some(path)) = (std::fs::canonicalize(dir), resolved(path)) else {
        return false;
    };
    path.starts_with(dir)
}

/// `path` absolute, links followed: its nearest existing ancestor
/// canonical, the components below it (which do not exist yet) added
/// lexically.
fn resolved(path: &Path) -> Option<std::path::PathBuf> {
    use std::path::Component;
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let mut rest = Vec::new();
    let mut existing = path.as_path();
    let mut base = loop {
        if let Ok(base) = std::fs::canonicalize(existing) {
            break base;
        }
        rest.push(existing.file_name()?.to_owned());
        existing = existing.parent()?;
    };
    // `file_name` is `None` for a path ending in `..`: given up above, so
    // only names (and `.`, which `file_name` skips) remain here.
    for name in rest.into_iter().rev() {
        match Path::new(&name).components().next() {
            Some(Component::Normal(_)) => base.push(name),
            _ => return None,
        }
    }
    Some(base)
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

    #[test]
    fn within_a_folder_at_any_depth_and_by_any_name() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("patterns");
        std::fs::create_dir_all(dir.join("lang")).expect("mkdir");
        std::fs::write(dir.join("lang/en.toml"), "").expect("write");
        assert!(within(&dir, &dir), "the folder itself");
        assert!(within(&dir.join("lang/en.toml"), &dir));
        assert!(within(&dir.join("new.html"), &dir), "not made yet");
        assert!(
            within(&dir.join("new/deeper/r.html"), &dir),
            "nor its folders"
        );
        assert!(within(&dir.join("lang/../x.html"), &dir));
        assert!(within(&tmp.path().join("./patterns/./x"), &dir));
        assert!(!within(&tmp.path().join("patterns/../x.html"), &dir));
        assert!(!within(&tmp.path().join("patterns-old/x.html"), &dir));
        assert!(!within(&tmp.path().join("x.html"), &dir));
        #[cfg(unix)]
        {
            let link = tmp.path().join("link");
            std::os::unix::fs::symlink(&dir, &link).expect("symlink");
            assert!(within(&link.join("x.html"), &dir), "through a link");
        }
        assert!(!within(&dir.join("x"), &tmp.path().join("missing")));
    }
}
