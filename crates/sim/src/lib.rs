//! A deterministic simulation of a Tidemark cluster's replication: N
//! brokers running Tidemark's real replication core (`LeaderReplicaState`,
//! the follower's `truncation_point`, `role_in_view`), the real
//! `LeaderEpochCache` over in-memory logs that lose their unsynced tail on
//! a crash, and the quorum's real state machine as the controller, on a
//! simulated clock and network, all on one thread and decided by a seed.
//! docs/simulation.md says what it models, what it does not, and the bugs
//! it found.
//!
//! Module graph (one way): `world` drives `replica`, `controller`,
//! `client`, `network` and `oracle`; all of them speak `message`; `rng` is
//! the one source of randomness.
pub mod client;
pub mod controller;
pub mod message;
pub mod network;
pub mod oracle;
pub mod replica;
pub mod rng;
pub mod world;

pub use world::{Failure, RunReport, SimConfig, World};

/// Runs one seed.
pub fn run_seed(seed: u64, config: &SimConfig) -> Result<RunReport, Failure> {
    World::new(seed, config.clone()).run()
}

/// Runs `count` seeds from `first`; the first failure stops the run.
pub fn run_seeds(first: u64, count: u64, config: &SimConfig) -> Result<Vec<RunReport>, Failure> {
    (first..first + count)
        .map(|seed| run_seed(seed, config))
        .collect()
}
