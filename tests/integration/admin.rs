//! The control plane as a Kafka user sees it: CreateTopics, DeleteTopics,
//! CreatePartitions, DescribeConfigs, IncrementalAlterConfigs, DescribeCluster
//! and Metadata, with the error codes Apache Kafka answers.
use crate::common;

use common::*;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    DescribeClusterRequest, DescribeClusterResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;

const RESOURCE_TOPIC: i8 = 2;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const INVALID_CONFIG: i16 = 40;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

#[test]
fn create_delete_and_recreate_a_topic_starts_empty() {
    let mut broker = Broker::start();
    let topic = topic_name("recreate");
    create_topic(&broker, &topic, 2, &[]);
    {
        let producer = producer(&broker, &[]);
        let recs: Vec<Rec> = (0..5)
            .map(|i| Rec::value(format!("old {i}")).to(i % 2))
            .collect();
        produce_ok(&producer, &topic, &recs);
    }
    assert_eq!(watermarks(&broker, &topic, 0), (0, 3));

    let admin = admin(&broker);
    let results =
        futures::executor::block_on(admin.delete_topics(&[topic.as_str()], &admin_options()))
            .expect("DeleteTopics");
    assert_eq!(results, vec![Ok(topic.clone())], "DeleteTopics result");
    wait_until(
        CLIENT_TIMEOUT,
        "the deleted topic to leave Metadata",
        || partition_count(&broker, &topic).is_none().then_some(()),
    );

    create_topic(&broker, &topic, 3, &[]);
    for p in 0..3 {
        assert_eq!(
            watermarks(&broker, &topic, p),
            (0, 0),
            "partition {p} of the re-created topic is empty"
        );
    }
    let producer = producer(&broker, &[]);
    let acked = produce_ok(
        &producer,
        &topic,
        &[Rec::value("new 0").to(0), Rec::value("new 1").to(0)],
    );
    assert_eq!(acked, vec![(0, 0), (0, 1)], "offsets start again at 0");
    drop(producer);

    // The deletion and the re-creation survive a restart.
    broker.restart();
    wait_for_partitions(&broker, &topic, 3);
    let consumed = consume_all(&broker, &topic, &[0, 1, 2]);
    let values: Vec<Option<String>> = consumed[&0].iter().map(value_str).collect();
    assert_eq!(
        values,
        vec![Some("new 0".to_string()), Some("new 1".to_string())]
    );
    assert!(consumed[&1].is_empty() && consumed[&2].is_empty());
}

#[test]
fn create_and_delete_topics_report_kafka_error_codes() {
    let broker = Broker::start();
    let admin = admin(&broker);
    let topic = topic_name("errors");
    create_topic(&broker, &topic, 1, &[]);

    let again = NewTopic::new(&topic, 1, TopicReplication::Fixed(1));
    let results = futures::executor::block_on(admin.create_topics([&again], &admin_options()))
        .expect("CreateTopics");
    assert_eq!(
        results,
        vec![Err((topic.clone(), RDKafkaErrorCode::TopicAlreadyExists))]
    );

    let zero_name = topic_name("zero-partitions");
    let zero = NewTopic::new(&zero_name, 0, TopicReplication::Fixed(1));
    let results = futures::executor::block_on(admin.create_topics([&zero], &admin_options()))
        .expect("CreateTopics");
    assert_eq!(
        results,
        vec![Err((
            zero_name.clone(),
            RDKafkaErrorCode::InvalidPartitions
        ))]
    );

    let bad_name = "bad/name";
    let bad = NewTopic::new(bad_name, 1, TopicReplication::Fixed(1));
    let results = futures::executor::block_on(admin.create_topics([&bad], &admin_options()))
        .expect("CreateTopics");
    assert_eq!(
        results,
        vec![Err((bad_name.to_string(), RDKafkaErrorCode::InvalidTopic))]
    );

    let missing = topic_name("never-created");
    let results =
        futures::executor::block_on(admin.delete_topics(&[missing.as_str()], &admin_options()))
            .expect("DeleteTopics");
    assert_eq!(
        results,
        vec![Err((missing, RDKafkaErrorCode::UnknownTopicOrPartition))]
    );
}

