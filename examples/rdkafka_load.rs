//! A small load tool with librdkafka (the `rdkafka` crate's bundled copy) as
//! the client, so that Tidemark's figures are measured with a client that is
//! not ours and that Apache Kafka can be measured with the same one
//! (scripts/side-by-side.sh drives it). Each mode prints one JSON line.
//!
//! ```text
//! cargo run --release --example rdkafka_load -- produce BOOTSTRAP TOPIC RECORDS RECORD_BYTES ACKS
//! cargo run --release --example rdkafka_load -- latency BOOTSTRAP TOPIC RATE SECONDS RECORD_BYTES ACKS [WARMUP_RECORDS]
//! cargo run --release --example rdkafka_load -- consume BOOTSTRAP TOPIC RECORDS
//! ```
//!
//! - `produce`: RECORDS values of RECORD_BYTES bytes into partition 0 as fast
//!   as the producer takes them (linger.ms 5, batch.size 1,000,000, no
//!   compression, idempotence off: librdkafka's default).
//! - `latency`: RATE records per second for SECONDS seconds, with the
//!   producer's defaults otherwise. Each record's latency runs from the moment
//!   it was due (not the moment it was handed over), to its delivery report,
//!   so a broker that falls behind shows in the latency rather than slowing
//!   the load down (no coordinated omission). The first WARMUP_RECORDS
//!   (default 0) are sent but left out of the percentiles, as
//!   kafka-producer-perf-test's `--warmup-records` does.
//! - `consume`: reads partition 0 of TOPIC from its earliest offset until
//!   RECORDS records have arrived, by assignment (no group, nothing committed).
//!
//! MB is 10^6 bytes of record values, as Kafka's perf tools count them.
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const USAGE: &str = "usage:
  rdkafka_load produce BOOTSTRAP TOPIC RECORDS RECORD_BYTES ACKS
  rdkafka_load latency BOOTSTRAP TOPIC RATE SECONDS RECORD_BYTES ACKS [WARMUP_RECORDS]
  rdkafka_load consume BOOTSTRAP TOPIC RECORDS";

/// How long a run may wait for the broker before it counts as failed.
const DEADLINE: Duration = Duration::from_secs(600);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = match words.as_slice() {
        ["produce", bootstrap, topic, records, record_bytes, acks] => number(records, "RECORDS")
            .and_then(|records| {
                number(record_bytes, "RECORD_BYTES")
                    .and_then(|bytes| produce(bootstrap, topic, records, bytes, acks))
            }),
        ["latency", bootstrap, topic, rate, seconds, record_bytes, acks, warmup @ ..]
            if warmup.len() <= 1 =>
        {
            let load = || -> Result<LatencyLoad, String> {
                Ok(LatencyLoad {
                    rate: number(rate, "RATE")?,
                    seconds: number(seconds, "SECONDS")? as u64,
                    record_bytes: number(record_bytes, "RECORD_BYTES")?,
                    warmup_records: warmup
                        .first()
                        .map_or(Ok(0), |warmup| number(warmup, "WARMUP_RECORDS"))?,
                })
            };
            load().and_then(|load| latency(bootstrap, topic, acks, &load))
        }
        ["consume", bootstrap, topic, records] => {
            number(records, "RECORDS").and_then(|records| consume(bootstrap, topic, records))
        }
        _ => Err(USAGE.to_string()),
    };
    match outcome {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("rdkafka_load: {message}");
            ExitCode::FAILURE
        }
    }
}

fn number(text: &str, what: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("{what} must be a whole number, not {text:?}"))
}

fn client_name() -> String {
    format!("librdkafka {}", rdkafka::util::get_rdkafka_version().1)
}

fn megabytes(records: usize, record_bytes: usize) -> f64 {
    (records * record_bytes) as f64 / 1e6
}

/// Hands `record` to the producer, polling for delivery reports while its
/// local queue is full.
fn send_blocking<C: ProducerContext>(
    producer: &BaseProducer<C>,
    mut record: BaseRecord<'_, (), [u8], C::DeliveryOpaque>,
) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
        }
    }
}

/// Counts the records whose delivery failed, so that a run that lost records
/// reports failure instead of a throughput.
/// How many records failed, and the first one's error.
#[derive(Default)]
struct FailureCount(Mutex<(usize, Option<String>)>);

impl FailureCount {
    fn note(&self, result: &DeliveryResult<'_>) {
        if let Err((error, _)) = result {
            let mut failures = self.0.lock().unwrap();
            failures.0 += 1;
            failures.1.get_or_insert_with(|| error.to_string());
        }
    }

    fn check(&self) -> Result<(), String> {
        match &*self.0.lock().unwrap() {
            (0, _) => Ok(()),
            (failed, first) => Err(format!(
                "{failed} records were not delivered, the first with: {}",
                first.as_deref().unwrap_or("?")
            )),
        }
    }
}

struct ThroughputContext(FailureCount);

impl ClientContext for ThroughputContext {}

impl ProducerContext for ThroughputContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        self.0.note(result);
    }
}

