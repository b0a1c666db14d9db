//! The composition root: starts and stops the shards, one pinned glommio
//! executor per shard, builds each shard's services (replica manager, group
//! coordinator) and its reply router (held by the shard and by the shard's
//! `AgentHandle` in its replica manager) and wires them (the groups hear of
//! leadership changes), recovers the logs it owns, binds each listener's
//! port (SO_REUSEPORT, so the kernel spreads connections over shards; TLS
//! listeners' certificates are loaded once, here) and serves
//! its inbox of jobs from other shards. The only module that sees every
//! other one. Runs on the main thread; the closures run on the shards.
use crate::broker::budget::ShardBudget;
use crate::broker::scram_users::{create_bootstrap_user, BootstrapUser};
use crate::config::inter_broker::InterBrokerClient;
use crate::config::tls::SaslSettings;
use crate::config::{BrokerConfig, Listener, TlsSettings};
use crate::group::membership::GroupLimits;
use crate::group::GroupCoordinator;
use crate::metadata::MetadataStore;
use crate::net::oauth::TokenValidator;
use crate::net::tls::TlsContext;
use crate::net::ListenerContext;
use crate::replication::agent::{AgentCall, AgentHandle};
use crate::replication::peer::PeerSecurity;
use crate::replication::{ReplicaManager, ReplicationSettings};
use crate::shard::{Job, ReplyRouter, Shard, ShardServices};
use glommio::{LocalExecutorBuilder, Placement};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// io_uring registered buffer memory per executor (RLIMIT_MEMLOCK must cover it).
const IO_MEMORY_BYTES: usize = 2 << 20;
/// Jobs waiting in one shard's inbox before senders wait.
const INBOX_CAPACITY: usize = 1024;

/// The running shards, as the main thread sees them.
pub struct ShardSet {
    handles: Vec<glommio::ExecutorJoinHandle<()>>,
    stops: Vec<flume::Sender<()>>,
    inboxes: Vec<flume::Sender<Job>>,
}

impl ShardSet {
    /// Each shard's inbox, for threads that hand shards work (the quorum agent).
    pub fn inboxes(&self) -> Vec<flume::Sender<Job>> {
        self.inboxes.clone()
    }

    /// Asks every shard to close its logs and stop, and waits for them.
    pub fn shutdown(self) {
        for stop in &self.stops {
            let _ = stop.send(());
        }
        for handle in self.handles {
            let _ = handle.join();
        }
    }

    /// Waits for the shards to end by themselves (they do not, unless one fails).
    pub fn join(self) {
        for handle in self.handles {
            let _ = handle.join();
        }
    }
}

/// Starts `shard_count` shards and returns once every one of them listens,
/// or the first start-up error. Each shard's `AgentHandle` sends its calls
/// to the quorum agent into `agent_calls`.
pub fn start_shards(
    config: Arc<BrokerConfig>,
    metadata: Arc<MetadataStore>,
    shard_count: usize,
    agent_calls: flume::Sender<AgentCall>,
) -> Result<ShardSet, String> {
    raise_memlock_limit();
    crate::net::raise_nofile_limit();
    let listeners = Arc::new(ListenerSet::load(&config)?);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shard_count)
        .map(|_| flume::bounded::<Job>(INBOX_CAPACITY))
        .unzip();
    let (ready_tx, ready_rx) = flume::unbounded::<Result<usize, String>>();
    let mut handles = Vec::with_capacity(shard_count);
    let mut stops = Vec::with_capacity(shard_count);
    for (id, inbox) in receivers.into_iter().enumerate() {
        let (stop_tx, stop_rx) = flume::bounded::<()>(1);
        stops.push(stop_tx);
        let placement = if shard_count <= cpus {
            Placement::Fixed(id)
        } else {
            Placement::Unbound
        };
        let (config, metadata, senders, ready, agent_calls, listeners) = (
            config.clone(),
            metadata.clone(),
            senders.clone(),
            ready_tx.clone(),
            agent_calls.clone(),
            listeners.clone(),
        );
        let mut builder = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{id}"))
            .io_memory(IO_MEMORY_BYTES);
        if config.spin_before_park_us > 0 {
            builder = builder.spin_before_park(Duration::from_micros(config.spin_before_park_us));
        }
        let handle = builder
            .spawn(move || async move {
                // The shard's reply router, held by the shard and by its
                // handle to the agent (whose answers come home through it).
                let replies = Rc::new(ReplyRouter::default());
                let agent = AgentHandle::new(agent_calls, replies.clone());
                let services = shard_services(&config, agent, listeners.peer_security.clone());
                let shard = Rc::new(Shard::new(id, config, metadata, senders, replies, services));
                crate::group::follow_leadership(&shard);
                run_shard(shard, inbox, stop_rx, ready, listeners).await;
            })
            .map_err(|e| format!("cannot start shard {id}: {e}"))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..shard_count {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(message)) => {
                let set = ShardSet {
                    handles,
                    stops,
                    inboxes: senders,
                };
                set.shutdown();
                return Err(message);
            }
            Err(_) => return Err("a shard stopped during start-up".to_string()),
        }
    }
    Ok(ShardSet {
        handles,
        stops,
        inboxes: senders,
    })
}

