//! Batches made by hand for tests, here and in the crates above (storage,
//! the broker): well-formed batches of every codec, idempotent producers'
//! batches, hand-framed records and decompression bombs. Compiled for this
//! crate's tests and, with the `testing` feature, for other crates' tests.
use crate::batch::BATCH_HEADER_LEN;
use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::io::Write;

/// Encodes `n` small records as one v2 batch.
pub fn sample_batch(n: usize, compression: Compression) -> Vec<u8> {
    encode_batch(n, compression, -1, -1, -1)
}

/// Encodes `n` small records as one v2 batch of an idempotent producer.
pub fn producer_batch(n: usize, producer_id: i64, epoch: i16, base_seq: i32) -> Vec<u8> {
    encode_batch(n, Compression::None, producer_id, epoch, base_seq)
}

pub fn encode_batch(
    n: usize,
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_seq: i32,
) -> Vec<u8> {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if producer_id < 0 {
                i as i32 - 1
            } else {
                base_seq.wrapping_add(i as i32)
            },
            timestamp: 1_000 + i as i64,
            key: Some(bytes::Bytes::from(format!("k{i}"))),
            value: Some(bytes::Bytes::from(format!("value {i}"))),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.to_vec()
}

pub fn record(i: usize, value_bytes: usize) -> Record {
    let mut headers = indexmap::IndexMap::new();
    headers.insert(
        StrBytes::from_string(format!("h{i}")),
        Some(Bytes::from("v")),
    );
    headers.insert(StrBytes::from_static_str("null"), None);
    Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: 7,
        producer_epoch: 1,
        timestamp_type: TimestampType::Creation,
        offset: i as i64,
        sequence: 100 + i as i32,
        timestamp: 1_700_000_000_000 + i as i64,
        key: (!i.is_multiple_of(3)).then(|| Bytes::from(format!("key-{i}"))),
        value: (!i.is_multiple_of(5))
            .then(|| Bytes::from(vec![b'a' + (i % 26) as u8; value_bytes])),
        headers,
        delete_horizon: false,
    }
}

/// A batch as kafka-protocol's encoder writes it.
pub fn encoded(records: &[Record], compression: Compression) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, records, &options).unwrap();
    buf.to_vec()
}

/// `batch` with its records field, attributes and count replaced, and
/// its length and CRC made right again.
pub fn rebuilt(batch: &[u8], attributes: i16, count: i32, field: &[u8]) -> Vec<u8> {
    let mut out = batch[..BATCH_HEADER_LEN].to_vec();
    out.extend_from_slice(field);
    let batch_length = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    out[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    out[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// A header for hand-made records: no producer, `count` records.
pub fn hand_batch(attributes: i16, count: i32, field: &[u8]) -> Vec<u8> {
    let template = encoded(&[record(1, 1)], Compression::None);
    let mut b = rebuilt(&template, attributes, count, field);
    b[0..8].copy_from_slice(&0i64.to_be_bytes()); // base offset
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes()); // no producer id
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    rebuilt(&b.clone(), attributes, count, &b[BATCH_HEADER_LEN..])
}

pub fn zigzag(v: i64, out: &mut Vec<u8>) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// One record's bytes; `header_claim` is the header count it says it has
/// (none follow).
pub fn raw_record(
    offset_delta: i32,
    key: Option<&[u8]>,
    value: &[u8],
    header_claim: i32,
) -> Vec<u8> {
    let mut body = vec![0u8]; // attributes
    zigzag(0, &mut body); // timestamp delta
    zigzag(offset_delta as i64, &mut body);
    match key {
        Some(k) => {
            zigzag(k.len() as i64, &mut body);
            body.extend_from_slice(k);
        }
        None => zigzag(-1, &mut body),
    }
    zigzag(value.len() as i64, &mut body);
    body.extend_from_slice(value);
    zigzag(header_claim as i64, &mut body);
    let mut out = Vec::new();
    zigzag(body.len() as i64, &mut out);
    out.extend_from_slice(&body);
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A zstd frame of RLE blocks: 4 bytes each, 128 KiB of zeros each, after
/// a raw block holding the start of one record whose value is nearly
/// 2 GiB. `blocks` of 65,536 make 256 KiB that inflate to 8 GiB.
pub fn zstd_bomb(blocks: usize) -> Vec<u8> {
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, (17 - 10) << 3];
    let mut start = Vec::new();
    zigzag(i32::MAX as i64, &mut start); // record length
    start.push(0); // attributes
    zigzag(0, &mut start);
    zigzag(0, &mut start);
    zigzag(1, &mut start);
    start.push(b'k');
    zigzag(i32::MAX as i64 - 100, &mut start); // value length
    let raw_header = (start.len() as u32) << 3; // raw block, not last
    frame.extend_from_slice(&raw_header.to_le_bytes()[..3]);
    frame.extend_from_slice(&start);
    for i in 0..blocks {
        let last = (i + 1 == blocks) as u32;
        let rle_header = last | (1 << 1) | ((128 << 10) << 3);
        frame.extend_from_slice(&rle_header.to_le_bytes()[..3]);
        frame.push(0);
    }
    frame
}
