//! Consumer groups: the coordinator of the classic group protocol and the
//! committed offsets, stored in the internal topic `__consumer_offsets`.
//!
//! A group belongs to partition `abs(javaHashCode(group)) % N` of
//! `__consumer_offsets` (Apache Kafka's rule), and its coordinator is the
//! shard that owns that partition: every group request is forwarded there,
//! so a group's state is touched by one shard only, without locks. Offsets and
//! group metadata are appended to that partition (synced before the answer)
//! and replayed from it when the shard starts. The topic is compacted
//! (retention off): replay steps over the gaps compaction leaves, and over
//! any batch it cannot decode, so one bad batch costs only its own records.
pub mod membership;
pub mod records;

use crate::error_codes::replication_error_code;
use crate::partition::{Acknowledgement, BatchToAppend, Partition};
use crate::replication::ReplicationError;
use crate::shard::{LeadershipChange, Shard};
use bytes::Bytes;
use kafka_protocol::records::Compression;
use membership::{
    Group, GroupLimits, GroupState, JoinRequest, JoinResult, Reply, StoredGroup, SyncResult,
};
use records::{CommittedOffset, OffsetsRecord};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};
use storage::{PartitionLog, Reader};
use wire::batch::{encode_records, validate_producer_batch, BatchHeader, BatchIter, PlainRecord};
use wire::records::decode_records_bounded;
use wire::ResponseError;

