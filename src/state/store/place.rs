//! The state directory a store was opened in, checked at every save: sled
//! keeps writing to its open files whatever becomes of their directory, so
//! a directory removed (or replaced) under a running daemon went unnoticed,
//! every batch after it written to files no longer reachable, until the
//! seal failed at shutdown and the next start began from nothing (found by
//! review: `rm -rf` of the state, 20 s later still "ready", no warning).

use std::path::{Path, PathBuf};

use crate::file_identity::identity;
use crate::state::StoreError;

/// Where a store lives, as it was when opened.
#[derive(Debug)]
pub(super) struct Place {
    path: PathBuf,
    /// The directory's device and inode at open: a directory removed and
    /// made again under the same name is another directory.
    identity: Option<(u64, u64)>,
}

impl Place {
    pub(super) fn of(path: &Path) -> Place {
        Place {
            path: path.to_path_buf(),
            identity: identity(path).ok().flatten(),
        }
    }

    /// An error when the directory is gone, or is no longer the one the
    /// store was opened in. One `stat`, once per saved batch.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        let vanished = |detail: String| StoreError::Vanished {
            path: self.path.clone(),
            detail,
        };
        match identity(&self.path) {
            Ok(now) if now == self.identity => Ok(()),
            Ok(_) => Err(vanished("another directory has taken its place".into())),
            Err(e) => Err(vanished(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_removed_or_replaced_is_noticed() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("state");
        std::fs::create_dir(&dir).expect("mkdir");
        let place = Place::of(&dir);
        assert!(place.check().is_ok(), "as opened");
        std::fs::remove_dir(&dir).expect("rmdir");
        let gone = place.check().expect_err("removed").to_string();
        assert!(gone.contains("was removed or replaced"), "{gone}");
        assert!(gone.contains(&dir.display().to_string()), "{gone}");
        // Made again under its name: another directory. (A placeholder
        // keeps the old inode from being handed straight back.)
        let keep = root.path().join("placeholder");
        std::fs::create_dir(&keep).expect("mkdir");
        std::fs::create_dir(&dir).expect("mkdir again");
        if cfg!(unix) {
            let replaced = place.check().expect_err("replaced").to_string();
            assert!(replaced.contains("another directory"), "{replaced}");
        }
    }
}
