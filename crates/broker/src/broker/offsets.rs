//! ListOffsets (earliest, latest, max timestamp, by timestamp),
//! DeleteRecords and OffsetForLeaderEpoch, each answered by the shard that
//! owns the partition.
use super::authz::RequestAuthorizer;
use super::{owned_log, replication_error_code, storage_error_code, RequestContext};
use crate::shard::Shard;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::*;
use model::acl::AclOperation;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use wire::ResponseError;

const NOT_LEADER: i16 = wire::ResponseError::NotLeaderOrFollower.code();
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// KIP-405's specs (v8, v9): the local log's start, and the last offset moved
/// to tiered storage. Without tiered storage the local log is the whole log,
/// and nothing is tiered: Kafka answers the log start offset and -1.
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// Runs `work(shard, topic, partition, argument)` for every partition on its
/// owner, one job per shard, and returns the answers in request order.
/// A partition whose shard is gone gets `gone`; one of a topic that
/// `refused` answers for is answered so without running `work`.
async fn per_partition<A, R, F, Fut>(
    shard: &Rc<Shard>,
    items: Vec<(String, i32, A)>,
    gone: R,
    refused: impl Fn(&str) -> Option<R>,
    work: F,
) -> Vec<R>
where
    A: Send + 'static,
    R: Send + Clone + 'static,
    F: Fn(Rc<Shard>, String, i32, A) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = R> + 'static,
{
    let mut by_shard: BTreeMap<usize, Vec<(usize, String, i32, A)>> = BTreeMap::new();
    let count = items.len();
    let mut slots: Vec<Option<R>> = (0..count).map(|_| None).collect();
    for (i, (topic, partition, arg)) in items.into_iter().enumerate() {
        if let Some(answer) = refused(&topic) {
            slots[i] = Some(answer);
            continue;
        }
        by_shard
            .entry(shard.owner_of(&topic, partition))
            .or_default()
            .push((i, topic, partition, arg));
    }
    let jobs = by_shard.into_iter().map(|(owner, items)| {
        shard.run_on(owner, move |s| async move {
            let mut out = Vec::with_capacity(items.len());
            for (i, topic, partition, arg) in items {
                out.push((i, work(s.clone(), topic, partition, arg).await));
            }
            out
        })
    });
    for answers in futures::future::join_all(jobs).await.into_iter().flatten() {
        for (i, r) in answers {
            slots[i] = Some(r);
        }
    }
    slots
        .into_iter()
        .map(|s| s.unwrap_or_else(|| gone.clone()))
        .collect()
}

/// (error code, timestamp, offset, leader epoch) for one ListOffsets partition.
async fn list_one(
    shard: Rc<Shard>,
    topic: String,
    partition: i32,
    (timestamp, current_leader_epoch): (i64, i32),
) -> (i16, i64, i64, i32) {
    let replication = &shard.replication();
    let client_epoch = model::LeaderEpoch::from_wire(current_leader_epoch);
    if let Err(e) = replication.check_leader(&topic, partition, client_epoch) {
        return (replication_error_code(&e), -1, -1, -1);
    }
    let epoch = model::LeaderEpoch::to_wire(replication.leader_epoch(&topic, partition));
    let (code, timestamp, offset) = list_on_leader(&shard, &topic, partition, timestamp).await;
    (code, timestamp, offset, epoch)
}

/// (error code, timestamp, offset) from the leader's log.
async fn list_on_leader(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> (i16, i64, i64) {
    let log = match owned_log(shard, topic, partition).await {
        Ok(log) => log,
        Err(code) => return (code, -1, -1),
    };
    // KIP-207: a new leader whose high watermark lags the start of its
    // epoch answers "latest", and a lookup that finds nothing below the high
    // watermark, with the retriable OFFSET_NOT_AVAILABLE, as Kafka does:
    // the high watermark it has may be older than what the previous leader
    // told consumers (and the producer's acknowledgements).
    let log_end_known = shard
        .replication()
        .check_log_end_known(topic, partition)
        .map_err(|e| replication_error_code(&e));
    let found = match timestamp {
        LATEST => {
            return match log_end_known {
                Ok(()) => (0, -1, log.high_watermark() as i64),
                Err(code) => (code, -1, -1),
            }
        }
        EARLIEST | EARLIEST_LOCAL => return (0, -1, log.log_start_offset() as i64),
        LATEST_TIERED => return (0, -1, -1),
        // KIP-734: the first record carrying the largest timestamp.
        MAX_TIMESTAMP => match log.max_timestamp() {
            Some(max) => log.offset_for_timestamp(max).await,
            None => Ok(None),
        },
        target => log.offset_for_timestamp(target).await,
    };
    match found {
        // As Kafka's ReplicaManager does, a record at or past the high
        // watermark is not an answer: consumers cannot read it yet.
        Ok(Some((ts, offset))) if offset < log.high_watermark() => (0, ts, offset as i64),
        Ok(_) => match log_end_known {
            Ok(()) => (0, -1, -1),
            Err(code) => (code, -1, -1),
        },
        Err(e) => (storage_error_code(&e), -1, -1),
    }
}

pub async fn list_offsets(
    shard: &Rc<Shard>,
    request: ListOffsetsRequest,
    ctx: &RequestContext,
) -> ListOffsetsResponse {
    let items: Vec<(String, i32, (i64, i32))> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                let epoch = p.current_leader_epoch;
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    (p.timestamp, epoch),
                )
            })
        })
        .collect();
    let authorizer = RequestAuthorizer::of(shard, ctx);
    let refused = |topic: &str| {
        (!authorizer.allows_topic(AclOperation::Describe, topic)).then_some((
            ResponseError::TopicAuthorizationFailed.code(),
            -1,
            -1,
            -1,
        ))
    };
    let mut answers = per_partition(shard, items, (NOT_LEADER, -1, -1, -1), refused, list_one)
        .await
        .into_iter();
    let mut response = ListOffsetsResponse::default();
    for topic in request.topics {
        let mut t = ListOffsetsTopicResponse::default().with_name(topic.name.clone());
        for p in topic.partitions {
            let (error_code, timestamp, offset, epoch) = answers.next().unwrap_or((-1, -1, -1, -1));
            t.partitions.push(
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error_code)
                    .with_timestamp(timestamp)
                    .with_offset(offset)
                    // Leader epochs are in the answer from v4 on.
                    .with_leader_epoch(if ctx.version >= 4 && error_code == 0 && offset >= 0 {
                        epoch
                    } else {
                        -1
                    }),
            );
        }
        response.topics.push(t);
    }
    response
}

