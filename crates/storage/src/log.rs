//! `PartitionLog`: one partition's log on its owning shard.
//!
//! The write path is group commit. `append` (synchronous) validates nothing
//! itself: it takes an already validated batch, assigns offsets by patching
//! the header, and queues it. `wait_written` then makes sure a flush covers the
//! batch: one flusher at a time takes every queued batch, copies them behind
//! the segment's partial tail block into one aligned DMA buffer, writes it, and
//! (for acks=all under the default policy) calls fdatasync once for all of
//! them. The high watermark is the end of what has been written, so a fetch
//! never sees bytes that a crash could take back.
//!
//! Idempotent producers: `append` checks a batch's producer id, epoch and
//! sequence against the partition's producer state and records it in the same
//! synchronous step, so two in-flight batches of one producer cannot race and
//! a queued (not yet written) batch is a valid predecessor. A second copy of
//! the state follows what is written; it is what snapshots save, when a
//! segment is sealed and when the log is closed.
mod flush;

use super::cache::BatchCache;
use super::cleaner::{clean_segments, cleaned_path, CleanedSegment, SealedSegment};
use super::disk_space::DiskSpace;
use super::epochs::LeaderEpochCache;
use super::off_shard::{run_off_shard, write_off_shard};
use super::producer_state::{
    write_snapshot_bytes, BatchMeta, ProducerBatch, ProducerStateMap, SequenceCheck,
};
use super::readahead::ReadAhead;
use super::recovery::{
    checkpoint_file, recover_partition, remove_segment_files, segment_path, LOG_START_FILE,
    RECOVERY_POINT_FILE,
};
use super::segment::Segment;
use super::truncate::{restart_log_files_at, truncate_log_files};
use super::{now_ms, StorageError};
use bytes::Bytes;
use futures::channel::oneshot;
use glommio::io::DmaFile;
use glommio::sync::Semaphore;
use model::topic_config::{FlushPolicy, ProduceSettings, TopicConfig};
use std::cell::{Cell, RefCell};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use wire::batch::{BatchHeader, BatchIter, HeaderStamp, BATCH_HEADER_LEN};
use wire::records::{decompressed_bytes_max, open_records, record_timestamp};

/// Most bytes one partition read returns (beyond a single larger first
/// batch), whatever the client asks, so a fetch cannot make the broker load
/// a whole segment into memory.
const READ_MAX_BYTES: usize = 16 << 20;
/// Most writes a replicated log remembers the bytes of while consumers
/// cannot see them yet (for long polls' byte counts).
const WRITE_MARKS_MAX: usize = 1024;
/// Bytes read at a time when walking batch headers in a segment.
const SCAN_CHUNK_BYTES: u64 = 64 << 10;

/// Settings of the log that come from the broker, not the topic.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub index_interval_bytes: u32,
    pub cache_bytes: usize,
    pub flush_policy: FlushPolicy,
    /// Most writes of one log in flight at once (`log.writes.in.flight`).
    pub writes_in_flight: usize,
    /// The shard's free-space floor for appends (none: never refused).
    pub disk_space: Option<Rc<DiskSpace>>,
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    pub base_offset: u64,
    /// Offset after the batch's last record.
    pub end_offset: u64,
    pub log_start_offset: u64,
    /// The stored batch's `maxTimestamp` (for a duplicate, the original's):
    /// the broker's append time on a LogAppendTime topic.
    pub max_timestamp: i64,
}

/// What `append` did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Queued for writing at these offsets.
    Appended(AppendResult),
    /// A producer's retry of a batch already in the log (or queued): nothing
    /// was stored, and these are the original batch's offsets. The answer
    /// still waits until the original is written, as Kafka's delayed produce
    /// waits for the original's offsets.
    Duplicate(AppendResult),
}

impl AppendOutcome {
    pub fn result(&self) -> &AppendResult {
        match self {
            AppendOutcome::Appended(r) | AppendOutcome::Duplicate(r) => r,
        }
    }
}

/// Whole batches answered to a fetch, with the partition's bounds.
#[derive(Debug, Clone)]
pub struct FetchedRecords {
    pub records: Bytes,
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

/// Who reads: consumers stop at the high watermark, followers at the
/// leader's written end (they are how the high watermark moves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Consumer,
    Follower,
}

struct PendingBatch {
    header: BatchHeader,
    bytes: Bytes,
}

/// Long polls waiting for a byte count to reach their thresholds, lowest
/// threshold first.
#[derive(Default)]
struct ByteWaiters {
    heap: BinaryHeap<Reverse<ByteWaiter>>,
}

impl ByteWaiters {
    fn push(&mut self, threshold: u64, wake: oneshot::Sender<()>) {
        // Long polls that timed out dropped their receivers: forget them.
        self.heap.retain(|Reverse(w)| !w.wake.is_canceled());
        self.heap.push(Reverse(ByteWaiter { threshold, wake }));
    }

    /// Wakes the waiters whose threshold `bytes` reached.
    fn wake_reached(&mut self, bytes: u64) {
        while self.heap.peek().is_some_and(|w| w.0.threshold <= bytes) {
            if let Some(Reverse(waiter)) = self.heap.pop() {
                let _ = waiter.wake.send(());
            }
        }
    }

    fn wake_all(&mut self) {
        for Reverse(waiter) in self.heap.drain() {
            let _ = waiter.wake.send(());
        }
    }
}

/// A long poll waiting for a byte count to reach `threshold`, ordered by
/// threshold alone.
struct ByteWaiter {
    threshold: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for ByteWaiter {
    fn eq(&self, other: &Self) -> bool {
        self.threshold == other.threshold
    }
}

impl Eq for ByteWaiter {}

impl PartialOrd for ByteWaiter {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByteWaiter {
    fn cmp(&self, other: &Self) -> Ordering {
        self.threshold.cmp(&other.threshold)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// A write or sync failed (a full disk, a failing device): nothing more
    /// is appended, but what was written before stays readable.
    WritesFailed,
    /// Replaced by a reopened log (truncation): every call fails.
    Offline,
    Deleted,
}

struct LogState {
    config: TopicConfig,
    segments: BTreeMap<u64, Segment>,
    log_start_offset: u64,
    /// The offset the next appended batch gets (log end offset).
    next_offset: u64,
    /// Everything below is written to a segment file on this broker (not
    /// necessarily synced: see `durable_offset`). Invariant:
    /// `durable_offset <= written_end <= next_offset`.
    written_end: u64,
    /// The high watermark the ISR has reached, as replication last set it:
    /// consumers read no further. `None` until this broker's role gives one.
    /// Consumers read up to `high_watermark()`, the lower of this and
    /// `written_end`.
    replicated_high_watermark: Option<u64>,
    /// Everything below has been fdatasync'd.
    durable_offset: u64,
    /// The epoch cache changed since its checkpoint was last written: the
    /// next write takes the checkpoint along, ahead of its batches.
    epochs_unsaved: bool,
    pending: VecDeque<PendingBatch>,
    cache: BatchCache,
    data_waiters: Vec<oneshot::Sender<()>>,
    /// Consumers' long polls waiting for `visible_bytes` to reach a
    /// threshold, and followers' waiting for `appended_bytes` to (a failure
    /// or a leadership change wakes them all).
    consumer_waiters: ByteWaiters,
    follower_waiters: ByteWaiters,
    /// Bytes of every batch written since the log was opened.
    appended_bytes: u64,
    /// In a replicated log, `(end offset, appended_bytes)` after each write
    /// that consumers may not see yet (and the newest one they may): how
    /// many bytes a consumer can see, for long polls. Bounded.
    write_marks: VecDeque<(u64, u64)>,
    failure: Option<Failure>,
    /// Producer state including queued batches: what `append` checks against.
    producers: ProducerStateMap,
    /// Producer state of the written batches only: what snapshots save.
    written_producers: ProducerStateMap,
    /// The first offset of each leader epoch (OffsetForLeaderEpoch).
    epochs: LeaderEpochCache,
    /// Writes planned, in flight and committed (flush.rs).
    writes: flush::WritePipeline,
}

impl LogState {
    /// Ok while the log takes appends and maintenance.
    fn check_usable(&self) -> Result<(), StorageError> {
        match self.failure {
            None => Ok(()),
            Some(Failure::WritesFailed | Failure::Offline) => Err(StorageError::Offline),
            Some(Failure::Deleted) => Err(StorageError::Deleted),
        }
    }

