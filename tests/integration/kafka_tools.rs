//! Apache Kafka's own command-line tools (4.x, `scripts/kafka-tool.sh`)
//! against a Tidemark: each test runs a tool as an operator would and checks
//! what it prints or what it did, the way a user reads it. Every command here
//! behaves the same against Apache Kafka (scripts/kafka-peer.sh).
//!
//! Needs Java 17 and Maven: `.ci/run` installs both.
use crate::common;

use std::collections::BTreeSet;
use std::thread;
use std::time::Duration;

use common::kafka_tools::{
    assert_read_back_once, kafka_tool, verifiable_consume, VerifiableProducer,
};
use common::*;

/// `kafka-topics --list` names, one per line.
fn listed_topics(broker: &Broker) -> BTreeSet<String> {
    kafka_tool(
        "kafka-topics",
        &["--bootstrap-server", &broker.addr(), "--list"],
        b"",
    )
    .ok("kafka-topics --list")
    .lines()
    .map(str::to_string)
    .collect()
}

fn describe_topic(broker: &Broker, topic: &str) -> String {
    kafka_tool(
        "kafka-topics",
        &[
            "--bootstrap-server",
            &broker.addr(),
            "--describe",
            "--topic",
            topic,
        ],
        b"",
    )
    .ok("kafka-topics --describe")
}

#[test]
fn kafka_topics_creates_describes_alters_and_deletes_a_topic() {
    let broker = Broker::start();
    let addr = broker.addr();
    let topic = topic_name("tools-topics");
    kafka_tool(
        "kafka-topics",
        &[
            "--bootstrap-server",
            &addr,
            "--create",
            "--topic",
            &topic,
            "--partitions",
            "3",
            "--config",
            "retention.ms=3600000",
        ],
        b"",
    )
    .ok("kafka-topics --create");
    assert!(listed_topics(&broker).contains(&topic));
    let described = describe_topic(&broker, &topic);
    assert!(described.contains("PartitionCount: 3"), "{described}");
    assert!(described.contains("retention.ms=3600000"), "{described}");
    for p in 0..3 {
        assert!(
            described.contains(&format!("Partition: {p}\t")),
            "partition {p} described:\n{described}"
        );
    }
    kafka_tool(
        "kafka-topics",
        &[
            "--bootstrap-server",
            &addr,
            "--alter",
            "--topic",
            &topic,
            "--partitions",
            "5",
        ],
        b"",
    )
    .ok("kafka-topics --alter --partitions 5");
    let described = describe_topic(&broker, &topic);
    assert!(described.contains("PartitionCount: 5"), "{described}");
    kafka_tool(
        "kafka-topics",
        &["--bootstrap-server", &addr, "--delete", "--topic", &topic],
        b"",
    )
    .ok("kafka-topics --delete");
    wait_until(CLIENT_TIMEOUT, "the deleted topic gone from --list", || {
        (!listed_topics(&broker).contains(&topic)).then_some(())
    });
}

#[test]
fn console_producer_and_consumer_carry_keys_values_and_order() {
    let broker = Broker::start();
    let addr = broker.addr();
    let topic = topic_name("tools-console");
    create_topic(&broker, &topic, 1, &[]);
    let lines = "en:hello\nfr:bonjour\nde:hallo\nit:ciao\n";
    kafka_tool(
        "kafka-console-producer",
        &[
            "--bootstrap-server",
            &addr,
            "--topic",
            &topic,
            "--compression-codec",
            "zstd",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
            "--producer-property",
            "acks=all",
        ],
        lines.as_bytes(),
    )
    .ok("kafka-console-producer");
    let printed = kafka_tool(
        "kafka-console-consumer",
        &[
            "--bootstrap-server",
            &addr,
            "--topic",
            &topic,
            "--from-beginning",
            "--max-messages",
            "4",
            "--timeout-ms",
            "30000",
            "--formatter-property",
            "print.key=true",
            "--formatter-property",
            "key.separator=:",
            "--formatter-property",
            "print.offset=true",
        ],
        b"",
    )
    .ok("kafka-console-consumer");
    let got: Vec<&str> = printed.lines().collect();
    assert_eq!(
        got,
        [
            "Offset:0:en:hello",
            "Offset:1:fr:bonjour",
            "Offset:2:de:hallo",
            "Offset:3:it:ciao"
        ],
        "what the console consumer printed"
    );
}

