//! ListOffsets (by time, earliest, latest), Fetch from arbitrary offsets, and
//! DeleteRecords moving the low watermark, seen through librdkafka.
use crate::common;

use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// offsets_for_times for one partition: the offset librdkafka reports.
fn offset_for_time(broker: &Broker, topic: &str, partition: i32, timestamp: i64) -> Offset {
    let consumer = consumer(broker);
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset(topic, partition, Offset::Offset(timestamp))
        .expect("add partition");
    let answer = consumer
        .offsets_for_times(query, CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("offsets_for_times({timestamp}): {e}"));
    let elem = answer
        .find_partition(topic, partition)
        .expect("partition in the answer");
    elem.error()
        .unwrap_or_else(|e| panic!("offsets_for_times({timestamp}) for {topic}/{partition}: {e}"));
    elem.offset()
}

#[test]
fn list_offsets_by_time_finds_the_first_record_at_or_after_t() {
    let broker = Broker::start();
    let topic = topic_name("by-time");
    create_topic(&broker, &topic, 2, &[]);
    let producer = producer(&broker, &[]);
    let base = now_ms() - 100_000;
    // Two flushes: offsets 0..5 in a first batch, 5..10 in a later one, one second apart.
    let first: Vec<Rec> = (0..5)
        .map(|i| Rec::value(format!("t{i}")).to(0).at(base + i * 1000))
        .collect();
    let second: Vec<Rec> = (5..10)
        .map(|i| Rec::value(format!("t{i}")).to(0).at(base + i * 1000))
        .collect();
    produce_ok(&producer, &topic, &first);
    produce_ok(&producer, &topic, &second);

    assert_eq!(
        watermarks(&broker, &topic, 0),
        (0, 10),
        "watermarks of partition 0"
    );
    assert_eq!(
        watermarks(&broker, &topic, 1),
        (0, 0),
        "watermarks of empty partition 1"
    );

    let cases = [
        (base - 50_000, Offset::Offset(0)),
        (base, Offset::Offset(0)),
        (base + 1, Offset::Offset(1)),
        (base + 2500, Offset::Offset(3)), // inside the first batch
        (base + 4000, Offset::Offset(4)),
        (base + 4001, Offset::Offset(5)), // first record of the second batch
        (base + 7999, Offset::Offset(8)),
        (base + 9000, Offset::Offset(9)),
        (base + 9001, Offset::End), // after the last record: -1
    ];
    for (timestamp, expected) in cases {
        assert_eq!(
            offset_for_time(&broker, &topic, 0, timestamp),
            expected,
            "offsets_for_times(base + {})",
            timestamp - base
        );
    }
    assert_eq!(
        offset_for_time(&broker, &topic, 1, base),
        Offset::End,
        "offsets_for_times on an empty partition"
    );
}

#[test]
fn fetch_starts_at_the_requested_offset_even_inside_a_batch() {
    let broker = Broker::start();
    let topic = topic_name("mid-batch");
    create_topic(&broker, &topic, 1, &[]);
    let producer = producer(&broker, &[("linger.ms", "100")]);
    let recs: Vec<Rec> = (0..20).map(|i| Rec::value(format!("m{i}")).to(0)).collect();
    produce_ok(&producer, &topic, &recs);

    let consumer = consumer(&broker);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, 0, Offset::Offset(7))
        .expect("add partition");
    consumer.assign(&assignment).expect("assign");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 13 && Instant::now() < deadline {
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            let m = result.expect("consume");
            got.push((m.offset(), m.payload().map(|p| p.to_vec())));
        }
    }
    let expected: Vec<(i64, Option<Vec<u8>>)> = (7..20)
        .map(|i| (i, Some(format!("m{i}").into_bytes())))
        .collect();
    assert_eq!(got, expected, "records from offset 7");
}

#[test]
fn fetch_past_the_end_resets_to_latest_and_sees_new_records() {
    let broker = Broker::start();
    let topic = topic_name("past-end");
    create_topic(&broker, &topic, 1, &[]);
    let producer = producer(&broker, &[]);
    let recs: Vec<Rec> = (0..10).map(|i| Rec::value(format!("e{i}")).to(0)).collect();
    produce_ok(&producer, &topic, &recs);

    let consumer = consumer_with(&broker, &[("auto.offset.reset", "latest")]);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, 0, Offset::Offset(50))
        .expect("add partition");
    consumer.assign(&assignment).expect("assign");
    // Let the consumer hit OFFSET_OUT_OF_RANGE and reset to the end.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            panic!("unexpected record at offset {}", m.offset());
        }
    }
    produce_ok(&producer, &topic, &[Rec::value("after reset").to(0)]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "no record after the reset to latest"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                assert_eq!(m.offset(), 10, "offset of the new record");
                assert_eq!(m.payload(), Some(&b"after reset"[..]));
                break;
            }
            Some(Err(e)) => eprintln!("consumer error (ignored while resetting): {e}"),
            None => {}
        }
    }
}