/// The internal topic holding committed offsets and group metadata.
impl membership::GroupLimits {
    /// What the group state machine takes from the broker config.
    pub fn from_config(config: &crate::config::BrokerConfig) -> Self {
        membership::GroupLimits {
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
        }
    }
}

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// How long a group write waits for the ISR in a cluster.
const GROUP_WRITE_TIMEOUT_MS: i32 = 5_000;
/// How often each shard expires sessions and ends overdue rebalances.
const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// How long a group that once formed stays, Empty and without committed
/// offsets, after its last member left: Kafka keeps such a group (described
/// and listed as Empty) until its next group-metadata cleanup, which runs
/// every `offsets.retention.check.interval.ms` (600 000 ms by default), and
/// then deletes it with a tombstone. This bounds what idle groups cost.
pub const EMPTY_GROUP_EXPIRY: Duration = Duration::from_millis(600_000);
/// Bytes read at a time when replaying `__consumer_offsets`.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// The configs `__consumer_offsets` is created with: compacted, so that it
/// keeps the newest commit of each (group, topic, partition) and the newest
/// metadata of each group.
pub fn offsets_topic_configs() -> BTreeMap<String, String> {
    [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "104857600"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The `__consumer_offsets` partition of a group: Kafka's
/// `Utils.abs(groupId.hashCode) % partitions`, with Java's String.hashCode.
pub fn offsets_partition(group: &str, partitions: i32) -> i32 {
    let hash = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions.max(1)
}

/// A group's committed offsets by (topic, partition).
pub type GroupOffsets = BTreeMap<(String, i32), CommittedOffset>;

/// One row of ListGroups.
#[derive(Debug, Clone)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
}

/// What DescribeGroups shows of a group.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol_name: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

impl Shard {
    /// The groups this shard coordinates (installed by `server` on every
    /// shard).
    pub fn groups(&self) -> &GroupCoordinator {
        self.service::<GroupCoordinator>()
    }
}

/// The groups whose `__consumer_offsets` partitions one shard owns.
pub struct GroupCoordinator {
    groups: RefCell<HashMap<String, Group>>,
    offsets: RefCell<HashMap<String, GroupOffsets>>,
    limits: GroupLimits,
}

impl GroupCoordinator {
    pub fn new(limits: GroupLimits) -> Self {
        GroupCoordinator {
            groups: RefCell::new(HashMap::new()),
            offsets: RefCell::new(HashMap::new()),
            limits,
        }
    }

    pub fn join(&self, group_id: &str, request: JoinRequest, now: Instant) -> Reply<JoinResult> {
        let mut groups = self.groups.borrow_mut();
        let group = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id));
        group.join(request, now, &self.limits)
    }

    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Reply<SyncResult> {
        match self.groups.borrow_mut().get_mut(group_id) {
            Some(group) => group.sync(member_id, instance_id, generation_id, assignments, now),
            None => Reply::Now(SyncResult {
                error_code: ResponseError::UnknownMemberId.code(),
                ..SyncResult::default()
            }),
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now: Instant,
    ) -> i16 {
        match self.groups.borrow_mut().get_mut(group_id) {
            Some(group) => group.heartbeat(member_id, instance_id, generation_id, now),
            None => ResponseError::UnknownMemberId.code(),
        }
    }

    /// LeaveGroup for each (member id, instance id); an error code for each.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now: Instant,
    ) -> Vec<i16> {
        let mut groups = self.groups.borrow_mut();
        let Some(group) = groups.get_mut(group_id) else {
            return vec![ResponseError::UnknownMemberId.code(); members.len()];
        };
        members
            .iter()
            .map(|(member, instance)| group.leave(member, instance.as_deref(), now, &self.limits))
            .collect()
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = self.groups.borrow();
        let Some(g) = groups.get(group_id) else {
            // A group known only by its committed offsets is Empty, as in
            // ListGroups (and in Kafka).
            return self
                .offsets
                .borrow()
                .contains_key(group_id)
                .then(|| GroupDescription {
                    state: GroupState::Empty.name(),
                    protocol_type: String::new(),
                    protocol_name: String::new(),
                    members: Vec::new(),
                });
        };
        Some(GroupDescription {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            members: g
                .to_stored()
                .members
                .into_iter()
                .map(|m| {
                    (
                        m.member_id,
                        m.group_instance_id,
                        m.client_id,
                        m.client_host,
                        m.metadata,
                        m.assignment,
                    )
                })
                .collect(),
        })
    }

    /// Every group this shard coordinates, with offsets-only groups as Empty.
    pub fn list(&self) -> Vec<ListedGroup> {
        let groups = self.groups.borrow();
        let mut out: BTreeMap<String, ListedGroup> = groups
            .values()
            .map(|g| {
                let listed = ListedGroup {
                    group_id: g.group_id.clone(),
                    protocol_type: g.protocol_type.clone(),
                    state: g.state.name(),
                };
                (g.group_id.clone(), listed)
            })
            .collect();
        for group_id in self.offsets.borrow().keys() {
            out.entry(group_id.clone()).or_insert_with(|| ListedGroup {
                group_id: group_id.clone(),
                protocol_type: String::new(),
                state: GroupState::Empty.name(),
            });
        }
        out.into_values().collect()
    }

    pub fn exists(&self, group_id: &str) -> bool {
        self.groups.borrow().contains_key(group_id) || self.offsets.borrow().contains_key(group_id)
    }

    /// Whether a commit from (member, generation) may be accepted now.
    /// Commits with generation -1 come from consumers outside the group
    /// protocol and are accepted while the group has no members (as Kafka does).
    pub fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), i16> {
        let groups = self.groups.borrow();
        let Some(group) = groups.get(group_id) else {
            return if generation_id < 0 {
                Ok(())
            } else {
                Err(ResponseError::IllegalGeneration.code())
            };
        };
        if generation_id < 0 && group.is_empty() {
            return Ok(());
        }
        group.check_instance(member_id, instance_id)?;
        if generation_id != group.generation_id {
            return Err(ResponseError::IllegalGeneration.code());
        }
        // Kafka accepts commits while a rebalance prepares (members commit
        // before they rejoin) and refuses them only while it completes.
        if group.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress.code());
        }
        Ok(())
    }

    pub fn committed(&self, group_id: &str) -> GroupOffsets {
        self.offsets
            .borrow()
            .get(group_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The topics a group's members subscribe to, from their consumer
    /// protocol metadata (version i16, then an array of topic names).
    pub fn subscribed_topics(&self, group_id: &str) -> Vec<String> {
        let groups = self.groups.borrow();
        let Some(group) = groups.get(group_id) else {
            return Vec::new();
        };
        if group.protocol_type != "consumer" {
            return Vec::new();
        }
        let mut topics: Vec<String> = group
            .to_stored()
            .members
            .iter()
            .flat_map(|m| parse_subscription(&m.metadata))
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// Applies a record read back from (or just written to) the log.
    pub fn apply(&self, record: OffsetsRecord, now: Instant) {
        match record {
            OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                let mut offsets = self.offsets.borrow_mut();
                match value {
                    Some(v) => {
                        offsets
                            .entry(group)
                            .or_default()
                            .insert((topic, partition), v);
                    }
                    None => {
                        if let Some(g) = offsets.get_mut(&group) {
                            g.remove(&(topic, partition));
                            if g.is_empty() {
                                offsets.remove(&group);
                            }
                        }
                    }
                }
            }
            OffsetsRecord::Group { group, value } => {
                let mut groups = self.groups.borrow_mut();
                match value {
                    Some(stored) => groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group))
                        .restore(stored, now),
                    None => {
                        groups.remove(&group);
                    }
                }
            }
        }
    }

    /// Forgets the groups and offsets of one `__consumer_offsets` partition
    /// (its leadership moved to another broker). Pending joins and syncs
    /// are answered by dropping their senders.
    pub fn unload_partition(&self, partition: i32, partitions: i32) {
        let mine = |group: &String| offsets_partition(group, partitions) == partition;
        self.groups.borrow_mut().retain(|g, _| !mine(g));
        self.offsets.borrow_mut().retain(|g, _| !mine(g));
    }

    /// Expires sessions and ends overdue rebalances in every group, and
    /// forgets groups of which nothing is left (Kafka's Dead state): no
    /// members, none about to join, no committed offsets. A group that never
    /// formed (no generation) goes at once; one that did stays Empty for
    /// `EMPTY_GROUP_EXPIRY`, as in Kafka. Returns the ids of the groups
    /// forgotten that have metadata in the log, for their tombstones.
    pub fn tick(&self, now: Instant) -> Vec<String> {
        let offsets = self.offsets.borrow();
        let mut expired = Vec::new();
        self.groups.borrow_mut().retain(|group_id, group| {
            group.tick(now, &self.limits);
            if !group.is_dead() || offsets.get(group_id).is_some_and(|o| !o.is_empty()) {
                return true;
            }
            if group.generation_id == 0 {
                return false;
            }
            let keep = group
                .idle_for(now)
                .is_none_or(|idle| idle < EMPTY_GROUP_EXPIRY);
            if !keep {
                expired.push(group_id.clone());
            }
            keep
        });
        expired
    }

    /// Groups whose metadata changed since the last call, to persist.
    pub fn take_dirty(&self) -> Vec<(String, StoredGroup)> {
        let mut groups = self.groups.borrow_mut();
        groups
            .values_mut()
            .filter(|g| g.dirty)
            .map(|g| {
                g.dirty = false;
                (g.group_id.clone(), g.to_stored())
            })
            .collect()
    }

    /// Deletes an empty group: GROUP_ID_NOT_FOUND or NON_EMPTY_GROUP otherwise.
    /// Returns the records (tombstones) to persist.
    pub fn delete_group(&self, group_id: &str) -> Result<Vec<(Bytes, Option<Bytes>)>, i16> {
        if !self.exists(group_id) {
            return Err(ResponseError::GroupIdNotFound.code());
        }
        if self
            .groups
            .borrow()
            .get(group_id)
            .is_some_and(|g| !g.is_empty())
        {
            return Err(ResponseError::NonEmptyGroup.code());
        }
        let mut tombstones: Vec<(Bytes, Option<Bytes>)> = self
            .committed(group_id)
            .keys()
            .map(|(topic, partition)| (records::offset_key(group_id, topic, *partition), None))
            .collect();
        tombstones.push((records::group_key(group_id), None));
        Ok(tombstones)
    }
}

