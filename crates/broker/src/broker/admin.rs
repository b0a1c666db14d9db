//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions. The
//! registry changes first (on the coordinating shard), then every shard opens
//! or removes the logs it owns before the answer goes out, so a client that
//! reads the answer can use the topic at once.
use super::authz::RequestAuthorizer;
use super::{metadata_error_code, str_bytes, RequestContext};
use crate::metadata::{is_internal_topic, MetadataError, TopicMeta};
use crate::replication::cluster_admin;
use crate::shard::Shard;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::*;
use model::acl::AclOperation;
use std::collections::BTreeMap;
use std::rc::Rc;
use wire::ResponseError;

/// Creates a topic and opens its logs on their owning shards.
pub async fn create_topic(
    shard: &Rc<Shard>,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: BTreeMap<String, String>,
) -> Result<TopicMeta, MetadataError> {
    cluster_admin::create_topic(shard, name, partitions, replication_factor, configs).await
}

pub async fn create_topics(
    shard: &Rc<Shard>,
    request: CreateTopicsRequest,
    ctx: &RequestContext,
) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    // Kafka: Create on the cluster, or on the topic.
    let authorizer = RequestAuthorizer::of(shard, ctx);
    let cluster_wide = authorizer.allows_cluster(AclOperation::Create);
    let allowed: Vec<bool> = request
        .topics
        .iter()
        .map(|t| cluster_wide || authorizer.allows_topic(AclOperation::Create, &t.name.0))
        .collect();
    let permitted: Vec<_> = request
        .topics
        .iter()
        .zip(&allowed)
        .filter(|(_, allowed)| **allowed)
        .map(|(t, _)| t.clone())
        .collect();
    let mut permitted_outcomes = if !request.validate_only {
        create_in_cluster(shard, &permitted).await
    } else {
        let mut outcomes = Vec::with_capacity(permitted.len());
        for topic in &permitted {
            let name = topic.name.0.to_string();
            outcomes.push(create_one(shard, &name, topic, request.validate_only).await);
        }
        outcomes
    }
    .into_iter();
    let denied = || {
        let code = ResponseError::TopicAuthorizationFailed.code();
        Err((code, "Authorization failed.".to_string()))
    };
    let outcomes: Vec<_> = allowed
        .iter()
        .map(|allowed| match allowed {
            true => permitted_outcomes.next().unwrap_or_else(denied),
            false => denied(),
        })
        .collect();
    for (topic, outcome) in request.topics.into_iter().zip(outcomes) {
        // Kafka sends a null error message when there is no error.
        let mut result = CreatableTopicResult::default()
            .with_name(topic.name.clone())
            .with_error_message(None)
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        match outcome {
            // Each field exists from the version noted; the codec refuses it before.
            Ok(meta) if ctx.version >= 5 => {
                result.num_partitions = meta.partitions;
                result.replication_factor = replication_factor_of(shard, &meta.name);
                result.configs = Some(created_configs(shard, &meta));
                if ctx.version >= 7 {
                    result.topic_id = meta.id;
                }
            }
            Ok(_) => {}
            Err((code, message)) => {
                result.error_code = code;
                result.error_message = (ctx.version >= 1).then(|| str_bytes(message));
            }
        }
        response.topics.push(result);
    }
    response
}

/// The configs a CreateTopics (v5+) answer lists for a new topic: every
/// config with its value and source, as DescribeConfigs would show them.
fn created_configs(
    shard: &Shard,
    meta: &TopicMeta,
) -> Vec<create_topics_response::CreatableTopicConfigs> {
    let (config, _) = crate::config::TopicConfig::with_stored_overrides(
        shard.metadata.topic_defaults(),
        &meta.configs,
    );
    super::configs::created_topic_configs(&config)
}

/// The replication factor a topic got (1 until the view lists it).
fn replication_factor_of(shard: &Shard, topic: &str) -> i16 {
    shard
        .replication()
        .view()
        .and_then(|v| v.partition(topic, 0).map(|p| p.replicas.len() as i16))
        .unwrap_or(1)
}

/// Creates a request's topics in a cluster: each checked here, the valid
/// ones proposed to the controller in batches.
async fn create_in_cluster(
    shard: &Rc<Shard>,
    topics: &[create_topics_request::CreatableTopic],
) -> Vec<Result<TopicMeta, (i16, String)>> {
    let fail = |e: MetadataError| (metadata_error_code(&e), e.to_string());
    let mut outcomes: Vec<Option<Result<TopicMeta, (i16, String)>>> = Vec::new();
    let mut ready = Vec::new();
    let mut slots = Vec::new();
    for topic in topics {
        match prepare_in_cluster(shard, topic) {
            Ok(spec) => {
                slots.push(outcomes.len());
                ready.push(spec);
                outcomes.push(None);
            }
            Err(e) => outcomes.push(Some(Err(e))),
        }
    }
    let created = cluster_admin::create_topics(shard, &ready).await;
    for (slot, result) in slots.into_iter().zip(created) {
        outcomes[slot] = Some(result.map_err(fail));
    }
    let missing = || Err(fail(MetadataError::Controller("no answer".to_string())));
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(missing))
        .collect()
}

/// The checks of `create_one` before anything is proposed.
fn prepare_in_cluster(
    shard: &Rc<Shard>,
    topic: &create_topics_request::CreatableTopic,
) -> Result<cluster_admin::NewTopic, (i16, String)> {
    let fail = |e: MetadataError| (metadata_error_code(&e), e.to_string());
    let name = topic.name.0.to_string();
    if is_internal_topic(&name) {
        return Err(fail(MetadataError::InternalTopic(name)));
    }
    let partitions = partition_count(shard, topic)?;
    let configs = requested_configs(topic);
    cluster_admin::prepare_topic(shard, &name, partitions, topic.replication_factor, &configs)
        .map_err(fail)
}

