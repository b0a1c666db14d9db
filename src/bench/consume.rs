//! The bench's consumers: one thread per connection, each fetching its
//! partitions from their leader with Fetch (max_wait 500 ms, min_bytes 1,
//! large max_bytes) and counting records and bytes from the batch headers
//! only. In end-to-end runs they also read the send time stamped in each
//! batch's first record. Blocking std::net sockets on the CLI's threads,
//! never a shard.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::batches::read_stamp;
use super::produce::Stamping;
use super::report::Stats;
use super::{offsets, plan_connections, BenchConfig, BenchError, Limit, CLIENT_ID};
use client::conn::{decode_response, encode_request, read_frame_into};
use client::consumer::fetch_request;
use client::records::{for_each_batch, scan_batches};
use client::{
    error_name, Client, ClientError, Connection, FetchOptions, FetchPosition, OffsetSpec,
};

/// Fetch long poll: what a throughput consumer asks for.
const FETCH_MAX_WAIT_MS: i32 = 500;
const FETCH_MAX_BYTES: i32 = 64 * 1024 * 1024;
const PARTITION_MAX_BYTES: i32 = 16 * 1024 * 1024;
/// A consumer that receives nothing for this long stops.
pub const IDLE_MAX: Duration = Duration::from_secs(10);
/// Pause after a partition error, so a failing broker is not hammered.
const ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Offset of the base offset and record count in a batch.
const RECORD_COUNT_AT: usize = 57;

/// Where consumers start and when they stop.
#[derive(Debug)]
pub struct ConsumePlan {
    pub topic: String,
    pub start: BTreeMap<i32, i64>,
    /// Stop each partition at this offset (backlog runs).
    pub end: Option<BTreeMap<i32, i64>>,
    /// Stop once this many records were consumed in all.
    pub records: Option<u64>,
    pub deadline: Option<Instant>,
    /// Set by the caller to stop (e2e, once the producers are done).
    pub stop: AtomicBool,
    pub stamping: Option<Stamping>,
    pub request_timeout: Duration,
}

/// `tidemark bench consume`: reads from the earliest offsets.
pub fn run_mode(
    config: &BenchConfig,
    client: &mut Client,
    leaders: &BTreeMap<String, Vec<i32>>,
    stats: &Arc<Stats>,
) -> Result<u64, BenchError> {
    let start = offsets(client, &config.topic, leaders, OffsetSpec::Earliest)?;
    let end = match config.limit {
        Limit::Backlog => Some(offsets(client, &config.topic, leaders, OffsetSpec::Latest)?),
        _ => None,
    };
    let plan = Arc::new(ConsumePlan {
        topic: config.topic.clone(),
        start,
        end,
        records: match config.limit {
            Limit::Records(n) => Some(n),
            _ => None,
        },
        deadline: match config.limit {
            Limit::Duration(d) => Some(Instant::now() + d),
            _ => None,
        },
        stop: AtomicBool::new(false),
        stamping: None,
        request_timeout: config.request_timeout,
    });
    let handles = spawn(config, leaders, &plan, stats)?;
    join(handles)?;
    Ok(0)
}

/// Opens one connection per plan and starts its consumer thread.
pub fn spawn(
    config: &BenchConfig,
    leaders: &BTreeMap<String, Vec<i32>>,
    plan: &Arc<ConsumePlan>,
    stats: &Arc<Stats>,
) -> Result<Vec<JoinHandle<Result<(), BenchError>>>, BenchError> {
    let conns = plan_connections(leaders, config.connections.max(1), false);
    let mut handles = Vec::with_capacity(conns.len());
    for (i, conn_plan) in conns.into_iter().enumerate() {
        let conn = Connection::open(&conn_plan.address, config.request_timeout, CLIENT_ID)?;
        let fetcher = Fetcher::new(conn, &conn_plan.partitions, plan, stats)?;
        let handle = std::thread::Builder::new()
            .name(format!("bench-consumer-{i}"))
            .spawn(move || fetcher.run())
            .map_err(BenchError::Thread)?;
        handles.push(handle);
    }
    Ok(handles)
}

/// Waits for every consumer thread; the first error wins.
pub fn join(handles: Vec<JoinHandle<Result<(), BenchError>>>) -> Result<(), BenchError> {
    let mut first = Ok(());
    for handle in handles {
        let result = handle.join().map_err(|_| BenchError::ThreadPanicked)?;
        if first.is_ok() {
            first = result;
        }
    }
    first
}

/// One consumer connection and its partitions' positions.
struct Fetcher {
    stream: TcpStream,
    peer: String,
    version: i16,
    next_correlation_id: i32,
    positions: Vec<FetchPosition>,
    plan: Arc<ConsumePlan>,
    stats: Arc<Stats>,
    buf: BytesMut,
}

impl Fetcher {
    fn new(
        conn: Connection,
        partitions: &[i32],
        plan: &Arc<ConsumePlan>,
        stats: &Arc<Stats>,
    ) -> Result<Fetcher, BenchError> {
        let wait = Duration::from_millis(FETCH_MAX_WAIT_MS as u64);
        conn.set_timeout(plan.request_timeout + wait)?;
        let peer = conn.peer().to_owned();
        let (stream, versions, next_correlation_id) = conn.into_parts()?;
        let version = versions.pick::<FetchRequest>()?;
        let positions = partitions
            .iter()
            .map(|p| FetchPosition {
                partition: *p,
                offset: plan.start.get(p).copied().unwrap_or(0),
                max_bytes: PARTITION_MAX_BYTES,
            })
            .filter(|pos| !reached_end(&plan.end, pos))
            .collect();
        Ok(Fetcher {
            stream,
            peer,
            version,
            next_correlation_id,
            positions,
            plan: Arc::clone(plan),
            stats: Arc::clone(stats),
            buf: BytesMut::new(),
        })
    }