    /// Ok while what was written may be read: also after a failed write,
    /// so acknowledged records stay readable on a full disk.
    fn check_readable(&self) -> Result<(), StorageError> {
        match self.failure {
            Some(Failure::WritesFailed) => Ok(()),
            _ => self.check_usable(),
        }
    }

    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn wake_data_waiters(&mut self) {
        for w in self.data_waiters.drain(..) {
            let _ = w.send(());
        }
        self.consumer_waiters.wake_all();
        self.follower_waiters.wake_all();
    }

    /// Counts a write of `bytes` that ends at `end_offset`, before the
    /// written end moves there.
    fn record_write(&mut self, end_offset: u64, bytes: u64) {
        if self.replicated_high_watermark.is_some() {
            if self.write_marks.is_empty() {
                // Where the bytes stood before: consumers may be below it.
                let before = (self.written_end, self.appended_bytes);
                self.write_marks.push_back(before);
            }
            self.write_marks
                .push_back((end_offset, self.appended_bytes + bytes));
            if self.write_marks.len() > WRITE_MARKS_MAX {
                self.write_marks.pop_front();
            }
        }
        self.appended_bytes += bytes;
    }

    /// After a write: every data waiter, and the long polls whose byte
    /// threshold the written bytes reached (the others sleep on).
    fn wake_after_write(&mut self) {
        for w in self.data_waiters.drain(..) {
            let _ = w.send(());
        }
        self.follower_waiters.wake_reached(self.appended_bytes);
        self.consumer_waiters.wake_reached(self.visible_bytes());
    }

    /// After the high watermark limit moved: every data waiter, and the
    /// consumers' long polls whose threshold the visible bytes reached.
    fn wake_after_limit_moved(&mut self) {
        for w in self.data_waiters.drain(..) {
            let _ = w.send(());
        }
        self.consumer_waiters.wake_reached(self.visible_bytes());
    }

    /// The bytes written that `reader` may read (see `readable_bytes`).
    fn readable_bytes(&self, reader: Reader) -> u64 {
        match reader {
            Reader::Consumer => self.visible_bytes(),
            Reader::Follower => self.appended_bytes,
        }
    }

    /// Of `appended_bytes`, those a consumer may read (below the visible
    /// end): exact while the marks reach back that far, else an estimate.
    fn visible_bytes(&self) -> u64 {
        let visible = self.visible_end();
        if visible >= self.written_end {
            return self.appended_bytes;
        }
        let below = self
            .write_marks
            .iter()
            .rev()
            .find(|(end, _)| *end <= visible);
        match (below, self.write_marks.front()) {
            (Some((_, bytes)), _) | (None, Some((_, bytes))) => *bytes,
            (None, None) => self.appended_bytes,
        }
    }

    /// Forgets the marks consumers have passed, but the newest of them.
    fn prune_write_marks(&mut self) {
        let visible = self.visible_end();
        while self
            .write_marks
            .get(1)
            .is_some_and(|(end, _)| *end <= visible)
        {
            self.write_marks.pop_front();
        }
        if self.replicated_high_watermark.is_none() {
            self.write_marks.clear();
        }
    }

    fn out_of_range(&self, offset: i64) -> StorageError {
        StorageError::OffsetOutOfRange {
            offset,
            log_start: self.log_start_offset,
            high_watermark: self.visible_end(),
        }
    }

    /// The high watermark clients see: written here, and reached by the
    /// ISR.
    fn visible_end(&self) -> u64 {
        self.replicated_high_watermark
            .map_or(self.written_end, |limit| limit.min(self.written_end))
    }

    /// The offsets' order, checked wherever one of them moves: what is
    /// synced was written, what is written was appended, and the log starts
    /// at or before its end.
    fn assert_offsets_ordered(&self) {
        assert!(
            self.durable_offset <= self.written_end
                && self.written_end <= self.next_offset
                && self.log_start_offset <= self.next_offset,
            "log offsets out of order: start {} durable {} written {} next {}",
            self.log_start_offset,
            self.durable_offset,
            self.written_end,
            self.next_offset
        );
    }

    /// Where a read of `offset` starts: the segment that holds it, or, when
    /// compaction emptied the first segments below it, the first one after.
    fn segment_holding(&self, offset: u64) -> Option<SegmentCursor> {
        if let Some((_, segment)) = self.segments.range(..=offset).next_back() {
            let position = segment.meta.position_for(offset);
            return Some(SegmentCursor::at(segment, position));
        }
        let (_, segment) = self.segments.range(offset..).next()?;
        Some(SegmentCursor::at(segment, 0))
    }

    /// The start of the segment after the one based at `base_offset`.
    fn segment_after(&self, base_offset: u64) -> Option<SegmentCursor> {
        use std::ops::Bound::{Excluded, Unbounded};
        let (_, segment) = self
            .segments
            .range((Excluded(base_offset), Unbounded))
            .next()?;
        Some(SegmentCursor::at(segment, 0))
    }

    fn read_bound(&self, reader: Reader) -> u64 {
        match reader {
            Reader::Consumer => self.visible_end(),
            Reader::Follower => self.written_end,
        }
    }
}

/// A read position in one segment: its file, a batch boundary to scan
/// from, and its logical end.
struct SegmentCursor {
    file: Rc<DmaFile>,
    base_offset: u64,
    position: u64,
    end: u64,
}

impl SegmentCursor {
    fn at(segment: &Segment, position: u64) -> SegmentCursor {
        SegmentCursor {
            file: segment.file.clone(),
            base_offset: segment.base_offset(),
            position,
            end: segment.meta.size,
        }
    }
}

pub struct PartitionLog {
    pub topic: String,
    pub partition: i32,
    dir: PathBuf,
    options: LogOptions,
    state: RefCell<LogState>,
    /// This log, for the detached tasks that write it.
    me: Weak<PartitionLog>,
    /// One fdatasync at a time.
    sync_lock: Semaphore,
    /// Base offset of the newest sealed segment at the last compaction.
    cleaned_through: Cell<Option<u64>>,
    /// The segment chunk that a sequential reader will fetch next.
    read_ahead: ReadAhead,
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
        let log = Rc::new_cyclic(|me| PartitionLog {
            me: me.clone(),
            topic: topic.to_string(),
            partition,
            dir: dir.to_path_buf(),
            options,
            state: RefCell::new(state),
            sync_lock: Semaphore::new(1),
            cleaned_through: Cell::new(None),
            read_ahead: ReadAhead::default(),
        });
        // What recovery kept is on disk but maybe not yet durable.
        log.sync_active().await?;
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> TopicConfig {
        self.state.borrow().config.clone()
    }

    /// Sets the batch cache's budget (the shard shares its budget among its logs).
    pub fn set_cache_capacity(&self, capacity_bytes: usize) {
        self.state.borrow_mut().cache.set_capacity(capacity_bytes);
    }

    /// What every produce checks: the topic's `max.message.bytes`, and
    /// whether it is compacted (records need keys).
    pub fn produce_limits(&self) -> (i32, bool) {
        let st = self.state.borrow();
        (st.config.max_message_bytes, st.config.cleanup_compact)
    }

    /// What produce reads of the topic's config (see `ProduceSettings`).
    pub fn produce_settings(&self) -> ProduceSettings {
        self.state.borrow().config.produce_settings()
    }

    pub fn set_config(&self, config: TopicConfig) {
        self.state.borrow_mut().config = config;
    }

    /// The high watermark clients see (see `LogState::visible_end`).
    pub fn high_watermark(&self) -> u64 {
        self.state.borrow().visible_end()
    }

    /// The end of what is written to this broker's segments.
    pub fn written_end(&self) -> u64 {
        self.state.borrow().written_end
    }

