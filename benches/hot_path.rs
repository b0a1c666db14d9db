//! Criterion benchmarks of the produce hot path's pure parts: validating a
//! producer's RecordBatch (header, CRC32C, record framing; compressed records
//! decompressed as a bounded stream and walked) and patching its offsets.
//! Run: `cargo bench --bench hot_path`; the compressed-batch comparison alone:
//! `cargo bench --bench hot_path -- validate_1MiB`.
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::records::Compression;
use std::hint::black_box;
use wire::batch::{
    encode_records, patch_batch, validate_producer_batch, validate_producer_batch_with,
    BatchHeader, PlainRecord,
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

/// 1 KiB values of pseudo-random words: text that compresses about as well
/// as JSON or logs do (3 to 4 times with lz4 and zstd), not a run of one byte.
fn text_value(seed: &mut u64, bytes: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "offset",
        "partition",
        "leader",
        "epoch",
        "broker",
        "record",
        "batch",
        "topic",
        "consumer",
        "group",
        "commit",
        "fetch",
        "produce",
        "segment",
        "index",
        "replica",
    ];
    let mut out = Vec::with_capacity(bytes + 16);
    while out.len() < bytes {
        *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        out.extend_from_slice(WORDS[(*seed >> 60) as usize].as_bytes());
        out.push(if (*seed >> 20).is_multiple_of(7) {
            b'\n'
        } else {
            b' '
        });
        out.extend_from_slice(format!("{}", (*seed >> 40) % 1000).as_bytes());
        out.push(b',');
    }
    out.truncate(bytes);
    out
}

/// 1,024 records of 1 KiB: a 1 MiB batch before compression.
fn text_batch(compression: Compression) -> Vec<u8> {
    let mut seed = 42;
    let records: Vec<PlainRecord> = (0..1024)
        .map(|i| {
            let key = Bytes::from(format!("key-{}", i % 100));
            let value = Bytes::from(text_value(&mut seed, 1024));
            (1_700_000_000_000 + i as i64, Some(key), Some(value))
        })
        .collect();
    encode_records(&records, compression)
        .expect("encode")
        .to_vec()
}

/// What validating a 1 MiB batch costs, per codec, beside what the CRC
/// check alone costs over the same bytes. Throughput is counted in the
/// batch's uncompressed bytes, so the rows compare as MB/s of records.
fn compressed_validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_1MiB");
    group
        .sample_size(30)
        .measurement_time(std::time::Duration::from_secs(3));
    let uncompressed_bytes = text_batch(Compression::None).len() as u64;
    group.throughput(Throughput::Bytes(uncompressed_bytes));
    for (name, codec) in [
        ("none", Compression::None),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
        ("snappy", Compression::Snappy),
        ("gzip", Compression::Gzip),
    ] {
        let b = text_batch(codec);
        eprintln!("validate_1MiB/{name}: {} bytes on the wire", b.len());
        group.bench_function(format!("{name}/crc_only"), |bench| {
            bench.iter(|| {
                let header = BatchHeader::parse(black_box(&b)).expect("header");
                assert!(header.crc_matches(&b));
            })
        });
        group.bench_function(format!("{name}/validate_compacted"), |bench| {
            bench.iter(|| validate_producer_batch_with(black_box(&b), true).expect("valid"))
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

criterion_group!(benches, validation, compressed_validation, patching);
criterion_main!(benches);
