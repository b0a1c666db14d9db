//! One running quorum node: opens the log and state machine in the data dir,
//! starts openraft, serves the quorum protocol on its port, and runs the
//! controller duties (broker sessions) while it is the Raft leader.
//! Quorum process, tokio runtime.
//!
//! With TLS configured (`tls`), every connection must finish a mutual TLS
//! handshake before its first frame is read: one that does not (a
//! plaintext client, a certificate no CA of the truststore signed, none at
//! all) is closed, and costs only its own unauthenticated slot. The shared
//! secret, when one is set too, is checked on top of the certificate.
use super::changes;
use super::config::QuorumConfig;
use super::model::ClusterView;
use super::protocol::{
    encode_frame, read_frame, secret_matches, write_frame, FrameError, NodeStatus, Request,
    RequestFrame, Response, WATCH_TIMEOUT_MS_MAX,
};
use super::raft::files::{disk_is_full, ensure_reserve};
use super::raft::log_store::LogStore;
use super::raft::network::Network;
use super::raft::state_machine::{lock_log, SharedChangeLog, StateMachine};
use super::raft::{BasicNode, NodeId, Raft};
use super::sessions::Sessions;
use super::state::{Command, CommandError, Proposal};
use super::tls::{ClientTls, ServerTls, Stream, TlsError};
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{Config, SnapshotPolicy};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Open authenticated client and peer connections one node serves at most.
const CONNECTIONS_MAX: usize = 1024;
/// Connections that have not yet sent an authenticated request, at most:
/// a flood of idle connections never takes the slots of authenticated ones.
const UNAUTHENTICATED_MAX: usize = 64;
/// How long a new connection has to send its first, authenticated, request
/// (after its TLS handshake, which has `tls::HANDSHAKE_TIMEOUT` of its own).
const AUTHENTICATION_DEADLINE: Duration = Duration::from_secs(3);
/// How long a write or a linearizable read may wait for the quorum.
const QUORUM_WAIT: Duration = Duration::from_secs(5);
/// Largest snapshot chunk sent to a follower (JSON grows it about 3.5 times,
/// which stays under the frame limit).
const SNAPSHOT_CHUNK_BYTES: u64 = 1 << 20;
/// Largest proposal taken from a client, in JSON bytes. With at most
/// `APPEND_ENTRIES_MAX` entries per AppendEntries, replication frames stay
/// under the frame limit whatever clients propose.
pub const PROPOSAL_BYTES_MAX: usize = 1 << 20;
/// Entries sent in one AppendEntries, at most.
const APPEND_ENTRIES_MAX: u64 = 12;

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("quorum data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("raft: {0}")]
    Raft(String),
    #[error("quorum TLS: {0}")]
    Tls(#[from] TlsError),
}

struct Node {
    id: NodeId,
    raft: Raft,
    view: watch::Receiver<Arc<ClusterView>>,
    changes: SharedChangeLog,
    sessions: Mutex<Sessions>,
    peers: BTreeMap<NodeId, String>,
    secret: Option<String>,
    /// Where the Raft log, snapshots and the disk reserve live.
    data_dir: PathBuf,
}

/// How often a node whose disk filled up checks for room to take its
/// reserve back.
const RESERVE_RETRY: Duration = Duration::from_secs(2);

fn raft_config(config: &QuorumConfig) -> Result<Arc<Config>, QuorumError> {
    let raft_config = Config {
        cluster_name: "tidemark-quorum".into(),
        heartbeat_interval: config.heartbeat_interval_ms,
        election_timeout_min: config.election_timeout_ms,
        election_timeout_max: config.election_timeout_ms * 2,
        install_snapshot_timeout: config.election_timeout_ms.max(2000),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_entries),
        max_in_snapshot_log_to_keep: config.snapshot_entries / 2,
        snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
        max_payload_entries: APPEND_ENTRIES_MAX,
        ..Default::default()
    };
    let validated = raft_config
        .validate()
        .map_err(|e| QuorumError::Raft(e.to_string()))?;
    Ok(Arc::new(validated))
}

