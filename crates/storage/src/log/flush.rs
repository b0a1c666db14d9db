//! The write pipeline of a [`PartitionLog`], on the shard that owns the log.
//!
//! Queued batches go to the active segment in O_DIRECT writes of aligned
//! blocks, the partial last block kept in memory and rewritten by the next
//! write. Up to `LogOptions::writes_in_flight` writes run at once, so the
//! disk sees a queue rather than one write after another, and they are
//! committed (the written end moves, readers and waiters see the batches)
//! strictly in the order they were planned.
//!
//! Writes in flight never race on a block. Every write starts at the block
//! that holds the end of the write planned before it. When that predecessor
//! is still in flight and the block is shared, the write is split: its first
//! block is written only once the predecessor is committed, everything after
//! it at once. A write that would start while others are in flight must carry
//! at least `MIN_OVERLAPPED_WRITE_BYTES`; smaller leftovers wait for the next
//! commit, so small batches still share one write (group commit) instead of
//! forming a chain of tiny writes each waiting for the one before.
//!
//! Large writes preallocate the segment file ahead of them (fallocate, a
//! few times the write's size), so that they do not extend the file: ext4
//! cannot start an O_DIRECT write that extends a file without blocking, and
//! io_uring hands those to a worker thread that runs them one at a time.
//! The preallocated tail is cut off when the segment is sealed or the log
//! closed, and recovery cuts it after a crash (it reads as zeros).
//!
//! Writes and segment rolls run in detached tasks, so a waiter that goes away
//! cannot abandon a write halfway. fdatasync (group commit for acks=all) runs
//! beside the writes, one at a time per log, and covers every committed write.
use super::{LogState, PartitionLog, PendingBatch};
use crate::off_shard::{write_off_shard, FileWrite};
use crate::recovery::{checkpoint_file, RECOVERY_POINT_FILE};
use crate::segment::{align_down, align_up, Segment, BLOCK_BYTES};
use crate::{now_ms, StorageError};
use glommio::io::{DmaBuffer, DmaFile};
use model::topic_config::FlushPolicy;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use wire::batch::{patch_stored_fields, BatchHeader, BATCH_HEADER_LEN};

/// Most bytes one DMA write carries; larger backlogs take several writes.
const MAX_WRITE_BYTES: u64 = 8 << 20;
/// Fewest bytes a write carries when it starts while others are in flight.
const MIN_OVERLAPPED_WRITE_BYTES: u64 = 256 << 10;

/// A roll that failed for lack of file descriptors is retried after this
/// pause, doubling up to `ROLL_RETRY_MAX`.
const ROLL_RETRY_MIN: std::time::Duration = std::time::Duration::from_millis(10);
const ROLL_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes at least this large preallocate the file ahead of themselves.
const PREALLOCATE_MIN_BYTES: u64 = 1 << 20;
/// How far ahead of a large write the file is preallocated, in multiples
/// of the write's size, and at most how far.
const PREALLOCATE_WRITES_AHEAD: u64 = 4;
const PREALLOCATE_MAX_BYTES: u64 = 32 << 20;

/// The writes of one log, counted in plan order.
#[derive(Debug, Default)]
pub(super) struct WritePipeline {
    in_flight: usize,
    /// Sequence number the next planned write gets.
    next_seq: u64,
    /// Writes `0..committed` are committed.
    committed: u64,
    /// A segment roll is under way: nothing is planned until it is done.
    rolling: bool,
}

#[cfg(test)]
impl WritePipeline {
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight
    }
}

/// One planned write of queued batches to the active segment.
struct WritePlan {
    seq: u64,
    file: Rc<DmaFile>,
    position: u64,
    /// Extend the file's allocation to this length before writing.
    allocate_to: Option<u64>,
    buffers: PlannedBuffers,
    batches: Vec<PendingBatch>,
    path: PathBuf,
    /// The leader-epoch checkpoint, when one of `batches` opened an epoch:
    /// written before them.
    epochs: Option<Box<FileWrite>>,
}

