//! ApiVersions, Metadata (with topic auto-creation) and DescribeCluster: what
//! the cluster looks like to a client, from the quorum service's latest
//! view: every live broker, and each partition's leader, epoch, replicas and
//! ISR.
use super::authz::RequestAuthorizer;
use super::{admin, metadata_error_code, str_bytes, topic_name, RequestContext};
use crate::metadata::{is_internal_topic, validate_topic_name, TopicMeta};
use crate::shard::Shard;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;
use model::acl::{AclOperation, ResourceType, AUTHORIZED_OPERATIONS_NOT_ASKED};
use quorum::model::ClusterView;
use std::rc::Rc;
use std::sync::Arc;
use wire::api::SUPPORTED_APIS;
use wire::ResponseError;

/// The leader epoch of every partition while a broker is its own cluster.
pub const SINGLE_NODE_LEADER_EPOCH: i32 = 0;

pub fn api_versions(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.min_version)
                .with_max_version(a.max_version)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

/// This broker's id and advertised address on `listener`.
fn self_endpoint(shard: &Shard, listener: &str) -> (i32, String, i32) {
    let advertised = shard.config.listeners().ok().and_then(|all| {
        all.get(listener)
            .map(|l| (l.advertised_host.clone(), l.advertised_port as i32))
    });
    let (host, port) = advertised.unwrap_or_else(|| ("127.0.0.1".to_string(), 9092));
    (shard.config.node_id, host, port)
}

/// The cluster as clients on one listener see it: its id, the brokers
/// reachable on that listener (Kafka leaves out those without it) and the
/// controller, and each partition's replicas.
struct Shape {
    cluster_id: String,
    /// (id, host, port, rack)
    brokers: Vec<(i32, String, i32, Option<String>)>,
    /// Any broker can take admin requests (they go to the quorum service);
    /// clients are told the lowest live id.
    controller_id: i32,
    view: Option<Arc<ClusterView>>,
    node_id: i32,
}

fn shape(shard: &Shard, listener: &str) -> Shape {
    let (node_id, host, port) = self_endpoint(shard, listener);
    let Some(view) = shard.replication().view() else {
        return Shape {
            cluster_id: shard.config.cluster_id.clone(),
            brokers: vec![(node_id, host, port, shard.config.rack.clone())],
            controller_id: node_id,
            view: None,
            node_id,
        };
    };
    let brokers: Vec<_> = view
        .brokers
        .values()
        .filter_map(|b| {
            let (host, port) = b.endpoint(listener)?;
            Some((b.broker_id.0, host.to_string(), port as i32, b.rack.clone()))
        })
        .collect();
    Shape {
        cluster_id: view.cluster_id.clone(),
        controller_id: brokers.first().map_or(-1, |b| b.0),
        brokers,
        view: Some(view),
        node_id,
    }
}

/// (leader, leader epoch, replicas, isr, offline replicas) of one partition.
fn partition_roles(
    shape: &Shape,
    topic: &str,
    partition: i32,
) -> (i32, i32, Vec<i32>, Vec<i32>, Vec<i32>) {
    let Some(view) = &shape.view else {
        let me = shape.node_id;
        return (me, SINGLE_NODE_LEADER_EPOCH, vec![me], vec![me], vec![]);
    };
    match view.partition(topic, partition) {
        Some(p) => {
            let offline = p
                .replicas
                .iter()
                .copied()
                .filter(|r| !view.brokers.contains_key(r))
                .map(|r| r.0)
                .collect();
            (
                model::BrokerId::to_wire(p.leader),
                p.leader_epoch.0,
                p.replicas.iter().map(|r| r.0).collect(),
                p.isr.iter().map(|r| r.0).collect(),
                offline,
            )
        }
        None => (-1, -1, vec![], vec![], vec![]),
    }
}

