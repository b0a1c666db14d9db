//! Sparse offset and time indexes of one segment, kept in memory and written
//! to `.index` / `.timeindex` files when the segment is sealed or closed.
use wire::batch::BatchHeader;

/// What the log knows about a segment's contents: size, offsets, indexes and
/// the largest timestamp. Recovery builds it by scanning; appends extend it.
#[derive(Debug)]
pub struct SegmentMeta {
    pub base_offset: u64,
    /// Logical bytes of whole batches.
    pub size: u64,
    /// Offset after the last batch.
    pub next_offset: u64,
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    pub bytes_since_index: u64,
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: u64,
}

impl SegmentMeta {
    pub fn empty(base_offset: u64) -> Self {
        SegmentMeta {
            base_offset,
            size: 0,
            next_offset: base_offset,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
        }
    }

    fn relative(&self, offset: u64) -> u32 {
        (offset - self.base_offset) as u32
    }

    /// Accounts for one more batch at the current end of the segment, adding
    /// index entries every `index_interval_bytes`.
    pub fn note_batch(&mut self, header: &BatchHeader, index_interval_bytes: u32) {
        if self.size > 0 && self.bytes_since_index >= index_interval_bytes as u64 {
            self.index
                .push(self.relative(header.base_offset as u64), self.size as u32);
            self.time_index.push(
                self.max_timestamp,
                self.relative(self.offset_of_max_timestamp),
            );
            self.bytes_since_index = 0;
        }
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset() as u64;
        }
        self.size += header.size as u64;
        self.bytes_since_index += header.size as u64;
        self.next_offset = header.last_offset() as u64 + 1;
    }

    /// Byte position from which to read to find `offset`.
    pub fn position_for(&self, offset: u64) -> u64 {
        let relative = offset.saturating_sub(self.base_offset).min(u32::MAX as u64) as u32;
        self.index.floor_position(relative) as u64
    }

    /// The time index with the segment's largest timestamp as its last entry,
    /// which is what recovery reads back as the segment's maximum.
    pub fn final_time_index(&mut self) -> &TimeIndex {
        if self.max_timestamp >= 0 {
            let relative = self.relative(self.offset_of_max_timestamp);
            self.time_index.push(self.max_timestamp, relative);
        }
        &self.time_index
    }
}

/// Relative offset -> byte position, one entry every `log.index.interval.bytes`.
#[derive(Debug, Default, Clone)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        debug_assert!(self
            .entries
            .last()
            .is_none_or(|&(o, p)| o < relative_offset && p < position));
        self.entries.push((relative_offset, position));
    }

    /// Position of the last indexed batch at or before `relative_offset` (0 if none).
    pub fn floor_position(&self, relative_offset: u32) -> u32 {
        let i = self.entries.partition_point(|&(o, _)| o <= relative_offset);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].1
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 8);
        for &(o, p) in &self.entries {
            out.extend_from_slice(&o.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }

    /// Parses a `.index` file; `None` if it is malformed or out of order.
    pub fn from_bytes(bytes: &[u8], segment_size: u64) -> Option<OffsetIndex> {
        if !bytes.len().is_multiple_of(8) {
            return None;
        }
        let mut index = OffsetIndex::default();
        for chunk in bytes.chunks_exact(8) {
            let o = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let p = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            if p as u64 >= segment_size
                || index
                    .entries
                    .last()
                    .is_some_and(|&(lo, lp)| lo >= o || lp >= p)
            {
                return None;
            }
            index.entries.push((o, p));
        }
        Some(index)
    }
}

/// Largest timestamp so far -> relative offset of the batch that carried it.
#[derive(Debug, Default, Clone)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    pub fn push(&mut self, max_timestamp: i64, relative_offset: u32) {
        if self.entries.last().is_none_or(|&(t, _)| max_timestamp > t) {
            self.entries.push((max_timestamp, relative_offset));
        }
    }

    /// Relative offset from which a scan for the first timestamp >= `target`
    /// may start: the entry before the first whose timestamp reaches it.
    pub fn scan_start(&self, target: i64) -> u32 {
        let i = self.entries.partition_point(|&(t, _)| t < target);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].1
        }
    }

    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 12);
        for &(t, o) in &self.entries {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&o.to_be_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<TimeIndex> {
        if !bytes.len().is_multiple_of(12) {
            return None;
        }
        let mut index = TimeIndex::default();
        for chunk in bytes.chunks_exact(12) {
            let mut t = [0u8; 8];
            t.copy_from_slice(&chunk[..8]);
            let t = i64::from_be_bytes(t);
            let o = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
            if index.entries.last().is_some_and(|&(lt, _)| lt >= t) {
                return None;
            }
            index.entries.push((t, o));
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_lookup() {
        let mut i = OffsetIndex::default();
        i.push(10, 4096);
        i.push(20, 8192);
        assert_eq!(i.floor_position(5), 0);
        assert_eq!(i.floor_position(10), 4096);
        assert_eq!(i.floor_position(19), 4096);
        assert_eq!(i.floor_position(25), 8192);
        let back = OffsetIndex::from_bytes(&i.to_bytes(), 10_000).unwrap();
        assert_eq!(back.floor_position(25), 8192);
        assert!(OffsetIndex::from_bytes(&i.to_bytes(), 5000).is_none());
    }

    #[test]
    fn time_index_scan_start() {
        let mut t = TimeIndex::default();
        t.push(100, 0);
        t.push(200, 5);
        t.push(150, 7); // not a new maximum: ignored
        t.push(300, 9);
        assert_eq!(t.scan_start(50), 0);
        assert_eq!(t.scan_start(200), 0);
        assert_eq!(t.scan_start(250), 5);
        assert_eq!(t.last(), Some((300, 9)));
        assert_eq!(
            TimeIndex::from_bytes(&t.to_bytes()).unwrap().last(),
            Some((300, 9))
        );
    }
}
