//! The client's error type: I/O, protocol decode, Kafka error codes (with the
//! API that returned them and the code's canonical name), version negotiation.
//! Used on the CLI's main thread only.

use kafka_protocol::error::ResponseError;

impl From<wire::request_codec::CodecError> for ClientError {
    fn from(e: wire::request_codec::CodecError) -> ClientError {
        use wire::request_codec::CodecError;
        match e {
            CodecError::CorrelationMismatch { expected, received } => {
                ClientError::CorrelationMismatch { expected, received }
            }
            other => ClientError::Protocol(other.to_string()),
        }
    }
}

/// Everything that can go wrong while talking to a Kafka-compatible cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The bytes on the wire could not be encoded or decoded.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A broker answered with a Kafka error code.
    #[error(
        "{api}: {name} ({code}){}{}",
        on_resource(resource),
        with_message(message)
    )]
    Kafka {
        api: &'static str,
        code: i16,
        name: String,
        resource: String,
        message: Option<String>,
    },
    /// No version of the API is supported by both the broker and this client.
    #[error(
        "{api}: no version supported by both the broker ({broker}) and this client ({client})"
    )]
    UnsupportedVersion {
        api: &'static str,
        broker: String,
        client: String,
    },
    /// A frame larger than the client accepts was announced by the peer.
    #[error("frame of {size} bytes refused (the limit is {limit} bytes)")]
    FrameTooLarge { size: i64, limit: usize },
    /// A response carried another correlation id than the request's.
    #[error("correlation id mismatch: sent {expected}, received {received}")]
    CorrelationMismatch { expected: i32, received: i32 },
    /// The fetch position lies outside the partition's log.
    #[error(
        "{topic}-{partition}: offset {offset} is out of range \
         (log start {log_start_offset}, high watermark {high_watermark})"
    )]
    OffsetOutOfRange {
        topic: String,
        partition: i32,
        offset: i64,
        log_start_offset: i64,
        high_watermark: i64,
    },
    /// The cluster's metadata does not allow the operation.
    #[error("{0}")]
    Metadata(String),
    /// A command-line value is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Some records of a produce run were not acknowledged.
    #[error("{failed} of {total} records failed")]
    ProduceFailed { failed: u64, total: u64 },
}

fn on_resource(resource: &str) -> String {
    if resource.is_empty() {
        String::new()
    } else {
        format!(" on {resource}")
    }
}

fn with_message(message: &Option<String>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

impl ClientError {
    /// Wraps an I/O error with what the client was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ClientError::Io {
            context: context.into(),
            source,
        }
    }

    /// Builds the error for a non-zero Kafka error code.
    pub fn kafka(
        api: &'static str,
        code: i16,
        resource: impl Into<String>,
        message: Option<&str>,
    ) -> Self {
        ClientError::Kafka {
            api,
            code,
            name: error_name(code),
            resource: resource.into(),
            message: message.map(str::to_owned),
        }
    }

    /// A copy of this error (an I/O error keeps its kind and message), for
    /// reporting one failure against several partitions.
    pub fn duplicate(&self) -> ClientError {
        match self {
            ClientError::Io { context, source } => ClientError::Io {
                context: context.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            ClientError::Protocol(m) => ClientError::Protocol(m.clone()),
            ClientError::Kafka {
                api,
                code,
                name,
                resource,
                message,
            } => ClientError::Kafka {
                api,
                code: *code,
                name: name.clone(),
                resource: resource.clone(),
                message: message.clone(),
            },
            ClientError::UnsupportedVersion {
                api,
                broker,
                client,
            } => ClientError::UnsupportedVersion {
                api,
                broker: broker.clone(),
                client: client.clone(),
            },
            ClientError::FrameTooLarge { size, limit } => ClientError::FrameTooLarge {
                size: *size,
                limit: *limit,
            },
            ClientError::CorrelationMismatch { expected, received } => {
                ClientError::CorrelationMismatch {
                    expected: *expected,
                    received: *received,
                }
            }
            ClientError::OffsetOutOfRange {
                topic,
                partition,
                offset,
                log_start_offset,
                high_watermark,
            } => ClientError::OffsetOutOfRange {
                topic: topic.clone(),
                partition: *partition,
                offset: *offset,
                log_start_offset: *log_start_offset,
                high_watermark: *high_watermark,
            },
            ClientError::Metadata(m) => ClientError::Metadata(m.clone()),
            ClientError::InvalidArgument(m) => ClientError::InvalidArgument(m.clone()),
            ClientError::ProduceFailed { failed, total } => ClientError::ProduceFailed {
                failed: *failed,
                total: *total,
            },
        }
    }

    /// The Kafka error code, when this error carries one.
    pub fn kafka_code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Maps a codec error (kafka-protocol reports `anyhow` errors) to `Protocol`.
pub fn protocol_error<E: std::fmt::Display>(context: &str, e: E) -> ClientError {
    ClientError::Protocol(format!("{context}: {e:#}"))
}

/// Kafka error codes the client acts on.
pub mod codes {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
}

/// Whether the group coordinator moved or is not ready: look it up again.
pub fn is_coordinator_error(code: i16) -> bool {
    matches!(
        code,
        codes::NOT_COORDINATOR
            | codes::COORDINATOR_NOT_AVAILABLE
            | codes::COORDINATOR_LOAD_IN_PROGRESS
    )
}

/// Whether a group member must join the group again (its generation ended).
pub fn needs_rejoin(code: i16) -> bool {
    matches!(
        code,
        codes::REBALANCE_IN_PROGRESS | codes::ILLEGAL_GENERATION | codes::UNKNOWN_MEMBER_ID
    )
}

/// Whether a Metadata refresh and one retry may cure this error code.
pub fn is_stale_metadata(code: i16) -> bool {
    matches!(
        code,
        codes::NOT_LEADER_OR_FOLLOWER
            | codes::UNKNOWN_TOPIC_OR_PARTITION
            | codes::LEADER_NOT_AVAILABLE
    )
}

/// The canonical (Java) name of a Kafka error code, e.g. `TOPIC_ALREADY_EXISTS`.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(_)) => "UNKNOWN_ERROR_CODE".to_owned(),
        Some(known) => screaming_snake(&format!("{known:?}")),
    }
}

/// `TopicAlreadyExists` -> `TOPIC_ALREADY_EXISTS`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_java() {
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE");
    }

    #[test]
    fn kafka_error_display() {
        let e = ClientError::kafka("CreateTopics", 36, "", None);
        assert_eq!(e.to_string(), "CreateTopics: TOPIC_ALREADY_EXISTS (36)");
        let e = ClientError::kafka("Produce", 6, "t-1", Some("moved"));
        assert_eq!(
            e.to_string(),
            "Produce: NOT_LEADER_OR_FOLLOWER (6) on t-1: moved"
        );
    }
}
