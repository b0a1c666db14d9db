//! The leader's side of replication on its shard: ISR changes proposed to
//! the controller in the background, the periodic ISR shrink check, and
//! acks=all waits for the high watermark.
use super::isr::IsrChange;
use super::manager::TopicPartition;
use crate::shard::Shard;
use std::rc::Rc;
use std::time::{Duration, Instant};
use storage::PartitionLog;
use wire::ResponseError;

/// How often leaders look for followers that fell out of the ISR.
pub const ISR_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Sends an ISR change to the controller without blocking the caller; the
/// answer (or its failure) settles the leader's pending change.
pub fn propose_isr(
    shard: &Rc<Shard>,
    key: TopicPartition,
    change: IsrChange,
    leader_epoch: i32,
    partition_epoch: i32,
) {
    let Some(agent) = shard.replication.agent() else {
        shard.replication.on_isr_answer(&key, leader_epoch, None);
        return;
    };
    let shard = shard.clone();
    let local_id = shard.replication.settings.local_id;
    glommio::spawn_local(async move {
        let (topic, partition) = key.clone();
        let epochs = (leader_epoch, partition_epoch);
        let answer = agent
            .alter_partition(topic, partition, local_id, epochs, change.new_isr)
            .await;
        if let Err(e) = &answer {
            tracing::warn!(topic = %key.0, partition = key.1, error = %e, "ISR change not accepted");
        }
        shard
            .replication
            .on_isr_answer(&key, leader_epoch, answer.as_ref().ok());
        if let Some(log) = shard.log(&key.0, key.1) {
            shard.replication.advance_high_watermark(&log);
        }
    })
    .detach();
}

/// Runs on every shard of a cluster broker: proposes ISR shrinks for
/// followers that stopped keeping up.
pub async fn isr_check_loop(shard: Rc<Shard>) {
    while !shard.is_stopping() {
        glommio::timer::sleep(ISR_CHECK_INTERVAL).await;
        let now = storage::now_ms();
        for (key, change, leader_epoch, partition_epoch) in shard.replication.due_isr_shrinks(now) {
            tracing::info!(topic = %key.0, partition = key.1, isr = ?change.new_isr, "shrinking ISR");
            propose_isr(&shard, key, change, leader_epoch, partition_epoch);
        }
    }
}

/// acks=all in a cluster: waits until the high watermark covers
/// `end_offset` (every ISR member has the records), as Kafka's delayed
/// produce does. Fails with NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR
/// shrinks below min.insync.replicas meanwhile, NOT_LEADER_OR_FOLLOWER if
/// leadership moves, and REQUEST_TIMED_OUT at the request's timeout.
pub async fn wait_replicated(
    shard: &Rc<Shard>,
    log: &Rc<PartitionLog>,
    end_offset: u64,
    timeout_ms: i32,
) -> Result<(), i16> {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms.max(0) as u64);
    loop {
        if log.high_watermark() >= end_offset {
            return Ok(());
        }
        let isr_ok = shard
            .replication
            .check_produce(&log.topic, log.partition, -1);
        match isr_ok {
            Ok(_) => {}
            Err(code) if code == ResponseError::NotEnoughReplicas.code() => {
                return Err(ResponseError::NotEnoughReplicasAfterAppend.code());
            }
            Err(code) => return Err(code),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ResponseError::RequestTimedOut.code());
        }
        let moved = log.subscribe();
        // Leadership and ISR changes do not touch the log: look again now
        // and then even when nothing is written.
        let wait = left.min(ISR_CHECK_INTERVAL);
        futures::future::select(moved, Box::pin(glommio::timer::sleep(wait))).await;
    }
}
