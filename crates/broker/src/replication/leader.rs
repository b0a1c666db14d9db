//! The leader's side of replication on its shard: ISR changes proposed to
//! the controller in the background, the periodic ISR shrink check, and the
//! one path from an appended batch to its acknowledgement (written, synced
//! as asked, high watermark advanced, replicated for acks=all), which
//! Produce and the group coordinator's writes both take.
use super::error::ReplicationError;
use super::isr::IsrChange;
use super::manager::TopicPartition;
use crate::shard::Shard;
use std::rc::Rc;
use std::time::{Duration, Instant};
use storage::PartitionLog;

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
    let agent = shard.replication().agent().clone();
    let shard = shard.clone();
    let local_id = shard.replication().settings.local_id;
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
            .replication()
            .on_isr_answer(&key, leader_epoch, answer.as_ref().ok());
        if let Some(log) = shard.log(&key.0, key.1) {
            shard.replication().advance_high_watermark(&log);
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
        for (key, change, leader_epoch, partition_epoch) in shard.replication().due_isr_shrinks(now)
        {
            tracing::info!(topic = %key.0, partition = key.1, isr = ?change.new_isr, "shrinking ISR");
            propose_isr(&shard, key, change, leader_epoch, partition_epoch);
        }
    }
}

/// What an append must reach before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acknowledgement {
    /// Synced to disk (fdatasync), not only written.
    pub synced: bool,
    /// In a cluster, on every ISR member (the high watermark covers it).
    pub replicated: bool,
}

impl Acknowledgement {
    /// What a Produce with `acks` waits for, as the flush policy says.
    pub fn of_produce(log: &PartitionLog, acks: i16) -> Acknowledgement {
        Acknowledgement {
            synced: log.needs_sync(acks),
            replicated: acks == -1,
        }
    }

    /// Group records are acks=all writes of the partition's leader (Kafka's
    /// GroupMetadataManager appends with acks=-1), always synced.
    pub const GROUP_WRITE: Acknowledgement = Acknowledgement {
        synced: true,
        replicated: true,
    };
}

/// Waits until an append ending at `end_offset` may be acknowledged as
/// `wanted` says: written (and synced if asked), the high watermark moved
/// past it where the ISR allows, and, for a replicated acknowledgement in a
/// cluster, on every ISR member.
pub async fn wait_acknowledged(
    shard: &Rc<Shard>,
    log: &Rc<PartitionLog>,
    end_offset: u64,
    wanted: Acknowledgement,
    timeout_ms: i32,
) -> Result<(), ReplicationError> {
    log.wait_written(end_offset, wanted.synced).await?;
    shard.replication().advance_high_watermark(log);
    if wanted.replicated {
        wait_replicated(shard, log, end_offset, timeout_ms).await?;
    }
    Ok(())
}

/// acks=all in a cluster: waits until the high watermark covers
/// `end_offset` (every ISR member has the records), as Kafka's delayed
/// produce does. Fails if the ISR shrinks below min.insync.replicas
/// meanwhile (Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND), if leadership
/// moves, and at the request's timeout.
async fn wait_replicated(
    shard: &Rc<Shard>,
    log: &Rc<PartitionLog>,
    end_offset: u64,
    timeout_ms: i32,
) -> Result<(), ReplicationError> {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms.max(0) as u64);
    loop {
        if log.high_watermark() >= end_offset {
            return Ok(());
        }
        let isr_ok = shard
            .replication()
            .check_produce(&log.topic, log.partition, -1);
        match isr_ok {
            Ok(_) => {}
            Err(ReplicationError::NotEnoughReplicas { min, .. }) => {
                return Err(ReplicationError::NotEnoughReplicasAfterAppend { min });
            }
            Err(e) => return Err(e),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReplicationError::TimedOut { timeout_ms });
        }
        let moved = log.subscribe();
        // Leadership and ISR changes do not touch the log: look again now
        // and then even when nothing is written.
        let wait = left.min(ISR_CHECK_INTERVAL);
        futures::future::select(moved, Box::pin(glommio::timer::sleep(wait))).await;
    }
}
