//! The cluster metadata the quorum service keeps, as serde types shared with
//! brokers (which receive it from `Read` and `Watch`) and with the CLI.
//! Pure data, no I/O; used in the quorum process and by broker-side clients.
//!
//! Broker ids and leader epochs are typed (`model::BrokerId`,
//! `model::LeaderEpoch`) and serialise as the bare integers they were, and a
//! leaderless partition's `leader` is `None` in memory and -1 in the JSON,
//! so the persisted view and log, and the protocol, are byte for byte what
//! they were (pinned by `format_tests.rs`).
use model::acl::AclBinding;
use model::{BrokerId, LeaderEpoch};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A leaderless partition's `leader` in the JSON of the view.
pub const NO_LEADER: i32 = BrokerId::WIRE_NONE;

/// Topic config that allows electing a leader outside the ISR.
pub const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";

/// A registered broker: where clients and replicas reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub broker_id: BrokerId,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// New at every start of the broker process. A registration with
    /// another incarnation than the one registered is a restart: the
    /// controller handles it as the old process gone (like Kafka's broker
    /// epochs), so a broker that lost its disk never stays leader.
    #[serde(default)]
    pub incarnation: Option<uuid::Uuid>,
    /// The address on each of the broker's listeners (Kafka's endpoints).
    /// `host` and `port` are the inter-broker listener's. Empty in
    /// registrations of earlier releases, which had one listener.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerEndpoint>,
}

/// Where a broker is reached on one of its listeners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerEndpoint {
    /// The listener's name, upper case (`PLAINTEXT`, `SSL`, ...).
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl BrokerInfo {
    /// The broker's (host, port) on the listener `name`: its registered
    /// endpoint, or for a registration without endpoints (one listener)
    /// its only address. `None`: it has no such listener.
    pub fn endpoint(&self, name: &str) -> Option<(&str, u16)> {
        if self.listeners.is_empty() {
            return Some((&self.host, self.port));
        }
        self.listeners
            .iter()
            .find(|l| l.name.eq_ignore_ascii_case(name))
            .map(|l| (l.host.as_str(), l.port))
    }
}

/// One partition's assignment and leadership, KRaft's `PartitionRecord` in short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Assigned replicas; the first is the preferred leader.
    pub replicas: Vec<BrokerId>,
    /// The leader's broker id; `None` (`NO_LEADER` in the JSON) when no
    /// replica can lead.
    #[serde(with = "leader_in_json")]
    pub leader: Option<BrokerId>,
    /// Bumped on every change of leader.
    pub leader_epoch: LeaderEpoch,
    pub isr: Vec<BrokerId>,
    /// Bumped on every change of leader or ISR.
    pub partition_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicState {
    pub name: String,
    pub topic_id: uuid::Uuid,
    pub configs: BTreeMap<String, String>,
    /// Indexed by partition number.
    pub partitions: Vec<PartitionState>,
}

impl TopicState {
    /// Whether `unclean.leader.election.enable` is set to true for this topic.
    pub fn unclean_election(&self) -> bool {
        self.configs
            .get(UNCLEAN_LEADER_ELECTION)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// The whole replicated state: what `Read` and `Watch` return.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// Generated once, when the quorum is first formed.
    pub cluster_id: String,
    /// Bumped by every applied command that changes anything.
    pub revision: u64,
    /// Live brokers only (registered, session not expired).
    pub brokers: BTreeMap<BrokerId, BrokerInfo>,
    pub topics: BTreeMap<String, TopicState>,
    /// The first producer id of the next block handed out.
    pub next_producer_id: i64,
    /// Users' SCRAM credentials (and, later, ACLs). Left out of the JSON
    /// while empty, so views without users keep their earlier form.
    #[serde(default, skip_serializing_if = "SecurityState::is_empty")]
    pub security: SecurityState,
}

/// What the brokers authenticate and authorise with, kept whole in the
/// view and sent to watchers only when it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityState {
    /// user -> mechanism name (`SCRAM-SHA-256`, `SCRAM-SHA-512`) -> credential.
    pub scram: BTreeMap<String, BTreeMap<String, StoredScramCredential>>,
    /// Kafka's ACLs (CreateAcls, DeleteAcls), which every broker's
    /// authorizer applies from its view.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub acls: BTreeSet<AclBinding>,
}

impl SecurityState {
    pub fn is_empty(&self) -> bool {
        self.scram.is_empty() && self.acls.is_empty()
    }
}

/// A SCRAM credential as RFC 5802 has the server keep it: no password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredScramCredential {
    #[serde(with = "base64_bytes")]
    pub salt: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub stored_key: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

/// Bytes as base64 text in JSON, a third of the size of a number array.
mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

impl ClusterView {
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(topic)?.partitions.get(index)
    }
}

/// A partition's leader as the JSON has always held it: the broker id, or
/// `NO_LEADER` (-1) for none; any negative id reads as none.
mod leader_in_json {
    use super::NO_LEADER;
    use model::BrokerId;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(leader: &Option<BrokerId>, s: S) -> Result<S::Ok, S::Error> {
        leader.map_or(NO_LEADER, |b| b.0).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BrokerId>, D::Error> {
        i32::deserialize(d).map(BrokerId::from_wire)
    }
}
