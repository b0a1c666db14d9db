//! Shards: one glommio executor per core, each owning a fixed set of
//! partition logs, and the messages that carry work between them.
//!
//! A `Shard` lives on its own executor's thread and owns what its logs share
//! there: the free-space floor and the read-ahead budget (handed to every
//! log it opens through `LogOptions`, so one shard's read-ahead memory is
//! bounded whatever its number of logs). It also holds its reply router,
//! which the shard setup (`server`) creates and also gives the shard's
//! `AgentHandle`. No per-shard state is found through a thread-local: whoever
//! needs it is handed it.
//!
//! Ownership is a pure function of (topic, partition, shard count), so every
//! shard computes it without asking anyone and without shared state. Work for
//! another shard travels as a `Job`: a `Send` closure that the target shard
//! runs on itself, carrying `Bytes` (reference-counted, never copied) and
//! where to send the answer (replies.rs: answers come home without waking a
//! task from another thread). One job per target shard per request keeps
//! cross-shard wake-ups to one per request.
mod replies;
mod services;

pub use replies::{send_to_thread, PendingReply, ReplyRouter, ReplyTo};
pub use services::{LeadershipChange, LeadershipListeners, ShardServices};

use crate::config::BrokerConfig;
use crate::metadata::MetadataStore;
use futures::future::LocalBoxFuture;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use storage::disk_space::DiskSpace;
use storage::{
    claim_partition_dir, partition_dir, remove_retired, retire_partition_dir, LogOptions,
    PartitionLog, ReadAheadBudget, StorageError, SHARD_BUDGET_BYTES,
};
use thiserror::Error;

/// The shard that owns a partition: topics are spread by a stable hash of
/// their name, and a topic's partitions go round-robin from there.
pub fn owner_shard(topic: &str, partition: i32, shard_count: usize) -> usize {
    let topic_hash = crc32c::crc32c(topic.as_bytes()) as usize;
    (topic_hash.wrapping_add(partition.max(0) as usize)) % shard_count.max(1)
}

/// Work sent to another shard.
pub type Job = Box<dyn FnOnce(Rc<Shard>) -> LocalBoxFuture<'static, ()> + Send>;

/// Why a partition's log could not be opened on its shard.
#[derive(Debug, Error)]
pub enum OpenLogError {
    /// The registry knows no such topic, or the topic has fewer partitions.
    #[error("unknown topic or partition")]
    UnknownPartition,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Debug, Error)]
#[error("shard {0} is gone (shutting down)")]
pub struct ShardGone(pub usize);

/// One executor's state. Lives in an `Rc` on its own thread.
pub struct Shard {
    pub id: usize,
    pub count: usize,
    pub config: Arc<BrokerConfig>,
    pub metadata: Arc<MetadataStore>,
    /// What the layers above keep per shard (see services.rs).
    services: ShardServices,
    /// Who hears of this broker gaining or losing a partition's leadership.
    pub leadership: LeadershipListeners,
    inboxes: Vec<flume::Sender<Job>>,
    /// Answers of the jobs this shard sent to others (and of its calls to
    /// the quorum agent, whose handle holds the same router).
    replies: Rc<ReplyRouter>,
    logs: RefCell<HashMap<String, HashMap<i32, Rc<PartitionLog>>>>,
    /// The topic id each open topic's logs belong to (their directories'
    /// identity), so a topic deleted and created again is told apart.
    topic_ids: RefCell<HashMap<String, uuid::Uuid>>,
    stopping: Cell<bool>,
    /// The free-space floor this shard's logs append above.
    disk_space: Rc<DiskSpace>,
    /// The read-ahead memory all of this shard's logs share.
    read_ahead: Rc<ReadAheadBudget>,
    /// Serializes opening logs, so two requests never open one log twice.
    open_lock: glommio::sync::Semaphore,
}

impl Shard {
    pub fn new(
        id: usize,
        config: Arc<BrokerConfig>,
        metadata: Arc<MetadataStore>,
        inboxes: Vec<flume::Sender<Job>>,
        replies: Rc<ReplyRouter>,
        services: ShardServices,
    ) -> Self {
        let disk_space = Rc::new(DiskSpace::new(
            &config.data_dir,
            config.disk_free_min_bytes_for(&config.data_dir),
        ));
        Shard {
            id,
            disk_space,
            read_ahead: Rc::new(ReadAheadBudget::new(SHARD_BUDGET_BYTES)),
            count: inboxes.len(),
            services,
            leadership: LeadershipListeners::default(),
            config,
            metadata,
            inboxes,
            replies,
            logs: RefCell::new(HashMap::new()),
            topic_ids: RefCell::new(HashMap::new()),
            stopping: Cell::new(false),
            open_lock: glommio::sync::Semaphore::new(1),
        }
    }