enum PlannedBuffers {
    /// No write in flight shares this write's first block.
    Whole(DmaBuffer),
    /// The first block is shared with the predecessor in flight and waits
    /// for its commit; the blocks after it (at `position + BLOCK_BYTES`) do not.
    Split {
        first_block: DmaBuffer,
        rest: Option<DmaBuffer>,
    },
}

enum Step {
    Idle,
    Roll,
    Write(WritePlan),
}

impl PartitionLog {
    /// Whether the flush policy wants fdatasync before acknowledging `acks`.
    pub fn needs_sync(&self, acks: i16) -> bool {
        match self.options.flush_policy {
            FlushPolicy::Always => true,
            FlushPolicy::AcksAll => acks == -1,
            FlushPolicy::Never => false,
        }
    }

    /// Waits until everything below `end_offset` is written (and synced when
    /// `sync`), starting writes if the pipeline has room for them.
    pub async fn wait_written(&self, end_offset: u64, sync: bool) -> Result<(), StorageError> {
        loop {
            let (covered, written) = {
                let st = self.state.borrow();
                st.check_usable()?;
                let mark = if sync {
                    st.durable_offset
                } else {
                    st.written_end
                };
                (mark >= end_offset, st.written_end >= end_offset)
            };
            if covered {
                return Ok(());
            }
            if written {
                self.sync_through(end_offset).await?;
                continue;
            }
            self.start_writes();
            // Commits (and failures) wake this; a dropped sender only loops.
            let _ = self.subscribe().await;
        }
    }

