//! The Kafka API handlers: from a decoded request to its response.
//!
//! A request is handled on the shard whose connection received it (the
//! coordinating shard). Work on partitions is split by owning shard and sent
//! there as one job per shard (`Shard::run_on`), then gathered back in request
//! order. Typed errors from storage and metadata become Kafka error codes
//! here, at the protocol boundary.
mod admin;
pub mod budget;
mod cluster;
mod configs;
mod fetch;
mod group_offsets;
mod groups;
mod offsets;
mod produce;
mod producer_id;

use crate::metadata::MetadataError;
use crate::protocol::api;
use crate::protocol::frame::{encode_response, encode_response_parts, Frame, FrameError};
use crate::protocol::ResponseError;
use crate::shard::Shard;
use crate::storage::StorageError;
use bytes::BytesMut;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use std::rc::Rc;
use thiserror::Error;

/// Why a connection must be closed instead of answered, as Apache Kafka
/// closes it.
#[derive(Debug, Error)]
pub enum RequestError {
    #[error("frame too short for a request header ({0} bytes)")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("unsupported version {version} of {api:?}")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("malformed {api:?} v{version} request: {message}")]
    Malformed {
        api: ApiKey,
        version: i16,
        message: String,
    },
    #[error(transparent)]
    Encode(#[from] FrameError),
}

/// The request header fields handlers may need.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: String,
    /// The peer's address as Kafka shows it ("/127.0.0.1").
    pub client_host: Rc<str>,
    /// What the connection may still hold in answers (Fetch reserves from it).
    pub budget: Rc<budget::ConnectionBudget>,
}

/// Decodes one request frame, runs its handler and encodes the answer.
/// `Ok(None)` means no answer is due (Produce with acks=0).
pub async fn handle_frame(
    shard: Rc<Shard>,
    frame: BytesMut,
    client_host: Rc<str>,
    budget: Rc<budget::ConnectionBudget>,
) -> Result<Option<Frame>, RequestError> {
    let mut buf = frame.freeze();
    if buf.len() < 8 {
        return Err(RequestError::TooShort(buf.len()));
    }
    let raw_key = i16::from_be_bytes([buf[0], buf[1]]);
    let version = i16::from_be_bytes([buf[2], buf[3]]);
    let correlation_id = i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| RequestError::UnknownApi(raw_key))?;
    if !api::is_supported(api_key, version) {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: answer in v0 with the error and our ranges, so the
            // client can retry with a version we know.
            let body = cluster::api_versions(ResponseError::UnsupportedVersion.code());
            return Ok(Some(
                encode_response(api_key, 0, correlation_id, &body)?.into(),
            ));
        }
        return Err(RequestError::UnsupportedVersion {
            api: api_key,
            version,
        });
    }
    let malformed = |e: anyhow::Error| RequestError::Malformed {
        api: api_key,
        version,
        message: e.to_string(),
    };
    let header = RequestHeader::decode(&mut buf, api_key.request_header_version(version))
        .map_err(malformed)?;
    let ctx = RequestContext {
        api_key,
        version,
        correlation_id,
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        client_host,
        budget,
    };
    // Bytes after a request body are ignored, as Apache Kafka ignores them
    // (librdkafka 2.12 sends three after an all-topics Metadata v12).
    macro_rules! answer {
        ($request:ty, $handler:expr) => {{
            let request = <$request>::decode(&mut buf, version).map_err(malformed)?;
            let response = $handler(&shard, request, &ctx).await;
            Ok(Some(
                encode_response(api_key, version, correlation_id, &response)?.into(),
            ))
        }};
    }
    match api_key {
        ApiKey::Produce => {
            let request = ProduceRequest::decode(&mut buf, version).map_err(malformed)?;
            match produce::handle(&shard, request, &ctx).await {
                Some(response) => Ok(Some(
                    encode_response(api_key, version, correlation_id, &response)?.into(),
                )),
                None => Ok(None),
            }
        }
        ApiKey::Fetch => {
            let request = FetchRequest::decode(&mut buf, version).map_err(malformed)?;
            let response = fetch::handle(&shard, request, &ctx).await;
            // Record sets go to the socket as they are, not copied into the frame.
            let records = response
                .responses
                .iter()
                .flat_map(|t| t.partitions.iter())
                .filter_map(|p| p.records.clone());
            Ok(Some(encode_response_parts(
                api_key,
                version,
                correlation_id,
                &response,
                records,
            )?))
        }
        ApiKey::ListOffsets => answer!(ListOffsetsRequest, offsets::list_offsets),
        ApiKey::DeleteRecords => answer!(DeleteRecordsRequest, offsets::delete_records),
        ApiKey::OffsetForLeaderEpoch => {
            answer!(
                OffsetForLeaderEpochRequest,
                offsets::offset_for_leader_epoch
            )
        }
        ApiKey::Metadata => answer!(MetadataRequest, cluster::metadata),
        ApiKey::ApiVersions => {
            // The body is only the client's name and version: nothing to act on.
            let response = cluster::api_versions(0);
            Ok(Some(
                encode_response(api_key, version, correlation_id, &response)?.into(),
            ))
        }
        ApiKey::DescribeCluster => answer!(DescribeClusterRequest, cluster::describe_cluster),
        ApiKey::InitProducerId => answer!(InitProducerIdRequest, producer_id::init_producer_id),
        ApiKey::CreateTopics => answer!(CreateTopicsRequest, admin::create_topics),
        ApiKey::DeleteTopics => answer!(DeleteTopicsRequest, admin::delete_topics),
        ApiKey::CreatePartitions => answer!(CreatePartitionsRequest, admin::create_partitions),
        ApiKey::DescribeConfigs => answer!(DescribeConfigsRequest, configs::describe_configs),
        ApiKey::IncrementalAlterConfigs => {
            answer!(
                IncrementalAlterConfigsRequest,
                configs::incremental_alter_configs
            )
        }
        ApiKey::FindCoordinator => answer!(FindCoordinatorRequest, groups::find_coordinator),
        ApiKey::JoinGroup => answer!(JoinGroupRequest, groups::join_group),
        ApiKey::SyncGroup => answer!(SyncGroupRequest, groups::sync_group),
        ApiKey::Heartbeat => answer!(HeartbeatRequest, groups::heartbeat),
        ApiKey::LeaveGroup => answer!(LeaveGroupRequest, groups::leave_group),
        ApiKey::DescribeGroups => answer!(DescribeGroupsRequest, groups::describe_groups),
        ApiKey::ListGroups => answer!(ListGroupsRequest, groups::list_groups),
        ApiKey::DeleteGroups => answer!(DeleteGroupsRequest, groups::delete_groups),
        ApiKey::OffsetCommit => answer!(OffsetCommitRequest, group_offsets::offset_commit),
        ApiKey::OffsetFetch => answer!(OffsetFetchRequest, group_offsets::offset_fetch),
        ApiKey::OffsetDelete => answer!(OffsetDeleteRequest, group_offsets::offset_delete),
        other => Err(RequestError::UnsupportedVersion {
            api: other,
            version,
        }),
    }
}