/// What each shard carries for the layers above it.
fn shard_services(
    config: &BrokerConfig,
    agent: AgentHandle,
    peer_security: PeerSecurity,
) -> ShardServices {
    let settings = ReplicationSettings::from_config(config, peer_security);
    let replication = ReplicaManager::new(settings, agent);
    let mut services = ShardServices::default();
    services.insert(replication);
    services.insert(GroupCoordinator::new(GroupLimits::from_config(config)));
    services
}

async fn run_shard(
    shard: Rc<Shard>,
    inbox: flume::Receiver<Job>,
    stop: flume::Receiver<()>,
    ready: flume::Sender<Result<usize, String>>,
    listeners: Arc<ListenerSet>,
) {
    shard.start_reply_router();
    let sockets = match prepare_shard(&shard, &listeners).await {
        Ok(sockets) => sockets,
        Err(message) => {
            let _ = ready.send(Err(format!("shard {}: {message}", shard.id)));
            return;
        }
    };
    let _ = ready.send(Ok(shard.id));
    glommio::spawn_local(serve_once_ready(shard.clone(), sockets, listeners)).detach();
    glommio::spawn_local(housekeeping(shard.clone())).detach();
    glommio::spawn_local(crate::group::run_ticker(shard.clone())).detach();
    glommio::spawn_local(crate::replication::isr_check_loop(shard.clone())).detach();
    loop {
        let next = futures::future::select(inbox.recv_async(), stop.recv_async()).await;
        match next {
            futures::future::Either::Left((Ok(job), _)) => {
                glommio::spawn_local(job(shard.clone())).detach();
            }
            // A stop request, or every sender gone: close the logs and end.
            _ => break,
        }
    }
    shard.close_all_logs().await;
}

/// The listeners every shard binds, with what the main thread loaded for
/// them (TLS configs, SASL mechanisms), and the broker-wide connection
/// limits.
pub struct ListenerSet {
    listeners: Vec<LoadedListener>,
    connections: Arc<crate::net::ConnectionTracker>,
    /// `TIDEMARK_BOOTSTRAP_USER`: created before the first connection is
    /// accepted, so that SASL clients can log in from the start.
    bootstrap_user: Option<BootstrapUser>,
    /// How followers connect to leaders over the inter-broker listener.
    peer_security: PeerSecurity,
}

/// One listener with its security loaded.
struct LoadedListener {
    listener: Listener,
    tls: Option<Arc<TlsContext>>,
    sasl: Option<Arc<SaslSettings>>,
    tokens: Option<Arc<TokenValidator>>,
}

