//! The Kafka listeners of each shard and their client connections.
//!
//! Every shard binds each listener's port (glommio sets SO_REUSEPORT), so the kernel
//! spreads connections over shards; a connection then lives on the shard
//! that accepted it. `accept` admits connections against the broker's limits
//! (`limits`: `max.connections`, `max.connections.per.ip`, the descriptors
//! kept for the logs) and backs off when accepting fails; `connection` runs
//! each connection's pipeline with its bounds and timeouts; `tls` builds a
//! TLS listener's config and runs each connection's handshake; `sasl`
//! authenticates a connection on a SASL listener before its pipeline starts.
mod accept;
mod connection;
mod limits;
pub mod oauth;
pub mod sasl;
pub mod tls;

pub use accept::{accept_loop, ListenerContext};
pub use limits::{raise_nofile_limit, ConnectionTracker, Refusal};