    pub fn owner_of(&self, topic: &str, partition: i32) -> usize {
        owner_shard(topic, partition, self.count)
    }

    /// A service the composition root installed on this shard. Every shard
    /// gets all of them at start, so a missing one is a wiring bug.
    pub fn service<T: 'static>(&self) -> &T {
        match self.services.get::<T>() {
            Some(service) => service,
            None => panic!(
                "{} is not installed on shard {}",
                std::any::type_name::<T>(),
                self.id
            ),
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    /// Runs `work` on shard `target` (here, directly, if that is this shard)
    /// and returns its answer.
    pub async fn run_on<T, F, Fut>(self: &Rc<Self>, target: usize, work: F) -> Result<T, ShardGone>
    where
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        if target == self.id {
            return Ok(work(self.clone()).await);
        }
        // The answer comes back through this shard's reply router, never by
        // waking this task from the other thread (see replies.rs).
        let (reply_to, pending) = self.replies.register();
        let job: Job = Box::new(move |shard| {
            Box::pin(async move {
                reply_to.send(work(shard).await);
            })
        });
        let inbox = self.inboxes.get(target).ok_or(ShardGone(target))?;
        send_to_thread(inbox, job)
            .await
            .map_err(|_| ShardGone(target))?;
        pending.answer().await.ok_or(ShardGone(target))
    }

    /// Starts the tasks that deliver other shards' answers (at shard start).
    pub fn start_reply_router(&self) {
        self.replies.start();
    }

