//! The leader-epoch cache of one partition: for each leader epoch that wrote
//! to the log, the offset of its first batch. It answers OffsetForLeaderEpoch
//! ("where does epoch E end in your log?"), which is how a follower finds the
//! point where its log diverges from a new leader's after a failover and
//! truncates there instead of keeping records the new leader never had.
//!
//! It lives inside `PartitionLog` on the partition's owning shard and is
//! persisted as `leader-epoch-checkpoint` in the partition directory, in the
//! same text shape Apache Kafka uses (`0`, a count, then `epoch offset`
//! lines). A new epoch is rare (one per leader change), so every change is
//! written with a blocking fsync'd atomic replace before the batch that opens
//! the epoch is queued.
use super::off_shard::FileWrite;
use super::StorageError;
use std::path::{Path, PathBuf};

pub const EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;
/// The checkpoint format version (Kafka's CURRENT_VERSION).
const CHECKPOINT_VERSION: u32 = 0;
/// A bound on entries kept: far more leader changes than a partition sees
/// between two retention passes; the oldest entries go first.
const ENTRIES_MAX: usize = 10_000;

/// One epoch and the first offset it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeaderEpochCache {
    /// Ascending in both epoch and start offset.
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Notes that `epoch` writes from `start_offset`. Returns whether the
    /// cache changed (a newer epoch than any known). Older or equal epochs
    /// are ignored, as Kafka ignores them.
    pub fn assign(&mut self, epoch: i32, start_offset: u64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return false;
        }
        // An entry cannot start below the previous one's start.
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        if self.entries.len() > ENTRIES_MAX {
            self.entries.remove(0);
        }
        true
    }

    /// Kafka's `endOffsetFor`: the largest epoch at or below `requested` and
    /// the offset where it ended (the start of the next epoch, or
    /// `log_end_offset` if it is the latest). Returns the undefined pair when
    /// `requested` is newer than any epoch here.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: u64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset as i64);
        }
        let higher = self.entries.iter().position(|e| e.epoch > requested);
        let Some(higher) = higher else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        let end = self.entries[higher].start_offset as i64;
        match higher.checked_sub(1) {
            Some(floor) => (self.entries[floor].epoch, end),
            None => (requested, end),
        }
    }

    /// Forgets epochs that start at or after `end_offset` (the log was cut there).
    pub fn truncate_from_end(&mut self, end_offset: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        before != self.entries.len()
    }

    /// Loads the checkpoint of `dir`; a missing or unreadable file gives an
    /// empty cache (the log's batch headers are the fallback).
    pub fn load(dir: &Path) -> LeaderEpochCache {
        let path = checkpoint_path(dir);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return LeaderEpochCache::default();
        };
        match parse_checkpoint(&text) {
            Some(cache) => cache,
            None => {
                tracing::warn!(file = %path.display(), "ignoring an unreadable leader-epoch checkpoint");
                LeaderEpochCache::default()
            }
        }
    }

    /// Writes the checkpoint on the calling thread (start-up, truncation on
    /// the blocking pool).
    pub fn save(&self, dir: &Path) -> Result<(), StorageError> {
        self.checkpoint_file(dir).write_here()
    }

    /// The checkpoint as it stands, to write off the shard.
    pub fn checkpoint_file(&self, dir: &Path) -> FileWrite {
        let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        FileWrite {
            path: checkpoint_path(dir),
            bytes: text.into_bytes(),
            context: "cannot write leader-epoch checkpoint",
        }
    }
}

fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(EPOCH_CHECKPOINT_FILE)
}

fn parse_checkpoint(text: &str) -> Option<LeaderEpochCache> {
    let mut lines = text.lines();
    if lines.next()?.trim().parse::<u32>().ok()? != CHECKPOINT_VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut cache = LeaderEpochCache::default();
    for line in lines.take(count.min(ENTRIES_MAX)) {
        let mut fields = line.split_whitespace();
        let epoch: i32 = fields.next()?.parse().ok()?;
        let start_offset: u64 = fields.next()?.parse().ok()?;
        cache.assign(epoch, start_offset);
    }
    (cache.entries.len() == count.min(ENTRIES_MAX)).then_some(cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, u64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::default();
        for &(epoch, start) in entries {
            assert!(c.assign(epoch, start));
        }
        c
    }

    #[test]
    fn end_offsets_follow_kafka() {
        let c = cache(&[(1, 0), (3, 10), (6, 25)]);
        // The latest epoch ends at the log end.
        assert_eq!(c.end_offset_for(6, 40), (6, 40));
        // An epoch that wrote ends where the next one starts.
        assert_eq!(c.end_offset_for(3, 40), (3, 25));
        assert_eq!(c.end_offset_for(1, 40), (1, 10));
        // An epoch that never wrote: the largest below it, ending where the
        // next one starts.
        assert_eq!(c.end_offset_for(4, 40), (3, 25));
        assert_eq!(c.end_offset_for(2, 40), (1, 10));
        // Older than all: the requested epoch, ending at the first start.
        assert_eq!(c.end_offset_for(0, 40), (0, 0));
        // Newer than all, or undefined: undefined.
        assert_eq!(c.end_offset_for(7, 40), (-1, -1));
        assert_eq!(c.end_offset_for(-1, 40), (-1, -1));
    }

    #[test]
    fn older_epochs_are_ignored_and_truncation_forgets_the_tail() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        assert!(!c.assign(2, 30));
        assert!(!c.assign(3, 30));
        assert!(c.truncate_from_end(10));
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 1,
                start_offset: 0
            }]
        );
        assert!(!c.truncate_from_end(10));
        // A new epoch starting where an old entry started replaces it.
        assert!(c.assign(4, 0));
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 4,
                start_offset: 0
            }]
        );
    }

    #[test]
    fn checkpoint_round_trips_and_garbage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(&[(0, 0), (2, 7), (5, 100)]);
        c.save(dir.path()).unwrap();
        assert_eq!(LeaderEpochCache::load(dir.path()), c);
        std::fs::write(dir.path().join(EPOCH_CHECKPOINT_FILE), "0\n3\n1 x\n").unwrap();
        assert_eq!(
            LeaderEpochCache::load(dir.path()),
            LeaderEpochCache::default()
        );
        std::fs::write(dir.path().join(EPOCH_CHECKPOINT_FILE), "0\n2\n1 5\n").unwrap();
        assert_eq!(
            LeaderEpochCache::load(dir.path()),
            LeaderEpochCache::default()
        );
    }
}
