//! One blocking connection to one broker: request framing, bounded response
//! frames, correlation-id checks and ApiVersions negotiation. Runs on the CLI's
//! main thread (std::net, never on a shard).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Request, StrBytes};

use super::error::{codes, ClientError};
use super::security::{BrokerStream, Security};
use wire::request_codec;

/// The largest response frame the client accepts.
pub const FRAME_BYTES_MAX: usize = 256 * 1024 * 1024;

/// The ApiVersions version tried first.
const API_VERSIONS_FIRST: i16 = 3;

/// The display name of the APIs the client uses, for error messages.
pub fn api_name(key: i16) -> &'static str {
    match ApiKey::try_from(key) {
        Ok(ApiKey::Produce) => "Produce",
        Ok(ApiKey::Fetch) => "Fetch",
        Ok(ApiKey::ListOffsets) => "ListOffsets",
        Ok(ApiKey::Metadata) => "Metadata",
        Ok(ApiKey::ApiVersions) => "ApiVersions",
        Ok(ApiKey::CreateTopics) => "CreateTopics",
        Ok(ApiKey::DeleteTopics) => "DeleteTopics",
        Ok(ApiKey::DescribeConfigs) => "DescribeConfigs",
        Ok(ApiKey::FindCoordinator) => "FindCoordinator",
        Ok(ApiKey::JoinGroup) => "JoinGroup",
        Ok(ApiKey::SyncGroup) => "SyncGroup",
        Ok(ApiKey::Heartbeat) => "Heartbeat",
        Ok(ApiKey::LeaveGroup) => "LeaveGroup",
        Ok(ApiKey::OffsetCommit) => "OffsetCommit",
        Ok(ApiKey::OffsetFetch) => "OffsetFetch",
        Ok(ApiKey::ListGroups) => "ListGroups",
        Ok(ApiKey::DescribeGroups) => "DescribeGroups",
        Ok(ApiKey::DeleteGroups) => "DeleteGroups",
        _ => "Request",
    }
}

/// The highest version of an API this client sends, below kafka-protocol's own
/// maximum: Produce v12+ and Fetch v13+ address topics by id, which the client
/// does not track; OffsetFetch v8+ batches groups, which the client does not
/// need (one group per request).
fn client_max_version(key: i16) -> Option<i16> {
    match ApiKey::try_from(key) {
        Ok(ApiKey::Produce) => Some(11),
        Ok(ApiKey::Fetch) => Some(12),
        Ok(ApiKey::OffsetFetch) => Some(7),
        _ => None,
    }
}

/// The version ranges a broker announced in ApiVersions.
#[derive(Debug, Clone, Default)]
pub struct ApiVersionTable {
    ranges: HashMap<i16, (i16, i16)>,
}

impl ApiVersionTable {
    /// Builds a table from an ApiVersions response.
    pub fn from_response(response: &ApiVersionsResponse) -> Self {
        let ranges = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Self { ranges }
    }

    /// The broker's (min, max) for an API key.
    pub fn range(&self, key: i16) -> Option<(i16, i16)> {
        self.ranges.get(&key).copied()
    }

    /// The highest version both sides support for request type `R`.
    pub fn pick<R: Request>(&self) -> Result<i16, ClientError> {
        let mut client_max = R::VERSIONS.max;
        if let Some(cap) = client_max_version(R::KEY) {
            client_max = client_max.min(cap);
        }
        let client_min = R::VERSIONS.min;
        let unsupported = |broker: String| ClientError::UnsupportedVersion {
            api: api_name(R::KEY),
            broker,
            client: format!("v{client_min}..v{client_max}"),
        };
        let (broker_min, broker_max) = self
            .range(R::KEY)
            .ok_or_else(|| unsupported("not offered".to_owned()))?;
        let version = broker_max.min(client_max);
        if version < broker_min.max(client_min) {
            return Err(unsupported(format!("v{broker_min}..v{broker_max}")));
        }
        Ok(version)
    }
}

/// Encodes a whole request frame (`wire::request_codec`).
pub fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> Result<Bytes, ClientError> {
    Ok(request_codec::encode_request(
        request,
        version,
        correlation_id,
        client_id,
    )?)
}

