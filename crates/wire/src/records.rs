//! The records inside a RecordBatch v2, read as a bounded stream.
//!
//! Owns everything that opens a batch's records field: the codecs Kafka
//! defines (gzip, snappy in xerial framing or raw, lz4 frames, zstd), each
//! decompressed as a stream into one fixed-size buffer with a bound on the
//! bytes it may produce, and the record walk (varints parsed from that
//! stream, keys and values skipped unless asked for). No buffer is ever
//! sized from a count or a length read from the wire: a record that claims
//! two billion headers costs the bytes it really has, and a compression bomb
//! stops at the bound. Three kinds of callers:
//! - produce validation (`validate_records`, through
//!   `batch::validate_producer_batch_with`), which only skips: it runs on the
//!   shard that owns the partition, synchronously, once per produced batch;
//! - the log cleaner, on glommio's blocking thread pool (`open_records`,
//!   `BatchRecords::next_record`);
//! - whoever needs a batch's records materialised, such as the group
//!   coordinator's offsets loader (`decode_records_bounded`).
//!
//! Pure code (no I/O, no shared state): any shard or thread may call it.
use super::batch::{
    BatchError, BatchHeader, KeylessRecords, RecordChecks, BATCH_HEADER_LEN, NO_TIMESTAMP,
};
use bytes::Bytes;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, TimestampType};
use std::io::Read;

/// The most bytes a batch's records may decompress to, unless the topic's
/// `max.message.bytes` is larger (see `decompressed_bytes_max`).
///
/// Kafka sets no such bound; Tidemark needs one because a batch is stored
/// unopened and opened again later (by the cleaner, the offsets loader). The
/// value is 64 times Kafka's default `max.message.bytes` (1 MiB): far above
/// what real producers send (their batches default to 16 KiB in the Java
/// client and 1 MB in librdkafka), and small enough that one batch never
/// takes a noticeable part of a host's memory, and that decompressing it to
/// the end costs tens of milliseconds of one core at most.
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = 64 << 20;

/// The largest zstd window accepted: zstd's own default limit for
/// decompression (`ZSTD_WINDOWLOG_LIMIT_DEFAULT`), which is also what Kafka's
/// zstd-jni accepts. The window is the one buffer whose size a frame header
/// chooses; this caps it at 128 MiB of address space, touched only as far as
/// the frame really fills it.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// The buffer the decompressed stream is read through, allocated once per
/// batch opened.
const READ_BUFFER_BYTES: usize = 32 << 10;

/// Snappy's densest element, a 3-byte copy, produces 64 bytes: no block can
/// decompress to more than 22 times its size. A block claiming more lies.
const SNAPPY_EXPANSION_MAX: usize = 22;

/// The header of xerial's snappy framing, as Kafka's Java client writes it.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
/// Magic, version and compatible version.
const XERIAL_HEADER_LEN: usize = 16;

/// What a materialised record costs beyond its key and value bytes (the
/// `Record` itself, the `Bytes` handles), and each of its headers beyond its
/// bytes (an `IndexMap` entry). Charged against the bound by
/// `BatchRecords::next_record`, so that a batch of a million empty headers
/// cannot turn a few MiB of input into GiB of structures.
const RECORD_COST_BYTES: usize = std::mem::size_of::<Record>();
const HEADER_COST_BYTES: usize = 96;

const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;
const DELETE_HORIZON_FLAG: i16 = 0x40;
const LOG_APPEND_TIME_FLAG: i16 = 0x08;

/// The bound on decompressed bytes for a topic: `DECOMPRESSED_BATCH_BYTES_MAX`,
/// or the topic's `max.message.bytes` when that is larger, so that any batch
/// the topic accepts uncompressed it also accepts compressed.
pub fn decompressed_bytes_max(max_message_bytes: i32) -> usize {
    DECOMPRESSED_BATCH_BYTES_MAX.max(usize::try_from(max_message_bytes).unwrap_or(0))
}

/// The codec named by a batch's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    /// Bits 0-2 of the attributes; 5, 6 and 7 are undefined in Kafka.
    pub fn of(attributes: i16) -> Result<Codec, BatchError> {
        match attributes & 0x07 {
            0 => Ok(Codec::None),
            1 => Ok(Codec::Gzip),
            2 => Ok(Codec::Snappy),
            3 => Ok(Codec::Lz4),
            4 => Ok(Codec::Zstd),
            other => Err(BatchError::UnsupportedCompression(other as u8)),
        }
    }

    /// The `kafka-protocol` name of the codec.
    pub fn compression(self) -> Compression {
        match self {
            Codec::None => Compression::None,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
        }
    }
}

// ---------------------------------------------------------------------------
// Byte inputs: the records field as it is (a slice) or decompressed (a stream)
// ---------------------------------------------------------------------------

/// Where the record walk reads its bytes from.
trait RecordInput {
    /// The next byte; `None` at the end of the records.
    fn byte(&mut self) -> Result<Option<u8>, BatchError>;
    /// Skips `n` bytes; false if the records end first.
    fn skip(&mut self, n: usize) -> Result<bool, BatchError>;
    /// Appends `n` bytes to `out` (which grows only as bytes arrive); false
    /// if the records end first.
    fn take(&mut self, n: usize, out: &mut Vec<u8>) -> Result<bool, BatchError>;
    /// True when no byte is left.
    fn at_end(&mut self) -> Result<bool, BatchError>;
    /// The bytes left, when known without reading further.
    fn remaining(&self) -> Option<usize>;
    /// The bytes at hand without reading further (a fast path for varints).
    fn at_hand(&self) -> &[u8];
    /// Consumes `n <= at_hand().len()` bytes.
    fn consume(&mut self, n: usize);
}

/// The records field of an uncompressed batch.
struct SliceInput<'a> {
    buf: &'a [u8],
}

