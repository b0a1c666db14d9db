//! Broker sessions: when each registered broker last sent a heartbeat.
//! Pure (time is passed in), in memory, kept only by the quorum leader and
//! never replicated. The leader's controller task asks `expired` on every
//! tick and proposes `ExpireBroker` for what it returns. A new leader starts
//! every registered broker on a fresh session, so a leader change never
//! expires a broker.
use model::BrokerId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Kafka's default `broker.session.timeout.ms`.
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 9_000;

#[derive(Debug)]
pub struct Sessions {
    timeout: Duration,
    last_heartbeat: BTreeMap<BrokerId, Instant>,
}

impl Sessions {
    pub fn new(timeout: Duration) -> Sessions {
        Sessions {
            timeout,
            last_heartbeat: BTreeMap::new(),
        }
    }

    /// Forgets everything (this node is no longer the leader).
    pub fn clear(&mut self) {
        self.last_heartbeat.clear();
    }

    /// Starts every registered broker on a fresh session.
    pub fn start_leading(&mut self, registered: impl IntoIterator<Item = BrokerId>, now: Instant) {
        self.last_heartbeat = registered.into_iter().map(|id| (id, now)).collect();
    }

    pub fn heartbeat(&mut self, broker_id: BrokerId, now: Instant) {
        self.last_heartbeat.insert(broker_id, now);
    }

    /// Brings the sessions in line with the registered brokers (a broker
    /// registered since gets a fresh session, one gone is forgotten) and
    /// returns the brokers whose session has lapsed, forgetting them too.
    pub fn expired(&mut self, registered: &BTreeSet<BrokerId>, now: Instant) -> Vec<BrokerId> {
        self.last_heartbeat.retain(|id, _| registered.contains(id));
        for id in registered {
            self.last_heartbeat.entry(*id).or_insert(now);
        }
        let lapsed: Vec<BrokerId> = self
            .last_heartbeat
            .iter()
            .filter(|(_, &at)| now.saturating_duration_since(at) > self.timeout)
            .map(|(&id, _)| id)
            .collect();
        for id in &lapsed {
            self.last_heartbeat.remove(id);
        }
        lapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B1: BrokerId = BrokerId(1);
    const B2: BrokerId = BrokerId(2);
    const TIMEOUT: Duration = Duration::from_secs(9);

    #[test]
    fn a_broker_that_keeps_heartbeating_stays() {
        let t0 = Instant::now();
        let mut s = Sessions::new(TIMEOUT);
        let registered: BTreeSet<BrokerId> = [B1, B2].into();
        s.start_leading(registered.iter().copied(), t0);
        s.heartbeat(B1, t0 + Duration::from_secs(8));
        assert_eq!(
            s.expired(&registered, t0 + Duration::from_secs(10)),
            vec![B2]
        );
        assert!(s
            .expired(&registered, t0 + Duration::from_secs(16))
            .is_empty());
        assert_eq!(
            s.expired(&registered, t0 + Duration::from_secs(18)),
            vec![B1]
        );
    }

    #[test]
    fn a_new_leader_gives_everyone_a_full_session() {
        let t0 = Instant::now();
        let mut s = Sessions::new(TIMEOUT);
        let registered: BTreeSet<BrokerId> = [B1].into();
        s.start_leading(registered.iter().copied(), t0 + Duration::from_secs(100));
        assert!(s
            .expired(&registered, t0 + Duration::from_secs(108))
            .is_empty());
    }

    #[test]
    fn brokers_registered_later_start_fresh_and_unregistered_are_forgotten() {
        let t0 = Instant::now();
        let mut s = Sessions::new(TIMEOUT);
        s.start_leading([B1], t0);
        let later: BTreeSet<BrokerId> = [B2].into();
        assert!(s.expired(&later, t0 + Duration::from_secs(20)).is_empty());
        assert_eq!(s.expired(&later, t0 + Duration::from_secs(30)), vec![B2]);
    }
}
