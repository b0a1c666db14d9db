//! The Kafka wire protocol as Tidemark speaks it.
//!
//! Owns framing (length-prefixed frames, bounded before any allocation), the
//! table of supported APIs and versions, response encoding, and the hand
//! parser of RecordBatch v2 headers used on the produce path, with the bounded,
//! streaming reader of their records, compressed or not, and their
//! recompression to a topic's codec, and SCRAM's shared half (`scram`). Every other API
//! body is decoded and encoded with the `kafka-protocol` crate. Pure code, used
//! by every shard.
pub mod alloc_guard;
pub mod api;
pub mod batch;
pub mod frame;
pub mod recompress;
pub mod records;
pub mod request_codec;
pub mod scram;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use kafka_protocol::error::ResponseError;
