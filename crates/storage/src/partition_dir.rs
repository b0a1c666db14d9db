//! Partition directories on disk: their names, their identity, and their
//! removal.
//!
//! A partition's directory is `<data_dir>/<topic>-<partition>` and holds a
//! `partition.metadata` file naming the topic id it belongs to (Kafka's file
//! and format: `version: 0` and `topic_id: <base64 uuid>`). A directory is
//! only ever adopted by the topic incarnation it names: a topic deleted and
//! created again under the same name gets a new id, so leftovers of the old
//! one are discarded instead of served.
//!
//! Deletion is an atomic rename to `<topic>-<partition>.<uuid>-delete`
//! first (as Kafka does), and the slow recursive removal comes after, off the
//! shard thread: a crash in between leaves a directory that no topic can
//! adopt and that the next start removes (`sweep`).
//!
//! Blocking std I/O, called on the partition's owning shard (claim, retire)
//! and once at start-up (sweep).
use super::StorageError;
use std::io::Write;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// The identity file inside a partition directory (Kafka's name).
pub const IDENTITY_FILE: &str = "partition.metadata";
/// The suffix of a directory whose deletion has begun.
const DELETED_SUFFIX: &str = "-delete";

/// The directory of one partition's log.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// Makes `dir` the directory of topic `topic_id`: creates it with its
/// identity, adopts a directory of the same topic (writing the identity
/// into one from before identities existed), and discards one that names
/// another topic id, so a re-created topic never serves the old one's data.
pub fn claim_partition_dir(dir: &Path, topic_id: Uuid) -> Result<(), StorageError> {
    match read_identity(dir) {
        Identity::Topic(id) if id == topic_id => return Ok(()),
        Identity::Topic(other) => {
            tracing::warn!(dir = %dir.display(), %other, %topic_id, "discarding the log of an earlier topic of the same name");
            retire_partition_dir(dir)?;
        }
        Identity::Unknown if dir.exists() => return write_identity(dir, topic_id),
        Identity::Unknown => {}
    }
    std::fs::create_dir_all(dir).map_err(|e| StorageError::io("cannot create", dir, e))?;
    write_identity(dir, topic_id)
}

/// Renames `dir` out of the way (atomic: afterwards no topic can adopt it)
/// and returns where it went; the caller removes that with `remove_retired`.
pub fn retire_partition_dir(dir: &Path) -> Result<PathBuf, StorageError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let retired = dir.with_file_name(format!(
        "{name}.{}{DELETED_SUFFIX}",
        Uuid::new_v4().simple()
    ));
    std::fs::rename(dir, &retired).map_err(|e| StorageError::io("cannot rename", dir, e))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent);
    }
    Ok(retired)
}

/// Removes a retired directory and everything in it.
pub fn remove_retired(retired: &Path) {
    if let Err(e) = std::fs::remove_dir_all(retired) {
        tracing::warn!(dir = %retired.display(), error = %e, "cannot remove a deleted partition");
    }
}

/// At start-up: removes directories whose deletion began, and partition
/// directories that `owned(topic, partition)` disowns (a topic the registry
/// or the cluster's view no longer has). Returns how many went.
pub fn sweep(data_dir: &Path, owned: impl Fn(&str, i32) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(DELETED_SUFFIX) {
            remove_retired(&path);
            removed += 1;
            continue;
        }
        let Some((topic, partition)) = parse_partition_dir_name(&name) else {
            continue;
        };
        if !owned(topic, partition) {
            tracing::warn!(dir = %path.display(), "removing the log of a deleted topic");
            if let Ok(retired) = retire_partition_dir(&path) {
                remove_retired(&retired);
                removed += 1;
            }
        }
    }
    removed
}

/// `(topic, partition)` of a directory named `<topic>-<partition>`.
fn parse_partition_dir_name(name: &str) -> Option<(&str, i32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((topic, partition.parse().ok()?))
}

enum Identity {
    Topic(Uuid),
    /// No directory, no identity file, or one that does not parse.
    Unknown,
}

