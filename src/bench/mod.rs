//! `tidemark bench`: a load generator that speaks the Kafka protocol to any
//! Kafka-compatible broker (Tidemark, Apache Kafka, Redpanda), to measure and
//! compare them. Modes: produce, consume, and end-to-end (both at once).
//!
//! It owns the run's configuration, the topic set-up (CreateTopics when
//! asked, leaders from Metadata), the plan of which connection serves which
//! partitions, and the dispatch to `produce`, `consume` and `e2e`. Batches
//! and request frames are built ahead of time (`batches`), producers pace
//! themselves (`pacing`) and pipeline requests over blocking sockets, and
//! `report` gathers the figures. Everything runs on the CLI's own threads
//! (std::net and std::thread), never on a glommio shard.

pub mod batches;
pub mod consume;
pub mod e2e;
pub mod pacing;
pub mod produce;
pub mod report;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::records::Compression;

use client::error::codes;
use client::{Acks, Client, ClientConfig, ClientError, NewTopic, OffsetSpec};

pub use report::{Stats, Summary};

/// The client id the bench announces.
pub const CLIENT_ID: &str = "tidemark-bench";
/// Kafka's TOPIC_ALREADY_EXISTS.
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Bounds on the knobs (every thread and queue is bounded by them).
pub const PRODUCERS_MAX: usize = 256;
pub const CONNECTIONS_MAX: usize = 1024;
pub const IN_FLIGHT_MAX: usize = 1024;
pub const RECORD_SIZE_MAX: usize = 16 * 1024 * 1024;

/// What can stop a bench run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("set-up failed: {0}")]
    Setup(String),
    #[error("reading the broker's CPU time (pid {pid}): {source}")]
    BrokerStat {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("starting a thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("a bench thread panicked")]
    ThreadPanicked,
}

/// Which load to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Produce,
    Consume,
    EndToEnd,
}

impl Mode {
    /// The mode's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Produce => "produce",
            Mode::Consume => "consume",
            Mode::EndToEnd => "e2e",
        }
    }
}

/// How long a run lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// This many records (produced, or consumed).
    Records(u64),
    /// This long.
    Duration(Duration),
    /// Consume only: from the earliest offsets to the latest at the start.
    Backlog,
}

/// A bench run, as the command line describes it.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub mode: Mode,
    pub bootstrap: String,
    pub topic: String,
    pub partitions: i32,
    pub create_topic: bool,
    pub record_size: usize,
    pub limit: Limit,
    pub producers: usize,
    pub connections: usize,
    pub acks: Acks,
    /// Bytes of records (framing included) per batch.
    pub batch_bytes: usize,
    pub linger: Duration,
    pub compression: Compression,
    /// Target records per second over all producers; 0 is unlimited.
    pub rate: u64,
    pub max_in_flight: usize,
    pub broker_pid: Option<u32>,
    pub request_timeout: Duration,
    /// Print the live progress line.
    pub progress: bool,
}

impl BenchConfig {
    /// Checks the knobs against their bounds and against each other.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::InvalidArgument(m.to_owned()));
        if !(1..=PRODUCERS_MAX).contains(&self.producers) {
            return bad("--producers must be 1..=256");
        }
        if self.connections > CONNECTIONS_MAX {
            return bad("--connections must be at most 1024");
        }
        if !(1..=IN_FLIGHT_MAX).contains(&self.max_in_flight) {
            return bad("--max-in-flight must be 1..=1024");
        }
        if !(1..=RECORD_SIZE_MAX).contains(&self.record_size) {
            return bad("--record-size must be 1..=16 MiB");
        }
        if !(1..=model::limits::PARTITIONS_PER_TOPIC_MAX).contains(&self.partitions) {
            return bad("--partitions must be 1..=100000");
        }
        if self.mode == Mode::EndToEnd {
            if self.record_size < batches::STAMP_BYTES {
                return bad("e2e needs --record-size of at least 16 (the send time is stamped)");
            }
            if self.compression != Compression::None {
                return bad("e2e stamps uncompressed batches: use --compression none");
            }
            if self.acks == Acks::None {
                return bad("e2e needs acks 1 or all");
            }
        }
        if self.limit == Limit::Backlog && self.mode != Mode::Consume {
            return bad("give --records or --duration");
        }
        Ok(())
    }

    /// The client configuration of the bench's control connections.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(&self.bootstrap, self.request_timeout);
        config.client_id = CLIENT_ID.to_owned();
        config
    }

    /// Connections to open: at least one per producer.
    pub fn connection_count(&self) -> usize {
        self.connections.max(self.producers)
    }
}

/// One connection's share of the topic: the leader it talks to and the
/// partitions it sends to or fetches from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnPlan {
    pub address: String,
    pub partitions: Vec<i32>,
}

