//! The topic configs that shape what Produce stores, as Apache Kafka
//! applies them: `message.timestamp.type=LogAppendTime` (the broker's clock
//! on every batch, answered to the producer, seen by consumers and followed
//! by ListOffsets), `message.timestamp.before.max.ms` and `after.max.ms`
//! (CreateTime records out of range are INVALID_TIMESTAMP), and
//! `compression.type` (batches recompressed to the topic's codec).
//! librdkafka produces and consumes; a raw Fetch shows the stored codec,
//! which no client reports.
use crate::common;

use common::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::Mutex;
use std::time::Duration;
use wire::batch::BatchHeader;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// Keeps the timestamp of every delivery report.
#[derive(Default)]
struct Stamps {
    delivered: Mutex<Vec<Result<Timestamp, RDKafkaErrorCode>>>,
}

impl ClientContext for Stamps {}

impl ProducerContext for Stamps {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let stamp = match result {
            Ok(message) => Ok(message.timestamp()),
            Err((KafkaError::MessageProduction(code), _)) => Err(*code),
            Err((e, _)) => panic!("delivery failed: {e}"),
        };
        self.delivered.lock().unwrap().push(stamp);
    }
}

/// Produces one record per timestamp in one batch and returns the delivery
/// reports' timestamps (or error codes).
fn produce_at(
    broker: &Broker,
    topic: &str,
    timestamps: &[i64],
    extra: &[(&str, &str)],
) -> Vec<Result<Timestamp, RDKafkaErrorCode>> {
    let mut config = client_config(broker);
    config
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("message.timeout.ms", "20000");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    let producer: BaseProducer<Stamps> = config
        .create_with_context(Stamps::default())
        .expect("producer");
    for (i, ts) in timestamps.iter().enumerate() {
        let value = format!("value {i}");
        let record = BaseRecord::to(topic)
            .partition(0)
            .key("k")
            .payload(value.as_bytes())
            .timestamp(*ts);
        producer.send(record).map_err(|(e, _)| e).expect("enqueue");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    let delivered = std::mem::take(&mut *producer.context().delivered.lock().unwrap());
    assert_eq!(delivered.len(), timestamps.len(), "one report per record");
    delivered
}

fn offset_for_time(broker: &Broker, topic: &str, timestamp: i64) -> Offset {
    let consumer = consumer(broker);
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset(topic, 0, Offset::Offset(timestamp))
        .expect("add partition");
    let answer = consumer
        .offsets_for_times(query, CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("offsets_for_times({timestamp}): {e}"));
    answer.find_partition(topic, 0).expect("partition").offset()
}

#[test]
fn log_append_time_topics_get_the_brokers_clock() {
    let broker = Broker::start();
    let topic = topic_name("log-append-time");
    create_topic(
        &broker,
        &topic,
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    // Create times from long ago: the broker's clock replaces them.
    let created = [1_000_000, 1_000_500, 1_000_250];
    let before = now_ms();
    let delivered = produce_at(&broker, &topic, &created, &[]);
    let after = now_ms();
    let near_now = |ts: i64| (before - 1_000..=after + 1_000).contains(&ts);
    let mut stamped = Vec::new();
    for report in &delivered {
        match report {
            Ok(Timestamp::LogAppendTime(ts)) if near_now(*ts) => stamped.push(*ts),
            other => panic!(
                "the Produce answer's log_append_time_ms, as librdkafka reports it: {other:?}"
            ),
        }
    }

    let consumed = consume_all(&broker, &topic, &[0]);
    let messages = &consumed[&0];
    assert_eq!(messages.len(), 3);
    for m in messages {
        match m.timestamp() {
            Timestamp::LogAppendTime(ts) => {
                assert!(near_now(ts), "the consumer sees the append time, not {ts}");
                assert_eq!(ts, stamped[0], "one batch, one append time");
            }
            other => panic!("a consumer sees LogAppendTime, not {other:?}"),
        }
    }

    // ListOffsets by time follows the stamp, not the create times.
    assert_eq!(
        offset_for_time(&broker, &topic, 1_000_400),
        Offset::Offset(0)
    );
    assert_eq!(
        offset_for_time(&broker, &topic, before - 60_000),
        Offset::Offset(0)
    );
    assert_eq!(
        offset_for_time(&broker, &topic, after + 60_000),
        Offset::End
    );

    // A topic switched to CreateTime keeps the producer's times again.
    assert_eq!(
        set_topic_config(&broker, &topic, "message.timestamp.type", "CreateTime"),
        0
    );
    let now = now_ms();
    let delivered = produce_at(&broker, &topic, &[now - 5_000], &[]);
    assert!(
        matches!(delivered[0], Ok(Timestamp::CreateTime(ts)) if ts == now - 5_000),
        "{delivered:?}"
    );
}

#[test]
fn create_time_records_out_of_the_topics_window_are_invalid_timestamps() {
    let broker = Broker::start();
    let topic = topic_name("window");
    create_topic(&broker, &topic, 1, &[]);
    let now = now_ms();
    // Kafka 4.x's default message.timestamp.after.max.ms: one hour.
    let delivered = produce_at(&broker, &topic, &[now + 2 * 3_600_000], &[("retries", "0")]);
    assert_eq!(delivered, vec![Err(RDKafkaErrorCode::InvalidTimestamp)]);
    let delivered = produce_at(&broker, &topic, &[now + 60_000, 1_000], &[]);
    assert!(delivered.iter().all(Result::is_ok), "{delivered:?}");

    let narrow = topic_name("narrow-window");
    create_topic(
        &broker,
        &narrow,
        1,
        &[
            ("message.timestamp.before.max.ms", "60000"),
            ("message.timestamp.after.max.ms", "86400000"),
        ],
    );
    let delivered = produce_at(&broker, &narrow, &[now - 3_600_000], &[("retries", "0")]);
    assert_eq!(delivered, vec![Err(RDKafkaErrorCode::InvalidTimestamp)]);
    let delivered = produce_at(&broker, &narrow, &[now + 2 * 3_600_000, now - 1_000], &[]);
    assert!(delivered.iter().all(Result::is_ok), "{delivered:?}");
    assert_eq!(
        watermarks(&broker, &narrow, 0),
        (0, 2),
        "only the refused batch is missing"
    );
}

/// The headers of the batches a raw Fetch v12 answers for partition 0.
fn stored_batches(broker: &Broker, topic: &str) -> Vec<BatchHeader> {
    let mut conn = RawConn::connect(broker);
    let request = FetchRequest::default()
        .with_max_wait_ms(100)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = conn.request(&request, 12);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0, "Fetch {topic}");
    let records = partition.records.clone().unwrap_or_default();
    let mut headers = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let header = BatchHeader::parse(&records[at..]).expect("a batch header");
        assert!(
            header.crc_matches(&records[at..at + header.size]),
            "every stored batch has a valid CRC"
        );
        at += header.size;
        headers.push(header);
    }
    headers
}

