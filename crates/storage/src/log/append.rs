//! Appends to a [`PartitionLog`], on the shard that owns the log: offsets
//! assigned by patching the batch header, the idempotent producer's checks
//! (duplicates, sequence gaps, fenced epochs) in the same synchronous step,
//! and a follower's appends of its leader's batches. An append only queues
//! the batch and puts it in the cache; `flush` writes it.
use super::{PartitionLog, PendingBatch};
use crate::producer_state::{BatchMeta, ProducerBatch, SequenceCheck};
use crate::StorageError;
use bytes::Bytes;
use wire::batch::{BatchHeader, HeaderStamp};

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    pub base_offset: u64,
    /// Offset after the batch's last record.
    pub end_offset: u64,
    pub log_start_offset: u64,
    /// The stored batch's `maxTimestamp` (for a duplicate, the original's):
    /// the broker's append time on a LogAppendTime topic.
    pub max_timestamp: i64,
}

/// What `append` did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Queued for writing at these offsets.
    Appended(AppendResult),
    /// A producer's retry of a batch already in the log (or queued): nothing
    /// was stored, and these are the original batch's offsets. The answer
    /// still waits until the original is written, as Kafka's delayed produce
    /// waits for the original's offsets.
    Duplicate(AppendResult),
}

impl AppendOutcome {
    pub fn result(&self) -> &AppendResult {
        match self {
            AppendOutcome::Appended(r) | AppendOutcome::Duplicate(r) => r,
        }
    }
}

impl PartitionLog {
    /// Assigns offsets to a validated batch and queues it for writing, unless
    /// its producer state refuses it or finds it a duplicate. `header` is the
    /// batch as it is to be stored: its attributes, `maxTimestamp` and CRC
    /// win over those of `batch` (a LogAppendTime stamp, written in with the
    /// offsets). The caller then awaits `wait_written(outcome.result().end_offset, ...)`.
    pub fn append(
        &self,
        batch: &Bytes,
        header: &BatchHeader,
        leader_epoch: i32,
    ) -> Result<AppendOutcome, StorageError> {
        self.append_slice(batch, header, leader_epoch, true)
    }

    /// `append`, saying whether `batch` shares its buffer with other
    /// partitions' batches (a produce request with several partitions): the
    /// cache then takes its own copy once the batch is written, so it does
    /// not keep the whole request in memory.
    pub fn append_slice(
        &self,
        batch: &Bytes,
        header: &BatchHeader,
        leader_epoch: i32,
        shares_buffer: bool,
    ) -> Result<AppendOutcome, StorageError> {
        let mut st = self.state.borrow_mut();
        st.check_usable()?;
        if let Some(disk) = &self.options.disk_space {
            if !disk.reserve(batch.len()) {
                return Err(StorageError::DiskFull {
                    free_min_bytes: disk.free_min_bytes(),
                });
            }
        }
        let producer = ProducerBatch::of(header);
        if let Some(p) = &producer {
            if let SequenceCheck::Duplicate(original) = st.producers.check(p)? {
                return Ok(AppendOutcome::Duplicate(AppendResult {
                    base_offset: original.base_offset,
                    end_offset: original.last_offset + 1,
                    log_start_offset: st.log_start_offset,
                    max_timestamp: original.max_timestamp,
                }));
            }
        }
        let base_offset = st.next_offset;
        let end_offset = base_offset + header.last_offset_delta as u64 + 1;
        if st.epochs.assign(leader_epoch, base_offset) {
            // Written off the shard before the batch that opens the epoch.
            st.epochs_unsaved = true;
        }
        // No copy here: the offsets are written into the batch as it is copied
        // into the DMA buffer, and into the cache's copy when it is first read.
        let bytes = batch.clone();
        let mut header = *header;
        header.base_offset = base_offset as i64;
        header.leader_epoch = leader_epoch;
        if let Some(p) = &producer {
            st.producers.record(p, BatchMeta::of(p, &header));
        }
        st.cache.push_slice(
            base_offset,
            end_offset - 1,
            leader_epoch,
            Some(HeaderStamp::of(&header)),
            bytes.clone(),
            shares_buffer,
        );
        let max_timestamp = header.max_timestamp;
        st.pending.push_back(PendingBatch { header, bytes });
        st.next_offset = end_offset;
        st.assert_offsets_ordered();
        Ok(AppendOutcome::Appended(AppendResult {
            base_offset,
            end_offset,
            log_start_offset: st.log_start_offset,
            max_timestamp,
        }))
    }

