//! The RecordBatch v2 header, parsed by hand on the produce path.
//!
//! Owns validation of a producer's batch (magic, CRC32C, lengths, record
//! count, codec, the control and transactional bits, and the records
//! themselves, compressed or not, walked by `records`, with their
//! timestamps checked against the topic's rules), and the fields the broker
//! writes into a batch's header: `baseOffset` and `partitionLeaderEpoch`,
//! outside the CRC, on every append, and for LogAppendTime (or a producer's
//! wrong `maxTimestamp`) the attributes and `maxTimestamp`, with the CRC
//! updated from the old one in O(log n) instead of a pass over the batch. The
//! rest of a batch is stored byte for byte as sent. Pure functions: runs on
//! whichever shard owns the partition.
use super::records::{validate_records_with, Codec, DECOMPRESSED_BATCH_BYTES_MAX};
use thiserror::Error;

/// Bytes before the records in a v2 batch.
pub const BATCH_HEADER_LEN: usize = 61;
/// `baseOffset` plus `batchLength`: the part not counted by `batchLength`.
pub const LOG_OVERHEAD: usize = 12;

const BASE_OFFSET_AT: usize = 0;
const BATCH_LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const LOG_APPEND_TIME_FLAG: i16 = 0x08;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;

/// What is wrong with a batch, mapped to a Kafka error code by the caller.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum BatchError {
    /// Too short, lengths that disagree, or a CRC mismatch: CORRUPT_MESSAGE.
    #[error("corrupt batch: {0}")]
    Corrupt(&'static str),
    /// Well-formed bytes that break the format's rules: INVALID_RECORD.
    #[error("invalid record: {0}")]
    Invalid(&'static str),
    /// Attributes naming a codec Kafka does not define (5, 6 or 7):
    /// UNSUPPORTED_COMPRESSION_TYPE.
    #[error("unsupported compression codec {0}")]
    UnsupportedCompression(u8),
    /// Records a compacted topic cannot take, having no key: INVALID_RECORD
    /// with one error per such record (KIP-467), so clients can tell which
    /// records failed. Checked once the whole batch is known to be well
    /// formed, as Kafka's LogValidator collects its record errors.
    #[error("{} records without a key for a compacted topic", .0.total)]
    KeylessRecords(KeylessRecords),
    /// The records decompress to more than the bound allows. Produce answers
    /// MESSAGE_TOO_LARGE (Kafka's RECORD_TOO_LARGE, code 10): the batch is
    /// larger than the broker accepts, which is what that code says, and
    /// clients treat it as final (the Java producer splits the batch and
    /// retries the halves) where CORRUPT_MESSAGE would have them retry the
    /// same bytes until their delivery timeout.
    #[error("records decompress to more than {bytes_max} bytes")]
    TooLarge { bytes_max: usize },
    /// A record's timestamp outside the topic's window, or a producer that
    /// set the LogAppendTime bit itself: INVALID_TIMESTAMP, as Kafka's
    /// `LogValidator.validateTimestamp`.
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
}

/// Kafka's NO_TIMESTAMP: a record without a timestamp.
pub const NO_TIMESTAMP: i64 = -1;

/// How produce checks record timestamps (a topic's `message.timestamp.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampRule {
    /// Not checked: the broker's own batches, tests.
    Unchecked,
    /// A CreateTime topic: every record's timestamp within this window of
    /// the broker's clock (records without one pass).
    CreateTime {
        now_ms: i64,
        before_max_ms: i64,
        after_max_ms: i64,
    },
    /// A LogAppendTime topic: the broker stamps the batch, so a producer
    /// may not set the LogAppendTime bit.
    LogAppendTime,
}

/// The per-record rules of produce validation, from the topic's configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordChecks {
    /// A compacted topic: every record needs a key.
    pub require_keys: bool,
    pub timestamps: TimestampRule,
}

