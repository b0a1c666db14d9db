//! The durable Raft log and vote of one quorum node, in its data dir.
//! Quorum process, tokio runtime (file I/O is blocking: the log is small and
//! off the data path).
//!
//! `raft.log` is a sequence of records `[u32 length][u32 crc32c][JSON entry]`
//! (big-endian). An append is acknowledged to openraft only after fsync.
//! At start-up the file is read up to the first torn or corrupt record and cut
//! there (such a record was never acknowledged). `vote.json`,
//! `committed.json` and `purged.json` are replaced atomically. Purging rewrites the log file
//! without the purged entries (also atomically). Every entry is kept in
//! memory too: the log is bounded by snapshotting and purging.
use super::files::{read_optional, sync_dir, with_reserve, write_atomic};
use super::{Entry, LogId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogId, RaftLogReader, StorageIOError};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote.json";
const PURGED_FILE: &str = "purged.json";
const COMMITTED_FILE: &str = "committed.json";
const RECORD_HEADER_BYTES: usize = 8;
/// No single entry comes near this; a larger length means a corrupt record.
const RECORD_BYTES_MAX: usize = 64 << 20;

/// A cheap handle (shared state) so that openraft's log reader and the
/// store itself see the same log.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

struct LogInner {
    dir: PathBuf,
    file: File,
    /// Entries by index, with the file offset where each record starts.
    entries: BTreeMap<u64, (u64, Entry)>,
    /// The file length covering every entry in `entries`.
    end: u64,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
}

fn io_err<E: std::error::Error + 'static>(verb: ErrorVerb, e: &E) -> StorageError {
    StorageIOError::new(ErrorSubject::Logs, verb, e).into()
}

fn data_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, recovering from a torn tail.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        fs::create_dir_all(dir)?;
        let vote = read_json(&dir.join(VOTE_FILE))?;
        let last_purged: Option<LogId> = read_json(&dir.join(PURGED_FILE))?;
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let (records, end) = read_records(&mut file)?;
        if end < file.metadata()?.len() {
            tracing::warn!(cut_at = end, "quorum log: cutting a torn or corrupt tail");
            file.set_len(end)?;
            file.sync_all()?;
        }
        sync_dir(&path)?;
        let purged_index = last_purged.map(|l| l.index);
        let entries = records
            .into_iter()
            .filter(|(_, e)| purged_index.is_none_or(|p| e.log_id.index > p))
            .map(|(offset, e)| (e.log_id.index, (offset, e)))
            .collect();
        let inner = LogInner {
            dir: dir.to_path_buf(),
            file,
            entries,
            end,
            last_purged,
            vote,
        };
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        // A panic while holding the lock would already have taken the node down.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match read_optional(path)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(data_err),
    }
}

/// Reads every intact record from the start; returns them with their offsets
/// and the offset just past the last intact one.
fn read_records(file: &mut File) -> io::Result<(Vec<(u64, Entry)>, u64)> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    let mut records = Vec::new();
    let mut at = 0usize;
    while let Some((entry, len)) = decode_record(&bytes[at..]) {
        records.push((at as u64, entry));
        at += len;
    }
    Ok((records, at as u64))
}

/// One record from the front of `bytes`, or `None` if it is torn or corrupt.
fn decode_record(bytes: &[u8]) -> Option<(Entry, usize)> {
    let header = bytes.get(..RECORD_HEADER_BYTES)?;
    let len = u32::from_be_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(header[4..].try_into().ok()?);
    if len > RECORD_BYTES_MAX {
        return None;
    }
    let body = bytes.get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len)?;
    if crc32c::crc32c(body) != crc {
        return None;
    }
    let entry = serde_json::from_slice(body).ok()?;
    Some((entry, RECORD_HEADER_BYTES + len))
}

fn encode_record(entry: &Entry) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(entry).map_err(data_err)?;
    let len = u32::try_from(body.len()).map_err(data_err)?;
    let mut record = Vec::with_capacity(RECORD_HEADER_BYTES + body.len());
    record.extend_from_slice(&len.to_be_bytes());
    record.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    record.extend_from_slice(&body);
    Ok(record)
}

