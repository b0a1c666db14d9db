//! Consumer groups seen from outside: FindCoordinator (key type 0) and the
//! routing of group requests to the coordinator, with a new lookup when the
//! coordinator moved; ListGroups on every broker, DescribeGroups (member
//! assignments decoded), OffsetFetch, OffsetCommit and DeleteGroups.
//! Blocking, on the CLI's threads, never on a shard.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};

use super::consumer_protocol::{decode_assignment, TopicPartitions, PROTOCOL_TYPE};
use super::error::{codes, is_coordinator_error};
use super::metadata::BrokerInfo;
use super::{Client, ClientError, Target};

/// FindCoordinator's key type of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;
/// How many times a group request looks the coordinator up again.
const COORDINATOR_ATTEMPTS: u32 = 5;
/// Pause before asking again for a coordinator that is not ready.
const COORDINATOR_BACKOFF: Duration = Duration::from_millis(200);

/// A topic partition.
pub type OffsetKey = (String, i32);

/// One group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Empty when the broker answered below ListGroups v4.
    pub state: String,
    /// The broker that listed it (its coordinator).
    pub broker: i32,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// `None` when the group does not speak the consumer protocol or the
    /// bytes do not decode.
    pub assignment: Option<TopicPartitions>,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    /// The assignor the members agreed on (`protocol_data`).
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

impl GroupDescription {
    /// Kafka answers Dead for a group it does not know.
    pub fn is_dead(&self) -> bool {
        self.state == "Dead"
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn find_coordinator_request(group: &str, version: i16) -> FindCoordinatorRequest {
    let request = FindCoordinatorRequest::default().with_key_type(KEY_TYPE_GROUP);
    if version >= 4 {
        request.with_coordinator_keys(vec![str_bytes(group)])
    } else {
        request.with_key(str_bytes(group))
    }
}

/// The (error, message, broker) of a FindCoordinator response at `version`.
fn coordinator_of(
    response: &kafka_protocol::messages::FindCoordinatorResponse,
    version: i16,
) -> Result<(i16, Option<String>, BrokerInfo), ClientError> {
    let (code, message, node, host, port) = if version >= 4 {
        let c = response.coordinators.first().ok_or_else(|| {
            ClientError::Protocol("FindCoordinator: no coordinator in response".to_owned())
        })?;
        (c.error_code, &c.error_message, c.node_id.0, &c.host, c.port)
    } else {
        (
            response.error_code,
            &response.error_message,
            response.node_id.0,
            &response.host,
            response.port,
        )
    };
    let broker = BrokerInfo {
        id: node,
        host: host.to_string(),
        port,
        rack: None,
    };
    Ok((code, message.as_ref().map(|m| m.to_string()), broker))
}

/// The per-partition error codes of an OffsetCommit response.
fn commit_errors(response: &OffsetCommitResponse) -> Vec<(OffsetKey, i16)> {
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| ((t.name.0.to_string(), p.partition_index), p.error_code))
        })
        .collect()
}

fn commit_request(
    group: &str,
    generation_id: i32,
    member_id: &str,
    offsets: &BTreeMap<OffsetKey, i64>,
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for ((topic, partition), offset) in offsets {
        let p = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_leader_epoch(-1)
            .with_committed_metadata(Some(StrBytes::from_static_str("")));
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(str_bytes(topic)))
                    .with_partitions(vec![p]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(generation_id)
        .with_member_id(str_bytes(member_id))
        .with_retention_time_ms(-1)
        .with_topics(topics)
}

/// OffsetFetch for `topics` (every committed offset of the group when `None`).
fn offset_fetch_request(
    group: &str,
    topics: Option<&BTreeMap<String, Vec<i32>>>,
    version: i16,
) -> OffsetFetchRequest {
    let topics = match topics {
        Some(map) => Some(
            map.iter()
                .map(|(t, ids)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(str_bytes(t)))
                        .with_partition_indexes(ids.clone())
                })
                .collect(),
        ),
        // v1 has no null array; the caller names topics there.
        None if version < 2 => Some(Vec::new()),
        None => None,
    };
    OffsetFetchRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_topics(topics)
}

