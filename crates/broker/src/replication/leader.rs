//! The leader's side of replication on its shard: ISR changes proposed to
//! the controller in the background, and the periodic ISR shrink check.
//! The path from an append to its acknowledgement is `crate::partition`.
use super::isr::IsrChange;
use crate::shard::Shard;
use model::{LeaderEpoch, TopicPartition};
use std::rc::Rc;
use std::time::Duration;

/// How often leaders look for followers that fell out of the ISR.
pub const ISR_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Sends an ISR change to the controller without blocking the caller; the
/// answer (or its failure) settles the leader's pending change.
pub fn propose_isr(
    shard: &Rc<Shard>,
    key: TopicPartition,
    change: IsrChange,
    leader_epoch: LeaderEpoch,
    partition_epoch: i32,
) {
    let agent = shard.replication().agent().clone();
    let shard = shard.clone();
    let local_id = shard.replication().settings.local_id;
    glommio::spawn_local(async move {
        let epochs = (leader_epoch, partition_epoch);
        let answer = agent
            .alter_partition(key.clone(), local_id, epochs, change.new_isr)
            .await;
        if let Err(e) = &answer {
            tracing::warn!(%key, error = %e, "ISR change not accepted");
        }
        shard
            .replication()
            .on_isr_answer(&key, leader_epoch, answer.as_ref().ok());
        if let Some(log) = shard.log(&key.topic, key.partition) {
            shard.replication().advance_high_watermark(&log);
        }
    })
    .detach();
}

/// Runs on every shard of a cluster broker: proposes ISR shrinks for
/// followers that stopped keeping up.
pub async fn isr_check_loop(shard: Rc<Shard>) {
    while !shard.is_stopping() {
        glommio::timer::sleep(ISR_CHECK_INTERVAL).await;
        let now = storage::now_ms();
        for (key, change, leader_epoch, partition_epoch) in shard.replication().due_isr_shrinks(now)
        {
            tracing::info!(%key, isr = ?change.new_isr, "shrinking ISR");
            propose_isr(&shard, key, change, leader_epoch, partition_epoch);
        }
    }
}
