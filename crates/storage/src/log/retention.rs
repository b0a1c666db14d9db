//! Retention and compaction of a [`PartitionLog`], on the shard that owns
//! the log: whole sealed segments deleted past `retention.ms` or
//! `retention.bytes` or below the log start offset, DeleteRecords moving the
//! log start, and compaction of a `cleanup.policy=compact` log (the rewrite
//! on the blocking thread pool, the swap of the cleaned files on the shard).
use super::PartitionLog;
use crate::cleaner::{clean_segments, cleaned_path, CleanedSegment, SealedSegment};
use crate::off_shard::write_off_shard;
use crate::recovery::{checkpoint_file, remove_segment_files, segment_path, LOG_START_FILE};
use crate::segment::Segment;
use crate::{now_ms, StorageError};
use wire::records::decompressed_bytes_max;

impl PartitionLog {
    /// DeleteRecords: moves the log start to `offset` (-1: the high
    /// watermark) and drops segments wholly below it. Returns the new start.
    pub async fn delete_records_before(&self, offset: i64) -> Result<u64, StorageError> {
        let new_start = {
            let mut st = self.state.borrow_mut();
            st.check_usable()?;
            let target = if offset == -1 {
                st.visible_end()
            } else if offset < 0 || offset as u64 > st.visible_end() {
                return Err(st.out_of_range(offset));
            } else {
                offset as u64
            };
            st.log_start_offset = st.log_start_offset.max(target);
            let start = st.log_start_offset;
            st.cache.evict_below(start);
            start
        };
        write_off_shard(vec![checkpoint_file(&self.dir, LOG_START_FILE, new_start)]).await?;
        self.remove_old_segments(now_ms()).await;
        Ok(new_start)
    }

    /// Deletes whole sealed segments past `retention.ms` or `retention.bytes`,
    /// or below the log start offset. The active segment always stays.
    pub async fn enforce_retention(&self, now: i64) -> Result<(), StorageError> {
        let removed = self.remove_old_segments(now).await;
        if removed > 0 {
            let log_start = checkpoint_file(&self.dir, LOG_START_FILE, self.log_start_offset());
            write_off_shard(vec![log_start]).await?;
        }
        Ok(())
    }

    async fn remove_old_segments(&self, now: i64) -> usize {
        let removed: Vec<Segment> = {
            let mut st = self.state.borrow_mut();
            let mut removed = Vec::new();
            let mut total: u64 = st.segments.values().map(|s| s.meta.size).sum();
            while st.segments.len() > 1 {
                let Some(first) = st.segments.values().next() else {
                    break;
                };
                let c = &st.config;
                let expired = c.cleanup_delete
                    && c.retention_ms >= 0
                    && first.meta.max_timestamp >= 0
                    && first.meta.max_timestamp < now - c.retention_ms;
                let oversized = c.cleanup_delete
                    && c.retention_bytes >= 0
                    && total - first.meta.size >= c.retention_bytes as u64;
                let below_start = first.meta.next_offset <= st.log_start_offset;
                if !(expired || oversized || below_start) {
                    break;
                }
                let Some((_, segment)) = st.segments.pop_first() else {
                    break;
                };
                total -= segment.meta.size;
                let next_base = st.segments.keys().next().copied().unwrap_or(st.next_offset);
                st.log_start_offset = st.log_start_offset.max(next_base);
                removed.push(segment);
            }
            let start = st.log_start_offset;
            st.cache.evict_below(start);
            removed
        };
        let count = removed.len();
        if count > 0 {
            self.read_ahead.clear();
        }
        for segment in removed {
            let base = segment.base_offset();
            drop(segment);
            remove_segment_files(&self.dir, base);
        }
        count
    }

    /// Compacts the sealed segments of a `cleanup.policy=compact` log when
    /// segments were sealed since the last pass: the rewrite runs on the
    /// blocking thread pool, then the cleaned files replace the originals
    /// here. Returns the records removed.
    pub async fn compact(&self, now: i64) -> Result<u64, StorageError> {
        let (sealed, delete_retention_ms) = {
            let st = self.state.borrow();
            st.check_usable()?;
            let sealed: Vec<SealedSegment> = st
                .segments
                .values()
                .rev()
                .skip(1)
                .rev()
                .map(|s| SealedSegment {
                    base_offset: s.base_offset(),
                    size: s.meta.size,
                })
                .collect();
            let newest = sealed.last().map(|s| s.base_offset);
            let cleaned_through = self.cleaned_through.get();
            if !st.config.cleanup_compact || newest.is_none() || newest == cleaned_through {
                return Ok(0);
            }
            (sealed, st.config.delete_retention_ms)
        };
        let newest = sealed.last().map(|s| s.base_offset);
        let dir = self.dir.clone();
        let interval = self.options.index_interval_bytes;
        let bound = decompressed_bytes_max(self.produce_limits().0);
        let cleaned = glommio::executor()
            .spawn_blocking(move || {
                clean_segments(&dir, &sealed, delete_retention_ms, now, interval, bound)
            })
            .await?;
        let mut removed = 0;
        for segment in cleaned {
            removed += segment.records_removed;
            self.swap_in_cleaned(segment).await?;
        }
        self.cleaned_through.set(newest);
        Ok(removed)
    }

