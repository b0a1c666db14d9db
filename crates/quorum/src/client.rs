//! `QuorumClient`: how brokers and admin tools talk to the quorum service.
//! Async on tokio (brokers run it on a dedicated tokio thread, off the
//! glommio shards). It keeps one connection, sends to the node it believes
//! leads, follows `NotLeader` hints, moves on to the next endpoint when a
//! node cannot be reached or has no quorum, and gives up after
//! `retry_timeout`. A write retried after a lost connection may have been
//! applied already: use `expected_revision` where that matters.
//!
//! Requests on one client go one at a time over its one connection, so a
//! `watch` holds the client for as long as it waits: a broker uses one client
//! to watch and another for heartbeats and writes.
//!
//! `with_tls` makes it speak mutual TLS (`tls::ClientTls`): it shows its
//! certificate and checks the node's against its truststore and the host
//! of the endpoint it dialled (or of the leader hint it followed).
//!
//! The view comes in pieces that each fit a frame: `read` assembles pages,
//! `watch_changes` returns deltas (or the whole view, paged, when the
//! watcher is too far behind).
use super::changes::{ViewDelta, ViewPage};
use super::model::{BrokerInfo, ClusterView, PartitionState};
use super::protocol::{
    call_encoded, encode_frame, FrameError, NodeStatus, Request, RequestFrame, Response,
};
use super::state::{Applied, Command, CommandError, Outcome, Proposal};
use super::tls::{connect, ClientTls, Stream};
use model::{BrokerId, LeaderEpoch};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Default bound on one request to one node.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(6);
/// Default bound on a request including retries over the endpoints.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Times a paged linearizable read starts again because the view moved.
const READ_RESTARTS_MAX: usize = 20;
/// Pages of one view, at most (4 MiB each: far beyond any real cluster).
const PAGES_MAX: usize = 1 << 14;

/// What a watch returns.
#[derive(Debug)]
pub enum ViewChange {
    /// What changed since the revision asked from.
    Delta(ViewDelta),
    /// The whole view, read in pages because the watcher was too far behind.
    /// Pages may come from successive revisions: the view's revision is the
    /// first page's, so the next delta brings whatever moved while paging.
    Full(ClusterView),
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no quorum node answered within {timeout:?} (last: {last})")]
    Unavailable { timeout: Duration, last: String },
    #[error("rejected: {0}")]
    Rejected(CommandError),
    #[error("broker {0} is not registered (register again)")]
    UnknownBroker(BrokerId),
    #[error("the quorum refused the shared secret")]
    Unauthenticated,
    #[error("the quorum refused the request: {0}")]
    BadRequest(String),
    #[error("unexpected response: {0}")]
    Unexpected(String),
    #[error("no quorum endpoints given")]
    NoEndpoints,
    #[error(transparent)]
    Frame(#[from] FrameError),
}

fn unexpected(response: Response) -> ClientError {
    let text = format!("{response:?}");
    ClientError::Unexpected(text.chars().take(300).collect())
}

pub struct QuorumClient {
    endpoints: Vec<String>,
    secret: Option<String>,
    leader: Option<String>,
    next_endpoint: usize,
    conn: Option<(String, Stream)>,
    tls: Option<ClientTls>,
    request_timeout: Duration,
    retry_timeout: Duration,
}

impl QuorumClient {
    /// `endpoints` are the quorum nodes' `host:port`; `secret` the shared secret, if any.
    pub fn new(endpoints: Vec<String>, secret: Option<String>) -> QuorumClient {
        QuorumClient {
            endpoints,
            secret,
            leader: None,
            next_endpoint: 0,
            conn: None,
            tls: None,
            request_timeout: REQUEST_TIMEOUT,
            retry_timeout: RETRY_TIMEOUT,
        }
    }

    pub fn with_timeouts(
        mut self,
        request_timeout: Duration,
        retry_timeout: Duration,
    ) -> QuorumClient {
        self.request_timeout = request_timeout;
        self.retry_timeout = retry_timeout;
        self
    }

    /// Speaks mutual TLS to every node (a TLS quorum refuses anything else).
    pub fn with_tls(mut self, tls: ClientTls) -> QuorumClient {
        self.tls = Some(tls);
        self.conn = None;
        self
    }

    /// The endpoint that last answered as leader.
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    fn encode(&self, request: Request) -> Result<Vec<u8>, ClientError> {
        let frame = RequestFrame {
            auth: self.secret.clone(),
            request,
        };
        Ok(encode_frame(&frame)?)
    }

