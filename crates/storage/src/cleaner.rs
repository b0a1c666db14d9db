//! Log compaction for topics with `cleanup.policy=compact`: the sealed
//! segments of a log are rewritten so that only the newest record of each key
//! remains (and tombstones, null values, only until `delete.retention.ms`).
//! Offsets never change: a compacted log has gaps, which readers skip.
//!
//! The rewrite reads and writes whole files, so it runs on glommio's blocking
//! thread pool, off the shard's executor; sealed segments are immutable, so
//! reading them from another thread is safe. The owning shard then swaps the
//! cleaned files in (`PartitionLog::compact`).
//!
//! Records are read with `protocol::records`, as bounded streams: a batch that
//! does not decode, or decompresses past its bound, is kept as it is (and
//! logged, at most once per `SKIP_LOG_INTERVAL`), never opened further.
use super::index::SegmentMeta;
use super::recovery::{read_valid_batch, segment_path};
use super::StorageError;
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};
use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wire::batch::{stamp_batch, BatchError, BatchHeader, HeaderStamp};
use wire::records::{open_records, BatchRecords};

/// At most one log line per interval about batches kept unopened (each
/// pass over a poisoned log would meet them again).
const SKIP_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// One sealed segment to clean: its base offset and logical size.
#[derive(Debug, Clone, Copy)]
pub struct SealedSegment {
    pub base_offset: u64,
    pub size: u64,
}

/// A segment rewritten into `<base>.cleaned`, ready to be swapped in.
#[derive(Debug)]
pub struct CleanedSegment {
    pub meta: SegmentMeta,
    pub records_removed: u64,
}

pub fn cleaned_path(dir: &Path, base_offset: u64) -> PathBuf {
    segment_path(dir, base_offset, "cleaned")
}

/// Rewrites the segments that hold superseded records. Segments with nothing
/// to remove are left alone (and not returned). No batch decompresses past
/// `decompressed_bytes_max` (`records::decompressed_bytes_max` of the topic).
pub fn clean_segments(
    dir: &Path,
    segments: &[SealedSegment],
    delete_retention_ms: i64,
    now_ms: i64,
    index_interval_bytes: u32,
    decompressed_bytes_max: usize,
) -> Result<Vec<CleanedSegment>, StorageError> {
    let bound = decompressed_bytes_max;
    let latest = latest_offsets(dir, segments, bound)?;
    let mut cleaned = Vec::new();
    for segment in segments {
        let keep = |r: &Record, batch_max_ts: i64| match &r.key {
            // Records without a key cannot be superseded.
            None => true,
            Some(key) => {
                let newest = latest.get(key).is_none_or(|&o| o == r.offset);
                let live_tombstone =
                    r.value.is_some() || now_ms - batch_max_ts <= delete_retention_ms;
                newest && live_tombstone
            }
        };
        if let Some(c) = rewrite_segment(dir, segment, keep, index_interval_bytes, bound)? {
            cleaned.push(c);
        }
    }
    Ok(cleaned)
}

