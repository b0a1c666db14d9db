//! The Kafka frame reader (`protocol::frame::read_frame`) over an arbitrary
//! byte stream, delivered in reads of fuzzer-chosen sizes.
//!
//! Input: `[mode][chunk][stream...]`.
//! - `mode & 0xf != 1`: the stream is the rest of the input as it is, and
//!   the frame limit is small (0..=4095 bytes, from `mode` and `chunk`).
//! - `mode & 0xf == 1` (one input in 16, as megabytes are slow): the rest
//!   is run-length coded (see `expand`) so that a few
//!   bytes describe frames of megabytes, and the limit runs to 3 MiB: this
//!   reaches the reader's growth past its 1 MiB initial buffer.
//!
//! Checks: no panic; every frame returned is exactly the next bytes of the
//! stream and within the limit; a clean end comes only between frames; and
//! no allocation made while reading exceeds the larger of the limit and the
//! 1 MiB initial capacity (the reader must not over-allocate what a peer
//! claims).
#![no_main]

use futures_lite::io::AsyncRead;
use libfuzzer_sys::fuzz_target;
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tidemark::protocol::alloc_guard::ReservingAllocator;
use tidemark::protocol::frame::{read_frame, FrameError, WritesOnly};

/// The broker's allocator, with the largest allocation since the last reset
/// recorded.
struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        ReservingAllocator.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        ReservingAllocator.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ReservingAllocator.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        ReservingAllocator.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

const INITIAL_CAPACITY_BYTES: usize = 1 << 20;

/// A reader over a byte slice that hands out at most `chunk` bytes per read
/// (cycling through sizes derived from it) and writes only into the buffer.
struct Chunked<'a> {
    data: &'a [u8],
    at: usize,
    chunk: usize,
    turn: Cell<usize>,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let turn = self.turn.get();
        self.turn.set(turn.wrapping_add(1));
        // Sizes 1..=chunk in turn, so short reads land everywhere.
        let limit = if self.chunk == 0 {
            usize::MAX
        } else {
            1 + (turn * 7919) % self.chunk
        };
        let rest = &self.data[self.at..];
        let n = rest.len().min(buf.len()).min(limit);
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Poll::Ready(Ok(n))
    }
}

// SAFETY: `poll_read` only copies into `buf` and never reads it.
unsafe impl WritesOnly for Chunked<'_> {}

/// Run-length decoding: a tag byte `t`; `t < 0x80` copies the next `t + 1`
/// bytes; `t >= 0x80` repeats the next byte `((t & 0x7f) + 1) * 16 KiB`
/// times. Output is capped at 4 MiB.
fn expand(mut input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some((&tag, rest)) = input.split_first() {
        input = rest;
        if out.len() > 4 << 20 {
            break;
        }
        if tag < 0x80 {
            let n = (tag as usize + 1).min(input.len());
            out.extend_from_slice(&input[..n]);
            input = &input[n..];
        } else {
            let Some((&byte, rest)) = input.split_first() else {
                break;
            };
            input = rest;
            out.resize(out.len() + ((tag & 0x7f) as usize + 1) * 16 * 1024, byte);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (mode, chunk) = (data[0], data[1]);
    let expanded;
    let (stream, max_bytes): (&[u8], u32) = if mode & 0xf != 1 {
        let max = ((mode as u32) << 8 | chunk as u32) & 0xfff;
        (&data[2..], max)
    } else {
        expanded = expand(&data[2..]);
        // 0..=3 MiB in 256 KiB steps, plus a few odd sizes.
        let max = (mode as u32 >> 4) * (256 << 10) % (3 << 20) + (chunk as u32 & 3);
        (&expanded[..], max)
    };
    let mut reader = Chunked {
        data: stream,
        at: 0,
        // Reads of a few bytes over megabytes would take seconds: in the
        // run-length mode reads come in up to `chunk` * 16 KiB bytes.
        chunk: (chunk >> 2) as usize * if mode & 0xf == 1 { 16 << 10 } else { 1 },
        turn: Cell::new(0),
    };
    let bound = (max_bytes as usize).max(INITIAL_CAPACITY_BYTES);
    loop {
        let start = reader.at;
        LARGEST.store(0, Ordering::Relaxed);
        let result = futures_lite::future::block_on(read_frame(&mut reader, max_bytes));
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(
            largest <= bound,
            "an allocation of {largest} bytes reading a frame with a limit of {max_bytes}"
        );
        match result {
            Ok(None) => {
                assert_eq!(start, stream.len(), "a clean end only between frames");
                break;
            }
            Ok(Some(body)) => {
                assert!(body.len() <= max_bytes as usize);
                let claimed = i32::from_be_bytes(stream[start..start + 4].try_into().unwrap());
                assert_eq!(claimed as usize, body.len());
                assert_eq!(&body[..], &stream[start + 4..start + 4 + body.len()]);
                assert_eq!(reader.at, start + 4 + body.len());
            }
            Err(FrameError::BadLength(claimed, max)) => {
                assert!(claimed < 0 || claimed as u32 > max);
                break;
            }
            Err(FrameError::Truncated) => {
                assert_eq!(reader.at, stream.len());
                break;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
});
