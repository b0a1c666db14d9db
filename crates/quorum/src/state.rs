//! The replicated state machine of the quorum service: `apply` turns a
//! committed command into a new `ClusterView`. Pure, no I/O, no clock: every
//! quorum node applies the same log to the same result. The controller's
//! decisions (placement, leader election from the ISR, ISR changes) live here.
use super::acls;
use super::credentials;
use super::model::UNCLEAN_LEADER_ELECTION;
use super::model::{BrokerInfo, ClusterView, PartitionState, StoredScramCredential, TopicState};
use super::placement::{self, Candidate, PlacementError};
use model::acl::{AclBinding, AclFilter};
use model::limits::PARTITIONS_PER_TOPIC_MAX;
use model::{BrokerId, LeaderEpoch};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest producer-id block one request may take.
pub const PRODUCER_ID_BLOCK_MAX: i64 = 1_000_000;
/// Longest config key, in bytes (every Kafka key is far shorter).
pub const CONFIG_KEY_BYTES_MAX: usize = 255;
/// Longest config value, in bytes. Kafka bounds none for strings, but
/// brokers store every value in canonical form (a long as its decimal), so
/// no real value comes near; the bound keeps one command from making the
/// view unservable, as a 3.5 MiB `retention.ms` once did.
pub const CONFIG_VALUE_BYTES_MAX: usize = 64 << 10;
/// Bound on one topic's configs, keys and values together: two values at
/// their longest. A topic must always fit in one page of the view.
pub const TOPIC_CONFIG_BYTES_MAX: usize = 128 << 10;
/// Bound on one topic's encoded size in the view (configs plus partition
/// states, estimated), so every topic fits in one page well under the
/// quorum's frame limit.
pub const TOPIC_BYTES_MAX: usize = 8 << 20;
/// Bound on commands in one `Batch`.
pub const BATCH_COMMANDS_MAX: usize = 1000;
/// Bound on registered brokers, and on a broker's host and rack length: the
/// broker list goes in every page and delta of the view.
pub const BROKERS_MAX: usize = 4096;
const HOST_BYTES_MAX: usize = 255;

/// A command with an optional compare-and-set guard: it is rejected unless
/// the view's revision equals `expected_revision`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub expected_revision: Option<u64>,
    pub command: Command,
}

impl Proposal {
    pub fn new(command: Command) -> Proposal {
        Proposal {
            expected_revision: None,
            command,
        }
    }
}

impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.command)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Sets the cluster id once; later ones change nothing.
    InitCluster {
        cluster_id: String,
    },
    /// Registers (or replaces) a broker, and makes it leader of leaderless
    /// partitions whose ISR holds it.
    RegisterBroker {
        info: BrokerInfo,
    },
    /// Removes a broker whose session lapsed and moves its leaderships.
    ExpireBroker {
        broker_id: BrokerId,
    },
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        /// Filled in by the quorum node that proposes it; derived from the
        /// revision when absent, so every node agrees.
        topic_id: Option<uuid::Uuid>,
    },
    DeleteTopic {
        name: String,
    },
    /// Grows a topic to `count` partitions in total.
    CreatePartitions {
        name: String,
        count: i32,
    },
    AlterTopicConfigs {
        name: String,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    /// A partition leader's ISR change.
    AlterPartition {
        topic: String,
        partition: i32,
        leader_id: BrokerId,
        leader_epoch: LeaderEpoch,
        partition_epoch: i32,
        new_isr: Vec<BrokerId>,
    },
    AllocateProducerIds {
        broker_id: BrokerId,
        count: i64,
    },
    /// Sets a user's SCRAM credential for one mechanism (KIP-554).
    UpsertScramCredential {
        user: String,
        mechanism: String,
        credential: StoredScramCredential,
    },
    DeleteScramCredential {
        user: String,
        mechanism: String,
    },
    /// Adds one ACL binding (CreateAcls).
    CreateAcl {
        binding: AclBinding,
    },
    /// Removes the bindings the filter matches (DeleteAcls).
    DeleteAcls {
        filter: AclFilter,
    },
    /// Several commands in one log entry (CreateTopics of many topics), each
    /// applied on its own: one failing does not undo the others.
    Batch {
        commands: Vec<Command>,
    },
}

