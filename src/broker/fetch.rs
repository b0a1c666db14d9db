//! Fetch: read whole batches from the owning shards, long-polling when there
//! is less than `min_bytes` (woken by appends, bounded by `max_wait_ms`), and
//! trimmed to the request's `max_bytes` (the first batch always goes, as
//! KIP-74 says, so a consumer never stalls on a large batch).
use super::{owned_log, storage_error_code, topic_name, RequestContext};
use crate::protocol::ResponseError;
use crate::shard::Shard;
use crate::storage::{PartitionLog, Reader, StorageError};
use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Longest long poll accepted, whatever the client asks.
const MAX_WAIT_CAP_MS: i32 = 60_000;
/// Pause between two waits of one long poll.
const REWAIT_PAUSE: Duration = Duration::from_millis(2);

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
}

pub async fn handle(
    shard: &Rc<Shard>,
    request: FetchRequest,
    ctx: &RequestContext,
) -> FetchResponse {
    let (mut response, items) = plan(shard, &request, ctx.version);
    if request.replica_id.0 >= 0 && !shard.replication.in_cluster() {
        // Only brokers of a cluster fetch as replicas.
        let code = ResponseError::NotLeaderOrFollower.code();
        let outcomes = items
            .iter()
            .map(|i| (i.clone(), FetchOutcome::failed(code, -1, -1)));
        fill_response(&mut response, outcomes.collect(), 0, ctx.version);
        return response;
    }
    let max_wait_ms = request.max_wait_ms.clamp(0, MAX_WAIT_CAP_MS);
    let deadline = Instant::now() + Duration::from_millis(max_wait_ms as u64);
    let response_max = if request.max_bytes <= 0 {
        i32::MAX
    } else {
        request.max_bytes
    } as usize;
    let mut outcomes = read_all(shard, &items).await;
    let enough = |o: &[(FetchItem, FetchOutcome)]| {
        let bytes: usize = o.iter().map(|(_, x)| x.records.len()).sum();
        let errors = o.iter().any(|(_, x)| x.error_code != 0);
        bytes >= request.min_bytes.max(0) as usize || errors
    };
    // A wake-up is a hint, not a promise of data (a write wakes waiters
    // before a replicated high watermark lets consumers see it): wait again
    // until there is enough or the time is up.
    let mut rounds = 0u32;
    while !items.is_empty() && !enough(&outcomes) && Instant::now() < deadline {
        if rounds > 0 {
            // Data that is there but yields nothing (a compaction gap at the
            // end) must not make this loop spin.
            glommio::timer::sleep(REWAIT_PAUSE).await;
        }
        rounds += 1;
        wait_for_data(shard, &items, deadline).await;
        outcomes = read_all(shard, &items).await;
    }
    fill_response(&mut response, outcomes, response_max, ctx.version);
    response
}

