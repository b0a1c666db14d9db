//! What the bench measures and how it reports it: shared counters, HDR
//! latency histograms (microseconds), errors by Kafka error name, the live
//! progress line on stderr, the broker's CPU time from /proc, and the final
//! summary (text or one JSON object). Runs on the bench's CLI threads (the
//! producers' readers, the consumers, the progress thread), never on a shard.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency recorded: one hour, in microseconds (larger values
/// are clamped to it).
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Significant decimal digits kept by the histograms.
const LATENCY_DIGITS: u8 = 3;
/// Distinct error names kept; further names are counted under `OTHER`.
const ERROR_NAMES_MAX: usize = 64;
/// How often the progress line is printed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// How often the progress thread checks whether the run is over.
const PROGRESS_POLL: Duration = Duration::from_millis(50);

/// A latency histogram in microseconds, 1 us .. 1 h, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_DIGITS) {
        Ok(h) => h,
        // The bounds are constants that hdrhistogram accepts.
        Err(e) => unreachable!("histogram bounds rejected: {e}"),
    }
}

/// Records `count` samples of `latency` (clamped to the histogram's range).
pub fn record_latency(h: &mut Histogram<u64>, latency: Duration, count: u64) {
    let us = u64::try_from(latency.as_micros()).unwrap_or(LATENCY_US_MAX);
    let us = us.clamp(1, LATENCY_US_MAX);
    // Cannot fail: the value is within bounds and counts saturate.
    let _ = h.record_n(us, count.max(1));
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counters shared by every thread of one run.
#[derive(Debug)]
pub struct Stats {
    /// Records written to sockets by producers.
    pub sent_records: AtomicU64,
    /// Records acknowledged without error (written, with acks=0).
    pub acked_records: AtomicU64,
    /// Value bytes of the acknowledged records.
    pub acked_value_bytes: AtomicU64,
    /// Batch bytes (as on the wire) of the acknowledged records.
    pub acked_batch_bytes: AtomicU64,
    /// Records whose request failed.
    pub failed_records: AtomicU64,
    /// Records consumed (at or after the start offsets).
    pub consumed_records: AtomicU64,
    /// Batch bytes consumed.
    pub consumed_bytes: AtomicU64,
    /// Set when the run is over (stops the progress line and consumers).
    pub done: AtomicBool,
    produce_latency: Mutex<Histogram<u64>>,
    e2e_latency: Mutex<Histogram<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            sent_records: AtomicU64::new(0),
            acked_records: AtomicU64::new(0),
            acked_value_bytes: AtomicU64::new(0),
            acked_batch_bytes: AtomicU64::new(0),
            failed_records: AtomicU64::new(0),
            consumed_records: AtomicU64::new(0),
            consumed_bytes: AtomicU64::new(0),
            done: AtomicBool::new(false),
            produce_latency: Mutex::new(new_histogram()),
            e2e_latency: Mutex::new(new_histogram()),
            errors: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Stats {
    /// Counts one failed request (or partition) under a Kafka error name.
    pub fn error(&self, name: &str, records: u64) {
        self.failed_records.fetch_add(records, Ordering::Relaxed);
        let mut errors = lock(&self.errors);
        let key = if errors.contains_key(name) || errors.len() < ERROR_NAMES_MAX {
            name
        } else {
            "OTHER"
        };
        *errors.entry(key.to_owned()).or_insert(0) += 1;
    }

    /// Records the acknowledgement of a produce request.
    pub fn acked(&self, records: u64, value_bytes: u64, batch_bytes: u64) {
        self.acked_records.fetch_add(records, Ordering::Relaxed);
        self.acked_value_bytes
            .fetch_add(value_bytes, Ordering::Relaxed);
        self.acked_batch_bytes
            .fetch_add(batch_bytes, Ordering::Relaxed);
    }

    /// Merges a thread's produce latencies (send or due time to response).
    pub fn add_produce_latency(&self, h: &Histogram<u64>) {
        let _ = lock(&self.produce_latency).add(h);
    }

    /// Records one end-to-end latency sample for `count` records.
    pub fn record_e2e(&self, latency: Duration, count: u64) {
        record_latency(&mut lock(&self.e2e_latency), latency, count);
    }

    /// Records one produce latency sample for `count` records.
    pub fn record_produce(&self, latency: Duration, count: u64) {
        record_latency(&mut lock(&self.produce_latency), latency, count);
    }

    /// Errors by name so far.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        lock(&self.errors).clone()
    }

    /// Total failed requests so far.
    pub fn error_count(&self) -> u64 {
        lock(&self.errors).values().sum()
    }

    fn p99_us(&self, e2e: bool) -> Option<u64> {
        let h = if e2e {
            lock(&self.e2e_latency)
        } else {
            lock(&self.produce_latency)
        };
        (!h.is_empty()).then(|| h.value_at_quantile(0.99))
    }

    /// The latency summary of produce requests, if any was measured.
    pub fn produce_latency(&self) -> Option<Latency> {
        Latency::from_histogram(&lock(&self.produce_latency))
    }

    /// The end-to-end latency summary, if any was measured.
    pub fn e2e_latency(&self) -> Option<Latency> {
        Latency::from_histogram(&lock(&self.e2e_latency))
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latency {
    /// The summary of a histogram (`None` when it is empty).
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        Some(Latency {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        })
    }
}

/// The broker's CPU time (user + system) in seconds, from /proc/PID/stat.
pub fn broker_cpu_seconds(pid: u32) -> std::io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = parse_cpu_ticks(&stat).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected stat format")
    })?;
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_sec = if per_sec > 0 { per_sec as f64 } else { 100.0 };
    Ok(ticks as f64 / per_sec)
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line. The command
/// name (field 2) may hold spaces and parentheses: fields are counted after
/// its last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The end-of-run report.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub mode: &'static str,
    pub topic: String,
    pub partitions: i32,
    pub record_size: usize,
    pub records_per_batch: u64,
    pub acks: &'static str,
    pub compression: String,
    pub elapsed_s: f64,
    /// Records this mode moved: acknowledged (produce, e2e) or consumed.
    pub records: u64,
    pub records_sent: u64,
    pub records_consumed: u64,
    /// Value bytes acknowledged (produce, e2e).
    pub value_bytes: u64,
    /// Batch bytes acknowledged (produce) or consumed (consume).
    pub batch_bytes: u64,
    pub records_per_s: f64,
    /// Megabytes (10^6) per second: of record values when producing, of
    /// batches (what the log holds) when consuming.
    pub mb_per_s: f64,
    pub latency_us: Option<Latency>,
    pub e2e_latency_us: Option<Latency>,
    pub errors: BTreeMap<String, u64>,
    pub error_count: u64,
    pub broker_cpu_s: Option<f64>,
    pub broker_cpu_s_per_gb: Option<f64>,
}

