//! `tidemark bench produce|consume|e2e`: the command-line face of the load
//! generator in `crate::bench`. Parses the knobs, runs the bench and prints
//! the summary (text on stdout, or one JSON object with `--json`); the live
//! progress line goes to stderr. Runs on the CLI's threads, never on a shard.

use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::bench::{self, BenchConfig, BenchError, Limit, Mode};
use client::records::parse_compression;
use client::Acks;

/// Records produced when neither --records nor --duration is given.
const DEFAULT_RECORDS: u64 = 1_000_000;

/// The load to generate.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchMode {
    /// Produce records as fast as possible (or at --rate).
    Produce,
    /// Consume a topic from its earliest offsets (by default up to the
    /// latest offsets at the start: a backlog).
    Consume,
    /// Produce and consume at once; latency from send to receipt.
    E2e,
}

/// Generate load against any Kafka-compatible broker and report throughput
/// and latency.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to run: produce, consume or e2e.
    #[arg(value_enum)]
    pub mode: BenchMode,
    /// The broker to bootstrap from (comma-separated list allowed).
    #[arg(short = 'b', long = "bootstrap-server", default_value = client::DEFAULT_BOOTSTRAP)]
    pub bootstrap_server: String,
    /// The topic to use.
    #[arg(long, default_value = "tidemark-bench")]
    pub topic: String,
    /// Partitions of the topic when --create-topic creates it.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Create the topic (with CreateTopics) if it does not exist.
    #[arg(long = "create-topic")]
    pub create_topic: bool,
    /// Bytes of each record's value.
    #[arg(long = "record-size", default_value_t = 1024)]
    pub record_size: usize,
    /// Records to produce (or consume). Default: 1,000,000 for produce and
    /// e2e; the backlog at the start for consume.
    #[arg(long, conflicts_with = "duration")]
    pub records: Option<u64>,
    /// Run for this many seconds instead of a record count.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Producer threads.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Connections (at least one per producer; consumers open at most one
    /// per partition).
    #[arg(long, default_value_t = 0)]
    pub connections: usize,
    /// Acknowledgements: 0, 1 or all (-1), as Kafka's producer (default all).
    #[arg(long, default_value = "all", allow_hyphen_values = true)]
    pub acks: String,
    /// Bytes of records per batch (record framing included).
    #[arg(long = "batch-size", default_value_t = 1_000_000)]
    pub batch_size: usize,
    /// With --rate: the longest a record waits for its batch, in ms (a batch
    /// holds at most the records due in one linger period).
    #[arg(long = "linger-ms", default_value_t = 0)]
    pub linger_ms: u64,
    /// Compression codec: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// Target records per second over all producers (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Produce requests in flight per connection.
    #[arg(long = "max-in-flight", default_value_t = 5)]
    pub max_in_flight: usize,
    /// Report the CPU seconds per GB of this broker process (from /proc).
    #[arg(long = "broker-pid")]
    pub broker_pid: Option<u32>,
    /// Request timeout in milliseconds.
    #[arg(long = "timeout-ms", default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Print one JSON object on stdout at the end (and no progress line).
    #[arg(long)]
    pub json: bool,
    /// Do not print the live progress line.
    #[arg(long)]
    pub quiet: bool,
}

impl BenchArgs {
    /// The bench configuration these arguments describe.
    pub fn to_config(&self) -> Result<BenchConfig, BenchError> {
        let mode = match self.mode {
            BenchMode::Produce => Mode::Produce,
            BenchMode::Consume => Mode::Consume,
            BenchMode::E2e => Mode::EndToEnd,
        };
        let limit = match (self.records, self.duration) {
            (Some(n), _) => Limit::Records(n),
            (None, Some(secs)) if secs.is_finite() && secs > 0.0 => {
                Limit::Duration(Duration::from_secs_f64(secs))
            }
            (None, Some(_)) => {
                return Err(BenchError::InvalidArgument(
                    "--duration must be a positive number of seconds".into(),
                ))
            }
            (None, None) if mode == Mode::Consume => Limit::Backlog,
            (None, None) => Limit::Records(DEFAULT_RECORDS),
        };
        Ok(BenchConfig {
            mode,
            bootstrap: self.bootstrap_server.clone(),
            topic: self.topic.clone(),
            partitions: self.partitions,
            create_topic: self.create_topic,
            record_size: self.record_size,
            limit,
            producers: self.producers,
            connections: self.connections,
            acks: Acks::parse(&self.acks)?,
            batch_bytes: self.batch_size,
            linger: Duration::from_millis(self.linger_ms),
            compression: parse_compression(&self.compression)?,
            rate: self.rate,
            max_in_flight: self.max_in_flight,
            broker_pid: self.broker_pid,
            request_timeout: Duration::from_millis(self.timeout_ms.max(1)),
            progress: !self.json && !self.quiet,
        })
    }
}

/// Runs `tidemark bench`.
pub fn run(args: BenchArgs) -> Result<(), BenchError> {
    let config = args.to_config()?;
    let summary = bench::run(&config)?;
    if args.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.to_text());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(line: &[&str]) -> BenchConfig {
        let mut argv = vec!["bench"];
        argv.extend_from_slice(line);
        Wrapper::try_parse_from(argv)
            .expect("parses")
            .args
            .to_config()
            .expect("config")
    }

    #[test]
    fn defaults_and_knobs() {
        let c = parse(&["produce"]);
        assert_eq!(c.limit, Limit::Records(DEFAULT_RECORDS));
        assert_eq!(c.acks, Acks::All);
        assert!(c.progress);
        let c = parse(&["consume", "--json"]);
        assert_eq!(c.limit, Limit::Backlog);
        assert!(!c.progress);
        let c = parse(&[
            "e2e",
            "-b",
            "h:1",
            "--acks",
            "all",
            "--duration",
            "2.5",
            "--rate",
            "10000",
            "--linger-ms",
            "5",
            "--compression",
            "zstd",
            "--producers",
            "2",
        ]);
        assert_eq!(c.mode, Mode::EndToEnd);
        assert_eq!(c.acks, Acks::All);
        assert_eq!(c.limit, Limit::Duration(Duration::from_millis(2500)));
        assert_eq!(c.rate, 10_000);
        assert_eq!(c.producers, 2);
        assert_eq!(c.bootstrap, "h:1");
    }

    #[test]
    fn bad_values_refused() {
        let bad = |line: &[&str]| {
            let mut argv = vec!["bench"];
            argv.extend_from_slice(line);
            match Wrapper::try_parse_from(argv) {
                Err(_) => true,
                Ok(w) => w.args.to_config().is_err(),
            }
        };
        assert!(bad(&["produce", "--acks", "2"]));
        assert!(bad(&["produce", "--compression", "brotli"]));
        assert!(bad(&["produce", "--duration", "-1"]));
        assert!(bad(&["produce", "--records", "5", "--duration", "1"]));
        assert!(bad(&["fly"]));
    }
}
