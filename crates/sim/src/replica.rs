//! One simulated broker holding one replica of the simulated partition: an
//! in-memory log whose synced prefix survives a crash, the real
//! `LeaderEpochCache`, and the broker's replication logic as Tidemark runs
//! it: roles from the controller's views (`role_in_view`), the leader's
//! real `LeaderReplicaState` (ISR, high watermark, ISR changes), the
//! follower's fetcher with the real divergence decision
//! (`truncation_point`), and the acks=all wait of a produce.
//!
//! What is modelled here rather than called: the thin shells around those
//! cores (the checks of `ReplicaManager::on_follower_fetch` and
//! `check_produce`, the fetcher's loop in `fetcher.rs`, the log's group
//! commit), written to follow them line for line. Runs on the simulation's
//! one thread; it sees time and the network only through `Effects`.
use crate::message::{Effects, Entry, FetchedEntries, Message, NodeId, Refusal, Timer, CONTROLLER};
use broker::replication::follower::{truncation_point, FollowerLog, LeaderEpochEnd, Truncation};
use broker::replication::isr::{IsrChange, LeaderReplicaState};
use broker::replication::manager::{role_in_view, FollowerRole, RoleSummary};
use model::{BrokerId, LeaderEpoch, Offset};
use quorum::model::{ClusterView, PartitionState};
use storage::epochs::LeaderEpochCache;

/// The one topic and partition the simulation replicates.
pub const TOPIC: &str = "sim";

/// Timings, in simulated milliseconds.
#[derive(Debug, Clone)]
pub struct Timings {
    pub heartbeat_ms: u64,
    pub isr_check_ms: u64,
    pub lag_time_max_ms: i64,
    pub fetch_wait_max_ms: u64,
    pub request_timeout_ms: u64,
    pub retry_backoff_ms: u64,
    pub produce_timeout_ms: u64,
    /// An fdatasync takes between these.
    pub sync_ms: (u64, u64),
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            heartbeat_ms: 100,
            isr_check_ms: 250,
            lag_time_max_ms: 1_000,
            fetch_wait_max_ms: 500,
            request_timeout_ms: 2_000,
            retry_backoff_ms: 200,
            produce_timeout_ms: 3_000,
            sync_ms: (1, 8),
        }
    }
}

/// Most records one fetch answer carries.
const FETCH_ENTRIES_MAX: usize = 64;

#[derive(Debug)]
enum Role {
    Leader(Leading),
    Follower(Following),
}

#[derive(Debug)]
struct Leading {
    state: LeaderReplicaState,
    partition_epoch: i32,
    min_insync_replicas: usize,
    /// The ISR change in flight to the controller, by request id.
    isr_request: Option<u64>,
    /// Produce requests waiting for their acknowledgement.
    pending: Vec<PendingProduce>,
    /// Followers' long polls waiting for records.
    parked: Vec<ParkedFetch>,
}

#[derive(Debug)]
struct Following {
    role: FollowerRole,
    /// The leader epoch this log was reconciled with.
    settled_epoch: Option<LeaderEpoch>,
    /// The request in flight to the leader.
    in_flight: Option<u64>,
    /// Appended records wait for their sync before the next fetch (the
    /// flush policy's sync for acks=all, as `append_batches` waits).
    awaiting_sync: bool,
}

#[derive(Debug)]
struct PendingProduce {
    request: u64,
    from: NodeId,
    end_offset: u64,
    deadline_ms: u64,
}

#[derive(Debug)]
struct ParkedFetch {
    request: u64,
    from: NodeId,
    fetch_offset: u64,
}

