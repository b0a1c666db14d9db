//! `tidemark produce TOPIC`: lines from standard input become records, in the
//! manner of kafka-console-producer. Records are partitioned (explicit, by key
//! with murmur2, else round robin), grouped into RecordBatch v2 batches per
//! partition and sent with Produce. The client runs on the CLI's main thread;
//! one helper thread only reads stdin so that a quiet terminal still flushes.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Args;
use kafka_protocol::records::Compression;

use client::records::{encode_batch, parse_compression};
use client::{Acks, Client, ClientError, Partitioner, ProducerRecord};

/// A batch is sent once its records reach this many bytes, whatever
/// `--batch-size` says (brokers refuse batches above message.max.bytes).
const BATCH_BYTES_MAX: usize = 512 * 1024;
/// Lines buffered between the stdin reader and the sender.
const LINE_QUEUE_MAX: usize = 4096;

/// Produce lines from standard input to a topic.
#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// The topic to produce to.
    pub topic: String,
    /// The broker to bootstrap from (comma-separated list allowed).
    #[arg(short = 'b', long = "bootstrap-server", default_value = client::DEFAULT_BOOTSTRAP)]
    pub bootstrap_server: String,
    /// Split each line at the first SEP into key and value (a line without
    /// SEP is sent with a null key).
    #[arg(long = "key-separator", value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Send every record to this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Acknowledgements: 0, 1, -1 or all.
    #[arg(long, default_value = "all", allow_hyphen_values = true)]
    pub acks: String,
    /// Compression codec: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// Records per batch (per partition).
    #[arg(long = "batch-size", default_value_t = 200)]
    pub batch_size: usize,
    /// Longest time a record waits for its batch to fill, in milliseconds.
    #[arg(long = "linger-ms", default_value_t = 100)]
    pub linger_ms: u64,
    /// Request timeout in milliseconds.
    #[arg(long = "timeout-ms", default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Kafka client properties for a secured listener (`security.protocol`,
    /// `ssl.truststore.location`, `sasl.mechanism`, `sasl.jaas.config`), as
    /// Kafka's tools take them.
    #[arg(long = "command-config")]
    pub command_config: Option<std::path::PathBuf>,
}

/// Splits a line (its trailing newline removed) into key and value at the
/// first `separator`; without a separator (or when absent) the key is null.
pub fn split_line(line: &[u8], separator: Option<&[u8]>) -> (Option<Bytes>, Bytes) {
    let line = strip_newline(line);
    if let Some(sep) = separator.filter(|s| !s.is_empty()) {
        if let Some(at) = find(line, sep) {
            let key = Bytes::copy_from_slice(&line[..at]);
            let value = Bytes::copy_from_slice(&line[at + sep.len()..]);
            return (Some(key), value);
        }
    }
    (None, Bytes::copy_from_slice(line))
}

fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Records waiting for one partition's batch.
#[derive(Debug, Default)]
struct Pending {
    records: Vec<ProducerRecord>,
    bytes: usize,
}

/// The settings and counters of one produce run.
struct Producer {
    client: Client,
    topic: String,
    acks: Acks,
    compression: Compression,
    batch_size: usize,
    pending: BTreeMap<i32, Pending>,
    sent: u64,
    failed: u64,
}

impl Producer {
    fn add(&mut self, partition: i32, record: ProducerRecord) -> Result<(), ClientError> {
        let size =
            record.key.as_ref().map_or(0, Bytes::len) + record.value.as_ref().map_or(0, Bytes::len);
        let pending = self.pending.entry(partition).or_default();
        pending.records.push(record);
        pending.bytes += size + 16;
        if pending.records.len() >= self.batch_size || pending.bytes >= BATCH_BYTES_MAX {
            self.flush(Some(partition))?;
        }
        Ok(())
    }

    fn has_pending(&self) -> bool {
        self.pending.values().any(|p| !p.records.is_empty())
    }

    /// Sends one partition's batch, or every pending batch.
    fn flush(&mut self, only: Option<i32>) -> Result<(), ClientError> {
        let taken: Vec<(i32, Pending)> = match only {
            Some(p) => self
                .pending
                .remove(&p)
                .map(|b| vec![(p, b)])
                .unwrap_or_default(),
            None => std::mem::take(&mut self.pending).into_iter().collect(),
        };
        let now_ms = now_ms();
        let mut batches = Vec::with_capacity(taken.len());
        let mut counts = BTreeMap::new();
        for (partition, pending) in taken.into_iter().filter(|(_, p)| !p.records.is_empty()) {
            batches.push((
                partition,
                encode_batch(&pending.records, self.compression, now_ms)?,
            ));
            counts.insert(partition, pending.records.len() as u64);
        }
        if batches.is_empty() {
            return Ok(());
        }
        for outcome in self.client.produce(&self.topic, batches, self.acks) {
            let n = counts.get(&outcome.partition).copied().unwrap_or(0);
            match outcome.result {
                Ok(_) => self.sent += n,
                Err(e) => {
                    eprintln!(
                        "tidemark: {}-{}: {n} records failed: {e}",
                        self.topic, outcome.partition
                    );
                    self.failed += n;
                }
            }
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Reads stdin lines on a helper thread; the channel closes at end of input.
fn spawn_stdin_reader() -> Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::sync_channel(LINE_QUEUE_MAX);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        loop {
            let mut line = Vec::new();
            match input.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    if tx.send(Ok(line)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    break;
                }
            }
        }
    });
    rx
}