impl Summary {
    /// One JSON object on one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} {}: {} records in {:.2} s: {:.0} records/s, {:.1} MB/s\n",
            self.mode, self.topic, self.records, self.elapsed_s, self.records_per_s, self.mb_per_s
        );
        if self.mode != "consume" {
            out += &format!(
                "  sent {} records ({} B each, {} per batch), acks={}, compression={}\n",
                self.records_sent,
                self.record_size,
                self.records_per_batch,
                self.acks,
                self.compression
            );
        }
        if self.mode != "produce" {
            out += &format!(
                "  consumed {} records, {} batch bytes\n",
                self.records_consumed, self.batch_bytes
            );
        }
        for (name, latency) in [
            ("produce latency", self.latency_us),
            ("end-to-end latency", self.e2e_latency_us),
        ] {
            if let Some(l) = latency {
                out += &format!(
                    "  {name} (us): p50 {} p90 {} p99 {} p99.9 {} max {} (mean {:.0}, {} samples)\n",
                    l.p50, l.p90, l.p99, l.p999, l.max, l.mean, l.count
                );
            }
        }
        if let (Some(cpu), Some(per_gb)) = (self.broker_cpu_s, self.broker_cpu_s_per_gb) {
            out += &format!("  broker CPU: {cpu:.2} s, {per_gb:.3} CPU-s per GB\n");
        }
        if self.errors.is_empty() {
            out += "  errors: none\n";
        } else {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k} x{v}"))
                .collect();
            out += &format!("  errors: {}\n", list.join(", "));
        }
        out
    }
}

/// Megabytes (10^6 bytes) per second.
pub fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    per_s(bytes, elapsed) / 1e6
}

