//! Replication between brokers, Kafka's way: followers fetch from the
//! partition leader (Fetch with their replica id), the leader tracks each
//! follower's log end, keeps the in-sync replica set and the high watermark,
//! and asks the controller (the quorum service) to change the ISR. Leader
//! epochs (see `storage::epochs`) let a follower cut a divergent tail after
//! a failover.
//!
//! - `isr`: the leader's pure state machine (ISR, high watermark).
//!
//! Everything here runs on the shard that owns the partition.
pub mod isr;
