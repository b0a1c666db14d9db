//! Idempotent-producer state of one partition: for each producer id, its
//! epoch and the metadata of its last five batches, and the snapshot files
//! (`<offset, 20 digits>.snapshot`) that let a restart skip re-reading the log.
//!
//! Lives inside a `PartitionLog`, so on the partition's owning shard only.
//! The state machine is pure (no I/O): `check` decides whether a batch is
//! new, a duplicate or refused, and `record` accounts for an appended batch.
//! It follows Apache Kafka's `ProducerStateManager` / `ProducerAppendInfo`
//! (storage/src/main/java/org/apache/kafka/storage/internals/log/), with one
//! simplification: an unknown producer must start at sequence 0 (Kafka 2.5+
//! accepts any sequence from a producer it does not know).
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use thiserror::Error;
use wire::batch::BatchHeader;

/// Batches remembered per producer for duplicate detection: Kafka's
/// `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`, which matches the client's
/// `max.in.flight.requests.per.connection` limit of 5 for idempotence.
pub const BATCHES_RETAINED: usize = 5;
/// Snapshot files kept per partition: the newest is used, the older one is
/// the fallback if the newest turns out corrupt.
pub const SNAPSHOTS_KEPT: usize = 2;
/// Most producers one snapshot may hold, so a corrupt count cannot make the
/// loader allocate without bound.
const SNAPSHOT_PRODUCERS_MAX: usize = 10_000_000;

const SNAPSHOT_EXTENSION: &str = "snapshot";
const SNAPSHOT_MAGIC: &[u8; 4] = b"TMPS";
const SNAPSHOT_VERSION: u16 = 1;
/// magic, version, reserved, crc32c, offset, producer count.
const SNAPSHOT_HEADER_BYTES: usize = 4 + 2 + 2 + 4 + 8 + 4;
const SNAPSHOT_CRC_AT: usize = 8;
/// Producer id, epoch, batch count.
const PRODUCER_BYTES: usize = 8 + 2 + 1;
/// First and last sequence, base and last offset, max timestamp.
const BATCH_BYTES: usize = 4 + 4 + 8 + 8 + 8;

/// Why a producer's batch is refused; the log maps it to a `StorageError`.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum ProducerStateError {
    #[error("producer {producer_id} used epoch {epoch}, older than its current epoch {current}")]
    InvalidEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id} sent sequence {got}, expected {expected}")]
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
}

/// Why a snapshot file cannot be used; the caller falls back to an older one.
#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: &'static str },
}

/// The producer fields of one batch header (a batch with a producer id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
}

impl ProducerBatch {
    /// `None` for a batch without a producer id (not idempotent).
    pub fn of(header: &BatchHeader) -> Option<ProducerBatch> {
        (header.producer_id >= 0).then(|| ProducerBatch {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            first_seq: header.base_sequence,
            last_seq: increment_sequence(header.base_sequence, header.last_offset_delta.max(0)),
        })
    }
}

/// Where one remembered batch landed in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: u64,
    pub last_offset: u64,
    pub max_timestamp: i64,
}

impl BatchMeta {
    pub fn of(batch: &ProducerBatch, header: &BatchHeader) -> BatchMeta {
        BatchMeta {
            first_seq: batch.first_seq,
            last_seq: batch.last_seq,
            base_offset: header.base_offset.max(0) as u64,
            last_offset: header.last_offset().max(0) as u64,
            max_timestamp: header.max_timestamp,
        }
    }
}

/// What `check` decided about a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Next in sequence (or the first of a new epoch): append it.
    Append,
    /// Already in the log: answer with the original batch, store nothing.
    Duplicate(BatchMeta),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    /// Oldest first, at most `BATCHES_RETAINED`.
    batches: VecDeque<BatchMeta>,
}

/// Producer id -> epoch and last batches, for one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateMap {
    producers: BTreeMap<i64, ProducerEntry>,
}

