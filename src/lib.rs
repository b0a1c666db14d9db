//! The `tidemark` binary's library: the command line and the tools it runs.
//!
//! - `cli`: the `tidemark` command line (broker, dev, quorum, topic, group,
//!   produce, consume, bench, tune).
//! - `bench`: the `tidemark bench` load generator (CLI threads only).
//! - `tune`: checks and applies the Linux settings in `tuning/`.
//!
//! The broker itself is the `broker` crate; the Kafka client the CLI uses is
//! the `client` crate. docs/architecture.md draws the crate graph.
pub mod bench;
pub mod cli;
pub mod tune;