/// Decodes a response frame and checks its correlation id
/// (`wire::request_codec`).
pub fn decode_response<R: Request>(
    frame: Bytes,
    version: i16,
    expected_correlation_id: i32,
) -> Result<R::Response, ClientError> {
    Ok(request_codec::decode_response::<R>(
        frame,
        version,
        expected_correlation_id,
    )?)
}

/// Validates a frame size read from the wire.
pub fn check_frame_size(size: i32) -> Result<usize, ClientError> {
    let refuse = || ClientError::FrameTooLarge {
        size: i64::from(size),
        limit: FRAME_BYTES_MAX,
    };
    let size = usize::try_from(size).map_err(|_| refuse())?;
    if size > FRAME_BYTES_MAX {
        return Err(refuse());
    }
    Ok(size)
}

/// Reads one size-prefixed frame, refusing sizes above [`FRAME_BYTES_MAX`].
pub fn read_frame<S: Read>(stream: &mut S, peer: &str) -> Result<Bytes, ClientError> {
    let mut size_bytes = [0u8; 4];
    stream
        .read_exact(&mut size_bytes)
        .map_err(|e| ClientError::io(format!("reading from {peer}"), e))?;
    let size = check_frame_size(i32::from_be_bytes(size_bytes))?;
    let mut frame = vec![0u8; size];
    stream
        .read_exact(&mut frame)
        .map_err(|e| ClientError::io(format!("reading from {peer}"), e))?;
    Ok(Bytes::from(frame))
}

/// Where the correlation id lies in an encoded request frame: after the size
/// prefix (4), the API key (2) and the API version (2), in every header version.
pub const CORRELATION_ID_AT: usize = 8;

/// Rewrites the correlation id of an encoded request frame (size prefix
/// included), so that a frame encoded once can be sent many times.
pub fn patch_correlation_id(frame: &mut [u8], correlation_id: i32) -> Result<(), ClientError> {
    let field = frame
        .get_mut(CORRELATION_ID_AT..CORRELATION_ID_AT + 4)
        .ok_or_else(|| ClientError::Protocol("request frame shorter than its header".into()))?;
    field.copy_from_slice(&correlation_id.to_be_bytes());
    Ok(())
}

/// A blocking reader that only writes into the buffer it is given, so a
/// frame can be read into uninitialised capacity (no zero-fill of every
/// response: it was a tenth of the bench consumer's time at 1 GB/s).
///
/// # Safety
/// `read(buf)` must not read any byte of `buf`, and must report at most
/// `buf.len()` bytes written.
pub unsafe trait ReadsIntoOnly: Read {}

// SAFETY: a socket's read is recv(2) into the buffer.
unsafe impl ReadsIntoOnly for TcpStream {}
// SAFETY: a slice's read copies from the slice into the buffer.
unsafe impl ReadsIntoOnly for &[u8] {}

/// Reads one size-prefixed frame into `buf` (reused from call to call: its
/// storage is reclaimed once the previous frame is dropped) and returns it
/// without its size prefix. Sizes above [`FRAME_BYTES_MAX`] are refused.
pub fn read_frame_into<S: ReadsIntoOnly>(
    stream: &mut S,
    peer: &str,
    buf: &mut BytesMut,
) -> Result<Bytes, ClientError> {
    let reading = |e| ClientError::io(format!("reading from {peer}"), e);
    let mut size_bytes = [0u8; 4];
    stream.read_exact(&mut size_bytes).map_err(reading)?;
    let size = check_frame_size(i32::from_be_bytes(size_bytes))?;
    buf.clear();
    buf.reserve(size);
    while buf.len() < size {
        let missing = size - buf.len();
        let spare = buf.spare_capacity_mut();
        let want = missing.min(spare.len());
        // SAFETY: the slice covers `want` bytes of `buf`'s allocation past
        // its length; `S: ReadsIntoOnly` only writes into it.
        let into = unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<u8>(), want) };
        let n = match stream.read(into) {
            Ok(0) => return Err(reading(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => n.min(want),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(reading(e)),
        };
        // SAFETY: the reader initialised the first `n` bytes past the length.
        unsafe { buf.set_len(buf.len() + n) };
    }
    Ok(buf.split().freeze())
}

