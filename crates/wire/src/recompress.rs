//! A producer's batch rewritten with another codec, for a topic whose
//! `compression.type` names one the producer did not use: what Kafka's
//! `LogValidator` does when source and target codecs differ (it rebuilds the
//! batch from its records). The records keep their offsets deltas,
//! timestamps, keys, values and headers, and the batch its producer id,
//! epoch and base sequence; the levels are the topic's
//! `compression.*.level`. Pure code, run on the shard that owns the
//! partition, after validation: the records are read within the same
//! decompression bound validation checked them against.
use super::batch::{BatchError, BatchHeader};
use super::records::{open_records, Codec};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};
use std::io::Write;

/// The levels the broker compresses with (Kafka's `compression.*.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecLevels {
    /// -1: the codec's default (6), else 1 to 9.
    pub gzip: i32,
    /// 1 to 17 (lz4 clamps what it does not have to its highest).
    pub lz4: i32,
    /// -131072 to 22.
    pub zstd: i32,
}

const NOT_RECOMPRESSED: BatchError = BatchError::Invalid("the records could not be recompressed");

/// `batch` (one valid v2 batch) with its records compressed by `target`
/// instead. The result is one batch with the producer's fields, offsets
/// from 0 and CreateTime: the caller stamps it as the topic wants.
pub fn recompress(
    batch: &[u8],
    target: Codec,
    levels: &CodecLevels,
    decompressed_bytes_max: usize,
) -> Result<Bytes, BatchError> {
    let records = read_all(batch, decompressed_bytes_max)?;
    let options = RecordEncodeOptions {
        version: 2,
        compression: target.compression(),
    };
    let mut out = BytesMut::with_capacity(batch.len());
    let encoded = match target {
        // Neither has a level: the codec's own framing (snappy in xerial's,
        // as Kafka's Java client writes it).
        Codec::None | Codec::Snappy => RecordBatchEncoder::encode(&mut out, &records, &options),
        _ => RecordBatchEncoder::encode_with_custom_compression(
            &mut out,
            &records,
            &options,
            Some(|plain: &mut BytesMut, out: &mut BytesMut, _: Compression| {
                compress(target, levels, plain, out)
            }),
        ),
    };
    encoded.map_err(|_| NOT_RECOMPRESSED)?;
    let header = BatchHeader::parse(&out)?;
    if header.size != out.len() || header.record_count as usize != records.len() {
        return Err(NOT_RECOMPRESSED);
    }
    Ok(out.freeze())
}

/// Every record of `batch`, materialised within the bound.
fn read_all(batch: &[u8], decompressed_bytes_max: usize) -> Result<Vec<Record>, BatchError> {
    let mut reader = open_records(batch, decompressed_bytes_max)?;
    let mut records = Vec::new();
    while let Some(record) = reader.next_record()? {
        records.push(record);
    }
    reader.finish()?;
    Ok(records)
}

/// Compresses `plain` into `out` with `codec` at its level, in the framing
/// Kafka's clients read (gzip stream, lz4 frame with independent blocks,
/// zstd frame).
fn compress(
    codec: Codec,
    levels: &CodecLevels,
    plain: &[u8],
    out: &mut BytesMut,
) -> anyhow::Result<()> {
    match codec {
        Codec::Gzip => {
            let level = match u32::try_from(levels.gzip) {
                Ok(level) => flate2::Compression::new(level),
                Err(_) => flate2::Compression::default(),
            };
            let mut encoder = flate2::write::GzEncoder::new(out.writer(), level);
            encoder.write_all(plain)?;
            encoder.finish()?;
        }
        Codec::Lz4 => {
            let mut encoder = lz4::EncoderBuilder::new()
                .level(levels.lz4.max(0) as u32)
                .block_mode(lz4::BlockMode::Independent)
                .build(out.writer())?;
            encoder.write_all(plain)?;
            encoder.finish().1?;
        }
        Codec::Zstd => zstd::stream::copy_encode(plain, out.writer(), levels.zstd)?,
        Codec::None | Codec::Snappy => anyhow::bail!("{codec:?} has no level"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate_producer_batch;
    use crate::records::{decode_records_bounded, DECOMPRESSED_BATCH_BYTES_MAX};
    use crate::testing::{producer_batch, sample_batch};
    use kafka_protocol::records::Compression;

    const LEVELS: CodecLevels = CodecLevels {
        gzip: -1,
        lz4: 9,
        zstd: 3,
    };

    #[test]
    fn every_codec_converts_to_every_other_and_keeps_the_records() {
        let codecs = [
            (Codec::None, Compression::None),
            (Codec::Gzip, Compression::Gzip),
            (Codec::Snappy, Compression::Snappy),
            (Codec::Lz4, Compression::Lz4),
            (Codec::Zstd, Compression::Zstd),
        ];
        for (_, from) in codecs {
            let batch = sample_batch(20, from);
            let before = decode_records_bounded(&batch).unwrap();
            for (target, _) in codecs {
                let out = recompress(&batch, target, &LEVELS, DECOMPRESSED_BATCH_BYTES_MAX)
                    .unwrap_or_else(|e| panic!("{from:?} to {target:?}: {e}"));
                let header = validate_producer_batch(&out).expect("a valid batch");
                assert_eq!(Codec::of(header.attributes).unwrap(), target);
                assert_eq!(
                    decode_records_bounded(&out).unwrap(),
                    before,
                    "{from:?} to {target:?}"
                );
            }
        }
    }

    #[test]
    fn the_producer_fields_survive() {
        let batch = producer_batch(4, 42, 7, 100);
        let out = recompress(&batch, Codec::Zstd, &LEVELS, DECOMPRESSED_BATCH_BYTES_MAX).unwrap();
        let h = validate_producer_batch(&out).unwrap();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 7, 100)
        );
        assert_eq!((h.record_count, h.last_offset_delta), (4, 3));
        assert_eq!(h.max_timestamp, 1_003);
    }

    #[test]
    fn levels_apply() {
        let batch = sample_batch(200, Compression::None);
        let fast = CodecLevels { zstd: 1, ..LEVELS };
        let strong = CodecLevels { zstd: 19, ..LEVELS };
        let bound = DECOMPRESSED_BATCH_BYTES_MAX;
        let a = recompress(&batch, Codec::Zstd, &fast, bound).unwrap();
        let b = recompress(&batch, Codec::Zstd, &strong, bound).unwrap();
        assert!(
            b.len() <= a.len(),
            "level 19 ({}) vs level 1 ({})",
            b.len(),
            a.len()
        );
        for gzip in [-1, 1, 9] {
            let levels = CodecLevels { gzip, ..LEVELS };
            let out = recompress(&batch, Codec::Gzip, &levels, bound).unwrap();
            validate_producer_batch(&out).unwrap();
        }
    }
}
