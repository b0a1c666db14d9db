//! `ReplicaManager`: one per shard, the replication role of every partition
//! the shard owns, as the latest cluster view from the quorum service says.
//! For each such partition this broker is the leader (it keeps a
//! `LeaderReplicaState`: ISR, high watermark), a follower (a fetcher copies
//! the leader's log), or neither (not a replica, or no leader elected).
//!
//! Every broker has a controller (the embedded single-node quorum under
//! `tidemark dev`), so every role comes from a view; before the first view
//! this shard leads nothing (and takes no connections).
//!
//! Runs on its shard only; state sits in `RefCell`s never held across an
//! `.await`.
use super::agent::AgentHandle;
use super::error::ReplicationError;
use super::isr::{IsrChange, LeaderReplicaState};
use model::{BrokerId, LeaderEpoch, Offset, TopicPartition};
use quorum::model::{ClusterView, PartitionState};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use storage::PartitionLog;

/// What this broker is for one partition.
#[derive(Debug)]
pub enum Role {
    Leader(LeaderRole),
    Follower(FollowerRole),
}

#[derive(Debug)]
pub struct LeaderRole {
    pub state: LeaderReplicaState,
    /// The controller's partition epoch that `state`'s ISR belongs to.
    pub partition_epoch: i32,
    pub min_insync_replicas: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerRole {
    pub leader_id: BrokerId,
    pub leader_epoch: LeaderEpoch,
}

/// The settings replication takes from the broker config.
#[derive(Debug, Clone)]
pub struct ReplicationSettings {
    pub local_id: BrokerId,
    pub lag_time_max_ms: i64,
    pub fetch_wait_max_ms: i32,
    /// How followers secure their connections to leaders.
    pub peer_security: super::peer::PeerSecurity,
}

impl ReplicationSettings {
    pub fn from_config(
        config: &crate::config::BrokerConfig,
        peer_security: super::peer::PeerSecurity,
    ) -> Self {
        ReplicationSettings {
            local_id: BrokerId(config.node_id),
            lag_time_max_ms: config.replica_lag_time_max_ms,
            fetch_wait_max_ms: config.replica_fetch_wait_max_ms,
            peer_security,
        }
    }
}

pub struct ReplicaManager {
    pub settings: ReplicationSettings,
    view: RefCell<Option<Arc<ClusterView>>>,
    roles: RefCell<RoleTable>,
    /// The link to the controller (the quorum service).
    agent: AgentHandle,
    /// Bumped by every applied view, so fetchers notice changes.
    generation: Cell<u64>,
    /// Leaders this shard runs a fetcher for.
    fetchers: RefCell<HashSet<BrokerId>>,
    /// A request to create `__consumer_offsets` is in flight from this shard.
    creating_offsets_topic: Cell<bool>,
}

impl ReplicaManager {
    pub fn new(settings: ReplicationSettings, agent: AgentHandle) -> ReplicaManager {
        ReplicaManager {
            settings,
            view: RefCell::new(None),
            roles: RefCell::new(RoleTable::default()),
            agent,
            generation: Cell::new(0),
            fetchers: RefCell::new(HashSet::new()),
            creating_offsets_topic: Cell::new(false),
        }
    }

    pub fn agent(&self) -> &AgentHandle {
        &self.agent
    }

