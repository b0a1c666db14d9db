//! The Kafka wire protocol as Tidemark speaks it.
//!
//! Owns framing (length-prefixed frames, bounded before any allocation), the
//! table of supported APIs and versions, response encoding, and the hand
//! parser of RecordBatch v2 headers used on the produce path. Every other API
//! body is decoded and encoded with the `kafka-protocol` crate. Pure code, used
//! by every shard.
pub mod alloc_guard;
pub mod api;
pub mod batch;
pub mod frame;

pub use kafka_protocol::error::ResponseError;