/// A connection to one broker, with the API versions it announced.
#[derive(Debug)]
pub struct Connection {
    stream: BrokerStream,
    peer: String,
    client_id: String,
    next_correlation_id: i32,
    versions: ApiVersionTable,
}

impl Connection {
    /// Connects to `addr` (HOST:PORT) in plaintext and negotiates API versions.
    pub fn open(addr: &str, timeout: Duration, client_id: &str) -> Result<Self, ClientError> {
        Connection::open_secured(addr, timeout, client_id, &Security::default())
    }

    /// Connects to `addr`, secures the connection as `security` asks (TLS,
    /// then a SASL login after ApiVersions, as Kafka's clients order them).
    pub fn open_secured(
        addr: &str,
        timeout: Duration,
        client_id: &str,
        security: &Security,
    ) -> Result<Self, ClientError> {
        let stream = BrokerStream::over(connect(addr, timeout)?, addr, security)?;
        let mut conn = Connection {
            stream,
            peer: addr.to_owned(),
            client_id: client_id.to_owned(),
            next_correlation_id: 1,
            versions: ApiVersionTable::default(),
        };
        conn.versions = conn.negotiate_versions()?;
        if let Some(login) = &security.sasl {
            super::security::log_in(&mut conn, login)?;
        }
        Ok(conn)
    }

    /// The address this connection was opened to.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The versions the broker announced.
    pub fn versions(&self) -> &ApiVersionTable {
        &self.versions
    }

    /// Gives up the negotiated connection: its socket, the broker's API
    /// versions and the next correlation id, for callers that drive the
    /// socket themselves (the bench pipelines requests from two threads).
    /// Only a plaintext connection can be split so.
    pub fn into_parts(self) -> Result<(TcpStream, ApiVersionTable, i32), ClientError> {
        match self.stream {
            BrokerStream::Plain(socket) => Ok((socket, self.versions, self.next_correlation_id)),
            BrokerStream::Tls(_) => Err(ClientError::InvalidArgument(
                "a TLS connection cannot be split into its socket".into(),
            )),
        }
    }

    /// Changes the read timeout (a Fetch may wait on the broker's side).
    pub fn set_timeout(&self, timeout: Duration) -> Result<(), ClientError> {
        let timeout = Some(timeout.max(Duration::from_millis(1)));
        let socket = self.stream.socket();
        socket
            .set_read_timeout(timeout)
            .and_then(|()| socket.set_write_timeout(timeout))
            .map_err(|e| ClientError::io(format!("configuring socket to {}", self.peer), e))
    }

    /// Sends a request at the highest common version and reads its response.
    /// `build` receives the chosen version, so fields can depend on it.
    pub fn call<R: Request>(
        &mut self,
        build: impl FnOnce(i16) -> R,
    ) -> Result<(i16, R::Response), ClientError> {
        let version = self.versions.pick::<R>()?;
        let request = build(version);
        let correlation_id = self.send(&request, version)?;
        let frame = read_frame(&mut self.stream, &self.peer)?;
        let response = decode_response::<R>(frame, version, correlation_id)?;
        Ok((version, response))
    }

    /// Sends a request that the broker does not answer (Produce with acks=0).
    pub fn send_only<R: Request>(
        &mut self,
        build: impl FnOnce(i16) -> R,
    ) -> Result<(), ClientError> {
        let version = self.versions.pick::<R>()?;
        let request = build(version);
        self.send(&request, version).map(|_| ())
    }

    fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<i32, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1).max(1);
        let frame = encode_request(request, version, correlation_id, &self.client_id)?;
        self.stream
            .write_all(&frame)
            .map_err(|e| ClientError::io(format!("writing to {}", self.peer), e))?;
        Ok(correlation_id)
    }

    /// ApiVersions v3 first; on UNSUPPORTED_VERSION retry at the version the
    /// broker offers for ApiVersions (v0 if it offers none).
    fn negotiate_versions(&mut self) -> Result<ApiVersionTable, ClientError> {
        let first = self.api_versions_at(API_VERSIONS_FIRST)?;
        let response = match first.error_code {
            codes::NONE => first,
            codes::UNSUPPORTED_VERSION => {
                let retry = ApiVersionTable::from_response(&first)
                    .range(ApiVersionsRequest::KEY)
                    .map_or(0, |(_, max)| max.clamp(0, API_VERSIONS_FIRST - 1));
                self.api_versions_at(retry)?
            }
            code => return Err(ClientError::kafka("ApiVersions", code, "", None)),
        };
        if response.error_code != codes::NONE {
            return Err(ClientError::kafka(
                "ApiVersions",
                response.error_code,
                "",
                None,
            ));
        }
        Ok(ApiVersionTable::from_response(&response))
    }

    fn api_versions_at(&mut self, version: i16) -> Result<ApiVersionsResponse, ClientError> {
        let mut request = ApiVersionsRequest::default();
        if version >= 3 {
            request.client_software_name = StrBytes::from_static_str("tidemark");
            request.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        }
        let correlation_id = self.send(&request, version)?;
        let frame = read_frame(&mut self.stream, &self.peer)?;
        decode_api_versions(frame, version, correlation_id)
    }
}

/// Decodes an ApiVersions response. A broker that does not support the
/// requested version answers in the v0 layout, so fall back to it.
pub fn decode_api_versions(
    frame: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<ApiVersionsResponse, ClientError> {
    match decode_response::<ApiVersionsRequest>(frame.clone(), version, correlation_id) {
        Ok(response) if response.error_code != codes::UNSUPPORTED_VERSION || version == 0 => {
            Ok(response)
        }
        Ok(_) | Err(ClientError::Protocol(_)) if version > 0 => {
            decode_response::<ApiVersionsRequest>(frame, 0, correlation_id)
        }
        other => other,
    }
}

fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| ClientError::io(format!("resolving {addr}"), e))?
        .collect();
    let mut last_error = None;
    for sock_addr in addrs {
        match TcpStream::connect_timeout(&sock_addr, timeout) {
            Ok(stream) => return configure(stream, addr, timeout),
            Err(e) => last_error = Some(e),
        }
    }
    let e = last_error.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address resolved")
    });
    Err(ClientError::io(format!("connecting to {addr}"), e))
}

fn configure(stream: TcpStream, addr: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let timeout = Some(timeout.max(Duration::from_millis(1)));
    stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(timeout))
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| ClientError::io(format!("configuring socket to {addr}"), e))?;
    Ok(stream)
}

