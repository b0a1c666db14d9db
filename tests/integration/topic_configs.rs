//! Topic configs as Apache Kafka 4.x defines them: every key accepted,
//! checked and described with its type and source; IncrementalAlterConfigs
//! APPEND and SUBTRACT on list configs; the legacy AlterConfigs; and the
//! null error messages Kafka answers. librdkafka's admin API where it can
//! say it (rust-rdkafka 0.39 has no IncrementalAlterConfigs and hides config
//! types, synonyms and error messages), raw frames for the rest.
use crate::common;

use common::*;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AlterConfig, ConfigEntry, ConfigSource, NewTopic, ResourceSpecifier};
use rdkafka::error::RDKafkaErrorCode;

const RESOURCE_TOPIC: i8 = 2;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;
const INVALID_REQUEST: i16 = 42;
const INVALID_CONFIG: i16 = 40;

/// The 37 topic configs a Kafka 4.4 broker's DescribeConfigs lists.
const KAFKA_TOPIC_CONFIGS: [&str; 37] = [
    "cleanup.policy",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "delete.retention.ms",
    "errors.deadletterqueue.group.enable",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "index.interval.bytes",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "max.decompressed.message.bytes",
    "max.message.bytes",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.copy.lag.bytes",
    "remote.copy.lag.ms",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
];

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn describe(broker: &Broker, topic: &str) -> Vec<ConfigEntry> {
    let admin = admin(broker);
    let mut results = futures::executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options()),
    )
    .expect("DescribeConfigs");
    results
        .remove(0)
        .unwrap_or_else(|code| panic!("DescribeConfigs {topic}: {code:?}"))
        .entries
}

fn entry<'a>(entries: &'a [ConfigEntry], name: &str) -> &'a ConfigEntry {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("DescribeConfigs lists no {name}"))
}

fn value(broker: &Broker, topic: &str, name: &str) -> Option<String> {
    entry(&describe(broker, topic), name).value.clone()
}

/// CreateTopics through librdkafka; the error code of the one topic.
fn try_create(
    broker: &Broker,
    name: &str,
    configs: &[(&str, &str)],
) -> Result<(), RDKafkaErrorCode> {
    let admin = admin(broker);
    let mut topic = NewTopic::new(name, 1, rdkafka::admin::TopicReplication::Fixed(1));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let mut results = futures::executor::block_on(admin.create_topics([&topic], &admin_options()))
        .expect("CreateTopics");
    results.remove(0).map(|_| ()).map_err(|(_, code)| code)
}

#[test]
fn every_kafka_topic_config_is_accepted_and_described_with_its_source() {
    let broker = Broker::start();
    let topic = topic_name("all-configs");
    let set = [
        ("compression.type", "zstd"),
        ("compression.zstd.level", "7"),
        ("min.cleanable.dirty.ratio", "0.25"),
        ("flush.messages", "1000"),
        ("preallocate", "TRUE"),
        ("leader.replication.throttled.replicas", "*"),
        ("follower.replication.throttled.replicas", " 0:1 , 0:2 "),
        ("message.timestamp.before.max.ms", "86400000"),
        ("segment.jitter.ms", "0005"),
        ("segment.bytes", "1048576"),
        ("errors.deadletterqueue.group.enable", "true"),
        ("local.retention.ms", "-2"),
    ];
    create_topic(&broker, &topic, 1, &set);
    let entries = describe(&broker, &topic);
    let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names, KAFKA_TOPIC_CONFIGS,
        "every Kafka 4.x topic config, once"
    );
    let canonical = [
        ("compression.type", "zstd"),
        ("compression.zstd.level", "7"),
        ("min.cleanable.dirty.ratio", "0.25"),
        ("flush.messages", "1000"),
        ("preallocate", "true"),
        ("leader.replication.throttled.replicas", "*"),
        ("follower.replication.throttled.replicas", "0:1,0:2"),
        ("message.timestamp.before.max.ms", "86400000"),
        ("segment.jitter.ms", "5"),
        ("segment.bytes", "1048576"),
        ("errors.deadletterqueue.group.enable", "true"),
        ("local.retention.ms", "-2"),
    ];
    for (name, value) in canonical {
        let e = entry(&entries, name);
        assert_eq!(e.value.as_deref(), Some(value), "{name}, in canonical form");
        assert_eq!(e.source, ConfigSource::DynamicTopic, "{name} was set");
    }
    for (name, value) in [
        ("compression.gzip.level", "-1"),
        ("message.timestamp.type", "CreateTime"),
        ("message.timestamp.after.max.ms", "3600000"),
        ("flush.ms", "9223372036854775807"),
        ("max.compaction.lag.ms", "9223372036854775807"),
        ("remote.storage.enable", "false"),
        ("cleanup.policy", "delete"),
    ] {
        let e = entry(&entries, name);
        assert_eq!(e.value.as_deref(), Some(value), "{name}: Kafka's default");
        assert_eq!(e.source, ConfigSource::Default, "{name} was not set");
        assert!(e.is_default && !e.is_read_only && !e.is_sensitive, "{name}");
    }
}