fn read_identity(dir: &Path) -> Identity {
    let Ok(text) = std::fs::read_to_string(dir.join(IDENTITY_FILE)) else {
        return Identity::Unknown;
    };
    text.lines()
        .find_map(|line| line.strip_prefix("topic_id:"))
        .and_then(|id| decode_kafka_uuid(id.trim()))
        .map_or(Identity::Unknown, Identity::Topic)
}

fn write_identity(dir: &Path, topic_id: Uuid) -> Result<(), StorageError> {
    let path = dir.join(IDENTITY_FILE);
    let text = format!("version: 0\ntopic_id: {}\n", encode_kafka_uuid(topic_id));
    let temporary = dir.join(format!("{IDENTITY_FILE}.tmp"));
    let io = |e| StorageError::io("cannot write", &path, e);
    let mut file = std::fs::File::create(&temporary).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, &path).map_err(io)?;
    sync_dir(dir);
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Kafka's `Uuid.toString()`: URL-safe base64 of the 16 bytes, unpadded.
pub fn encode_kafka_uuid(id: Uuid) -> String {
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        let symbols = chunk.len() + 1;
        for i in 0..symbols {
            out.push(BASE64_URL[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The inverse of `encode_kafka_uuid`; `None` unless `text` is 22 symbols.
pub fn decode_kafka_uuid(text: &str) -> Option<Uuid> {
    if text.len() != 22 {
        return None;
    }
    let mut bytes = Vec::with_capacity(18);
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, &symbol) in chunk.iter().enumerate() {
            let value = BASE64_URL.iter().position(|&c| c == symbol)? as u32;
            n |= value << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            bytes.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Uuid::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_encode_as_kafka_prints_them() {
        // Kafka prints Uuid(0x0123456789abcdef, 0x0123456789abcdef) so.
        let id = Uuid::from_u64_pair(0x0123_4567_89ab_cdef, 0x0123_4567_89ab_cdef);
        assert_eq!(encode_kafka_uuid(id), "ASNFZ4mrze8BI0VniavN7w");
        for _ in 0..100 {
            let id = Uuid::new_v4();
            assert_eq!(decode_kafka_uuid(&encode_kafka_uuid(id)), Some(id));
        }
        assert_eq!(decode_kafka_uuid("short"), None);
        assert_eq!(decode_kafka_uuid("!!!!!!!!!!!!!!!!!!!!!!"), None);
    }

    #[test]
    fn a_directory_is_adopted_only_by_its_own_topic() {
        let data = tempfile::tempdir().unwrap();
        let dir = partition_dir(data.path(), "orders", 3);
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        claim_partition_dir(&dir, first).unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), b"old records").unwrap();
        claim_partition_dir(&dir, first).unwrap();
        assert!(
            dir.join("00000000000000000000.log").exists(),
            "kept by its own topic"
        );
        claim_partition_dir(&dir, second).unwrap();
        assert!(
            !dir.join("00000000000000000000.log").exists(),
            "discarded for another"
        );
        assert!(matches!(read_identity(&dir), Identity::Topic(id) if id == second));
        assert_eq!(
            sweep(data.path(), |_, _| true),
            1,
            "the retired copy goes at start"
        );
    }

    #[test]
    fn sweep_removes_what_is_not_owned_and_keeps_the_rest() {
        let data = tempfile::tempdir().unwrap();
        claim_partition_dir(&partition_dir(data.path(), "kept-topic", 0), Uuid::new_v4()).unwrap();
        claim_partition_dir(&partition_dir(data.path(), "kept-topic", 1), Uuid::new_v4()).unwrap();
        claim_partition_dir(&partition_dir(data.path(), "gone", 0), Uuid::new_v4()).unwrap();
        std::fs::create_dir(data.path().join("__quorum")).unwrap();
        let removed = sweep(data.path(), |topic, partition| {
            topic == "kept-topic" && partition == 0
        });
        assert_eq!(removed, 2);
        assert!(
            !partition_dir(data.path(), "kept-topic", 1).exists(),
            "past the count"
        );
        assert!(partition_dir(data.path(), "kept-topic", 0).exists());
        assert!(!partition_dir(data.path(), "gone", 0).exists());
        assert!(
            data.path().join("__quorum").exists(),
            "not a partition directory"
        );
    }
}
