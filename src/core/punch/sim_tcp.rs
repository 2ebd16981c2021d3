//! The TCP punch on the virtual clock: both ends fingerprint themselves over TCP through their
//! [`NatModel`]s (as [`super::sim`] does for UDP), plan, and run a [`TcpPunchMachine`] each,
//! with a small model of each host's kernel TCP around it: connecting sockets (SYN_SENT,
//! simultaneous open through SYN_RECV, retransmissions at 1, 3 and 7 s), a listener, the
//! sniffer that feeds the machine, and the adoption of a crafted 4-tuple.
//!
//! Between the hosts: each end's NAT, where a segment with a TTL below [`FAR_NAT_HOP`] opens
//! the near NAT's mapping and dies before the far one, and the far router, which drops an
//! unsolicited segment (no mapping, or a filter that refuses the sender) as the lab's routers
//! and most home routers do ([`Router::Drops`]), or answers an unsolicited SYN with an RST as
//! a router whose own kernel takes it would ([`Router::Resets`]). A host with crafted SYNs
//! runs the RST guard: its kernel's RSTs on the punched port never leave.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::core::nat_model::NatModel;
use crate::core::punch::plan::PunchPlan;
use crate::core::punch::sim::{place_call, Scenario};
use crate::core::punch::tcp::{
    Bind, Command, ConnectResult, SeenSegment, SocketId, TcpOutcome, TcpPunchMachine, TcpSpec, Won,
};
use crate::core::Transport;
use crate::wire::tcp_syn::SegmentKind;

/// The hop at which a segment reaches the far NAT: the LAN, our NAT, then the far router (the
/// lab's layout). A crafted SYN with a lower TTL opens our NAT and dies before the far one.
pub const FAR_NAT_HOP: u8 = 3;

/// TTL of the opening crafted SYNs (`--syn-ttl`'s default).
const SYN_TTL: u8 = 2;

/// TTL of everything the kernel sends.
const KERNEL_TTL: u8 = 64;

/// What the far router does with an unsolicited segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Router {
    /// Drops it (an input policy of drop: the lab's routers).
    Drops,
    /// Answers a SYN with an RST (no such policy: the router's kernel answers).
    Resets,
}

/// TCP flags of a segment, as far as the punch cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Flags {
    Syn,
    SynAck,
    Ack,
    Rst,
}

impl Flags {
    fn kind(self) -> SegmentKind {
        match self {
            Flags::Syn => SegmentKind::Syn,
            Flags::SynAck => SegmentKind::SynAck,
            Flags::Rst => SegmentKind::Rst,
            Flags::Ack => SegmentKind::Other,
        }
    }
}

/// A segment on its way between the NATs (public addresses).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    order: u64,
    to_side: usize,
    from: SocketAddr,
    to: SocketAddr,
    flags: Flags,
    seq: u32,
    ack: u32,
}

/// A kernel TCP state, as far as an opening goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SynSent,
    SynRecv,
    Established,
}

/// One 4-tuple the host's kernel owns: a machine's socket, a listener's child, or an
/// adopted crafted tuple.
#[derive(Debug, Clone)]
struct Endpoint {
    socket: Option<SocketId>,
    /// Made by the listener (its completion is an accept).
    child: bool,
    local: SocketAddr,
    remote: SocketAddr,
    isn: u32,
    peer_seq: u32,
    state: State,
    /// Next retransmission of our SYN or SYN-ACK, and how many came before.
    retransmit: Option<Instant>,
    retransmits: u32,
    established: Option<Instant>,
}

/// One end after the run.
#[derive(Debug)]
pub struct TcpSideRun {
    pub plan: PunchPlan,
    pub spec: TcpSpec,
    pub start: Instant,
    pub outcome: Option<TcpOutcome>,
    /// The connection's 4-tuple (inside address, the peer's public address) and when its
    /// handshake completed here.
    pub connection: Option<(SocketAddr, SocketAddr, Instant)>,
}

/// Both ends and their NATs after the run.
#[derive(Debug)]
pub struct TcpPairRun {
    pub caller: TcpSideRun,
    pub callee: TcpSideRun,
    pub caller_nat: NatModel,
    pub callee_nat: NatModel,
    pub end: Instant,
    /// Segments the far routers answered with an RST (unsolicited SYNs).
    pub rsts: u32,
    /// Crafted SYNs that died of their low TTL between the NATs.
    pub expired: u32,
}

