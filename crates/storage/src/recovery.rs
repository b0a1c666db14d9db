//! Opening a partition's log at start-up: find its segments, load the indexes
//! of sealed segments below the recovery point, and scan the others batch by
//! batch with CRC32C, truncating at the first byte that is not a whole valid
//! batch. Nothing acknowledged is lost (acknowledged bytes were written before
//! the acknowledgment) and nothing torn is served.
//!
//! It also rebuilds the idempotent-producer state: from the newest usable
//! snapshot, replaying the headers of the batches after it, which the same
//! segment scan hands over (a sealed segment that holds such batches is
//! scanned instead of loaded from its indexes).
//!
//! Runs once per partition on its owning shard before the shard takes
//! traffic; it uses blocking std I/O, which is fine while nothing else runs.
use super::index::{OffsetIndex, SegmentMeta, TimeIndex};
use super::off_shard::FileWrite;
use super::producer_state::{list_snapshots, read_snapshot, remove_snapshot, ProducerStateMap};
use super::StorageError;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use wire::batch::{BatchHeader, BATCH_HEADER_LEN};

pub const RECOVERY_POINT_FILE: &str = "recovery-point";
pub const LOG_START_FILE: &str = "log-start-offset";

#[derive(Debug)]
pub struct RecoveredPartition {
    pub segments: Vec<SegmentMeta>,
    pub log_start_offset: u64,
    /// Bytes cut off torn tails.
    pub truncated_bytes: u64,
    /// Idempotent-producer state as of the end of the log.
    pub producers: ProducerStateMap,
    /// (leader epoch, base offset) of every scanned batch that carried a
    /// newer epoch than the batch before it: what the leader-epoch cache
    /// learns from the headers in case its checkpoint lags.
    pub epoch_starts: Vec<(i32, u64)>,
}

impl RecoveredPartition {
    /// The offset after the last batch.
    fn end_offset(&self) -> u64 {
        self.segments
            .last()
            .map(|s| s.next_offset)
            .unwrap_or(self.log_start_offset)
    }
}

pub fn segment_path(dir: &Path, base_offset: u64, extension: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{extension}"))
}

/// Reads a small decimal checkpoint file; `None` if absent or unreadable.
pub fn read_checkpoint(dir: &Path, name: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub fn write_checkpoint(dir: &Path, name: &str, value: u64) -> Result<(), StorageError> {
    checkpoint_file(dir, name, value).write_here()
}

/// A checkpoint file's new content, to write off the shard.
pub fn checkpoint_file(dir: &Path, name: &str, value: u64) -> FileWrite {
    FileWrite {
        path: dir.join(name),
        bytes: value.to_string().into_bytes(),
        context: "cannot write checkpoint",
    }
}

/// Base offsets of the `.log` files in `dir`, ascending.
pub(super) fn list_segments(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io("cannot list", dir, e))?;
    let mut bases: Vec<u64> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse::<u64>().ok()
        })
        .collect();
    bases.sort_unstable();
    Ok(bases)
}

/// Recovers every segment of a partition directory and its producer state:
/// from the newest snapshot that is readable and not past the recovered log
/// end, else from an older one, else by replaying every segment. At most one
/// pass per snapshot file plus one.
pub fn recover_partition(
    dir: &Path,
    index_interval_bytes: u32,
) -> Result<RecoveredPartition, StorageError> {
    for offset in list_snapshots(dir).into_iter().rev() {
        let producers = match read_snapshot(dir, offset) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a producer-state snapshot");
                remove_snapshot(dir, offset);
                continue;
            }
        };
        let recovered = recover_segments(dir, index_interval_bytes, offset, producers)?;
        if offset <= recovered.end_offset() {
            return Ok(recovered);
        }
        // The log lost batches the snapshot accounts for (Kafka also drops
        // snapshots above the log end when it truncates).
        tracing::warn!(
            dir = %dir.display(),
            snapshot = offset,
            log_end = recovered.end_offset(),
            "a producer-state snapshot is past the log end: ignoring it"
        );
        remove_snapshot(dir, offset);
    }
    recover_segments(dir, index_interval_bytes, 0, ProducerStateMap::default())
}

