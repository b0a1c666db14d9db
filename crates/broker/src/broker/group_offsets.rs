//! OffsetCommit, OffsetFetch and OffsetDelete, answered by the group's
//! coordinator shard. A commit is appended to `__consumer_offsets` and
//! synced before it is answered and before OffsetFetch can see it.
use super::authz::RequestAuthorizer;
use super::groups::on_coordinator;
use super::{str_bytes, RequestContext};
use crate::group::records::{self, CommittedOffset, OffsetsRecord};
use crate::group::{append_records, offsets_partition};
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::*;
use model::acl::AclOperation;
use std::rc::Rc;
use std::time::Instant;
use wire::ResponseError;

/// Kafka's `offset.metadata.max.bytes`.
const OFFSET_METADATA_MAX_BYTES: usize = 4096;
/// The answer when this shard does not (or not yet) coordinate the group:
/// Kafka's NOT_COORDINATOR, after which clients find the coordinator again.
const COORDINATOR_GONE: i16 = ResponseError::NotCoordinator.code();

/// One partition of a commit, with the answer it gets.
#[derive(Debug, Clone)]
struct CommitItem {
    topic: String,
    partition: i32,
    offset: CommittedOffset,
    error_code: i16,
}

pub async fn offset_commit(
    shard: &Rc<Shard>,
    request: OffsetCommitRequest,
    ctx: &RequestContext,
) -> OffsetCommitResponse {
    let group_id = request.group_id.0.to_string();
    let now_ms = storage::now_ms();
    let items: Vec<CommitItem> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| CommitItem {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: CommittedOffset {
                    offset: p.committed_offset,
                    // Leader epochs arrived in v6.
                    leader_epoch: if ctx.version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    commit_timestamp_ms: now_ms,
                },
                error_code: 0,
            })
        })
        .collect();
    // Kafka: Read on the group, and Read on each topic.
    let authorizer = RequestAuthorizer::of(shard, ctx);
    let group_allowed = authorizer.allows_group(AclOperation::Read, &group_id);
    let (items, mut refused): (Vec<CommitItem>, Vec<CommitItem>) = items
        .into_iter()
        .partition(|i| group_allowed && authorizer.allows_topic(AclOperation::Read, &i.topic));
    for item in &mut refused {
        item.error_code = match group_allowed {
            true => ResponseError::TopicAuthorizationFailed.code(),
            false => ResponseError::GroupAuthorizationFailed.code(),
        };
    }
    let member_id = request.member_id.to_string();
    let generation_id = request.generation_id_or_member_epoch;
    let instance_id = request.group_instance_id.as_ref().map(|s| s.to_string());
    let gone: Vec<CommitItem> = items
        .iter()
        .cloned()
        .map(|mut i| {
            i.error_code = COORDINATOR_GONE;
            i
        })
        .collect();
    let id = group_id.clone();
    let answered = if group_allowed {
        on_coordinator(shard, &group_id, gone, move |s| async move {
            commit_on_coordinator(
                &s,
                &id,
                &member_id,
                instance_id.as_deref(),
                generation_id,
                items,
            )
            .await
        })
        .await
    } else {
        Vec::new()
    };
    let mut response = OffsetCommitResponse::default();
    for item in answered.into_iter().chain(refused) {
        let partition = OffsetCommitResponsePartition::default()
            .with_partition_index(item.partition)
            .with_error_code(item.error_code);
        match response
            .topics
            .iter_mut()
            .find(|t| t.name.0.as_str() == item.topic)
        {
            Some(t) => t.partitions.push(partition),
            None => response.topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(super::topic_name(item.topic))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    response
}

async fn commit_on_coordinator(
    shard: &Rc<Shard>,
    group_id: &str,
    member_id: &str,
    instance_id: Option<&str>,
    generation_id: i32,
    mut items: Vec<CommitItem>,
) -> Vec<CommitItem> {
    let group_error = if group_id.is_empty() {
        Err(ResponseError::InvalidGroupId.code())
    } else {
        shard
            .groups()
            .check_commit(group_id, member_id, instance_id, generation_id)
    };
    for item in &mut items {
        item.error_code = match group_error {
            Err(code) => code,
            Ok(()) => check_partition(shard, item),
        };
    }
    let entries: Vec<(Bytes, Option<Bytes>)> = items
        .iter()
        .filter(|i| i.error_code == 0)
        .map(|i| {
            (
                records::offset_key(group_id, &i.topic, i.partition),
                Some(records::offset_value(&i.offset)),
            )
        })
        .collect();
    let partition = offsets_partition(group_id, shard.config.offsets_topic_partitions);
    let written = append_records(shard, partition, entries).await;
    let now = Instant::now();
    for item in items.iter_mut().filter(|i| i.error_code == 0) {
        match written {
            Ok(()) => shard.groups().apply(
                OffsetsRecord::Offset {
                    group: group_id.to_string(),
                    topic: item.topic.clone(),
                    partition: item.partition,
                    value: Some(item.offset.clone()),
                },
                now,
            ),
            Err(code) => item.error_code = code,
        }
    }
    items
}

/// UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist, and
/// OFFSET_METADATA_TOO_LARGE for metadata over Kafka's limit.
fn check_partition(shard: &Shard, item: &CommitItem) -> i16 {
    let exists = shard
        .metadata
        .topic(&item.topic)
        .is_some_and(|t| (0..t.partitions).contains(&item.partition));
    if !exists {
        return ResponseError::UnknownTopicOrPartition.code();
    }
    if item
        .offset
        .metadata
        .as_ref()
        .is_some_and(|m| m.len() > OFFSET_METADATA_MAX_BYTES)
    {
        return ResponseError::OffsetMetadataTooLarge.code();
    }
    0
}

pub async fn offset_fetch(
    shard: &Rc<Shard>,
    request: OffsetFetchRequest,
    ctx: &RequestContext,
) -> OffsetFetchResponse {
    let v = ctx.version;
    let group_id = request.group_id.0.to_string();
    // Kafka: Describe on the group, and on each topic (a topic the
    // principal may not Describe is left out of an all-topics answer).
    let authorizer = RequestAuthorizer::of(shard, ctx);
    if !authorizer.allows_group(AclOperation::Describe, &group_id) {
        return OffsetFetchResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let describable = |topic: &str| authorizer.allows_topic(AclOperation::Describe, topic);
    let id = group_id.clone();
    let committed = on_coordinator(shard, &group_id, None, move |s| async move {
        Some(s.groups().committed(&id))
    })
    .await;
    let Some(committed) = committed else {
        return OffsetFetchResponse::default().with_error_code(COORDINATOR_GONE);
    };
    let entry = |partition: i32, c: Option<&CommittedOffset>| {
        let mut p = OffsetFetchResponsePartition::default()
            .with_partition_index(partition)
            .with_committed_offset(c.map_or(-1, |c| c.offset))
            .with_metadata(Some(str_bytes(
                c.and_then(|c| c.metadata.clone()).unwrap_or_default(),
            )));
        // Leader epochs are in the answer from v5 on.
        if v >= 5 {
            p.committed_leader_epoch = c.map_or(-1, |c| c.leader_epoch);
        }
        p
    };
    let mut response = OffsetFetchResponse::default();
    match request.topics {
        // v2 and later: null topics means every committed offset of the group.
        None => {
            for ((topic, partition), c) in &committed {
                if !describable(topic) {
                    continue;
                }
                let p = entry(*partition, Some(c));
                match response
                    .topics
                    .iter_mut()
                    .find(|t| t.name.0.as_str() == topic)
                {
                    Some(t) => t.partitions.push(p),
                    None => response.topics.push(
                        OffsetFetchResponseTopic::default()
                            .with_name(super::topic_name(topic.clone()))
                            .with_partitions(vec![p]),
                    ),
                }
            }
        }
        Some(topics) => {
            for t in topics {
                let name = t.name.0.to_string();
                let allowed = describable(&name);
                let partitions = t
                    .partition_indexes
                    .iter()
                    .map(|&p| match allowed {
                        true => entry(p, committed.get(&(name.clone(), p))),
                        false => entry(p, None)
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
                    })
                    .collect();
                response.topics.push(
                    OffsetFetchResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions),
                );
            }
        }
    }
    response
}

pub async fn offset_delete(
    shard: &Rc<Shard>,
    request: OffsetDeleteRequest,
    ctx: &RequestContext,
) -> OffsetDeleteResponse {
    let group_id = request.group_id.0.to_string();
    // Kafka: Delete on the group, and Read on each topic.
    let authorizer = RequestAuthorizer::of(shard, ctx);
    if !authorizer.allows_group(AclOperation::Delete, &group_id) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    type Partitions = Vec<(String, i32)>;
    let (wanted, refused): (Partitions, Partitions) = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .partition(|(topic, _)| authorizer.allows_topic(AclOperation::Read, topic));
    let id = group_id.clone();
    let asked = wanted.clone();
    let (group_error, codes) = on_coordinator(
        shard,
        &group_id,
        (COORDINATOR_GONE, Vec::new()),
        move |s| async move { delete_on_coordinator(&s, &id, asked).await },
    )
    .await;
    let mut response = OffsetDeleteResponse::default().with_error_code(group_error);
    if group_error != 0 {
        return response;
    }
    let refused_code = ResponseError::TopicAuthorizationFailed.code();
    let answered = wanted.into_iter().zip(codes);
    for ((topic, partition), code) in answered.chain(refused.into_iter().map(|r| (r, refused_code)))
    {
        let p = OffsetDeleteResponsePartition::default()
            .with_partition_index(partition)
            .with_error_code(code);
        match response
            .topics
            .iter_mut()
            .find(|t| t.name.0.as_str() == topic)
        {
            Some(t) => t.partitions.push(p),
            None => response.topics.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(super::topic_name(topic))
                    .with_partitions(vec![p]),
            ),
        }
    }
    response
}

