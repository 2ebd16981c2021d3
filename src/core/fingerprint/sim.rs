//! A one-process lab: the probe plan runs through a [`NatModel`] to the real Binding responder
//! ([`binding::answer`], full mode or basic) as real STUN bytes, on a virtual clock. This is
//! what a shell does, minus sockets: it proves the plan and the classifier against every NAT
//! the model can be.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::core::binding::{self, FullMode, Outcome, Received};
use crate::core::fingerprint::observation::{Answer, Observation, Socket, Target};
use crate::core::fingerprint::plan::{self, Discovery, Plan, PlanConfig, Probe};
use crate::core::nat_model::NatModel;
use crate::core::Transport;
use crate::wire::attr::AttrType;
use crate::wire::stun::{Class, Message, MessageType, Method, TransactionId};
use crate::wire::MessageBuilder;

/// Which packets the lab loses. Loss happens beyond the NAT (the request has made its mapping)
/// unless said otherwise.
#[derive(Debug, Clone, PartialEq)]
pub enum Loss {
    None,
    /// The first transmission of every probe.
    FirstAttempt,
    /// Every transmission from these sockets.
    Sockets(Vec<Socket>),
    /// Every transmission from these sockets, before the NAT: no mapping is made.
    BeforeNat(Vec<Socket>),
    /// Each request and each answer independently, with this probability.
    Random(f64),
}

/// A server answer on its way back.
struct Reply {
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// What a transmission led to.
enum Sent {
    /// Reached the mapping socket directly (hairpin).
    Arrived(Answer),
    /// The server answered; the answer reaches the NAT one RTT after the request left.
    Reply(Reply),
}

/// The lab's event queue entries.
enum Event {
    Send {
        probe: usize,
        attempt: u8,
    },
    Deliver {
        probe: usize,
        attempt: u8,
        reply: Reply,
    },
}

/// The lab: one NAT, one server, one transport.
pub struct Lab {
    pub nat: NatModel,
    pub transport: Transport,
    pub server: FullMode,
    /// Answer with OTHER-ADDRESS and honour CHANGE-REQUEST.
    pub full_mode: bool,
    /// Answer CHANGE-REQUEST probes from the address they were sent to (a broken server).
    pub ignore_change: bool,
    /// An ALG on the path rewrites MAPPED-ADDRESS back to the inside address.
    pub alg: bool,
    pub rtt: Duration,
    pub loss: Loss,
    pub start: Instant,
    /// This host's address behind the NAT ([`INSIDE`] unless a test sets an IPv6 one).
    pub inside: std::net::IpAddr,
    rng: SmallRng,
    used_ports: HashSet<u16>,
    next_tid: u32,
}

/// A finished fingerprint run.
pub struct Run {
    pub observations: Vec<Observation>,
    pub plan: Plan,
    /// When the plan (after discovery) started.
    pub plan_start: Instant,
}

impl Run {
    /// When the last sample was sent.
    pub fn last_sample_at(&self) -> Instant {
        let last = self
            .plan
            .probes
            .iter()
            .map(|p| p.at)
            .max()
            .unwrap_or_default();
        self.plan_start + last
    }

    /// When the run ended, as a shell ends it: once every probe of the plan is answered or
    /// given up (never later than the plan's deadline).
    pub fn end(&self) -> Instant {
        let plan = &self.observations[self.observations.len() - self.plan.probes.len()..];
        let settled = plan
            .iter()
            .zip(&self.plan.probes)
            .map(|(o, p)| match &o.answer {
                Some(answer) => answer.received_at,
                None => self.plan_start + p.gives_up_at(),
            });
        let end = settled.max().unwrap_or(self.plan_start);
        assert!(end <= self.plan_start + self.plan.deadline);
        end
    }
}

pub const INSIDE: [u8; 4] = [192, 168, 1, 10];

impl Lab {
    pub fn new(nat: NatModel, transport: Transport, seed: u64) -> Self {
        Lab {
            nat,
            transport,
            server: FullMode {
                primary: "192.0.2.1:3478".parse().unwrap(),
                alternate: "192.0.2.2:3479".parse().unwrap(),
            },
            full_mode: true,
            ignore_change: false,
            alg: false,
            rtt: Duration::from_millis(40),
            loss: Loss::None,
            start: Instant::now(),
            inside: INSIDE.into(),
            rng: SmallRng::seed_from_u64(seed),
            used_ports: HashSet::new(),
            next_tid: 0,
        }
    }

    /// A fresh local socket: a pseudo-random ephemeral port, as Linux hands them out, so that a
    /// preserving NAT never looks sequential by accident.
    pub fn bind(&mut self) -> SocketAddr {
        loop {
            let port = self.rng.gen_range(20000..60000);
            if self.used_ports.insert(port) {
                return SocketAddr::new(self.inside, port);
            }
        }
    }

    /// Discovery, then the plan it leads to.
    pub fn fingerprint(&mut self, config: &PlanConfig) -> Run {
        let mut sockets = HashMap::new();
        let discovery_probe = plan::discovery_probe(self.transport, self.server.primary);
        let mut observations = self.run_probes(&[discovery_probe], self.start, &mut sockets);
        let discovery = Discovery::from_observation(&observations[0]);
        let plan_start = match &observations[0].answer {
            Some(answer) => answer.received_at,
            None => self.start + discovery_probe.gives_up_at(),
        };
        let plan = plan::make_plan(self.transport, config, &discovery);
        observations.extend(self.run_probes(&plan.probes, plan_start, &mut sockets));
        Run {
            observations,
            plan,
            plan_start,
        }
    }

