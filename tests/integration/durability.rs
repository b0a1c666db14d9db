//! What survives a stop: a clean SIGTERM restart keeps every topic, config,
//! record and timestamp; kill -9 during acks=all production loses nothing that
//! was acknowledged; segments roll and retention deletes whole expired ones.
use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::admin::ResourceSpecifier;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn offset_for_time(broker: &Broker, topic: &str, timestamp: i64) -> Offset {
    let consumer = consumer(broker);
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset(topic, 0, Offset::Offset(timestamp))
        .expect("add partition");
    let answer = consumer
        .offsets_for_times(query, CLIENT_TIMEOUT)
        .expect("offsets_for_times");
    let elem = answer.find_partition(topic, 0).expect("partition 0");
    elem.error().expect("offsets_for_times partition 0");
    elem.offset()
}

fn retention_ms(broker: &Broker, topic: &str) -> Option<String> {
    let admin = admin(broker);
    let mut results = futures::executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options()),
    )
    .expect("DescribeConfigs");
    let resource = results.remove(0).expect("DescribeConfigs topic");
    resource.get("retention.ms").and_then(|e| e.value.clone())
}

#[test]
fn sigterm_restart_keeps_topics_configs_records_and_timestamps() {
    let mut broker = Broker::start();
    let single = topic_name("keep-single");
    let multi = topic_name("keep-multi");
    create_topic(&broker, &single, 1, &[]);
    create_topic(&broker, &multi, 4, &[("retention.ms", "123456789")]);

    let base = now_ms() - 3_600_000;
    let single_recs: Vec<Rec> = (0..50)
        .map(|i| {
            Rec::new(Some(&format!("s{i}")), Some(&format!("single {i}")))
                .to(0)
                .at(base + i * 10)
                .header("i", Some(format!("{i}").as_bytes()))
        })
        .collect();
    let multi_recs: Vec<Rec> = (0..200)
        .map(|i| {
            Rec::new(
                Some(&format!("key-{}", i % 13)),
                Some(&format!("multi {i}")),
            )
        })
        .collect();
    let (single_acks, multi_acks) = {
        let plain = producer(&broker, &[]);
        let lz4 = producer(
            &broker,
            &[("compression.codec", "lz4"), ("linger.ms", "20")],
        );
        (
            produce_ok(&plain, &single, &single_recs),
            produce_ok(&lz4, &multi, &multi_recs),
        )
    };

    // `extra`: records appended to `single` after the first restart.
    let check = |broker: &Broker, round: &str, extra: usize| {
        wait_for_partitions(broker, &single, 1);
        wait_for_partitions(broker, &multi, 4);
        assert_eq!(
            retention_ms(broker, &multi).as_deref(),
            Some("123456789"),
            "{round}: topic config"
        );
        let consumed = consume_all(broker, &single, &[0]);
        assert_eq!(
            consumed[&0].len(),
            single_recs.len() + extra,
            "{round}: {single}"
        );
        assert_dense(&consumed[&0], 0, round);
        for (i, (m, rec)) in consumed[&0].iter().zip(&single_recs).enumerate() {
            assert_eq!(m.key(), rec.key.as_deref(), "{round}: key {i}");
            assert_eq!(m.payload(), rec.value.as_deref(), "{round}: value {i}");
            assert_eq!(headers_of(m), rec.headers, "{round}: headers {i}");
            assert_eq!(
                m.timestamp(),
                Timestamp::CreateTime(rec.timestamp.unwrap()),
                "{round}: timestamp {i}"
            );
        }
        assert_eq!(
            offset_for_time(broker, &single, base + 255),
            Offset::Offset(26),
            "{round}: offsets_for_times"
        );
        let consumed = consume_all(broker, &multi, &[0, 1, 2, 3]);
        let total: usize = consumed.values().map(Vec::len).sum();
        assert_eq!(total, multi_recs.len(), "{round}: records in {multi}");
        let by_position: HashMap<(i32, i64), Option<Vec<u8>>> = consumed
            .iter()
            .flat_map(|(p, ms)| {
                ms.iter()
                    .map(move |m| ((*p, m.offset()), m.payload().map(<[u8]>::to_vec)))
            })
            .collect();
        for (rec, position) in multi_recs.iter().zip(&multi_acks) {
            assert_eq!(
                by_position.get(position),
                Some(&rec.value),
                "{round}: record acknowledged at {position:?}"
            );
        }
        for (p, ms) in &consumed {
            assert_dense(ms, 0, &format!("{round}: {multi}/{p}"));
        }
    };

    check(&broker, "before restart", 0);
    broker.restart();
    check(&broker, "after the first restart", 0);

    // New records continue the offsets.
    let producer = producer(&broker, &[]);
    let acked = produce_ok(&producer, &single, &[Rec::value("after restart").to(0)]);
    assert_eq!(acked, vec![(0, single_acks.len() as i64)]);
    drop(producer);

    broker.restart();
    check_tail(&broker, &single, single_recs.len() as i64, "after restart");
    check(&broker, "after the second restart", 1);
}