/// Recovers the segments; `producers` is the state as of `replay_from`, and
/// every batch at or after that offset is replayed into it.
fn recover_segments(
    dir: &Path,
    index_interval_bytes: u32,
    replay_from: u64,
    mut producers: ProducerStateMap,
) -> Result<RecoveredPartition, StorageError> {
    let bases = list_segments(dir)?;
    let recovery_point = read_checkpoint(dir, RECOVERY_POINT_FILE).unwrap_or(0);
    let mut log_start_offset = read_checkpoint(dir, LOG_START_FILE).unwrap_or(0);
    let mut segments = Vec::with_capacity(bases.len());
    let mut truncated_bytes = 0;
    let mut epoch_starts: Vec<(i32, u64)> = Vec::new();
    let mut replay = |header: &BatchHeader| {
        if header.base_offset >= replay_from as i64 {
            producers.replay(header);
        }
        if epoch_starts
            .last()
            .is_none_or(|&(e, _)| header.leader_epoch > e)
        {
            epoch_starts.push((header.leader_epoch, header.base_offset as u64));
        }
    };
    for (i, &base) in bases.iter().enumerate() {
        let successor = bases.get(i + 1).copied();
        let sealed_and_flushed = successor.is_some_and(|next| next <= recovery_point);
        let needs_replay = successor.is_none_or(|next| next > replay_from);
        let loaded = if sealed_and_flushed && !needs_replay {
            load_sealed_segment(dir, base, successor.unwrap_or(base))
        } else {
            None
        };
        let (mut segment, cut) = match loaded {
            Some(s) => (s, 0),
            None => scan_segment(dir, base, index_interval_bytes, &mut replay)?,
        };
        truncated_bytes += cut;
        // A sealed segment ends where its successor starts; compaction may
        // have removed its last records, which leaves a gap, not a hole.
        let hole = successor.is_some_and(|next| cut > 0 || segment.next_offset > next);
        if let (Some(next), false) = (successor, hole) {
            segment.next_offset = next;
        }
        segments.push(segment);
        if hole {
            // A sealed segment lost its tail: later segments would leave a gap
            // in the offsets, so they go (Apache Kafka does the same).
            for &later in &bases[i + 1..] {
                remove_segment_files(dir, later);
            }
            break;
        }
    }
    if let Some(first) = segments.first() {
        log_start_offset = log_start_offset.max(first.base_offset);
    }
    if let Some(last) = segments.last() {
        log_start_offset = log_start_offset.min(last.next_offset);
    }
    Ok(RecoveredPartition {
        segments,
        log_start_offset,
        truncated_bytes,
        producers,
        epoch_starts,
    })
}

pub fn remove_segment_files(dir: &Path, base_offset: u64) {
    for ext in ["log", "index", "timeindex"] {
        let _ = std::fs::remove_file(segment_path(dir, base_offset, ext));
    }
}

/// A sealed segment below the recovery point: its indexes are trusted.
fn load_sealed_segment(dir: &Path, base: u64, next_offset: u64) -> Option<SegmentMeta> {
    let size = std::fs::metadata(segment_path(dir, base, "log"))
        .ok()?
        .len();
    let index_bytes = std::fs::read(segment_path(dir, base, "index")).ok()?;
    let time_bytes = std::fs::read(segment_path(dir, base, "timeindex")).ok()?;
    let index = OffsetIndex::from_bytes(&index_bytes, size.max(1))?;
    let time_index = TimeIndex::from_bytes(&time_bytes)?;
    let (max_timestamp, relative) = time_index.last().unwrap_or((-1, 0));
    Some(SegmentMeta {
        base_offset: base,
        size,
        next_offset,
        index,
        time_index,
        bytes_since_index: 0,
        max_timestamp,
        offset_of_max_timestamp: base + relative as u64,
    })
}

/// Reads every batch of a segment, checks it, rebuilds the indexes, hands
/// each valid batch's header to `visit` and cuts the file at the first bad
/// byte. Returns the segment and the bytes cut.
fn scan_segment(
    dir: &Path,
    base: u64,
    index_interval_bytes: u32,
    visit: &mut dyn FnMut(&BatchHeader),
) -> Result<(SegmentMeta, u64), StorageError> {
    let path = segment_path(dir, base, "log");
    let (file, file_len) = open_segment_file(&path)?;
    let mut reader = BufReader::with_capacity(1 << 20, &file);
    let mut segment = SegmentMeta::empty(base);
    let mut batch = Vec::new();
    while let Some(header) = read_valid_batch(
        &mut reader,
        &mut batch,
        file_len - segment.size,
        segment.next_offset,
    ) {
        segment.note_batch(&header, index_interval_bytes);
        visit(&header);
    }
    let cut = file_len - segment.size;
    if cut > 0 {
        file.set_len(segment.size)
            .map_err(|e| StorageError::io("cannot truncate segment", &path, e))?;
        file.sync_all()
            .map_err(|e| StorageError::io("cannot sync segment", &path, e))?;
        if cut >= 4096 || !segment.size.is_multiple_of(4096) {
            tracing::warn!(segment = %path.display(), bytes = cut, "truncated a torn or padded tail");
        }
    }
    Ok((segment, cut))
}

