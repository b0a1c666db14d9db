//! The simulated network between nodes: every message takes a delay drawn
//! from the seed (now and then a long one, so messages overtake each
//! other), may be dropped, and does not cross a cut link. A link is cut by
//! a fault for a while (a broker isolated from the controller, from one
//! peer, or from everyone) and healed at the end of the faults.
use crate::message::NodeId;
use crate::rng::Rng;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Network {
    /// Cut links (smaller id first), each with the time it heals.
    cut: BTreeMap<(NodeId, NodeId), u64>,
    /// The chance that a message is lost, now.
    pub drop_rate: f64,
    /// Until when `drop_rate` holds; then it is 0 again.
    pub drop_until: u64,
}

fn link(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

impl Network {
    pub fn cut(&mut self, a: NodeId, b: NodeId, until_ms: u64) {
        let heals = self.cut.entry(link(a, b)).or_insert(until_ms);
        *heals = (*heals).max(until_ms);
    }

    pub fn heal_all(&mut self) {
        self.cut.clear();
        self.drop_rate = 0.0;
    }

    pub fn is_cut(&self, a: NodeId, b: NodeId, now_ms: u64) -> bool {
        self.cut
            .get(&link(a, b))
            .is_some_and(|&heals| now_ms < heals)
    }

    /// The delay of one message sent now, or `None` if it is lost.
    pub fn transit(&mut self, from: NodeId, to: NodeId, now_ms: u64, rng: &mut Rng) -> Option<u64> {
        if self.is_cut(from, to, now_ms) {
            return None;
        }
        let drop_rate = if now_ms < self.drop_until {
            self.drop_rate
        } else {
            0.0
        };
        if rng.chance(drop_rate) {
            return None;
        }
        if rng.chance(0.03) {
            return Some(rng.between(20, 400));
        }
        Some(rng.between(1, 5))
    }
}