impl RecordChecks {
    /// No checks beyond the format (and keys when `require_keys`).
    pub fn keys(require_keys: bool) -> Self {
        RecordChecks {
            require_keys,
            timestamps: TimestampRule::Unchecked,
        }
    }

    /// The batch-level part of the timestamp rules.
    fn check_batch(&self, header: &BatchHeader) -> Result<(), BatchError> {
        if self.timestamps == TimestampRule::LogAppendTime && header.is_log_append_time() {
            return Err(BatchError::InvalidTimestamp(
                "a producer may not set the LogAppendTime timestamp type".to_string(),
            ));
        }
        Ok(())
    }

    /// One record's timestamp against the rules, as Kafka checks it.
    #[inline]
    pub(crate) fn check_timestamp(
        &self,
        header: &BatchHeader,
        timestamp: i64,
    ) -> Result<(), BatchError> {
        let TimestampRule::CreateTime {
            now_ms,
            before_max_ms,
            after_max_ms,
        } = self.timestamps
        else {
            return Ok(());
        };
        if timestamp == NO_TIMESTAMP {
            if header.is_log_append_time() {
                return Err(BatchError::InvalidTimestamp(
                    "a producer may not set the LogAppendTime timestamp type".to_string(),
                ));
            }
            return Ok(());
        }
        let behind = now_ms as i128 - timestamp as i128;
        if behind > before_max_ms as i128 || -behind > after_max_ms as i128 {
            return Err(BatchError::InvalidTimestamp(format!(
                "timestamp {timestamp} is out of range: it must be within [{}, {}]",
                now_ms.saturating_sub(before_max_ms),
                now_ms.saturating_add(after_max_ms)
            )));
        }
        Ok(())
    }
}

/// A producer's batch that passed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidBatch {
    pub header: BatchHeader,
    /// The largest timestamp of its records (NO_TIMESTAMP if none has one).
    pub max_timestamp: i64,
}

/// The most keyless records a refusal names. Kafka names every one; a
/// bound keeps a pathological batch (a compressed megabyte of empty
/// records) from making an answer of many megabytes.
pub const KEYLESS_INDEXES_MAX: usize = 10_000;

/// The records of one batch that have no key, for a compacted topic's
/// refusal: their indexes in the batch (the first `KEYLESS_INDEXES_MAX`)
/// and how many there are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeylessRecords {
    pub indexes: Vec<i32>,
    pub total: usize,
}

impl KeylessRecords {
    /// Notes the record at `index` (in batch order).
    pub(crate) fn note(&mut self, index: i32) {
        self.total += 1;
        if self.indexes.len() < KEYLESS_INDEXES_MAX {
            self.indexes.push(index);
        }
    }

    /// The refusal, if any record had no key.
    pub(crate) fn into_result(self) -> Result<(), BatchError> {
        if self.total == 0 {
            Ok(())
        } else {
            Err(BatchError::KeylessRecords(self))
        }
    }
}

/// The fields of a v2 batch header that the broker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Whole batch size in bytes, `LOG_OVERHEAD` included.
    pub size: usize,
    pub leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `buf` without checking the CRC.
    /// `buf` may hold more bytes after the batch (or fewer: see `size`).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Corrupt("shorter than a batch header"));
        }
        let batch_length = read_i32(buf, BATCH_LENGTH_AT);
        if batch_length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::Corrupt("batch length smaller than its header"));
        }
        Ok(BatchHeader {
            base_offset: read_i64(buf, BASE_OFFSET_AT),
            size: batch_length as usize + LOG_OVERHEAD,
            leader_epoch: read_i32(buf, LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: u32::from_be_bytes([
                buf[CRC_AT],
                buf[CRC_AT + 1],
                buf[CRC_AT + 2],
                buf[CRC_AT + 3],
            ]),
            attributes: read_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: read_i32(buf, LAST_OFFSET_DELTA_AT),
            base_timestamp: read_i64(buf, BASE_TIMESTAMP_AT),
            max_timestamp: read_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: read_i64(buf, PRODUCER_ID_AT),
            producer_epoch: read_i16(buf, PRODUCER_EPOCH_AT),
            base_sequence: read_i32(buf, BASE_SEQUENCE_AT),
            record_count: read_i32(buf, RECORD_COUNT_AT),
        })
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn is_compressed(&self) -> bool {
        self.attributes & COMPRESSION_MASK != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    /// The timestamp type bit: the broker set `maxTimestamp` to its clock,
    /// which is then every record's timestamp.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & LOG_APPEND_TIME_FLAG != 0
    }

    /// True when the CRC32C over attributes..end matches; `batch` must be the
    /// whole batch (`size` bytes).
    pub fn crc_matches(&self, batch: &[u8]) -> bool {
        batch.len() == self.size && crc32c::crc32c(&batch[ATTRIBUTES_AT..]) == self.crc
    }
}

