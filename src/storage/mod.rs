//! The partition log: segments on O_DIRECT files, their indexes, recovery
//! after a crash, retention, and the in-memory batch cache that Fetch reads.
//!
//! Every `PartitionLog` lives on the shard that owns its partition and is
//! touched by nobody else, so its state sits in a `RefCell` (never borrowed
//! across an `.await`) and needs no lock.
//!
//! Layout of one partition, `<data_dir>/<topic>-<partition>/`:
//! `<base offset, 20 digits>.log` (batches as the producer sent them, with
//! `baseOffset` and `partitionLeaderEpoch` patched), `.index` (sparse relative
//! offset -> position, 8 bytes an entry), `.timeindex` (max timestamp so far ->
//! relative offset, 12 bytes an entry), `recovery-point` and `log-start-offset`.
mod cache;
mod cleaner;
mod index;
mod log;
mod recovery;
mod segment;

pub use index::write_file_atomically;
pub use log::{AppendResult, FetchedRecords, LogOptions, PartitionLog};
pub use recovery::probe_dma;

use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("offset {offset} is outside the log [{log_start}, {high_watermark}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: u64,
        high_watermark: u64,
    },
    #[error("the log is offline after an earlier I/O error")]
    Offline,
    #[error("the partition was deleted")]
    Deleted,
}

impl StorageError {
    pub(crate) fn io(
        context: &'static str,
        path: &Path,
        source: impl Into<std::io::Error>,
    ) -> Self {
        StorageError::Io {
            context,
            path: path.to_path_buf(),
            source: source.into(),
        }
    }
}

/// The directory of one partition's log.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
