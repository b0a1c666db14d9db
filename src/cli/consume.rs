//! `tidemark consume TOPIC`: prints a topic's records to standard output, one
//! per line, in the manner of kafka-console-consumer (start at the end unless
//! told otherwise). Loops Fetch over the chosen partitions on the CLI's main
//! thread. With `--group` it consumes as a member of a consumer group: the
//! partitions the group assigns, from the group's committed offsets, which it
//! commits as it goes and when it stops (the heartbeat runs on a thread of
//! its own, see `client::group_member`).

use std::collections::BTreeMap;
use std::io::{BufWriter, ErrorKind, StdoutLock, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use client::consumer::FetchedData;
use client::error::is_stale_metadata;
use client::{
    Client, ClientError, ConsumerRecord, FetchOptions, FetchPosition, GroupMember,
    GroupMemberConfig, OffsetKey, OffsetSpec,
};

/// Per-partition fetch size at first; doubled when a batch does not fit.
const PARTITION_FETCH_BYTES: i32 = 1024 * 1024;
/// The largest per-partition fetch size the consumer grows to.
const PARTITION_FETCH_BYTES_MAX: i32 = 64 * 1024 * 1024;
/// Pause after a round that failed with a retriable error.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);
/// The longest pause between heartbeats of a group member.
const HEARTBEAT_INTERVAL_MAX: Duration = Duration::from_secs(3);
/// How long the coordinator waits for every member to join again.
const REBALANCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause of a group member that was assigned no partition.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Consume a topic to standard output.
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// The topic to consume.
    pub topic: String,
    /// The broker to bootstrap from (comma-separated list allowed).
    #[arg(short = 'b', long = "bootstrap-server", default_value = client::DEFAULT_BOOTSTRAP)]
    pub bootstrap_server: String,
    /// Consume only this partition.
    #[arg(long, conflicts_with = "group")]
    pub partition: Option<i32>,
    /// Start at the earliest offset instead of the end (with --group: where
    /// partitions without a committed offset start).
    #[arg(long = "from-beginning", conflicts_with = "offset")]
    pub from_beginning: bool,
    /// Start offset: a number, `earliest` or `latest` (applies to every
    /// partition consumed).
    #[arg(long, conflicts_with = "group")]
    pub offset: Option<String>,
    /// Consume as a member of this consumer group: the partitions the group
    /// assigns, from its committed offsets, committing as it goes.
    #[arg(long)]
    pub group: Option<String>,
    /// The group session timeout in milliseconds (with --group).
    #[arg(
        long = "session-timeout-ms",
        default_value_t = 10_000,
        requires = "group"
    )]
    pub session_timeout_ms: u64,
    /// How often consumed offsets are committed, in milliseconds (with --group).
    #[arg(
        long = "commit-interval-ms",
        default_value_t = 5_000,
        requires = "group"
    )]
    pub commit_interval_ms: u64,
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
    /// Kafka client properties for a secured listener (`security.protocol`,
    /// `ssl.truststore.location`, `sasl.mechanism`, `sasl.jaas.config`), as
    /// Kafka's tools take them.
    #[arg(long = "command-config")]
    pub command_config: Option<std::path::PathBuf>,
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

/// Raises a flag on SIGINT and SIGTERM (a second one ends the process).
fn stop_flag() -> Result<Arc<AtomicBool>, ClientError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, stop.clone())
            .and_then(|_| signal_hook::flag::register(signal, stop.clone()))
            .map_err(|e| ClientError::io("installing signal handlers", e))?;
    }
    Ok(stop)
}

/// Runs `consume`.
pub fn run(args: ConsumeArgs) -> Result<(), ClientError> {
    let start = start_at(args.from_beginning, args.offset.as_deref())?;
    if args.max_wait_ms < 0 {
        return Err(ClientError::InvalidArgument(
            "--max-wait-ms must not be negative".to_owned(),
        ));
    }
    let config = super::client_config(
        &args.bootstrap_server,
        args.timeout_ms,
        args.command_config.as_deref(),
    )?;
    let mut client = Client::connect(config)?;
    let topic = client.topic(&args.topic, false)?;
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
        stop: stop_flag()?,
    };
    let outcome = match &args.group {
        Some(group) => {
            let reset = match start {
                StartAt::Spec(spec) => spec,
                StartAt::Offset(_) => OffsetSpec::Latest,
            };
            let mut run = GroupRun::new(&args, group, reset);
            run.run(&mut session, &mut client, &options)
        }
        None => {
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
            let mut positions = positions_at(offsets);
            session.run(&mut client, &args.topic, &mut positions, &options)
        }
    };
    eprintln!("Processed a total of {} messages", session.printed);
    outcome
}

