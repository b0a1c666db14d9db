//! The classic consumer group APIs: FindCoordinator, JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, DescribeGroups, ListGroups and DeleteGroups. Each
//! request is forwarded to the shard that coordinates the group (the owner of
//! its `__consumer_offsets` partition), which holds the group's state.
use super::authz::RequestAuthorizer;
use super::{str_bytes, RequestContext};
use crate::group::membership::{JoinRequest, JoinResult, Reply, SyncResult};
use crate::group::{self, offsets_partition, persist_dirty_groups, OFFSETS_TOPIC};
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use model::acl::{AclOperation, ResourceType};
use std::future::Future;
use std::rc::Rc;
use std::time::Instant;
use wire::ResponseError;

const COORDINATOR_GONE: i16 = ResponseError::CoordinatorNotAvailable.code();
/// The answer when this shard does not (or not yet) coordinate the group,
/// as Kafka's GroupCoordinator answers: clients find the coordinator again.
const NOT_COORDINATOR: i16 = ResponseError::NotCoordinator.code();
const KEY_TYPE_GROUP: i8 = 0;

/// The shard that coordinates `group`.
pub(crate) fn coordinator_shard(shard: &Shard, group: &str) -> usize {
    let partition = offsets_partition(group, shard.config.offsets_topic_partitions);
    shard.owner_of(OFFSETS_TOPIC, partition)
}

/// Runs `work` on the group's coordinator shard; `gone` if it cannot.
pub(crate) async fn on_coordinator<T, F, Fut>(shard: &Rc<Shard>, group: &str, gone: T, work: F) -> T
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let owner = coordinator_shard(shard, group);
    let partition = offsets_partition(group, shard.config.offsets_topic_partitions);
    // In a cluster, only the leader of the group's partition coordinates it:
    // elsewhere the client is sent to find the coordinator again.
    let answer = shard
        .run_on(owner, move |s| async move {
            if !group::leads_partition(&s, partition) {
                return None;
            }
            Some(work(s).await)
        })
        .await;
    answer.ok().flatten().unwrap_or(gone)
}

/// The answer of a join or sync, now or when it comes; `gone` if the group
/// went away before answering.
async fn settle<T>(reply: Reply<T>, gone: T) -> T {
    match reply {
        Reply::Now(v) => v,
        Reply::Later(rx) => rx.await.unwrap_or(gone),
    }
}

/// Kafka's error for a group the principal may not use.
const GROUP_AUTHORIZATION_FAILED: i16 = 30;

/// Whether the request may take part in `group` (Kafka: Read on the group
/// for JoinGroup, SyncGroup, Heartbeat and LeaveGroup).
fn may_read(shard: &Rc<Shard>, ctx: &RequestContext, group: &str) -> bool {
    RequestAuthorizer::of(shard, ctx).allows_group(AclOperation::Read, group)
}

pub async fn find_coordinator(
    shard: &Rc<Shard>,
    request: FindCoordinatorRequest,
    ctx: &RequestContext,
) -> FindCoordinatorResponse {
    let authorizer = RequestAuthorizer::of(shard, ctx);
    let find = |key: &str| {
        // Only group coordinators exist: transactions are not built.
        if request.key_type != KEY_TYPE_GROUP {
            return Err(COORDINATOR_GONE);
        }
        if !authorizer.allows_group(AclOperation::Describe, key) {
            return Err(GROUP_AUTHORIZATION_FAILED);
        }
        coordinator_of(shard, key, &ctx.session.listener)
    };
    let fields = |found: Result<(i32, String, i32), i16>| match found {
        Ok((node, host, port)) => (0, node, host, port),
        Err(code) => (code, -1, String::new(), -1),
    };
    if ctx.version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let (code, node, host, port) = fields(find(key.as_str()));
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(host))
                    .with_port(port)
                    .with_error_code(code)
                    // Kafka 4.x leaves v4's error message empty, error or not.
                    .with_error_message(Some(StrBytes::default()))
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (code, node, host, port) = fields(find(request.key.as_str()));
    let mut response = FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_node_id(BrokerId(node))
        .with_host(str_bytes(host))
        .with_port(port);
    // The field exists from v1 on.
    if ctx.version >= 1 {
        response.error_message = Some(legacy_error_message(code));
    }
    response
}