impl RecordInput for SliceInput<'_> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, BatchError> {
        Ok(self.buf.split_first().map(|(&b, rest)| {
            self.buf = rest;
            b
        }))
    }

    #[inline]
    fn skip(&mut self, n: usize) -> Result<bool, BatchError> {
        match self.buf.get(n..) {
            Some(rest) => {
                self.buf = rest;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn take(&mut self, n: usize, out: &mut Vec<u8>) -> Result<bool, BatchError> {
        match (self.buf.get(..n), self.buf.get(n..)) {
            (Some(taken), Some(rest)) => {
                out.extend_from_slice(taken);
                self.buf = rest;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn at_end(&mut self) -> Result<bool, BatchError> {
        Ok(self.buf.is_empty())
    }

    fn remaining(&self) -> Option<usize> {
        Some(self.buf.len())
    }

    #[inline]
    fn at_hand(&self) -> &[u8] {
        self.buf
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        self.buf = self.buf.get(n..).unwrap_or_default();
    }
}

/// A decompressing reader with a bound on what it produces, read through
/// one fixed buffer.
struct StreamInput<'a> {
    source: Decompressor<'a>,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    produced_bytes: usize,
    bytes_max: usize,
    ended: bool,
}

impl<'a> StreamInput<'a> {
    fn new(codec: Codec, compressed: &'a [u8], bytes_max: usize) -> Result<Self, BatchError> {
        Ok(StreamInput {
            source: Decompressor::new(codec, compressed, bytes_max)?,
            buf: vec![0u8; READ_BUFFER_BYTES].into_boxed_slice(),
            pos: 0,
            len: 0,
            produced_bytes: 0,
            bytes_max,
            ended: false,
        })
    }

    /// Reads the next chunk; false at the end of the stream.
    fn refill(&mut self) -> Result<bool, BatchError> {
        while self.pos >= self.len {
            if self.ended {
                return Ok(false);
            }
            let n = self.source.read(&mut self.buf)?;
            if n == 0 {
                self.ended = true;
                return Ok(false);
            }
            self.produced_bytes = self.produced_bytes.saturating_add(n);
            if self.produced_bytes > self.bytes_max {
                return Err(BatchError::TooLarge {
                    bytes_max: self.bytes_max,
                });
            }
            self.pos = 0;
            self.len = n;
        }
        Ok(true)
    }

    /// The buffered bytes not consumed yet.
    fn buffered(&self) -> &[u8] {
        self.buf.get(self.pos..self.len).unwrap_or_default()
    }

    /// After the records: the codec's stream must end cleanly.
    fn finish(self) -> Result<(), BatchError> {
        self.source.finish()
    }
}

impl RecordInput for StreamInput<'_> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, BatchError> {
        if self.pos >= self.len && !self.refill()? {
            return Ok(None);
        }
        let b = self.buf.get(self.pos).copied();
        self.pos += 1;
        Ok(b)
    }

    fn skip(&mut self, mut n: usize) -> Result<bool, BatchError> {
        while n > 0 {
            if !self.refill()? {
                return Ok(false);
            }
            let step = n.min(self.len - self.pos);
            self.pos += step;
            n -= step;
        }
        Ok(true)
    }

    fn take(&mut self, mut n: usize, out: &mut Vec<u8>) -> Result<bool, BatchError> {
        while n > 0 {
            if !self.refill()? {
                return Ok(false);
            }
            let chunk = self.buffered();
            let step = n.min(chunk.len());
            out.extend_from_slice(chunk.get(..step).unwrap_or_default());
            self.pos += step;
            n -= step;
        }
        Ok(true)
    }

    fn at_end(&mut self) -> Result<bool, BatchError> {
        Ok(!self.refill()?)
    }

    fn remaining(&self) -> Option<usize> {
        None
    }

    #[inline]
    fn at_hand(&self) -> &[u8] {
        self.buffered()
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.len);
    }
}

/// The decompressors, each streaming from the records field.
enum Decompressor<'a> {
    Gzip(Box<flate2::bufread::MultiGzDecoder<&'a [u8]>>),
    Snappy(SnappyReader<'a>),
    Lz4(lz4::Decoder<&'a [u8]>),
    Zstd(Box<zstd::stream::read::Decoder<'static, &'a [u8]>>),
}

impl<'a> Decompressor<'a> {
    fn new(codec: Codec, compressed: &'a [u8], bytes_max: usize) -> Result<Self, BatchError> {
        let corrupt = |_| BatchError::Corrupt(not_decompressible(codec));
        Ok(match codec {
            Codec::None => return Err(INVALID("uncompressed records are not streamed")),
            Codec::Gzip => {
                Decompressor::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(compressed)))
            }
            Codec::Snappy => Decompressor::Snappy(SnappyReader::new(compressed, bytes_max)?),
            Codec::Lz4 => Decompressor::Lz4(lz4::Decoder::new(compressed).map_err(corrupt)?),
            Codec::Zstd => {
                let mut decoder =
                    zstd::stream::read::Decoder::with_buffer(compressed).map_err(corrupt)?;
                decoder
                    .window_log_max(ZSTD_WINDOW_LOG_MAX)
                    .map_err(corrupt)?;
                Decompressor::Zstd(Box::new(decoder))
            }
        })
    }

    fn codec(&self) -> Codec {
        match self {
            Decompressor::Gzip(_) => Codec::Gzip,
            Decompressor::Snappy(_) => Codec::Snappy,
            Decompressor::Lz4(_) => Codec::Lz4,
            Decompressor::Zstd(_) => Codec::Zstd,
        }
    }

    fn read(&mut self, out: &mut [u8]) -> Result<usize, BatchError> {
        let codec = self.codec();
        let result = match self {
            Decompressor::Gzip(d) => d.read(out),
            Decompressor::Snappy(d) => return d.read(out),
            Decompressor::Lz4(d) => d.read(out),
            Decompressor::Zstd(d) => d.read(out),
        };
        result.map_err(|_| BatchError::Corrupt(not_decompressible(codec)))
    }

    /// An lz4 frame cut short reads as a clean end; its decoder knows.
    fn finish(self) -> Result<(), BatchError> {
        match self {
            Decompressor::Lz4(d) => d
                .finish()
                .1
                .map_err(|_| BatchError::Corrupt("the lz4 frame is cut off")),
            _ => Ok(()),
        }
    }
}

fn not_decompressible(codec: Codec) -> &'static str {
    match codec {
        Codec::None => "records do not parse",
        Codec::Gzip => "the records do not decompress as gzip",
        Codec::Snappy => "the records do not decompress as snappy",
        Codec::Lz4 => "the records do not decompress as an lz4 frame",
        Codec::Zstd => "the records do not decompress as zstd",
    }
}

/// Snappy as Kafka's clients write it: xerial's framing (a 16-byte header,
/// then blocks of a 4-byte big-endian length and a raw snappy block), or,
/// without that header, one raw snappy block (as librdkafka may write, and as
/// xerial's reader accepts). Each block's claimed length is checked against
/// what is left of the bound, and against what its size can hold, before
/// its buffer is sized.
struct SnappyReader<'a> {
    /// The blocks not decompressed yet (for raw snappy, the one block).
    input: &'a [u8],
    framed: bool,
    block: Vec<u8>,
    pos: usize,
    bytes_left: usize,
    decoder: snap::raw::Decoder,
}