/// Deletes committed offsets a group no longer consumes: a topic the group
/// still subscribes to gets GROUP_SUBSCRIBED_TO_TOPIC (as in Kafka).
async fn delete_on_coordinator(
    shard: &Rc<Shard>,
    group_id: &str,
    wanted: Vec<(String, i32)>,
) -> (i16, Vec<i16>) {
    if !shard.groups().exists(group_id) {
        return (ResponseError::GroupIdNotFound.code(), Vec::new());
    }
    let subscribed = shard.groups().subscribed_topics(group_id);
    let codes: Vec<i16> = wanted
        .iter()
        .map(|(topic, _)| {
            if subscribed.contains(topic) {
                ResponseError::GroupSubscribedToTopic.code()
            } else {
                0
            }
        })
        .collect();
    let tombstones: Vec<(Bytes, Option<Bytes>)> = wanted
        .iter()
        .zip(&codes)
        .filter(|(_, &c)| c == 0)
        .map(|((t, p), _)| (records::offset_key(group_id, t, *p), None))
        .collect();
    let partition = offsets_partition(group_id, shard.config.offsets_topic_partitions);
    if let Err(code) = append_records(shard, partition, tombstones).await {
        return (code, Vec::new());
    }
    let now = Instant::now();
    for ((topic, partition), _) in wanted.iter().zip(&codes).filter(|(_, &c)| c == 0) {
        shard.groups().apply(
            OffsetsRecord::Offset {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition: *partition,
                value: None,
            },
            now,
        );
    }
    (0, codes)
}