/// Opens a segment file read-write (to scan it and cut it) with its length.
pub(super) fn open_segment_file(path: &Path) -> Result<(std::fs::File, u64), StorageError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io("cannot open segment", path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| StorageError::io("cannot stat segment", path, e))?
        .len();
    Ok((file, file_len))
}

/// Reads the next batch into `batch` if it is whole, has magic 2, a base
/// offset at or past `expected_base` (compaction leaves gaps) and a matching CRC.
pub(super) fn read_valid_batch(
    reader: &mut impl Read,
    batch: &mut Vec<u8>,
    remaining: u64,
    expected_base: u64,
) -> Option<BatchHeader> {
    if remaining < BATCH_HEADER_LEN as u64 {
        return None;
    }
    batch.resize(BATCH_HEADER_LEN, 0);
    reader.read_exact(batch).ok()?;
    let header = BatchHeader::parse(batch).ok()?;
    if header.magic != 2
        || header.base_offset < expected_base as i64
        || header.last_offset_delta < 0
        || header.size as u64 > remaining
    {
        return None;
    }
    batch.resize(header.size, 0);
    reader.read_exact(&mut batch[BATCH_HEADER_LEN..]).ok()?;
    header.crc_matches(batch).then_some(header)
}

/// The first DmaFile a reactor opens on a device must be an existing,
/// non-empty file, or later reads fail with EOPNOTSUPP (glommio issues 605
/// and 670 on virtio disks). Each shard calls this before touching segments.
pub async fn probe_dma(data_dir: &Path) -> Result<(), StorageError> {
    let path = data_dir.join(".dma-probe");
    let needs_write = std::fs::metadata(&path)
        .map(|m| m.len() < 4096)
        .unwrap_or(true);
    if needs_write {
        // Every shard may get here at once: each writes its own temporary file.
        let tmp = data_dir.join(format!(
            ".dma-probe.{}.{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&tmp, vec![0u8; 4096])
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| StorageError::io("cannot write", &path, e))?;
    }
    let file = glommio::io::OpenOptions::new()
        .read(true)
        .write(true)
        .dma_open(&path)
        .await
        .map_err(|e| StorageError::io("cannot open", &path, e))?;
    file.read_at(0, 4096)
        .await
        .map_err(|e| StorageError::io("cannot read", &path, e))?;
    let _ = file.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::Compression;
    use wire::batch::patch_batch;
    use wire::testing::sample_batch;

    fn write_segment(dir: &Path, base: u64, batches: usize, garbage: &[u8]) -> u64 {
        let mut bytes = Vec::new();
        let mut offset = base;
        for _ in 0..batches {
            let mut b = sample_batch(3, Compression::None);
            patch_batch(&mut b, offset as i64, 0);
            offset += 3;
            bytes.extend_from_slice(&b);
        }
        bytes.extend_from_slice(garbage);
        std::fs::write(segment_path(dir, base, "log"), bytes).unwrap();
        offset
    }

    #[test]
    fn torn_tail_is_cut_and_offsets_continue() {
        let dir = tempfile::tempdir().unwrap();
        let mut torn = sample_batch(3, Compression::None);
        patch_batch(&mut torn, 30, 0);
        torn.truncate(torn.len() - 7);
        let next = write_segment(dir.path(), 0, 10, &torn);
        let p = recover_partition(dir.path(), 200).unwrap();
        assert_eq!(p.segments.len(), 1);
        assert_eq!(p.segments[0].next_offset, next);
        assert_eq!(p.truncated_bytes, torn.len() as u64);
        let len = std::fs::metadata(segment_path(dir.path(), 0, "log"))
            .unwrap()
            .len();
        assert_eq!(len, p.segments[0].size);
    }

    #[test]
    fn zero_padding_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), 0, 2, &[0u8; 3000]);
        let p = recover_partition(dir.path(), 4096).unwrap();
        assert_eq!(p.segments[0].next_offset, 6);
        assert_eq!(p.truncated_bytes, 3000);
    }

    #[test]
    fn segments_after_a_hole_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), 0, 2, b"bad");
        write_segment(dir.path(), 7, 2, &[]);
        let p = recover_partition(dir.path(), 4096).unwrap();
        assert_eq!(p.segments.len(), 1);
        assert!(!segment_path(dir.path(), 7, "log").exists());
    }
}
