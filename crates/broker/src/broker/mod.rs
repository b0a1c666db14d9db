//! The Kafka API handlers: from a decoded request to its response.
//!
//! A request is handled on the shard whose connection received it (the
//! coordinating shard). Work on partitions is split by owning shard and sent
//! there as one job per shard (`Shard::run_on`), then gathered back in request
//! order. Typed errors from storage and metadata become Kafka error codes
//! here, at the protocol boundary.
mod acls;
mod admin;
pub mod authz;
pub mod budget;
mod cluster;
mod configs;
mod fetch;
mod group_offsets;
mod groups;
mod offsets;
mod produce;
mod producer_id;
mod proposals;
pub mod scram_users;

pub use cluster::api_versions as api_versions_response;

pub use crate::error_codes::{metadata_error_code, replication_error_code, storage_error_code};
use crate::security::Session;
use crate::shard::{OpenLogError, Shard};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use std::rc::Rc;
use thiserror::Error;
use wire::api;
use wire::frame::{encode_response, encode_response_parts, Frame, FrameError};
use wire::ResponseError;

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
    /// Who sent it, on which listener.
    pub session: Rc<Session>,
    /// What the connection may still hold in answers (Fetch reserves from it).
    pub budget: Rc<budget::ConnectionBudget>,
}

/// The typed body of a request the broker serves, one variant per API of
/// `protocol::api::SUPPORTED_APIS`.
#[derive(Debug)]
pub enum RequestBody {
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    DeleteRecords(DeleteRecordsRequest),
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest),
    Metadata(MetadataRequest),
    /// The body is only the client's name and version: nothing to act on.
    ApiVersions,
    DescribeCluster(DescribeClusterRequest),
    InitProducerId(InitProducerIdRequest),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    CreatePartitions(CreatePartitionsRequest),
    DescribeConfigs(DescribeConfigsRequest),
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    AlterConfigs(AlterConfigsRequest),
    FindCoordinator(FindCoordinatorRequest),
    JoinGroup(JoinGroupRequest),
    SyncGroup(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    DescribeGroups(DescribeGroupsRequest),
    ListGroups(ListGroupsRequest),
    DeleteGroups(DeleteGroupsRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    OffsetDelete(OffsetDeleteRequest),
    SaslHandshake(SaslHandshakeRequest),
    SaslAuthenticate(SaslAuthenticateRequest),
    DescribeUserScramCredentials(DescribeUserScramCredentialsRequest),
    AlterUserScramCredentials(AlterUserScramCredentialsRequest),
    CreateAcls(CreateAclsRequest),
    DescribeAcls(DescribeAclsRequest),
    DeleteAcls(DeleteAclsRequest),
}

/// A request frame as decoded, before any handler runs. Moved once, into
/// its handler: boxing the large variant would cost an allocation a request.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum DecodedRequest {
    /// An ApiVersions request of a version we do not know: answered in v0
    /// with the error and our ranges (KIP-511), without decoding further.
    UnsupportedApiVersions { correlation_id: i32 },
    Request {
        api_key: ApiKey,
        version: i16,
        header: RequestHeader,
        body: RequestBody,
    },
}