/// (error code, low watermark) for one DeleteRecords partition.
async fn delete_one(shard: Rc<Shard>, topic: String, partition: i32, offset: i64) -> (i16, i64) {
    if let Err(e) = shard.replication().check_leader(&topic, partition, None) {
        return (replication_error_code(&e), -1);
    }
    let log = match owned_log(&shard, &topic, partition).await {
        Ok(log) => log,
        Err(code) => return (code, -1),
    };
    match log.delete_records_before(offset).await {
        Ok(start) => (0, start as i64),
        Err(e) => (storage_error_code(&e), -1),
    }
}

pub async fn delete_records(
    shard: &Rc<Shard>,
    request: DeleteRecordsRequest,
    ctx: &RequestContext,
) -> DeleteRecordsResponse {
    let items: Vec<(String, i32, i64)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index, p.offset))
        })
        .collect();
    let authorizer = RequestAuthorizer::of(shard, ctx);
    let refused = |topic: &str| {
        (!authorizer.allows_topic(AclOperation::Delete, topic))
            .then_some((ResponseError::TopicAuthorizationFailed.code(), -1))
    };
    let mut answers = per_partition(shard, items, (NOT_LEADER, -1), refused, delete_one)
        .await
        .into_iter();
    let mut response = DeleteRecordsResponse::default();
    for topic in request.topics {
        let mut t = DeleteRecordsTopicResult::default().with_name(topic.name.clone());
        for p in topic.partitions {
            let (error_code, low_watermark) = answers.next().unwrap_or((-1, -1));
            t.partitions.push(
                DeleteRecordsPartitionResult::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error_code)
                    .with_low_watermark(low_watermark),
            );
        }
        response.topics.push(t);
    }
    response
}

/// (error code, epoch, end offset) for one OffsetForLeaderEpoch partition.
async fn epoch_end_one(
    shard: Rc<Shard>,
    topic: String,
    partition: i32,
    (current_leader_epoch, requested_epoch): (i32, i32),
) -> (i16, i32, i64) {
    let log = match owned_log(&shard, &topic, partition).await {
        Ok(log) => log,
        Err(code) => return (code, -1, -1),
    };
    // KIP-320: a caller that knows a leader epoch is checked against ours,
    // so a stale or a too-new view gets a retriable error, not an answer.
    let replication = &shard.replication();
    let client_epoch = model::LeaderEpoch::from_wire(current_leader_epoch);
    if let Err(e) = replication.check_leader(&topic, partition, client_epoch) {
        return (replication_error_code(&e), -1, -1);
    }
    let (epoch, end_offset) = log.end_offset_for_epoch(requested_epoch);
    (0, epoch, end_offset)
}

/// OffsetForLeaderEpoch: where each asked epoch ends in this broker's log.
/// Followers use it to find a divergent tail after a leader change, and
/// consumers (KIP-320) to check their position after one.
pub async fn offset_for_leader_epoch(
    shard: &Rc<Shard>,
    request: OffsetForLeaderEpochRequest,
    ctx: &RequestContext,
) -> OffsetForLeaderEpochResponse {
    let items: Vec<(String, i32, (i32, i32))> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.topic.0.to_string(),
                    p.partition,
                    (p.current_leader_epoch, p.leader_epoch),
                )
            })
        })
        .collect();
    // Kafka: a follower (replica id >= 0) needs ClusterAction, a consumer
    // Describe on the topic.
    let authorizer = RequestAuthorizer::of(shard, ctx);
    let follower = request.replica_id.0 >= 0;
    let refused = |topic: &str| {
        let (allowed, error) = if follower {
            let allowed = authorizer.allows_cluster(AclOperation::ClusterAction);
            (allowed, ResponseError::ClusterAuthorizationFailed)
        } else {
            let allowed = authorizer.allows_topic(AclOperation::Describe, topic);
            (allowed, ResponseError::TopicAuthorizationFailed)
        };
        (!allowed).then_some((error.code(), -1, -1))
    };
    let mut answers = per_partition(shard, items, (NOT_LEADER, -1, -1), refused, epoch_end_one)
        .await
        .into_iter();
    let mut response = OffsetForLeaderEpochResponse::default();
    for topic in request.topics {
        let mut t = OffsetForLeaderTopicResult::default().with_topic(topic.topic.clone());
        for p in topic.partitions {
            let (error_code, leader_epoch, end_offset) = answers.next().unwrap_or((-1, -1, -1));
            t.partitions.push(
                EpochEndOffset::default()
                    .with_partition(p.partition)
                    .with_error_code(error_code)
                    .with_leader_epoch(leader_epoch)
                    .with_end_offset(end_offset),
            );
        }
        response.topics.push(t);
    }
    response
}
