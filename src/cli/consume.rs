//! `tidemark consume TOPIC`: prints a topic's records to standard output, one
//! per line, in the manner of kafka-console-consumer (start at the end unless
//! told otherwise). Loops Fetch over the chosen partitions on the CLI's main
//! thread.

use std::io::{BufWriter, ErrorKind, Write};
use std::time::{Duration, Instant};

use clap::Args;

use crate::client::consumer::FetchedData;
use crate::client::error::is_stale_metadata;
use crate::client::{
    Client, ClientConfig, ClientError, ConsumerRecord, FetchOptions, FetchPosition, OffsetSpec,
};

/// Per-partition fetch size at first; doubled when a batch does not fit.
const PARTITION_FETCH_BYTES: i32 = 1024 * 1024;
/// The largest per-partition fetch size the consumer grows to.
const PARTITION_FETCH_BYTES_MAX: i32 = 64 * 1024 * 1024;
/// Pause after a round that failed with a retriable error.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);

/// Consume a topic to standard output.
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// The topic to consume.
    pub topic: String,
    /// The broker to bootstrap from (comma-separated list allowed).
    #[arg(short = 'b', long = "bootstrap-server", default_value = crate::client::DEFAULT_BOOTSTRAP)]
    pub bootstrap_server: String,
    /// Consume only this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Start at the earliest offset instead of the end.
    #[arg(long = "from-beginning", conflicts_with = "offset")]
    pub from_beginning: bool,
    /// Start offset: a number, `earliest` or `latest` (applies to every
    /// partition consumed).
    #[arg(long)]
    pub offset: Option<String>,
    /// Stop after this many records.
    #[arg(long = "max-messages")]
    pub max_messages: Option<u64>,
    /// Print the key before the value.
    #[arg(long = "print-key")]
    pub print_key: bool,
    /// What separates key and value with --print-key.
    #[arg(long = "key-separator", default_value = "\t")]
    pub key_separator: String,
    /// Stop when no record arrived for this long (default: run forever).
    #[arg(long = "idle-timeout-ms")]
    pub idle_timeout_ms: Option<u64>,
    /// How long the broker may hold a Fetch waiting for data, in milliseconds.
    #[arg(long = "max-wait-ms", default_value_t = 500)]
    pub max_wait_ms: i32,
    /// Request timeout in milliseconds.
    #[arg(long = "timeout-ms", default_value_t = 30_000)]
    pub timeout_ms: u64,
}

/// Where consumption starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Spec(OffsetSpec),
    Offset(i64),
}

/// Parses `--from-beginning` / `--offset`.
pub fn start_at(from_beginning: bool, offset: Option<&str>) -> Result<StartAt, ClientError> {
    if from_beginning {
        return Ok(StartAt::Spec(OffsetSpec::Earliest));
    }
    match offset.map(str::trim) {
        None | Some("latest") => Ok(StartAt::Spec(OffsetSpec::Latest)),
        Some("earliest") | Some("beginning") => Ok(StartAt::Spec(OffsetSpec::Earliest)),
        Some(n) => match n.parse::<i64>() {
            Ok(v) if v >= 0 => Ok(StartAt::Offset(v)),
            _ => Err(ClientError::InvalidArgument(format!(
                "--offset must be a non-negative number, earliest or latest, not '{n}'"
            ))),
        },
    }
}

/// Formats one record as a line: `value`, or `key SEP value` with keys.
pub fn format_record(record: &ConsumerRecord, print_key: Option<&[u8]>, out: &mut Vec<u8>) {
    if let Some(sep) = print_key {
        out.extend_from_slice(record.key.as_deref().unwrap_or(b"null"));
        out.extend_from_slice(sep);
    }
    out.extend_from_slice(record.value.as_deref().unwrap_or(b"null"));
    out.push(b'\n');
}

/// Runs `consume`.
pub fn run(args: ConsumeArgs) -> Result<(), ClientError> {
    let start = start_at(args.from_beginning, args.offset.as_deref())?;
    if args.max_wait_ms < 0 {
        return Err(ClientError::InvalidArgument(
            "--max-wait-ms must not be negative".to_owned(),
        ));
    }
    let config = ClientConfig::new(
        &args.bootstrap_server,
        Duration::from_millis(args.timeout_ms),
    );
    let mut client = Client::connect(config)?;
    let topic = client.topic(&args.topic, false)?;
    let partitions: Vec<i32> = match args.partition {
        Some(p) if topic.partition(p).is_none() => {
            return Err(ClientError::InvalidArgument(format!(
                "partition {p} does not exist ({} has {})",
                args.topic,
                topic.partition_count()
            )))
        }
        Some(p) => vec![p],
        None => topic.partitions.iter().map(|p| p.id).collect(),
    };
    let offsets = match start {
        StartAt::Spec(spec) => client.list_offsets(&args.topic, &partitions, spec)?,
        StartAt::Offset(n) => partitions.iter().map(|p| (*p, n)).collect(),
    };
    let mut positions: Vec<FetchPosition> = offsets
        .into_iter()
        .map(|(partition, offset)| FetchPosition {
            partition,
            offset,
            max_bytes: PARTITION_FETCH_BYTES,
        })
        .collect();
    let options = FetchOptions {
        max_wait_ms: args.max_wait_ms,
        ..FetchOptions::default()
    };
    let separator = args.print_key.then_some(args.key_separator.as_bytes());
    let mut session = Session {
        max_messages: args.max_messages,
        idle_timeout: args.idle_timeout_ms.map(Duration::from_millis),
        separator,
        printed: 0,
        last_record_at: Instant::now(),
    };
    let outcome = session.run(&mut client, &args.topic, &mut positions, &options);
    eprintln!("Processed a total of {} messages", session.printed);
    outcome
}