impl Command {
    /// Whether the command only adds state (topics, partitions, configs,
    /// producer ids): what a quorum whose disk is full refuses, while it
    /// still takes the commands that keep the cluster available or free
    /// space.
    /// A batch adds state when any of its commands does.
    pub fn adds_state(&self) -> bool {
        match self {
            Command::Batch { commands } => commands.iter().any(Command::adds_state),
            _ => matches!(
                self,
                Command::CreateTopic { .. }
                    | Command::CreatePartitions { .. }
                    | Command::AlterTopicConfigs { .. }
                    | Command::AllocateProducerIds { .. }
                    | Command::UpsertScramCredential { .. }
                    | Command::CreateAcl { .. }
            ),
        }
    }
}

/// What a successful command returns besides the new revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Done,
    TopicCreated {
        topic_id: uuid::Uuid,
    },
    /// The partition's state after an `AlterPartition`.
    Partition(PartitionState),
    /// Producer ids `first_id .. first_id + count` belong to the caller.
    ProducerIds {
        first_id: i64,
        count: i64,
    },
    /// What each command of a `Batch` did, in order.
    Batch(Vec<Result<Outcome, CommandError>>),
    /// The bindings a `DeleteAcls` removed.
    AclsDeleted(Vec<AclBinding>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The view's revision after the command.
    pub revision: u64,
    pub outcome: Outcome,
}

/// Why a command was rejected. A rejected command changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CommandError {
    #[error("revision is {actual}, not the expected {expected}")]
    RevisionConflict { expected: u64, actual: u64 },
    #[error("topic {0} already exists")]
    TopicAlreadyExists(String),
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("unknown partition {topic}-{partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("invalid topic name: {0}")]
    InvalidTopic(String),
    /// The name differs from an existing topic's only by '.' against '_'.
    #[error("Topic '{name}' collides with existing topic: {existing}")]
    TopicCollision { name: String, existing: String },
    #[error("replication factor {requested} is invalid with {available} live brokers")]
    InvalidReplicationFactor { requested: i32, available: usize },
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("broker {0} is not registered")]
    UnknownBroker(BrokerId),
    #[error("broker {leader_id} is not the leader of {topic}-{partition}")]
    NotLeader {
        topic: String,
        partition: i32,
        leader_id: BrokerId,
    },
    #[error("leader epoch {given} is fenced (current {current})")]
    FencedLeaderEpoch {
        given: LeaderEpoch,
        current: LeaderEpoch,
    },
    #[error("partition epoch {given} is stale (current {current})")]
    InvalidUpdateVersion { given: i32, current: i32 },
    #[error("invalid ISR: {0}")]
    InvalidIsr(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("unsupported SASL mechanism {0}")]
    UnsupportedMechanism(String),
    #[error("unacceptable credential: {0}")]
    UnacceptableCredential(String),
    #[error("user {user} has no {mechanism} credential")]
    UnknownCredential { user: String, mechanism: String },
    /// Refused before it was proposed: the quorum's disk is full.
    #[error("the quorum's disk is full: only deletions are accepted")]
    DiskFull,
}

impl CommandError {
    /// The Kafka error code a broker should answer with.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            CommandError::RevisionConflict { .. } => 96, // INVALID_UPDATE_VERSION
            CommandError::TopicAlreadyExists(_) => 36,
            CommandError::UnknownTopic(_) | CommandError::UnknownPartition { .. } => 3,
            CommandError::InvalidTopic(_) | CommandError::TopicCollision { .. } => 17,
            CommandError::InvalidReplicationFactor { .. } => 38,
            CommandError::InvalidPartitions(_) => 37,
            CommandError::InvalidConfig(_) => 40,
            CommandError::UnknownBroker(_) => 77, // STALE_BROKER_EPOCH
            CommandError::NotLeader { .. } => 6,
            CommandError::FencedLeaderEpoch { .. } => 74,
            CommandError::InvalidUpdateVersion { .. } => 96,
            CommandError::InvalidIsr(_) => 107, // INELIGIBLE_REPLICA
            CommandError::InvalidRequest(_) => 42,
            CommandError::UnsupportedMechanism(_) => 33,
            CommandError::UnacceptableCredential(_) => 93,
            CommandError::UnknownCredential { .. } => 91, // RESOURCE_NOT_FOUND
            CommandError::DiskFull => 56,                 // KAFKA_STORAGE_ERROR
        }
    }
}

pub type CommandResult = Result<Applied, CommandError>;

