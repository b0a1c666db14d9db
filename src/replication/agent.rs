//! The broker's link to the quorum service: shards hand it calls through an
//! `AgentHandle` (a bounded channel), and the agent thread (tokio, off the
//! shards) makes them with the quorum client and answers on a oneshot.
use crate::quorum::model::PartitionState;
use futures::channel::oneshot;
use thiserror::Error;

/// Calls in flight from all shards to the agent, at most.
pub const AGENT_QUEUE_MAX: usize = 1024;

#[derive(Debug, Error)]
pub enum AgentError {
    #[error("the quorum agent is gone")]
    Gone,
    #[error("the quorum service refused: {0}")]
    Refused(String),
    #[error("the quorum service is unavailable: {0}")]
    Unavailable(String),
}

/// One call from a shard to the quorum service.
pub enum AgentCall {
    /// A partition leader's ISR change (KRaft's AlterPartition).
    AlterPartition {
        topic: String,
        partition: i32,
        leader_id: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
        reply: oneshot::Sender<Result<PartitionState, AgentError>>,
    },
}

/// What shards hold to reach the agent.
#[derive(Clone)]
pub struct AgentHandle {
    calls: flume::Sender<AgentCall>,
}

impl AgentHandle {
    pub fn new(calls: flume::Sender<AgentCall>) -> AgentHandle {
        AgentHandle { calls }
    }

    async fn send(&self, call: AgentCall) -> Result<(), AgentError> {
        self.calls
            .send_async(call)
            .await
            .map_err(|_| AgentError::Gone)
    }

    pub async fn alter_partition(
        &self,
        topic: String,
        partition: i32,
        leader_id: i32,
        (leader_epoch, partition_epoch): (i32, i32),
        new_isr: Vec<i32>,
    ) -> Result<PartitionState, AgentError> {
        let (reply, answer) = oneshot::channel();
        self.send(AgentCall::AlterPartition {
            topic,
            partition,
            leader_id,
            leader_epoch,
            partition_epoch,
            new_isr,
            reply,
        })
        .await?;
        answer.await.map_err(|_| AgentError::Gone)?
    }
}