#[test]
fn delete_records_moves_the_low_watermark() {
    let broker = Broker::start();
    let topic = topic_name("delete-records");
    create_topic(&broker, &topic, 2, &[]);
    let producer = producer(&broker, &[]);
    let mut recs: Vec<Rec> = (0..10).map(|i| Rec::value(format!("d{i}")).to(0)).collect();
    recs.extend((0..5).map(|i| Rec::value(format!("q{i}")).to(1)));
    produce_ok(&producer, &topic, &recs);

    let admin = admin(&broker);
    let mut request = TopicPartitionList::new();
    request
        .add_partition_offset(&topic, 0, Offset::Offset(4))
        .expect("add");
    request
        .add_partition_offset(&topic, 1, Offset::End)
        .expect("add");
    let result = futures::executor::block_on(admin.delete_records(&request, &admin_options()))
        .expect("DeleteRecords");
    let p0 = result
        .find_partition(&topic, 0)
        .expect("partition 0 result");
    p0.error().expect("DeleteRecords partition 0");
    assert_eq!(
        p0.offset(),
        Offset::Offset(4),
        "low watermark of partition 0"
    );
    let p1 = result
        .find_partition(&topic, 1)
        .expect("partition 1 result");
    p1.error().expect("DeleteRecords partition 1");
    assert_eq!(
        p1.offset(),
        Offset::Offset(5),
        "low watermark of partition 1"
    );

    assert_eq!(watermarks(&broker, &topic, 0), (4, 10));
    assert_eq!(watermarks(&broker, &topic, 1), (5, 5));

    let consumed = consume_all(&broker, &topic, &[0, 1]);
    assert_dense(&consumed[&0], 4, "partition 0 after DeleteRecords");
    let values: Vec<Option<String>> = consumed[&0].iter().map(value_str).collect();
    let expected: Vec<Option<String>> = (4..10).map(|i| Some(format!("d{i}"))).collect();
    assert_eq!(values, expected);
    assert!(consumed[&1].is_empty(), "partition 1 is empty");

    // A consumer asking for a deleted offset is reset to the new start.
    let consumer = consumer_with(&broker, &[("auto.offset.reset", "earliest")]);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, 0, Offset::Offset(1))
        .expect("add");
    consumer.assign(&assignment).expect("assign");
    let first = wait_until(
        Duration::from_secs(20),
        "a record after DeleteRecords",
        || match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => Some(m.offset()),
            _ => None,
        },
    );
    assert_eq!(first, 4, "reset to the low watermark");

    // Deleting beyond the high watermark is OFFSET_OUT_OF_RANGE.
    let mut request = TopicPartitionList::new();
    request
        .add_partition_offset(&topic, 0, Offset::Offset(100))
        .expect("add");
    let result = futures::executor::block_on(admin.delete_records(&request, &admin_options()));
    let error = match result {
        Ok(tpl) => tpl
            .find_partition(&topic, 0)
            .expect("partition 0 result")
            .error()
            .err(),
        Err(e) => Some(e),
    };
    match error {
        Some(KafkaError::OffsetFetch(RDKafkaErrorCode::OffsetOutOfRange))
        | Some(KafkaError::AdminOp(RDKafkaErrorCode::OffsetOutOfRange)) => {}
        other => panic!("DeleteRecords past the high watermark: {other:?}"),
    }
    assert_eq!(watermarks(&broker, &topic, 0), (4, 10), "nothing changed");
}

/// A raw Fetch v11 of one partition; returns (error, high watermark, record values, elapsed).
fn raw_fetch(
    conn: &mut RawConn,
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
) -> (i16, i64, Vec<Option<Vec<u8>>>, Duration) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::RecordBatchDecoder;

    let request = FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let started = Instant::now();
    let response: FetchResponse = conn.request(&request, 11);
    let elapsed = started.elapsed();
    assert_eq!(response.error_code, 0, "Fetch top-level error code");
    let partition = &response.responses[0].partitions[0];
    let mut values = Vec::new();
    if let Some(records) = &partition.records {
        let mut records = records.clone();
        for set in RecordBatchDecoder::decode_all(&mut records).expect("decode fetched batches") {
            for record in set.records {
                if record.offset >= offset {
                    values.push(record.value.map(|v| v.to_vec()));
                }
            }
        }
    }
    (
        partition.error_code,
        partition.high_watermark,
        values,
        elapsed,
    )
}