/// The Kafka error code of a storage error.
pub fn storage_error_code(e: &StorageError) -> i16 {
    match e {
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        StorageError::Deleted => ResponseError::UnknownTopicOrPartition.code(),
        StorageError::Io { .. } | StorageError::Offline | StorageError::DiskFull { .. } => {
            ResponseError::KafkaStorageError.code()
        }
        StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber.code(),
        StorageError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch.code(),
        // Only a follower's own fetcher appends replicated batches.
        StorageError::NonContiguousReplica { .. } => ResponseError::UnknownServerError.code(),
    }
}

/// The Kafka error code of a metadata error.
pub fn metadata_error_code(e: &MetadataError) -> i16 {
    match e {
        MetadataError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists.code(),
        MetadataError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition.code(),
        MetadataError::InvalidTopic(..) => ResponseError::InvalidTopicException.code(),
        // Kafka's ReplicaManager refuses client writes to internal topics
        // with INVALID_TOPIC_EXCEPTION; deletion and creation answer the same.
        MetadataError::InternalTopic(_) => ResponseError::InvalidTopicException.code(),
        MetadataError::InvalidPartitions(_) => ResponseError::InvalidPartitions.code(),
        MetadataError::InvalidReplicationFactor(_) => {
            ResponseError::InvalidReplicationFactor.code()
        }
        MetadataError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
        MetadataError::Persist { .. } | MetadataError::Corrupt { .. } | MetadataError::DiskFull => {
            ResponseError::KafkaStorageError.code()
        }
        // Kafka's ProducerIdManager fails with a plain KafkaException here.
        MetadataError::ProducerIdsExhausted => ResponseError::UnknownServerError.code(),
        // Kafka answers REQUEST_TIMED_OUT when the controller does not.
        MetadataError::Controller(_) => ResponseError::RequestTimedOut.code(),
    }
}

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub(crate) fn topic_name(s: impl Into<String>) -> TopicName {
    TopicName(str_bytes(s))
}

/// Makes sure this shard has opened its log of a partition the registry
/// knows (it may have been created by another shard a moment ago).
/// In a cluster, only for a partition this broker is a replica of: a
/// request about another one gets NOT_LEADER_OR_FOLLOWER and leaves no
/// empty log behind.
pub(crate) async fn owned_log(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
) -> Result<Rc<crate::storage::PartitionLog>, i16> {
    if let Some(log) = shard.log(topic, partition) {
        return Ok(log);
    }
    let replication = &shard.replication;
    if replication.in_cluster() && replication.role_of(topic, partition).is_none() {
        let known = shard.metadata.topic(topic).is_some();
        return Err(if known {
            ResponseError::NotLeaderOrFollower.code()
        } else {
            ResponseError::UnknownTopicOrPartition.code()
        });
    }
    open_log(shard, topic, partition).await
}

/// Opens (creating if needed) this shard's log of a partition the registry
/// knows.
pub(crate) async fn open_log(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
) -> Result<Rc<crate::storage::PartitionLog>, i16> {
    if let Some(log) = shard.log(topic, partition) {
        return Ok(log);
    }
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    let meta = shard.metadata.topic(topic).ok_or(unknown)?;
    if partition < 0 || partition >= meta.partitions {
        return Err(unknown);
    }
    shard
        .open_partitions(topic, partition..partition + 1)
        .await
        .map_err(|e| storage_error_code(&e))?;
    shard.log(topic, partition).ok_or(unknown)
}
