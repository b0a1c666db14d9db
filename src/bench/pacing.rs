//! Pacing of the bench's producers: when each batch is due at a target rate,
//! and how many records a batch holds given `--batch-size` and `--linger-ms`.
//! Pure arithmetic plus a sleep; runs on the bench's producer threads (CLI
//! threads, never a shard).

use std::time::{Duration, Instant};

/// Estimated framing bytes per record in a v2 batch (length, attributes,
/// timestamp and offset deltas, key and value lengths, header count), used
/// to turn `--batch-size` bytes into a record count.
pub const RECORD_OVERHEAD_BYTES: usize = 12;

/// The most records one prebuilt batch holds.
pub const RECORDS_PER_BATCH_MAX: u64 = 1 << 20;

/// A schedule at a fixed rate of records per second, from a start instant.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    start: Instant,
    records_per_sec: f64,
}

impl Pacer {
    /// A pacer at `records_per_sec` (`None` when the rate is 0: unlimited).
    pub fn new(records_per_sec: f64, start: Instant) -> Option<Pacer> {
        (records_per_sec > 0.0 && records_per_sec.is_finite()).then_some(Pacer {
            start,
            records_per_sec,
        })
    }

    /// When the record numbered `records_before` (from 0) is due.
    pub fn due_at(&self, records_before: u64) -> Instant {
        self.start + Duration::from_secs_f64(records_before as f64 / self.records_per_sec)
    }

    /// Sleeps until `due` (returns at once when it is past).
    pub fn wait_until(due: Instant) {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

/// Records per batch: as many as `batch_bytes` holds (framing included), at
/// least one; when paced, no more than arrive in one linger period (a real
/// producer sends a batch when it is full or its linger expires).
pub fn records_per_batch(
    batch_bytes: usize,
    record_size: usize,
    paced_records_per_sec: Option<f64>,
    linger: Duration,
) -> u64 {
    let by_size = (batch_bytes / (record_size + RECORD_OVERHEAD_BYTES)).max(1) as u64;
    let by_size = by_size.min(RECORDS_PER_BATCH_MAX);
    match paced_records_per_sec {
        Some(rate) if rate > 0.0 => {
            let by_linger = (rate * linger.as_secs_f64()).floor();
            let by_linger = if by_linger.is_finite() && by_linger >= 1.0 {
                by_linger as u64
            } else {
                1
            };
            by_size.min(by_linger)
        }
        _ => by_size,
    }
}

/// Splits `total` records between `workers` (the first ones get one more).
pub fn split_quota(total: u64, workers: usize) -> Vec<u64> {
    let workers = workers.max(1) as u64;
    (0..workers)
        .map(|i| total / workers + u64::from(i < total % workers))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_follow_the_rate() {
        let start = Instant::now();
        let pacer = Pacer::new(10_000.0, start).expect("paced");
        assert_eq!(pacer.due_at(0), start);
        assert_eq!(pacer.due_at(10_000), start + Duration::from_secs(1));
        assert_eq!(pacer.due_at(25), start + Duration::from_micros(2_500));
        assert!(Pacer::new(0.0, start).is_none());
        assert!(Pacer::new(f64::NAN, start).is_none());
    }

    #[test]
    fn wait_until_past_returns_at_once() {
        let before = Instant::now();
        Pacer::wait_until(before - Duration::from_millis(5));
        assert!(before.elapsed() < Duration::from_millis(50));
        let due = Instant::now() + Duration::from_millis(5);
        Pacer::wait_until(due);
        assert!(Instant::now() >= due);
    }

    #[test]
    fn batch_sizes() {
        // 1 MB of 1 KiB records.
        assert_eq!(
            records_per_batch(1_000_000, 1024, None, Duration::ZERO),
            965
        );
        // A record larger than the batch still makes a batch of one.
        assert_eq!(records_per_batch(100, 1024, None, Duration::ZERO), 1);
        // Paced at 10,000/s with linger 5 ms: 50 records per batch.
        let linger = Duration::from_millis(5);
        assert_eq!(
            records_per_batch(1_000_000, 1024, Some(10_000.0), linger),
            50
        );
        // Linger 0: every record is sent alone.
        assert_eq!(
            records_per_batch(1_000_000, 1024, Some(10_000.0), Duration::ZERO),
            1
        );
        // A fast rate is capped by the size.
        assert_eq!(
            records_per_batch(10_000, 100, Some(1e9), Duration::from_secs(1)),
            89
        );
    }

    #[test]
    fn quotas_add_up() {
        assert_eq!(split_quota(10, 3), vec![4, 3, 3]);
        assert_eq!(split_quota(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(split_quota(7, 0), vec![7]);
        assert_eq!(split_quota(20_000, 2).iter().sum::<u64>(), 20_000);
    }
}