/// Decodes one request frame: the header, then the body with the
/// `kafka-protocol` decoder of its API and version. Pure (no shard), so the
/// fuzz target `request` drives exactly this. Sizes read off the wire are
/// not trusted by the codec; the process's allocator (`alloc_guard`) keeps
/// a huge claimed array from aborting it.
pub fn decode_request(mut buf: Bytes) -> Result<DecodedRequest, RequestError> {
    if buf.len() < 8 {
        return Err(RequestError::TooShort(buf.len()));
    }
    let raw_key = i16::from_be_bytes([buf[0], buf[1]]);
    let version = i16::from_be_bytes([buf[2], buf[3]]);
    let correlation_id = i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| RequestError::UnknownApi(raw_key))?;
    if !api::is_supported(api_key, version) {
        if api_key == ApiKey::ApiVersions {
            return Ok(DecodedRequest::UnsupportedApiVersions { correlation_id });
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
    // Bytes after a request body are ignored, as Apache Kafka ignores them
    // (librdkafka 2.12 sends three after an all-topics Metadata v12).
    macro_rules! decode {
        ($variant:ident, $request:ty) => {
            RequestBody::$variant(<$request>::decode(&mut buf, version).map_err(malformed)?)
        };
    }
    let body = match api_key {
        ApiKey::Produce => decode!(Produce, ProduceRequest),
        ApiKey::Fetch => decode!(Fetch, FetchRequest),
        ApiKey::ListOffsets => decode!(ListOffsets, ListOffsetsRequest),
        ApiKey::DeleteRecords => decode!(DeleteRecords, DeleteRecordsRequest),
        ApiKey::OffsetForLeaderEpoch => decode!(OffsetForLeaderEpoch, OffsetForLeaderEpochRequest),
        ApiKey::Metadata => decode!(Metadata, MetadataRequest),
        ApiKey::ApiVersions => RequestBody::ApiVersions,
        ApiKey::DescribeCluster => decode!(DescribeCluster, DescribeClusterRequest),
        ApiKey::InitProducerId => decode!(InitProducerId, InitProducerIdRequest),
        ApiKey::CreateTopics => decode!(CreateTopics, CreateTopicsRequest),
        ApiKey::DeleteTopics => decode!(DeleteTopics, DeleteTopicsRequest),
        ApiKey::CreatePartitions => decode!(CreatePartitions, CreatePartitionsRequest),
        ApiKey::DescribeConfigs => decode!(DescribeConfigs, DescribeConfigsRequest),
        ApiKey::IncrementalAlterConfigs => {
            decode!(IncrementalAlterConfigs, IncrementalAlterConfigsRequest)
        }
        ApiKey::AlterConfigs => decode!(AlterConfigs, AlterConfigsRequest),
        ApiKey::FindCoordinator => decode!(FindCoordinator, FindCoordinatorRequest),
        ApiKey::JoinGroup => decode!(JoinGroup, JoinGroupRequest),
        ApiKey::SyncGroup => decode!(SyncGroup, SyncGroupRequest),
        ApiKey::Heartbeat => decode!(Heartbeat, HeartbeatRequest),
        ApiKey::LeaveGroup => decode!(LeaveGroup, LeaveGroupRequest),
        ApiKey::DescribeGroups => decode!(DescribeGroups, DescribeGroupsRequest),
        ApiKey::ListGroups => decode!(ListGroups, ListGroupsRequest),
        ApiKey::DeleteGroups => decode!(DeleteGroups, DeleteGroupsRequest),
        ApiKey::OffsetCommit => decode!(OffsetCommit, OffsetCommitRequest),
        ApiKey::OffsetFetch => decode!(OffsetFetch, OffsetFetchRequest),
        ApiKey::OffsetDelete => decode!(OffsetDelete, OffsetDeleteRequest),
        ApiKey::SaslHandshake => decode!(SaslHandshake, SaslHandshakeRequest),
        ApiKey::SaslAuthenticate => decode!(SaslAuthenticate, SaslAuthenticateRequest),
        ApiKey::DescribeUserScramCredentials => {
            decode!(
                DescribeUserScramCredentials,
                DescribeUserScramCredentialsRequest
            )
        }
        ApiKey::AlterUserScramCredentials => {
            decode!(AlterUserScramCredentials, AlterUserScramCredentialsRequest)
        }
        ApiKey::CreateAcls => decode!(CreateAcls, CreateAclsRequest),
        ApiKey::DescribeAcls => decode!(DescribeAcls, DescribeAclsRequest),
        ApiKey::DeleteAcls => decode!(DeleteAcls, DeleteAclsRequest),
        other => {
            return Err(RequestError::UnsupportedVersion {
                api: other,
                version,
            })
        }
    };
    Ok(DecodedRequest::Request {
        api_key,
        version,
        header,
        body,
    })
}

/// Decodes one request frame, runs its handler and encodes the answer.
/// `Ok(None)` means no answer is due (Produce with acks=0).
pub async fn handle_frame(
    shard: Rc<Shard>,
    frame: BytesMut,
    session: Rc<Session>,
    budget: Rc<budget::ConnectionBudget>,
) -> Result<Option<Frame>, RequestError> {
    let (api_key, version, header, body) = match decode_request(frame.freeze())? {
        DecodedRequest::UnsupportedApiVersions { correlation_id } => {
            let body = cluster::api_versions(ResponseError::UnsupportedVersion.code());
            return Ok(Some(
                encode_response(ApiKey::ApiVersions, 0, correlation_id, &body)?.into(),
            ));
        }
        DecodedRequest::Request {
            api_key,
            version,
            header,
            body,
        } => (api_key, version, header, body),
    };
    let correlation_id = header.correlation_id;
    let ctx = RequestContext {
        api_key,
        version,
        correlation_id,
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        client_host: session.client_host.clone(),
        session,
        budget,
    };
    macro_rules! answer {
        ($request:expr, $handler:expr) => {{
            let response = $handler(&shard, $request, &ctx).await;
            Ok(Some(
                encode_response(api_key, version, correlation_id, &response)?.into(),
            ))
        }};
    }
    use RequestBody as B;
    match body {
        B::Produce(request) => match produce::handle(&shard, request, &ctx).await {
            Some(response) => Ok(Some(
                encode_response(api_key, version, correlation_id, &response)?.into(),
            )),
            None => Ok(None),
        },
        B::Fetch(request) => {
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
        B::ListOffsets(r) => answer!(r, offsets::list_offsets),
        B::DeleteRecords(r) => answer!(r, offsets::delete_records),
        B::OffsetForLeaderEpoch(r) => answer!(r, offsets::offset_for_leader_epoch),
        B::Metadata(r) => answer!(r, cluster::metadata),
        B::ApiVersions => {
            let response = cluster::api_versions(0);
            Ok(Some(
                encode_response(api_key, version, correlation_id, &response)?.into(),
            ))
        }
        B::DescribeCluster(r) => answer!(r, cluster::describe_cluster),
        B::InitProducerId(r) => answer!(r, producer_id::init_producer_id),
        B::CreateTopics(r) => answer!(r, admin::create_topics),
        B::DeleteTopics(r) => answer!(r, admin::delete_topics),
        B::CreatePartitions(r) => answer!(r, admin::create_partitions),
        B::DescribeConfigs(r) => answer!(r, configs::describe_configs),
        B::IncrementalAlterConfigs(r) => answer!(r, configs::incremental_alter_configs),
        B::AlterConfigs(r) => answer!(r, configs::alter_configs),
        B::FindCoordinator(r) => answer!(r, groups::find_coordinator),
        B::JoinGroup(r) => answer!(r, groups::join_group),
        B::SyncGroup(r) => answer!(r, groups::sync_group),
        B::Heartbeat(r) => answer!(r, groups::heartbeat),
        B::LeaveGroup(r) => answer!(r, groups::leave_group),
        B::DescribeGroups(r) => answer!(r, groups::describe_groups),
        B::ListGroups(r) => answer!(r, groups::list_groups),
        B::DeleteGroups(r) => answer!(r, groups::delete_groups),
        B::OffsetCommit(r) => answer!(r, group_offsets::offset_commit),
        B::OffsetFetch(r) => answer!(r, group_offsets::offset_fetch),
        B::OffsetDelete(r) => answer!(r, group_offsets::offset_delete),
        B::SaslHandshake(r) => answer!(r, scram_users::sasl_handshake),
        B::SaslAuthenticate(r) => answer!(r, scram_users::sasl_authenticate),
        B::DescribeUserScramCredentials(r) => answer!(r, scram_users::describe),
        B::AlterUserScramCredentials(r) => answer!(r, scram_users::alter),
        B::CreateAcls(r) => answer!(r, acls::create_acls),
        B::DescribeAcls(r) => answer!(r, acls::describe_acls),
        B::DeleteAcls(r) => answer!(r, acls::delete_acls),
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
) -> Result<Rc<storage::PartitionLog>, i16> {
    if let Some(log) = shard.log(topic, partition) {
        return Ok(log);
    }
    let replication = &shard.replication();
    if replication.role_of(topic, partition).is_none() {
        let known = shard.metadata.topic(topic).is_some();
        return Err(if known {
            ResponseError::NotLeaderOrFollower.code()
        } else {
            ResponseError::UnknownTopicOrPartition.code()
        });
    }
    shard.open_log(topic, partition).await.map_err(|e| match e {
        OpenLogError::UnknownPartition => ResponseError::UnknownTopicOrPartition.code(),
        OpenLogError::Storage(e) => storage_error_code(&e),
    })
}