pub async fn metadata(
    shard: &Rc<Shard>,
    request: MetadataRequest,
    ctx: &RequestContext,
) -> MetadataResponse {
    let v = ctx.version;
    let shape = shape(shard, &ctx.session.listener);
    let brokers = shape
        .brokers
        .iter()
        .map(|(id, host, port, rack)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(*id))
                .with_host(str_bytes(host.clone()))
                .with_port(*port)
                .with_rack(rack.clone().filter(|_| v >= 1).map(str_bytes))
        })
        .collect();
    // Each field exists from the version noted; the codec refuses it before.
    let mut response = MetadataResponse::default()
        .with_cluster_id((v >= 2).then(|| str_bytes(shape.cluster_id.clone())))
        .with_controller_id(BrokerId(if v >= 1 { shape.controller_id } else { -1 }))
        .with_brokers(brokers);
    // v0 asks for every topic with an empty list; later versions with null.
    let all_topics = match &request.topics {
        None => true,
        Some(list) => list.is_empty() && ctx.version == 0,
    };
    // Kafka: all topics lists those the principal may Describe; a named
    // one it may not is TOPIC_AUTHORIZATION_FAILED, and auto-creation also
    // needs Create on the cluster or the topic.
    let authorizer = RequestAuthorizer::of(shard, ctx);
    // KIP-430: from v8, and the cluster's field only up to v10 (DescribeCluster
    // answers it after).
    if (8..=10).contains(&v) && request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = authorizer.cluster_authorized_operations();
    }
    let include_topic_operations = v >= 8 && request.include_topic_authorized_operations;
    response.topics = if all_topics {
        shard
            .metadata
            .topics()
            .iter()
            .filter(|topic| authorizer.allows_topic(AclOperation::Describe, &topic.name))
            .map(|topic| describe_topic(topic, &shape, v))
            .collect()
    } else {
        requested_topics(shard, request, &shape, &authorizer, ctx).await
    };
    if include_topic_operations {
        fill_topic_authorized_operations(&mut response.topics, &authorizer);
    }
    response
}

/// The topics a Metadata request names, each described, refused or
/// auto-created as Kafka answers.
async fn requested_topics(
    shard: &Rc<Shard>,
    request: MetadataRequest,
    shape: &Shape,
    authorizer: &RequestAuthorizer,
    ctx: &RequestContext,
) -> Vec<MetadataResponseTopic> {
    let v = ctx.version;
    let describable = |name: &str| authorizer.allows_topic(AclOperation::Describe, name);
    let mut topics = Vec::new();
    let refused = |name: &str| {
        MetadataResponseTopic::default()
            .with_name(Some(topic_name(name)))
            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
    };
    // Before v4 there is no flag and the broker's setting decides.
    let may_create =
        shard.config.auto_create_topics && (ctx.version < 4 || request.allow_auto_topic_creation);
    for requested in request.topics.unwrap_or_default() {
        // From v10 a topic may be asked for by id; the Java client then sends
        // an empty name, not a null one. As Kafka does, a non-zero id wins.
        let by_name = if requested.topic_id.is_nil() {
            requested.name.as_ref().map(|n| n.0.to_string())
        } else {
            None
        };
        let found = match &by_name {
            Some(name) => shard.metadata.topic(name),
            None => shard.metadata.topic_by_id(requested.topic_id),
        };
        let entry = match (found, by_name) {
            (Some(topic), _) if !describable(&topic.name) => refused(&topic.name),
            (Some(topic), _) => describe_topic(&topic, shape, v),
            (None, Some(name)) if !describable(&name) => refused(&name),
            // Kafka: a topic that would be auto-created but may not be is
            // TOPIC_AUTHORIZATION_FAILED, not unknown.
            (None, Some(name))
                if may_create
                    && !authorizer.allows_cluster(AclOperation::Create)
                    && !authorizer.allows_topic(AclOperation::Create, &name) =>
            {
                refused(&name)
            }
            (None, Some(name)) => auto_create(shard, &name, may_create, ctx).await,
            (None, None) => MetadataResponseTopic::default()
                .with_topic_id(requested.topic_id)
                .with_error_code(ResponseError::UnknownTopicId.code()),
        };
        topics.push(entry);
    }
    topics
}

