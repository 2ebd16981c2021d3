//! A two-NAT lab on a virtual clock: each side logs in through its own [`NatModel`], fingerprints
//! itself with the real fingerprint lab (so its facts come from the real classifier and
//! predictor, noise included), the facts cross as a call would carry them, and then both
//! handshakes run their plans through the two models as real PUNCH bytes, with latency and loss.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::core::fingerprint::sim::Lab;
use crate::core::fingerprint::{analyse, PlanConfig, PredictOptions};
use crate::core::nat_model::{NatConfig, NatModel};
use crate::core::punch::handshake::{Handshake, Outcome, PunchEvent};
use crate::core::punch::plan::{make_plan, LocalSocket, PlanInput, PunchOptions, PunchPlan};
use crate::core::punch::profile::NatSummary;
use crate::core::punch::report::PunchReport;
use crate::core::punch::Role;
use crate::core::Transport;
use crate::wire::natlens::{MappedTransport, NatFacts, PortMapping, Transports};
use crate::wire::punch::PunchRepr;
use crate::wire::TransactionId;

/// The location server both sides log in to (the fingerprint lab's primary address).
const SERVER: &str = "192.0.2.1:3478";

/// One run's settings.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub caller: NatConfig,
    pub callee: NatConfig,
    /// One way between the two NATs; the round trip is twice this.
    pub one_way: Duration,
    /// Caller → server → callee (and back): the callee starts this long after the call is
    /// placed, the caller this long after the callee.
    pub relay: Duration,
    /// Each packet between the NATs is lost with this probability.
    pub loss: f64,
    pub seed: u64,
    pub options: PunchOptions,
    /// A third party that knows the call ID (the server could) sends forged PUNCH requests and
    /// echoes from the peer's address to each side's session port when the punch starts.
    pub forgeries: bool,
    /// The callee's estimate of `relay` for its sync rounds, as a multiple of the real one
    /// (`None`: no sync rounds, as before they existed).
    pub sync_estimate: Option<f64>,
    /// (caller, callee): the side's gateway maps its punch socket's port (NAT-PMP, PCP, UPnP
    /// IGD) at [`MAPPED_PORT`] and the side announces the mapping in its facts.
    pub mapped: (bool, bool),
}

/// The public port a mapped side's gateway grants: outside every allocation range the tests
/// configure, so that only the mapping explains a packet arriving there.
pub const MAPPED_PORT: u16 = 30303;

/// One side after the run.
pub struct SideRun {
    pub plan: PunchPlan,
    pub outcome: Option<Outcome>,
    pub report: Option<PunchReport>,
    pub start: Instant,
    /// Inside addresses of the plan's sockets.
    pub sockets: Vec<SocketAddr>,
    /// PUNCH messages the handshake ignored.
    pub dropped: u64,
}

/// Both sides and their NATs after the run.
pub struct PairRun {
    pub caller: SideRun,
    pub callee: SideRun,
    pub caller_nat: NatModel,
    pub callee_nat: NatModel,
    /// When the lab stopped.
    pub end: Instant,
}

impl PairRun {
    pub fn side(&self, role: Role) -> (&SideRun, &NatModel) {
        match role {
            Role::Caller => (&self.caller, &self.caller_nat),
            Role::Callee => (&self.callee, &self.callee_nat),
        }
    }
}

/// A side between its fingerprint and the call.
pub(super) struct Prepared {
    pub(super) lab: Lab,
    /// The session socket's inside address (the punched port of a TCP punch).
    pub(super) session: SocketAddr,
    pub(super) observed: SocketAddr,
    last_sample: Instant,
    end: Instant,
    observations: Vec<crate::core::fingerprint::Observation>,
}

/// Logs the session socket in at `t0`, then fingerprints from just after.
fn prepare(config: &NatConfig, t0: Instant, seed: u64, transport: Transport) -> Prepared {
    let mut lab = Lab::new(NatModel::new(config.clone()), transport, seed);
    lab.start = t0 + Duration::from_millis(10);
    let session = lab.bind();
    let observed = lab
        .nat
        .outbound(t0, session, SERVER.parse().unwrap())
        .expect("a port for the session");
    let run = lab.fingerprint(&PlanConfig::default());
    Prepared {
        session,
        observed,
        last_sample: run.last_sample_at(),
        end: run.end(),
        observations: run.observations,
        lab,
    }
}