/// Applies one committed proposal. Bumps `revision` iff something changed.
pub fn apply(view: &mut ClusterView, proposal: &Proposal) -> CommandResult {
    apply_tracked(view, proposal, &mut Vec::new())
}

/// Like `apply`, and pushes onto `touched` the name of every topic it
/// changed or removed (watchers are sent only those).
pub fn apply_tracked(
    view: &mut ClusterView,
    proposal: &Proposal,
    touched: &mut Vec<String>,
) -> CommandResult {
    if let Some(expected) = proposal.expected_revision {
        if expected != view.revision {
            return Err(CommandError::RevisionConflict {
                expected,
                actual: view.revision,
            });
        }
    }
    match &proposal.command {
        Command::Batch { commands } => return apply_batch(view, commands, touched),
        // Sets the id once; later ones change nothing.
        Command::InitCluster { cluster_id }
            if !view.cluster_id.is_empty() || cluster_id.is_empty() =>
        {
            return Ok(unchanged(view))
        }
        // A command that would leave the view as it is (the same process
        // registering again after a lost heartbeat, configs set to the values
        // they have): no new revision, so no watcher wakes for nothing
        // (found by the fuzz target `quorum`).
        command if changes_nothing(view, command) => return Ok(unchanged(view)),
        _ => {}
    }
    let outcome = apply_command(view, &proposal.command, touched)?;
    view.revision += 1;
    Ok(Applied {
        revision: view.revision,
        outcome,
    })
}

fn apply_batch(
    view: &mut ClusterView,
    commands: &[Command],
    touched: &mut Vec<String>,
) -> CommandResult {
    if commands.len() > BATCH_COMMANDS_MAX {
        return Err(CommandError::InvalidRequest(format!(
            "a batch of {} commands is over {BATCH_COMMANDS_MAX}",
            commands.len()
        )));
    }
    let mut outcomes = Vec::with_capacity(commands.len());
    for command in commands {
        let proposal = Proposal::new(command.clone());
        let result = match command {
            Command::Batch { .. } => Err(CommandError::InvalidRequest("nested batch".into())),
            _ => apply_tracked(view, &proposal, touched).map(|a| a.outcome),
        };
        outcomes.push(result);
    }
    Ok(Applied {
        revision: view.revision,
        outcome: Outcome::Batch(outcomes),
    })
}

/// One command's change, without the revision bump.
fn apply_command(
    view: &mut ClusterView,
    command: &Command,
    touched: &mut Vec<String>,
) -> Result<Outcome, CommandError> {
    let outcome = match command {
        Command::InitCluster { cluster_id } => {
            view.cluster_id = cluster_id.clone();
            Outcome::Done
        }
        Command::RegisterBroker { info } => register_broker(view, info, touched)?,
        Command::ExpireBroker { broker_id } => expire_broker(view, *broker_id, touched)?,
        Command::CreateTopic {
            name,
            partitions,
            replication_factor,
            configs,
            topic_id,
        } => {
            let spec = NewTopic {
                name,
                partitions: *partitions,
                replication_factor: *replication_factor,
                configs,
                topic_id: *topic_id,
            };
            create_topic(view, &spec)?
        }
        Command::DeleteTopic { name } => {
            view.topics
                .remove(name)
                .ok_or_else(|| CommandError::UnknownTopic(name.clone()))?;
            Outcome::Done
        }
        Command::CreatePartitions { name, count } => create_partitions(view, name, *count)?,
        Command::AlterTopicConfigs { name, set, delete } => alter_configs(view, name, set, delete)?,
        Command::AlterPartition {
            topic,
            partition,
            leader_id,
            leader_epoch,
            partition_epoch,
            new_isr,
        } => {
            let request = IsrChange {
                leader_id: *leader_id,
                leader_epoch: *leader_epoch,
                partition_epoch: *partition_epoch,
                new_isr,
            };
            alter_partition(view, topic, *partition, &request)?
        }
        Command::AllocateProducerIds { broker_id, count } => {
            allocate_producer_ids(view, *broker_id, *count)?
        }
        Command::UpsertScramCredential {
            user,
            mechanism,
            credential,
        } => credentials::upsert_scram(view, user, mechanism, credential, touched)?,
        Command::DeleteScramCredential { user, mechanism } => {
            credentials::delete_scram(view, user, mechanism, touched)?
        }
        Command::CreateAcl { binding } => acls::create_acl(view, binding, touched)?,
        Command::DeleteAcls { filter } => acls::delete_acls(view, filter, touched)?,
        Command::Batch { .. } => return Err(CommandError::InvalidRequest("nested batch".into())),
    };
    if let Some(name) = topic_of(command) {
        touched.push(name.to_string());
    }
    Ok(outcome)
}