impl<'a> SnappyReader<'a> {
    fn new(compressed: &'a [u8], bytes_max: usize) -> Result<Self, BatchError> {
        let framed = compressed.starts_with(XERIAL_MAGIC);
        let input = if framed {
            compressed
                .get(XERIAL_HEADER_LEN..)
                .ok_or(BatchError::Corrupt("the xerial snappy header is cut off"))?
        } else {
            compressed
        };
        Ok(SnappyReader {
            input,
            framed,
            block: Vec::new(),
            pos: 0,
            bytes_left: bytes_max,
            decoder: snap::raw::Decoder::new(),
        })
    }

    fn read(&mut self, out: &mut [u8]) -> Result<usize, BatchError> {
        while self.pos >= self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let chunk = self.block.get(self.pos..).unwrap_or_default();
        let n = chunk.len().min(out.len());
        out.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(chunk.get(..n).unwrap_or_default());
        self.pos += n;
        Ok(n)
    }

    /// Decompresses the next block into `block`; false when none is left.
    fn next_block(&mut self) -> Result<bool, BatchError> {
        let corrupt = BatchError::Corrupt;
        if self.input.is_empty() {
            return Ok(false);
        }
        let compressed = if self.framed {
            // xerial's reader skips a header repeated by concatenated streams.
            if self.input.starts_with(XERIAL_MAGIC) {
                self.input = self.input.get(XERIAL_HEADER_LEN..).unwrap_or_default();
                return Ok(true);
            }
            let (length, rest) = self
                .input
                .split_first_chunk::<4>()
                .ok_or(corrupt("a snappy block length is cut off"))?;
            let length = u32::from_be_bytes(*length) as usize;
            let block = rest
                .get(..length)
                .ok_or(corrupt("a snappy block runs past the records"))?;
            self.input = rest.get(length..).unwrap_or_default();
            block
        } else {
            std::mem::take(&mut self.input)
        };
        let claimed = snap::raw::decompress_len(compressed)
            .map_err(|_| corrupt("the records do not decompress as snappy"))?;
        if claimed > compressed.len().saturating_mul(SNAPPY_EXPANSION_MAX) {
            return Err(corrupt("a snappy block claims more than its size can hold"));
        }
        if claimed > self.bytes_left {
            return Err(BatchError::TooLarge {
                bytes_max: self.bytes_left,
            });
        }
        self.bytes_left -= claimed;
        self.block.clear();
        self.block.resize(claimed, 0);
        self.pos = 0;
        let written = self
            .decoder
            .decompress(compressed, &mut self.block)
            .map_err(|_| corrupt("the records do not decompress as snappy"))?;
        self.block.truncate(written);
        Ok(true)
    }
}

// ---------------------------------------------------------------------------
// The record walk
// ---------------------------------------------------------------------------

/// One record's fields, as read from the stream. Keys, values and headers
/// are only filled when the walk was asked to keep them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordFields {
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    /// -1 for a null key.
    pub key_len: i32,
    /// -1 for a null value (a tombstone).
    pub value_len: i32,
    pub header_count: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// The fields of one record, read within its declared length: a field that
/// runs past the length, or bytes left after the last header, break
/// Kafka's record format (INVALID_RECORD, as Kafka's `DefaultRecord`).
struct Body<'i, I> {
    input: &'i mut I,
    left: usize,
}

const INVALID: fn(&'static str) -> BatchError = BatchError::Invalid;

impl<I: RecordInput> Body<'_, I> {
    #[inline]
    fn byte(&mut self, what: &'static str) -> Result<u8, BatchError> {
        if self.left == 0 {
            return Err(INVALID(what));
        }
        self.left -= 1;
        self.input.byte()?.ok_or(INVALID(what))
    }

    #[inline]
    fn varint(&mut self, what: &'static str) -> Result<i32, BatchError> {
        let raw = self.unsigned_varint(5, what)?;
        let raw = u32::try_from(raw).map_err(|_| INVALID(what))?;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    #[inline]
    fn varlong(&mut self, what: &'static str) -> Result<i64, BatchError> {
        let raw = self.unsigned_varint(10, what)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    #[inline]
    fn unsigned_varint(&mut self, max_bytes: u32, what: &'static str) -> Result<u64, BatchError> {
        if let Some((value, used)) = varint_at_hand(self.input.at_hand(), max_bytes) {
            if used <= self.left {
                self.input.consume(used);
                self.left -= used;
                return Ok(value);
            }
        }
        self.unsigned_varint_bytewise(max_bytes, what)
    }

    /// The slow path, across a chunk boundary of the stream (or at an end).
    fn unsigned_varint_bytewise(
        &mut self,
        max_bytes: u32,
        what: &'static str,
    ) -> Result<u64, BatchError> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let b = self.byte(what)?;
            value |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(INVALID(what))
    }

    /// A length where -1 means null.
    #[inline]
    fn nullable_len(&mut self, what: &'static str) -> Result<i32, BatchError> {
        let len = self.varint(what)?;
        if len < -1 {
            return Err(INVALID(what));
        }
        Ok(len)
    }

    /// Skips `len` bytes, or keeps them when `keep`.
    #[inline]
    fn bytes(
        &mut self,
        len: i32,
        keep: bool,
        what: &'static str,
    ) -> Result<Option<Vec<u8>>, BatchError> {
        let Ok(n) = usize::try_from(len) else {
            return Ok(None);
        };
        if n > self.left {
            return Err(INVALID(what));
        }
        self.left -= n;
        let mut kept = keep.then(Vec::new);
        let whole = match kept.as_mut() {
            Some(out) => self.input.take(n, out)?,
            None => self.input.skip(n)?,
        };
        if !whole {
            return Err(INVALID(what));
        }
        Ok(kept)
    }
}

/// What a record walk keeps of each record beyond its lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Nothing,
    Key,
    All,
}

