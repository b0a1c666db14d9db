//! Compression bombs and poison batches (issue 10, items 6 and 7), sent as
//! raw Produce requests to a `cleanup.policy=compact` topic: each gets the
//! error code Kafka's log validator gives it, nothing is stored, the
//! broker's memory does not follow what the batches claim, and afterwards
//! librdkafka produces and consumes with every codec as usual.
use crate::common;

use std::io::Write;

use bytes::Bytes;
use common::*;
use indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;

const CORRUPT_MESSAGE: i16 = 2;
const MESSAGE_TOO_LARGE: i16 = 10;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
const INVALID_RECORD: i16 = 87;

const BATCH_HEADER_LEN: usize = 61;

fn produce_v7(conn: &mut RawConn, topic: &str, batch: Vec<u8>) -> i16 {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])]);
    let response: ProduceResponse = conn.request(&request, 7);
    response.responses[0].partition_responses[0].error_code
}

fn record(i: i64, key: Option<&str>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i,
        // kafka-protocol's encoder keeps records in one batch while
        // offset - sequence is constant.
        sequence: i as i32 - 1,
        timestamp: 1_700_000_000_000,
        key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
        value: Some(Bytes::from(format!("value {i}"))),
        headers: IndexMap::new(),
    }
}

fn encoded(records: &[Record], compression: Compression) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, records, &options).expect("encode");
    buf.to_vec()
}

fn keyed(n: i64, compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = (0..n).map(|i| record(i, Some("key"))).collect();
    encoded(&records, compression)
}

/// `template`'s header over a new records field, attributes and count, with
/// its length and CRC made right again (the batch must reach the record
/// checks, not fail at the CRC).
fn rebuilt(template: &[u8], attributes: i16, count: i32, field: &[u8]) -> Vec<u8> {
    let mut out = template[..BATCH_HEADER_LEN].to_vec();
    out.extend_from_slice(field);
    let batch_length = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    out[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

fn zigzag(v: i64, out: &mut Vec<u8>) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// A zstd frame of 65,536 RLE blocks of 128 KiB after the start of one
/// record whose value claims nearly 2 GiB: 256 KiB that inflate to 8 GiB.
fn zstd_bomb() -> Vec<u8> {
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, (17 - 10) << 3];
    let mut start = Vec::new();
    zigzag(i32::MAX as i64, &mut start);
    start.extend_from_slice(&[0, 0, 0]);
    zigzag(1, &mut start);
    start.push(b'k');
    zigzag(i32::MAX as i64 - 100, &mut start);
    frame.extend_from_slice(&((start.len() as u32) << 3).to_le_bytes()[..3]);
    frame.extend_from_slice(&start);
    let blocks = 65_536;
    for i in 0..blocks {
        let header = (i + 1 == blocks) as u32 | (1 << 1) | ((128 << 10) << 3);
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
        frame.push(0);
    }
    frame
}

/// One gzip'd record with a key whose header count says 2^31-1.
fn header_bomb() -> Vec<u8> {
    let mut body = vec![0u8, 0, 0];
    zigzag(1, &mut body);
    body.push(b'k');
    zigzag(1, &mut body);
    body.push(b'v');
    zigzag(i32::MAX as i64, &mut body);
    let mut record = Vec::new();
    zigzag(body.len() as i64, &mut record);
    record.extend_from_slice(&body);
    gzip(&record)
}

fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Every poison batch with the code it must get.
fn poison_batches() -> Vec<(&'static str, Vec<u8>, i16)> {
    let one = keyed(1, Compression::None);
    let plain_field = one[BATCH_HEADER_LEN..].to_vec();
    let mut seed = 7u32;
    let garbage: Vec<u8> = (0..4000)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        })
        .collect();
    let lz4_four = keyed(4, Compression::Lz4);
    assert_eq!(i32::from_be_bytes(lz4_four[57..61].try_into().unwrap()), 4);
    let no_key = encoded(&[record(0, None)], Compression::Zstd);
    let lying_snappy = [0xff, 0xff, 0xff, 0xff, 0x0f, 0, 1, 2, 3, 4];
    let mut cases = vec![
        (
            "zstd bomb (256 KiB to 8 GiB)",
            rebuilt(&one, 4, 1, &zstd_bomb()),
            MESSAGE_TOO_LARGE,
        ),
        (
            "gzip record claiming 2^31-1 headers",
            rebuilt(&one, 1, 1, &header_bomb()),
            INVALID_RECORD,
        ),
        (
            "snappy block lying about its length",
            rebuilt(&one, 2, 1, &lying_snappy),
            CORRUPT_MESSAGE,
        ),
        (
            "gzip of garbage records",
            rebuilt(&one, 1, 1, &gzip(&garbage)),
            INVALID_RECORD,
        ),
        (
            "lz4 batch counting 5 records for 4",
            rebuilt(&lz4_four, 3, 5, &lz4_four[BATCH_HEADER_LEN..]),
            INVALID_RECORD,
        ),
        (
            "lz4 batch counting 3 records for 4",
            rebuilt(&lz4_four, 3, 3, &lz4_four[BATCH_HEADER_LEN..]),
            INVALID_RECORD,
        ),
        (
            "control batch from a client",
            rebuilt(&one, 0x20, 1, &plain_field),
            INVALID_RECORD,
        ),
        (
            "transactional batch without a transaction",
            rebuilt(&one, 0x10, 1, &plain_field),
            INVALID_RECORD,
        ),
        ("zstd record without a key", no_key, INVALID_RECORD),
    ];
    for codec in 5..=7 {
        cases.push((
            "undefined codec",
            rebuilt(&one, codec, 1, &plain_field),
            UNSUPPORTED_COMPRESSION_TYPE,
        ));
    }
    for codec in 1..=4 {
        cases.push((
            "compressed attributes over bytes that do not decompress",
            rebuilt(&one, codec, 1, &plain_field),
            CORRUPT_MESSAGE,
        ));
    }
    cases
}