/// A count per second (0 for an empty interval).
pub fn per_s(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// Prints a progress line on stderr every second until `stats.done` is set.
/// `consuming` picks the consumed counters; `e2e` the end-to-end p99.
pub fn progress_loop(stats: &Stats, consuming: bool, e2e: bool, value_bytes_per_record: u64) {
    let terminal = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut last = (start, 0u64, 0u64);
    let mut next = start + PROGRESS_INTERVAL;
    while !stats.done.load(Ordering::Relaxed) {
        std::thread::sleep(PROGRESS_POLL);
        let now = Instant::now();
        if now < next {
            continue;
        }
        next += PROGRESS_INTERVAL;
        let (records, bytes) = if consuming {
            (
                stats.consumed_records.load(Ordering::Relaxed),
                stats.consumed_bytes.load(Ordering::Relaxed),
            )
        } else {
            let r = stats.acked_records.load(Ordering::Relaxed);
            (r, r.saturating_mul(value_bytes_per_record))
        };
        let interval = now - last.0;
        let p99 = stats
            .p99_us(e2e)
            .map_or_else(|| "-".to_owned(), |us| format!("{:.2} ms", us as f64 / 1e3));
        let line = format!(
            "[{:>4.0}s] {:>10.0} records/s {:>9.1} MB/s  total {} records  p99 {}  errors {}",
            (now - start).as_secs_f64(),
            per_s(records - last.1, interval),
            mb_per_s(bytes - last.2, interval),
            records,
            p99,
            stats.error_count()
        );
        if terminal {
            eprint!("\r{line}   ");
        } else {
            eprintln!("{line}");
        }
        last = (now, records, bytes);
    }
    if terminal {
        eprintln!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_from_known_samples() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            record_latency(&mut h, Duration::from_micros(us), 1);
        }
        let l = Latency::from_histogram(&h).expect("samples");
        assert_eq!(l.count, 1000);
        assert_eq!(l.min, 1);
        assert_eq!(l.p50, 500);
        assert_eq!(l.p90, 900);
        assert_eq!(l.p99, 990);
        assert_eq!(l.p999, 999);
        assert_eq!(l.max, 1000);
        assert!(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
        assert!(Latency::from_histogram(&new_histogram()).is_none());
    }

    #[test]
    fn weighted_and_clamped_samples() {
        let mut h = new_histogram();
        record_latency(&mut h, Duration::from_nanos(10), 99);
        record_latency(&mut h, Duration::from_secs(7200), 1);
        let l = Latency::from_histogram(&h).expect("samples");
        assert_eq!(l.count, 100);
        assert_eq!(l.p50, 1);
        assert!(l.max >= LATENCY_US_MAX && l.max <= LATENCY_US_MAX + LATENCY_US_MAX / 1000);
    }

    #[test]
    fn errors_by_name_bounded() {
        let stats = Stats::default();
        stats.error("NOT_LEADER_OR_FOLLOWER", 10);
        stats.error("NOT_LEADER_OR_FOLLOWER", 5);
        for i in 0..100 {
            stats.error(&format!("E{i}"), 1);
        }
        let errors = stats.errors();
        assert_eq!(errors.get("NOT_LEADER_OR_FOLLOWER"), Some(&2));
        assert!(errors.len() <= ERROR_NAMES_MAX + 1);
        assert!(errors.contains_key("OTHER"));
        assert_eq!(stats.error_count(), 102);
        assert_eq!(stats.failed_records.load(Ordering::Relaxed), 115);
    }

    #[test]
    fn proc_stat_parsing() {
        let stat = "1234 (tide mark) (x)) S 1 1234 1234 0 -1 4194560 500 0 0 0 \
                    250 75 0 0 20 0 3 0 100 1000 200";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        let own = broker_cpu_seconds(std::process::id()).expect("own stat");
        assert!(own >= 0.0);
    }

    #[test]
    fn json_summary_has_every_field() {
        let mut h = new_histogram();
        record_latency(&mut h, Duration::from_micros(800), 10);
        let summary = Summary {
            mode: "produce",
            topic: "t".to_owned(),
            partitions: 1,
            record_size: 100,
            records_per_batch: 10,
            acks: "1",
            compression: "none".to_owned(),
            elapsed_s: 2.0,
            records: 20_000,
            records_sent: 20_000,
            records_consumed: 0,
            value_bytes: 2_000_000,
            batch_bytes: 2_200_000,
            records_per_s: 10_000.0,
            mb_per_s: 1.0,
            latency_us: Latency::from_histogram(&h),
            e2e_latency_us: None,
            errors: BTreeMap::from([("REQUEST_TIMED_OUT".to_owned(), 1)]),
            error_count: 1,
            broker_cpu_s: Some(0.5),
            broker_cpu_s_per_gb: Some(0.25),
        };
        let v: serde_json::Value = serde_json::from_str(&summary.to_json()).expect("json");
        for key in [
            "mode",
            "records",
            "records_sent",
            "records_consumed",
            "records_per_s",
            "mb_per_s",
            "elapsed_s",
            "errors",
            "error_count",
            "broker_cpu_s_per_gb",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["records_sent"], 20_000);
        assert_eq!(v["latency_us"]["p99"], 800);
        assert!(v["e2e_latency_us"].is_null());
        assert_eq!(v["errors"]["REQUEST_TIMED_OUT"], 1);
        assert!(summary.to_text().contains("REQUEST_TIMED_OUT x1"));
    }
}
