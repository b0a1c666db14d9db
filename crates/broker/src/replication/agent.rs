//! The broker's link to the quorum service. A dedicated thread runs a tokio
//! runtime (the quorum client is tokio; the shards are glommio) with three
//! loops, each with its own `QuorumClient`:
//! - registration and heartbeats, so the broker's session stays alive (an
//!   `UnknownBroker` answer means the session lapsed: register again);
//! - the watch: the quorum sends what changed since the agent's revision
//!   (or, to a broker too far behind, the whole view in pages); the agent
//!   applies it to its copy of the view, mirrors the changed topics into the
//!   shared topic registry, and hands every shard the new view with the
//!   changes (`view::apply_view`), one at a time, in revision order;
//! - calls from shards (`AgentHandle`): ISR changes, topic administration,
//!   producer-id blocks.
//!
//! Each shard has an `AgentHandle` of its own (in its replica manager),
//! built at shard setup with the shard's reply router, through which the
//! agent's answers come home on that shard; all handles feed the one
//! channel of calls (`AgentCall`) that the agent thread reads.
use super::view::apply_view;
use crate::config::BrokerConfig;
use crate::metadata::{MetadataStore, TopicMeta};
use crate::shard::{send_to_thread, Job, ReplyRouter, ReplyTo};
use futures::channel::oneshot;
use model::{BrokerId, LeaderEpoch, TopicPartition};
use quorum::changes::ViewChanges;
use quorum::client::ViewChange;
use quorum::client::{ClientError, QuorumClient};
use quorum::model::{BrokerInfo, ClusterView, ListenerEndpoint, PartitionState};
use quorum::state::{Applied, Command, CommandError};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// Calls in flight from all shards to the agent, at most.
pub const AGENT_QUEUE_MAX: usize = 1024;
/// How long one watch long-polls the quorum.
const WATCH_POLL: Duration = Duration::from_secs(10);
/// Pause before retrying after the quorum could not be reached.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// Producer ids asked of the quorum at a time (Kafka's block size).
pub const PRODUCER_ID_BLOCK: i64 = 1000;

#[derive(Debug, Clone, Error)]
pub enum AgentError {
    #[error("the quorum agent is gone")]
    Gone,
    #[error("the quorum service refused: {0}")]
    Rejected(CommandError),
    #[error("the quorum service is unavailable: {0}")]
    Unavailable(String),
}

impl From<ClientError> for AgentError {
    fn from(e: ClientError) -> AgentError {
        match e {
            ClientError::Rejected(e) => AgentError::Rejected(e),
            ClientError::BadRequest(m) => AgentError::Rejected(CommandError::InvalidRequest(m)),
            other => AgentError::Unavailable(other.to_string()),
        }
    }
}

/// One call from a shard to the quorum service.
pub enum AgentCall {
    /// A partition leader's ISR change (KRaft's AlterPartition).
    AlterPartition {
        key: TopicPartition,
        leader_id: BrokerId,
        /// The leader epoch and the partition epoch the change is based on.
        epochs: (LeaderEpoch, i32),
        new_isr: Vec<BrokerId>,
        reply: ReplyTo<Result<PartitionState, AgentError>>,
    },
    /// Any other state-machine command (topic administration).
    Write {
        command: Command,
        reply: ReplyTo<Result<Applied, AgentError>>,
    },
    /// A block of producer ids for this broker.
    AllocateProducerIds {
        reply: ReplyTo<Result<(i64, i64), AgentError>>,
    },
}

/// What a shard holds to reach the agent: the agent's channel of calls and
/// the shard's reply router. One per shard, on that shard.
#[derive(Clone)]
pub struct AgentHandle {
    calls: flume::Sender<AgentCall>,
    /// The router of the shard this handle belongs to.
    replies: Rc<ReplyRouter>,
}

impl AgentHandle {
    /// The handle of the shard whose reply router is `replies`.
    pub fn new(calls: flume::Sender<AgentCall>, replies: Rc<ReplyRouter>) -> AgentHandle {
        AgentHandle { calls, replies }
    }

    /// Sends a call and waits for its answer, which comes back through the
    /// shard's reply router (shard/replies.rs), not by waking this task from
    /// the agent's thread.
    async fn call<T: Send + 'static>(
        &self,
        make: impl FnOnce(ReplyTo<Result<T, AgentError>>) -> AgentCall,
    ) -> Result<T, AgentError> {
        let (reply, answer) = self.replies.register();
        send_to_thread(&self.calls, make(reply))
            .await
            .map_err(|_| AgentError::Gone)?;
        answer.answer().await.ok_or(AgentError::Gone)?
    }

    pub async fn alter_partition(
        &self,
        key: TopicPartition,
        leader_id: BrokerId,
        epochs: (LeaderEpoch, i32),
        new_isr: Vec<BrokerId>,
    ) -> Result<PartitionState, AgentError> {
        self.call(|reply| AgentCall::AlterPartition {
            key,
            leader_id,
            epochs,
            new_isr,
            reply,
        })
        .await
    }

    pub async fn write(&self, command: Command) -> Result<Applied, AgentError> {
        self.call(|reply| AgentCall::Write { command, reply }).await
    }

    /// `(first id, count)` of a new block of producer ids.
    pub async fn allocate_producer_ids(&self) -> Result<(i64, i64), AgentError> {
        self.call(|reply| AgentCall::AllocateProducerIds { reply })
            .await
    }
}

