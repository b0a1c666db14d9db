//! The partition log: segments on O_DIRECT files, their indexes, recovery
//! after a crash, retention, the in-memory batch cache that Fetch reads, and
//! the read-ahead that keeps sequential readers of older data off the disk's
//! critical path.
//!
//! Every `PartitionLog` lives on the shard that owns its partition and is
//! touched by nobody else, so its state sits in a `RefCell` (never borrowed
//! across an `.await`) and needs no lock.
//!
//! Layout of one partition, `<data_dir>/<topic>-<partition>/`:
//! `<base offset, 20 digits>.log` (batches as the producer sent them, with
//! `baseOffset` and `partitionLeaderEpoch` patched), `.index` (sparse relative
//! offset -> position, 8 bytes an entry), `.timeindex` (max timestamp so far ->
//! relative offset, 12 bytes an entry), `recovery-point`, `log-start-offset`
//! `<offset, 20 digits>.snapshot` (idempotent-producer state as of that
//! offset, see `producer_state`) and `leader-epoch-checkpoint` (the first
//! offset of each leader epoch, see `epochs`).
mod cache;
mod cleaner;
pub mod disk_space;
pub mod epochs;
mod index;
mod log;
mod off_shard;
mod partition_dir;
mod producer_state;
mod readahead;
mod recovery;
mod segment;
mod truncate;

pub use log::{AppendOutcome, AppendResult, FetchedRecords, LogOptions, PartitionLog, Reader};
pub use partition_dir::{
    claim_partition_dir, partition_dir, remove_retired, retire_partition_dir, sweep,
};
pub use producer_state::ProducerStateError;
pub use readahead::{ReadAheadBudget, SHARD_BUDGET_BYTES};
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
    /// A follower's fetched batch does not start at its log end.
    #[error("replicated batch at offset {got} does not continue the log at {expected}")]
    NonContiguousReplica { expected: u64, got: i64 },
    #[error("the log is offline after an earlier I/O error")]
    Offline,
    /// The data dir's free space is below `log.disk.free.min.bytes`.
    #[error("the disk is full: less than {free_min_bytes} bytes free")]
    DiskFull { free_min_bytes: u64 },
    #[error("the partition was deleted")]
    Deleted,
    /// A producer's batch does not follow its previous one (Kafka's
    /// OUT_OF_ORDER_SEQUENCE_NUMBER).
    #[error("producer {producer_id} sent sequence {got}, expected {expected}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    /// A producer's batch carries an epoch older than the one the partition
    /// knows: a fenced producer (Kafka's INVALID_PRODUCER_EPOCH).
    #[error("producer {producer_id} used epoch {epoch}, older than its current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
}

impl From<ProducerStateError> for StorageError {
    fn from(e: ProducerStateError) -> Self {
        match e {
            ProducerStateError::OutOfOrder {
                producer_id,
                expected,
                got,
            } => StorageError::OutOfOrderSequence {
                producer_id,
                expected,
                got,
            },
            ProducerStateError::InvalidEpoch {
                producer_id,
                epoch,
                current,
            } => StorageError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current,
            },
        }
    }
}

impl StorageError {
    /// Whether the process (EMFILE) or the system (ENFILE) ran out of file
    /// descriptors: a passing condition, retried rather than fatal to a log.
    pub fn is_out_of_descriptors(&self) -> bool {
        let StorageError::Io { source, .. } = self else {
            return false;
        };
        matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
    }

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

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
