//! Input the broker must refuse without harm: records over the size limit,
//! batches with a bad CRC, and frames that are not Kafka requests at all.
use crate::common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

const CORRUPT_MESSAGE: i16 = 2;

#[test]
fn records_over_the_size_limit_get_message_too_large() {
    // Broker-wide limit 20000 bytes; one topic lowers it to 5000 with max.message.bytes.
    let broker = Broker::start_with(&[("message.max.bytes", "20000")]);
    let broker_limited = topic_name("broker-limit");
    let topic_limited = topic_name("topic-limit");
    create_topic(&broker, &broker_limited, 1, &[]);
    create_topic(&broker, &topic_limited, 1, &[("max.message.bytes", "5000")]);
    // librdkafka checks its own message.max.bytes first: make it large so the
    // broker is the one saying no.
    let producer = producer(
        &broker,
        &[("message.max.bytes", "10000000"), ("linger.ms", "0")],
    );

    let cases = [
        (&broker_limited, 30_000usize, false),
        (&broker_limited, 8_000, true),
        (&topic_limited, 8_000, false),
        (&topic_limited, 1_000, true),
    ];
    for (topic, size, accepted) in cases {
        let value: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let outcome = produce(&producer, topic, &[Rec::value(value).to(0)]).remove(0);
        if accepted {
            assert_eq!(
                outcome.as_ref().ok(),
                Some(&(0, 0)),
                "a {size}-byte record to {topic}: {outcome:?}"
            );
        } else {
            match outcome {
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {}
                other => panic!(
                    "a {size}-byte record to {topic}: wanted MessageSizeTooLarge, got {other:?}"
                ),
            }
        }
    }
    assert_eq!(watermarks(&broker, &broker_limited, 0), (0, 1));
    assert_eq!(watermarks(&broker, &topic_limited, 0), (0, 1));

    // The topic limit can be changed at run time, both ways.
    let value: Vec<u8> = (0..8_000).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(
        set_topic_config(&broker, &topic_limited, "max.message.bytes", "50000"),
        0,
        "raise max.message.bytes"
    );
    let outcome = produce(
        &producer,
        &topic_limited,
        &[Rec::value(value.clone()).to(0)],
    )
    .remove(0);
    assert_eq!(
        outcome.as_ref().ok(),
        Some(&(0, 1)),
        "8000 bytes after raising the limit to 50000: {outcome:?}"
    );
    assert_eq!(
        set_topic_config(&broker, &topic_limited, "max.message.bytes", "2000"),
        0,
        "lower max.message.bytes"
    );
    match produce(&producer, &topic_limited, &[Rec::value(value).to(0)]).remove(0) {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {}
        other => panic!("8000 bytes after lowering the limit to 2000: {other:?}"),
    }
    assert_eq!(watermarks(&broker, &topic_limited, 0), (0, 2));
}

