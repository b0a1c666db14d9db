//! The world of one run: the clock, the event queue, the network, the
//! brokers, the controller, the client and the oracle, all driven on one
//! thread by one seed. Events happen in time order (ties in the order they
//! were scheduled), so a seed replays the same run exactly.
//!
//! For the first `fault_ms` of a run, faults strike at random: a broker
//! crashes (losing its unsynced tail) and restarts later, a broker is cut
//! off from the controller, from one peer or from everyone, or messages are
//! dropped for a while. Then everything heals, and for `heal_ms` the
//! cluster must make progress again. The oracle checks every broker that
//! becomes leader and the final leader.
use crate::client::Client;
use crate::controller::{Controller, TopicSettings};
use crate::message::{Delay, Effects, Message, NodeId, Timer, CLIENT, CONTROLLER};
use crate::network::Network;
use crate::oracle::Oracle;
use crate::replica::{Replica, Timings, TOPIC};
use crate::rng::Rng;
use std::collections::{BTreeMap, VecDeque};

/// What one run simulates.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub brokers: usize,
    /// The most `min.insync.replicas` a seed draws (from 1 up).
    pub min_insync_replicas: usize,
    pub fault_ms: u64,
    pub heal_ms: u64,
    pub session_timeout_ms: u64,
    /// The share of seeds that run with unclean leader election.
    pub unclean_share: f64,
    pub timings: Timings,
    /// Keep every trace line (else the last `TRACE_TAIL`).
    pub full_trace: bool,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            brokers: 3,
            min_insync_replicas: 2,
            fault_ms: 20_000,
            heal_ms: 10_000,
            session_timeout_ms: 1_000,
            unclean_share: 0.25,
            timings: Timings::default(),
            full_trace: false,
        }
    }
}

/// Trace lines kept when a run fails, unless the whole trace is asked for.
const TRACE_TAIL: usize = 400;
const CONTROLLER_TICK_MS: u64 = 100;
const CONSUMER_POLL_MS: u64 = 10;

#[derive(Debug)]
enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        /// The incarnation of a broker sender and receiver at the send: a
        /// crash closes its connections, so nothing sent by or to the old
        /// process arrives.
        incarnations: (u64, u64),
        message: Message,
    },
    BrokerTimer {
        broker: NodeId,
        incarnation: u64,
        timer: Timer,
    },
    ControllerTick,
    Produce,
    Consume,
    ClientTimeout(u64),
    Fault,
    Restart(NodeId),
    Heal,
}

/// How a run went.
#[derive(Debug)]
pub struct RunReport {
    pub seed: u64,
    pub acks: u64,
    pub consumed: u64,
    pub leader_changes: u64,
    pub crashes: u64,
    pub truncations: u64,
    /// Truncations to an epoch this log never had (KIP-279's intermediate step).
    pub asked_again: u64,
    pub events: u64,
    pub refusals: BTreeMap<String, u64>,
    /// Records consumers read before any broker synced them (see `oracle`).
    pub volatile_reads: u64,
}

/// A run that broke the oracle: what broke, and the trace that led there.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub at_ms: u64,
    pub violation: String,
    pub trace: Vec<String>,
}

pub struct World {
    config: SimConfig,
    seed: u64,
    now: u64,
    rng: Rng,
    queue: BTreeMap<(u64, u64), Event>,
    scheduled: u64,
    network: Network,
    replicas: BTreeMap<NodeId, Replica>,
    controller: Controller,
    client: Client,
    oracle: Oracle,
    trace: VecDeque<String>,
    report: RunReport,
    acks_at_heal: Option<u64>,
    /// The share of records sent with acks=1, drawn per seed.
    acks_one_share: f64,
    /// Whether acknowledged and read records are promised to stay: not
    /// under unclean leader election, which trades them for availability.
    durability_promised: bool,
}