fn codec_of(header: &BatchHeader) -> i16 {
    header.attributes & 0x07
}

#[test]
fn compression_type_recompresses_batches_to_the_topics_codec() {
    const ZSTD: i16 = 4;
    const NONE: i16 = 0;
    let broker = Broker::start();
    let zstd = topic_name("to-zstd");
    create_topic(
        &broker,
        &zstd,
        1,
        &[
            ("compression.type", "zstd"),
            ("compression.zstd.level", "9"),
        ],
    );
    let plain = topic_name("to-none");
    create_topic(&broker, &plain, 1, &[("compression.type", "uncompressed")]);
    let kept = topic_name("as-sent");
    create_topic(&broker, &kept, 1, &[("compression.type", "producer")]);

    let now = now_ms();
    let stamps: Vec<i64> = (0..50).map(|i| now - 1_000 + i).collect();
    // Idempotent producers: the producer id, epoch and sequences survive.
    let idempotent = [("enable.idempotence", "true")];
    for (topic, codec) in [
        (&zstd, "none"),
        (&zstd, "gzip"),
        (&plain, "lz4"),
        (&kept, "snappy"),
    ] {
        let extra = [idempotent[0], ("compression.codec", codec)];
        let delivered = produce_at(&broker, topic, &stamps, &extra);
        assert!(
            delivered.iter().all(Result::is_ok),
            "{topic} from {codec}: {delivered:?}"
        );
    }
    let expect = |topic: &str, codecs: &[i16], idempotent: bool| {
        let batches = stored_batches(&broker, topic);
        let stored: Vec<i16> = batches.iter().map(codec_of).collect();
        assert_eq!(stored, codecs, "codecs stored in {topic}");
        let total: i32 = batches.iter().map(|h| h.record_count).sum();
        assert_eq!(total as usize, 50 * codecs.len(), "{topic}: every record");
        if idempotent {
            assert!(batches
                .iter()
                .all(|h| h.producer_id >= 0 && h.base_sequence >= 0));
        }
    };
    expect(&zstd, &[ZSTD, ZSTD], true);
    expect(&plain, &[NONE], true);
    expect(&kept, &[2], true); // snappy, as the producer sent it

    // Consumers read the recompressed records as they were produced.
    for topic in [&zstd, &plain] {
        let consumed = consume_all(&broker, topic, &[0]);
        let values: Vec<String> = consumed[&0].iter().filter_map(value_str).collect();
        let expected: Vec<String> = (0..values.len())
            .map(|i| format!("value {}", i % 50))
            .collect();
        assert_eq!(values, expected, "{topic}");
        let times: Vec<i64> = consumed[&0]
            .iter()
            .map(|m| m.timestamp().to_millis().expect("a timestamp"))
            .collect();
        assert_eq!(&times[..50], &stamps[..], "{topic}: create times kept");
    }

    // Changed later, it applies to the next batches.
    assert_eq!(
        set_topic_config(&broker, &kept, "compression.type", "zstd"),
        0
    );
    let delivered = produce_at(&broker, &kept, &stamps, &[("compression.codec", "snappy")]);
    assert!(delivered.iter().all(Result::is_ok));
    expect(&kept, &[2, ZSTD], false);
}