/// Committed offsets of an OffsetFetch response (partitions with none, -1,
/// left out); the first error, if any.
fn committed_offsets(
    group: &str,
    response: &OffsetFetchResponse,
) -> Result<BTreeMap<OffsetKey, i64>, ClientError> {
    if response.error_code != codes::NONE {
        return Err(ClientError::kafka(
            "OffsetFetch",
            response.error_code,
            group,
            None,
        ));
    }
    let mut offsets = BTreeMap::new();
    for t in &response.topics {
        for p in &t.partitions {
            let resource = format!("{}-{}", t.name.0.as_str(), p.partition_index);
            if p.error_code != codes::NONE {
                return Err(ClientError::kafka(
                    "OffsetFetch",
                    p.error_code,
                    resource,
                    None,
                ));
            }
            if p.committed_offset >= 0 {
                offsets.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(offsets)
}

impl Client {
    /// The broker id of `group`'s coordinator (cached until it moves).
    pub fn coordinator(&mut self, group: &str) -> Result<i32, ClientError> {
        if let Some(id) = self.coordinators.get(group) {
            return Ok(*id);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (version, response) =
                self.call(Target::Any, |v| find_coordinator_request(group, v))?;
            let (code, message, broker) = coordinator_of(&response, version)?;
            if code == codes::NONE {
                let id = broker.id;
                // The coordinator may be a broker Metadata has not shown yet.
                if self.metadata.brokers.get(&id) != Some(&broker) {
                    self.brokers.remove(&id);
                    self.metadata.brokers.insert(id, broker);
                }
                self.coordinators.insert(group.to_owned(), id);
                return Ok(id);
            }
            if !is_coordinator_error(code) || attempt >= COORDINATOR_ATTEMPTS {
                return Err(ClientError::kafka(
                    "FindCoordinator",
                    code,
                    group,
                    message.as_deref(),
                ));
            }
            std::thread::sleep(COORDINATOR_BACKOFF);
        }
    }

    /// Forgets `group`'s coordinator, so the next request looks it up.
    pub fn forget_coordinator(&mut self, group: &str) {
        self.coordinators.remove(group);
    }

    /// Sends a group request to the coordinator, reading the answer for up
    /// to the request timeout plus `extra_wait` (JoinGroup waits for the
    /// rebalance). `code_of` names the response's group-level error: on a
    /// coordinator error or a broken connection the coordinator is looked up
    /// again and the request sent again, a bounded number of times.
    pub fn call_coordinator<R: Request>(
        &mut self,
        group: &str,
        extra_wait: Duration,
        build: impl Fn(i16) -> R,
        code_of: impl Fn(&R::Response) -> i16,
    ) -> Result<(i16, R::Response), ClientError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= COORDINATOR_ATTEMPTS;
            let node = self.coordinator(group)?;
            let timeout = self.config.request_timeout + extra_wait;
            let result = self
                .set_broker_timeout(node, timeout)
                .and_then(|()| self.call(Target::Broker(node), &build));
            match result {
                Ok((_, ref response)) if !last && is_coordinator_error(code_of(response)) => {}
                Err(ClientError::Io { .. }) if !last => {}
                other => return other,
            }
            self.forget_coordinator(group);
            std::thread::sleep(COORDINATOR_BACKOFF);
        }
    }

    /// Every group of every broker (ListGroups on each, with states from v4).
    pub fn list_groups(&mut self) -> Result<Vec<GroupListing>, ClientError> {
        self.refresh_metadata(None, false)?;
        let brokers: Vec<i32> = self.metadata.brokers.keys().copied().collect();
        let mut listed = Vec::new();
        for broker in brokers {
            let (_, response) =
                self.call(Target::Broker(broker), |_| ListGroupsRequest::default())?;
            if response.error_code != codes::NONE {
                return Err(ClientError::kafka(
                    "ListGroups",
                    response.error_code,
                    format!("broker {broker}"),
                    None,
                ));
            }
            listed.extend(response.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
                broker,
            }));
        }
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listed.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(listed)
    }

    /// DescribeGroups for one group; a group the coordinator does not know
    /// comes back in state Dead, as Kafka answers before v6 (from v6 on it
    /// answers GROUP_ID_NOT_FOUND, taken here to mean the same).
    pub fn describe_group(&mut self, group: &str) -> Result<GroupDescription, ClientError> {
        let (_, response) = self.call_coordinator(
            group,
            Duration::ZERO,
            |_| DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group))]),
            |r| r.groups.first().map_or(codes::NONE, |g| g.error_code),
        )?;
        let mut described = response
            .groups
            .into_iter()
            .find(|g| g.group_id.0.as_str() == group)
            .ok_or_else(|| {
                ClientError::Protocol("DescribeGroups: group missing in response".to_owned())
            })?;
        if described.error_code == codes::GROUP_ID_NOT_FOUND {
            described.error_code = codes::NONE;
            described.group_state = str_bytes("Dead");
        }
        if described.error_code != codes::NONE {
            return Err(ClientError::kafka(
                "DescribeGroups",
                described.error_code,
                group,
                described.error_message.as_deref(),
            ));
        }
        let consumer = described.protocol_type.as_str() == PROTOCOL_TYPE;
        let members = described
            .members
            .into_iter()
            .map(|m| MemberDescription {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|s| s.to_string()),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                assignment: if consumer {
                    decode_assignment(m.member_assignment)
                        .ok()
                        .map(|a| a.partitions)
                } else {
                    None
                },
            })
            .collect();
        Ok(GroupDescription {
            group_id: group.to_owned(),
            state: described.group_state.to_string(),
            protocol_type: described.protocol_type.to_string(),
            protocol: described.protocol_data.to_string(),
            members,
        })
    }

    /// The group's committed offsets: of `topics` (topic -> partitions), or
    /// all of them when `None`. Partitions without one are left out.
    pub fn committed_offsets(
        &mut self,
        group: &str,
        topics: Option<&BTreeMap<String, Vec<i32>>>,
    ) -> Result<BTreeMap<OffsetKey, i64>, ClientError> {
        let (_, response) = self.call_coordinator(
            group,
            Duration::ZERO,
            |v| offset_fetch_request(group, topics, v),
            |r| r.error_code,
        )?;
        committed_offsets(group, &response)
    }

    /// Commits `offsets` as (generation, member): a group member's own, or
    /// (-1, "") from outside the group, which a coordinator accepts only
    /// while the group has no members. The first partition error is returned.
    pub fn commit_offsets(
        &mut self,
        group: &str,
        generation_id: i32,
        member_id: &str,
        offsets: &BTreeMap<OffsetKey, i64>,
    ) -> Result<(), ClientError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let (_, response) = self.call_coordinator(
            group,
            Duration::ZERO,
            |_| commit_request(group, generation_id, member_id, offsets),
            |r| {
                commit_errors(r)
                    .iter()
                    .map(|(_, c)| *c)
                    .find(|c| is_coordinator_error(*c))
                    .unwrap_or(codes::NONE)
            },
        )?;
        let errors = commit_errors(&response);
        for ((topic, partition), code) in &errors {
            if *code != codes::NONE {
                return Err(ClientError::kafka(
                    "OffsetCommit",
                    *code,
                    format!("{group} {topic}-{partition}"),
                    None,
                ));
            }
        }
        if errors.len() < offsets.len() {
            return Err(ClientError::Protocol(
                "OffsetCommit: partitions missing in response".to_owned(),
            ));
        }
        Ok(())
    }

    /// Deletes a group with no members (and its committed offsets).
    pub fn delete_group(&mut self, group: &str) -> Result<(), ClientError> {
        let (_, response) = self.call_coordinator(
            group,
            Duration::ZERO,
            |_| DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes(group))]),
            |r| r.results.first().map_or(codes::NONE, |g| g.error_code),
        )?;
        let result = response
            .results
            .iter()
            .find(|r| r.group_id.0.as_str() == group)
            .ok_or_else(|| {
                ClientError::Protocol("DeleteGroups: group missing in response".to_owned())
            })?;
        if result.error_code != codes::NONE {
            return Err(ClientError::kafka(
                "DeleteGroups",
                result.error_code,
                group,
                None,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::offset_fetch_response::{
        OffsetFetchResponsePartition, OffsetFetchResponseTopic,
    };
    use kafka_protocol::protocol::{Decodable, Encodable};

    #[test]
    fn find_coordinator_encodes_key_by_version() {
        for version in 0..=5 {
            let r = find_coordinator_request("g", version);
            let mut buf = bytes::BytesMut::new();
            r.encode(&mut buf, version).expect("encode");
            let back = FindCoordinatorRequest::decode(&mut buf.freeze(), version).expect("decode");
            if version >= 4 {
                assert_eq!(back.coordinator_keys[0].as_str(), "g");
            } else {
                assert_eq!(back.key.as_str(), "g");
            }
            if version >= 1 {
                assert_eq!(back.key_type, 0);
            }
        }
    }

    #[test]
    fn commit_request_groups_partitions_by_topic() {
        let mut offsets = BTreeMap::new();
        offsets.insert(("a".to_string(), 1), 10);
        offsets.insert(("a".to_string(), 0), 5);
        offsets.insert(("b".to_string(), 2), 7);
        for version in 2..=8 {
            let r = commit_request("g", -1, "", &offsets);
            let mut buf = bytes::BytesMut::new();
            r.encode(&mut buf, version).expect("encode");
            let back = OffsetCommitRequest::decode(&mut buf.freeze(), version).expect("decode");
            assert_eq!(back.topics.len(), 2);
            assert_eq!(back.topics[0].partitions.len(), 2);
            assert_eq!(back.topics[0].partitions[0].committed_offset, 5);
            assert_eq!(back.generation_id_or_member_epoch, -1);
        }
    }

    #[test]
    fn offset_fetch_results() {
        let response =
            OffsetFetchResponse::default().with_topics(vec![OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes("t")))
                .with_partitions(vec![
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(12),
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(1)
                        .with_committed_offset(-1),
                ])]);
        let got = committed_offsets("g", &response).expect("ok");
        assert_eq!(got.len(), 1);
        assert_eq!(got[&("t".to_string(), 0)], 12);
        let failed = response.with_error_code(16);
        let err = committed_offsets("g", &failed).unwrap_err();
        assert_eq!(err.kafka_code(), Some(16));
        for version in 1..=7 {
            let r = offset_fetch_request("g", None, version);
            let mut buf = bytes::BytesMut::new();
            r.encode(&mut buf, version).expect("encode");
        }
    }
}
