//! The simulated client: one producer that never retries a record (each
//! send is a new value, so a timed-out send may or may not be in the log,
//! but an acknowledged one must be there once), sending some records with
//! acks=all (which the oracle holds the cluster to) and some with acks=1
//! (which a new leader may lose, and which make logs diverge), and one
//! consumer reading from the leader from its position on. Both find the
//! leader in the controller's latest view, as a client's metadata request
//! would, and reach it over the simulated network.
use crate::message::{Message, NodeId, Refusal};
use std::collections::BTreeMap;

/// Produce requests in flight at once, as `max.in.flight.requests.per.connection`.
const IN_FLIGHT_MAX: usize = 5;

#[derive(Debug, Default)]
pub struct Client {
    next_value: u64,
    next_request: u64,
    /// Produce request -> (value, acks).
    producing: BTreeMap<u64, (u64, i16)>,
    /// The consumer's request in flight and the offset it asked for.
    consuming: Option<(u64, u64)>,
    pub position: u64,
    pub refusals: BTreeMap<String, u64>,
}

impl Client {
    fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        (1 << 60) | self.next_request
    }

    /// A new record to `leader`, if fewer than the bound are in flight.
    pub fn produce(&mut self, leader: NodeId, acks: i16) -> Option<(NodeId, Message, u64)> {
        if self.producing.len() >= IN_FLIGHT_MAX {
            return None;
        }
        self.next_value += 1;
        let (request, value) = (self.request_id(), self.next_value);
        self.producing.insert(request, (value, acks));
        let message = Message::Produce {
            request,
            value,
            acks,
        };
        Some((leader, message, request))
    }

    /// The answer to a produce: the (offset, value) acknowledged with
    /// acks=all, if it was one.
    pub fn on_produce_answer(
        &mut self,
        request: u64,
        answer: Result<u64, Refusal>,
    ) -> Option<(u64, u64)> {
        let (value, acks) = self.producing.remove(&request)?;
        match answer {
            Ok(_) if acks != -1 => None,
            Ok(offset) => Some((offset, value)),
            Err(refusal) => {
                *self.refusals.entry(format!("{refusal:?}")).or_default() += 1;
                None
            }
        }
    }

    /// The producer gave up on a request it sent (`request.timeout.ms`).
    pub fn on_produce_timeout(&mut self, request: u64) {
        if self.producing.remove(&request).is_some() {
            *self
                .refusals
                .entry("ClientTimeout".to_string())
                .or_default() += 1;
        }
    }

    /// The consumer's next fetch, unless one is in flight.
    pub fn consume(&mut self, leader: NodeId) -> Option<(NodeId, Message, u64)> {
        if self.consuming.is_some() {
            return None;
        }
        let request = self.request_id();
        self.consuming = Some((request, self.position));
        let offset = self.position;
        Some((leader, Message::ConsumerFetch { request, offset }, request))
    }

    /// Whether `request` is the consumer's fetch in flight; forgets it.
    pub fn take_consume(&mut self, request: u64) -> bool {
        if self.consuming.is_some_and(|(r, _)| r == request) {
            self.consuming = None;
            return true;
        }
        false
    }
}
