//! Applying a new cluster view on a shard: for every partition the shard
//! owns, become its leader, its follower, or neither, as the view says, and
//! drop the logs of deleted topics. Runs on each shard when the quorum agent
//! hands it a view (every change of leader, ISR, topic or broker).
//!
//! A change costs what changed: with the agent's `ViewChanges`, only the
//! changed topics' partitions are visited. The first view, a catch-up from
//! pages, and any change of brokers walk the whole view.
use super::fetcher;
use super::isr::LeaderReplicaState;
use super::manager::{role_in_view, FollowerRole, LeaderRole, Role, RoleSummary};
use crate::shard::{LeadershipChange, Shard};
use model::{BrokerId, LeaderEpoch, Offset, TopicPartition};
use quorum::changes::ViewChanges;
use quorum::model::{ClusterView, PartitionState, TopicState};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;

pub async fn apply_view(
    shard: &Rc<Shard>,
    view: Arc<ClusterView>,
    changes: Option<Arc<ViewChanges>>,
) {
    shard.replication().set_view(view.clone());
    let changes = changes.filter(|c| !c.brokers_changed);
    let drops = changes
        .as_ref()
        .is_none_or(|c| !c.removed.is_empty() || !c.replaced.is_empty());
    if drops {
        drop_deleted_topics(shard, &view);
    }
    let mut leaders = BTreeSet::new();
    match &changes {
        Some(changes) => {
            let topics: Vec<&TopicState> = changes
                .changed
                .iter()
                .filter_map(|n| view.topics.get(n))
                .collect();
            open_new_replicas(shard, &topics).await;
            for topic in topics {
                apply_topic(shard, topic, &mut leaders).await;
            }
        }
        None => {
            for topic in view.topics.values() {
                apply_topic(shard, topic, &mut leaders).await;
            }
        }
    }
    for leader_id in leaders {
        fetcher::ensure_fetcher(shard, leader_id);
    }
}

/// Opens together the logs this shard must now hold for `topics`, so that
/// a change creating many topics shares the cache out once, not per topic.
async fn open_new_replicas(shard: &Rc<Shard>, topics: &[&TopicState]) {
    let local_id = shard.replication().settings.local_id;
    let mut wanted = Vec::new();
    for topic in topics {
        for (index, p) in topic.partitions.iter().enumerate() {
            let partition = index as i32;
            let new = shard.owner_of(&topic.name, partition) == shard.id
                && role_in_view(p, local_id).is_some()
                && shard.log(&topic.name, partition).is_none();
            if new {
                wanted.push((topic.name.clone(), partition..partition + 1));
            }
        }
    }
    if wanted.is_empty() {
        return;
    }
    if let Err(e) = shard.open_partitions_of(&wanted).await {
        tracing::error!(error = %e, "cannot open the logs of new replicas");
    }
}

/// Puts the partitions of `topic` this shard owns in their roles; adds the
/// leaders it follows to `leaders`.
async fn apply_topic(shard: &Rc<Shard>, topic: &TopicState, leaders: &mut BTreeSet<BrokerId>) {
    shard.reload_topic_config(&topic.name);
    let min_isr = shard
        .metadata
        .topic(&topic.name)
        .map_or(1, |m| shard.metadata.topic_config(&m).min_insync_replicas);
    for (index, p) in topic.partitions.iter().enumerate() {
        let partition = index as i32;
        if shard.owner_of(&topic.name, partition) != shard.id {
            continue;
        }
        if let Some(leader) = apply_partition(shard, topic, (partition, p), min_isr).await {
            leaders.insert(leader);
        }
    }
}

/// Drops the roles and logs of topics the view no longer has, and of topics
/// deleted and created again under the same name since the last view (their
/// logs belong to the old topic id).
fn drop_deleted_topics(shard: &Rc<Shard>, view: &ClusterView) {
    let current_id = |name: &str| view.topics.get(name).map(|t| t.topic_id);
    let replaced = shard.topics_of_other_incarnations(current_id);
    let gone = shard.replication().with_roles(|roles| {
        roles.retain_topics(|t| view.topics.contains_key(t) && !replaced.iter().any(|r| r == t))
    });
    let mut stale: BTreeSet<String> = gone.into_iter().collect();
    stale.extend(replaced);
    for topic in stale {
        shard.remove_topic_logs(&topic);
    }
}