    /// Sends every attempt at its time until its probe is answered, and delivers answers one
    /// RTT after their request, all in time order (the NAT model needs its inputs in order). All
    /// sockets are opened first, as a shell must.
    fn run_probes(
        &mut self,
        probes: &[Probe],
        start: Instant,
        sockets: &mut HashMap<Socket, SocketAddr>,
    ) -> Vec<Observation> {
        for probe in probes {
            sockets.entry(probe.socket).or_insert_with(|| self.bind());
        }
        let mut observations: Vec<Observation> = probes
            .iter()
            .map(|p| p.observe(self.transport, sockets[&p.socket], start + p.at))
            .collect();
        let mut pending: Vec<(Instant, usize, Event)> = Vec::new();
        for (i, probe) in probes.iter().enumerate() {
            for attempt in 0..probe.attempts {
                let at = start + probe.attempt_at(attempt);
                pending.push((at, pending.len(), Event::Send { probe: i, attempt }));
            }
        }
        let mapping_socket = sockets.get(&Socket::Mapping).copied();
        let mut order = pending.len();
        while let Some(next) = (0..pending.len()).min_by_key(|&i| (pending[i].0, pending[i].1)) {
            let (now, _, event) = pending.swap_remove(next);
            let (i, answer) = match event {
                Event::Send { probe, attempt } => {
                    if observations[probe].answer.is_some() {
                        continue;
                    }
                    let local = observations[probe].local;
                    match self.send(now, &probes[probe], local, attempt, mapping_socket) {
                        Some(Sent::Arrived(answer)) => (probe, Some(answer)),
                        Some(Sent::Reply(reply)) => {
                            order += 1;
                            pending.push((
                                now + self.rtt,
                                order,
                                Event::Deliver {
                                    probe,
                                    attempt,
                                    reply,
                                },
                            ));
                            continue;
                        }
                        None => continue,
                    }
                }
                Event::Deliver {
                    probe,
                    attempt,
                    reply,
                } => {
                    let local = observations[probe].local;
                    (
                        probe,
                        self.deliver(now, &probes[probe], local, attempt, reply),
                    )
                }
            };
            if observations[i].answer.is_none() {
                observations[i].answer = answer;
            }
        }
        observations
    }

    fn lost(&mut self, probe: &Probe, attempt: u8, before_nat: bool) -> bool {
        match &self.loss {
            Loss::None => false,
            Loss::FirstAttempt => !before_nat && attempt == 0,
            Loss::Sockets(sockets) => !before_nat && sockets.contains(&probe.socket),
            Loss::BeforeNat(sockets) => before_nat && sockets.contains(&probe.socket),
            Loss::Random(p) => {
                let p = *p;
                !before_nat && self.rng.gen_bool(p)
            }
        }
    }

    /// One transmission: through the NAT to the server (whose answer is then on its way), or
    /// hairpinned straight to the mapping socket.
    fn send(
        &mut self,
        now: Instant,
        probe: &Probe,
        local: SocketAddr,
        attempt: u8,
        mapping_socket: Option<SocketAddr>,
    ) -> Option<Sent> {
        if self.lost(probe, attempt, true) {
            return None;
        }
        if probe.target == Target::OwnPublic {
            let (source, reached) = self.nat.hairpin(now, local, probe.to)?;
            return (Some(reached) == mapping_socket)
                .then(|| Sent::Arrived(Answer::arrival(source, now)));
        }
        let public = self.nat.outbound(now, local, probe.to)?;
        if self.lost(probe, attempt, false) {
            return None;
        }
        let mut bytes = Vec::new();
        let (from, to) = self.serve(probe, public, &mut bytes)?;
        Some(Sent::Reply(Reply { from, to, bytes }))
    }

    /// An answer reaching the NAT (which sits next to the host, so at arrival time).
    fn deliver(
        &mut self,
        now: Instant,
        probe: &Probe,
        local: SocketAddr,
        attempt: u8,
        reply: Reply,
    ) -> Option<Answer> {
        if self.lost(probe, attempt, false) || self.nat.inbound(now, reply.from, reply.to)? != local
        {
            return None;
        }
        let message = Message::parse(&reply.bytes).expect("the responder writes valid STUN");
        let mut answer = Answer::from_message(&message, reply.from, now);
        if self.alg {
            answer.mapped = Some(local);
        }
        Some(answer)
    }

    /// The real responder answers the probe as it arrives from `public`.
    fn serve(
        &mut self,
        probe: &Probe,
        public: SocketAddr,
        reply: &mut Vec<u8>,
    ) -> Option<(SocketAddr, SocketAddr)> {
        self.next_tid += 1;
        let mut tid = [0u8; 12];
        tid[..4].copy_from_slice(&self.next_tid.to_be_bytes());
        let mut request = Vec::new();
        let ty = MessageType::new(Method::BINDING, Class::Request);
        let mut builder = MessageBuilder::new(&mut request, ty, TransactionId(tid));
        if probe.change.any() && !self.ignore_change {
            builder.attribute(AttrType::CHANGE_REQUEST, &probe.change.encode());
        }
        builder.fingerprint();
        let request = builder.finish().to_vec();
        let rx = Received {
            transport: self.transport,
            local: probe.to,
            remote: public,
        };
        let full = self.full_mode.then_some(&self.server);
        let message = Message::parse(&request).ok()?;
        match binding::answer(&message, rx, full, reply) {
            Outcome::Reply { from, to, .. } => Some((from, to)),
            Outcome::Drop(_) => None,
        }
    }
}
