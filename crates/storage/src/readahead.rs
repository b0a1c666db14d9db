//! Read-ahead for sequential fetches of old data, on the partition's owning
//! shard.
//!
//! A consumer catching up on a backlog fetches the segment bytes that follow
//! its last answer. Once a fetch has been served from a segment, the log
//! keeps a stream there: [`DEPTH`] chunks of the following bytes are read by
//! background DMA reads, so the disk keeps working while answers travel to
//! the consumer, and the next Fetch finds its bytes in memory. Chunks are
//! consecutive byte ranges that need not end on a batch boundary: the partial
//! batch at the end of one answer is kept and joined to the next chunk, which
//! is read into a buffer with room in front for it (no second copy of the
//! chunk). Each log keeps at most one stream ([`ReadAhead`], owned by the
//! log).
//!
//! Memory is bounded per shard by a [`ReadAheadBudget`]: the shard creates
//! one (of [`SHARD_BUDGET_BYTES`]) and hands it to each of its logs through
//! `LogOptions`, so all chunks of that shard's logs together hold at most its
//! limit. The budget knows the streams of those logs: when it is full,
//! streams not used for [`STALE_AFTER`] (their consumer went away or moved)
//! are dropped to make room; otherwise fewer chunks are read ahead, down to
//! none (fetches then read serially). Budget, streams and the reservations
//! that give bytes back when a chunk is dropped all live on the shard's
//! thread (`Rc`, `Cell`), like the logs that hold them.
use super::StorageError;
use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesOrdered, StreamExt};
use glommio::io::DmaFile;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};
use wire::batch::BatchIter;

/// All read-ahead chunks of one shard together (the budget a shard creates).
pub const SHARD_BUDGET_BYTES: usize = 128 << 20;
/// A stream unused for this long may be dropped for another log's.
const STALE_AFTER: Duration = Duration::from_secs(1);
/// One chunk is read as DMA reads of at most this many bytes, issued at once.
const PIECE_BYTES: usize = 2 << 20;

/// One log's stream slot, shared by the log's [`ReadAhead`] and (weakly) the
/// budget that may reclaim it.
type Slot = Rc<RefCell<Option<Stream>>>;

/// The read-ahead memory of one shard, shared by every log of that shard:
/// the bytes its chunks hold or are being read into, at most `limit`, and
/// the slots that hold them, for reclaiming stale streams. Created once per
/// shard and handed to its logs in `LogOptions`; used on that shard only.
pub struct ReadAheadBudget {
    limit: usize,
    /// Bytes held or being read by the chunks reserved from this budget.
    used: Cell<usize>,
    /// Slots that hold a chunk, for reclaiming stale ones.
    holders: RefCell<Vec<Weak<RefCell<Option<Stream>>>>>,
}

impl std::fmt::Debug for ReadAheadBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAheadBudget")
            .field("limit", &self.limit)
            .field("used", &self.used.get())
            .finish_non_exhaustive()
    }
}

impl ReadAheadBudget {
    pub fn new(limit: usize) -> ReadAheadBudget {
        ReadAheadBudget {
            limit,
            used: Cell::new(0),
            holders: RefCell::new(Vec::new()),
        }
    }

    /// Bytes held or being read by the chunks reserved from this budget.
    pub fn used_bytes(&self) -> usize {
        self.used.get()
    }

    /// `bytes` of this budget for one chunk, after dropping stale streams
    /// if they are needed to make room; `None` when there is no room.
    fn reserve(self: &Rc<Self>, bytes: usize) -> Option<Reservation> {
        if self.used.get() + bytes > self.limit {
            self.reclaim_stale();
        }
        if self.used.get() + bytes > self.limit {
            return None;
        }
        self.used.set(self.used.get() + bytes);
        Some(Reservation {
            budget: self.clone(),
            bytes,
        })
    }

    /// Drops every stream unused for [`STALE_AFTER`].
    fn reclaim_stale(&self) {
        let now = Instant::now();
        let slots: Vec<_> = {
            let mut holders = self.holders.borrow_mut();
            holders.retain(|w| w.strong_count() > 0);
            holders.iter().filter_map(Weak::upgrade).collect()
        };
        for slot in slots {
            // A slot borrowed right now is in use: leave it.
            let Ok(mut chunk) = slot.try_borrow_mut() else {
                continue;
            };
            if chunk
                .as_ref()
                .is_some_and(|c| now.duration_since(c.last_used) >= STALE_AFTER)
            {
                *chunk = None;
            }
        }
    }

    /// Registers a log's slot once, forgetting the slots of dropped logs as
    /// the list doubles, so the list stays within twice the live logs.
    fn register(&self, slot: &Slot) {
        let mut holders = self.holders.borrow_mut();
        if holders.len() >= 64 && holders.len().is_power_of_two() {
            holders.retain(|w| w.strong_count() > 0);
        }
        holders.push(Rc::downgrade(slot));
    }
}

