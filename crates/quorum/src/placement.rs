//! Replica placement for new partitions: which brokers hold each replica.
//! Pure, no I/O; called by the state machine when a topic or partitions are
//! created, so every quorum node computes the same answer.
//!
//! Round-robin over the live brokers sorted by id, starting at an offset that
//! depends on the topic name (so topics do not all lead on the lowest id) and
//! moving one broker per partition. When every broker has a rack, the
//! followers of a partition are taken in rack order so that no two replicas
//! share a rack while there are enough racks. The first replica is the
//! preferred leader.
use model::BrokerId;
use std::collections::{BTreeMap, BTreeSet};

/// A live broker as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub broker_id: BrokerId,
    pub rack: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("replication factor {requested} is larger than the {available} live brokers")]
    NotEnoughBrokers { requested: usize, available: usize },
    #[error("replication factor must be at least 1")]
    ZeroReplicationFactor,
}

/// Replicas for partitions `first_partition .. first_partition + count` of `topic`.
pub fn place(
    topic: &str,
    candidates: &[Candidate],
    first_partition: usize,
    count: usize,
    replication_factor: usize,
) -> Result<Vec<Vec<BrokerId>>, PlacementError> {
    if replication_factor == 0 {
        return Err(PlacementError::ZeroReplicationFactor);
    }
    if replication_factor > candidates.len() {
        return Err(PlacementError::NotEnoughBrokers {
            requested: replication_factor,
            available: candidates.len(),
        });
    }
    let order = broker_order(candidates);
    let start = (name_hash(topic) % order.len() as u64) as usize;
    let racks: BTreeMap<BrokerId, Option<&str>> = candidates
        .iter()
        .map(|c| (c.broker_id, c.rack.as_deref()))
        .collect();
    let rack_aware = candidates.iter().all(|c| c.rack.is_some());
    let placed = (first_partition..first_partition + count)
        .map(|p| {
            let leader_at = (start + p) % order.len();
            if rack_aware {
                rack_spread(&order, &racks, leader_at, replication_factor)
            } else {
                (0..replication_factor)
                    .map(|j| order[(leader_at + j) % order.len()])
                    .collect()
            }
        })
        .collect();
    Ok(placed)
}

/// Broker ids in placement order: by id, or, when every broker has a rack,
/// interleaved by rack (first broker of each rack, then the second, ...).
fn broker_order(candidates: &[Candidate]) -> Vec<BrokerId> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by_key(|c| c.broker_id);
    if !candidates.iter().all(|c| c.rack.is_some()) {
        return sorted.iter().map(|c| c.broker_id).collect();
    }
    let mut by_rack: BTreeMap<&str, Vec<BrokerId>> = BTreeMap::new();
    for c in &sorted {
        by_rack
            .entry(c.rack.as_deref().unwrap_or_default())
            .or_default()
            .push(c.broker_id);
    }
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..deepest)
        .flat_map(|i| by_rack.values().filter_map(move |ids| ids.get(i).copied()))
        .collect()
}

/// Walks the order from the leader, taking a broker in an unused rack first;
/// when racks run out, the brokers skipped fill the rest in order.
fn rack_spread(
    order: &[BrokerId],
    racks: &BTreeMap<BrokerId, Option<&str>>,
    leader_at: usize,
    replication_factor: usize,
) -> Vec<BrokerId> {
    let walk: Vec<BrokerId> = (0..order.len())
        .map(|j| order[(leader_at + j) % order.len()])
        .collect();
    let mut chosen: Vec<BrokerId> = Vec::with_capacity(replication_factor);
    let mut used_racks: BTreeSet<Option<&str>> = BTreeSet::new();
    for &b in &walk {
        let rack = racks.get(&b).copied().flatten();
        if chosen.len() < replication_factor && used_racks.insert(rack) {
            chosen.push(b);
        }
    }
    for &b in &walk {
        if chosen.len() < replication_factor && !chosen.contains(&b) {
            chosen.push(b);
        }
    }
    chosen
}

