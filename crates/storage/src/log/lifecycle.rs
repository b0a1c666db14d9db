//! The life of a [`PartitionLog`], on the shard that owns the log: open
//! (recovering what a crash left behind), truncation and restart (a replica
//! cutting its tail, by closing the log and opening it again), the failure
//! state (writes failed, replaced, deleted) and what each still allows, a
//! clean close, and deletion. Open gives the log its read-ahead stream, on
//! the shard's budget from `LogOptions`; a reopened log keeps the options.
use super::flush;
use super::waiters::ByteWaiters;
use super::{LogOptions, LogState, PartitionLog};
use crate::cache::BatchCache;
use crate::epochs::LeaderEpochCache;
use crate::off_shard::{run_off_shard, write_off_shard};
use crate::producer_state::write_snapshot_bytes;
use crate::readahead::ReadAhead;
use crate::recovery::{checkpoint_file, recover_partition, RECOVERY_POINT_FILE};
use crate::segment::Segment;
use crate::truncate::{restart_log_files_at, truncate_log_files};
use crate::StorageError;
use glommio::sync::Semaphore;
use model::topic_config::TopicConfig;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::rc::Rc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// A write or sync failed (a full disk, a failing device): nothing more
    /// is appended, but what was written before stays readable.
    WritesFailed,
    /// Replaced by a reopened log (truncation): every call fails.
    Offline,
    Deleted,
}

impl LogState {
    /// Ok while the log takes appends and maintenance.
    pub(super) fn check_usable(&self) -> Result<(), StorageError> {
        match self.failure {
            None => Ok(()),
            Some(Failure::WritesFailed | Failure::Offline) => Err(StorageError::Offline),
            Some(Failure::Deleted) => Err(StorageError::Deleted),
        }
    }

    /// Ok while what was written may be read: also after a failed write,
    /// so acknowledged records stay readable on a full disk.
    pub(super) fn check_readable(&self) -> Result<(), StorageError> {
        match self.failure {
            Some(Failure::WritesFailed) => Ok(()),
            _ => self.check_usable(),
        }
    }
}

