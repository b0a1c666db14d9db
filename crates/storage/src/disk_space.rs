//! The free space of a shard's data directory, and the floor below which
//! its logs take no more appends (`log.disk.free.min.bytes`).
//!
//! A full disk must not be met by a write: ENOSPC in the middle of a segment
//! write fails the log, and the quorum and the admin API need room to delete
//! topics, which is how space comes back. So appends are refused
//! (KAFKA_STORAGE_ERROR, retriable for the client) while the free space is
//! below the floor, and accepted again as soon as it is above.
//!
//! Asking the filesystem (statvfs) costs a system call, so the answer is
//! sampled at most every `SAMPLE_INTERVAL` and the bytes appended since are
//! subtracted from it: at any rate of appends the estimate errs on the safe
//! side. One per shard, shared by its logs; runs on that shard only.
use std::cell::Cell;
use std::path::{Path, PathBuf};

pub use fsutil::{free_bytes, total_bytes};
use std::time::{Duration, Instant};

/// How old a free-space sample may be before it is taken again.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    /// Appends are refused below this many free bytes.
    free_min_bytes: u64,
    /// When the last sample was taken, and the free bytes it found.
    sample: Cell<Option<(Instant, u64)>>,
    /// Bytes appended since the last sample.
    appended_since: Cell<u64>,
}

impl DiskSpace {
    pub fn new(dir: &Path, free_min_bytes: u64) -> DiskSpace {
        DiskSpace {
            dir: dir.to_path_buf(),
            free_min_bytes,
            sample: Cell::new(None),
            appended_since: Cell::new(0),
        }
    }

    /// Whether `bytes` more may be appended without going below the floor.
    /// Counts them as appended when it says yes.
    pub fn reserve(&self, bytes: usize) -> bool {
        let free = self.estimated_free_bytes();
        let wanted = bytes as u64;
        if free.saturating_sub(wanted) < self.free_min_bytes {
            return false;
        }
        self.appended_since.set(self.appended_since.get() + wanted);
        true
    }

    /// The floor, in bytes.
    pub fn free_min_bytes(&self) -> u64 {
        self.free_min_bytes
    }

    fn estimated_free_bytes(&self) -> u64 {
        let now = Instant::now();
        let fresh = self
            .sample
            .get()
            .filter(|(at, _)| now.duration_since(*at) < SAMPLE_INTERVAL);
        let sampled = match fresh {
            Some((_, free)) => free,
            None => {
                // A filesystem that cannot say is treated as roomy: the
                // write itself then reports any failure.
                let free = free_bytes(&self.dir).unwrap_or(u64::MAX);
                self.sample.set(Some((now, free)));
                self.appended_since.set(0);
                free
            }
        };
        sampled.saturating_sub(self.appended_since.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_stop_at_the_floor_and_count_against_the_sample() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0 && total_bytes(dir.path()).unwrap() >= free);
        let roomy = DiskSpace::new(dir.path(), 0);
        assert!(roomy.reserve(1 << 20));
        let full = DiskSpace::new(dir.path(), u64::MAX);
        assert!(!full.reserve(1), "nothing fits above a floor of everything");
        // A floor just below the free space: the first appends fit, and the
        // ones that would cross it do not, within one sample.
        let tight = DiskSpace::new(dir.path(), free.saturating_sub(100 << 20));
        assert!(tight.reserve(40 << 20));
        assert!(
            !tight.reserve(80 << 20),
            "40 + 80 MiB would cross the floor"
        );
    }
}
