//! The per-partition batch cache: the most recent batches as `Bytes`.
//! O_DIRECT bypasses the page cache, so Fetch of recent data is served from
//! here; older data is read from the segments. A batch enters as the producer
//! sent it (a zero-copy slice of the request). If the request also carried
//! other partitions' batches, it gets its own copy, with its broker-assigned
//! offset and leader epoch (and a LogAppendTime stamp) written in, once it is
//! written to the segment (`detach_written`); otherwise it stays the slice,
//! and reads write those fields into the copy they make of it anyway.
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use wire::batch::{patch_batch, HeaderStamp};

#[derive(Debug)]
struct CachedBatch {
    base_offset: u64,
    last_offset: u64,
    leader_epoch: i32,
    /// The attributes, `maxTimestamp` and CRC the broker set (LogAppendTime),
    /// written in with the offsets; `None`: the batch's own.
    stamp: Option<HeaderStamp>,
    /// Whether `bytes` already carries the base offset and leader epoch.
    patched: bool,
    /// Whether `bytes` is a slice of a request that also carries other
    /// partitions' batches and still needs its own copy once written.
    detach_pending: bool,
    bytes: Bytes,
}

impl CachedBatch {
    /// The batch with its offsets written in: itself if it already carries
    /// them, else a copy.
    fn to_patched(&self) -> Bytes {
        if self.patched {
            return self.bytes.clone();
        }
        let mut copy = BytesMut::with_capacity(self.bytes.len());
        self.append_patched(&mut copy);
        copy.freeze()
    }

    fn append_patched(&self, out: &mut BytesMut) {
        let at = out.len();
        out.extend_from_slice(&self.bytes);
        if !self.patched {
            self.patch(&mut out[at..]);
        }
    }

    fn patch(&self, batch: &mut [u8]) {
        patch_batch(batch, self.base_offset as i64, self.leader_epoch);
        if let Some(stamp) = &self.stamp {
            stamp.apply(batch);
        }
    }

    fn patched_bytes(&mut self) -> &Bytes {
        if !self.patched {
            let mut copy = BytesMut::from(&self.bytes[..]);
            self.patch(&mut copy);
            self.bytes = copy.freeze();
            self.patched = true;
        }
        &self.bytes
    }
}

/// Contiguous batches of the log's tail, bounded by `capacity_bytes`.
#[derive(Debug)]
pub struct BatchCache {
    batches: VecDeque<CachedBatch>,
    bytes: usize,
    capacity_bytes: usize,
    /// Batches with `detach_pending`.
    detach_pending: usize,
}

impl BatchCache {
    pub fn new(capacity_bytes: usize) -> Self {
        BatchCache {
            batches: VecDeque::new(),
            bytes: 0,
            capacity_bytes,
            detach_pending: 0,
        }
    }

    /// Gives every batch below `end_offset` its own patched copy. A batch
    /// enters as a slice of its produce request, which keeps the whole
    /// request (every partition's batch in it) in memory; once the batch is
    /// written, the cache holds its own bytes instead, so the memory the
    /// caches hold is what their budgets count.
    /// A batch that was its request's only one is left as it is: keeping
    /// the slice holds no other partition's bytes, and a copy would cost as
    /// much as the write itself (one partition at full speed).
    pub fn detach_written(&mut self, end_offset: u64) {
        // Newest first, only as far back as batches with a copy pending go.
        let mut unseen = self.detach_pending;
        for b in self.batches.iter_mut().rev() {
            if unseen == 0 {
                break;
            }
            if !b.detach_pending {
                continue;
            }
            unseen -= 1;
            if b.last_offset < end_offset {
                b.patched_bytes();
                b.detach_pending = false;
                self.detach_pending -= 1;
            }
        }
    }

    /// The first offset the cache holds.
    pub fn first_offset(&self) -> Option<u64> {
        self.batches.front().map(|b| b.base_offset)
    }

    /// Changes the budget, evicting the oldest batches if it shrank.
    pub fn set_capacity(&mut self, capacity_bytes: usize) {
        self.capacity_bytes = capacity_bytes;
        while self.bytes > self.capacity_bytes {
            self.pop_front();
        }
    }

    /// Adds the batch that follows the last one cached, as the producer sent
    /// it; `base_offset` and `leader_epoch` are written in when it is read.
    #[cfg(test)]
    pub fn push(&mut self, base_offset: u64, last_offset: u64, leader_epoch: i32, bytes: Bytes) {
        self.push_slice(base_offset, last_offset, leader_epoch, None, bytes, true);
    }