fn check_tail(broker: &Broker, topic: &str, offset: i64, value: &str) {
    let consumed = consume_all(broker, topic, &[0]);
    let last = consumed[&0].last().expect("a record");
    assert_eq!(last.offset(), offset, "offset of the last record");
    assert_eq!(value_str(last).as_deref(), Some(value), "last record");
}

#[test]
fn kill_9_during_acks_all_production_loses_no_acknowledged_record() {
    kill_9_scenario(1, &[1000], 4000);
}

#[test]
fn kill_9_twice_across_partitions_on_both_shards_loses_nothing() {
    kill_9_scenario(4, &[800, 2000], 4000);
}

/// A producer thread sends `total` records with acks=all, round-robin over
/// `partitions`, paced so the stream lasts seconds; the broker is killed with
/// SIGKILL and restarted on the same data dir each time the acknowledged count
/// reaches a value of `kill_points`. Then every acknowledged record must be at
/// the offset it was acknowledged with, offsets must be dense from 0, and the
/// records acknowledged before the first kill (never retried) must appear
/// exactly once and in order.
fn kill_9_scenario(partitions: i32, kill_points: &[usize], total: usize) {
    let mut broker = Broker::start();
    let topic = topic_name("kill9");
    create_topic(&broker, &topic, partitions, &[]);

    let producer = Arc::new(producer(
        &broker,
        &[
            ("acks", "all"),
            ("linger.ms", "2"),
            ("batch.num.messages", "40"),
            ("message.timeout.ms", "60000"),
            ("retry.backoff.ms", "100"),
            ("max.in.flight.requests.per.connection", "5"),
        ],
    ));
    let value_of = |i: usize| format!("kill9-record-{i:06}");
    let partition_of = move |i: usize| (i % partitions as usize) as i32;

    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let producer = Arc::clone(&producer);
        let topic = topic.clone();
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            for i in 0..total {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                enqueue(
                    &producer,
                    &topic,
                    &Rec::value(value_of(i)).to(partition_of(i)),
                );
                if i % 20 == 19 {
                    // Pace the stream so the kills land in the middle of it.
                    producer.poll(Duration::from_millis(1));
                    thread::sleep(Duration::from_millis(8));
                }
            }
            let _ = producer.flush(Duration::from_secs(90));
        })
    };

    let acked_count = |p: &Arc<TestProducer>| {
        p.context()
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, o)| o.is_ok())
            .count()
    };
    let mut before_first_kill: Option<Vec<Report>> = None;
    for &kill_at in kill_points {
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked_count(&producer) < kill_at {
            if Instant::now() > deadline {
                stop.store(true, Ordering::Relaxed);
                panic!(
                    "only {} of {total} records acknowledged after 60 s (waiting for {kill_at})",
                    acked_count(&producer)
                );
            }
            thread::sleep(Duration::from_millis(2));
        }
        // Everything reported up to here was acknowledged before the kill.
        let snapshot: Vec<Report> = producer.context().log.lock().unwrap().clone();
        broker.kill9();
        let acked_now = snapshot.iter().filter(|(_, _, o)| o.is_ok()).count();
        assert!(
            acked_now < total,
            "the stream ended before the kill at {kill_at}: the test did not kill mid-stream"
        );
        before_first_kill.get_or_insert(snapshot);
        thread::sleep(Duration::from_millis(300));
        broker.restart();
    }
    sender.join().expect("producer thread");
    let before_kill = before_first_kill.expect("at least one kill");
    let acked_before_kill = before_kill.iter().filter(|(_, _, o)| o.is_ok()).count();

    let reports = producer.context().log.lock().unwrap().clone();
    let acked: Vec<(usize, Vec<u8>, i32, i64)> = reports
        .iter()
        .filter_map(|(index, value, outcome)| {
            outcome.as_ref().ok().map(|&(partition, offset)| {
                (*index, value.clone().expect("value"), partition, offset)
            })
        })
        .collect();
    let failed = reports.iter().filter(|(_, _, o)| o.is_err()).count();
    eprintln!(
        "kill -9 test ({partitions} partitions, kills at {kill_points:?}): {acked_before_kill} \
         acknowledged before the first kill, {} in all, {failed} failed, {total} sent",
        acked.len()
    );
    assert!(
        acked.len() > acked_before_kill,
        "no record was acknowledged after the restart"
    );

    let all_partitions: Vec<i32> = (0..partitions).collect();
    let consumed = consume_all(&broker, &topic, &all_partitions);
    let sent: HashSet<Vec<u8>> = (0..total).map(|i| value_of(i).into_bytes()).collect();
    let mut recovered: HashMap<i32, Vec<Vec<u8>>> = HashMap::new();
    for (p, messages) in &consumed {
        eprintln!(
            "kill -9 test: partition {p}: {} records recovered",
            messages.len()
        );
        assert_dense(messages, 0, &format!("partition {p} after kill -9"));
        let values: Vec<Vec<u8>> = messages
            .iter()
            .map(|m| m.payload().expect("value").to_vec())
            .collect();
        for (offset, value) in values.iter().enumerate() {
            assert!(
                sent.contains(value),
                "{p}/{offset} holds a record that was never sent: {:?}",
                String::from_utf8_lossy(value)
            );
        }
        recovered.insert(*p, values);
    }
    // Every acknowledged record is at the offset it was acknowledged with.
    for (index, value, partition, offset) in &acked {
        assert_eq!(
            *partition,
            partition_of(*index),
            "partition of record {index}"
        );
        let found = recovered[partition].get(*offset as usize);
        assert_eq!(
            found,
            Some(value),
            "record {index} was acknowledged at {partition}/{offset} but is not there \
             (high watermark {})",
            recovered[partition].len()
        );
    }
    // Records acknowledged before the first kill were never retried: exactly once, in order.
    let mut counts: HashMap<&[u8], usize> = HashMap::new();
    for values in recovered.values() {
        for value in values {
            *counts.entry(value.as_slice()).or_default() += 1;
        }
    }
    let mut early: Vec<(usize, i32, i64)> = before_kill
        .iter()
        .filter_map(|(i, _, o)| o.as_ref().ok().map(|&(p, offset)| (*i, p, offset)))
        .collect();
    early.sort();
    let mut previous_offset: HashMap<i32, i64> = HashMap::new();
    for (index, partition, offset) in early {
        let value = value_of(index);
        assert_eq!(
            counts.get(value.as_bytes()).copied(),
            Some(1),
            "record {index}, acknowledged before the kill, must appear exactly once"
        );
        let previous = previous_offset.insert(partition, offset).unwrap_or(-1);
        assert!(
            offset > previous,
            "records acknowledged before the kill are out of order at {index}"
        );
    }
}