/// Splits partitions (grouped by leader address) over `connections`
/// connections, at least one per leader. With `share`, connections beyond a
/// leader's partition count reuse its partitions (producers may share a
/// partition); without, they are not opened (a partition has one fetcher).
pub fn plan_connections(
    leaders: &BTreeMap<String, Vec<i32>>,
    connections: usize,
    share: bool,
) -> Vec<ConnPlan> {
    let groups: Vec<(&String, &Vec<i32>)> = leaders.iter().filter(|(_, p)| !p.is_empty()).collect();
    if groups.is_empty() {
        return Vec::new();
    }
    let total = connections.max(groups.len());
    let mut plans = Vec::with_capacity(total);
    for (g, (address, partitions)) in groups.iter().enumerate() {
        let mine = total / groups.len() + usize::from(g < total % groups.len());
        let count = if share {
            mine
        } else {
            mine.min(partitions.len())
        };
        for j in 0..count {
            let mut assigned: Vec<i32> =
                partitions.iter().copied().skip(j).step_by(count).collect();
            if assigned.is_empty() {
                assigned.push(partitions[j % partitions.len()]);
            }
            plans.push(ConnPlan {
                address: (*address).clone(),
                partitions: assigned,
            });
        }
    }
    plans
}

/// Creates the topic when asked and returns its leaders by address.
pub fn prepare_topic(
    client: &mut Client,
    config: &BenchConfig,
) -> Result<BTreeMap<String, Vec<i32>>, BenchError> {
    if config.create_topic {
        let topic = NewTopic {
            name: config.topic.clone(),
            partitions: Some(config.partitions),
            replication_factor: None,
            configs: Vec::new(),
        };
        match client.create_topic(&topic) {
            Ok(()) => {}
            Err(e) if e.kafka_code() == Some(TOPIC_ALREADY_EXISTS) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let info = client
        .topic(&config.topic, false)
        .map_err(|e| match e.kafka_code() {
            Some(codes::UNKNOWN_TOPIC_OR_PARTITION) => BenchError::Setup(format!(
                "topic {} does not exist (add --create-topic)",
                config.topic
            )),
            _ => e.into(),
        })?;
    let mut leaders: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for partition in &info.partitions {
        let broker = client
            .metadata()
            .brokers
            .get(&partition.leader)
            .ok_or_else(|| {
                BenchError::Setup(format!(
                    "{}-{} has no leader (leader id {})",
                    config.topic, partition.id, partition.leader
                ))
            })?;
        leaders
            .entry(broker.address())
            .or_default()
            .push(partition.id);
    }
    Ok(leaders)
}

/// The offsets of every partition at one end.
pub fn offsets(
    client: &mut Client,
    topic: &str,
    leaders: &BTreeMap<String, Vec<i32>>,
    spec: OffsetSpec,
) -> Result<BTreeMap<i32, i64>, BenchError> {
    let mut partitions: Vec<i32> = leaders.values().flatten().copied().collect();
    partitions.sort_unstable();
    Ok(client
        .list_offsets(topic, &partitions, spec)?
        .into_iter()
        .collect())
}

/// Reads the broker's CPU seconds when a pid was given.
fn broker_cpu(config: &BenchConfig) -> Result<Option<f64>, BenchError> {
    config
        .broker_pid
        .map(|pid| {
            report::broker_cpu_seconds(pid).map_err(|source| BenchError::BrokerStat { pid, source })
        })
        .transpose()
}

/// Runs the bench and returns its summary.
pub fn run(config: &BenchConfig) -> Result<Summary, BenchError> {
    config.validate()?;
    let mut client = Client::connect(config.client_config())?;
    let leaders = prepare_topic(&mut client, config)?;
    let stats = Arc::new(Stats::default());
    let cpu_before = broker_cpu(config)?;
    let progress = spawn_progress(config, &stats)?;
    let started = Instant::now();
    let result = match config.mode {
        Mode::Produce => produce::run(config, &leaders, &stats).map(|r| (r, 0)),
        Mode::Consume => consume::run_mode(config, &mut client, &leaders, &stats).map(|r| (0, r)),
        Mode::EndToEnd => e2e::run(config, &mut client, &leaders, &stats),
    };
    let elapsed = started.elapsed();
    stats.done.store(true, Ordering::Relaxed);
    if let Some(handle) = progress {
        handle.join().map_err(|_| BenchError::ThreadPanicked)?;
    }
    let (records_per_batch, _) = result?;
    let cpu_after = broker_cpu(config)?;
    Ok(summarize(
        config,
        &stats,
        elapsed,
        records_per_batch,
        cpu_before.zip(cpu_after),
    ))
}

fn spawn_progress(
    config: &BenchConfig,
    stats: &Arc<Stats>,
) -> Result<Option<std::thread::JoinHandle<()>>, BenchError> {
    if !config.progress {
        return Ok(None);
    }
    let stats = Arc::clone(stats);
    let consuming = config.mode == Mode::Consume;
    let e2e = config.mode == Mode::EndToEnd;
    let value_bytes = config.record_size as u64;
    std::thread::Builder::new()
        .name("bench-progress".into())
        .spawn(move || report::progress_loop(&stats, consuming, e2e, value_bytes))
        .map(Some)
        .map_err(BenchError::Thread)
}

/// Builds the summary from the counters. `elapsed` covers the whole load.
fn summarize(
    config: &BenchConfig,
    stats: &Stats,
    elapsed: Duration,
    records_per_batch: u64,
    cpu: Option<(f64, f64)>,
) -> Summary {
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let consuming = config.mode == Mode::Consume;
    let acked = load(&stats.acked_records);
    let consumed = load(&stats.consumed_records);
    let value_bytes = load(&stats.acked_value_bytes);
    let batch_bytes = if consuming {
        load(&stats.consumed_bytes)
    } else {
        load(&stats.acked_batch_bytes)
    };
    let (records, mb_bytes) = if consuming {
        (consumed, batch_bytes)
    } else {
        (acked, value_bytes)
    };
    let broker_cpu_s = cpu.map(|(before, after)| (after - before).max(0.0));
    let per_gb = broker_cpu_s
        .filter(|_| mb_bytes > 0)
        .map(|s| s / (mb_bytes as f64 / 1e9));
    Summary {
        mode: config.mode.name(),
        topic: config.topic.clone(),
        partitions: config.partitions,
        record_size: config.record_size,
        records_per_batch,
        acks: match config.acks {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        },
        compression: format!("{:?}", config.compression).to_lowercase(),
        elapsed_s: elapsed.as_secs_f64(),
        records,
        records_sent: load(&stats.sent_records),
        records_consumed: consumed,
        value_bytes,
        batch_bytes,
        records_per_s: report::per_s(records, elapsed),
        mb_per_s: report::mb_per_s(mb_bytes, elapsed),
        latency_us: stats.produce_latency(),
        e2e_latency_us: stats.e2e_latency(),
        errors: stats.errors(),
        error_count: stats.error_count(),
        broker_cpu_s,
        broker_cpu_s_per_gb: per_gb,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaders(spec: &[(&str, &[i32])]) -> BTreeMap<String, Vec<i32>> {
        spec.iter()
            .map(|(a, p)| ((*a).to_owned(), p.to_vec()))
            .collect()
    }

    #[test]
    fn connections_cover_every_partition_once() {
        let l = leaders(&[("a:1", &[0, 2, 4]), ("b:1", &[1, 3])]);
        let plans = plan_connections(&l, 3, false);
        assert_eq!(plans.len(), 3);
        let mut all: Vec<i32> = plans.iter().flat_map(|p| p.partitions.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
        // One per leader at least.
        assert_eq!(plan_connections(&l, 1, false).len(), 2);
        // Never more fetchers than partitions.
        assert_eq!(plan_connections(&l, 50, false).len(), 5);
    }

    #[test]
    fn producers_may_share_partitions() {
        let l = leaders(&[("a:1", &[0])]);
        let plans = plan_connections(&l, 4, true);
        assert_eq!(plans.len(), 4);
        assert!(plans.iter().all(|p| p.partitions == vec![0]));
        assert!(plan_connections(&BTreeMap::new(), 4, true).is_empty());
    }

    fn config(mode: Mode) -> BenchConfig {
        BenchConfig {
            mode,
            bootstrap: "127.0.0.1:9092".into(),
            topic: "t".into(),
            partitions: 1,
            create_topic: false,
            record_size: 100,
            limit: Limit::Records(10),
            producers: 1,
            connections: 0,
            acks: Acks::All,
            batch_bytes: 1_000_000,
            linger: Duration::ZERO,
            compression: Compression::None,
            rate: 0,
            max_in_flight: 5,
            broker_pid: None,
            request_timeout: Duration::from_secs(30),
            progress: false,
        }
    }

    #[test]
    fn validation() {
        assert!(config(Mode::Produce).validate().is_ok());
        let mut c = config(Mode::EndToEnd);
        c.compression = Compression::Lz4;
        assert!(c.validate().is_err());
        let mut c = config(Mode::EndToEnd);
        c.record_size = 8;
        assert!(c.validate().is_err());
        let mut c = config(Mode::Produce);
        c.limit = Limit::Backlog;
        assert!(c.validate().is_err());
        let mut c = config(Mode::Produce);
        c.max_in_flight = 0;
        assert!(c.validate().is_err());
        assert_eq!(config(Mode::Produce).connection_count(), 1);
    }

    #[test]
    fn summary_counts_the_mode() {
        let stats = Stats::default();
        stats.acked(20_000, 2_000_000, 2_200_000);
        stats.sent_records.store(20_000, Ordering::Relaxed);
        let s = summarize(
            &config(Mode::Produce),
            &stats,
            Duration::from_secs(2),
            100,
            Some((1.0, 1.5)),
        );
        assert_eq!(s.records, 20_000);
        assert_eq!(s.records_sent, 20_000);
        assert!((s.mb_per_s - 1.0).abs() < 1e-9);
        assert!((s.records_per_s - 10_000.0).abs() < 1e-9);
        // 0.5 CPU-seconds for 2 MB of values: 250 per GB.
        assert!(s
            .broker_cpu_s_per_gb
            .is_some_and(|v| (v - 250.0).abs() < 1e-6));
        assert!(s.latency_us.is_none());
    }
}