#[test]
fn create_partitions_grows_a_topic() {
    let mut broker = Broker::start();
    let topic = topic_name("grow");
    create_topic(&broker, &topic, 2, &[]);
    {
        let producer = producer(&broker, &[]);
        produce_ok(
            &producer,
            &topic,
            &[Rec::value("a").to(0), Rec::value("b").to(1)],
        );
    }

    let admin = admin(&broker);
    let grow = NewPartitions::new(&topic, 5);
    let results = futures::executor::block_on(admin.create_partitions([&grow], &admin_options()))
        .expect("CreatePartitions");
    assert_eq!(results, vec![Ok(topic.clone())]);
    wait_for_partitions(&broker, &topic, 5);

    let producer = producer(&broker, &[]);
    let acked = produce_ok(
        &producer,
        &topic,
        &[Rec::value("c").to(4), Rec::value("d").to(2)],
    );
    assert_eq!(acked, vec![(4, 0), (2, 0)]);
    drop(producer);

    for count in [3, 5] {
        let shrink = NewPartitions::new(&topic, count);
        let results =
            futures::executor::block_on(admin.create_partitions([&shrink], &admin_options()))
                .expect("CreatePartitions");
        assert_eq!(
            results,
            vec![Err((topic.clone(), RDKafkaErrorCode::InvalidPartitions))],
            "CreatePartitions to {count} on a 5-partition topic"
        );
    }

    broker.restart();
    wait_for_partitions(&broker, &topic, 5);
    let consumed = consume_all(&broker, &topic, &[0, 1, 2, 3, 4]);
    let first: Vec<Option<String>> = (0..5)
        .map(|p| consumed[&p].first().and_then(value_str))
        .collect();
    assert_eq!(
        first,
        vec![
            Some("a".to_string()),
            Some("b".to_string()),
            Some("d".to_string()),
            None,
            Some("c".to_string())
        ]
    );
}

fn describe_topic(broker: &Broker, topic: &str) -> Vec<rdkafka::admin::ConfigEntry> {
    let admin = admin(broker);
    let mut results = futures::executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options()),
    )
    .expect("DescribeConfigs");
    assert_eq!(results.len(), 1);
    results
        .remove(0)
        .unwrap_or_else(|code| panic!("DescribeConfigs {topic}: {code:?}"))
        .entries
}

fn config_value(entries: &[rdkafka::admin::ConfigEntry], name: &str) -> Option<String> {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("DescribeConfigs lists no {name}"))
        .value
        .clone()
}

fn alter(
    conn: &mut RawConn,
    version: i16,
    topic: &str,
    changes: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> i16 {
    let configs = changes
        .iter()
        .map(|(name, op, value)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(name.to_string()))
                .with_config_operation(*op)
                .with_value(value.map(|v| StrBytes::from_string(v.to_string())))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(configs)])
        .with_validate_only(validate_only);
    let response: IncrementalAlterConfigsResponse = conn.request(&request, version);
    assert_eq!(response.responses.len(), 1, "one resource answered");
    let answer = &response.responses[0];
    assert_eq!(answer.resource_type, RESOURCE_TOPIC);
    assert_eq!(answer.resource_name.as_str(), topic);
    answer.error_code
}

#[test]
fn describe_and_incrementally_alter_topic_configs() {
    let mut broker = Broker::start_with(&[("num.partitions", "4")]);
    let topic = topic_name("configs");
    create_topic(&broker, &topic, 1, &[("retention.ms", "3600000")]);

    let entries = describe_topic(&broker, &topic);
    let retention = entries
        .iter()
        .find(|e| e.name == "retention.ms")
        .expect("retention.ms listed");
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    assert!(!retention.is_default, "retention.ms was set at creation");
    assert_eq!(
        config_value(&entries, "cleanup.policy").as_deref(),
        Some("delete")
    );
    assert!(
        entries.iter().any(|e| e.name == "max.message.bytes"),
        "max.message.bytes listed"
    );

    let mut conn = RawConn::connect(&broker);
    let version = conn.negotiate::<IncrementalAlterConfigsRequest>();

    // validate_only changes nothing.
    let code = alter(
        &mut conn,
        version,
        &topic,
        &[("retention.ms", OP_SET, Some("100"))],
        true,
    );
    assert_eq!(code, 0, "validate-only SET retention.ms");
    assert_eq!(
        config_value(&describe_topic(&broker, &topic), "retention.ms").as_deref(),
        Some("3600000")
    );

    let code = alter(
        &mut conn,
        version,
        &topic,
        &[("retention.ms", OP_SET, Some("7200000"))],
        false,
    );
    assert_eq!(code, 0, "SET retention.ms");
    assert_eq!(
        config_value(&describe_topic(&broker, &topic), "retention.ms").as_deref(),
        Some("7200000")
    );

    let code = alter(
        &mut conn,
        version,
        &topic,
        &[("retention.ms", OP_SET, Some("not a number"))],
        false,
    );
    assert_eq!(code, INVALID_CONFIG, "SET retention.ms to a non-number");
    let code = alter(
        &mut conn,
        version,
        &topic,
        &[("no.such.config", OP_SET, Some("1"))],
        false,
    );
    assert_eq!(code, INVALID_CONFIG, "SET an unknown config");
    let code = alter(
        &mut conn,
        version,
        &topic_name("missing"),
        &[("retention.ms", OP_SET, Some("1000"))],
        false,
    );
    assert_eq!(
        code, UNKNOWN_TOPIC_OR_PARTITION,
        "alter a topic that does not exist"
    );
    assert_eq!(
        config_value(&describe_topic(&broker, &topic), "retention.ms").as_deref(),
        Some("7200000"),
        "failed alters change nothing"
    );

    // The altered value survives a restart.
    drop(conn);
    broker.restart();
    assert_eq!(
        config_value(&describe_topic(&broker, &topic), "retention.ms").as_deref(),
        Some("7200000"),
        "after restart"
    );

    // DELETE goes back to the default (Kafka's: 7 days).
    let mut conn = RawConn::connect(&broker);
    let code = alter(
        &mut conn,
        version,
        &topic,
        &[("retention.ms", OP_DELETE, None)],
        false,
    );
    assert_eq!(code, 0, "DELETE retention.ms");
    let entries = describe_topic(&broker, &topic);
    let retention = entries
        .iter()
        .find(|e| e.name == "retention.ms")
        .expect("retention.ms listed");
    assert_eq!(retention.value.as_deref(), Some("604800000"));
    assert_ne!(retention.source, ConfigSource::DynamicTopic);

    // Broker configs: --set shows up in DescribeConfigs for broker 1.
    let admin = admin(&broker);
    let mut results = futures::executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Broker(1)], &admin_options()),
    )
    .expect("DescribeConfigs broker");
    let entries = results
        .remove(0)
        .unwrap_or_else(|code| panic!("DescribeConfigs broker 1: {code:?}"))
        .entries;
    assert_eq!(
        config_value(&entries, "num.partitions").as_deref(),
        Some("4")
    );
}