    /// Fetches until every partition reached its end, the record count or
    /// the deadline is reached, the caller stops it, or nothing came for
    /// [`IDLE_MAX`].
    fn run(mut self) -> Result<(), BenchError> {
        let mut last_data = Instant::now();
        while !self.positions.is_empty() && !self.should_stop() {
            let records = self.fetch_once()?;
            if records > 0 {
                last_data = Instant::now();
            } else if last_data.elapsed() > IDLE_MAX {
                eprintln!(
                    "tidemark bench: consumer of {} received nothing for {} s, stopping",
                    self.peer,
                    IDLE_MAX.as_secs()
                );
                break;
            }
        }
        Ok(())
    }

    fn should_stop(&self) -> bool {
        let plan = &self.plan;
        plan.stop.load(Ordering::Relaxed)
            || plan.deadline.is_some_and(|d| Instant::now() >= d)
            || plan
                .records
                .is_some_and(|n| self.stats.consumed_records.load(Ordering::Relaxed) >= n)
    }

    /// One Fetch round trip; returns the records it brought.
    fn fetch_once(&mut self) -> Result<u64, BenchError> {
        let options = FetchOptions {
            max_wait_ms: FETCH_MAX_WAIT_MS,
            min_bytes: 1,
            max_bytes: FETCH_MAX_BYTES,
        };
        let request = fetch_request(&self.plan.topic, &self.positions, &options);
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1).max(1);
        let frame = encode_request(&request, self.version, correlation_id, CLIENT_ID)?;
        self.stream
            .write_all(&frame)
            .map_err(|e| ClientError::io(format!("writing to {}", self.peer), e))?;
        let frame = read_frame_into(&mut self.stream, &self.peer, &mut self.buf)?;
        let response = decode_response::<FetchRequest>(frame, self.version, correlation_id)?;
        self.absorb(response)
    }

    /// Counts what a Fetch response brought and moves the positions.
    fn absorb(&mut self, response: FetchResponse) -> Result<u64, BenchError> {
        if response.error_code != 0 {
            self.stats.error(&error_name(response.error_code), 0);
            std::thread::sleep(ERROR_BACKOFF);
            return Ok(0);
        }
        let mut total = 0;
        for topic in response.responses {
            for data in topic.partitions {
                let Some(i) = self
                    .positions
                    .iter()
                    .position(|p| p.partition == data.partition_index)
                else {
                    continue;
                };
                if data.error_code != 0 {
                    self.stats.error(&error_name(data.error_code), 0);
                    std::thread::sleep(ERROR_BACKOFF);
                    continue;
                }
                if let Some(records) = data.records {
                    total += self.count(i, &records)?;
                }
            }
        }
        let end = &self.plan.end;
        self.positions.retain(|p| !reached_end(end, p));
        Ok(total)
    }

    /// Counts one partition's records (headers only), reads e2e stamps, and
    /// moves its position past the whole batches.
    fn count(&mut self, i: usize, records: &Bytes) -> Result<u64, BenchError> {
        let offset = self.positions[i].offset;
        let scan = scan_batches(records, offset)?;
        if let Some(stamping) = self.plan.stamping {
            self.record_stamps(records, offset, stamping)?;
        }
        if let Some(next) = scan.next_offset {
            self.positions[i].offset = next.max(offset);
        }
        self.stats
            .consumed_records
            .fetch_add(scan.records, Ordering::Relaxed);
        self.stats
            .consumed_bytes
            .fetch_add(scan.bytes, Ordering::Relaxed);
        Ok(scan.records)
    }

    fn record_stamps(
        &self,
        records: &Bytes,
        offset: i64,
        stamping: Stamping,
    ) -> Result<(), BenchError> {
        let now_ns = stamping.ns(Instant::now());
        for_each_batch(records, |batch| {
            let base = i64::from_be_bytes(batch[..8].try_into().unwrap_or([0; 8]));
            if base < offset {
                return Ok(());
            }
            if let Some(sent_ns) = read_stamp(&batch, stamping.nonce) {
                let count = batch
                    .get(RECORD_COUNT_AT..RECORD_COUNT_AT + 4)
                    .and_then(|b| b.try_into().ok())
                    .map_or(1, |b: [u8; 4]| u64::from(u32::from_be_bytes(b)));
                let latency = Duration::from_nanos(now_ns.saturating_sub(sent_ns));
                self.stats.record_e2e(latency, count);
            }
            Ok(())
        })?;
        Ok(())
    }
}

/// Whether a position is at or past its partition's end offset.
fn reached_end(end: &Option<BTreeMap<i32, i64>>, position: &FetchPosition) -> bool {
    end.as_ref()
        .and_then(|e| e.get(&position.partition))
        .is_some_and(|&end| position.offset >= end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offsets_stop_partitions() {
        let pos = |partition, offset| FetchPosition {
            partition,
            offset,
            max_bytes: 1,
        };
        let end = Some(BTreeMap::from([(0, 10), (1, 0)]));
        assert!(!reached_end(&end, &pos(0, 9)));
        assert!(reached_end(&end, &pos(0, 10)));
        assert!(reached_end(&end, &pos(1, 0)));
        assert!(!reached_end(&end, &pos(2, 100)));
        assert!(!reached_end(&None, &pos(0, 100)));
    }
}
