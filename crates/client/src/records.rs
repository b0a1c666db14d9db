//! RecordBatch v2 for the client: encoding producer records into one batch
//! (any compression) and decoding the record bytes of a Fetch response, which
//! may end in a truncated batch. Pure functions; run on the CLI's main thread.

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

use super::error::{protocol_error, ClientError};
// The RecordBatch v2 layout is the broker's own (one definition, in wire).
use wire::batch::{BatchHeader, BATCH_HEADER_LEN, LOG_OVERHEAD};

/// The smallest encoded record: seven one-byte varints and attributes.
const RECORD_BYTES_MIN: usize = 7;
/// Bound on the record count of a compressed batch (it is checked before any
/// allocation sized by it).
pub const COMPRESSED_RECORDS_MAX: usize = 1 << 20;

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// The records decoded from one partition's Fetch data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedRecords {
    /// Records at or after the fetch offset, control records left out.
    pub records: Vec<ConsumerRecord>,
    /// The offset after the last whole batch, if any whole batch was present.
    pub next_offset: Option<i64>,
    /// Whether the data ended in a partial batch (ignored).
    pub truncated: bool,
}

/// Parses a compression name as the Kafka tools spell it.
pub fn parse_compression(name: &str) -> Result<Compression, ClientError> {
    match name.to_ascii_lowercase().as_str() {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        other => Err(ClientError::InvalidArgument(format!(
            "unknown compression '{other}' (none, gzip, snappy, lz4, zstd)"
        ))),
    }
}

/// Encodes records into one RecordBatch v2 (offsets from 0, no producer id).
pub fn encode_batch(
    records: &[ProducerRecord],
    compression: Compression,
    timestamp_ms: i64,
) -> Result<Bytes, ClientError> {
    if records.is_empty() {
        return Err(ClientError::InvalidArgument(
            "empty record batch".to_owned(),
        ));
    }
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| to_record(i as i64, r, timestamp_ms))
        .collect();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &options)
        .map_err(|e| protocol_error("encoding record batch", e))?;
    Ok(buf.freeze())
}

fn to_record(offset: i64, r: &ProducerRecord, timestamp_ms: i64) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        timestamp_type: TimestampType::Creation,
        offset,
        // The encoder keeps records in one batch while offset - sequence is
        // constant, and writes baseSequence = first sequence: NO_SEQUENCE.
        sequence: NO_SEQUENCE.wrapping_add(offset as i32),
        timestamp: timestamp_ms,
        key: r.key.clone(),
        value: r.value.clone(),
        headers: IndexMap::new(),
    }
}

/// Decodes the record bytes of one partition in a Fetch response, skipping
/// records before `fetch_offset`, control batches and a truncated tail.
pub fn decode_fetched(data: Bytes, fetch_offset: i64) -> Result<DecodedRecords, ClientError> {
    let mut out = DecodedRecords::default();
    let mut rest = data;
    while !rest.is_empty() {
        let Some(batch) = split_batch(&mut rest)? else {
            out.truncated = true;
            break;
        };
        let header = parse_header(&batch)?;
        out.next_offset = Some(next_offset(&header));
        if header.is_control() {
            continue;
        }
        decode_batch_into(batch, &header, fetch_offset, &mut out.records)?;
    }
    Ok(out)
}

/// Takes one whole batch off the front of `rest`; `None` when the rest is a
/// truncated batch.
fn split_batch(rest: &mut Bytes) -> Result<Option<Bytes>, ClientError> {
    if rest.len() < LOG_OVERHEAD {
        return Ok(None);
    }
    let length = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
    let length = usize::try_from(length)
        .map_err(|_| ClientError::Protocol(format!("negative batch length {length}")))?;
    let total = LOG_OVERHEAD + length;
    if total < BATCH_HEADER_LEN {
        return Err(ClientError::Protocol(format!(
            "batch length {length} too small"
        )));
    }
    if rest.len() < total {
        return Ok(None);
    }
    Ok(Some(rest.split_to(total)))
}

