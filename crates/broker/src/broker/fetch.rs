//! Fetch: read whole batches from the owning shards, long-polling when there
//! is less than `min_bytes`, within the request's `max_bytes` and each
//! partition's `partition_max_bytes` as KIP-74 says: the first batch of the
//! first non-empty partition (in request order) goes whole whatever its
//! size, so a consumer never stalls on a large batch; nothing else exceeds
//! either limit.
//!
//! Runs on the shard of the client's connection, reading on the owners. A
//! long poll parks on each owner until the partitions' logs have had enough
//! bytes written since the last read to reach `min_bytes` (or `max_wait_ms`
//! passes, a log fails, its high watermark limit or leadership moves): it
//! never re-reads a partition that has not grown enough. Each read first
//! reserves its bytes from the connection's budget (`budget.rs`), so
//! pipelined fetches that a client never reads cannot exhaust memory.
use super::authz::RequestAuthorizer;
use super::budget::{ConnectionBudget, Hold};
use super::{owned_log, replication_error_code, storage_error_code, topic_name, RequestContext};
use crate::replication::ReplicationError;
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use model::acl::AclOperation;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};
use storage::{PartitionLog, Reader, StorageError};
use wire::batch::BatchIter;
use wire::ResponseError;

/// Longest long poll accepted, whatever the client asks.
const MAX_WAIT_CAP_MS: i32 = 60_000;

/// One partition to read, with its place in the response.
#[derive(Debug, Clone)]
struct FetchItem {
    slot: (usize, usize),
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    /// The leader epoch the client knows (-1: none), checked as KIP-320 says.
    current_leader_epoch: i32,
    /// The fetching follower's broker id, or -1 for a consumer.
    replica_id: i32,
}

#[derive(Debug, Clone)]
struct FetchOutcome {
    error_code: i16,
    high_watermark: i64,
    log_start_offset: i64,
    records: Bytes,
    /// The log as it was just before the read, for a long poll's wait.
    seen: Option<Seen>,
}

/// What a read saw of a log: the bytes written to it so far that this
/// reader may read (`PartitionLog::readable_bytes`). A long poll waits for
/// what comes after.
#[derive(Debug, Clone, Copy)]
struct Seen {
    readable_bytes: u64,
}

/// One read of every item, with the budget it reserved.
struct Round {
    outcomes: Vec<(FetchItem, FetchOutcome)>,
    /// The most bytes this answer may carry (the reservation).
    max_bytes: usize,
    /// What the answer holds in memory, counted on the connection.
    _hold: Hold,
}

impl Round {
    fn bytes(&self) -> usize {
        self.outcomes.iter().map(|(_, o)| o.records.len()).sum()
    }

    /// Whether to answer now: `min_bytes` reached (or all the budget
    /// allowed), or an error to report.
    fn enough(&self, min_bytes: usize) -> bool {
        let errors = self.outcomes.iter().any(|(_, o)| o.error_code != 0);
        errors || self.bytes() >= min_bytes.min(self.max_bytes)
    }
}

pub async fn handle(
    shard: &Rc<Shard>,
    request: FetchRequest,
    ctx: &RequestContext,
) -> FetchResponse {
    let authorizer = RequestAuthorizer::of(shard, ctx);
    let (mut response, items) = plan(shard, &request, ctx.version, &authorizer);
    let max_wait_ms = request.max_wait_ms.clamp(0, MAX_WAIT_CAP_MS);
    let deadline = Instant::now() + Duration::from_millis(max_wait_ms as u64);
    let wanted = answer_max_bytes(request.max_bytes, shard.config.fetch_max_bytes);
    let min_bytes = request.min_bytes.max(0) as usize;
    let mut round = read_round(shard, &items, &ctx.budget, wanted).await;
    // A wake-up is a hint, not a promise of data (the bytes written may not
    // be visible yet, or a compaction gap yields nothing): wait again until
    // there is enough or the time is up.
    while !items.is_empty() && !round.enough(min_bytes) && Instant::now() < deadline {
        let missing = min_bytes.saturating_sub(round.bytes()).max(1);
        wait_for_bytes(shard, &round.outcomes, missing as u64, deadline).await;
        drop(round);
        round = read_round(shard, &items, &ctx.budget, wanted).await;
    }
    fill_response(&mut response, round.outcomes, ctx.version);
    response
}