/// Sets each listed topic's authorized operations (KIP-430). As in Kafka,
/// the topics refused (TOPIC_AUTHORIZATION_FAILED) and the unknown ids keep
/// the field's default: their operations are not disclosed.
fn fill_topic_authorized_operations(
    topics: &mut [MetadataResponseTopic],
    authorizer: &RequestAuthorizer,
) {
    let withheld = [
        ResponseError::TopicAuthorizationFailed.code(),
        ResponseError::UnknownTopicId.code(),
    ];
    for topic in topics {
        let Some(name) = &topic.name else { continue };
        if withheld.contains(&topic.error_code) {
            continue;
        }
        topic.topic_authorized_operations =
            authorizer.authorized_operations(ResourceType::Topic, name.0.as_str());
    }
}

async fn auto_create(
    shard: &Rc<Shard>,
    name: &str,
    may_create: bool,
    ctx: &RequestContext,
) -> MetadataResponseTopic {
    let v = ctx.version;
    let failed = |code| {
        MetadataResponseTopic::default()
            .with_name(Some(topic_name(name)))
            .with_error_code(code)
    };
    if validate_topic_name(name).is_err() {
        return failed(ResponseError::InvalidTopicException.code());
    }
    // Internal topics are created by the broker with their own settings
    // (`__consumer_offsets` by the first FindCoordinator), never by a
    // Metadata request with `num.partitions`.
    if !may_create || is_internal_topic(name) {
        return failed(ResponseError::UnknownTopicOrPartition.code());
    }
    let partitions = shard.config.default_partitions;
    match admin::create_topic(shard, name, partitions, -1, Default::default()).await {
        Ok(topic) => describe_topic(&topic, &shape(shard, &ctx.session.listener), v),
        Err(crate::metadata::MetadataError::TopicAlreadyExists(_)) => {
            match shard.metadata.topic(name) {
                Some(topic) => describe_topic(&topic, &shape(shard, &ctx.session.listener), v),
                None => failed(ResponseError::LeaderNotAvailable.code()),
            }
        }
        Err(e) => failed(metadata_error_code(&e)),
    }
}

fn describe_topic(topic: &TopicMeta, shape: &Shape, v: i16) -> MetadataResponseTopic {
    let ids = |ids: Vec<i32>| ids.into_iter().map(BrokerId).collect::<Vec<_>>();
    let partitions = (0..topic.partitions)
        .map(|p| {
            let (leader, epoch, replicas, isr, offline) = partition_roles(shape, &topic.name, p);
            let error = if leader < 0 {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(p)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(if v >= 7 { epoch } else { -1 })
                .with_replica_nodes(ids(replicas))
                .with_isr_nodes(ids(isr))
                .with_offline_replicas(if v >= 5 { ids(offline) } else { vec![] })
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(topic.name.clone())))
        .with_topic_id(if v >= 10 { topic.id } else { uuid::Uuid::nil() })
        .with_is_internal(v >= 1 && is_internal_topic(&topic.name))
        .with_partitions(partitions)
}

pub async fn describe_cluster(
    shard: &Rc<Shard>,
    request: DescribeClusterRequest,
    ctx: &RequestContext,
) -> DescribeClusterResponse {
    let cluster_authorized_operations = if request.include_cluster_authorized_operations {
        RequestAuthorizer::of(shard, ctx).cluster_authorized_operations()
    } else {
        AUTHORIZED_OPERATIONS_NOT_ASKED
    };
    let shape = shape(shard, &ctx.session.listener);
    let brokers = shape
        .brokers
        .iter()
        .map(|(id, host, port, rack)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(*id))
                .with_host(str_bytes(host.clone()))
                .with_port(*port)
                .with_rack(rack.clone().map(str_bytes))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(shape.cluster_id))
        .with_controller_id(BrokerId(shape.controller_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(cluster_authorized_operations)
}
