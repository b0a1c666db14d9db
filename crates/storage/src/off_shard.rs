//! Small file writes that must not stall a shard: segment indexes, the
//! producer-state snapshot and the offset checkpoints are prepared on the
//! partition's shard (their bytes taken from its state) and written, each
//! replaced atomically with an fsync, on glommio's blocking thread pool, so
//! that the other partitions of the shard keep being served meanwhile.
use super::StorageError;
use std::path::PathBuf;

/// One small file to replace atomically (`fsutil::write_file_atomically`).
#[derive(Debug)]
pub struct FileWrite {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// What the file is, for the error (`"cannot write index"`).
    pub context: &'static str,
}

impl FileWrite {
    /// Writes it on the calling thread: blocking pool threads and start-up
    /// only.
    pub fn write_here(&self) -> Result<(), StorageError> {
        fsutil::write_file_atomically(&self.path, &self.bytes)
            .map_err(|e| StorageError::io(self.context, &self.path, e))
    }
}

/// Writes `files` in order on the blocking pool; stops at the first error.
pub async fn write_off_shard(files: Vec<FileWrite>) -> Result<(), StorageError> {
    glommio::executor()
        .spawn_blocking(move || files.iter().try_for_each(FileWrite::write_here))
        .await
}

/// Runs `work` (blocking file work that needs more than a write, such as a
/// snapshot's pruning of older ones) on the blocking pool.
pub async fn run_off_shard<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    glommio::executor().spawn_blocking(work).await
}
