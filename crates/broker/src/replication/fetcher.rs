//! The follower's fetcher: one task per (shard, leader broker) that copies
//! the leader's log of every partition this shard follows from it.
//!
//! Each round it first settles partitions whose leader epoch changed since
//! it last looked: it asks the leader where this log's latest epoch ends
//! (OffsetForLeaderEpoch) and cuts the divergent tail (KIP-101/KIP-279).
//! Then it sends one Fetch with this broker's replica id for all settled
//! partitions, appends what comes back with the leader's offsets, waits for
//! the write (and for the sync the flush policy asks of acks=all, so an
//! acknowledged record is on every ISR member's disk), and takes the
//! leader's high watermark. The task ends when the shard follows nothing
//! from that leader any more.
use super::follower::{truncation_point, FollowerLog, LeaderEpochEnd, Truncation};
use super::manager::FollowerRole;
use super::peer::{PeerConnection, PeerError};
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use model::{BrokerId, LeaderEpoch, Offset, TopicPartition};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;
use storage::PartitionLog;
use wire::batch::BatchHeader;
use wire::ResponseError;

const FETCH_VERSION: i16 = 12;
const EPOCH_VERSION: i16 = 4;
/// Kafka's replica.fetch.max.bytes and replica.fetch.response.max.bytes.
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const RESPONSE_MAX_BYTES: i32 = 10 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause after a failed round, before the next try.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Starts the fetcher from `leader_id` on this shard unless it runs already.
pub fn ensure_fetcher(shard: &Rc<Shard>, leader_id: BrokerId) {
    if !shard.replication().claim_fetcher(leader_id) {
        return;
    }
    let shard = shard.clone();
    glommio::spawn_local(async move {
        run_fetcher(&shard, leader_id).await;
        shard.replication().release_fetcher(leader_id);
    })
    .detach();
}

