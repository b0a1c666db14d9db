//! Records go in through librdkafka and come back out unchanged: keys, values,
//! headers, timestamps, null and empty fields, every compression codec, many
//! partitions, every acks level, and topic auto-creation.
use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage, Timestamp};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// Compares a consumed message with the record that was produced.
fn assert_same(message: &OwnedMessage, rec: &Rec, what: &str) {
    assert_eq!(message.key(), rec.key.as_deref(), "{what}: key");
    assert_eq!(message.payload(), rec.value.as_deref(), "{what}: value");
    assert_eq!(headers_of(message), rec.headers, "{what}: headers");
    if let Some(ts) = rec.timestamp {
        assert_eq!(
            message.timestamp(),
            Timestamp::CreateTime(ts),
            "{what}: timestamp"
        );
    }
}

#[test]
fn keys_headers_null_and_empty_fields_round_trip_in_order() {
    let broker = Broker::start();
    let topic = topic_name("roundtrip");
    create_topic(&broker, &topic, 2, &[]);

    let base_ts = now_ms() - 60_000;
    let binary: Vec<u8> = (0..=255u8).collect();
    let mut p0 = vec![
        Rec::new(Some("k0"), Some("hello"))
            .header("trace", Some(b"abc"))
            .header("empty", Some(b""))
            .header("null", None)
            .header("trace", Some(b"repeated name")),
        Rec::new(None, Some("no key")),
        Rec::new(Some("k2"), None), // tombstone
        Rec::new(Some("k3"), Some("")),
        Rec::new(Some(""), Some("empty key")),
        Rec {
            key: Some(b"k5".to_vec()),
            value: Some(binary),
            ..Rec::default()
        },
        Rec::new(None, None),
    ];
    for (i, rec) in p0.iter_mut().enumerate() {
        rec.partition = Some(0);
        rec.timestamp = Some(base_ts + i as i64);
    }
    let p1: Vec<Rec> = (0..20)
        .map(|i| {
            Rec::new(Some(&format!("key-{i}")), Some(&format!("p1 value {i}")))
                .to(1)
                .at(base_ts + 100 + i)
        })
        .collect();
    // Interleave the two partitions in one stream of sends.
    let mut all = Vec::new();
    for i in 0..p1.len().max(p0.len()) {
        if let Some(r) = p0.get(i) {
            all.push(r.clone());
        }
        if let Some(r) = p1.get(i) {
            all.push(r.clone());
        }
    }

    let producer = producer(&broker, &[]);
    let acked = produce_ok(&producer, &topic, &all);
    for p in [0, 1] {
        let offsets: Vec<i64> = all
            .iter()
            .zip(&acked)
            .filter(|(r, _)| r.partition == Some(p))
            .map(|(_, &(partition, offset))| {
                assert_eq!(partition, p, "acknowledged partition");
                offset
            })
            .collect();
        let dense: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, dense,
            "acknowledged offsets of partition {p} are dense from 0 in send order"
        );
    }

    let consumed = consume_all(&broker, &topic, &[0, 1]);
    assert_eq!(consumed[&0].len(), p0.len(), "records in partition 0");
    assert_eq!(consumed[&1].len(), p1.len(), "records in partition 1");
    assert_dense(&consumed[&0], 0, "partition 0");
    assert_dense(&consumed[&1], 0, "partition 1");
    for (i, (message, rec)) in consumed[&0].iter().zip(&p0).enumerate() {
        assert_same(message, rec, &format!("partition 0 offset {i}"));
    }
    for (i, (message, rec)) in consumed[&1].iter().zip(&p1).enumerate() {
        assert_same(message, rec, &format!("partition 1 offset {i}"));
    }
    assert_eq!(watermarks(&broker, &topic, 0), (0, p0.len() as i64));
    assert_eq!(watermarks(&broker, &topic, 1), (0, p1.len() as i64));
}

/// 300 compressible records plus one large one, produced with `codec`, consumed back.
fn codec_round_trip(codec: &str) {
    let broker = Broker::start();
    let topic = topic_name(&format!("codec-{codec}"));
    create_topic(&broker, &topic, 1, &[]);
    let producer = producer(
        &broker,
        &[
            ("compression.codec", codec),
            ("linger.ms", "50"),
            ("batch.num.messages", "1000"),
        ],
    );
    let mut recs: Vec<Rec> = (0..300)
        .map(|i| {
            let value = format!("{codec} record {i} ").repeat(1 + i % 20);
            let mut rec = Rec::new(Some(&format!("key-{}", i % 7)), Some(&value)).to(0);
            if i % 3 == 0 {
                rec = rec.header("n", Some(format!("{i}").as_bytes()));
            }
            rec
        })
        .collect();
    recs.push(Rec::new(Some("big"), Some(&"0123456789abcdef".repeat(16 * 1024))).to(0));
    recs.push(Rec::new(Some("tombstone"), None).to(0));

    let acked = produce_ok(&producer, &topic, &recs);
    let offsets: Vec<i64> = acked.iter().map(|&(_, o)| o).collect();
    assert_eq!(
        offsets,
        (0..recs.len() as i64).collect::<Vec<_>>(),
        "{codec}: acknowledged offsets"
    );
    let consumed = consume_all(&broker, &topic, &[0]);
    let messages = &consumed[&0];
    assert_eq!(messages.len(), recs.len(), "{codec}: records consumed");
    assert_dense(messages, 0, codec);
    for (i, (message, rec)) in messages.iter().zip(&recs).enumerate() {
        assert_same(message, rec, &format!("{codec} offset {i}"));
    }
}