#[test]
fn metadata_and_describe_cluster_name_this_broker() {
    let broker = Broker::start();
    let topic = topic_name("meta");
    create_topic(&broker, &topic, 3, &[]);

    let consumer = consumer(&broker);
    let metadata = consumer
        .fetch_metadata(None, CLIENT_TIMEOUT)
        .expect("Metadata");
    // No check of orig_broker_id: librdkafka reports -1 when the answer came
    // over its bootstrap connection, whose node id it has not learned yet.
    let brokers: Vec<(i32, String, i32)> = metadata
        .brokers()
        .iter()
        .map(|b| (b.id(), b.host().to_string(), b.port()))
        .collect();
    assert_eq!(
        brokers,
        vec![(1, "127.0.0.1".to_string(), broker.port() as i32)]
    );
    let t = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .expect("topic listed in full Metadata");
    assert!(t.error().is_none());
    let mut partitions: Vec<(i32, i32, Vec<i32>, Vec<i32>)> = t
        .partitions()
        .iter()
        .map(|p| (p.id(), p.leader(), p.replicas().to_vec(), p.isr().to_vec()))
        .collect();
    partitions.sort();
    assert_eq!(
        partitions,
        (0..3).map(|p| (p, 1, vec![1], vec![1])).collect::<Vec<_>>()
    );

    let mut conn = RawConn::connect(&broker);
    let version = conn.negotiate::<DescribeClusterRequest>();
    let response: DescribeClusterResponse =
        conn.request(&DescribeClusterRequest::default(), version);
    assert_eq!(response.error_code, 0, "DescribeCluster error code");
    assert!(!response.cluster_id.is_empty(), "cluster id");
    assert_eq!(response.controller_id.0, 1, "controller id");
    let brokers: Vec<(i32, String, i32)> = response
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.host.to_string(), b.port))
        .collect();
    assert_eq!(
        brokers,
        vec![(1, "127.0.0.1".to_string(), broker.port() as i32)]
    );

    // A librdkafka round trip still works on the same broker.
    let producer = producer(&broker, &[]);
    produce_ok(&producer, &topic, &[Rec::value("x").to(2)]);
    let consumed = consume_all(&broker, &topic, &[2]);
    assert_eq!(consumed[&2].len(), 1);
    assert_eq!(consumed[&2][0].payload(), Some(&b"x"[..]));
}

#[test]
fn describe_configs_of_a_missing_topic_is_unknown_topic() {
    // rust-rdkafka 0.39 does not surface a resource's error code (it answers
    // Ok with no entries), so this asks on the wire, at every version.
    let broker = Broker::start();
    let missing = topic_name("no-such-topic");
    let mut conn = RawConn::connect(&broker);
    let (min, max) = conn.api_versions()[&32];
    for version in min..=max {
        let resource =
            kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(kafka_protocol::protocol::StrBytes::from_string(
                    missing.clone(),
                ))
                .with_configuration_keys(None);
        let request = kafka_protocol::messages::DescribeConfigsRequest::default()
            .with_resources(vec![resource]);
        let response = conn.request(&request, version);
        assert_eq!(
            response.results[0].error_code, 3,
            "DescribeConfigs v{version} of a missing topic"
        );
    }
}
