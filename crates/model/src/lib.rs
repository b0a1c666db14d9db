//! Tidemark's model: what every layer agrees on and nothing else. Kafka's
//! ACL model and its authorizer's decision (`acl`), typed ids
//! (broker ids, leader epochs, offsets, topic-partitions), Kafka's rules for
//! topic names and the typed topic configs (with Kafka's key names, defaults
//! and validation). Pure code, no I/O: every crate of the workspace
//! may import it, and it imports none of them.
pub mod acl;
pub mod ids;
pub mod limits;
pub mod topic_config;
pub mod topic_config_defs;
pub mod topic_name;

pub use ids::{BrokerId, LeaderEpoch, Offset, TopicPartition};