/// `kafka-consumer-groups --describe` rows as (partition, current, log end, lag).
fn group_rows(broker: &Broker, group: &str, topic: &str) -> Vec<(String, String, String, String)> {
    let out = kafka_tool(
        "kafka-consumer-groups",
        &[
            "--bootstrap-server",
            &broker.addr(),
            "--describe",
            "--group",
            group,
        ],
        b"",
    )
    .ok("kafka-consumer-groups --describe");
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.len() >= 6 && cols[0] == group && cols[1] == topic)
        .map(|cols| {
            (
                cols[2].to_string(),
                cols[3].to_string(),
                cols[4].to_string(),
                cols[5].to_string(),
            )
        })
        .collect()
}

#[test]
fn kafka_consumer_groups_describes_lag_and_resets_offsets() {
    let broker = Broker::start();
    let addr = broker.addr();
    let topic = topic_name("tools-groups");
    let group = topic_name("tools-group");
    create_topic(&broker, &topic, 1, &[]);
    let recs: Vec<Rec> = (0..10).map(|i| Rec::value(format!("v{i}"))).collect();
    produce_ok(&producer(&broker, &[]), &topic, &recs);
    // A console consumer in the group reads 6 records and commits as it stops.
    kafka_tool(
        "kafka-console-consumer",
        &[
            "--bootstrap-server",
            &addr,
            "--topic",
            &topic,
            "--group",
            &group,
            "--from-beginning",
            "--max-messages",
            "6",
            "--timeout-ms",
            "30000",
            "--consumer-property",
            "max.poll.records=1",
        ],
        b"",
    )
    .ok("kafka-console-consumer --group");
    let rows = group_rows(&broker, &group, &topic);
    assert_eq!(
        rows,
        [("0".into(), "6".into(), "10".into(), "4".into())],
        "partition, current offset, log end, lag"
    );
    let reset = kafka_tool(
        "kafka-consumer-groups",
        &[
            "--bootstrap-server",
            &addr,
            "--group",
            &group,
            "--topic",
            &topic,
            "--reset-offsets",
            "--to-offset",
            "2",
            "--execute",
        ],
        b"",
    )
    .ok("kafka-consumer-groups --reset-offsets");
    assert!(reset.contains(&topic), "{reset}");
    let rows = group_rows(&broker, &group, &topic);
    assert_eq!(rows, [("0".into(), "2".into(), "10".into(), "8".into())]);
}

#[test]
fn kafka_configs_alters_describes_and_deletes_a_topic_config() {
    let broker = Broker::start();
    let addr = broker.addr();
    let topic = topic_name("tools-configs");
    create_topic(&broker, &topic, 1, &[]);
    let configs = |args: &[&str]| {
        let mut all = vec![
            "--bootstrap-server",
            &addr,
            "--entity-type",
            "topics",
            "--entity-name",
            &topic,
        ];
        all.extend_from_slice(args);
        kafka_tool("kafka-configs", &all, b"").ok("kafka-configs")
    };
    configs(&[
        "--alter",
        "--add-config",
        "retention.ms=7200000,segment.bytes=1048576",
    ]);
    let described = configs(&["--describe"]);
    assert!(described.contains("retention.ms=7200000"), "{described}");
    assert!(described.contains("segment.bytes=1048576"), "{described}");
    configs(&["--alter", "--delete-config", "retention.ms"]);
    let described = configs(&["--describe"]);
    assert!(!described.contains("retention.ms=7200000"), "{described}");
    assert!(described.contains("segment.bytes=1048576"), "{described}");
}

