//! Read-ahead for sequential fetches of old data, on the partition's owning
//! shard.
//!
//! A consumer catching up on a backlog fetches the segment bytes that follow
//! its last answer. When a fetch is served from a segment, the log starts
//! reading the chunk that follows it at once (a background task of DMA reads),
//! so the disk works while the answer travels to the consumer and the next
//! Fetch finds its bytes in memory. Each log keeps at most one chunk, of at
//! most the size of the answer just served.
//!
//! Memory is bounded per shard: all chunks of one shard together hold at most
//! [`SHARD_BUDGET_BYTES`]. When the budget is full, chunks not claimed for
//! [`STALE_AFTER`] (their consumer went away or moved) are dropped to make
//! room; otherwise no read-ahead is started and fetches read serially.
use super::StorageError;
use bytes::{Bytes, BytesMut};
use glommio::io::DmaFile;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

/// All read-ahead chunks of one shard together.
pub const SHARD_BUDGET_BYTES: usize = 96 << 20;
/// A chunk unclaimed for this long may be dropped for another log's.
const STALE_AFTER: Duration = Duration::from_secs(1);
/// One chunk is read as DMA reads of at most this many bytes, issued at once.
const PIECE_BYTES: usize = 2 << 20;

thread_local! {
    /// Bytes held or being read by this shard's chunks.
    static USED_BYTES: Cell<usize> = const { Cell::new(0) };
    /// Slots that hold a chunk, for reclaiming stale ones.
    static HOLDERS: RefCell<Vec<Weak<RefCell<Option<Chunk>>>>> = const { RefCell::new(Vec::new()) };
}

/// Budget bytes held by one chunk, returned when it is dropped.
struct Reservation(usize);

impl Reservation {
    fn take(bytes: usize) -> Option<Reservation> {
        if USED_BYTES.get() + bytes > SHARD_BUDGET_BYTES {
            reclaim_stale();
        }
        if USED_BYTES.get() + bytes > SHARD_BUDGET_BYTES {
            return None;
        }
        USED_BYTES.set(USED_BYTES.get() + bytes);
        Some(Reservation(bytes))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        USED_BYTES.set(USED_BYTES.get().saturating_sub(self.0));
    }
}

/// Drops every chunk unclaimed for [`STALE_AFTER`].
fn reclaim_stale() {
    let now = Instant::now();
    let slots: Vec<_> = HOLDERS.with_borrow_mut(|h| {
        h.retain(|w| w.strong_count() > 0);
        h.iter().filter_map(Weak::upgrade).collect()
    });
    for slot in slots {
        // A slot borrowed right now is in use: leave it.
        let Ok(mut chunk) = slot.try_borrow_mut() else {
            continue;
        };
        if chunk
            .as_ref()
            .is_some_and(|c| now.duration_since(c.issued) >= STALE_AFTER)
        {
            *chunk = None;
        }
    }
}

/// Registers a log's slot once, forgetting the slots of dropped logs as the
/// list doubles, so the list stays within twice the live logs.
fn register(slot: &Rc<RefCell<Option<Chunk>>>) {
    HOLDERS.with_borrow_mut(|h| {
        if h.len() >= 64 && h.len().is_power_of_two() {
            h.retain(|w| w.strong_count() > 0);
        }
        h.push(Rc::downgrade(slot));
    });
}

/// Where a chunk starts: the segment (by base offset), the byte position in
/// it, and the log offset of the first batch there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkStart {
    pub segment_base: u64,
    pub position: u64,
    pub offset: u64,
}

struct Chunk {
    start: ChunkStart,
    issued: Instant,
    bytes: glommio::Task<Result<Bytes, StorageError>>,
    _reservation: Reservation,
}

/// One log's read-ahead slot.
#[derive(Default)]
pub struct ReadAhead {
    slot: Rc<RefCell<Option<Chunk>>>,
    registered: Cell<bool>,
}

impl ReadAhead {
    /// Starts reading `len` bytes of `file` at `start.position`, replacing
    /// whatever the slot held. Does nothing if the shard's budget is full.
    pub fn start(&self, file: Rc<DmaFile>, start: ChunkStart, len: usize) {
        self.clear();
        if len == 0 {
            return;
        }
        let Some(reservation) = Reservation::take(len) else {
            return;
        };
        let bytes = glommio::spawn_local(read_pieces(file, start.position, len));
        *self.slot.borrow_mut() = Some(Chunk {
            start,
            issued: Instant::now(),
            bytes,
            _reservation: reservation,
        });
        if !self.registered.replace(true) {
            register(&self.slot);
        }
    }

    /// The chunk that starts at `start`, once read; `None` (and the slot
    /// emptied) if the slot holds another one or nothing.
    pub async fn take(&self, start: ChunkStart) -> Option<Result<Bytes, StorageError>> {
        let chunk = self.slot.borrow_mut().take()?;
        if chunk.start != start {
            return None;
        }
        Some(chunk.bytes.await)
    }

    /// Where the held chunk starts, if any.
    pub fn pending_start(&self) -> Option<ChunkStart> {
        self.slot.borrow().as_ref().map(|c| c.start)
    }

    /// Drops the held chunk (segments changed, the log closes).
    pub fn clear(&self) {
        let chunk = self.slot.borrow_mut().take();
        drop(chunk);
    }
}

/// Reads `len` bytes at `position` as concurrent DMA reads, copied into one
/// buffer (a `ReadResult` cannot leave its shard; the answer may).
async fn read_pieces(file: Rc<DmaFile>, position: u64, len: usize) -> Result<Bytes, StorageError> {
    let reads = (0..len.div_ceil(PIECE_BYTES)).map(|i| {
        let at = position + (i * PIECE_BYTES) as u64;
        let piece = (len - i * PIECE_BYTES).min(PIECE_BYTES);
        file.read_at(at, piece)
    });
    let pieces = futures::future::join_all(reads).await;
    let mut out = BytesMut::with_capacity(len);
    for piece in pieces {
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
    Ok(out.freeze())
}