#[test]
fn small_segments_roll_and_survive_restart() {
    let mut broker = Broker::start_with(&[("log.segment.bytes", "4096")]);
    let topic = topic_name("segments");
    create_topic(&broker, &topic, 1, &[]);
    let producer = producer(&broker, &[("linger.ms", "0")]);
    let base = now_ms() - 60_000;
    let recs: Vec<Rec> = (0..600)
        .map(|i| {
            Rec::value(format!("segment record {i:04} {}", "x".repeat(60)))
                .to(0)
                .at(base + i)
        })
        .collect();
    // Several flushes, so the log holds many batches over many segments.
    for chunk in recs.chunks(50) {
        produce_ok(&producer, &topic, chunk);
    }
    drop(producer);

    for round in ["before restart", "after restart"] {
        let consumed = consume_all(&broker, &topic, &[0]);
        assert_eq!(consumed[&0].len(), recs.len(), "{round}: records");
        assert_dense(&consumed[&0], 0, round);
        for (m, rec) in consumed[&0].iter().zip(&recs) {
            assert_eq!(
                m.payload(),
                rec.value.as_deref(),
                "{round}: offset {}",
                m.offset()
            );
        }
        assert_eq!(
            offset_for_time(&broker, &topic, base + 437),
            Offset::Offset(437),
            "{round}: offsets_for_times in a later segment"
        );
        // A fetch starting deep in the log.
        let consumer = consumer(&broker);
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, Offset::Offset(555))
            .expect("add");
        consumer.assign(&assignment).expect("assign");
        let first =
            wait_until(
                Duration::from_secs(20),
                "a record from offset 555",
                || match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => Some((m.offset(), m.payload().map(<[u8]>::to_vec))),
                    _ => None,
                },
            );
        assert_eq!(
            first,
            (555, recs[555].value.clone()),
            "{round}: fetch at 555"
        );
        if round == "before restart" {
            broker.restart();
        }
    }
}