impl ProducerStateMap {
    /// Decides what to do with a client's batch, as Kafka's
    /// `UnifiedLog.analyzeAndValidateProducerState` (duplicates first) and
    /// `ProducerAppendInfo.checkProducerEpoch` / `checkSequence` do.
    pub fn check(&self, batch: &ProducerBatch) -> Result<SequenceCheck, ProducerStateError> {
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            return expect_first(batch);
        };
        if batch.epoch < entry.epoch {
            return Err(ProducerStateError::InvalidEpoch {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                current: entry.epoch,
            });
        }
        if batch.epoch > entry.epoch {
            // A new epoch restarts the sequence at 0.
            return expect_first(batch);
        }
        let duplicate = entry
            .batches
            .iter()
            .find(|b| b.first_seq == batch.first_seq && b.last_seq == batch.last_seq);
        if let Some(original) = duplicate {
            return Ok(SequenceCheck::Duplicate(*original));
        }
        let Some(last) = entry.batches.back() else {
            return expect_first(batch);
        };
        let expected = increment_sequence(last.last_seq, 1);
        if batch.first_seq != expected {
            return Err(ProducerStateError::OutOfOrder {
                producer_id: batch.producer_id,
                expected,
                got: batch.first_seq,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Accounts for a batch now in the log (or queued for it). No checks:
    /// recovery replays what the log holds. A newer epoch forgets the old
    /// epoch's batches; an older one (never accepted by `check`) is ignored.
    pub fn record(&mut self, batch: &ProducerBatch, meta: BatchMeta) {
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: batch.epoch,
                batches: VecDeque::with_capacity(BATCHES_RETAINED),
            });
        if batch.epoch < entry.epoch {
            return;
        }
        if batch.epoch > entry.epoch {
            entry.epoch = batch.epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_RETAINED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(meta);
    }

    /// Records a batch header read back from the log, if it has a producer.
    pub fn replay(&mut self, header: &BatchHeader) {
        if let Some(batch) = ProducerBatch::of(header) {
            self.record(&batch, BatchMeta::of(&batch, header));
        }
    }

    /// The snapshot of this state as of log offset `offset` (every batch
    /// below it is accounted for).
    pub fn to_snapshot(&self, offset: u64) -> Vec<u8> {
        let batches: usize = self.producers.values().map(|e| e.batches.len()).sum();
        let mut out = Vec::with_capacity(
            SNAPSHOT_HEADER_BYTES + self.producers.len() * PRODUCER_BYTES + batches * BATCH_BYTES,
        );
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes()); // CRC, filled below
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (id, entry) in &self.producers {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            out.push(entry.batches.len() as u8);
            for b in &entry.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
                out.extend_from_slice(&b.max_timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out[SNAPSHOT_CRC_AT + 4..]);
        out[SNAPSHOT_CRC_AT..SNAPSHOT_CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses a snapshot: its offset and state. `Err` names what is wrong.
    pub fn from_snapshot(bytes: &[u8]) -> Result<(u64, ProducerStateMap), &'static str> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4)? != SNAPSHOT_MAGIC {
            return Err("bad magic");
        }
        if r.u16()? != SNAPSHOT_VERSION {
            return Err("unknown version");
        }
        if r.u16()? != 0 {
            return Err("reserved bits set");
        }
        let crc = r.u32()?;
        if crc32c::crc32c(&bytes[SNAPSHOT_CRC_AT + 4..]) != crc {
            return Err("CRC32C mismatch");
        }
        let offset = r.u64()?;
        let count = r.u32()? as usize;
        if count > SNAPSHOT_PRODUCERS_MAX || count * PRODUCER_BYTES > r.remaining() {
            return Err("producer count larger than the file");
        }
        let mut map = ProducerStateMap::default();
        for _ in 0..count {
            let id = r.u64()? as i64;
            let entry = read_entry(&mut r)?;
            if id < 0 || map.producers.insert(id, entry).is_some() {
                return Err("bad or repeated producer id");
            }
        }
        if r.remaining() != 0 {
            return Err("bytes after the last producer");
        }
        Ok((offset, map))
    }
}

/// The first batch of a producer (or of a new epoch) must start at 0.
fn expect_first(batch: &ProducerBatch) -> Result<SequenceCheck, ProducerStateError> {
    if batch.first_seq == 0 {
        Ok(SequenceCheck::Append)
    } else {
        Err(ProducerStateError::OutOfOrder {
            producer_id: batch.producer_id,
            expected: 0,
            got: batch.first_seq,
        })
    }
}

/// `sequence + increment` (`increment` >= 0), wrapping from `i32::MAX` to 0
/// as Kafka's `DefaultRecordBatch.incrementSequence` does.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    debug_assert!(increment >= 0);
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

fn read_entry(r: &mut Reader<'_>) -> Result<ProducerEntry, &'static str> {
    let epoch = r.u16()? as i16;
    let batches = r.take(1)?[0] as usize;
    if batches > BATCHES_RETAINED || batches * BATCH_BYTES > r.remaining() {
        return Err("bad batch count");
    }
    let mut entry = ProducerEntry {
        epoch,
        batches: VecDeque::with_capacity(BATCHES_RETAINED),
    };
    for _ in 0..batches {
        entry.batches.push_back(BatchMeta {
            first_seq: r.u32()? as i32,
            last_seq: r.u32()? as i32,
            base_offset: r.u64()?,
            last_offset: r.u64()?,
            max_timestamp: r.u64()? as i64,
        });
    }
    Ok(entry)
}

/// A bounds-checked big-endian reader.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.remaining() < n {
            return Err("file ends early");
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u16(&mut self) -> Result<u16, &'static str> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        self.array().map(u64::from_be_bytes)
    }
}

pub fn snapshot_path(dir: &Path, offset: u64) -> PathBuf {
    dir.join(format!("{offset:020}.{SNAPSHOT_EXTENSION}"))
}

/// Offsets of the snapshot files in `dir`, ascending. Unreadable entries are
/// skipped.
pub fn list_snapshots(dir: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut offsets: Vec<u64> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".snapshot")?.parse::<u64>().ok()
        })
        .collect();
    offsets.sort_unstable();
    offsets
}

