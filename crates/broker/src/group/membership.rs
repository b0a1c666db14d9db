//! One consumer group's membership under the classic rebalance protocol, as
//! a state machine without I/O: JoinGroup, SyncGroup, Heartbeat and LeaveGroup
//! move it between Empty, PreparingRebalance, CompletingRebalance and Stable;
//! `tick` expires sessions and ends rebalances whose time is up. Answers to
//! requests that must wait (a join until the rebalance completes, a sync until
//! the leader's assignment arrives) are oneshot senders held here.
//! Lives on the shard that owns the group's `__consumer_offsets` partition.
use bytes::Bytes;
use futures::channel::oneshot;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wire::ResponseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The name DescribeGroups and ListGroups use.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// The broker settings the state machine needs.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: u64,
}

/// A JoinGroup as the state machine sees it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (protocol name, metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4 and later: a new member first gets its id and must rejoin.
    pub require_known_member_id: bool,
}

/// What a member gets back from JoinGroup.
#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    pub error_code: i16,
    pub generation_id: i32,
    pub protocol_type: String,
    pub protocol_name: String,
    pub leader: String,
    pub member_id: String,
    /// Only the leader gets the members and their metadata.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    fn error(code: i16, member_id: &str) -> Self {
        JoinResult {
            error_code: code,
            generation_id: -1,
            member_id: member_id.to_string(),
            ..JoinResult::default()
        }
    }
}

/// What a member gets back from SyncGroup.
#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    pub error_code: i16,
    pub protocol_type: String,
    pub protocol_name: String,
    pub assignment: Bytes,
}

/// A join or sync answered now or later.
pub enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

#[derive(Debug)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_seen: Instant,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

pub struct Group {
    pub group_id: String,
    pub state: GroupState,
    pub generation_id: i32,
    pub protocol_type: String,
    pub protocol_name: String,
    pub leader: String,
    pub members: BTreeMap<String, Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, not yet joined: when each
    /// was handed out and the session timeout it lives for (KIP-394).
    pending_ids: BTreeMap<String, (Instant, Duration)>,
    join_waiters: BTreeMap<String, oneshot::Sender<JoinResult>>,
    sync_waiters: BTreeMap<String, oneshot::Sender<SyncResult>>,
    rebalance_deadline: Option<Instant>,
    /// Earliest end of a rebalance that started from Empty (the initial delay).
    initial_delay_until: Option<Instant>,
    /// Set when the group's metadata changed and should be persisted.
    pub dirty: bool,
    /// Since when nothing has been left of the group but its name and
    /// generation (see `is_dead`), as last seen by `tick`.
    idle_since: Option<Instant>,
}

/// Most member ids one group keeps waiting for their second JoinGroup: a
/// client that never comes back costs a bounded amount. Past the bound the
/// oldest is forgotten (its owner, if it returns, gets UNKNOWN_MEMBER_ID and
/// joins afresh).
pub const PENDING_IDS_MAX: usize = 1024;

const UNKNOWN_MEMBER: i16 = ResponseError::UnknownMemberId.code();
const ILLEGAL_GENERATION: i16 = ResponseError::IllegalGeneration.code();
const REBALANCING: i16 = ResponseError::RebalanceInProgress.code();
const FENCED: i16 = ResponseError::FencedInstanceId.code();

