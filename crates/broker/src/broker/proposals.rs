//! Proposing a batch of quorum commands on behalf of one Kafka request
//! (AlterUserScramCredentials, CreateAcls, DeleteAcls) and answering each
//! with Kafka's error code. Runs on the shard that got the request.
use crate::replication::agent::AgentError;
use crate::replication::cluster_admin::wait_for_revision;
use crate::shard::Shard;
use quorum::state::{Command, Outcome};
use std::rc::Rc;
use wire::ResponseError;

/// A command's result as a Kafka answer carries it.
pub type Answered = Result<Outcome, (i16, String)>;

/// Proposes `commands` as one batch and waits until this shard sees the
/// result; one outcome per command, in order. A batch the quorum refuses
/// as a whole (or cannot take) fails every command alike.
pub async fn propose_each(shard: &Rc<Shard>, commands: Vec<Command>) -> Vec<Answered> {
    let count = commands.len();
    if count == 0 {
        return Vec::new();
    }
    let failed = |e: &AgentError| (ResponseError::UnknownServerError.code(), e.to_string());
    match shard
        .replication()
        .agent()
        .write(Command::Batch { commands })
        .await
    {
        Ok(applied) => {
            wait_for_revision(shard, applied.revision).await;
            match applied.outcome {
                Outcome::Batch(outcomes) => {
                    assert_eq!(outcomes.len(), count, "one outcome per batched command");
                    outcomes
                        .into_iter()
                        .map(|o| o.map_err(|e| (e.kafka_error_code(), e.to_string())))
                        .collect()
                }
                other => vec![Ok(other); count],
            }
        }
        Err(AgentError::Rejected(e)) => vec![Err((e.kafka_error_code(), e.to_string())); count],
        Err(e) => vec![Err(failed(&e)); count],
    }
}