/// Budget bytes held by one chunk, given back to its budget when dropped.
struct Reservation {
    budget: Rc<ReadAheadBudget>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let used = &self.budget.used;
        used.set(used.get().saturating_sub(self.bytes));
    }
}

/// Chunks read ahead of the consumer, per stream.
pub const DEPTH: usize = 2;
/// Room in front of each chunk for the partial batch that ended the previous
/// answer; a longer one (a batch over this size) costs a copy of the chunk.
const HEADROOM_BYTES: usize = 1 << 20;

struct Chunk {
    len: usize,
    data: glommio::Task<Result<Vec<u8>, StorageError>>,
    reservation: Reservation,
}

/// A sequential reader's place in one segment and what is read ahead of it.
struct Stream {
    segment_base: u64,
    file: Rc<DmaFile>,
    /// Where the next answer starts (the first byte of `leftover`).
    position: u64,
    /// The offset the next fetch asks for.
    next_offset: u64,
    /// Bytes after the last answer that are already in memory.
    leftover: Bytes,
    leftover_reservation: Option<Reservation>,
    chunks: VecDeque<Chunk>,
    /// Where the next chunk to read starts.
    read_end: u64,
    last_used: Instant,
}

/// One log's read-ahead stream, reserving its chunks from the shard's
/// budget.
pub struct ReadAhead {
    budget: Rc<ReadAheadBudget>,
    slot: Slot,
    registered: Cell<bool>,
}

impl ReadAhead {
    pub fn new(budget: Rc<ReadAheadBudget>) -> ReadAhead {
        ReadAhead {
            budget,
            slot: Slot::default(),
            registered: Cell::new(false),
        }
    }

    /// Starts a stream after an answer read from the segment directly: the
    /// next answer starts at `position` with `next_offset`.
    pub fn restart(&self, segment_base: u64, file: Rc<DmaFile>, position: u64, next_offset: u64) {
        let stream = Stream {
            segment_base,
            file,
            position,
            next_offset,
            leftover: Bytes::new(),
            leftover_reservation: None,
            chunks: VecDeque::new(),
            read_end: position,
            last_used: Instant::now(),
        };
        self.clear();
        *self.slot.borrow_mut() = Some(stream);
        if !self.registered.replace(true) {
            self.budget.register(&self.slot);
        }
    }

    /// Reads more chunks of `chunk_bytes` until [`DEPTH`] are ahead, within
    /// the first `segment_size` bytes of the stream's segment and the shard's
    /// budget.
    pub fn top_up(&self, segment_base: u64, segment_size: u64, chunk_bytes: usize) {
        let mut slot = self.slot.borrow_mut();
        let Some(stream) = slot.as_mut().filter(|s| s.segment_base == segment_base) else {
            return;
        };
        while stream.chunks.len() < DEPTH && stream.read_end < segment_size && chunk_bytes > 0 {
            let len = (segment_size - stream.read_end).min(chunk_bytes as u64) as usize;
            let Some(reservation) = self.budget.reserve(HEADROOM_BYTES + len) else {
                break;
            };
            let data = glommio::spawn_local(read_pieces(stream.file.clone(), stream.read_end, len));
            stream.chunks.push_back(Chunk {
                len,
                data,
                reservation,
            });
            stream.read_end += len as u64;
        }
    }

    /// The next answer for a fetch of `offset` in segment `segment_base`:
    /// whole batches up to `max_bytes` (the first whatever its size if
    /// `at_least_one`) and where they start. `None` when the stream is not
    /// there (or has nothing read ahead): the caller reads the segment.
    pub async fn next(
        &self,
        segment_base: u64,
        offset: u64,
        max_bytes: usize,
        at_least_one: bool,
    ) -> Option<Result<(u64, Bytes), StorageError>> {
        // The stream leaves the slot while a chunk is awaited; a concurrent
        // fetch of the same partition finds none and reads directly.
        let mut stream = self.slot.borrow_mut().take()?;
        if stream.segment_base != segment_base || stream.next_offset != offset {
            return None;
        }
        let data = match whole_batches(&stream.leftover, offset, max_bytes, at_least_one) {
            Some(_) => std::mem::take(&mut stream.leftover),
            None => {
                let chunk = stream.chunks.pop_front()?;
                let data = match chunk.data.await {
                    Ok(data) => data,
                    Err(e) => return Some(Err(e)),
                };
                if data.len() != HEADROOM_BYTES + chunk.len {
                    // A short read: the segment is not what it was.
                    return None;
                }
                let joined = join(std::mem::take(&mut stream.leftover), data);
                stream.leftover_reservation = Some(chunk.reservation);
                joined
            }
        };
        let answer = whole_batches(&data, offset, max_bytes, at_least_one)?;
        let position = stream.position;
        let Some((last, _)) = BatchIter::new(&answer).last() else {
            return Some(Ok((position, answer)));
        };
        stream.position += answer.len() as u64;
        stream.next_offset = last.last_offset() as u64 + 1;
        stream.leftover = data.slice(answer.len()..);
        stream.last_used = Instant::now();
        *self.slot.borrow_mut() = Some(stream);
        Some(Ok((position, answer)))
    }

