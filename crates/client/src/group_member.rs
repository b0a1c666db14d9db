//! A member of a classic consumer group, as a Kafka consumer is one:
//! JoinGroup (protocol type `consumer`, the `range` assignor, answering
//! MEMBER_ID_REQUIRED by joining again with the id given), the leader's range
//! assignment sent in SyncGroup, heartbeats from a background thread on its
//! own connection to the coordinator (which raises a flag when the member
//! must join again), offset commits with its generation, and LeaveGroup.
//! Runs on the CLI's threads (the main one and the heartbeat thread), never
//! on a shard.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, range_assign,
    TopicPartitions, PROTOCOL_TYPE, RANGE,
};
use super::error::{codes, is_coordinator_error, needs_rejoin};
use super::group::OffsetKey;
use super::{Client, ClientError, Connection};

/// How many JoinGroup/SyncGroup rounds one `join` may take.
const JOIN_ROUNDS_MAX: u32 = 20;
/// Pause between join rounds that failed with a retriable error.
const JOIN_BACKOFF: Duration = Duration::from_millis(100);
/// The heartbeat thread checks its stop flag this often.
const HEARTBEAT_TICK: Duration = Duration::from_millis(50);

/// How a member joins its group.
#[derive(Debug, Clone)]
pub struct GroupMemberConfig {
    pub group_id: String,
    /// The topics subscribed to.
    pub topics: Vec<String>,
    pub session_timeout: Duration,
    /// How long the coordinator waits for every member to join again.
    pub rebalance_timeout: Duration,
    pub heartbeat_interval: Duration,
}