impl PartitionLog {
    /// Opens (recovering) or creates the log in `dir`.
    pub async fn open(
        dir: &Path,
        topic: &str,
        partition: i32,
        config: TopicConfig,
        options: LogOptions,
    ) -> Result<Rc<PartitionLog>, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io("cannot create", dir, e))?;
        let recovered = recover_partition(dir, options.index_interval_bytes)?;
        if recovered.truncated_bytes > 0 {
            tracing::info!(
                topic,
                partition,
                bytes = recovered.truncated_bytes,
                "recovered log"
            );
        }
        let mut segments = BTreeMap::new();
        for meta in recovered.segments {
            let segment = Segment::open(dir, meta).await?;
            segments.insert(segment.base_offset(), segment);
        }
        if segments.is_empty() {
            let segment = Segment::create(dir, recovered.log_start_offset).await?;
            segments.insert(segment.base_offset(), segment);
        }
        let next_offset = segments
            .values()
            .next_back()
            .map(|s| s.meta.next_offset)
            .unwrap_or(0);
        let epochs = recover_epochs(dir, &recovered.epoch_starts, next_offset)?;
        let state = LogState {
            config,
            segments,
            log_start_offset: recovered.log_start_offset,
            next_offset,
            written_end: next_offset,
            replicated_high_watermark: None,
            durable_offset: 0,
            epochs_unsaved: false,
            pending: VecDeque::new(),
            cache: BatchCache::new(options.cache_bytes),
            data_waiters: Vec::new(),
            consumer_waiters: ByteWaiters::default(),
            follower_waiters: ByteWaiters::default(),
            appended_bytes: 0,
            write_marks: VecDeque::new(),
            failure: None,
            written_producers: recovered.producers.clone(),
            producers: recovered.producers,
            epochs,
            writes: flush::WritePipeline::default(),
        };
        let read_ahead = ReadAhead::new(options.read_ahead.clone());
        let log = Rc::new_cyclic(|me| PartitionLog {
            me: me.clone(),
            topic: topic.to_string(),
            partition,
            dir: dir.to_path_buf(),
            options,
            state: RefCell::new(state),
            sync_lock: Semaphore::new(1),
            cleaned_through: Cell::new(None),
            read_ahead,
        });
        // What recovery kept is on disk but maybe not yet durable.
        log.sync_active().await?;
        Ok(log)
    }

    /// Cuts the log back to `offset` (see `truncate`): closes this log, cuts
    /// its files and opens it again. The caller replaces every handle to the
    /// old log with the returned one; the old one answers `Offline` from now on.
    pub async fn truncate_to(&self, offset: u64) -> Result<Rc<PartitionLog>, StorageError> {
        self.close_for_replacement().await?;
        let dir = self.dir.clone();
        let new_end = run_off_shard(move || truncate_log_files(&dir, offset)).await?;
        tracing::info!(topic = %self.topic, partition = self.partition, offset, new_end, "truncated log");
        self.reopen().await
    }

    /// Empties the log and restarts it at `offset` (see `truncate`), the
    /// same way `truncate_to` replaces it.
    pub async fn restart_at(&self, offset: u64) -> Result<Rc<PartitionLog>, StorageError> {
        self.close_for_replacement().await?;
        let dir = self.dir.clone();
        run_off_shard(move || restart_log_files_at(&dir, offset)).await?;
        tracing::info!(topic = %self.topic, partition = self.partition, offset, "restarted log");
        self.reopen().await
    }

    async fn close_for_replacement(&self) -> Result<(), StorageError> {
        self.close().await?;
        let mut st = self.state.borrow_mut();
        st.failure = Some(Failure::Offline);
        st.cache.clear();
        st.wake_data_waiters();
        Ok(())
    }

    async fn reopen(&self) -> Result<Rc<PartitionLog>, StorageError> {
        let config = self.config();
        PartitionLog::open(
            &self.dir,
            &self.topic,
            self.partition,
            config,
            self.options.clone(),
        )
        .await
    }

    /// Writes, off the shard, what a sealed (or closed) active segment
    /// leaves behind: its indexes and the producer-state snapshot as of
    /// `end`, the segment's end. A snapshot that cannot be written only
    /// costs a longer recovery, so it is logged, not failed.
    pub(super) async fn save_sealed_files(&self, end: u64) -> Result<(), StorageError> {
        let (indexes, snapshot) = {
            let mut st = self.state.borrow_mut();
            assert_eq!(
                st.active().meta.next_offset,
                end,
                "sealing the segment at its end"
            );
            let indexes = st.active_mut().index_files();
            (indexes, st.written_producers.to_snapshot(end))
        };
        write_off_shard(indexes).await?;
        let dir = self.dir.clone();
        let written = run_off_shard(move || write_snapshot_bytes(&dir, end, &snapshot)).await;
        if let Err(e) = written {
            tracing::warn!(topic = %self.topic, partition = self.partition, error = %e, "cannot write a producer-state snapshot");
        }
        Ok(())
    }

    pub(super) fn go_offline(
        &self,
        context: &'static str,
        path: &Path,
        e: std::io::Error,
    ) -> StorageError {
        let error = StorageError::io(context, path, e);
        self.take_offline(context, &error);
        error
    }

    /// Stops the log's writes (unless it already failed or was deleted) and
    /// wakes every waiter, which then sees the failure; reads go on.
    pub(super) fn take_offline(&self, context: &'static str, error: &StorageError) {
        let mut st = self.state.borrow_mut();
        if st.check_usable().is_err() {
            return;
        }
        tracing::error!(topic = %self.topic, partition = self.partition, error = %error, "{context}: the log takes no more writes (what was written stays readable)");
        st.failure = Some(Failure::WritesFailed);
        st.wake_data_waiters();
    }

    /// Whether the log still serves (not offline, not deleted).
    pub fn is_usable(&self) -> bool {
        self.state.borrow().check_usable().is_ok()
    }

    /// Flushes and syncs what is queued, cuts the active file to its logical
    /// size, saves indexes and the recovery point: a clean shutdown.
    pub async fn close(&self) -> Result<(), StorageError> {
        if self.state.borrow().check_usable().is_err() {
            return Ok(());
        }
        self.read_ahead.clear();
        let end = self.state.borrow().next_offset;
        self.wait_written(end, true).await?;
        let (file, size, path) = {
            let st = self.state.borrow();
            let a = st.active();
            (a.file.clone(), a.meta.size, a.log_path())
        };
        file.truncate(size)
            .await
            .map_err(|e| StorageError::io("cannot truncate segment", &path, e))?;
        let (active_base, written_end) = {
            let st = self.state.borrow();
            (st.active().base_offset(), st.active().meta.next_offset)
        };
        self.save_sealed_files(written_end).await?;
        let recovery_point = checkpoint_file(&self.dir, RECOVERY_POINT_FILE, active_base);
        write_off_shard(vec![recovery_point]).await?;
        Ok(())
    }

    /// Marks the log deleted: waiters fail, later calls fail. The caller
    /// removes the directory.
    pub fn mark_deleted(&self) {
        self.read_ahead.clear();
        let mut st = self.state.borrow_mut();
        st.failure = Some(Failure::Deleted);
        st.pending.clear();
        st.cache.clear();
        st.wake_data_waiters();
    }
}