/// A whole batch's header, as wire reads it; only v2 is decoded.
fn parse_header(batch: &Bytes) -> Result<BatchHeader, ClientError> {
    let header = BatchHeader::parse(batch).map_err(|e| ClientError::Protocol(e.to_string()))?;
    if header.magic != 2 {
        return Err(ClientError::Protocol(format!(
            "record batch magic {} unsupported (only v2)",
            header.magic
        )));
    }
    if header.record_count < 0 {
        return Err(ClientError::Protocol(format!(
            "negative record count {}",
            header.record_count
        )));
    }
    Ok(header)
}

/// The offset after a batch.
fn next_offset(header: &BatchHeader) -> i64 {
    header.last_offset().saturating_add(1)
}

/// Refuses record counts the batch cannot hold, so the decoder never
/// reserves memory for an absurd count.
fn check_record_count(header: &BatchHeader) -> Result<(), ClientError> {
    let limit = if header.is_compressed() {
        COMPRESSED_RECORDS_MAX
    } else {
        header.size.saturating_sub(BATCH_HEADER_LEN) / RECORD_BYTES_MIN
    };
    if header.record_count as usize > limit {
        return Err(ClientError::Protocol(format!(
            "batch at offset {} claims {} records, more than it can hold",
            header.base_offset, header.record_count
        )));
    }
    Ok(())
}

fn decode_batch_into(
    mut batch: Bytes,
    header: &BatchHeader,
    fetch_offset: i64,
    out: &mut Vec<ConsumerRecord>,
) -> Result<(), ClientError> {
    check_record_count(header)?;
    let set = RecordBatchDecoder::decode(&mut batch)
        .map_err(|e| protocol_error("decoding record batch", e))?;
    let wanted = set.records.into_iter().filter(|r| r.offset >= fetch_offset);
    out.extend(wanted.map(|r| ConsumerRecord {
        offset: r.offset,
        timestamp: r.timestamp,
        key: r.key,
        value: r.value,
    }));
    Ok(())
}

/// What the batch headers of one partition's Fetch data say, read without
/// decoding any record (length, offsets and record count at fixed offsets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchScan {
    /// Whole batches seen.
    pub batches: u64,
    /// Records at or after the fetch offset (offsets are dense in a batch).
    pub records: u64,
    /// Bytes of the whole batches seen.
    pub bytes: u64,
    /// The offset after the last whole batch, if any whole batch was present.
    pub next_offset: Option<i64>,
    /// Whether the data ended in a partial batch (ignored).
    pub truncated: bool,
}

/// Walks the batch headers of one partition's Fetch data: counts records and
/// bytes of whole batches, skipping records before `fetch_offset`.
pub fn scan_batches(data: &Bytes, fetch_offset: i64) -> Result<BatchScan, ClientError> {
    let mut scan = BatchScan::default();
    let mut rest = data.clone();
    while !rest.is_empty() {
        let Some(batch) = split_batch(&mut rest)? else {
            scan.truncated = true;
            break;
        };
        let header = parse_header(&batch)?;
        let next = next_offset(&header);
        let first = header.base_offset.max(fetch_offset);
        if !header.is_control() && next > first {
            scan.records += u64::try_from(next - first).unwrap_or(0);
        }
        scan.batches += 1;
        scan.bytes += batch.len() as u64;
        scan.next_offset = Some(next);
    }
    Ok(scan)
}

/// Calls `visit` with each whole batch of one partition's Fetch data.
pub fn for_each_batch(
    data: &Bytes,
    mut visit: impl FnMut(Bytes) -> Result<(), ClientError>,
) -> Result<(), ClientError> {
    let mut rest = data.clone();
    while let Some(batch) = split_batch(&mut rest)? {
        visit(batch)?;
    }
    Ok(())
}

/// Whether a whole batch is compressed (attributes bits 0..2).
pub fn batch_is_compressed(batch: &[u8]) -> bool {
    BatchHeader::parse(batch).is_ok_and(|h| h.is_compressed())
}