#[test]
fn fetch_long_polls_until_data_arrives_or_max_wait() {
    const OFFSET_OUT_OF_RANGE: i16 = 1;
    let broker = Broker::start();
    let topic = topic_name("long-poll");
    create_topic(&broker, &topic, 1, &[]);
    let mut conn = RawConn::connect(&broker);

    // Nothing to read: the broker holds the request for about max_wait_ms.
    let (error, high, values, elapsed) = raw_fetch(&mut conn, &topic, 0, 600);
    assert_eq!((error, high), (0, 0), "empty fetch");
    assert!(values.is_empty());
    assert!(
        elapsed >= Duration::from_millis(450),
        "an empty fetch with max_wait_ms 600 returned after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "an empty fetch with max_wait_ms 600 took {elapsed:?}"
    );

    // Past the end: OFFSET_OUT_OF_RANGE at once.
    let (error, _, _, elapsed) = raw_fetch(&mut conn, &topic, 5, 5000);
    assert_eq!(error, OFFSET_OUT_OF_RANGE, "fetch past the high watermark");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");

    // A waiting fetch is answered as soon as a record is appended, not at max_wait_ms.
    let topic_for_fetch = topic.clone();
    let waiter = std::thread::spawn(move || raw_fetch(&mut conn, &topic_for_fetch, 0, 20_000));
    std::thread::sleep(Duration::from_millis(700));
    let producer = producer(&broker, &[]);
    let produced_at = Instant::now();
    produce_ok(&producer, &topic, &[Rec::value("wake up").to(0)]);
    let (error, high, values, elapsed) = waiter.join().expect("fetch thread");
    let after_produce = produced_at.elapsed();
    assert_eq!((error, high), (0, 1), "woken fetch");
    assert_eq!(values, vec![Some(b"wake up".to_vec())]);
    assert!(
        elapsed < Duration::from_secs(10) && after_produce < Duration::from_secs(3),
        "the fetch returned {after_produce:?} after the append ({elapsed:?} in all): not woken by it"
    );
}

/// A raw ListOffsets v7 of partition 0 at `timestamp`: (error, timestamp, offset).
fn raw_list_offsets(broker: &Broker, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, ListOffsetsResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let response: ListOffsetsResponse = RawConn::connect(broker).request(&request, 7);
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.timestamp, p.offset)
}

const MAX_TIMESTAMP: i64 = -3;

/// librdkafka's offsets_for_times of partition 0 with ListOffsets'
/// MAX_TIMESTAMP, which the rdkafka crate's `Offset` does not let one set.
fn librdkafka_max_timestamp_offset(broker: &Broker, topic: &str) -> Offset {
    let mut query = TopicPartitionList::new();
    query.add_partition(topic, 0);
    // SAFETY: `query` owns its list, which holds the one element just
    // added; nothing else refers to it while its offset is written.
    unsafe { (*(*query.ptr()).elems).offset = MAX_TIMESTAMP };
    let answer = consumer(broker)
        .offsets_for_times(query, CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("offsets_for_times(-3): {e}"));
    let elem = answer.find_partition(topic, 0).expect("partition 0");
    elem.error()
        .unwrap_or_else(|e| panic!("offsets_for_times(-3) of {topic}/0: {e}"));
    elem.offset()
}

#[test]
fn list_offsets_max_timestamp_answers_the_first_record_with_the_largest_timestamp() {
    let broker = Broker::start();
    let topic = topic_name("max-timestamp");
    // Timestamps near the epoch: no retention, so nothing is deleted for age.
    create_topic(&broker, &topic, 1, &[("retention.ms", "-1")]);
    assert_eq!(
        raw_list_offsets(&broker, &topic, MAX_TIMESTAMP),
        (0, -1, -1),
        "an empty partition"
    );
    // A long linger: each call's records go as one batch.
    let producer = producer(&broker, &[("linger.ms", "500")]);
    let stamped = |value: &str, timestamp: i64| Rec::value(value).to(0).at(timestamp);
    produce_ok(
        &producer,
        &topic,
        &[stamped("a", 100), stamped("b", 400), stamped("c", 250)],
    );
    assert_eq!(
        raw_list_offsets(&broker, &topic, MAX_TIMESTAMP),
        (0, 400, 1),
        "records stamped 100, 400, 250"
    );
    assert_eq!(
        librdkafka_max_timestamp_offset(&broker, &topic),
        Offset::Offset(1),
        "librdkafka's offsets_for_times(-3)"
    );
    // A later record with the same timestamp does not move it: Kafka answers
    // the first record that carries the largest timestamp.
    produce_ok(&producer, &topic, &[stamped("d", 400), stamped("e", 50)]);
    assert_eq!(
        raw_list_offsets(&broker, &topic, MAX_TIMESTAMP),
        (0, 400, 1),
        "a tie in a later batch"
    );
    // A larger one does, from inside its batch.
    produce_ok(
        &producer,
        &topic,
        &[stamped("f", 300), stamped("g", 500), stamped("h", 500)],
    );
    assert_eq!(
        raw_list_offsets(&broker, &topic, MAX_TIMESTAMP),
        (0, 500, 6)
    );
    let mut broker = broker;
    broker.restart();
    assert_eq!(
        raw_list_offsets(&broker, &topic, MAX_TIMESTAMP),
        (0, 500, 6),
        "after a restart, from the segment's indexes"
    );
}
