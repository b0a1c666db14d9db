//! Small durable-file helpers for the quorum's data dir: atomic replace
//! (write a temporary file, fsync it, rename, fsync the directory), and the
//! space kept in reserve for a full disk.
//!
//! A quorum that cannot write stops being one, and on a full disk deleting
//! topics (through the quorum) is how space comes back. So each node keeps a
//! preallocated reserve file in its data dir, as Redpanda keeps a ballast
//! file: a write that fails for lack of space releases the reserve and is
//! tried once more. While the reserve is released, the node refuses the
//! commands that only add state (`disk_is_full`), and it takes the reserve
//! back once there is room again.
//! Quorum process, called from the tokio runtime (blocking, small files).
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The reserve file, in a node's data dir.
const RESERVE_FILE: &str = "disk-reserve";
/// The reserve's size bounds; it is 1% of the filesystem between them.
const RESERVE_BYTES_MIN: u64 = 1 << 20;
const RESERVE_BYTES_MAX: u64 = 64 << 20;

/// Replaces `path` with `bytes` so that a crash leaves the old or the new
/// content. On a full disk, with the reserve's room (see the module doc).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    with_reserve(dir, || write_atomic_once(path, bytes))
}

fn write_atomic_once(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path)
}

/// fsyncs the directory holding `path`, so a create or rename in it is durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

/// Runs `write`; if it fails for lack of space and the reserve in `dir` is
/// still there, releases the reserve and runs it once more.
pub fn with_reserve<T>(dir: &Path, mut write: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    match write() {
        Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && release_reserve(dir) => {
            tracing::error!(dir = %dir.display(), "the quorum's disk is full: released its reserved space; it refuses new topics until there is room again");
            write()
        }
        other => other,
    }
}

/// Whether the reserve has been spent: the disk filled up and there has not
/// been room to take the reserve back since.
pub fn disk_is_full(dir: &Path) -> bool {
    !dir.join(RESERVE_FILE).exists()
}

/// Creates (or tops up) the reserve when the disk has room for it and a
/// margin of as much again; false when it could not.
pub fn ensure_reserve(dir: &Path) -> bool {
    use std::os::unix::io::AsRawFd;
    let path = dir.join(RESERVE_FILE);
    let size = reserve_bytes(dir);
    if fs::metadata(&path).is_ok_and(|m| m.len() >= size) {
        return true;
    }
    if fsutil::free_bytes(dir).unwrap_or(0) < size * 2 {
        return false;
    }
    let Ok(file) = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
    else {
        return false;
    };
    // SAFETY: fallocate on an open file descriptor of ours, within i64.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, size as libc::off_t) };
    if rc != 0 || file.sync_all().is_err() {
        // A filesystem without fallocate: write the bytes.
        let zeros = vec![0u8; size as usize];
        let written = (&file).write_all(&zeros).and_then(|_| file.sync_all());
        if written.is_err() {
            drop(file);
            let _ = fs::remove_file(&path);
            return false;
        }
    }
    sync_dir(&path).is_ok()
}

fn release_reserve(dir: &Path) -> bool {
    fs::remove_file(dir.join(RESERVE_FILE)).is_ok()
}

fn reserve_bytes(dir: &Path) -> u64 {
    let total = fsutil::total_bytes(dir).unwrap_or(0);
    (total / 100).clamp(RESERVE_BYTES_MIN, RESERVE_BYTES_MAX)
}

/// Reads `path`, or `None` when it does not exist.
pub fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_meets_a_full_disk_spends_the_reserve_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ensure_reserve(dir.path()), "room for the reserve");
        assert!(!disk_is_full(dir.path()));
        let mut tries = 0;
        let full = || io::Error::from_raw_os_error(libc::ENOSPC);
        let result = with_reserve(dir.path(), || {
            tries += 1;
            if tries == 1 {
                Err(full())
            } else {
                Ok(tries)
            }
        });
        assert_eq!(result.unwrap(), 2, "tried again with the reserve's room");
        assert!(disk_is_full(dir.path()), "the reserve is spent");
        let again = with_reserve(dir.path(), || -> io::Result<()> { Err(full()) });
        assert!(again.is_err(), "no second reserve: the error stands");
        assert!(ensure_reserve(dir.path()), "taken back when there is room");
        assert!(!disk_is_full(dir.path()));
    }
}