    /// A new leader's epoch begins at the log end, before it writes (as
    /// Kafka's `Partition.makeLeader` assigns it): a follower whose latest
    /// epoch is newer than any this log wrote (an epoch whose leader wrote
    /// only what never reached here) is then told where that epoch's
    /// records stop matching, instead of "undefined", which would leave the
    /// follower its divergent records up to its own high watermark. The
    /// checkpoint is written with the next write; an epoch that wrote
    /// nothing before a crash is not needed after it.
    pub fn begin_leader_epoch(&self, leader_epoch: i32) {
        let mut st = self.state.borrow_mut();
        let start = st.next_offset;
        if st.epochs.assign(leader_epoch, start) {
            st.epochs_unsaved = true;
        }
    }

    /// Forgets epochs that start at the log end and so wrote nothing here:
    /// a follower's truncation that cuts nothing still does this (as
    /// Kafka's `truncateTo` past the log end does), because the epoch this
    /// broker began as a leader without writing would otherwise be taken
    /// for the epoch of the older records the new leader sends next.
    pub fn forget_epochs_without_records(&self) {
        let mut st = self.state.borrow_mut();
        let end = st.next_offset;
        if st.epochs.truncate_from_end(end) {
            st.epochs_unsaved = true;
        }
    }

    /// Queues a batch a follower fetched from its leader: its offsets and
    /// leader epoch are the leader's and must continue this log exactly.
    /// Producer state and the epoch cache follow it as they would on the leader.
    pub fn append_replicated(
        &self,
        batch: &Bytes,
        header: &BatchHeader,
    ) -> Result<AppendResult, StorageError> {
        let mut st = self.state.borrow_mut();
        st.check_usable()?;
        let base_offset = header.base_offset.max(0) as u64;
        if base_offset < st.next_offset {
            return Err(StorageError::NonContiguousReplica {
                expected: st.next_offset,
                got: header.base_offset,
            });
        }
        let end_offset = header.last_offset() as u64 + 1;
        if st.epochs.assign(header.leader_epoch, base_offset) {
            // Written off the shard before the batch that opens the epoch.
            st.epochs_unsaved = true;
        }
        st.producers.replay(header);
        // The batch is a slice of the whole fetch answer: the cache copies it
        // once written, so it does not pin the answer.
        let epoch = header.leader_epoch;
        st.cache.push_slice(
            base_offset,
            end_offset - 1,
            epoch,
            None,
            batch.clone(),
            true,
        );
        st.pending.push_back(PendingBatch {
            header: *header,
            bytes: batch.clone(),
        });
        st.next_offset = end_offset;
        st.assert_offsets_ordered();
        Ok(AppendResult {
            base_offset,
            end_offset,
            log_start_offset: st.log_start_offset,
            max_timestamp: header.max_timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::testing::*;
    use kafka_protocol::records::Compression;
    use model::topic_config::TopicConfig;
    use wire::batch::validate_producer_batch;
    use wire::testing::sample_batch;

    /// Every batch of `from` as a follower would fetch it, with its header.
    async fn fetched_batches(from: &PartitionLog) -> Vec<(Bytes, BatchHeader)> {
        let records = from.read(0, 1 << 20, true).await.unwrap().records;
        let mut batches = Vec::new();
        let mut at = 0;
        while at < records.len() {
            let header = BatchHeader::parse(&records[at..]).unwrap();
            batches.push((records.slice(at..at + header.size), header));
            at += header.size;
        }
        batches
    }

    /// A leader at epoch 4 that has not written yet answers a follower's
    /// epoch 3 (which it never had) with where its own epoch 0 ends, not
    /// with "undefined".
    #[test]
    fn a_new_leader_epoch_starts_at_the_log_end_before_any_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let log = open(&path, small_segments()).await;
            fill_at_epoch(&log, 2, 0).await; // offsets 0..6 at epoch 0
            assert_eq!(log.end_offset_for_epoch(3), (-1, -1));
            log.begin_leader_epoch(4);
            assert_eq!(log.latest_epoch(), Some(4));
            assert_eq!(log.end_offset_for_epoch(3), (0, 6));
            assert_eq!(log.end_offset_for_epoch(4), (4, 6));
            // An older epoch than the latest changes nothing.
            log.begin_leader_epoch(2);
            assert_eq!(log.latest_epoch(), Some(4));
            fill_at_epoch(&log, 1, 4).await;
            assert_eq!(log.end_offset_for_epoch(3), (0, 6));
            assert_eq!(log.end_offset_for_epoch(4), (4, 9));
        });
    }

