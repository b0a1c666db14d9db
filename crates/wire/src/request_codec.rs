//! The client side of a Kafka connection's framing: a whole request frame
//! (size prefix, header, body) from a request, and a response from its
//! frame, with the correlation id checked. Tidemark's outgoing connections
//! share it: the blocking client of the CLI and a follower's connection to
//! its leader. Pure code, used on any thread.
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// kafka-protocol could not encode or decode a part (`what`).
    #[error("{what}: {detail}")]
    Malformed { what: String, detail: String },
    #[error("request larger than 2 GiB")]
    TooLarge,
    /// The response answers another request than the one sent.
    #[error("response correlation id {received}, expected {expected}")]
    CorrelationMismatch { expected: i32, received: i32 },
}

/// The API's name for messages ("Fetch"), "Request" if unknown.
fn api_label(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| "Request".to_string(), |k| format!("{k:?}"))
}

fn malformed(what: impl Into<String>, e: impl std::fmt::Display) -> CodecError {
    CodecError::Malformed {
        what: what.into(),
        detail: format!("{e:#}"),
    }
}

/// Encodes a whole request frame: size prefix, header, body.
pub fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> Result<Bytes, CodecError> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let header_version = R::header_version(version);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0u8; 4]);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| malformed("encoding request header", e))?;
    request
        .encode(&mut buf, version)
        .map_err(|e| malformed(api_label(R::KEY), e))?;
    let body_len = i32::try_from(buf.len() - 4).map_err(|_| CodecError::TooLarge)?;
    buf[..4].copy_from_slice(&body_len.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes a response frame (without its size prefix) and checks its
/// correlation id.
pub fn decode_response<R: Request>(
    mut frame: Bytes,
    version: i16,
    expected_correlation_id: i32,
) -> Result<R::Response, CodecError> {
    let header_version = <R::Response as HeaderVersion>::header_version(version);
    let header = ResponseHeader::decode(&mut frame, header_version)
        .map_err(|e| malformed("decoding response header", e))?;
    if header.correlation_id != expected_correlation_id {
        return Err(CodecError::CorrelationMismatch {
            expected: expected_correlation_id,
            received: header.correlation_id,
        });
    }
    <R::Response as Decodable>::decode(&mut frame, version)
        .map_err(|e| malformed(api_label(R::KEY), e))
}
