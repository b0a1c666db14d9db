//! The quorum service: Tidemark's replacement for ZooKeeper, shaped like
//! KRaft. A Raft group of 1, 3 or 5 `tidemark quorum` processes (openraft on
//! tokio, off the data path) keeps the cluster metadata: live brokers (with
//! heartbeat sessions), topics and configs, partition assignments, leaders,
//! epochs and ISRs, producer-id blocks. The Raft leader is the controller.
//!
//! - `model`: the metadata types shared with brokers (pure).
//! - `state`: the replicated state machine and its commands (pure).
//! - `credentials`: users' SCRAM credentials in the view (pure).
//! - `changes`: the change log, deltas and pages of the view (pure).
//! - `placement`: replica placement (pure).
//! - `sessions`: broker session expiry on the leader (pure).
//! - `raft`: openraft glue: durable log, state machine and snapshots, peer network.
//! - `protocol`: the framed JSON wire format of the quorum port.
//! - `node`: a running quorum node (tokio).
//! - `client`: `QuorumClient`, used by brokers and the CLI (tokio).
//! - `config`: the node's flags and TOML file.
//! - `embedded`: the single-node quorum inside `tidemark dev`.
//! - `tls`: mutual TLS of the quorum port (node and clients), PEM loading.
pub mod acls;
pub mod changes;
pub mod client;
pub mod config;
pub mod credentials;
pub mod embedded;
pub mod model;
pub mod node;
pub mod placement;
pub mod protocol;
pub mod raft;
pub mod sessions;
pub mod state;
pub mod tls;

#[cfg(test)]
mod format_tests;

pub use client::{ClientError, QuorumClient};
pub use model::{BrokerInfo, ClusterView, PartitionState, TopicState, NO_LEADER};
pub use state::{Applied, Command, CommandError, CommandResult, Outcome, Proposal};