/// The error message of a FindCoordinator v1-v3 answer, as Kafka 4.x fills
/// it (`Errors.message()`): "NONE", the name of error 0, when there is no
/// error (not null, as in other APIs), else the error's default message.
fn legacy_error_message(code: i16) -> StrBytes {
    match code {
        0 => StrBytes::from_static_str("NONE"),
        COORDINATOR_GONE => StrBytes::from_static_str("The coordinator is not available."),
        // No other error is answered here; its name, should one be.
        other => str_bytes(
            ResponseError::try_from_code(other)
                .map(|e| e.to_string())
                .unwrap_or_default(),
        ),
    }
}

/// (broker id, host, port on `listener`) of the coordinator of `group`:
/// the leader of the group's `__consumer_offsets` partition, and the topic
/// is created (through the quorum service) by the first FindCoordinator
/// that misses it.
fn coordinator_of(
    shard: &Rc<Shard>,
    group: &str,
    listener: &str,
) -> Result<(i32, String, i32), i16> {
    let Some(view) = shard.replication().view() else {
        return Err(COORDINATOR_GONE);
    };
    let partition = offsets_partition(group, shard.config.offsets_topic_partitions);
    let Some(state) = view.partition(OFFSETS_TOPIC, partition) else {
        create_offsets_topic(shard, view.brokers.len());
        return Err(COORDINATOR_GONE);
    };
    let leader = state.leader.and_then(|id| view.brokers.get(&id));
    let leader = leader.ok_or(COORDINATOR_GONE)?;
    let (host, port) = leader.endpoint(listener).ok_or(COORDINATOR_GONE)?;
    Ok((leader.broker_id.0, host.to_string(), port as i32))
}

/// Asks the quorum for `__consumer_offsets` in the background, once at a
/// time per shard; FindCoordinator answers COORDINATOR_NOT_AVAILABLE
/// meanwhile and clients ask again.
fn create_offsets_topic(shard: &Rc<Shard>, live_brokers: usize) {
    if !shard.replication().begin_offsets_topic_creation() {
        return;
    }
    let factor = (shard.config.offsets_topic_replication_factor as usize).min(live_brokers.max(1));
    let partitions = shard.config.offsets_topic_partitions;
    let shard = shard.clone();
    glommio::spawn_local(async move {
        let created = crate::replication::cluster_admin::create_topic(
            &shard,
            OFFSETS_TOPIC,
            partitions,
            factor as i16,
            group::offsets_topic_configs(),
        )
        .await;
        match created {
            Ok(_) | Err(crate::metadata::MetadataError::TopicAlreadyExists(_)) => {}
            Err(e) => tracing::warn!(error = %e, "cannot create {OFFSETS_TOPIC}"),
        }
        shard.replication().end_offsets_topic_creation();
    })
    .detach();
}

pub async fn join_group(
    shard: &Rc<Shard>,
    request: JoinGroupRequest,
    ctx: &RequestContext,
) -> JoinGroupResponse {
    let v = ctx.version;
    let group_id = request.group_id.0.to_string();
    let result = if group_id.is_empty() {
        JoinResult {
            error_code: ResponseError::InvalidGroupId.code(),
            generation_id: -1,
            ..JoinResult::default()
        }
    } else if !may_read(shard, ctx, &group_id) {
        JoinResult {
            error_code: GROUP_AUTHORIZATION_FAILED,
            generation_id: -1,
            ..JoinResult::default()
        }
    } else {
        let join = JoinRequest {
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            client_id: ctx.client_id.clone(),
            client_host: ctx.client_host.to_string(),
            session_timeout_ms: request.session_timeout_ms,
            // JoinGroup v0 has no rebalance timeout: the session timeout serves.
            rebalance_timeout_ms: if v >= 1 {
                request.rebalance_timeout_ms
            } else {
                request.session_timeout_ms
            },
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            require_known_member_id: v >= 4,
        };
        let gone = JoinResult {
            error_code: NOT_COORDINATOR,
            generation_id: -1,
            ..JoinResult::default()
        };
        let id = group_id.clone();
        let fallback = gone.clone();
        on_coordinator(shard, &group_id, gone, move |s| async move {
            let reply = s.groups().join(&id, join, Instant::now());
            persist_dirty_groups(&s).await;
            settle(reply, fallback).await
        })
        .await
    };
    join_response(result, v)
}