/// Runs `produce`.
pub fn run(args: ProduceArgs) -> Result<(), ClientError> {
    let acks = Acks::parse(&args.acks)?;
    let compression = parse_compression(&args.compression)?;
    if args.batch_size == 0 {
        return Err(ClientError::InvalidArgument(
            "--batch-size must be at least 1".to_owned(),
        ));
    }
    let config = super::client_config(
        &args.bootstrap_server,
        args.timeout_ms,
        args.command_config.as_deref(),
    )?;
    let mut client = Client::connect(config)?;
    // Like the Java producer, let the broker auto-create the topic if it may.
    let partition_count = client.topic(&args.topic, true)?.partition_count();
    if partition_count < 1 {
        return Err(ClientError::Metadata(format!(
            "topic {} has no partitions",
            args.topic
        )));
    }
    if let Some(p) = args.partition {
        if !(0..partition_count).contains(&p) {
            return Err(ClientError::InvalidArgument(format!(
                "partition {p} does not exist ({} has {partition_count})",
                args.topic
            )));
        }
    }
    let mut producer = Producer {
        client,
        topic: args.topic.clone(),
        acks,
        compression,
        batch_size: args.batch_size,
        pending: BTreeMap::new(),
        sent: 0,
        failed: 0,
    };
    let separator = args.key_separator.as_deref().map(str::as_bytes);
    let lines = spawn_stdin_reader();
    let outcome = pump(
        &mut producer,
        &lines,
        separator,
        args.partition,
        partition_count,
        args.linger_ms,
    );
    let flushed = producer.flush(None);
    let total = producer.sent + producer.failed;
    eprintln!("{} records sent to {}", producer.sent, producer.topic);
    outcome?;
    flushed?;
    if producer.failed > 0 {
        return Err(ClientError::ProduceFailed {
            failed: producer.failed,
            total,
        });
    }
    Ok(())
}

/// Moves lines from stdin into batches until end of input, flushing a
/// partially filled batch once it has waited `linger_ms`.
fn pump(
    producer: &mut Producer,
    lines: &Receiver<std::io::Result<Vec<u8>>>,
    separator: Option<&[u8]>,
    partition: Option<i32>,
    partition_count: i32,
    linger_ms: u64,
) -> Result<(), ClientError> {
    let linger = Duration::from_millis(linger_ms);
    let mut partitioner = Partitioner::new();
    let mut flush_at: Option<Instant> = None;
    loop {
        let wait = flush_at.map_or(Duration::from_secs(3600), |t| {
            t.saturating_duration_since(Instant::now())
        });
        match lines.recv_timeout(wait) {
            Ok(Ok(line)) => {
                let (key, value) = split_line(&line, separator);
                let p = partitioner.choose(partition, key.as_deref(), partition_count);
                producer.add(
                    p,
                    ProducerRecord {
                        key,
                        value: Some(value),
                    },
                )?;
                if !producer.has_pending() {
                    flush_at = None;
                } else if flush_at.is_none() {
                    flush_at = Some(Instant::now() + linger);
                }
            }
            Ok(Err(e)) => return Err(ClientError::io("reading standard input", e)),
            Err(RecvTimeoutError::Timeout) => {
                if flush_at.is_some() {
                    producer.flush(None)?;
                    flush_at = None;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_at_first_separator() {
        let (k, v) = split_line(b"user1:hello:world\n", Some(b":"));
        assert_eq!(k.as_deref(), Some(&b"user1"[..]));
        assert_eq!(&v[..], b"hello:world");
    }

    #[test]
    fn multi_byte_separator_and_crlf() {
        let (k, v) = split_line(b"a::b\r\n", Some(b"::"));
        assert_eq!(k.as_deref(), Some(&b"a"[..]));
        assert_eq!(&v[..], b"b");
        let (k, v) = split_line(b"\tx\n", Some(b"\t"));
        assert_eq!(k.as_deref(), Some(&b""[..]));
        assert_eq!(&v[..], b"x");
    }

    #[test]
    fn no_separator_means_null_key() {
        let (k, v) = split_line(b"plain line\n", Some(b","));
        assert_eq!(k, None);
        assert_eq!(&v[..], b"plain line");
        let (k, v) = split_line(b"k,v", None);
        assert_eq!(k, None);
        assert_eq!(&v[..], b"k,v");
        let (k, v) = split_line(b"\n", None);
        assert_eq!(k, None);
        assert!(v.is_empty());
    }
}
