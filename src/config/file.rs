//! Reading a file the user points at (the configuration, a patterns
//! folder's files) only up to a size no real one reaches, and a patterns
//! folder's files only when they are regular files: `std::fs::read` read
//! `/dev/zero` until memory ran out and waited for ever on a FIFO found in
//! the folder. The configuration may come through a pipe
//! (`--config <(envsubst < outagewatch.toml)`), so it is only bounded.

use std::io::Read;
use std::path::Path;

/// The bytes of the regular file at `path`, refused when it is something
/// else (a FIFO, a device, a directory) or holds more than `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    // Opened without blocking, so a FIFO with no writer is told apart
    // instead of waiting for one; the type is checked on what was opened,
    // so nothing can be swapped in between.
    let file = open_nonblocking(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a directory, a FIFO or a device)",
        ));
    }
    read_at_most(file, limit)
}

/// The bytes of whatever `path` names (a pipe too), refused past `limit`.
pub fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    read_at_most(std::fs::File::open(path)?, limit)
}

fn read_at_most(file: std::fs::File, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes, more than any such file needs"),
        ));
    }
    Ok(bytes)
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_within_its_limit_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.toml");
        std::fs::write(&file, b"x = 1\n").expect("write");
        assert_eq!(read_regular(&file, 6).expect("fits"), b"x = 1\n");
        let error = read_regular(&file, 5).expect_err("too long");
        assert!(error.to_string().contains("larger than 5 bytes"), "{error}");
        let error = read_regular(dir.path(), 100).expect_err("a directory");
        assert!(error.to_string().contains("not a regular file"), "{error}");
        let error = read_regular(Path::new("/dev/zero"), 100).expect_err("a device");
        assert!(error.to_string().contains("not a regular file"), "{error}");
        // Bounded only: a device is read up to the limit, then refused.
        let error = read_bounded(Path::new("/dev/zero"), 100).expect_err("endless");
        assert!(
            error.to_string().contains("larger than 100 bytes"),
            "{error}"
        );
        assert_eq!(read_bounded(&file, 6).expect("fits"), b"x = 1\n");
    }

    /// A FIFO nobody writes to is refused at once; reading it waited for
    /// ever.
    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_waiting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("zz.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success(), "mkfifo");
        let error = read_regular(&fifo, 100).expect_err("a FIFO");
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }
}