/// The one topic a command changes, for those that change one.
fn topic_of(command: &Command) -> Option<&str> {
    match command {
        Command::CreateTopic { name, .. }
        | Command::DeleteTopic { name }
        | Command::CreatePartitions { name, .. }
        | Command::AlterTopicConfigs { name, .. } => Some(name),
        Command::AlterPartition { topic, .. } => Some(topic),
        _ => None,
    }
}

fn unchanged(view: &ClusterView) -> Applied {
    Applied {
        revision: view.revision,
        outcome: Outcome::Done,
    }
}

fn register_broker(
    view: &mut ClusterView,
    info: &BrokerInfo,
    touched: &mut Vec<String>,
) -> Result<Outcome, CommandError> {
    validate_broker(view, info)?;
    let id = info.broker_id;
    let restarted = view
        .brokers
        .get(&id)
        .is_some_and(|old| old.incarnation != info.incarnation);
    if restarted {
        // The old process is gone: its leaderships move and it leaves the
        // ISRs before the new process joins as a follower that must catch up.
        expire_broker(view, id, touched)?;
    }
    view.brokers.insert(info.broker_id, info.clone());
    for topic in view.topics.values_mut() {
        let unclean = topic.unclean_election();
        let mut changed = false;
        for p in topic.partitions.iter_mut().filter(|p| p.leader.is_none()) {
            if p.isr.contains(&id) {
                set_leader(p, Some(id));
                changed = true;
            } else if unclean && p.replicas.contains(&id) {
                set_leader(p, Some(id));
                p.isr = vec![id];
                changed = true;
            }
        }
        if changed {
            touched.push(topic.name.clone());
        }
    }
    Ok(Outcome::Done)
}

/// Whether `command`, valid or not, is known to leave `view` as it is.
fn changes_nothing(view: &ClusterView, command: &Command) -> bool {
    match command {
        Command::RegisterBroker { info } => registration_changes_nothing(view, info),
        Command::UpsertScramCredential {
            user,
            mechanism,
            credential,
        } => credentials::upsert_changes_nothing(view, user, mechanism, credential),
        Command::CreateAcl { binding } => acls::create_changes_nothing(view, binding),
        Command::AlterTopicConfigs { name, set, delete } => {
            view.topics.get(name).is_some_and(|t| {
                delete
                    .iter()
                    .all(|key| !t.configs.contains_key(key) || set.contains_key(key))
                    && set
                        .iter()
                        .all(|(key, value)| t.configs.get(key) == Some(value))
            })
        }
        _ => false,
    }
}

/// Whether registering `info` would leave the view as it is: the broker is
/// registered exactly so already, and no leaderless partition would take it
/// as leader.
fn registration_changes_nothing(view: &ClusterView, info: &BrokerInfo) -> bool {
    let id = info.broker_id;
    view.brokers.get(&id) == Some(info)
        && view.topics.values().all(|topic| {
            let unclean = topic.unclean_election();
            topic.partitions.iter().all(|p| {
                p.leader.is_some() || !(p.isr.contains(&id) || unclean && p.replicas.contains(&id))
            })
        })
}

fn validate_broker(view: &ClusterView, info: &BrokerInfo) -> Result<(), CommandError> {
    let rack_len = info.rack.as_ref().map_or(0, String::len);
    if info.broker_id.0 < 0
        || info.host.is_empty()
        || info.host.len() > HOST_BYTES_MAX
        || rack_len > HOST_BYTES_MAX
    {
        return Err(CommandError::InvalidRequest(format!(
            "broker id {} host of {} bytes rack of {rack_len} bytes",
            info.broker_id,
            info.host.len()
        )));
    }
    if view.brokers.len() >= BROKERS_MAX && !view.brokers.contains_key(&info.broker_id) {
        return Err(CommandError::InvalidRequest(format!(
            "{BROKERS_MAX} brokers are registered already"
        )));
    }
    Ok(())
}

fn set_leader(p: &mut PartitionState, leader: Option<BrokerId>) {
    p.leader = leader;
    p.leader_epoch = p.leader_epoch.next();
    p.partition_epoch += 1;
}

