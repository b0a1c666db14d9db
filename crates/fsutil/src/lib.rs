//! Small files that must survive a crash, and the space left on a
//! filesystem: the two pieces of file handling that the storage, the
//! broker's registry and the quorum's Raft files share. Blocking std I/O:
//! callers on a shard thread use it only for rare, small writes.
use std::path::Path;

/// Replaces `path` with `bytes` so that a crash leaves either the old or the
/// new content: written to a sibling `.tmp`, synced, then renamed over.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)
}

/// Bytes an unprivileged writer may still use on the filesystem of `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = statvfs(dir)?;
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// The size of the filesystem of `dir`, in bytes.
pub fn total_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = statvfs(dir)?;
    Ok((stat.f_blocks as u64).saturating_mul(stat.f_frsize as u64))
}

fn statvfs(dir: &Path) -> std::io::Result<libc::statvfs> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stat` points to memory
    // large enough for one statvfs, which the call fills on success.
    let rc = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised `stat`.
    Ok(unsafe { stat.assume_init() })
}
