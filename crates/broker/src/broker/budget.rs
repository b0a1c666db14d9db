//! The memory one connection, and all connections of one shard, may hold in
//! requests being handled and in answers not yet written to the socket.
//!
//! Apache Kafka mutes a connection while one of its requests is in process,
//! so a client that never reads its answers holds one answer at most.
//! Tidemark pipelines requests, so it counts bytes instead: a request frame
//! holds its length until its handler is done, an answer holds its length
//! until the writer has sent it, and a Fetch reserves what it may read before
//! it reads (its `max_bytes` is cut to what the budget has left). The
//! connection's reader stops reading requests while its connection holds its
//! limit (or, past a small fair share, while the shard holds the shard's
//! limit), so the client feels back-pressure instead of the broker growing.
//!
//! Everything here lives on the shard that accepted the connection (`Rc`,
//! `Cell`): the accept loop makes one `ShardBudget`, each connection one
//! `ConnectionBudget` pointing to it.
use futures::channel::oneshot;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

/// Every connection may hold this much whatever the rest of the shard holds,
/// so that clients that never read their answers cannot starve the others.
pub const FAIR_SHARE_BYTES: usize = 1 << 20;
/// A Fetch may always read this much (the budget only cuts it down to here),
/// so that a consumer keeps moving while the shard is at its limit.
pub const FETCH_FLOOR_BYTES: usize = 64 << 10;
/// How often a reader held back by the shard's limit (not its own) looks again.
const SHARD_RECHECK: Duration = Duration::from_millis(20);

/// The bytes all connections of one shard hold.
#[derive(Debug)]
pub struct ShardBudget {
    held: Cell<usize>,
    limit_bytes: usize,
}

impl ShardBudget {
    pub fn new(limit_bytes: usize) -> Rc<ShardBudget> {
        Rc::new(ShardBudget {
            held: Cell::new(0),
            limit_bytes,
        })
    }

    pub fn held(&self) -> usize {
        self.held.get()
    }

    fn left(&self) -> usize {
        self.limit_bytes.saturating_sub(self.held.get())
    }
}

/// The bytes one connection holds, and the reader's wake-up when they shrink.
#[derive(Debug)]
pub struct ConnectionBudget {
    held: Cell<usize>,
    limit_bytes: usize,
    shard: Rc<ShardBudget>,
    /// The reader waiting for bytes to be released, if it waits.
    released: RefCell<Option<oneshot::Sender<()>>>,
}

impl ConnectionBudget {
    pub fn new(limit_bytes: usize, shard: Rc<ShardBudget>) -> Rc<ConnectionBudget> {
        Rc::new(ConnectionBudget {
            held: Cell::new(0),
            limit_bytes,
            shard,
            released: RefCell::new(None),
        })
    }

    pub fn held(&self) -> usize {
        self.held.get()
    }

    /// Whether the reader may read another request now.
    pub fn may_read(&self) -> bool {
        let held = self.held.get();
        held < FAIR_SHARE_BYTES
            || (held < self.limit_bytes && self.shard.held() < self.shard.limit_bytes)
    }

    /// Waits until the reader may read another request.
    pub async fn wait_until_readable(&self) {
        while !self.may_read() {
            let (tx, rx) = oneshot::channel();
            *self.released.borrow_mut() = Some(tx);
            if self.held.get() >= self.limit_bytes {
                // Only this connection's own answers can free it.
                let _ = rx.await;
            } else {
                // The shard is full: other connections free it, without
                // telling this one.
                let timer = glommio::timer::sleep(SHARD_RECHECK);
                futures::future::select(rx, Box::pin(timer)).await;
            }
        }
    }

    /// Counts `bytes` as held until the returned guard is dropped.
    pub fn hold(self: &Rc<Self>, bytes: usize) -> Hold {
        let mut hold = Hold {
            budget: self.clone(),
            bytes: 0,
        };
        hold.resize(bytes);
        hold
    }

    /// Reserves what a Fetch that wants `wanted` bytes may read: what the
    /// connection and the shard have left, but at least `FETCH_FLOOR_BYTES`
    /// (or `wanted`, if smaller).
    pub fn reserve_fetch(self: &Rc<Self>, wanted: usize) -> Hold {
        let left = self
            .limit_bytes
            .saturating_sub(self.held.get())
            .min(self.shard.left());
        let bytes = wanted.min(left.max(FETCH_FLOOR_BYTES));
        self.hold(bytes)
    }

    fn add(&self, bytes: usize) {
        self.held.set(self.held.get() + bytes);
        self.shard.held.set(self.shard.held.get() + bytes);
    }

    fn release(&self, bytes: usize) {
        debug_assert!(self.held.get() >= bytes, "released more than held");
        self.held.set(self.held.get().saturating_sub(bytes));
        let shard = self.shard.held.get().saturating_sub(bytes);
        self.shard.held.set(shard);
        if let Some(reader) = self.released.borrow_mut().take() {
            let _ = reader.send(());
        }
    }
}

/// Bytes counted against a connection (and its shard) until dropped.
#[derive(Debug)]
pub struct Hold {
    budget: Rc<ConnectionBudget>,
    bytes: usize,
}

impl Hold {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Holds `bytes` from now on instead of what it held.
    pub fn resize(&mut self, bytes: usize) {
        if bytes > self.bytes {
            self.budget.add(bytes - self.bytes);
        } else {
            self.budget.release(self.bytes - bytes);
        }
        self.bytes = bytes;
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_count_on_the_connection_and_the_shard() {
        let shard = ShardBudget::new(10 << 20);
        let a = ConnectionBudget::new(4 << 20, shard.clone());
        let b = ConnectionBudget::new(4 << 20, shard.clone());
        let mut first = a.hold(3 << 20);
        let second = b.hold(2 << 20);
        assert_eq!(
            (a.held(), b.held(), shard.held()),
            (3 << 20, 2 << 20, 5 << 20)
        );
        assert!(a.may_read());
        first.resize(5 << 20);
        assert!(!a.may_read(), "over its own limit");
        assert!(b.may_read());
        drop(first);
        drop(second);
        assert_eq!(shard.held(), 0);
    }

    #[test]
    fn a_full_shard_leaves_every_connection_its_fair_share() {
        let shard = ShardBudget::new(2 << 20);
        let greedy = ConnectionBudget::new(64 << 20, shard.clone());
        let _held = greedy.hold(3 << 20);
        assert!(!greedy.may_read(), "past its fair share on a full shard");
        let polite = ConnectionBudget::new(64 << 20, shard.clone());
        assert!(polite.may_read(), "under the fair share");
        let fetch = polite.reserve_fetch(16 << 20);
        assert_eq!(fetch.bytes(), FETCH_FLOOR_BYTES, "cut to the floor");
        assert_eq!(polite.reserve_fetch(100).bytes(), 100);
    }

    #[test]
    fn a_fetch_reserves_what_is_left() {
        let shard = ShardBudget::new(1 << 30);
        let conn = ConnectionBudget::new(40 << 20, shard);
        let first = conn.reserve_fetch(16 << 20);
        let second = conn.reserve_fetch(16 << 20);
        let third = conn.reserve_fetch(16 << 20);
        let fourth = conn.reserve_fetch(16 << 20);
        assert_eq!(first.bytes(), 16 << 20);
        assert_eq!(second.bytes(), 16 << 20);
        assert_eq!(third.bytes(), 8 << 20);
        assert_eq!(fourth.bytes(), FETCH_FLOOR_BYTES);
    }
}
