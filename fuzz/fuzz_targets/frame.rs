//! The Kafka frame reader (`protocol::frame::read_frame`) over an arbitrary
//! byte stream, delivered in reads of fuzzer-chosen sizes.
//!
//! Input: `[mode][chunk][stream...]`.
//! - `mode & 0xf != 1`: the stream is the rest of the input as it is, the
//!   frame limit is small (0..=4095 bytes, from `mode` and `chunk`) and the
//!   body buffer starts at the broker's 1 MiB, so it never grows.
//! - `mode & 0xf == 1`: the rest is run-length coded (see `expand`) so that
//!   a few bytes describe frames of up to 256 KiB, under limits up to
//!   240 KiB, and the body buffer starts at 1 to 8 KiB: this reaches the
//!   buffer's growth (`read_frame_growing_from`, the very code the broker
//!   runs past its 1 MiB start) with frames of kilobytes, which keeps the
//!   target fast. (Before, this mode read real megabyte frames at 120
//!   executions a second.)
//!
//! Checks: no panic; every frame returned is exactly the next bytes of the
//! stream and within the limit; a clean end comes only between frames; and
//! no allocation made while reading exceeds the larger of the limit and the
//! initial capacity (the reader must not over-allocate what a peer claims).
#![no_main]

use futures_lite::io::AsyncRead;
use libfuzzer_sys::fuzz_target;
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use wire::alloc_guard::ReservingAllocator;
use wire::frame::{read_frame_growing_from, FrameError, WritesOnly};

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

/// The broker's initial body buffer (`protocol::frame`).
const BROKER_INITIAL_CAPACITY_BYTES: usize = 1 << 20;

/// What one run-length tag repeats, times 1 to 128.
const REPEAT_UNIT_BYTES: usize = 256;

/// The run-length mode's streams stop growing past this.
const EXPANDED_MAX_BYTES: usize = 256 << 10;

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
/// bytes; `t >= 0x80` repeats the next byte `((t & 0x7f) + 1) * 256`
/// times. Output stops growing past 256 KiB.
fn expand(mut input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some((&tag, rest)) = input.split_first() {
        input = rest;
        if out.len() > EXPANDED_MAX_BYTES {
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
            out.resize(out.len() + ((tag & 0x7f) as usize + 1) * REPEAT_UNIT_BYTES, byte);
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
    let run_length = mode & 0xf == 1;
    let (stream, max_bytes, initial_capacity): (&[u8], u32, usize) = if !run_length {
        let max = ((mode as u32) << 8 | chunk as u32) & 0xfff;
        (&data[2..], max, BROKER_INITIAL_CAPACITY_BYTES)
    } else {
        expanded = expand(&data[2..]);
        // 0..=240 KiB in 16 KiB steps, plus a few odd sizes; the buffer
        // starts at 1, 2, 4 or 8 KiB.
        let max = (mode as u32 >> 4) * (16 << 10) + (chunk as u32 & 3);
        (&expanded[..], max, 1024 << (chunk >> 6))
    };
    let mut reader = Chunked {
        data: stream,
        at: 0,
        // Sizes of at most 1 to 63 bytes (0: unlimited); in the run-length
        // mode, where reads of a byte or two over a long stream are slow,
        // 64 to 960 bytes (bits 2..6 of `chunk`; bits 6..8 chose the
        // initial capacity).
        chunk: if run_length {
            (chunk >> 2 & 0xf) as usize * 64
        } else {
            (chunk >> 2) as usize
        },
        turn: Cell::new(0),
    };
    let bound = (max_bytes as usize).max(initial_capacity);
    loop {
        let start = reader.at;
        LARGEST.store(0, Ordering::Relaxed);
        let result = futures_lite::future::block_on(read_frame_growing_from(
            &mut reader,
            max_bytes,
            initial_capacity,
        ));
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
