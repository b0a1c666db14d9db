//! One Kafka-protocol connection from a follower's shard to its leader
//! broker, on glommio's TcpStream: a request at a time, each bounded by a
//! timeout. Requests are encoded and responses decoded by the same
//! functions the blocking client uses (`wire::request_codec`).
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use kafka_protocol::protocol::Request;
use std::future::Future;
use std::time::Duration;
use thiserror::Error;
use wire::frame::{read_frame, FrameError};
use wire::request_codec::{decode_response, encode_request, CodecError};

/// Largest response a follower accepts from its leader.
const RESPONSE_BYTES_MAX: u32 = 256 << 20;

#[derive(Debug, Error)]
pub enum PeerError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Protocol(#[from] CodecError),
    #[error("the leader closed the connection")]
    Closed,
}

pub struct PeerConnection {
    stream: TcpStream,
    pub addr: String,
    client_id: String,
    correlation_id: i32,
}

/// `future`, or `None` if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
    let timer = glommio::timer::sleep(limit);
    match futures::future::select(Box::pin(future), Box::pin(timer)).await {
        futures::future::Either::Left((value, _)) => Some(value),
        futures::future::Either::Right(_) => None,
    }
}

impl PeerConnection {
    pub async fn connect(
        addr: &str,
        local_id: model::BrokerId,
        limit: Duration,
    ) -> Result<Self, PeerError> {
        let stream = within(limit, TcpStream::connect(addr))
            .await
            .ok_or(PeerError::Timeout("connect"))?
            .map_err(|e| {
                PeerError::Connect(addr.to_string(), std::io::Error::other(e.to_string()))
            })?;
        let _ = stream.set_nodelay(true);
        Ok(PeerConnection {
            stream,
            addr: addr.to_string(),
            client_id: format!("tidemark-replica-{local_id}"),
            correlation_id: 0,
        })
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        limit: Duration,
    ) -> Result<R::Response, PeerError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let id = self.correlation_id;
        let frame = encode_request(request, version, id, &self.client_id)?;
        let exchange = async {
            self.stream.write_all(&frame).await?;
            let body = read_frame(&mut self.stream, RESPONSE_BYTES_MAX)
                .await?
                .ok_or(PeerError::Closed)?;
            Ok::<_, PeerError>(body)
        };
        let body = within(limit, exchange)
            .await
            .ok_or(PeerError::Timeout("request"))??;
        Ok(decode_response::<R>(body.freeze(), version, id)?)
    }
}