#[test]
fn poison_batches_get_kafkas_error_codes_and_the_broker_serves_on() {
    let mut broker = Broker::start();
    let topic = topic_name("poison");
    create_topic(&broker, &topic, 1, &[("cleanup.policy", "compact")]);
    let mut conn = RawConn::connect(&broker);
    let rss_before = peak_rss_bytes(broker.pid());

    for (what, batch, code) in poison_batches() {
        assert_eq!(produce_v7(&mut conn, &topic, batch), code, "{what}");
    }
    broker.assert_alive_after("the poison batches");
    assert_eq!(watermarks(&broker, &topic, 0), (0, 0), "nothing stored");
    let grown = peak_rss_bytes(broker.pid()).saturating_sub(rss_before);
    assert!(
        grown < 256 << 20,
        "the broker's peak RSS grew by {grown} bytes"
    );

    // The same connection, then librdkafka with every codec, still work.
    assert_eq!(
        produce_v7(&mut conn, &topic, keyed(3, Compression::Zstd)),
        0
    );
    let mut sent = 3;
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let producer = producer(&broker, &[("compression.codec", codec)]);
        let recs: Vec<Rec> = (0..200)
            .map(|i| {
                Rec::new(
                    Some(&format!("key-{}", i % 10)),
                    Some(&format!("{codec} {i}")),
                )
                .header("h", Some(codec.as_bytes()))
            })
            .collect();
        produce_ok(&producer, &topic, &recs);
        sent += recs.len();
    }
    let consumed = consume_all(&broker, &topic, &[0]);
    assert_eq!(consumed[&0].len(), sent, "every record read back");
    assert_dense(&consumed[&0], 0, "the compacted topic before any cleaning");
    let last = consumed[&0].last().expect("a record");
    assert_eq!(last.payload(), Some(&b"zstd 199"[..]));
    broker.assert_alive_after("produce and consume with every codec");
}

