//! The Kafka error codes of the errors of the layers below the API handlers
//! (the partition log, the topic registry, replication), so that the
//! handlers and the group coordinator answer them alike. The layers below
//! know no error numbers. Pure code.
use crate::metadata::MetadataError;
use crate::replication::ReplicationError;
use storage::StorageError;
use wire::ResponseError;

/// The Kafka error code of a storage error.
pub fn storage_error_code(e: &StorageError) -> i16 {
    match e {
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        StorageError::Deleted => ResponseError::UnknownTopicOrPartition.code(),
        StorageError::Io { .. } | StorageError::Offline | StorageError::DiskFull { .. } => {
            ResponseError::KafkaStorageError.code()
        }
        StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber.code(),
        StorageError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch.code(),
        // Only a follower's own fetcher appends replicated batches.
        StorageError::NonContiguousReplica { .. } => ResponseError::UnknownServerError.code(),
    }
}

/// The Kafka error code of a replication error.
pub fn replication_error_code(e: &ReplicationError) -> i16 {
    match e {
        ReplicationError::NotLeader | ReplicationError::NotAFollower(_) => {
            ResponseError::NotLeaderOrFollower.code()
        }
        ReplicationError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch.code(),
        ReplicationError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch.code(),
        ReplicationError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas.code(),
        ReplicationError::NotEnoughReplicasAfterAppend { .. } => {
            ResponseError::NotEnoughReplicasAfterAppend.code()
        }
        ReplicationError::TimedOut { .. } => ResponseError::RequestTimedOut.code(),
        ReplicationError::OffsetNotAvailable { .. } => ResponseError::OffsetNotAvailable.code(),
        ReplicationError::Storage(e) => storage_error_code(e),
    }
}

/// The Kafka error code of a metadata error.
pub fn metadata_error_code(e: &MetadataError) -> i16 {
    match e {
        MetadataError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists.code(),
        MetadataError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition.code(),
        MetadataError::InvalidTopic(..) | MetadataError::TopicCollision { .. } => {
            ResponseError::InvalidTopicException.code()
        }
        // Kafka's ReplicaManager refuses client writes to internal topics
        // with INVALID_TOPIC_EXCEPTION; deletion and creation answer the same.
        MetadataError::InternalTopic(_) => ResponseError::InvalidTopicException.code(),
        MetadataError::InvalidPartitions(_) => ResponseError::InvalidPartitions.code(),
        MetadataError::InvalidReplicationFactor(_) => {
            ResponseError::InvalidReplicationFactor.code()
        }
        MetadataError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
        MetadataError::Read { .. } | MetadataError::Corrupt { .. } | MetadataError::DiskFull => {
            ResponseError::KafkaStorageError.code()
        }
        // Kafka's ProducerIdManager fails with a plain KafkaException here.
        MetadataError::ProducerIdsExhausted => ResponseError::UnknownServerError.code(),
        // Kafka answers REQUEST_TIMED_OUT when the controller does not.
        MetadataError::Controller(_) => ResponseError::RequestTimedOut.code(),
    }
}