fn offsets(broker: &Broker, topic: &str, time: &str) -> String {
    kafka_tool(
        "kafka-get-offsets",
        &[
            "--bootstrap-server",
            &broker.addr(),
            "--topic",
            topic,
            "--time",
            time,
        ],
        b"",
    )
    .ok("kafka-get-offsets")
    .trim()
    .to_string()
}

#[test]
fn kafka_get_offsets_and_kafka_delete_records_agree_on_the_log_start() {
    let broker = Broker::start();
    let topic = topic_name("tools-offsets");
    create_topic(&broker, &topic, 1, &[]);
    let recs: Vec<Rec> = (0..8).map(|i| Rec::value(format!("v{i}"))).collect();
    produce_ok(&producer(&broker, &[]), &topic, &recs);
    assert_eq!(offsets(&broker, &topic, "-1"), format!("{topic}:0:8"));
    assert_eq!(offsets(&broker, &topic, "-2"), format!("{topic}:0:0"));
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("delete.json");
    std::fs::write(
        &json,
        format!(r#"{{"partitions":[{{"topic":"{topic}","partition":0,"offset":5}}],"version":1}}"#),
    )
    .expect("write the offsets file");
    let out = kafka_tool(
        "kafka-delete-records",
        &[
            "--bootstrap-server",
            &broker.addr(),
            "--offset-json-file",
            json.to_str().expect("utf-8 path"),
        ],
        b"",
    )
    .ok("kafka-delete-records");
    assert!(out.contains("low_watermark: 5"), "{out}");
    assert_eq!(offsets(&broker, &topic, "-2"), format!("{topic}:0:5"));
    assert_eq!(offsets(&broker, &topic, "-1"), format!("{topic}:0:8"));
}

#[test]
fn kafka_perf_tests_produce_and_consume_every_record() {
    let broker = Broker::start();
    let addr = broker.addr();
    let topic = topic_name("tools-perf");
    create_topic(&broker, &topic, 2, &[]);
    let bootstrap = format!("bootstrap.servers={addr}");
    let produced = kafka_tool(
        "kafka-producer-perf-test",
        &[
            "--topic",
            &topic,
            "--num-records",
            "20000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer-props",
            &bootstrap,
            "acks=all",
        ],
        b"",
    )
    .ok("kafka-producer-perf-test");
    assert!(
        produced
            .lines()
            .any(|l| l.starts_with("20000 records sent")),
        "{produced}"
    );
    let consumed = kafka_tool(
        "kafka-consumer-perf-test",
        &[
            "--bootstrap-server",
            &addr,
            "--topic",
            &topic,
            "--messages",
            "20000",
            "--timeout",
            "60000",
        ],
        b"",
    )
    .ok("kafka-consumer-perf-test");
    // Its one data line: start, end, MB, MB/s, messages, messages/s, ...
    let data = consumed
        .lines()
        .find(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no data line in:\n{consumed}"));
    let fields: Vec<&str> = data.split(',').map(str::trim).collect();
    assert_eq!(fields.get(4), Some(&"20000"), "messages consumed: {data}");
}

#[test]
fn kafka_verifiable_producer_and_consumer_lose_and_duplicate_nothing_across_a_restart() {
    let mut broker = Broker::start();
    let topic = topic_name("tools-verifiable");
    create_topic(&broker, &topic, 1, &[]);
    const RECORDS: usize = 6000;
    let producer = VerifiableProducer::start(&broker.addr(), &topic, RECORDS, 1000);
    producer.wait_for_first_ack();
    // Mid-stream: a clean restart (SIGTERM, start on the same data dir).
    thread::sleep(Duration::from_secs(2));
    broker.restart();
    let run = producer.finish();
    // The tool sends with retries=0, as Kafka's system tests run it: sends
    // in flight at the restart fail (against Apache Kafka too), and what
    // must hold is that every acknowledged one is read back, once.
    run.assert_sent_and_acknowledged_after(RECORDS, "restart");
    let (_, end) = watermarks(&broker, &topic, 0);
    let consumed = verifiable_consume(&broker.addr(), &topic, end as usize);
    assert_eq!(consumed.len(), end as usize, "the whole log read");
    assert_read_back_once(&run.acked, &consumed);
}