/// Every batch of a sealed segment, as (header, bytes).
fn batches(dir: &Path, segment: &SealedSegment) -> Result<Vec<(BatchHeader, Bytes)>, StorageError> {
    let path = segment_path(dir, segment.base_offset, "log");
    let file = std::fs::File::open(&path)
        .map_err(|e| StorageError::io("cannot open segment", &path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut out = Vec::new();
    let mut position = 0u64;
    let mut expected = segment.base_offset;
    let mut buf = Vec::new();
    while let Some(header) =
        read_valid_batch(&mut reader, &mut buf, segment.size - position, expected)
    {
        position += header.size as u64;
        expected = header.last_offset() as u64 + 1;
        out.push((header, Bytes::copy_from_slice(&buf)));
    }
    Ok(out)
}

/// Key -> offset of its newest record, over all the segments. A batch that
/// stops decoding part way has given the keys before that point: it is kept
/// whole by `rewrite_segment`, so no key's newest record is lost.
fn latest_offsets(
    dir: &Path,
    segments: &[SealedSegment],
    decompressed_bytes_max: usize,
) -> Result<HashMap<Bytes, i64>, StorageError> {
    let mut latest = HashMap::new();
    for segment in segments {
        for (_, batch) in batches(dir, segment)? {
            let keys = open_records(&batch, decompressed_bytes_max).and_then(|mut records| {
                while let Some((offset, key)) = records.next_key()? {
                    if let Some(key) = key {
                        latest.insert(key, offset);
                    }
                }
                Ok(())
            });
            if let Err(e) = keys {
                note_kept_unopened(dir, &batch, &e);
            }
        }
    }
    Ok(latest)
}

/// The records of one batch that `keep` keeps, and how many it had; an
/// error when the batch does not decode within its bound.
fn kept_records(
    mut records: BatchRecords<'_>,
    keep: &impl Fn(&Record, i64) -> bool,
) -> Result<(Vec<Record>, usize, Compression), BatchError> {
    let max_timestamp = records.header().max_timestamp;
    let compression = records.compression();
    let (mut kept, mut total) = (Vec::new(), 0usize);
    while let Some(record) = records.next_record()? {
        total += 1;
        if keep(&record, max_timestamp) {
            kept.push(record);
        }
    }
    records.finish()?;
    Ok((kept, total, compression))
}

/// Logs a batch the cleaner keeps as it is, at most once per
/// `SKIP_LOG_INTERVAL` (with how many were kept since the last line).
fn note_kept_unopened(dir: &Path, batch: &[u8], error: &BatchError) {
    static LAST_LOG_S: AtomicU64 = AtomicU64::new(0);
    static KEPT_SINCE: AtomicU64 = AtomicU64::new(0);
    let kept = KEPT_SINCE.fetch_add(1, Ordering::Relaxed) + 1;
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST_LOG_S.load(Ordering::Relaxed);
    if now_s < last.saturating_add(SKIP_LOG_INTERVAL.as_secs())
        || LAST_LOG_S
            .compare_exchange(last, now_s, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    KEPT_SINCE.store(0, Ordering::Relaxed);
    let offset = BatchHeader::parse(batch).map_or(-1, |h| h.base_offset);
    tracing::warn!(
        dir = %dir.display(),
        offset,
        error = %error,
        batches_kept_unopened = kept,
        "the cleaner keeps a batch it cannot read as it is (not compacted)"
    );
}

/// Writes the kept records of one segment to `<base>.cleaned`; `None` when
/// every record stays.
fn rewrite_segment(
    dir: &Path,
    segment: &SealedSegment,
    keep: impl Fn(&Record, i64) -> bool,
    index_interval_bytes: u32,
    decompressed_bytes_max: usize,
) -> Result<Option<CleanedSegment>, StorageError> {
    let mut out = BytesMut::new();
    let mut meta = SegmentMeta::empty(segment.base_offset);
    let mut removed = 0u64;
    for (header, batch) in batches(dir, segment)? {
        // Control batches and batches that do not decode stay as they are.
        if header.is_control() {
            append(&mut out, &mut meta, &batch, index_interval_bytes);
            continue;
        }
        let read = open_records(&batch, decompressed_bytes_max)
            .and_then(|records| kept_records(records, &keep));
        let (kept, total, compression) = match read {
            Ok(read) => read,
            Err(e) => {
                note_kept_unopened(dir, &batch, &e);
                append(&mut out, &mut meta, &batch, index_interval_bytes);
                continue;
            }
        };
        removed += (total - kept.len()) as u64;
        if kept.len() == total {
            append(&mut out, &mut meta, &batch, index_interval_bytes);
        } else if !kept.is_empty() {
            let mut encoded = BytesMut::new();
            let options = RecordEncodeOptions {
                version: 2,
                compression,
            };
            RecordBatchEncoder::encode(&mut encoded, &kept, &options).map_err(|e| {
                StorageError::io(
                    "cannot re-encode batch",
                    &segment_path(dir, segment.base_offset, "log"),
                    std::io::Error::other(e.to_string()),
                )
            })?;
            if header.is_log_append_time() {
                keep_log_append_time(&mut encoded, header.max_timestamp);
            }
            let encoded = encoded.freeze();
            let mut at = 0;
            while let Ok(h) = BatchHeader::parse(&encoded[at..]) {
                append(
                    &mut out,
                    &mut meta,
                    &encoded[at..at + h.size],
                    index_interval_bytes,
                );
                at += h.size;
                if at >= encoded.len() {
                    break;
                }
            }
        }
    }
    if removed == 0 {
        return Ok(None);
    }
    let path = cleaned_path(dir, segment.base_offset);
    let mut file =
        std::fs::File::create(&path).map_err(|e| StorageError::io("cannot create", &path, e))?;
    file.write_all(&out)
        .and_then(|_| file.sync_all())
        .map_err(|e| StorageError::io("cannot write", &path, e))?;
    Ok(Some(CleanedSegment {
        meta,
        records_removed: removed,
    }))
}

/// Stamps re-encoded batches with the LogAppendTime of the batch they came
/// from (the encoder writes CreateTime): as in Kafka, the broker's append
/// time survives compaction.
fn keep_log_append_time(encoded: &mut BytesMut, max_timestamp: i64) {
    let mut at = 0;
    while let Some(h) = encoded.get(at..).and_then(|b| BatchHeader::parse(b).ok()) {
        let Some(batch) = encoded.get_mut(at..at + h.size) else {
            return;
        };
        let stamped = stamp_batch(batch, &h, true, max_timestamp);
        HeaderStamp::of(&stamped).apply(batch);
        at += h.size;
    }
}

fn append(out: &mut BytesMut, meta: &mut SegmentMeta, batch: &[u8], index_interval_bytes: u32) {
    if let Ok(header) = BatchHeader::parse(batch) {
        meta.note_batch(&header, index_interval_bytes);
        out.extend_from_slice(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{RecordBatchDecoder, TimestampType};
    use wire::batch::patch_batch;
    use wire::records::DECOMPRESSED_BATCH_BYTES_MAX;

    const BOUND: usize = DECOMPRESSED_BATCH_BYTES_MAX;

    fn record(offset: i64, key: &str, value: Option<&str>) -> Record {
        Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: offset as i32 - 1,
            timestamp: 1_000,
            key: Some(Bytes::from(key.to_string())),
            value: value.map(|v| Bytes::from(v.to_string())),
            headers: Default::default(),
            delete_horizon: false,
        }
    }

    /// A segment file of one batch per (key, value), offsets from `base`.
    fn write(
        dir: &Path,
        base: u64,
        entries: &[(&str, Option<&str>)],
        compression: Compression,
    ) -> u64 {
        let mut bytes = Vec::new();
        for (i, (k, v)) in entries.iter().enumerate() {
            let mut buf = BytesMut::new();
            let options = RecordEncodeOptions {
                version: 2,
                compression,
            };
            RecordBatchEncoder::encode(&mut buf, &[record(0, k, *v)], &options).unwrap();
            let mut b = buf.to_vec();
            patch_batch(&mut b, base as i64 + i as i64, 0);
            bytes.extend_from_slice(&b);
        }
        std::fs::write(segment_path(dir, base, "log"), &bytes).unwrap();
        bytes.len() as u64
    }

    fn offsets_and_values(dir: &Path, base: u64) -> Vec<(i64, Option<String>)> {
        let bytes = std::fs::read(cleaned_path(dir, base)).unwrap();
        let mut buf = Bytes::from(bytes);
        RecordBatchDecoder::decode_all(&mut buf)
            .unwrap()
            .into_iter()
            .flat_map(|s| s.records)
            .map(|r| {
                (
                    r.offset,
                    r.value.map(|v| String::from_utf8_lossy(&v).into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn a_rewritten_batch_keeps_its_log_append_time() {
        let mut encoded = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::Lz4,
        };
        let kept = [record(3, "a", Some("x")), record(5, "b", Some("y"))];
        RecordBatchEncoder::encode(&mut encoded, &kept, &options).unwrap();
        keep_log_append_time(&mut encoded, 7_777);
        let header = BatchHeader::parse(&encoded).unwrap();
        assert!(header.crc_matches(&encoded), "a valid CRC after the stamp");
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, 7_777);
        let records = wire::records::decode_records_bounded(&encoded).unwrap();
        assert!(records
            .iter()
            .all(|r| r.timestamp == 7_777 && r.timestamp_type == TimestampType::LogAppend));
    }

    #[test]
    fn keeps_the_newest_record_per_key_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            0,
            &[("k1", Some("a")), ("k2", Some("b")), ("k1", Some("c"))],
            Compression::None,
        );
        let b = write(
            dir.path(),
            3,
            &[("k2", Some("d")), ("k3", Some("e"))],
            Compression::Lz4,
        );
        let segments = [
            SealedSegment {
                base_offset: 0,
                size: a,
            },
            SealedSegment {
                base_offset: 3,
                size: b,
            },
        ];
        let cleaned = clean_segments(dir.path(), &segments, 1000, 2000, 4096, BOUND).unwrap();
        assert_eq!(cleaned.len(), 1, "the second segment has nothing to remove");
        assert_eq!(cleaned[0].records_removed, 2);
        assert_eq!(
            offsets_and_values(dir.path(), 0),
            vec![(2, Some("c".to_string()))]
        );
        assert_eq!(cleaned[0].meta.next_offset, 3);
    }

    /// A zstd batch that inflates to 8 GiB and a gzip batch whose record
    /// claims 2^31-1 headers, between ordinary batches: the cleaner compacts
    /// the ordinary ones and keeps the two byte for byte.
    #[test]
    fn batches_over_the_bound_or_undecodable_are_kept_as_they_are() {
        use wire::testing::{gzip, hand_batch, raw_record, zstd_bomb};
        let dir = tempfile::tempdir().unwrap();
        let plain = |offset: i64, key: &str, value: &str| {
            let mut buf = BytesMut::new();
            let options = RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            };
            RecordBatchEncoder::encode(&mut buf, &[record(0, key, Some(value))], &options).unwrap();
            let mut b = buf.to_vec();
            patch_batch(&mut b, offset, 0);
            b
        };
        let mut zstd = hand_batch(4, 1, &zstd_bomb(65_536));
        patch_batch(&mut zstd, 1, 0);
        let mut headers = hand_batch(1, 1, &gzip(&raw_record(0, Some(b"k1"), b"v", i32::MAX)));
        patch_batch(&mut headers, 3, 0);
        let batches = [
            plain(0, "k1", "a"),
            zstd.clone(),
            plain(2, "k1", "b"),
            headers.clone(),
            plain(4, "k2", "x"),
        ];
        let bytes = batches.concat();
        std::fs::write(segment_path(dir.path(), 0, "log"), &bytes).unwrap();
        let segments = [SealedSegment {
            base_offset: 0,
            size: bytes.len() as u64,
        }];
        let cleaned = clean_segments(dir.path(), &segments, 1000, 2000, 4096, BOUND).unwrap();
        assert_eq!(cleaned.len(), 1);
        assert_eq!(cleaned[0].records_removed, 1, "only k1=a goes");
        let out = std::fs::read(cleaned_path(dir.path(), 0)).unwrap();
        assert_eq!(
            out,
            batches[1..].concat(),
            "the unreadable batches are kept unchanged"
        );
        assert_eq!(cleaned[0].meta.next_offset, 5);
    }

    #[test]
    fn tombstones_go_after_delete_retention() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            0,
            &[("k1", Some("a")), ("k1", None), ("k2", Some("x"))],
            Compression::None,
        );
        let segments = [SealedSegment {
            base_offset: 0,
            size: a,
        }];
        clean_segments(dir.path(), &segments, 1_000_000, 2000, 4096, BOUND).unwrap();
        assert_eq!(
            offsets_and_values(dir.path(), 0),
            vec![(1, None), (2, Some("x".to_string()))],
            "a recent tombstone stays"
        );
        clean_segments(dir.path(), &segments, 10, 1_000_000, 4096, BOUND).unwrap();
        assert_eq!(
            offsets_and_values(dir.path(), 0),
            vec![(2, Some("x".to_string()))]
        );
    }
}
