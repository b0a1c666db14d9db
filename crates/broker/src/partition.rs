//! `Partition`: a partition this broker leads, as its writers see it, with
//! the one path from a batch to its acknowledgement that Produce and the
//! group coordinator's writes both take: check that this broker may take
//! the write (`check_write`), append it (`append`), then wait until it is
//! written, synced as asked, under the high watermark, and for acks=all on
//! every ISR member (`PendingWrite::acknowledged`). Errors are
//! `ReplicationError`s; the Kafka API layer turns them into codes.
//!
//! Appending is synchronous and waiting is not, so a request appends all
//! its batches before it waits and one flush covers them. Runs on the
//! partition's owning shard.
use crate::replication::leader::ISR_CHECK_INTERVAL;
use crate::replication::ReplicationError;
use crate::shard::Shard;
use bytes::Bytes;
use model::LeaderEpoch;
use std::rc::Rc;
use std::time::{Duration, Instant};
use storage::{AppendOutcome, PartitionLog};
use wire::batch::BatchHeader;

/// One partition's log on its owning shard, with that shard's replication.
pub struct Partition {
    shard: Rc<Shard>,
    log: Rc<PartitionLog>,
}

/// A batch to append: the bytes and header as they are to be stored.
pub struct BatchToAppend<'a> {
    pub bytes: &'a Bytes,
    pub header: &'a BatchHeader,
    /// Whether `bytes` shares its buffer with other partitions' batches
    /// (see `PartitionLog::append_slice`).
    pub shares_buffer: bool,
}

impl Partition {
    pub fn new(shard: &Rc<Shard>, log: Rc<PartitionLog>) -> Partition {
        Partition {
            shard: shard.clone(),
            log,
        }
    }

    /// The leader epoch a write with `acks` is stamped with, or why this
    /// broker may not take it (not the leader; for acks=all, an ISR below
    /// min.insync.replicas).
    pub fn check_write(&self, acks: i16) -> Result<LeaderEpoch, ReplicationError> {
        self.shard
            .replication()
            .check_produce(&self.log.topic, self.log.partition, acks)
    }

    /// Appends a validated batch at `leader_epoch` (from `check_write`);
    /// the write is acknowledged once it reaches what `wanted` says.
    pub fn append(
        &self,
        batch: BatchToAppend<'_>,
        leader_epoch: LeaderEpoch,
        wanted: Acknowledgement,
    ) -> Result<PendingWrite, ReplicationError> {
        let outcome = self.log.append_slice(
            batch.bytes,
            batch.header,
            leader_epoch.0,
            batch.shares_buffer,
        )?;
        Ok(PendingWrite {
            shard: self.shard.clone(),
            log: self.log.clone(),
            outcome,
            wanted,
        })
    }
}

/// An appended batch on its way to its acknowledgement.
pub struct PendingWrite {
    shard: Rc<Shard>,
    log: Rc<PartitionLog>,
    outcome: AppendOutcome,
    wanted: Acknowledgement,
}

impl PendingWrite {
    pub fn outcome(&self) -> &AppendOutcome {
        &self.outcome
    }

    /// Waits until the write may be acknowledged (or `timeout_ms` passes
    /// for a replicated one); the append's outcome then.
    pub async fn acknowledged(self, timeout_ms: i32) -> Result<AppendOutcome, ReplicationError> {
        let end_offset = self.outcome.result().end_offset;
        wait_acknowledged(&self.shard, &self.log, end_offset, self.wanted, timeout_ms).await?;
        Ok(self.outcome)
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
async fn wait_acknowledged(
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