/// Where the value of the first record of an uncompressed batch starts, and
/// its length (`None` for a null value, a compressed batch or bad framing).
/// Reads only the first record's varints.
pub fn first_value_span(batch: &[u8]) -> Option<(usize, usize)> {
    if batch_is_compressed(batch) {
        return None;
    }
    let mut at = BATCH_HEADER_LEN;
    let _record_length = read_varint(batch, &mut at)?;
    at += 1; // attributes
    let _timestamp_delta = read_varint(batch, &mut at)?;
    let _offset_delta = read_varint(batch, &mut at)?;
    let key_length = read_varint(batch, &mut at)?;
    if key_length > 0 {
        at = at.checked_add(usize::try_from(key_length).ok()?)?;
    }
    let value_length = usize::try_from(read_varint(batch, &mut at)?).ok()?;
    let end = at.checked_add(value_length)?;
    (end <= batch.len()).then_some((at, value_length))
}

/// Reads one zigzag varint (at most 5 bytes: record fields are 32-bit).
fn read_varint(buf: &[u8], at: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in 0..5 {
        let byte = *buf.get(*at)?;
        *at += 1;
        raw |= u64::from(byte & 0x7f) << (7 * shift);
        if byte & 0x80 == 0 {
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    /// Field positions in a v2 batch, for tests that break them by hand.
    const MAGIC_OFFSET: usize = 16;
    const ATTRIBUTES_OFFSET: usize = 21;
    const RECORD_COUNT_OFFSET: usize = 57;

    fn sample(n: usize) -> Vec<ProducerRecord> {
        (0..n)
            .map(|i| ProducerRecord {
                key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("value number {i} {}", "x".repeat(i)))),
            })
            .collect()
    }

    /// Sets a batch's base offset the way a broker assigns it (outside the CRC).
    fn with_base_offset(batch: &Bytes, base: i64) -> Bytes {
        let mut b = BytesMut::from(&batch[..]);
        b[..8].copy_from_slice(&base.to_be_bytes());
        b.freeze()
    }

    #[test]
    fn round_trip_every_compression() {
        let records = sample(50);
        for name in ["none", "gzip", "snappy", "lz4", "zstd"] {
            let compression = parse_compression(name).expect("name");
            let batch = encode_batch(&records, compression, 1_700_000_000_000).expect("encode");
            let info = RecordBatchDecoder::decode_batch_info(&mut batch.clone()).expect("info");
            assert_eq!(info.len(), 1, "{name}: one batch");
            assert_eq!(info[0].record_count, 50);
            assert_eq!(info[0].producer_id, -1);
            assert_eq!(info[0].base_sequence, -1);
            assert_eq!(info[0].compression, compression);
            let decoded = decode_fetched(with_base_offset(&batch, 100), 0).expect("decode");
            assert!(!decoded.truncated);
            assert_eq!(decoded.next_offset, Some(150));
            assert_eq!(decoded.records.len(), 50);
            for (i, (got, want)) in decoded.records.iter().zip(&records).enumerate() {
                assert_eq!(got.offset, 100 + i as i64);
                assert_eq!(got.key, want.key);
                assert_eq!(got.value, want.value);
                assert_eq!(got.timestamp, 1_700_000_000_000);
            }
        }
    }

    #[test]
    fn scan_counts_without_decoding() {
        let first = with_base_offset(&encode_batch(&sample(3), Compression::None, 1).unwrap(), 10);
        let second = with_base_offset(&encode_batch(&sample(4), Compression::Lz4, 1).unwrap(), 13);
        let mut data = BytesMut::new();
        data.extend_from_slice(&first);
        data.extend_from_slice(&second);
        data.extend_from_slice(&second[..20]);
        let scan = scan_batches(&data.freeze(), 11).expect("scan");
        assert_eq!(scan.batches, 2);
        assert_eq!(scan.records, 2 + 4);
        assert_eq!(scan.bytes, (first.len() + second.len()) as u64);
        assert_eq!(scan.next_offset, Some(17));
        assert!(scan.truncated);
    }

    #[test]
    fn first_value_found_in_uncompressed_batches() {
        let records = vec![
            ProducerRecord {
                key: Some(Bytes::from_static(b"key")),
                value: Some(Bytes::from(vec![7u8; 300])),
            },
            ProducerRecord {
                key: None,
                value: Some(Bytes::from_static(b"second")),
            },
        ];
        let batch = encode_batch(&records, Compression::None, 1).expect("batch");
        let (at, len) = first_value_span(&batch).expect("span");
        assert_eq!(len, 300);
        assert_eq!(&batch[at..at + len], &[7u8; 300][..]);
        let lz4 = encode_batch(&records, Compression::Lz4, 1).expect("lz4");
        assert!(batch_is_compressed(&lz4));
        assert_eq!(first_value_span(&lz4), None);
    }

    #[test]
    fn truncated_tail_ignored() {
        let first = encode_batch(&sample(3), Compression::None, 1).expect("first");
        let second = encode_batch(&sample(4), Compression::Lz4, 1).expect("second");
        let mut data = BytesMut::new();
        data.extend_from_slice(&with_base_offset(&first, 10));
        let second = with_base_offset(&second, 13);
        for cut in [1usize, 11, 12, 40, second.len() - 1] {
            let mut d = data.clone();
            d.extend_from_slice(&second[..cut]);
            let decoded = decode_fetched(d.freeze(), 0).expect("decode");
            assert!(decoded.truncated, "cut {cut}");
            assert_eq!(decoded.records.len(), 3);
            assert_eq!(decoded.next_offset, Some(13));
        }
        data.extend_from_slice(&second);
        let decoded = decode_fetched(data.freeze(), 11).expect("decode");
        assert!(!decoded.truncated);
        assert_eq!(decoded.records.first().map(|r| r.offset), Some(11));
        assert_eq!(decoded.records.len(), 6);
        assert_eq!(decoded.next_offset, Some(17));
    }

    #[test]
    fn only_partial_batch() {
        let batch = encode_batch(&sample(2), Compression::None, 1).expect("batch");
        let decoded = decode_fetched(batch.slice(..batch.len() - 3), 0).expect("decode");
        assert!(decoded.truncated);
        assert_eq!(decoded.next_offset, None);
        assert!(decoded.records.is_empty());
    }

    #[test]
    fn hostile_batches_are_errors() {
        let batch = encode_batch(&sample(2), Compression::None, 1).expect("batch");
        // Absurd record count (the CRC is not even reached).
        let mut b = BytesMut::from(&batch[..]);
        b[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_fetched(b.freeze(), 0).is_err());
        // Corrupted payload: CRC mismatch.
        let mut b = BytesMut::from(&batch[..]);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(decode_fetched(b.freeze(), 0).is_err());
        // Negative and tiny lengths.
        let mut b = BytesMut::from(&batch[..]);
        b[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(decode_fetched(b.freeze(), 0).is_err());
        let mut b = BytesMut::from(&batch[..]);
        b[8..12].copy_from_slice(&3i32.to_be_bytes());
        assert!(decode_fetched(b.freeze(), 0).is_err());
        // Old magic.
        let mut b = BytesMut::from(&batch[..]);
        b[MAGIC_OFFSET] = 1;
        assert!(decode_fetched(b.freeze(), 0).is_err());
    }

    #[test]
    fn control_batches_skipped() {
        let batch = encode_batch(&sample(1), Compression::None, 1).expect("batch");
        let mut b = BytesMut::from(&batch[..]);
        // Set the control bit and recompute the CRC over attributes..end.
        b[ATTRIBUTES_OFFSET + 1] |= 1 << 5;
        let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let decoded = decode_fetched(b.freeze(), 0).expect("decode");
        assert!(decoded.records.is_empty());
        assert_eq!(decoded.next_offset, Some(1));
    }
}
