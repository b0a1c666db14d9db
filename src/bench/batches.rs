//! Record batches and Produce frames built ahead of time, so the generator is
//! not the bottleneck: each distinct RecordBatch v2 is encoded once (with
//! kafka-protocol's encoder, through `client::records::encode_batch`), and
//! each Produce request is split into a small head (size prefix, header,
//! topic, partition, records length), the shared batch bytes and a tail. A
//! send copies only the head, patching its correlation id and partition.
//! For end-to-end runs the send time is stamped into the first record's value
//! (and the batch CRC recomputed). Runs on the bench's CLI threads.

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

use client::conn::{encode_request, patch_correlation_id};
use client::records::{encode_batch, first_value_span};
use client::{Acks, ClientError, ProducerRecord};

use super::BenchError;

/// Bytes stamped at the start of the first record's value in e2e runs: the
/// send time (8) and the run's nonce (8).
pub const STAMP_BYTES: usize = 16;
/// Offset of the CRC in a batch, and of the attributes where it starts.
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
/// How far before the end of a Produce frame its batch may end (tagged
/// fields of the partition, topic and request: three bytes at most here).
const TAIL_BYTES_MAX: usize = 16;
/// Two partition indexes that differ in every byte, to locate the field.
const PROBE_PARTITIONS: (i32, i32) = (0x0102_0304, 0x1526_3748);

/// One batch encoded ahead of time.
#[derive(Debug, Clone)]
pub struct PrebuiltBatch {
    pub bytes: Bytes,
    pub records: u64,
    pub value_bytes: u64,
    /// Where the first record's value starts (uncompressed batches).
    pub stamp_at: Option<usize>,
}

/// Fills a value with pseudo-random upper-case letters (compressible about
/// as much as text, like Kafka's own perf tool), from a xorshift seed.
fn fill_value(value: &mut [u8], seed: &mut u64) {
    for byte in value.iter_mut() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *byte = b'A' + (*seed % 26) as u8;
    }
}

/// Encodes one batch of `records` values of `record_size` bytes each.
pub fn build_batch(
    records: u64,
    record_size: usize,
    compression: Compression,
    seed: u64,
) -> Result<PrebuiltBatch, BenchError> {
    if records == 0 {
        return Err(BenchError::InvalidArgument("a batch needs a record".into()));
    }
    let mut state = seed | 1;
    let values: Vec<ProducerRecord> = (0..records)
        .map(|_| {
            let mut value = vec![0u8; record_size];
            fill_value(&mut value, &mut state);
            ProducerRecord {
                key: None,
                value: Some(Bytes::from(value)),
            }
        })
        .collect();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let bytes = encode_batch(&values, compression, now_ms)?;
    let stamp_at = first_value_span(&bytes)
        .filter(|(_, len)| *len >= STAMP_BYTES)
        .map(|(at, _)| at);
    Ok(PrebuiltBatch {
        bytes,
        records,
        value_bytes: records * record_size as u64,
        stamp_at,
    })
}

/// Writes the e2e stamp (send time in ns from the run's clock base, then the
/// run's nonce) into a copy of `batch` held in `out`, and fixes its CRC.
pub fn stamp_batch(
    batch: &PrebuiltBatch,
    sent_ns: u64,
    nonce: u64,
    out: &mut Vec<u8>,
) -> Result<(), BenchError> {
    let at = batch.stamp_at.ok_or_else(|| {
        BenchError::InvalidArgument("e2e needs uncompressed batches of 16-byte values".into())
    })?;
    out.clear();
    out.extend_from_slice(&batch.bytes);
    out[at..at + 8].copy_from_slice(&sent_ns.to_be_bytes());
    out[at + 8..at + STAMP_BYTES].copy_from_slice(&nonce.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
    out[CRC_AT..ATTRIBUTES_AT].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Reads the e2e stamp of a fetched uncompressed batch: `Some(sent_ns)` when
/// it carries this run's nonce.
pub fn read_stamp(batch: &[u8], nonce: u64) -> Option<u64> {
    let (at, len) = first_value_span(batch)?;
    if len < STAMP_BYTES {
        return None;
    }
    let word = |from: usize| -> Option<u64> {
        let raw: [u8; 8] = batch.get(from..from + 8)?.try_into().ok()?;
        Some(u64::from_be_bytes(raw))
    };
    (word(at + 8)? == nonce).then_some(word(at)?)
}

/// What every Produce request of a run shares.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub topic: String,
    pub acks: Acks,
    pub timeout_ms: i32,
    pub version: i16,
    pub client_id: String,
}

/// A Produce request for one batch, split around the batch bytes.
#[derive(Debug, Clone)]
pub struct FrameTemplate {
    head: Vec<u8>,
    partition_at: usize,
    pub batch: PrebuiltBatch,
    tail: Bytes,
}

fn produce_frame(spec: &RequestSpec, partition: i32, batch: &Bytes) -> Result<Bytes, BenchError> {
    let request = ProduceRequest::default()
        .with_acks(spec.acks.code())
        .with_timeout_ms(spec.timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(spec.topic.clone())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch.clone()))])]);
    Ok(encode_request(&request, spec.version, 0, &spec.client_id)?)
}