/// The facts a side sends, predicted for a flow opened at `at`.
fn facts(side: &Prepared, at: Instant, transport: Transport) -> NatFacts {
    let options = PredictOptions {
        since_last: at.saturating_duration_since(side.last_sample),
        ..PredictOptions::default()
    };
    let report = analyse(&side.observations, &options);
    NatSummary::from_report(&report).facts(
        Some(side.observed),
        Transports {
            udp: transport == Transport::Udp,
            tcp: transport == Transport::Tcp,
        },
    )
}

/// Has the side's gateway map its session socket's port at [`MAPPED_PORT`]: the mapping its
/// facts announce.
fn map_session_port(side: &mut Prepared, transport: Transport) -> PortMapping {
    side.lab.nat.map_port(side.session, MAPPED_PORT);
    PortMapping {
        external: SocketAddr::new(side.observed.ip(), MAPPED_PORT),
        transport: match transport {
            Transport::Udp => MappedTransport::Udp,
            Transport::Tcp => MappedTransport::Tcp,
        },
    }
}

/// A datagram on its way between the NATs.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    order: u64,
    /// 0 caller, 1 callee: the side it goes to.
    to_side: usize,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// Everything that moves during the punch.
struct Net {
    nats: [NatModel; 2],
    sockets: [Vec<SocketAddr>; 2],
    handshakes: [Handshake; 2],
    queue: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    rng: SmallRng,
    one_way: Duration,
    loss: f64,
}

impl Net {
    /// Sends everything both handshakes have queued, through their NATs, at `now`.
    fn flush(&mut self, now: Instant) {
        for side in 0..2 {
            while let Some(t) = self.handshakes[side].poll_transmit() {
                let internal = self.sockets[side][t.socket];
                let Some(public) = self.nats[side].outbound(now, internal, t.to) else {
                    continue;
                };
                if self.rng.gen_bool(self.loss) {
                    continue;
                }
                self.order += 1;
                self.queue.push(Reverse(InFlight {
                    at: now + self.one_way,
                    order: self.order,
                    to_side: 1 - side,
                    from: public,
                    to: t.to,
                    bytes: t.bytes,
                }));
            }
            while let Some(event) = self.handshakes[side].poll_event() {
                if let PunchEvent::Failed { .. } | PunchEvent::Connected { .. } = event {
                    // Outcomes are read at the end.
                }
            }
        }
    }

    /// A datagram reaches its NAT: filtered, translated, handed to the socket it maps to.
    fn deliver(&mut self, packet: InFlight) {
        let side = packet.to_side;
        let Some(internal) = self.nats[side].inbound(packet.at, packet.from, packet.to) else {
            return;
        };
        if let Some(socket) = self.sockets[side].iter().position(|&s| s == internal) {
            self.handshakes[side].handle_input(packet.at, socket, packet.from, &packet.bytes);
        }
    }

    /// Forged PUNCH messages from the peer's IP (another port) to each side's session address:
    /// a PUNCH request with a guessed nonce and echo, and an echo of a guessed nonce.
    fn forge(&mut self, at: Instant, call_id: u64, sessions: [SocketAddr; 2]) {
        for to_side in 0..2 {
            let from = SocketAddr::new(sessions[1 - to_side].ip(), 9);
            for echo_response in [false, true] {
                let message = PunchRepr {
                    echo_response,
                    tid: TransactionId([7; 12]),
                    call_id,
                    nonce: self.rng.gen(),
                    echo: Some(self.rng.gen()),
                    target: Some(sessions[to_side]),
                    mapped: Some(sessions[to_side]),
                    attempt: None,
                };
                let mut bytes = Vec::new();
                message.emit(&mut bytes);
                self.order += 1;
                self.queue.push(Reverse(InFlight {
                    at,
                    order: self.order,
                    to_side,
                    from,
                    to: sessions[to_side],
                    bytes,
                }));
            }
        }
    }

    /// Runs the virtual clock from `now` until nothing is left to happen; returns when.
    fn run_from(&mut self, mut now: Instant) -> Instant {
        loop {
            self.flush(now);
            let timer = self.next_timer();
            let packet_at = self.queue.peek().map(|Reverse(p)| p.at);
            match (timer, packet_at) {
                (None, None) => return now,
                (Some((at, side)), p) if p.is_none_or(|p| at <= p) => {
                    now = now.max(at);
                    self.handshakes[side].handle_timeout(now);
                }
                _ => {
                    let Reverse(packet) = self.queue.pop().expect("peeked");
                    now = now.max(packet.at);
                    self.deliver(packet);
                }
            }
        }
    }

    fn next_timer(&self) -> Option<(Instant, usize)> {
        (0..2)
            .filter_map(|side| Some((self.handshakes[side].poll_timeout()?, side)))
            .min()
    }
}