#[test]
fn only_invalid_values_and_keys_kafka_4_does_not_define_are_refused() {
    let broker = Broker::start();
    let refused = [
        // Kafka's validators: codec names are case-sensitive, segments at
        // least 1 MiB, levels within the codec's range.
        ("compression.type", "ZSTD"),
        ("message.timestamp.type", "logappendtime"),
        ("segment.bytes", "4096"),
        ("compression.gzip.level", "0"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("cleanup.policy", "compact,shred"),
        ("leader.replication.throttled.replicas", "all"),
        ("preallocate", "yes"),
        ("max.compaction.lag.ms", "0"),
        // No tiered storage, as a Kafka broker with it off refuses it.
        ("remote.storage.enable", "true"),
        // Removed in Kafka 4.0, which refuses it as unknown.
        ("message.timestamp.difference.max.ms", "1000"),
        ("message.format.version", "3.0"),
        ("no.such.config", "1"),
    ];
    for (key, value) in refused {
        let name = topic_name("refused");
        assert_eq!(
            try_create(&broker, &name, &[(key, value)]),
            Err(RDKafkaErrorCode::InvalidConfig),
            "CreateTopics with {key}={value}"
        );
    }
    let name = topic_name("lags");
    assert_eq!(
        try_create(
            &broker,
            &name,
            &[
                ("min.compaction.lag.ms", "10"),
                ("max.compaction.lag.ms", "5")
            ]
        ),
        Err(RDKafkaErrorCode::InvalidConfig),
        "min.compaction.lag.ms above max.compaction.lag.ms"
    );
    // An empty cleanup.policy is valid in Kafka 4.x: neither delete nor compact.
    let name = topic_name("no-cleanup");
    assert_eq!(
        try_create(&broker, &name, &[("cleanup.policy", "")]),
        Ok(())
    );
    assert_eq!(value(&broker, &name, "cleanup.policy").as_deref(), Some(""));
}

/// DescribeConfigs v4 on the wire: what librdkafka does not show.
fn describe_raw(
    conn: &mut RawConn,
    topic: &str,
    keys: &[&str],
) -> Vec<DescribeConfigsResourceResult> {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(s(topic))
            .with_configuration_keys(Some(keys.iter().map(|k| s(k)).collect()))]);
    let response: DescribeConfigsResponse = conn.request(&request, 4);
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "DescribeConfigs {topic}");
    // Kafka 4.4 answers "" here, not null: the field's default.
    assert_eq!(
        result.error_message.as_deref(),
        Some(""),
        "DescribeConfigs error message"
    );
    result.configs.clone()
}