/// Validates one producer batch that must fill `buf` exactly, as Kafka's
/// log validator does for magic 2. Returns its header.
pub fn validate_producer_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    validate_producer_batch_with(buf, false)
}

/// As `validate_producer_batch`; with `require_keys` (a compacted topic)
/// records without a key refuse the batch with `KeylessRecords`, as in
/// Kafka, compressed batches included. Compressed records are decompressed within
/// `DECOMPRESSED_BATCH_BYTES_MAX`.
pub fn validate_producer_batch_with(
    buf: &[u8],
    require_keys: bool,
) -> Result<BatchHeader, BatchError> {
    validate_producer_batch_within(buf, require_keys, DECOMPRESSED_BATCH_BYTES_MAX)
}

/// As `validate_producer_batch_with`, with the bound on decompressed bytes
/// given (see `records::decompressed_bytes_max`).
pub fn validate_producer_batch_within(
    buf: &[u8],
    require_keys: bool,
    decompressed_bytes_max: usize,
) -> Result<BatchHeader, BatchError> {
    let checks = RecordChecks::keys(require_keys);
    validate_producer_batch_for(buf, &checks, decompressed_bytes_max).map(|v| v.header)
}

/// Validates one producer batch that must fill `buf` exactly, as Kafka's
/// log validator does for magic 2, with the topic's record `checks`;
/// compressed records are decompressed within `decompressed_bytes_max`
/// (the produce path passes `records::decompressed_bytes_max` of the
/// topic's `max.message.bytes`). Returns the header and the records'
/// largest timestamp.
pub fn validate_producer_batch_for(
    buf: &[u8],
    checks: &RecordChecks,
    decompressed_bytes_max: usize,
) -> Result<ValidBatch, BatchError> {
    let header = BatchHeader::parse(buf)?;
    if header.size != buf.len() {
        return Err(if header.size > buf.len() {
            BatchError::Corrupt("batch length runs past the records field")
        } else {
            BatchError::Invalid("a produce request must hold exactly one record batch")
        });
    }
    if header.magic != 2 {
        return Err(BatchError::Invalid(
            "only record batches with magic 2 are accepted",
        ));
    }
    if !header.crc_matches(buf) {
        return Err(BatchError::Corrupt("CRC32C mismatch"));
    }
    Codec::of(header.attributes)?;
    validate_batch_fields(&header)?;
    checks.check_batch(&header)?;
    let max_timestamp = if header.is_compressed() {
        validate_records_with(&header, buf, checks, decompressed_bytes_max)?
    } else {
        // The hot path keeps its own walker over the slice: the stream
        // walker of `records` checks the same rules but costs about twice
        // as much per record.
        validate_uncompressed_records(&buf[BATCH_HEADER_LEN..], &header, checks)?
    };
    Ok(ValidBatch {
        header,
        max_timestamp,
    })
}

