//! Length-prefixed Kafka frames: reading them from a socket without trusting
//! the claimed size, and encoding responses with their header. A response may
//! be encoded in parts ([`Frame`]): large byte fields (Fetch's record sets)
//! are then sent from the buffers they were read into, not copied again.
use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;
use std::collections::VecDeque;
use std::ops::Range;
use thiserror::Error;

/// A frame's buffer starts at most this large and doubles as bytes arrive,
/// so a peer that claims a large frame and sends little costs little memory,
/// while a typical produce request (up to 1 MiB) is read without moving.
const INITIAL_CAPACITY_BYTES: usize = 1 << 20;

/// A reader that only writes into the buffers it is given and never reads
/// them, so it may be handed memory that is not initialised yet.
///
/// # Safety
/// `poll_read(buf)` must not read any byte of `buf`, and must report at most
/// `buf.len()` bytes written.
pub unsafe trait WritesOnly: AsyncRead + Unpin {}

// SAFETY: futures' BufReader copies from its own buffer into `buf` or hands
// `buf` to the inner reader, which writes only.
unsafe impl<R: WritesOnly> WritesOnly for futures::io::BufReader<R> {}
// SAFETY: a read half hands `buf` to the stream it shares, which writes only.
unsafe impl<S: WritesOnly + futures::io::AsyncWrite> WritesOnly for futures::io::ReadHalf<S> {}
// SAFETY: glommio's stream receives into `buf` (recv); a follower's fetcher
// reads its leader's answers from one.
unsafe impl WritesOnly for glommio::net::TcpStream {}
// SAFETY: a cursor copies from its slice into `buf`.
unsafe impl WritesOnly for futures_lite::io::Cursor<&[u8]> {}

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame length {0} is negative or over the limit of {1} bytes")]
    BadLength(i32, u32),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot encode response: {0}")]
    Encode(String),
}

/// Reads one frame body. Returns `Ok(None)` on a clean end of stream between
/// frames. A length below 0 or above `max_bytes` fails before any allocation.
/// The body is read into the buffer's spare capacity, not zero-filled first
/// (that memset was 12% of the broker's CPU when producing).
pub async fn read_frame<R: WritesOnly>(
    reader: &mut R,
    max_bytes: u32,
) -> Result<Option<BytesMut>, FrameError> {
    read_frame_growing_from(reader, max_bytes, INITIAL_CAPACITY_BYTES).await
}

/// [`read_frame`] with a body buffer that starts at `initial_capacity_bytes`
/// (the broker's is 1 MiB). Public so that the fuzz target `frame` can reach
/// the buffer's growth with frames of kilobytes instead of megabytes.
pub async fn read_frame_growing_from<R: WritesOnly>(
    reader: &mut R,
    max_bytes: u32,
    initial_capacity_bytes: usize,
) -> Result<Option<BytesMut>, FrameError> {
    assert!(initial_capacity_bytes > 0, "a buffer must be able to grow");
    let mut len_buf = [0u8; 4];
    let mut filled = 0;
    while filled < 4 {
        let n = reader.read(&mut len_buf[filled..]).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        filled += n;
    }
    let claimed = i32::from_be_bytes(len_buf);
    if claimed < 0 || claimed as u32 > max_bytes {
        return Err(FrameError::BadLength(claimed, max_bytes));
    }
    let total = claimed as usize;
    let mut body = BytesMut::with_capacity(total.min(initial_capacity_bytes));
    while body.len() < total {
        if body.capacity() == body.len() {
            // Twice what came, never past the frame: `reserve` would round
            // the capacity up to a doubling, up to twice the limit (a 65 MiB
            // frame held 128 MiB; found by the fuzz target `frame`).
            let mut grown = BytesMut::with_capacity((2 * body.len()).min(total));
            grown.extend_from_slice(&body);
            body = grown;
        }
        let want = (total - body.len()).min(body.capacity() - body.len());
        let n = read_into_spare(reader, &mut body, want).await?;
        if n == 0 {
            return Err(FrameError::Truncated);
        }
    }
    Ok(Some(body))
}

/// Reads at most `want` bytes (within the spare capacity) onto the end of
/// `body`, returning how many came.
async fn read_into_spare<R: WritesOnly>(
    reader: &mut R,
    body: &mut BytesMut,
    want: usize,
) -> std::io::Result<usize> {
    let spare = body.spare_capacity_mut();
    let want = want.min(spare.len());
    // SAFETY: the slice covers `want` bytes of `body`'s allocation past its
    // length; `R: WritesOnly` only writes into it and never reads it.
    let buf = unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<u8>(), want) };
    let n = reader.read(buf).await?.min(want);
    // SAFETY: the reader initialised the first `n` bytes past the length,
    // within the capacity.
    unsafe { body.set_len(body.len() + n) };
    Ok(n)
}

