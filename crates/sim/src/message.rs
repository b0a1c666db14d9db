//! What the simulated nodes say to each other, and what a node hands back
//! to the world when it handles an event (`Effects`): messages to send,
//! timers to set, trace lines. Nodes never touch the network or the clock
//! themselves, so each can be driven alone.
use model::{BrokerId, LeaderEpoch};
use quorum::model::{ClusterView, PartitionState};

/// A node's address. Brokers are 1..=N, the same number as their
/// `BrokerId`; the controller and the client have their own ids.
pub type NodeId = i32;
pub const CONTROLLER: NodeId = 0;
pub const CLIENT: NodeId = -1;

/// One record of the simulated partition: the leader epoch that wrote it
/// and a value unique over the run (the producer's sequence number), so the
/// oracle can tell two records at one offset apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub epoch: LeaderEpoch,
    pub value: u64,
}

/// Why a broker refused a request, as the Kafka error a real one answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotLeaderOrFollower,
    FencedLeaderEpoch,
    UnknownLeaderEpoch,
    NotEnoughReplicas,
    NotEnoughReplicasAfterAppend,
    OffsetOutOfRange,
    RequestTimedOut,
}

#[derive(Debug, Clone)]
pub enum Message {
    // Broker -> controller.
    Register {
        incarnation: u64,
    },
    Heartbeat {
        incarnation: u64,
        known_revision: u64,
    },
    AlterPartition {
        request: u64,
        leader_epoch: LeaderEpoch,
        partition_epoch: i32,
        new_isr: Vec<BrokerId>,
    },
    // Controller -> broker.
    /// The registration is applied; the view after it.
    Registered(Box<ClusterView>),
    View(Box<ClusterView>),
    /// The broker's session is unknown (expired): it registers again.
    SessionUnknown,
    AlterPartitionAnswer {
        request: u64,
        /// The partition after the change, or `None` if it was refused.
        state: Option<PartitionState>,
    },
    // Follower -> leader, and the answers.
    Fetch {
        request: u64,
        current_leader_epoch: LeaderEpoch,
        fetch_offset: u64,
    },
    FetchAnswer {
        request: u64,
        answer: Result<FetchedEntries, Refusal>,
    },
    EpochQuery {
        request: u64,
        current_leader_epoch: LeaderEpoch,
        epoch: LeaderEpoch,
    },
    EpochAnswer {
        request: u64,
        /// The leader's largest epoch at or below the asked one, and where
        /// it ends, as OffsetForLeaderEpoch carries them ((-1, -1): none).
        answer: Result<(i32, i64), Refusal>,
    },
    // Client -> leader, and the answers.
    Produce {
        request: u64,
        value: u64,
        /// -1 (all) or 1 (the leader's write only).
        acks: i16,
    },
    ProduceAnswer {
        request: u64,
        answer: Result<u64, Refusal>,
    },
    ConsumerFetch {
        request: u64,
        offset: u64,
    },
    ConsumerFetchAnswer {
        request: u64,
        answer: Result<FetchedEntries, Refusal>,
    },
}

/// Records from `base_offset` on, and the leader's high watermark.
#[derive(Debug, Clone)]
pub struct FetchedEntries {
    pub base_offset: u64,
    pub entries: Vec<Entry>,
    pub high_watermark: u64,
}

/// A timer a broker sets; it fires only in the incarnation that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Registers again unless the controller answered the registration.
    RegisterRetry,
    Heartbeat,
    IsrCheck,
    /// The fetcher sends its next request (after a backoff).
    FetchNext,
    /// A request of the fetcher (or an ISR change) got no answer in time.
    RequestTimeout(u64),
    /// An fdatasync started at this log generation completes.
    SyncDone {
        generation: u64,
        covers: u64,
    },
    /// A follower's parked long poll answers now, with or without records.
    LongPollExpires(u64),
    /// Produce requests whose timeout passed fail now.
    ProduceTimeouts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delay {
    Fixed(u64),
    Between(u64, u64),
}

/// What handling one event asks of the world.
#[derive(Debug, Default)]
pub struct Effects {
    pub sends: Vec<(NodeId, Message)>,
    pub timers: Vec<(Delay, Timer)>,
    pub trace: Vec<String>,
    /// The broker became the partition's leader at this epoch: the oracle
    /// checks its log now.
    pub became_leader: Option<LeaderEpoch>,
}

impl Effects {
    pub fn send(&mut self, to: NodeId, message: Message) {
        self.sends.push((to, message));
    }

    pub fn after(&mut self, delay_ms: u64, timer: Timer) {
        self.timers.push((Delay::Fixed(delay_ms), timer));
    }

    /// A timer whose delay the world draws from the seed, between `low`
    /// and `high` ms (an fdatasync's latency), so nodes need no randomness.
    pub fn after_between(&mut self, (low, high): (u64, u64), timer: Timer) {
        self.timers.push((Delay::Between(low, high), timer));
    }

    pub fn note(&mut self, line: String) {
        self.trace.push(line);
    }
}