/// The leader-epoch cache at open: the checkpoint, cut to the recovered log
/// end, plus any newer epochs the recovered batch headers carry.
fn recover_epochs(
    dir: &Path,
    epoch_starts: &[(i32, u64)],
    log_end_offset: u64,
) -> Result<LeaderEpochCache, StorageError> {
    let mut epochs = LeaderEpochCache::load(dir);
    let mut changed = epochs.truncate_from_end(log_end_offset);
    for &(epoch, start) in epoch_starts {
        changed |= epochs.assign(epoch, start);
    }
    if changed {
        epochs.save(dir)?;
    }
    Ok(epochs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::testing::*;

    #[test]
    fn leader_epochs_are_remembered_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let log = open(&path, small_segments()).await;
            fill_at_epoch(&log, 2, 0).await;
            fill_at_epoch(&log, 3, 2).await;
            assert_eq!(log.latest_epoch(), Some(2));
            assert_eq!(log.end_offset_for_epoch(0), (0, 6));
            assert_eq!(log.end_offset_for_epoch(1), (0, 6));
            assert_eq!(log.end_offset_for_epoch(2), (2, 15));
            assert_eq!(log.end_offset_for_epoch(3), (-1, -1));
            drop(log);
            // Without a clean close, and without the checkpoint: the batch
            // headers alone give the epochs back.
            let log = open(&path, small_segments()).await;
            assert_eq!(log.end_offset_for_epoch(0), (0, 6));
            drop(log);
            std::fs::remove_file(path.join(crate::epochs::EPOCH_CHECKPOINT_FILE)).unwrap();
            let _ = std::fs::remove_file(path.join(RECOVERY_POINT_FILE));
            let log = open(&path, small_segments()).await;
            assert_eq!(log.end_offset_for_epoch(0), (0, 6));
            assert_eq!(log.end_offset_for_epoch(2), (2, 15));
        });
    }

    #[test]
    fn truncation_cuts_the_tail_across_segments_and_the_log_continues() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let log = open(&path, small_segments()).await;
            fill_at_epoch(&log, 40, 1).await;
            fill_at_epoch(&log, 40, 3).await;
            let segments_before = log.state.borrow().segments.len();
            assert!(segments_before >= 3);
            // 45 is the first offset of a batch; 100 is inside one.
            let log = log.truncate_to(45).await.unwrap();
            assert_eq!(log.log_end_offset(), 45);
            assert_eq!(log.high_watermark(), 45);
            assert!(log.state.borrow().segments.len() < segments_before);
            assert_eq!(read_all(&log, 0).await, (0..45).collect::<Vec<_>>());
            assert_eq!(log.latest_epoch(), Some(1), "epoch 3 started at 120: gone");
            fill_at_epoch(&log, 2, 4).await;
            assert_eq!(read_all(&log, 40).await, (40..51).collect::<Vec<_>>());
            assert_eq!(log.end_offset_for_epoch(1), (1, 45));
            let log = log.truncate_to(49).await.unwrap();
            assert_eq!(log.log_end_offset(), 48, "a batch is never split");
            drop(log);
            let log = open(&path, small_segments()).await;
            assert_eq!(read_all(&log, 0).await, (0..48).collect::<Vec<_>>());
            // Below the first segment: the log empties and restarts there.
            let log = log.truncate_to(0).await.unwrap();
            assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
            fill(&log, 1).await;
            assert_eq!(read_all(&log, 0).await, vec![0, 1, 2]);
        });
    }

    #[test]
    fn reopen_after_close_and_after_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let log = open(&path, small_segments()).await;
            fill(&log, 40).await;
            log.close().await.unwrap();
            drop(log);
            let log = open(&path, small_segments()).await;
            assert_eq!(log.high_watermark(), 120);
            fill(&log, 1).await;
            let active = log.state.borrow().active().log_path();
            drop(log);
            // A crash mid-write: garbage after the last whole batch.
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&active)
                .unwrap();
            f.write_all(&[7u8; 100]).unwrap();
            drop(f);
            let log = open(&path, small_segments()).await;
            assert_eq!(log.high_watermark(), 123);
            assert_eq!(read_all(&log, 0).await, (0..123).collect::<Vec<_>>());
            fill(&log, 1).await;
            assert_eq!(read_all(&log, 120).await, (120..126).collect::<Vec<_>>());
        });
    }

    #[test]
    fn producer_state_survives_close_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let log = open(&path, small_segments()).await;
            produce_in_sequence(&log, 80).await;
            assert!(log.state.borrow().segments.len() >= 3, "segments rolled");
            log.close().await.unwrap();
            drop(log);
            let snapshots = crate::producer_state::list_snapshots(&path);
            assert_eq!(snapshots.last(), Some(&240), "a snapshot at the log end");
            let log = open(&path, small_segments()).await;
            assert_eq!(duplicate_of(send(&log, 9, 0, 237, 3)), 237);
            assert_eq!(duplicate_of(send(&log, 9, 0, 225, 3)), 225);
            // Older than the last five batches: no longer known as a duplicate.
            assert!(send(&log, 9, 0, 0, 3).is_err());
            assert_eq!(appended_at(send(&log, 9, 0, 240, 3)), 240);
            log.close().await.unwrap();
        });
    }

    #[test]
    fn producer_state_is_rebuilt_after_a_crash_and_without_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let log = open(&path, small_segments()).await;
            produce_in_sequence(&log, 80).await;
            drop(log); // no close: only the snapshots written at rolls exist
            let log = open(&path, small_segments()).await;
            assert_eq!(log.high_watermark(), 240);
            assert_eq!(duplicate_of(send(&log, 9, 0, 237, 3)), 237);
            assert_eq!(appended_at(send(&log, 9, 0, 240, 3)), 240);
            log.wait_written(243, true).await.unwrap();
            drop(log);
            // Every snapshot corrupt: the whole log is replayed instead.
            let snapshots = crate::producer_state::list_snapshots(&path);
            assert!(!snapshots.is_empty());
            for offset in snapshots {
                let file = crate::producer_state::snapshot_path(&path, offset);
                std::fs::write(file, b"TMPS\0\x01 not a snapshot").unwrap();
            }
            let log = open(&path, small_segments()).await;
            assert_eq!(duplicate_of(send(&log, 9, 0, 240, 3)), 240);
            assert_eq!(duplicate_of(send(&log, 9, 0, 228, 3)), 228);
            assert_eq!(appended_at(send(&log, 9, 0, 243, 3)), 243);
            log.close().await.unwrap();
        });
    }

    #[test]
    fn a_snapshot_past_a_torn_log_end_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let log = open(&path, small_segments()).await;
            produce_in_sequence(&log, 80).await;
            let active = log.state.borrow().active().log_path();
            log.close().await.unwrap();
            drop(log);
            // The last batch is torn after the clean close (a bad disk).
            let len = std::fs::metadata(&active).unwrap().len();
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&active)
                .unwrap();
            f.set_len(len - 5).unwrap();
            drop(f);
            let log = open(&path, small_segments()).await;
            assert_eq!(log.high_watermark(), 237);
            assert!(!crate::producer_state::snapshot_path(&path, 240).exists());
            assert_eq!(duplicate_of(send(&log, 9, 0, 234, 3)), 234);
            assert_eq!(appended_at(send(&log, 9, 0, 237, 3)), 237);
            log.close().await.unwrap();
        });
    }
}