/// The header-level rules of Kafka's `LogValidator.validateBatch` for magic 2
/// and a client's append.
fn validate_batch_fields(header: &BatchHeader) -> Result<(), BatchError> {
    if header.record_count <= 0 {
        return Err(BatchError::Invalid("a batch must hold at least one record"));
    }
    if header.last_offset_delta != header.record_count - 1 {
        return Err(BatchError::Invalid(
            "lastOffsetDelta does not match the record count",
        ));
    }
    // Control batches are written by the broker (transaction markers), never
    // by a client.
    if header.is_control() {
        return Err(BatchError::Invalid(
            "clients are not allowed to write control records",
        ));
    }
    // Tidemark has no transaction coordinator: no producer can have begun a
    // transaction, so a transactional batch is refused rather than stored
    // as a transaction that never ends (which would stall read_committed
    // consumers at its first offset).
    if header.is_transactional() {
        return Err(BatchError::Invalid(
            "transactional batches are not supported",
        ));
    }
    // Kafka's LogValidator.validateBatch: a batch with a producer id must
    // carry a sequence number.
    if header.producer_id >= 0 && header.base_sequence < 0 {
        return Err(BatchError::Invalid(
            "a batch with a producer id must have a sequence number",
        ));
    }
    Ok(())
}

/// Walks every record of an uncompressed batch: lengths must add up, offset
/// deltas must run 0, 1, 2, ... and the count must match the header; each
/// record's timestamp is checked by `checks` (one out of range refuses the
/// batch at once: INVALID_TIMESTAMP wins, as in Kafka); then, with
/// `require_keys`, every record must have a key. Returns the largest
/// timestamp.
fn validate_uncompressed_records(
    mut records: &[u8],
    header: &BatchHeader,
    checks: &RecordChecks,
) -> Result<i64, BatchError> {
    let invalid = BatchError::Invalid;
    let mut max_timestamp = NO_TIMESTAMP;
    let mut keyless = KeylessRecords::default();
    for expected_delta in 0..header.record_count {
        let length = read_varint(&mut records).ok_or(invalid("bad record length"))?;
        if length < 0 || length as usize > records.len() {
            return Err(invalid("record length runs past the batch"));
        }
        let (mut record, rest) = records.split_at(length as usize);
        records = rest;
        if record.is_empty() {
            return Err(invalid("empty record"));
        }
        record = &record[1..]; // attributes
        let delta = read_varlong(&mut record).ok_or(invalid("bad timestamp delta"))?;
        let timestamp = header.base_timestamp.wrapping_add(delta);
        checks.check_timestamp(header, timestamp)?;
        max_timestamp = max_timestamp.max(timestamp);
        let offset_delta = read_varint(&mut record).ok_or(invalid("bad offset delta"))?;
        if offset_delta != expected_delta {
            return Err(invalid("record offset deltas are not consecutive"));
        }
        let key_len = skip_nullable_bytes(&mut record).ok_or(invalid("bad key"))?;
        if checks.require_keys && key_len < 0 {
            keyless.note(expected_delta);
        }
        skip_nullable_bytes(&mut record).ok_or(invalid("bad value"))?;
        let headers = read_varint(&mut record).ok_or(invalid("bad header count"))?;
        if headers < 0 {
            return Err(invalid("negative header count"));
        }
        for _ in 0..headers {
            let key_len = read_varint(&mut record).ok_or(invalid("bad header key"))?;
            if key_len < 0 || key_len as usize > record.len() {
                return Err(invalid("bad header key"));
            }
            record = &record[key_len as usize..];
            skip_nullable_bytes(&mut record).ok_or(invalid("bad header value"))?;
        }
        if !record.is_empty() {
            return Err(invalid("record has bytes past its last header"));
        }
    }
    if !records.is_empty() {
        return Err(invalid("more records than the header counts"));
    }
    keyless.into_result()?;
    Ok(max_timestamp)
}