impl ListenerSet {
    /// Loads the TLS listeners' certificates and starts the thread that
    /// reloads them when they change.
    fn load(config: &BrokerConfig) -> Result<ListenerSet, String> {
        let listeners = config.listeners().map_err(|e| e.to_string())?;
        let inter_broker = match config.has_peers() {
            true => Some(config.inter_broker_client().map_err(|e| e.to_string())?),
            false => None,
        };
        let mut peer_security = PeerSecurity::default();
        let mut loaded = Vec::new();
        for listener in listeners.all() {
            let client_side = inter_broker
                .as_ref()
                .filter(|c| c.listener == listener.name);
            let tls = match listener.protocol.uses_tls() {
                false => None,
                true => Some(load_tls(config, listener, client_side)?),
            };
            if let Some(client) = client_side {
                peer_security.login = client.login.clone();
                peer_security.tls = tls
                    .clone()
                    .map(|t| t as Arc<dyn crate::replication::peer::ClientTlsSource>);
            }
            let sasl = match listener.protocol.uses_sasl() {
                false => None,
                true => Some(Arc::new(
                    SaslSettings::for_listener(&config.security, listener)
                        .map_err(|e| e.to_string())?,
                )),
            };
            let tokens = match sasl.as_ref().and_then(|s| s.oauth.clone()) {
                None => None,
                Some(oauth) => Some(
                    TokenValidator::load(oauth)
                        .map_err(|e| format!("listener {}: OAUTHBEARER: {e}", listener.name))?,
                ),
            };
            loaded.push(LoadedListener {
                listener: listener.clone(),
                tls,
                sasl,
                tokens,
            });
        }
        warn_of_unused_jaas(config, inter_broker.as_ref());
        warn_of_unvouched_followers(config, &peer_security);
        let contexts = loaded.iter().filter_map(|l| l.tls.clone()).collect();
        crate::net::tls::watch_for_changes(contexts)
            .map_err(|e| format!("cannot start the certificate watcher: {e}"))?;
        Ok(ListenerSet {
            peer_security,
            bootstrap_user: BootstrapUser::from_environment()?,
            listeners: loaded,
            connections: crate::net::ConnectionTracker::new(config.connection_settings()),
        })
    }
}

/// The TLS context of `listener`; on the inter-broker listener, with the
/// client side followers connect with.
fn load_tls(
    config: &BrokerConfig,
    listener: &Listener,
    client_side: Option<&InterBrokerClient>,
) -> Result<Arc<TlsContext>, String> {
    let loaded = match client_side.and_then(|c| c.tls.as_ref()) {
        Some(client) => TlsContext::load_inter_broker(listener, client),
        None => {
            let settings =
                TlsSettings::for_listener(&config.security, listener).map_err(|e| e.to_string())?;
            TlsContext::load(listener, settings)
        }
    };
    loaded.map_err(|e| format!("listener {}: {e}", listener.name))
}

/// Kafka's JAAS login modules are accepted so that a Kafka config starts;
/// the users a broker accepts are the SCRAM credentials in the quorum. Only
/// the inter-broker listener's entry for the inter-broker mechanism is read
/// (this broker's own login): say that the others are not.
fn warn_of_unused_jaas(config: &BrokerConfig, inter_broker: Option<&InterBrokerClient>) {
    let used = inter_broker.and_then(|c| {
        let mechanism = c.login.as_ref()?.mechanism.name().to_ascii_lowercase();
        Some(format!(
            "listener.name.{}.{mechanism}.sasl.jaas.config",
            c.listener.to_ascii_lowercase()
        ))
    });
    for (key, _) in config.security.iter() {
        if key.ends_with("sasl.jaas.config") && used.as_deref() != Some(key.as_str()) {
            tracing::warn!(%key, "not used to check logins: Tidemark authenticates SASL users against the SCRAM credentials kept in the quorum (AlterUserScramCredentials, TIDEMARK_BOOTSTRAP_USER), not JAAS login modules");
        }
    }
}

/// With ACLs on, followers need ClusterAction on the cluster (as in Kafka):
/// Kafka's habit is to make the brokers' principal a super user. Say so at
/// start when the principal followers fetch as is known and is not one.
fn warn_of_unvouched_followers(config: &BrokerConfig, peer_security: &PeerSecurity) {
    let Some(rules) = &config.authorizer else {
        return;
    };
    if !config.has_peers() {
        return;
    }
    let principal = match (&peer_security.login, &peer_security.tls) {
        (Some(login), _) => format!("User:{}", login.username),
        // Its certificate's subject names it; the leader maps it.
        (None, Some(_)) => return,
        (None, None) => "User:ANONYMOUS".to_string(),
    };
    if !rules.super_users.contains(&principal) {
        tracing::warn!(%principal, "ACLs are on: followers fetch as this principal, which needs ClusterAction on the cluster (an ACL) or a place in super.users, or replication stops");
    }
}