    /// One attempt at one endpoint, reusing the connection when it is there.
    async fn attempt(
        &mut self,
        endpoint: &str,
        frame: &[u8],
        timeout: Duration,
    ) -> Result<Response, String> {
        let mut stream = match self.conn.take() {
            Some((addr, stream)) if addr == endpoint => stream,
            _ => connect(endpoint, self.tls.as_ref(), CONNECT_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?,
        };
        let response = tokio::time::timeout(timeout, call_encoded(&mut stream, frame))
            .await
            .map_err(|_| format!("{endpoint} did not answer in {timeout:?}"))?
            .map_err(|e| format!("{endpoint}: {e}"))?;
        self.conn = Some((endpoint.to_string(), stream));
        Ok(response)
    }

    /// Sends `request` to `endpoint` only: no redirects, no retries.
    pub async fn send_to(
        &mut self,
        endpoint: &str,
        request: Request,
    ) -> Result<Response, ClientError> {
        let timeout = self.attempt_timeout(&request);
        let frame = self.encode(request)?;
        self.attempt(endpoint, &frame, timeout)
            .await
            .map_err(|last| ClientError::Unavailable { timeout, last })
    }

    fn attempt_timeout(&self, request: &Request) -> Duration {
        match request {
            Request::Watch { timeout_ms, .. } | Request::WatchDelta { timeout_ms, .. } => {
                self.request_timeout + Duration::from_millis(*timeout_ms)
            }
            _ => self.request_timeout,
        }
    }

    fn rotate(&mut self) -> String {
        self.leader = None;
        self.next_endpoint = (self.next_endpoint + 1) % self.endpoints.len().max(1);
        self.endpoints[self.next_endpoint].clone()
    }

    /// Sends `request` to the leader, following hints and retrying other
    /// endpoints until `retry_timeout`. Returns the first answer that is not
    /// a redirect or a transient failure.
    pub async fn send(&mut self, request: Request) -> Result<Response, ClientError> {
        if self.endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        let timeout = self.attempt_timeout(&request);
        let frame = self.encode(request)?;
        let deadline = Instant::now() + self.retry_timeout;
        let mut target = self
            .leader
            .clone()
            .unwrap_or_else(|| self.endpoints[self.next_endpoint].clone());
        let mut backoff = Duration::from_millis(20);
        let mut last = String::from("no attempt");
        // Hints followed without a pause: bounded, in case nodes disagree.
        let mut hops = 0;
        while Instant::now() < deadline {
            match self.attempt(&target, &frame, timeout).await {
                Ok(Response::NotLeader {
                    leader_hint: Some((_, addr)),
                }) if addr != target && hops < self.endpoints.len() => {
                    last = format!("{target} is not the leader");
                    target = addr;
                    self.leader = Some(target.clone());
                    hops += 1;
                    continue;
                }
                Ok(Response::NotLeader { .. }) => last = format!("{target} knows no leader"),
                Ok(Response::Unavailable { message }) => last = format!("{target}: {message}"),
                Ok(response) => {
                    self.leader = Some(target);
                    return Ok(response);
                }
                Err(e) => last = e,
            }
            hops = 0;
            target = self.rotate();
            tokio::time::sleep(backoff.min(deadline.saturating_duration_since(Instant::now())))
                .await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        Err(ClientError::Unavailable {
            timeout: self.retry_timeout,
            last,
        })
    }

    /// Proposes a command (compare-and-set when `expected_revision` is set).
    pub async fn write(&mut self, proposal: Proposal) -> Result<Applied, ClientError> {
        expect_applied(self.send(Request::Write(proposal)).await?)
    }

    pub async fn propose(&mut self, command: Command) -> Result<Applied, ClientError> {
        self.write(Proposal::new(command)).await
    }

    /// Registers (or re-registers) a broker and starts its session.
    pub async fn register_broker(&mut self, info: BrokerInfo) -> Result<Applied, ClientError> {
        expect_applied(self.send(Request::RegisterBroker { info }).await?)
    }

    /// Keeps a broker's session alive; `UnknownBroker` means register again.
    pub async fn heartbeat(&mut self, broker_id: BrokerId) -> Result<(), ClientError> {
        match self.send(Request::Heartbeat { broker_id }).await? {
            Response::Ok => Ok(()),
            Response::UnknownBroker { broker_id } => Err(ClientError::UnknownBroker(broker_id)),
            other => Err(refused(other)),
        }
    }

    pub async fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<uuid::Uuid, ClientError> {
        let applied = self
            .propose(Command::CreateTopic {
                name: name.to_string(),
                partitions,
                replication_factor,
                configs,
                topic_id: None,
            })
            .await?;
        match applied.outcome {
            Outcome::TopicCreated { topic_id } => Ok(topic_id),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    pub async fn delete_topic(&mut self, name: &str) -> Result<Applied, ClientError> {
        self.propose(Command::DeleteTopic {
            name: name.to_string(),
        })
        .await
    }

    /// A partition leader's ISR change; returns the partition's new state.
    pub async fn alter_partition(
        &mut self,
        topic: &str,
        partition: i32,
        leader_id: BrokerId,
        leader_epoch: LeaderEpoch,
        partition_epoch: i32,
        new_isr: Vec<BrokerId>,
    ) -> Result<PartitionState, ClientError> {
        let applied = self
            .propose(Command::AlterPartition {
                topic: topic.to_string(),
                partition,
                leader_id,
                leader_epoch,
                partition_epoch,
                new_isr,
            })
            .await?;
        match applied.outcome {
            Outcome::Partition(state) => Ok(state),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// A block of producer ids: `(first_id, count)`.
    pub async fn allocate_producer_ids(
        &mut self,
        broker_id: BrokerId,
        count: i64,
    ) -> Result<(i64, i64), ClientError> {
        let applied = self
            .propose(Command::AllocateProducerIds { broker_id, count })
            .await?;
        match applied.outcome {
            Outcome::ProducerIds { first_id, count } => Ok((first_id, count)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// A linearizable read of the whole cluster view (from the leader), in
    /// pages of one revision.
    pub async fn read(&mut self) -> Result<ClusterView, ClientError> {
        for _ in 0..READ_RESTARTS_MAX {
            if let Some(view) = self.read_pages().await? {
                return Ok(view);
            }
        }
        Err(ClientError::Unavailable {
            timeout: self.retry_timeout,
            last: "the view kept changing while it was read".into(),
        })
    }

    /// One paged read; `None` when the view moved on between pages.
    async fn read_pages(&mut self) -> Result<Option<ClusterView>, ClientError> {
        let first = self
            .send(Request::ReadPage {
                after: None,
                revision: None,
            })
            .await?;
        let Some(first) = expect_page(first)? else {
            return Ok(None);
        };
        let revision = Some(first.revision);
        let mut after = first.next_after.clone();
        let mut view = ClusterView::from_page(first);
        for _ in 0..PAGES_MAX {
            let Some(name) = after.take() else {
                return Ok(Some(view));
            };
            let next = self
                .send(Request::ReadPage {
                    after: Some(name),
                    revision,
                })
                .await?;
            let Some(page) = expect_page(next)? else {
                return Ok(None);
            };
            after = page.next_after.clone();
            view.add_topics(page.topics);
        }
        Err(ClientError::Unexpected(
            "the view has too many pages".into(),
        ))
    }

    /// The applied view of the node answering, in pages that may come from
    /// successive revisions (see `ViewChange::Full`).
    pub async fn watch_pages(&mut self) -> Result<ClusterView, ClientError> {
        let first = self.send(Request::WatchPage { after: None }).await?;
        let Some(first) = expect_page(first)? else {
            return Err(ClientError::Unexpected("a watch page moved".into()));
        };
        let mut after = first.next_after.clone();
        let mut view = ClusterView::from_page(first);
        for _ in 0..PAGES_MAX {
            let Some(name) = after.take() else {
                return Ok(view);
            };
            let next = self.send(Request::WatchPage { after: Some(name) }).await?;
            let Some(page) = expect_page(next)? else {
                return Err(ClientError::Unexpected("a watch page moved".into()));
            };
            after = page.next_after.clone();
            view.brokers = page.brokers;
            view.add_topics(page.topics);
        }
        Err(ClientError::Unexpected(
            "the view has too many pages".into(),
        ))
    }

    /// Long-polls for what changed after `from_revision`; at `timeout`
    /// returns an empty delta. A watcher the quorum cannot answer with a
    /// delta gets the whole view.
    pub async fn watch_changes(
        &mut self,
        from_revision: u64,
        timeout: Duration,
    ) -> Result<ViewChange, ClientError> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let request = Request::WatchDelta {
            from_revision,
            timeout_ms,
        };
        match self.send(request).await? {
            Response::Delta(delta) => Ok(ViewChange::Delta(delta)),
            Response::TooFarBehind { .. } => Ok(ViewChange::Full(self.watch_pages().await?)),
            other => Err(refused(other)),
        }
    }

    /// Long-polls for a view newer than `from_revision`; at `timeout` returns
    /// the current one (which may be no newer). Reads the whole view in
    /// pages: watchers that keep a view use `watch_changes`.
    pub async fn watch(
        &mut self,
        from_revision: u64,
        timeout: Duration,
    ) -> Result<ClusterView, ClientError> {
        match self.watch_changes(from_revision, timeout).await? {
            ViewChange::Full(view) => Ok(view),
            ViewChange::Delta(_) => self.watch_pages().await,
        }
    }

    /// One node's Raft status.
    pub async fn status(&mut self, endpoint: &str) -> Result<NodeStatus, ClientError> {
        match self.send_to(endpoint, Request::Status).await? {
            Response::Status(status) => Ok(status),
            other => Err(refused(other)),
        }
    }
}

fn refused(response: Response) -> ClientError {
    match response {
        Response::Unauthenticated => ClientError::Unauthenticated,
        Response::BadRequest { message } => ClientError::BadRequest(message),
        Response::Rejected(e) => ClientError::Rejected(e),
        Response::UnknownBroker { broker_id } => ClientError::UnknownBroker(broker_id),
        other => unexpected(other),
    }
}

fn expect_applied(response: Response) -> Result<Applied, ClientError> {
    match response {
        Response::Applied(applied) => Ok(applied),
        other => Err(refused(other)),
    }
}

/// A page, or `None` when the view moved on since the read began.
fn expect_page(response: Response) -> Result<Option<ViewPage>, ClientError> {
    match response {
        Response::Page(page) => Ok(Some(page)),
        Response::ViewMoved { .. } => Ok(None),
        other => Err(refused(other)),
    }
}