/// The most bytes one answer may carry: the request's `max_bytes` (0 or
/// less: no limit of its own), within the broker's `fetch.max.bytes`.
fn answer_max_bytes(requested: i32, broker_max: i32) -> usize {
    let requested = if requested <= 0 { i32::MAX } else { requested };
    requested.min(broker_max.max(1)) as usize
}

/// Reserves the answer's bytes from the connection's budget, reads every
/// item within them, holds what was read and keeps what the answer may carry.
async fn read_round(
    shard: &Rc<Shard>,
    items: &[FetchItem],
    budget: &Rc<ConnectionBudget>,
    wanted: usize,
) -> Round {
    let mut hold = budget.reserve_fetch(wanted);
    let max_bytes = hold.bytes();
    let mut outcomes = read_all(shard, items, max_bytes).await;
    let read: usize = outcomes.iter().map(|(_, o)| o.records.len()).sum();
    // Held as read: a trimmed answer still shares the buffers it came from.
    hold.resize(read);
    apply_limits(&mut outcomes, max_bytes);
    Round {
        outcomes,
        max_bytes,
        _hold: hold,
    }
}

/// Builds the response skeleton (every requested partition, in order) and
/// the list of reads.
fn plan(
    shard: &Rc<Shard>,
    request: &FetchRequest,
    version: i16,
    authorizer: &RequestAuthorizer,
) -> (FetchResponse, Vec<FetchItem>) {
    let mut response = FetchResponse::default();
    let mut items = Vec::new();
    // Kafka: a follower needs ClusterAction on the cluster, a consumer Read
    // on each topic.
    let follower_allowed =
        request.replica_id.0 < 0 || authorizer.allows_cluster(AclOperation::ClusterAction);
    for (t, topic) in request.topics.iter().enumerate() {
        // Fetch v13 and later name topics by id.
        let name = if version >= 13 {
            shard.metadata.topic_by_id(topic.topic_id).map(|m| m.name)
        } else {
            Some(topic.topic.0.to_string())
        };
        let mut topic_response = FetchableTopicResponse::default()
            .with_topic(topic.topic.clone())
            .with_topic_id(topic.topic_id);
        for (p, partition) in topic.partitions.iter().enumerate() {
            let mut data = PartitionData::default()
                .with_partition_index(partition.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1))
                .with_aborted_transactions(Some(Vec::new()));
            let refused = match &name {
                _ if !follower_allowed => Some(ResponseError::ClusterAuthorizationFailed),
                Some(name) if !authorizer.allows_topic(AclOperation::Read, name) => {
                    Some(ResponseError::TopicAuthorizationFailed)
                }
                _ => None,
            };
            match &name {
                _ if refused.is_some() => {
                    data.error_code = refused.map_or(0, |e| e.code());
                }
                Some(name) => items.push(FetchItem {
                    slot: (t, p),
                    topic: name.clone(),
                    partition: partition.partition,
                    offset: partition.fetch_offset,
                    max_bytes: partition.partition_max_bytes.max(0) as usize,
                    current_leader_epoch: partition.current_leader_epoch,
                    replica_id: request.replica_id.0,
                }),
                None => data.error_code = ResponseError::UnknownTopicId.code(),
            }
            topic_response.partitions.push(data);
        }
        if let Some(name) = name.filter(|_| version < 13) {
            topic_response.topic = topic_name(name);
        }
        response.responses.push(topic_response);
    }
    (response, items)
}