    /// A leader of epoch 5 that wrote nothing, now a follower: the epoch
    /// goes, and epoch 4's entry (which has records) stays.
    #[test]
    fn epochs_that_wrote_nothing_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let log = open(&path, small_segments()).await;
            fill_at_epoch(&log, 1, 4).await;
            log.begin_leader_epoch(5);
            log.forget_epochs_without_records();
            assert_eq!(log.latest_epoch(), Some(4));
            log.forget_epochs_without_records();
            assert_eq!(log.latest_epoch(), Some(4));
            assert_eq!(log.end_offset_for_epoch(4), (4, 3));
        });
    }

    #[test]
    fn a_stamped_batch_is_served_and_stored_with_its_stamp() {
        use wire::batch::stamp_batch;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let log = open(&path, small_segments()).await;
            fill(&log, 1).await; // offsets 0..3, records at 1000..1003
            let batch = Bytes::from(sample_batch(3, Compression::None));
            let header = validate_producer_batch(&batch).unwrap();
            let stamped = stamp_batch(&batch, &header, true, 5_000);
            let result = *log.append(&batch, &stamped, 0).unwrap().result();
            assert_eq!(result.max_timestamp, 5_000);
            log.wait_written(result.end_offset, true).await.unwrap();
            let check = |records: Bytes| {
                let mut at = 0;
                let mut last = None;
                while at < records.len() {
                    let h = validate_producer_batch(
                        &records[at..at + BatchHeader::parse(&records[at..]).unwrap().size],
                    )
                    .expect("every batch served keeps a valid CRC");
                    at += h.size;
                    last = Some(h);
                }
                let last = last.expect("the stamped batch");
                assert!(last.is_log_append_time());
                assert_eq!((last.base_offset, last.max_timestamp), (3, 5_000));
            };
            check(log.read(0, 1 << 20, true).await.unwrap().records);
            // Every record of a LogAppendTime batch has the batch's time.
            assert_eq!(
                log.offset_for_timestamp(1_500).await.unwrap(),
                Some((5_000, 3))
            );
            assert_eq!(log.max_timestamp(), Some(5_000));
            log.close().await.unwrap();
            drop(log);
            let log = open(&path, small_segments()).await;
            check(log.read(0, 1 << 20, true).await.unwrap().records);
            assert_eq!(
                log.offset_for_timestamp(1_500).await.unwrap(),
                Some((5_000, 3))
            );
        });
    }

    #[test]
    fn a_follower_log_copies_the_leaders_offsets_and_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let (leader_path, follower_path) = (dir.path().join("l-0"), dir.path().join("f-0"));
        run(move || async move {
            let leader = open(&leader_path, small_segments()).await;
            fill_at_epoch(&leader, 3, 5).await;
            fill_at_epoch(&leader, 2, 7).await;
            let follower = open(&follower_path, small_segments()).await;
            let mut end = 0;
            for (bytes, header) in fetched_batches(&leader).await {
                end = follower
                    .append_replicated(&bytes, &header)
                    .unwrap()
                    .end_offset;
            }
            follower.wait_written(end, true).await.unwrap();
            assert_eq!(follower.log_end_offset(), 15);
            assert_eq!(read_all(&follower, 0).await, (0..15).collect::<Vec<_>>());
            assert_eq!(follower.end_offset_for_epoch(5), (5, 9));
            assert_eq!(follower.latest_epoch(), Some(7));
            // A batch the follower already has is refused.
            let (bytes, header) = fetched_batches(&leader).await.remove(1);
            assert!(matches!(
                follower.append_replicated(&bytes, &header),
                Err(StorageError::NonContiguousReplica {
                    expected: 15,
                    got: 3
                })
            ));
        });
    }

    #[test]
    fn duplicates_gaps_and_old_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let log = open(&path, TopicConfig::default()).await;
            fill(&log, 1).await; // offsets 0..3 without a producer
            assert_eq!(appended_at(send(&log, 5, 0, 0, 3)), 3);
            assert_eq!(appended_at(send(&log, 5, 0, 3, 2)), 6);
            // Retries of queued (not yet written) batches are duplicates.
            assert_eq!(duplicate_of(send(&log, 5, 0, 0, 3)), 3);
            let dup = send(&log, 5, 0, 3, 2).unwrap();
            assert_eq!(
                *dup.result(),
                AppendResult {
                    base_offset: 6,
                    end_offset: 8,
                    log_start_offset: 0,
                    max_timestamp: 1_001
                }
            );
            assert!(matches!(
                send(&log, 5, 0, 9, 1),
                Err(StorageError::OutOfOrderSequence {
                    expected: 5,
                    got: 9,
                    ..
                })
            ));
            assert!(matches!(
                send(&log, 6, 0, 1, 1),
                Err(StorageError::OutOfOrderSequence { expected: 0, .. })
            ));
            log.wait_written(8, true).await.unwrap();
            assert_eq!(duplicate_of(send(&log, 5, 0, 0, 3)), 3);
            assert_eq!(appended_at(send(&log, 5, 1, 0, 1)), 8);
            assert!(matches!(
                send(&log, 5, 0, 5, 1),
                Err(StorageError::InvalidProducerEpoch {
                    epoch: 0,
                    current: 1,
                    ..
                })
            ));
            log.wait_written(9, true).await.unwrap();
            assert_eq!(read_all(&log, 0).await, (0..9).collect::<Vec<_>>());
            log.close().await.unwrap();
        });
    }
}