/// A v2 RecordBatch holding one record whose value is `value`.
fn record_batch(value: &[u8]) -> BytesMut {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: Some(Bytes::from_static(b"raw-key")),
        value: Some(Bytes::copy_from_slice(value)),
        headers: IndexMap::new(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode record batch");
    buf
}

fn produce_v7(conn: &mut RawConn, topic: &str, batch: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    let response: ProduceResponse = conn.request(&request, 7);
    assert_eq!(response.responses.len(), 1, "one topic answered");
    let partitions = &response.responses[0].partition_responses;
    assert_eq!(partitions.len(), 1, "one partition answered");
    (partitions[0].error_code, partitions[0].base_offset)
}

#[test]
fn a_batch_with_a_bad_crc_gets_corrupt_message_and_is_not_stored() {
    let broker = Broker::start();
    let topic = topic_name("bad-crc");
    create_topic(&broker, &topic, 1, &[]);

    let value = b"this payload is covered by the batch CRC";
    let mut batch = record_batch(value);
    let at = batch
        .windows(value.len())
        .position(|w| w == value)
        .expect("value inside the batch");
    batch[at + 5] ^= 0x20;

    let mut conn = RawConn::connect(&broker);
    let (error_code, _) = produce_v7(&mut conn, &topic, batch.freeze());
    assert_eq!(
        error_code, CORRUPT_MESSAGE,
        "Produce of a batch with a bad CRC"
    );
    assert_eq!(
        watermarks(&broker, &topic, 0),
        (0, 0),
        "nothing stored after CORRUPT_MESSAGE"
    );

    // The connection stays usable, and the intact batch lands at offset 0.
    let (error_code, base_offset) = produce_v7(&mut conn, &topic, record_batch(value).freeze());
    assert_eq!(error_code, 0, "Produce of the intact batch");
    assert_eq!(base_offset, 0, "base offset of the intact batch");
    assert_eq!(watermarks(&broker, &topic, 0), (0, 1));
    let consumed = consume_all(&broker, &topic, &[0]);
    assert_eq!(consumed[&0].len(), 1);
    assert_eq!(
        rdkafka::message::Message::payload(&consumed[&0][0]),
        Some(&value[..])
    );
}

/// Sends `bytes` on a fresh connection and asserts the broker closes it and lives on.
fn assert_closed_after(broker: &mut Broker, what: &str, bytes: &[u8]) {
    let mut stream = TcpStream::connect(broker.addr()).expect("connect");
    // The broker may close before reading everything: a failed write is fine.
    let _ = stream.write_all(bytes);
    let _ = stream.flush();
    if let Err(message) = wait_for_close(&mut stream, Duration::from_secs(5)) {
        panic!("{what}: {message}");
    }
    // A crash closes the connection too: give the process a moment to be reaped.
    std::thread::sleep(Duration::from_millis(300));
    broker.assert_alive_after(what);
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn garbage_and_oversized_frames_close_the_connection_only() {
    let mut broker = Broker::start();

    assert_closed_after(
        &mut broker,
        "a frame of length 2^31-1",
        &i32::MAX.to_be_bytes(),
    );
    assert_closed_after(&mut broker, "a frame of length -1", &(-1i32).to_be_bytes());
    assert_closed_after(
        &mut broker,
        "a frame of length -2^31",
        &i32::MIN.to_be_bytes(),
    );

    // A complete frame of random bytes whose API key (0x7f3c) does not exist.
    let mut garbage = noise(200, 0x9e37_79b9_7f4a_7c15);
    garbage[0] = 0x7f;
    garbage[1] = 0x3c;
    let mut frame = BytesMut::new();
    frame.put_i32(garbage.len() as i32);
    frame.extend_from_slice(&garbage);
    assert_closed_after(&mut broker, "a frame of random bytes", &frame);

    // A valid Metadata v9 header followed by a body that cannot be parsed.
    let mut body = BytesMut::new();
    body.put_i16(3); // Metadata
    body.put_i16(9);
    body.put_i32(1); // correlation id
    body.put_i16(4);
    body.extend_from_slice(b"junk");
    body.put_u8(0); // no tagged fields
    body.extend_from_slice(&[0xff; 40]);
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    assert_closed_after(
        &mut broker,
        "a Metadata request with an unparsable body",
        &frame,
    );

    // A frame cut short by the client going away.
    {
        let mut stream = TcpStream::connect(broker.addr()).expect("connect");
        let _ = stream.write_all(&[0, 0, 1, 0, 0, 3, 0, 1]);
    }
    std::thread::sleep(Duration::from_millis(300));
    broker.assert_alive_after("a frame cut short");
    let mut conn = RawConn::connect(&broker);
    assert!(
        !conn.api_versions().is_empty(),
        "ApiVersions on a fresh connection"
    );

    let topic = topic_name("after-garbage");
    create_topic(&broker, &topic, 1, &[]);
    let producer = producer(&broker, &[]);
    let recs: Vec<Rec> = (0..10)
        .map(|i| Rec::value(format!("ok {i}")).to(0))
        .collect();
    produce_ok(&producer, &topic, &recs);
    let consumed = consume_all(&broker, &topic, &[0]);
    let values: Vec<Option<String>> = consumed[&0].iter().map(value_str).collect();
    let expected: Vec<Option<String>> = (0..10).map(|i| Some(format!("ok {i}"))).collect();
    assert_eq!(values, expected);
    broker.assert_alive();
}
