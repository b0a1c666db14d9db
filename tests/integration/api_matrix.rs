//! Every API at every version the broker advertises: a well-formed request
//! gets a well-formed answer (right correlation id, nothing left over) with the
//! error codes Apache Kafka would give. This catches a handler that sets a
//! field its version does not have, or mis-reads a version's fields.
use crate::common;

use bytes::Bytes;
use common::{Broker, RawConn};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use wire::batch::encode_records;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn one_batch(value: &str) -> Bytes {
    let record = (
        1_700_000_000_000,
        None,
        Some(Bytes::from(value.to_string())),
    );
    encode_records(&[record], Compression::None).expect("encode batch")
}

fn range(conn: &mut RawConn, key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let versions = conn.api_versions();
    let (min, max) = versions[&(key as i16)];
    min..=max
}

fn create_topic_request(topic: &str) -> CreateTopicsRequest {
    let topic = create_topics_request::CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(2)
        .with_replication_factor(1);
    CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(5000)
}

#[test]
fn every_version_of_every_api_answers() {
    let broker = Broker::start();
    let mut conn = RawConn::connect(&broker);

    for v in range(&mut conn, ApiKey::CreateTopics) {
        let topic = format!("matrix-{v}");
        let r = conn.request(&create_topic_request(&topic), v);
        assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{v}");
        let again = conn.request(&create_topic_request(&topic), v);
        assert_eq!(
            again.topics[0].error_code, 36,
            "CreateTopics v{v} twice: TOPIC_ALREADY_EXISTS"
        );
    }
    let topic = "matrix-2";

    for v in range(&mut conn, ApiKey::Metadata) {
        let requested =
            metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic)));
        let mut request = MetadataRequest::default().with_topics(Some(vec![requested]));
        if v >= 4 {
            request.allow_auto_topic_creation = false;
        }
        let r = conn.request(&request, v);
        assert_eq!(r.topics.len(), 1, "Metadata v{v}");
        assert_eq!(r.topics[0].error_code, 0, "Metadata v{v}");
        assert_eq!(r.topics[0].partitions.len(), 2, "Metadata v{v}");
        assert_eq!(r.brokers.len(), 1, "Metadata v{v}");
        assert_eq!(r.brokers[0].port as u16, broker.port(), "Metadata v{v}");
    }

    let mut produced = 0i64;
    for v in range(&mut conn, ApiKey::Produce) {
        let partition = produce_request::PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(one_batch(&format!("v{v}"))));
        let data = produce_request::TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![partition]);
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![data]);
        let r = conn.request(&request, v);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "Produce v{v}");
        assert_eq!(p.base_offset, produced, "Produce v{v} base offset");
        produced += 1;
    }

    for v in range(&mut conn, ApiKey::Fetch) {
        let partition = fetch_request::FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(0)
            .with_partition_max_bytes(1 << 20);
        let fetch_topic = fetch_request::FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![partition]);
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![fetch_topic]);
        let r = conn.request(&request, v);
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{v}");
        assert_eq!(p.high_watermark, produced, "Fetch v{v} high watermark");
        let records = p.records.clone().unwrap_or_default();
        let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records.clone())
            .expect("decode fetched batches");
        let count: usize = sets.iter().map(|s| s.records.len()).sum();
        assert_eq!(count as i64, produced, "Fetch v{v} record count");
    }

    for v in range(&mut conn, ApiKey::ListOffsets) {
        let partitions = vec![list_offsets_request::ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(-1)];
        let t = list_offsets_request::ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(partitions);
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(if v >= 3 { -1 } else { -2 }))
            .with_topics(vec![t]);
        let r = conn.request(&request, v);
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "ListOffsets v{v}");
        assert_eq!(p.offset, produced, "ListOffsets v{v} latest");
    }

    for v in range(&mut conn, ApiKey::DescribeConfigs) {
        let resource = describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("matrix-2"))
            .with_configuration_keys(None);
        let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
        let r = conn.request(&request, v);
        assert_eq!(r.results[0].error_code, 0, "DescribeConfigs v{v}");
        let missing = describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("no-such-topic"))
            .with_configuration_keys(None);
        let r2 = conn.request(
            &DescribeConfigsRequest::default().with_resources(vec![missing]),
            v,
        );
        assert_eq!(
            r2.results[0].error_code, 3,
            "DescribeConfigs v{v} of a missing topic"
        );
        assert!(
            r.results[0]
                .configs
                .iter()
                .any(|c| c.name.as_str() == "retention.ms"),
            "DescribeConfigs v{v} lists retention.ms"
        );
    }

    for v in range(&mut conn, ApiKey::IncrementalAlterConfigs) {
        let config = incremental_alter_configs_request::AlterableConfig::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_config_operation(0)
            .with_value(Some(StrBytes::from_string(format!(
                "{}",
                100_000 + v as i64
            ))));
        let resource = incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("matrix-2"))
            .with_configs(vec![config]);
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
        let r = conn.request(&request, v);
        assert_eq!(r.responses[0].error_code, 0, "IncrementalAlterConfigs v{v}");
    }

    for v in range(&mut conn, ApiKey::AlterConfigs) {
        let config = alter_configs_request::AlterableConfig::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_value(Some(StrBytes::from_string(format!(
                "{}",
                200_000 + v as i64
            ))));
        let resource = alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("matrix-2"))
            .with_configs(vec![config]);
        let request = AlterConfigsRequest::default().with_resources(vec![resource]);
        let r = conn.request(&request, v);
        assert_eq!(r.responses[0].error_code, 0, "AlterConfigs v{v}");
        assert_eq!(r.responses[0].error_message, None, "AlterConfigs v{v}");
    }

    for v in range(&mut conn, ApiKey::CreatePartitions) {
        let t = create_partitions_request::CreatePartitionsTopic::default()
            .with_name(name(topic))
            .with_count(3 + v as i32);
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![t])
            .with_timeout_ms(5000);
        let r = conn.request(&request, v);
        assert_eq!(r.results[0].error_code, 0, "CreatePartitions v{v}");
    }

    for v in range(&mut conn, ApiKey::DeleteRecords) {
        let p = delete_records_request::DeleteRecordsPartition::default()
            .with_partition_index(0)
            .with_offset(1 + v as i64);
        let t = delete_records_request::DeleteRecordsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![p]);
        let request = DeleteRecordsRequest::default()
            .with_topics(vec![t])
            .with_timeout_ms(5000);
        let r = conn.request(&request, v);
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "DeleteRecords v{v}");
        assert_eq!(
            p.low_watermark,
            1 + v as i64,
            "DeleteRecords v{v} low watermark"
        );
    }

    for v in range(&mut conn, ApiKey::OffsetForLeaderEpoch) {
        let ask = |current_leader_epoch: i32, leader_epoch: i32| {
            offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current_leader_epoch)
                .with_leader_epoch(leader_epoch)
        };
        let partitions = vec![ask(-1, 0), ask(-1, 1), ask(5, 0)];
        let t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
            .with_topic(name(topic))
            .with_partitions(partitions);
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(if v >= 3 { -1 } else { -2 }))
            .with_topics(vec![t]);
        let r = conn.request(&request, v);
        let p = &r.topics[0].partitions;
        // Every record here was written by the single node's epoch 0.
        assert_eq!(p[0].error_code, 0, "OffsetForLeaderEpoch v{v}");
        assert!(p[0].end_offset > 0, "OffsetForLeaderEpoch v{v} end offset");
        assert_eq!(p[0].leader_epoch, 0, "OffsetForLeaderEpoch v{v} epoch");
        assert_eq!(
            (p[1].error_code, p[1].end_offset),
            (0, -1),
            "OffsetForLeaderEpoch v{v}: an epoch newer than any is undefined"
        );
        assert_eq!(
            p[2].error_code, 75,
            "OffsetForLeaderEpoch v{v}: a newer current epoch is UNKNOWN_LEADER_EPOCH"
        );
    }

    let mut last_producer_id = -1;
    for v in range(&mut conn, ApiKey::InitProducerId) {
        let idempotent = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000);
        let r = conn.request(&idempotent, v);
        assert_eq!(r.error_code, 0, "InitProducerId v{v}");
        assert_eq!(r.producer_epoch, 0, "InitProducerId v{v} epoch");
        assert!(
            r.producer_id.0 > last_producer_id,
            "InitProducerId v{v} gives a new id"
        );
        last_producer_id = r.producer_id.0;
        let transactional = idempotent
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))));
        let r = conn.request(&transactional, v);
        assert_eq!(
            r.error_code, 15,
            "InitProducerId v{v} with a transactional id"
        );
    }

    for v in range(&mut conn, ApiKey::DescribeCluster) {
        let r = conn.request(&DescribeClusterRequest::default(), v);
        assert_eq!(r.error_code, 0, "DescribeCluster v{v}");
        assert_eq!(r.brokers.len(), 1, "DescribeCluster v{v}");
    }

    for v in range(&mut conn, ApiKey::DeleteTopics) {
        let victim = format!("matrix-{}", v + 1);
        let request = if v >= 6 {
            let state =
                delete_topics_request::DeleteTopicState::default().with_name(Some(name(&victim)));
            DeleteTopicsRequest::default().with_topics(vec![state])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![name(&victim)])
        }
        .with_timeout_ms(5000);
        let r = conn.request(&request, v);
        assert_eq!(
            r.responses[0].error_code, 0,
            "DeleteTopics v{v} of {victim}"
        );
    }

    for v in range(&mut conn, ApiKey::ApiVersions) {
        let mut request = ApiVersionsRequest::default();
        if v >= 3 {
            request.client_software_name = StrBytes::from_static_str("matrix");
            request.client_software_version = StrBytes::from_static_str("1");
        }
        let r = conn.request(&request, v);
        assert_eq!(r.error_code, 0, "ApiVersions v{v}");
    }
}