    /// Drops the stream (segments changed, the log closes, the reader moved
    /// into the batch cache).
    pub fn clear(&self) {
        let stream = self.slot.borrow_mut().take();
        drop(stream);
    }
}

/// `leftover` followed by the chunk in `data` (after its headroom), written
/// into the headroom when it fits.
fn join(leftover: Bytes, mut data: Vec<u8>) -> Bytes {
    if leftover.len() <= HEADROOM_BYTES {
        let start = HEADROOM_BYTES - leftover.len();
        data[start..HEADROOM_BYTES].copy_from_slice(&leftover);
        Bytes::from(data).slice(start..)
    } else {
        let mut out = BytesMut::with_capacity(leftover.len() + data.len() - HEADROOM_BYTES);
        out.extend_from_slice(&leftover);
        out.extend_from_slice(&data[HEADROOM_BYTES..]);
        out.freeze()
    }
}

/// The whole batches at the start of `data`, up to `max_bytes` (the first
/// one whatever its size if `at_least_one`), if its first batch holds
/// `offset`; `None` if it does not or is not whole in `data`.
pub fn whole_batches(
    data: &Bytes,
    offset: u64,
    max_bytes: usize,
    at_least_one: bool,
) -> Option<Bytes> {
    let mut batches = BatchIter::new(data);
    let (first, _) = batches.next()?;
    if first.base_offset as u64 > offset || (first.last_offset() as u64) < offset {
        return None;
    }
    if first.size > max_bytes && !at_least_one {
        return Some(Bytes::new());
    }
    let mut whole = first.size;
    for (header, _) in batches {
        if whole + header.size > max_bytes {
            break;
        }
        whole += header.size;
    }
    Some(data.slice(..whole))
}

/// Reads `len` bytes at `position` as concurrent DMA reads, copied in order
/// as they complete (a `ReadResult` cannot leave its shard; the answer may)
/// behind [`HEADROOM_BYTES`] of room.
async fn read_pieces(
    file: Rc<DmaFile>,
    position: u64,
    len: usize,
) -> Result<Vec<u8>, StorageError> {
    let mut reads: FuturesOrdered<_> = (0..len.div_ceil(PIECE_BYTES))
        .map(|i| {
            let at = position + (i * PIECE_BYTES) as u64;
            let piece = (len - i * PIECE_BYTES).min(PIECE_BYTES);
            file.read_at(at, piece)
        })
        .collect();
    let mut out = Vec::with_capacity(HEADROOM_BYTES + len);
    out.resize(HEADROOM_BYTES, 0);
    while let Some(piece) = reads.next().await {
        let piece = piece.map_err(|e| {
            let path = file.path().map(|p| p.to_path_buf()).unwrap_or_default();
            StorageError::io("cannot read segment", &path, e)
        })?;
        out.extend_from_slice(&piece);
        // A short read ends the chunk: the rest was past the file's end.
        if piece.len() < PIECE_BYTES {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(bytes: &[u8]) -> Vec<u8> {
        let mut data = vec![0; HEADROOM_BYTES];
        data.extend_from_slice(bytes);
        data
    }

    #[test]
    fn join_puts_the_leftover_in_front_of_the_chunk() {
        let joined = join(Bytes::from_static(b"ab"), chunk(b"cd"));
        assert_eq!(&joined[..], b"abcd");
        assert_eq!(&join(Bytes::new(), chunk(b"cd"))[..], b"cd");
        let long = Bytes::from(vec![7u8; HEADROOM_BYTES + 1]);
        let joined = join(long.clone(), chunk(b"z"));
        assert_eq!(joined.len(), long.len() + 1);
        assert_eq!(joined[joined.len() - 1], b'z');
    }

    #[test]
    fn whole_batches_need_the_offset_in_a_whole_first_batch() {
        assert!(whole_batches(&Bytes::new(), 0, 100, true).is_none());
        assert!(whole_batches(&Bytes::from(vec![0u8; 30]), 0, 100, true).is_none());
    }

    #[test]
    fn reservations_stay_within_their_budget_and_give_bytes_back() {
        let budget = Rc::new(ReadAheadBudget::new(100));
        let other = Rc::new(ReadAheadBudget::new(100));
        let a = budget.reserve(60).expect("room for 60");
        assert!(budget.reserve(41).is_none(), "over the limit");
        let b = budget.reserve(40).expect("room for 40 more");
        assert_eq!(budget.used_bytes(), 100);
        // Another budget is not touched by this one's reservations.
        let c = other.reserve(100).expect("a budget of its own");
        assert_eq!(other.used_bytes(), 100);
        drop(a);
        assert_eq!(budget.used_bytes(), 40);
        drop(b);
        assert_eq!(budget.used_bytes(), 0);
        assert_eq!(other.used_bytes(), 100);
        drop(c);
        assert_eq!(other.used_bytes(), 0);
    }
}