/// One host: its punch machine and its kernel.
struct Host {
    machine: TcpPunchMachine,
    plan: PunchPlan,
    spec: TcpSpec,
    start: Instant,
    punched: SocketAddr,
    /// Fresh inside addresses for holding sockets.
    binder: crate::core::fingerprint::sim::Lab,
    listening: bool,
    endpoints: Vec<Endpoint>,
    /// The 4-tuple (inside, remote) that won, once the machine said so.
    won: Option<(SocketAddr, SocketAddr)>,
}

/// Everything that moves during the punch.
struct Net {
    hosts: [Host; 2],
    nats: [NatModel; 2],
    queue: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    rng: SmallRng,
    one_way: Duration,
    loss: f64,
    router: Router,
    rsts: u32,
    expired: u32,
}

/// Runs one scenario's TCP punch end to end, through routers that drop what they do not
/// expect.
pub fn run(scenario: &Scenario) -> TcpPairRun {
    run_with(scenario, Router::Drops)
}

/// [`run`] with the far routers doing `router` with unsolicited segments.
pub fn run_with(scenario: &Scenario, router: Router) -> TcpPairRun {
    let call = place_call(scenario, Transport::Tcp);
    let mut rng = SmallRng::seed_from_u64(scenario.seed.wrapping_add(7));
    let host = |side: crate::core::punch::sim::Prepared,
                plan: PunchPlan,
                start: Instant,
                server_rtt: Option<Duration>,
                rng: &mut SmallRng| {
        let spec = TcpSpec::for_plan(&plan, SYN_TTL, server_rtt);
        let deadline = start + plan.timeout;
        let peer_ip = plan.peer.map_or(side.observed.ip(), |p| p.ip());
        let machine = TcpPunchMachine::new(&spec, peer_ip, start, deadline, true, rng);
        Host {
            machine,
            plan,
            spec,
            start,
            punched: side.session,
            listening: false,
            endpoints: Vec::new(),
            won: None,
            binder: side.lab,
        }
    };
    let mut caller = call.caller;
    let mut callee = call.callee;
    let caller_nat = std::mem::replace(&mut caller.lab.nat, NatModel::new(placeholder()));
    let callee_nat = std::mem::replace(&mut callee.lab.nat, NatModel::new(placeholder()));
    let hosts = [
        host(caller, call.caller_plan, call.caller_start, None, &mut rng),
        host(
            callee,
            call.callee_plan,
            call.callee_start,
            Some(scenario.relay),
            &mut rng,
        ),
    ];
    let mut net = Net {
        hosts,
        nats: [caller_nat, callee_nat],
        queue: BinaryHeap::new(),
        order: 0,
        rng,
        one_way: scenario.one_way,
        loss: scenario.loss,
        router,
        rsts: 0,
        expired: 0,
    };
    let end = net.run_from(call.callee_start);
    let [caller, callee] = net.hosts.map(Host::finish);
    let [caller_nat, callee_nat] = net.nats;
    TcpPairRun {
        caller,
        callee,
        caller_nat,
        callee_nat,
        end,
        rsts: net.rsts,
        expired: net.expired,
    }
}

/// A NAT that stands in while a host's own model is out in the network.
fn placeholder() -> crate::core::nat_model::NatConfig {
    use crate::core::fingerprint::Behaviour::EndpointIndependent as Ei;
    crate::core::nat_model::NatConfig::new(
        std::net::IpAddr::from([192, 0, 2, 254]),
        Ei,
        Ei,
        crate::core::nat_model::PortAllocation::Preserving,
    )
}

impl Host {
    /// The winning endpoint, if any.
    fn winner(&self) -> Option<&Endpoint> {
        let (local, remote) = self.won?;
        self.endpoints
            .iter()
            .find(|e| e.local == local && e.remote == remote)
    }

    fn finish(self) -> TcpSideRun {
        let connection = self
            .winner()
            .and_then(|e| Some((e.local, e.remote, e.established?)));
        TcpSideRun {
            outcome: self.machine.outcome().copied(),
            connection,
            plan: self.plan,
            spec: self.spec,
            start: self.start,
        }
    }