fn join_response(r: JoinResult, v: i16) -> JoinGroupResponse {
    let members = r
        .members
        .into_iter()
        .map(|(member_id, instance, metadata)| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(member_id))
                // Instance ids are in the answer from v5 on.
                .with_group_instance_id(instance.filter(|_| v >= 5).map(str_bytes))
                .with_metadata(metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(r.error_code)
        .with_generation_id(r.generation_id)
        .with_protocol_type((v >= 7).then(|| str_bytes(r.protocol_type)))
        .with_protocol_name(Some(str_bytes(r.protocol_name)))
        .with_leader(str_bytes(r.leader))
        .with_member_id(str_bytes(r.member_id))
        .with_members(members)
}

pub async fn sync_group(
    shard: &Rc<Shard>,
    request: SyncGroupRequest,
    ctx: &RequestContext,
) -> SyncGroupResponse {
    let v = ctx.version;
    let group_id = request.group_id.0.to_string();
    if !may_read(shard, ctx, &group_id) {
        return SyncGroupResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED);
    }
    let member_id = request.member_id.to_string();
    let generation_id = request.generation_id;
    let instance_id = request.group_instance_id.as_ref().map(|s| s.to_string());
    let assignments: Vec<(String, Bytes)> = request
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let (asked_type, asked_name) = (
        request.protocol_type.as_ref().map(|s| s.to_string()),
        request.protocol_name.as_ref().map(|s| s.to_string()),
    );
    let gone = SyncResult {
        error_code: NOT_COORDINATOR,
        ..SyncResult::default()
    };
    let id = group_id.clone();
    let fallback = gone.clone();
    let mut result = on_coordinator(shard, &group_id, gone, move |s| async move {
        let reply = s.groups().sync(
            &id,
            &member_id,
            instance_id.as_deref(),
            generation_id,
            assignments,
            Instant::now(),
        );
        persist_dirty_groups(&s).await;
        settle(reply, fallback).await
    })
    .await;
    // SyncGroup v5 names the protocol the client thinks it runs.
    let mismatch =
        |asked: &Option<String>, actual: &str| asked.as_deref().is_some_and(|a| a != actual);
    if result.error_code == 0
        && (mismatch(&asked_type, &result.protocol_type)
            || mismatch(&asked_name, &result.protocol_name))
    {
        result.error_code = ResponseError::InconsistentGroupProtocol.code();
        result.assignment = Bytes::new();
    }
    SyncGroupResponse::default()
        .with_error_code(result.error_code)
        .with_protocol_type((v >= 5).then(|| str_bytes(result.protocol_type)))
        .with_protocol_name((v >= 5).then(|| str_bytes(result.protocol_name)))
        .with_assignment(result.assignment)
}

pub async fn heartbeat(
    shard: &Rc<Shard>,
    request: HeartbeatRequest,
    ctx: &RequestContext,
) -> HeartbeatResponse {
    let group_id = request.group_id.0.to_string();
    if !may_read(shard, ctx, &group_id) {
        return HeartbeatResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED);
    }
    let member_id = request.member_id.to_string();
    let generation_id = request.generation_id;
    let instance_id = request.group_instance_id.as_ref().map(|s| s.to_string());
    let id = group_id.clone();
    let code = on_coordinator(shard, &group_id, NOT_COORDINATOR, move |s| async move {
        s.groups().heartbeat(
            &id,
            &member_id,
            instance_id.as_deref(),
            generation_id,
            Instant::now(),
        )
    })
    .await;
    HeartbeatResponse::default().with_error_code(code)
}