/// The error message of a FindCoordinator answer at `version` for a group,
/// once the coordinator is there (the first asks may be answered
/// COORDINATOR_NOT_AVAILABLE while `__consumer_offsets` is created).
fn find_coordinator_message(conn: &mut RawConn, version: i16) -> Option<String> {
    let group = StrBytes::from_static_str("messages-group");
    let request = if version >= 4 {
        FindCoordinatorRequest::default().with_coordinator_keys(vec![group])
    } else {
        FindCoordinatorRequest::default().with_key(group)
    };
    common::wait_until(common::CLIENT_TIMEOUT, "a group coordinator", || {
        let r = conn.request(&request, version);
        let (code, message) = match r.coordinators.first() {
            Some(c) => (c.error_code, c.error_message.clone()),
            None => (r.error_code, r.error_message.clone()),
        };
        (code == 0).then(|| message.map(|m| m.to_string()))
    })
}

#[test]
fn error_messages_are_what_kafka_4_sends() {
    // As Kafka 4.4 answers on the wire: null when there is no error in
    // CreateTopics and IncrementalAlterConfigs; FindCoordinator fills its
    // v1-v3 message from Errors.message() ("NONE" without an error) and
    // leaves v4's empty.
    let broker = Broker::start();
    let mut conn = RawConn::connect(&broker);
    for v in range(&mut conn, ApiKey::CreateTopics) {
        let topic = format!("messages-{v}");
        let r = conn.request(&create_topic_request(&topic), v);
        assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{v}");
        assert_eq!(r.topics[0].error_message, None, "CreateTopics v{v}");
        let again = conn.request(&create_topic_request(&topic), v);
        assert!(
            again.topics[0]
                .error_message
                .as_ref()
                .is_some_and(|m| !m.is_empty()),
            "CreateTopics v{v} of an existing topic: {:?}",
            again.topics[0].error_message
        );
    }
    for v in range(&mut conn, ApiKey::IncrementalAlterConfigs) {
        let alter = |value: &str| {
            let config = incremental_alter_configs_request::AlterableConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_string(value.to_string())));
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("messages-2"))
                    .with_configs(vec![config]),
            ])
        };
        let r = conn.request(&alter("86400000"), v);
        assert_eq!(r.responses[0].error_code, 0, "IncrementalAlterConfigs v{v}");
        assert_eq!(
            r.responses[0].error_message, None,
            "IncrementalAlterConfigs v{v}"
        );
        let bad = conn.request(&alter("soon"), v);
        assert_eq!(bad.responses[0].error_code, 40, "INVALID_CONFIG");
        assert!(bad.responses[0].error_message.is_some());
    }
    for v in 1..=3 {
        assert_eq!(
            find_coordinator_message(&mut conn, v).as_deref(),
            Some("NONE"),
            "FindCoordinator v{v}"
        );
    }
    assert_eq!(
        find_coordinator_message(&mut conn, 4).as_deref(),
        Some(""),
        "FindCoordinator v4"
    );
    // An error's message is Kafka's default one for its code.
    let transactions = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_static_str("a-transactional-id"))
        .with_key_type(1);
    let r = conn.request(&transactions, 3);
    assert_eq!(r.error_code, 15, "COORDINATOR_NOT_AVAILABLE");
    assert_eq!(
        r.error_message.as_deref(),
        Some("The coordinator is not available.")
    );
}