    /// When this host's machine or kernel needs the clock next: not before its start.
    fn next_timer(&self) -> Option<Instant> {
        let kernel = self.endpoints.iter().filter_map(|e| e.retransmit).min();
        [self.machine.poll_timeout(), kernel]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.max(self.start))
    }

    /// Done when the machine gave up, or its connection's handshake completed here.
    fn done(&self) -> bool {
        match self.machine.outcome() {
            None => false,
            Some(TcpOutcome::TimedOut { .. }) => true,
            Some(TcpOutcome::Connected { .. }) => {
                self.winner().is_some_and(|e| e.established.is_some())
            }
        }
    }
}

impl Net {
    /// Runs until both ends are done or nothing is left to happen; returns when.
    fn run_from(&mut self, mut now: Instant) -> Instant {
        let limit = self.hosts.iter().map(|h| h.start + h.plan.timeout).max();
        let limit = limit.expect("two hosts") + Duration::from_secs(10);
        loop {
            for side in 0..2 {
                // A host does nothing before its start signal (its machine, built for that
                // start, has its first commands queued already).
                if now >= self.hosts[side].start {
                    self.carry_out(side, now);
                }
            }
            if self.hosts.iter().all(Host::done) || now > limit {
                return now;
            }
            let timer = (0..2)
                .filter_map(|side| Some((self.hosts[side].next_timer()?, side)))
                .min();
            let packet_at = self.queue.peek().map(|Reverse(p)| p.at);
            match (timer, packet_at) {
                (None, None) => return now,
                (Some((at, side)), p) if p.is_none_or(|p| at <= p) => {
                    now = now.max(at);
                    self.tick(side, now);
                }
                _ => {
                    let Reverse(packet) = self.queue.pop().expect("peeked");
                    now = now.max(packet.at);
                    self.arrive(packet);
                }
            }
        }
    }

    /// The machine's deadlines and the kernel's retransmissions due at `now`.
    fn tick(&mut self, side: usize, now: Instant) {
        self.hosts[side].machine.handle_timeout(now);
        for i in 0..self.hosts[side].endpoints.len() {
            let e = &self.hosts[side].endpoints[i];
            if e.retransmit.is_none_or(|at| at > now) {
                continue;
            }
            let (flags, seq, ack) = match e.state {
                State::SynSent => (Flags::Syn, e.isn, 0),
                State::SynRecv => (Flags::SynAck, e.isn, e.peer_seq.wrapping_add(1)),
                State::Established => continue,
            };
            let (local, remote, retransmits) = (e.local, e.remote, e.retransmits + 1);
            let e = &mut self.hosts[side].endpoints[i];
            e.retransmits = retransmits;
            // Linux: 1 s, then doubling; three retransmissions cover any punch's timeout.
            e.retransmit = (retransmits < 3).then(|| now + Duration::from_secs(1 << retransmits));
            self.send(side, now, local, remote, (flags, seq, ack), KERNEL_TTL);
        }
    }

    /// Sends what the machine queued and does what it asks.
    fn carry_out(&mut self, side: usize, now: Instant) {
        while let Some(t) = self.hosts[side].machine.poll_transmit() {
            let from = self.hosts[side].punched;
            self.send(side, now, from, t.to, (Flags::Syn, t.syn.isn, 0), t.ttl);
        }
        while let Some(command) = self.hosts[side].machine.poll_command() {
            match command {
                Command::Listen => self.hosts[side].listening = true,
                Command::Connect { socket, bind, to } => self.connect(side, now, socket, bind, to),
                Command::Close { socket } => {
                    // In SYN_SENT a close sends nothing; the NAT's entry stays.
                    let endpoints = &mut self.hosts[side].endpoints;
                    endpoints.retain(|e| e.socket != Some(socket));
                }
                Command::CheckHandshaking { socket } => {
                    let host = &mut self.hosts[side];
                    let handshaking = host
                        .endpoints
                        .iter()
                        .any(|e| e.socket == Some(socket) && e.state == State::SynRecv);
                    host.machine.handle_socket_state(now, socket, handshaking);
                }
            }
        }
        self.note_outcome(side, now);
    }