/// The state of one consume run.
struct Session<'a> {
    max_messages: Option<u64>,
    idle_timeout: Option<Duration>,
    separator: Option<&'a [u8]>,
    printed: u64,
    last_record_at: Instant,
}

impl Session<'_> {
    fn done(&self) -> bool {
        self.max_messages.is_some_and(|m| self.printed >= m)
            || self
                .idle_timeout
                .is_some_and(|t| self.last_record_at.elapsed() >= t)
    }

    fn run(
        &mut self,
        client: &mut Client,
        topic: &str,
        positions: &mut [FetchPosition],
        options: &FetchOptions,
    ) -> Result<(), ClientError> {
        let stdout = std::io::stdout();
        let mut out = BufWriter::new(stdout.lock());
        while !self.done() {
            let mut failed = false;
            let mut lines = Vec::new();
            for fetched in client.fetch(topic, positions, options) {
                let Some(position) = positions
                    .iter_mut()
                    .find(|p| p.partition == fetched.position.partition)
                else {
                    continue;
                };
                match fetched.result {
                    Ok(data) => self.take(position, data, &mut lines),
                    Err(e) if retriable(&e) => {
                        eprintln!("tidemark: {topic}-{}: {e} (retrying)", position.partition);
                        failed = true;
                    }
                    Err(e) => return Err(e),
                }
            }
            match out.write_all(&lines).and_then(|()| out.flush()) {
                Ok(()) => {}
                // A closed pipe (`| head`) ends the run quietly.
                Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(ClientError::io("writing standard output", e)),
            }
            if failed {
                std::thread::sleep(ERROR_BACKOFF);
            }
        }
        Ok(())
    }

    /// Formats a partition's new records and moves its position.
    fn take(&mut self, position: &mut FetchPosition, data: FetchedData, lines: &mut Vec<u8>) {
        let decoded = data.records;
        for record in &decoded.records {
            if self.max_messages.is_some_and(|m| self.printed >= m) {
                // Resume after the last record printed (for completeness).
                position.offset = record.offset;
                return;
            }
            format_record(record, self.separator, lines);
            self.printed += 1;
            self.last_record_at = Instant::now();
        }
        match decoded.next_offset {
            Some(next) => position.offset = next.max(position.offset),
            // Only a partial batch came back: it is larger than the fetch size.
            None if decoded.truncated => {
                position.max_bytes = position
                    .max_bytes
                    .saturating_mul(2)
                    .min(PARTITION_FETCH_BYTES_MAX);
            }
            None => {}
        }
    }
}

fn retriable(e: &ClientError) -> bool {
    match e {
        ClientError::Io { .. } => true,
        ClientError::Kafka { code, .. } => is_stale_metadata(*code),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn start_positions() {
        assert_eq!(
            start_at(false, None).expect("latest"),
            StartAt::Spec(OffsetSpec::Latest)
        );
        assert_eq!(
            start_at(true, None).expect("earliest"),
            StartAt::Spec(OffsetSpec::Earliest)
        );
        assert_eq!(start_at(false, Some("42")).expect("n"), StartAt::Offset(42));
        assert_eq!(
            start_at(false, Some("earliest")).expect("earliest"),
            StartAt::Spec(OffsetSpec::Earliest)
        );
        assert!(start_at(false, Some("-3")).is_err());
        assert!(start_at(false, Some("x")).is_err());
    }

    #[test]
    fn record_lines() {
        let r = ConsumerRecord {
            offset: 0,
            timestamp: 0,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
        };
        let mut out = Vec::new();
        format_record(&r, None, &mut out);
        format_record(&r, Some(b"\t"), &mut out);
        let no_key = ConsumerRecord {
            key: None,
            value: None,
            ..r
        };
        format_record(&no_key, Some(b":"), &mut out);
        assert_eq!(out, b"v\nk\tv\nnull:null\n");
    }

    #[test]
    fn max_messages_stops_mid_batch() {
        let records = (0..5)
            .map(|i| ConsumerRecord {
                offset: 10 + i,
                timestamp: 0,
                key: None,
                value: Some(Bytes::from(format!("{i}"))),
            })
            .collect();
        let data = FetchedData {
            high_watermark: 15,
            log_start_offset: 0,
            records: crate::client::DecodedRecords {
                records,
                next_offset: Some(15),
                truncated: false,
            },
        };
        let mut session = Session {
            max_messages: Some(3),
            idle_timeout: None,
            separator: None,
            printed: 0,
            last_record_at: Instant::now(),
        };
        let mut position = FetchPosition {
            partition: 0,
            offset: 10,
            max_bytes: 1,
        };
        let mut lines = Vec::new();
        session.take(&mut position, data, &mut lines);
        assert_eq!(lines, b"0\n1\n2\n");
        assert_eq!(position.offset, 13);
        assert!(session.done());
    }

    #[test]
    fn partial_only_grows_fetch_size() {
        let data = FetchedData {
            high_watermark: 15,
            log_start_offset: 0,
            records: crate::client::DecodedRecords {
                records: vec![],
                next_offset: None,
                truncated: true,
            },
        };
        let mut session = Session {
            max_messages: None,
            idle_timeout: None,
            separator: None,
            printed: 0,
            last_record_at: Instant::now(),
        };
        let mut position = FetchPosition {
            partition: 0,
            offset: 10,
            max_bytes: 1024,
        };
        session.take(&mut position, data, &mut Vec::new());
        assert_eq!(position.max_bytes, 2048);
        assert_eq!(position.offset, 10);
    }
}