/// Splits the size prefix off an encoded frame (tests and tools).
pub fn strip_size_prefix(mut frame: Bytes) -> Result<Bytes, ClientError> {
    if frame.len() < 4 {
        return Err(ClientError::Protocol(
            "frame shorter than its size".to_owned(),
        ));
    }
    let size = check_frame_size(frame.get_i32())?;
    if size != frame.len() {
        return Err(ClientError::Protocol(format!(
            "frame announces {size} bytes but holds {}",
            frame.len()
        )));
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{
        FetchRequest, MetadataRequest, MetadataResponse, ProduceRequest, ResponseHeader, TopicName,
    };
    use kafka_protocol::protocol::decode_request_header_from_buffer;
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

    fn table(entries: &[(i16, i16, i16)]) -> ApiVersionTable {
        let response = ApiVersionsResponse::default().with_api_keys(
            entries
                .iter()
                .map(|&(k, min, max)| {
                    ApiVersion::default()
                        .with_api_key(k)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        );
        ApiVersionTable::from_response(&response)
    }

    #[test]
    fn request_round_trip() {
        for version in [1i16, 4, 9, 12] {
            let topic = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t"))));
            let request = MetadataRequest::default().with_topics(Some(vec![topic]));
            let frame = encode_request(&request, version, 42, "cli").expect("encode");
            let mut body = strip_size_prefix(frame).expect("size");
            let header = decode_request_header_from_buffer(&mut body).expect("header");
            assert_eq!(header.request_api_key, 3);
            assert_eq!(header.request_api_version, version);
            assert_eq!(header.correlation_id, 42);
            assert_eq!(header.client_id.as_deref(), Some("cli"));
            let decoded = MetadataRequest::decode(&mut body, version).expect("body");
            assert_eq!(decoded, request);
        }
    }

    #[test]
    fn response_correlation_checked() {
        let response = MetadataResponse::default();
        for version in [1i16, 9, 12] {
            let mut buf = BytesMut::new();
            let header = ResponseHeader::default().with_correlation_id(7);
            let hv = MetadataResponse::header_version(version);
            header.encode(&mut buf, hv).expect("header");
            response.encode(&mut buf, version).expect("body");
            let frame = buf.freeze();
            let ok = decode_response::<MetadataRequest>(frame.clone(), version, 7).expect("ok");
            assert_eq!(ok, response);
            let err = decode_response::<MetadataRequest>(frame, version, 8).unwrap_err();
            assert!(matches!(
                err,
                ClientError::CorrelationMismatch {
                    expected: 8,
                    received: 7
                }
            ));
        }
    }

    #[test]
    fn truncated_response_is_an_error_not_a_panic() {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(1)
            .encode(&mut buf, 1)
            .expect("header");
        buf.extend_from_slice(&[0, 0, 0]);
        let err = decode_response::<MetadataRequest>(buf.freeze(), 12, 1).unwrap_err();
        assert!(matches!(err, ClientError::Protocol(_)));
    }

    #[test]
    fn frame_size_bounded() {
        assert!(check_frame_size(-1).is_err());
        assert!(check_frame_size(i32::MAX).is_err());
        assert_eq!(check_frame_size(16).expect("small"), 16);
        let mut wire: &[u8] = &[0x7f, 0xff, 0xff, 0xff, 0, 0];
        assert!(matches!(
            read_frame(&mut wire, "test"),
            Err(ClientError::FrameTooLarge { .. })
        ));
        let mut short: &[u8] = &[0, 0, 0, 8, 1, 2];
        assert!(matches!(
            read_frame(&mut short, "test"),
            Err(ClientError::Io { .. })
        ));
    }

    #[test]
    fn correlation_id_patch_and_reused_frame_buffer() {
        let request = MetadataRequest::default();
        let mut frame = encode_request(&request, 9, 1, "cli")
            .expect("encode")
            .to_vec();
        patch_correlation_id(&mut frame, 77).expect("patch");
        let mut body = strip_size_prefix(Bytes::from(frame.clone())).expect("size");
        let header = decode_request_header_from_buffer(&mut body).expect("header");
        assert_eq!(header.correlation_id, 77);
        assert!(patch_correlation_id(&mut [0u8; 6], 1).is_err());
        let mut wire: &[u8] = &[0, 0, 0, 2, 7, 8, 0, 0, 0, 1, 9];
        let mut buf = BytesMut::new();
        let first = read_frame_into(&mut wire, "test", &mut buf).expect("first");
        assert_eq!(&first[..], &[7, 8]);
        drop(first);
        let second = read_frame_into(&mut wire, "test", &mut buf).expect("second");
        assert_eq!(&second[..], &[9]);
    }

    #[test]
    fn version_pick_respects_caps() {
        let t = table(&[(0, 0, 13), (1, 0, 17), (3, 0, 12), (19, 0, 1)]);
        assert_eq!(t.pick::<ProduceRequest>().expect("produce"), 11);
        assert_eq!(t.pick::<FetchRequest>().expect("fetch"), 12);
        assert_eq!(t.pick::<MetadataRequest>().expect("metadata"), 12);
        // CreateTopics: kafka-protocol encodes v2..v7 only.
        let err = t
            .pick::<kafka_protocol::messages::CreateTopicsRequest>()
            .unwrap_err();
        assert!(matches!(
            err,
            ClientError::UnsupportedVersion {
                api: "CreateTopics",
                ..
            }
        ));
        assert!(t
            .pick::<kafka_protocol::messages::ListOffsetsRequest>()
            .is_err());
    }

    #[test]
    fn api_versions_v0_fallback() {
        // A broker that rejects v3 answers in the v0 layout with error 35.
        let response = ApiVersionsResponse::default()
            .with_error_code(35)
            .with_api_keys(vec![ApiVersion::default()
                .with_api_key(18)
                .with_min_version(0)
                .with_max_version(2)]);
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(1)
            .encode(&mut buf, 0)
            .expect("header");
        response.encode(&mut buf, 0).expect("body");
        let decoded = decode_api_versions(buf.freeze(), 3, 1).expect("decoded");
        assert_eq!(decoded.error_code, 35);
        let t = ApiVersionTable::from_response(&decoded);
        assert_eq!(t.range(18), Some((0, 2)));
    }
}