    /// A kernel socket connects: SYN_SENT, its SYN out.
    fn connect(&mut self, side: usize, now: Instant, socket: SocketId, bind: Bind, to: SocketAddr) {
        let isn = self.rng.gen();
        let host = &mut self.hosts[side];
        let local = match bind {
            Bind::Punched => host.punched,
            Bind::Any => host.binder.bind(),
        };
        host.endpoints.push(Endpoint {
            socket: Some(socket),
            child: false,
            local,
            remote: to,
            isn,
            peer_seq: 0,
            state: State::SynSent,
            retransmit: Some(now + Duration::from_secs(1)),
            retransmits: 0,
            established: None,
        });
        self.send(side, now, local, to, (Flags::Syn, isn, 0), KERNEL_TTL);
    }

    /// Once the machine has an outcome: the winning endpoint, adopting a crafted tuple.
    fn note_outcome(&mut self, side: usize, now: Instant) {
        let host = &mut self.hosts[side];
        if host.won.is_some() {
            return;
        }
        let Some(&TcpOutcome::Connected { won, .. }) = host.machine.outcome() else {
            return;
        };
        let won = match won {
            Won::Connect(socket) => host
                .endpoints
                .iter()
                .find(|e| e.socket == Some(socket))
                .map(|e| (e.local, e.remote)),
            Won::Accept(from) => Some((host.punched, from)),
            Won::Adopt { syn, segment } => {
                let adopted = adopted(host.punched, syn, &segment, now);
                let answer = if adopted.state == State::Established {
                    (
                        Flags::Ack,
                        syn.isn.wrapping_add(1),
                        segment.seq.wrapping_add(1),
                    )
                } else {
                    (Flags::SynAck, syn.isn, segment.seq.wrapping_add(1))
                };
                host.endpoints.push(adopted);
                let local = host.punched;
                self.send(side, now, local, segment.src, answer, KERNEL_TTL);
                Some((local, segment.src))
            }
        };
        self.hosts[side].won = won;
    }

    /// Out through this side's NAT (a low TTL dies after it), lost or on its way.
    fn send(
        &mut self,
        side: usize,
        now: Instant,
        inside: SocketAddr,
        to: SocketAddr,
        (flags, seq, ack): (Flags, u32, u32),
        ttl: u8,
    ) {
        let Some(from) = self.nats[side].outbound(now, inside, to) else {
            return;
        };
        if ttl < FAR_NAT_HOP {
            self.expired += 1;
            return;
        }
        self.push(now, 1 - side, from, to, (flags, seq, ack));
    }

    fn push(
        &mut self,
        now: Instant,
        to_side: usize,
        from: SocketAddr,
        to: SocketAddr,
        (flags, seq, ack): (Flags, u32, u32),
    ) {
        if self.rng.gen_bool(self.loss) {
            return;
        }
        self.order += 1;
        self.queue.push(Reverse(InFlight {
            at: now + self.one_way,
            order: self.order,
            to_side,
            from,
            to,
            flags,
            seq,
            ack,
        }));
    }

    /// A segment reaches the far NAT: in to its host, or (unsolicited SYN) an RST back from
    /// the router.
    fn arrive(&mut self, p: InFlight) {
        let side = p.to_side;
        let Some(inside) = self.nats[side].inbound(p.at, p.from, p.to) else {
            if p.flags == Flags::Syn && self.router == Router::Resets {
                self.rsts += 1;
                self.nats[side].answer_unsolicited(p.at, p.from, p.to);
                let rst = (Flags::Rst, 0, p.seq.wrapping_add(1));
                self.push(p.at, 1 - side, p.to, p.from, rst);
            }
            return;
        };
        let host = &mut self.hosts[side];
        if inside.port() == host.punched.port() && inside.ip() == host.punched.ip() {
            let seen = SeenSegment {
                src: p.from,
                dst: inside,
                kind: p.flags.kind(),
                seq: p.seq,
                ack: p.ack,
            };
            host.machine.handle_segment(p.at, &seen);
        }
        self.kernel(side, inside, &p);
        self.note_outcome(side, p.at);
    }