/// FNV-1a: stable across processes and Rust versions (std's hasher is not promised to be).
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(ids: &[i32]) -> Vec<Candidate> {
        ids.iter()
            .map(|&id| Candidate {
                broker_id: BrokerId(id),
                rack: None,
            })
            .collect()
    }

    fn racked(pairs: &[(i32, &str)]) -> Vec<Candidate> {
        pairs
            .iter()
            .map(|&(id, rack)| Candidate {
                broker_id: BrokerId(id),
                rack: Some(rack.to_string()),
            })
            .collect()
    }

    fn leader_counts(placed: &[Vec<BrokerId>]) -> BTreeMap<BrokerId, usize> {
        let mut counts = BTreeMap::new();
        for replicas in placed {
            *counts.entry(replicas[0]).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn replicas_are_distinct_and_leaders_balanced() {
        let placed = place("orders", &brokers(&[3, 1, 2]), 0, 6, 3).unwrap();
        assert_eq!(placed.len(), 6);
        for replicas in &placed {
            let distinct: BTreeSet<_> = replicas.iter().collect();
            assert_eq!(distinct.len(), 3, "{replicas:?}");
        }
        assert!(leader_counts(&placed).values().all(|&n| n == 2));
    }

    #[test]
    fn every_broker_gets_an_equal_share_of_replicas() {
        let placed = place("t", &brokers(&[1, 2, 3, 4]), 0, 8, 2).unwrap();
        let mut per_broker = BTreeMap::new();
        for b in placed.iter().flatten() {
            *per_broker.entry(*b).or_insert(0) += 1;
        }
        assert!(per_broker.values().all(|&n| n == 4), "{per_broker:?}");
    }

    #[test]
    fn too_few_brokers_is_an_error() {
        assert_eq!(
            place("t", &brokers(&[1, 2]), 0, 1, 3),
            Err(PlacementError::NotEnoughBrokers {
                requested: 3,
                available: 2
            })
        );
        assert_eq!(
            place("t", &brokers(&[1]), 0, 1, 0),
            Err(PlacementError::ZeroReplicationFactor)
        );
    }

    #[test]
    fn placement_is_deterministic_and_continues_for_new_partitions() {
        let all = place("t", &brokers(&[1, 2, 3]), 0, 6, 2).unwrap();
        let tail = place("t", &brokers(&[1, 2, 3]), 4, 2, 2).unwrap();
        assert_eq!(&all[4..], &tail[..]);
    }

    #[test]
    fn racks_are_spread_when_there_are_enough() {
        let c = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]);
        let rack_of: BTreeMap<BrokerId, String> = c
            .iter()
            .map(|c| (c.broker_id, c.rack.clone().unwrap()))
            .collect();
        let placed = place("t", &c, 0, 12, 3).unwrap();
        for replicas in &placed {
            let racks: BTreeSet<_> = replicas.iter().map(|b| &rack_of[b]).collect();
            assert_eq!(racks.len(), 3, "{replicas:?}");
        }
        assert!(leader_counts(&placed).values().all(|&n| n == 2));
    }

    #[test]
    fn fewer_racks_than_replicas_still_places_distinct_brokers() {
        let c = racked(&[(1, "a"), (2, "a"), (3, "b")]);
        let placed = place("t", &c, 0, 3, 3).unwrap();
        for replicas in &placed {
            let distinct: BTreeSet<_> = replicas.iter().collect();
            assert_eq!(distinct.len(), 3);
            // The first two replicas use both racks.
            let racks: BTreeSet<bool> = replicas[..2].iter().map(|b| *b == BrokerId(3)).collect();
            assert_eq!(racks.len(), 2, "{replicas:?}");
        }
    }

    #[test]
    fn mixed_racks_fall_back_to_plain_round_robin() {
        let mut c = brokers(&[1, 2, 3]);
        c[0].rack = Some("a".into());
        let placed = place("t", &c, 0, 3, 3).unwrap();
        assert!(leader_counts(&placed).values().all(|&n| n == 1));
    }
}