/// A broker process and its disk.
#[derive(Debug)]
pub struct Replica {
    pub id: NodeId,
    /// Bumped at every start; a crashed incarnation's timers never fire.
    pub incarnation: u64,
    pub up: bool,
    pub log: Vec<Entry>,
    /// How much of `log` an fdatasync covered: what survives a crash.
    pub durable: u64,
    /// Bumped by every truncation, so a sync started before it covers nothing after.
    generation: u64,
    syncing: bool,
    epochs: LeaderEpochCache,
    /// The high watermark replication set on this log (`None`: unknown, as
    /// after a start).
    replicated_high_watermark: Option<u64>,
    view_revision: u64,
    /// The controller applied this incarnation's registration. Until then
    /// views are not applied: they may still name the previous process as
    /// leader (the real agent registers before it starts watching).
    registered: bool,
    role: Option<Role>,
    next_request: u64,
    timings: Timings,
    /// Divergent tails cut, over all incarnations.
    pub truncations: u64,
    /// Of those, cuts to where an epoch the leader never had begins.
    pub asked_again: u64,
}

impl Replica {
    pub fn new(id: NodeId, timings: Timings) -> Replica {
        Replica {
            id,
            incarnation: 0,
            up: false,
            log: Vec::new(),
            durable: 0,
            generation: 0,
            syncing: false,
            epochs: LeaderEpochCache::default(),
            replicated_high_watermark: None,
            view_revision: 0,
            registered: false,
            role: None,
            next_request: 0,
            timings,
            truncations: 0,
            asked_again: 0,
        }
    }

    pub fn log_end(&self) -> u64 {
        self.log.len() as u64
    }

    /// Whether this disk holds `entry` at `offset` in its synced prefix.
    pub fn has_synced(&self, offset: u64, entry: &Entry) -> bool {
        offset < self.durable && self.log.get(offset as usize) == Some(entry)
    }

    /// The high watermark consumers see: written here and reached by the ISR.
    pub fn high_watermark(&self) -> u64 {
        self.replicated_high_watermark
            .map_or(self.log_end(), |hw| hw.min(self.log_end()))
    }

    /// This broker's id in the controller's view (its node number).
    pub fn broker_id(&self) -> BrokerId {
        BrokerId(self.id)
    }

    pub fn leader_epoch(&self) -> Option<LeaderEpoch> {
        match &self.role {
            Some(Role::Leader(l)) => Some(l.state.leader_epoch),
            _ => None,
        }
    }

    /// Starts the process: what the disk kept, nothing else.
    pub fn start(&mut self, fx: &mut Effects) {
        assert!(!self.up, "broker {} started twice", self.id);
        self.up = true;
        self.incarnation += 1;
        self.recover();
        fx.note(format!(
            "broker {} starts (incarnation {}) with {} records, epochs {:?}",
            self.id,
            self.incarnation,
            self.log.len(),
            self.epochs.entries()
        ));
        self.register(fx);
        fx.after(self.timings.isr_check_ms, Timer::IsrCheck);
    }

    /// Registers until the controller answers (the agent's `register`);
    /// heartbeats start once it has.
    fn register(&mut self, fx: &mut Effects) {
        let incarnation = self.incarnation;
        fx.send(CONTROLLER, Message::Register { incarnation });
        fx.after(self.timings.retry_backoff_ms, Timer::RegisterRetry);
    }

    /// The process dies: the unsynced tail of the log is lost with it.
    pub fn crash(&mut self, fx: &mut Effects) {
        assert!(self.up, "broker {} crashed while down", self.id);
        self.up = false;
        fx.note(format!(
            "broker {} crashes: keeps {} of {} records",
            self.id,
            self.durable,
            self.log.len()
        ));
        self.log.truncate(self.durable as usize);
        self.role = None;
        self.syncing = false;
        self.replicated_high_watermark = None;
        self.view_revision = 0;
        self.registered = false;
    }

    /// What recovery makes of the disk: the epochs of the records that
    /// survived (the checkpoint cut to the log end, as recovery does).
    fn recover(&mut self) {
        self.generation += 1;
        self.epochs.truncate_from_end(self.log_end());
        for (offset, entry) in self.log.iter().enumerate() {
            self.epochs.assign(entry.epoch.0, offset as u64);
        }
    }

    fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        ((self.id as u64) << 48) | self.next_request
    }

    // ----- the log -----

    fn append(&mut self, entry: Entry, fx: &mut Effects) -> u64 {
        let offset = self.log_end();
        self.epochs.assign(entry.epoch.0, offset);
        self.log.push(entry);
        self.start_sync(fx);
        offset + 1
    }

    fn start_sync(&mut self, fx: &mut Effects) {
        if self.syncing || self.durable == self.log_end() {
            return;
        }
        self.syncing = true;
        let timer = Timer::SyncDone {
            generation: self.generation,
            covers: self.log_end(),
        };
        fx.after_between(self.timings.sync_ms, timer);
    }

    /// `truncate_divergent`: a cut, or with nothing to cut,
    /// `forget_epochs_without_records`.
    fn truncate_to(&mut self, offset: u64, fx: &mut Effects) {
        if offset >= self.log_end() {
            self.epochs.truncate_from_end(self.log_end());
            return;
        }
        fx.note(format!(
            "broker {} truncates from {} to {}",
            self.id,
            self.log_end(),
            offset
        ));
        self.truncations += 1;
        self.log.truncate(offset as usize);
        self.durable = self.durable.min(offset);
        self.generation += 1;
        self.syncing = false;
        self.epochs.truncate_from_end(offset);
        if let Some(hw) = self.replicated_high_watermark {
            self.replicated_high_watermark = Some(hw.min(offset));
        }
    }

    fn on_sync_done(&mut self, generation: u64, covers: u64, fx: &mut Effects) {
        if generation != self.generation {
            self.start_sync(fx);
            return;
        }
        self.syncing = false;
        self.durable = self.durable.max(covers.min(self.log_end()));
        self.start_sync(fx);
        self.after_progress(fx);
        self.resume_fetch_after_sync(fx);
    }

    // ----- events -----

    pub fn on_timer(&mut self, timer: Timer, now_ms: u64, fx: &mut Effects) {
        match timer {
            Timer::RegisterRetry if !self.registered => self.register(fx),
            Timer::RegisterRetry => {}
            Timer::Heartbeat => {
                let (incarnation, known_revision) = (self.incarnation, self.view_revision);
                fx.send(
                    CONTROLLER,
                    Message::Heartbeat {
                        incarnation,
                        known_revision,
                    },
                );
                fx.after(self.timings.heartbeat_ms, Timer::Heartbeat);
            }
            Timer::IsrCheck => {
                self.check_isr(now_ms, fx);
                fx.after(self.timings.isr_check_ms, Timer::IsrCheck);
            }
            Timer::FetchNext => self.fetch_next(fx),
            Timer::RequestTimeout(request) => self.on_request_timeout(request, fx),
            Timer::SyncDone { generation, covers } => self.on_sync_done(generation, covers, fx),
            Timer::LongPollExpires(request) => self.answer_parked(Some(request), fx),
            Timer::ProduceTimeouts => self.fail_late_produces(now_ms, fx),
        }
    }

    pub fn on_message(&mut self, from: NodeId, message: Message, now_ms: u64, fx: &mut Effects) {
        match message {
            Message::Registered(view) => {
                if !self.registered {
                    self.registered = true;
                    fx.after(self.timings.heartbeat_ms, Timer::Heartbeat);
                }
                self.apply_view(&view, now_ms, fx);
            }
            Message::View(view) if self.registered => self.apply_view(&view, now_ms, fx),
            Message::View(_) => {}
            Message::SessionUnknown => {
                // The heartbeat loop registers again; views keep coming.
                let incarnation = self.incarnation;
                fx.send(CONTROLLER, Message::Register { incarnation });
            }
            Message::AlterPartitionAnswer { request, state } => {
                self.on_isr_answer(request, state, fx)
            }
            Message::Fetch {
                request,
                current_leader_epoch,
                fetch_offset,
            } => self.serve_fetch(
                from,
                request,
                current_leader_epoch,
                fetch_offset,
                now_ms,
                fx,
            ),
            Message::FetchAnswer { request, answer } => self.on_fetch_answer(request, answer, fx),
            Message::EpochQuery {
                request,
                current_leader_epoch,
                epoch,
            } => {
                let answer = self.epoch_end(current_leader_epoch, epoch);
                fx.send(from, Message::EpochAnswer { request, answer });
            }
            Message::EpochAnswer { request, answer } => self.on_epoch_answer(request, answer, fx),
            Message::Produce {
                request,
                value,
                acks,
            } => self.produce(from, (request, acks), value, now_ms, fx),
            Message::ConsumerFetch { request, offset } => {
                let answer = self.read_for_consumer(offset);
                fx.send(from, Message::ConsumerFetchAnswer { request, answer });
            }
            Message::Register { .. }
            | Message::Heartbeat { .. }
            | Message::AlterPartition { .. }
            | Message::ProduceAnswer { .. }
            | Message::ConsumerFetchAnswer { .. } => {
                fx.note(format!(
                    "broker {} ignores a message meant for another node",
                    self.id
                ));
            }
        }
    }

    // ----- roles (view.rs) -----

    fn apply_view(&mut self, view: &ClusterView, now_ms: u64, fx: &mut Effects) {
        if view.revision <= self.view_revision {
            return;
        }
        self.view_revision = view.revision;
        let Some(topic) = view.topics.get(TOPIC) else {
            return;
        };
        let Some(p) = topic.partitions.first() else {
            return;
        };
        let min_isr = topic
            .configs
            .get("min.insync.replicas")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let wanted = role_in_view(p, self.broker_id());
        let current = self.role_summary();
        match wanted {
            None => {
                if current.is_some() {
                    fx.note(format!("broker {} has no role now", self.id));
                    self.leave_role(fx);
                }
            }
            Some(RoleSummary::Leader { leader_epoch }) => {
                if current == wanted {
                    self.refresh_leader(p, min_isr, fx);
                } else {
                    self.leave_role(fx);
                    self.become_leader(p, leader_epoch, min_isr, now_ms, fx);
                }
            }
            Some(RoleSummary::Follower(f)) => {
                if current != wanted {
                    self.leave_role(fx);
                    self.become_follower(f, fx);
                }
            }
        }
    }

    fn role_summary(&self) -> Option<RoleSummary> {
        Some(match self.role.as_ref()? {
            Role::Leader(l) => RoleSummary::Leader {
                leader_epoch: l.state.leader_epoch,
            },
            Role::Follower(f) => RoleSummary::Follower(f.role),
        })
    }

    /// Drops the current role: waiting produces fail as a real broker's do
    /// when leadership moves.
    fn leave_role(&mut self, fx: &mut Effects) {
        if let Some(Role::Leader(l)) = self.role.take() {
            for p in l.pending {
                let answer = Err(Refusal::NotLeaderOrFollower);
                fx.send(
                    p.from,
                    Message::ProduceAnswer {
                        request: p.request,
                        answer,
                    },
                );
            }
        }
    }

    fn become_leader(
        &mut self,
        p: &PartitionState,
        leader_epoch: LeaderEpoch,
        min_isr: usize,
        now_ms: u64,
        fx: &mut Effects,
    ) {
        let high_watermark = self.replicated_high_watermark.unwrap_or(0);
        // `PartitionLog::begin_leader_epoch`.
        self.epochs.assign(leader_epoch.0, self.log_end());
        let state = LeaderReplicaState::new(
            self.broker_id(),
            leader_epoch,
            p.replicas.clone(),
            p.isr.clone(),
            Offset(high_watermark),
            Offset(self.log_end()),
            self.timings.lag_time_max_ms,
            now_ms as i64,
        );
        fx.note(format!(
            "broker {} leads at epoch {leader_epoch} with isr {:?}, log end {}, hw {high_watermark}",
            self.id,
            p.isr,
            self.log_end()
        ));
        self.role = Some(Role::Leader(Leading {
            state,
            partition_epoch: p.partition_epoch,
            min_insync_replicas: min_isr,
            isr_request: None,
            pending: Vec::new(),
            parked: Vec::new(),
        }));
        self.replicated_high_watermark = Some(high_watermark);
        fx.became_leader = Some(leader_epoch);
        self.after_progress(fx);
    }

    fn refresh_leader(&mut self, p: &PartitionState, min_isr: usize, fx: &mut Effects) {
        if let Some(Role::Leader(l)) = &mut self.role {
            l.min_insync_replicas = min_isr;
            if p.partition_epoch > l.partition_epoch {
                l.partition_epoch = p.partition_epoch;
                l.state.on_isr_settled(p.isr.clone());
            }
        }
        self.after_progress(fx);
    }

    fn become_follower(&mut self, role: FollowerRole, fx: &mut Effects) {
        fx.note(format!(
            "broker {} follows {} at epoch {}",
            self.id, role.leader_id, role.leader_epoch
        ));
        self.replicated_high_watermark = Some(self.replicated_high_watermark.unwrap_or(0));
        self.role = Some(Role::Follower(Following {
            role,
            settled_epoch: None,
            in_flight: None,
            awaiting_sync: false,
        }));
        self.fetch_next(fx);
    }

    // ----- the leader (leader.rs, manager.rs, fetch.rs) -----

    /// A produce (`check_produce`, `append`, `wait_acknowledged`): acks=all
    /// waits for the sync and the ISR; acks=1 for the leader's write only.
    fn produce(
        &mut self,
        from: NodeId,
        (request, acks): (u64, i16),
        value: u64,
        now_ms: u64,
        fx: &mut Effects,
    ) {
        let epoch = match &self.role {
            Some(Role::Leader(l)) if acks == -1 && l.state.isr().len() < l.min_insync_replicas => {
                let answer = Err(Refusal::NotEnoughReplicas);
                fx.send(from, Message::ProduceAnswer { request, answer });
                return;
            }
            Some(Role::Leader(l)) => l.state.leader_epoch,
            _ => {
                let answer = Err(Refusal::NotLeaderOrFollower);
                fx.send(from, Message::ProduceAnswer { request, answer });
                return;
            }
        };
        let end_offset = self.append(Entry { epoch, value }, fx);
        if acks != -1 {
            let answer = Ok(end_offset - 1);
            fx.send(from, Message::ProduceAnswer { request, answer });
            return;
        }
        let deadline_ms = now_ms + self.timings.produce_timeout_ms;
        if let Some(Role::Leader(l)) = &mut self.role {
            l.pending.push(PendingProduce {
                request,
                from,
                end_offset,
                deadline_ms,
            });
        }
        fx.after(self.timings.produce_timeout_ms, Timer::ProduceTimeouts);
        self.after_progress(fx);
    }

    /// After anything that can move the high watermark or settle a
    /// produce: the ISR's high watermark, acks=all answers, long polls.
    fn after_progress(&mut self, fx: &mut Effects) {
        let (log_end, durable) = (self.log_end(), self.durable);
        let Some(Role::Leader(l)) = &mut self.role else {
            return;
        };
        if let Some(hw) = l.state.advance_high_watermark(Offset(log_end)) {
            self.replicated_high_watermark = Some(hw.0);
        }
        let hw = self.replicated_high_watermark.unwrap_or(0).min(log_end);
        let isr_too_small = l.state.isr().len() < l.min_insync_replicas;
        let mut waiting = Vec::new();
        for p in std::mem::take(&mut l.pending) {
            let answer = if durable >= p.end_offset && hw >= p.end_offset {
                Ok(p.end_offset - 1)
            } else if isr_too_small {
                Err(Refusal::NotEnoughReplicasAfterAppend)
            } else {
                waiting.push(p);
                continue;
            };
            fx.send(
                p.from,
                Message::ProduceAnswer {
                    request: p.request,
                    answer,
                },
            );
        }
        l.pending = waiting;
        self.answer_parked(None, fx);
    }

    fn fail_late_produces(&mut self, now_ms: u64, fx: &mut Effects) {
        let Some(Role::Leader(l)) = &mut self.role else {
            return;
        };
        let (late, waiting) = std::mem::take(&mut l.pending)
            .into_iter()
            .partition(|p| p.deadline_ms <= now_ms);
        l.pending = waiting;
        for p in late {
            let answer = Err(Refusal::RequestTimedOut);
            fx.send(
                p.from,
                Message::ProduceAnswer {
                    request: p.request,
                    answer,
                },
            );
        }
    }

    /// The leader's ISR shrink check (`isr_check_loop`).
    fn check_isr(&mut self, now_ms: u64, fx: &mut Effects) {
        let Some(Role::Leader(l)) = &mut self.role else {
            return;
        };
        if let Some(change) = l.state.on_tick(now_ms as i64) {
            fx.note(format!(
                "broker {} shrinks the isr to {:?}",
                self.id, change.new_isr
            ));
            self.propose_isr(change, fx);
        }
    }

    fn propose_isr(&mut self, change: IsrChange, fx: &mut Effects) {
        let request = self.request_id();
        let Some(Role::Leader(l)) = &mut self.role else {
            return;
        };
        l.isr_request = Some(request);
        let message = Message::AlterPartition {
            request,
            leader_epoch: l.state.leader_epoch,
            partition_epoch: l.partition_epoch,
            new_isr: change.new_isr,
        };
        fx.send(CONTROLLER, message);
        fx.after(
            self.timings.request_timeout_ms,
            Timer::RequestTimeout(request),
        );
    }

    /// `ReplicaManager::on_isr_answer`.
    fn on_isr_answer(&mut self, request: u64, answer: Option<PartitionState>, fx: &mut Effects) {
        let Some(Role::Leader(l)) = &mut self.role else {
            return;
        };
        if l.isr_request != Some(request) {
            return;
        }
        l.isr_request = None;
        match answer {
            Some(state) if state.leader_epoch == l.state.leader_epoch => {
                l.partition_epoch = state.partition_epoch;
                l.state.on_isr_settled(state.isr);
            }
            _ => l.state.on_isr_change_failed(),
        }
        self.after_progress(fx);
    }

    /// A follower's fetch (`serve_follower`, then `read_for`): note its log
    /// end, move the high watermark, answer now or park as a long poll.
    fn serve_fetch(
        &mut self,
        from: NodeId,
        request: u64,
        follower_epoch: LeaderEpoch,
        fetch_offset: u64,
        now_ms: u64,
        fx: &mut Effects,
    ) {
        let log_end = self.log_end();
        let follower = BrokerId(from);
        let checked = match &mut self.role {
            Some(Role::Leader(l)) => {
                if follower_epoch < l.state.leader_epoch {
                    Err(Refusal::FencedLeaderEpoch)
                } else if follower_epoch > l.state.leader_epoch {
                    Err(Refusal::UnknownLeaderEpoch)
                } else if !l.state.is_follower(follower) {
                    Err(Refusal::NotLeaderOrFollower)
                } else {
                    let now = now_ms as i64;
                    let (offset, end) = (Offset(fetch_offset), Offset(log_end));
                    Ok(l.state.on_follower_fetch(follower, offset, end, now))
                }
            }
            _ => Err(Refusal::NotLeaderOrFollower),
        };
        let expansion = match checked {
            Ok(expansion) => expansion,
            Err(refusal) => {
                let answer = Err(refusal);
                fx.send(from, Message::FetchAnswer { request, answer });
                return;
            }
        };
        if let Some(change) = expansion {
            fx.note(format!(
                "broker {} expands the isr to {:?}",
                self.id, change.new_isr
            ));
            self.propose_isr(change, fx);
        }
        self.after_progress(fx);
        if fetch_offset > log_end {
            let answer = Err(Refusal::OffsetOutOfRange);
            fx.send(from, Message::FetchAnswer { request, answer });
            return;
        }
        if fetch_offset < log_end {
            let answer = Ok(self.entries_from(fetch_offset, log_end));
            fx.send(from, Message::FetchAnswer { request, answer });
            return;
        }
        if let Some(Role::Leader(l)) = &mut self.role {
            l.parked.push(ParkedFetch {
                request,
                from,
                fetch_offset,
            });
            fx.after(
                self.timings.fetch_wait_max_ms,
                Timer::LongPollExpires(request),
            );
        }
    }

    /// Answers parked long polls: those that have records now, and the one
    /// whose wait ran out (`expired`) with or without.
    fn answer_parked(&mut self, expired: Option<u64>, fx: &mut Effects) {
        let log_end = self.log_end();
        let Some(Role::Leader(l)) = &mut self.role else {
            return;
        };
        let (due, parked): (Vec<ParkedFetch>, Vec<ParkedFetch>) = std::mem::take(&mut l.parked)
            .into_iter()
            .partition(|p| p.fetch_offset < log_end || Some(p.request) == expired);
        l.parked = parked;
        for p in due {
            let answer = Ok(self.entries_from(p.fetch_offset, log_end));
            fx.send(
                p.from,
                Message::FetchAnswer {
                    request: p.request,
                    answer,
                },
            );
        }
    }

    fn entries_from(&self, offset: u64, bound: u64) -> FetchedEntries {
        let end = bound.min(offset + FETCH_ENTRIES_MAX as u64).max(offset);
        FetchedEntries {
            base_offset: offset,
            entries: self.log[offset as usize..end as usize].to_vec(),
            high_watermark: self.high_watermark(),
        }
    }

    /// OffsetForLeaderEpoch on the leader (`epoch_end_one`).
    fn epoch_end(
        &self,
        current_leader_epoch: LeaderEpoch,
        epoch: LeaderEpoch,
    ) -> Result<(i32, i64), Refusal> {
        let ours = self.leader_epoch().ok_or(Refusal::NotLeaderOrFollower)?;
        if current_leader_epoch < ours {
            return Err(Refusal::FencedLeaderEpoch);
        }
        if current_leader_epoch > ours {
            return Err(Refusal::UnknownLeaderEpoch);
        }
        Ok(self.epochs.end_offset_for(epoch.0, self.log_end()))
    }

    /// A consumer's fetch: records below the high watermark only.
    fn read_for_consumer(&self, offset: u64) -> Result<FetchedEntries, Refusal> {
        self.leader_epoch().ok_or(Refusal::NotLeaderOrFollower)?;
        if offset > self.log_end() {
            return Err(Refusal::OffsetOutOfRange);
        }
        Ok(self.entries_from(offset, self.high_watermark()))
    }

    // ----- the follower (fetcher.rs) -----

    fn following(&mut self) -> Option<&mut Following> {
        match &mut self.role {
            Some(Role::Follower(f)) => Some(f),
            _ => None,
        }
    }

    /// The fetcher's next request: reconcile a new epoch first, then fetch.
    fn fetch_next(&mut self, fx: &mut Effects) {
        let latest = self.epochs.latest_epoch().map(LeaderEpoch);
        let log_end = self.log_end();
        let request = self.request_id();
        let timeout = self.timings.request_timeout_ms;
        let Some(f) = self.following() else {
            return;
        };
        if f.in_flight.is_some() || f.awaiting_sync {
            return;
        }
        if f.settled_epoch != Some(f.role.leader_epoch) && latest.is_none() {
            // Nothing was ever written here: nothing can diverge.
            f.settled_epoch = Some(f.role.leader_epoch);
        }
        let current_leader_epoch = f.role.leader_epoch;
        let message = match (f.settled_epoch == Some(f.role.leader_epoch), latest) {
            (false, Some(epoch)) => Message::EpochQuery {
                request,
                current_leader_epoch,
                epoch,
            },
            _ => Message::Fetch {
                request,
                current_leader_epoch,
                fetch_offset: log_end,
            },
        };
        f.in_flight = Some(request);
        let leader = f.role.leader_id;
        fx.send(leader.0, message);
        fx.after(timeout, Timer::RequestTimeout(request));
    }

    fn on_request_timeout(&mut self, request: u64, fx: &mut Effects) {
        let backoff = self.timings.retry_backoff_ms;
        match &mut self.role {
            Some(Role::Follower(f)) if f.in_flight == Some(request) => {
                f.in_flight = None;
                fx.after(backoff, Timer::FetchNext);
            }
            Some(Role::Leader(l)) if l.isr_request == Some(request) => {
                l.isr_request = None;
                l.state.on_isr_change_failed();
            }
            _ => {}
        }
    }

    /// Takes the answer to the request in flight, if it is that one.
    fn take_in_flight(&mut self, request: u64) -> bool {
        match self.following() {
            Some(f) if f.in_flight == Some(request) => {
                f.in_flight = None;
                true
            }
            _ => false,
        }
    }

    /// `truncate_divergent`: the leader said where our latest epoch ends.
    fn on_epoch_answer(
        &mut self,
        request: u64,
        answer: Result<(i32, i64), Refusal>,
        fx: &mut Effects,
    ) {
        if !self.take_in_flight(request) {
            return;
        }
        let Ok((leader_epoch, end_offset)) = answer else {
            fx.after(self.timings.retry_backoff_ms, Timer::FetchNext);
            return;
        };
        let local = FollowerLog {
            log_end: Offset(self.log_end()),
            high_watermark: Offset(self.high_watermark()),
        };
        let answer = LeaderEpochEnd::from_leader(leader_epoch, end_offset);
        let log_end = self.log_end();
        let epochs = &self.epochs;
        let ours = |e: LeaderEpoch| LeaderEpochEnd::from_local(epochs.end_offset_for(e.0, log_end));
        let decision = truncation_point(answer, local, ours);
        let settled = match decision {
            Truncation::Settled(None) => {
                self.truncate_to(log_end, fx);
                true
            }
            Truncation::Settled(Some(target)) => {
                self.truncate_to(target.0, fx);
                true
            }
            Truncation::AskAgain(target) => {
                self.asked_again += 1;
                fx.note(format!(
                    "broker {}: the leader answered epoch {leader_epoch}, which this log never had: cut to {target} and ask again",
                    self.id
                ));
                self.truncate_to(target.0, fx);
                false
            }
        };
        if let Some(f) = self.following() {
            if settled {
                f.settled_epoch = Some(f.role.leader_epoch);
            }
        }
        self.fetch_next(fx);
    }

    /// `apply_fetched`: append what came, wait for its sync, take the
    /// leader's high watermark.
    fn on_fetch_answer(
        &mut self,
        request: u64,
        answer: Result<FetchedEntries, Refusal>,
        fx: &mut Effects,
    ) {
        if !self.take_in_flight(request) {
            return;
        }
        let fetched = match answer {
            Ok(fetched) => fetched,
            Err(Refusal::OffsetOutOfRange) => {
                // Our log is ahead of the leader's: reconcile again.
                if let Some(f) = self.following() {
                    f.settled_epoch = None;
                }
                self.fetch_next(fx);
                return;
            }
            Err(_) => {
                fx.after(self.timings.retry_backoff_ms, Timer::FetchNext);
                return;
            }
        };
        for (i, entry) in fetched.entries.iter().enumerate() {
            let offset = fetched.base_offset + i as u64;
            if offset < self.log_end() {
                continue;
            }
            assert_eq!(offset, self.log_end(), "a fetched record past our log end");
            self.append(*entry, fx);
        }
        let end = self.log_end();
        let ours = self.replicated_high_watermark.unwrap_or(0).min(end);
        self.replicated_high_watermark = Some(fetched.high_watermark.min(end).max(ours));
        let synced = self.durable >= end;
        if let Some(f) = self.following() {
            f.awaiting_sync = !synced;
        }
        self.fetch_next(fx);
    }

    /// The follower's sync completed: fetch again if it was waiting.
    fn resume_fetch_after_sync(&mut self, fx: &mut Effects) {
        let synced = self.durable >= self.log_end();
        if let Some(f) = self.following() {
            if f.awaiting_sync && synced {
                f.awaiting_sync = false;
            }
        }
        self.fetch_next(fx);
    }

    /// Invariants of one replica: the synced prefix within the log, and
    /// the epoch cache saying the epoch of every record.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.durable > self.log_end() {
            return Err(format!(
                "broker {}: durable {} past log end {}",
                self.id,
                self.durable,
                self.log_end()
            ));
        }
        let entries = self.epochs.entries();
        for (offset, entry) in self.log.iter().enumerate() {
            let expected = entries
                .iter()
                .rev()
                .find(|e| e.start_offset <= offset as u64)
                .map(|e| LeaderEpoch(e.epoch));
            if expected != Some(entry.epoch) {
                return Err(format!(
                    "broker {}: record {offset} has epoch {} but the epoch cache says {expected:?} ({entries:?})",
                    self.id, entry.epoch
                ));
            }
        }
        Ok(())
    }
}