fn produce(
    bootstrap: &str,
    topic: &str,
    records: usize,
    record_bytes: usize,
    acks: &str,
) -> Result<String, String> {
    let producer: BaseProducer<ThroughputContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "100000")
        .set("queue.buffering.max.kbytes", "2097151")
        .set("queue.buffering.max.messages", "10000000")
        .set("compression.type", "none")
        .create_with_context(ThroughputContext(FailureCount::default()))
        .map_err(|error| format!("creating the producer: {error}"))?;
    let value = vec![b'x'; record_bytes];
    let start = Instant::now();
    for _ in 0..records {
        send_blocking(
            &producer,
            BaseRecord::to(topic).payload(&value[..]).partition(0),
        );
    }
    producer
        .flush(DEADLINE)
        .map_err(|error| format!("flushing: {error}"))?;
    let seconds = start.elapsed().as_secs_f64();
    producer.context().0.check()?;
    Ok(format!(
        "{{\"client\":\"{}\",\"mode\":\"produce\",\"records\":{records},\"record_bytes\":{record_bytes},\"acks\":\"{acks}\",\"seconds\":{seconds:.3},\"mb_per_s\":{:.1}}}",
        client_name(),
        megabytes(records, record_bytes) / seconds
    ))
}

/// The shape of a `latency` run.
struct LatencyLoad {
    rate: usize,
    seconds: u64,
    record_bytes: usize,
    warmup_records: usize,
}

/// A record's place in a `latency` run: the instant it was due, and whether
/// its latency counts (it was sent after the warm-up).
struct Due {
    at: Instant,
    counted: bool,
}

/// Collects each counted record's latency, from the instant it was due to its
/// delivery report, in microseconds.
struct LatencyContext {
    failures: FailureCount,
    micros: Mutex<Vec<u64>>,
}

impl ClientContext for LatencyContext {}

impl ProducerContext for LatencyContext {
    type DeliveryOpaque = Box<Due>;

    fn delivery(&self, result: &DeliveryResult<'_>, due: Box<Due>) {
        self.failures.note(result);
        if due.counted {
            let micros = due.at.elapsed().as_micros() as u64;
            self.micros.lock().unwrap().push(micros);
        }
    }
}

fn latency(bootstrap: &str, topic: &str, acks: &str, load: &LatencyLoad) -> Result<String, String> {
    let LatencyLoad {
        rate,
        seconds,
        record_bytes,
        warmup_records,
    } = *load;
    let records = rate * seconds as usize;
    if records <= warmup_records {
        return Err("RATE times SECONDS must be above zero and WARMUP_RECORDS".to_string());
    }
    let producer: BaseProducer<LatencyContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .create_with_context(LatencyContext {
            failures: FailureCount::default(),
            micros: Mutex::new(Vec::with_capacity(records - warmup_records)),
        })
        .map_err(|error| format!("creating the producer: {error}"))?;
    let value = vec![b'x'; record_bytes];
    let interval = 1.0 / rate as f64;
    let start = Instant::now();
    for index in 0..records {
        let due = start + Duration::from_secs_f64(interval * index as f64);
        let now = Instant::now();
        if due > now {
            // Serve delivery reports while waiting for the next record's turn.
            producer.poll(due - now);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        send_blocking(
            &producer,
            BaseRecord::with_opaque_to(
                topic,
                Box::new(Due {
                    at: due,
                    counted: index >= warmup_records,
                }),
            )
            .payload(&value[..])
            .partition(0),
        );
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(DEADLINE)
        .map_err(|error| format!("flushing: {error}"))?;
    let elapsed = start.elapsed().as_secs_f64();
    let context = producer.context();
    context.failures.check()?;
    let mut micros = std::mem::take(&mut *context.micros.lock().unwrap());
    micros.sort_unstable();
    let at = |share: f64| -> f64 {
        let rank = ((micros.len() as f64 * share).ceil() as usize).clamp(1, micros.len());
        micros[rank - 1] as f64 / 1000.0
    };
    Ok(format!(
        "{{\"client\":\"{}\",\"mode\":\"latency\",\"records\":{records},\"record_bytes\":{record_bytes},\"acks\":\"{acks}\",\"rate\":{rate},\"warmup_records\":{warmup_records},\"achieved_rate\":{:.0},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"p999_ms\":{:.2},\"max_ms\":{:.2}}}",
        client_name(),
        records as f64 / elapsed,
        at(0.50),
        at(0.99),
        at(0.999),
        at(1.0)
    ))
}

fn consume(bootstrap: &str, topic: &str, records: usize) -> Result<String, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka wants a group id even for assigned partitions; nothing is
        // committed under it.
        .set("group.id", "rdkafka-load")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(|error| format!("creating the consumer: {error}"))?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(|error| format!("assigning: {error}"))?;
    consumer
        .assign(&assignment)
        .map_err(|error| format!("assigning: {error}"))?;
    let (mut read, mut bytes) = (0usize, 0usize);
    let mut start = None;
    let deadline = Instant::now() + DEADLINE;
    while read < records {
        if Instant::now() > deadline {
            return Err(format!("only {read} of {records} records arrived in time"));
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(error)) => return Err(format!("consuming: {error}")),
            Some(Ok(message)) => {
                // The clock starts at the first record, as kafka-consumer-perf-test's
                // fetch time excludes joining and the first metadata round trips.
                start.get_or_insert_with(Instant::now);
                read += 1;
                bytes += message.payload_len();
            }
        }
    }
    let seconds = start.map_or(0.0, |start| start.elapsed().as_secs_f64());
    Ok(format!(
        "{{\"client\":\"{}\",\"mode\":\"consume\",\"records\":{read},\"bytes\":{bytes},\"seconds\":{seconds:.3},\"mb_per_s\":{:.1}}}",
        client_name(),
        bytes as f64 / 1e6 / seconds.max(1e-9)
    ))
}