/// Everything the agent thread needs.
pub struct AgentSetup {
    pub config: Arc<BrokerConfig>,
    pub metadata: Arc<MetadataStore>,
    pub inboxes: Vec<flume::Sender<Job>>,
    pub calls: flume::Receiver<AgentCall>,
    /// Topics of a data dir from before the quorum existed (`tidemark dev`
    /// upgraded in place), with the producer ids it handed out: the quorum
    /// takes them over once.
    pub import: Option<LocalRegistry>,
    /// Told once the first view that lists this broker is applied.
    pub ready: std::sync::mpsc::Sender<()>,
}

/// What a standalone registry held, for the import.
pub struct LocalRegistry {
    pub topics: Vec<TopicMeta>,
    pub next_producer_id: i64,
}

/// Starts the agent thread. It runs until the process ends.
pub fn spawn_agent(setup: AgentSetup) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("quorum-agent".to_string())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(rt) => rt.block_on(run_agent(setup)),
                Err(e) => tracing::error!(error = %e, "cannot start the quorum agent's runtime"),
            }
        })
}

fn client(config: &BrokerConfig) -> QuorumClient {
    config.quorum_client()
}

async fn run_agent(setup: AgentSetup) {
    let AgentSetup {
        config,
        metadata,
        inboxes,
        calls,
        import,
        ready,
    } = setup;
    let info = broker_info(&config);
    let mut writer = client(&config);
    register(&mut writer, &info).await;
    if let Some(local) = import {
        import_registry(&mut writer, BrokerId(config.node_id), local).await;
    }
    let interval_ms = config.heartbeat_interval_ms;
    tokio::spawn(heartbeat_loop(client(&config), info, interval_ms));
    tokio::spawn(call_loop(writer, BrokerId(config.node_id), calls));
    let watcher = Watcher {
        metadata,
        inboxes,
        broker_id: BrokerId(config.node_id),
        ready: Some(ready),
    };
    watch_loop(client(&config), watcher).await;
}

/// Hands a standalone data dir's topics (same ids, so the logs on disk are
/// theirs) and producer-id high mark to the quorum, unless it has them.
async fn import_registry(client: &mut QuorumClient, broker_id: BrokerId, local: LocalRegistry) {
    let view = match client.read().await {
        Ok(view) => view,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the quorum to import local topics");
            return;
        }
    };
    for topic in local.topics {
        if view.topics.contains_key(&topic.name) {
            continue;
        }
        let command = Command::CreateTopic {
            name: topic.name.clone(),
            partitions: topic.partitions,
            replication_factor: 1,
            configs: topic.configs.clone(),
            topic_id: Some(topic.id),
        };
        match client.propose(command).await {
            Ok(_) => tracing::info!(topic = %topic.name, "imported a local topic into the quorum"),
            Err(e) => {
                tracing::error!(topic = %topic.name, error = %e, "cannot import a local topic")
            }
        }
    }
    let mut missing = local.next_producer_id - view.next_producer_id;
    while missing > 0 {
        let count = missing.min(quorum::state::PRODUCER_ID_BLOCK_MAX);
        if let Err(e) = client.allocate_producer_ids(broker_id, count).await {
            tracing::error!(error = %e, "cannot carry over the producer ids already used");
            return;
        }
        missing -= count;
    }
}

/// This broker as the quorum registers it: the inter-broker listener's
/// address for the other brokers, and every listener's for clients.
fn broker_info(config: &BrokerConfig) -> BrokerInfo {
    let (host, port) = config
        .advertised_addr()
        .unwrap_or_else(|_| ("127.0.0.1".to_string(), 9092));
    let listeners = config
        .listeners()
        .map(|l| {
            l.all()
                .iter()
                .map(|l| ListenerEndpoint {
                    name: l.name.clone(),
                    host: l.advertised_host.clone(),
                    port: l.advertised_port,
                })
                .collect()
        })
        .unwrap_or_default();
    BrokerInfo {
        broker_id: BrokerId(config.node_id),
        host,
        port: port as u16,
        rack: config.rack.clone(),
        incarnation: Some(uuid::Uuid::new_v4()),
        listeners,
    }
}

