//! Raft plumbing for the quorum service: openraft's type configuration, the
//! durable log store, the state machine with its snapshots, and the network
//! between quorum nodes. Quorum process, tokio runtime.
// openraft's traits fix the error types (`StorageError`, `RPCError`), large as they are.
#![allow(clippy::result_large_err)]
pub mod files;
pub mod log_store;
pub mod network;
pub mod state_machine;

use super::state::{CommandResult, Proposal};

pub type NodeId = u64;
pub use openraft::BasicNode;

openraft::declare_raft_types!(
    /// openraft's types for the quorum service.
    pub TypeConfig:
        D = Proposal,
        R = CommandResult,
        NodeId = NodeId,
        Node = BasicNode,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