pub async fn leave_group(
    shard: &Rc<Shard>,
    request: LeaveGroupRequest,
    ctx: &RequestContext,
) -> LeaveGroupResponse {
    let group_id = request.group_id.0.to_string();
    if !may_read(shard, ctx, &group_id) {
        return LeaveGroupResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED);
    }
    // LeaveGroup v3 batches members (with instance ids); before, one member id.
    let members: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let id = group_id.clone();
    let asked = members.clone();
    let codes = on_coordinator(
        shard,
        &group_id,
        vec![NOT_COORDINATOR; members.len()],
        move |s| async move {
            let codes = s.groups().leave(&id, &asked, Instant::now());
            persist_dirty_groups(&s).await;
            codes
        },
    )
    .await;
    if ctx.version < 3 {
        return LeaveGroupResponse::default().with_error_code(codes.first().copied().unwrap_or(0));
    }
    let responses = members
        .into_iter()
        .zip(codes)
        .map(|((member_id, instance), code)| {
            MemberResponse::default()
                .with_member_id(str_bytes(member_id))
                .with_group_instance_id(instance.map(str_bytes))
                .with_error_code(code)
        })
        .collect();
    LeaveGroupResponse::default().with_members(responses)
}

pub async fn describe_groups(
    shard: &Rc<Shard>,
    request: DescribeGroupsRequest,
    ctx: &RequestContext,
) -> DescribeGroupsResponse {
    let v = ctx.version;
    let mut response = DescribeGroupsResponse::default();
    let authorizer = RequestAuthorizer::of(shard, ctx);
    for group_id in request.groups {
        let id = group_id.0.to_string();
        if !authorizer.allows_group(AclOperation::Describe, &id) {
            response.groups.push(
                DescribedGroup::default()
                    .with_group_id(group_id.clone())
                    .with_error_code(GROUP_AUTHORIZATION_FAILED),
            );
            continue;
        }
        let lookup = id.clone();
        let description = on_coordinator(shard, &id, None, move |s| async move {
            s.groups().describe(&lookup)
        })
        .await;
        let mut described = DescribedGroup::default().with_group_id(group_id.clone());
        match description {
            // Kafka 4.x answers GROUP_ID_NOT_FOUND for a group it does not
            // know from DescribeGroups v6 (KIP-1043) on; before, it describes
            // it as Dead, without an error.
            None if v >= 6 => {
                described.error_code = ResponseError::GroupIdNotFound.code();
                described.error_message = Some(str_bytes(format!("Group {id} not found.")));
            }
            None => described.group_state = StrBytes::from_static_str("Dead"),
            Some(d) => {
                described.group_state = str_bytes(d.state);
                described.protocol_type = str_bytes(d.protocol_type);
                described.protocol_data = str_bytes(d.protocol_name);
                described.members = d
                    .members
                    .into_iter()
                    .map(
                        |(member_id, instance, client_id, host, metadata, assignment)| {
                            DescribedGroupMember::default()
                                .with_member_id(str_bytes(member_id))
                                .with_group_instance_id(instance.filter(|_| v >= 4).map(str_bytes))
                                .with_client_id(str_bytes(client_id))
                                .with_client_host(str_bytes(host))
                                .with_member_metadata(metadata)
                                .with_member_assignment(assignment)
                        },
                    )
                    .collect();
            }
        }
        // KIP-430, from v3: the operations on each group described without
        // an error, as Kafka answers.
        if v >= 3 && request.include_authorized_operations && described.error_code == 0 {
            described.authorized_operations =
                authorizer.authorized_operations(ResourceType::Group, &id);
        }
        response.groups.push(described);
    }
    response
}