#[test]
fn describe_configs_gives_kafka_types_synonyms_and_documentation() {
    let broker = Broker::start_with(&[("log.retention.ms", "3600000")]);
    let topic = topic_name("types");
    create_topic(&broker, &topic, 1, &[("compression.type", "lz4")]);
    let mut conn = RawConn::connect(&broker);
    let keys = [
        "cleanup.policy",
        "compression.type",
        "min.cleanable.dirty.ratio",
        "preallocate",
        "max.message.bytes",
        "retention.ms",
        "flush.ms",
    ];
    let configs = describe_raw(&mut conn, &topic, &keys);
    let found = |name: &str| {
        configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap_or_else(|| panic!("{name} described"))
            .clone()
    };
    // Kafka's ConfigType codes: BOOLEAN 1, STRING 2, INT 3, LONG 5, DOUBLE 6, LIST 7.
    for (name, config_type) in [
        ("cleanup.policy", 7),
        ("compression.type", 2),
        ("min.cleanable.dirty.ratio", 6),
        ("preallocate", 1),
        ("max.message.bytes", 3),
        ("retention.ms", 5),
        ("flush.ms", 5),
    ] {
        assert_eq!(found(name).config_type, config_type, "type of {name}");
    }
    for c in &configs {
        let doc = c.documentation.as_deref().unwrap_or_default();
        assert!(!doc.is_empty(), "{} is documented", c.name);
    }
    let compression = found("compression.type");
    assert_eq!(compression.config_source, 1, "DYNAMIC_TOPIC_CONFIG");
    let synonyms: Vec<(String, Option<String>, i8)> = compression
        .synonyms
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                s.value.as_ref().map(|v| v.to_string()),
                s.source,
            )
        })
        .collect();
    assert_eq!(
        synonyms,
        vec![
            ("compression.type".into(), Some("lz4".into()), 1),
            ("compression.type".into(), Some("producer".into()), 5)
        ]
    );
    let cleanup = found("cleanup.policy");
    assert_eq!(cleanup.synonyms.len(), 1, "Kafka's broker synonym only");
    assert_eq!(cleanup.synonyms[0].name.as_str(), "log.cleanup.policy");
    assert_eq!(cleanup.synonyms[0].source, 5, "DEFAULT_CONFIG");
    assert!(
        found("flush.ms").synonyms.is_empty(),
        "Kafka lists none for flush.ms"
    );
    // retention.ms comes from the broker's own log.retention.ms.
    let retention = found("retention.ms");
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.config_source, 4, "STATIC_BROKER_CONFIG");
    assert_eq!(retention.synonyms[0].name.as_str(), "log.retention.ms");
}

#[test]
fn create_topics_answers_null_messages_and_lists_the_new_topics_configs() {
    let broker = Broker::start();
    let mut conn = RawConn::connect(&broker);
    let name = topic_name("created");
    let topic = CreatableTopic::default()
        .with_name(TopicName(s(&name)))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(s("retention.ms"))
            .with_value(Some(s("0100000")))]);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(10_000);
    let response: CreateTopicsResponse = conn.request(&request, 7);
    let created = &response.topics[0];
    assert_eq!(created.error_code, 0);
    assert_eq!(created.error_message, None, "Kafka answers null on success");
    let configs = created.configs.as_ref().expect("configs of the new topic");
    assert_eq!(configs.len(), KAFKA_TOPIC_CONFIGS.len());
    let retention = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .expect("retention.ms listed");
    assert_eq!(retention.value.as_deref(), Some("100000"));
    assert_eq!(retention.config_source, 1, "DYNAMIC_TOPIC_CONFIG");
}

/// IncrementalAlterConfigs of one topic; the resource's code and message.
fn alter(
    conn: &mut RawConn,
    topic: &str,
    changes: &[(&str, i8, Option<&str>)],
) -> (i16, Option<String>) {
    let configs = changes
        .iter()
        .map(|(name, op, value)| {
            AlterableConfig::default()
                .with_name(s(name))
                .with_config_operation(*op)
                .with_value(value.map(s))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(s(topic))
            .with_configs(configs),
    ]);
    let response: IncrementalAlterConfigsResponse = conn.request(&request, 1);
    let answer = &response.responses[0];
    (
        answer.error_code,
        answer.error_message.as_ref().map(|m| m.to_string()),
    )
}

#[test]
fn incremental_alter_configs_answers_null_on_success_and_refuses_bad_requests() {
    let broker = Broker::start();
    let topic = topic_name("incremental");
    create_topic(&broker, &topic, 1, &[]);
    let mut conn = RawConn::connect(&broker);
    let done = alter(
        &mut conn,
        &topic,
        &[("compression.type", OP_SET, Some("lz4"))],
    );
    assert_eq!(done, (0, None), "Kafka answers a null message on success");
    assert_eq!(
        value(&broker, &topic, "compression.type").as_deref(),
        Some("lz4")
    );
    // Deleting a key that is not set, or unknown, is a no-op, as in Kafka.
    let done = alter(&mut conn, &topic, &[("no.such.config", OP_DELETE, None)]);
    assert_eq!(done, (0, None));
    let (code, message) = alter(
        &mut conn,
        &topic,
        &[("compression.type", OP_SET, Some("brotli"))],
    );
    assert_eq!(code, INVALID_CONFIG, "an unknown codec");
    assert!(message.is_some_and(|m| m.contains("compression.type")));
    let (code, _) = alter(&mut conn, &topic, &[("retention.ms", OP_SET, None)]);
    assert_eq!(code, INVALID_REQUEST, "SET with a null value");
    let twice = [
        ("retention.ms", OP_SET, Some("1000")),
        ("retention.ms", OP_DELETE, None),
    ];
    assert_eq!(
        alter(&mut conn, &topic, &twice).0,
        INVALID_REQUEST,
        "one key twice"
    );
    assert_eq!(
        value(&broker, &topic, "compression.type").as_deref(),
        Some("lz4")
    );
}

