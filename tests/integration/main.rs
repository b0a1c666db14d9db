//! Tidemark's integration tests, in one test binary so that the harness,
//! librdkafka and the broker's library are compiled and linked once (issue 12).
//! Each module is what was a file of its own under tests/; `common` is the
//! harness they share (a real `tidemark dev` per test, clients to talk to it).
//!
//! Run one module's tests with a filter: `cargo test --test integration cluster::`.

mod common;

mod acls;
mod admin;
mod api_matrix;
mod bench;
mod chaos;
mod clients;
mod cluster;
mod compatibility;
mod dev_secure;
mod disk_full;
mod durability;
mod fairness;
mod fetch_limits;
mod group_cli;
mod groups;
mod hardening;
mod hardening_quorum;
mod idempotence;
mod java_interop;
mod kafka_tools;
mod limits;
mod logs;
mod oauth;
mod offsets;
mod poison_batches;
mod produce_configs;
mod protocol;
mod quorum;
mod quorum_tls;
mod roundtrip;
mod sasl;
mod tls;
mod topic_configs;
mod upgrade;