#[test]
fn retention_deletes_whole_expired_segments() {
    let broker = Broker::start_with(&[
        ("log.segment.bytes", "4096"),
        ("log.retention.check.interval.ms", "200"),
    ]);
    let topic = topic_name("retention");
    create_topic(&broker, &topic, 1, &[("retention.ms", "3600000")]);
    let producer = producer(&broker, &[("linger.ms", "0")]);
    // Records two days old: every closed segment is past retention.ms (one hour).
    let old = now_ms() - 2 * 24 * 3_600_000;
    let recs: Vec<Rec> = (0..300)
        .map(|i| {
            Rec::value(format!("old record {i:04} {}", "y".repeat(60)))
                .to(0)
                .at(old + i)
        })
        .collect();
    for chunk in recs.chunks(30) {
        produce_ok(&producer, &topic, chunk);
    }
    wait_until(
        Duration::from_secs(30),
        "retention to delete expired segments",
        || (watermarks(&broker, &topic, 0).0 > 0).then_some(()),
    );
    // Retention works in steps: read once it is done.
    let (low, high) = settled_watermarks(&broker, &topic, 0, Duration::from_secs(1));
    assert_eq!(high, 300, "retention keeps the high watermark");
    let consumed = consume_all(&broker, &topic, &[0]);
    let first = consumed[&0].first().map(|m| m.offset()).unwrap_or(high);
    assert!(
        first >= low,
        "consumed from {first}, below the low watermark {low}"
    );
    assert_dense(&consumed[&0], first, "after retention");
    // New records still go to the end.
    let acked = produce_ok(&producer, &topic, &[Rec::value("fresh").to(0)]);
    assert_eq!(acked, vec![(0, 300)]);
}

#[test]
fn retention_bytes_deletes_the_oldest_segments() {
    let broker = Broker::start_with(&[
        ("log.segment.bytes", "4096"),
        ("log.retention.check.interval.ms", "200"),
    ]);
    let topic = topic_name("retention-bytes");
    create_topic(&broker, &topic, 1, &[("retention.bytes", "8192")]);
    let producer = producer(&broker, &[("linger.ms", "0")]);
    let recs: Vec<Rec> = (0..300)
        .map(|i| Rec::value(format!("sized record {i:04} {}", "z".repeat(60))).to(0))
        .collect();
    for chunk in recs.chunks(30) {
        produce_ok(&producer, &topic, chunk);
    }
    // About 30 KB were written: segments beyond 8 KB (plus the active one) must go.
    wait_until(
        Duration::from_secs(30),
        "retention.bytes to delete the oldest segments",
        || (watermarks(&broker, &topic, 0).0 >= 100).then_some(()),
    );
    // Retention works in steps: read once it is done.
    let (low, high) = settled_watermarks(&broker, &topic, 0, Duration::from_secs(1));
    assert_eq!(high, 300, "retention keeps the high watermark");
    let consumed = consume_all(&broker, &topic, &[0]);
    assert_dense(&consumed[&0], low, "after retention.bytes");
    for m in &consumed[&0] {
        assert_eq!(
            m.payload(),
            recs[m.offset() as usize].value.as_deref(),
            "offset {}",
            m.offset()
        );
    }
}
