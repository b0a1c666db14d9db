//! `tidemark bench` against a real broker, through the binary: produce with
//! --create-topic, consume the backlog, and an end-to-end run, each checked
//! through its `--json` summary. Checks that the bench runs and counts
//! correctly, not how fast anything is.
use crate::common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// Runs `tidemark bench ARGS --json` and parses its summary.
fn bench(broker: &Broker, args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("bench")
        .args(args)
        .args(["-b", &broker.addr(), "--json", "--timeout-ms", "10000"])
        .output()
        .expect("run tidemark bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench {args:?} failed: {stderr}\nbroker output:\n{}",
        broker.output()
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}"))
}

fn int(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// p50 <= p90 <= p99 <= p99.9 <= max, all present.
fn assert_ordered(latency: &Value, what: &str) {
    let keys = ["min", "p50", "p90", "p99", "p999", "max"];
    let values: Vec<u64> = keys
        .iter()
        .map(|k| {
            latency[k]
                .as_u64()
                .unwrap_or_else(|| panic!("{what}: {k} missing in {latency}"))
        })
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "{what}: percentiles out of order: {latency}"
    );
    assert!(int(latency, "count") > 0, "{what}: no samples");
}

#[test]
fn bench_produce_consume_and_e2e() {
    let broker = Broker::start();
    let topic = topic_name("bench");

    let produced = bench(
        &broker,
        &[
            "produce",
            "--topic",
            &topic,
            "--partitions",
            "2",
            "--create-topic",
            "--records",
            "20000",
            "--record-size",
            "100",
            "--batch-size",
            "50000",
            "--producers",
            "2",
            "--acks",
            "all",
        ],
    );
    assert_eq!(int(&produced, "records_sent"), 20_000, "{produced}");
    assert_eq!(int(&produced, "records"), 20_000, "{produced}");
    assert_eq!(int(&produced, "error_count"), 0, "{produced}");
    assert_eq!(int(&produced, "value_bytes"), 2_000_000);
    assert!(produced["mb_per_s"].as_f64().unwrap_or(0.0) > 0.0);
    assert_ordered(&produced["latency_us"], "produce");

    let consumed = bench(&broker, &["consume", "--topic", &topic]);
    assert_eq!(int(&consumed, "records_consumed"), 20_000, "{consumed}");
    assert_eq!(int(&consumed, "error_count"), 0, "{consumed}");
    assert!(int(&consumed, "batch_bytes") > 2_000_000);

    let e2e = bench(
        &broker,
        &[
            "e2e",
            "--topic",
            &topic,
            "--records",
            "3000",
            "--record-size",
            "64",
            "--rate",
            "3000",
            "--linger-ms",
            "5",
        ],
    );
    assert_eq!(int(&e2e, "records_sent"), 3_000, "{e2e}");
    assert_eq!(int(&e2e, "records_consumed"), 3_000, "{e2e}");
    assert_eq!(int(&e2e, "error_count"), 0, "{e2e}");
    assert_ordered(&e2e["latency_us"], "e2e produce");
    assert_ordered(&e2e["e2e_latency_us"], "e2e");
    assert_eq!(int(&e2e["e2e_latency_us"], "count"), 3_000);
}
