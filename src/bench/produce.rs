//! The bench's producers. Each producer is a writer thread that owns some
//! connections ("lanes") and sends prebuilt Produce frames on them in turn,
//! paced when a rate is set; each lane has a reader thread that reads the
//! responses in order, records per-request latency and counts errors by
//! Kafka error name. A lane holds at most `--max-in-flight` requests: the
//! writer takes a credit before each send and the reader returns it after
//! each response (two bounded channels). Blocking std::net sockets on the
//! CLI's threads, never a shard.

use std::collections::BTreeMap;
use std::io::{IoSlice, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::BytesMut;
use kafka_protocol::messages::ProduceRequest;

use super::batches::{build_batch, stamp_batch, FrameTemplate, PrebuiltBatch, RequestSpec};
use super::pacing::{records_per_batch, split_quota, Pacer};
use super::report::Stats;
use super::{plan_connections, BenchConfig, BenchError, ConnPlan, Limit, CLIENT_ID};
use client::conn::{decode_response, read_frame_into};
use client::{error_name, Acks, ClientError, Connection};

/// Distinct full batches per run (different values, same size).
const BATCH_VARIANTS: usize = 4;
/// Error name for a failed socket, as Kafka's clients report it.
const NETWORK_ERROR: &str = "NETWORK_EXCEPTION";
/// Error name for a response the client could not decode.
const DECODE_ERROR: &str = "CLIENT_DECODE_ERROR";

/// End-to-end stamping: the run's clock base and nonce.
#[derive(Debug, Clone, Copy)]
pub struct Stamping {
    pub base: Instant,
    pub nonce: u64,
}

impl Stamping {
    /// Nanoseconds from the clock base to `at`.
    pub fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A request in flight on a lane.
#[derive(Debug)]
struct Pending {
    correlation_id: i32,
    records: u64,
    value_bytes: u64,
    batch_bytes: u64,
    started: Instant,
}

/// One connection of a producer.
struct Lane {
    stream: TcpStream,
    peer: String,
    partitions: Vec<i32>,
    next_partition: usize,
    next_correlation_id: i32,
    /// `None` with acks=0 (no responses).
    flow: Option<Flow>,
}

/// The writer's side of a lane's pipeline.
struct Flow {
    pending: SyncSender<Pending>,
    credits: Receiver<()>,
    broken: Arc<AtomicBool>,
    reader: JoinHandle<()>,
}

/// What one writer thread sends.
struct ProducerPlan {
    quota: Option<u64>,
    deadline: Option<Instant>,
    pacer: Option<Pacer>,
    full: Arc<Vec<FrameTemplate>>,
    tail: Option<FrameTemplate>,
    stamping: Option<Stamping>,
}

/// Runs the producers to the end of the limit; returns the records per batch.
pub fn run(
    config: &BenchConfig,
    leaders: &BTreeMap<String, Vec<i32>>,
    stats: &Arc<Stats>,
) -> Result<u64, BenchError> {
    run_with(config, leaders, stats, None)
}

/// Runs the producers, stamping each batch's send time when `stamping` is set.
pub fn run_with(
    config: &BenchConfig,
    leaders: &BTreeMap<String, Vec<i32>>,
    stats: &Arc<Stats>,
    stamping: Option<Stamping>,
) -> Result<u64, BenchError> {
    let plans = plan_connections(leaders, config.connection_count(), true);
    if plans.is_empty() {
        return Err(BenchError::Setup(format!(
            "{} has no partition",
            config.topic
        )));
    }
    let (lanes, version) = open_lanes(config, &plans, stats)?;
    let rate = (config.rate > 0).then(|| config.rate as f64 / config.producers as f64);
    let n = records_per_batch(config.batch_bytes, config.record_size, rate, config.linger);
    let spec = RequestSpec {
        topic: config.topic.clone(),
        acks: config.acks,
        timeout_ms: i32::try_from(config.request_timeout.as_millis()).unwrap_or(i32::MAX),
        version,
        client_id: CLIENT_ID.to_owned(),
    };
    let full = Arc::new(
        (0..BATCH_VARIANTS)
            .map(|v| template(&spec, n, config, v as u64 + 1))
            .collect::<Result<Vec<_>, _>>()?,
    );
    let start = Instant::now();
    let deadline = match config.limit {
        Limit::Duration(d) => Some(start + d),
        _ => None,
    };
    let quotas: Vec<Option<u64>> = match config.limit {
        Limit::Records(total) => split_quota(total, config.producers)
            .into_iter()
            .map(Some)
            .collect(),
        _ => vec![None; config.producers],
    };
    let mut by_producer: Vec<Vec<Lane>> = (0..config.producers).map(|_| Vec::new()).collect();
    for (i, lane) in lanes.into_iter().enumerate() {
        by_producer[i % config.producers].push(lane);
    }
    let mut writers = Vec::with_capacity(config.producers);
    for (p, (lanes, quota)) in by_producer.into_iter().zip(quotas).enumerate() {
        let tail = match quota.map(|q| q % n) {
            Some(rest) if rest > 0 => Some(template(&spec, rest, config, 100 + p as u64)?),
            _ => None,
        };
        let plan = ProducerPlan {
            quota,
            deadline,
            pacer: rate.and_then(|r| Pacer::new(r, start)),
            full: Arc::clone(&full),
            tail,
            stamping,
        };
        let stats = Arc::clone(stats);
        let handle = std::thread::Builder::new()
            .name(format!("bench-producer-{p}"))
            .spawn(move || producer_loop(lanes, plan, &stats))
            .map_err(BenchError::Thread)?;
        writers.push(handle);
    }
    for handle in writers {
        handle.join().map_err(|_| BenchError::ThreadPanicked)?;
    }
    Ok(n)
}

fn template(
    spec: &RequestSpec,
    records: u64,
    config: &BenchConfig,
    seed: u64,
) -> Result<FrameTemplate, BenchError> {
    let batch: PrebuiltBatch = build_batch(records, config.record_size, config.compression, seed)?;
    FrameTemplate::new(spec, batch)
}

/// Opens every lane and picks one Produce version all their brokers accept.
fn open_lanes(
    config: &BenchConfig,
    plans: &[ConnPlan],
    stats: &Arc<Stats>,
) -> Result<(Vec<Lane>, i16), BenchError> {
    let mut opened = Vec::with_capacity(plans.len());
    for plan in plans {
        let conn = Connection::open(&plan.address, config.request_timeout, CLIENT_ID)?;
        let (stream, versions, next_correlation_id) = conn.into_parts()?;
        let version = versions.pick::<ProduceRequest>()?;
        let min = versions
            .range(<ProduceRequest as kafka_protocol::protocol::Request>::KEY)
            .map_or(0, |(min, _)| min);
        opened.push((plan, stream, version, min, next_correlation_id));
    }
    let version = opened.iter().map(|o| o.2).min().unwrap_or(3);
    if opened.iter().any(|o| o.3 > version) {
        return Err(BenchError::Setup(
            "the brokers share no Produce version".to_owned(),
        ));
    }
    let mut lanes = Vec::with_capacity(opened.len());
    for (plan, stream, _, _, next_correlation_id) in opened {
        let flow = match config.acks {
            Acks::None => None,
            _ => Some(start_reader(
                &stream,
                &plan.address,
                version,
                config,
                stats,
            )?),
        };
        lanes.push(Lane {
            stream,
            peer: plan.address.clone(),
            partitions: plan.partitions.clone(),
            next_partition: 0,
            next_correlation_id,
            flow,
        });
    }
    Ok((lanes, version))
}

fn start_reader(
    stream: &TcpStream,
    peer: &str,
    version: i16,
    config: &BenchConfig,
    stats: &Arc<Stats>,
) -> Result<Flow, BenchError> {
    let read_half = stream
        .try_clone()
        .map_err(|e| ClientError::io(format!("cloning the socket to {peer}"), e))?;
    let (pending_tx, pending_rx) = sync_channel::<Pending>(config.max_in_flight);
    let (credit_tx, credit_rx) = sync_channel::<()>(config.max_in_flight);
    for _ in 0..config.max_in_flight {
        // Cannot fail: the channel has room for every credit.
        let _ = credit_tx.try_send(());
    }
    let broken = Arc::new(AtomicBool::new(false));
    let reader = ReaderState {
        stream: read_half,
        peer: peer.to_owned(),
        version,
        stats: Arc::clone(stats),
        broken: Arc::clone(&broken),
    };
    let handle = std::thread::Builder::new()
        .name("bench-reader".into())
        .spawn(move || reader.run(&pending_rx, &credit_tx))
        .map_err(BenchError::Thread)?;
    Ok(Flow {
        pending: pending_tx,
        credits: credit_rx,
        broken,
        reader: handle,
    })
}

/// A lane's reader thread.
struct ReaderState {
    stream: TcpStream,
    peer: String,
    version: i16,
    stats: Arc<Stats>,
    broken: Arc<AtomicBool>,
}

impl ReaderState {
    /// Reads one response per pending request, in order, until the writer
    /// drops its sender. After a failure it only counts what is still pending.
    fn run(mut self, pending: &Receiver<Pending>, credits: &SyncSender<()>) {
        let mut buf = BytesMut::new();
        while let Ok(p) = pending.recv() {
            if self.broken.load(Ordering::Relaxed) {
                self.stats.error(NETWORK_ERROR, p.records);
            } else {
                self.read_one(&mut buf, &p);
            }
            // The writer may be gone; the channel has room for every credit.
            let _ = credits.try_send(());
        }
    }

    fn read_one(&mut self, buf: &mut BytesMut, p: &Pending) {
        match self.read_response(buf, p.correlation_id) {
            Ok(0) => {
                self.stats.record_produce(p.started.elapsed(), p.records);
                self.stats.acked(p.records, p.value_bytes, p.batch_bytes);
            }
            Ok(code) => self.stats.error(&error_name(code), p.records),
            Err(e) => {
                let name = match e {
                    ClientError::Io { .. } => NETWORK_ERROR,
                    _ => DECODE_ERROR,
                };
                if !self.broken.swap(true, Ordering::Relaxed) {
                    eprintln!("tidemark bench: connection to {} failed: {e}", self.peer);
                }
                let _ = self.stream.shutdown(Shutdown::Both);
                self.stats.error(name, p.records);
            }
        }
    }

    /// Reads a Produce response; returns its (first) partition error code.
    fn read_response(
        &mut self,
        buf: &mut BytesMut,
        correlation_id: i32,
    ) -> Result<i16, ClientError> {
        let frame = read_frame_into(&mut self.stream, &self.peer, buf)?;
        let response = decode_response::<ProduceRequest>(frame, self.version, correlation_id)?;
        let partition = response
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or_else(|| ClientError::Protocol("Produce response without a partition".into()))?;
        Ok(partition.error_code)
    }
}

/// Reusable buffers of a writer thread.
#[derive(Default)]
struct Scratch {
    head: Vec<u8>,
    stamped: Vec<u8>,
}

/// Sends batches until the quota is sent, the deadline passes or every lane
/// failed; then closes the lanes and waits for their readers.
fn producer_loop(mut lanes: Vec<Lane>, plan: ProducerPlan, stats: &Stats) {
    let mut scratch = Scratch::default();
    let mut sent: u64 = 0;
    let mut turn: usize = 0;
    let mut alive = vec![true; lanes.len()];
    loop {
        let remaining = plan.quota.map(|q| q.saturating_sub(sent));
        if remaining == Some(0) || plan.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let template = match (&plan.tail, remaining) {
            (Some(tail), Some(left)) if left < plan.full[0].batch.records => tail,
            _ => &plan.full[turn % plan.full.len()],
        };
        let records = template.batch.records;
        let due = plan.pacer.map(|p| {
            Pacer::wait_until(p.due_at(sent + records - 1));
            p.due_at(sent)
        });
        let Some(index) = next_alive(&alive, turn) else {
            break;
        };
        turn = turn.wrapping_add(1);
        match lanes[index].send(template, due, plan.stamping, &mut scratch, stats) {
            Ok(()) => sent += records,
            Err(e) => {
                // A request already queued is counted failed by the reader;
                // this batch goes to the next live lane.
                alive[index] = false;
                lanes[index].close();
                if lanes[index].flow.is_none() {
                    stats.error(NETWORK_ERROR, records);
                }
                eprintln!(
                    "tidemark bench: producer lane to {} stopped: {e}",
                    lanes[index].peer
                );
            }
        }
    }
    for lane in lanes {
        lane.finish();
    }
}

/// The first live lane at or after `turn` (round robin).
fn next_alive(alive: &[bool], turn: usize) -> Option<usize> {
    let n = alive.len();
    (0..n).map(|k| (turn + k) % n).find(|&i| alive[i])
}

impl Lane {
    /// Sends one request: takes a credit, queues the pending entry for the
    /// reader, then writes head, batch and tail with one vectored write.
    fn send(
        &mut self,
        template: &FrameTemplate,
        due: Option<Instant>,
        stamping: Option<Stamping>,
        scratch: &mut Scratch,
        stats: &Stats,
    ) -> Result<(), BenchError> {
        let partition = self.partitions[self.next_partition % self.partitions.len()];
        self.next_partition = self.next_partition.wrapping_add(1);
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1).max(1);
        template.head_into(partition, correlation_id, &mut scratch.head)?;
        let batch = &template.batch;
        // Paced runs count latency from when the batch was due (so a stalled
        // broker is not hidden by the generator waiting for it).
        let granted = self.take_credit()?;
        let started = due.unwrap_or(granted);
        let body: &[u8] = match stamping {
            Some(s) => {
                stamp_batch(batch, s.ns(started), s.nonce, &mut scratch.stamped)?;
                &scratch.stamped
            }
            None => &batch.bytes,
        };
        if let Some(flow) = &self.flow {
            let pending = Pending {
                correlation_id,
                records: batch.records,
                value_bytes: batch.value_bytes,
                batch_bytes: batch.bytes.len() as u64,
                started,
            };
            flow.pending
                .send(pending)
                .map_err(|_| BenchError::Setup(format!("reader of {} stopped", self.peer)))?;
        }
        write_all_parts(&mut self.stream, &[&scratch.head, body, template.tail()])
            .map_err(|e| ClientError::io(format!("writing to {}", self.peer), e))?;
        stats
            .sent_records
            .fetch_add(batch.records, Ordering::Relaxed);
        if self.flow.is_none() {
            stats.acked(batch.records, batch.value_bytes, batch.bytes.len() as u64);
        }
        Ok(())
    }

    /// Waits for room in the pipeline; returns when it was granted.
    fn take_credit(&self) -> Result<Instant, BenchError> {
        if let Some(flow) = &self.flow {
            if flow.broken.load(Ordering::Relaxed) {
                return Err(BenchError::Setup(format!(
                    "connection to {} failed",
                    self.peer
                )));
            }
            flow.credits
                .recv()
                .map_err(|_| BenchError::Setup(format!("reader of {} stopped", self.peer)))?;
        }
        Ok(Instant::now())
    }

    /// Marks the lane failed so its reader stops reading.
    fn close(&self) {
        if let Some(flow) = &self.flow {
            flow.broken.store(true, Ordering::Relaxed);
        }
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Drops the sender (the reader drains what is pending) and joins it.
    fn finish(self) {
        if let Some(flow) = self.flow {
            drop(flow.pending);
            drop(flow.credits);
            // A panicked reader already lost its counts; nothing to add.
            let _ = flow.reader.join();
        }
    }
}

/// Writes every part, in order, with vectored writes (one syscall when the
/// socket takes it all). Each round writes at least one byte or fails.
fn write_all_parts(stream: &mut TcpStream, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut rest: &mut [IoSlice<'_>] = &mut slices;
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        match stream.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn round_robin_skips_dead_lanes() {
        assert_eq!(next_alive(&[true, false, true], 1), Some(2));
        assert_eq!(next_alive(&[true, false, true], 3), Some(0));
        assert_eq!(next_alive(&[false, false], 0), None);
    }

    #[test]
    fn vectored_write_sends_every_part_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let big = vec![7u8; 4 << 20];
        let expected: Vec<u8> = [&b"head"[..], &big, &b"tail"[..]].concat();
        let reader = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut got = Vec::new();
            s.read_to_end(&mut got).expect("read");
            got
        });
        let mut stream = TcpStream::connect(addr).expect("connect");
        write_all_parts(&mut stream, &[b"head", &big, b"tail"]).expect("write");
        drop(stream);
        assert_eq!(reader.join().expect("reader"), expected);
    }

    #[test]
    fn stamping_counts_from_the_base() {
        let base = Instant::now();
        let s = Stamping { base, nonce: 1 };
        assert_eq!(s.ns(base), 0);
        assert_eq!(s.ns(base + std::time::Duration::from_micros(3)), 3_000);
    }
}
