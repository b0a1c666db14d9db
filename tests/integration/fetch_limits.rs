//! Fetch's size limits as KIP-74 defines them: an answer's record data stays
//! within the request's `max_bytes` and each partition's within its
//! `partition_max_bytes`, except that the first batch of the first non-empty
//! partition is returned whole whatever its size, so a consumer always makes
//! progress. Seen through librdkafka consumers with small `fetch.max.bytes`
//! and `max.partition.fetch.bytes` over many partitions with a backlog, and
//! through raw Fetch requests whose answers are measured.
use crate::common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use rdkafka::message::Message;

const PARTITIONS: i32 = 12;
const RECORDS_PER_PARTITION: usize = 1200;
const VALUE_BYTES: usize = 1000;
/// Each librdkafka batch holds about this many bytes (`batch.size`).
const PRODUCER_BATCH_BYTES: &str = "65536";
const FETCH_VERSION: i16 = 12;

/// A topic of `PARTITIONS` partitions, each with a backlog of
/// `RECORDS_PER_PARTITION` records of `VALUE_BYTES` (about 1.2 MB, in
/// batches of about 64 KiB).
fn topic_with_backlog(broker: &Broker, prefix: &str) -> String {
    let topic = topic_name(prefix);
    create_topic(broker, &topic, PARTITIONS, &[]);
    let producer = producer(
        broker,
        &[
            ("batch.size", PRODUCER_BATCH_BYTES),
            ("linger.ms", "20"),
            ("compression.type", "none"),
        ],
    );
    let recs: Vec<Rec> = (0..PARTITIONS)
        .flat_map(|p| {
            (0..RECORDS_PER_PARTITION).map(move |i| {
                let mut value = format!("p{p} r{i} ").into_bytes();
                value.resize(VALUE_BYTES, b'.');
                Rec::value(value).to(p)
            })
        })
        .collect();
    produce_ok(&producer, &topic, &recs);
    topic
}

/// Consumes the whole backlog with `settings` and checks every record came,
/// in order, with its value.
fn consume_backlog(broker: &Broker, topic: &str, settings: &[(&str, &str)]) {
    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    let consumed = consume_all_with(broker, topic, &partitions, settings);
    for (p, messages) in &consumed {
        assert_eq!(
            messages.len(),
            RECORDS_PER_PARTITION,
            "records of partition {p} with {settings:?}"
        );
        assert_dense(messages, 0, &format!("partition {p}"));
        for (i, m) in messages.iter().enumerate() {
            let prefix = format!("p{p} r{i} ");
            assert!(
                m.payload()
                    .is_some_and(|v| v.starts_with(prefix.as_bytes())),
                "record {i} of partition {p}"
            );
        }
    }
}

#[test]
fn librdkafka_reads_a_many_partition_backlog_within_fetch_max_bytes() {
    let broker = Broker::start();
    let topic = topic_with_backlog(&broker, "fetch-max-bytes");
    // librdkafka refuses (and reconnects on) any answer larger than
    // receive.message.max.bytes: an answer over fetch.max.bytes plus room
    // for the per-partition framing would stall this consumer.
    consume_backlog(
        &broker,
        &topic,
        &[
            ("fetch.max.bytes", "1000000"),
            ("receive.message.max.bytes", "1010000"),
        ],
    );
    consume_backlog(
        &broker,
        &topic,
        &[
            ("fetch.max.bytes", "1000000"),
            ("max.partition.fetch.bytes", "100000"),
            ("receive.message.max.bytes", "1010000"),
        ],
    );
}

/// One partition's share of a raw Fetch answer.
#[derive(Debug)]
struct Fetched {
    error_code: i16,
    bytes: usize,
    /// (base offset, size in bytes) of each batch, in order.
    batches: Vec<(i64, usize)>,
}

