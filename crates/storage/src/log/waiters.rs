//! Who waits on a [`PartitionLog`], on the shard that owns the log: Fetch
//! long polls waiting for data or for a byte count (`min_bytes`), and that
//! count: the bytes written, and of those the bytes a consumer may see below
//! the high watermark. Writes, moves of the high watermark, failures and
//! leadership changes wake them.
use super::{LogState, PartitionLog, Reader};
use futures::channel::oneshot;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Most writes a replicated log remembers the bytes of while consumers
/// cannot see them yet (for long polls' byte counts).
const WRITE_MARKS_MAX: usize = 1024;

/// Long polls waiting for a byte count to reach their thresholds, lowest
/// threshold first.
#[derive(Default)]
pub(super) struct ByteWaiters {
    heap: BinaryHeap<Reverse<ByteWaiter>>,
}

impl ByteWaiters {
    fn push(&mut self, threshold: u64, wake: oneshot::Sender<()>) {
        // Long polls that timed out dropped their receivers: forget them.
        self.heap.retain(|Reverse(w)| !w.wake.is_canceled());
        self.heap.push(Reverse(ByteWaiter { threshold, wake }));
    }

    /// Wakes the waiters whose threshold `bytes` reached.
    fn wake_reached(&mut self, bytes: u64) {
        while self.heap.peek().is_some_and(|w| w.0.threshold <= bytes) {
            if let Some(Reverse(waiter)) = self.heap.pop() {
                let _ = waiter.wake.send(());
            }
        }
    }

    fn wake_all(&mut self) {
        for Reverse(waiter) in self.heap.drain() {
            let _ = waiter.wake.send(());
        }
    }
}

/// A long poll waiting for a byte count to reach `threshold`, ordered by
/// threshold alone.
struct ByteWaiter {
    threshold: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for ByteWaiter {
    fn eq(&self, other: &Self) -> bool {
        self.threshold == other.threshold
    }
}

impl Eq for ByteWaiter {}

impl PartialOrd for ByteWaiter {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByteWaiter {
    fn cmp(&self, other: &Self) -> Ordering {
        self.threshold.cmp(&other.threshold)
    }
}

impl LogState {
    pub(super) fn wake_data_waiters(&mut self) {
        for w in self.data_waiters.drain(..) {
            let _ = w.send(());
        }
        self.consumer_waiters.wake_all();
        self.follower_waiters.wake_all();
    }

    /// Counts a write of `bytes` that ends at `end_offset`, before the
    /// written end moves there.
    pub(super) fn record_write(&mut self, end_offset: u64, bytes: u64) {
        if self.replicated_high_watermark.is_some() {
            if self.write_marks.is_empty() {
                // Where the bytes stood before: consumers may be below it.
                let before = (self.written_end, self.appended_bytes);
                self.write_marks.push_back(before);
            }
            self.write_marks
                .push_back((end_offset, self.appended_bytes + bytes));
            if self.write_marks.len() > WRITE_MARKS_MAX {
                self.write_marks.pop_front();
            }
        }
        self.appended_bytes += bytes;
    }

    /// After a write: every data waiter, and the long polls whose byte
    /// threshold the written bytes reached (the others sleep on).
    pub(super) fn wake_after_write(&mut self) {
        for w in self.data_waiters.drain(..) {
            let _ = w.send(());
        }
        self.follower_waiters.wake_reached(self.appended_bytes);
        self.consumer_waiters.wake_reached(self.visible_bytes());
    }

    /// After the high watermark limit moved: every data waiter, and the
    /// consumers' long polls whose threshold the visible bytes reached.
    pub(super) fn wake_after_limit_moved(&mut self) {
        for w in self.data_waiters.drain(..) {
            let _ = w.send(());
        }
        self.consumer_waiters.wake_reached(self.visible_bytes());
    }

    /// The bytes written that `reader` may read (see `readable_bytes`).
    fn readable_bytes(&self, reader: Reader) -> u64 {
        match reader {
            Reader::Consumer => self.visible_bytes(),
            Reader::Follower => self.appended_bytes,
        }
    }