fn positions_at(offsets: Vec<(i32, i64)>) -> Vec<FetchPosition> {
    offsets
        .into_iter()
        .map(|(partition, offset)| FetchPosition {
            partition,
            offset,
            max_bytes: PARTITION_FETCH_BYTES,
        })
        .collect()
}

/// What one fetch round ended with.
#[derive(Debug, PartialEq, Eq)]
enum Round {
    /// Go on; these partitions' positions are out of range.
    Continue { out_of_range: Vec<i32> },
    /// Standard output was closed.
    OutputClosed,
}

/// The state of one consume run.
struct Session<'a> {
    max_messages: Option<u64>,
    idle_timeout: Option<Duration>,
    separator: Option<&'a [u8]>,
    printed: u64,
    last_record_at: Instant,
    /// Raised by SIGINT / SIGTERM.
    stop: Arc<AtomicBool>,
}

impl Session<'_> {
    fn done(&self) -> bool {
        self.max_messages.is_some_and(|m| self.printed >= m)
            || self
                .idle_timeout
                .is_some_and(|t| self.last_record_at.elapsed() >= t)
            || self.stop.load(Ordering::Relaxed)
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
            match self.round(client, topic, positions, options, &mut out, false)? {
                Round::OutputClosed => return Ok(()),
                Round::Continue { .. } => {}
            }
        }
        Ok(())
    }

    /// One Fetch over `positions`, its records written out. Out-of-range
    /// positions are an error unless `collect_out_of_range`, when they are
    /// returned for the caller to reset.
    fn round(
        &mut self,
        client: &mut Client,
        topic: &str,
        positions: &mut [FetchPosition],
        options: &FetchOptions,
        out: &mut BufWriter<StdoutLock<'_>>,
        collect_out_of_range: bool,
    ) -> Result<Round, ClientError> {
        let mut failed = false;
        let mut out_of_range = Vec::new();
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
                Err(ClientError::OffsetOutOfRange { partition, .. }) if collect_out_of_range => {
                    out_of_range.push(partition);
                }
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
            Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(Round::OutputClosed),
            Err(e) => return Err(ClientError::io("writing standard output", e)),
        }
        if failed {
            std::thread::sleep(ERROR_BACKOFF);
        }
        Ok(Round::Continue { out_of_range })
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

/// A `consume --group` run: the member, the positions of the partitions
/// it was assigned, and the offsets it last committed.
struct GroupRun {
    topic: String,
    group: String,
    member: GroupMember,
    /// Where partitions without a committed offset (or out of range) start.
    reset: OffsetSpec,
    commit_interval: Duration,
    positions: Vec<FetchPosition>,
    committed: BTreeMap<OffsetKey, i64>,
}

impl GroupRun {
    fn new(args: &ConsumeArgs, group: &str, reset: OffsetSpec) -> Self {
        let session_timeout = Duration::from_millis(args.session_timeout_ms);
        let config = GroupMemberConfig {
            group_id: group.to_owned(),
            topics: vec![args.topic.clone()],
            session_timeout,
            rebalance_timeout: REBALANCE_TIMEOUT,
            heartbeat_interval: (session_timeout / 3).min(HEARTBEAT_INTERVAL_MAX),
        };
        GroupRun {
            topic: args.topic.clone(),
            group: group.to_owned(),
            member: GroupMember::new(config),
            reset,
            commit_interval: Duration::from_millis(args.commit_interval_ms),
            positions: Vec::new(),
            committed: BTreeMap::new(),
        }
    }

    /// Consumes until the session is done, then commits what was printed and
    /// leaves the group, whatever ended the run.
    fn run(
        &mut self,
        session: &mut Session<'_>,
        client: &mut Client,
        options: &FetchOptions,
    ) -> Result<(), ClientError> {
        let outcome = self.consume(session, client, options);
        if let Err(e) = self.commit(client) {
            eprintln!("tidemark: committing offsets at exit: {e}");
        }
        if let Err(e) = self.member.leave(client) {
            eprintln!("tidemark: leaving group {}: {e}", self.group);
        }
        outcome
    }