/// Writes the broker-assigned `baseOffset` and `partitionLeaderEpoch` into a
/// batch; neither is covered by the CRC.
pub fn patch_batch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    debug_assert!(batch.len() >= BATCH_HEADER_LEN);
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// The CRC-covered header fields the broker may rewrite on append (Kafka's
/// `DefaultRecordBatch.setMaxTimestamp`): the attributes (timestamp type
/// bit), `maxTimestamp`, and the CRC that covers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderStamp {
    pub attributes: i16,
    pub max_timestamp: i64,
    pub crc: u32,
}

impl HeaderStamp {
    /// The stamp a header carries (for a batch stored as sent, its own).
    pub fn of(header: &BatchHeader) -> Self {
        HeaderStamp {
            attributes: header.attributes,
            max_timestamp: header.max_timestamp,
            crc: header.crc,
        }
    }

    /// Writes the stamp into a batch (at least its header).
    pub fn apply(&self, batch: &mut [u8]) {
        debug_assert!(batch.len() >= BATCH_HEADER_LEN);
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&self.crc.to_be_bytes());
        batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&self.attributes.to_be_bytes());
        batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8]
            .copy_from_slice(&self.max_timestamp.to_be_bytes());
    }
}

/// Writes every field the broker sets on append into a batch (at least its
/// header): `baseOffset`, `partitionLeaderEpoch` and the stamp of `header`.
pub fn patch_stored_fields(batch: &mut [u8], header: &BatchHeader) {
    patch_batch(batch, header.base_offset, header.leader_epoch);
    HeaderStamp::of(header).apply(batch);
}

/// The CRC-covered bytes a stamp changes: attributes through `maxTimestamp`.
const STAMPED_LEN: usize = MAX_TIMESTAMP_AT + 8 - ATTRIBUTES_AT;

/// `header` of valid `batch` with its timestamp type set (LogAppendTime or
/// CreateTime) and `maxTimestamp` set, as Kafka's `setMaxTimestamp` sets
/// them, and the CRC recomputed for them. CRC32C is linear, so the new CRC
/// is the old one changed by the contribution of the changed bytes,
/// shifted past the rest of the batch (`crc32c_combine`, O(log n)): the
/// batch's other bytes are not read again.
pub fn stamp_batch(
    batch: &[u8],
    header: &BatchHeader,
    log_append_time: bool,
    max_timestamp: i64,
) -> BatchHeader {
    let attributes = if log_append_time {
        header.attributes | LOG_APPEND_TIME_FLAG
    } else {
        header.attributes & !LOG_APPEND_TIME_FLAG
    };
    let mut stamped = *header;
    stamped.attributes = attributes;
    stamped.max_timestamp = max_timestamp;
    if attributes == header.attributes && max_timestamp == header.max_timestamp {
        return stamped;
    }
    let mut old = [0u8; STAMPED_LEN];
    old.copy_from_slice(&batch[ATTRIBUTES_AT..ATTRIBUTES_AT + STAMPED_LEN]);
    let mut new = old;
    new[..2].copy_from_slice(&attributes.to_be_bytes());
    let at = MAX_TIMESTAMP_AT - ATTRIBUTES_AT;
    new[at..].copy_from_slice(&max_timestamp.to_be_bytes());
    let mut delta = [0u8; STAMPED_LEN];
    for (d, (o, n)) in delta.iter_mut().zip(old.iter().zip(new.iter())) {
        *d = o ^ n;
    }
    // crc(a ^ b) = crc(a) ^ crc(b) ^ crc(zeros) for messages of one length.
    let head = crc32c::crc32c(&delta) ^ crc32c::crc32c(&[0u8; STAMPED_LEN]);
    let rest = header.size - ATTRIBUTES_AT - STAMPED_LEN;
    stamped.crc = header.crc ^ crc32c::crc32c_combine(head, 0, rest);
    stamped
}

/// One record to encode: timestamp (ms), key and value.
pub type PlainRecord = (i64, Option<bytes::Bytes>, Option<bytes::Bytes>);

