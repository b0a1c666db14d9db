//! Tidemark's broker: everything a broker process runs on its shards.
//!
//! Subsystems, one folder each (every module opens with what it owns and on
//! which shard it runs):
//! - `config`: broker configuration (TOML with Kafka's key names).
//! - `net`: the per-shard listener and connection pipeline.
//! - `shard`: executors, partition ownership and cross-shard messages.
//! - `metadata`: the cluster's topic registry.
//! - `broker`: the Kafka API handlers.
//! - `group`: the consumer group coordinator and committed offsets.
//! - `replication`: followers fetching from leaders, ISR, high watermark, the quorum agent.
//! - `partition`: a led partition's one append-and-acknowledge path.
//! - `server`: the composition root that builds and starts the shards.
//!
//! Below it in the crate graph: `storage` (the partition log), `quorum` (the
//! metadata service and its client), `wire` (the protocol), `model`.
pub mod broker;
pub mod config;
pub mod error_codes;
pub mod group;
pub mod metadata;
pub mod net;
pub mod partition;
pub mod replication;
pub mod security;
pub mod server;
pub mod shard;
