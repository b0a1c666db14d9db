//! A partition leader's view of its followers, as a pure state machine: who
//! has fetched how far, the in-sync replica set (ISR), the high watermark,
//! and when to ask the controller to shrink or expand the ISR. No I/O: the
//! owning shard feeds it follower fetches and clock ticks and carries out the
//! `IsrChange`s it asks for (an AlterPartition to the quorum).
//!
//! Kafka's rules, kept here:
//! - a follower is caught up at a fetch whose offset reaches the leader's log
//!   end, or the log end the leader had at that follower's previous fetch;
//! - an ISR member not caught up for `replica.lag.time.max.ms` is dropped;
//! - a replica outside the ISR whose log end reaches the high watermark (and
//!   the start of the current leader epoch) is added back;
//! - the high watermark is the smallest log end over the ISR, and never
//!   moves back;
//! - while an ISR change is in flight, the high watermark counts the union of
//!   the old and the proposed ISR (the "maximal ISR"), so a record is never
//!   called committed under an ISR the controller has not accepted.
//! - a new leader's high watermark may lag its own log end (it starts at
//!   what this broker knew as a follower, and an ISR member that died but
//!   is not yet out of the ISR holds it back); until it reaches the start of
//!   the leader epoch, consumers are not told where the log ends (KIP-207's
//!   OFFSET_NOT_AVAILABLE), or they would see offsets go backwards.
use model::{BrokerId, LeaderEpoch, Offset};
use std::collections::BTreeMap;

/// One follower as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Follower {
    /// The offset the follower will fetch next: its log end.
    log_end_offset: Offset,
    /// The leader's log end at this follower's previous fetch.
    leader_end_at_last_fetch: Offset,
    last_fetch_ms: i64,
    last_caught_up_ms: i64,
}

/// An ISR the leader asks the controller to accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub new_isr: Vec<BrokerId>,
}

#[derive(Debug, Clone)]
pub struct LeaderReplicaState {
    pub local_id: BrokerId,
    pub leader_epoch: LeaderEpoch,
    /// The first offset this leader epoch wrote: a returning follower must
    /// reach it before it can join the ISR.
    pub epoch_start_offset: Offset,
    replicas: Vec<BrokerId>,
    isr: Vec<BrokerId>,
    pending: Option<IsrChange>,
    followers: BTreeMap<BrokerId, Follower>,
    high_watermark: Offset,
    lag_time_max_ms: i64,
}

