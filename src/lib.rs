//! Tidemark: a Kafka-compatible message broker, thread-per-core on io_uring.
//!
//! Subsystems, one folder each (every module opens with what it owns and on
//! which shard it runs):
//! - `config`: broker and topic configuration (TOML with Kafka's key names).
//! - `protocol`: Kafka framing, the RecordBatch v2 header, the API version table.
//! - `net`: the per-shard listener and connection pipeline.
//! - `shard`: executors, partition ownership and cross-shard messages.
//! - `storage`: the segmented partition log on O_DIRECT files.
//! - `metadata`: the cluster's topic registry.
//! - `topic_name`: Kafka's rules for topic names (validity, collisions).
//! - `broker`: the Kafka API handlers.
//! - `group`: the consumer group coordinator and committed offsets.
//! - `quorum`: the quorum service (Raft metadata store and controller) and its client.
//! - `replication`: followers fetching from leaders, ISR, high watermark, the quorum agent.
//! - `tune`: checks and applies the Linux settings in `tuning/`.
//! - `client`: a small blocking Kafka client used by the CLI.
//! - `bench`: the `tidemark bench` load generator (CLI threads only).
//! - `cli`: the `tidemark` command line.
pub mod bench;
pub mod broker;
pub mod cli;
pub mod client;
pub mod config;
pub mod group;
pub mod metadata;
pub mod net;
pub mod protocol;
pub mod quorum;
pub mod replication;
pub mod shard;
pub mod storage;
pub mod topic_name;
pub mod tune;