impl World {
    pub fn new(seed: u64, config: SimConfig) -> World {
        let mut rng = Rng::new(seed);
        // Each seed draws its own cluster settings within the config's.
        let settings = TopicSettings {
            min_insync_replicas: rng.between(1, config.min_insync_replicas as u64) as usize,
            unclean_leader_election: rng.chance(config.unclean_share),
        };
        let acks_one_share = rng.pick(&[0.0, 0.3, 0.7]);
        let ids: Vec<NodeId> = (1..=config.brokers as NodeId).collect();
        let controller = Controller::new(&ids, settings, config.session_timeout_ms);
        let replicas = ids
            .iter()
            .map(|&id| (id, Replica::new(id, config.timings.clone())))
            .collect();
        let report = RunReport {
            seed,
            acks: 0,
            consumed: 0,
            leader_changes: 0,
            crashes: 0,
            truncations: 0,
            asked_again: 0,
            events: 0,
            refusals: BTreeMap::new(),
            volatile_reads: 0,
        };
        World {
            config,
            seed,
            now: 0,
            rng,
            queue: BTreeMap::new(),
            scheduled: 0,
            network: Network::default(),
            replicas,
            controller,
            client: Client::default(),
            oracle: Oracle::default(),
            trace: VecDeque::new(),
            report,
            acks_at_heal: None,
            acks_one_share,
            durability_promised: !settings.unclean_leader_election,
        }
    }

    fn schedule(&mut self, delay_ms: u64, event: Event) {
        self.scheduled += 1;
        self.queue
            .insert((self.now + delay_ms, self.scheduled), event);
    }

    fn note(&mut self, line: String) {
        self.trace.push_back(format!("{:>7} ms  {line}", self.now));
        if !self.config.full_trace && self.trace.len() > TRACE_TAIL {
            self.trace.pop_front();
        }
    }

    fn fail(&self, violation: String) -> Failure {
        Failure {
            seed: self.seed,
            at_ms: self.now,
            violation,
            trace: self.trace.iter().cloned().collect(),
        }
    }

    /// Runs to the end; the report, or the first violation.
    pub fn run(mut self) -> Result<RunReport, Failure> {
        let ids: Vec<NodeId> = self.replicas.keys().copied().collect();
        for id in ids {
            let mut fx = Effects::default();
            if let Some(r) = self.replicas.get_mut(&id) {
                r.start(&mut fx);
            }
            self.apply_effects(id, fx).map_err(|v| self.fail(v))?;
        }
        self.schedule(CONTROLLER_TICK_MS, Event::ControllerTick);
        self.schedule(50, Event::Produce);
        self.schedule(50, Event::Consume);
        let first_fault = self.rng.between(500, 2_000);
        self.schedule(first_fault, Event::Fault);
        self.schedule(self.config.fault_ms, Event::Heal);
        let end = self.config.fault_ms + self.config.heal_ms;
        while let Some(((at, _), event)) = self.queue.pop_first() {
            if at > end {
                break;
            }
            self.now = at;
            self.report.events += 1;
            self.handle(event).map_err(|v| self.fail(v))?;
        }
        self.finish().map_err(|v| self.fail(v))?;
        for r in self.replicas.values() {
            self.report.truncations += r.truncations;
            self.report.asked_again += r.asked_again;
        }
        self.report.acks = self.oracle.acks;
        self.report.volatile_reads = self.oracle.volatile_reads;
        self.report.consumed = self.client.position;
        self.report.refusals = std::mem::take(&mut self.client.refusals);
        Ok(self.report)
    }

