//! What the log's tests share (test builds only): an executor to run them
//! on, a log opened in a temporary directory (each with a read-ahead budget
//! of its own unless a test passes one to share), batches appended and read
//! back.
use super::{AppendOutcome, LogOptions, PartitionLog};
use crate::readahead::{ReadAheadBudget, SHARD_BUDGET_BYTES};
use crate::StorageError;
use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use model::topic_config::{FlushPolicy, TopicConfig};
use std::path::Path;
use std::rc::Rc;
use wire::batch::validate_producer_batch;
use wire::testing::{producer_batch, sample_batch};

pub(super) fn run<F: std::future::Future<Output = ()> + 'static>(
    test: impl FnOnce() -> F + Send + 'static,
) {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move { test().await })
        .expect("executor")
        .join()
        .expect("test executor");
}

pub(super) fn options() -> LogOptions {
    LogOptions {
        disk_space: None,
        index_interval_bytes: 256,
        cache_bytes: 2048,
        flush_policy: FlushPolicy::AcksAll,
        writes_in_flight: 4,
        read_ahead: Rc::new(ReadAheadBudget::new(SHARD_BUDGET_BYTES)),
    }
}

pub(super) fn small_segments() -> TopicConfig {
    TopicConfig {
        segment_bytes: 4000,
        ..TopicConfig::default()
    }
}

pub(super) async fn open(dir: &Path, config: TopicConfig) -> Rc<PartitionLog> {
    open_with(dir, config, options()).await
}

/// `open` with other options (a read-ahead budget shared with other logs).
pub(super) async fn open_with(
    dir: &Path,
    config: TopicConfig,
    options: LogOptions,
) -> Rc<PartitionLog> {
    crate::probe_dma(dir.parent().unwrap()).await.unwrap();
    PartitionLog::open(dir, "t", 0, config, options)
        .await
        .unwrap()
}

/// Appends `batches` batches of 3 records and waits for them to be synced.
pub(super) async fn fill(log: &PartitionLog, batches: usize) {
    fill_at_epoch(log, batches, 0).await;
}

/// `fill` by a leader of `leader_epoch`.
pub(super) async fn fill_at_epoch(log: &PartitionLog, batches: usize, leader_epoch: i32) {
    let mut end = 0;
    for _ in 0..batches {
        let batch = Bytes::from(sample_batch(3, Compression::None));
        let header = validate_producer_batch(&batch).unwrap();
        end = log
            .append(&batch, &header, leader_epoch)
            .unwrap()
            .result()
            .end_offset;
    }
    log.wait_written(end, true).await.unwrap();
}

/// Offsets of the records in a fetched byte range.
pub(super) fn offsets(records: &Bytes) -> Vec<i64> {
    let mut buf = records.clone();
    RecordBatchDecoder::decode_all(&mut buf)
        .unwrap()
        .iter()
        .flat_map(|s| s.records.iter().map(|r| r.offset))
        .collect()
}

/// Reads the whole log from `from`, batch run after batch run.
pub(super) async fn read_all(log: &PartitionLog, from: i64) -> Vec<i64> {
    let mut all = Vec::new();
    let mut next = from;
    while (next as u64) < log.high_watermark() {
        let r = log.read(next, 700, true).await.unwrap();
        let got = offsets(&r.records);
        assert!(!got.is_empty(), "no progress at {next}");
        all.extend(got.iter().filter(|&&o| o >= next));
        next = *got.last().unwrap() + 1;
    }
    all
}

/// Appends a batch of `n` records from producer `id` at `epoch`, `seq`.
pub(super) fn send(
    log: &PartitionLog,
    id: i64,
    epoch: i16,
    seq: i32,
    n: usize,
) -> Result<AppendOutcome, StorageError> {
    let batch = Bytes::from(producer_batch(n, id, epoch, seq));
    let header = validate_producer_batch(&batch).unwrap();
    log.append(&batch, &header, 0)
}

pub(super) fn appended_at(outcome: Result<AppendOutcome, StorageError>) -> u64 {
    match outcome {
        Ok(AppendOutcome::Appended(r)) => r.base_offset,
        other => panic!("expected an append, got {other:?}"),
    }
}

pub(super) fn duplicate_of(outcome: Result<AppendOutcome, StorageError>) -> u64 {
    match outcome {
        Ok(AppendOutcome::Duplicate(r)) => r.base_offset,
        other => panic!("expected a duplicate, got {other:?}"),
    }
}

/// Producer 9 sends `batches` batches of 3 records, sequences 0, 3, 6...
pub(super) async fn produce_in_sequence(log: &PartitionLog, batches: i32) {
    for i in 0..batches {
        let base = appended_at(send(log, 9, 0, i * 3, 3));
        assert_eq!(base, log.state.borrow().next_offset - 3);
    }
    let end = log.state.borrow().next_offset;
    log.wait_written(end, true).await.unwrap();
}