/// Reads every item on its owning shard (one job per shard), in request
/// order, each owner at most `max_bytes` (beyond one first batch). The
/// owners read at once, so each one's first non-empty partition may bring
/// a batch over the limits; `apply_limits` keeps only the answer's first.
async fn read_all(
    shard: &Rc<Shard>,
    items: &[FetchItem],
    max_bytes: usize,
) -> Vec<(FetchItem, FetchOutcome)> {
    let mut by_shard: BTreeMap<usize, Vec<FetchItem>> = BTreeMap::new();
    for item in items {
        by_shard
            .entry(shard.owner_of(&item.topic, item.partition))
            .or_default()
            .push(item.clone());
    }
    let jobs = by_shard.into_iter().map(|(owner, items)| {
        let fallback = items.clone();
        let job = shard.run_on(owner, move |s| read_on_owner(s, items, max_bytes));
        async move {
            job.await.unwrap_or_else(|_| {
                let gone = FetchOutcome::failed(ResponseError::NotLeaderOrFollower.code(), -1, -1);
                fallback.into_iter().map(|i| (i, gone.clone())).collect()
            })
        }
    });
    let mut all: Vec<(FetchItem, FetchOutcome)> = futures::future::join_all(jobs)
        .await
        .into_iter()
        .flatten()
        .collect();
    all.sort_by_key(|(i, _)| i.slot);
    all
}

/// Reads the items one after another while `max_bytes` lasts: the first
/// non-empty one whatever its first batch's size, the others within what
/// is left (so a many-partition fetch never reads more than it may answer).
async fn read_on_owner(
    shard: Rc<Shard>,
    items: Vec<FetchItem>,
    max_bytes: usize,
) -> Vec<(FetchItem, FetchOutcome)> {
    let mut out = Vec::with_capacity(items.len());
    let mut read = 0usize;
    for item in items {
        let left = max_bytes.saturating_sub(read);
        let outcome = read_one(&shard, &item, left, read == 0).await;
        read += outcome.records.len();
        out.push((item, outcome));
    }
    out
}

impl FetchOutcome {
    fn failed(code: i16, high_watermark: i64, log_start_offset: i64) -> FetchOutcome {
        FetchOutcome {
            error_code: code,
            high_watermark,
            log_start_offset,
            records: Bytes::new(),
            seen: None,
        }
    }
}

/// Reads one partition, at most `max_bytes` (or its first batch whatever
/// its size, if `at_least_one`).
async fn read_one(
    shard: &Rc<Shard>,
    item: &FetchItem,
    max_bytes: usize,
    at_least_one: bool,
) -> FetchOutcome {
    let failed = FetchOutcome::failed;
    let log = match owned_log(shard, &item.topic, item.partition).await {
        Ok(log) => log,
        Err(code) => return failed(code, -1, -1),
    };
    let reader = if item.replica_id >= 0 {
        // A follower: it must fetch from the leader it was told of, and its
        // fetch offset is its log end, which moves the ISR and high watermark.
        let fetch_offset = item.offset.max(0) as u64;
        if let Err(e) = serve_follower(shard, &log, item, fetch_offset) {
            return failed(replication_error_code(&e), -1, -1);
        }
        Reader::Follower
    } else {
        let replication = &shard.replication();
        let client_epoch = model::LeaderEpoch::from_wire(item.current_leader_epoch);
        if let Err(e) = replication.check_leader(&item.topic, item.partition, client_epoch) {
            return failed(replication_error_code(&e), -1, -1);
        }
        Reader::Consumer
    };
    // Taken before the read: a write during it counts as new for a wait.
    let seen = Seen {
        readable_bytes: log.readable_bytes(reader),
    };
    let max_bytes = item.max_bytes.min(max_bytes);
    match log
        .read_for(reader, item.offset, max_bytes, at_least_one)
        .await
    {
        Ok(r) => FetchOutcome {
            error_code: 0,
            // After a follower's fetch moved it, the newest high watermark.
            high_watermark: r.high_watermark.max(log.high_watermark()) as i64,
            log_start_offset: r.log_start_offset as i64,
            records: r.records,
            seen: Some(seen),
        },
        Err(e @ StorageError::OffsetOutOfRange { .. }) => failed(
            storage_error_code(&e),
            log.high_watermark() as i64,
            log.log_start_offset() as i64,
        ),
        Err(e) => failed(storage_error_code(&e), -1, -1),
    }
}