#[test]
fn append_and_subtract_edit_list_configs_as_kafka_does() {
    let broker = Broker::start();
    let topic = topic_name("lists");
    create_topic(&broker, &topic, 1, &[]);
    let mut conn = RawConn::connect(&broker);

    // APPEND starts from the default (delete) and adds what is missing.
    let done = alter(
        &mut conn,
        &topic,
        &[("cleanup.policy", OP_APPEND, Some("compact"))],
    );
    assert_eq!(done, (0, None), "APPEND compact; null message on success");
    assert_eq!(
        value(&broker, &topic, "cleanup.policy").as_deref(),
        Some("delete,compact")
    );
    assert_eq!(
        alter(
            &mut conn,
            &topic,
            &[("cleanup.policy", OP_APPEND, Some("compact"))]
        )
        .0,
        0
    );
    assert_eq!(
        value(&broker, &topic, "cleanup.policy").as_deref(),
        Some("delete,compact")
    );

    // The topic is compacted now: a record without a key is refused.
    let producer = producer(&broker, &[]);
    let outcome = produce(&producer, &topic, &[Rec::new(None, Some("no key"))]);
    assert!(
        outcome[0].is_err(),
        "a keyless record on a compacted topic: {outcome:?}"
    );
    drop(producer);

    assert_eq!(
        alter(
            &mut conn,
            &topic,
            &[("cleanup.policy", OP_SUBTRACT, Some("delete"))]
        )
        .0,
        0
    );
    assert_eq!(
        value(&broker, &topic, "cleanup.policy").as_deref(),
        Some("compact")
    );
    assert_eq!(
        alter(
            &mut conn,
            &topic,
            &[("cleanup.policy", OP_SUBTRACT, Some("compact"))]
        )
        .0,
        0
    );
    assert_eq!(
        value(&broker, &topic, "cleanup.policy").as_deref(),
        Some("")
    );
    assert_eq!(
        alter(&mut conn, &topic, &[("cleanup.policy", OP_DELETE, None)]).0,
        0
    );
    assert_eq!(
        value(&broker, &topic, "cleanup.policy").as_deref(),
        Some("delete")
    );

    // Items are checked; APPEND and SUBTRACT are for lists only.
    let (code, message) = alter(
        &mut conn,
        &topic,
        &[("cleanup.policy", OP_APPEND, Some("shred"))],
    );
    assert_eq!(
        code, INVALID_CONFIG,
        "APPEND an item cleanup.policy does not know"
    );
    assert!(message.is_some_and(|m| !m.is_empty()), "with a message");
    for op in [OP_APPEND, OP_SUBTRACT] {
        let (code, message) = alter(&mut conn, &topic, &[("retention.ms", op, Some("5"))]);
        assert_eq!(code, INVALID_CONFIG, "operation {op} on a LONG");
        assert!(message.unwrap_or_default().contains("LIST"));
    }
    let (code, _) = alter(&mut conn, &topic, &[("cleanup.policy", OP_APPEND, None)]);
    assert_eq!(code, INVALID_REQUEST, "APPEND with a null value");
    let twice = [
        ("cleanup.policy", OP_APPEND, Some("compact")),
        ("cleanup.policy", OP_SUBTRACT, Some("delete")),
    ];
    assert_eq!(
        alter(&mut conn, &topic, &twice).0,
        INVALID_REQUEST,
        "one key twice"
    );
    // Deleting a key that is not set, or unknown, is a no-op, as in Kafka.
    assert_eq!(
        alter(&mut conn, &topic, &[("no.such.config", OP_DELETE, None)]),
        (0, None)
    );
    assert_eq!(
        value(&broker, &topic, "cleanup.policy").as_deref(),
        Some("delete")
    );
    assert_eq!(
        alter(
            &mut conn,
            &topic,
            &[("retention.ms", OP_SET, Some("60000"))]
        ),
        (0, None)
    );
}

/// The legacy AlterConfigs through librdkafka, which sends key 33.
/// rust-rdkafka 0.39 answers Ok whatever the resource's error code, so
/// refusals are checked with `alter_legacy_raw`.
fn alter_legacy(broker: &Broker, topic: &str, configs: &[(&str, &str)]) {
    let admin = admin(broker);
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (key, value) in configs {
        alter = alter.set(key, value);
    }
    let results = futures::executor::block_on(admin.alter_configs([&alter], &admin_options()))
        .expect("AlterConfigs");
    assert_eq!(results.len(), 1, "one resource answered");
}

