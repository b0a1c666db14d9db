//! Upgrades: a data dir written by the standalone mode of earlier releases
//! (`tidemark dev --no-quorum`, a `tidemark broker` without a quorum; both
//! gone, a broker always runs with a controller now) is imported into the
//! embedded quorum on its first start, once: its topics with their configs,
//! their records at their offsets, and the groups' committed offsets.
//!
//! `tests/fixtures/standalone-data-dir.tar.gz` is such a data dir, written
//! by `tidemark dev --no-quorum --cores 2` at commit 602ee84 (the last
//! release with the standalone mode) and stopped with SIGTERM. kafka-python
//! created `legacy` (3 partitions) and `legacy-compacted` (1 partition,
//! cleanup.policy=compact), sent record i of 0..30 as key `k<i>`, value
//! `v<i>` to partition i mod 3 of `legacy`, five records `c<i mod 2>` =
//! `cv<i>` to `legacy-compacted`, and committed offset 7 of `legacy`/1 for
//! the group `legacy-group`.
use crate::common;
use common::*;
use rdkafka::admin::ResourceSpecifier;
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn unpack_fixture() -> tempfile::TempDir {
    let dir = temporary_data_dir();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/standalone-data-dir.tar.gz");
    let status = Command::new("tar")
        .arg("xzf")
        .arg(&fixture)
        .arg("-C")
        .arg(dir.path())
        .arg("--strip-components=1")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar xzf {} failed", fixture.display());
    dir
}

fn assert_legacy_topics(broker: &Broker, when: &str) {
    let got = consume_all(broker, "legacy", &[0, 1, 2]);
    for (partition, messages) in &got {
        assert_dense(messages, 0, &format!("legacy/{partition} {when}"));
        let values: Vec<String> = messages.iter().filter_map(value_str).collect();
        let expected: Vec<String> = (0..30)
            .filter(|i| i % 3 == *partition)
            .map(|i| format!("v{i}"))
            .collect();
        assert_eq!(values, expected, "legacy/{partition} {when}");
    }

    let compacted = consume_all(broker, "legacy-compacted", &[0]);
    let mut latest = BTreeMap::new();
    for message in &compacted[&0] {
        let key = rdkafka::Message::key(message).map(|k| String::from_utf8_lossy(k).into_owned());
        latest.insert(key, value_str(message));
    }
    assert_eq!(
        latest,
        BTreeMap::from([
            (Some("c0".to_string()), Some("cv4".to_string())),
            (Some("c1".to_string()), Some("cv3".to_string())),
        ]),
        "the newest value of each key of legacy-compacted {when}"
    );
    let admin = admin(broker);
    let mut results = futures::executor::block_on(admin.describe_configs(
        [&ResourceSpecifier::Topic("legacy-compacted")],
        &admin_options(),
    ))
    .expect("DescribeConfigs");
    let resource = results.remove(0).expect("DescribeConfigs legacy-compacted");
    let policy = resource.get("cleanup.policy").and_then(|e| e.value.clone());
    assert_eq!(
        policy.as_deref(),
        Some("compact"),
        "legacy-compacted's config {when}"
    );

    let consumer = consumer_with(broker, &[("group.id", "legacy-group")]);
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition("legacy", 1);
    let committed = wait_until(
        Duration::from_secs(30),
        "the group's committed offset",
        || {
            let answer = consumer
                .committed_offsets(partitions.clone(), Duration::from_secs(5))
                .ok()?;
            let offset = answer.elements()[0].offset();
            (offset != Offset::Invalid).then_some(offset)
        },
    );
    assert_eq!(
        committed,
        Offset::Offset(7),
        "legacy-group's offset of legacy/1 {when}"
    );
}

#[test]
fn a_standalone_data_dir_is_imported_on_first_start_and_kept() {
    let mut broker = Broker::start_in(unpack_fixture(), &[]);
    assert_legacy_topics(&broker, "after the import");
    let producer = producer(&broker, &[("acks", "all")]);
    let appended = produce_ok(
        &producer,
        "legacy",
        &[Rec::new(Some("k30"), Some("v30")).to(0)],
    );
    assert_eq!(
        appended,
        vec![(0, 10)],
        "the imported log goes on at its end"
    );
    broker.restart();
    let got = consume_all(&broker, "legacy", &[0]);
    assert_eq!(
        got[&0].len(),
        11,
        "legacy/0 after a restart: {:?}",
        got[&0].len()
    );
    assert_eq!(value_str(&got[&0][10]).as_deref(), Some("v30"));
}
