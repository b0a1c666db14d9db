//! Typed ids every layer agrees on: broker ids, leader epochs, log offsets
//! and topic-partitions. Each wraps the integer Kafka uses, so a broker id
//! can no longer be passed where a leader epoch or a partition number is
//! meant; the raw integer is the public field, taken and given back only at
//! the edges (Kafka's wire, the storage calls, the quorum's JSON).
//!
//! Kafka's sentinels (-1 for "no leader", "no epoch", "no offset") are not
//! ids: typed code says `Option<BrokerId>`, `Option<LeaderEpoch>`,
//! `Option<Offset>`, and the `from_wire` / `to_wire` helpers turn the
//! sentinel into `None` and back where the wire needs it.
//!
//! `Debug` prints the bare integer, as `Display` does, so log lines and the
//! simulation's traces (`isr = [1, 2]`) read as they did with raw integers.
//!
//! Partition numbers stay `i32`: with broker ids and epochs typed there is
//! no other bare `i32` they meet in the same signature, and they are an
//! index that storage, the shard ownership hash and the quorum's partition
//! vector all take as it is.
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// `Debug` and `Display` both as the bare integer.
macro_rules! print_as_integer {
    ($($id:ty),*) => {$(
        impl fmt::Debug for $id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Display for $id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

print_as_integer!(BrokerId, LeaderEpoch, Offset);

/// A broker's `node.id`. Serialised as the bare integer (the quorum's
/// persisted view, log and protocol hold it so). Valid ids are not negative;
/// the quorum refuses a registration with a negative one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BrokerId(pub i32);

impl BrokerId {
    /// Kafka's "no broker" on the wire (a leaderless partition's leader).
    pub const WIRE_NONE: i32 = -1;

    /// The wire's id, `None` for Kafka's -1 (any negative id).
    pub fn from_wire(raw: i32) -> Option<BrokerId> {
        (raw >= 0).then_some(BrokerId(raw))
    }

    /// The wire's integer for an optional broker: -1 for none.
    pub fn to_wire(id: Option<BrokerId>) -> i32 {
        id.map_or(BrokerId::WIRE_NONE, |b| b.0)
    }
}

/// A partition's leader epoch: bumped by the controller at every change of
/// leader, stamped into every batch the leader writes, and compared to
/// fence stale leaders and clients (KIP-101, KIP-320). Serialised as the
/// bare integer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaderEpoch(pub i32);

impl LeaderEpoch {
    /// Kafka's "no epoch" on the wire (a client that knows none).
    pub const WIRE_NONE: i32 = -1;

    /// The wire's epoch, `None` for Kafka's -1 (any negative epoch).
    pub fn from_wire(raw: i32) -> Option<LeaderEpoch> {
        (raw >= 0).then_some(LeaderEpoch(raw))
    }

    /// The wire's integer for an optional epoch: -1 for none.
    pub fn to_wire(epoch: Option<LeaderEpoch>) -> i32 {
        epoch.map_or(LeaderEpoch::WIRE_NONE, |e| e.0)
    }

    /// The epoch after this one (the controller's bump at a new leader).
    pub fn next(self) -> LeaderEpoch {
        LeaderEpoch(self.0 + 1)
    }
}

/// A position in a partition's log: the offset of a record, or an end (the
/// offset the next record gets).
///
/// `u64`, not Kafka's `i64`: every log offset Tidemark keeps (storage's log
/// end, written end, high watermark, log start, the replication core's
/// follower ends) is a `u64` already, and only the wire carries `i64`, where
/// -1 means "none". So a negative offset cannot exist past the edge, and
/// the wire's value goes through `from_wire` (negative: `None`) or
/// `from_wire_clamped` (negative: 0) as the caller's rule says.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub u64);

impl Offset {
    pub const ZERO: Offset = Offset(0);

    /// The wire's offset, `None` for Kafka's -1 (any negative offset).
    pub fn from_wire(raw: i64) -> Option<Offset> {
        u64::try_from(raw).ok().map(Offset)
    }

    /// The wire's offset with negatives read as 0, for answers whose -1
    /// was handled before (a leader's epoch end: see
    /// `replication::follower::LeaderEpochEnd::from_leader`).
    pub fn from_wire_clamped(raw: i64) -> Offset {
        Offset(raw.max(0) as u64)
    }
}

/// One partition of one topic. The name is shared (`Arc<str>`), so the
/// keys of per-partition maps and of messages between tasks clone without
/// allocating. Displayed as Kafka prints it: `topic-partition`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: Arc::from(topic),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinels_are_none_and_come_back_as_minus_one() {
        assert_eq!(BrokerId::from_wire(-1), None);
        assert_eq!(BrokerId::from_wire(3), Some(BrokerId(3)));
        assert_eq!(BrokerId::to_wire(None), -1);
        assert_eq!(LeaderEpoch::from_wire(-1), None);
        assert_eq!(LeaderEpoch::to_wire(Some(LeaderEpoch(0))), 0);
        assert_eq!(Offset::from_wire(-1), None);
        assert_eq!(Offset::from_wire_clamped(-7), Offset::ZERO);
        assert_eq!(Offset::from_wire(42), Some(Offset(42)));
    }

    #[test]
    fn ids_print_as_their_integers() {
        assert_eq!(format!("{:?}", vec![BrokerId(1), BrokerId(2)]), "[1, 2]");
        assert_eq!(format!("{} {:?}", LeaderEpoch(4), Offset(9)), "4 9");
    }

    #[test]
    fn a_topic_partition_prints_as_kafka_does() {
        let tp = TopicPartition::new("orders", 3);
        assert_eq!(tp.to_string(), "orders-3");
        assert_eq!(tp.clone(), tp);
    }
}