/// Topics in a consumer protocol subscription (ConsumerProtocolSubscription:
/// version i16, topics [string]); empty if it does not parse.
fn parse_subscription(metadata: &[u8]) -> Vec<String> {
    let mut at = 2usize;
    let read_i32 = |at: usize| {
        metadata
            .get(at..at + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let Some(count) = read_i32(at) else {
        return Vec::new();
    };
    at += 4;
    let mut topics = Vec::new();
    for _ in 0..count.clamp(0, 10_000) {
        let Some(len) = metadata
            .get(at..at + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
        else {
            break;
        };
        at += 2;
        let Some(name) = metadata.get(at..at + len.max(0) as usize) else {
            break;
        };
        at += len.max(0) as usize;
        topics.push(String::from_utf8_lossy(name).into_owned());
    }
    topics
}

/// Whether this shard coordinates the groups of `partition`: while this
/// broker leads the partition.
pub fn leads_partition(shard: &Shard, partition: i32) -> bool {
    shard
        .replication()
        .leader_epoch(OFFSETS_TOPIC, partition)
        .is_some()
}

/// The log of a `__consumer_offsets` partition this shard owns.
async fn offsets_log(shard: &Rc<Shard>, partition: i32) -> Option<Rc<PartitionLog>> {
    if shard.log(OFFSETS_TOPIC, partition).is_none() {
        let _ = shard
            .open_partitions(OFFSETS_TOPIC, partition..partition + 1)
            .await;
    }
    shard.log(OFFSETS_TOPIC, partition)
}

/// Appends records to a `__consumer_offsets` partition and waits until they
/// are synced. The error is a Kafka error code.
pub async fn append_records(
    shard: &Rc<Shard>,
    partition: i32,
    entries: Vec<(Bytes, Option<Bytes>)>,
) -> Result<(), i16> {
    if entries.is_empty() {
        return Ok(());
    }
    let not_available = ResponseError::CoordinatorNotAvailable.code();
    let log = offsets_log(shard, partition).await.ok_or(not_available)?;
    let batch = encode_batch(entries).ok_or(not_available)?;
    let header = validate_producer_batch(&batch).map_err(|_| not_available)?;
    // The replication errors become the ones group clients expect.
    let partition = Partition::new(shard, log);
    let leader_epoch = partition
        .check_write(-1)
        .map_err(|e| coordinator_error(&e))?;
    let batch = BatchToAppend {
        bytes: &batch,
        header: &header,
        shares_buffer: true,
    };
    let pending = partition
        .append(batch, leader_epoch, Acknowledgement::GROUP_WRITE)
        .map_err(|e| replication_error_code(&e))?;
    pending
        .acknowledged(GROUP_WRITE_TIMEOUT_MS)
        .await
        .map(|_| ())
        .map_err(|e| coordinator_error(&e))
}

/// Kafka's mapping of append errors for group writes: a group's
/// coordinator is its partition's leader, and an ISR too small or too slow
/// makes the coordinator unavailable, not the write refused.
fn coordinator_error(e: &ReplicationError) -> i16 {
    match e {
        ReplicationError::NotLeader | ReplicationError::NotAFollower(_) => {
            ResponseError::NotCoordinator.code()
        }
        ReplicationError::NotEnoughReplicas { .. }
        | ReplicationError::NotEnoughReplicasAfterAppend { .. }
        | ReplicationError::TimedOut { .. } => ResponseError::CoordinatorNotAvailable.code(),
        other => replication_error_code(other),
    }
}

fn encode_batch(entries: Vec<(Bytes, Option<Bytes>)>) -> Option<Bytes> {
    let now = storage::now_ms();
    let records: Vec<PlainRecord> = entries
        .into_iter()
        .map(|(k, v)| (now, Some(k), v))
        .collect();
    encode_records(&records, Compression::None).ok()
}

/// Writes the metadata of every group that changed.
pub async fn persist_dirty_groups(shard: &Rc<Shard>) {
    let partitions = shard.config.offsets_topic_partitions;
    for (group_id, stored) in shard.groups().take_dirty() {
        let entry = (
            records::group_key(&group_id),
            Some(records::group_value(&stored)),
        );
        let partition = offsets_partition(&group_id, partitions);
        if let Err(code) = append_records(shard, partition, vec![entry]).await {
            tracing::warn!(group = %group_id, code, "cannot persist group metadata");
        }
    }
}

/// Writes the metadata tombstones of groups the coordinator forgot.
async fn persist_tombstones(shard: &Rc<Shard>, groups: Vec<String>) {
    let partitions = shard.config.offsets_topic_partitions;
    for group_id in groups {
        let entry = (records::group_key(&group_id), None);
        let partition = offsets_partition(&group_id, partitions);
        if let Err(code) = append_records(shard, partition, vec![entry]).await {
            tracing::warn!(group = %group_id, code, "cannot delete expired group metadata");
        }
    }
}

/// Makes the groups of each `__consumer_offsets` partition follow its
/// leadership (as Kafka's coordinator follows the offsets topic's leaders):
/// a new leader loads them, a former leader forgets them. Wired by `server`
/// on every shard.
pub fn follow_leadership(shard: &Rc<Shard>) {
    let weak = Rc::downgrade(shard);
    shard.leadership.subscribe(move |change| {
        let Some(shard) = weak.upgrade() else {
            return;
        };
        match change {
            LeadershipChange::Gained {
                topic, partition, ..
            } if topic == OFFSETS_TOPIC => {
                glommio::spawn_local(take_over_partition(shard, *partition)).detach();
            }
            LeadershipChange::Lost { topic, partition } if topic == OFFSETS_TOPIC => {
                let partitions = shard.config.offsets_topic_partitions;
                shard.groups().unload_partition(*partition, partitions);
            }
            _ => {}
        }
    });
}

/// Takes over the groups of one `__consumer_offsets` partition this broker
/// has just become the leader of (in a cluster).
pub async fn take_over_partition(shard: Rc<Shard>, partition: i32) {
    shard
        .groups()
        .unload_partition(partition, shard.config.offsets_topic_partitions);
    match load_partition(&shard, partition).await {
        Ok(loaded) => tracing::info!(
            partition,
            records = loaded,
            "coordinating the groups of {OFFSETS_TOPIC}-{partition}"
        ),
        Err(e) => tracing::error!(partition, error = %e, "cannot load groups"),
    }
}

/// Replays one partition's records into the coordinator; returns how many.
/// It reads to the log end, not the high watermark: a new leader's tail is
/// the partition's future, which its followers are about to copy.
async fn load_partition(shard: &Rc<Shard>, partition: i32) -> Result<usize, String> {
    let now = Instant::now();
    let Some(log) = offsets_log(shard, partition).await else {
        return Ok(0);
    };
    let mut loaded = 0usize;
    let mut next = log.log_start_offset() as i64;
    while (next as u64) < log.written_end() {
        let read = log
            .read_for(Reader::Follower, next, REPLAY_READ_BYTES, true)
            .await
            .map_err(|e| format!("cannot replay {OFFSETS_TOPIC}-{partition}: {e}"))?;
        let before = next;
        for (header, at) in BatchIter::new(&read.records) {
            next = next.max(header.last_offset() + 1);
            let batch = read.records.slice(at..at + header.size);
            loaded += replay_batch(shard, partition, &header, batch, now);
        }
        if next == before {
            // Reads step over compaction's gaps, so this is a log that ends
            // before its written end says: keep what was loaded.
            tracing::error!(
                partition,
                offset = next,
                "{OFFSETS_TOPIC} ends early: the rest of this partition is not loaded"
            );
            break;
        }
    }
    Ok(loaded)
}

/// Applies the group records of one stored batch; returns how many. A batch
/// that does not decode is skipped (and logged): its neighbours still load.
fn replay_batch(
    shard: &Shard,
    partition: i32,
    header: &BatchHeader,
    batch: Bytes,
    now: Instant,
) -> usize {
    if header.is_control() {
        return 0;
    }
    // Bounded: a compression bomb in the offsets topic costs a log line.
    let records = match decode_records_bounded(&batch) {
        Ok(records) => records,
        Err(e) => {
            tracing::warn!(partition, offset = header.base_offset, error = %e, "skipping an undecodable batch in {OFFSETS_TOPIC}");
            return 0;
        }
    };
    let mut applied = 0;
    for record in records {
        let Some(key) = &record.key else { continue };
        if let Some(r) = records::decode(key, record.value.as_deref()) {
            shard.groups().apply(r, now);
            applied += 1;
        }
    }
    applied
}

/// Expires sessions and ends overdue rebalances, then persists what changed.
pub async fn run_ticker(shard: Rc<Shard>) {
    while !shard.is_stopping() {
        glommio::timer::sleep(TICK_INTERVAL).await;
        let expired = shard.groups().tick(Instant::now());
        persist_dirty_groups(&shard).await;
        persist_tombstones(&shard, expired).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JoinGroup of a new member (no member id yet) of a "consumer" group.
    fn new_member_join(require_known_member_id: bool) -> JoinRequest {
        JoinRequest {
            member_id: String::new(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 1000,
            rebalance_timeout_ms: 1000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id,
        }
    }

    #[test]
    fn groups_of_which_nothing_is_left_are_forgotten() {
        let coordinator = GroupCoordinator::new(GroupLimits {
            min_session_timeout_ms: 100,
            max_session_timeout_ms: 60_000,
            initial_rebalance_delay_ms: 0,
        });
        let now = Instant::now();
        for g in 0..100 {
            let request = new_member_join(true);
            let _ = coordinator.join(&format!("never-joined-{g}"), request, now);
        }
        assert!(coordinator.exists("never-joined-7"));
        coordinator.tick(now + Duration::from_secs(2));
        assert!(
            !coordinator.exists("never-joined-7"),
            "a group whose only would-be members never came back is gone"
        );
        assert!(coordinator.list().is_empty());
    }

    #[test]
    fn a_group_whose_last_member_left_stays_empty_until_it_expires() {
        let coordinator = GroupCoordinator::new(GroupLimits {
            min_session_timeout_ms: 100,
            max_session_timeout_ms: 60_000,
            initial_rebalance_delay_ms: 0,
        });
        let t0 = Instant::now();
        let request = new_member_join(false);
        let Reply::Later(mut joined) = coordinator.join("g", request, t0) else {
            panic!("the join completes through its waiter")
        };
        let member = joined.try_recv().unwrap().expect("joined").member_id;
        assert_eq!(coordinator.leave("g", &[(member, None)], t0), vec![0]);
        let _ = coordinator.take_dirty();
        for after in [1, 60, 599] {
            let expired = coordinator.tick(t0 + Duration::from_secs(after));
            assert!(expired.is_empty());
            let d = coordinator.describe("g").expect("still known");
            assert_eq!(d.state, "Empty");
            assert_eq!(d.protocol_name, "");
            let listed = coordinator.list();
            assert_eq!(listed.len(), 1);
            assert_eq!(
                (listed[0].group_id.as_str(), listed[0].state),
                ("g", "Empty")
            );
        }
        let expired = coordinator.tick(t0 + Duration::from_secs(1) + EMPTY_GROUP_EXPIRY);
        assert_eq!(expired, vec!["g".to_string()], "a tombstone is due");
        assert!(!coordinator.exists("g"));
        assert!(coordinator.list().is_empty());
    }

    #[test]
    fn partition_follows_java_hash_code() {
        // "group".hashCode() == 98629247 in Java; 98629247 % 50 == 47.
        assert_eq!(offsets_partition("group", 50), 47);
        assert!((0..50).contains(&offsets_partition("any-other-group", 50)));
    }

    #[test]
    fn subscription_topics_parse() {
        let mut m = vec![0u8, 1, 0, 0, 0, 2];
        for t in ["a", "bc"] {
            m.extend_from_slice(&(t.len() as i16).to_be_bytes());
            m.extend_from_slice(t.as_bytes());
        }
        assert_eq!(
            parse_subscription(&m),
            vec!["a".to_string(), "bc".to_string()]
        );
        assert!(parse_subscription(&[1]).is_empty());
        assert!(parse_subscription(&[0, 1, 0x7f, 0, 0, 0, 0, 5]).is_empty());
    }
}
