//! A full disk (hardening issue, item 5), on a small ext4 filesystem that
//! the test mounts from an image file (root only: elsewhere it says so and
//! stops). Produce stops at `log.disk.free.min.bytes` with
//! KAFKA_STORAGE_ERROR instead of meeting ENOSPC; acknowledged records stay
//! readable; and with the disk filled to the last byte behind the broker's
//! back, a restart still serves every topic, CreateTopics answers what it
//! did, and DeleteTopics (the way space comes back) works.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;

const DISK_BYTES: u64 = 128 << 20;
const FLOOR_BYTES: &str = "16777216";

/// An ext4 filesystem in an image file, mounted for the test's lifetime.
struct SmallDisk {
    _dir: tempfile::TempDir,
    mount_point: PathBuf,
}

impl SmallDisk {
    /// `None` when this machine cannot mount one (not root, no loop
    /// devices); a mount that fails where it can is a failure.
    fn mount() -> Option<SmallDisk> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 || !Path::new("/dev/loop-control").exists() {
            eprintln!(
                "disk_full: no root or no loop devices, cannot mount a small filesystem: skipped"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let image = dir.path().join("disk.img");
        let mount_point = dir.path().join("mnt");
        std::fs::create_dir(&mount_point).expect("mount point");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(DISK_BYTES))
            .expect("image file");
        run("mkfs.ext4", &["-q", "-F", "-m", "0", path_str(&image)]);
        run(
            "mount",
            &["-o", "loop", path_str(&image), path_str(&mount_point)],
        );
        Some(SmallDisk {
            _dir: dir,
            mount_point,
        })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_bytes(dir: &Path) -> u64 {
    fsutil::free_bytes(dir).expect("statvfs")
}

/// Produces rounds of 1 KiB records to `topic` until a round fails; returns
/// the values acknowledged and the error codes of the failures.
fn produce_until_refused(broker: &Broker, topic: &str) -> (Vec<String>, Vec<RDKafkaErrorCode>) {
    let producer = producer(broker, &[("message.timeout.ms", "10000"), ("retries", "0")]);
    let mut acknowledged = Vec::new();
    for round in 0..400 {
        let recs: Vec<Rec> = (0..512)
            .map(|i| Rec::value(format!("{round}:{i}:{}", "f".repeat(1000))).to(0))
            .collect();
        let outcomes = produce(&producer, topic, &recs);
        let mut errors = Vec::new();
        for (rec, outcome) in recs.iter().zip(outcomes) {
            match outcome {
                Ok(_) => acknowledged.push(
                    String::from_utf8_lossy(rec.value.as_deref().unwrap_or_default()).into_owned(),
                ),
                Err(e) => errors.extend(e.rdkafka_error_code()),
            }
        }
        if !errors.is_empty() {
            return (acknowledged, errors);
        }
    }
    panic!("400 rounds of 512 KiB fit on a {DISK_BYTES}-byte disk");
}

/// Fills what is left of the filesystem of `dir` with one file.
fn fill_the_disk(dir: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(dir.join("filled-by-the-test")).expect("create");
    let chunk = vec![0u8; 64 << 10];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    while file.write_all(&chunk[..512]).is_ok() {}
}

fn values(broker: &Broker, topic: &str) -> Vec<String> {
    consume_all(broker, topic, &[0])
        .remove(&0)
        .unwrap_or_default()
        .iter()
        .map(|m| value_str(m).unwrap_or_default())
        .collect()
}

#[test]
fn a_full_disk_refuses_produce_keeps_reads_restarts_and_lets_topics_be_deleted() {
    let Some(disk) = SmallDisk::mount() else {
        return;
    };
    let data = disk.mount_point.join("data");
    let mut broker = Broker::start_with(&[
        ("log.dirs", path_str(&data)),
        ("log.segment.bytes", "4194304"),
        ("log.disk.free.min.bytes", FLOOR_BYTES),
    ]);
    create_topic(&broker, "kept", 1, &[]);
    let kept: Vec<Rec> = (0..200)
        .map(|i| Rec::value(format!("kept {i}")).to(0))
        .collect();
    produce_ok(&producer(&broker, &[]), "kept", &kept);
    create_topic(&broker, "filler", 1, &[]);

    // The floor: produce is refused before the disk is full, and the log
    // keeps taking writes once space comes back.
    let (acknowledged, errors) = produce_until_refused(&broker, "filler");
    assert!(
        errors
            .iter()
            .all(|&e| e == RDKafkaErrorCode::KafkaStorageError),
        "refusals are KAFKA_STORAGE_ERROR: {errors:?}"
    );
    let free = free_bytes(&disk.mount_point);
    assert!(free >= 8 << 20, "the floor keeps room free: {free} bytes");
    assert!(
        !broker.output().contains("takes no more writes"),
        "no write met ENOSPC"
    );
    assert_eq!(
        values(&broker, "filler"),
        acknowledged,
        "acknowledged records read back"
    );

    // Now the last byte goes, behind the broker's back, and it restarts.
    fill_the_disk(&disk.mount_point);
    broker.restart();

    assert_eq!(
        partition_count(&broker, "kept"),
        Some(1),
        "topics served after a restart"
    );
    assert_eq!(partition_count(&broker, "filler"), Some(1));
    assert_eq!(
        values(&broker, "kept").len(),
        200,
        "reads work on a full disk"
    );
    let admin = admin(&broker);
    let created = futures::executor::block_on(admin.create_topics(
        &[NewTopic::new("while-full", 1, TopicReplication::Fixed(1))],
        &admin_options(),
    ))
    .expect("create_topics");
    let exists = wait_until(Duration::from_secs(10), "metadata", || {
        Some(partition_count(&broker, "while-full"))
    });
    match &created[0] {
        Ok(_) => assert_eq!(exists, Some(1), "a topic said created exists"),
        Err((_, code)) => assert_eq!(exists, None, "a topic refused ({code:?}) does not exist"),
    }

    // Deleting a topic frees its space, and produce works again.
    let deleted = futures::executor::block_on(admin.delete_topics(&["filler"], &admin_options()))
        .expect("delete_topics");
    assert!(
        deleted[0].is_ok(),
        "DeleteTopics on a full disk: {:?}",
        deleted[0]
    );
    std::fs::remove_file(disk.mount_point.join("filled-by-the-test")).expect("remove filler");
    wait_until(Duration::from_secs(20), "space to come back", || {
        (free_bytes(&disk.mount_point) > 64 << 20).then_some(())
    });
    produce_ok(
        &producer(&broker, &[]),
        "kept",
        &[Rec::value("after").to(0)],
    );
    let after = values(&broker, "kept");
    assert_eq!(after.len(), 201);
    assert_eq!(after.last().map(String::as_str), Some("after"));
    broker.assert_alive();
}

#[test]
fn records_acknowledged_before_a_write_met_enospc_stay_readable() {
    let Some(disk) = SmallDisk::mount() else {
        return;
    };
    let data = disk.mount_point.join("data");
    // No floor: the disk really fills up under the writes.
    let broker = Broker::start_with(&[
        ("log.dirs", path_str(&data)),
        ("log.segment.bytes", "4194304"),
        ("log.disk.free.min.bytes", "0"),
    ]);
    create_topic(&broker, "filled", 1, &[]);
    let (acknowledged, errors) = produce_until_refused(&broker, "filled");
    assert!(
        errors
            .iter()
            .all(|&e| e == RDKafkaErrorCode::KafkaStorageError),
        "refusals are KAFKA_STORAGE_ERROR: {errors:?}"
    );
    assert!(
        broker.output().contains("takes no more writes"),
        "the write met ENOSPC"
    );
    assert!(
        acknowledged.len() > 10_000,
        "{} acknowledged",
        acknowledged.len()
    );
    assert_eq!(
        values(&broker, "filled"),
        acknowledged,
        "every acknowledged record reads back, without a restart"
    );
    let admin = admin(&broker);
    let deleted = futures::executor::block_on(admin.delete_topics(&["filled"], &admin_options()))
        .expect("delete_topics");
    assert!(
        deleted[0].is_ok(),
        "DeleteTopics on a full disk: {:?}",
        deleted[0]
    );
    wait_until(Duration::from_secs(20), "space to come back", || {
        (free_bytes(&disk.mount_point) > 64 << 20).then_some(())
    });
}