#[test]
fn uncompressed_round_trip() {
    codec_round_trip("none");
}

#[test]
fn gzip_round_trip() {
    codec_round_trip("gzip");
}

#[test]
fn snappy_round_trip() {
    codec_round_trip("snappy");
}

#[test]
fn lz4_round_trip() {
    codec_round_trip("lz4");
}

#[test]
fn zstd_round_trip() {
    codec_round_trip("zstd");
}

#[test]
fn sixteen_partitions_keyed_records_all_come_back() {
    const PARTITIONS: i32 = 16;
    let broker = Broker::start();
    let topic = topic_name("many-partitions");
    create_topic(&broker, &topic, PARTITIONS, &[]);
    let producer = producer(&broker, &[]);

    // Keyed records placed by librdkafka's partitioner, then one record pinned to
    // each partition so every partition (and so both shards) is written.
    let mut recs = Vec::new();
    let mut seq: HashMap<String, usize> = HashMap::new();
    for i in 0..1600 {
        let key = format!("key-{}", i % 97);
        let n = seq.entry(key.clone()).or_default();
        recs.push(Rec::new(Some(&key), Some(&format!("{key}:{n}"))));
        *n += 1;
    }
    for p in 0..PARTITIONS {
        recs.push(Rec::new(Some("pinned"), Some(&format!("pinned:{p}"))).to(p));
    }
    let acked = produce_ok(&producer, &topic, &recs);

    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    let consumed = consume_all(&broker, &topic, &partitions);
    let total: usize = consumed.values().map(Vec::len).sum();
    assert_eq!(total, recs.len(), "records consumed over all partitions");

    let mut at: HashMap<(i32, i64), &OwnedMessage> = HashMap::new();
    let mut key_partition: HashMap<Vec<u8>, i32> = HashMap::new();
    for (p, messages) in &consumed {
        assert!(!messages.is_empty(), "partition {p} is empty");
        assert_dense(messages, 0, &format!("partition {p}"));
        let mut last_seq: HashMap<Vec<u8>, i64> = HashMap::new();
        for m in messages {
            at.insert((*p, m.offset()), m);
            let key = m.key().expect("key").to_vec();
            if key != b"pinned" {
                let previous = key_partition.insert(key.clone(), *p);
                assert!(
                    previous.is_none() || previous == Some(*p),
                    "key {:?} in two partitions",
                    String::from_utf8_lossy(&key)
                );
                let value = value_str(m).expect("value");
                let n: i64 = value.rsplit(':').next().unwrap().parse().unwrap();
                let last = last_seq.entry(key.clone()).or_insert(-1);
                assert_eq!(n, *last + 1, "per-key order in partition {p}: {value}");
                *last = n;
            }
        }
    }
    // Every acknowledgement points at the record that was sent.
    for (rec, (p, offset)) in recs.iter().zip(&acked) {
        let m = at
            .get(&(*p, *offset))
            .unwrap_or_else(|| panic!("acknowledged {p}/{offset} was not consumed"));
        assert_eq!(m.payload(), rec.value.as_deref(), "value at {p}/{offset}");
        if let Some(pinned) = rec.partition {
            assert_eq!(*p, pinned, "pinned record partition");
        }
    }
}

#[test]
fn acks_zero_and_one_store_every_record() {
    let broker = Broker::start();
    for acks in ["0", "1"] {
        let topic = topic_name(&format!("acks{acks}"));
        create_topic(&broker, &topic, 1, &[]);
        let producer = producer(&broker, &[("acks", acks)]);
        let recs: Vec<Rec> = (0..200)
            .map(|i| Rec::value(format!("acks={acks} {i}")).to(0))
            .collect();
        let outcomes = produce(&producer, &topic, &recs);
        for (i, outcome) in outcomes.iter().enumerate() {
            let (_, offset) = outcome
                .as_ref()
                .unwrap_or_else(|e| panic!("acks={acks} record {i}: {e}"));
            if acks == "1" {
                assert_eq!(*offset, i as i64, "acks=1 offset of record {i}");
            }
        }
        // acks=0 gets no answer from the broker: wait until everything is visible.
        wait_until(
            Duration::from_secs(20),
            &format!("200 records with acks={acks}"),
            || (watermarks(&broker, &topic, 0).1 >= 200).then_some(()),
        );
        let consumed = consume_all(&broker, &topic, &[0]);
        let values: Vec<Option<String>> = consumed[&0].iter().map(value_str).collect();
        let expected: Vec<Option<String>> =
            (0..200).map(|i| Some(format!("acks={acks} {i}"))).collect();
        assert_eq!(values, expected, "acks={acks}: records consumed in order");
        assert_dense(&consumed[&0], 0, &format!("acks={acks}"));
    }
}