fn expire_broker(
    view: &mut ClusterView,
    broker_id: BrokerId,
    touched: &mut Vec<String>,
) -> Result<Outcome, CommandError> {
    if view.brokers.remove(&broker_id).is_none() {
        return Err(CommandError::UnknownBroker(broker_id));
    }
    let live = &view.brokers;
    for topic in view.topics.values_mut() {
        let unclean = topic.unclean_election();
        let mut changed = false;
        for p in topic.partitions.iter_mut() {
            changed |= fail_over(p, broker_id, |b| live.contains_key(&b), unclean);
        }
        if changed {
            touched.push(topic.name.clone());
        }
    }
    Ok(Outcome::Done)
}

/// Removes `gone` from a partition's ISR and leadership. A new leader is the
/// first replica (in replica order) that is a live ISR member; with unclean
/// election, any live replica when no ISR member is live. The last ISR member
/// stays in the ISR (with no leader), so it can lead again when it returns.
/// True when it changed the partition.
fn fail_over(
    p: &mut PartitionState,
    gone: BrokerId,
    is_live: impl Fn(BrokerId) -> bool,
    unclean: bool,
) -> bool {
    if p.leader != Some(gone) && !p.isr.contains(&gone) {
        return false;
    }
    fail_over_from(p, gone, is_live, unclean);
    true
}

fn fail_over_from(
    p: &mut PartitionState,
    gone: BrokerId,
    is_live: impl Fn(BrokerId) -> bool,
    unclean: bool,
) {
    let remaining: Vec<BrokerId> = p.isr.iter().copied().filter(|&b| b != gone).collect();
    let isr_changed = !remaining.is_empty();
    if isr_changed {
        p.isr = remaining;
    }
    if p.leader != Some(gone) {
        if isr_changed {
            p.partition_epoch += 1;
        }
        return;
    }
    let from_isr = p
        .replicas
        .iter()
        .copied()
        .find(|&b| b != gone && p.isr.contains(&b) && is_live(b));
    let from_replicas = || {
        p.replicas
            .iter()
            .copied()
            .find(|&b| b != gone && is_live(b))
    };
    match (from_isr, unclean) {
        (Some(b), _) => set_leader(p, Some(b)),
        (None, true) => match from_replicas() {
            Some(b) => {
                set_leader(p, Some(b));
                p.isr = vec![b];
            }
            None => set_leader(p, None),
        },
        (None, false) => set_leader(p, None),
    }
}

fn validate_topic_name(name: &str) -> Result<(), CommandError> {
    model::topic_name::check(name).map_err(|_| CommandError::InvalidTopic(name.to_string()))
}

fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), CommandError> {
    if let Some(v) = configs.get(UNCLEAN_LEADER_ELECTION) {
        if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
            return Err(CommandError::InvalidConfig(format!(
                "{UNCLEAN_LEADER_ELECTION} must be true or false, not {:?}",
                v.chars().take(64).collect::<String>()
            )));
        }
    }
    for (key, value) in configs {
        if key.is_empty() || key.len() > CONFIG_KEY_BYTES_MAX {
            return Err(CommandError::InvalidConfig(format!(
                "a config key of {} bytes",
                key.len()
            )));
        }
        if value.len() > CONFIG_VALUE_BYTES_MAX {
            return Err(CommandError::InvalidConfig(format!(
                "{key}: a value of {} bytes is over {CONFIG_VALUE_BYTES_MAX}",
                value.len()
            )));
        }
    }
    let total = config_bytes(configs);
    if total > TOPIC_CONFIG_BYTES_MAX {
        return Err(CommandError::InvalidConfig(format!(
            "configs of {total} bytes are over {TOPIC_CONFIG_BYTES_MAX} per topic"
        )));
    }
    Ok(())
}

fn config_bytes(configs: &BTreeMap<String, String>) -> usize {
    configs.iter().map(|(k, v)| k.len() + v.len() + 8).sum()
}

/// A generous estimate of a topic's JSON size in the view: per partition,
/// its epochs and leader, and its replica and ISR lists.
fn topic_bytes_estimate(configs: &BTreeMap<String, String>, partitions: usize, rf: usize) -> usize {
    let per_partition = 128 + 2 * 12 * rf;
    512 + config_bytes(configs) + partitions.saturating_mul(per_partition)
}