    /// One fdatasync at a time; it covers every write committed before it.
    async fn sync_through(&self, end_offset: u64) -> Result<(), StorageError> {
        let _permit = self
            .sync_lock
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Offline)?;
        if self.state.borrow().durable_offset >= end_offset {
            return Ok(());
        }
        self.sync_active().await
    }

    /// Starts every write the pipeline has room for, or the roll that must
    /// come before the next write.
    pub(super) fn start_writes(&self) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        loop {
            match self.next_step() {
                Step::Idle => return,
                Step::Roll => {
                    glommio::spawn_local(me.run_roll()).detach();
                    return;
                }
                Step::Write(plan) => {
                    glommio::spawn_local(me.clone().run_write(plan)).detach();
                }
            }
        }
    }

    fn next_step(&self) -> Step {
        let max_in_flight = self.options.writes_in_flight.max(1);
        let mut st = self.state.borrow_mut();
        if st.check_usable().is_err() || st.writes.rolling {
            return Step::Idle;
        }
        let Some(first) = st.pending.front() else {
            return Step::Idle;
        };
        let first_len = first.bytes.len() as u64;
        let in_flight = st.writes.in_flight;
        let segment_bytes = st.config.roll_bytes() as u64;
        let active = st.active();
        let full = active.planned_size + first_len > segment_bytes;
        let old = now_ms() - active.created_ms >= st.config.segment_ms;
        if active.planned_size > 0 && (full || old) {
            if in_flight > 0 {
                return Step::Idle;
            }
            st.writes.rolling = true;
            return Step::Roll;
        }
        if in_flight >= max_in_flight {
            return Step::Idle;
        }
        let (take, bytes) = batches_for_one_write(&st.pending, active.planned_size, segment_bytes);
        if in_flight > 0 && bytes < MIN_OVERLAPPED_WRITE_BYTES {
            return Step::Idle;
        }
        Step::Write(st.plan_write(take, bytes, &self.dir))
    }

    async fn run_write(self: Rc<Self>, plan: WritePlan) {
        let WritePlan {
            seq,
            file,
            position,
            allocate_to,
            buffers,
            batches,
            path,
            epochs,
        } = plan;
        if let Some(checkpoint) = epochs {
            if let Err(e) = write_off_shard(vec![*checkpoint]).await {
                self.take_offline("cannot write the leader-epoch checkpoint", &e);
                self.state.borrow_mut().writes.in_flight -= 1;
                return;
            }
        }
        if let Some(length) = allocate_to {
            // Only an optimisation: a filesystem without fallocate, or a
            // full disk, shows up in the write itself.
            if let Err(e) = file.pre_allocate(length, false).await {
                tracing::debug!(path = %path.display(), error = %e, "cannot preallocate segment");
            }
        }
        let written = match buffers {
            PlannedBuffers::Whole(buffer) => file.write_at(buffer, position).await.map(drop),
            PlannedBuffers::Split { first_block, rest } => {
                let rest_write = async {
                    match rest {
                        Some(rest) => file.write_at(rest, position + BLOCK_BYTES).await.map(drop),
                        None => Ok(()),
                    }
                };
                let first_write = async {
                    if !self.wait_committed_before(seq).await {
                        return Ok(());
                    }
                    file.write_at(first_block, position).await.map(drop)
                };
                let (rest_done, first_done) = futures::join!(rest_write, first_write);
                rest_done.and(first_done)
            }
        };
        match written {
            Err(e) => {
                self.go_offline("cannot write segment", &path, e.into());
            }
            Ok(()) => {
                if self.wait_committed_before(seq).await {
                    self.commit_write(seq, batches);
                }
            }
        }
        self.state.borrow_mut().writes.in_flight -= 1;
        self.start_writes();
    }

    /// Waits until every write planned before `seq` is committed; false if
    /// the log failed or went away meanwhile.
    async fn wait_committed_before(&self, seq: u64) -> bool {
        loop {
            {
                let st = self.state.borrow();
                if st.check_usable().is_err() {
                    return false;
                }
                if st.writes.committed >= seq {
                    return true;
                }
            }
            let _ = self.subscribe().await;
        }
    }

    fn commit_write(&self, seq: u64, batches: Vec<PendingBatch>) {
        let interval = self.options.index_interval_bytes;
        let mut st = self.state.borrow_mut();
        debug_assert_eq!(st.writes.committed, seq);
        st.writes.committed = seq + 1;
        for b in &batches {
            st.written_producers.replay(&b.header);
        }
        let active = st.active_mut();
        for b in &batches {
            active.meta.note_batch(&b.header, interval);
        }
        let end = active.meta.next_offset;
        st.cache.detach_written(end);
        let bytes: usize = batches.iter().map(|b| b.bytes.len()).sum();
        st.record_write(end, bytes as u64);
        st.written_end = end;
        st.assert_offsets_ordered();
        st.wake_after_write();
    }

    /// Rolls, retrying while the process is out of file descriptors (they
    /// come back as connections close: the log must not go offline for
    /// good); any other failure takes the log offline.
    async fn run_roll(self: Rc<Self>) {
        let mut pause = ROLL_RETRY_MIN;
        let mut failures = 0u64;
        loop {
            match self.roll().await {
                Ok(()) => break,
                Err(e) if e.is_out_of_descriptors() && self.is_usable() => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(60) {
                        tracing::warn!(topic = %self.topic, partition = self.partition, error = %e, failures, "cannot roll segment: out of file descriptors, retrying");
                    }
                    glommio::timer::sleep(pause).await;
                    pause = (pause * 2).min(ROLL_RETRY_MAX);
                }
                Err(e) => {
                    self.take_offline("cannot roll segment", &e);
                    break;
                }
            }
        }
        if failures > 0 && self.is_usable() {
            tracing::info!(topic = %self.topic, partition = self.partition, failures, "segment rolled after running out of file descriptors");
        }
        self.state.borrow_mut().writes.rolling = false;
        self.start_writes();
    }

    pub(super) async fn sync_active(&self) -> Result<(), StorageError> {
        let (file, target, path) = {
            let st = self.state.borrow();
            let active = st.active();
            (active.file.clone(), st.written_end, active.log_path())
        };
        if self.state.borrow().durable_offset >= target {
            return Ok(());
        }
        if let Err(e) = file.fdatasync().await {
            return Err(self.go_offline("cannot fdatasync segment", &path, e.into()));
        }
        let mut st = self.state.borrow_mut();
        st.durable_offset = st.durable_offset.max(target);
        st.assert_offsets_ordered();
        Ok(())
    }

    /// Seals the active segment (synced, cut to its logical size, indexes
    /// saved) and starts a new one at the next offset. No write is in flight.
    async fn roll(&self) -> Result<(), StorageError> {
        let (file, size, next_base, path) = {
            let st = self.state.borrow();
            let a = st.active();
            debug_assert_eq!(a.planned_size, a.meta.size);
            (
                a.file.clone(),
                a.meta.size,
                a.meta.next_offset,
                a.log_path(),
            )
        };
        if let Err(e) = file.fdatasync().await {
            return Err(self.go_offline("cannot fdatasync segment", &path, e.into()));
        }
        if let Err(e) = file.truncate(size).await {
            return Err(self.go_offline("cannot truncate segment", &path, e.into()));
        }
        self.save_sealed_files(next_base).await?;
        let segment = Segment::create(&self.dir, next_base).await?;
        let recovery_point = checkpoint_file(&self.dir, RECOVERY_POINT_FILE, next_base);
        write_off_shard(vec![recovery_point]).await?;
        let mut st = self.state.borrow_mut();
        st.segments.insert(next_base, segment);
        st.durable_offset = st.durable_offset.max(next_base);
        st.assert_offsets_ordered();
        Ok(())
    }
}