/// The background heartbeat of one generation.
#[derive(Debug)]
struct Heartbeat {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

/// What the heartbeat thread needs.
#[derive(Debug, Clone)]
struct HeartbeatTask {
    address: String,
    client_id: String,
    security: crate::security::Security,
    request_timeout: Duration,
    group_id: String,
    member_id: String,
    generation_id: i32,
    interval: Duration,
    session_timeout: Duration,
}

/// The result of a JoinGroup that succeeded.
#[derive(Debug)]
struct Joined {
    generation_id: i32,
    protocol: String,
    leader: String,
    /// (member id, subscription metadata); only the leader gets them.
    members: Vec<(String, Bytes)>,
}

/// One member of a consumer group.
#[derive(Debug)]
pub struct GroupMember {
    config: GroupMemberConfig,
    member_id: String,
    generation_id: i32,
    leader: bool,
    assignment: TopicPartitions,
    rejoin: Arc<AtomicBool>,
    heartbeat: Option<Heartbeat>,
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

impl GroupMember {
    /// A member that has not joined yet.
    pub fn new(config: GroupMemberConfig) -> Self {
        GroupMember {
            config,
            member_id: String::new(),
            generation_id: -1,
            leader: false,
            assignment: TopicPartitions::new(),
            rejoin: Arc::new(AtomicBool::new(false)),
            heartbeat: None,
        }
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// The partitions of the current generation.
    pub fn assignment(&self) -> &TopicPartitions {
        &self.assignment
    }

    /// Whether the heartbeat (or a commit) saw the generation end.
    pub fn needs_rejoin(&self) -> bool {
        self.rejoin.load(Ordering::Relaxed)
    }

    /// Joins (or joins again) and syncs; returns the new assignment. The
    /// heartbeat of the new generation runs when this returns.
    pub fn join(&mut self, client: &mut Client) -> Result<&TopicPartitions, ClientError> {
        self.stop_heartbeat();
        let mut round = 0;
        loop {
            round += 1;
            match self.join_round(client) {
                Ok(assignment) => {
                    self.assignment = assignment;
                    self.rejoin.store(false, Ordering::Relaxed);
                    self.start_heartbeat(client)?;
                    return Ok(&self.assignment);
                }
                Err(e) if round < JOIN_ROUNDS_MAX && self.retry_join(&e) => {
                    std::thread::sleep(JOIN_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether a failed join round may be tried again, updating the member
    /// id the way the coordinator asked.
    fn retry_join(&mut self, e: &ClientError) -> bool {
        match e.kafka_code() {
            Some(codes::UNKNOWN_MEMBER_ID) => {
                self.member_id.clear();
                true
            }
            Some(code) => needs_rejoin(code) || is_coordinator_error(code),
            None => false,
        }
    }

    /// One JoinGroup + SyncGroup.
    fn join_round(&mut self, client: &mut Client) -> Result<TopicPartitions, ClientError> {
        let joined = self.join_group(client)?;
        self.generation_id = joined.generation_id;
        self.leader = joined.leader == self.member_id;
        let assignments = if self.leader {
            leader_assignments(client, &joined.members)?
        } else {
            Vec::new()
        };
        self.sync_group(client, &joined.protocol, assignments)
    }

    /// JoinGroup, answering MEMBER_ID_REQUIRED once with the id given.
    fn join_group(&mut self, client: &mut Client) -> Result<Joined, ClientError> {
        let metadata = encode_subscription(&self.config.topics)?;
        for _ in 0..2 {
            let response = self.join_request(client, &metadata)?;
            if response.error_code == codes::MEMBER_ID_REQUIRED {
                self.member_id = response.member_id.to_string();
                continue;
            }
            if response.error_code != codes::NONE {
                return Err(ClientError::kafka(
                    "JoinGroup",
                    response.error_code,
                    &self.config.group_id,
                    None,
                ));
            }
            self.member_id = response.member_id.to_string();
            return Ok(Joined {
                generation_id: response.generation_id,
                protocol: response
                    .protocol_name
                    .map_or_else(|| RANGE.to_owned(), |p| p.to_string()),
                leader: response.leader.to_string(),
                members: response
                    .members
                    .into_iter()
                    .map(|m| (m.member_id.to_string(), m.metadata))
                    .collect(),
            });
        }
        Err(ClientError::kafka(
            "JoinGroup",
            codes::MEMBER_ID_REQUIRED,
            &self.config.group_id,
            Some("asked for a member id twice"),
        ))
    }

    fn join_request(
        &self,
        client: &mut Client,
        metadata: &Bytes,
    ) -> Result<JoinGroupResponse, ClientError> {
        let c = &self.config;
        let build = |_| {
            JoinGroupRequest::default()
                .with_group_id(GroupId(str_bytes(&c.group_id)))
                .with_session_timeout_ms(millis(c.session_timeout))
                .with_rebalance_timeout_ms(millis(c.rebalance_timeout))
                .with_member_id(str_bytes(&self.member_id))
                .with_protocol_type(str_bytes(PROTOCOL_TYPE))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(str_bytes(RANGE))
                    .with_metadata(metadata.clone())])
        };
        let (_, response) = client.call_coordinator(
            &c.group_id,
            c.rebalance_timeout,
            build,
            |r: &JoinGroupResponse| r.error_code,
        )?;
        Ok(response)
    }

    fn sync_group(
        &mut self,
        client: &mut Client,
        protocol: &str,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<TopicPartitions, ClientError> {
        let c = &self.config;
        let assignments: Vec<SyncGroupRequestAssignment> = assignments
            .into_iter()
            .map(|(member, bytes)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member))
                    .with_assignment(bytes)
            })
            .collect();
        let build = |_| {
            SyncGroupRequest::default()
                .with_group_id(GroupId(str_bytes(&c.group_id)))
                .with_generation_id(self.generation_id)
                .with_member_id(str_bytes(&self.member_id))
                .with_protocol_type(Some(str_bytes(PROTOCOL_TYPE)))
                .with_protocol_name(Some(str_bytes(protocol)))
                .with_assignments(assignments.clone())
        };
        let (_, response) =
            client.call_coordinator(&c.group_id, c.rebalance_timeout, build, |r| r.error_code)?;
        if response.error_code != codes::NONE {
            return Err(ClientError::kafka(
                "SyncGroup",
                response.error_code,
                &c.group_id,
                None,
            ));
        }
        Ok(decode_assignment(response.assignment)?.partitions)
    }

    /// Commits offsets with this member's generation. An error that ends the
    /// generation raises the rejoin flag.
    pub fn commit(
        &self,
        client: &mut Client,
        offsets: &BTreeMap<OffsetKey, i64>,
    ) -> Result<(), ClientError> {
        let result = client.commit_offsets(
            &self.config.group_id,
            self.generation_id,
            &self.member_id,
            offsets,
        );
        if let Err(e) = &result {
            if e.kafka_code().is_some_and(needs_rejoin) {
                self.rejoin.store(true, Ordering::Relaxed);
            }
        }
        result
    }

    /// Stops heartbeating and leaves the group (a member that never joined
    /// has nothing to leave).
    pub fn leave(&mut self, client: &mut Client) -> Result<(), ClientError> {
        self.stop_heartbeat();
        if self.member_id.is_empty() {
            return Ok(());
        }
        let group = self.config.group_id.clone();
        let member = std::mem::take(&mut self.member_id);
        self.generation_id = -1;
        let build = |version: i16| {
            let request = LeaveGroupRequest::default().with_group_id(GroupId(str_bytes(&group)));
            if version >= 3 {
                request.with_members(vec![MemberIdentity::default()
                    .with_member_id(str_bytes(&member))
                    .with_reason((version >= 5).then(|| str_bytes("the consumer is closing")))])
            } else {
                request.with_member_id(str_bytes(&member))
            }
        };
        let (_, response) =
            client.call_coordinator(&group, Duration::ZERO, build, |r| r.error_code)?;
        let code = std::iter::once(response.error_code)
            .chain(response.members.iter().map(|m| m.error_code))
            .find(|c| *c != codes::NONE)
            .unwrap_or(codes::NONE);
        if code != codes::NONE {
            return Err(ClientError::kafka("LeaveGroup", code, group, None));
        }
        Ok(())
    }

    fn start_heartbeat(&mut self, client: &mut Client) -> Result<(), ClientError> {
        let node = client.coordinator(&self.config.group_id)?;
        let address = client
            .metadata()
            .brokers
            .get(&node)
            .map(|b| b.address())
            .ok_or_else(|| ClientError::Metadata(format!("coordinator {node} has no address")))?;
        let task = HeartbeatTask {
            address,
            client_id: client.config().client_id.clone(),
            security: client.config().security.clone(),
            request_timeout: client.config().request_timeout,
            group_id: self.config.group_id.clone(),
            member_id: self.member_id.clone(),
            generation_id: self.generation_id,
            interval: self.config.heartbeat_interval,
            session_timeout: self.config.session_timeout,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, rejoin) = (stop.clone(), self.rejoin.clone());
        let handle = std::thread::Builder::new()
            .name("heartbeat".to_owned())
            .spawn(move || heartbeat_loop(&task, &flag, &rejoin))
            .map_err(|e| ClientError::io("starting the heartbeat thread", e))?;
        self.heartbeat = Some(Heartbeat { stop, handle });
        Ok(())
    }

    fn stop_heartbeat(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.stop.store(true, Ordering::Relaxed);
            // The thread only ends by itself; a panic there is not ours to rethrow.
            let _ = h.handle.join();
        }
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.stop_heartbeat();
    }
}

/// The leader's work: every member's range assignment, encoded.
fn leader_assignments(
    client: &mut Client,
    members: &[(String, Bytes)],
) -> Result<Vec<(String, Bytes)>, ClientError> {
    let mut subscriptions = BTreeMap::new();
    for (member, metadata) in members {
        let topics = decode_subscription(metadata.clone())
            .map(|s| s.topics)
            .unwrap_or_default();
        subscriptions.insert(member.clone(), topics);
    }
    let mut topics: Vec<&String> = subscriptions.values().flatten().collect();
    topics.sort();
    topics.dedup();
    let mut counts = BTreeMap::new();
    for topic in topics {
        // A topic that does not exist (yet) gets no partitions assigned.
        if let Ok(info) = client.topic(topic, false) {
            counts.insert(topic.clone(), info.partition_count());
        }
    }
    range_assign(&subscriptions, &counts)
        .iter()
        .map(|(member, partitions)| Ok((member.clone(), encode_assignment(partitions)?)))
        .collect()
}

/// Sleeps up to `d`, returning early (true) when `stop` is raised.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep(HEARTBEAT_TICK.min(until.saturating_duration_since(Instant::now())));
    }
    stop.load(Ordering::Relaxed)
}

/// Heartbeats every `interval` until stopped; raises `rejoin` and ends when
/// the generation is over or no heartbeat got through for a session timeout.
fn heartbeat_loop(task: &HeartbeatTask, stop: &AtomicBool, rejoin: &AtomicBool) {
    let mut conn: Option<Connection> = None;
    let mut last_ok = Instant::now();
    while !sleep_unless_stopped(task.interval, stop) {
        match heartbeat_once(task, &mut conn) {
            Ok(codes::NONE) => last_ok = Instant::now(),
            Ok(code) => {
                if !needs_rejoin(code) {
                    let e = ClientError::kafka("Heartbeat", code, &task.group_id, None);
                    eprintln!("tidemark: {e} (joining the group again)");
                }
                rejoin.store(true, Ordering::Relaxed);
                return;
            }
            // The connection is dropped and opened again next time.
            Err(_) => conn = None,
        }
        if last_ok.elapsed() >= task.session_timeout {
            eprintln!("tidemark: no heartbeat got through for a session timeout (joining again)");
            rejoin.store(true, Ordering::Relaxed);
            return;
        }
    }
}

fn heartbeat_once(task: &HeartbeatTask, conn: &mut Option<Connection>) -> Result<i16, ClientError> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(Connection::open_secured(
            &task.address,
            task.request_timeout,
            &task.client_id,
            &task.security,
        )?),
    };
    let (_, response) = c.call(|_| {
        HeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(&task.group_id)))
            .with_generation_id(task.generation_id)
            .with_member_id(str_bytes(&task.member_id))
    })?;
    Ok(response.error_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_retry_rules() {
        let mut m = GroupMember::new(GroupMemberConfig {
            group_id: "g".into(),
            topics: vec!["t".into()],
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(3),
        });
        m.member_id = "old".into();
        assert!(m.retry_join(&ClientError::kafka("SyncGroup", 27, "g", None)));
        assert_eq!(m.member_id, "old");
        assert!(m.retry_join(&ClientError::kafka("JoinGroup", 25, "g", None)));
        assert!(m.member_id.is_empty());
        assert!(!m.retry_join(&ClientError::kafka("JoinGroup", 24, "g", None)));
        assert!(!m.retry_join(&ClientError::Protocol("x".into())));
    }

    #[test]
    fn stop_flag_cuts_sleep() {
        let stop = AtomicBool::new(true);
        let started = Instant::now();
        assert!(sleep_unless_stopped(Duration::from_secs(5), &stop));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