/// Encodes records as one RecordBatch v2 without a producer id: offsets
/// 0, 1, 2, ... (the broker assigns real ones), the given codec. Used by the
/// group coordinator, the CLI client, tests and benches.
pub fn encode_records(
    records: &[PlainRecord],
    compression: kafka_protocol::records::Compression,
) -> Result<bytes::Bytes, String> {
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (timestamp, key, value))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence
            // is constant; the first record's -1 marks "no sequence".
            sequence: i as i32 - 1,
            timestamp: *timestamp,
            key: key.clone(),
            value: value.clone(),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

/// Iterates over the whole batches at the start of a buffer (a segment read
/// or a fetch response). Stops at the first batch that is cut off or whose
/// header does not parse; `consumed()` says how many bytes were whole batches.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter { buf, position: 0 }
    }

    pub fn consumed(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for BatchIter<'a> {
    /// A batch header and the batch's position in the buffer.
    type Item = (BatchHeader, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.position..];
        let header = BatchHeader::parse(rest).ok()?;
        if header.size > rest.len() {
            return None;
        }
        let at = self.position;
        self.position += header.size;
        Some((header, at))
    }
}

fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn read_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

/// Reads a zigzag varint of at most 5 bytes.
fn read_varint(buf: &mut &[u8]) -> Option<i32> {
    let raw = read_unsigned_varint(buf, 5)?;
    let raw = u32::try_from(raw).ok()?;
    Some(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Reads a zigzag varlong of at most 10 bytes.
fn read_varlong(buf: &mut &[u8]) -> Option<i64> {
    let raw = read_unsigned_varint(buf, 10)?;
    Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn read_unsigned_varint(buf: &mut &[u8], max_bytes: usize) -> Option<u64> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let byte = *buf.get(i)?;
        value |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Some(value);
        }
    }
    None
}

