//! Produce throughput with librdkafka (the `rdkafka` crate's bundled copy) as
//! the client, so that the figures of `tidemark bench` can be checked against a
//! producer that is not ours. Prints one JSON line.
//!
//! cargo run --release --example rdkafka_produce -- BOOTSTRAP TOPIC RECORDS RECORD_BYTES ACKS
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: rdkafka_produce BOOTSTRAP TOPIC RECORDS RECORD_BYTES ACKS");
        std::process::exit(2);
    }
    let (bootstrap, topic) = (&args[1], &args[2]);
    let records: usize = args[3].parse().expect("RECORDS is a number");
    let record_bytes: usize = args[4].parse().expect("RECORD_BYTES is a number");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", &args[5])
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "100000")
        .set("queue.buffering.max.kbytes", "2097151")
        .set("queue.buffering.max.messages", "10000000")
        .set("compression.type", "none")
        .create()
        .expect("create producer");
    let value = vec![b'x'; record_bytes];
    let start = Instant::now();
    for _ in 0..records {
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .payload(&value[..])
            .partition(0);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    // The local queue is full: let deliveries drain it.
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    let seconds = start.elapsed().as_secs_f64();
    let mb = (records * record_bytes) as f64 / 1e6;
    println!(
        "{{\"client\":\"librdkafka {}\",\"records\":{records},\"record_bytes\":{record_bytes},\"acks\":\"{}\",\"seconds\":{seconds:.3},\"mb_per_s\":{:.1}}}",
        rdkafka::util::get_rdkafka_version().1,
        args[5],
        mb / seconds
    );
}