fn check_topic_size(
    configs: &BTreeMap<String, String>,
    partitions: usize,
    rf: usize,
) -> Result<(), CommandError> {
    let bytes = topic_bytes_estimate(configs, partitions, rf);
    if bytes > TOPIC_BYTES_MAX {
        return Err(CommandError::InvalidPartitions(format!(
            "{partitions} partitions of {rf} replicas make a topic of about {bytes} bytes, over {TOPIC_BYTES_MAX}"
        )));
    }
    Ok(())
}

fn candidates(view: &ClusterView) -> Vec<Candidate> {
    view.brokers
        .values()
        .map(|b| Candidate {
            broker_id: b.broker_id,
            rack: b.rack.clone(),
        })
        .collect()
}

fn new_partitions(
    view: &ClusterView,
    topic: &str,
    first: usize,
    count: usize,
    replication_factor: usize,
) -> Result<Vec<PartitionState>, CommandError> {
    let placed = placement::place(topic, &candidates(view), first, count, replication_factor)
        .map_err(|e| match e {
            PlacementError::NotEnoughBrokers {
                requested,
                available,
            } => CommandError::InvalidReplicationFactor {
                requested: requested as i32,
                available,
            },
            PlacementError::ZeroReplicationFactor => CommandError::InvalidReplicationFactor {
                requested: 0,
                available: view.brokers.len(),
            },
        })?;
    Ok(placed
        .into_iter()
        .map(|replicas| PartitionState {
            leader: Some(replicas[0]),
            isr: replicas.clone(),
            replicas,
            leader_epoch: LeaderEpoch(0),
            partition_epoch: 0,
        })
        .collect())
}

/// The fields of a `CreateTopic` command.
struct NewTopic<'a> {
    name: &'a str,
    partitions: i32,
    replication_factor: i16,
    configs: &'a BTreeMap<String, String>,
    topic_id: Option<uuid::Uuid>,
}

fn create_topic(view: &mut ClusterView, spec: &NewTopic<'_>) -> Result<Outcome, CommandError> {
    let (name, partitions, replication_factor) =
        (spec.name, spec.partitions, spec.replication_factor);
    validate_topic_name(name)?;
    if view.topics.contains_key(name) {
        return Err(CommandError::TopicAlreadyExists(name.to_string()));
    }
    if let Some(existing) = model::topic_name::colliding_topic(name, &view.topics) {
        return Err(CommandError::TopicCollision {
            name: name.to_string(),
            existing: existing.to_string(),
        });
    }
    if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
        return Err(CommandError::InvalidPartitions(format!(
            "{partitions} is not in 1..={PARTITIONS_PER_TOPIC_MAX}"
        )));
    }
    if replication_factor < 1 {
        return Err(CommandError::InvalidReplicationFactor {
            requested: i32::from(replication_factor),
            available: view.brokers.len(),
        });
    }
    validate_configs(spec.configs)?;
    check_topic_size(
        spec.configs,
        partitions as usize,
        replication_factor as usize,
    )?;
    let parts = new_partitions(
        view,
        name,
        0,
        partitions as usize,
        replication_factor as usize,
    )?;
    let topic_id = spec
        .topic_id
        .unwrap_or_else(|| derived_topic_id(view, name));
    view.topics.insert(
        name.to_string(),
        TopicState {
            name: name.to_string(),
            topic_id,
            configs: spec.configs.clone(),
            partitions: parts,
        },
    );
    Ok(Outcome::TopicCreated { topic_id })
}

/// A topic id every node derives alike, for proposals that carry none.
fn derived_topic_id(view: &ClusterView, name: &str) -> uuid::Uuid {
    let name_hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    uuid::Uuid::from_u64_pair(view.revision.wrapping_add(1) | (1 << 62), name_hash)
}

fn create_partitions(
    view: &mut ClusterView,
    name: &str,
    count: i32,
) -> Result<Outcome, CommandError> {
    let topic = view
        .topics
        .get(name)
        .ok_or_else(|| CommandError::UnknownTopic(name.to_string()))?;
    let current = topic.partitions.len();
    if count <= current as i32 || count > PARTITIONS_PER_TOPIC_MAX {
        return Err(CommandError::InvalidPartitions(format!(
            "topic {name} has {current} partitions; {count} is not more (or above {PARTITIONS_PER_TOPIC_MAX})"
        )));
    }
    let replication_factor = topic.partitions.first().map_or(1, |p| p.replicas.len());
    check_topic_size(&topic.configs, count as usize, replication_factor)?;
    let added = new_partitions(
        view,
        name,
        current,
        count as usize - current,
        replication_factor,
    )?;
    if let Some(topic) = view.topics.get_mut(name) {
        topic.partitions.extend(added);
    }
    Ok(Outcome::Done)
}

