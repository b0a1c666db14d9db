//! Raft RPCs from this quorum node to its peers, over the quorum protocol on
//! the peers' single port. One lazily opened TCP connection per peer client;
//! any failure drops it so the next RPC reconnects. Quorum process, tokio.
use super::{BasicNode, NodeId, TypeConfig};
use crate::protocol::{call, FrameError, Request, RequestFrame, Response};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use std::time::Duration;
use tokio::net::TcpStream;

/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Network {
    secret: Option<String>,
}

impl Network {
    pub fn new(secret: Option<String>) -> Network {
        Network { secret }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            secret: self.secret.clone(),
            stream: None,
        }
    }
}

pub struct PeerClient {
    target: NodeId,
    addr: String,
    secret: Option<String>,
    stream: Option<TcpStream>,
}

#[derive(Debug, thiserror::Error)]
enum PeerError {
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
    #[error("request to {0} timed out")]
    Timeout(String),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("peer answered {0}")]
    Unexpected(String),
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn connect(&mut self) -> Result<&mut TcpStream, PeerError> {
        if self.stream.is_none() {
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
                .await
                .map_err(|_| PeerError::ConnectTimeout(self.addr.clone()))?
                .map_err(|source| PeerError::Connect {
                    addr: self.addr.clone(),
                    source,
                })?;
            let _ = stream.set_nodelay(true);
            self.stream = Some(stream);
        }
        self.stream
            .as_mut()
            .ok_or_else(|| PeerError::Unexpected("no connection".into()))
    }

    /// Sends `request`; on any failure the connection is dropped.
    async fn send(&mut self, request: Request, ttl: Duration) -> Result<Response, PeerError> {
        let frame = RequestFrame {
            auth: self.secret.clone(),
            request,
        };
        let addr = self.addr.clone();
        let result = async {
            let stream = self.connect().await?;
            tokio::time::timeout(ttl, call(stream, &frame))
                .await
                .map_err(|_| PeerError::Timeout(addr))?
                .map_err(PeerError::from)
        }
        .await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn unreachable<E: std::error::Error>(
        e: &PeerError,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        match e {
            PeerError::Connect { .. } | PeerError::ConnectTimeout(_) => {
                RPCError::Unreachable(Unreachable::new(e))
            }
            _ => RPCError::Network(NetworkError::new(e)),
        }
    }

    fn remote<T, E: std::error::Error>(
        &self,
        result: Result<T, RaftError<NodeId, E>>,
    ) -> RpcResult<T, E> {
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn unexpected(response: &Response) -> PeerError {
    let text = format!("{response:?}");
    PeerError::Unexpected(text.chars().take(200).collect())
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let response = self
            .send(Request::AppendEntries(rpc), option.hard_ttl())
            .await
            .map_err(|e| Self::unreachable(&e))?;
        match response {
            Response::AppendEntries(result) => self.remote(result),
            other => Err(Self::unreachable(&unexpected(&other))),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let response = self
            .send(Request::InstallSnapshot(rpc), option.hard_ttl())
            .await
            .map_err(|e| Self::unreachable(&e))?;
        match response {
            Response::InstallSnapshot(result) => self.remote(result),
            other => Err(Self::unreachable(&unexpected(&other))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let response = self
            .send(Request::Vote(rpc), option.hard_ttl())
            .await
            .map_err(|e| Self::unreachable(&e))?;
        match response {
            Response::Vote(result) => self.remote(result),
            other => Err(Self::unreachable(&unexpected(&other))),
        }
    }
}
