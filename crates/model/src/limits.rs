//! Bounds that more than one layer enforces, kept in one place so that the
//! quorum, the broker's registry and the config checks never disagree.

/// Partitions one topic may have: the quorum's controller and the broker
/// refuse a create or an increase beyond it (INVALID_PARTITIONS), so a
/// request cannot ask for millions, and the cluster view each broker copies
/// stays bounded per topic.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;