    /// The latest cluster view, `None` until the first one arrives.
    pub fn view(&self) -> Option<Arc<ClusterView>> {
        self.view.borrow().clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    pub(super) fn set_view(&self, view: Arc<ClusterView>) {
        *self.view.borrow_mut() = Some(view);
        self.generation.set(self.generation.get() + 1);
    }

    /// Claims the creation of `__consumer_offsets`; false if in flight.
    pub fn begin_offsets_topic_creation(&self) -> bool {
        !self.creating_offsets_topic.replace(true)
    }

    pub fn end_offsets_topic_creation(&self) {
        self.creating_offsets_topic.set(false);
    }

    /// Marks a fetcher from `leader_id` as running; false if one already is.
    pub(super) fn claim_fetcher(&self, leader_id: BrokerId) -> bool {
        self.fetchers.borrow_mut().insert(leader_id)
    }

    pub(super) fn release_fetcher(&self, leader_id: BrokerId) {
        self.fetchers.borrow_mut().remove(&leader_id);
    }

    /// The partitions this shard follows from `leader_id`.
    pub(super) fn followed_from(&self, leader_id: BrokerId) -> Vec<(TopicPartition, FollowerRole)> {
        let mut followed = Vec::new();
        for (topic, partition, role) in self.roles.borrow_mut().iter_mut() {
            if let Role::Follower(f) = role {
                if f.leader_id == leader_id {
                    followed.push((TopicPartition::new(topic, partition), *f));
                }
            }
        }
        followed
    }

    /// `host:port` of a live broker, from the latest view.
    pub fn broker_address(&self, broker_id: BrokerId) -> Option<String> {
        let view = self.view.borrow();
        let b = view.as_ref()?.brokers.get(&broker_id)?;
        Some(format!("{}:{}", b.host, b.port))
    }

    pub fn role_of(&self, topic: &str, partition: i32) -> Option<RoleSummary> {
        let roles = self.roles.borrow();
        let role = roles.get(topic, partition)?;
        Some(match role {
            Role::Leader(l) => RoleSummary::Leader {
                leader_epoch: l.state.leader_epoch,
            },
            Role::Follower(f) => RoleSummary::Follower(*f),
        })
    }

    pub(super) fn with_roles<T>(&self, f: impl FnOnce(&mut RoleTable) -> T) -> T {
        f(&mut self.roles.borrow_mut())
    }

    /// Produce may go ahead here: returns the leader epoch to stamp, or why
    /// not (not the leader; for acks=all, an ISR smaller than
    /// min.insync.replicas).
    pub fn check_produce(
        &self,
        topic: &str,
        partition: i32,
        acks: i16,
    ) -> Result<LeaderEpoch, ReplicationError> {
        let roles = self.roles.borrow();
        match roles.get(topic, partition) {
            Some(Role::Leader(l)) => {
                let isr = l.state.isr().len();
                let min = l.min_insync_replicas;
                if acks == -1 && (isr as i32) < min {
                    return Err(ReplicationError::NotEnoughReplicas { isr, min });
                }
                Ok(l.state.leader_epoch)
            }
            _ => Err(ReplicationError::NotLeader),
        }
    }

    /// A consumer's Fetch or ListOffsets may be served here: this broker
    /// leads the partition (and, when the client says which leader epoch it
    /// knows, it is this one: KIP-320).
    pub fn check_leader(
        &self,
        topic: &str,
        partition: i32,
        client_epoch: Option<LeaderEpoch>,
    ) -> Result<(), ReplicationError> {
        let ours = self
            .leader_epoch(topic, partition)
            .ok_or(ReplicationError::NotLeader)?;
        check_epoch(client_epoch, ours)
    }

    /// A consumer may be told where the log of a partition led here ends
    /// (ListOffsets' latest offset, or that no record is at a timestamp):
    /// not before the high watermark reaches the start of this leader epoch,
    /// as Kafka's `Partition.fetchOffsetForTimestamp` answers (KIP-207).
    pub fn check_log_end_known(&self, topic: &str, partition: i32) -> Result<(), ReplicationError> {
        match self.roles.borrow().get(topic, partition) {
            Some(Role::Leader(l)) if l.state.high_watermark_reached_epoch_start() => Ok(()),
            Some(Role::Leader(l)) => Err(ReplicationError::OffsetNotAvailable {
                high_watermark: l.state.high_watermark(),
                epoch_start: l.state.epoch_start_offset,
            }),
            _ => Err(ReplicationError::NotLeader),
        }
    }

    /// This broker's leader epoch of a partition it leads.
    pub fn leader_epoch(&self, topic: &str, partition: i32) -> Option<LeaderEpoch> {
        match self.roles.borrow().get(topic, partition) {
            Some(Role::Leader(l)) => Some(l.state.leader_epoch),
            _ => None,
        }
    }

    /// After a write on a leader, or a follower's fetch: moves the high
    /// watermark if the ISR allows, and tells the log.
    pub fn advance_high_watermark(&self, log: &PartitionLog) {
        let moved = match self.roles.borrow_mut().get_mut(&log.topic, log.partition) {
            Some(Role::Leader(l)) => l.state.advance_high_watermark(Offset(log.written_end())),
            _ => None,
        };
        if let Some(hw) = moved {
            log.set_replicated_high_watermark(Some(hw.0));
        }
    }

    /// A follower fetched `fetch_offset` of a partition led here. Returns the
    /// ISR expansion to propose, or why not: this broker is not the leader
    /// the follower thinks, or the follower is not a replica.
    pub fn on_follower_fetch(
        &self,
        log: &PartitionLog,
        replica_id: BrokerId,
        fetch_offset: Offset,
        follower_epoch: Option<LeaderEpoch>,
        now_ms: i64,
    ) -> Result<Option<(IsrChange, LeaderEpoch, i32)>, ReplicationError> {
        let mut roles = self.roles.borrow_mut();
        let Some(Role::Leader(l)) = roles.get_mut(&log.topic, log.partition) else {
            return Err(ReplicationError::NotLeader);
        };
        check_epoch(follower_epoch, l.state.leader_epoch)?;
        if !l.state.is_follower(replica_id) {
            return Err(ReplicationError::NotAFollower(replica_id));
        }
        let leader_end = Offset(log.log_end_offset());
        let change = l
            .state
            .on_follower_fetch(replica_id, fetch_offset, leader_end, now_ms);
        Ok(change.map(|c| (c, l.state.leader_epoch, l.partition_epoch)))
    }

    /// Leader ISR shrinks due now, with the epochs the request must carry.
    pub fn due_isr_shrinks(
        &self,
        now_ms: i64,
    ) -> Vec<(TopicPartition, IsrChange, LeaderEpoch, i32)> {
        let mut out = Vec::new();
        for (topic, partition, role) in self.roles.borrow_mut().iter_mut() {
            if let Role::Leader(l) = role {
                if let Some(change) = l.state.on_tick(now_ms) {
                    let key = TopicPartition::new(topic, partition);
                    out.push((key, change, l.state.leader_epoch, l.partition_epoch));
                }
            }
        }
        out
    }

    /// The controller's answer to an ISR change of a partition led here.
    pub fn on_isr_answer(
        &self,
        key: &TopicPartition,
        leader_epoch: LeaderEpoch,
        answer: Option<&PartitionState>,
    ) {
        let mut roles = self.roles.borrow_mut();
        let Some(Role::Leader(l)) = roles.get_mut(&key.topic, key.partition) else {
            return;
        };
        if l.state.leader_epoch != leader_epoch {
            return;
        }
        match answer {
            Some(state) if state.leader_epoch == leader_epoch => {
                l.partition_epoch = state.partition_epoch;
                l.state.on_isr_settled(state.isr.clone());
            }
            _ => l.state.on_isr_change_failed(),
        }
    }
}

/// KIP-320: an epoch the caller knows (`None`: it knows none, -1 on the
/// wire) must be this leader's.
fn check_epoch(given: Option<LeaderEpoch>, current: LeaderEpoch) -> Result<(), ReplicationError> {
    match given {
        Some(given) if given < current => {
            Err(ReplicationError::FencedLeaderEpoch { given, current })
        }
        Some(given) if given > current => {
            Err(ReplicationError::UnknownLeaderEpoch { given, current })
        }
        _ => Ok(()),
    }
}

/// Roles by topic, then partition: looked up by `&str` on every produce
/// and fetch, without building a key.
#[derive(Debug, Default)]
pub struct RoleTable {
    topics: HashMap<String, HashMap<i32, Role>>,
}

impl RoleTable {
    pub fn get(&self, topic: &str, partition: i32) -> Option<&Role> {
        self.topics.get(topic)?.get(&partition)
    }

