//! Topic administration and producer ids on a cluster broker: the quorum
//! service decides, not the local registry. Each change is proposed through
//! the agent; the answer goes out once every shard has applied a view at
//! least as new as the change, so a client that reads the answer finds the
//! topic in this broker's Metadata (and a deleted topic's logs gone). Runs on the shard that got the request.
use super::agent::AgentError;
use crate::config::TopicConfigError;
use crate::metadata::{MetadataError, TopicMeta};
use crate::shard::Shard;
use quorum::state::{Command, CommandError, Outcome};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long an admin answer waits for this shard to see its own change.
const VIEW_CATCH_UP: Duration = Duration::from_secs(5);
const VIEW_POLL: Duration = Duration::from_millis(10);
/// Topics created by one quorum command: a CreateTopics of many topics
/// costs one log entry and one view change per hundred, not one per topic.
const CREATE_BATCH_TOPICS: usize = 100;

fn to_metadata_error(e: AgentError) -> MetadataError {
    match e {
        AgentError::Rejected(CommandError::TopicAlreadyExists(t)) => {
            MetadataError::TopicAlreadyExists(t)
        }
        AgentError::Rejected(CommandError::UnknownTopic(t)) => MetadataError::UnknownTopic(t),
        AgentError::Rejected(CommandError::InvalidTopic(t)) => {
            MetadataError::InvalidTopic(t, "refused by the controller")
        }
        AgentError::Rejected(CommandError::TopicCollision { name, existing }) => {
            MetadataError::TopicCollision { name, existing }
        }
        AgentError::Rejected(CommandError::InvalidPartitions(m)) => {
            MetadataError::InvalidPartitions(m)
        }
        AgentError::Rejected(CommandError::InvalidReplicationFactor { requested, .. }) => {
            MetadataError::InvalidReplicationFactor(requested as i16)
        }
        AgentError::Rejected(CommandError::InvalidConfig(m)) => {
            MetadataError::InvalidConfig(TopicConfigError::Refused(m))
        }
        AgentError::Rejected(CommandError::DiskFull) => MetadataError::DiskFull,
        other => MetadataError::Controller(other.to_string()),
    }
}

/// Proposes `command` and waits until this shard has applied its result.
async fn propose(shard: &Rc<Shard>, command: Command) -> Result<(), MetadataError> {
    let agent = shard.replication().agent();
    let applied = agent.write(command).await.map_err(to_metadata_error)?;
    wait_for_revision(shard, applied.revision).await;
    Ok(())
}

/// Waits (bounded) until every shard has applied view `revision`.
pub async fn wait_for_revision(shard: &Rc<Shard>, revision: u64) {
    let deadline = Instant::now() + VIEW_CATCH_UP;
    while Instant::now() < deadline {
        if shard.metadata.applied_revision() >= revision {
            return;
        }
        glommio::timer::sleep(VIEW_POLL).await;
    }
}

pub async fn create_topic(
    shard: &Rc<Shard>,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: BTreeMap<String, String>,
) -> Result<TopicMeta, MetadataError> {
    let topic = prepare_topic(shard, name, partitions, replication_factor, &configs)?;
    let command = create_command(&topic);
    propose(shard, command).await?;
    shard
        .metadata
        .topic(name)
        .ok_or_else(|| MetadataError::Controller("the new topic is not visible yet".to_string()))
}

/// A topic to create, checked by this broker, its configs in canonical form.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// Checks a topic as a single broker would (name, count, configs) and puts
/// its configs in canonical form; the controller checks the replication
/// factor against the live brokers.
pub fn prepare_topic(
    shard: &Shard,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &BTreeMap<String, String>,
) -> Result<NewTopic, MetadataError> {
    let configs = shard.metadata.check_new_topic(name, partitions, configs)?;
    let replication_factor = if replication_factor == -1 {
        shard.config.default_replication_factor
    } else {
        replication_factor
    };
    Ok(NewTopic {
        name: name.to_string(),
        partitions,
        replication_factor,
        configs,
    })
}

