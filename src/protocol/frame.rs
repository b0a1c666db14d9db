//! Length-prefixed Kafka frames: reading them from a socket without trusting
//! the claimed size, and encoding responses with their header.
use bytes::{BufMut, Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;
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
// `buf` to the inner reader; glommio's stream halves receive into it.
unsafe impl WritesOnly for futures::io::BufReader<futures::io::ReadHalf<glommio::net::TcpStream>> {}
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
    let mut body = BytesMut::with_capacity(total.min(INITIAL_CAPACITY_BYTES));
    while body.len() < total {
        if body.capacity() == body.len() {
            body.reserve(body.len().min(total - body.len()));
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
    fn a_short_body_is_truncated() {
        assert!(matches!(
            read(&[0, 0, 0, 9, 1, 2], 100),
            Err(FrameError::Truncated)
        ));
    }
}