/// Registers until the quorum takes it.
async fn register(client: &mut QuorumClient, info: &BrokerInfo) {
    loop {
        match client.register_broker(info.clone()).await {
            Ok(applied) => {
                tracing::info!(
                    broker_id = %info.broker_id,
                    revision = applied.revision,
                    "registered with the quorum"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot register with the quorum yet");
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
        }
    }
}

async fn heartbeat_loop(mut client: QuorumClient, info: BrokerInfo, interval_ms: u64) {
    let interval = Duration::from_millis(interval_ms.max(10));
    loop {
        tokio::time::sleep(interval).await;
        match client.heartbeat(info.broker_id).await {
            Ok(()) => {}
            Err(ClientError::UnknownBroker(_)) => {
                tracing::warn!("the quorum forgot this broker's session: registering again");
                register(&mut client, &info).await;
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

async fn call_loop(
    mut client: QuorumClient,
    broker_id: BrokerId,
    calls: flume::Receiver<AgentCall>,
) {
    while let Ok(call) = calls.recv_async().await {
        match call {
            AgentCall::AlterPartition {
                key,
                leader_id,
                epochs: (leader_epoch, partition_epoch),
                new_isr,
                reply,
            } => {
                let answer = client
                    .alter_partition(
                        &key.topic,
                        key.partition,
                        leader_id,
                        leader_epoch,
                        partition_epoch,
                        new_isr,
                    )
                    .await;
                reply.send(answer.map_err(AgentError::from));
            }
            AgentCall::Write { command, reply } => {
                let answer = client.propose(command).await;
                reply.send(answer.map_err(AgentError::from));
            }
            AgentCall::AllocateProducerIds { reply } => {
                let answer = client
                    .allocate_producer_ids(broker_id, PRODUCER_ID_BLOCK)
                    .await;
                reply.send(answer.map_err(AgentError::from));
            }
        }
    }
}

/// Where views go.
struct Watcher {
    metadata: Arc<MetadataStore>,
    inboxes: Vec<flume::Sender<Job>>,
    broker_id: BrokerId,
    ready: Option<std::sync::mpsc::Sender<()>>,
}

/// Follows the cluster view and hands every newer one to the shards.
async fn watch_loop(mut client: QuorumClient, mut watcher: Watcher) {
    let mut current: Option<Arc<ClusterView>> = None;
    loop {
        let from = current.as_ref().map_or(0, |v| v.revision);
        let change = match client.watch_changes(from, WATCH_POLL).await {
            Ok(change) => change,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the quorum");
                tokio::time::sleep(RETRY_BACKOFF).await;
                continue;
            }
        };
        let Some((view, changes)) = next_view(current.as_deref(), change) else {
            continue;
        };
        match &changes {
            Some(changes) => mirror_changes(&watcher.metadata, &view, changes),
            None => watcher.metadata.mirror_topics(topics_of(&view)),
        }
        let view = Arc::new(view);
        if !deliver(view.clone(), changes.map(Arc::new), &watcher.inboxes).await {
            return;
        }
        watcher.metadata.set_applied_revision(view.revision);
        if view.brokers.contains_key(&watcher.broker_id) {
            if let Some(ready) = watcher.ready.take() {
                let _ = ready.send(());
            }
        }
        current = Some(view);
    }
}

/// The view after `change`, with what changed (`None`: apply it whole), or
/// `None` when it is not newer than `current`.
fn next_view(
    current: Option<&ClusterView>,
    change: ViewChange,
) -> Option<(ClusterView, Option<ViewChanges>)> {
    let revision = current.map(|v| v.revision);
    match (current, change) {
        (Some(current), ViewChange::Delta(delta)) => {
            if delta.revision <= current.revision || delta.from_revision != current.revision {
                return None;
            }
            let mut view = current.clone();
            let changes = view.apply_delta(delta);
            Some((view, Some(changes)))
        }
        // The first view is applied whole, however it came.
        (None, ViewChange::Delta(delta)) => {
            let mut view = ClusterView::default();
            view.apply_delta(delta);
            Some((view, None))
        }
        (_, ViewChange::Full(view)) => {
            if revision.is_some_and(|r| view.revision < r) {
                return None;
            }
            Some((view, None))
        }
    }
}

/// Mirrors the topics a delta changed or removed into the registry.
fn mirror_changes(metadata: &MetadataStore, view: &ClusterView, changes: &ViewChanges) {
    let changed = changes
        .changed
        .iter()
        .filter_map(|name| view.topics.get(name))
        .map(topic_meta)
        .collect();
    metadata.mirror_changes(changed, &changes.removed);
}

fn topic_meta(t: &quorum::model::TopicState) -> TopicMeta {
    TopicMeta {
        name: t.name.clone(),
        id: t.topic_id,
        partitions: t.partitions.len() as i32,
        configs: t.configs.clone(),
    }
}

/// The registry's form of the view's topics.
fn topics_of(view: &ClusterView) -> Vec<TopicMeta> {
    view.topics.values().map(topic_meta).collect()
}

/// Applies `view` on every shard (only what `changes` names, when given)
/// and waits for all of them. False when the shards are gone (the broker is
/// stopping).
async fn deliver(
    view: Arc<ClusterView>,
    changes: Option<Arc<ViewChanges>>,
    inboxes: &[flume::Sender<Job>],
) -> bool {
    let mut done = Vec::with_capacity(inboxes.len());
    for inbox in inboxes {
        let (tx, rx) = oneshot::channel::<()>();
        let (view, changes) = (view.clone(), changes.clone());
        let job: Job = Box::new(move |shard| {
            Box::pin(async move {
                apply_view(&shard, view, changes).await;
                let _ = tx.send(());
            })
        });
        if inbox.send_async(job).await.is_err() {
            return false;
        }
        done.push(rx);
    }
    futures::future::join_all(done).await;
    true
}