/// How many queued batches the next write takes, and their bytes: at least
/// one, then as many as fit in the segment and in `MAX_WRITE_BYTES`.
fn batches_for_one_write(
    pending: &VecDeque<PendingBatch>,
    planned_size: u64,
    segment_bytes: u64,
) -> (usize, u64) {
    let mut take = 0;
    let mut bytes = 0u64;
    for b in pending {
        let len = b.bytes.len() as u64;
        let fits = planned_size + bytes + len <= segment_bytes && bytes + len <= MAX_WRITE_BYTES;
        if take > 0 && !fits {
            break;
        }
        take += 1;
        bytes += len;
    }
    (take, bytes)
}

impl LogState {
    /// Takes the first `take` queued batches (`bytes` long) into a write
    /// behind the active segment's planned tail block.
    fn plan_write(&mut self, take: usize, bytes: u64, dir: &Path) -> WritePlan {
        let epochs = std::mem::take(&mut self.epochs_unsaved)
            .then(|| Box::new(self.epochs.checkpoint_file(dir)));
        let segment_bytes = self.config.roll_bytes() as u64;
        let batches: Vec<PendingBatch> = self.pending.drain(..take).collect();
        let seq = self.writes.next_seq;
        self.writes.next_seq += 1;
        self.writes.in_flight += 1;
        let predecessor_in_flight = self.writes.committed < seq;
        let active = self.active_mut();
        let position = align_down(active.planned_size);
        let used = active.tail_block.len() + bytes as usize;
        let total = align_up(used as u64) as usize;
        let block = BLOCK_BYTES as usize;
        let split = predecessor_in_flight && !active.tail_block.is_empty();
        let (mut first, mut rest) = if split {
            let rest = (total > block).then(|| active.file.alloc_dma_buffer(total - block));
            (active.file.alloc_dma_buffer(block), rest)
        } else {
            (active.file.alloc_dma_buffer(total), None)
        };
        let mut out = SpanWriter::new(
            first.as_bytes_mut(),
            rest.as_mut().map(|r| r.as_bytes_mut()).unwrap_or_default(),
        );
        out.put(&active.tail_block);
        for b in &batches {
            out.put_batch(&b.bytes, &b.header);
        }
        out.zero_rest();
        active.tail_block = out.copy_range(align_down(used as u64) as usize, used);
        active.planned_size += bytes;
        let allocate_to = preallocation(active, position + total as u64, bytes, segment_bytes);
        let buffers = if split {
            PlannedBuffers::Split {
                first_block: first,
                rest,
            }
        } else {
            PlannedBuffers::Whole(first)
        };
        WritePlan {
            seq,
            file: active.file.clone(),
            position,
            allocate_to,
            buffers,
            batches,
            path: active.log_path(),
            epochs,
        }
    }
}

