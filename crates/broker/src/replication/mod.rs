//! Replication between brokers, Kafka's way: followers fetch from the
//! partition leader (Fetch with their replica id), the leader tracks each
//! follower's log end, keeps the in-sync replica set and the high watermark,
//! and asks the controller (the quorum service) to change the ISR. Leader
//! epochs (see `storage::epochs`) let a follower cut a divergent tail after
//! a failover.
//!
//! - `isr`: the leader's pure state machine (ISR, high watermark).
//! - `manager`: each shard's partition roles (leader, follower).
//! - `view`: applying a cluster view from the quorum service to a shard.
//! - `leader`: ISR proposals, the ISR check loop.
//! - `follower`: the follower's divergence decision (pure).
//! - `error`: why replication refused an operation (no Kafka codes here).
//! - `fetcher`, `peer`: followers copying their leaders' logs.
//! - `agent`: the broker's thread that talks to the quorum service.
//!
//! Everything but the agent runs on the shard that owns the partition.
pub mod agent;
pub mod cluster_admin;
pub mod error;
pub mod fetcher;
pub mod follower;
pub mod isr;
pub mod leader;
pub mod manager;
pub mod peer;
pub mod view;

pub use error::ReplicationError;
pub use leader::{isr_check_loop, propose_isr};
pub use manager::{ReplicaManager, ReplicationSettings};

impl crate::shard::Shard {
    /// This shard's partition roles (installed by `server` on every shard).
    pub fn replication(&self) -> &ReplicaManager {
        self.service::<ReplicaManager>()
    }
}