/// Accepts connections, in a cluster only once this shard has the cluster's
/// view: before it, Metadata could only answer a placeholder cluster id and
/// no topics, which clients remember (librdkafka warns of a changed cluster
/// id). Kafka's brokers likewise start processing requests only after they
/// caught up with the metadata log. Clients that connect earlier wait in the
/// listen backlog.
async fn serve_once_ready(
    shard: Rc<Shard>,
    sockets: Vec<glommio::net::TcpListener>,
    listeners: Arc<ListenerSet>,
) {
    const VIEW_POLL: Duration = Duration::from_millis(5);
    while shard.replication().view().is_none() {
        if shard.is_stopping() {
            return;
        }
        glommio::timer::sleep(VIEW_POLL).await;
    }
    if let Some(user) = &listeners.bootstrap_user {
        await_bootstrap_user(&shard, user).await;
    }
    let budget = ShardBudget::new(shard.config.shard_inflight_max_bytes);
    for (socket, loaded) in sockets.into_iter().zip(&listeners.listeners) {
        let context = ListenerContext {
            name: Rc::from(loaded.listener.name.as_str()),
            tls: loaded.tls.clone(),
            sasl: loaded.sasl.clone(),
            tokens: loaded.tokens.clone(),
        };
        let accept = crate::net::accept_loop(
            shard.clone(),
            socket,
            context,
            listeners.connections.clone(),
            budget.clone(),
        );
        glommio::spawn_local(accept).detach();
    }
}

/// Shard 0 creates the bootstrap user; the others wait (bounded) until
/// their view has it.
async fn await_bootstrap_user(shard: &Rc<Shard>, user: &BootstrapUser) {
    const WAIT: Duration = Duration::from_secs(30);
    const POLL: Duration = Duration::from_millis(20);
    if shard.id == 0 {
        create_bootstrap_user(shard.clone(), user.clone()).await;
        return;
    }
    let started = std::time::Instant::now();
    while started.elapsed() < WAIT && !shard.is_stopping() {
        let view = shard.replication().view().unwrap_or_default();
        if view.security.scram.contains_key(&user.name) {
            return;
        }
        glommio::timer::sleep(POLL).await;
    }
}

/// Probes DMA and binds every listener's port (the owned logs are
/// recovered as the first cluster view assigns them).
async fn prepare_shard(
    shard: &Rc<Shard>,
    listeners: &ListenerSet,
) -> Result<Vec<glommio::net::TcpListener>, String> {
    storage::probe_dma(&shard.config.data_dir)
        .await
        .map_err(|e| e.to_string())?;
    listeners
        .listeners
        .iter()
        .map(|loaded| {
            let addr = loaded.listener.bind;
            glommio::net::TcpListener::bind(addr)
                .map_err(|e| format!("cannot listen on {addr} ({}): {e}", loaded.listener.name))
        })
        .collect()
}

/// Periodic work on each shard: retention of the logs it owns.
async fn housekeeping(shard: Rc<Shard>) {
    let interval = Duration::from_millis(shard.config.retention_check_interval_ms.max(100));
    loop {
        glommio::timer::sleep(interval).await;
        if shard.is_stopping() {
            return;
        }
        let now = storage::now_ms();
        for log in shard.all_logs() {
            if let Err(e) = log.enforce_retention(now).await {
                tracing::warn!(topic = %log.topic, partition = log.partition, error = %e, "retention failed");
            }
            match log.compact(now).await {
                Ok(0) => {}
                Ok(removed) => {
                    tracing::info!(topic = %log.topic, partition = log.partition, removed, "compacted")
                }
                Err(e) => {
                    tracing::warn!(topic = %log.topic, partition = log.partition, error = %e, "compaction failed")
                }
            }
        }
    }
}

/// io_uring registers buffer memory per executor; raise RLIMIT_MEMLOCK as far
/// as the hard limit allows so that start-up does not fail on small defaults.
fn raise_memlock_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit);
        }
    }
}
