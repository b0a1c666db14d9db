//! Criterion benchmarks of the produce hot path's pure parts: validating a
//! producer's RecordBatch (header, CRC32C, record framing) and patching its
//! offsets. Run: `cargo bench --bench hot_path`.
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::records::Compression;
use std::hint::black_box;
use tidemark::protocol::batch::{
    encode_records, patch_batch, validate_producer_batch, PlainRecord,
};

/// One v2 batch of `count` records of `value_bytes` each.
fn batch(count: usize, value_bytes: usize, compression: Compression) -> Vec<u8> {
    let records: Vec<PlainRecord> = (0..count)
        .map(|i| {
            let key = Bytes::from(format!("key-{i}"));
            let value = Bytes::from(vec![b'x'; value_bytes]);
            (1_700_000_000_000 + i as i64, Some(key), Some(value))
        })
        .collect();
    encode_records(&records, compression)
        .expect("encode")
        .to_vec()
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
