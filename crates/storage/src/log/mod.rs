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
//!
//! Each concern of the log has a file of its own, every one of them
//! `impl PartitionLog` blocks on the state declared here, and all of it runs
//! on the shard that owns the partition: `append` (offsets, the idempotent
//! producer's checks, a follower's appends), `flush` (the write pipeline,
//! fdatasync, segment rolls), `read` (the batch cache, the read-ahead stream,
//! segment reads, lookups by time), `waiters` (long polls and the byte counts
//! they wait for), `retention` (retention, DeleteRecords, compaction) and
//! `lifecycle` (open and recovery, truncation, the failure state, close,
//! deletion). This file holds `LogState` with its named offsets and their
//! asserted order, and the small accessors.
//!
//! A log owns its state; what it shares with the other logs of its shard
//! comes in `LogOptions` from the shard that opens it: the free-space floor
//! and the read-ahead budget that its read-ahead stream reserves from.
mod append;
mod flush;
mod lifecycle;
mod read;
mod retention;
#[cfg(test)]
mod testing;
mod waiters;

pub use append::{AppendOutcome, AppendResult};
pub use read::{FetchedRecords, Reader};

use crate::cache::BatchCache;
use crate::disk_space::DiskSpace;
use crate::epochs::LeaderEpochCache;
use crate::producer_state::ProducerStateMap;
use crate::readahead::{ReadAhead, ReadAheadBudget};
use crate::segment::Segment;
use crate::StorageError;
use bytes::Bytes;
use futures::channel::oneshot;
use glommio::sync::Semaphore;
use lifecycle::Failure;
use model::topic_config::{FlushPolicy, ProduceSettings, TopicConfig};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use waiters::ByteWaiters;
use wire::batch::BatchHeader;

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
    /// The shard's read-ahead memory, shared by all its logs.
    pub read_ahead: Rc<ReadAheadBudget>,
}

struct PendingBatch {
    header: BatchHeader,
    bytes: Bytes,
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
}