/// Reads and checks the snapshot at `offset`.
pub fn read_snapshot(dir: &Path, offset: u64) -> Result<ProducerStateMap, SnapshotError> {
    let path = snapshot_path(dir, offset);
    let bytes = std::fs::read(&path).map_err(|source| SnapshotError::Io {
        path: path.clone(),
        source,
    })?;
    match ProducerStateMap::from_snapshot(&bytes) {
        Ok((at, map)) if at == offset => Ok(map),
        Ok(_) => Err(SnapshotError::Corrupt {
            path,
            reason: "offset differs from the file name",
        }),
        Err(reason) => Err(SnapshotError::Corrupt { path, reason }),
    }
}

/// Writes a snapshot made earlier (`ProducerStateMap::to_snapshot`) and
/// removes the older ones past those kept; blocking.
pub fn write_snapshot_bytes(
    dir: &Path,
    offset: u64,
    snapshot: &[u8],
) -> Result<(), std::io::Error> {
    fsutil::write_file_atomically(&snapshot_path(dir, offset), snapshot)?;
    let all = list_snapshots(dir);
    let stale = all.len().saturating_sub(SNAPSHOTS_KEPT);
    for &old in &all[..stale] {
        remove_snapshot(dir, old);
    }
    Ok(())
}

pub fn remove_snapshot(dir: &Path, offset: u64) {
    let _ = std::fs::remove_file(snapshot_path(dir, offset));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: i64, epoch: i16, first: i32, count: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: id,
            epoch,
            first_seq: first,
            last_seq: increment_sequence(first, count - 1),
        }
    }

    /// Checks then records a batch at `offset`, as the log's append does.
    fn append(map: &mut ProducerStateMap, b: ProducerBatch, offset: u64) -> SequenceCheck {
        let decision = map.check(&b).expect("accepted");
        if decision == SequenceCheck::Append {
            map.record(
                &b,
                BatchMeta {
                    first_seq: b.first_seq,
                    last_seq: b.last_seq,
                    base_offset: offset,
                    last_offset: offset,
                    max_timestamp: offset as i64,
                },
            );
        }
        decision
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut m = ProducerStateMap::default();
        assert_eq!(append(&mut m, batch(7, 0, 0, 3), 0), SequenceCheck::Append);
        assert_eq!(append(&mut m, batch(7, 0, 3, 2), 3), SequenceCheck::Append);
        match m.check(&batch(7, 0, 0, 3)) {
            Ok(SequenceCheck::Duplicate(orig)) => assert_eq!(orig.base_offset, 0),
            other => panic!("{other:?}"),
        }
        match m.check(&batch(7, 0, 3, 2)) {
            Ok(SequenceCheck::Duplicate(orig)) => assert_eq!(orig.base_offset, 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut m = ProducerStateMap::default();
        for i in 0..6 {
            append(&mut m, batch(1, 0, i, 1), i as u64);
        }
        // Batch 0 fell out of the window: no longer a duplicate, now a gap.
        assert!(matches!(
            m.check(&batch(1, 0, 0, 1)),
            Err(ProducerStateError::OutOfOrder { expected: 6, .. })
        ));
        assert!(matches!(
            m.check(&batch(1, 0, 1, 1)),
            Ok(SequenceCheck::Duplicate(_))
        ));
    }

    #[test]
    fn gaps_and_unknown_producers_are_out_of_order() {
        let mut m = ProducerStateMap::default();
        assert_eq!(
            m.check(&batch(1, 0, 5, 1)),
            Err(ProducerStateError::OutOfOrder {
                producer_id: 1,
                expected: 0,
                got: 5
            })
        );
        append(&mut m, batch(1, 0, 0, 2), 0);
        assert!(matches!(
            m.check(&batch(1, 0, 3, 1)),
            Err(ProducerStateError::OutOfOrder { expected: 2, .. })
        ));
        // A batch that overlaps the last one without matching it exactly.
        assert!(m.check(&batch(1, 0, 1, 2)).is_err());
    }

    #[test]
    fn epochs_fence_old_producers_and_restart_sequences() {
        let mut m = ProducerStateMap::default();
        append(&mut m, batch(1, 3, 0, 5), 0);
        assert_eq!(
            m.check(&batch(1, 2, 5, 1)),
            Err(ProducerStateError::InvalidEpoch {
                producer_id: 1,
                epoch: 2,
                current: 3
            })
        );
        assert!(matches!(
            m.check(&batch(1, 4, 5, 1)),
            Err(ProducerStateError::OutOfOrder { expected: 0, .. })
        ));
        assert_eq!(append(&mut m, batch(1, 4, 0, 1), 5), SequenceCheck::Append);
        // The old epoch is now fenced, and its batches are forgotten.
        assert!(m.check(&batch(1, 3, 0, 5)).is_err());
        assert!(matches!(
            m.check(&batch(1, 4, 1, 1)),
            Ok(SequenceCheck::Append)
        ));
    }

    #[test]
    fn sequences_wrap_around_at_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        let mut m = ProducerStateMap::default();
        m.record(
            &batch(1, 0, i32::MAX - 2, 3),
            BatchMeta {
                first_seq: i32::MAX - 2,
                last_seq: i32::MAX,
                base_offset: 0,
                last_offset: 2,
                max_timestamp: 0,
            },
        );
        let wrapping = batch(1, 0, 0, 4);
        assert_eq!(wrapping.last_seq, 3);
        assert_eq!(append(&mut m, wrapping, 3), SequenceCheck::Append);
        let across = batch(1, 0, 4, 1);
        assert_eq!(append(&mut m, across, 7), SequenceCheck::Append);
        let spanning = batch(2, 0, i32::MAX, 2);
        assert_eq!(spanning.last_seq, 0);
    }

    #[test]
    fn snapshot_round_trip() {
        let mut m = ProducerStateMap::default();
        for id in 0..3 {
            for i in 0..7 {
                append(
                    &mut m,
                    batch(id, id as i16, i * 2, 2),
                    (id * 100 + i as i64) as u64,
                );
            }
        }
        let bytes = m.to_snapshot(1234);
        let (offset, back) = ProducerStateMap::from_snapshot(&bytes).unwrap();
        assert_eq!(offset, 1234);
        assert_eq!(back, m);
        let empty = ProducerStateMap::default().to_snapshot(0);
        assert_eq!(
            ProducerStateMap::from_snapshot(&empty).unwrap().1,
            ProducerStateMap::default()
        );
    }

    #[test]
    fn corrupt_snapshots_are_refused_never_panic() {
        let mut m = ProducerStateMap::default();
        append(&mut m, batch(9, 1, 0, 4), 10);
        append(&mut m, batch(10, 0, 0, 1), 14);
        let good = m.to_snapshot(15);
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x41;
            assert!(ProducerStateMap::from_snapshot(&bad).is_err(), "byte {i}");
        }
        for len in 0..good.len() {
            assert!(ProducerStateMap::from_snapshot(&good[..len]).is_err());
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(ProducerStateMap::from_snapshot(&longer).is_err());
    }

    #[test]
    fn snapshot_files_fall_back_and_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = ProducerStateMap::default();
        append(&mut m, batch(1, 0, 0, 1), 0);
        for offset in [1, 5, 9] {
            write_snapshot_bytes(dir.path(), offset, &m.to_snapshot(offset)).unwrap();
        }
        assert_eq!(list_snapshots(dir.path()), vec![5, 9]);
        assert_eq!(read_snapshot(dir.path(), 9).unwrap(), m);
        std::fs::write(snapshot_path(dir.path(), 9), b"TMPS garbage").unwrap();
        assert!(matches!(
            read_snapshot(dir.path(), 9),
            Err(SnapshotError::Corrupt { .. })
        ));
        // A file renamed to another offset is refused too.
        std::fs::copy(snapshot_path(dir.path(), 5), snapshot_path(dir.path(), 6)).unwrap();
        assert!(read_snapshot(dir.path(), 6).is_err());
        assert!(read_snapshot(dir.path(), 7).is_err());
    }
}