/// Builds the response skeleton (every requested partition, in order) and
/// the list of reads.
fn plan(
    shard: &Rc<Shard>,
    request: &FetchRequest,
    version: i16,
) -> (FetchResponse, Vec<FetchItem>) {
    let mut response = FetchResponse::default();
    let mut items = Vec::new();
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
            match &name {
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

/// Reads every item on its owning shard (one job per shard), in request order.
async fn read_all(shard: &Rc<Shard>, items: &[FetchItem]) -> Vec<(FetchItem, FetchOutcome)> {
    let mut by_shard: BTreeMap<usize, Vec<FetchItem>> = BTreeMap::new();
    for item in items {
        by_shard
            .entry(shard.owner_of(&item.topic, item.partition))
            .or_default()
            .push(item.clone());
    }
    let jobs = by_shard.into_iter().map(|(owner, items)| {
        let fallback = items.clone();
        let job = shard.run_on(owner, move |s| read_on_owner(s, items));
        async move {
            job.await.unwrap_or_else(|_| {
                let gone = FetchOutcome {
                    error_code: ResponseError::NotLeaderOrFollower.code(),
                    high_watermark: -1,
                    log_start_offset: -1,
                    records: Bytes::new(),
                };
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

async fn read_on_owner(shard: Rc<Shard>, items: Vec<FetchItem>) -> Vec<(FetchItem, FetchOutcome)> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let outcome = read_one(&shard, &item).await;
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
        }
    }
}

async fn read_one(shard: &Rc<Shard>, item: &FetchItem) -> FetchOutcome {
    let failed = FetchOutcome::failed;
    let log = match owned_log(shard, &item.topic, item.partition).await {
        Ok(log) => log,
        Err(code) => return failed(code, -1, -1),
    };
    let reader = if item.replica_id >= 0 {
        // A follower: it must fetch from the leader it was told of, and its
        // fetch offset is its log end, which moves the ISR and high watermark.
        let fetch_offset = item.offset.max(0) as u64;
        if let Err(code) = serve_follower(shard, &log, item, fetch_offset) {
            return failed(code, -1, -1);
        }
        Reader::Follower
    } else {
        let replication = &shard.replication;
        if let Err(code) =
            replication.check_leader(&item.topic, item.partition, item.current_leader_epoch)
        {
            return failed(code, -1, -1);
        }
        Reader::Consumer
    };
    match log
        .read_for(reader, item.offset, item.max_bytes, true)
        .await
    {
        Ok(r) => FetchOutcome {
            error_code: 0,
            // After a follower's fetch moved it, the newest high watermark.
            high_watermark: r.high_watermark.max(log.high_watermark()) as i64,
            log_start_offset: r.log_start_offset as i64,
            records: r.records,
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
) -> Result<(), i16> {
    let replication = &shard.replication;
    let change = replication.on_follower_fetch(
        log,
        item.replica_id,
        fetch_offset,
        item.current_leader_epoch,
        crate::storage::now_ms(),
    )?;
    if let Some((change, leader_epoch, partition_epoch)) = change {
        let key = (item.topic.clone(), item.partition);
        crate::replication::propose_isr(shard, key, change, leader_epoch, partition_epoch);
    }
    replication.advance_high_watermark(log);
    Ok(())
}

/// Waits until some requested partition has data past its fetch offset, or
/// the deadline passes.
async fn wait_for_data(shard: &Rc<Shard>, items: &[FetchItem], deadline: Instant) {
    let mut by_shard: BTreeMap<usize, Vec<(String, i32, i64, bool)>> = BTreeMap::new();
    for item in items {
        by_shard
            .entry(shard.owner_of(&item.topic, item.partition))
            .or_default()
            .push((
                item.topic.clone(),
                item.partition,
                item.offset,
                item.replica_id >= 0,
            ));
    }
    let waits: Vec<_> = by_shard
        .into_iter()
        .map(|(owner, watched)| {
            Box::pin(shard.run_on(owner, move |s| wait_on_owner(s, watched, deadline)))
        })
        .collect();
    let timeout = glommio::timer::sleep(deadline.saturating_duration_since(Instant::now()));
    futures::future::select(futures::future::select_all(waits), Box::pin(timeout)).await;
}

/// Runs on the owning shard: resolves when one of `watched` has data past its
/// offset, or at the deadline.
async fn wait_on_owner(
    shard: Rc<Shard>,
    watched: Vec<(String, i32, i64, bool)>,
    deadline: Instant,
) {
    let mut signals = Vec::with_capacity(watched.len());
    for (topic, partition, offset, follower) in &watched {
        let Some(log) = shard.log(topic, *partition) else {
            return;
        };
        let end = if *follower {
            log.written_end()
        } else {
            log.high_watermark()
        };
        if end as i64 > *offset {
            return;
        }
        signals.push(log.subscribe());
    }
    if signals.is_empty() {
        return;
    }
    let timeout = glommio::timer::sleep(deadline.saturating_duration_since(Instant::now()));
    futures::future::select(futures::future::select_all(signals), Box::pin(timeout)).await;
}

/// Copies outcomes into the response, keeping whole partitions' records while
/// the total stays within `max_bytes` (the first non-empty one always).
fn fill_response(
    response: &mut FetchResponse,
    outcomes: Vec<(FetchItem, FetchOutcome)>,
    max_bytes: usize,
    version: i16,
) {
    let mut total = 0usize;
    for (item, o) in outcomes {
        let (t, p) = item.slot;
        let data = &mut response.responses[t].partitions[p];
        data.error_code = o.error_code;
        data.high_watermark = o.high_watermark;
        data.last_stable_offset = o.high_watermark;
        if version >= 5 {
            data.log_start_offset = o.log_start_offset;
        }
        let len = o.records.len();
        if len > 0 && (total == 0 || total + len <= max_bytes) {
            total += len;
            data.records = Some(o.records);
        } else {
            data.records = Some(Bytes::new());
        }
    }
    for topic in &mut response.responses {
        for data in &mut topic.partitions {
            if data.records.is_none() {
                data.records = Some(Bytes::new());
            }
        }
    }
}
