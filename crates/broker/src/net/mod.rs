//! The Kafka listener of each shard and its client connections.
//!
//! Every shard binds the same port (glommio sets SO_REUSEPORT), so the kernel
//! spreads connections over shards; a connection then lives on the shard
//! that accepted it. `accept` admits connections against the broker's limits
//! (`limits`: `max.connections`, `max.connections.per.ip`, the descriptors
//! kept for the logs) and backs off when accepting fails; `connection` runs
//! each connection's pipeline with its bounds and timeouts.
mod accept;
mod connection;
mod limits;

pub use accept::accept_loop;
pub use limits::{raise_nofile_limit, ConnectionTracker, Refusal};