/// A raw Fetch of `partitions` of `topic`, each from `offset`, with the
/// request's and each partition's byte limits; returns the answer frame's
/// size and each partition's part.
fn raw_fetch(
    conn: &mut RawConn,
    topic: &str,
    partitions: &[i32],
    offset: i64,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> (usize, BTreeMap<i32, Fetched>) {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(partition_max_bytes)
                    })
                    .collect(),
            )]);
    let (_, frame) = conn.encode_request(&request, FETCH_VERSION);
    conn.send_bytes(&frame);
    let mut body = conn.read_frame().expect("read the Fetch answer");
    let frame_bytes = body.len();
    use kafka_protocol::protocol::{Decodable, HeaderVersion};
    kafka_protocol::messages::ResponseHeader::decode(
        &mut body,
        FetchResponse::header_version(FETCH_VERSION),
    )
    .expect("decode the response header");
    let response = FetchResponse::decode(&mut body, FETCH_VERSION).expect("decode the answer");
    assert_eq!(response.error_code, 0, "Fetch error code");
    let parts = response.responses[0]
        .partitions
        .iter()
        .map(|p| {
            let records = p.records.clone().unwrap_or_default();
            (
                p.partition_index,
                Fetched {
                    error_code: p.error_code,
                    bytes: records.len(),
                    batches: batches_of(records),
                },
            )
        })
        .collect();
    (frame_bytes, parts)
}

/// (base offset, size) of each whole batch in `records`; every byte must
/// belong to one.
fn batches_of(mut records: Bytes) -> Vec<(i64, usize)> {
    let mut out = Vec::new();
    while records.len() >= 12 {
        let base = i64::from_be_bytes(records[..8].try_into().expect("8 bytes"));
        let len = i32::from_be_bytes(records[8..12].try_into().expect("4 bytes")) as usize + 12;
        assert!(len <= records.len(), "a partial batch in the answer");
        let mut batch = records.split_to(len);
        RecordBatchDecoder::decode_all(&mut batch).expect("a whole, valid batch");
        out.push((base, len));
    }
    assert!(records.is_empty(), "bytes after the last batch");
    out
}

#[test]
fn a_fetch_answer_stays_within_max_bytes_and_partition_max_bytes() {
    let broker = Broker::start();
    let topic = topic_with_backlog(&broker, "fetch-bounds");
    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    let mut conn = RawConn::connect(&broker);

    // The request's limit, under every partition's backlog: the answer's
    // records stay within it, and fill most of it.
    let max_bytes = 1_000_000;
    let (frame, parts) = raw_fetch(&mut conn, &topic, &partitions, 0, max_bytes, 1 << 20);
    let total: usize = parts.values().map(|p| p.bytes).sum();
    assert!(parts.values().all(|p| p.error_code == 0), "{parts:?}");
    assert!(
        total <= max_bytes as usize,
        "{total} record bytes for max_bytes {max_bytes}"
    );
    assert!(
        total > max_bytes as usize / 2,
        "{total} record bytes: the answer should fill max_bytes {max_bytes} with whole batches"
    );
    assert!(
        frame <= max_bytes as usize + 100 * partitions.len(),
        "an answer frame of {frame} bytes for max_bytes {max_bytes}"
    );

    // Each partition's limit: every partition answers, within it.
    let partition_max = 150_000;
    let (_, parts) = raw_fetch(&mut conn, &topic, &partitions, 0, 50 << 20, partition_max);
    for (p, part) in &parts {
        assert!(
            part.bytes <= partition_max as usize && part.bytes > 0,
            "partition {p}: {} record bytes for partition_max_bytes {partition_max}",
            part.bytes
        );
    }

    // KIP-74: a first batch larger than the limits comes whole, and alone:
    // the first partition's is the only one over its partition_max_bytes,
    // whichever shard owns each partition.
    for (max_bytes, partition_max) in [(1000, 1000), (50 << 20, 1000), (1000, 1 << 20)] {
        let (_, parts) = raw_fetch(&mut conn, &topic, &partitions, 0, max_bytes, partition_max);
        assert_only_the_first_batch_of_partition_0(&parts, (max_bytes, partition_max));
    }
}

fn assert_only_the_first_batch_of_partition_0(parts: &BTreeMap<i32, Fetched>, limits: (i32, i32)) {
    let non_empty: Vec<(&i32, &Fetched)> = parts.iter().filter(|(_, p)| p.bytes > 0).collect();
    assert_eq!(
        non_empty.len(),
        1,
        "only the first partition answers with (max_bytes, partition_max_bytes) {limits:?}: {parts:?}"
    );
    let (p, first) = non_empty[0];
    assert_eq!(*p, 0, "the first partition of the request");
    assert_eq!(first.batches.len(), 1, "exactly its first batch");
    assert_eq!(first.batches[0].0, 0, "the batch at the fetch offset");
}