/// A varint whole within `buf` (the common case), with the bytes it took;
/// `None` when it runs past `buf` or past `max_bytes`, for the slow path to
/// sort out.
#[inline]
fn varint_at_hand(buf: &[u8], max_bytes: u32) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().take(max_bytes as usize).enumerate() {
        value |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Reads one record, keeping what `keep` says.
#[inline]
fn read_record<I: RecordInput>(
    input: &mut I,
    keep: Keep,
    out: &mut RecordFields,
) -> Result<(), BatchError> {
    let length = read_length(input)?;
    let mut body = Body {
        input,
        left: length,
    };
    body.byte("empty record")?; // attributes: unused in v2
    out.timestamp_delta = body.varlong("bad timestamp delta")?;
    out.offset_delta = body.varint("bad offset delta")?;
    out.key_len = body.nullable_len("bad key")?;
    out.key = body.bytes(out.key_len, keep != Keep::Nothing, "bad key")?;
    out.value_len = body.nullable_len("bad value")?;
    out.value = body.bytes(out.value_len, keep == Keep::All, "bad value")?;
    out.header_count = body.varint("bad header count")?;
    read_headers(&mut body, out, keep == Keep::All)?;
    if body.left != 0 {
        return Err(INVALID("record has bytes past its last header"));
    }
    Ok(())
}

/// A record's length prefix, read outside any record.
#[inline]
fn read_length<I: RecordInput>(input: &mut I) -> Result<usize, BatchError> {
    let mut outer = Body {
        input,
        left: usize::MAX,
    };
    let length = outer.varint("bad record length")?;
    let length = usize::try_from(length).map_err(|_| INVALID("bad record length"))?;
    if outer.input.remaining().is_some_and(|left| length > left) {
        return Err(INVALID("record length runs past the batch"));
    }
    Ok(length)
}

fn read_headers<I: RecordInput>(
    body: &mut Body<'_, I>,
    out: &mut RecordFields,
    keep: bool,
) -> Result<(), BatchError> {
    let count = usize::try_from(out.header_count).map_err(|_| INVALID("negative header count"))?;
    // Each header takes at least two bytes (two length varints): a count
    // beyond that is refused before the loop, as Kafka refuses a count
    // larger than the bytes left.
    if count > body.left / 2 {
        return Err(INVALID("more headers than the record has bytes"));
    }
    out.headers.clear();
    for _ in 0..count {
        let key_len = body.varint("bad header key")?;
        if key_len < 0 {
            return Err(INVALID("bad header key"));
        }
        let key = body.bytes(key_len, keep, "bad header key")?;
        let value_len = body.nullable_len("bad header value")?;
        let value = body.bytes(value_len, keep, "bad header value")?;
        if let Some(key) = key {
            out.headers.push((key, value));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Produce-time validation
// ---------------------------------------------------------------------------

/// Walks every record of a batch whose header already passed validation,
/// as Kafka's log validator does for magic 2, without keeping any: lengths
/// add up within each record, offset deltas run 0, 1, 2, ..., the count
/// matches the header, nothing follows the last record; then, with
/// `require_keys` (a compacted topic), every record has a key (or the
/// batch is refused with `KeylessRecords`). Compressed records are
/// decompressed as a stream within `decompressed_bytes_max`.
pub fn validate_records(
    header: &BatchHeader,
    batch: &[u8],
    require_keys: bool,
    decompressed_bytes_max: usize,
) -> Result<(), BatchError> {
    let checks = RecordChecks::keys(require_keys);
    validate_records_with(header, batch, &checks, decompressed_bytes_max).map(|_| ())
}

/// As `validate_records`, with the records' keys and timestamps checked by
/// `checks`. Returns the records' largest timestamp.
pub fn validate_records_with(
    header: &BatchHeader,
    batch: &[u8],
    checks: &RecordChecks,
    decompressed_bytes_max: usize,
) -> Result<i64, BatchError> {
    let codec = Codec::of(header.attributes)?;
    let field = records_field(header, batch)?;
    if codec == Codec::None {
        let (keyless, max_timestamp) = walk(&mut SliceInput { buf: field }, header, checks)?;
        keyless.into_result()?;
        return Ok(max_timestamp);
    }
    let mut input = StreamInput::new(codec, field, decompressed_bytes_max)?;
    let (keyless, max_timestamp) = walk(&mut input, header, checks)?;
    input.finish()?;
    keyless.into_result()?;
    Ok(max_timestamp)
}

/// Walks the records: a malformed one, or one whose timestamp `checks`
/// refuses, is the batch's error; the keyless ones (with `require_keys`)
/// are returned for the caller to refuse once the rest of the batch is
/// known to be well formed, with the largest timestamp.
fn walk<I: RecordInput>(
    input: &mut I,
    header: &BatchHeader,
    checks: &RecordChecks,
) -> Result<(KeylessRecords, i64), BatchError> {
    let mut fields = RecordFields::default();
    let mut keyless = KeylessRecords::default();
    let mut max_timestamp = NO_TIMESTAMP;
    for expected_delta in 0..header.record_count {
        if input.at_end()? {
            return Err(INVALID("fewer records than the header counts"));
        }
        read_record(input, Keep::Nothing, &mut fields)?;
        if fields.offset_delta != expected_delta {
            return Err(INVALID("record offset deltas are not consecutive"));
        }
        if checks.require_keys && fields.key_len < 0 {
            keyless.note(expected_delta);
        }
        let timestamp = header.base_timestamp.wrapping_add(fields.timestamp_delta);
        checks.check_timestamp(header, timestamp)?;
        max_timestamp = max_timestamp.max(timestamp);
    }
    if !input.at_end()? {
        return Err(INVALID("more records than the header counts"));
    }
    Ok((keyless, max_timestamp))
}

/// The records field of a batch: after the header, up to the batch's size.
fn records_field<'a>(header: &BatchHeader, batch: &'a [u8]) -> Result<&'a [u8], BatchError> {
    batch
        .get(BATCH_HEADER_LEN..header.size)
        .ok_or(BatchError::Corrupt(
            "batch length runs past the records field",
        ))
}

// ---------------------------------------------------------------------------
// Reading records back: the cleaner, the offsets loader
// ---------------------------------------------------------------------------

/// The records of one batch, read one at a time. Opened by `open_records`.
pub struct BatchRecords<'a> {
    header: BatchHeader,
    codec: Codec,
    input: Input<'a>,
    read: i32,
    fields: RecordFields,
    /// What materialised records may still cost (`next_record`).
    budget_bytes: usize,
    bytes_max: usize,
}

/// The two inputs behind one type (reading back is not the hot path).
enum Input<'a> {
    Slice(SliceInput<'a>),
    Stream(Box<StreamInput<'a>>),
}

impl RecordInput for Input<'_> {
    fn byte(&mut self) -> Result<Option<u8>, BatchError> {
        match self {
            Input::Slice(i) => i.byte(),
            Input::Stream(i) => i.byte(),
        }
    }
    fn skip(&mut self, n: usize) -> Result<bool, BatchError> {
        match self {
            Input::Slice(i) => i.skip(n),
            Input::Stream(i) => i.skip(n),
        }
    }
    fn take(&mut self, n: usize, out: &mut Vec<u8>) -> Result<bool, BatchError> {
        match self {
            Input::Slice(i) => i.take(n, out),
            Input::Stream(i) => i.take(n, out),
        }
    }
    fn at_end(&mut self) -> Result<bool, BatchError> {
        match self {
            Input::Slice(i) => i.at_end(),
            Input::Stream(i) => i.at_end(),
        }
    }
    fn remaining(&self) -> Option<usize> {
        match self {
            Input::Slice(i) => i.remaining(),
            Input::Stream(i) => i.remaining(),
        }
    }
    fn at_hand(&self) -> &[u8] {
        match self {
            Input::Slice(i) => i.at_hand(),
            Input::Stream(i) => i.at_hand(),
        }
    }
    fn consume(&mut self, n: usize) {
        match self {
            Input::Slice(i) => i.consume(n),
            Input::Stream(i) => i.consume(n),
        }
    }
}

/// Opens the records of the v2 batch at the start of `batch` (which holds
/// at least the whole batch). The CRC is not checked here: produce checked
/// it, and storage checked it at recovery; `decode_records_bounded` checks it.
pub fn open_records(
    batch: &[u8],
    decompressed_bytes_max: usize,
) -> Result<BatchRecords<'_>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.magic != 2 {
        return Err(INVALID("only record batches with magic 2 are read"));
    }
    if header.record_count < 0 {
        return Err(INVALID("negative record count"));
    }
    let codec = Codec::of(header.attributes)?;
    let field = records_field(&header, batch)?;
    let input = match codec {
        Codec::None => Input::Slice(SliceInput { buf: field }),
        _ => Input::Stream(Box::new(StreamInput::new(
            codec,
            field,
            decompressed_bytes_max,
        )?)),
    };
    Ok(BatchRecords {
        header,
        codec,
        input,
        read: 0,
        fields: RecordFields::default(),
        budget_bytes: decompressed_bytes_max,
        bytes_max: decompressed_bytes_max,
    })
}