/// Notes a follower's fetch on the leader: ISR expansion (proposed to the
/// controller in the background) and the high watermark.
fn serve_follower(
    shard: &Rc<Shard>,
    log: &Rc<PartitionLog>,
    item: &FetchItem,
    fetch_offset: u64,
) -> Result<(), ReplicationError> {
    let replication = &shard.replication();
    let change = replication.on_follower_fetch(
        log,
        model::BrokerId(item.replica_id),
        model::Offset(fetch_offset),
        model::LeaderEpoch::from_wire(item.current_leader_epoch),
        storage::now_ms(),
    )?;
    if let Some((change, leader_epoch, partition_epoch)) = change {
        let key = model::TopicPartition::new(&item.topic, item.partition);
        crate::replication::propose_isr(shard, key, change, leader_epoch, partition_epoch);
    }
    replication.advance_high_watermark(log);
    Ok(())
}

/// One partition a long poll watches on its owner.
#[derive(Debug, Clone)]
struct Watch {
    topic: String,
    partition: i32,
    reader: Reader,
    seen: Seen,
}

impl Watch {
    /// Bytes this reader may read in `log` that it could not at its read.
    fn new_bytes(&self, log: &PartitionLog) -> u64 {
        log.readable_bytes(self.reader)
            .saturating_sub(self.seen.readable_bytes)
    }
}

/// Waits until the partitions of the last read have had `missing` more
/// bytes written (counted on each owner: each owner's share of them), or
/// something else changed that the fetch must answer, or the deadline.
async fn wait_for_bytes(
    shard: &Rc<Shard>,
    outcomes: &[(FetchItem, FetchOutcome)],
    missing: u64,
    deadline: Instant,
) {
    let mut by_shard: BTreeMap<usize, Vec<Watch>> = BTreeMap::new();
    for (item, outcome) in outcomes {
        let Some(seen) = outcome.seen else {
            // Nothing to wait for: read again at once.
            return;
        };
        by_shard
            .entry(shard.owner_of(&item.topic, item.partition))
            .or_default()
            .push(Watch {
                topic: item.topic.clone(),
                partition: item.partition,
                reader: if item.replica_id >= 0 {
                    Reader::Follower
                } else {
                    Reader::Consumer
                },
                seen,
            });
    }
    if by_shard.is_empty() {
        return;
    }
    // If the owners together have `missing` new bytes, one has its share.
    let share = missing.div_ceil(by_shard.len() as u64).max(1);
    let waits: Vec<_> = by_shard
        .into_iter()
        .map(|(owner, watched)| {
            Box::pin(shard.run_on(owner, move |s| wait_on_owner(s, watched, share, deadline)))
        })
        .collect();
    let timeout = glommio::timer::sleep(deadline.saturating_duration_since(Instant::now()));
    futures::future::select(futures::future::select_all(waits), Box::pin(timeout)).await;
}

/// Runs on the owning shard: resolves once the watched logs have had
/// `share` bytes written since the read, or one of them failed or was
/// replaced, or at the deadline. Each wake-up is a write that reached a
/// threshold (or a failure, a leadership change): never a poll.
async fn wait_on_owner(shard: Rc<Shard>, watched: Vec<Watch>, share: u64, deadline: Instant) {
    let mut logs = Vec::with_capacity(watched.len());
    for w in &watched {
        match shard.log(&w.topic, w.partition) {
            Some(log) => logs.push(log),
            None => return,
        }
    }
    let timeout = glommio::timer::sleep(deadline.saturating_duration_since(Instant::now()));
    let mut timeout = Box::pin(timeout);
    loop {
        let replaced = watched.iter().zip(&logs).any(|(w, log)| {
            !log.is_usable()
                || !shard
                    .log(&w.topic, w.partition)
                    .is_some_and(|now| Rc::ptr_eq(&now, log))
        });
        if replaced || logs.is_empty() {
            return;
        }
        let arrived: u64 = watched.iter().zip(&logs).map(|(w, l)| w.new_bytes(l)).sum();
        if arrived >= share {
            return;
        }
        // One of the logs reaches its part of what is missing first.
        let part = (share - arrived).div_ceil(logs.len() as u64);
        let signals = watched
            .iter()
            .zip(&logs)
            .map(|(w, log)| log.subscribe_bytes(w.reader, log.readable_bytes(w.reader) + part));
        let woken = futures::future::select(futures::future::select_all(signals), &mut timeout);
        if let futures::future::Either::Right(_) = woken.await {
            return;
        }
    }
}