async fn run_fetcher(shard: &Rc<Shard>, leader_id: BrokerId) {
    let local_id = shard.replication().settings.local_id;
    let mut conn: Option<PeerConnection> = None;
    // A refusal is logged once until a connection succeeds again.
    let mut refusal_logged = false;
    // The leader epoch each partition's log was last reconciled with.
    let mut settled: HashMap<TopicPartition, LeaderEpoch> = HashMap::new();
    loop {
        let followed = shard.replication().followed_from(leader_id);
        if followed.is_empty() || shard.is_stopping() {
            return;
        }
        let Some(addr) = shard.replication().broker_address(leader_id) else {
            glommio::timer::sleep(RETRY_BACKOFF).await;
            continue;
        };
        if conn
            .as_ref()
            .is_none_or(|c| c.addr != addr || c.login_expiring())
        {
            let security = &shard.replication().settings.peer_security;
            match PeerConnection::connect(&addr, local_id, security, CONNECT_TIMEOUT).await {
                Ok(c) => {
                    conn = Some(c);
                    refusal_logged = false;
                }
                Err(e) => {
                    refusal_logged |= log_connect_failure(leader_id, &e, refusal_logged);
                    glommio::timer::sleep(RETRY_BACKOFF).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let result = fetch_round(shard, c, &followed, &mut settled).await;
        if let Err(e) = result {
            tracing::debug!(%leader_id, error = %e, "replica fetch failed");
            conn = None;
            glommio::timer::sleep(RETRY_BACKOFF).await;
        }
    }
}

/// A leader that cannot be reached is routine while it restarts; a TLS or
/// login failure will not pass until an operator acts, so the first one
/// (unless `already_logged`) is a warning. Returns whether it warned.
fn log_connect_failure(leader_id: BrokerId, error: &PeerError, already_logged: bool) -> bool {
    match error {
        PeerError::Tls(..) | PeerError::Login { .. } if !already_logged => {
            tracing::warn!(%leader_id, %error, "the leader refused this follower");
            true
        }
        _ => {
            tracing::debug!(%leader_id, %error, "cannot reach the leader");
            false
        }
    }
}

/// One round: reconcile new epochs, then fetch once.
async fn fetch_round(
    shard: &Rc<Shard>,
    conn: &mut PeerConnection,
    followed: &[(TopicPartition, FollowerRole)],
    settled: &mut HashMap<TopicPartition, LeaderEpoch>,
) -> Result<(), PeerError> {
    let unsettled: Vec<_> = followed
        .iter()
        .filter(|(k, f)| settled.get(k) != Some(&f.leader_epoch))
        .cloned()
        .collect();
    if !unsettled.is_empty() {
        for (key, epoch) in reconcile(shard, conn, &unsettled).await? {
            settled.insert(key, epoch);
        }
    }
    let ready: Vec<_> = followed
        .iter()
        .filter(|(k, f)| settled.get(k) == Some(&f.leader_epoch))
        .cloned()
        .collect();
    if ready.is_empty() {
        glommio::timer::sleep(RETRY_BACKOFF).await;
        return Ok(());
    }
    let unsettle = fetch_once(shard, conn, &ready).await?;
    for key in unsettle {
        settled.remove(&key);
    }
    Ok(())
}

/// Asks the leader where each log's latest epoch ends and cuts what lies
/// beyond. Returns the partitions settled, with the leader epoch they are
/// settled for.
async fn reconcile(
    shard: &Rc<Shard>,
    conn: &mut PeerConnection,
    partitions: &[(TopicPartition, FollowerRole)],
) -> Result<Vec<(TopicPartition, LeaderEpoch)>, PeerError> {
    let mut settled = Vec::new();
    let mut asks: BTreeMap<String, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    for (key, f) in partitions {
        let Some(log) = shard.log(&key.topic, key.partition) else {
            continue;
        };
        match log.latest_epoch() {
            // Nothing was ever written here: nothing can diverge.
            None => settled.push((key.clone(), f.leader_epoch)),
            Some(epoch) => asks.entry(key.topic.to_string()).or_default().push(
                OffsetForLeaderPartition::default()
                    .with_partition(key.partition)
                    .with_current_leader_epoch(f.leader_epoch.0)
                    .with_leader_epoch(epoch),
            ),
        }
    }
    if asks.is_empty() {
        return Ok(settled);
    }
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(WireBrokerId(shard.replication().settings.local_id.0))
        .with_topics(
            asks.into_iter()
                .map(|(topic, partitions)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let limit = Duration::from_secs(10);
    let response = conn.call(&request, EPOCH_VERSION, limit).await?;
    let roles: HashMap<&TopicPartition, FollowerRole> =
        partitions.iter().map(|(k, f)| (k, *f)).collect();
    for topic in response.topics {
        let name = topic.topic.0.to_string();
        for p in topic.partitions {
            if p.error_code != 0 {
                tracing::debug!(topic = %name, partition = p.partition, code = p.error_code, "leader refused OffsetForLeaderEpoch");
                continue;
            }
            let key = TopicPartition::new(&name, p.partition);
            let Some(&f) = roles.get(&key) else {
                continue;
            };
            let answer = LeaderEpochEnd::from_leader(p.leader_epoch, p.end_offset);
            if truncate_divergent(shard, &key, f, answer).await {
                settled.push((key, f.leader_epoch));
            }
        }
    }
    Ok(settled)
}

/// Cuts a follower's log where the leader's answer says it diverges.
/// Returns false if the partition cannot be settled now.
async fn truncate_divergent(
    shard: &Rc<Shard>,
    key: &TopicPartition,
    follower: FollowerRole,
    answer: Option<LeaderEpochEnd>,
) -> bool {
    let Some(log) = shard.log(&key.topic, key.partition) else {
        return false;
    };
    if shard.replication().role_of(&key.topic, key.partition)
        != Some(super::manager::RoleSummary::Follower(follower))
    {
        return false;
    }
    let local = FollowerLog {
        log_end: Offset(log.log_end_offset()),
        high_watermark: Offset(log.high_watermark()),
    };
    let ours = |epoch: LeaderEpoch| LeaderEpochEnd::from_local(log.end_offset_for_epoch(epoch.0));
    let (target, settled) = match truncation_point(answer, local, ours) {
        Truncation::Settled(None) => (local.log_end, true),
        Truncation::Settled(Some(target)) => (target, true),
        Truncation::AskAgain(target) => (target, false),
    };
    if target >= local.log_end {
        // Nothing to cut but an epoch this broker began as leader and never
        // wrote in (Kafka's truncateTo does the same).
        log.forget_epochs_without_records();
        return settled;
    }
    tracing::info!(topic = %key.topic, partition = key.partition, from = %local.log_end, to = %target, "truncating a divergent tail");
    replace_with_truncated(shard, &log, target.0).await && settled
}

async fn replace_with_truncated(shard: &Rc<Shard>, log: &Rc<PartitionLog>, target: u64) -> bool {
    let limit = log.replicated_high_watermark();
    match log.truncate_to(target).await {
        Ok(new_log) => {
            let end = new_log.log_end_offset();
            new_log.set_replicated_high_watermark(Some(limit.unwrap_or(0).min(end)));
            shard.replace_log(new_log);
            true
        }
        Err(e) => {
            tracing::error!(topic = %log.topic, partition = log.partition, error = %e, "cannot truncate");
            false
        }
    }
}

/// One Fetch for `partitions`; appends what comes back. Returns the
/// partitions that must be reconciled again before the next fetch.
async fn fetch_once(
    shard: &Rc<Shard>,
    conn: &mut PeerConnection,
    partitions: &[(TopicPartition, FollowerRole)],
) -> Result<Vec<TopicPartition>, PeerError> {
    let settings = shard.replication().settings.clone();
    let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
    for (key, f) in partitions {
        let Some(log) = shard.log(&key.topic, key.partition) else {
            continue;
        };
        topics.entry(key.topic.to_string()).or_default().push(
            FetchPartition::default()
                .with_partition(key.partition)
                .with_current_leader_epoch(f.leader_epoch.0)
                .with_fetch_offset(log.log_end_offset() as i64)
                .with_last_fetched_epoch(log.latest_epoch().unwrap_or(-1))
                .with_log_start_offset(log.log_start_offset() as i64)
                .with_partition_max_bytes(PARTITION_MAX_BYTES),
        );
    }
    let request = FetchRequest::default()
        .with_replica_id(WireBrokerId(settings.local_id.0))
        .with_max_wait_ms(settings.fetch_wait_max_ms)
        .with_min_bytes(1)
        .with_max_bytes(RESPONSE_MAX_BYTES)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let limit = Duration::from_millis(settings.fetch_wait_max_ms.max(0) as u64 + 10_000);
    let response: FetchResponse = conn.call(&request, FETCH_VERSION, limit).await?;
    let roles: HashMap<&TopicPartition, FollowerRole> =
        partitions.iter().map(|(k, f)| (k, *f)).collect();
    let mut unsettle = Vec::new();
    let (mut answered, mut refused) = (0, 0);
    for topic in response.responses {
        let name = topic.topic.0.to_string();
        for p in topic.partitions {
            let key = TopicPartition::new(&name, p.partition_index);
            let Some(&f) = roles.get(&key) else {
                continue;
            };
            answered += 1;
            // Out of range is answered at once: it sends us to reconcile.
            let out_of_range = p.error_code == ResponseError::OffsetOutOfRange.code();
            refused += usize::from(p.error_code != 0 && !out_of_range);
            let records = p.records.unwrap_or_default();
            let outcome = PartitionFetch {
                error_code: p.error_code,
                high_watermark: p.high_watermark,
                log_start_offset: p.log_start_offset,
                records,
            };
            if !apply_fetched(shard, &key, f, outcome).await {
                unsettle.push(key);
            }
        }
    }
    if answered > 0 && refused == answered {
        // The leader refused every partition (its view is behind or ahead
        // of ours): wait before asking again, as Kafka's
        // replica.fetch.backoff.ms does, instead of asking at network speed.
        glommio::timer::sleep(RETRY_BACKOFF).await;
    }
    Ok(unsettle)
}

struct PartitionFetch {
    error_code: i16,
    high_watermark: i64,
    log_start_offset: i64,
    records: Bytes,
}

/// Appends one partition's fetched batches. Returns false when the log must
/// be reconciled with the leader again (it is out of the leader's range).
async fn apply_fetched(
    shard: &Rc<Shard>,
    key: &TopicPartition,
    follower: FollowerRole,
    fetched: PartitionFetch,
) -> bool {
    let Some(log) = shard.log(&key.topic, key.partition) else {
        return true;
    };
    if shard.replication().role_of(&key.topic, key.partition)
        != Some(super::manager::RoleSummary::Follower(follower))
    {
        return true;
    }
    if fetched.error_code == ResponseError::OffsetOutOfRange.code() {
        return restart_if_behind(shard, &log, fetched.log_start_offset).await;
    }
    if fetched.error_code != 0 {
        tracing::debug!(topic = %key.topic, partition = key.partition, code = fetched.error_code, "leader refused a replica fetch");
        return true;
    }
    if let Err(e) = append_batches(&log, &fetched.records).await {
        tracing::warn!(topic = %key.topic, partition = key.partition, error = %e, "cannot append replicated records");
        return true;
    }
    let end = log.log_end_offset();
    let hw = (fetched.high_watermark.max(0) as u64).min(end);
    log.set_replicated_high_watermark(Some(
        hw.max(log.replicated_high_watermark().unwrap_or(0).min(end)),
    ));
    follow_log_start(&log, fetched.log_start_offset).await;
    true
}

/// DeleteRecords and retention on the leader move its log start; the
/// follower's moves with it (as far as it holds committed records).
async fn follow_log_start(log: &PartitionLog, leader_start: i64) {
    let target = (leader_start.max(0) as u64).min(log.high_watermark());
    if target > log.log_start_offset() {
        if let Err(e) = log.delete_records_before(target as i64).await {
            tracing::warn!(topic = %log.topic, partition = log.partition, error = %e, "cannot follow the leader's log start");
        }
    }
}

/// The leader's log starts after ours ends (retention moved on while this
/// replica was away): start over at the leader's log start. Otherwise our
/// log is ahead of the leader's: reconcile again.
async fn restart_if_behind(shard: &Rc<Shard>, log: &Rc<PartitionLog>, leader_start: i64) -> bool {
    if leader_start <= log.log_end_offset() as i64 {
        return false;
    }
    tracing::info!(topic = %log.topic, partition = log.partition, leader_start, "log is behind the leader's log start: starting over");
    match log.restart_at(leader_start as u64).await {
        Ok(new_log) => {
            new_log.set_replicated_high_watermark(Some(leader_start as u64));
            shard.replace_log(new_log);
        }
        Err(e) => {
            tracing::error!(topic = %log.topic, partition = log.partition, error = %e, "cannot restart the log");
        }
    }
    true
}

/// What the offsets arithmetic below relies on (the CRC does not cover
/// the base offset): magic 2, offsets that are not negative and do not
/// overflow.
fn well_formed(header: &BatchHeader) -> bool {
    header.magic == 2
        && header.base_offset >= 0
        && header.last_offset_delta >= 0
        && header
            .base_offset
            .checked_add(header.last_offset_delta as i64)
            .is_some()
}

#[derive(Debug, thiserror::Error)]
enum AppendError {
    #[error("a fetched batch is malformed or fails its CRC")]
    BadBatch,
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
}

/// Appends every whole, CRC-valid batch at or past the log end, then waits
/// for it to be written (and synced as acks=all would be).
async fn append_batches(log: &PartitionLog, records: &Bytes) -> Result<(), AppendError> {
    let mut at = 0;
    let mut end = None;
    while at < records.len() {
        let Ok(header) = BatchHeader::parse(&records[at..]) else {
            break;
        };
        if header.size < wire::batch::BATCH_HEADER_LEN || at + header.size > records.len() {
            // A partial batch at the end of a fetch is normal: fetch again.
            break;
        }
        let batch = records.slice(at..at + header.size);
        at += header.size;
        if !well_formed(&header) || !header.crc_matches(&batch) {
            return Err(AppendError::BadBatch);
        }
        if (header.last_offset() as u64) < log.log_end_offset() {
            continue;
        }
        end = Some(log.append_replicated(&batch, &header)?.end_offset);
    }
    if let Some(end) = end {
        log.wait_written(end, log.needs_sync(-1)).await?;
    }
    Ok(())
}