    /// `push`, with the header fields the broker stamped (see
    /// `batch::stamp_batch`), saying whether `bytes` shares its buffer with
    /// other partitions' batches (then it gets its own copy once written).
    pub fn push_slice(
        &mut self,
        base_offset: u64,
        last_offset: u64,
        leader_epoch: i32,
        stamp: Option<HeaderStamp>,
        bytes: Bytes,
        shares_buffer: bool,
    ) {
        if self
            .batches
            .back()
            .is_some_and(|b| b.last_offset + 1 != base_offset)
        {
            self.clear();
        }
        self.bytes += bytes.len();
        self.detach_pending += usize::from(shares_buffer);
        self.batches.push_back(CachedBatch {
            base_offset,
            last_offset,
            leader_epoch,
            stamp,
            patched: false,
            detach_pending: shares_buffer,
            bytes,
        });
        // The budget is a bound, even on the newest batch: with many
        // partitions a share can be smaller than one batch, and keeping one
        // batch each (1,000 partitions of 1 MB batches) held 1 GB. Fetches of
        // what is not cached read the segment.
        while self.bytes > self.capacity_bytes && !self.batches.is_empty() {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(b) = self.batches.pop_front() {
            self.bytes -= b.bytes.len();
            self.detach_pending -= usize::from(b.detach_pending);
        }
    }

    pub fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
        self.detach_pending = 0;
    }

    /// Drops batches that end before `offset` (after DeleteRecords or retention).
    pub fn evict_below(&mut self, offset: u64) {
        while self.batches.front().is_some_and(|b| b.last_offset < offset) {
            self.pop_front();
        }
    }

    /// Whole batches from the one holding `offset`, below `visible_end`, up to
    /// `max_bytes` (the first batch is returned even if larger when
    /// `at_least_one`). `None` when the cache does not reach back to `offset`.
    pub fn read(
        &mut self,
        offset: u64,
        visible_end: u64,
        max_bytes: usize,
        at_least_one: bool,
    ) -> Option<Bytes> {
        let first = self.batches.front()?;
        if first.base_offset > offset {
            return None;
        }
        let start = self.batches.partition_point(|b| b.last_offset < offset);
        let mut end = start;
        let mut total = 0usize;
        for b in self.batches.range(start..) {
            if b.base_offset >= visible_end {
                break;
            }
            if total + b.bytes.len() > max_bytes && !(end == start && at_least_one) {
                break;
            }
            total += b.bytes.len();
            end += 1;
        }
        let picked = self.batches.range(start..end);
        Some(match end - start {
            0 => Bytes::new(),
            1 => picked
                .map(CachedBatch::to_patched)
                .next()
                .unwrap_or_default(),
            _ => {
                // One copy for the whole answer, offsets written in as it is
                // made: no patched copy is kept, so a hot backlog costs the
                // cache its request buffers once, not twice.
                let mut out = BytesMut::with_capacity(total);
                for b in picked {
                    b.append_patched(&mut out);
                }
                out.freeze()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_of(sizes: &[usize]) -> BatchCache {
        let mut c = BatchCache::new(1000);
        let mut offset = 0;
        for &s in sizes {
            c.push(offset, offset + 1, 0, Bytes::from(vec![offset as u8; s]));
            offset += 2;
        }
        c
    }

    #[test]
    fn reads_whole_batches_within_limits() {
        let mut c = cache_of(&[100, 100, 100]);
        assert_eq!(c.read(0, 6, 250, true).unwrap().len(), 200);
        assert_eq!(c.read(3, 6, 1000, true).unwrap().len(), 200);
        assert_eq!(c.read(0, 2, 1000, true).unwrap().len(), 100);
        assert_eq!(c.read(0, 6, 50, true).unwrap().len(), 100);
        assert_eq!(c.read(0, 6, 50, false).unwrap().len(), 0);
    }

    #[test]
    fn a_batch_over_the_budget_is_not_kept() {
        let mut c = cache_of(&[400, 1200]);
        assert!(c.read(0, 4, 5000, true).is_none());
        assert_eq!(c.first_offset(), None);
        c.push(4, 5, 0, Bytes::from(vec![1u8; 300]));
        assert_eq!(c.read(4, 6, 1000, true).unwrap().len(), 300);
    }

    #[test]
    fn reads_write_the_offsets_into_their_copy_and_keep_the_slice() {
        use kafka_protocol::records::Compression;
        use wire::batch::BatchIter;
        use wire::testing::sample_batch;
        let batch = Bytes::from(sample_batch(2, Compression::None));
        let mut c = BatchCache::new(1 << 20);
        c.push_slice(42, 43, 7, None, batch.clone(), false);
        c.push_slice(44, 45, 8, None, batch.clone(), false);
        let headers = |records: &Bytes| -> Vec<(i64, i32)> {
            BatchIter::new(records)
                .map(|(h, _)| (h.base_offset, h.leader_epoch))
                .collect()
        };
        assert_eq!(
            headers(&c.read(42, 46, 1 << 20, true).unwrap()),
            [(42, 7), (44, 8)]
        );
        assert_eq!(headers(&c.read(44, 46, 1 << 20, true).unwrap()), [(44, 8)]);
        // The cache still holds the producer's bytes, not a second copy.
        assert!(c.batches.iter().all(|b| !b.patched && b.bytes == batch));
    }

    #[test]
    fn eviction_keeps_the_budget() {
        let mut c = cache_of(&[400, 400, 400]);
        assert!(c.read(0, 6, 1000, true).is_none());
        assert_eq!(c.read(2, 6, 1000, true).unwrap().len(), 800);
    }
}