impl BatchRecords<'_> {
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    pub fn compression(&self) -> Compression {
        self.codec.compression()
    }

    /// The next record's fields without its key, value or headers (which
    /// are skipped in the stream); `None` after the header's count.
    pub fn next_fields(&mut self) -> Result<Option<&RecordFields>, BatchError> {
        self.advance(Keep::Nothing)
    }

    /// The next record's absolute offset and its key (`None` for a null
    /// key), its value and headers skipped; `None` after the header's count.
    /// What the log cleaner needs to find each key's newest record.
    pub fn next_key(&mut self) -> Result<Option<(i64, Option<Bytes>)>, BatchError> {
        if !self.start_next()? {
            return Ok(None);
        }
        read_record(&mut self.input, Keep::Key, &mut self.fields)?;
        let offset = self
            .header
            .base_offset
            .wrapping_add(self.fields.offset_delta as i64);
        Ok(Some((offset, self.fields.key.take().map(Bytes::from))))
    }

    /// The next record, materialised as `kafka-protocol` would decode it
    /// (absolute offset and timestamp, the batch's producer fields).
    /// Header keys must be UTF-8. What the records cost in memory is charged
    /// against the bound, so the records of one batch never hold much more
    /// than the bound.
    pub fn next_record(&mut self) -> Result<Option<Record>, BatchError> {
        if self.advance(Keep::All)?.is_none() {
            return Ok(None);
        }
        let fields = std::mem::take(&mut self.fields);
        self.charge(&fields)?;
        self.to_record(fields).map(Some)
    }

    fn advance(&mut self, keep: Keep) -> Result<Option<&RecordFields>, BatchError> {
        if !self.start_next()? {
            return Ok(None);
        }
        read_record(&mut self.input, keep, &mut self.fields)?;
        Ok(Some(&self.fields))
    }

    /// False after the header's count; counts the record about to be read.
    fn start_next(&mut self) -> Result<bool, BatchError> {
        if self.read >= self.header.record_count {
            return Ok(false);
        }
        if self.input.at_end()? {
            return Err(INVALID("fewer records than the header counts"));
        }
        self.read += 1;
        Ok(true)
    }

    fn charge(&mut self, fields: &RecordFields) -> Result<(), BatchError> {
        let headers: usize = fields
            .headers
            .iter()
            .map(|(k, v)| HEADER_COST_BYTES + k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        let cost = RECORD_COST_BYTES
            + fields.key.as_ref().map_or(0, Vec::len)
            + fields.value.as_ref().map_or(0, Vec::len)
            + headers;
        self.budget_bytes = self
            .budget_bytes
            .checked_sub(cost)
            .ok_or(BatchError::TooLarge {
                bytes_max: self.bytes_max,
            })?;
        Ok(())
    }

    fn to_record(&self, fields: RecordFields) -> Result<Record, BatchError> {
        let h = &self.header;
        let mut headers = indexmap::IndexMap::with_capacity(0);
        for (key, value) in fields.headers {
            let key = StrBytes::try_from(Bytes::from(key))
                .map_err(|_| INVALID("a header key is not UTF-8"))?;
            headers.insert(key, value.map(Bytes::from));
        }
        Ok(Record {
            transactional: h.attributes & TRANSACTIONAL_FLAG != 0,
            control: h.attributes & CONTROL_FLAG != 0,
            delete_horizon: h.attributes & DELETE_HORIZON_FLAG != 0,
            timestamp_type: if h.attributes & LOG_APPEND_TIME_FLAG != 0 {
                TimestampType::LogAppend
            } else {
                TimestampType::Creation
            },
            partition_leader_epoch: h.leader_epoch,
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            sequence: h.base_sequence.wrapping_add(fields.offset_delta),
            offset: h.base_offset.wrapping_add(fields.offset_delta as i64),
            timestamp: record_timestamp(h, fields.timestamp_delta),
            key: fields.key.map(Bytes::from),
            value: fields.value.map(Bytes::from),
            headers,
        })
    }

    /// After the last record: nothing may follow it, and the codec's stream
    /// must end cleanly.
    pub fn finish(mut self) -> Result<(), BatchError> {
        if self.read < self.header.record_count {
            return Err(INVALID("fewer records read than the header counts"));
        }
        if !self.input.at_end()? {
            return Err(INVALID("more records than the header counts"));
        }
        match self.input {
            Input::Slice(_) => Ok(()),
            Input::Stream(s) => s.finish(),
        }
    }
}

/// A record's timestamp, as Kafka reads it: in a LogAppendTime batch every
/// record has the batch's `maxTimestamp` (the broker's append time), else
/// the base timestamp plus the record's delta.
pub fn record_timestamp(header: &BatchHeader, timestamp_delta: i64) -> i64 {
    if header.attributes & LOG_APPEND_TIME_FLAG != 0 {
        header.max_timestamp
    } else {
        header.base_timestamp.wrapping_add(timestamp_delta)
    }
}