impl LogInner {
    /// Appends and syncs `entries`; on a full disk, with the reserve's room.
    fn append(&mut self, entries: Vec<Entry>) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut placed = Vec::with_capacity(entries.len());
        for entry in entries {
            let offset = self.end + buf.len() as u64;
            buf.extend_from_slice(&encode_record(&entry)?);
            placed.push((offset, entry));
        }
        let dir = self.dir.clone();
        with_reserve(&dir, || self.write_at_end(&buf))?;
        self.end += buf.len() as u64;
        for (offset, entry) in placed {
            self.entries.insert(entry.log_id.index, (offset, entry));
        }
        Ok(())
    }

    fn write_at_end(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(self.end))?;
        self.file.write_all(buf)?;
        self.file.sync_data()
    }

    /// Removes entries from `index` on, in memory and in the file.
    fn truncate(&mut self, index: u64) -> io::Result<()> {
        let Some((&first, &(offset, _))) = self.entries.range(index..).next() else {
            return Ok(());
        };
        self.file.set_len(offset)?;
        self.file.sync_all()?;
        self.end = offset;
        self.entries.split_off(&first);
        Ok(())
    }

    /// Drops entries up to `log_id`, records it, and rewrites the file without them.
    fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let bytes = serde_json::to_vec(&log_id).map_err(data_err)?;
        write_atomic(&self.dir.join(PURGED_FILE), &bytes)?;
        self.last_purged = Some(log_id);
        self.entries = self.entries.split_off(&(log_id.index + 1));
        self.rewrite()
    }

    fn rewrite(&mut self) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut offsets = Vec::with_capacity(self.entries.len());
        for (index, (_, entry)) in &self.entries {
            offsets.push((*index, buf.len() as u64));
            buf.extend_from_slice(&encode_record(entry)?);
        }
        let path = self.dir.join(LOG_FILE);
        write_atomic(&path, &buf)?;
        self.file = OpenOptions::new().read(true).write(true).open(&path)?;
        self.end = buf.len() as u64;
        for (index, offset) in offsets {
            if let Some(slot) = self.entries.get_mut(&index) {
                slot.0 = offset;
            }
        }
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let inner = self.lock();
        Ok(inner
            .entries
            .range(range)
            .map(|(_, (_, e))| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.lock();
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|(_, e)| *e.get_log_id());
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let bytes = serde_json::to_vec(vote).map_err(|e| io_err(ErrorVerb::Write, &e))?;
        write_atomic(&inner.dir.join(VOTE_FILE), &bytes)
            .map_err(|e| StorageIOError::write_vote(&e))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    /// Persisted so that a leader restored at start-up (openraft restarts a
    /// node that held a committed vote as leader, without an election)
    /// knows what was committed: its reads then include every write it
    /// acknowledged.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let inner = self.lock();
        let bytes = serde_json::to_vec(&committed).map_err(|e| io_err(ErrorVerb::Write, &e))?;
        write_atomic(&inner.dir.join(COMMITTED_FILE), &bytes)
            .map_err(|e| io_err(ErrorVerb::Write, &e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let dir = self.lock().dir.clone();
        let committed: Option<Option<LogId>> =
            read_json(&dir.join(COMMITTED_FILE)).map_err(|e| io_err(ErrorVerb::Read, &e))?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let result = self.lock().append(entries);
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let storage_error = io_err(ErrorVerb::Write, &e);
                callback.log_io_completed(Err(e));
                Err(storage_error)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.lock()
            .truncate(log_id.index)
            .map_err(|e| io_err(ErrorVerb::Delete, &e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.lock()
            .purge(log_id)
            .map_err(|e| io_err(ErrorVerb::Delete, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store.lock().entries.keys().copied().collect()
    }

    #[test]
    fn entries_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store
            .lock()
            .append((1..=5).map(|i| entry(1, i)).collect())
            .unwrap();
        store.lock().truncate(4).unwrap();
        drop(store);
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .unwrap();
        f.write_all(&[0, 0, 0, 40, 1, 2]).unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![1, 2, 3]);
        store.lock().append(vec![entry(2, 4)]).unwrap();
        drop(store);
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![1, 2, 3, 4]);
    }

    #[test]
    fn purge_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store
            .lock()
            .append((1..=6).map(|i| entry(1, i)).collect())
            .unwrap();
        store.lock().purge(*entry(1, 3).get_log_id()).unwrap();
        store.lock().append(vec![entry(1, 7)]).unwrap();
        drop(store);
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![4, 5, 6, 7]);
        assert_eq!(store.lock().last_purged.map(|l| l.index), Some(3));
    }
}
