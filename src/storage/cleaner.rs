//! Log compaction for topics with `cleanup.policy=compact`: the sealed
//! segments of a log are rewritten so that only the newest record of each key
//! remains (and tombstones, null values, only until `delete.retention.ms`).
//! Offsets never change: a compacted log has gaps, which readers skip.
//!
//! The rewrite reads and writes whole files, so it runs on glommio's blocking
//! thread pool, off the shard's executor; sealed segments are immutable, so
//! reading them from another thread is safe. The owning shard then swaps the
//! cleaned files in (`PartitionLog::compact`).
use super::index::SegmentMeta;
use super::recovery::{read_valid_batch, segment_path};
use super::StorageError;
use crate::protocol::batch::BatchHeader;
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, RecordSet,
};
use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

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
/// to remove are left alone (and not returned).
pub fn clean_segments(
    dir: &Path,
    segments: &[SealedSegment],
    delete_retention_ms: i64,
    now_ms: i64,
    index_interval_bytes: u32,
) -> Result<Vec<CleanedSegment>, StorageError> {
    let latest = latest_offsets(dir, segments)?;
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
        if let Some(c) = rewrite_segment(dir, segment, keep, index_interval_bytes)? {
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

fn decode(batch: &Bytes) -> Option<RecordSet> {
    let mut buf = batch.clone();
    RecordBatchDecoder::decode(&mut buf).ok()
}

/// Key -> offset of its newest record, over all the segments.
fn latest_offsets(
    dir: &Path,
    segments: &[SealedSegment],
) -> Result<HashMap<Bytes, i64>, StorageError> {
    let mut latest = HashMap::new();
    for segment in segments {
        for (_, batch) in batches(dir, segment)? {
            for record in decode(&batch).map(|s| s.records).unwrap_or_default() {
                if let Some(key) = record.key {
                    latest.insert(key, record.offset);
                }
            }
        }
    }
    Ok(latest)
}

/// Writes the kept records of one segment to `<base>.cleaned`; `None` when
/// every record stays.
fn rewrite_segment(
    dir: &Path,
    segment: &SealedSegment,
    keep: impl Fn(&Record, i64) -> bool,
    index_interval_bytes: u32,
) -> Result<Option<CleanedSegment>, StorageError> {
    let mut out = BytesMut::new();
    let mut meta = SegmentMeta::empty(segment.base_offset);
    let mut removed = 0u64;
    for (header, batch) in batches(dir, segment)? {
        // Control batches and batches that do not decode stay as they are.
        let Some(set) = decode(&batch).filter(|_| !header.is_control()) else {
            append(&mut out, &mut meta, &batch, index_interval_bytes);
            continue;
        };
        let (compression, records) = (set.compression, set.records);
        let total = records.len();
        let kept: Vec<Record> = records
            .into_iter()
            .filter(|r| keep(r, header.max_timestamp))
            .collect();
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

fn append(out: &mut BytesMut, meta: &mut SegmentMeta, batch: &[u8], index_interval_bytes: u32) {
    if let Ok(header) = BatchHeader::parse(batch) {
        meta.note_batch(&header, index_interval_bytes);
        out.extend_from_slice(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::patch_batch;
    use kafka_protocol::records::{Compression, TimestampType};

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
        let cleaned = clean_segments(dir.path(), &segments, 1000, 2000, 4096).unwrap();
        assert_eq!(cleaned.len(), 1, "the second segment has nothing to remove");
        assert_eq!(cleaned[0].records_removed, 2);
        assert_eq!(
            offsets_and_values(dir.path(), 0),
            vec![(2, Some("c".to_string()))]
        );
        assert_eq!(cleaned[0].meta.next_offset, 3);
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
        clean_segments(dir.path(), &segments, 1_000_000, 2000, 4096).unwrap();
        assert_eq!(
            offsets_and_values(dir.path(), 0),
            vec![(1, None), (2, Some("x".to_string()))],
            "a recent tombstone stays"
        );
        clean_segments(dir.path(), &segments, 10, 1_000_000, 4096).unwrap();
        assert_eq!(
            offsets_and_values(dir.path(), 0),
            vec![(2, Some("x".to_string()))]
        );
    }
}