    pub fn get_mut(&mut self, topic: &str, partition: i32) -> Option<&mut Role> {
        self.topics.get_mut(topic)?.get_mut(&partition)
    }

    pub fn insert(&mut self, key: TopicPartition, role: Role) {
        self.topics
            .entry(key.topic.to_string())
            .or_default()
            .insert(key.partition, role);
    }

    pub fn remove(&mut self, topic: &str, partition: i32) {
        if let Some(partitions) = self.topics.get_mut(topic) {
            partitions.remove(&partition);
            if partitions.is_empty() {
                self.topics.remove(topic);
            }
        }
    }

    /// Drops every topic `keep` refuses; returns their names.
    pub fn retain_topics(&mut self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let gone: Vec<String> = self.topics.keys().filter(|t| !keep(t)).cloned().collect();
        for topic in &gone {
            self.topics.remove(topic);
        }
        gone
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, i32, &mut Role)> {
        self.topics
            .iter_mut()
            .flat_map(|(t, ps)| ps.iter_mut().map(move |(p, r)| (t, *p, r)))
    }
}

/// A copy of a partition's role for callers outside this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleSummary {
    Leader { leader_epoch: LeaderEpoch },
    Follower(FollowerRole),
}

/// The role the view gives `local_id` for one partition.
pub fn role_in_view(p: &PartitionState, local_id: BrokerId) -> Option<RoleSummary> {
    if !p.replicas.contains(&local_id) {
        return None;
    }
    let leader_epoch = p.leader_epoch;
    let leader_id = p.leader?;
    if leader_id == local_id {
        return Some(RoleSummary::Leader { leader_epoch });
    }
    Some(RoleSummary::Follower(FollowerRole {
        leader_id,
        leader_epoch,
    }))
}