/// Where `batch` lies in `frame` (near its end).
fn batch_offset(frame: &[u8], batch: &[u8]) -> Option<usize> {
    let end_max = frame.len();
    (0..=TAIL_BYTES_MAX).find_map(|k| {
        let start = end_max.checked_sub(batch.len() + k)?;
        (&frame[start..start + batch.len()] == batch).then_some(start)
    })
}

/// Where the partition index lies in two heads that differ only there.
fn partition_offset(a: &[u8], b: &[u8]) -> Option<usize> {
    if a.len() != b.len() {
        return None;
    }
    let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    match differ.as_slice() {
        [first, .., last] if differ.len() == 4 && last - first == 3 => Some(*first),
        _ => None,
    }
}

impl FrameTemplate {
    /// Encodes the request twice (two probe partitions) to find where the
    /// batch and the partition index lie in the frame.
    pub fn new(spec: &RequestSpec, batch: PrebuiltBatch) -> Result<FrameTemplate, BenchError> {
        let layout = || BenchError::Setup("unexpected Produce request layout".into());
        let a = produce_frame(spec, PROBE_PARTITIONS.0, &batch.bytes)?;
        let b = produce_frame(spec, PROBE_PARTITIONS.1, &batch.bytes)?;
        let at = batch_offset(&a, &batch.bytes).ok_or_else(layout)?;
        let partition_at = partition_offset(&a[..at], &b[..at]).ok_or_else(layout)?;
        Ok(FrameTemplate {
            head: a[..at].to_vec(),
            partition_at,
            tail: a.slice(at + batch.bytes.len()..),
            batch,
        })
    }

    /// The head of a request for `partition` with `correlation_id`, in `out`.
    pub fn head_into(
        &self,
        partition: i32,
        correlation_id: i32,
        out: &mut Vec<u8>,
    ) -> Result<(), ClientError> {
        out.clear();
        out.extend_from_slice(&self.head);
        patch_correlation_id(out, correlation_id)?;
        out[self.partition_at..self.partition_at + 4].copy_from_slice(&partition.to_be_bytes());
        Ok(())
    }

    /// The bytes after the batch.
    pub fn tail(&self) -> &[u8] {
        &self.tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use client::conn::strip_size_prefix;
    use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable};
    use wire::batch::validate_producer_batch;

    fn spec(version: i16) -> RequestSpec {
        RequestSpec {
            topic: "bench".to_owned(),
            acks: Acks::All,
            timeout_ms: 30_000,
            version,
            client_id: "tidemark-bench".to_owned(),
        }
    }

    #[test]
    fn prebuilt_batches_are_valid() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            for (records, size) in [(1u64, 1024usize), (965, 1024), (100, 100), (3, 1)] {
                let batch = build_batch(records, size, compression, 7).expect("batch");
                let header = validate_producer_batch(&batch.bytes).expect("valid");
                assert_eq!(header.record_count as u64, records);
                assert_eq!(batch.value_bytes, records * size as u64);
                assert_eq!(
                    batch.stamp_at.is_some(),
                    compression == Compression::None && size >= STAMP_BYTES
                );
            }
        }
    }

    #[test]
    fn stamped_batches_stay_valid_and_read_back() {
        let batch = build_batch(50, 1024, Compression::None, 3).expect("batch");
        let mut out = Vec::new();
        stamp_batch(&batch, 123_456_789, 42, &mut out).expect("stamp");
        validate_producer_batch(&out).expect("valid after stamping");
        assert_eq!(read_stamp(&out, 42), Some(123_456_789));
        assert_eq!(read_stamp(&out, 43), None);
        assert_eq!(read_stamp(&batch.bytes, 42), None);
        let lz4 = build_batch(5, 1024, Compression::Lz4, 3).expect("lz4");
        assert!(stamp_batch(&lz4, 1, 1, &mut out).is_err());
    }

    #[test]
    fn frame_template_matches_a_fresh_encoding() {
        let batch = build_batch(10, 100, Compression::None, 1).expect("batch");
        for version in [3i16, 7, 8, 9, 11] {
            let template = FrameTemplate::new(&spec(version), batch.clone()).expect("template");
            let mut head = Vec::new();
            template.head_into(5, 99, &mut head).expect("head");
            let mut frame = head.clone();
            frame.extend_from_slice(&batch.bytes);
            frame.extend_from_slice(template.tail());
            let expected = produce_frame(&spec(version), 5, &batch.bytes).expect("frame");
            let mut expected = expected.to_vec();
            patch_correlation_id(&mut expected, 99).expect("patch");
            assert_eq!(frame, expected, "v{version}");
            let mut body = strip_size_prefix(Bytes::from(frame)).expect("size");
            let header = decode_request_header_from_buffer(&mut body).expect("header");
            assert_eq!(header.correlation_id, 99);
            let request = ProduceRequest::decode(&mut body, version).expect("decode");
            let partition = &request.topic_data[0].partition_data[0];
            assert_eq!(partition.index, 5);
            assert_eq!(partition.records.as_ref(), Some(&batch.bytes));
        }
    }

    #[test]
    fn values_are_letters() {
        let mut seed = 1;
        let mut value = [0u8; 64];
        fill_value(&mut value, &mut seed);
        assert!(value.iter().all(u8::is_ascii_uppercase));
    }
}
