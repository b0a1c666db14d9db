//! The Raft state machine of one quorum node: applies committed entries with
//! the pure `state::apply`, notes which topics each revision touched in the
//! shared `ChangeLog` (for deltas), publishes every new `ClusterView` on a
//! watch channel (for reads and watches), and builds and installs snapshots.
//! Quorum process, tokio runtime.
//!
//! The view itself lives in memory; what makes it durable is the log plus
//! `snapshot.json` (the view, the last applied log id and the membership,
//! replaced atomically). At start-up the snapshot is loaded and openraft
//! re-applies the committed log after it.
use super::files::{read_optional, write_atomic};
use super::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::changes::ChangeLog;
use crate::model::ClusterView;
use crate::state::{self, Applied, CommandResult, Outcome};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The change log shared by the state machine (which writes it) and the
/// node's watch handlers (which read it).
pub type SharedChangeLog = Arc<Mutex<ChangeLog>>;

/// Locks the change log, whatever a panicking holder left.
pub fn lock_log(log: &SharedChangeLog) -> std::sync::MutexGuard<'_, ChangeLog> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

const SNAPSHOT_FILE: &str = "snapshot.json";

/// What `snapshot.json` holds.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    view: ClusterView,
}

pub struct StateMachine {
    view: ClusterView,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snapshot_path: PathBuf,
    snapshots_built: Arc<AtomicU64>,
    published: watch::Sender<Arc<ClusterView>>,
    changes: SharedChangeLog,
}

/// What `StateMachine::open` hands the node besides the state machine.
pub struct Published {
    pub view: watch::Receiver<Arc<ClusterView>>,
    pub changes: SharedChangeLog,
}

fn sm_err<E: std::error::Error + 'static>(verb: ErrorVerb, e: &E) -> StorageError {
    StorageIOError::new(ErrorSubject::StateMachine, verb, e).into()
}

fn snapshot_err<E: std::error::Error + 'static>(verb: ErrorVerb, e: &E) -> StorageError {
    StorageIOError::new(ErrorSubject::Snapshot(None), verb, e).into()
}

impl StateMachine {
    /// Loads the last snapshot from `dir`, if any. The receiver sees every
    /// view the state machine applies.
    pub fn open(dir: &Path) -> io::Result<(StateMachine, Published)> {
        std::fs::create_dir_all(dir)?;
        let snapshot_path = dir.join(SNAPSHOT_FILE);
        let stored: Option<StoredSnapshot> = match read_optional(&snapshot_path)? {
            None => None,
            Some(bytes) => Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            ),
        };
        let (view, last_applied, membership) = match stored {
            Some(s) => (s.view, s.meta.last_log_id, s.meta.last_membership),
            None => (ClusterView::default(), None, StoredMembership::default()),
        };
        let (published, receiver) = watch::channel(Arc::new(view.clone()));
        let changes = Arc::new(Mutex::new(ChangeLog::starting_at(view.revision)));
        let sm = StateMachine {
            view,
            last_applied,
            membership,
            snapshot_path,
            snapshots_built: Arc::new(AtomicU64::new(0)),
            published,
            changes: changes.clone(),
        };
        let handed = Published {
            view: receiver,
            changes,
        };
        Ok((sm, handed))
    }

    fn publish(&self) {
        self.published.send_replace(Arc::new(self.view.clone()));
    }

    fn apply_entry(&mut self, entry: Entry) -> CommandResult {
        self.last_applied = Some(entry.log_id);
        match entry.payload {
            EntryPayload::Normal(proposal) => {
                let before = self.view.revision;
                let mut touched = Vec::new();
                let result = state::apply_tracked(&mut self.view, &proposal, &mut touched);
                if self.view.revision > before {
                    lock_log(&self.changes).record(self.view.revision, touched);
                }
                result
            }
            EntryPayload::Membership(membership) => {
                self.membership = StoredMembership::new(Some(entry.log_id), membership);
                Ok(self.unchanged())
            }
            EntryPayload::Blank => Ok(self.unchanged()),
        }
    }

    fn unchanged(&self) -> Applied {
        Applied {
            revision: self.view.revision,
            outcome: Outcome::Done,
        }
    }
}

fn read_snapshot_file(path: &Path) -> Result<Option<StoredSnapshot>, StorageError> {
    let Some(bytes) = read_optional(path).map_err(|e| snapshot_err(ErrorVerb::Read, &e))? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| snapshot_err(ErrorVerb::Read, &e))
}

fn write_snapshot_file(path: &Path, stored: &StoredSnapshot) -> Result<(), StorageError> {
    let bytes = serde_json::to_vec(stored).map_err(|e| snapshot_err(ErrorVerb::Write, &e))?;
    write_atomic(path, &bytes).map_err(|e| snapshot_err(ErrorVerb::Write, &e))
}

fn to_snapshot(stored: StoredSnapshot) -> Result<Snapshot<TypeConfig>, StorageError> {
    let data = serde_json::to_vec(&stored.view).map_err(|e| snapshot_err(ErrorVerb::Read, &e))?;
    Ok(Snapshot {
        meta: stored.meta,
        snapshot: Box::new(Cursor::new(data)),
    })
}

/// A copy of the state taken when openraft asks for a snapshot.
pub struct SnapshotBuilder {
    stored: Option<StoredSnapshot>,
    path: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let stored = self.stored.take().ok_or_else(|| {
            let e = io::Error::other("snapshot builder used twice");
            snapshot_err(ErrorVerb::Write, &e)
        })?;
        write_snapshot_file(&self.path, &stored)?;
        tracing::info!(
            last_log_id = ?stored.meta.last_log_id,
            revision = stored.view.revision,
            "quorum snapshot written"
        );
        to_snapshot(stored)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let results: Vec<CommandResult> =
            entries.into_iter().map(|e| self.apply_entry(e)).collect();
        self.publish();
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let n = self.snapshots_built.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{n}", l.leader_id, l.index),
            None => format!("empty-{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        SnapshotBuilder {
            stored: Some(StoredSnapshot {
                meta,
                view: self.view.clone(),
            }),
            path: self.snapshot_path.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let view: ClusterView =
            serde_json::from_slice(snapshot.get_ref()).map_err(|e| sm_err(ErrorVerb::Write, &e))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            view,
        };
        write_snapshot_file(&self.snapshot_path, &stored)?;
        self.view = stored.view;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        lock_log(&self.changes).reset(self.view.revision);
        self.publish();
        tracing::info!(last_log_id = ?meta.last_log_id, "quorum snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        match read_snapshot_file(&self.snapshot_path)? {
            Some(stored) => Ok(Some(to_snapshot(stored)?)),
            None => Ok(None),
        }
    }
}