    /// Replaces a sealed segment by its cleaned copy, unless retention took
    /// the segment away meanwhile. Index files go first, so a crash in
    /// between leaves a segment that recovery scans rather than stale indexes.
    async fn swap_in_cleaned(&self, cleaned: CleanedSegment) -> Result<(), StorageError> {
        let base = cleaned.meta.base_offset;
        let cleaned_file = cleaned_path(&self.dir, base);
        let Some(next_offset) = self
            .state
            .borrow()
            .segments
            .get(&base)
            .map(|s| s.meta.next_offset)
        else {
            let _ = std::fs::remove_file(&cleaned_file);
            return Ok(());
        };
        if cleaned.meta.size == 0 && self.absorb_emptied_segment(base, next_offset) {
            let _ = std::fs::remove_file(&cleaned_file);
            return Ok(());
        }
        for ext in ["index", "timeindex"] {
            let _ = std::fs::remove_file(segment_path(&self.dir, base, ext));
        }
        let log_path = segment_path(&self.dir, base, "log");
        std::fs::rename(&cleaned_file, &log_path)
            .map_err(|e| StorageError::io("cannot replace segment", &log_path, e))?;
        let mut meta = cleaned.meta;
        meta.next_offset = next_offset;
        let mut segment = Segment::open(&self.dir, meta).await?;
        write_off_shard(segment.index_files()).await?;
        self.read_ahead.clear();
        self.state.borrow_mut().segments.insert(base, segment);
        Ok(())
    }

    /// Drops a sealed segment that compaction emptied, giving its offsets to
    /// the segment before it (whose end then reaches the next segment's
    /// base, as recovery finds it). The first segment stays, empty: it holds
    /// the log start offset, which Kafka's cleaner never moves either.
    /// Returns whether the segment went.
    fn absorb_emptied_segment(&self, base: u64, next_offset: u64) -> bool {
        let removed = {
            let mut st = self.state.borrow_mut();
            let Some((_, previous)) = st.segments.range_mut(..base).next_back() else {
                return false;
            };
            debug_assert_eq!(previous.meta.next_offset, base);
            previous.meta.next_offset = next_offset;
            st.segments.remove(&base)
        };
        self.read_ahead.clear();
        drop(removed);
        remove_segment_files(&self.dir, base);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::testing::*;
    use kafka_protocol::records::RecordBatchDecoder;
    use model::topic_config::TopicConfig;

    #[test]
    fn retention_and_delete_records_move_the_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let config = TopicConfig {
                retention_bytes: 8000,
                ..small_segments()
            };
            let log = open(&path, config).await;
            fill(&log, 100).await;
            log.enforce_retention(now_ms()).await.unwrap();
            let start = log.log_start_offset();
            assert!(start > 0, "old segments deleted");
            assert!(log.size_bytes() <= 8000 + 4000, "size {}", log.size_bytes());
            assert!(matches!(
                log.read(0, 100, true).await,
                Err(StorageError::OffsetOutOfRange { .. })
            ));
            assert_eq!(
                read_all(&log, start as i64).await.first(),
                Some(&(start as i64))
            );
            assert_eq!(log.delete_records_before(290).await.unwrap(), 290);
            assert_eq!(read_all(&log, 290).await, (290..300).collect::<Vec<_>>());
            log.close().await.unwrap();
            drop(log);
            let log = open(&path, small_segments()).await;
            assert_eq!(log.log_start_offset(), 290);
        });
    }

    #[test]
    fn compaction_keeps_the_newest_record_per_key_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let mut config = small_segments();
            config.set("cleanup.policy", "compact").unwrap();
            let log = open(&path, config.clone()).await;
            fill(&log, 100).await;
            let before = read_all(&log, 0).await;
            assert_eq!(before.len(), 300);
            let removed = log.compact(now_ms()).await.unwrap();
            assert!(removed > 0, "superseded records removed");
            let after = read_all_records(&log).await;
            assert_eq!(after.len(), 300 - removed as usize);
            // Every key's newest record in the sealed segments is still there,
            // and offsets only grow.
            assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
            assert_eq!(after.last().unwrap().0, 299);
            assert_eq!(
                log.compact(now_ms()).await.unwrap(),
                0,
                "nothing new sealed"
            );
            log.close().await.unwrap();
            drop(log);
            let log = open(&path, config).await;
            assert_eq!(log.high_watermark(), 300);
            assert_eq!(read_all_records(&log).await, after);
        });
    }

    /// (offset, key) of every record, reading past compaction gaps.
    async fn read_all_records(log: &PartitionLog) -> Vec<(i64, String)> {
        let mut all = Vec::new();
        let mut next = 0i64;
        while (next as u64) < log.high_watermark() {
            let r = log.read(next, 700, true).await.unwrap();
            let mut buf = r.records.clone();
            let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
            let records: Vec<(i64, String)> = sets
                .iter()
                .flat_map(|s| s.records.iter())
                .filter(|r| r.offset >= next)
                .map(|r| {
                    (
                        r.offset,
                        String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned(),
                    )
                })
                .collect();
            let last = if r.records.is_empty() {
                next
            } else {
                let mut it = wire::batch::BatchIter::new(&r.records);
                it.by_ref()
                    .last()
                    .map(|(h, _)| h.last_offset())
                    .unwrap_or(next)
            };
            all.extend(records);
            next = last + 1;
        }
        all
    }
}