/// Cuts what the owners read down to what KIP-74 lets the answer carry:
/// the first non-empty partition in request order keeps what its owner read
/// (its first batch whole whatever its size, then batches within its
/// limits); every later one keeps the whole batches that fit both its
/// `partition_max_bytes` and what is left of `max_bytes`.
fn apply_limits(outcomes: &mut [(FetchItem, FetchOutcome)], max_bytes: usize) {
    let mut left = max_bytes;
    let mut first = true;
    for (item, outcome) in outcomes.iter_mut() {
        if outcome.records.is_empty() {
            continue;
        }
        if !first {
            let limit = item.max_bytes.min(left);
            outcome.records = whole_batches_within(&outcome.records, limit);
        }
        first = false;
        left = left.saturating_sub(outcome.records.len());
    }
}

/// The whole batches at the start of `records` that fit in `limit` bytes.
fn whole_batches_within(records: &Bytes, limit: usize) -> Bytes {
    let end = BatchIter::new(records)
        .map(|(header, at)| at + header.size)
        .take_while(|&end| end <= limit)
        .last()
        .unwrap_or(0);
    records.slice(..end)
}

/// Copies outcomes into the response; every partition answers with records
/// (empty when there are none).
fn fill_response(
    response: &mut FetchResponse,
    outcomes: Vec<(FetchItem, FetchOutcome)>,
    version: i16,
) {
    for (item, o) in outcomes {
        let (t, p) = item.slot;
        let data = &mut response.responses[t].partitions[p];
        data.error_code = o.error_code;
        data.high_watermark = o.high_watermark;
        data.last_stable_offset = o.high_watermark;
        if version >= 5 {
            data.log_start_offset = o.log_start_offset;
        }
        data.records = Some(o.records);
    }
    for topic in &mut response.responses {
        for data in &mut topic.partitions {
            if data.records.is_none() {
                data.records = Some(Bytes::new());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::Compression;
    use wire::testing::sample_batch;

    fn item(index: usize, partition_max_bytes: usize) -> FetchItem {
        FetchItem {
            slot: (0, index),
            topic: "t".to_string(),
            partition: index as i32,
            offset: 0,
            max_bytes: partition_max_bytes,
            current_leader_epoch: -1,
            replica_id: -1,
        }
    }

    fn read(batches: usize) -> FetchOutcome {
        let batch = sample_batch(10, Compression::None);
        let mut records = Vec::new();
        for _ in 0..batches {
            records.extend_from_slice(&batch);
        }
        FetchOutcome {
            records: Bytes::from(records),
            ..FetchOutcome::failed(0, 0, 0)
        }
    }

    fn batch_bytes() -> usize {
        sample_batch(10, Compression::None).len()
    }

    #[test]
    fn only_the_first_non_empty_partition_exceeds_the_limits() {
        let b = batch_bytes();
        // Two owners each read their first partition's first batch whole.
        let mut outcomes = vec![
            (item(0, 1), FetchOutcome::failed(0, 0, 0)),
            (item(1, 1), read(1)),
            (item(2, 1), read(1)),
        ];
        apply_limits(&mut outcomes, 10 * b);
        let kept: Vec<usize> = outcomes.iter().map(|(_, o)| o.records.len()).collect();
        assert_eq!(kept, vec![0, b, 0]);
    }

    #[test]
    fn later_partitions_keep_the_whole_batches_that_fit() {
        let b = batch_bytes();
        let mut outcomes = vec![
            (item(0, 3 * b), read(3)),
            (item(1, 3 * b), read(3)),
            (item(2, 2 * b + 1), read(3)),
        ];
        // Room for 3 + 1 batches, then nothing.
        apply_limits(&mut outcomes, 4 * b + b / 2);
        let kept: Vec<usize> = outcomes.iter().map(|(_, o)| o.records.len()).collect();
        assert_eq!(kept, vec![3 * b, b, 0]);
        let mut outcomes = vec![(item(0, 3 * b), read(3)), (item(1, 2 * b + 1), read(3))];
        apply_limits(&mut outcomes, 100 * b);
        let kept: Vec<usize> = outcomes.iter().map(|(_, o)| o.records.len()).collect();
        assert_eq!(kept, vec![3 * b, 2 * b], "within partition_max_bytes");
    }
}