    /// The host's kernel takes a segment for `inside`.
    fn kernel(&mut self, side: usize, inside: SocketAddr, p: &InFlight) {
        let now = p.at;
        let host = &mut self.hosts[side];
        let found = host
            .endpoints
            .iter()
            .position(|e| e.local == inside && e.remote == p.from);
        let Some(i) = found else {
            return self.unowned(side, inside, p);
        };
        let e = &mut host.endpoints[i];
        let ours = p.ack == e.isn.wrapping_add(1);
        let (socket, child, remote, isn) = (e.socket, e.child, e.remote, e.isn);
        let reply = match (e.state, p.flags) {
            (State::SynSent, Flags::Syn) => {
                e.state = State::SynRecv;
                e.peer_seq = p.seq;
                Some((Flags::SynAck, isn, p.seq.wrapping_add(1)))
            }
            (State::SynSent | State::SynRecv, Flags::SynAck) if ours => {
                e.state = State::Established;
                e.established = Some(now);
                e.retransmit = None;
                e.peer_seq = p.seq;
                if let Some(socket) = socket {
                    host.machine
                        .handle_connect(now, socket, ConnectResult::Connected);
                }
                Some((Flags::Ack, isn.wrapping_add(1), p.seq.wrapping_add(1)))
            }
            (State::SynRecv, Flags::Ack) if ours => {
                e.state = State::Established;
                e.established = Some(now);
                e.retransmit = None;
                if let Some(socket) = socket {
                    host.machine
                        .handle_connect(now, socket, ConnectResult::Connected);
                } else if child {
                    host.machine.handle_accepted(now, remote);
                }
                None
            }
            (State::Established, Flags::SynAck) => {
                Some((Flags::Ack, isn.wrapping_add(1), p.seq.wrapping_add(1)))
            }
            (State::SynSent | State::SynRecv, Flags::Rst) => {
                host.endpoints.remove(i);
                if let Some(socket) = socket {
                    host.machine
                        .handle_connect(now, socket, ConnectResult::Failed);
                }
                None
            }
            _ => None,
        };
        if let Some(reply) = reply {
            self.send(side, now, inside, remote, reply, KERNEL_TTL);
        }
    }

    /// A segment no endpoint owns: the listener's SYN, or the kernel's RST (kept home by the
    /// RST guard on the punched port of a host that crafts).
    fn unowned(&mut self, side: usize, inside: SocketAddr, p: &InFlight) {
        let host = &mut self.hosts[side];
        let on_punched = inside == host.punched;
        if on_punched && host.listening && p.flags == Flags::Syn {
            let isn = self.rng.gen();
            host.endpoints.push(Endpoint {
                socket: None,
                child: true,
                local: inside,
                remote: p.from,
                isn,
                peer_seq: p.seq,
                state: State::SynRecv,
                retransmit: Some(p.at + Duration::from_secs(1)),
                retransmits: 0,
                established: None,
            });
            let reply = (Flags::SynAck, isn, p.seq.wrapping_add(1));
            self.send(side, p.at, inside, p.from, reply, KERNEL_TTL);
            return;
        }
        let guarded = on_punched && host.spec.crafts();
        if matches!(p.flags, Flags::Syn | Flags::SynAck) && !guarded {
            let rst = (Flags::Rst, p.ack, p.seq.wrapping_add(1));
            self.send(side, p.at, inside, p.from, rst, KERNEL_TTL);
        }
    }
}

/// The endpoint a socket adopting a crafted 4-tuple becomes: established at once when it
/// answers the peer's SYN-ACK (with the final ACK), in SYN_RECV until the peer's ACK when it
/// answers the peer's SYN (with its SYN-ACK, resent until acknowledged).
fn adopted(
    punched: SocketAddr,
    syn: crate::core::punch::tcp::SynRecord,
    segment: &SeenSegment,
    now: Instant,
) -> Endpoint {
    let answers_syn_ack = segment.kind == SegmentKind::SynAck;
    Endpoint {
        socket: None,
        child: false,
        local: punched,
        remote: segment.src,
        isn: syn.isn,
        peer_seq: segment.seq,
        state: if answers_syn_ack {
            State::Established
        } else {
            State::SynRecv
        },
        retransmit: (!answers_syn_ack).then(|| now + Duration::from_secs(1)),
        retransmits: 0,
        established: answers_syn_ack.then_some(now),
    }
}