    fn consume(
        &mut self,
        session: &mut Session<'_>,
        client: &mut Client,
        options: &FetchOptions,
    ) -> Result<(), ClientError> {
        self.join(client)?;
        let stdout = std::io::stdout();
        let mut out = BufWriter::new(stdout.lock());
        let mut last_commit = Instant::now();
        while !session.done() {
            if self.member.needs_rejoin() {
                // As Kafka's consumer does before a rebalance: commit, then join.
                if let Err(e) = self.commit(client) {
                    eprintln!("tidemark: committing offsets before joining again: {e}");
                }
                self.join(client)?;
                continue;
            }
            if self.positions.is_empty() {
                std::thread::sleep(IDLE_POLL);
                continue;
            }
            let topic = self.topic.clone();
            match session.round(client, &topic, &mut self.positions, options, &mut out, true)? {
                Round::OutputClosed => return Ok(()),
                Round::Continue { out_of_range } => self.reset_positions(client, &out_of_range)?,
            }
            if last_commit.elapsed() >= self.commit_interval {
                if let Err(e) = self.commit(client) {
                    eprintln!("tidemark: committing offsets: {e}");
                }
                last_commit = Instant::now();
            }
        }
        Ok(())
    }

    /// Joins the group and positions every assigned partition at its
    /// committed offset, or per the reset policy when it has none.
    fn join(&mut self, client: &mut Client) -> Result<(), ClientError> {
        let assignment = self.member.join(client)?.clone();
        let others: Vec<&String> = assignment.keys().filter(|t| **t != self.topic).collect();
        if !others.is_empty() {
            eprintln!("tidemark: ignoring the partitions of other topics assigned: {others:?}");
        }
        let partitions = assignment.get(&self.topic).cloned().unwrap_or_default();
        eprintln!(
            "tidemark: joined group {} (generation {}) with partitions {:?} of {}",
            self.group,
            self.member.generation_id(),
            partitions,
            self.topic
        );
        self.committed = if partitions.is_empty() {
            BTreeMap::new()
        } else {
            let asked = BTreeMap::from([(self.topic.clone(), partitions.clone())]);
            client.committed_offsets(&self.group, Some(&asked))?
        };
        let mut offsets: Vec<(i32, i64)> = Vec::with_capacity(partitions.len());
        let mut missing = Vec::new();
        for p in partitions {
            match self.committed.get(&(self.topic.clone(), p)) {
                Some(offset) => offsets.push((p, *offset)),
                None => missing.push(p),
            }
        }
        if !missing.is_empty() {
            offsets.extend(client.list_offsets(&self.topic, &missing, self.reset)?);
        }
        offsets.sort_unstable();
        self.positions = positions_at(offsets);
        Ok(())
    }

    /// Moves out-of-range positions per the reset policy.
    fn reset_positions(
        &mut self,
        client: &mut Client,
        partitions: &[i32],
    ) -> Result<(), ClientError> {
        if partitions.is_empty() {
            return Ok(());
        }
        for (partition, offset) in client.list_offsets(&self.topic, partitions, self.reset)? {
            eprintln!(
                "tidemark: {}-{partition}: offset out of range, resetting to {offset}",
                self.topic
            );
            if let Some(p) = self.positions.iter_mut().find(|p| p.partition == partition) {
                p.offset = offset;
            }
        }
        Ok(())
    }

    /// Commits the positions that moved since the last commit.
    fn commit(&mut self, client: &mut Client) -> Result<(), ClientError> {
        if self.member.member_id().is_empty() {
            return Ok(());
        }
        let changed = changed_offsets(&self.topic, &self.positions, &self.committed);
        if changed.is_empty() {
            return Ok(());
        }
        self.member.commit(client, &changed)?;
        self.committed.extend(changed);
        Ok(())
    }
}

/// The positions that differ from what was committed last.
fn changed_offsets(
    topic: &str,
    positions: &[FetchPosition],
    committed: &BTreeMap<OffsetKey, i64>,
) -> BTreeMap<OffsetKey, i64> {
    positions
        .iter()
        .map(|p| ((topic.to_owned(), p.partition), p.offset))
        .filter(|(key, offset)| committed.get(key) != Some(offset))
        .collect()
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
            records: client::DecodedRecords {
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
            stop: Arc::new(AtomicBool::new(false)),
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
    fn only_moved_positions_are_committed() {
        let positions = positions_at(vec![(0, 5), (1, 7), (2, 0)]);
        let committed = BTreeMap::from([(("t".to_string(), 0), 5), (("t".to_string(), 1), 3)]);
        let changed = changed_offsets("t", &positions, &committed);
        assert_eq!(
            changed,
            BTreeMap::from([(("t".to_string(), 1), 7), (("t".to_string(), 2), 0)])
        );
    }

    #[test]
    fn partial_only_grows_fetch_size() {
        let data = FetchedData {
            high_watermark: 15,
            log_start_offset: 0,
            records: client::DecodedRecords {
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
            stop: Arc::new(AtomicBool::new(false)),
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