/// AlterConfigs of one topic on the wire; the resource's code and message.
fn alter_legacy_raw(
    conn: &mut RawConn,
    version: i16,
    topic: &str,
    configs: &[(&str, Option<&str>)],
) -> (i16, Option<String>) {
    use kafka_protocol::messages::alter_configs_request as legacy;
    use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
    let configs = configs
        .iter()
        .map(|(name, value)| {
            legacy::AlterableConfig::default()
                .with_name(s(name))
                .with_value(value.map(s))
        })
        .collect();
    let request =
        AlterConfigsRequest::default().with_resources(vec![legacy::AlterConfigsResource::default(
        )
        .with_resource_type(RESOURCE_TOPIC)
        .with_resource_name(s(topic))
        .with_configs(configs)]);
    let response: AlterConfigsResponse = conn.request(&request, version);
    let answer = &response.responses[0];
    (
        answer.error_code,
        answer.error_message.as_ref().map(|m| m.to_string()),
    )
}

#[test]
fn legacy_alter_configs_replaces_the_whole_set_of_overrides() {
    let broker = Broker::start();
    let topic = topic_name("legacy");
    create_topic(
        &broker,
        &topic,
        1,
        &[("retention.ms", "100000"), ("cleanup.policy", "compact")],
    );
    let mut conn = RawConn::connect(&broker);
    let versions = conn.api_versions();
    assert_eq!(
        versions.get(&33),
        Some(&(0, 2)),
        "AlterConfigs v0-v2 advertised"
    );

    alter_legacy(&broker, &topic, &[("compression.type", "gzip")]);
    let entries = describe(&broker, &topic);
    assert_eq!(
        entry(&entries, "compression.type").value.as_deref(),
        Some("gzip")
    );
    for (name, default) in [("retention.ms", "604800000"), ("cleanup.policy", "delete")] {
        let e = entry(&entries, name);
        assert_eq!(
            e.value.as_deref(),
            Some(default),
            "{name} back to its default"
        );
        assert_eq!(e.source, ConfigSource::Default, "{name} no longer set");
    }
    // A keyless record is accepted again: the topic is no longer compacted.
    let producer = producer(&broker, &[]);
    produce_ok(&producer, &topic, &[Rec::new(None, Some("no key"))]);
    drop(producer);

    for version in 0..=2 {
        let (code, message) = alter_legacy_raw(
            &mut conn,
            version,
            &topic,
            &[
                ("compression.type", Some("gzip")),
                ("retention.ms", Some("60000")),
            ],
        );
        assert_eq!(
            (code, message),
            (0, None),
            "v{version}: null message on success"
        );
    }
    assert_eq!(
        value(&broker, &topic, "retention.ms").as_deref(),
        Some("60000")
    );
    // Invalid values, unknown keys and null values change nothing.
    let refused = [
        (("retention.ms", Some("soon")), INVALID_CONFIG),
        (
            ("message.timestamp.difference.max.ms", Some("1")),
            INVALID_CONFIG,
        ),
        (("retention.ms", None), INVALID_REQUEST),
    ];
    for ((key, value), expected) in refused {
        let (code, message) = alter_legacy_raw(&mut conn, 2, &topic, &[(key, value)]);
        assert_eq!(code, expected, "AlterConfigs {key}={value:?}");
        assert!(
            message.is_some_and(|m| !m.is_empty()),
            "{key}: with a message"
        );
    }
    let twice = [("retention.ms", Some("1")), ("retention.ms", Some("2"))];
    assert_eq!(
        alter_legacy_raw(&mut conn, 2, &topic, &twice).0,
        INVALID_REQUEST
    );
    let missing = topic_name("missing");
    let (code, _) = alter_legacy_raw(&mut conn, 2, &missing, &[("retention.ms", Some("1"))]);
    assert_eq!(code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(
        value(&broker, &topic, "retention.ms").as_deref(),
        Some("60000")
    );

    // No configs at all: every override goes.
    alter_legacy(&broker, &topic, &[]);
    let entries = describe(&broker, &topic);
    let e = entry(&entries, "compression.type");
    assert_eq!(e.value.as_deref(), Some("producer"));
    assert_eq!(e.source, ConfigSource::Default);
}
