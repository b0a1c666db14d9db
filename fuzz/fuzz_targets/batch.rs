//! RecordBatch validation as the produce path runs it
//! (`protocol::batch::validate_producer_batch_with`, compressed batches
//! included once the validator opens them), and `BatchIter` over fetched
//! data (a segment read, a leader's fetch answer, the offsets loader's read).
//!
//! Input: `[flags][bytes...]`.
//! - bit 0: `require_keys` (a compacted topic).
//! - bit 1: fix the CRC32C before validating, and bit 2: fix `batchLength`,
//!   so that mutations reach the records instead of failing the checksum.
//! - bit 3: the bytes are fetched data: iterate its batches and validate
//!   each (with the same fixes); otherwise the bytes are one producer batch.
//!
//! Checks: no panic; a batch that validates has a header that agrees with
//! its bytes; `BatchIter` yields batches in order, inside the buffer, and
//! `consumed()` is where they end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::batch::{
    validate_producer_batch_with, BatchHeader, BatchIter, BATCH_HEADER_LEN, LOG_OVERHEAD,
};

#[global_allocator]
static ALLOCATOR: wire::alloc_guard::ReservingAllocator =
    wire::alloc_guard::ReservingAllocator;

const BATCH_LENGTH_AT: usize = 8;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

fn fix(batch: &mut [u8], fix_crc: bool, fix_length: bool) {
    if batch.len() < BATCH_HEADER_LEN {
        return;
    }
    if fix_length {
        let length = (batch.len() - LOG_OVERHEAD) as i32;
        batch[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    }
    if fix_crc {
        let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

fn validate(batch: &[u8], require_keys: bool) {
    if let Ok(header) = validate_producer_batch_with(batch, require_keys) {
        assert_eq!(header.size, batch.len());
        assert_eq!(header.magic, 2);
        assert!(header.record_count > 0);
        assert!(header.crc_matches(batch));
        assert_eq!(BatchHeader::parse(batch), Ok(header));
        if !require_keys {
            return;
        }
        // What a compacted topic accepts, any topic accepts.
        assert!(validate_producer_batch_with(batch, false).is_ok());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let require_keys = flags & 1 != 0;
    let (fix_crc, fix_length) = (flags & 2 != 0, flags & 4 != 0);
    if flags & 8 == 0 {
        let mut batch = bytes.to_vec();
        fix(&mut batch, fix_crc, fix_length);
        validate(&batch, require_keys);
        return;
    }
    let mut iter = BatchIter::new(bytes);
    let mut end = 0;
    for (header, at) in iter.by_ref() {
        assert_eq!(at, end, "batches are contiguous");
        assert!(header.size >= BATCH_HEADER_LEN);
        end = at + header.size;
        assert!(end <= bytes.len(), "a yielded batch is whole");
        let mut batch = bytes[at..end].to_vec();
        fix(&mut batch, fix_crc, false);
        validate(&batch, require_keys);
    }
    assert_eq!(iter.consumed(), end);
});