    /// The high watermark replication last set, if it set one.
    pub fn replicated_high_watermark(&self) -> Option<u64> {
        self.state.borrow().replicated_high_watermark
    }

    /// Sets the high watermark the ISR reached (`None`: none known). Long
    /// polls and acks=all waiters wake when it moves.
    pub fn set_replicated_high_watermark(&self, limit: Option<u64>) {
        let mut st = self.state.borrow_mut();
        if st.replicated_high_watermark != limit {
            st.replicated_high_watermark = limit;
            st.prune_write_marks();
            st.wake_after_limit_moved();
        }
    }

    pub fn log_start_offset(&self) -> u64 {
        self.state.borrow().log_start_offset
    }

    /// Bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.state
            .borrow()
            .segments
            .values()
            .map(|s| s.meta.size)
            .sum()
    }

    /// Assigns offsets to a validated batch and queues it for writing, unless
    /// its producer state refuses it or finds it a duplicate. `header` is the
    /// batch as it is to be stored: its attributes, `maxTimestamp` and CRC
    /// win over those of `batch` (a LogAppendTime stamp, written in with the
    /// offsets). The caller then awaits `wait_written(outcome.result().end_offset, ...)`.
    pub fn append(
        &self,
        batch: &Bytes,
        header: &BatchHeader,
        leader_epoch: i32,
    ) -> Result<AppendOutcome, StorageError> {
        self.append_slice(batch, header, leader_epoch, true)
    }

    /// `append`, saying whether `batch` shares its buffer with other
    /// partitions' batches (a produce request with several partitions): the
    /// cache then takes its own copy once the batch is written, so it does
    /// not keep the whole request in memory.
    pub fn append_slice(
        &self,
        batch: &Bytes,
        header: &BatchHeader,
        leader_epoch: i32,
        shares_buffer: bool,
    ) -> Result<AppendOutcome, StorageError> {
        let mut st = self.state.borrow_mut();
        st.check_usable()?;
        if let Some(disk) = &self.options.disk_space {
            if !disk.reserve(batch.len()) {
                return Err(StorageError::DiskFull {
                    free_min_bytes: disk.free_min_bytes(),
                });
            }
        }
        let producer = ProducerBatch::of(header);
        if let Some(p) = &producer {
            if let SequenceCheck::Duplicate(original) = st.producers.check(p)? {
                return Ok(AppendOutcome::Duplicate(AppendResult {
                    base_offset: original.base_offset,
                    end_offset: original.last_offset + 1,
                    log_start_offset: st.log_start_offset,
                    max_timestamp: original.max_timestamp,
                }));
            }
        }
        let base_offset = st.next_offset;
        let end_offset = base_offset + header.last_offset_delta as u64 + 1;
        if st.epochs.assign(leader_epoch, base_offset) {
            // Written off the shard before the batch that opens the epoch.
            st.epochs_unsaved = true;
        }
        // No copy here: the offsets are written into the batch as it is copied
        // into the DMA buffer, and into the cache's copy when it is first read.
        let bytes = batch.clone();
        let mut header = *header;
        header.base_offset = base_offset as i64;
        header.leader_epoch = leader_epoch;
        if let Some(p) = &producer {
            st.producers.record(p, BatchMeta::of(p, &header));
        }
        st.cache.push_slice(
            base_offset,
            end_offset - 1,
            leader_epoch,
            Some(HeaderStamp::of(&header)),
            bytes.clone(),
            shares_buffer,
        );
        let max_timestamp = header.max_timestamp;
        st.pending.push_back(PendingBatch { header, bytes });
        st.next_offset = end_offset;
        st.assert_offsets_ordered();
        Ok(AppendOutcome::Appended(AppendResult {
            base_offset,
            end_offset,
            log_start_offset: st.log_start_offset,
            max_timestamp,
        }))
    }

    /// Queues a batch a follower fetched from its leader: its offsets and
    /// leader epoch are the leader's and must continue this log exactly.
    /// Producer state and the epoch cache follow it as they would on the leader.
    pub fn append_replicated(
        &self,
        batch: &Bytes,
        header: &BatchHeader,
    ) -> Result<AppendResult, StorageError> {
        let mut st = self.state.borrow_mut();
        st.check_usable()?;
        let base_offset = header.base_offset.max(0) as u64;
        if base_offset < st.next_offset {
            return Err(StorageError::NonContiguousReplica {
                expected: st.next_offset,
                got: header.base_offset,
            });
        }
        let end_offset = header.last_offset() as u64 + 1;
        if st.epochs.assign(header.leader_epoch, base_offset) {
            // Written off the shard before the batch that opens the epoch.
            st.epochs_unsaved = true;
        }
        st.producers.replay(header);
        // The batch is a slice of the whole fetch answer: the cache copies it
        // once written, so it does not pin the answer.
        let epoch = header.leader_epoch;
        st.cache.push_slice(
            base_offset,
            end_offset - 1,
            epoch,
            None,
            batch.clone(),
            true,
        );
        st.pending.push_back(PendingBatch {
            header: *header,
            bytes: batch.clone(),
        });
        st.next_offset = end_offset;
        st.assert_offsets_ordered();
        Ok(AppendResult {
            base_offset,
            end_offset,
            log_start_offset: st.log_start_offset,
            max_timestamp: header.max_timestamp,
        })
    }

    /// The offset the next batch gets (the log end offset, queued batches included).
    pub fn log_end_offset(&self) -> u64 {
        self.state.borrow().next_offset
    }