/// Puts one partition in the role the view gives it. Returns the leader to
/// fetch from when this broker follows it.
async fn apply_partition(
    shard: &Rc<Shard>,
    topic: &TopicState,
    (partition, p): (i32, &PartitionState),
    min_isr: i32,
) -> Option<BrokerId> {
    let replication = &shard.replication();
    let local_id = replication.settings.local_id;
    let key = TopicPartition::new(&topic.name, partition);
    let wanted = role_in_view(p, local_id);
    let current = replication.role_of(&topic.name, partition);
    publish_leadership(shard, (&topic.name, partition), current, wanted);
    let Some(wanted) = wanted else {
        if current.is_some() {
            replication.with_roles(|roles| roles.remove(&key.topic, key.partition));
        }
        return None;
    };
    let log = match shard.open_log(&topic.name, partition).await {
        Ok(log) => log,
        Err(e) => {
            tracing::error!(topic = %topic.name, partition, error = %e, "cannot open a replica's log");
            return None;
        }
    };
    match wanted {
        RoleSummary::Leader { leader_epoch } => {
            if current == Some(wanted) {
                refresh_leader(shard, &key, p, min_isr);
            } else {
                become_leader(shard, &log, p, leader_epoch, min_isr);
            }
            None
        }
        RoleSummary::Follower(f) => {
            if current != Some(wanted) {
                become_follower(shard, &log, f);
            }
            Some(f.leader_id)
        }
    }
}

/// Tells the shard's leadership listeners (the group coordinator, for
/// `__consumer_offsets`) that this broker gained or lost a partition's
/// leadership. Listeners spawn their work, so it runs after the role below
/// is set.
fn publish_leadership(
    shard: &Rc<Shard>,
    (topic, partition): (&str, i32),
    current: Option<RoleSummary>,
    wanted: Option<RoleSummary>,
) {
    let was_leader = matches!(current, Some(RoleSummary::Leader { .. }));
    let change = match wanted {
        Some(RoleSummary::Leader { leader_epoch }) if current != wanted => {
            LeadershipChange::Gained {
                topic: topic.to_string(),
                partition,
                leader_epoch,
            }
        }
        Some(RoleSummary::Leader { .. }) => return,
        _ if was_leader => LeadershipChange::Lost {
            topic: topic.to_string(),
            partition,
        },
        _ => return,
    };
    shard.leadership.publish(&change);
}

fn become_leader(
    shard: &Rc<Shard>,
    log: &Rc<storage::PartitionLog>,
    p: &PartitionState,
    leader_epoch: LeaderEpoch,
    min_insync_replicas: i32,
) {
    let settings = &shard.replication().settings;
    // What this broker knew to be committed; records above it become
    // committed once the ISR has them (a fresh start knows nothing yet).
    let high_watermark = log
        .replicated_high_watermark()
        .unwrap_or(log.log_start_offset());
    log.begin_leader_epoch(leader_epoch.0);
    let state = LeaderReplicaState::new(
        settings.local_id,
        leader_epoch,
        p.replicas.clone(),
        p.isr.clone(),
        Offset(high_watermark),
        Offset(log.log_end_offset()),
        settings.lag_time_max_ms,
        storage::now_ms(),
    );
    tracing::info!(topic = %log.topic, partition = log.partition, %leader_epoch, isr = ?p.isr, "leading partition");
    let role = Role::Leader(LeaderRole {
        state,
        partition_epoch: p.partition_epoch,
        min_insync_replicas,
    });
    let key = TopicPartition::new(&log.topic, log.partition);
    shard
        .replication()
        .with_roles(|roles| roles.insert(key, role));
    log.set_replicated_high_watermark(Some(high_watermark));
    shard.replication().advance_high_watermark(log);
    // Long polls parked on this log answer under the new role.
    log.wake_waiters();
}

/// Same leader epoch: take the controller's ISR if it is newer than ours.
fn refresh_leader(
    shard: &Rc<Shard>,
    key: &TopicPartition,
    p: &PartitionState,
    min_insync_replicas: i32,
) {
    shard.replication().with_roles(|roles| {
        if let Some(Role::Leader(l)) = roles.get_mut(&key.topic, key.partition) {
            l.min_insync_replicas = min_insync_replicas;
            if p.partition_epoch > l.partition_epoch {
                l.partition_epoch = p.partition_epoch;
                l.state.on_isr_settled(p.isr.clone());
            }
        }
    });
    if let Some(log) = shard.log(&key.topic, key.partition) {
        shard.replication().advance_high_watermark(&log);
    }
}

fn become_follower(shard: &Rc<Shard>, log: &Rc<storage::PartitionLog>, f: FollowerRole) {
    tracing::info!(topic = %log.topic, partition = log.partition, leader = %f.leader_id, leader_epoch = %f.leader_epoch, "following partition");
    let limit = log
        .replicated_high_watermark()
        .unwrap_or(log.log_start_offset());
    log.set_replicated_high_watermark(Some(limit));
    let key = TopicPartition::new(&log.topic, log.partition);
    shard
        .replication()
        .with_roles(|roles| roles.insert(key, Role::Follower(f)));
    // Consumers' long polls answer NOT_LEADER_OR_FOLLOWER now, not at max_wait.
    log.wake_waiters();
}