impl Group {
    pub fn new(group_id: &str) -> Self {
        Group {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: String::new(),
            protocol_name: String::new(),
            leader: String::new(),
            members: BTreeMap::new(),
            pending_ids: BTreeMap::new(),
            join_waiters: BTreeMap::new(),
            sync_waiters: BTreeMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            dirty: false,
            idle_since: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether nothing is left of the group in memory but its name: no
    /// member, none about to join, nothing to persist.
    pub fn is_dead(&self) -> bool {
        self.state == GroupState::Empty
            && self.members.is_empty()
            && self.pending_ids.is_empty()
            && self.join_waiters.is_empty()
            && self.sync_waiters.is_empty()
            && !self.dirty
    }

    /// How long the group has been dead (see `is_dead`) as of the last `tick`.
    pub fn idle_for(&self, now: Instant) -> Option<Duration> {
        self.idle_since
            .map(|since| now.saturating_duration_since(since))
    }

    /// Member ids waiting for their join, for tests and bounds.
    pub fn pending_id_count(&self) -> usize {
        self.pending_ids.len()
    }

    fn add_pending_id(&mut self, member_id: &str, now: Instant, session_timeout: Duration) {
        while self.pending_ids.len() >= PENDING_IDS_MAX {
            let oldest = self
                .pending_ids
                .iter()
                .min_by_key(|(_, (since, _))| *since)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => self.pending_ids.remove(&id),
                None => break,
            };
        }
        self.pending_ids
            .insert(member_id.to_string(), (now, session_timeout));
    }

    /// Handles JoinGroup.
    pub fn join(
        &mut self,
        request: JoinRequest,
        now: Instant,
        limits: &GroupLimits,
    ) -> Reply<JoinResult> {
        let member_id = request.member_id.clone();
        if let Some(code) = self.check_join(&request, limits) {
            return Reply::Now(JoinResult::error(code, &member_id));
        }
        let member_id = if member_id.is_empty() {
            let new_id = format!("{}-{}", request.client_id, uuid::Uuid::new_v4());
            if request.require_known_member_id && request.group_instance_id.is_none() {
                // KIP-394: the member learns its id first and joins with it.
                let session_timeout =
                    Duration::from_millis(request.session_timeout_ms.max(0) as u64);
                self.add_pending_id(&new_id, now, session_timeout);
                return Reply::Now(JoinResult::error(
                    ResponseError::MemberIdRequired.code(),
                    &new_id,
                ));
            }
            if let Some(old) = self.static_member(request.group_instance_id.as_deref()) {
                // A static member came back under a new id: it takes its old
                // self's place and assignment (KIP-345). In a Stable group
                // whose protocol it does not change, the others see nothing:
                // it gets the current generation now, and its assignment
                // from SyncGroup. Otherwise the group rebalances as usual.
                let leader_before = self.leader.clone();
                self.replace_static_member(&old, &new_id);
                self.upsert_member(&new_id, request.clone(), now);
                if self.state == GroupState::Stable && self.choose_protocol() == self.protocol_name
                {
                    return Reply::Now(JoinResult {
                        error_code: 0,
                        generation_id: self.generation_id,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        // Kafka names the leader as it was (the member is
                        // not asked to assign again).
                        leader: leader_before,
                        member_id: new_id,
                        members: Vec::new(),
                    });
                }
            }
            new_id
        } else if let Err(code @ FENCED) =
            self.check_instance(&member_id, request.group_instance_id.as_deref())
        {
            // An older incarnation of a static member that was replaced.
            return Reply::Now(JoinResult::error(code, &member_id));
        } else if !self.members.contains_key(&member_id)
            && self.pending_ids.remove(&member_id).is_none()
        {
            return Reply::Now(JoinResult::error(UNKNOWN_MEMBER, &member_id));
        } else {
            member_id
        };
        self.upsert_member(&member_id, request, now);
        let (tx, rx) = oneshot::channel();
        if let Some(old) = self.join_waiters.insert(member_id.clone(), tx) {
            let _ = old.send(JoinResult::error(UNKNOWN_MEMBER, &member_id));
        }
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now, limits);
        }
        self.maybe_complete_join(now);
        Reply::Later(rx)
    }

    fn check_join(&self, request: &JoinRequest, limits: &GroupLimits) -> Option<i16> {
        let timeout = request.session_timeout_ms;
        if timeout < limits.min_session_timeout_ms || timeout > limits.max_session_timeout_ms {
            return Some(ResponseError::InvalidSessionTimeout.code());
        }
        if request.protocols.is_empty() || request.protocol_type.is_empty() {
            return Some(ResponseError::InconsistentGroupProtocol.code());
        }
        if !self.is_empty() {
            let shares_a_protocol = request.protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            });
            if request.protocol_type != self.protocol_type || !shares_a_protocol {
                return Some(ResponseError::InconsistentGroupProtocol.code());
            }
        }
        None
    }

    fn static_member(&self, instance: Option<&str>) -> Option<String> {
        let instance = instance?;
        self.members
            .values()
            .find(|m| m.group_instance_id.as_deref() == Some(instance))
            .map(|m| m.member_id.clone())
    }

    fn upsert_member(&mut self, member_id: &str, request: JoinRequest, now: Instant) {
        if self.is_empty() {
            self.protocol_type = request.protocol_type.clone();
        }
        let rebalance_ms = if request.rebalance_timeout_ms > 0 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        };
        let member = self
            .members
            .entry(member_id.to_string())
            .or_insert_with(|| Member {
                member_id: member_id.to_string(),
                group_instance_id: None,
                client_id: String::new(),
                client_host: String::new(),
                session_timeout: Duration::ZERO,
                rebalance_timeout: Duration::ZERO,
                protocols: Vec::new(),
                assignment: Bytes::new(),
                last_seen: now,
            });
        member.group_instance_id = request.group_instance_id;
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        member.session_timeout = Duration::from_millis(request.session_timeout_ms.max(0) as u64);
        member.rebalance_timeout = Duration::from_millis(rebalance_ms.max(0) as u64);
        member.protocols = request.protocols;
        member.last_seen = now;
    }

    fn prepare_rebalance(&mut self, now: Instant, limits: &GroupLimits) {
        let was_empty = self.state == GroupState::Empty;
        // A rebalance interrupts a sync in progress: those members rejoin.
        for (member_id, waiter) in std::mem::take(&mut self.sync_waiters) {
            let _ = waiter.send(SyncResult {
                error_code: REBALANCING,
                ..SyncResult::default()
            });
            let _ = member_id;
        }
        self.state = GroupState::PreparingRebalance;
        let longest = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO);
        self.rebalance_deadline = Some(now + longest);
        self.initial_delay_until =
            was_empty.then(|| now + Duration::from_millis(limits.initial_rebalance_delay_ms));
    }

    /// Ends the join phase if every member has rejoined (and the initial
    /// delay is over), or if the rebalance timeout has passed.
    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let everyone_joined = self
            .members
            .keys()
            .all(|id| self.join_waiters.contains_key(id));
        let delay_over = self.initial_delay_until.is_none_or(|t| now >= t);
        let timed_out = self.rebalance_deadline.is_some_and(|t| now >= t);
        if (everyone_joined && delay_over) || timed_out {
            self.complete_join();
        }
    }

    fn complete_join(&mut self) {
        // Members that did not rejoin in time leave the group.
        let absent: Vec<String> = self
            .members
            .keys()
            .filter(|id| !self.join_waiters.contains_key(*id))
            .cloned()
            .collect();
        for id in absent {
            self.members.remove(&id);
        }
        self.generation_id += 1;
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        self.dirty = true;
        if self.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name.clear();
            self.leader.clear();
            return;
        }
        self.protocol_name = self.choose_protocol();
        if !self.members.contains_key(&self.leader) {
            self.leader = self.members.keys().next().cloned().unwrap_or_default();
        }
        self.state = GroupState::CompletingRebalance;
        let all_members: Vec<(String, Option<String>, Bytes)> = self
            .members
            .values()
            .map(|m| {
                (
                    m.member_id.clone(),
                    m.group_instance_id.clone(),
                    m.metadata_for(&self.protocol_name),
                )
            })
            .collect();
        for (member_id, waiter) in std::mem::take(&mut self.join_waiters) {
            let is_leader = member_id == self.leader;
            let _ = waiter.send(JoinResult {
                error_code: 0,
                generation_id: self.generation_id,
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol_name.clone(),
                leader: self.leader.clone(),
                member_id,
                members: if is_leader {
                    all_members.clone()
                } else {
                    Vec::new()
                },
            });
        }
    }

    /// Kafka's rule: among the protocols every member supports, each member
    /// votes for the first in its own order; the most votes win.
    fn choose_protocol(&self) -> String {
        let supported_by_all = |name: &str| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        };
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| supported_by_all(n)) {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, count)| *count)
            .map(|(name, _)| name.to_string())
            .unwrap_or_default()
    }

    /// Kafka's member check: a request naming a group.instance.id must come
    /// from the member id that instance holds now; an older incarnation of
    /// that instance is fenced (KIP-345).
    pub fn check_instance(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
        if let Some(instance) = instance_id {
            match self.static_member(Some(instance)) {
                None => return Err(UNKNOWN_MEMBER),
                Some(current) if current != member_id => return Err(FENCED),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(UNKNOWN_MEMBER);
        }
        Ok(())
    }

    fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), i16> {
        self.check_instance(member_id, instance_id)?;
        if generation_id != self.generation_id {
            return Err(ILLEGAL_GENERATION);
        }
        Ok(())
    }

    /// Handles SyncGroup; `assignments` is non-empty only from the leader.
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Reply<SyncResult> {
        let error = |code| {
            Reply::Now(SyncResult {
                error_code: code,
                ..SyncResult::default()
            })
        };
        if let Err(code) = self.check_member(member_id, instance_id, generation_id) {
            return error(code);
        }
        self.touch(member_id, now);
        match self.state {
            GroupState::Empty | GroupState::PreparingRebalance => error(REBALANCING),
            GroupState::Stable => Reply::Now(self.sync_result(member_id)),
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                self.sync_waiters.insert(member_id.to_string(), tx);
                if member_id == self.leader {
                    self.install_assignments(assignments);
                }
                Reply::Later(rx)
            }
        }
    }

    fn install_assignments(&mut self, assignments: Vec<(String, Bytes)>) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
        }
        for (member_id, assignment) in assignments {
            if let Some(m) = self.members.get_mut(&member_id) {
                m.assignment = assignment;
            }
        }
        self.state = GroupState::Stable;
        self.dirty = true;
        for (member_id, waiter) in std::mem::take(&mut self.sync_waiters) {
            let _ = waiter.send(self.sync_result(&member_id));
        }
    }

    fn sync_result(&self, member_id: &str) -> SyncResult {
        SyncResult {
            error_code: 0,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    fn touch(&mut self, member_id: &str, now: Instant) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen = now;
        }
    }

    /// Handles Heartbeat: the error code to answer.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now: Instant,
    ) -> i16 {
        if let Err(code) = self.check_member(member_id, instance_id, generation_id) {
            return code;
        }
        self.touch(member_id, now);
        match self.state {
            GroupState::PreparingRebalance => REBALANCING,
            _ => 0,
        }
    }

    /// Handles one member of a LeaveGroup: by member id, or (static members,
    /// LeaveGroup v3+) by instance id. Returns the error code for it.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
        limits: &GroupLimits,
    ) -> i16 {
        let id = if member_id.is_empty() {
            match self.static_member(instance_id) {
                Some(id) => id,
                None => return UNKNOWN_MEMBER,
            }
        } else {
            member_id.to_string()
        };
        if !self.members.contains_key(&id) {
            return UNKNOWN_MEMBER;
        }
        self.remove_member(&id);
        self.member_left(now, limits);
        0
    }

    /// Moves a static member to its new member id, keeping its assignment
    /// (and leadership); requests of the old id still waiting are fenced.
    fn replace_static_member(&mut self, old_id: &str, new_id: &str) {
        if let Some(mut member) = self.members.remove(old_id) {
            member.member_id = new_id.to_string();
            self.members.insert(new_id.to_string(), member);
        }
        if self.leader == old_id {
            self.leader = new_id.to_string();
        }
        if let Some(w) = self.join_waiters.remove(old_id) {
            let _ = w.send(JoinResult::error(FENCED, old_id));
        }
        if let Some(w) = self.sync_waiters.remove(old_id) {
            let _ = w.send(SyncResult {
                error_code: FENCED,
                ..SyncResult::default()
            });
        }
        self.dirty = true;
    }

    fn remove_member(&mut self, member_id: &str) {
        self.members.remove(member_id);
        if let Some(w) = self.join_waiters.remove(member_id) {
            let _ = w.send(JoinResult::error(UNKNOWN_MEMBER, member_id));
        }
        if let Some(w) = self.sync_waiters.remove(member_id) {
            let _ = w.send(SyncResult {
                error_code: UNKNOWN_MEMBER,
                ..SyncResult::default()
            });
        }
        self.dirty = true;
    }

    /// After a member went away: rebalance the others, or end the rebalance.
    fn member_left(&mut self, now: Instant, limits: &GroupLimits) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.is_empty() {
                    self.state = GroupState::Empty;
                    self.generation_id += 1;
                    self.protocol_name.clear();
                    self.leader.clear();
                } else {
                    self.prepare_rebalance(now, limits);
                }
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            GroupState::Empty => {}
        }
    }

    /// Expires members whose session ran out and ends overdue rebalances.
    /// Members waiting in a join are alive by definition.
    pub fn tick(&mut self, now: Instant, limits: &GroupLimits) {
        self.pending_ids
            .retain(|_, (since, timeout)| now.duration_since(*since) < *timeout);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !self.join_waiters.contains_key(&m.member_id))
            .filter(|m| now.duration_since(m.last_seen) > m.session_timeout)
            .map(|m| m.member_id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.group_id, member = %id, "session expired");
            self.remove_member(id);
        }
        if !expired.is_empty() {
            self.member_left(now, limits);
        }
        self.maybe_complete_join(now);
        self.idle_since = if self.is_dead() {
            Some(self.idle_since.unwrap_or(now))
        } else {
            None
        };
    }

    /// Restores a group loaded from `__consumer_offsets`: its members get a
    /// full session timeout from now to come back.
    pub fn restore(&mut self, stored: StoredGroup, now: Instant) {
        self.protocol_type = stored.protocol_type;
        self.protocol_name = stored.protocol_name;
        self.generation_id = stored.generation_id;
        self.leader = stored.leader;
        self.members = stored
            .members
            .into_iter()
            .map(|m| {
                let member = Member {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocols: vec![(self.protocol_name.clone(), m.metadata)],
                    assignment: m.assignment,
                    last_seen: now,
                };
                (m.member_id, member)
            })
            .collect();
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }

    /// The group's metadata as it is persisted.
    pub fn to_stored(&self) -> StoredGroup {
        StoredGroup {
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            generation_id: self.generation_id,
            leader: self.leader.clone(),
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    metadata: m.metadata_for(&self.protocol_name),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}

/// A group's metadata record in `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredGroup {
    pub protocol_type: String,
    pub protocol_name: String,
    pub generation_id: i32,
    pub leader: String,
    pub members: Vec<StoredMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: GroupLimits = GroupLimits {
        min_session_timeout_ms: 100,
        max_session_timeout_ms: 60_000,
        initial_rebalance_delay_ms: 0,
    };

    fn join_request(member_id: &str) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_string(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 1000,
            rebalance_timeout_ms: 2000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id: true,
        }
    }

    #[test]
    fn member_ids_waiting_for_their_join_are_bounded_and_expire_with_the_session() {
        let mut g = Group::new("g");
        let now = Instant::now();
        for _ in 0..PENDING_IDS_MAX + 500 {
            let answer = now_result(g.join(join_request(""), now, &LIMITS));
            assert_eq!(answer.error_code, ResponseError::MemberIdRequired.code());
        }
        assert_eq!(g.pending_id_count(), PENDING_IDS_MAX);
        let (id, _) = join_new(&mut g, now);
        assert!(
            g.members.contains_key(&id),
            "a member still joins past the bound"
        );
        g.tick(now + Duration::from_millis(1500), &LIMITS);
        assert_eq!(
            g.pending_id_count(),
            0,
            "gone after the 1 s session timeout"
        );
    }

    fn now_result<T>(r: Reply<T>) -> T {
        match r {
            Reply::Now(v) => v,
            Reply::Later(mut rx) => rx.try_recv().ok().flatten().expect("answered"),
        }
    }

    /// Joins a new member (with the MEMBER_ID_REQUIRED round trip).
    fn join_new(g: &mut Group, now: Instant) -> (String, Reply<JoinResult>) {
        let first = now_result(g.join(join_request(""), now, &LIMITS));
        assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
        let id = first.member_id.clone();
        (id.clone(), g.join(join_request(&id), now, &LIMITS))
    }

    #[test]
    fn one_member_joins_syncs_and_heartbeats() {
        let mut g = Group::new("g");
        let now = Instant::now();
        let (id, reply) = join_new(&mut g, now);
        let joined = now_result(reply);
        assert_eq!(joined.error_code, 0);
        assert_eq!(joined.generation_id, 1);
        assert_eq!(joined.leader, id);
        assert_eq!(joined.members.len(), 1);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let synced = now_result(g.sync(
            &id,
            None,
            1,
            vec![(id.clone(), Bytes::from_static(b"a"))],
            now,
        ));
        assert_eq!(synced.assignment, Bytes::from_static(b"a"));
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.heartbeat(&id, None, 1, now), 0);
        assert_eq!(g.heartbeat(&id, None, 0, now), ILLEGAL_GENERATION);
        assert_eq!(g.heartbeat("nobody", None, 1, now), UNKNOWN_MEMBER);
    }

    #[test]
    fn a_second_member_triggers_a_rebalance() {
        let mut g = Group::new("g");
        let now = Instant::now();
        let (a, reply) = join_new(&mut g, now);
        now_result(reply);
        now_result(g.sync(&a, None, 1, vec![], now));
        let (b, b_reply) = join_new(&mut g, now);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(g.heartbeat(&a, None, 1, now), REBALANCING);
        let a_reply = g.join(join_request(&a), now, &LIMITS);
        let (ra, rb) = (now_result(a_reply), now_result(b_reply));
        assert_eq!((ra.generation_id, rb.generation_id), (2, 2));
        assert_eq!(ra.leader, a, "the old leader stays leader");
        assert_eq!(ra.members.len(), 2);
        assert!(rb.members.is_empty(), "only the leader sees the members");
        let b_sync = g.sync(&b, None, 2, vec![], now);
        now_result(g.sync(
            &a,
            None,
            2,
            vec![(b.clone(), Bytes::from_static(b"x"))],
            now,
        ));
        assert_eq!(now_result(b_sync).assignment, Bytes::from_static(b"x"));
    }

    #[test]
    fn expired_sessions_leave_and_the_rest_rebalance() {
        let mut g = Group::new("g");
        let t0 = Instant::now();
        let (a, ra) = join_new(&mut g, t0);
        now_result(ra);
        let (b, rb) = join_new(&mut g, t0);
        let ra = g.join(join_request(&a), t0, &LIMITS);
        let (ra, rb) = (now_result(ra), now_result(rb));
        assert_eq!((ra.generation_id, rb.generation_id), (2, 2));
        let b_sync = g.sync(&b, None, 2, vec![], t0);
        now_result(g.sync(&a, None, 2, vec![], t0));
        now_result(b_sync);
        let t1 = t0 + Duration::from_millis(800);
        assert_eq!(g.heartbeat(&a, None, 2, t1), 0);
        let t2 = t0 + Duration::from_millis(1500);
        g.tick(t2, &LIMITS);
        assert!(!g.members.contains_key(&b), "b's session expired");
        assert_eq!(g.state, GroupState::PreparingRebalance);
        let ra = now_result(g.join(join_request(&a), t2, &LIMITS));
        assert_eq!(ra.generation_id, 3);
        assert_eq!(ra.members.len(), 1);
    }

    #[test]
    fn a_member_that_does_not_rejoin_within_the_rebalance_timeout_is_dropped() {
        let mut g = Group::new("g");
        let t0 = Instant::now();
        let (a, ra) = join_new(&mut g, t0);
        now_result(ra);
        now_result(g.sync(&a, None, 1, vec![], t0));
        // b joins; a keeps heartbeating but never rejoins.
        let (_b, rb) = join_new(&mut g, t0);
        let Reply::Later(mut rb) = rb else {
            panic!("b waits for the rebalance")
        };
        let t1 = t0 + Duration::from_millis(900);
        assert_eq!(g.heartbeat(&a, None, 1, t1), REBALANCING);
        g.tick(t1, &LIMITS);
        assert!(
            rb.try_recv().unwrap().is_none(),
            "still within rebalance.timeout.ms (2 s)"
        );
        // a's session (1 s) stays alive: only the rebalance timeout can drop it.
        assert_eq!(
            g.heartbeat(&a, None, 1, t0 + Duration::from_millis(1900)),
            REBALANCING
        );
        let t2 = t0 + Duration::from_millis(2100);
        g.tick(t2, &LIMITS);
        let joined = rb
            .try_recv()
            .unwrap()
            .expect("the rebalance ended at its timeout");
        assert_eq!(joined.generation_id, 2);
        assert_eq!(joined.members.len(), 1, "a was dropped");
        assert!(!g.members.contains_key(&a));
    }

    #[test]
    fn leaving_last_member_empties_the_group() {
        let mut g = Group::new("g");
        let now = Instant::now();
        let (a, r) = join_new(&mut g, now);
        now_result(r);
        now_result(g.sync(&a, None, 1, vec![], now));
        assert_eq!(g.leave(&a, None, now, &LIMITS), 0);
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.leave(&a, None, now, &LIMITS), UNKNOWN_MEMBER);
    }

    #[test]
    fn bad_timeouts_and_protocols_are_refused() {
        let mut g = Group::new("g");
        let now = Instant::now();
        let mut r = join_request("");
        r.session_timeout_ms = 10;
        assert_eq!(
            now_result(g.join(r, now, &LIMITS)).error_code,
            ResponseError::InvalidSessionTimeout.code()
        );
        let (_a, reply) = join_new(&mut g, now);
        now_result(reply);
        let mut other = join_request("");
        other.protocols = vec![("roundrobin".into(), Bytes::new())];
        assert_eq!(
            now_result(g.join(other, now, &LIMITS)).error_code,
            ResponseError::InconsistentGroupProtocol.code()
        );
    }

    #[test]
    fn static_member_rejoining_replaces_its_old_id() {
        let mut g = Group::new("g");
        let now = Instant::now();
        let mut r = join_request("");
        r.group_instance_id = Some("i1".into());
        let first = now_result(g.join(r.clone(), now, &LIMITS));
        assert_eq!(first.error_code, 0);
        now_result(g.sync(&first.member_id, None, 1, vec![], now));
        let second = now_result(g.join(r, now, &LIMITS));
        assert_eq!(second.error_code, 0);
        assert_ne!(second.member_id, first.member_id);
        assert_eq!(g.members.len(), 1);
    }

    #[test]
    fn a_replaced_static_member_is_fenced() {
        let mut g = Group::new("g");
        let now = Instant::now();
        let mut r = join_request("");
        r.group_instance_id = Some("i1".into());
        let first = now_result(g.join(r.clone(), now, &LIMITS));
        let old = first.member_id.clone();
        now_result(g.sync(&old, Some("i1"), 1, vec![], now));
        let second = now_result(g.join(r, now, &LIMITS));
        assert_eq!(second.error_code, 0);
        let fenced = FENCED;
        let generation = g.generation_id;
        let mut again = join_request(&old);
        again.group_instance_id = Some("i1".into());
        assert_eq!(now_result(g.join(again, now, &LIMITS)).error_code, fenced);
        assert_eq!(g.heartbeat(&old, Some("i1"), generation, now), fenced);
        assert_eq!(
            now_result(g.sync(&old, Some("i1"), generation, vec![], now)).error_code,
            fenced
        );
        assert_eq!(g.check_instance(&old, Some("i1")), Err(fenced));
        assert_eq!(g.check_instance(&old, None), Err(UNKNOWN_MEMBER));
        assert_eq!(
            g.check_instance(&second.member_id, Some("other")),
            Err(UNKNOWN_MEMBER)
        );
        assert_eq!(g.check_instance(&second.member_id, Some("i1")), Ok(()));
    }

    #[test]
    fn a_static_member_rejoining_a_stable_group_keeps_its_assignment_without_a_rebalance() {
        let mut g = Group::new("g");
        let now = Instant::now();
        let (a, ra) = join_new(&mut g, now);
        now_result(ra);
        now_result(g.sync(&a, None, 1, vec![], now));
        let mut r = join_request("");
        r.group_instance_id = Some("i1".into());
        let s_reply = g.join(r.clone(), now, &LIMITS);
        let a_reply = g.join(join_request(&a), now, &LIMITS);
        let s_joined = now_result(s_reply);
        now_result(a_reply);
        let s_id = s_joined.member_id.clone();
        let s_sync = g.sync(&s_id, Some("i1"), 2, vec![], now);
        let assigned = vec![
            (a.clone(), Bytes::from_static(b"pa")),
            (s_id.clone(), Bytes::from_static(b"ps")),
        ];
        now_result(g.sync(&a, None, 2, assigned, now));
        assert_eq!(now_result(s_sync).assignment, Bytes::from_static(b"ps"));
        assert_eq!(g.state, GroupState::Stable);

        // The static member restarts: a new JoinGroup without its member id.
        let rejoined = now_result(g.join(r, now, &LIMITS));
        assert_eq!(rejoined.error_code, 0);
        assert_eq!(rejoined.generation_id, 2, "no new generation");
        assert_ne!(rejoined.member_id, s_id);
        assert_eq!(rejoined.leader, a);
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(
            g.heartbeat(&a, None, 2, now),
            0,
            "the other member sees nothing"
        );
        let synced = now_result(g.sync(&rejoined.member_id, Some("i1"), 2, vec![], now));
        assert_eq!(synced.error_code, 0);
        assert_eq!(synced.assignment, Bytes::from_static(b"ps"));
        assert_eq!(g.heartbeat(&s_id, Some("i1"), 2, now), FENCED);
        assert_eq!(g.members.len(), 2);
    }
}