/// A raw Produce at `version` of one batch to partition 0 of `topic`: the
/// partition's answer.
fn produce_at(
    conn: &mut RawConn,
    topic: &str,
    batch: Vec<u8>,
    version: i16,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])]);
    let response: ProduceResponse = conn.request(&request, version);
    response.responses[0].partition_responses[0].clone()
}

#[test]
fn keyless_records_of_a_compacted_topic_are_named_as_kafka_names_them() {
    let broker = Broker::start();
    let topic = topic_name("keyless");
    create_topic(&broker, &topic, 1, &[("cleanup.policy", "compact")]);
    let mut conn = RawConn::connect(&broker);
    // Records 1, 3 and 4 have no key.
    let keys = [Some("a"), None, Some("b"), None, None, Some("c")];
    let records: Vec<Record> = keys.iter().zip(0..).map(|(k, i)| record(i, *k)).collect();
    let per_record =
        format!("Compacted topic cannot accept message without key in topic partition {topic}-0");
    let shown = |i: i32| format!("RecordError(batchIndex={i}, message='{per_record}')");
    let summary = format!(
        "One or more records have been rejected due to 3 record errors in total, and only \
         showing the first three errors at most: [{}, {}, {}]",
        shown(1),
        shown(3),
        shown(4)
    );
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let answer = produce_at(&mut conn, &topic, encoded(&records, compression), 11);
        assert_eq!(answer.error_code, INVALID_RECORD, "{compression:?}");
        assert_eq!(answer.base_offset, -1);
        assert_eq!(answer.log_start_offset, 0, "as Kafka: the log start");
        let named: Vec<(i32, Option<String>)> = answer
            .record_errors
            .iter()
            .map(|e| {
                let message = e.batch_index_error_message.as_ref().map(|m| m.to_string());
                (e.batch_index, message)
            })
            .collect();
        let expected: Vec<(i32, Option<String>)> = [1, 3, 4]
            .into_iter()
            .map(|i| (i, Some(per_record.clone())))
            .collect();
        assert_eq!(named, expected, "{compression:?}");
        assert_eq!(
            answer.error_message.as_deref(),
            Some(summary.as_str()),
            "{compression:?}"
        );
    }
    // Before v8 the answer has only the code; other refusals name nothing.
    let answer = produce_at(&mut conn, &topic, encoded(&records, Compression::None), 7);
    assert_eq!(answer.error_code, INVALID_RECORD);
    let one = keyed(1, Compression::None);
    let control = rebuilt(&one, 0x20, 1, &one[BATCH_HEADER_LEN..]);
    let answer = produce_at(&mut conn, &topic, control, 11);
    assert_eq!(answer.error_code, INVALID_RECORD);
    assert!(answer.record_errors.is_empty());
    assert_eq!(answer.error_message, None);
    assert_eq!(watermarks(&broker, &topic, 0), (0, 0), "nothing stored");

    // librdkafka fails the keyless records with INVALID_RECORD and the
    // others of their batch with _INVALID_DIFFERENT_RECORD.
    let producer = producer(&broker, &[("linger.ms", "500")]);
    let recs: Vec<Rec> = keys
        .iter()
        .zip(0..)
        .map(|(k, i)| Rec::new(*k, Some(&format!("value {i}"))).to(0))
        .collect();
    let codes: Vec<Option<RDKafkaErrorCode>> = produce(&producer, &topic, &recs)
        .into_iter()
        .map(|outcome| outcome.err().and_then(|e| e.rdkafka_error_code()))
        .collect();
    let different = Some(RDKafkaErrorCode::InvalidDifferentRecord);
    let invalid = Some(RDKafkaErrorCode::InvalidRecord);
    assert_eq!(
        codes,
        vec![different, invalid, different, invalid, invalid, different]
    );
}