/// Creates `topics`, a hundred per quorum command, and answers once every
/// shard has applied them: one result per topic, in order.
pub async fn create_topics(
    shard: &Rc<Shard>,
    topics: &[NewTopic],
) -> Vec<Result<TopicMeta, MetadataError>> {
    let agent = shard.replication().agent();
    let mut created: Vec<Result<(), MetadataError>> = Vec::with_capacity(topics.len());
    let mut revision = 0;
    for chunk in topics.chunks(CREATE_BATCH_TOPICS) {
        let commands = chunk.iter().map(create_command).collect();
        match agent.write(Command::Batch { commands }).await {
            Ok(applied) => {
                revision = applied.revision;
                created.extend(batch_results(applied.outcome, chunk.len()));
            }
            Err(e) => created.extend(chunk.iter().map(|_| Err(to_metadata_error(e.clone())))),
        }
    }
    wait_for_revision(shard, revision).await;
    topics
        .iter()
        .zip(created)
        .map(|(topic, result)| {
            result?;
            shard.metadata.topic(&topic.name).ok_or_else(|| {
                MetadataError::Controller("the new topic is not visible yet".to_string())
            })
        })
        .collect()
}

fn create_command(topic: &NewTopic) -> Command {
    Command::CreateTopic {
        name: topic.name.clone(),
        partitions: topic.partitions,
        replication_factor: topic.replication_factor,
        configs: topic.configs.clone(),
        topic_id: None,
    }
}

/// The per-topic results of a batch of `count` creations.
fn batch_results(outcome: Outcome, count: usize) -> Vec<Result<(), MetadataError>> {
    let Outcome::Batch(outcomes) = outcome else {
        let e = || Err(MetadataError::Controller(format!("unexpected {outcome:?}")));
        return (0..count).map(|_| e()).collect();
    };
    let mut results: Vec<Result<(), MetadataError>> = outcomes
        .into_iter()
        .map(|o| {
            o.map(|_| ())
                .map_err(|e| to_metadata_error(AgentError::Rejected(e)))
        })
        .collect();
    results.resize_with(count, || {
        Err(MetadataError::Controller(
            "no answer for this topic".to_string(),
        ))
    });
    results
}

pub async fn delete_topic(shard: &Rc<Shard>, name: &str) -> Result<TopicMeta, MetadataError> {
    let meta = shard
        .metadata
        .topic(name)
        .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
    propose(
        shard,
        Command::DeleteTopic {
            name: name.to_string(),
        },
    )
    .await?;
    Ok(meta)
}

pub async fn grow_topic(shard: &Rc<Shard>, name: &str, total: i32) -> Result<(), MetadataError> {
    let command = Command::CreatePartitions {
        name: name.to_string(),
        count: total,
    };
    propose(shard, command).await
}

pub async fn alter_topic_configs(
    shard: &Rc<Shard>,
    name: &str,
    set: BTreeMap<String, String>,
    delete: Vec<String>,
) -> Result<(), MetadataError> {
    let command = Command::AlterTopicConfigs {
        name: name.to_string(),
        set,
        delete,
    };
    propose(shard, command).await
}

/// A producer id from this broker's current block, asking the quorum for a
/// new block when it is used up.
pub async fn allocate_producer_id(shard: &Rc<Shard>) -> Result<i64, MetadataError> {
    if let Some(id) = shard.metadata.take_producer_id() {
        return Ok(id);
    }
    let agent = shard.replication().agent();
    let (first, count) = agent
        .allocate_producer_ids()
        .await
        .map_err(to_metadata_error)?;
    shard.metadata.add_producer_id_block(first..first + count);
    shard
        .metadata
        .take_producer_id()
        .ok_or(MetadataError::ProducerIdsExhausted)
}