impl LeaderReplicaState {
    /// A leader that just took over at `leader_epoch`. Followers start as
    /// caught up at `now_ms`, as Kafka starts them, so the ISR is not cut the
    /// moment a leader is elected.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        local_id: BrokerId,
        leader_epoch: LeaderEpoch,
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
        high_watermark: Offset,
        epoch_start_offset: Offset,
        lag_time_max_ms: i64,
        now_ms: i64,
    ) -> LeaderReplicaState {
        let followers = replicas
            .iter()
            .filter(|&&id| id != local_id)
            .map(|&id| {
                let f = Follower {
                    log_end_offset: Offset::ZERO,
                    leader_end_at_last_fetch: Offset::ZERO,
                    last_fetch_ms: now_ms,
                    last_caught_up_ms: now_ms,
                };
                (id, f)
            })
            .collect();
        LeaderReplicaState {
            local_id,
            leader_epoch,
            epoch_start_offset,
            replicas,
            isr,
            pending: None,
            followers,
            high_watermark,
            lag_time_max_ms,
        }
    }

    pub fn isr(&self) -> &[BrokerId] {
        &self.isr
    }

    pub fn replicas(&self) -> &[BrokerId] {
        &self.replicas
    }

    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// Whether the high watermark has reached the first offset of this
    /// leader epoch: before that, records the ISR had under the previous
    /// leader (acknowledged, maybe) sit above it, and a "latest offset"
    /// answer would be older than what consumers were already told.
    pub fn high_watermark_reached_epoch_start(&self) -> bool {
        self.high_watermark >= self.epoch_start_offset
    }

    pub fn pending_change(&self) -> Option<&IsrChange> {
        self.pending.as_ref()
    }

    /// Whether `id` is a replica other than the leader.
    pub fn is_follower(&self, id: BrokerId) -> bool {
        self.followers.contains_key(&id)
    }

    /// A follower fetched from `fetch_offset` while the leader's log ended at
    /// `leader_end`. Returns an ISR expansion to propose, if it earned one.
    pub fn on_follower_fetch(
        &mut self,
        id: BrokerId,
        fetch_offset: Offset,
        leader_end: Offset,
        now_ms: i64,
    ) -> Option<IsrChange> {
        let f = self.followers.get_mut(&id)?;
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = now_ms;
        } else if fetch_offset >= f.leader_end_at_last_fetch {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end_offset = fetch_offset;
        f.leader_end_at_last_fetch = leader_end;
        f.last_fetch_ms = now_ms;
        self.expansion_for(id)
    }

    fn expansion_for(&mut self, id: BrokerId) -> Option<IsrChange> {
        let f = self.followers.get(&id)?;
        let joins = !self.isr.contains(&id)
            && f.log_end_offset >= self.high_watermark
            && f.log_end_offset >= self.epoch_start_offset;
        if !joins || self.pending.is_some() {
            return None;
        }
        let mut new_isr = self.isr.clone();
        new_isr.push(id);
        new_isr.sort_unstable_by_key(|r| self.replicas.iter().position(|x| x == r));
        self.propose(new_isr)
    }

    /// Drops ISR members that have not caught up for `lag_time_max_ms`.
    pub fn on_tick(&mut self, now_ms: i64) -> Option<IsrChange> {
        if self.pending.is_some() {
            return None;
        }
        let lagging = |id: &BrokerId| {
            self.followers
                .get(id)
                .is_some_and(|f| now_ms - f.last_caught_up_ms > self.lag_time_max_ms)
        };
        if !self.isr.iter().any(lagging) {
            return None;
        }
        let new_isr: Vec<BrokerId> = self.isr.iter().copied().filter(|id| !lagging(id)).collect();
        self.propose(new_isr)
    }

    fn propose(&mut self, new_isr: Vec<BrokerId>) -> Option<IsrChange> {
        let change = IsrChange { new_isr };
        self.pending = Some(change.clone());
        Some(change)
    }

    /// The controller answered the pending change: `isr` is what it holds
    /// now (the proposal, or, if it refused, the ISR it has).
    pub fn on_isr_settled(&mut self, isr: Vec<BrokerId>) {
        self.pending = None;
        self.isr = isr;
    }

    /// The controller did not answer (timeout, no quorum): forget the
    /// proposal so a later fetch or tick can propose again.
    pub fn on_isr_change_failed(&mut self) {
        self.pending = None;
    }

    /// Moves the high watermark to the smallest log end over the (maximal)
    /// ISR, given the leader's own written log end. Returns the new high
    /// watermark if it moved.
    pub fn advance_high_watermark(&mut self, leader_written_end: Offset) -> Option<Offset> {
        let mut members: Vec<BrokerId> = self.isr.clone();
        if let Some(p) = &self.pending {
            members.extend(
                p.new_isr
                    .iter()
                    .copied()
                    .filter(|id| !self.isr.contains(id)),
            );
        }
        let lowest = members
            .iter()
            .filter(|&&id| id != self.local_id)
            .map(|id| {
                self.followers
                    .get(id)
                    .map_or(Offset::ZERO, |f| f.log_end_offset)
            })
            .fold(leader_written_end, Offset::min);
        if lowest > self.high_watermark {
            self.high_watermark = lowest;
            return Some(lowest);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(raw: &[i32]) -> Vec<BrokerId> {
        raw.iter().copied().map(BrokerId).collect()
    }

    const LAG_MS: i64 = 1000;

    fn leader() -> LeaderReplicaState {
        LeaderReplicaState::new(
            BrokerId(1),
            LeaderEpoch(4),
            ids(&[1, 2, 3]),
            ids(&[1, 2, 3]),
            Offset(0),
            Offset(0),
            LAG_MS,
            0,
        )
    }

    #[test]
    fn the_high_watermark_is_the_slowest_isr_member() {
        let mut l = leader();
        assert_eq!(
            l.advance_high_watermark(Offset(100)),
            None,
            "followers at 0"
        );
        l.on_follower_fetch(BrokerId(2), Offset(100), Offset(100), 10);
        assert_eq!(
            l.advance_high_watermark(Offset(100)),
            None,
            "3 is still at 0"
        );
        l.on_follower_fetch(BrokerId(3), Offset(60), Offset(100), 10);
        assert_eq!(l.advance_high_watermark(Offset(100)), Some(Offset(60)));
        // A fetch from below the high watermark never moves it back.
        l.on_follower_fetch(BrokerId(3), Offset(50), Offset(100), 20);
        assert_eq!(l.advance_high_watermark(Offset(100)), None);
        assert_eq!(l.high_watermark(), Offset(60));
    }

    #[test]
    fn a_lagging_follower_is_dropped_and_rejoins_once_caught_up() {
        let mut l = leader();
        l.on_follower_fetch(BrokerId(2), Offset(100), Offset(100), 500);
        l.on_follower_fetch(BrokerId(3), Offset(10), Offset(100), 500);
        assert_eq!(l.on_tick(900), None, "within the lag time");
        l.on_follower_fetch(BrokerId(2), Offset(100), Offset(100), 1400);
        let change = l.on_tick(1600).expect("3 lags");
        assert_eq!(change.new_isr, ids(&[1, 2]));
        // While pending, the high watermark still waits for 3 (maximal ISR).
        assert_eq!(l.advance_high_watermark(Offset(100)), Some(Offset(10)));
        l.on_isr_settled(ids(&[1, 2]));
        assert_eq!(l.advance_high_watermark(Offset(100)), Some(Offset(100)));
        // 3 catches up to the high watermark: it is proposed back, in
        // replica order.
        let change = l
            .on_follower_fetch(BrokerId(3), Offset(100), Offset(120), 1700)
            .expect("3 rejoins");
        assert_eq!(change.new_isr, ids(&[1, 2, 3]));
        assert_eq!(
            l.on_follower_fetch(BrokerId(2), Offset(120), Offset(120), 1700),
            None,
            "one change at a time"
        );
        l.on_isr_settled(change.new_isr);
        assert_eq!(l.isr(), ids(&[1, 2, 3]));
    }

    /// Broker 3 takes over at log end 10 knowing a high watermark of 5 (the
    /// old leader's last answer to it came before records 5..9 were
    /// committed), while the controller still lists a dead broker 2 in the
    /// ISR: the high watermark cannot move until 2 leaves the ISR, and until
    /// then the leader must not say its log ends at 5.
    #[test]
    fn a_new_leader_knows_its_log_end_only_once_the_high_watermark_reaches_its_epoch_start() {
        let mut l = LeaderReplicaState::new(
            BrokerId(3),
            LeaderEpoch(2),
            ids(&[3, 1, 2]),
            ids(&[3, 2]),
            Offset(5),
            Offset(10),
            LAG_MS,
            0,
        );
        assert_eq!(l.advance_high_watermark(Offset(10)), None, "2 holds it");
        assert_eq!(l.high_watermark(), Offset(5));
        assert!(!l.high_watermark_reached_epoch_start());
        // The controller expires broker 2: the ISR is the leader alone.
        l.on_isr_settled(ids(&[3]));
        assert_eq!(l.advance_high_watermark(Offset(10)), Some(Offset(10)));
        assert!(l.high_watermark_reached_epoch_start());
    }

    #[test]
    fn a_leader_elected_with_nothing_uncommitted_knows_its_log_end_at_once() {
        let l = LeaderReplicaState::new(
            BrokerId(1),
            LeaderEpoch(1),
            ids(&[1, 2]),
            ids(&[1, 2]),
            Offset(10),
            Offset(10),
            LAG_MS,
            0,
        );
        assert!(l.high_watermark_reached_epoch_start());
    }

    #[test]
    fn catching_up_to_the_previous_leader_end_counts() {
        let mut l = leader();
        // The leader keeps growing: 2 never reaches the live end, but each
        // fetch reaches where the leader was at the previous one.
        l.on_follower_fetch(BrokerId(3), Offset(0), Offset(0), 0);
        for step in 1..20 {
            let now = step * 300;
            l.on_follower_fetch(
                BrokerId(2),
                Offset((step as u64 - 1) * 10),
                Offset(step as u64 * 10),
                now,
            );
            l.on_follower_fetch(
                BrokerId(3),
                Offset(step as u64 * 10),
                Offset(step as u64 * 10),
                now,
            );
        }
        assert_eq!(
            l.on_tick(20 * 300),
            None,
            "2 keeps up with the previous end"
        );
    }

    #[test]
    fn a_returning_replica_must_reach_the_epoch_start() {
        let mut l = LeaderReplicaState::new(
            BrokerId(1),
            LeaderEpoch(4),
            ids(&[1, 2]),
            ids(&[1]),
            Offset(50),
            Offset(80),
            LAG_MS,
            0,
        );
        assert_eq!(
            l.on_follower_fetch(BrokerId(2), Offset(60), Offset(90), 10),
            None,
            "below the epoch start"
        );
        assert_eq!(
            l.on_follower_fetch(BrokerId(2), Offset(85), Offset(90), 20)
                .map(|c| c.new_isr),
            Some(ids(&[1, 2]))
        );
        // A failed proposal can be made again.
        l.on_isr_change_failed();
        assert!(l
            .on_follower_fetch(BrokerId(2), Offset(90), Offset(90), 30)
            .is_some());
        // Fetches from non-replicas are ignored.
        assert_eq!(
            l.on_follower_fetch(BrokerId(9), Offset(90), Offset(90), 30),
            None
        );
    }
}