#[test]
fn producing_to_a_missing_topic_creates_it_with_num_partitions() {
    let broker = Broker::start_with(&[("num.partitions", "3")]);
    let topic = topic_name("auto-created");
    let producer = producer(&broker, &[]);
    let acked = produce_ok(&producer, &topic, &[Rec::value("first").to(2)]);
    assert_eq!(acked, vec![(2, 0)]);
    assert_eq!(
        partition_count(&broker, &topic),
        Some(3),
        "auto-created topic has num.partitions partitions"
    );
    let consumed = consume_all(&broker, &topic, &[0, 1, 2]);
    assert_eq!(consumed[&2].len(), 1);
    assert_eq!(value_str(&consumed[&2][0]).as_deref(), Some("first"));
}

#[test]
fn auto_create_disabled_rejects_unknown_topic() {
    let broker = Broker::start_with(&[("auto.create.topics.enable", "false")]);
    let topic = topic_name("not-created");
    let producer = producer(
        &broker,
        &[
            ("message.timeout.ms", "5000"),
            ("topic.metadata.propagation.max.ms", "1000"),
        ],
    );
    let outcomes = produce(&producer, &topic, &[Rec::value("nowhere")]);
    match &outcomes[0] {
        Err(KafkaError::MessageProduction(
            RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition,
        )) => {}
        other => panic!("producing to a missing topic with auto-create off: {other:?}"),
    }
    assert_eq!(
        partition_count(&broker, &topic),
        None,
        "the topic must not exist"
    );
}

#[test]
fn concurrent_producers_to_one_partition_get_dense_offsets() {
    const PRODUCERS: usize = 4;
    const EACH: usize = 500;
    let broker = Broker::start();
    let topic = topic_name("concurrent");
    create_topic(&broker, &topic, 1, &[]);
    // Separate clients, so separate connections, likely landing on both shards.
    let acks: Vec<Vec<(i32, i64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let broker = &broker;
                let topic = &topic;
                s.spawn(move || {
                    let producer = producer(broker, &[("linger.ms", "1")]);
                    let recs: Vec<Rec> = (0..EACH)
                        .map(|i| Rec::value(format!("producer {p} record {i}")).to(0))
                        .collect();
                    produce_ok(&producer, topic, &recs)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("producer thread"))
            .collect()
    });
    let mut all_offsets: Vec<i64> = acks.iter().flatten().map(|&(_, o)| o).collect();
    all_offsets.sort_unstable();
    assert_eq!(
        all_offsets,
        (0..(PRODUCERS * EACH) as i64).collect::<Vec<_>>(),
        "every acknowledged offset is distinct and together they are dense"
    );
    let consumed = consume_all(&broker, &topic, &[0]);
    let messages = &consumed[&0];
    assert_eq!(messages.len(), PRODUCERS * EACH);
    assert_dense(messages, 0, "partition 0");
    for (p, offsets) in acks.iter().enumerate() {
        for (i, &(_, offset)) in offsets.iter().enumerate() {
            assert_eq!(
                value_str(&messages[offset as usize]),
                Some(format!("producer {p} record {i}")),
                "record at offset {offset}"
            );
        }
        assert!(
            offsets.windows(2).all(|w| w[0].1 < w[1].1),
            "producer {p}'s records are stored in the order it sent them"
        );
    }
}

#[test]
fn a_record_larger_than_the_fetch_limits_is_still_delivered() {
    // KIP-74: the first batch is returned even when it exceeds max_bytes and
    // partition_max_bytes, so a consumer always makes progress.
    let broker = Broker::start();
    let topic = topic_name("big-record");
    create_topic(&broker, &topic, 1, &[]);
    let producer = producer(&broker, &[]);
    let big = "B".repeat(300 * 1024);
    let recs = vec![
        Rec::value("small before").to(0),
        Rec::value(big.clone()).to(0),
        Rec::value("small after").to(0),
    ];
    for rec in &recs {
        produce_ok(&producer, &topic, std::slice::from_ref(rec));
    }
    let consumed = consume_all_with(
        &broker,
        &topic,
        &[0],
        &[
            ("message.max.bytes", "1000"),
            ("fetch.max.bytes", "1024"),
            ("max.partition.fetch.bytes", "1024"),
        ],
    );
    let values: Vec<Option<String>> = consumed[&0].iter().map(value_str).collect();
    assert_eq!(
        values,
        vec![
            Some("small before".to_string()),
            Some(big),
            Some("small after".to_string())
        ]
    );
}