/// Skips a varint-length-prefixed byte string where -1 means null; returns
/// the length.
fn skip_nullable_bytes(buf: &mut &[u8]) -> Option<i32> {
    let len = read_varint(buf)?;
    if len < -1 {
        return None;
    }
    if len > 0 {
        if len as usize > buf.len() {
            return None;
        }
        *buf = &buf[len as usize..];
    }
    Some(len)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testing::*;

    use kafka_protocol::records::Compression;

    #[test]
    fn valid_batches_pass_for_every_codec() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = sample_batch(5, c);
            let h = validate_producer_batch(&batch).unwrap();
            assert_eq!(h.record_count, 5);
            assert_eq!(h.size, batch.len());
            assert_eq!(h.max_timestamp, 1_004);
        }
    }

    #[test]
    fn flipped_payload_byte_is_corrupt() {
        let mut batch = sample_batch(3, Compression::None);
        let last = batch.len() - 2;
        batch[last] ^= 0xff;
        assert_eq!(
            validate_producer_batch(&batch),
            Err(BatchError::Corrupt("CRC32C mismatch"))
        );
    }

    #[test]
    fn truncated_and_oversized_lengths_are_refused() {
        let batch = sample_batch(3, Compression::None);
        assert!(validate_producer_batch(&batch[..30]).is_err());
        assert!(validate_producer_batch(&batch[..batch.len() - 1]).is_err());
        let mut two = batch.clone();
        two.extend_from_slice(&batch);
        assert!(matches!(
            validate_producer_batch(&two),
            Err(BatchError::Invalid(_))
        ));
    }

    #[test]
    fn producer_fields_are_read_and_a_missing_sequence_refused() {
        let batch = producer_batch(3, 42, 7, i32::MAX - 1);
        let h = validate_producer_batch(&batch).unwrap();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 7, i32::MAX - 1)
        );
        let bad = producer_batch(1, 42, 7, -1);
        assert!(matches!(
            validate_producer_batch(&bad),
            Err(BatchError::Invalid(_))
        ));
    }

    #[test]
    fn patch_keeps_crc_valid() {
        let mut batch = sample_batch(2, Compression::None);
        patch_batch(&mut batch, 42, 7);
        let h = validate_producer_batch(&batch).unwrap();
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.leader_epoch, 7);
        assert_eq!(h.last_offset(), 43);
    }

    #[test]
    fn a_stamp_updates_the_crc_as_a_full_pass_would() {
        for (n, c) in [
            (1, Compression::None),
            (7, Compression::None),
            (300, Compression::None),
            (5, Compression::Zstd),
            (40, Compression::Lz4),
        ] {
            let batch = sample_batch(n, c);
            let header = validate_producer_batch(&batch).unwrap();
            for (log_append_time, max_timestamp) in
                [(true, 1_700_000_000_123), (true, -1), (false, 4_242)]
            {
                let stamped = stamp_batch(&batch, &header, log_append_time, max_timestamp);
                let mut copy = batch.clone();
                patch_stored_fields(&mut copy, &stamped);
                assert_eq!(
                    stamped.crc,
                    crc32c::crc32c(&copy[ATTRIBUTES_AT..]),
                    "{n} {c:?}"
                );
                let again = validate_producer_batch(&copy).expect("the stamped batch is valid");
                assert_eq!(again.is_log_append_time(), log_append_time);
                assert_eq!(again.max_timestamp, max_timestamp);
                assert_eq!(again.attributes & COMPRESSION_MASK, header.attributes);
                // Stamping back gives the producer's CRC again.
                let back = stamp_batch(&copy, &again, false, header.max_timestamp);
                assert_eq!(back.crc, header.crc);
            }
        }
    }

    #[test]
    fn record_timestamps_are_checked_as_kafka_checks_them() {
        // Records at 1000..1004.
        let batch = sample_batch(5, Compression::None);
        let zstd = sample_batch(5, Compression::Zstd);
        let window = |now_ms, before_max_ms, after_max_ms| RecordChecks {
            require_keys: false,
            timestamps: TimestampRule::CreateTime {
                now_ms,
                before_max_ms,
                after_max_ms,
            },
        };
        let bound = DECOMPRESSED_BATCH_BYTES_MAX;
        for b in [&batch, &zstd] {
            let ok = validate_producer_batch_for(b, &window(2_000, i64::MAX, 0), bound).unwrap();
            assert_eq!(ok.max_timestamp, 1_004);
            assert!(validate_producer_batch_for(b, &window(1_000, 0, 4), bound).is_ok());
            for checks in [window(1_000, 0, 3), window(2_000, 999, 0)] {
                assert!(matches!(
                    validate_producer_batch_for(b, &checks, bound),
                    Err(BatchError::InvalidTimestamp(_))
                ));
            }
            let appended = RecordChecks {
                require_keys: false,
                timestamps: TimestampRule::LogAppendTime,
            };
            assert!(validate_producer_batch_for(b, &appended, bound).is_ok());
        }
        // A producer that sets the LogAppendTime bit itself.
        let header = validate_producer_batch(&batch).unwrap();
        let mut forged = batch.clone();
        patch_stored_fields(&mut forged, &stamp_batch(&batch, &header, true, 1_004));
        let appended = RecordChecks {
            require_keys: false,
            timestamps: TimestampRule::LogAppendTime,
        };
        assert!(matches!(
            validate_producer_batch_for(&forged, &appended, bound),
            Err(BatchError::InvalidTimestamp(_))
        ));
    }

    #[test]
    fn iter_stops_at_a_cut_batch() {
        let a = sample_batch(2, Compression::None);
        let mut buf = a.clone();
        buf.extend_from_slice(&a[..a.len() - 5]);
        let mut it = BatchIter::new(&buf);
        assert!(it.next().is_some());
        assert!(it.next().is_none());
        assert_eq!(it.consumed(), a.len());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed: u32 = 12345;
        for len in 0..400 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            let _ = validate_producer_batch(&buf);
            let _ = BatchIter::new(&buf).count();
        }
    }
}