/// Runs the node until `shutdown` completes.
pub async fn run(
    config: QuorumConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), QuorumError> {
    let data_err = |source| QuorumError::DataDir {
        path: config.data_dir.clone(),
        source,
    };
    let log = LogStore::open(&config.data_dir).map_err(data_err)?;
    let (state_machine, published) = StateMachine::open(&config.data_dir).map_err(data_err)?;
    let listener =
        TcpListener::bind(&config.listen)
            .await
            .map_err(|source| QuorumError::Listen {
                addr: config.listen.clone(),
                source,
            })?;
    let (server_tls, client_tls) = match &config.tls {
        Some(files) => (
            Some(Arc::new(ServerTls::load(files)?)),
            Some(ClientTls::load(files)?),
        ),
        None => (None, None),
    };
    let network = Network::new(config.secret.clone(), client_tls);
    let raft = Raft::new(
        config.node_id,
        raft_config(&config)?,
        network,
        log,
        state_machine,
    )
    .await
    .map_err(|e| QuorumError::Raft(e.to_string()))?;
    let node = Arc::new(Node {
        id: config.node_id,
        raft,
        view: published.view,
        changes: published.changes,
        sessions: Mutex::new(Sessions::new(Duration::from_millis(
            config.session_timeout_ms,
        ))),
        peers: config.peers.clone(),
        secret: config.secret.clone(),
        data_dir: config.data_dir.clone(),
    });
    if !ensure_reserve(&config.data_dir) {
        tracing::warn!(dir = %config.data_dir.display(), "no room for the quorum's disk reserve: it refuses new topics until there is");
    }
    println!(
        "quorum node {} listening on {}{}",
        config.node_id,
        config.listen,
        if server_tls.is_some() {
            " (mutual TLS)"
        } else {
            ""
        }
    );
    initialize_if_first(&node).await?;
    let tick = Duration::from_millis((config.session_timeout_ms / 10).clamp(20, 1000));
    let controller = tokio::spawn(control(node.clone(), tick));
    let reserve = tokio::spawn(keep_reserve(node.data_dir.clone()));
    tokio::select! {
        () = accept_loop(node.clone(), listener, server_tls) => {}
        () = shutdown => {}
    }
    controller.abort();
    reserve.abort();
    let _ = node.raft.shutdown().await;
    tracing::info!(node = node.id, "quorum node stopped");
    Ok(())
}

/// On the first start of a fresh group, the lowest-id node proposes the
/// membership of every peer. Everyone else (and every restart) waits to be
/// reached, or recovers from its data dir.
async fn initialize_if_first(node: &Node) -> Result<(), QuorumError> {
    if node.peers.keys().next() != Some(&node.id) {
        return Ok(());
    }
    let initialized = node
        .raft
        .is_initialized()
        .await
        .map_err(|e| QuorumError::Raft(e.to_string()))?;
    if initialized {
        return Ok(());
    }
    let members: BTreeMap<NodeId, BasicNode> = node
        .peers
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr)))
        .collect();
    match node.raft.initialize(members).await {
        Ok(()) => {
            tracing::info!(peers = ?node.peers, "quorum initialized");
            Ok(())
        }
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(QuorumError::Raft(e.to_string())),
    }
}

async fn accept_loop(node: Arc<Node>, listener: TcpListener, tls: Option<Arc<ServerTls>>) {
    let slots = Arc::new(ConnectionSlots {
        unauthenticated: Arc::new(Semaphore::new(UNAUTHENTICATED_MAX)),
        authenticated: Arc::new(Semaphore::new(CONNECTIONS_MAX)),
    });
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("quorum accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(pending) = slots.unauthenticated.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "quorum: too many unauthenticated connections, refusing one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (node, slots, tls) = (node.clone(), slots.clone(), tls.clone());
        tokio::spawn(async move {
            let stream = match tls {
                None => Stream::plain(stream),
                Some(tls) => match tls.accept(stream, &peer.to_string()).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::info!("quorum connection refused: {e}");
                        return;
                    }
                },
            };
            serve_connection(&node, stream, &slots, pending).await;
        });
    }
}

/// The two bounds on a node's connections.
struct ConnectionSlots {
    unauthenticated: Arc<Semaphore>,
    authenticated: Arc<Semaphore>,
}

