//! Criterion benchmarks of the produce hot path's pure parts: validating a
//! producer's RecordBatch (header, CRC32C, record framing) and patching its
//! offsets. Run: `cargo bench --bench hot_path`.
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::hint::black_box;
use tidemark::protocol::batch::{patch_batch, validate_producer_batch};

/// One v2 batch of `count` records of `value_bytes` each.
fn batch(count: usize, value_bytes: usize, compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![b'x'; value_bytes])),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode");
    buf.to_vec()
}

fn validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_producer_batch");
    for (name, count, size, codec) in [
        ("16x1KiB", 16, 1024, Compression::None),
        ("160x100B", 160, 100, Compression::None),
        ("16x1KiB-lz4", 16, 1024, Compression::Lz4),
    ] {
        let b = batch(count, size, codec);
        group.throughput(Throughput::Bytes(b.len() as u64));
        group.bench_function(name, |bench| {
            bench.iter(|| validate_producer_batch(black_box(&b)).expect("valid"))
        });
    }
    group.finish();
}

fn patching(c: &mut Criterion) {
    let mut b = batch(16, 1024, Compression::None);
    c.bench_function("patch_batch", |bench| {
        let mut offset = 0i64;
        bench.iter(|| {
            offset += 16;
            patch_batch(black_box(&mut b), offset, 0)
        })
    });
}

criterion_group!(benches, validation, patching);
criterion_main!(benches);