fn requested_configs(topic: &create_topics_request::CreatableTopic) -> BTreeMap<String, String> {
    topic
        .configs
        .iter()
        .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
        .collect()
}

async fn create_one(
    shard: &Rc<Shard>,
    name: &str,
    topic: &create_topics_request::CreatableTopic,
    validate_only: bool,
) -> Result<TopicMeta, (i16, String)> {
    let fail = |e: MetadataError| (metadata_error_code(&e), e.to_string());
    if is_internal_topic(name) {
        // The broker creates `__consumer_offsets` itself, with its own
        // partition count, which group placement depends on.
        return Err(fail(MetadataError::InternalTopic(name.to_string())));
    }
    let partitions = partition_count(shard, topic)?;
    let configs = requested_configs(topic);
    // The controller checks the replication factor against live brokers.
    if validate_only {
        let configs = shard
            .metadata
            .check_new_topic(name, partitions, &configs)
            .map_err(fail)?;
        return Ok(TopicMeta {
            name: name.to_string(),
            id: uuid::Uuid::nil(),
            partitions,
            configs,
        });
    }
    create_topic(shard, name, partitions, topic.replication_factor, configs)
        .await
        .map_err(fail)
}

/// The partition count of a CreateTopics entry: its own, the broker's
/// default (-1), or the length of a manual assignment that names only this
/// broker.
fn partition_count(
    shard: &Shard,
    topic: &create_topics_request::CreatableTopic,
) -> Result<i32, (i16, String)> {
    if topic.assignments.is_empty() {
        return Ok(if topic.num_partitions == -1 {
            shard.config.default_partitions
        } else {
            topic.num_partitions
        });
    }
    let invalid = |m: &str| {
        (
            ResponseError::InvalidReplicaAssignment.code(),
            m.to_string(),
        )
    };
    if topic.num_partitions != -1 || topic.replication_factor != -1 {
        return Err(invalid(
            "give either assignments or a partition count and replication factor",
        ));
    }
    let node = shard.config.node_id;
    let only_self = topic
        .assignments
        .iter()
        .all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == node);
    if !only_self {
        return Err(invalid("every replica must be on this broker"));
    }
    Ok(topic.assignments.len() as i32)
}

pub async fn delete_topics(
    shard: &Rc<Shard>,
    request: DeleteTopicsRequest,
    ctx: &RequestContext,
) -> DeleteTopicsResponse {
    // v6 names topics by name or by id; earlier versions by name only.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if ctx.version >= 6 {
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut response = DeleteTopicsResponse::default();
    let authorizer = RequestAuthorizer::of(shard, ctx);
    for (name, id) in targets {
        let name = name.or_else(|| shard.metadata.topic_by_id(id).map(|t| t.name));
        let mut result = DeletableTopicResult::default().with_topic_id(id);
        match name {
            None => result.error_code = ResponseError::UnknownTopicId.code(),
            Some(name) if !authorizer.allows_topic(AclOperation::Delete, &name) => {
                result.name = Some(super::topic_name(name));
                result.error_code = ResponseError::TopicAuthorizationFailed.code();
            }
            Some(name) => {
                result.name = Some(super::topic_name(name.clone()));
                match delete_topic(shard, &name).await {
                    Ok(meta) if ctx.version >= 6 => result.topic_id = meta.id,
                    Ok(_) => {}
                    Err(e) => {
                        result.error_code = metadata_error_code(&e);
                        if ctx.version >= 5 {
                            result.error_message = Some(str_bytes(e.to_string()));
                        }
                    }
                }
            }
        }
        response.responses.push(result);
    }
    response
}

/// Removes a topic from the registry, then its logs from every shard.
async fn delete_topic(shard: &Rc<Shard>, name: &str) -> Result<TopicMeta, MetadataError> {
    if is_internal_topic(name) {
        return Err(MetadataError::InternalTopic(name.to_string()));
    }
    cluster_admin::delete_topic(shard, name).await
}

pub async fn create_partitions(
    shard: &Rc<Shard>,
    request: CreatePartitionsRequest,
    ctx: &RequestContext,
) -> CreatePartitionsResponse {
    let mut response = CreatePartitionsResponse::default();
    let authorizer = RequestAuthorizer::of(shard, ctx);
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        if !authorizer.allows_topic(AclOperation::Alter, &name) {
            result.error_code = ResponseError::TopicAuthorizationFailed.code();
            result.error_message = Some(str_bytes("Authorization failed."));
            response.results.push(result);
            continue;
        }
        let assignment_ok = topic.assignments.as_ref().is_none_or(|a| {
            a.iter()
                .all(|x| x.broker_ids.len() == 1 && x.broker_ids[0].0 == shard.config.node_id)
        });
        if !assignment_ok {
            result.error_code = ResponseError::InvalidReplicaAssignment.code();
            result.error_message = Some(str_bytes("every replica must be on this broker"));
        } else {
            match grow_topic(shard, &name, topic.count, request.validate_only).await {
                Ok(()) => {}
                Err(e) => {
                    result.error_code = metadata_error_code(&e);
                    result.error_message = Some(str_bytes(e.to_string()));
                }
            }
        }
        response.results.push(result);
    }
    response
}

async fn grow_topic(
    shard: &Rc<Shard>,
    name: &str,
    total: i32,
    validate_only: bool,
) -> Result<(), MetadataError> {
    shard.metadata.check_partition_count(name, total)?;
    if validate_only {
        return Ok(());
    }
    cluster_admin::grow_topic(shard, name, total).await
}