/// An encoded response frame in parts, sent one after another.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub parts: Vec<Bytes>,
}

impl From<Bytes> for Frame {
    fn from(bytes: Bytes) -> Frame {
        Frame { parts: vec![bytes] }
    }
}

impl Frame {
    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Byte fields at least this long are sent as their own part.
const SPLICE_MIN_BYTES: usize = 64 * 1024;

/// An encoding buffer that, instead of copying, keeps as parts the byte
/// fields it was told of (`splice`, in encoding order) when the encoder puts
/// exactly them. Seeking back over a kept part (which only record-batch
/// encoding does, never a message) marks the encoding as failed.
struct SpliceBuf {
    parts: Vec<Bytes>,
    current: BytesMut,
    /// Bytes in `parts`.
    before: usize,
    splice: VecDeque<Bytes>,
    failed: bool,
}

impl SpliceBuf {
    fn seek_failed(&mut self) {
        self.failed = true;
    }
}

// SAFETY: every method forwards to `current`, a `BytesMut`, whose own
// implementation upholds the contract.
unsafe impl BufMut for SpliceBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise about `chunk_mut` of `current` holds.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        let is_next = self
            .splice
            .front()
            .is_some_and(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len());
        let part = if is_next {
            self.splice.pop_front()
        } else {
            None
        };
        match part {
            Some(part) => {
                if !self.current.is_empty() {
                    let head = self.current.split().freeze();
                    self.before += head.len();
                    self.parts.push(head);
                }
                self.before += part.len();
                self.parts.push(part);
            }
            None => self.current.extend_from_slice(src),
        }
    }
}

impl ByteBufMut for SpliceBuf {
    fn offset(&self) -> usize {
        self.before + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        match offset.checked_sub(self.before) {
            Some(local) => self.current.resize(local, 0),
            None => self.seek_failed(),
        }
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let local = r.start.checked_sub(self.before).and_then(|start| {
            let end = r.end.checked_sub(self.before)?;
            (start <= end && end <= self.current.len()).then_some(start..end)
        });
        match local {
            Some(local) => &mut self.current[local],
            None => {
                self.seek_failed();
                &mut []
            }
        }
    }
}

