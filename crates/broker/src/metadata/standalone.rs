//! The topic registry of the standalone mode of earlier releases (a broker
//! without a quorum, `tidemark dev --no-quorum`): a JSON file at
//! `<data_dir>/__cluster_metadata/topics.json`. A broker always has a
//! controller now; on the first start of its embedded quorum over such a
//! data dir, the file is read once here and its topics (with their ids, so
//! the logs on disk stay theirs) and producer-id high mark are handed to the
//! quorum. The file is left as it was. Runs on the main thread at start.
use super::{MetadataError, TopicMeta};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a standalone registry held.
#[derive(Debug, Default, Deserialize)]
pub struct StandaloneRegistry {
    pub topics: BTreeMap<String, TopicMeta>,
    /// The first producer id of the next block not handed out yet (absent in
    /// files written before producer ids existed: 0).
    #[serde(default)]
    pub next_producer_id_block: i64,
}

/// Where the standalone mode kept its registry.
pub fn registry_path(data_dir: &Path) -> PathBuf {
    data_dir.join("__cluster_metadata").join("topics.json")
}

/// The standalone registry of `data_dir`, or `None` when it never had one.
pub fn read(data_dir: &Path) -> Result<Option<StandaloneRegistry>, MetadataError> {
    let path = registry_path(data_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(MetadataError::Read { path, source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| MetadataError::Corrupt {
            path,
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_registry_is_none_and_a_written_one_is_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        std::fs::create_dir_all(dir.path().join("__cluster_metadata")).unwrap();
        let text = r#"{"topics":{"t":{"name":"t","id":"1e70ddb0-bfb8-4fb4-a3a2-d59ff5f438bb","partitions":3,"configs":{"retention.ms":"1000"}}},"next_producer_id_block":2000}"#;
        std::fs::write(registry_path(dir.path()), text).unwrap();
        let registry = read(dir.path()).unwrap().unwrap();
        assert_eq!(registry.topics["t"].partitions, 3);
        assert_eq!(registry.topics["t"].configs["retention.ms"], "1000");
        assert_eq!(registry.next_producer_id_block, 2000);
        std::fs::write(registry_path(dir.path()), "{").unwrap();
        assert!(matches!(
            read(dir.path()),
            Err(MetadataError::Corrupt { .. })
        ));
    }
}
