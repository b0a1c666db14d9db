//! Why replication refused or failed an operation on a partition. The Kafka
//! API layer answers each with its Kafka error (`error_codes`); replication
//! itself knows no error numbers. Pure data, used on the partition's
//! owning shard.
use model::{BrokerId, LeaderEpoch, Offset};
use storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("this broker does not lead the partition")]
    NotLeader,
    #[error("broker {0} is not a follower of the partition")]
    NotAFollower(BrokerId),
    #[error("leader epoch {given} is older than the leader's {current}")]
    FencedLeaderEpoch {
        given: LeaderEpoch,
        current: LeaderEpoch,
    },
    #[error("leader epoch {given} is newer than the leader's {current}")]
    UnknownLeaderEpoch {
        given: LeaderEpoch,
        current: LeaderEpoch,
    },
    #[error("the ISR has {isr} members, fewer than min.insync.replicas={min}")]
    NotEnoughReplicas { isr: usize, min: i32 },
    #[error("the ISR shrank below min.insync.replicas={min} after the append")]
    NotEnoughReplicasAfterAppend { min: i32 },
    /// KIP-207: a new leader whose high watermark is still below the start
    /// of its leader epoch cannot say where its log ends yet.
    #[error("the high watermark {high_watermark} has not reached the leader epoch's start {epoch_start}")]
    OffsetNotAvailable {
        high_watermark: Offset,
        epoch_start: Offset,
    },
    #[error("the ISR did not have the records within {timeout_ms} ms")]
    TimedOut { timeout_ms: i32 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}