fn alter_configs(
    view: &mut ClusterView,
    name: &str,
    set: &BTreeMap<String, String>,
    delete: &[String],
) -> Result<Outcome, CommandError> {
    let topic = view
        .topics
        .get_mut(name)
        .ok_or_else(|| CommandError::UnknownTopic(name.to_string()))?;
    let mut configs = topic.configs.clone();
    for key in delete {
        configs.remove(key);
    }
    configs.extend(set.clone());
    validate_configs(&configs)?;
    let rf = topic.partitions.first().map_or(1, |p| p.replicas.len());
    check_topic_size(&configs, topic.partitions.len(), rf)?;
    topic.configs = configs;
    Ok(Outcome::Done)
}

struct IsrChange<'a> {
    leader_id: BrokerId,
    leader_epoch: LeaderEpoch,
    partition_epoch: i32,
    new_isr: &'a [BrokerId],
}

fn alter_partition(
    view: &mut ClusterView,
    topic: &str,
    partition: i32,
    change: &IsrChange<'_>,
) -> Result<Outcome, CommandError> {
    let live = &view.brokers;
    let state = view
        .topics
        .get_mut(topic)
        .ok_or_else(|| CommandError::UnknownTopic(topic.to_string()))?
        .partitions
        .get_mut(usize::try_from(partition).unwrap_or(usize::MAX))
        .ok_or_else(|| CommandError::UnknownPartition {
            topic: topic.to_string(),
            partition,
        })?;
    check_isr_change(state, change, |b| live.contains_key(&b)).map_err(|e| match e {
        CommandError::NotLeader { .. } => CommandError::NotLeader {
            topic: topic.to_string(),
            partition,
            leader_id: change.leader_id,
        },
        other => other,
    })?;
    state.isr = change.new_isr.to_vec();
    state.partition_epoch += 1;
    Ok(Outcome::Partition(state.clone()))
}

fn check_isr_change(
    state: &PartitionState,
    change: &IsrChange<'_>,
    is_live: impl Fn(BrokerId) -> bool,
) -> Result<(), CommandError> {
    if state.leader != Some(change.leader_id) {
        return Err(CommandError::NotLeader {
            topic: String::new(),
            partition: 0,
            leader_id: change.leader_id,
        });
    }
    if change.leader_epoch != state.leader_epoch {
        return Err(CommandError::FencedLeaderEpoch {
            given: change.leader_epoch,
            current: state.leader_epoch,
        });
    }
    if change.partition_epoch != state.partition_epoch {
        return Err(CommandError::InvalidUpdateVersion {
            given: change.partition_epoch,
            current: state.partition_epoch,
        });
    }
    let isr = change.new_isr;
    if !isr.contains(&change.leader_id) {
        return Err(CommandError::InvalidIsr(
            "the ISR must hold the leader".into(),
        ));
    }
    for (i, b) in isr.iter().enumerate() {
        if !state.replicas.contains(b) || isr[..i].contains(b) {
            return Err(CommandError::InvalidIsr(format!(
                "broker {b} is not a replica, or is listed twice"
            )));
        }
        if !is_live(*b) {
            return Err(CommandError::InvalidIsr(format!("broker {b} is not live")));
        }
    }
    Ok(())
}

fn allocate_producer_ids(
    view: &mut ClusterView,
    broker_id: BrokerId,
    count: i64,
) -> Result<Outcome, CommandError> {
    if !view.brokers.contains_key(&broker_id) {
        return Err(CommandError::UnknownBroker(broker_id));
    }
    if !(1..=PRODUCER_ID_BLOCK_MAX).contains(&count) {
        return Err(CommandError::InvalidRequest(format!(
            "producer id block of {count} is not in 1..={PRODUCER_ID_BLOCK_MAX}"
        )));
    }
    let first_id = view.next_producer_id;
    view.next_producer_id = first_id
        .checked_add(count)
        .ok_or_else(|| CommandError::InvalidRequest("producer ids exhausted".into()))?;
    Ok(Outcome::ProducerIds { first_id, count })
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
