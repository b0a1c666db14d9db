//! The simulated controller: the quorum's real state machine
//! (`quorum::state::apply` over a `ClusterView`) behind a thin shell of
//! broker sessions, as the quorum service runs it. The Raft log under it
//! is not simulated: the controller is one node that never loses a
//! committed command (the quorum has its own tests); what the simulation
//! varies is what brokers hear of it and when.
//!
//! Brokers register at start (a new incarnation: the controller treats the
//! old process as gone and moves its leaderships), send heartbeats, and are
//! expired when no heartbeat came for the session timeout. Every change is
//! pushed to every registered broker, and a heartbeat from a broker behind
//! the current revision is answered with the view.
use crate::message::{Effects, Message, NodeId};
use crate::replica::TOPIC;
use model::BrokerId;
use quorum::model::{BrokerInfo, ClusterView, UNCLEAN_LEADER_ELECTION};
use quorum::state::{apply, Applied, Command, CommandError, Outcome, Proposal};
use std::collections::BTreeMap;

/// The simulated topic's configs.
#[derive(Debug, Clone, Copy)]
pub struct TopicSettings {
    pub min_insync_replicas: usize,
    /// `unclean.leader.election.enable`: a replica outside the ISR may lead
    /// when no ISR member is live, and acknowledged records may be lost.
    pub unclean_leader_election: bool,
}

#[derive(Debug)]
pub struct Controller {
    pub view: ClusterView,
    /// When each registered broker was last heard of, in ms.
    last_heard: BTreeMap<BrokerId, u64>,
    session_timeout_ms: u64,
}

impl Controller {
    /// A cluster of `brokers`, each registered at its first incarnation,
    /// with the simulated topic created on them.
    pub fn new(brokers: &[NodeId], settings: TopicSettings, session_timeout_ms: u64) -> Controller {
        let mut controller = Controller {
            view: ClusterView::default(),
            last_heard: BTreeMap::new(),
            session_timeout_ms,
        };
        for &id in brokers {
            let registered = controller.propose(Command::RegisterBroker {
                info: broker_info(id, 1),
            });
            assert!(
                registered.is_ok(),
                "registering broker {id}: {registered:?}"
            );
            controller.last_heard.insert(BrokerId(id), 0);
        }
        let configs = BTreeMap::from([
            (
                "min.insync.replicas".to_string(),
                settings.min_insync_replicas.to_string(),
            ),
            (
                UNCLEAN_LEADER_ELECTION.to_string(),
                settings.unclean_leader_election.to_string(),
            ),
        ]);
        let created = controller.propose(Command::CreateTopic {
            name: TOPIC.to_string(),
            partitions: 1,
            replication_factor: brokers.len() as i16,
            configs,
            topic_id: None,
        });
        assert!(created.is_ok(), "creating the topic: {created:?}");
        controller
    }

    fn propose(&mut self, command: Command) -> Result<Applied, CommandError> {
        apply(&mut self.view, &Proposal::new(command))
    }

    /// Applies `command`; pushes the view to every registered broker if
    /// it changed anything.
    fn commit(&mut self, command: Command, fx: &mut Effects) -> Result<Applied, CommandError> {
        let before = self.view.revision;
        let described = format!("{command:?}");
        let result = self.propose(command);
        if self.view.revision != before {
            fx.note(format!(
                "controller applies {described}: partition now {:?}",
                self.view.partition(TOPIC, 0)
            ));
            self.push_view(fx);
        }
        result
    }

    pub fn push_view(&self, fx: &mut Effects) {
        for id in self.view.brokers.keys() {
            fx.send(id.0, Message::View(Box::new(self.view.clone())));
        }
    }

    pub fn on_message(&mut self, from: NodeId, message: Message, now_ms: u64, fx: &mut Effects) {
        match message {
            Message::Register { incarnation } => {
                let info = broker_info(from, incarnation);
                if self.commit(Command::RegisterBroker { info }, fx).is_ok() {
                    self.last_heard.insert(BrokerId(from), now_ms);
                    fx.send(from, Message::Registered(Box::new(self.view.clone())));
                }
            }
            Message::Heartbeat {
                incarnation,
                known_revision,
            } => {
                let registered = self.view.brokers.get(&BrokerId(from));
                if registered.and_then(|b| b.incarnation) != Some(incarnation_id(from, incarnation))
                {
                    fx.send(from, Message::SessionUnknown);
                    return;
                }
                self.last_heard.insert(BrokerId(from), now_ms);
                if known_revision < self.view.revision {
                    fx.send(from, Message::View(Box::new(self.view.clone())));
                }
            }
            Message::AlterPartition {
                request,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => {
                let command = Command::AlterPartition {
                    topic: TOPIC.to_string(),
                    partition: 0,
                    leader_id: BrokerId(from),
                    leader_epoch,
                    partition_epoch,
                    new_isr,
                };
                let state = match self.commit(command, fx) {
                    Ok(Applied {
                        outcome: Outcome::Partition(state),
                        ..
                    }) => Some(state),
                    Ok(_) => None,
                    Err(e) => {
                        fx.note(format!("controller refuses an isr change from {from}: {e}"));
                        None
                    }
                };
                fx.send(from, Message::AlterPartitionAnswer { request, state });
            }
            other => fx.note(format!("controller ignores {other:?} from {from}")),
        }
    }

    /// Expires the sessions of brokers not heard of for the session timeout.
    pub fn expire_sessions(&mut self, now_ms: u64, fx: &mut Effects) {
        let lapsed: Vec<BrokerId> = self
            .view
            .brokers
            .keys()
            .copied()
            .filter(|id| {
                let heard = self.last_heard.get(id).copied().unwrap_or(0);
                now_ms.saturating_sub(heard) > self.session_timeout_ms
            })
            .collect();
        for broker_id in lapsed {
            fx.note(format!(
                "controller: the session of broker {broker_id} lapsed"
            ));
            let expired = self.commit(Command::ExpireBroker { broker_id }, fx);
            if let Err(e) = expired {
                fx.note(format!("controller cannot expire broker {broker_id}: {e}"));
            }
        }
    }
}

/// The uuid a broker incarnation registers with.
fn incarnation_id(broker: NodeId, incarnation: u64) -> uuid::Uuid {
    uuid::Uuid::from_u64_pair(broker as u64, incarnation)
}

fn broker_info(broker_id: NodeId, incarnation: u64) -> BrokerInfo {
    BrokerInfo {
        broker_id: BrokerId(broker_id),
        host: format!("broker-{broker_id}"),
        port: 9092,
        rack: None,
        incarnation: Some(incarnation_id(broker_id, incarnation)),
        listeners: Vec::new(),
    }
}