/// Answers the requests of one connection in order, until it closes or
/// sends something that is not a frame. Its first request must carry the
/// secret and arrive within `AUTHENTICATION_DEADLINE`, or the connection is
/// closed: only then does it take an authenticated slot.
async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    node: &Node,
    mut stream: S,
    slots: &ConnectionSlots,
    pending: tokio::sync::OwnedSemaphorePermit,
) {
    let first = tokio::time::timeout(AUTHENTICATION_DEADLINE, read_frame(&mut stream)).await;
    let Ok(Ok(Some(body))) = first else {
        tracing::debug!("quorum connection closed before it authenticated");
        return;
    };
    let frame = match serde_json::from_slice::<RequestFrame>(&body) {
        Ok(frame) if node.authorized(frame.auth.as_deref()) => frame,
        Ok(_) => {
            let _ = write_frame(&mut stream, &Response::Unauthenticated).await;
            return;
        }
        Err(e) => {
            let message = format!("undecodable request: {e}");
            let _ = write_frame(&mut stream, &Response::BadRequest { message }).await;
            return;
        }
    };
    let Ok(_slot) = slots.authenticated.clone().try_acquire_owned() else {
        tracing::warn!("quorum: too many connections, closing an authenticated one");
        return;
    };
    drop(pending);
    let mut response = node.handle(frame.request).await;
    loop {
        if let Err(e) = write_response(&mut stream, &response).await {
            tracing::debug!("quorum connection closed: {e}");
            return;
        }
        let body = match read_frame(&mut stream).await {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!("quorum connection closed: {e}");
                return;
            }
        };
        response = match serde_json::from_slice::<RequestFrame>(&body) {
            Err(e) => Response::BadRequest {
                message: format!("undecodable request: {e}"),
            },
            Ok(frame) if !node.authorized(frame.auth.as_deref()) => Response::Unauthenticated,
            Ok(frame) => node.handle(frame.request).await,
        };
    }
}

/// Writes one response; one too large for a frame is answered with
/// `BadRequest` instead, so the connection stays usable.
async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: &Response,
) -> Result<(), FrameError> {
    match encode_frame(response) {
        Ok(frame) => {
            use tokio::io::AsyncWriteExt;
            stream.write_all(&frame).await?;
            stream.flush().await?;
            Ok(())
        }
        Err(FrameError::TooLarge(bytes)) => {
            let message = format!(
                "the answer of {bytes} bytes is over the frame limit: read the view in pages"
            );
            write_frame(stream, &Response::BadRequest { message }).await
        }
        Err(e) => Err(e),
    }
}

impl Node {
    fn authorized(&self, given: Option<&str>) -> bool {
        match &self.secret {
            None => true,
            Some(secret) => secret_matches(secret, given),
        }
    }

    fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn current_view(&self) -> Arc<ClusterView> {
        self.view.borrow().clone()
    }

    async fn handle(&self, request: Request) -> Response {
        match request {
            Request::AppendEntries(rpc) => {
                Response::AppendEntries(self.raft.append_entries(rpc).await)
            }
            Request::Vote(rpc) => Response::Vote(self.raft.vote(rpc).await),
            Request::InstallSnapshot(rpc) => {
                Response::InstallSnapshot(self.raft.install_snapshot(rpc).await)
            }
            Request::RegisterBroker { info } => {
                self.client_write(Proposal::new(Command::RegisterBroker { info }))
                    .await
            }
            Request::Heartbeat { broker_id } => self.heartbeat(broker_id).await,
            Request::Write(proposal) => self.client_write(proposal).await,
            Request::Read => self.read().await,
            Request::Watch {
                from_revision,
                timeout_ms,
            } => self.watch(from_revision, timeout_ms).await,
            Request::ReadPage { after, revision } => self.read_page(after, revision).await,
            Request::WatchPage { after } => self.watch_page(after),
            Request::WatchDelta {
                from_revision,
                timeout_ms,
            } => self.watch_delta(from_revision, timeout_ms).await,
            Request::Status => Response::Status(self.status()),
        }
    }

    fn not_leader(&self, leader: Option<NodeId>) -> Response {
        let leader_hint = leader
            .filter(|id| *id != self.id)
            .and_then(|id| self.peers.get(&id).map(|addr| (id, addr.clone())));
        Response::NotLeader { leader_hint }
    }

