//! Raft RPCs from this quorum node to its peers, over the quorum protocol on
//! the peers' single port. One lazily opened connection per peer client
//! (mutual TLS when the node has TLS: it shows its own certificate and
//! checks the peer's); any failure drops it so the next RPC reconnects.
//! Quorum process, tokio.
use super::{BasicNode, NodeId, TypeConfig};
use crate::protocol::{call, FrameError, Request, RequestFrame, Response};
use crate::tls::{connect, ClientTls, ConnectError, Stream};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use std::time::Duration;

/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Network {
    secret: Option<String>,
    tls: Option<ClientTls>,
}

impl Network {
    pub fn new(secret: Option<String>, tls: Option<ClientTls>) -> Network {
        Network { secret, tls }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            secret: self.secret.clone(),
            tls: self.tls.clone(),
            stream: None,
        }
    }
}

pub struct PeerClient {
    target: NodeId,
    addr: String,
    secret: Option<String>,
    tls: Option<ClientTls>,
    stream: Option<Stream>,
}

#[derive(Debug, thiserror::Error)]
enum PeerError {
    #[error("request to {0} timed out")]
    Timeout(String),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("peer answered {0}")]
    Unexpected(String),
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn connect(&mut self) -> Result<&mut Stream, PeerError> {
        if self.stream.is_none() {
            let stream = connect(&self.addr, self.tls.as_ref(), CONNECT_TIMEOUT).await?;
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
            PeerError::Connect(_) => RPCError::Unreachable(Unreachable::new(e)),
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
