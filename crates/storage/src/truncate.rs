//! Cutting a partition's log back to an offset: what a follower does when its
//! tail diverges from a new leader's (found with OffsetForLeaderEpoch), as
//! Kafka's `Log.truncateTo` does.
//!
//! It works on the files of a closed log with blocking std I/O (truncation
//! happens once per leader change, never on the produce path); the caller
//! then opens the log again, and recovery rebuilds the cut segment's indexes
//! and the producer state from what is left. Runs on the partition's owning
//! shard, between `PartitionLog::close` and `PartitionLog::open`.
use super::epochs::LeaderEpochCache;
use super::producer_state::{list_snapshots, remove_snapshot};
use super::recovery::{
    list_segments, open_segment_file, read_checkpoint, read_valid_batch, remove_segment_files,
    segment_path, write_checkpoint, LOG_START_FILE, RECOVERY_POINT_FILE,
};
use super::StorageError;
use std::io::BufReader;
use std::path::Path;

/// Removes every batch of the log in `dir` whose last offset is at or past
/// `offset` (a batch is never split). Returns the new log end offset, which
/// is `offset` when it falls on a batch boundary. When `offset` is at or
/// below the first segment's base, the log is emptied and restarts at `offset`.
pub fn truncate_log_files(dir: &Path, offset: u64) -> Result<u64, StorageError> {
    let bases = list_segments(dir)?;
    let first_base = bases.first().copied().unwrap_or(0);
    let new_end = if bases.is_empty() || offset <= first_base {
        for &base in &bases {
            remove_segment_files(dir, base);
        }
        write_checkpoint(dir, LOG_START_FILE, offset)?;
        offset
    } else {
        let keep: Vec<u64> = bases.iter().copied().filter(|&b| b < offset).collect();
        for &base in bases.iter().filter(|&&b| b >= offset) {
            remove_segment_files(dir, base);
        }
        let last = *keep.last().unwrap_or(&first_base);
        let end = cut_segment(dir, last, offset)?;
        // The cut segment (and its index files, removed here) is scanned
        // again at open: the recovery point must not claim it is flushed.
        for ext in ["index", "timeindex"] {
            let _ = std::fs::remove_file(segment_path(dir, last, ext));
        }
        let recovery_point = read_checkpoint(dir, RECOVERY_POINT_FILE).unwrap_or(0);
        write_checkpoint(dir, RECOVERY_POINT_FILE, recovery_point.min(last))?;
        end
    };
    for snapshot in list_snapshots(dir) {
        if snapshot > new_end {
            remove_snapshot(dir, snapshot);
        }
    }
    let mut epochs = LeaderEpochCache::load(dir);
    if epochs.truncate_from_end(new_end) {
        epochs.save(dir)?;
    }
    Ok(new_end)
}

/// Empties the log in `dir` and makes it start at `offset`: a follower
/// whose log ended before its leader's log start (Kafka's
/// `truncateFullyAndStartAt`).
pub fn restart_log_files_at(dir: &Path, offset: u64) -> Result<(), StorageError> {
    for base in list_segments(dir)? {
        remove_segment_files(dir, base);
    }
    for snapshot in list_snapshots(dir) {
        remove_snapshot(dir, snapshot);
    }
    write_checkpoint(dir, LOG_START_FILE, offset)?;
    write_checkpoint(dir, RECOVERY_POINT_FILE, offset)?;
    LeaderEpochCache::default().save(dir)
}

/// Cuts segment `base` before its first batch that reaches `offset`, or at
/// its first invalid byte. Returns the offset after the last batch kept.
fn cut_segment(dir: &Path, base: u64, offset: u64) -> Result<u64, StorageError> {
    let path = segment_path(dir, base, "log");
    let (file, file_len) = open_segment_file(&path)?;
    let mut reader = BufReader::with_capacity(1 << 20, &file);
    let mut batch = Vec::new();
    let (mut kept_bytes, mut end) = (0u64, base);
    while let Some(header) = read_valid_batch(&mut reader, &mut batch, file_len - kept_bytes, end) {
        if header.last_offset() as u64 >= offset {
            break;
        }
        kept_bytes += header.size as u64;
        end = header.last_offset() as u64 + 1;
    }
    file.set_len(kept_bytes)
        .map_err(|e| StorageError::io("cannot truncate segment", &path, e))?;
    file.sync_all()
        .map_err(|e| StorageError::io("cannot sync segment", &path, e))?;
    Ok(end)
}