/// The one group type Tidemark's groups have (KIP-848's other types,
/// `consumer` and `share`, are not built).
const CLASSIC_GROUP_TYPE: &str = "classic";

/// Which groups a ListGroups request asks for: its states filter (v4+) and
/// types filter (v5+), each matching all when empty, compared without
/// regard to case (and, for states, surrounding blanks) as Kafka's
/// GroupMetadataManager does.
struct ListFilter {
    states: Vec<String>,
    /// Whether classic groups pass the types filter (empty, or naming
    /// `classic`): every group passes it, or none does.
    classic: bool,
}

impl ListFilter {
    fn of(request: &ListGroupsRequest) -> ListFilter {
        let states = request
            .states_filter
            .iter()
            .map(|s| s.trim().to_string())
            .collect();
        let types = &request.types_filter;
        let classic = types.is_empty()
            || types
                .iter()
                .any(|t| t.eq_ignore_ascii_case(CLASSIC_GROUP_TYPE));
        ListFilter { states, classic }
    }

    fn passes(&self, listed: &group::ListedGroup) -> bool {
        self.classic
            && (self.states.is_empty()
                || self
                    .states
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(listed.state)))
    }
}

pub async fn list_groups(
    shard: &Rc<Shard>,
    request: ListGroupsRequest,
    ctx: &RequestContext,
) -> ListGroupsResponse {
    let filter = ListFilter::of(&request);
    let everywhere = shard.run_on_all(|s| async move { s.groups().list() }).await;
    let mut response = ListGroupsResponse::default();
    // Kafka: Describe on the cluster lists every group; otherwise those
    // the principal may Describe.
    let authorizer = RequestAuthorizer::of(shard, ctx);
    let sees_all = authorizer.allows_cluster(AclOperation::Describe);
    for listed in everywhere.into_iter().flatten().flatten() {
        if !filter.passes(&listed)
            || !(sees_all || authorizer.allows_group(AclOperation::Describe, &listed.group_id))
        {
            continue;
        }
        let mut g = ListedGroup::default()
            .with_group_id(GroupId(str_bytes(listed.group_id)))
            .with_protocol_type(str_bytes(listed.protocol_type));
        // States are listed from v4 on, types from v5 on.
        if ctx.version >= 4 {
            g.group_state = str_bytes(listed.state);
        }
        if ctx.version >= 5 {
            g.group_type = StrBytes::from_static_str(CLASSIC_GROUP_TYPE);
        }
        response.groups.push(g);
    }
    response
}

pub async fn delete_groups(
    shard: &Rc<Shard>,
    request: DeleteGroupsRequest,
    ctx: &RequestContext,
) -> DeleteGroupsResponse {
    let mut response = DeleteGroupsResponse::default();
    let authorizer = RequestAuthorizer::of(shard, ctx);
    for group_id in request.groups_names {
        let id = group_id.0.to_string();
        let target = id.clone();
        let code = if authorizer.allows_group(AclOperation::Delete, &id) {
            on_coordinator(shard, &id, NOT_COORDINATOR, move |s| async move {
                delete_group_on_coordinator(&s, &target).await
            })
            .await
        } else {
            GROUP_AUTHORIZATION_FAILED
        };
        response.results.push(
            delete_groups_response::DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(code),
        );
    }
    response
}

async fn delete_group_on_coordinator(shard: &Rc<Shard>, group_id: &str) -> i16 {
    let tombstones = match shard.groups().delete_group(group_id) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let partition = offsets_partition(group_id, shard.config.offsets_topic_partitions);
    let applied = tombstones.clone();
    if let Err(code) = group::append_records(shard, partition, tombstones).await {
        return code;
    }
    let now = Instant::now();
    for (key, value) in applied {
        if let Some(record) = group::records::decode(&key, value.as_deref()) {
            shard.groups().apply(record, now);
        }
    }
    0
}