/// The length to preallocate the active segment to before a write that ends
/// at `write_end`, if the write is large and would extend the file.
fn preallocation(
    active: &mut Segment,
    write_end: u64,
    write_bytes: u64,
    segment_bytes: u64,
) -> Option<u64> {
    if write_end <= active.allocated_size {
        return None;
    }
    let ahead = (write_bytes * PREALLOCATE_WRITES_AHEAD)
        .clamp(PREALLOCATE_MIN_BYTES, PREALLOCATE_MAX_BYTES);
    let length = align_up((write_end + ahead).min(segment_bytes)).max(write_end);
    active.allocated_size = length;
    Some(length)
}

/// Writes one byte stream across two buffers that follow each other on disk.
struct SpanWriter<'a> {
    parts: [&'a mut [u8]; 2],
    at: usize,
}

impl<'a> SpanWriter<'a> {
    fn new(first: &'a mut [u8], second: &'a mut [u8]) -> Self {
        SpanWriter {
            parts: [first, second],
            at: 0,
        }
    }

    /// The part holding stream position `at`, and the position within it.
    fn locate(&self, at: usize) -> (usize, usize) {
        let first_len = self.parts[0].len();
        if at < first_len {
            (0, at)
        } else {
            (1, at - first_len)
        }
    }

    fn put(&mut self, mut src: &[u8]) {
        while !src.is_empty() {
            let (part, within) = self.locate(self.at);
            let room = &mut self.parts[part][within..];
            let n = src.len().min(room.len());
            assert!(n > 0, "a planned write's buffers hold all its bytes");
            room[..n].copy_from_slice(&src[..n]);
            self.at += n;
            src = &src[n..];
        }
    }

    /// Puts a batch with the fields the broker set written into its header:
    /// base offset and leader epoch (outside the CRC), and the attributes,
    /// `maxTimestamp` and CRC of a LogAppendTime stamp.
    fn put_batch(&mut self, batch: &[u8], stored: &BatchHeader) {
        if batch.len() < BATCH_HEADER_LEN {
            self.put(batch);
            return;
        }
        let mut header = [0u8; BATCH_HEADER_LEN];
        header.copy_from_slice(&batch[..BATCH_HEADER_LEN]);
        patch_stored_fields(&mut header, stored);
        self.put(&header);
        self.put(&batch[BATCH_HEADER_LEN..]);
    }

    /// Zeroes everything after the stream's end (the padding of the last block).
    fn zero_rest(&mut self) {
        let (part, within) = self.locate(self.at);
        self.parts[part][within..].fill(0);
        if part == 0 {
            self.parts[1].fill(0);
        }
    }

    fn copy_range(&self, start: usize, end: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(end - start);
        let mut at = start;
        while at < end {
            let (part, within) = self.locate(at);
            let src = &self.parts[part][within..];
            let n = (end - at).min(src.len());
            out.extend_from_slice(&src[..n]);
            at += n;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::SpanWriter;
    use crate::log::testing::*;
    use crate::log::PartitionLog;
    use bytes::Bytes;
    use kafka_protocol::records::{Compression, RecordBatchDecoder};
    use model::topic_config::TopicConfig;
    use wire::batch::{validate_producer_batch, BatchHeader};

    #[test]
    fn a_stream_split_across_two_buffers_reads_back_whole() {
        let mut a = [9u8; 8];
        let mut b = [9u8; 8];
        let mut out = SpanWriter::new(&mut a, &mut b);
        out.put(b"abcde");
        out.put(b"fghijk");
        out.zero_rest();
        assert_eq!(out.copy_range(3, 11), b"defghijk".to_vec());
        assert_eq!(a, *b"abcdefgh");
        assert_eq!(b, [b'i', b'j', b'k', 0, 0, 0, 0, 0]);
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
}