    /// Of `appended_bytes`, those a consumer may read (below the visible
    /// end): exact while the marks reach back that far, else an estimate.
    fn visible_bytes(&self) -> u64 {
        let visible = self.visible_end();
        if visible >= self.written_end {
            return self.appended_bytes;
        }
        let below = self
            .write_marks
            .iter()
            .rev()
            .find(|(end, _)| *end <= visible);
        match (below, self.write_marks.front()) {
            (Some((_, bytes)), _) | (None, Some((_, bytes))) => *bytes,
            (None, None) => self.appended_bytes,
        }
    }

    /// Forgets the marks consumers have passed, but the newest of them.
    pub(super) fn prune_write_marks(&mut self) {
        let visible = self.visible_end();
        while self
            .write_marks
            .get(1)
            .is_some_and(|(end, _)| *end <= visible)
        {
            self.write_marks.pop_front();
        }
        if self.replicated_high_watermark.is_none() {
            self.write_marks.clear();
        }
    }
}

impl PartitionLog {
    /// A receiver that fires when the high watermark next moves (or the log
    /// fails), for Fetch long polls.
    pub fn subscribe(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.state.borrow_mut();
        // Long polls that timed out dropped their receivers: forget them, so an
        // idle partition polled for hours does not collect senders.
        st.data_waiters.retain(|w| !w.is_canceled());
        st.data_waiters.push(tx);
        rx
    }

    /// A receiver that fires once the bytes `reader` may read
    /// (`readable_bytes`) reach `threshold`, or the log fails, or its
    /// leadership changes: for Fetch long polls that wait for `min_bytes`.
    pub fn subscribe_bytes(&self, reader: Reader, threshold: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.state.borrow_mut();
        if threshold <= st.readable_bytes(reader) || st.check_usable().is_err() {
            let _ = tx.send(());
            return rx;
        }
        let waiters = match reader {
            Reader::Consumer => &mut st.consumer_waiters,
            Reader::Follower => &mut st.follower_waiters,
        };
        waiters.push(threshold, tx);
        rx
    }

    /// Bytes of every batch written since the log was opened (only grows).
    pub fn appended_bytes(&self) -> u64 {
        self.state.borrow().appended_bytes
    }

    /// Bytes written since the log was opened that `reader` may read: all
    /// of them for a follower, those below the high watermark it sees for a
    /// consumer. What a long poll counts toward its `min_bytes`.
    pub fn readable_bytes(&self, reader: Reader) -> u64 {
        self.state.borrow().readable_bytes(reader)
    }

    /// Wakes every waiter (a leadership change: long polls answer anew).
    pub fn wake_waiters(&self) {
        self.state.borrow_mut().wake_data_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::testing::*;
    use kafka_protocol::records::Compression;
    use model::topic_config::TopicConfig;
    use wire::testing::sample_batch;

    #[test]
    fn long_polls_wake_at_their_byte_threshold_and_count_visible_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        run(move || async move {
            let log = open(&path, TopicConfig::default()).await;
            let len = sample_batch(3, Compression::None).len() as u64;
            let mut waiter = log.subscribe_bytes(Reader::Consumer, 2 * len);
            fill(&log, 1).await;
            assert_eq!(waiter.try_recv(), Ok(None), "below its threshold");
            fill(&log, 1).await;
            assert_eq!(waiter.try_recv(), Ok(Some(())), "at its threshold");
            assert_eq!(log.appended_bytes(), 2 * len);
            // Replicated: consumers see the bytes below the limit only.
            log.set_replicated_high_watermark(Some(6));
            fill(&log, 1).await;
            fill(&log, 1).await;
            assert_eq!(log.appended_bytes(), 4 * len);
            assert_eq!(log.readable_bytes(Reader::Consumer), 2 * len);
            assert_eq!(log.readable_bytes(Reader::Follower), 4 * len);
            let mut consumer = log.subscribe_bytes(Reader::Consumer, 4 * len);
            let mut follower = log.subscribe_bytes(Reader::Follower, 4 * len);
            assert_eq!(follower.try_recv(), Ok(Some(())), "a follower sees all");
            log.set_replicated_high_watermark(Some(9));
            assert_eq!(consumer.try_recv(), Ok(None), "3 batches visible of 4");
            assert_eq!(log.readable_bytes(Reader::Consumer), 3 * len);
            log.set_replicated_high_watermark(Some(12));
            assert_eq!(consumer.try_recv(), Ok(Some(())), "all 4 visible");
            assert_eq!(log.readable_bytes(Reader::Consumer), 4 * len);
            log.close().await.unwrap();
        });
    }
}