/// Both sides once the call is placed: fingerprinted, their facts crossed, their plans made.
pub(super) struct Call {
    pub(super) caller: Prepared,
    pub(super) callee: Prepared,
    pub(super) call_id: u64,
    pub(super) caller_start: Instant,
    pub(super) callee_start: Instant,
    pub(super) caller_plan: PunchPlan,
    pub(super) callee_plan: PunchPlan,
}

/// Fingerprints both sides over `transport`, places the call after both are done and plans
/// both halves: the callee starts one relay after the call, the caller one relay later.
pub(super) fn place_call(scenario: &Scenario, transport: Transport) -> Call {
    let t0 = Instant::now();
    let mut caller = prepare(&scenario.caller, t0, scenario.seed, transport);
    let mut callee = prepare(&scenario.callee, t0, scenario.seed ^ 0x5A5A, transport);
    let call_at = caller.end.max(callee.end) + Duration::from_millis(50);
    let callee_start = call_at + scenario.relay;
    let caller_start = callee_start + scenario.relay;
    let mut caller_facts = facts(&caller, call_at, transport);
    let mut callee_facts = facts(&callee, callee_start, transport);
    if scenario.mapped.0 {
        caller_facts.port_mapping = Some(map_session_port(&mut caller, transport));
    }
    if scenario.mapped.1 {
        callee_facts.port_mapping = Some(map_session_port(&mut callee, transport));
    }
    let call_id = SmallRng::seed_from_u64(scenario.seed).gen();
    let plan = |role, own: &NatFacts, peer: &NatFacts| {
        make_plan(&PlanInput {
            role,
            transport,
            call_id,
            own,
            peer,
            options: &scenario.options,
        })
    };
    Call {
        caller_plan: plan(Role::Caller, &caller_facts, &callee_facts),
        callee_plan: plan(Role::Callee, &callee_facts, &caller_facts),
        caller,
        callee,
        call_id,
        caller_start,
        callee_start,
    }
}

/// The inside addresses of a plan's sockets: the session's, or fresh ones.
fn plan_sockets(side: &mut Prepared, plan: &PunchPlan) -> Vec<SocketAddr> {
    plan.local()
        .sockets
        .iter()
        .map(|s| match s {
            LocalSocket::Session => side.session,
            LocalSocket::Fresh => side.lab.bind(),
        })
        .collect()
}

/// Runs one scenario end to end.
pub fn run(scenario: &Scenario) -> PairRun {
    let mut call = place_call(scenario, Transport::Udp);
    let mut rng = SmallRng::seed_from_u64(scenario.seed.wrapping_add(1));
    let caller_sockets = plan_sockets(&mut call.caller, &call.caller_plan);
    let callee_sockets = plan_sockets(&mut call.callee, &call.callee_plan);
    let sync = scenario.sync_estimate.map(|f| scenario.relay.mul_f64(f));
    let mut net = Net {
        handshakes: [
            Handshake::new(&call.caller_plan, call.caller_start, &mut rng),
            Handshake::new(&call.callee_plan, call.callee_start, &mut rng)
                .with_sync_rounds(&call.callee_plan.sync_rounds(sync)),
        ],
        nats: [call.caller.lab.nat, call.callee.lab.nat],
        sockets: [caller_sockets, callee_sockets],
        queue: BinaryHeap::new(),
        order: 0,
        rng,
        one_way: scenario.one_way,
        loss: scenario.loss,
    };
    if scenario.forgeries {
        let sessions = [call.caller.observed, call.callee.observed];
        net.forge(call.callee_start, call.call_id, sessions);
    }
    let end = net.run_from(call.callee_start);
    let [caller_nat, callee_nat] = net.nats;
    let [caller_sockets, callee_sockets] = net.sockets;
    let [caller_hs, callee_hs] = &net.handshakes;
    PairRun {
        caller: side_run(
            caller_hs,
            call.caller_plan,
            call.caller_start,
            caller_sockets,
        ),
        callee: side_run(
            callee_hs,
            call.callee_plan,
            call.callee_start,
            callee_sockets,
        ),
        caller_nat,
        callee_nat,
        end,
    }
}

/// One side's handshake after the run, with its report.
fn side_run(hs: &Handshake, plan: PunchPlan, start: Instant, sockets: Vec<SocketAddr>) -> SideRun {
    let outcome = hs.outcome().cloned();
    SideRun {
        report: outcome
            .as_ref()
            .map(|o| PunchReport::from_outcome(&plan, o)),
        outcome,
        plan,
        start,
        sockets,
        dropped: hs.dropped(),
    }
}