/// Encodes a whole response frame like [`encode_response`], but sends each
/// of `large` (byte fields of `body`, in encoding order) as its own part
/// rather than copying it; fields under 64 KiB are copied anyway.
pub fn encode_response_parts<T: Encodable>(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &T,
    large: impl IntoIterator<Item = Bytes>,
) -> Result<Frame, FrameError> {
    let splice: VecDeque<Bytes> = large
        .into_iter()
        .filter(|b| b.len() >= SPLICE_MIN_BYTES)
        .collect();
    if splice.is_empty() || api_key == ApiKey::ApiVersions {
        return encode_response(api_key, api_version, correlation_id, body).map(Frame::from);
    }
    let header_version = api_key.response_header_version(api_version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let encode_err = |e: anyhow::Error| FrameError::Encode(e.to_string());
    let header_len = header.compute_size(header_version).map_err(encode_err)?;
    let body_len = body.compute_size(api_version).map_err(encode_err)?;
    let spliced: usize = splice.iter().map(Bytes::len).sum();
    let mut buf = SpliceBuf {
        parts: Vec::with_capacity(2 * splice.len() + 1),
        current: BytesMut::with_capacity((4 + header_len + body_len).saturating_sub(spliced)),
        before: 0,
        splice,
        failed: false,
    };
    buf.put_i32((header_len + body_len) as i32);
    header
        .encode(&mut buf, header_version)
        .map_err(encode_err)?;
    body.encode(&mut buf, api_version).map_err(encode_err)?;
    if buf.failed || !buf.splice.is_empty() {
        // A field was not met as expected: encode the plain way.
        return encode_response(api_key, api_version, correlation_id, body).map(Frame::from);
    }
    if !buf.current.is_empty() {
        buf.parts.push(buf.current.freeze());
    }
    Ok(Frame { parts: buf.parts })
}

/// Encodes a whole response frame: length, header, body.
pub fn encode_response<T: Encodable>(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Bytes, FrameError> {
    // ApiVersions always answers with header v0 so that a client that sent a
    // version we do not know can still read the error (KIP-511).
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(api_version)
    };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let encode_err = |e: anyhow::Error| FrameError::Encode(e.to_string());
    let header_len = header.compute_size(header_version).map_err(encode_err)?;
    let body_len = body.compute_size(api_version).map_err(encode_err)?;
    let mut out = BytesMut::with_capacity(4 + header_len + body_len);
    out.put_i32((header_len + body_len) as i32);
    header
        .encode(&mut out, header_version)
        .map_err(encode_err)?;
    body.encode(&mut out, api_version).map_err(encode_err)?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], max: u32) -> Result<Option<BytesMut>, FrameError> {
        futures_lite::future::block_on(read_frame(&mut futures_lite::io::Cursor::new(bytes), max))
    }

    #[test]
    fn reads_a_frame_and_then_eof() {
        let mut wire = vec![0, 0, 0, 3, b'a', b'b', b'c'];
        wire.extend_from_slice(&[0, 0, 0, 0]);
        let mut cursor = futures_lite::io::Cursor::new(&wire[..]);
        let frame = futures_lite::future::block_on(read_frame(&mut cursor, 100)).unwrap();
        assert_eq!(&frame.unwrap()[..], b"abc");
        let empty = futures_lite::future::block_on(read_frame(&mut cursor, 100)).unwrap();
        assert_eq!(empty.unwrap().len(), 0);
        let end = futures_lite::future::block_on(read_frame(&mut cursor, 100)).unwrap();
        assert!(end.is_none());
    }

    #[test]
    fn absurd_lengths_fail_before_allocating() {
        assert!(matches!(
            read(&i32::MAX.to_be_bytes(), 1 << 20),
            Err(FrameError::BadLength(..))
        ));
        assert!(matches!(
            read(&(-5i32).to_be_bytes(), 1 << 20),
            Err(FrameError::BadLength(..))
        ));
    }

    #[test]
    fn parts_encode_exactly_like_the_plain_encoding() {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        use kafka_protocol::messages::FetchResponse;
        let big = Bytes::from(vec![7u8; 200_000]);
        let small = Bytes::from(vec![3u8; 100]);
        let mut response = FetchResponse::default();
        let mut topic = FetchableTopicResponse::default();
        for (i, records) in [big.clone(), small.clone(), big.slice(1..)]
            .iter()
            .enumerate()
        {
            topic.partitions.push(
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_records(Some(records.clone())),
            );
        }
        response.responses.push(topic);
        for version in [4i16, 11, 12, 13] {
            let plain = encode_response(ApiKey::Fetch, version, 9, &response).unwrap();
            let large = [big.clone(), small.clone(), big.slice(1..)];
            let frame = encode_response_parts(ApiKey::Fetch, version, 9, &response, large).unwrap();
            // Head, big, middle, big, and from v12 the tagged fields after it.
            let parts = if version >= 12 { 5 } else { 4 };
            assert_eq!(frame.parts.len(), parts, "v{version}");
            let joined: Vec<u8> = frame.parts.iter().flat_map(|p| p.iter().copied()).collect();
            assert_eq!(joined, plain.to_vec(), "v{version}");
            // A field named out of order is copied, and the result is the same.
            let wrong = [big.slice(1..), big.clone()];
            let frame = encode_response_parts(ApiKey::Fetch, version, 9, &response, wrong).unwrap();
            let joined: Vec<u8> = frame.parts.iter().flat_map(|p| p.iter().copied()).collect();
            assert_eq!(joined, plain.to_vec(), "v{version}, out of order");
        }
    }

    #[test]
    fn a_frame_never_holds_more_than_its_length() {
        // fuzz/artifacts: a 1.5 MiB frame under a 1.8 MiB limit was read into 2 MiB.
        for total in [(1 << 20) + 1, 3 << 19, (3 << 20) - 7] {
            let mut wire = (total as i32).to_be_bytes().to_vec();
            wire.resize(4 + total, 0x2e);
            let body = read(&wire, 3 << 20).unwrap().unwrap();
            assert_eq!(body.len(), total);
            assert_eq!(body.capacity(), total, "a frame of {total} bytes");
            assert!(body.iter().all(|&b| b == 0x2e));
        }
    }

    #[test]
    fn a_short_body_is_truncated() {
        assert!(matches!(
            read(&[0, 0, 0, 9, 1, 2], 100),
            Err(FrameError::Truncated)
        ));
    }
}