    /// Runs `work` on every shard and gathers the answers in shard order.
    pub async fn run_on_all<T, F, Fut>(self: &Rc<Self>, work: F) -> Vec<Result<T, ShardGone>>
    where
        F: Fn(Rc<Shard>) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let calls = (0..self.count).map(|target| {
            let work = work.clone();
            self.run_on(target, work)
        });
        futures::future::join_all(calls).await
    }

    /// The log of a partition this shard owns.
    pub fn log(&self, topic: &str, partition: i32) -> Option<Rc<PartitionLog>> {
        self.logs.borrow().get(topic)?.get(&partition).cloned()
    }

    /// Every log this shard owns.
    pub fn all_logs(&self) -> Vec<Rc<PartitionLog>> {
        self.logs
            .borrow()
            .values()
            .flat_map(|p| p.values().cloned())
            .collect()
    }

    fn log_options(&self) -> LogOptions {
        LogOptions {
            index_interval_bytes: self.config.index_interval_bytes,
            cache_bytes: self.cache_share(),
            flush_policy: self.config.flush_policy,
            writes_in_flight: self.config.writes_in_flight,
            disk_space: Some(self.disk_space.clone()),
            read_ahead: self.read_ahead.clone(),
        }
    }

    /// Each log's share of the shard's cache budget.
    fn cache_share(&self) -> usize {
        let logs: usize = self.logs.borrow().values().map(|p| p.len()).sum();
        let share = self.config.cache_bytes_per_shard / logs.max(1);
        share.min(self.config.cache_bytes_per_partition)
    }

    /// Gives every log its current share of the cache budget (after the
    /// number of logs on this shard changed).
    fn rebalance_cache(&self) {
        let share = self.cache_share();
        for log in self.all_logs() {
            log.set_cache_capacity(share);
        }
    }

    /// Opens (or creates) the logs of `topic` that this shard owns among
    /// `partitions`. Already open logs are left alone.
    pub async fn open_partitions(
        &self,
        topic: &str,
        partitions: std::ops::Range<i32>,
    ) -> Result<(), StorageError> {
        let Some(meta) = self.metadata.topic(topic) else {
            return Ok(());
        };
        let Ok(_permit) = self.open_lock.acquire_permit(1).await else {
            return Ok(());
        };
        self.open_unbalanced(&meta, partitions).await?;
        self.rebalance_cache();
        Ok(())
    }

    /// Like `open_partitions` for several topics, with one walk over the
    /// logs to share the cache at the end rather than one per topic (a view
    /// change that creates many topics would cost its square otherwise).
    pub async fn open_partitions_of(
        &self,
        wanted: &[(String, std::ops::Range<i32>)],
    ) -> Result<(), StorageError> {
        let Ok(_permit) = self.open_lock.acquire_permit(1).await else {
            return Ok(());
        };
        let mut result = Ok(());
        for (topic, partitions) in wanted {
            if let Some(meta) = self.metadata.topic(topic) {
                result = result.and(self.open_unbalanced(&meta, partitions.clone()).await);
            }
        }
        self.rebalance_cache();
        result
    }

    async fn open_unbalanced(
        &self,
        meta: &crate::metadata::TopicMeta,
        partitions: std::ops::Range<i32>,
    ) -> Result<(), StorageError> {
        let topic = meta.name.as_str();
        let config = self.metadata.topic_config(meta);
        for partition in partitions {
            if self.owner_of(topic, partition) != self.id || self.log(topic, partition).is_some() {
                continue;
            }
            let dir = partition_dir(&self.config.data_dir, topic, partition);
            if !meta.id.is_nil() {
                claim_partition_dir(&dir, meta.id)?;
            }
            let log =
                PartitionLog::open(&dir, topic, partition, config.clone(), self.log_options())
                    .await?;
            self.logs
                .borrow_mut()
                .entry(topic.to_string())
                .or_default()
                .insert(partition, log);
            self.topic_ids
                .borrow_mut()
                .insert(topic.to_string(), meta.id);
        }
        Ok(())
    }

    /// Opens (creating if needed) this shard's log of a partition the
    /// registry knows (it may have been created by another shard a moment
    /// ago).
    pub async fn open_log(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Rc<PartitionLog>, OpenLogError> {
        if let Some(log) = self.log(topic, partition) {
            return Ok(log);
        }
        let meta = self
            .metadata
            .topic(topic)
            .ok_or(OpenLogError::UnknownPartition)?;
        if partition < 0 || partition >= meta.partitions {
            return Err(OpenLogError::UnknownPartition);
        }
        self.open_partitions(topic, partition..partition + 1)
            .await?;
        self.log(topic, partition)
            .ok_or(OpenLogError::UnknownPartition)
    }

    /// Puts a reopened log (after truncation) in place of the old one.
    pub fn replace_log(&self, log: Rc<PartitionLog>) {
        let share = self.cache_share();
        log.set_cache_capacity(share);
        self.logs
            .borrow_mut()
            .entry(log.topic.clone())
            .or_default()
            .insert(log.partition, log);
    }

    /// Drops this shard's logs of a deleted topic and removes their files:
    /// each directory is renamed away at once (no later topic can adopt it,
    /// even after a crash), and removed on the blocking thread pool.
    pub fn remove_topic_logs(&self, topic: &str) {
        let removed = self.logs.borrow_mut().remove(topic);
        self.topic_ids.borrow_mut().remove(topic);
        self.rebalance_cache();
        let mut retired = Vec::new();
        for log in removed.into_iter().flat_map(|p| p.into_values()) {
            log.mark_deleted();
            match retire_partition_dir(log.dir()) {
                Ok(dir) => retired.push(dir),
                Err(e) => tracing::warn!(error = %e, "cannot remove a deleted partition"),
            }
        }
        if retired.is_empty() {
            return;
        }
        glommio::spawn_local(async move {
            let removal = glommio::executor().spawn_blocking(move || {
                for dir in &retired {
                    remove_retired(dir);
                }
            });
            removal.await;
        })
        .detach();
    }

    /// Open topics whose logs belong to another topic id than `current`
    /// says (`None`: the topic is gone): a deletion this shard missed.
    pub fn topics_of_other_incarnations(
        &self,
        current: impl Fn(&str) -> Option<uuid::Uuid>,
    ) -> Vec<String> {
        self.topic_ids
            .borrow()
            .iter()
            .filter(|(name, id)| current(name) != Some(**id))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Pushes a topic's current config to this shard's logs of it.
    pub fn reload_topic_config(&self, topic: &str) {
        let Some(meta) = self.metadata.topic(topic) else {
            return;
        };
        let config = self.metadata.topic_config(&meta);
        if let Some(logs) = self.logs.borrow().get(topic) {
            for log in logs.values() {
                log.set_config(config.clone());
            }
        }
    }

    /// Closes every log cleanly (flush, sync, indexes, recovery point).
    pub async fn close_all_logs(&self) {
        self.stopping.set(true);
        for log in self.all_logs() {
            if let Err(e) = log.close().await {
                tracing::error!(topic = %log.topic, partition = log.partition, error = %e, "cannot close log");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_is_stable_and_spread() {
        let a: Vec<usize> = (0..8).map(|p| owner_shard("orders", p, 2)).collect();
        let b: Vec<usize> = (0..8).map(|p| owner_shard("orders", p, 2)).collect();
        assert_eq!(a, b);
        assert_eq!(a.iter().filter(|&&s| s == 0).count(), 4);
        assert!((0..10).all(|p| owner_shard("t", p, 1) == 0));
    }
}