    /// Ok once this node is the leader and has applied everything committed
    /// before now (openraft's read index).
    async fn ensure_leader(&self) -> Result<(), Response> {
        use openraft::error::CheckIsLeaderError;
        match tokio::time::timeout(QUORUM_WAIT, self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                Err(self.not_leader(f.leader_id))
            }
            Ok(Err(e)) => Err(Response::Unavailable {
                message: e.to_string(),
            }),
            Err(_) => Err(Response::Unavailable {
                message: "no quorum answered in time".into(),
            }),
        }
    }

    async fn client_write(&self, mut proposal: Proposal) -> Response {
        let bytes = changes::json_len(&proposal);
        if bytes > PROPOSAL_BYTES_MAX {
            return Response::BadRequest {
                message: format!("a proposal of {bytes} bytes is over {PROPOSAL_BYTES_MAX}"),
            };
        }
        assign_topic_ids(&mut proposal.command);
        match &mut proposal.command {
            Command::InitCluster { .. } => {
                return Response::BadRequest {
                    message: "the cluster id is set by the quorum itself".into(),
                }
            }
            Command::Batch { commands }
                if commands
                    .iter()
                    .any(|c| matches!(c, Command::InitCluster { .. })) =>
            {
                return Response::BadRequest {
                    message: "the cluster id is set by the quorum itself".into(),
                }
            }
            _ => {}
        }
        if proposal.command.adds_state() && disk_is_full(&self.data_dir) {
            // Deletes, registrations and ISR changes still go through: they
            // are how the cluster stays available and frees space.
            return Response::Rejected(CommandError::DiskFull);
        }
        let registering = match &proposal.command {
            Command::RegisterBroker { info } => Some(info.broker_id),
            _ => None,
        };
        let response = self.propose(proposal).await;
        if let (Some(id), Response::Applied(_)) = (registering, &response) {
            self.sessions().heartbeat(id, Instant::now());
        }
        response
    }

    async fn propose(&self, proposal: Proposal) -> Response {
        match tokio::time::timeout(QUORUM_WAIT, self.raft.client_write(proposal)).await {
            Ok(Ok(written)) => match written.data {
                Ok(applied) => Response::Applied(applied),
                Err(rejected) => Response::Rejected(rejected),
            },
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                self.not_leader(f.leader_id)
            }
            Ok(Err(e)) => Response::Unavailable {
                message: e.to_string(),
            },
            Err(_) => Response::Unavailable {
                message: "the write was not committed in time (it may still be)".into(),
            },
        }
    }

    /// The view, linearizably; `Unavailable` until the first leader has
    /// given the cluster its id, so no reader ever sees a view without one.
    async fn read(&self) -> Response {
        match self.linearizable_view().await {
            Ok(view) => Response::View((*view).clone()),
            Err(response) => response,
        }
    }

    /// The current view once this node is the leader and has applied
    /// everything committed; `Unavailable` until the cluster has its id.
    async fn linearizable_view(&self) -> Result<Arc<ClusterView>, Response> {
        self.ensure_leader().await?;
        let view = self.current_view();
        if view.cluster_id.is_empty() {
            return Err(Response::Unavailable {
                message: "the quorum is still initializing".into(),
            });
        }
        Ok(view)
    }

    async fn heartbeat(&self, broker_id: model::BrokerId) -> Response {
        if let Err(response) = self.ensure_leader().await {
            return response;
        }
        if !self.current_view().brokers.contains_key(&broker_id) {
            return Response::UnknownBroker { broker_id };
        }
        self.sessions().heartbeat(broker_id, Instant::now());
        Response::Ok
    }

    /// One page of the view, linearizably, from the revision the read began at.
    async fn read_page(&self, after: Option<String>, revision: Option<u64>) -> Response {
        let view = match self.linearizable_view().await {
            Ok(view) => view,
            Err(response) => return response,
        };
        if revision.is_some_and(|r| r != view.revision) {
            return Response::ViewMoved {
                revision: view.revision,
            };
        }
        Response::Page(changes::page(&view, after.as_deref()))
    }

    fn watch_page(&self, after: Option<String>) -> Response {
        let view = self.current_view();
        Response::Page(changes::page(&view, after.as_deref()))
    }

    async fn watch_delta(&self, from_revision: u64, timeout_ms: u64) -> Response {
        let wait = Duration::from_millis(timeout_ms.min(WATCH_TIMEOUT_MS_MAX));
        let mut view = self.view.clone();
        let _ = tokio::time::timeout(wait, view.wait_for(|v| v.revision > from_revision)).await;
        let current = view.borrow().clone();
        let delta = changes::delta(&current, &lock_log(&self.changes), from_revision);
        match delta {
            Some(delta) => Response::Delta(delta),
            None => Response::TooFarBehind {
                revision: current.revision,
            },
        }
    }

    async fn watch(&self, from_revision: u64, timeout_ms: u64) -> Response {
        let wait = Duration::from_millis(timeout_ms.min(WATCH_TIMEOUT_MS_MAX));
        let mut view = self.view.clone();
        let _ = tokio::time::timeout(wait, view.wait_for(|v| v.revision > from_revision)).await;
        let current = view.borrow().clone();
        Response::View((*current).clone())
    }

    fn status(&self) -> NodeStatus {
        let m = self.raft.metrics().borrow().clone();
        NodeStatus {
            node_id: self.id,
            role: format!("{:?}", m.state),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            last_applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            revision: self.current_view().revision,
        }
    }

    fn is_leader(&self) -> Option<u64> {
        let m = self.raft.metrics();
        let m = m.borrow();
        (m.state.is_leader() && m.current_leader == Some(self.id)).then_some(m.current_term)
    }

    /// Called once per term this node leads: fresh sessions for every
    /// registered broker, and the cluster id if the group has none yet.
    async fn start_leading(&self, term: u64) -> bool {
        if self.ensure_leader().await.is_err() {
            return false;
        }
        let view = self.current_view();
        self.sessions()
            .start_leading(view.brokers.keys().copied(), Instant::now());
        if view.cluster_id.is_empty() {
            let cluster_id = uuid::Uuid::new_v4().simple().to_string();
            let init = Proposal::new(Command::InitCluster { cluster_id });
            if !matches!(self.propose(init).await, Response::Applied(_)) {
                return false;
            }
        }
        tracing::info!(node = self.id, term, "quorum leader: controller active");
        true
    }

    /// Proposes `ExpireBroker` for every broker whose session lapsed.
    async fn expire_lapsed(&self) {
        let registered: BTreeSet<model::BrokerId> =
            self.current_view().brokers.keys().copied().collect();
        let lapsed = self.sessions().expired(&registered, Instant::now());
        for broker_id in lapsed {
            tracing::info!(%broker_id, "broker session expired");
            let response = self
                .propose(Proposal::new(Command::ExpireBroker { broker_id }))
                .await;
            if !matches!(response, Response::Applied(_)) {
                tracing::warn!(%broker_id, ?response, "expiring a broker failed");
            }
        }
    }
}

/// Gives every `CreateTopic` without an id (also inside a batch) a random one.
fn assign_topic_ids(command: &mut Command) {
    match command {
        Command::CreateTopic { topic_id, .. } if topic_id.is_none() => {
            *topic_id = Some(uuid::Uuid::new_v4());
        }
        Command::Batch { commands } => commands.iter_mut().for_each(assign_topic_ids),
        _ => {}
    }
}

/// The controller: while this node leads, expires lapsed broker sessions.
/// Takes the disk reserve back once a full disk has room again.
async fn keep_reserve(dir: PathBuf) {
    loop {
        tokio::time::sleep(RESERVE_RETRY).await;
        if disk_is_full(&dir) && ensure_reserve(&dir) {
            tracing::info!(dir = %dir.display(), "the quorum's disk has room again: reserve restored");
        }
    }
}

async fn control(node: Arc<Node>, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading_term: Option<u64> = None;
    loop {
        interval.tick().await;
        let Some(term) = node.is_leader() else {
            if leading_term.take().is_some() {
                node.sessions().clear();
            }
            continue;
        };
        if leading_term != Some(term) {
            if !node.start_leading(term).await {
                continue;
            }
            leading_term = Some(term);
        }
        node.expire_lapsed().await;
    }
}
