//! `tidemark bench e2e`: producers and consumers at once on one topic. The
//! producers stamp each batch's first record with its send time (nanoseconds
//! from a monotonic base shared in this process) and the run's nonce; the
//! consumers, started at the latest offsets, read the stamp back and record
//! the end-to-end latency (send to receipt) for the batch's records. Runs on
//! the CLI's threads, never a shard.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::consume::{self, ConsumePlan};
use super::produce::{self, Stamping};
use super::report::Stats;
use super::{offsets, BenchConfig, BenchError};
use client::{Client, OffsetSpec};

/// How long the consumers may go without progress once the producers are
/// done before the run ends without them.
const DRAIN_IDLE_MAX: Duration = Duration::from_secs(5);
/// How often the drain checks the counters.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// Runs producers and consumers together; returns the records per batch.
pub fn run(
    config: &BenchConfig,
    client: &mut Client,
    leaders: &BTreeMap<String, Vec<i32>>,
    stats: &Arc<Stats>,
) -> Result<(u64, u64), BenchError> {
    let start = offsets(client, &config.topic, leaders, OffsetSpec::Latest)?;
    let stamping = Stamping {
        base: Instant::now(),
        nonce: run_nonce(),
    };
    let plan = Arc::new(ConsumePlan {
        topic: config.topic.clone(),
        start,
        end: None,
        records: None,
        deadline: None,
        stop: AtomicBool::new(false),
        stamping: Some(stamping),
        request_timeout: config.request_timeout,
    });
    let consumers = consume::spawn(config, leaders, &plan, stats)?;
    let produced = produce::run_with(config, leaders, stats, Some(stamping));
    wait_for_consumers(stats);
    plan.stop.store(true, Ordering::Relaxed);
    consume::join(consumers)?;
    Ok((produced?, 0))
}

/// A value no other run is likely to use, to recognise this run's stamps.
fn run_nonce() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15
}

/// Waits until the consumers have seen every acknowledged record, or made
/// no progress for [`DRAIN_IDLE_MAX`].
fn wait_for_consumers(stats: &Stats) {
    let mut last = (
        Instant::now(),
        stats.consumed_records.load(Ordering::Relaxed),
    );
    loop {
        let consumed = stats.consumed_records.load(Ordering::Relaxed);
        if consumed >= stats.acked_records.load(Ordering::Relaxed) {
            return;
        }
        if consumed != last.1 {
            last = (Instant::now(), consumed);
        } else if last.0.elapsed() > DRAIN_IDLE_MAX {
            eprintln!("tidemark bench: consumers stalled at {consumed} records, stopping");
            return;
        }
        std::thread::sleep(DRAIN_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_returns_when_caught_up() {
        let stats = Stats::default();
        stats.acked(10, 100, 120);
        stats.consumed_records.store(10, Ordering::Relaxed);
        let t = Instant::now();
        wait_for_consumers(&stats);
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_ne!(run_nonce(), 0);
    }
}