/// Every record of the one v2 batch at the start of `batch`, materialised,
/// within `DECOMPRESSED_BATCH_BYTES_MAX` (decompressed bytes, and what the
/// records cost in memory). A drop-in for `RecordBatchDecoder::decode` of one
/// batch: the CRC is checked, a batch that does not decode or is over the
/// bound is an error (to skip, not to stop on). For the group coordinator's
/// offsets loader and the cleaner.
pub fn decode_records_bounded(batch: &[u8]) -> Result<Vec<Record>, BatchError> {
    decode_records_within(batch, DECOMPRESSED_BATCH_BYTES_MAX)
}

/// As `decode_records_bounded`, with the bound given.
pub fn decode_records_within(
    batch: &[u8],
    decompressed_bytes_max: usize,
) -> Result<Vec<Record>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let whole = batch
        .get(..header.size)
        .ok_or(BatchError::Corrupt("batch length runs past the buffer"))?;
    if !header.crc_matches(whole) {
        return Err(BatchError::Corrupt("CRC32C mismatch"));
    }
    let mut records = open_records(whole, decompressed_bytes_max)?;
    let mut out = Vec::new();
    while let Some(record) = records.next_record()? {
        out.push(record);
    }
    records.finish()?;
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::batch::{
        validate_producer_batch_with, validate_producer_batch_within, BATCH_HEADER_LEN,
        KEYLESS_INDEXES_MAX,
    };
    use crate::testing::*;

    use kafka_protocol::records::RecordBatchDecoder;
    use std::io::Write;
    use std::time::{Duration, Instant};

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn compress(codec: Compression, data: &[u8]) -> Vec<u8> {
        match codec {
            Compression::Gzip => gzip(data),
            Compression::Snappy => snap::raw::Encoder::new().compress_vec(data).unwrap(),
            Compression::Lz4 => {
                let mut e = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
                e.write_all(data).unwrap();
                let (out, result) = e.finish();
                result.unwrap();
                out
            }
            Compression::Zstd => zstd::encode_all(data, 3).unwrap(),
            Compression::None => data.to_vec(),
        }
    }

    fn attributes_of(codec: Compression) -> i16 {
        match codec {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    #[test]
    fn every_codec_round_trips_against_kafka_protocol() {
        let records: Vec<Record> = (0..50).map(|i| record(i, 300)).collect();
        for codec in [Compression::None].into_iter().chain(CODECS) {
            let batch = encoded(&records, codec);
            let header = validate_producer_batch_with(&batch, false)
                .unwrap_or_else(|e| panic!("{codec:?}: {e}"));
            assert_eq!(header.record_count, 50);
            let header = BatchHeader::parse(&batch).unwrap();
            validate_records(&header, &batch, false, DECOMPRESSED_BATCH_BYTES_MAX).unwrap();
            let ours = decode_records_bounded(&batch).unwrap();
            let theirs = RecordBatchDecoder::decode(&mut Bytes::from(batch.clone()))
                .unwrap()
                .records;
            assert_eq!(ours, theirs, "{codec:?}");
            let mut open = open_records(&batch, DECOMPRESSED_BATCH_BYTES_MAX).unwrap();
            assert_eq!(open.compression(), codec);
            let mut n = 0;
            while let Some(f) = open.next_fields().unwrap() {
                assert_eq!(f.offset_delta, n);
                assert_eq!(f.value_len, if n % 5 == 0 { -1 } else { 300 });
                assert!(f.value.is_none(), "next_fields skips values");
                n += 1;
            }
            open.finish().unwrap();
        }
    }

    #[test]
    fn xerial_framing_with_several_blocks_and_raw_snappy_both_read() {
        // kafka-protocol writes xerial blocks of 32 KiB: 200 KiB of values
        // make several.
        let records: Vec<Record> = (0..20).map(|i| record(i, 10_000)).collect();
        let framed = encoded(&records, Compression::Snappy);
        assert!(framed[BATCH_HEADER_LEN..].starts_with(XERIAL_MAGIC));
        assert_eq!(
            decode_records_bounded(&framed).unwrap(),
            records_as_read(&framed)
        );
        // The same records as one raw snappy block.
        let plain = encoded(&records, Compression::None);
        let raw = compress(Compression::Snappy, &plain[BATCH_HEADER_LEN..]);
        let raw_batch = rebuilt(&plain, 2, 20, &raw);
        validate_producer_batch_with(&raw_batch, false).unwrap();
        assert_eq!(
            decode_records_bounded(&raw_batch).unwrap(),
            decode_records_bounded(&plain).unwrap()
        );
    }

    fn records_as_read(batch: &[u8]) -> Vec<Record> {
        RecordBatchDecoder::decode(&mut Bytes::copy_from_slice(batch))
            .unwrap()
            .records
    }

    #[test]
    fn undefined_codecs_are_unsupported() {
        let batch = encoded(&[record(1, 10)], Compression::None);
        for codec in 5..=7i16 {
            let bad = rebuilt(&batch, codec, 1, &batch[BATCH_HEADER_LEN..]);
            assert_eq!(
                validate_producer_batch_with(&bad, false),
                Err(BatchError::UnsupportedCompression(codec as u8))
            );
            assert!(decode_records_bounded(&bad).is_err());
        }
    }

    #[test]
    fn bytes_that_do_not_decompress_are_corrupt() {
        let batch = encoded(&[record(1, 10)], Compression::None);
        let field = &batch[BATCH_HEADER_LEN..];
        for codec in CODECS {
            let bad = rebuilt(&batch, attributes_of(codec), 1, field);
            assert!(
                matches!(
                    validate_producer_batch_with(&bad, false),
                    Err(BatchError::Corrupt(_))
                ),
                "{codec:?}: {:?}",
                validate_producer_batch_with(&bad, false)
            );
            assert!(matches!(
                decode_records_bounded(&bad),
                Err(BatchError::Corrupt(_))
            ));
        }
    }

    #[test]
    fn cut_off_streams_are_corrupt() {
        let plain = encoded(
            &(0..30).map(|i| record(i, 100)).collect::<Vec<_>>(),
            Compression::None,
        );
        for codec in CODECS {
            let compressed = compress(codec, &plain[BATCH_HEADER_LEN..]);
            let whole = rebuilt(&plain, attributes_of(codec), 30, &compressed);
            validate_producer_batch_with(&whole, false).unwrap();
            let cut = rebuilt(
                &plain,
                attributes_of(codec),
                30,
                &compressed[..compressed.len() - 3],
            );
            let e = validate_producer_batch_with(&cut, false).unwrap_err();
            assert!(
                matches!(e, BatchError::Corrupt(_) | BatchError::Invalid(_)),
                "{codec:?}: {e}"
            );
        }
    }

    #[test]
    fn compressed_garbage_records_are_invalid() {
        let batch = encoded(&[record(1, 10)], Compression::None);
        let mut seed = 99u32;
        let garbage: Vec<u8> = (0..5000)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 16) as u8
            })
            .collect();
        for codec in CODECS {
            let bad = rebuilt(&batch, attributes_of(codec), 1, &compress(codec, &garbage));
            assert!(
                matches!(
                    validate_producer_batch_with(&bad, false),
                    Err(BatchError::Invalid(_))
                ),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn a_compressed_count_that_disagrees_with_the_records_is_invalid() {
        for codec in CODECS {
            let batch = encoded(&(0..4).map(|i| record(i, 10)).collect::<Vec<_>>(), codec);
            let field = batch[BATCH_HEADER_LEN..].to_vec();
            let attributes = attributes_of(codec);
            for count in [3, 5] {
                let bad = rebuilt(&batch, attributes, count, &field);
                assert_eq!(
                    validate_producer_batch_with(&bad, false),
                    Err(BatchError::Invalid(if count == 3 {
                        "more records than the header counts"
                    } else {
                        "fewer records than the header counts"
                    })),
                    "{codec:?} count {count}"
                );
            }
        }
    }

    #[test]
    fn control_and_transactional_batches_from_clients_are_invalid() {
        for codec in [Compression::None, Compression::Lz4] {
            let batch = encoded(&[record(1, 10)], codec);
            for flag in [0x10i16, 0x20] {
                let bad = rebuilt(
                    &batch,
                    attributes_of(codec) | flag,
                    1,
                    &batch[BATCH_HEADER_LEN..],
                );
                assert!(matches!(
                    validate_producer_batch_with(&bad, false),
                    Err(BatchError::Invalid(_))
                ));
            }
        }
    }

    #[test]
    fn compacted_topics_need_keys_inside_compressed_batches_too() {
        for codec in CODECS {
            // record(0) has no key.
            let batch = encoded(&(0..3).map(|i| record(i, 10)).collect::<Vec<_>>(), codec);
            validate_producer_batch_with(&batch, false).unwrap();
            assert_eq!(
                validate_producer_batch_with(&batch, true),
                Err(BatchError::KeylessRecords(KeylessRecords {
                    indexes: vec![0],
                    total: 1
                })),
                "{codec:?}"
            );
            let keyed = encoded(&[record(1, 10), record(2, 10)], codec);
            validate_producer_batch_with(&keyed, true).unwrap();
        }
    }

    #[test]
    fn every_keyless_record_of_a_batch_is_named() {
        // Records 0, 3 and 6 have no key.
        let records: Vec<Record> = (0..8).map(|i| record(i, 10)).collect();
        for codec in CODECS.into_iter().chain([Compression::None]) {
            let batch = encoded(&records, codec);
            assert_eq!(
                validate_producer_batch_with(&batch, true),
                Err(BatchError::KeylessRecords(KeylessRecords {
                    indexes: vec![0, 3, 6],
                    total: 3
                })),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn a_malformed_batch_is_refused_as_such_before_its_keyless_records() {
        // Record 0 has no key; the batch claims one record more than it has.
        let records: Vec<Record> = (0..3).map(|i| record(i, 10)).collect();
        for codec in CODECS.into_iter().chain([Compression::None]) {
            let batch = encoded(&records, codec);
            let field = batch[BATCH_HEADER_LEN..].to_vec();
            let attributes = i16::from_be_bytes([batch[21], batch[22]]);
            let bad = rebuilt(&batch, attributes, 4, &field);
            assert!(
                matches!(
                    validate_producer_batch_with(&bad, true),
                    Err(BatchError::Invalid(_))
                ),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn keyless_records_keep_a_bounded_list_and_the_whole_count() {
        let mut keyless = KeylessRecords::default();
        for i in 0..(KEYLESS_INDEXES_MAX as i32 + 5) {
            keyless.note(i);
        }
        assert_eq!(keyless.indexes.len(), KEYLESS_INDEXES_MAX);
        assert_eq!(keyless.total, KEYLESS_INDEXES_MAX + 5);
    }

    fn peak_rss_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    #[test]
    fn a_zstd_bomb_is_refused_quickly_with_bounded_memory() {
        let bomb = zstd_bomb(65_536);
        assert!(bomb.len() < 300 << 10, "{} bytes", bomb.len());
        let batch = hand_batch(4, 1, &bomb);
        let before = peak_rss_bytes();
        let started = Instant::now();
        assert_eq!(
            validate_producer_batch_with(&batch, true),
            Err(BatchError::TooLarge {
                bytes_max: DECOMPRESSED_BATCH_BYTES_MAX
            })
        );
        assert_eq!(
            decode_records_bounded(&batch),
            Err(BatchError::TooLarge {
                bytes_max: DECOMPRESSED_BATCH_BYTES_MAX
            })
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let grown = peak_rss_bytes().saturating_sub(before);
        // The decompressed bytes pass through one 32 KiB buffer; the key the
        // decode keeps is one byte. (Other tests share the process, hence the
        // loose bound: the bomb itself is 8 GiB.)
        assert!(grown < 512 << 20, "peak RSS grew by {grown} bytes");
        // A smaller bomb under a smaller bound is refused at that bound.
        let small = hand_batch(4, 1, &zstd_bomb(100));
        assert_eq!(
            validate_producer_batch_within(&small, false, 1 << 20),
            Err(BatchError::TooLarge { bytes_max: 1 << 20 })
        );
    }

    #[test]
    fn a_zstd_frame_asking_for_a_huge_window_is_corrupt() {
        // Window log 31: 2 GiB, past ZSTD_WINDOW_LOG_MAX.
        let mut frame = zstd_bomb(2);
        frame[5] = (31 - 10) << 3;
        let batch = hand_batch(4, 1, &frame);
        assert!(matches!(
            validate_producer_batch_with(&batch, false),
            Err(BatchError::Corrupt(_))
        ));
    }

    #[test]
    fn a_gzip_record_claiming_two_billion_headers_is_invalid_at_once() {
        let record = raw_record(0, Some(b"k"), b"v", i32::MAX);
        let batch = hand_batch(1, 1, &gzip(&record));
        assert!(batch.len() < 120, "{} bytes", batch.len());
        let started = Instant::now();
        assert_eq!(
            validate_producer_batch_with(&batch, true),
            Err(BatchError::Invalid(
                "more headers than the record has bytes"
            ))
        );
        assert_eq!(
            decode_records_bounded(&batch),
            Err(BatchError::Invalid(
                "more headers than the record has bytes"
            ))
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_record_length_claiming_more_than_the_stream_holds_is_invalid() {
        // Length 2^31-1, then a few real bytes: the walk reads to the end of
        // the stream and stops there, no buffer sized from the claim.
        let mut field = Vec::new();
        zigzag(i32::MAX as i64, &mut field);
        field.extend_from_slice(&[0, 0, 0, 2, b'k', 2, b'v', 0]);
        for codec in CODECS {
            let batch = hand_batch(attributes_of(codec), 1, &compress(codec, &field));
            assert!(matches!(
                validate_producer_batch_with(&batch, false),
                Err(BatchError::Invalid(_))
            ));
            assert!(matches!(
                decode_records_bounded(&batch),
                Err(BatchError::Invalid(_))
            ));
        }
    }

    #[test]
    fn snappy_blocks_that_lie_about_their_length_are_refused_before_allocating() {
        // Raw snappy claiming 4 GiB - 1 in a 10-byte block.
        let lying = [0xff, 0xff, 0xff, 0xff, 0x0f, 0, 1, 2, 3, 4];
        let batch = hand_batch(2, 1, &lying);
        assert_eq!(
            validate_producer_batch_with(&batch, false),
            Err(BatchError::Corrupt(
                "a snappy block claims more than its size can hold"
            ))
        );
        // The same block in xerial framing.
        let mut framed = b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01".to_vec();
        framed.extend_from_slice(&(lying.len() as u32).to_be_bytes());
        framed.extend_from_slice(&lying);
        let batch = hand_batch(2, 1, &framed);
        assert_eq!(
            validate_producer_batch_with(&batch, false),
            Err(BatchError::Corrupt(
                "a snappy block claims more than its size can hold"
            ))
        );
        // A claim its size could hold but that its bytes do not fill.
        let short = [0x40, 0x00, b'a'];
        assert!(matches!(
            validate_producer_batch_with(&hand_batch(2, 1, &short), false),
            Err(BatchError::Corrupt(_))
        ));
        // A block length past the records field.
        let mut past = b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01".to_vec();
        past.extend_from_slice(&1000u32.to_be_bytes());
        past.extend_from_slice(&lying);
        assert!(matches!(
            validate_producer_batch_with(&hand_batch(2, 1, &past), false),
            Err(BatchError::Corrupt(_))
        ));
    }

    #[test]
    fn snappy_over_the_bound_is_too_large_before_allocating() {
        // 1 MiB of zeros compresses to ~48 KiB; a 64 KiB bound refuses it on
        // the claim alone.
        let mut field = Vec::new();
        zigzag(1 << 20, &mut field);
        field.resize(1 << 20, 0);
        let batch = hand_batch(2, 1, &compress(Compression::Snappy, &field));
        assert_eq!(
            validate_producer_batch_within(&batch, false, 64 << 10),
            Err(BatchError::TooLarge {
                bytes_max: 64 << 10
            })
        );
    }

    #[test]
    fn materialised_headers_are_charged_against_the_bound() {
        // 200,000 empty headers: 400 KB on the wire, far more as structures.
        let mut body = vec![0u8, 0, 0];
        zigzag(1, &mut body);
        body.push(b'k');
        zigzag(-1, &mut body);
        zigzag(200_000, &mut body);
        for _ in 0..200_000 {
            body.extend_from_slice(&[0, 1]); // key "", value null
        }
        let mut field = Vec::new();
        zigzag(body.len() as i64, &mut field);
        field.extend_from_slice(&body);
        let batch = hand_batch(1, 1, &gzip(&field));
        // Validation keeps nothing: it passes.
        validate_producer_batch_with(&batch, true).unwrap();
        assert_eq!(
            decode_records_within(&batch, 4 << 20),
            Err(BatchError::TooLarge { bytes_max: 4 << 20 })
        );
    }

    #[test]
    fn header_keys_must_be_utf8_to_materialise() {
        let mut body = vec![0u8, 0, 0];
        zigzag(-1, &mut body);
        zigzag(-1, &mut body);
        zigzag(1, &mut body);
        zigzag(2, &mut body);
        body.extend_from_slice(&[0xff, 0xfe]);
        zigzag(-1, &mut body);
        let mut field = Vec::new();
        zigzag(body.len() as i64, &mut field);
        field.extend_from_slice(&body);
        let batch = hand_batch(0, 1, &field);
        validate_producer_batch_with(&batch, false).unwrap();
        assert!(matches!(
            decode_records_bounded(&batch),
            Err(BatchError::Invalid(_))
        ));
    }

    #[test]
    fn decode_checks_the_crc() {
        let mut batch = encoded(&[record(1, 10)], Compression::Lz4);
        let last = batch.len() - 1;
        batch[last] ^= 1;
        assert_eq!(
            decode_records_bounded(&batch),
            Err(BatchError::Corrupt("CRC32C mismatch"))
        );
    }

    #[test]
    fn garbage_never_panics_for_any_codec() {
        let template = encoded(&[record(1, 10)], Compression::None);
        let mut seed: u32 = 4242;
        let mut next = move || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        };
        for len in 0..300 {
            for attributes in 0..8i16 {
                let field: Vec<u8> = (0..len).map(|_| next()).collect();
                let count = (next() % 4) as i32 + 1;
                let batch = rebuilt(&template, attributes, count, &field);
                let checked = validate_producer_batch_with(&batch, true);
                if attributes == 0 {
                    // The produce path's slice walker and the stream walker
                    // agree on uncompressed records.
                    let header = BatchHeader::parse(&batch).unwrap();
                    let walked =
                        validate_records(&header, &batch, true, DECOMPRESSED_BATCH_BYTES_MAX);
                    assert_eq!(checked.is_ok(), walked.is_ok(), "{field:?}");
                }
                let _ = decode_records_bounded(&batch);
                // And the same bytes compressed properly.
                if let Ok(codec) = Codec::of(attributes) {
                    let packed = compress(codec.compression(), &field);
                    let batch = rebuilt(&template, attributes, count, &packed);
                    let _ = validate_producer_batch_with(&batch, true);
                    let _ = decode_records_bounded(&batch);
                }
            }
        }
    }
}