    /// The newest leader epoch that wrote to this log.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.state.borrow().epochs.latest_epoch()
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` and the
    /// offset where it ended in this log (Kafka's semantics, see `epochs`).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let st = self.state.borrow();
        st.epochs.end_offset_for(epoch, st.next_offset)
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

    /// Whether the flush policy wants fdatasync before acknowledging `acks`.
    pub fn needs_sync(&self, acks: i16) -> bool {
        match self.options.flush_policy {
            FlushPolicy::Always => true,
            FlushPolicy::AcksAll => acks == -1,
            FlushPolicy::Never => false,
        }
    }

    /// Saves the producer state of the written batches as of `offset` (the
    /// log end of what is written). A failure only costs a longer replay at
    /// the next start, so it is logged, not returned.
    /// Writes, off the shard, what a sealed (or closed) active segment
    /// leaves behind: its indexes and the producer-state snapshot as of
    /// `end`, the segment's end. A snapshot that cannot be written only
    /// costs a longer recovery, so it is logged, not failed.
    async fn save_sealed_files(&self, end: u64) -> Result<(), StorageError> {
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

    fn go_offline(&self, context: &'static str, path: &Path, e: std::io::Error) -> StorageError {
        let error = StorageError::io(context, path, e);
        self.take_offline(context, &error);
        error
    }

    /// Stops the log's writes (unless it already failed or was deleted) and
    /// wakes every waiter, which then sees the failure; reads go on.
    fn take_offline(&self, context: &'static str, error: &StorageError) {
        let mut st = self.state.borrow_mut();
        if st.check_usable().is_err() {
            return;
        }
        tracing::error!(topic = %self.topic, partition = self.partition, error = %error, "{context}: the log takes no more writes (what was written stays readable)");
        st.failure = Some(Failure::WritesFailed);
        st.wake_data_waiters();
    }

    /// A receiver that fires when the high watermark next moves (or the log
    /// fails), for Fetch long polls.
    pub fn subscribe(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.state.borrow_mut();
        // Long polls that timed out dropped their receivers: forget them, so an
        // idle partition polled for hours does not collect senders.
        st.data_waiters.retain(|w| !w.is_canceled());
        st.data_waiters.push(tx);
        rx
    }

    /// A receiver that fires once the bytes `reader` may read
    /// (`readable_bytes`) reach `threshold`, or the log fails, or its
    /// leadership changes: for Fetch long polls that wait for `min_bytes`.
    pub fn subscribe_bytes(&self, reader: Reader, threshold: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.state.borrow_mut();
        if threshold <= st.readable_bytes(reader) || st.check_usable().is_err() {
            let _ = tx.send(());
            return rx;
        }
        let waiters = match reader {
            Reader::Consumer => &mut st.consumer_waiters,
            Reader::Follower => &mut st.follower_waiters,
        };
        waiters.push(threshold, tx);
        rx
    }

    /// Bytes of every batch written since the log was opened (only grows).
    pub fn appended_bytes(&self) -> u64 {
        self.state.borrow().appended_bytes
    }

    /// Bytes written since the log was opened that `reader` may read: all
    /// of them for a follower, those below the high watermark it sees for a
    /// consumer. What a long poll counts toward its `min_bytes`.
    pub fn readable_bytes(&self, reader: Reader) -> u64 {
        self.state.borrow().readable_bytes(reader)
    }

    /// Whether the log still serves (not offline, not deleted).
    pub fn is_usable(&self) -> bool {
        self.state.borrow().check_usable().is_ok()
    }

    /// Wakes every waiter (a leadership change: long polls answer anew).
    pub fn wake_waiters(&self) {
        self.state.borrow_mut().wake_data_waiters();
    }

    /// A consumer's read: whole batches starting with the one that holds
    /// `offset`, up to `max_bytes` (or the first batch whatever its size, if
    /// `at_least_one`), below the high watermark.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        at_least_one: bool,
    ) -> Result<FetchedRecords, StorageError> {
        self.read_for(Reader::Consumer, offset, max_bytes, at_least_one)
            .await
    }

    /// `read` for either kind of reader (see `Reader`).
    pub async fn read_for(
        &self,
        reader: Reader,
        offset: i64,
        max_bytes: usize,
        at_least_one: bool,
    ) -> Result<FetchedRecords, StorageError> {
        let max_bytes = max_bytes.min(READ_MAX_BYTES);
        let (mut cursor, bound, high_watermark, log_start_offset) = {
            let mut st = self.state.borrow_mut();
            st.check_readable()?;
            let (bound, start) = (st.read_bound(reader), st.log_start_offset);
            let visible = st.visible_end();
            // As in Kafka, only an offset past the log end is out of range:
            // one between the high watermark and the log end reads nothing
            // (a consumer whose position a new leader has not confirmed yet).
            if offset < start as i64 || offset > st.next_offset.max(bound) as i64 {
                return Err(st.out_of_range(offset));
            }
            let result = |records| FetchedRecords {
                records,
                high_watermark: visible,
                log_start_offset: start,
            };
            let offset = offset as u64;
            if offset >= bound {
                return Ok(result(Bytes::new()));
            }
            if let Some(records) = st.cache.read(offset, bound, max_bytes, at_least_one) {
                return Ok(result(records));
            }
            let Some(cursor) = st.segment_holding(offset) else {
                return Err(st.out_of_range(offset as i64));
            };
            (cursor, bound, visible, start)
        };
        // A replicated log's segments hold more than the ISR has: a consumer's
        // records stop at the high watermark seen above.
        let replicated = self.state.borrow().replicated_high_watermark.is_some();
        let trim_at = (reader == Reader::Consumer && replicated).then_some(high_watermark);
        let offset = offset as u64;
        // Compaction can remove every record from `offset` to the end of a
        // segment: as Kafka does, the read moves on to the next segment's
        // first batch, whatever gap lies between. Each step moves to a higher
        // base offset, so the walk ends after at most every segment once.
        let (segment_base, records) = loop {
            if let Some(records) = self
                .read_segment(&cursor, offset, max_bytes, at_least_one)
                .await?
            {
                break (cursor.base_offset, records);
            }
            let next = self.state.borrow().segment_after(cursor.base_offset);
            match next {
                Some(next) if next.base_offset < bound => cursor = next,
                _ => break (cursor.base_offset, Bytes::new()),
            }
        };
        let records = match trim_at {
            Some(bound) => batches_below(records, bound),
            None => records,
        };
        if let Some((last, _)) = BatchIter::new(&records).last() {
            self.top_up_read_ahead(segment_base, last.last_offset() as u64 + 1, max_bytes);
        }
        Ok(FetchedRecords {
            records,
            high_watermark,
            log_start_offset,
        })
    }

    /// Whole batches of one segment from the batch that holds `offset` (or
    /// the first one after it), from the read-ahead stream if it is there.
    /// `None` when the segment holds no batch at or after `offset`.
    async fn read_segment(
        &self,
        cursor: &SegmentCursor,
        offset: u64,
        max_bytes: usize,
        at_least_one: bool,
    ) -> Result<Option<Bytes>, StorageError> {
        let served = self
            .read_ahead
            .next(cursor.base_offset, offset, max_bytes, at_least_one)
            .await
            .transpose()?;
        if let Some((_, records)) = served {
            return Ok(Some(records));
        }
        let wanted = |h: &BatchHeader| h.last_offset() >= offset as i64;
        let file = &cursor.file;
        let Some((at, first)) = find_batch(file, cursor.position, cursor.end, wanted).await? else {
            return Ok(None);
        };
        let records =
            read_whole_batches(file, at, cursor.end, first.size, max_bytes, at_least_one).await?;
        // (The read-ahead stream restarts at the consumer's next fetch.)
        if let Some((last, _)) = BatchIter::new(&records).last() {
            let next = last.last_offset() as u64 + 1;
            let end = at + records.len() as u64;
            self.read_ahead
                .restart(cursor.base_offset, file.clone(), end, next);
        }
        Ok(Some(records))
    }

    /// Keeps chunks of `chunk_bytes` read ahead of a sequential reader whose
    /// next offset is `next_offset`, unless the batch cache holds it.
    fn top_up_read_ahead(&self, segment_base: u64, next_offset: u64, chunk_bytes: usize) {
        let size = {
            let st = self.state.borrow();
            let cached = st.cache.first_offset().is_some_and(|f| f <= next_offset);
            match st.segments.get(&segment_base) {
                Some(segment) if !cached => segment.meta.size,
                _ => {
                    drop(st);
                    self.read_ahead.clear();
                    return;
                }
            }
        };
        self.read_ahead.top_up(segment_base, size, chunk_bytes);
    }

    /// ListOffsets by time: the first offset whose record timestamp is at
    /// least `target`, with that timestamp; `None` when no record is that new.
    pub async fn offset_for_timestamp(
        &self,
        target: i64,
    ) -> Result<Option<(i64, u64)>, StorageError> {
        let (file, position, end, log_start) = {
            let st = self.state.borrow();
            st.check_readable()?;
            let found = st
                .segments
                .values()
                .find(|s| s.meta.max_timestamp >= target && s.meta.size > 0);
            let Some(segment) = found else {
                return Ok(None);
            };
            let relative = segment.meta.time_index.scan_start(target);
            let position = segment
                .meta
                .position_for(segment.base_offset() + relative as u64);
            (
                segment.file.clone(),
                position,
                segment.meta.size,
                st.log_start_offset,
            )
        };
        let wanted =
            |h: &BatchHeader| h.max_timestamp >= target && h.last_offset() >= log_start as i64;
        let Some((at, header)) = find_batch(&file, position, end, wanted).await? else {
            return Ok(None);
        };
        let batch = read_exact(&file, at, header.size).await?;
        let bound = decompressed_bytes_max(self.produce_limits().0);
        Ok(Some(first_record_at_or_after(
            &batch, &header, target, log_start, bound,
        )))
    }

    /// The largest timestamp in the log, `None` when no batch has one.
    /// ListOffsets with timestamp -3 (KIP-734) answers the first record that
    /// carries it: `offset_for_timestamp` of this timestamp finds exactly
    /// that record, since no record is newer.
    pub fn max_timestamp(&self) -> Option<i64> {
        let st = self.state.borrow();
        st.segments
            .values()
            .map(|s| s.meta.max_timestamp)
            .filter(|&t| t >= 0)
            .max()
    }

    /// DeleteRecords: moves the log start to `offset` (-1: the high
    /// watermark) and drops segments wholly below it. Returns the new start.
    pub async fn delete_records_before(&self, offset: i64) -> Result<u64, StorageError> {
        let new_start = {
            let mut st = self.state.borrow_mut();
            st.check_usable()?;
            let target = if offset == -1 {
                st.visible_end()
            } else if offset < 0 || offset as u64 > st.visible_end() {
                return Err(st.out_of_range(offset));
            } else {
                offset as u64
            };
            st.log_start_offset = st.log_start_offset.max(target);
            let start = st.log_start_offset;
            st.cache.evict_below(start);
            start
        };
        write_off_shard(vec![checkpoint_file(&self.dir, LOG_START_FILE, new_start)]).await?;
        self.remove_old_segments(now_ms()).await;
        Ok(new_start)
    }

    /// Deletes whole sealed segments past `retention.ms` or `retention.bytes`,
    /// or below the log start offset. The active segment always stays.
    pub async fn enforce_retention(&self, now: i64) -> Result<(), StorageError> {
        let removed = self.remove_old_segments(now).await;
        if removed > 0 {
            let log_start = checkpoint_file(&self.dir, LOG_START_FILE, self.log_start_offset());
            write_off_shard(vec![log_start]).await?;
        }
        Ok(())
    }

    async fn remove_old_segments(&self, now: i64) -> usize {
        let removed: Vec<Segment> = {
            let mut st = self.state.borrow_mut();
            let mut removed = Vec::new();
            let mut total: u64 = st.segments.values().map(|s| s.meta.size).sum();
            while st.segments.len() > 1 {
                let Some(first) = st.segments.values().next() else {
                    break;
                };
                let c = &st.config;
                let expired = c.cleanup_delete
                    && c.retention_ms >= 0
                    && first.meta.max_timestamp >= 0
                    && first.meta.max_timestamp < now - c.retention_ms;
                let oversized = c.cleanup_delete
                    && c.retention_bytes >= 0
                    && total - first.meta.size >= c.retention_bytes as u64;
                let below_start = first.meta.next_offset <= st.log_start_offset;
                if !(expired || oversized || below_start) {
                    break;
                }
                let Some((_, segment)) = st.segments.pop_first() else {
                    break;
                };
                total -= segment.meta.size;
                let next_base = st.segments.keys().next().copied().unwrap_or(st.next_offset);
                st.log_start_offset = st.log_start_offset.max(next_base);
                removed.push(segment);
            }
            let start = st.log_start_offset;
            st.cache.evict_below(start);
            removed
        };
        let count = removed.len();
        if count > 0 {
            self.read_ahead.clear();
        }
        for segment in removed {
            let base = segment.base_offset();
            drop(segment);
            remove_segment_files(&self.dir, base);
        }
        count
    }

    /// Compacts the sealed segments of a `cleanup.policy=compact` log when
    /// segments were sealed since the last pass: the rewrite runs on the
    /// blocking thread pool, then the cleaned files replace the originals
    /// here. Returns the records removed.
    pub async fn compact(&self, now: i64) -> Result<u64, StorageError> {
        let (sealed, delete_retention_ms) = {
            let st = self.state.borrow();
            st.check_usable()?;
            let sealed: Vec<SealedSegment> = st
                .segments
                .values()
                .rev()
                .skip(1)
                .rev()
                .map(|s| SealedSegment {
                    base_offset: s.base_offset(),
                    size: s.meta.size,
                })
                .collect();
            let newest = sealed.last().map(|s| s.base_offset);
            let cleaned_through = self.cleaned_through.get();
            if !st.config.cleanup_compact || newest.is_none() || newest == cleaned_through {
                return Ok(0);
            }
            (sealed, st.config.delete_retention_ms)
        };
        let newest = sealed.last().map(|s| s.base_offset);
        let dir = self.dir.clone();
        let interval = self.options.index_interval_bytes;
        let bound = decompressed_bytes_max(self.produce_limits().0);
        let cleaned = glommio::executor()
            .spawn_blocking(move || {
                clean_segments(&dir, &sealed, delete_retention_ms, now, interval, bound)
            })
            .await?;
        let mut removed = 0;
        for segment in cleaned {
            removed += segment.records_removed;
            self.swap_in_cleaned(segment).await?;
        }
        self.cleaned_through.set(newest);
        Ok(removed)
    }

    /// Replaces a sealed segment by its cleaned copy, unless retention took
    /// the segment away meanwhile. Index files go first, so a crash in
    /// between leaves a segment that recovery scans rather than stale indexes.
    async fn swap_in_cleaned(&self, cleaned: CleanedSegment) -> Result<(), StorageError> {
        let base = cleaned.meta.base_offset;
        let cleaned_file = cleaned_path(&self.dir, base);
        let Some(next_offset) = self
            .state
            .borrow()
            .segments
            .get(&base)
            .map(|s| s.meta.next_offset)
        else {
            let _ = std::fs::remove_file(&cleaned_file);
            return Ok(());
        };
        if cleaned.meta.size == 0 && self.absorb_emptied_segment(base, next_offset) {
            let _ = std::fs::remove_file(&cleaned_file);
            return Ok(());
        }
        for ext in ["index", "timeindex"] {
            let _ = std::fs::remove_file(segment_path(&self.dir, base, ext));
        }
        let log_path = segment_path(&self.dir, base, "log");
        std::fs::rename(&cleaned_file, &log_path)
            .map_err(|e| StorageError::io("cannot replace segment", &log_path, e))?;
        let mut meta = cleaned.meta;
        meta.next_offset = next_offset;
        let mut segment = Segment::open(&self.dir, meta).await?;
        write_off_shard(segment.index_files()).await?;
        self.read_ahead.clear();
        self.state.borrow_mut().segments.insert(base, segment);
        Ok(())
    }

    /// Drops a sealed segment that compaction emptied, giving its offsets to
    /// the segment before it (whose end then reaches the next segment's
    /// base, as recovery finds it). The first segment stays, empty: it holds
    /// the log start offset, which Kafka's cleaner never moves either.
    /// Returns whether the segment went.
    fn absorb_emptied_segment(&self, base: u64, next_offset: u64) -> bool {
        let removed = {
            let mut st = self.state.borrow_mut();
            let Some((_, previous)) = st.segments.range_mut(..base).next_back() else {
                return false;
            };
            debug_assert_eq!(previous.meta.next_offset, base);
            previous.meta.next_offset = next_offset;
            st.segments.remove(&base)
        };
        self.read_ahead.clear();
        drop(removed);
        remove_segment_files(&self.dir, base);
        true
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

/// Walks batch headers from `position` (a batch boundary) to the first batch
/// that `wanted` accepts. `None` if no batch before `end` does.
async fn find_batch(
    file: &DmaFile,
    mut position: u64,
    end: u64,
    wanted: impl Fn(&BatchHeader) -> bool,
) -> Result<Option<(u64, BatchHeader)>, StorageError> {
    while position + BATCH_HEADER_LEN as u64 <= end {
        let chunk_len = (end - position).min(SCAN_CHUNK_BYTES) as usize;
        let chunk = read_exact(file, position, chunk_len).await?;
        let mut at = 0usize;
        while at + BATCH_HEADER_LEN <= chunk.len() {
            let Ok(header) = BatchHeader::parse(&chunk[at..]) else {
                return Ok(None);
            };
            if wanted(&header) {
                return Ok(Some((position + at as u64, header)));
            }
            at += header.size;
        }
        position += at as u64;
    }
    Ok(None)
}

/// Reads whole batches from `position` (where a batch of `first_size` bytes
/// starts) up to `max_bytes` (or one batch if `at_least_one`).
async fn read_whole_batches(
    file: &DmaFile,
    position: u64,
    end: u64,
    first_size: usize,
    max_bytes: usize,
    at_least_one: bool,
) -> Result<Bytes, StorageError> {
    if first_size > max_bytes && !at_least_one {
        return Ok(Bytes::new());
    }
    let len = (end - position).min(max_bytes.max(first_size) as u64) as usize;
    let data = read_exact(file, position, len).await?;
    Ok(batches_below(data, u64::MAX))
}

/// The whole batches at the front of `records` that end below offset
/// `bound` (a consumer's high watermark; `u64::MAX` for every whole batch).
fn batches_below(records: Bytes, bound: u64) -> Bytes {
    let mut whole = 0;
    for (header, _) in BatchIter::new(&records) {
        if header.last_offset() as u64 >= bound {
            break;
        }
        whole += header.size;
    }
    records.slice(..whole)
}

async fn read_exact(file: &DmaFile, position: u64, len: usize) -> Result<Bytes, StorageError> {
    let path = file.path().map(|p| p.to_path_buf()).unwrap_or_default();
    let result = file
        .read_at(position, len)
        .await
        .map_err(|e| StorageError::io("cannot read segment", &path, e))?;
    Ok(Bytes::copy_from_slice(&result))
}

/// The exact record of a batch whose timestamp first reaches `target`
/// (decompressing as a stream, within `decompressed_bytes_max`, only as far
/// as that record), as (timestamp, offset). Falls back to the batch's first
/// offset if the records cannot be read that far.
fn first_record_at_or_after(
    batch: &Bytes,
    header: &BatchHeader,
    target: i64,
    log_start: u64,
    decompressed_bytes_max: usize,
) -> (i64, u64) {
    let fallback = (
        header.max_timestamp,
        (header.base_offset as u64).max(log_start),
    );
    let Ok(mut records) = open_records(batch, decompressed_bytes_max) else {
        return fallback;
    };
    while let Ok(Some(fields)) = records.next_fields() {
        let timestamp = record_timestamp(header, fields.timestamp_delta);
        let offset = header.base_offset.wrapping_add(fields.offset_delta as i64);
        if timestamp >= target && offset >= 0 && offset as u64 >= log_start {
            return (timestamp, offset as u64);
        }
    }
    fallback
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{Compression, RecordBatchDecoder};
    use wire::batch::validate_producer_batch;
    use wire::testing::{producer_batch, sample_batch};

    fn run<F: std::future::Future<Output = ()> + 'static>(
        test: impl FnOnce() -> F + Send + 'static,
    ) {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move { test().await })
            .expect("executor")
            .join()
            .expect("test executor");
    }

    #[test]
    fn the_record_at_a_timestamp_is_found_in_a_stream_and_a_bomb_falls_back() {
        use wire::records::DECOMPRESSED_BATCH_BYTES_MAX as BOUND;
        use wire::testing::{hand_batch, zstd_bomb};
        // sample_batch's records carry timestamps 1000, 1001, ...
        let batch = Bytes::from(sample_batch(5, Compression::Zstd));
        let header = BatchHeader::parse(&batch).unwrap();
        assert_eq!(
            first_record_at_or_after(&batch, &header, 1003, 0, BOUND),
            (1003, 3)
        );
        assert_eq!(
            first_record_at_or_after(&batch, &header, 1001, 4, BOUND),
            (1004, 4)
        );
        let bomb = Bytes::from(hand_batch(4, 1, &zstd_bomb(65_536)));
        let header = BatchHeader::parse(&bomb).unwrap();
        assert_eq!(
            first_record_at_or_after(&bomb, &header, i64::MAX, 0, BOUND),
            (header.max_timestamp, 0)
        );
    }

    fn options() -> LogOptions {
        LogOptions {
            disk_space: None,
            index_interval_bytes: 256,
            cache_bytes: 2048,
            flush_policy: FlushPolicy::AcksAll,
            writes_in_flight: 4,
        }
    }

    fn small_segments() -> TopicConfig {
        TopicConfig {
            segment_bytes: 4000,
            ..TopicConfig::default()
        }
    }

    async fn open(dir: &Path, config: TopicConfig) -> Rc<PartitionLog> {
        crate::probe_dma(dir.parent().unwrap()).await.unwrap();
        PartitionLog::open(dir, "t", 0, config, options())
            .await
            .unwrap()
    }

    /// Appends `batches` batches of 3 records and waits for them to be synced.
    async fn fill(log: &PartitionLog, batches: usize) {
        fill_at_epoch(log, batches, 0).await;
    }

    /// `fill` by a leader of `leader_epoch`.
    async fn fill_at_epoch(log: &PartitionLog, batches: usize, leader_epoch: i32) {
        let mut end = 0;
        for _ in 0..batches {
            let batch = Bytes::from(sample_batch(3, Compression::None));
            let header = validate_producer_batch(&batch).unwrap();
            end = log
                .append(&batch, &header, leader_epoch)
                .unwrap()
                .result()
                .end_offset;
        }
        log.wait_written(end, true).await.unwrap();
    }

    /// Every batch of `from` as a follower would fetch it, with its header.
    async fn fetched_batches(from: &PartitionLog) -> Vec<(Bytes, BatchHeader)> {
        let records = from.read(0, 1 << 20, true).await.unwrap().records;
        let mut batches = Vec::new();
        let mut at = 0;
        while at < records.len() {
            let header = BatchHeader::parse(&records[at..]).unwrap();
            batches.push((records.slice(at..at + header.size), header));
            at += header.size;
        }
        batches
    }

    #[test]
    fn a_stamped_batch_is_served_and_stored_with_its_stamp() {
        use wire::batch::stamp_batch;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let log = open(&path, small_segments()).await;
            fill(&log, 1).await; // offsets 0..3, records at 1000..1003
            let batch = Bytes::from(sample_batch(3, Compression::None));
            let header = validate_producer_batch(&batch).unwrap();
            let stamped = stamp_batch(&batch, &header, true, 5_000);
            let result = *log.append(&batch, &stamped, 0).unwrap().result();
            assert_eq!(result.max_timestamp, 5_000);
            log.wait_written(result.end_offset, true).await.unwrap();
            let check = |records: Bytes| {
                let mut at = 0;
                let mut last = None;
                while at < records.len() {
                    let h = validate_producer_batch(
                        &records[at..at + BatchHeader::parse(&records[at..]).unwrap().size],
                    )
                    .expect("every batch served keeps a valid CRC");
                    at += h.size;
                    last = Some(h);
                }
                let last = last.expect("the stamped batch");
                assert!(last.is_log_append_time());
                assert_eq!((last.base_offset, last.max_timestamp), (3, 5_000));
            };
            check(log.read(0, 1 << 20, true).await.unwrap().records);
            // Every record of a LogAppendTime batch has the batch's time.
            assert_eq!(
                log.offset_for_timestamp(1_500).await.unwrap(),
                Some((5_000, 3))
            );
            assert_eq!(log.max_timestamp(), Some(5_000));
            log.close().await.unwrap();
            drop(log);
            let log = open(&path, small_segments()).await;
            check(log.read(0, 1 << 20, true).await.unwrap().records);
            assert_eq!(
                log.offset_for_timestamp(1_500).await.unwrap(),
                Some((5_000, 3))
            );
        });
    }

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
            std::fs::remove_file(path.join(super::super::epochs::EPOCH_CHECKPOINT_FILE)).unwrap();
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
    fn consumers_stop_at_the_replicated_high_watermark_followers_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let log = open(&path, small_segments()).await;
            fill(&log, 4).await;
            log.set_replicated_high_watermark(Some(6));
            assert_eq!(log.high_watermark(), 6);
            assert_eq!(log.written_end(), 12);
            // From the cache, then from disk once the cache is emptied.
            for _ in 0..2 {
                let consumer = log.read(0, 1 << 20, true).await.unwrap();
                assert_eq!(offsets(&consumer.records), (0..6).collect::<Vec<_>>());
                assert_eq!(consumer.high_watermark, 6);
                // Between the high watermark and the log end: nothing yet,
                // not out of range; past the log end: out of range.
                assert!(log.read(7, 100, true).await.unwrap().records.is_empty());
                assert!(matches!(
                    log.read(13, 100, true).await,
                    Err(StorageError::OffsetOutOfRange { .. })
                ));
                let follower = log
                    .read_for(Reader::Follower, 6, 1 << 20, true)
                    .await
                    .unwrap();
                assert_eq!(offsets(&follower.records), (6..12).collect::<Vec<_>>());
                assert_eq!(
                    follower.high_watermark, 6,
                    "followers learn the high watermark"
                );
                log.state.borrow_mut().cache.clear();
            }
            log.set_replicated_high_watermark(None);
            assert_eq!(log.high_watermark(), 12);
        });
    }

    #[test]
    fn a_follower_log_copies_the_leaders_offsets_and_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let (leader_path, follower_path) = (dir.path().join("l-0"), dir.path().join("f-0"));
        run(move || async move {
            let leader = open(&leader_path, small_segments()).await;
            fill_at_epoch(&leader, 3, 5).await;
            fill_at_epoch(&leader, 2, 7).await;
            let follower = open(&follower_path, small_segments()).await;
            let mut end = 0;
            for (bytes, header) in fetched_batches(&leader).await {
                end = follower
                    .append_replicated(&bytes, &header)
                    .unwrap()
                    .end_offset;
            }
            follower.wait_written(end, true).await.unwrap();
            assert_eq!(follower.log_end_offset(), 15);
            assert_eq!(read_all(&follower, 0).await, (0..15).collect::<Vec<_>>());
            assert_eq!(follower.end_offset_for_epoch(5), (5, 9));
            assert_eq!(follower.latest_epoch(), Some(7));
            // A batch the follower already has is refused.
            let (bytes, header) = fetched_batches(&leader).await.remove(1);
            assert!(matches!(
                follower.append_replicated(&bytes, &header),
                Err(StorageError::NonContiguousReplica {
                    expected: 15,
                    got: 3
                })
            ));
        });
    }

    /// Offsets of the records in a fetched byte range.
    fn offsets(records: &Bytes) -> Vec<i64> {
        let mut buf = records.clone();
        RecordBatchDecoder::decode_all(&mut buf)
            .unwrap()
            .iter()
            .flat_map(|s| s.records.iter().map(|r| r.offset))
            .collect()
    }

    /// Reads the whole log from `from`, batch run after batch run.
    async fn read_all(log: &PartitionLog, from: i64) -> Vec<i64> {
        let mut all = Vec::new();
        let mut next = from;
        while (next as u64) < log.high_watermark() {
            let r = log.read(next, 700, true).await.unwrap();
            let got = offsets(&r.records);
            assert!(!got.is_empty(), "no progress at {next}");
            all.extend(got.iter().filter(|&&o| o >= next));
            next = *got.last().unwrap() + 1;
        }
        all
    }

    #[test]
    fn sequential_reads_from_the_read_ahead_stream_are_dense_and_exact() {
        run(|| async {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("t-0");
            let log = open(&dir, TopicConfig::default()).await;
            fill(&log, 300).await;
            let end = log.high_watermark() as i64;
            // Chunk sizes that split batches anywhere, read-ahead on and off
            // the stream (a jump back resets it).
            for max_bytes in [700, 1000, 4096, 1 << 20] {
                let mut next = 0;
                let mut seen = Vec::new();
                while next < end {
                    let r = log.read(next, max_bytes, true).await.unwrap();
                    let got = offsets(&r.records);
                    assert!(!got.is_empty(), "no progress at {next}");
                    seen.extend(got.iter().copied().filter(|&o| o >= next));
                    next = *got.last().unwrap() + 1;
                    if next == 301 {
                        let back = log.read(150, max_bytes, true).await.unwrap();
                        assert!(offsets(&back.records).contains(&150));
                    }
                }
                assert_eq!(seen, (0..end).collect::<Vec<_>>(), "max_bytes {max_bytes}");
            }
            log.close().await.unwrap();
        });
    }

    /// Batches of about 300 KB with uneven sizes, each value filled with its
    /// batch number, as one record per batch.
    fn large_batch(n: usize) -> (Bytes, BatchHeader) {
        let value = vec![b'a' + (n % 26) as u8; 300_000 + n * 4_099];
        let batch = wire::batch::encode_records(
            &[(1_000 + n as i64, None, Some(Bytes::from(value)))],
            Compression::None,
        )
        .unwrap();
        let header = validate_producer_batch(&batch).unwrap();
        (batch, header)
    }

    /// Every record's offset and value, in offset order.
    async fn read_values(log: &PartitionLog) -> Vec<(i64, Vec<u8>)> {
        let mut values = Vec::new();
        let mut next = 0;
        while (next as u64) < log.high_watermark() {
            let mut records = log.read(next, 1 << 20, true).await.unwrap().records;
            let set = RecordBatchDecoder::decode(&mut records).unwrap();
            for r in set.records {
                values.push((r.offset, r.value.unwrap().to_vec()));
                next = r.offset + 1;
            }
        }
        values
    }

    #[test]
    fn pipelined_writes_commit_in_order_and_survive_reopen_and_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let config = TopicConfig {
                segment_bytes: 3 << 20,
                ..TopicConfig::default()
            };
            let log = open(&path, config.clone()).await;
            let mut end = 0;
            let mut most_in_flight = 0;
            for n in 0..24 {
                let (batch, header) = large_batch(n);
                end = log.append(&batch, &header, 0).unwrap().result().end_offset;
                log.start_writes();
                most_in_flight = most_in_flight.max(log.state.borrow().writes.in_flight());
            }
            assert_eq!(most_in_flight, 4, "writes run side by side");
            log.wait_written(end, true).await.unwrap();
            let expected: Vec<(i64, Vec<u8>)> = (0..24)
                .map(|n| (n as i64, vec![b'a' + (n % 26) as u8; 300_000 + n * 4_099]))
                .collect();
            assert_eq!(read_values(&log).await, expected);
            assert!(log.state.borrow().segments.len() >= 3, "segments rolled");
            // Sealed segments are cut to their logical size.
            for (_, segment) in log.state.borrow().segments.iter().rev().skip(1) {
                let on_disk = std::fs::metadata(segment.log_path()).unwrap().len();
                assert_eq!(on_disk, segment.meta.size);
            }
            // A crash: no close, the active segment keeps its preallocated tail.
            let (active_path, active_size) = {
                let st = log.state.borrow();
                (st.active().log_path(), st.active().meta.size)
            };
            assert!(std::fs::metadata(&active_path).unwrap().len() > active_size);
            drop(log);
            let log = open(&path, config.clone()).await;
            assert_eq!(log.high_watermark(), 24);
            assert_eq!(read_values(&log).await, expected);
            log.close().await.unwrap();
            drop(log);
            let log = open(&path, config).await;
            assert_eq!(read_values(&log).await, expected);
        });
    }

    #[test]
    fn long_polls_wake_at_their_byte_threshold_and_count_visible_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let log = open(&path, TopicConfig::default()).await;
            let len = sample_batch(3, Compression::None).len() as u64;
            let mut waiter = log.subscribe_bytes(Reader::Consumer, 2 * len);
            fill(&log, 1).await;
            assert_eq!(waiter.try_recv(), Ok(None), "below its threshold");
            fill(&log, 1).await;
            assert_eq!(waiter.try_recv(), Ok(Some(())), "at its threshold");
            assert_eq!(log.appended_bytes(), 2 * len);
            // Replicated: consumers see the bytes below the limit only.
            log.set_replicated_high_watermark(Some(6));
            fill(&log, 1).await;
            fill(&log, 1).await;
            assert_eq!(log.appended_bytes(), 4 * len);
            assert_eq!(log.readable_bytes(Reader::Consumer), 2 * len);
            assert_eq!(log.readable_bytes(Reader::Follower), 4 * len);
            let mut consumer = log.subscribe_bytes(Reader::Consumer, 4 * len);
            let mut follower = log.subscribe_bytes(Reader::Follower, 4 * len);
            assert_eq!(follower.try_recv(), Ok(Some(())), "a follower sees all");
            log.set_replicated_high_watermark(Some(9));
            assert_eq!(consumer.try_recv(), Ok(None), "3 batches visible of 4");
            assert_eq!(log.readable_bytes(Reader::Consumer), 3 * len);
            log.set_replicated_high_watermark(Some(12));
            assert_eq!(consumer.try_recv(), Ok(Some(())), "all 4 visible");
            assert_eq!(log.readable_bytes(Reader::Consumer), 4 * len);
            log.close().await.unwrap();
        });
    }

    #[test]
    fn appends_roll_segments_and_read_back_densely() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let log = open(&path, small_segments()).await;
            fill(&log, 100).await;
            assert_eq!(log.high_watermark(), 300);
            assert!(log.state.borrow().segments.len() >= 3, "segments rolled");
            assert_eq!(read_all(&log, 0).await, (0..300).collect::<Vec<_>>());
            assert_eq!(read_all(&log, 151).await, (151..300).collect::<Vec<_>>());
            assert!(matches!(
                log.read(301, 100, true).await,
                Err(StorageError::OffsetOutOfRange { .. })
            ));
            assert!(log.read(300, 100, true).await.unwrap().records.is_empty());
            // Every batch's timestamps are 1000..1002.
            assert_eq!(
                log.offset_for_timestamp(1001).await.unwrap(),
                Some((1001, 1))
            );
            assert_eq!(log.offset_for_timestamp(5000).await.unwrap(), None);
            log.close().await.unwrap();
        });
    }

    #[test]
    fn segments_roll_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let config = TopicConfig {
                segment_ms: 20,
                ..TopicConfig::default()
            };
            let log = open(&path, config).await;
            fill(&log, 2).await;
            assert_eq!(log.state.borrow().segments.len(), 1, "young segment kept");
            glommio::timer::sleep(std::time::Duration::from_millis(40)).await;
            fill(&log, 1).await;
            assert_eq!(log.state.borrow().segments.len(), 2, "segment.ms rolled it");
            assert_eq!(read_all(&log, 0).await, (0..9).collect::<Vec<_>>());
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
    fn retention_and_delete_records_move_the_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let config = TopicConfig {
                retention_bytes: 8000,
                ..small_segments()
            };
            let log = open(&path, config).await;
            fill(&log, 100).await;
            log.enforce_retention(now_ms()).await.unwrap();
            let start = log.log_start_offset();
            assert!(start > 0, "old segments deleted");
            assert!(log.size_bytes() <= 8000 + 4000, "size {}", log.size_bytes());
            assert!(matches!(
                log.read(0, 100, true).await,
                Err(StorageError::OffsetOutOfRange { .. })
            ));
            assert_eq!(
                read_all(&log, start as i64).await.first(),
                Some(&(start as i64))
            );
            assert_eq!(log.delete_records_before(290).await.unwrap(), 290);
            assert_eq!(read_all(&log, 290).await, (290..300).collect::<Vec<_>>());
            log.close().await.unwrap();
            drop(log);
            let log = open(&path, small_segments()).await;
            assert_eq!(log.log_start_offset(), 290);
        });
    }

    /// Appends a batch of `n` records from producer `id` at `epoch`, `seq`.
    fn send(
        log: &PartitionLog,
        id: i64,
        epoch: i16,
        seq: i32,
        n: usize,
    ) -> Result<AppendOutcome, StorageError> {
        let batch = Bytes::from(producer_batch(n, id, epoch, seq));
        let header = validate_producer_batch(&batch).unwrap();
        log.append(&batch, &header, 0)
    }

    fn appended_at(outcome: Result<AppendOutcome, StorageError>) -> u64 {
        match outcome {
            Ok(AppendOutcome::Appended(r)) => r.base_offset,
            other => panic!("expected an append, got {other:?}"),
        }
    }

    fn duplicate_of(outcome: Result<AppendOutcome, StorageError>) -> u64 {
        match outcome {
            Ok(AppendOutcome::Duplicate(r)) => r.base_offset,
            other => panic!("expected a duplicate, got {other:?}"),
        }
    }

    /// Producer 9 sends `batches` batches of 3 records, sequences 0, 3, 6...
    async fn produce_in_sequence(log: &PartitionLog, batches: i32) {
        for i in 0..batches {
            let base = appended_at(send(log, 9, 0, i * 3, 3));
            assert_eq!(base, log.state.borrow().next_offset - 3);
        }
        let end = log.state.borrow().next_offset;
        log.wait_written(end, true).await.unwrap();
    }

    #[test]
    fn duplicates_gaps_and_old_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let log = open(&path, TopicConfig::default()).await;
            fill(&log, 1).await; // offsets 0..3 without a producer
            assert_eq!(appended_at(send(&log, 5, 0, 0, 3)), 3);
            assert_eq!(appended_at(send(&log, 5, 0, 3, 2)), 6);
            // Retries of queued (not yet written) batches are duplicates.
            assert_eq!(duplicate_of(send(&log, 5, 0, 0, 3)), 3);
            let dup = send(&log, 5, 0, 3, 2).unwrap();
            assert_eq!(
                *dup.result(),
                AppendResult {
                    base_offset: 6,
                    end_offset: 8,
                    log_start_offset: 0,
                    max_timestamp: 1_001
                }
            );
            assert!(matches!(
                send(&log, 5, 0, 9, 1),
                Err(StorageError::OutOfOrderSequence {
                    expected: 5,
                    got: 9,
                    ..
                })
            ));
            assert!(matches!(
                send(&log, 6, 0, 1, 1),
                Err(StorageError::OutOfOrderSequence { expected: 0, .. })
            ));
            log.wait_written(8, true).await.unwrap();
            assert_eq!(duplicate_of(send(&log, 5, 0, 0, 3)), 3);
            assert_eq!(appended_at(send(&log, 5, 1, 0, 1)), 8);
            assert!(matches!(
                send(&log, 5, 0, 5, 1),
                Err(StorageError::InvalidProducerEpoch {
                    epoch: 0,
                    current: 1,
                    ..
                })
            ));
            log.wait_written(9, true).await.unwrap();
            assert_eq!(read_all(&log, 0).await, (0..9).collect::<Vec<_>>());
            log.close().await.unwrap();
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
            let snapshots = super::super::producer_state::list_snapshots(&path);
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
            let snapshots = super::super::producer_state::list_snapshots(&path);
            assert!(!snapshots.is_empty());
            for offset in snapshots {
                let file = super::super::producer_state::snapshot_path(&path, offset);
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
            assert!(!super::super::producer_state::snapshot_path(&path, 240).exists());
            assert_eq!(duplicate_of(send(&log, 9, 0, 234, 3)), 234);
            assert_eq!(appended_at(send(&log, 9, 0, 237, 3)), 237);
            log.close().await.unwrap();
        });
    }

    #[test]
    fn compaction_keeps_the_newest_record_per_key_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let mut config = small_segments();
            config.set("cleanup.policy", "compact").unwrap();
            let log = open(&path, config.clone()).await;
            fill(&log, 100).await;
            let before = read_all(&log, 0).await;
            assert_eq!(before.len(), 300);
            let removed = log.compact(now_ms()).await.unwrap();
            assert!(removed > 0, "superseded records removed");
            let after = read_all_records(&log).await;
            assert_eq!(after.len(), 300 - removed as usize);
            // Every key's newest record in the sealed segments is still there,
            // and offsets only grow.
            assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
            assert_eq!(after.last().unwrap().0, 299);
            assert_eq!(
                log.compact(now_ms()).await.unwrap(),
                0,
                "nothing new sealed"
            );
            log.close().await.unwrap();
            drop(log);
            let log = open(&path, config).await;
            assert_eq!(log.high_watermark(), 300);
            assert_eq!(read_all_records(&log).await, after);
        });
    }

    /// (offset, key) of every record, reading past compaction gaps.
    async fn read_all_records(log: &PartitionLog) -> Vec<(i64, String)> {
        let mut all = Vec::new();
        let mut next = 0i64;
        while (next as u64) < log.high_watermark() {
            let r = log.read(next, 700, true).await.unwrap();
            let mut buf = r.records.clone();
            let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
            let records: Vec<(i64, String)> = sets
                .iter()
                .flat_map(|s| s.records.iter())
                .filter(|r| r.offset >= next)
                .map(|r| {
                    (
                        r.offset,
                        String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned(),
                    )
                })
                .collect();
            let last = if r.records.is_empty() {
                next
            } else {
                let mut it = wire::batch::BatchIter::new(&r.records);
                it.by_ref()
                    .last()
                    .map(|(h, _)| h.last_offset())
                    .unwrap_or(next)
            };
            all.extend(records);
            next = last + 1;
        }
        all
    }
}