    fn handle(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Deliver {
                from,
                to,
                incarnations,
                message,
            } => self.deliver(from, to, incarnations, message),
            Event::BrokerTimer {
                broker,
                incarnation,
                timer,
            } => {
                let now = self.now;
                let mut fx = Effects::default();
                match self.replicas.get_mut(&broker) {
                    Some(r) if r.up && r.incarnation == incarnation => {
                        r.on_timer(timer, now, &mut fx)
                    }
                    _ => return Ok(()),
                }
                self.apply_effects(broker, fx)
            }
            Event::ControllerTick => {
                let mut fx = Effects::default();
                self.controller.expire_sessions(self.now, &mut fx);
                self.schedule(CONTROLLER_TICK_MS, Event::ControllerTick);
                self.apply_effects(CONTROLLER, fx)
            }
            Event::Produce => {
                self.produce();
                let next = self.rng.between(2, 12);
                self.schedule(next, Event::Produce);
                Ok(())
            }
            Event::Consume => {
                self.consume();
                self.schedule(CONSUMER_POLL_MS, Event::Consume);
                Ok(())
            }
            Event::ClientTimeout(request) => {
                self.client.on_produce_timeout(request);
                self.client.take_consume(request);
                Ok(())
            }
            Event::Fault => {
                self.strike();
                if self.now < self.config.fault_ms {
                    let next = self.rng.between(300, 3_000);
                    self.schedule(next, Event::Fault);
                }
                Ok(())
            }
            Event::Restart(id) => self.restart(id),
            Event::Heal => self.heal(),
        }
    }

    /// The leader the controller's view names.
    fn leader(&self) -> Option<NodeId> {
        let p = self.controller.view.partition(TOPIC, 0)?;
        p.leader.map(|b| b.0)
    }

    fn produce(&mut self) {
        let Some(leader) = self.leader() else { return };
        let acks = if self.rng.chance(self.acks_one_share) {
            1
        } else {
            -1
        };
        if let Some((to, message, request)) = self.client.produce(leader, acks) {
            self.send(CLIENT, to, message);
            let timeout = self.config.timings.produce_timeout_ms + 1_000;
            self.schedule(timeout, Event::ClientTimeout(request));
        }
    }

    fn consume(&mut self) {
        let Some(leader) = self.leader() else { return };
        if let Some((to, message, request)) = self.client.consume(leader) {
            self.send(CLIENT, to, message);
            self.schedule(
                self.config.timings.request_timeout_ms,
                Event::ClientTimeout(request),
            );
        }
    }

    fn incarnation(&self, node: NodeId) -> u64 {
        self.replicas.get(&node).map_or(0, |r| r.incarnation)
    }

    fn send(&mut self, from: NodeId, to: NodeId, message: Message) {
        let Some(delay) = self.network.transit(from, to, self.now, &mut self.rng) else {
            return;
        };
        let incarnations = (self.incarnation(from), self.incarnation(to));
        self.schedule(
            delay,
            Event::Deliver {
                from,
                to,
                incarnations,
                message,
            },
        );
    }

    fn deliver(
        &mut self,
        from: NodeId,
        to: NodeId,
        incarnations: (u64, u64),
        message: Message,
    ) -> Result<(), String> {
        if self.network.is_cut(from, to, self.now)
            || incarnations != (self.incarnation(from), self.incarnation(to))
        {
            return Ok(());
        }
        let now = self.now;
        match to {
            CONTROLLER => {
                let mut fx = Effects::default();
                self.controller.on_message(from, message, now, &mut fx);
                self.apply_effects(CONTROLLER, fx)
            }
            CLIENT => self.on_client_message(from, message),
            broker => {
                let mut fx = Effects::default();
                match self.replicas.get_mut(&broker) {
                    Some(r) if r.up => r.on_message(from, message, now, &mut fx),
                    _ => return Ok(()),
                }
                self.apply_effects(broker, fx)
            }
        }
    }

    fn on_client_message(&mut self, from: NodeId, message: Message) -> Result<(), String> {
        match message {
            Message::ProduceAnswer { request, answer } => {
                if let Some((offset, value)) = self.client.on_produce_answer(request, answer) {
                    if self.config.full_trace {
                        self.note(format!(
                            "broker {from} acknowledges record {value} at offset {offset}"
                        ));
                    }
                    self.oracle.acks += 1;
                    if self.durability_promised {
                        self.oracle.on_ack(offset, value)?;
                    }
                }
                Ok(())
            }
            Message::ConsumerFetchAnswer { request, answer } => {
                if !self.client.take_consume(request) {
                    return Ok(());
                }
                match answer {
                    Ok(fetched) if fetched.base_offset == self.client.position => {
                        let replicas = &self.replicas;
                        let synced = |offset: u64, entry: &crate::message::Entry| {
                            replicas.values().any(|r| r.has_synced(offset, entry))
                        };
                        if self.durability_promised {
                            self.oracle.on_consumed(
                                fetched.base_offset,
                                &fetched.entries,
                                synced,
                            )?;
                        }
                        self.client.position += fetched.entries.len() as u64;
                        Ok(())
                    }
                    Ok(_) => Ok(()),
                    Err(crate::message::Refusal::OffsetOutOfRange) => {
                        // The records past the leader's end were read before
                        // any disk had them (the oracle holds the others):
                        // reset to the log end, as auto.offset.reset=latest
                        // with a ListOffsets would.
                        let end = self.replicas.get(&from).map_or(0, Replica::log_end);
                        self.note(format!(
                            "consumer at {} is past broker {from}'s log end: resets to {end}",
                            self.client.position
                        ));
                        self.client.position = end;
                        Ok(())
                    }
                    Err(_) => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Carries out what a node asked for, and checks a new leader.
    fn apply_effects(&mut self, node: NodeId, fx: Effects) -> Result<(), String> {
        for line in fx.trace {
            self.note(line);
        }
        for (to, message) in fx.sends {
            self.send(node, to, message);
        }
        for (delay, timer) in fx.timers {
            let delay = match delay {
                Delay::Fixed(ms) => ms,
                Delay::Between(low, high) => self.rng.between(low, high),
            };
            let incarnation = self.incarnation(node);
            self.schedule(
                delay,
                Event::BrokerTimer {
                    broker: node,
                    incarnation,
                    timer,
                },
            );
        }
        if let Some(epoch) = fx.became_leader {
            self.report.leader_changes += 1;
            self.check_replica(node, &format!("broker {node}, leader at epoch {epoch},"))?;
        }
        Ok(())
    }

    fn check_replica(&mut self, node: NodeId, who: &str) -> Result<(), String> {
        let Some(r) = self.replicas.get(&node) else {
            return Ok(());
        };
        r.check_invariants()?;
        self.oracle
            .check_leader_log(who, &r.log, self.durability_promised)
    }

    // ----- faults -----

    fn strike(&mut self) {
        let ids: Vec<NodeId> = self.replicas.keys().copied().collect();
        let victim = self.rng.pick(&ids);
        let lasts = self.rng.between(200, 5_000);
        let until = self.now + lasts;
        match self.rng.between(0, 5) {
            0 | 1 => {
                let Some(r) = self.replicas.get_mut(&victim) else {
                    return;
                };
                if !r.up {
                    return;
                }
                let mut fx = Effects::default();
                r.crash(&mut fx);
                self.report.crashes += 1;
                for line in fx.trace {
                    self.note(line);
                }
                self.schedule(lasts, Event::Restart(victim));
            }
            2 => {
                self.note(format!(
                    "fault: broker {victim} cut off from the controller for {lasts} ms"
                ));
                self.network.cut(victim, CONTROLLER, until);
            }
            3 => {
                let others: Vec<NodeId> = ids.iter().copied().filter(|&b| b != victim).collect();
                let peer = self.rng.pick(&others);
                self.note(format!("fault: link {victim}-{peer} cut for {lasts} ms"));
                self.network.cut(victim, peer, until);
            }
            4 => {
                self.note(format!(
                    "fault: broker {victim} cut off from everyone for {lasts} ms"
                ));
                for other in ids.iter().copied().chain([CONTROLLER, CLIENT]) {
                    if other != victim {
                        self.network.cut(victim, other, until);
                    }
                }
            }
            _ => {
                self.note(format!(
                    "fault: a fifth of all messages lost for {lasts} ms"
                ));
                self.network.drop_rate = 0.2;
                self.network.drop_until = until;
            }
        }
    }

    fn restart(&mut self, id: NodeId) -> Result<(), String> {
        let mut fx = Effects::default();
        match self.replicas.get_mut(&id) {
            Some(r) if !r.up => r.start(&mut fx),
            _ => return Ok(()),
        }
        self.apply_effects(id, fx)
    }

    /// The end of the faults: every broker up, every link whole.
    fn heal(&mut self) -> Result<(), String> {
        self.note("faults end: every broker up, every link whole".to_string());
        self.network.heal_all();
        self.acks_at_heal = Some(self.oracle.acks);
        let down: Vec<NodeId> = self
            .replicas
            .values()
            .filter(|r| !r.up)
            .map(|r| r.id)
            .collect();
        for id in down {
            self.restart(id)?;
        }
        Ok(())
    }

    /// After the healed stretch: progress was made, the leader holds every
    /// acknowledged record, and the in-sync replicas agree with it below
    /// the high watermark.
    fn finish(&mut self) -> Result<(), String> {
        let acks_at_heal = self.acks_at_heal.unwrap_or(0);
        if self.oracle.acks <= acks_at_heal {
            return Err(format!(
                "no record was acknowledged in the {} ms after the faults ended",
                self.config.heal_ms
            ));
        }
        let leader = self.leader().ok_or("no leader after the faults ended")?;
        self.check_replica(leader, &format!("broker {leader}, the final leader,"))?;
        let isr = self
            .controller
            .view
            .partition(TOPIC, 0)
            .map(|p| p.isr.clone())
            .unwrap_or_default();
        let Some(lead) = self.replicas.get(&leader) else {
            return Ok(());
        };
        let hw = lead.high_watermark() as usize;
        for id in isr {
            let Some(r) = self.replicas.get(&id.0) else {
                continue;
            };
            r.check_invariants()?;
            let upto = hw.min(r.log.len());
            if r.log[..upto] != lead.log[..upto] {
                return Err(format!("broker {id} of the ISR differs from leader {leader} below the high watermark {hw}"));
            }
        }
        Ok(())
    }
}
