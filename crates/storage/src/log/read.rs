//! Reads of a [`PartitionLog`], on the shard that owns the log: whole
//! batches from the batch cache, the read-ahead stream or the segment files,
//! up to the reader's bound (the high watermark for consumers, the written
//! end for followers) and across the gaps compaction leaves; and ListOffsets'
//! lookups by time.
use super::{LogState, PartitionLog};
use crate::segment::Segment;
use crate::StorageError;
use bytes::Bytes;
use glommio::io::DmaFile;
use std::rc::Rc;
use wire::batch::{BatchHeader, BatchIter, BATCH_HEADER_LEN};
use wire::records::{decompressed_bytes_max, open_records, record_timestamp};

/// Most bytes one partition read returns (beyond a single larger first
/// batch), whatever the client asks, so a fetch cannot make the broker load
/// a whole segment into memory.
const READ_MAX_BYTES: usize = 16 << 20;

/// Bytes read at a time when walking batch headers in a segment.
const SCAN_CHUNK_BYTES: u64 = 64 << 10;

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

impl LogState {
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

impl PartitionLog {
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
    use crate::log::testing::*;
    use crate::log::LogOptions;
    use crate::readahead::{ReadAheadBudget, SHARD_BUDGET_BYTES};
    use kafka_protocol::records::Compression;
    use model::topic_config::TopicConfig;
    use wire::testing::sample_batch;

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

    #[test]
    fn logs_of_one_budget_share_it_and_other_budgets_are_apart() {
        run(|| async {
            let tmp = tempfile::tempdir().unwrap();
            let shared = Rc::new(ReadAheadBudget::new(SHARD_BUDGET_BYTES));
            let apart = Rc::new(ReadAheadBudget::new(SHARD_BUDGET_BYTES));
            let with = |budget: &Rc<ReadAheadBudget>| LogOptions {
                read_ahead: budget.clone(),
                ..options()
            };
            let config = TopicConfig::default;
            let a = open_with(&tmp.path().join("a-0"), config(), with(&shared)).await;
            let b = open_with(&tmp.path().join("b-0"), config(), with(&shared)).await;
            let c = open_with(&tmp.path().join("c-0"), config(), with(&apart)).await;
            for log in [&a, &b, &c] {
                fill(log, 300).await;
            }
            // One sequential read starts a stream, which reserves its chunks.
            a.read(0, 700, true).await.unwrap();
            let one_stream = shared.used_bytes();
            assert!(one_stream > 0, "the stream read ahead");
            b.read(0, 700, true).await.unwrap();
            assert_eq!(
                shared.used_bytes(),
                2 * one_stream,
                "a and b share one budget"
            );
            assert_eq!(apart.used_bytes(), 0, "another budget is not charged");
            c.read(0, 700, true).await.unwrap();
            assert_eq!(apart.used_bytes(), one_stream);
            assert_eq!(shared.used_bytes(), 2 * one_stream);
            // Closing a log gives its stream's bytes back to its own budget.
            a.close().await.unwrap();
            assert_eq!(shared.used_bytes(), one_stream);
            assert_eq!(apart.used_bytes(), one_stream);

            // A budget with room for one stream: the second log's reads get
            // none while the first log's stream is in use, and are whole.
            let small = Rc::new(ReadAheadBudget::new(one_stream));
            let d = open_with(&tmp.path().join("d-0"), config(), with(&small)).await;
            let e = open_with(&tmp.path().join("e-0"), config(), with(&small)).await;
            fill(&d, 300).await;
            fill(&e, 300).await;
            d.read(0, 700, true).await.unwrap();
            assert_eq!(small.used_bytes(), one_stream);
            let mut next = 0;
            for _ in 0..3 {
                let got = offsets(&e.read(next, 700, true).await.unwrap().records);
                assert_eq!(got.first().copied(), Some(next), "e reads on directly");
                next = *got.last().unwrap() + 1;
                assert_eq!(
                    small.used_bytes(),
                    one_stream,
                    "d's stream keeps the budget"
                );
            }
            d.close().await.unwrap();
            assert_eq!(small.used_bytes(), 0);
            e.read(next, 700, true).await.unwrap();
            assert_eq!(
                small.used_bytes(),
                one_stream,
                "e reads ahead once there is room"
            );
            for log in [&b, &c, &e] {
                log.close().await.unwrap();
            }
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
}
